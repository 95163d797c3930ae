# amaranth: UnusedElaboratable=no
"""The NVFP4 hardware pieces (SPEC §8 NVFP4 hardware contract): :mod:`rtl.scale`
(block contribution, FP32 multiplier) and :class:`rtl.nvfp4_quantizer.NVFP4Quantizer` in
``amaranth.sim``, and the quantizer's Verilog on Verilator (cocotb ``tb/cocotb_nvfp4.py``).

Expected values: golden (``golden.formats.NVFP4``, ``golden.gemm.nvfp4_hw_contributions``) and
NumPy float32 arithmetic (IEEE RNE), via :mod:`tb.nvfp4_ref`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, Signal, signed
from amaranth.sim import Simulator

from semdialect.golden.formats import E2M1_HU
from semdialect.paths import build_dir
from semdialect.rtl.block_decoder import BlockDecoder, ElementKind
from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.layouts import nvfp4_block
from semdialect.rtl.nvfp4_quantizer import (
    NVFP4_CUTS,
    NVFP4_MAX_STAGES,
    NVFP4_STAGES,
    NVFP4Quantizer,
    nvfp4_quantized_block,
)
from semdialect.rtl.scale import FP32Mul, fp32_mul, nvfp4_contribution
from semdialect.tb.generate import LINT_WAIVERS
from semdialect.tb.nvfp4_ref import (
    adversarial_blocks,
    contribution_via_golden,
    f32_bits,
    fp16_bits,
    fp32_mul_vectors,
    inject_nonfinite,
    nonfinite_mask,
    random_tensor_blocks,
    ref_contribution,
    ref_fp32_mul,
    ref_quantize_hw,
    tensor_scales,
)
from semdialect.tb.runner import FAST_BUILD_ARGS, CocotbFailure, run_cocotb
from semdialect.tb.streams import OutputMonitor
from semdialect.tb.verilator import lint

# -- block contribution -------------------------------------------------------------------------


def rtl_contributions(p: np.ndarray, sa: np.ndarray, sw: np.ndarray) -> np.ndarray:
    """``nvfp4_contribution`` on a 13-bit signed P, evaluated combinationally (one input
    signal holding P, the two bytes: one settle per vector)."""
    m = Module()
    inp = Signal(13 + 8 + 8)
    out = Signal(32)
    m.d.comb += out.eq(nvfp4_contribution(m, inp[:13].as_signed(), inp[13:21], inp[21:]))
    got: list[int] = []

    async def bench(ctx) -> None:
        for pv, av, wv in zip(p.tolist(), sa.tolist(), sw.tolist(), strict=True):
            ctx.set(inp, (pv & 0x1FFF) | av << 13 | wv << 21)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, np.uint32)


def test_contribution_every_scale_pair_and_every_p() -> None:
    """Every unordered pair of E4M3 bytes 0..0x7E (subnormal scales and 0 included; the
    contribution is symmetric in the two scales, and a random tenth of the swapped pairs is
    run too) with a random P, every P in [-2304, 2304] under the largest scales and extreme
    P under the smallest: exact, as golden's float32 product."""
    rng = np.random.default_rng(4)
    sa, sw = (g.reshape(-1) for g in np.meshgrid(np.arange(0x7F), np.arange(0x7F)))
    keep = (sa <= sw) | (rng.random(sa.size) < 0.1)
    sa, sw = sa[keep], sw[keep]
    p = rng.integers(-2304, 2305, sa.size)
    p[:: 7] = np.resize([2304, -2304, 1, -1, 0], p[:: 7].size)
    small = np.concatenate([[2304, -2304, 1, -1, 0, 2303, -2047, 2048],
                            rng.integers(-2304, 2305, 400)])
    for ps, a, w in ((np.arange(-2304, 2305), 0x7E, 0x7E), (small, 0x01, 0x01)):
        p = np.concatenate([p, ps])
        sa = np.concatenate([sa, np.full(ps.size, a)])
        sw = np.concatenate([sw, np.full(ps.size, w)])
    got = rtl_contributions(p, sa, sw)
    want = ref_contribution(p, sa, sw)
    bad = np.flatnonzero(got != want)
    assert not bad.size, [(int(p[k]), int(sa[k]), int(sw[k]), hex(got[k]), hex(want[k]))
                          for k in bad[:8]]
    exp = (got >> 23) & 0xFF
    assert exp[got != 0].min() >= 107 and exp.max() <= 153  # always normal (SPEC §8)


