# amaranth: UnusedElaboratable=no
"""The MX activation quantizers (:class:`rtl.mx_quantizer.MXQuantizer`, MXFP4 and MXINT8)
against the golden model: ``amaranth.sim`` with random back-pressure on both streams, then the
generated Verilog on Verilator (cocotb, ``tb/cocotb_mx_quantizer.py``; one build holds both
kinds) and its lint.

Expected values come from :mod:`tb.mx_quantizer_ref` (golden ``quantize``); NaN/Inf blocks
give ``invalid`` 1, codes 0 and scale 0 (SPEC §8 [ours]).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from semdialect.designs import PEKind
from semdialect.golden.formats import E8M0_BIAS, e2m1_encode
from semdialect.paths import build_dir
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.layouts import fp16_block
from semdialect.rtl.mx_quantizer import (
    MX_QUANTIZER_LATENCY,
    MX_QUANTIZER_MAX_STAGES,
    MX_QUANTIZER_STAGES,
    MXQuantizer,
    MXRule,
    encoded_view,
    mx_quantized_block,
)
from semdialect.rtl.pe import BlockPE
from semdialect.tb.cocotb_mx_quantizer import MX_KINDS, MXQuantizerTestTop
from semdialect.tb.generate import LINT_WAIVERS
from semdialect.tb.mx_quantizer_ref import (
    MXVectors,
    element_sweep_vectors,
    mx_vectors,
    ref_mx,
)
from semdialect.tb.packing import LayoutCodec
from semdialect.tb.runner import FAST_BUILD_ARGS, CocotbFailure, run_cocotb
from semdialect.tb.verilator import lint

#: the OCP MX kinds (E8M0 scale; the test top's MX_KINDS must be these)
KINDS = tuple(pe for pe in PEKind if not pe.has_dialects and pe.pow2_scaled)
KIND_IDS = [pe.value for pe in KINDS]
STAGES = tuple(range(1, MX_QUANTIZER_MAX_STAGES + 1))
VERILOG_DIR = build_dir() / "verilog" / "mx_quantizer"
TEST_MODULE = "semdialect.tb.cocotb_mx_quantizer"


# -- amaranth.sim: stream helpers (Glasgow style) ---------------------------------------------


async def stream_put(ctx: Any, stream: Any, payload: int) -> None:
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload.as_value(), payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx: Any, stream: Any) -> int:
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload.as_value()).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def idle(ctx: Any, rng: random.Random, p_idle: float) -> None:
    """With probability ``p_idle``, stall a bursty number of cycles (1..8)."""
    if rng.random() < p_idle:
        await ctx.tick().repeat(rng.choice([1, 1, 1, 2, 2, 3, 5, 8]))


def stream_monitor(stream: Any, errors: list[str]):
    """Background testbench: once ``valid``, hold valid and payload until ``ready``."""

    async def monitor(ctx: Any) -> None:
        pending = None
        cycle = 0
        async for _, _, valid, ready, payload in ctx.tick().sample(
            stream.valid, stream.ready, stream.payload.as_value()
        ):
            if pending is not None and (not valid or payload != pending):
                errors.append(f"cycle {cycle}: valid={valid}, payload changed={payload != pending}")
            pending = payload if valid and not ready else None
            cycle += 1

    return monitor


def rtl_stream(dut: MXQuantizer, payloads: Sequence[int], *, p_idle: float, seed: int
               ) -> tuple[list[int], list[int], list[int]]:
    """Send ``payloads`` into ``dut.i``, collect as many from ``dut.o`` with random idle
    cycles on both sides: (outputs, input transfer cycles, output transfer cycles)."""
    outputs: list[int] = []
    put_at: list[int] = []
    got_at: list[int] = []
    errors: list[str] = []
    cycle = [0]
    limit = 20 * len(payloads) + 200

    async def clock_counter(ctx: Any) -> None:
        while True:
            await ctx.tick()
            cycle[0] += 1
            assert cycle[0] < limit, f"stuck: {len(put_at)} in, {len(outputs)} out"

    async def producer(ctx: Any) -> None:
        rng = random.Random(seed)
        for payload in payloads:
            await idle(ctx, rng, p_idle)
            await stream_put(ctx, dut.i, payload)
            put_at.append(cycle[0] - 1)

    async def consumer(ctx: Any) -> None:
        rng = random.Random(seed + 1)
        for _ in payloads:
            await idle(ctx, rng, p_idle)
            outputs.append(int(await stream_get(ctx, dut.o)))
            got_at.append(cycle[0] - 1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(clock_counter, background=True)
    sim.add_testbench(stream_monitor(dut.o, errors), background=True)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert not errors, errors[:5]
    return outputs, put_at, got_at


def check_against_golden(pe: PEKind, vs: MXVectors, *, p_idle: float, seed: int,
                         stages: int = MX_QUANTIZER_STAGES) -> tuple[list[int], list[int]]:
    dut = MXQuantizer(pe, stages=stages)
    packed = LayoutCodec(fp16_block(dut.block)).pack(len(vs), x=vs.bits)
    outs, put_at, got_at = rtl_stream(dut, packed, p_idle=p_idle, seed=seed)
    got = LayoutCodec(mx_quantized_block(dut.kind)).unpack(outs)
    want = ref_mx(vs.bits, pe)
    for name, g, w in (("codes", got["codes"], want.codes), ("scale", got["scale"], want.scale),
                       ("invalid", got["invalid"], want.invalid.astype(np.int64))):
        bad = np.flatnonzero((g != w).reshape(len(g), -1).any(axis=1))
        detail = "\n".join(f"#{k} ({vs.labels[k]}): got {g[k].tolist()} want {w[k].tolist()}"
                           for k in bad[:4])
        assert not len(bad), f"{pe.value} {name}: {len(bad)} of {len(g)} differ\n{detail}"
    return put_at, got_at


@functools.cache
def sim_vectors() -> MXVectors:
    """Every adversarial block plus a few random ones (pysim is slow on 512-bit blocks)."""
    return mx_vectors(120, seed=11)


def vectors_for(stages: int) -> MXVectors:
    """:func:`sim_vectors` for the default stage count; for the others (the same arithmetic,
    other register positions: what they can break is the stall and valid handling) the first
    block of every class, since pysim evaluates a one-stage quantizer at about 1 s a block."""
    vs = sim_vectors()
    if stages == MX_QUANTIZER_STAGES:
        return vs
    first: dict[str, int] = {}
    for k, label in enumerate(vs.labels):
        first.setdefault(label, k)
    return vs.take(sorted(first.values()))


# -- amaranth.sim tests --------------------------------------------------------------------------


@pytest.mark.parametrize("pe", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("stages", [s for s in STAGES if s > 1])
def test_sim_backpressure(pe: PEKind, stages: int) -> None:
    """Random + adversarial blocks with random idle cycles on input and output, at every
    register stage count that has a register besides the output one (the non-default ones on
    one block of each class, :func:`vectors_for`). One stage — the output register alone,
    loading with the same stall enable — is checked without stalls by
    :func:`test_sim_latency_and_interval` (pysim takes a minute to compile it)."""
    vs = vectors_for(stages)
    want = ref_mx(vs.bits, pe)
    if stages == MX_QUANTIZER_STAGES:
        assert want.invalid.sum() >= 8 and want.ties.sum() > 100 and want.saturated.sum() > 100
    else:
        assert len(set(vs.labels)) == len(set(sim_vectors().labels)) and want.invalid.any()
    check_against_golden(pe, vs, p_idle=0.4, seed=3 + stages, stages=stages)


@pytest.mark.parametrize("pe", KINDS, ids=KIND_IDS)
def test_sim_element_sweep_sample(pe: PEKind) -> None:
    """Every 8th block of the element sweep (all of it runs on Verilator)."""
    vs, _ = element_sweep_vectors(seed=4)
    check_against_golden(pe, vs.take(list(range(0, len(vs), 8))), p_idle=0.2, seed=5)


@pytest.mark.parametrize("pe", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("stages", STAGES)
def test_sim_latency_and_interval(pe: PEKind, stages: int) -> None:
    """Always valid and ready: a block every cycle, each out ``latency`` (= ``stages``)
    cycles after it went in."""
    latency = MXQuantizer(pe, stages=stages).latency
    assert latency == stages
    vs = mx_vectors(0, seed=5).take(list(range(16 if stages == MX_QUANTIZER_STAGES else 6)))
    put_at, got_at = check_against_golden(pe, vs, p_idle=0.0, seed=0, stages=stages)
    assert np.diff(put_at).tolist() == [1] * (len(vs) - 1)
    assert [g - p for p, g in zip(put_at, got_at, strict=True)] == [latency] * len(vs)


def _hand_blocks() -> np.ndarray:
    blocks = np.zeros((6, 32), np.uint16)
    blocks[0, :] = 0x8000  # all -0.0
    blocks[1, 0] = 0x7BFF  # 65504 among zeros
    blocks[2, 3] = 0x0001  # the smallest subnormal, alone
    blocks[3, :4] = np.array([4.0, 1.0, 0.5, -2.5], np.float16).view(np.uint16)  # amax 2^2
    blocks[4, :3] = np.array([64.0, 0.5, -1.5], np.float16).view(np.uint16)  # int8 ties
    blocks[5, 7] = 0x7E00  # NaN
    return blocks


@pytest.mark.parametrize("pe", KINDS, ids=KIND_IDS)
def test_sim_hand_checked(pe: PEKind) -> None:
    """Hand-computed blocks (independent of golden): −0, 65504, the smallest subnormal, a
    power-of-two amax with ties, NaN."""
    bits = _hand_blocks()
    dut = MXQuantizer(pe)
    packed = LayoutCodec(fp16_block(32)).pack(len(bits), x=bits)
    got = LayoutCodec(mx_quantized_block(dut.kind)).unpack(
        rtl_stream(dut, packed, p_idle=0.0, seed=0)[0])
    codes, scale = got["codes"], got["scale"]
    assert got["invalid"].tolist() == [0, 0, 0, 0, 0, 1]
    assert codes[5].tolist() == [0] * 32 and scale[5] == 0
    if pe is PEKind.MXFP4:
        # -0 keeps its sign; 65504 = 7.996 · 2^13 saturates to 6 (index 7); 2^-24 = 4 · 2^-26;
        # amax 4 = 2^2 gives e = 0: 4 → 4 (idx 6), 1 → idx 2, 0.5 → idx 1, -2.5 tie → -2
        assert codes[0].tolist() == [8] * 32 and scale[0] == 0
        assert (scale[1], codes[1, 0]) == (13 + E8M0_BIAS, 7)
        assert (scale[2], codes[2, 3]) == (-26 + E8M0_BIAS, 6)
        assert scale[3] == E8M0_BIAS and codes[3, :4].tolist() == [6, 2, 1, 8 | 4]
    else:
        # amax 65504 gives e = 15: 65504 · 2^-9 = 127.94 → 127 (clamp via RNE = 128);
        # 2^-24 → 64 at e = -24; 64 at e = 6: 0.5 → 0.5 → 0 (tie to even), -1.5 → -2
        assert codes[0].tolist() == [0] * 32 and scale[0] == 0
        assert (scale[1], codes[1, 0]) == (15 + E8M0_BIAS, 127)
        assert (scale[2], codes[2, 3]) == (-24 + E8M0_BIAS, 64)
        assert scale[3] == 2 + E8M0_BIAS and codes[3, :4].tolist() == [64, 16, 8, 0xD8]
        assert scale[4] == 6 + E8M0_BIAS and codes[4, :3].tolist() == [64, 0, 0xFE]
    want = ref_mx(bits, pe)
    assert codes.tolist() == want.codes.tolist() and scale.tolist() == want.scale.tolist()


# -- structure and parameters ------------------------------------------------------------------


@pytest.mark.parametrize("pe", KINDS, ids=KIND_IDS)
def test_output_is_the_pe_operand(pe: PEKind) -> None:
    """``codes``/``scale`` sit at the offsets of ``kind.encoded_layout`` (the BlockPE operand)
    and the quantizer's output wires straight into ``BlockPE(kind)``."""
    kind = ElementKind.for_design(pe)
    q = MXQuantizer(kind)
    out = mx_quantized_block(kind)
    for name, field in kind.encoded_layout:
        assert out[name].offset == field.offset and out[name].shape == field.shape
    assert out["invalid"].offset == kind.encoded_layout.size

    class Chain(wiring.Component):
        def __init__(self) -> None:
            super().__init__({})

        def elaborate(self, platform: object) -> Module:
            m = Module()
            m.submodules.q = q
            m.submodules.pe = pe_ = BlockPE(kind)
            m.d.comb += [pe_.i.payload.a.eq(encoded_view(kind, q.o.payload)),
                         pe_.i.payload.w.eq(encoded_view(kind, q.o.payload))]
            return m

    Fragment.get(Chain(), None)


