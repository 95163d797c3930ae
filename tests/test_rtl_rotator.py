# amaranth: UnusedElaboratable=no
"""The block rotator (:class:`rtl.rotator.BlockRotator`, SPEC §11) against the golden model:
``amaranth.sim`` with random back-pressure on both streams at B = 16 / 32 / 64 and both roles,
the rotator in front of the :class:`~rtl.block_quantizer.BlockQuantizer` (the chain equals
golden ``quantize`` of the rotated blocks), then the generated Verilog on Verilator (cocotb,
``tb/cocotb_rotator.py``, B = 32, both roles in one build) and its lint. Also: the run-time
role form the GEMM core uses (role per block, side bits, bypass), the GEMM core's rotator
lanes (its bit-exact runs are ``tests/test_rtl_gemm_rotate.py``), ``rtl-quantize`` refusing a
rotating configuration, and the area plan's rotator row.

Expected values come from :mod:`tb.rotator_ref` (golden :meth:`Rotation.forward`); a block
with NaN/±Inf or an FP16 overflow leaves as 0x7E00 in every lane (SPEC §11 [ours]).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from semdialect.config import Config
from semdialect.golden.quantize import quantize
from semdialect.golden.rotation import ROLES, Rotation
from semdialect.paths import build_dir
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.gemm_core import GemmCore
from semdialect.rtl.layouts import fp16_block, quantized_block
from semdialect.rtl.rotator import (
    CANONICAL_NAN,
    ROTATOR_MAX_STAGES,
    ROTATOR_STAGES,
    BlockRotator,
    fixed_width,
    rotator_input,
    rotator_output,
)
from semdialect.tb.cocotb_rotator import TOP_BLOCK, TOP_ROTATION, RotatorTestTop
from semdialect.tb.generate import LINT_WAIVERS
from semdialect.tb.mx_quantizer_ref import MXVectors
from semdialect.tb.packing import LayoutCodec
from semdialect.tb.rotator_ref import INVALID_LANE, ref_rotated, rotator_vectors
from semdialect.tb.runner import FAST_BUILD_ARGS, CocotbFailure, run_cocotb
from semdialect.tb.streams import OutputMonitor
from semdialect.tb.verilator import lint

# blocks whose rotation flushes to zero are part of the chain's vectors
pytestmark = pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")

BLOCKS = (16, 32, 64)
VERILOG_DIR = build_dir() / "verilog" / "rotator"
TEST_MODULE = "semdialect.tb.cocotb_rotator"
SEED = 0xC0FFEE  # the rotation seed of the amaranth.sim tests


# -- amaranth.sim ------------------------------------------------------------------------------


def rtl_stream(dut: wiring.Component, payloads: Sequence[int], *, p_idle: float, seed: int
               ) -> tuple[list[int], list[int], list[int]]:
    """Send ``payloads`` into ``dut.i``, collect as many from ``dut.o``, with random idle
    cycles on both sides (probability ``p_idle`` each). Returns (outputs, clock edge of each
    input transfer, clock edge of each output transfer); ``o``'s stream rules are checked at
    every edge (:class:`tb.streams.OutputMonitor`)."""
    outputs: list[int] = []
    put_at: list[int] = []
    got_at: list[int] = []
    monitor = OutputMonitor("o")
    limit = 20 * len(payloads) + 200  # a lost or stuck transfer must fail, not hang

    async def producer(ctx: Any) -> None:
        rng = random.Random(seed)
        for payload in payloads:
            if rng.random() < p_idle:
                await ctx.tick().repeat(rng.choice([1, 1, 2, 3, 5, 8]))
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.as_value(), payload)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx: Any) -> None:
        rng = random.Random(seed + 1)
        ctx.set(dut.o.ready, rng.random() >= p_idle)
        edge = 0
        async for _, _, i_valid, i_ready, o_valid, o_ready, payload in ctx.tick().sample(
            dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload.as_value()
        ):
            if i_valid and i_ready:
                put_at.append(edge)
            if monitor.transferred(edge, int(payload) if o_valid else None, bool(o_ready)):
                outputs.append(int(payload))
                got_at.append(edge)
            if len(outputs) == len(payloads):
                return
            assert edge < limit, f"stuck after {edge} cycles: {len(put_at)} in, {len(outputs)} out"
            ctx.set(dut.o.ready, rng.random() >= p_idle)
            edge += 1

    top = Module()  # a clock domain also for a combinational (stages = 0) rotator
    top.submodules.dut = dut
    toggle = Signal()
    top.d.sync += toggle.eq(~toggle)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert len(put_at) == len(payloads)
    return outputs, put_at, got_at


def rtl_rotate(dut: BlockRotator, bits: np.ndarray, *, p_idle: float, seed: int
               ) -> tuple[np.ndarray, list[int], list[int]]:
    codec = LayoutCodec(fp16_block(dut.block))
    outs, put_at, got_at = rtl_stream(dut, codec.pack(len(bits), x=bits), p_idle=p_idle,
                                      seed=seed)
    return codec.unpack(outs)["x"], put_at, got_at


def assert_blocks(got: np.ndarray, want: np.ndarray, labels: Sequence[str]) -> None:
    bad = np.flatnonzero((got != want).any(axis=1))
    detail = "\n".join(f"#{k} ({labels[k]}): got {[hex(v) for v in got[k]]} want "
                       f"{[hex(v) for v in want[k]]}" for k in bad[:3])
    assert not len(bad), f"{len(bad)} of {len(got)} blocks differ\n{detail}"


@functools.cache
def sim_vectors(block: int, role: str) -> MXVectors:
    return rotator_vectors(Rotation(block, SEED), role, 60, seed=block + len(role))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("block", BLOCKS)
def test_sim_backpressure(block: int, role: str) -> None:
    """Random + adversarial blocks through the default-stage rotator with random idle cycles
    on input and output: every lane equals golden ``Rotation.forward`` (NaN rule included),
    and the vectors cover ties, subnormal results, −0 results, overflow and NaN/±Inf."""
    rot = Rotation(block, SEED)
    vs = sim_vectors(block, role)
    want = ref_rotated(vs.bits, rot, role)
    assert want.ties.sum() > 8 * block and want.subnormal.sum() > 2 * block
    assert want.negative_zero.sum() > 0 and want.overflow.sum() >= 5
    assert want.nan_inf.sum() >= 8 and (want.bits == INVALID_LANE).all(axis=1).sum() == (
        want.invalid.sum())
    got, _, _ = rtl_rotate(BlockRotator(block, rot, role), vs.bits, p_idle=0.4,
                           seed=block + 3)
    assert_blocks(got, want.bits, vs.labels)


@pytest.mark.parametrize("stages", range(ROTATOR_MAX_STAGES + 1))
def test_sim_stages_latency_and_interval(stages: int) -> None:
    """Every stage count (B = 16): always valid and ready, a block every cycle, each out
    ``stages`` cycles after it went in; then with back-pressure; bit-exact both times."""
    rot = Rotation(16, SEED)
    dut = BlockRotator(16, rot, "activation", stages=stages)
    assert dut.latency == stages and dut.initiation_interval == 1
    vs = sim_vectors(16, "activation")
    first = sorted({label: k for k, label in enumerate(vs.labels)}.values())  # every class
    bits = vs.bits[first + list(range(12))]
    labels = [vs.labels[k] for k in first + list(range(12))]
    want = ref_rotated(bits, rot, "activation").bits
    got, put_at, got_at = rtl_rotate(dut, bits, p_idle=0.0, seed=0)
    assert_blocks(got, want, labels)
    assert np.diff(put_at).tolist() == [1] * (len(bits) - 1)
    assert [g - p for p, g in zip(put_at, got_at, strict=True)] == [stages] * len(bits)
    got, _, _ = rtl_rotate(BlockRotator(16, rot, "activation", stages=stages), bits,
                           p_idle=0.5, seed=stages)
    assert_blocks(got, want, labels)


def test_sim_hand_checked() -> None:
    """Blocks computed by hand (independent of golden's arithmetic). SplitMix64 with seed 0
    starts 0xE220A8397B1DCDAF (bit 63 set: s_0 = −1) and 0x6E789E6AA1B965F4 (s_1 = +1); B = 16,
    activation role: c = 2."""
    rot = Rotation(16, 0)
    blocks = np.zeros((6, 16), np.uint16)
    blocks[0, 0] = 0x3C00  # x_0 = 1: y_i = s_0 · H[0, i] / 4 = −0.25 everywhere
    blocks[1, 1] = 0x3C00  # x_1 = 1: y_i = +(−1)^(i & 1) / 4
    blocks[2, :] = 0x8000  # −0 everywhere: +0 out
    blocks[3, 0] = 0x0002  # y_i = −2·2^-24 / 4: a tie between −2^-24 and 0, to even: +0
    blocks[4, :2] = [0x0002, 0x0006]  # y_i = (−2 + 6·(−1)^i)·2^-24 / 4: +2^-24 or −2^-23
    blocks[5, 0] = 0x7C00  # +Inf: NaN block
    got, _, _ = rtl_rotate(BlockRotator(16, rot, "activation"), blocks, p_idle=0.0, seed=0)
    quarter = np.float16(0.25).view(np.uint16)
    assert (got[0] == (quarter | 0x8000)).all()
    assert got[1].tolist() == [quarter if i % 2 == 0 else quarter | 0x8000 for i in range(16)]
    assert (got[2] == 0).all() and (got[3] == 0).all()
    assert got[4].tolist() == [0x0001 if i % 2 == 0 else 0x8002 for i in range(16)]
    assert (got[5] == 0x7E00).all()
    assert got.tolist() == ref_rotated(blocks, rot, "activation").bits.tolist()


# -- the rotator in front of the BlockQuantizer ------------------------------------------------


class RotatedFrontend(wiring.Component):
    """``BlockRotator`` → ``BlockQuantizer`` (all candidate dialects): FP16 blocks in,
    quantized blocks out."""

    def __init__(self, cfg: Config) -> None:
        rotation = cfg.rotation()
        assert rotation is not None
        self.rotator = BlockRotator(cfg.block, rotation, "activation")
        self.quantizer = BlockQuantizer.from_config(cfg)
        super().__init__({
            "i": In(stream.Signature(fp16_block(cfg.block))),
            "o": Out(stream.Signature(quantized_block(cfg.block, cfg.book().size))),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.rotator = r = self.rotator
        m.submodules.quantizer = q = self.quantizer
        wiring.connect(m, wiring.flipped(self.i), r.i)
        wiring.connect(m, q.o, wiring.flipped(self.o))
        m.d.comb += [
            q.i.valid.eq(r.o.valid),
            r.o.ready.eq(q.i.ready),
            q.i.payload.x.eq(r.o.payload.x),
            q.i.payload.mask.eq(-1),  # the whole formatbook
        ]
        return m


@pytest.mark.parametrize("config", ["sd32_b32", "dfp4_b16_on_4x4"])
def test_sim_chain_equals_golden_quantize(config: str) -> None:
    """Codes, SE and dialect of rotator → quantizer equal golden ``quantize`` of the golden
    rotated blocks, bit for bit; a NaN/Inf or overflowing block comes out ``invalid`` with
    codes 0, SE field 0, dialect 0 (the quantizer's SPEC §2 rule on the canonical NaN)."""
    base = Config(rotate="hadamard", rotate_seed=77)
    cfg = base if config == "sd32_b32" else replace(base, formatbook="dfp4", block=16,
                                                   formats_per_cycle=4).on_array(4, 4)
    rot = cfg.rotation()
    assert rot is not None and rot.block == cfg.block
    vs = rotator_vectors(rot, "activation", 24, seed=5)
    rotated = ref_rotated(vs.bits, rot, "activation")
    assert rotated.invalid.sum() >= 10
    dut = RotatedFrontend(cfg)
    codec_in = LayoutCodec(fp16_block(cfg.block))
    book = cfg.book()
    outs, _, _ = rtl_stream(dut, codec_in.pack(len(vs), x=vs.bits), p_idle=0.3, seed=9)
    got = LayoutCodec(quantized_block(cfg.block, book.size)).unpack(outs)
    ok = ~rotated.invalid
    y16 = rotated.bits[ok].view(np.float16)
    qt = quantize(y16, "sd32", formatbook=book, select=cfg.select, block=cfg.block)
    want_codes = np.zeros_like(got["codes"])
    want_se = np.zeros(len(vs), np.int64)
    want_dialect = np.zeros(len(vs), np.int64)
    want_codes[ok] = qt.codes
    want_se[ok] = qt.se[:, 0].astype(np.int64) + 16
    want_dialect[ok] = qt.dialect[:, 0]
    assert got["invalid"].astype(bool).tolist() == rotated.invalid.tolist()
    assert_blocks(got["codes"], want_codes, vs.labels)
    assert got["se"].tolist() == want_se.tolist()
    assert got["dialect"].tolist() == want_dialect.tolist()


# -- structure and parameters ------------------------------------------------------------------


def test_widths_and_defaults() -> None:
    """41 + log2 B bits after the butterflies (the golden docstring's 47 at B = 64); the shift
    of each role; the default stages."""
    assert [fixed_width(b) for b in BLOCKS] == [45, 46, 47]
    assert ROTATOR_STAGES == 2 and 0 < ROTATOR_STAGES <= ROTATOR_MAX_STAGES
    assert CANONICAL_NAN == INVALID_LANE == 0x7E00  # the RTL's constant is SPEC §11's
    for b, (ca, cw) in zip(BLOCKS, [(2, 2), (3, 2), (3, 3)], strict=True):
        r = Rotation(b, 1)
        assert BlockRotator(b, r).shift == ca and BlockRotator(b, r, "weight").shift == cw
        dut = BlockRotator(b, r)
        assert (dut.block, dut.rotation, dut.role, dut.stages, dut.latency) == (
            b, r, "activation", ROTATOR_STAGES, ROTATOR_STAGES)


@pytest.mark.parametrize(("make", "param"), [
    (lambda: BlockRotator(24, Rotation(8)), "block"),
    (lambda: BlockRotator(8, Rotation(8)), "block"),
    (lambda: BlockRotator(True, Rotation(16)), "block"),
    (lambda: BlockRotator(32, Rotation(16)), "rotation"),
    (lambda: BlockRotator(32, None), "rotation"),
    (lambda: BlockRotator(32, 7), "rotation"),
    (lambda: BlockRotator(32, Rotation(32), "both"), "role"),
    (lambda: BlockRotator(32, Rotation(32), stages=ROTATOR_MAX_STAGES + 1), "stages"),
    (lambda: BlockRotator(32, Rotation(32), stages=-1), "stages"),
    (lambda: BlockRotator(32, Rotation(32), stages=True), "stages"),
    (lambda: BlockRotator(32, Rotation(32), stages=1.0), "stages"),
])
def test_parameters_are_validated(make, param: str) -> None:
    with pytest.raises(ValueError, match=f"^{param}:"):
        make()


@pytest.mark.parametrize("block", BLOCKS)
def test_sim_run_time_role_side_and_bypass(block: int) -> None:
    """The GEMM core's form (``role=None``): blocks of both roles and bypassed blocks
    interleaved, with random side bits, under back-pressure. A rotated block equals golden
    ``Rotation.forward`` in its own role (NaN rule included), a bypassed one is the input
    unchanged (NaN/Inf lanes too), and every block's side bits come out with it."""
    rot = Rotation(block, SEED + 1)
    side = 9
    acts = sim_vectors(block, "activation")
    weights = sim_vectors(block, "weight")
    n = min(len(acts), len(weights))
    rng = np.random.default_rng(block)
    mode = rng.integers(0, 3, n)  # 0 activation, 1 weight, 2 bypass
    bits = np.where((mode == 1)[:, None], weights.bits[:n], acts.bits[:n])
    want = bits.copy()
    for role, code in (("activation", 0), ("weight", 1)):
        pick = mode == code
        want[pick] = ref_rotated(bits[pick], rot, role).bits
    sides = rng.integers(0, 1 << side, n)
    dut = BlockRotator(block, rot, None, side=side)
    assert (dut.role, dut.shift, dut.side) == (None, None, side)
    codec_in = LayoutCodec(rotator_input(block, side, True))
    codec_out = LayoutCodec(rotator_output(block, side))
    words = codec_in.pack(n, x=bits, side=sides, weight=(mode == 1).astype(np.int64),
                          bypass=(mode == 2).astype(np.int64))
    outs, _, _ = rtl_stream(dut, words, p_idle=0.3, seed=block)
    got = codec_out.unpack(outs)
    labels = [f"{['act', 'weight', 'bypass'][k]} {lab}" for k, lab in
              zip(mode, np.where(mode == 1, weights.labels[:n], acts.labels[:n]), strict=True)]
    assert_blocks(got["x"], want, labels)
    assert got["side"].tolist() == sides.tolist()
    if block == 32:  # c_a = 3, c_w = 2: the roles differ on the same block
        same = ref_rotated(acts.bits[:8], rot, "activation").bits
        assert not np.array_equal(same, ref_rotated(acts.bits[:8], rot, "weight").bits)


def test_gemm_core_has_a_rotator_per_lane() -> None:
    """A rotating configuration builds (the check that refused it is gone): one run-time-role
    rotator prototype carrying the lane's mask and salient bits, ROTATOR_STAGES more cycles
    of frontend latency; an unrotated configuration has no rotator."""
    cfg = Config(rotate="hadamard", rotate_seed=3)
    core = GemmCore.from_config(cfg)
    assert core.rotation == Rotation(cfg.block, 3)
    # the cycle model's frontend latency (rtl.timing) is the built core's
    assert core.frontend_latency == core.pipeline.quantizer_latency(cfg.selector_cycles)
    plain = GemmCore.from_config(Config())
    assert plain.rotation is None
    assert core.frontend_latency == plain.frontend_latency + ROTATOR_STAGES


def test_rtl_quantize_refuses_a_rotating_config(tmp_path: Path, capsys) -> None:
    """``rtl-quantize`` runs the BlockQuantizer alone (no rotator in front): a rotating
    configuration is refused by name — one line on stderr, exit status 2, nothing written."""
    from semdialect.cli import main

    conf = tmp_path / "rot.toml"
    conf.write_text('name = "rot"\n[format]\nrotate = "hadamard"\n')
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 32), np.float32))
    out = tmp_path / "q.npz"
    assert main(["rtl-quantize", str(x), "-o", str(out), "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "semdialect rtl-quantize: error: rotate:" in err
    assert not out.exists()


# -- Verilator -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_lint(role: str) -> None:
    """The bare rotator's Verilog (B = 32, default stages) is lint-clean under ``-Wall``
    (Amaranth waivers only)."""
    made = cached_verilog(f"block_rotator_{role}", BlockRotator,
                          (TOP_BLOCK, TOP_ROTATION, role), out_dir=VERILOG_DIR)
    assert made.copy is not None
    lint([made.copy], made.name, LINT_WAIVERS)


def _run(n_random: int, testcase: str | None = None, **env: str):
    made = cached_verilog("rotator_top", RotatorTestTop, out_dir=VERILOG_DIR)
    assert made.copy is not None
    summary = VERILOG_DIR / f"summary-{env.get('ROT_CORRUPT', '0')}.json"
    summary.unlink(missing_ok=True)
    run = run_cocotb([made.copy], made.name, TEST_MODULE, build_args=FAST_BUILD_ARGS,
                     extra_env={"ROT_RANDOM": str(n_random), "ROT_SUMMARY": str(summary), **env},
                     testcase=testcase)
    return run, json.loads(summary.read_text()) if summary.is_file() else {}


def test_verilator() -> None:
    """Both roles at B = 32 on Verilator: random + adversarial blocks with random
    back-pressure, and the latency/throughput check, bit-exact with golden."""
    run, summary = _run(4000)
    assert run.tests == 2
    tests = summary["tests"]
    for role in ROLES:
        info = tests["test_random_backpressure"][role]
        assert info["blocks"] >= 4000 and info["ties"] > 500 and info["subnormal"] > 500
        assert info["overflow"] >= 5 and info["nan_inf"] >= 8 and info["negative_zero"] > 0
        timing = tests["test_latency_throughput"][role]
        assert timing["latency"] == [ROTATOR_STAGES] and timing["gaps"] == [1]
    print(f"\nbuild {run.build_seconds:.1f}s (cached={not run.built}) test "
          f"{run.test_seconds:.1f}s\n  {json.dumps(tests, sort_keys=True)}")


def test_verilator_catches_corruption() -> None:
    """A deliberately wrong expected lane must surface as a failing cocotb test."""
    with pytest.raises(CocotbFailure, match="test_random_backpressure"):
        _run(20, "test_random_backpressure", ROT_CORRUPT="1")


# -- area plan (sim/ablation.py; the synthesis itself runs in `semdialect sim`) ----------------


def test_area_plan_has_the_rotator_row() -> None:
    """The ``rotate`` ablation axis: one frontend lane without (baseline) and with the
    rotator of the configuration's B; the rotator's Verilog is the BlockRotator's, and
    :func:`rotator_overhead` scales one rotator by the configured lanes."""
    import semdialect.sim.ablation as ablation
    from semdialect.sim.area import AreaReport

    base = Config()
    rows = [v for v in ablation.variants(base) if v.axis == "rotate"]
    assert [(v.label, v.baseline, v.cfg.rotate, v.modules) for v in rows] == [
        ("none", True, "none", ("block_quantizer_residual",)),
        ("hadamard (B = 32)", False, "hadamard",
         ("block_quantizer_residual", ablation.ROTATOR_MODULE))]
    assert replace(rows[1].cfg, rotate="none") == base == rows[0].cfg
    assert ablation.ROLES[ablation.ROTATOR_MODULE] == "rotator"
    path = ablation.module_verilog(rows[1].cfg, ablation.ROTATOR_MODULE)
    text = path.read_text()
    assert "module block_rotator(" in text and "bf16_sum0" in text  # the 5th butterfly stage

    def report(gates: float) -> AreaReport:
        return AreaReport(top="t", verilog_sha256="0", generic_cells={"$_NAND_": int(gates)},
                          flip_flops=3, transistors=4, transistors_exact=True, nand2_eq=gates,
                          yosys_version="x")

    run = ablation.AreaRun(
        [ablation.AblationRow(rows[0], "block_quantizer_residual", report(1000.0)),
         ablation.AblationRow(rows[1], "block_quantizer_residual", report(1000.0)),
         ablation.AblationRow(rows[1], ablation.ROTATOR_MODULE, report(250.0))],
        [], None, 0.0, 2)
    area = ablation.rotator_overhead(run, base)
    assert area is not None and area.lanes == base.lanes == 8
    assert area.added_nand2_eq == 2000.0 and area.frontend_nand2_eq == 8000.0
    assert "+25.0 %" in area.describe() and "+2.0 kGE" in area.describe()
    assert ablation.rotator_overhead(ablation.AreaRun([], [], None, 0.0, 0), base) is None