def test_contribution_equals_golden_block_product() -> None:
    """Decoded E2M1 blocks through BlockDecoder(ElementKind.nvfp4()) → P → contribution, against
    ``golden.gemm.nvfp4_hw_contributions`` on the same codes and scale bytes."""
    kind = ElementKind.nvfp4()
    assert (kind.block, kind.element_bits, kind.product_bits, kind.exp_bits) == (16, 5, 13, 8)
    assert kind.float_scaled and not ElementKind.for_design("mxfp4").float_scaled
    rng = np.random.default_rng(9)
    n = 150
    codes = rng.integers(0, 16, (n, 2, 16))
    codes[0] = 7  # 6·6·16 = max |P|
    codes[1, 0] = 15
    scales = rng.integers(0, 0x7F, (n, 2))
    m = Module()
    m.submodules.da = da = BlockDecoder(kind)
    m.submodules.dw = dw = BlockDecoder(kind)
    p = Signal(signed(kind.product_bits))
    m.d.comb += p.eq(sum(da.o.elems[i] * dw.o.elems[i] for i in range(16)))
    out = Signal(32)
    m.d.comb += out.eq(nvfp4_contribution(m, p, da.o.exp, dw.o.exp))
    got: list[int] = []

    async def bench(ctx) -> None:
        for k in range(n):
            ctx.set(da.i, {"codes": codes[k, 0].tolist(), "scale": int(scales[k, 0])})
            ctx.set(dw.i, {"codes": codes[k, 1].tolist(), "scale": int(scales[k, 1])})
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = [contribution_via_golden(codes[k, 0], scales[k, 0], codes[k, 1], scales[k, 1])
            for k in range(n)]
    assert got == want
    hu = E2M1_HU.astype(int)
    assert int(np.sum(hu[codes[0, 0] & 7] * hu[codes[0, 1] & 7])) == 2304


# -- FP32 multiplier ----------------------------------------------------------------------------

MUL_VECTORS = fp32_mul_vectors(400, seed=3)


def test_fp32_mul_matches_numpy() -> None:
    m = Module()
    inp, out = Signal(64), Signal(32)  # one input: one settle per vector
    m.d.comb += out.eq(fp32_mul(m, inp[:32], inp[32:]))
    pairs = np.concatenate(list(MUL_VECTORS.values()))
    got: list[int] = []

    async def bench(ctx) -> None:
        for x, y in pairs.tolist():
            ctx.set(inp, x | y << 32)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = ref_fp32_mul(pairs[:, 0], pairs[:, 1])
    bad = np.flatnonzero(np.array(got, np.uint32) != want)
    assert not bad.size, [(hex(pairs[k, 0]), hex(pairs[k, 1]), hex(got[k]), hex(want[k]))
                          for k in bad[:8]]
    # the classes really are what they claim
    ties = MUL_VECTORS["ties"]
    assert len(ties) == 400
    zero = MUL_VECTORS["zeros"]
    assert (ref_fp32_mul(zero[:, 0], zero[:, 1]) & 0x7FFF_FFFF == 0).all()


@pytest.mark.parametrize("latency", [0, 1, 2, 3, 6])
def test_fp32_mul_stream_backpressure(latency: int) -> None:
    dut = FP32Mul(latency=latency)
    pairs = MUL_VECTORS["drain"][:120]
    want = ref_fp32_mul(pairs[:, 0], pairs[:, 1]).tolist()
    got: list[int] = []
    rng = np.random.default_rng(latency)

    async def driver(ctx) -> None:
        for x, y in pairs.tolist():
            ctx.set(dut.i.payload, {"a": x, "b": y})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            if rng.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx) -> None:
        mon = OutputMonitor("o")
        cycle = 0
        while len(got) < len(want):
            ready = bool(rng.random() < 0.6)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if mon.transferred(cycle, payload if valid else None, ready):
                got.append(payload)
            cycle += 1

    top = Module()
    top.domains.sync = ClockDomain()  # latency 0 has no registers of its own
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    assert got == want
    assert dut.latency == latency


# -- NVFP4 quantizer (amaranth.sim) -------------------------------------------------------------


