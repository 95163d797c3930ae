# amaranth: UnusedElaboratable=no
"""The GEMM core of a rotating configuration (SPEC §11: a :class:`~rtl.rotator.BlockRotator` in
front of every frontend lane) against the golden model, bit for bit, with its cycle counts.

``amaranth.sim`` of two small rotating cores — B = 32 (c_a = 3, c_w = 2: the run-time role
changes the shift) and B = 16 (c_a = c_w = 2) — running programs of back-to-back commands:

* GEMMs with random X and adversarial X: a NaN or ±Inf lane (the block leaves the rotator as
  0x7E00 lanes → ``invalid``, its row's outputs flagged), ±65504 lanes that stay in range, and
  blocks that overflow FP16 only after the rotation (invalid too); salient rows, whose
  residuals come out on ``r`` in the rotated basis;
* a quantize command (the run-time second operand, weight role) with NaN and overflowing
  blocks, and one of Wᵀ followed by the GEMM that uses its ``q`` blocks as W;
* the SPEC §6 decomposition: the main GEMM with salient rows, then the GEMM with ``add`` over
  the residual rows (already rotated: the rotators pass them unchanged), equal to golden
  ``decomposed_linear(..., rotate=)``.

Every expected value comes from golden (``gemm``, ``quantize``, ``quantize_weights``,
``decomposed_linear`` with the configuration's rotation; :mod:`tb.gemm_ref`); every command's
cycles (command accepted → last output, inclusive, no stalls) equal
:func:`sim.cycles.gemm_cycles` / :func:`sim.cycles.quantize_cycles`, which count the
rotator's :data:`~rtl.timing.ROTATOR_STAGES`.

``test_verilator_rotating_core``: the generated Verilog of the B = 32 core on Verilator
(``tb/cocotb_gemm.py``, as ``tests/test_rtl_gemm_verilator.py`` runs the unrotated cores):
GEMMs (random, adversarial X — ±65504 blocks that overflow after the rotation among them —,
NaN/Inf blocks, SeDA masks, salient rows), quantize commands, a run-time second operand, the
decomposition and GEMMs with an addend, with no stalls (every command's cycles = the model),
back to back and with random stalls, bit-exact with golden.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from semdialect import golden
from semdialect.config import Config, load_config
from semdialect.golden.formats import DialectFormat
from semdialect.golden.rotated import RotatedFormat
from semdialect.paths import configs_dir
from semdialect.rtl.gemm_core import GemmCore
from semdialect.rtl.layouts import OP_GEMM, OP_QUANTIZE
from semdialect.rtl.rotator import CANONICAL_NAN, BlockRotator
from semdialect.rtl.timing import ROTATOR_STAGES, Pipeline
from semdialect.sim.cycles import gemm_cycles, quantize_cycles
from semdialect.tb.gemm_ref import (
    QuantizedFields,
    activation_beats,
    case_commands,
    drain_order,
    gemm_expected,
    pack,
    quantized_fields,
    residual_expected,
    residual_rows,
    salient_lanes,
    weight_beats,
    weight_beats_from_fields,
    x_beat_rows,
    yin_beats,
)
from semdialect.tb.gemm_run import case, run_gemm
from semdialect.tb.packing import LayoutCodec

pytestmark = [pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning"),
              # cores built only to read their properties are never elaborated
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]

SMALL = load_config(configs_dir() / "small.toml")
#: small (2×2, 2 lanes, d = 2, dfp4) rotating at B = 32 (the roles' shifts differ) and B = 16
ROT32 = replace(SMALL, name="small_rot32", block=32, rotate="hadamard", rotate_seed=0x5EED)
ROT16 = replace(SMALL, name="small_rot16", rotate="hadamard", rotate_seed=7)
FP16_MAX = 65504.0


@dataclass
class Command:
    """One command of a program: its stream words and what to expect."""

    op: str  #: ``gemm`` or ``quantize``
    m: int
    n: int
    kb: int
    add: int = 0
    x: list[int] = field(default_factory=list)
    w: list[int] = field(default_factory=list)
    yin: list[int] = field(default_factory=list)
    salient: np.ndarray | None = None  #: (M,) bool rows flagged salient


@dataclass
class Outcome:
    """A command's output beats (raw ints) and its cycles."""

    y: list[int] = field(default_factory=list)
    q: list[int] = field(default_factory=list)
    r: list[int] = field(default_factory=list)
    cycles: int = 0