def test_rules_from_the_kinds() -> None:
    """The element rules derived from the kinds: E2M1 (u 3, emax 2, the ROM = golden's
    ``e2m1_encode`` on every (t, sticky)) and int8 (u 6, emax 0)."""
    fp4 = MXRule.for_kind(ElementKind.for_design(PEKind.MXFP4))
    int8 = MXRule.for_kind(ElementKind.for_design(PEKind.MXINT8))
    assert (fp4.element_bits, fp4.unit, fp4.emax, fp4.window) == (4, 3, 2, 5)
    assert (int8.element_bits, int8.unit, int8.emax, int8.window, int8.grid) == (8, 6, 0, 8, None)
    table = fp4.grid_table()
    t = np.arange(32)
    assert table[0::2] == e2m1_encode(t / 4).tolist()  # exactly t quarter units of the scale
    assert table[1::2] == e2m1_encode((t + 0.5) / 4).tolist()  # strictly inside (t, t + 1)


@pytest.mark.parametrize("bad", [PEKind.DIALECT, "dialect", "sd32", "nope", True, 3, None,
                                 PEKind.NVFP4, "nvfp4"])
def test_parameters_are_validated(bad: Any) -> None:
    with pytest.raises(ValueError, match="^kind:"):
        MXQuantizer(bad)