def rtl_quantize(dut: NVFP4Quantizer, tensors: list[tuple[np.ndarray, tuple]], seed: int,
                 p_valid: float = 0.7, p_ready: float = 0.6) -> tuple[list, list, list]:
    """Blocks of each tensor through ``dut`` (ts/inv_ts changed between tensors, when empty),
    random valid/ready, one testbench step per cycle: drive, settle, sample, tick. Returns
    (outputs, accept cycles, emit cycles)."""
    rng = np.random.default_rng(seed)
    got: list[tuple[list[int], int]] = []
    accepted: list[int] = []
    emitted: list[int] = []

    async def bench(ctx) -> None:
        mon = OutputMonitor("o")
        cycle = 0
        done = 0
        for blocks, (ts, inv) in tensors:
            ctx.set(dut.ts, f32_bits(ts))  # the quantizer is empty here
            ctx.set(dut.inv_ts, f32_bits(inv))
            words = fp16_bits(blocks)
            sent = 0
            holding = False
            done += len(blocks)
            while len(got) < done:
                if not holding and sent < len(words) and rng.random() < p_valid:
                    ctx.set(dut.i.payload, {"x": words[sent]})
                    holding = True
                ctx.set(dut.i.valid, holding)
                ready = bool(rng.random() < p_ready)
                ctx.set(dut.o.ready, ready)
                if holding and ctx.get(dut.i.ready):
                    accepted.append(cycle)
                    sent += 1
                    holding = False
                payload = ctx.get(dut.o.payload) if ctx.get(dut.o.valid) else None
                if mon.transferred(cycle, payload, ready):
                    got.append(([int(c) for c in payload.codes], int(payload.scale),
                                int(payload.invalid)))
                    emitted.append(cycle)
                await ctx.tick()
                cycle += 1
                assert cycle < 100 * done + 100, "stuck"
            ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, accepted, emitted


def expected(tensors: list[tuple[np.ndarray, tuple]]) -> list[tuple[list[int], int, int]]:
    """(codes, scale, invalid) per block: golden for finite blocks, (0, 0, 1) for NaN/±Inf."""
    out = []
    for blocks, (ts, _) in tensors:
        codes, scales, invalid = ref_quantize_hw(blocks, ts)
        out += [(c.tolist(), int(s), int(v))
                for c, s, v in zip(codes, scales, invalid, strict=True)]
    return out


def test_quantizer_adversarial_and_random_blocks() -> None:
    rng = np.random.default_rng(21)
    adv = adversarial_blocks()
    tiny = (rng.integers(-1023, 1024, (6, 16)) * 2.0**-24).astype(np.float16)
    zero = np.zeros((3, 16), np.float16)
    zero[1] = -0.0
    tensors = [
        (adv, tensor_scales(np.float16([65504]))),
        (random_tensor_blocks(rng, 20), None),
        (tiny, None),
        (zero, None),
    ]
    tensors = [(b, ts if ts is not None else tensor_scales(b)) for b, ts in tensors]
    assert tensors[3][1][0] == 0  # all-zero tensor: ts = 0
    got, _, _ = rtl_quantize(NVFP4Quantizer(), tensors, seed=5)
    want = expected(tensors)
    blocks = np.concatenate([b for b, _ in tensors])
    bad = [(k, blocks[k].tolist(), g, w) for k, (g, w) in enumerate(zip(got, want, strict=True))
           if g != w]
    assert not bad, bad[:4]
    # the vectors cover what they claim: E4M3 scale ties, the clamp, codes 8 (-0), 7 and 15
    scales = {w[1] for w in want}
    assert {0x08, 0x7E, 0} <= scales and len(scales) > 30
    codes = {c for w in want for c in w[0]}
    assert {0, 7, 8, 15} <= codes
    assert not any(w[2] for w in want)


def nonfinite_sequence(rng: np.random.Generator) -> np.ndarray:
    """Finite blocks of very different magnitudes interleaved with blocks holding +Inf, −Inf
    or a NaN in every lane position (one kind per block, lane k of the k-th block of each
    kind), runs of invalid blocks, and blocks with several non-finite lanes."""
    finite = random_tensor_blocks(rng, 40)
    finite[::5] = (finite[::5].astype(np.float32) * 2.0**-20).astype(np.float16)
    rows = []
    bad = iter([(kind, lane) for lane in range(16)
                for kind in (np.inf, -np.inf, np.nan)])
    for k in range(len(finite)):
        rows.append(finite[k])
        if k % 5 != 4:  # one invalid block after most finite ones; sometimes two in a row
            for _ in range(1 + (k % 2 == 0)):
                kind, lane = next(bad, (np.nan, int(rng.integers(16))))
                row = finite[(k * 7) % len(finite)].copy()
                row[lane] = kind
                rows.append(row)
    blocks = np.array(rows, np.float16)
    return np.concatenate([blocks, inject_nonfinite(rng, random_tensor_blocks(rng, 8), 0.5)])