def run_program(dut: GemmCore, commands: list[Command]) -> list[Outcome]:
    """All ``commands`` back to back through ``dut`` in one ``amaranth.sim`` run, every input
    always valid and every output always ready; each command's outputs and cycles."""
    cmd_words = [pack(dut.cmd_layout, {"m": c.m, "n": c.n, "kb": c.kb, "add": c.add,
                                       "op": OP_QUANTIZE if c.op == "quantize" else OP_GEMM})
                 for c in commands]
    outcomes = [Outcome() for _ in commands]
    streams = {"cmd": cmd_words, "x": [w for c in commands for w in c.x],
               "w": [w for c in commands for w in c.w],
               "yin": [w for c in commands for w in c.yin]}

    def driver(name: str):
        port, words = getattr(dut, name), streams[name]

        async def drive(ctx: Any) -> None:
            for word in words:
                ctx.set(port.payload.as_value(), word)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)
        return drive

    async def monitor(ctx: Any) -> None:
        for port in (dut.y, dut.q, dut.r):
            ctx.set(port.ready, 1)
        index, start, cycle = -1, 0, 0
        while index < len(commands):
            if ctx.get(dut.cmd.valid) and ctx.get(dut.cmd.ready):
                index, start = index + 1, cycle
            done = False
            if 0 <= index < len(commands):
                out = outcomes[index]
                if ctx.get(dut.r.valid):
                    out.r.append(ctx.get(dut.r.payload.as_value()))
                for name in ("y", "q"):
                    port = getattr(dut, name)
                    if ctx.get(port.valid):
                        getattr(out, name).append(ctx.get(port.payload.as_value()))
                        if ctx.get(port.payload.last):
                            out.cycles, done = cycle - start + 1, True
            if done and index == len(commands) - 1:
                return
            await ctx.tick()
            cycle += 1
            assert cycle < 50000, "GEMM core stuck"

    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-8, domain="sync")
    for name in streams:
        sim.add_testbench(driver(name))
    sim.add_testbench(monitor)
    sim.run()
    return outcomes


def make_core(cfg: Config) -> GemmCore:
    return GemmCore.from_config(cfg, max_m=63, max_n=63, max_kb=8)


def layouts(dut: GemmCore) -> dict[str, Any]:
    return {name: member.signature.members["payload"].shape
            for name, member in dut.signature.members.items()}


