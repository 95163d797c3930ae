# amaranth: UnusedElaboratable=no
"""``amaranth.sim`` tests of the pipelined activation frontend lane (``selector_stages`` ≥ 1).

With ``stages`` ≥ 1 the :class:`~rtl.block_quantizer.BlockQuantizer` moves the preprocessor
into the selector (``raw``: split by the held register, one of the stages after its back
half), pipelines the selector's evaluation with the others, and splits the residual around
the quantizer's register (:mod:`rtl.residual_split`). These tests drive every
stage count 0..6 with random, independent back-pressure on both sides (the consumer stalls
longer than the producer, so the pipeline and the carried-x FIFO fill up) and check every
output bit for bit against the golden model, plus the latency C + 2 + stages and the
initiation interval C with both sides always ready.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from semdialect.golden.decompose import residual
from semdialect.golden.formatbook import get_formatbook
from semdialect.golden.quantize import quantize
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.layouts import fp16_block, preprocessed_block
from semdialect.rtl.preprocess import (
    BlockPreprocessor,
    partial_block,
    preprocess_back,
    preprocess_front,
)
from semdialect.rtl.selector import FormatSelector
from semdialect.rtl.timing import Pipeline
from semdialect.rtl.trees import cut_levels
from semdialect.tb.frontend_ref import (
    effective_masks,
    frontend_vectors,
    is_invalid,
    random_masks,
    ref_frontend,
    to_fp16_bits,
)

pytestmark = pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")

STAGES = range(7)


def ref_residual(bits: np.ndarray, masks: np.ndarray, book: str, mode: str) -> np.ndarray:
    """golden fp16(fp32(x) − deq(Q(x))) per block; an invalid block's residual is the block."""
    out = bits.copy()
    ok = ~is_invalid(bits)
    x16 = bits[ok].view(np.float16)
    cand = effective_masks(masks, get_formatbook(book), mode)
    qt = quantize(x16, book, select=mode, block=bits.shape[1],
                  candidates=None if cand is None else cand[ok][:, None, :])
    out[ok] = residual(x16, qt).view(np.uint16)
    return out