@pytest.mark.parametrize("bad", [0, MX_QUANTIZER_MAX_STAGES + 1, -1, True, 2.0, None, "2"])
def test_stages_are_validated(bad: Any) -> None:
    with pytest.raises(ValueError, match="^stages:"):
        MXQuantizer(PEKind.MXFP4, stages=bad)


def test_accepts_kind_or_name() -> None:
    assert MX_QUANTIZER_LATENCY == MX_QUANTIZER_STAGES == 2  # the default: 250 MHz at 180 nm
    for pe in KINDS:
        for spec in (pe, pe.value, ElementKind.for_design(pe)):
            q = MXQuantizer(spec)
            assert q.kind.pe is pe and q.latency == q.stages == MX_QUANTIZER_LATENCY
            assert q.initiation_interval == 1 and q.block == 32
        for stages in STAGES:
            q = MXQuantizer(pe, stages=stages)
            assert q.stages == q.latency == stages and q.initiation_interval == 1


# -- Verilator -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pe", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("stages", [MX_QUANTIZER_STAGES])
def test_lint(pe: PEKind, stages: int) -> None:
    """The bare quantizer's Verilog is lint-clean under ``-Wall`` (Amaranth waivers only);
    the default stage count (the others move registers, not widths)."""
    name = f"mx_quantizer_{pe.value}" + ("" if stages == MX_QUANTIZER_STAGES else f"_s{stages}")
    made = cached_verilog(name, MXQuantizer, (pe,), {"stages": stages}, out_dir=VERILOG_DIR)
    assert made.copy is not None
    lint([made.copy], made.name, LINT_WAIVERS)