def decode_y(cfg: Config, raws: list[int], m: int, n: int, layout: Any
             ) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) uint32 values and bool invalid flags of a GEMM's ``y`` beats; checks the beat
    masks and ``last``."""
    codec = LayoutCodec(layout)
    raw = codec.unpack(raws)
    order = drain_order(m, n, cfg.rows, cfg.tile_cols, cfg.drain_width)
    assert len(raws) == len(order)
    assert np.array_equal(codec.unpack_bits(raws, "mask"), order.mask)
    assert raw["last"].tolist() == [0] * (len(raws) - 1) + [1]
    lanes = range(cfg.drain_width)
    values = np.stack([raw[f"lanes.{i}.value"] for i in lanes], axis=1).astype(np.uint32)
    invalid = np.stack([raw[f"lanes.{i}.invalid"] for i in lanes], axis=1).astype(bool)
    return order.assemble(values, (m, n)), order.assemble(invalid, (m, n))


def decode_q(cfg: Config, raws: list[int], m: int, kb: int, layout: Any) -> QuantizedFields:
    """A quantize command's ``q`` beats as hardware fields (lanes past M dropped)."""
    raw = LayoutCodec(layout).unpack(raws)
    assert raw["last"].tolist() == [0] * (len(raws) - 1) + [1]
    rows, kbs = x_beat_rows(m, kb, cfg.rows, cfg.lanes)
    b = cfg.block

    def lanes(name: str) -> np.ndarray:
        return np.stack([raw[f"lanes.{i}.{name}"] for i in range(cfg.lanes)], axis=1)

    beat, lane = np.nonzero(rows >= 0)
    r, k = rows[beat, lane], kbs[beat]
    codes = np.zeros((m, kb, b), np.int64)
    se, dialect = np.zeros((m, kb), np.int64), np.zeros((m, kb), np.int64)
    invalid = np.zeros((m, kb), bool)
    codes[r, k] = lanes("codes")[beat, lane]
    se[r, k] = lanes("se")[beat, lane]
    dialect[r, k] = lanes("dialect")[beat, lane]
    invalid[r, k] = lanes("invalid")[beat, lane].astype(bool)
    return QuantizedFields(codes.reshape(m, kb * b), se, dialect, invalid)


def assert_fields(got: QuantizedFields, want: QuantizedFields) -> None:
    for name in ("codes", "se", "dialect", "invalid"):
        g, w = getattr(got, name), getattr(want, name)
        assert np.array_equal(g, w), (name, np.argwhere(g != w)[:6].tolist())


def gemm_command(cfg: Config, dut: GemmCore, x: np.ndarray, w_words: list[int], n: int, *,
                 salient: np.ndarray | None = None, add: int = 0,
                 yin: list[int] | None = None) -> Command:
    m, k = x.shape
    lay = layouts(dut)
    flags = None
    if salient is not None:
        flags = np.zeros(m, bool)
        flags[salient] = True
    return Command("gemm", m, n, k // cfg.block, add,
                   x=activation_beats(x, cfg, lay["x"], salient=salient, pad_seed=m + k),
                   w=w_words, yin=yin or [], salient=flags)


def check_residuals(cfg: Config, cmd: Command, raws: list[int], layout: Any) -> np.ndarray:
    """The ``r`` beats of a GEMM with salient rows: (M, K) uint16, zero outside them."""
    rows, kbs = x_beat_rows(cmd.m, cmd.kb, cfg.rows, cfg.lanes)
    assert cmd.salient is not None
    flagged = salient_lanes(cmd.salient, rows)
    mask, got = residual_rows(LayoutCodec(layout), raws, flagged, rows, kbs, cmd.m, cfg.block)
    assert np.array_equal(mask, flagged[flagged.any(axis=1)])
    return got