def run_lane(dut: BlockQuantizer, bits: np.ndarray, masks: np.ndarray, salient: np.ndarray,
             *, p_in: float, p_out: float, seed: int) -> tuple[list[Any], list[int], list[int]]:
    """Stream the blocks through ``dut`` with random stalls (probability ``p_in`` before each
    input, ``p_out`` before each output; 1..13 cycles). Checks the output stream rules (valid
    and payload held until ready) at every edge. Returns (outputs, input cycles, output
    cycles)."""
    payloads = []
    for n in range(len(bits)):
        payload = {"x": [int(v) for v in bits[n]],
                   "mask": sum(1 << f for f, on in enumerate(masks[n]) if on)}
        if dut.residual:
            payload["salient"] = int(salient[n])
        payloads.append(payload)
    outputs: list[Any] = []
    put_at: list[int] = []
    got_at: list[int] = []
    errors: list[str] = []
    cycle = [0]
    limit = 30 * len(payloads) + 300

    async def clock(ctx: Any) -> None:
        while True:
            await ctx.tick()
            cycle[0] += 1
            assert cycle[0] < limit, f"stuck: {len(put_at)} in, {len(outputs)} out"

    async def monitor(ctx: Any) -> None:
        pending = None
        async for _, _, valid, ready, payload in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload):
            if pending is not None and (not valid or payload != pending):
                errors.append(f"cycle {cycle[0]}: output changed while not taken")
            pending = payload if valid and not ready else None

    async def stall(ctx: Any, rng: random.Random, p: float) -> None:
        if rng.random() < p:
            await ctx.tick().repeat(rng.choice([1, 1, 2, 3, 5, 8, 13]))

    async def producer(ctx: Any) -> None:
        rng = random.Random(seed)
        for payload in payloads:
            await stall(ctx, rng, p_in)
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, payload)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            put_at.append(cycle[0] - 1)

    async def consumer(ctx: Any) -> None:
        rng = random.Random(seed + 1)
        for _ in payloads:
            await stall(ctx, rng, p_out)
            ctx.set(dut.o.ready, 1)
            (payload,) = await ctx.tick().sample(dut.o.payload).until(dut.o.valid)
            ctx.set(dut.o.ready, 0)
            outputs.append(payload)
            got_at.append(cycle[0] - 1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(clock, background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert not errors, errors[:5]
    return outputs, put_at, got_at


def check_outputs(outs: list[Any], bits: np.ndarray, masks: np.ndarray, salient: np.ndarray,
                  book: str, mode: str, labels: Sequence[str], residual_path: bool) -> None:
    want = ref_frontend(bits, masks, book, mode)
    b = bits.shape[1]
    got = {
        "codes": np.array([[int(p.codes[i]) for i in range(b)] for p in outs]),
        "se": np.array([int(p.se) for p in outs]),
        "dialect": np.array([int(p.dialect) for p in outs]),
        "invalid": np.array([bool(p.invalid) for p in outs]),
    }
    for name in got:
        bad = np.flatnonzero((got[name] != getattr(want, name)).reshape(len(bits), -1).any(1))
        assert not len(bad), f"{name}: blocks {bad[:5].tolist()} ({[labels[k] for k in bad[:5]]})"
    if residual_path:
        res = np.array([[int(r) for r in p.residual] for p in outs], np.uint16)
        want_r = ref_residual(bits, masks, book, mode)
        bad = np.flatnonzero((res != want_r).any(1))
        assert not len(bad), f"residual: blocks {bad[:5].tolist()}"
        assert [int(p.salient) for p in outs] == salient.tolist()


def lane_vectors(book: str, block: int, mode: str, n: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n`` blocks: every adversarial class of :func:`frontend_vectors` once, the rest
    random from it, with its candidate masks."""
    vs = frontend_vectors(book, block, mode, n, seed)
    rng = np.random.default_rng(seed)
    firsts = [vs.labels.index(lab) for lab in dict.fromkeys(vs.labels)]
    rest = np.setdiff1d(np.arange(len(vs)), firsts)
    pick = np.concatenate([firsts, rng.choice(rest, n - len(firsts), replace=False)])
    return vs.bits[pick], vs.masks[pick], [vs.labels[k] for k in pick]


#: (B, formatbook, mode, P): C = 4 with B = 16, the default's C = 1 shape with K = 16, and
#: the two-stage selector
SHAPES = [(16, "dfp4", "lut", 4), (16, "dfp4", "lut", 16), (16, "dfp4", "two-stage", 16)]


@pytest.mark.parametrize("stages", STAGES)
@pytest.mark.parametrize(("block", "book", "mode", "per_cycle"), SHAPES)
def test_lane_backpressure_bit_exact(block: int, book: str, mode: str, per_cycle: int,
                                     stages: int) -> None:
    """Residual lane, every stage count: codes, SE, dialect, invalid, residual and salient
    bit for bit under random stalls on both sides (mostly at the output: the pipeline fills
    up and drains)."""
    bits, masks, labels = lane_vectors(book, block, mode, 40, seed=stages + 10 * per_cycle)
    rng = np.random.default_rng(stages)
    salient = rng.integers(0, 2, len(bits))
    assert is_invalid(bits).any()
    dut = BlockQuantizer(block, book, mode, per_cycle, residual=True, stages=stages)
    outs, _, _ = run_lane(dut, bits, masks, salient, p_in=0.2, p_out=0.6, seed=stages)
    check_outputs(outs, bits, masks, salient, book, mode, labels, True)


@pytest.mark.parametrize("stages", [1, 2, 4, 6])
@pytest.mark.parametrize("mode", ["lut", "two-stage"])
def test_plain_lane_backpressure_bit_exact(mode: str, stages: int) -> None:
    """The lane without the residual path (BlockQuantizer's default), likewise."""
    bits, masks, labels = lane_vectors("dfp4", 16, mode, 40, seed=stages)
    dut = BlockQuantizer(16, "dfp4", mode, 4 if mode == "lut" else 16, stages=stages)
    outs, _, _ = run_lane(dut, bits, masks, np.zeros(len(bits), int), p_in=0.5, p_out=0.5,
                          seed=100 + stages)
    check_outputs(outs, bits, masks, None, "dfp4", mode, labels, False)


@pytest.mark.parametrize("stages", [1, 4])
def test_default_shape_lane_bit_exact(stages: int) -> None:
    """The shipped default's lane shape (B = 32, sd32, lut, P = 32: C = 1) with the
    residual, under back-pressure."""
    bits, masks, labels = lane_vectors("sd32", 32, "lut", 24, seed=stages)
    salient = np.arange(len(bits)) % 2
    dut = BlockQuantizer(32, "sd32", "lut", 32, residual=True, stages=stages)
    outs, _, _ = run_lane(dut, bits, masks, salient, p_in=0.3, p_out=0.6, seed=stages)
    check_outputs(outs, bits, masks, salient, "sd32", "lut", labels, True)


@pytest.mark.parametrize("stages", STAGES)
@pytest.mark.parametrize(("block", "book", "mode", "per_cycle"), SHAPES)
def test_lane_latency_and_interval(block: int, book: str, mode: str, per_cycle: int,
                                   stages: int) -> None:
    """Both sides always ready: a block every C cycles, each out C + 2 + stages cycles after
    it went in (the latency contract of rtl.timing.Pipeline), residual or not."""
    rng = np.random.default_rng(stages)
    bits = to_fp16_bits(rng.standard_normal((8, block)) * 2.0 ** rng.integers(-20, 12, (8, 1)))
    masks = random_masks(get_formatbook(book), len(bits), rng)
    salient = rng.integers(0, 2, len(bits))
    for residual_path in (False, True):
        dut = BlockQuantizer(block, book, mode, per_cycle, residual=residual_path,
                             stages=stages)
        c = dut.initiation_interval
        latency = Pipeline(selector_stages=stages).quantizer_latency(c)
        assert dut.latency == latency == c + 2 + stages
        outs, put_at, got_at = run_lane(dut, bits, masks, salient, p_in=0.0, p_out=0.0,
                                        seed=0)
        assert np.diff(put_at).tolist() == [c] * (len(bits) - 1)
        assert [g - p for p, g in zip(put_at, got_at, strict=True)] == [latency] * len(bits)
        check_outputs(outs, bits, masks, salient, book, mode, [""] * len(bits), residual_path)


def test_stage_budget() -> None:
    """stages ≥ 1 spends one register after the preprocessor (inside the selector, ``raw``)
    and the rest on the evaluation: the plain selector's cuts without the one after the
    final level."""
    levels = 11  # B = 32, P = 32: ROM reads, 5 adder levels, 5 argmin levels
    for stages in range(1, 7):
        plain = FormatSelector(32, "sd32", "lut", 32, stages=stages)._cuts()
        raw = FormatSelector(32, "sd32", "lut", 32, stages=stages, raw=True)._cuts()
        assert plain == {level: 1 for level in cut_levels(levels, stages)}
        assert raw == {0: 1} | {level: 1 for level in cut_levels(levels, stages)[:-1]}
    assert FormatSelector(32, "sd32", "lut", 32, stages=4, raw=True)._cuts() == \
        {0: 1, 3: 1, 6: 1, 8: 1}  # the default: argmin levels 9-11 feed the output register
    # two-stage, B = 32 (14 levels: max tree 1-5, pair 6, range ROM 7, range tests 8,
    # popcounts 9-13, compare 14), the BlockDialect lane's stages = 4
    assert FormatSelector(32, "dfp4", "two-stage", 16, stages=4, raw=True)._cuts() == \
        {0: 1, 4: 1, 7: 1, 11: 1}
    assert FormatSelector(32, "dfp4", "two-stage", 16, stages=2)._cuts() == {7: 1, 14: 1}
    # more registers than levels (B = 16, P = 1: 5 levels) stack after the last one
    assert FormatSelector(16, "dfp4", "lut", 1, stages=6)._cuts() == \
        {1: 1, 2: 1, 3: 1, 4: 1, 5: 2}
    assert FormatSelector(16, "dfp4", "lut", 1, stages=6, raw=True)._cuts() == \
        {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    for stages in range(1, 7):
        assert FormatSelector(16, "dfp4", "lut", 4, stages=stages, raw=True).latency == \
            FormatSelector(16, "dfp4", "lut", 4, stages=stages).latency == 4 + 1 + stages
    for bad in ("yes", 1):
        with pytest.raises(ValueError, match="^raw:"):
            FormatSelector(16, "dfp4", "lut", 4, stages=1, raw=bad)
    with pytest.raises(ValueError, match="^raw:"):
        FormatSelector(16, "dfp4", "lut", 4, raw=True)  # needs a stage for the preprocessor


def test_preprocessor_split_matches() -> None:
    """preprocess_back(preprocess_front(x)) is BlockPreprocessor's output, for every block
    size, on adversarial blocks (NaN/Inf, subnormals, the SE clamp, ties)."""
    for block in (16, 32, 64):
        bits = frontend_vectors("dfp4", block, "lut", 30, seed=block).bits
        got = run_split(SplitPreprocessor(block), bits)
        assert len(got) == len(bits) and all(a == b for a, b in got)
        assert len({int(a.se) for a, _ in got}) > 5 and any(a.invalid for a, _ in got)


def run_split(dut: SplitPreprocessor, bits: np.ndarray) -> list[tuple[Any, Any]]:
    """(whole, split) preprocessed blocks of every row of ``bits``."""
    got: list[tuple[Any, Any]] = []

    async def bench(ctx: Any) -> None:
        for row in bits:
            ctx.set(dut.x, [int(v) for v in row])
            got.append((ctx.get(dut.whole), ctx.get(dut.split)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return got


class SplitPreprocessor(wiring.Component):
    """BlockPreprocessor and the split halves side by side on the same x."""

    def __init__(self, block: int) -> None:
        self.block = block
        super().__init__({"x": In(fp16_block(block).members["x"]),
                          "whole": Out(preprocessed_block(block)),
                          "split": Out(preprocessed_block(block))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.pre = pre = BlockPreprocessor(self.block)
        m.d.comb += [pre.i.payload.x.eq(self.x), self.whole.eq(pre.o.payload)]
        partial = Signal(partial_block(self.block))
        m.d.comb += Value.cast(partial).eq(preprocess_front(self.x, self.block))
        m.d.comb += self.split.eq(preprocess_back(m, partial))
        return m