def _run(n_random: int, testcase: str | None = None, **env: str):
    made = cached_verilog("mx_quantizer_top", MXQuantizerTestTop, out_dir=VERILOG_DIR)
    assert made.copy is not None
    summary = VERILOG_DIR / f"summary-{env.get('MXQ_CORRUPT', '0')}.json"
    summary.unlink(missing_ok=True)
    run = run_cocotb([made.copy], made.name, TEST_MODULE, build_args=FAST_BUILD_ARGS,
                     extra_env={"MXQ_RANDOM": str(n_random), "MXQ_SUMMARY": str(summary), **env},
                     testcase=testcase)
    return run, json.loads(summary.read_text()) if summary.is_file() else {}


def test_verilator() -> None:
    """Both kinds on Verilator: random + adversarial blocks with random back-pressure
    (NaN/Inf → invalid included), the element sweep and the latency/throughput check,
    bit-exact with golden."""
    assert MX_KINDS == KINDS
    run, summary = _run(2000)
    assert run.tests == 3
    tests = summary["tests"]
    sweep = tests["test_element_sweep"]
    assert sweep["element_pairs"] == 2 * (17 * 1024 + 1024) + 2 * (2**11 - 2)
    rnd = tests["test_random_backpressure"]
    for pe in KINDS:
        info = rnd[pe.value]
        assert info["blocks"] >= 2000 and info["invalid_blocks"] >= 8
        assert info["ties"] > 100 and info["saturated"] > 100
        assert sweep[pe.value]["blocks"] == sum(sweep["classes"].values()) > 1000
        timing = tests["test_latency_throughput"][pe.value]
        assert timing["latency"] == [MX_QUANTIZER_LATENCY] and timing["gaps"] == [1]
    print(f"\nbuild {run.build_seconds:.1f}s (cached={not run.built}) test "
          f"{run.test_seconds:.1f}s\n  {json.dumps(rnd, sort_keys=True)}\n  "
          f"{json.dumps(sweep, sort_keys=True)}")


def test_verilator_catches_corruption() -> None:
    """A deliberately wrong expected code must surface as a failing cocotb test."""
    with pytest.raises(CocotbFailure, match="test_random_backpressure"):
        _run(20, "test_random_backpressure", MXQ_CORRUPT="1")
