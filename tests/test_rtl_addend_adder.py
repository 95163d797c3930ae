# amaranth: UnusedElaboratable=no
"""``amaranth.sim`` tests of :class:`rtl.addend_adder.AddendAdder` (the GEMM core's output
adder) against NumPy float32 addition: every stage count, with and without ``add``, random
valid/ready stalls, the side bits, the ``invalid`` rule and the no-stall latency."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from semdialect.rtl.addend_adder import MAX_STAGES, AddendAdder, addend_cuts
from semdialect.tb.fp32_ref import fp32_add_vectors, ref_fp32_add

LANES = 3
SIDE = 5


def _finite_pairs(count: int, seed: int) -> np.ndarray:
    """Adversarial finite pairs whose sum is finite (the array never overflows, SPEC §5)."""
    pairs = fp32_add_vectors(4 * count, seed)
    with np.errstate(over="ignore"):
        total = pairs[:, 0].view(np.float32) + pairs[:, 1].view(np.float32)
    return pairs[np.isfinite(total)][:count]


def run(stages: int, beats: list[dict], *, stall: bool, seed: int = 0
        ) -> tuple[list[dict], list[int], list[int]]:
    """Feed ``beats`` (``lanes``/``addends``: (value, invalid) per lane, ``add``, ``side``)
    through ``AddendAdder(LANES, stages, side=SIDE)``; (output beats, accept cycles, output
    cycles)."""
    dut = AddendAdder(LANES, stages, side=SIDE)
    rng = random.Random(seed)
    out: list[dict] = []
    accepted: list[int] = []
    emitted: list[int] = []

    async def bench(ctx) -> None:
        pending = list(beats)
        cycle = 0
        while len(out) < len(beats):
            offer = bool(pending) and (not stall or rng.random() < 0.6)
            ctx.set(dut.i.valid, offer)
            if offer:
                beat = pending[0]
                ctx.set(dut.i.payload, {
                    "lanes": [{"value": v, "invalid": f} for v, f in beat["lanes"]],
                    "addends": [{"value": v, "invalid": f} for v, f in beat["addends"]],
                    "add": beat["add"], "side": beat["side"]})
            ready = not stall or rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            if offer and ctx.get(dut.i.ready):
                pending.pop(0)
                accepted.append(cycle)
            if ready and ctx.get(dut.o.valid):
                got = ctx.get(dut.o.payload)
                out.append({"lanes": [(lane["value"], lane["invalid"]) for lane in got["lanes"]],
                            "side": got["side"]})
                emitted.append(cycle)
            await ctx.tick()
            cycle += 1
            assert cycle < 20 * len(beats) + 100, "adder stuck"

    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out, accepted, emitted


def make_beats(count: int, seed: int) -> list[dict]:
    pairs = _finite_pairs(count * LANES, seed).reshape(count, LANES, 2)
    rng = np.random.default_rng(seed)
    flags = rng.random((count, LANES, 2)) < 0.15
    adds = rng.random(count) < 0.6
    sides = rng.integers(0, 1 << SIDE, count)
    return [{"lanes": [(int(pairs[b, i, 0]), int(flags[b, i, 0])) for i in range(LANES)],
             "addends": [(int(pairs[b, i, 1]), int(flags[b, i, 1])) for i in range(LANES)],
             "add": int(adds[b]), "side": int(sides[b])} for b in range(count)]


def expected(beats: list[dict]) -> list[dict]:
    """What the hardware must produce: float32(result) + float32(addend) (NumPy) with ``add``,
    the result unchanged without; invalid = result's | (add & addend's)."""
    out = []
    for beat in beats:
        lanes = []
        for (value, inv), (addend, ainv) in zip(beat["lanes"], beat["addends"], strict=True):
            if beat["add"]:
                lanes.append((int(ref_fp32_add(np.uint32(value), np.uint32(addend))),
                              int(inv or ainv)))
            else:
                lanes.append((value, inv))
        out.append({"lanes": lanes, "side": beat["side"]})
    return out


@pytest.mark.parametrize("stages", [0, 1, 2, 4, 5, MAX_STAGES])
def test_addend_adder_vs_numpy_with_stalls(stages: int) -> None:
    beats = make_beats(120, seed=stages)
    want = expected(beats)
    got, _, _ = run(stages, beats, stall=True, seed=stages)
    bad = [(k, g, w) for k, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, f"{len(bad)} of {len(want)} beats differ, first: {bad[:3]}"


@pytest.mark.parametrize("stages", [0, 1, 5, MAX_STAGES])
def test_addend_adder_latency_and_throughput(stages: int) -> None:
    """Always valid and ready: one beat per cycle, each out exactly ``stages`` cycles after it
    was accepted (0: combinationally in the same cycle)."""
    beats = make_beats(40, seed=100 + stages)
    got, accepted, emitted = run(stages, beats, stall=False)
    assert got == expected(beats)
    assert accepted == list(range(len(beats)))
    assert emitted == [c + stages for c in accepted]


def test_addend_adder_zero_identity() -> None:
    """Without ``add`` the −0.0 addend passes every finite result unchanged, both zeros
    included; with ``add`` −0 + −0 = −0 and +0 + −0 = +0."""
    values = [0x0000_0000, 0x8000_0000, 0x0000_0001, 0x8000_0001, 0x7F7F_FFFF, 0xFF7F_FFFF,
              0x3F80_0000]
    beats = [{"lanes": [(v, 0)] * LANES, "addends": [(0x8000_0000, 0)] * LANES, "add": add,
              "side": 0} for v in values for add in (0, 1)]
    got, _, _ = run(5, beats, stall=False)
    assert [beat["lanes"][0][0] for beat in got] == [v for v in values for _ in (0, 1)]


def test_addend_cuts() -> None:
    assert addend_cuts(0) == ()
    assert addend_cuts(1) == (7,)
    for stages in range(2, MAX_STAGES + 1):
        cuts = addend_cuts(stages)
        assert len(cuts) == len(set(cuts)) == stages and cuts == tuple(sorted(cuts))
        assert cuts[0] == 0 and cuts[-1] == 7
    for bad in (-1, MAX_STAGES + 1):
        with pytest.raises(ValueError, match="stages"):
            addend_cuts(bad)
    with pytest.raises(ValueError, match="lanes"):
        AddendAdder(0, 1)