def test_quantizer_nonfinite_blocks() -> None:
    """NaN, +Inf and −Inf in every lane (golden raises; SPEC §2): ``invalid`` 1, codes 0 and
    scale 0; the finite blocks around them (tensor scale of the finite blocks) stay bit-exact
    under random back-pressure; NaN/Inf blocks in an all-zero tensor (ts = 0) too."""
    rng = np.random.default_rng(33)
    blocks = nonfinite_sequence(rng)
    mask = nonfinite_mask(blocks)
    zmix = np.zeros((6, 16), np.float16)
    zmix[2, 0], zmix[3, 15] = np.float16(np.nan), np.float16(-np.inf)
    tensors = [(b, tensor_scales(b[~nonfinite_mask(b)])) for b in (blocks, zmix)]
    assert tensors[1][1][0] == 0
    got, _, _ = rtl_quantize(NVFP4Quantizer(), tensors, seed=8)
    want = expected(tensors)
    all_blocks = np.concatenate([blocks, zmix])
    bad = [(k, all_blocks[k].tolist(), g, w)
           for k, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, bad[:4]
    # every lane saw +Inf, −Inf and NaN; invalid blocks are (0, 0, 1); neighbours are real
    bits = blocks.view(np.uint16)
    for pattern in (0x7C00, 0xFC00):
        assert set(np.nonzero(bits == pattern)[1]) == set(range(16))
    assert set(np.nonzero(np.isnan(blocks))[1]) == set(range(16))
    assert mask.sum() >= 48 and (~mask).sum() >= 40
    assert all(w == ([0] * 16, 0, 1) for w, v in zip(want, mask, strict=False) if v)
    assert len({w[1] for w, v in zip(want, mask, strict=False) if not v}) >= 8


def test_quantizer_output_layout() -> None:
    """``o``: ``codes`` and ``scale`` at the offsets of ``nvfp4_block(16)``, then
    ``invalid``."""
    layout = nvfp4_quantized_block()
    base = nvfp4_block(16)
    assert NVFP4Quantizer().signature.members["o"].signature.members["payload"].shape == layout
    for name in ("codes", "scale"):
        assert layout[name].offset == base[name].offset
        assert layout[name].shape == base[name].shape
    assert layout["invalid"].offset == base.size and layout.size == base.size + 1


# -- NVFP4 quantizer register stages (amaranth.sim): every stage count bit-exact, at 4 and 7
# under random back-pressure, the tensor scale changing right before a tensor's first block
# (the tensor unit's free-running registers must be ready when a block uses them)


def mixed_tensors(rng: np.random.Generator) -> list[tuple[np.ndarray, tuple]]:
    """Tensors with very different scales one after another: the adversarial blocks (E4M3
    and E2M1 ties, clamps, subnormals), random ones, tiny subnormal blocks, NaN/Inf among
    finite blocks, an all-zero tensor (ts = 0), then random blocks again."""
    adv = adversarial_blocks()
    tiny = (rng.integers(-1023, 1024, (5, 16)) * 2.0**-24).astype(np.float16)
    mixed = inject_nonfinite(rng, random_tensor_blocks(rng, 10), 0.4)
    zero = np.zeros((3, 16), np.float16)
    zero[1] = -0.0
    out = [(adv, tensor_scales(np.float16([65504])))]
    for blocks in (random_tensor_blocks(rng, 12), tiny):
        out.append((blocks, tensor_scales(blocks)))
    out.append((mixed, tensor_scales(mixed[~nonfinite_mask(mixed)])))
    out.append((zero, tensor_scales(zero)))
    late = (random_tensor_blocks(rng, 8).astype(np.float32) * 2.0**-9).astype(np.float16)
    out.append((late, tensor_scales(late)))
    return out


@pytest.mark.parametrize("stages", [4, NVFP4_STAGES])
def test_quantizer_stages_under_backpressure(stages: int) -> None:
    """At 4 and 7 stages (the one- to three-stage quantizers, which pysim evaluates at about
    1 s a block, are checked without stalls by the latency test below)."""
    tensors = mixed_tensors(np.random.default_rng(40 + stages))
    assert tensors[4][1][0] == 0 and len({t[1][0] for t in tensors}) == len(tensors)
    got, _, _ = rtl_quantize(NVFP4Quantizer(stages=stages), tensors, seed=stages,
                             p_valid=0.8, p_ready=0.6)
    want = expected(tensors)
    blocks = np.concatenate([b for b, _ in tensors])
    bad = [(k, blocks[k].tolist(), g, w) for k, (g, w) in enumerate(zip(got, want, strict=True))
           if g != w]
    assert not bad, bad[:4]
    assert sum(w[2] for w in want) >= 3 and len({w[1] for w in want}) > 30


@pytest.mark.parametrize("stages", range(1, NVFP4_MAX_STAGES + 1))
def test_quantizer_stages_latency_and_interval(stages: int) -> None:
    """No stalls: a block every cycle, each ``stages`` cycles after its transfer, also for
    the first block after a tensor-scale change."""
    dut = NVFP4Quantizer(stages=stages)
    assert (dut.stages, dut.latency, dut.cycles_per_block) == (stages, stages, 1)
    assert len(dut.cuts) == stages - 1 and set(dut.cuts) <= set(NVFP4_CUTS)
    rng = np.random.default_rng(stages)
    tensors = []
    for scale in (1.0, 2.0**-10):
        blocks = (random_tensor_blocks(rng, 4).astype(np.float32) * scale).astype(np.float16)
        tensors.append((blocks, tensor_scales(blocks)))
    got, accepted, emitted = rtl_quantize(dut, tensors, seed=0, p_valid=1.0,
                                           p_ready=1.0)
    assert got == expected(tensors)
    assert [b - a for a, b in zip(accepted, accepted[1:], strict=False)][:3] == [1] * 3
    assert {e - a for a, e in zip(accepted, emitted, strict=True)} == {stages}


def test_quantizer_default_stages_and_validation() -> None:
    dut = NVFP4Quantizer()
    assert dut.stages == dut.latency == NVFP4_STAGES == NVFP4_MAX_STAGES == 7
    assert dut.cuts == NVFP4_CUTS and dut.cycles_per_block == 1
    for bad in (0, NVFP4_MAX_STAGES + 1, -1, True, 2.0, None, "7"):
        with pytest.raises(ValueError, match="^stages:"):
            NVFP4Quantizer(stages=bad)


# -- NVFP4 quantizer (Verilator) ----------------------------------------------------------------

VERILOG_DIR = build_dir() / "verilog" / "nvfp4"
TEST_MODULE = "semdialect.tb.cocotb_nvfp4"


def quantizer_verilog(stages: int = NVFP4_STAGES):
    made = cached_verilog(f"nvfp4_quantizer_s{stages}", NVFP4Quantizer,
                          kwargs={"stages": stages}, out_dir=VERILOG_DIR)
    assert made.copy is not None
    return made.copy


def run_nvfp4(n_random: int, testcase: str | None = None, **env: str):
    top = quantizer_verilog()
    summary = VERILOG_DIR / f"summary-{top.stem}.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.unlink(missing_ok=True)
    extra = {"NVFP4_RANDOM": str(n_random), "NVFP4_SUMMARY": str(summary), **env}
    run = run_cocotb([top], top.stem, TEST_MODULE, extra_env=extra, build_args=FAST_BUILD_ARGS,
                     testcase=testcase)
    return run, json.loads(summary.read_text())


def test_quantizer_verilator_bit_exact() -> None:
    run, summary = run_nvfp4(600)
    assert run.tests == 2
    tests = summary["tests"]
    rnd = tests["test_random_backpressure"]
    assert sum(t["blocks"] for t in rnd.values()) >= 1800
    assert rnd["all_zero"]["ts"] == 0.0
    assert rnd["max_fp16_adversarial"]["distinct_scales"] > 60
    assert rnd["nonfinite_mixed"]["invalid_blocks"] >= 20
    assert rnd["nonfinite_all_zero"]["invalid_blocks"] == 2
    assert sum(info["invalid_blocks"] for info in rnd.values()) == (
        rnd["nonfinite_mixed"]["invalid_blocks"] + 2)
    assert tests["test_latency_throughput"]["gaps"] == [summary["cycles_per_block"]] == [1]
    assert tests["test_latency_throughput"]["latency"] == [summary["latency"]] == [NVFP4_STAGES]
    print(f"\nNVFP4 quantizer on Verilator: build {run.build_seconds:.1f}s (cached="
          f"{not run.built}), test {run.test_seconds:.1f}s; " + ", ".join(
              f"{name}: {info['blocks']} blocks" for name, info in rnd.items()))


def test_quantizer_verilator_catches_corruption() -> None:
    with pytest.raises(CocotbFailure, match="test_random_backpressure"):
        run_nvfp4(20, "test_random_backpressure", NVFP4_CORRUPT="1")


def test_quantizer_lint() -> None:
    """The generated quantizer is clean under ``verilator --lint-only -Wall`` with only the
    Amaranth-structural waivers (``tb.generate.LINT_WAIVERS``): no width warnings."""
    assert not any(w.rule.startswith(("WIDTH", "CASE", "LATCH")) for w in LINT_WAIVERS)
    top = quantizer_verilog()
    lint([top], top.stem, LINT_WAIVERS)