def overflow_block(cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """An FP16 block whose rotation overflows FP16 in both roles: lane j = s_j · 65504 (so
    rotated lane 0 is B · 65504 / 2^c), other lanes random."""
    rot = cfg.rotation()
    assert rot is not None
    block = rot.signs.astype(np.float64) * FP16_MAX
    block[1::2] *= rng.uniform(0.5, 1.0, cfg.block // 2)
    return block


def adversarial_x(cfg: Config, m: int, kb: int, rng: np.random.Generator) -> np.ndarray:
    """Random rows with: a NaN lane, a −Inf lane, ±65504 lanes in range (one lane per block
    at ±65504, the rest small: every rotated lane is within 65504 / 2^c + ...), an overflow
    block, a zero block and a subnormal block."""
    b = cfg.block
    x = rng.standard_normal((m, kb * b)) * np.exp2(rng.integers(-10, 10, (m, 1)))
    x[0, 3] = np.nan
    x[1, b + 2] = -np.inf
    x[2, :b] = 0.0
    x[2, 5] = FP16_MAX
    x[2, b : 2 * b] = rng.choice([-1.0, 1.0], b) * FP16_MAX / b
    x[3, b : 2 * b] = overflow_block(cfg, rng)
    x[4, :b] = rng.integers(-3, 4, b) * 2.0**-24
    x[4, b : 2 * b] = -0.0
    return x


@pytest.mark.parametrize("cfg", [ROT32, ROT16], ids=lambda c: c.name)
def test_rotating_core_gemms_and_quantize(cfg: Config) -> None:
    """One program: an adversarial GEMM with salient rows (incl. a NaN row), a random GEMM,
    an adversarial quantize command (weight role), a quantize command of Wᵀ and the GEMM with
    its blocks as W. Every output equals golden bit for bit, every command's cycles the model."""
    rng = np.random.default_rng(cfg.block)
    dut = make_core(cfg)
    assert dut.rotation == cfg.rotation() and dut.pipeline.rotator_stages == ROTATOR_STAGES
    lay = layouts(dut)
    b, kb = cfg.block, 2
    rot = cfg.rotation()
    book = cfg.book()

    # 1. adversarial X, salient rows 0 (its block 0 has a NaN) 2 and 4
    m1, n1 = 5, 3
    x1 = adversarial_x(cfg, m1, kb, rng)
    w = rng.standard_normal((kb * b, 6))
    want1, flags1, qw = gemm_expected(x1, w[:, :n1], cfg)
    assert flags1[[0, 1, 3]].all() and not flags1[[2, 4]].any()
    sal1 = np.array([0, 2, 4])
    c1 = gemm_command(cfg, dut, x1, weight_beats(qw, m1, cfg, lay["w"]), n1, salient=sal1)
    # 2. random X
    m2, n2 = 3, 6
    x2 = rng.standard_normal((m2, kb * b)) * np.exp2(rng.integers(-12, 12, (m2, 1)))
    want2, flags2, qw2 = gemm_expected(x2, w, cfg)
    assert not flags2.any()
    c2 = gemm_command(cfg, dut, x2, weight_beats(qw2, m2, cfg, lay["w"]), n2)
    # 3. an adversarial quantize command: the weight role; NaN / overflow blocks invalid
    x3 = adversarial_x(cfg, 5, kb, rng)
    want_q3 = quantized_fields(x3, cfg)
    assert want_q3.invalid.sum() == 3
    c3 = Command("quantize", 5, 0, kb,
                 x=activation_beats(x3, cfg, lay["x"], pad_seed=3))
    # 4. quantize Wᵀ (N = 6 rows), then 5. the GEMM with those blocks as W
    with np.errstate(over="ignore"):
        wt16 = np.ascontiguousarray(w.astype(np.float16).T)
    want_q4 = quantized_fields(wt16, cfg)
    c4 = Command("quantize", 6, 0, kb, x=activation_beats(wt16, cfg, lay["x"], pad_seed=4))
    # golden's run-time second operand: Wᵀ's rows behind the rotation in the weight role
    qw_dyn = golden.quantize(wt16, RotatedFormat(DialectFormat(book, cfg.select), rot,
                                                 "weight"), block=b)
    static = golden.quantize_weights(w, DialectFormat(book, "lut"), block=b, rotate=rot)
    assert np.array_equal(qw_dyn.codes, static.codes)  # lut: the same blocks as offline
    assert np.array_equal(want_q4.codes, qw_dyn.codes)
    want5, flags5, _ = gemm_expected(x2, w, cfg, qw=qw_dyn)
    c5 = gemm_command(cfg, dut, x2, weight_beats_from_fields(want_q4, m2, cfg, lay["w"]), n2)

    outs = run_program(dut, [c1, c2, c3, c4, c5])

    y1, inv1 = decode_y(cfg, outs[0].y, m1, n1, lay["y"])
    assert np.array_equal(y1, want1), np.argwhere(y1 != want1)[:6]
    assert np.array_equal(inv1, flags1)
    r1 = check_residuals(cfg, c1, outs[0].r, lay["r"])
    want_r1 = residual_expected(x1, cfg)
    assert np.array_equal(r1[sal1], want_r1[sal1])
    assert (r1[0, :b] == CANONICAL_NAN).all()  # the NaN block, as the quantizer saw it
    y2, inv2 = decode_y(cfg, outs[1].y, m2, n2, lay["y"])
    assert np.array_equal(y2, want2) and not inv2.any()
    assert not outs[1].r
    assert_fields(decode_q(cfg, outs[2].q, 5, kb, lay["q"]), want_q3)
    assert_fields(decode_q(cfg, outs[3].q, 6, kb, lay["q"]), want_q4)
    y5, inv5 = decode_y(cfg, outs[4].y, m2, n2, lay["y"])
    assert np.array_equal(y5, want5) and not inv5.any()
    assert np.array_equal(want5, want2)  # lut: the run-time operand equals the static one

    k = kb * b
    assert [o.cycles for o in outs] == [
        gemm_cycles(cfg, m1, n1, k), gemm_cycles(cfg, m2, n2, k), quantize_cycles(cfg, 5, k),
        quantize_cycles(cfg, 6, k), gemm_cycles(cfg, m2, n2, k)]


def test_rotating_core_decomposition() -> None:
    """SPEC §6 with the rotation: the main GEMM flags the salient rows (their residuals, in
    the rotated basis, on ``r``), then a GEMM with ``add`` over those residual rows (not rotated
    again) adds to the main outputs: Y equals golden ``decomposed_linear(..., rotate=)``."""
    cfg = ROT32
    rng = np.random.default_rng(99)
    dut = make_core(cfg)
    lay = layouts(dut)
    b, kb, m, n = cfg.block, 3, 5, 5
    x = rng.standard_normal((m, kb * b)) * np.exp2(rng.integers(-6, 6, (m, 1)))
    x[3, 7] = 3e4  # an outlier row
    w = rng.standard_normal((kb * b, n))
    salient = np.array([1, 3])
    dec = golden.decomposed_linear(x, w, cfg.book(), salient=salient, select=cfg.select,
                                   block=b, rotate=cfg.rotation())
    main_bits = np.asarray(dec.parts.main, np.float32).view(np.uint32)
    final_bits = np.asarray(dec.y, np.float32).view(np.uint32)
    want_main, flags, qw = gemm_expected(x, w, cfg)
    assert np.array_equal(want_main, main_bits) and not flags.any()
    # the residual rows golden quantizes, in the rotated basis
    qx = golden.quantize(x[salient], cfg.book().name, formatbook=cfg.book(), select=cfg.select,
                         block=b, rotate=cfg.rotation())
    golden_r = golden.decompose.residual(x[salient], qx).view(np.uint16)
    assert np.array_equal(residual_expected(x, cfg)[salient], golden_r)
    first = gemm_command(cfg, dut, x, weight_beats(qw, m, cfg, lay["w"]), n, salient=salient)
    s = len(salient)
    order = drain_order(s, n, cfg.rows, cfg.tile_cols, cfg.drain_width)
    second = gemm_command(
        cfg, dut, golden_r.view(np.float16), weight_beats(qw, s, cfg, lay["w"]), n, add=1,
        yin=yin_beats(main_bits[salient], np.zeros((s, n), bool), order, lay["yin"]))
    outs = run_program(dut, [first, second])
    y1, inv1 = decode_y(cfg, outs[0].y, m, n, lay["y"])
    assert np.array_equal(y1, main_bits) and not inv1.any()
    r = check_residuals(cfg, first, outs[0].r, lay["r"])
    assert np.array_equal(r[salient], golden_r)
    y2, inv2 = decode_y(cfg, outs[1].y, s, n, lay["y"])
    y = y1.copy()
    y[salient] = y2
    assert np.array_equal(y, final_bits), np.argwhere(y != final_bits)[:6]
    assert not inv2.any()
    assert not np.array_equal(y[salient], main_bits[salient])  # the residual pass adds
    k = kb * b
    assert [o.cycles for o in outs] == [gemm_cycles(cfg, m, n, k), gemm_cycles(cfg, s, n, k)]


def test_rotator_lane_and_pipeline_of_a_rotating_config() -> None:
    """The core's lane rotator: run-time role, the mask and salient bits as side bits,
    ROTATOR_STAGES registers; Pipeline.of adds them to the frontend latency only when the
    configuration rotates (an unrotated configuration keeps its pipeline and cycles)."""
    dut = make_core(ROT32)
    k = ROT32.book().size
    lane = dut._rotator
    assert isinstance(lane, BlockRotator)
    assert (lane.role, lane.side, lane.stages, lane.shift) == (None, k + 1, ROTATOR_STAGES, None)
    assert dut.frontend_latency == ROTATOR_STAGES + dut._quantizer.latency
    plain = replace(ROT32, rotate="none")
    assert Pipeline.of(plain).rotator_stages == 0
    assert Pipeline.of(ROT32) == replace(Pipeline.of(plain), rotator_stages=ROTATOR_STAGES)
    assert Pipeline.of(ROT32).quantizer_extra == Pipeline.of(plain).quantizer_extra + 2
    for m, n, kk in [(1, 1, 32), (2, 3, 64), (2, 9, 96)]:  # one row tile: the fill is longer
        assert gemm_cycles(ROT32, m, n, kk) == gemm_cycles(plain, m, n, kk) + ROTATOR_STAGES
        assert quantize_cycles(ROT32, m, kk) == quantize_cycles(plain, m, kk) + ROTATOR_STAGES
    assert make_core(plain).rotation is None and make_core(plain)._rotator is None
    with pytest.raises(ValueError, match="^pipeline:"):
        GemmCore(2, 2, 32, "dfp4", pipeline=Pipeline(rotator_stages=2))
    with pytest.raises(ValueError, match="^rotation:"):
        GemmCore(2, 2, 32, "dfp4", rotation="hadamard")


#: the Verilator cases: every command kind; data whose rotation stays inside FP16 where golden
#: needs it (W must: no ``max`` data, ``adversarial``/``nan`` W only with N < 3 — its last
#: column is ±65504 —, no adversarial decomposition), adversarial X blocks of ±65504 that may
#: overflow
ROT_CASES = [
    case(1, 1, 1), case(3, 5, 2, seed=2), case(5, 2, 3, "adversarial", 3),
    case(7, 2, 3, "nan", 4, salient={"random": 3}), case(3, 3, 2, "zeros", 6),
    case(5, 7, 3, "seda", 7), case(9, 4, 1, seed=8),
    case(5, 4, 3, "seda", 15, kind="quantize"), case(7, 1, 2, "nan", 16, kind="quantize"),
    case(4, 1, 2, "adversarial", 18, kind="quantize"),
    case(5, 7, 3, "random", 19, kind="dynamic"), case(3, 2, 2, "nan", 21, kind="dynamic"),
    case(7, 5, 3, "random", 23, kind="decompose", salient={"attention": "0.3"}),
    case(5, 6, 4, "seda", 25, kind="decompose", salient=[4]),
    case(7, 2, 3, "nan", 29, kind="add"), case(5, 3, 1, "seda", 31, kind="add"),
]


def test_verilator_rotating_core(record_property) -> None:
    """The rotating B = 32 core's Verilog on Verilator: every case bit-exact with golden in
    three cocotb tests (no stalls, back to back, random stalls); every no-stall command's
    cycles equal sim.cycles (which count the rotator's stages)."""
    cfg = ROT32
    run, gen_seconds, cycles_tmp = run_gemm(
        cfg, ROT_CASES, functools.partial(gemm_cycles, cfg),
        expected_quantize=functools.partial(quantize_cycles, cfg))
    assert run.tests == 3
    records = json.loads(cycles_tmp.read_text())
    commands = [cmd for c in ROT_CASES for cmd in case_commands(c)]
    assert [(r["op"], r["add"], r["M"], r["K"]) for r in records] == [
        (c["op"], c["add"], c["m"], c["kb"] * cfg.block) for c in commands]
    for rec in records:
        want = (quantize_cycles(cfg, rec["M"], rec["K"]) if rec["op"] == "quantize"
                else gemm_cycles(cfg, rec["M"], rec["N"], rec["K"]))
        assert rec["cycles"] == want, rec
    timing = {"generate_s": round(gen_seconds, 1), "build_s": round(run.build_seconds, 1),
              "run_s": round(run.test_seconds, 1), "built": run.built}
    for key, value in timing.items():
        record_property(key, value)
    print(f"\n{cfg.name}: {len(ROT_CASES)} cases, {len(records)} commands × 3 tests; {timing}")


def test_rtl_gemm_cli_rotating_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``semdialect rtl-gemm`` on a rotating TOML (the B = 32 core above): Y.npy equals
    ``semdialect gemm ... --rotate hadamard --rotate-seed <seed>`` byte for byte, plain and
    with ``--salient`` (the two-pass decomposition on the core); an X block that overflows
    after the rotation is refused as golden refuses it (exit 2, one line, nothing written)."""
    from semdialect.cli import main

    conf = tmp_path / "rot.toml"
    cfg = ROT32
    conf.write_text(
        f'name = "{cfg.name}"\n[array]\nrows = {cfg.rows}\ncols = {cfg.cols}\n'
        f'drain_width = {cfg.drain_width}\n[format]\nblock = {cfg.block}\n'
        f'formatbook = "{cfg.formatbook}"\nselect = "{cfg.select}"\nrotate = "{cfg.rotate}"\n'
        f'rotate_seed = {cfg.rotate_seed}\n[selector]\nformats_per_cycle = '
        f'{cfg.formats_per_cycle}\n[frontend]\nlanes = {cfg.lanes}\n[pipeline]\n'
        + "".join(f"{key} = {value}\n" for key, value in cfg.pipeline_dict().items()))
    rng = np.random.default_rng(31)
    x = (rng.standard_normal((5, 64)) * np.exp2(rng.integers(-8, 8, (5, 1)))).astype(np.float32)
    x[2, 40] = 6e4
    w = (rng.standard_normal((64, 3)) * np.exp2(rng.integers(-4, 4, (1, 3)))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "s.npy", np.array([2, 4]))
    files = [str(tmp_path / "x.npy"), str(tmp_path / "w.npy")]
    golden_args = ["--format", cfg.formatbook, "--select", cfg.select, "--block",
                   str(cfg.block), "--rotate", cfg.rotate, "--rotate-seed", str(cfg.rotate_seed)]
    for extra in ([], ["--salient", str(tmp_path / "s.npy")]):
        rtl, gold = tmp_path / "y_rtl.npy", tmp_path / "y_gold.npy"
        assert main(["rtl-gemm", *files, "-o", str(rtl), "--config", str(conf), *extra]) == 0
        assert main(["gemm", *files, "-o", str(gold), *golden_args, *extra]) == 0
        assert rtl.read_bytes() == gold.read_bytes()
        plain = tmp_path / "plain.npy"
        assert main(["gemm", *files, "-o", str(plain), *golden_args[:6], *extra]) == 0
        assert plain.read_bytes() != gold.read_bytes()  # the rotation changes Y
    capsys.readouterr()
    x[1, :32] = overflow_block(cfg, rng)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y_bad.npy"
    assert main(["rtl-gemm", *files, "-o", str(out), "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside the FP16 range after rotation" in err
    assert not out.exists()
