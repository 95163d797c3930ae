"""The GEMM core and the block dot-product PEs on Verilator (cocotb), bit-exact with golden.

* ``test_gemm_verilator[<config>]``: the :class:`rtl.gemm_core.GemmCore` of each configuration
  (``tb/cocotb_gemm.py``) runs GEMMs (random and adversarial data: zeros, −0, ±65504, ties,
  subnormals, NaN/Inf blocks, SeDA masks), quantize commands, a run-time second operand
  (Wᵀ quantized by the core, then used as W) and the SPEC §6 decomposition (the main GEMM
  with salient rows flagged, its residual rows on ``r``, then the residual GEMM added to the
  main outputs through ``yin``), GEMMs added to a random FP32 addend with ``invalid`` flags:
  every case with no stalls (bit-exact, every command's cycles
  == :func:`sim.cycles.gemm_cycles` / :func:`sim.cycles.quantize_cycles`), all commands back
  to back (command periods == the same formulas), and every case with random valid/ready
  stalls on all seven streams. The measured no-stall GEMM cycles are written to
  ``build/cycles/<config>.json``: ``{"config": <the Config fields>, "gemms": [{"M", "N",
  "K", "cycles"}, ...]}`` (K in elements; read by ``semdialect sim``, which recomputes the
  model for that configuration).
* ``test_gemm_verilator_reports_failure``: a wrong expected Y, or a wrong expected quantized
  block, fails the run (the testbench's self-test).
* ``test_pe_verilator``: the dialect, MXFP4 and MXINT8 PEs (``tb/cocotb_pe.py``) vs
  ``golden.gemm`` on 1×K · K×1 problems.

Simulators are cached under ``build/sim/`` by :func:`tb.runner.run_cocotb`; ``WAVES=1`` dumps
waveforms. Build and run times are printed (``pytest -s``) and recorded as test properties.
The shipped ``small`` core runs as shipped (2×2, d = 2: 2 × 4 tiles; combinational output
adder). The shipped ``default`` (sd32, B = 32, lut 32/cycle, C-slow d = 7, 1 decoder, 3
product, 2 scale, 4 selector and 5 output-adder stages) and ``blockdialect`` (dfp4, B = 32,
two-stage, the same pipeline) run on reduced arrays with every pipeline stage of the shipped
configuration: ``default-3x2`` (3 × 14 tiles, 3 lanes, drain 7 = half a tile row per
beat) and ``blockdialect-2x3`` (2 × 21 tiles, 1 lane, drain 42 = the whole tile in one beat).
A full 8×8 d = 7 core takes 14 s of Verilog generation (cold cache) and 42 s of Verilator
build on this 2-core machine since the replicated parts are generated and compiled once
(:mod:`rtl.cells`, :data:`tb.runner.FAST_BUILD_ARGS`; before: 5.5–12 and 6–12 min);
``SEMDIALECT_FULL_ARRAYS=1`` runs the shipped 8×8 ``default`` and ``blockdialect`` cores here
too, ``SEMDIALECT_LARGE_ARRAYS=1`` the 16×16 ``large`` one (see ``LARGE``). The shipped
``large`` and ``xlarge`` (32×32) cores are tested in ``tests/test_rtl_large_array.py``
(marker ``large_rtl``).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from semdialect.config import Config, load_config
from semdialect.designs import PEKind
from semdialect.paths import build_dir
from semdialect.rtl.emit import cached_verilog, verilog_key
from semdialect.rtl.gemm_core import GemmCore
from semdialect.sim.cycles import drain_beats, gemm_cycles, quantize_cycles
from semdialect.tb.gemm_ref import case_commands, drain_order, x_beat_rows
from semdialect.tb.gemm_run import (
    CONFIG_LIMITS,
    TEST_LIMITS,
    GemmLimits,
    case,
    config_env,
    run_gemm,
    verilog_dir,
)
from semdialect.tb.pe_top import PETestTop
from semdialect.tb.runner import FAST_BUILD_ARGS, CocotbFailure, run_cocotb

REPO_ROOT = Path(__file__).resolve().parents[1]

PE_MODULE = "semdialect.tb.cocotb_pe"
CYCLES_DIR = build_dir() / "cycles"  # read by semdialect sim (model_vs_rtl.csv)
CONFIGS = REPO_ROOT / "configs"

#: ``SEMDIALECT_FULL_ARRAYS=1``: also run the shipped 8×8 default/blockdialect cores (about
#: a minute of Verilog and Verilator build each); by default they run on reduced arrays with
#: the same book, B, selector and every ``[pipeline]`` stage
FULL = os.environ.get("SEMDIALECT_FULL_ARRAYS") == "1"

#: ``SEMDIALECT_LARGE_ARRAYS=1``: also run the shipped 16×16 ``large`` core (16 lanes, drain
#: 112; 1.6 min of Verilog and build) on these cases. Off by default:
#: ``tests/test_rtl_large_array.py`` runs it and the 32×32 ``xlarge`` (marker ``large_rtl``);
#: the random configurations of ``test_rtl_random_cycles.py`` cover the same cycle formula on
#: small arrays.
LARGE = os.environ.get("SEMDIALECT_LARGE_ARRAYS") == "1"


def _reduced(name: str, rows: int, cols: int, lanes: int, drain_width: int) -> Config:
    """The shipped config ``name`` on a rows × cols array (same book, B, selector and
    ``[pipeline]`` stages: tiles of rows × cols·acc_stages) with ``lanes`` quantizer lanes and
    ``drain_width`` outputs per drain beat, named ``<name>-<rows>x<cols>``."""
    cfg = load_config(CONFIGS / f"{name}.toml")
    return replace(cfg, name=f"{cfg.name}-{rows}x{cols}", rows=rows, cols=cols, lanes=lanes,
                   drain_width=drain_width)


#: configuration → cases. M, N cover one and several tiles, exact multiples and edges; K/B
#: from 1 to MAX_KB; every case kind (tb.gemm_ref.case_commands): plain GEMMs (some with
#: salient rows, NaN/Inf blocks among them: their residual is the block), quantize commands,
#: a run-time second operand, the decomposition (salient rows from an attention map, a random
#: subset, one row, every row, none), GEMMs added to a random addend (``add``).
SMALL_CASES = [
    case(1, 1, 1), case(2, 2, 1, seed=1), case(3, 5, 2, seed=2),
    case(5, 3, 4, "adversarial", 3), case(7, 6, 3, "nan", 4), case(4, 4, 2, "max", 5),
    case(3, 3, 2, "zeros", 6), case(5, 7, 3, "seda", 7), case(9, 4, 1, seed=8),
    case(2, 9, 8, "adversarial", 9), case(6, 2, 5, "random", 10), case(4, 3, 2, "nan", 11),
    case(17, 13, 6, "random", 12), case(11, 10, 8, "adversarial", 13),
    case(7, 6, 3, "nan", 14, salient={"random": 4}),
    case(5, 4, 3, "seda", 15, kind="quantize"), case(7, 1, 2, "nan", 16, kind="quantize"),
    case(3, 1, 8, "max", 17, kind="quantize"), case(1, 1, 1, "adversarial", 18, kind="quantize"),
    case(5, 7, 3, "adversarial", 19, kind="dynamic"), case(3, 4, 2, "seda", 20, kind="dynamic"),
    case(9, 2, 1, "nan", 21, kind="dynamic"), case(1, 5, 4, "max", 22, kind="dynamic"),
    case(7, 5, 3, "random", 23, kind="decompose", salient={"attention": "0.3"}),
    case(6, 3, 2, "adversarial", 24, kind="decompose", salient={"random": 3}),
    case(5, 6, 4, "seda", 25, kind="decompose", salient=[4]),
    case(4, 3, 2, "max", 26, kind="decompose", salient=[0, 1, 2, 3]),
    case(3, 2, 1, "zeros", 27, kind="decompose", salient=[]),
    case(13, 5, 2, "random", 28, kind="decompose", salient={"attention": "0.25"}),
    case(7, 5, 3, "nan", 29, kind="add"), case(4, 9, 2, "max", 30, kind="add"),
    case(5, 3, 1, "seda", 31, kind="add"),
]
#: the reduced B = 32 cores (tiles of 3 × 14 and 2 × 21: d = 7): N inside one column group,
#: one whole tile, one tile plus a column (the next tile's groups past N are padding) and
#: three tiles; M over one to three row tiles; K/B 1 to 8
B32_CASES = [
    case(3, 5, 2, seed=20), case(5, 3, 3, "adversarial", 21), case(4, 4, 1, "nan", 22),
    case(2, 2, 2, "max", 23), case(5, 6, 4, "seda", 24), case(1, 3, 8, "random", 25),
    case(3, 14, 2, "random", 33), case(6, 15, 1, "adversarial", 34),
    case(7, 43, 2, "random", 35), case(2, 22, 5, "zeros", 36),
    case(7, 4, 2, "nan", 26, salient=[0, 3, 6]),
    case(7, 2, 3, "seda", 27, kind="quantize"), case(4, 1, 1, "nan", 28, kind="quantize"),
    case(4, 17, 2, "adversarial", 29, kind="dynamic"),
    case(8, 5, 2, "random", 30, kind="decompose", salient={"attention": "0.25"}),
    case(5, 16, 3, "adversarial", 31, kind="decompose", salient={"random": 2}),
    case(5, 4, 2, "nan", 32, kind="add"), case(4, 23, 1, "max", 37, kind="add"),
]
FULL_CASES = [
    case(13, 11, 3, seed=30), case(8, 8, 1, "adversarial", 31), case(9, 17, 2, "nan", 32),
    case(3, 20, 4, "seda", 33), case(16, 3, 2, "max", 34), case(17, 9, 8, "random", 35),
    case(7, 7, 1, "zeros", 36), case(12, 9, 2, "nan", 37, salient={"random": 5}),
    case(11, 2, 2, "seda", 38, kind="quantize"), case(9, 1, 3, "nan", 39, kind="quantize"),
    case(10, 11, 2, "adversarial", 40, kind="dynamic"),
    case(18, 9, 2, "random", 41, kind="decompose", salient={"attention": "0.2"}),
    case(9, 8, 3, "adversarial", 42, kind="decompose", salient={"random": 9}),
    case(12, 9, 2, "nan", 43, kind="add"),
    case(8, 56, 1, "random", 44), case(9, 60, 2, "adversarial", 45, kind="add"),
]


#: more cases for the 16×16 ``large`` core: several row and column tiles, ragged edges
LARGE_CASES = [
    case(33, 35, 2, "adversarial", 50), case(16, 16, 8, "random", 51),
    case(40, 3, 1, "nan", 52, salient={"random": 7}),
    case(37, 2, 2, "random", 53, kind="quantize"),
    case(17, 33, 2, "random", 54, kind="dynamic"),
    case(34, 17, 2, "adversarial", 55, kind="decompose", salient={"attention": "0.1"}),
    case(19, 20, 2, "adversarial", 56, kind="add"),
]


def _lut_only(cases: list[dict]) -> list[dict]:
    """The cases without SeDA masks (SeDA needs ``lut`` selection)."""
    return [c for c in cases if c["data"] != "seda"]


def _runs() -> dict[str, tuple[Config, list[dict]]]:
    runs = {"small": (load_config(CONFIGS / "small.toml"), SMALL_CASES),
            "default-3x2": (_reduced("default", 3, 2, lanes=3, drain_width=7), B32_CASES),
            "blockdialect-2x3": (_reduced("blockdialect", 2, 3, lanes=1, drain_width=42),
                                 _lut_only(B32_CASES))}
    if FULL:
        runs["default"] = (load_config(CONFIGS / "default.toml"), FULL_CASES)
        runs["blockdialect"] = (load_config(CONFIGS / "blockdialect.toml"),
                                _lut_only(FULL_CASES))
    if LARGE:
        runs["large"] = (load_config(CONFIGS / "large.toml"), FULL_CASES + LARGE_CASES)
    return runs


RUNS = _runs()


def check_cycle_records(cfg: Config, cases: list[dict], records: list[dict]) -> None:
    """The no-stall cycle records are one per command of ``cases``, in order, each equal to
    the cycle model's formula (recomputed here)."""
    commands = [cmd for c in cases for cmd in case_commands(c)]
    assert [(r["op"], r["add"], r["M"], r["K"]) for r in records] == [
        (c["op"], c["add"], c["m"], c["kb"] * cfg.block) for c in commands]
    for rec, cmd in zip(records, commands, strict=True):
        if cmd["op"] == "quantize":
            assert rec["cycles"] == quantize_cycles(cfg, rec["M"], rec["K"]), rec
        else:
            assert rec["N"] == cmd["n"]
            assert rec["cycles"] == gemm_cycles(cfg, rec["M"], rec["N"], rec["K"]), rec


@pytest.mark.parametrize("name", list(RUNS))
def test_gemm_verilator(name: str, record_property) -> None:
    cfg, cases = RUNS[name]
    run, gen_seconds, cycles_tmp = run_gemm(
        cfg, cases, functools.partial(gemm_cycles, cfg),
        expected_quantize=functools.partial(quantize_cycles, cfg))
    assert run.tests == 3
    records = json.loads(cycles_tmp.read_text())
    check_cycle_records(cfg, cases, records)
    CYCLES_DIR.mkdir(parents=True, exist_ok=True)
    (CYCLES_DIR / f"{cfg.name}.json").write_text(json.dumps({
        "config": json.loads(config_env(cfg)),
        "gemms": [{"M": r["M"], "N": r["N"], "K": r["K"], "cycles": r["cycles"]}
                  for r in records if r["op"] == "gemm"]}, indent=1) + "\n")
    timing = {"generate_s": round(gen_seconds, 1), "build_s": round(run.build_seconds, 1),
              "run_s": round(run.test_seconds, 1), "built": run.built}
    for key, value in timing.items():
        record_property(key, value)
    print(f"\n{name}: {len(cases)} cases, {len(records)} commands × 3 tests; {timing}; cycles "
          f"{[(r['op'], r['M'], r['N'], r['K'], r['cycles']) for r in records]}")


@pytest.mark.parametrize("cases", ["gemm", "quantize"])
def test_gemm_verilator_reports_failure(cases: str) -> None:
    """A deliberately wrong expected value must fail the cocotb run (the build is cached):
    one Y element of a GEMM, one code of a quantize command's output."""
    cfg, all_cases = RUNS["small"]
    chosen = all_cases[:2] if cases == "gemm" else [
        c for c in all_cases if c.get("kind") == "quantize"][:1]
    with pytest.raises(CocotbFailure, match="test_gemm_no_stall"):
        run_gemm(cfg, chosen, GEMM_CORRUPT="1", testcase="test_gemm_no_stall")


@pytest.mark.parametrize(("rows", "cols", "lanes", "width"),
                         [(2, 2, 2, 4), (3, 2, 3, 2), (2, 3, 1, 6), (8, 8, 8, 32), (4, 4, 2, 1),
                          (3, 4, 1, 12), (4, 2, 4, 8)])
def test_stream_orders_cover_each_position_once(rows: int, cols: int, lanes: int,
                                                width: int) -> None:
    """The testbench's ``y`` order visits every output exactly once, tile by tile, in the
    cycle model's number of drain beats; its ``x`` order visits every (row, k-block) once,
    ⌈R_t/L⌉·KB beats per row tile, rows of a beat in one row tile."""
    for m, n, kb in ((1, 1, 1), (rows, cols, 2), (2 * rows + 1, 3 * cols - 1, 3), (7, 5, 1)):
        order = drain_order(m, n, rows, cols, width)
        seen = np.zeros((m, n), int)
        np.add.at(seen, (order.row[order.mask], order.col[order.mask]), 1)
        assert (seen == 1).all()
        assert ((order.row >= 0) == order.mask).all()
        tiles = [(min(rows, m - m0), min(cols, n - n0))
                 for m0 in range(0, m, rows) for n0 in range(0, n, cols)]
        assert len(order) == sum(drain_beats(r, c, cols, width) for r, c in tiles)
        tile_of = (order.row // rows) * 1000 + order.col // cols  # beats stay in one tile
        assert all(len(set(t[ok])) == 1 for t, ok in zip(tile_of, order.mask, strict=True))
        row_of, kb_of = x_beat_rows(m, kb, rows, lanes)
        pairs = [(r, k) for beat, k in zip(row_of, kb_of, strict=True) for r in beat if r >= 0]
        assert sorted(pairs) == [(r, k) for r in range(m) for k in range(kb)]
        assert len(kb_of) == sum(-(-min(rows, m - m0) // lanes) * kb
                                 for m0 in range(0, m, rows))
        assert all(len({r // rows for r in beat if r >= 0}) == 1 for beat in row_of)


def pe_verilog(cfg: Config) -> Path:
    made = cached_verilog(f"pe_top_{cfg.name}", PETestTop, (cfg,), out_dir=verilog_dir())
    assert made.copy is not None
    return made.copy


PE_VECTORS = 600


def test_pe_verilator(record_property) -> None:
    """Dialect (default: sd32, B = 32), MXFP4 and MXINT8 PEs vs golden, with stalls."""
    cfg = load_config(CONFIGS / "default.toml")
    top = pe_verilog(cfg)
    summary_path = verilog_dir() / "pe-summary.json"
    summary_path.unlink(missing_ok=True)
    run = run_cocotb([top], top.stem, PE_MODULE, build_args=FAST_BUILD_ARGS, extra_env={
        "PE_CONFIG": str(CONFIGS / "default.toml"), "PE_VECTORS": str(PE_VECTORS),
        "PE_SUMMARY": str(summary_path),
    })
    assert run.tests == 2
    summary = json.loads(summary_path.read_text())
    assert sorted(summary) == sorted(k.value for k in PEKind)  # every kind of the registry
    for kind, counts in summary.items():
        assert counts["problems"] >= PE_VECTORS, kind
        assert counts["block_pairs"] > counts["problems"], kind
    record_property("build_s", round(run.build_seconds, 1))
    record_property("run_s", round(run.test_seconds, 1))
    print(f"\nPE: {summary}; build {run.build_seconds:.1f} s, run {run.test_seconds:.1f} s")


def test_pe_verilator_reports_failure() -> None:
    top = pe_verilog(load_config(CONFIGS / "default.toml"))
    with pytest.raises(CocotbFailure, match="test_pe_random_stalls"):
        run_cocotb([top], top.stem, PE_MODULE, build_args=FAST_BUILD_ARGS, extra_env={
            "PE_CONFIG": str(CONFIGS / "default.toml"), "PE_VECTORS": "60",
            "PE_CORRUPT": "1",
        })


def test_gemm_limits_cover_the_request() -> None:
    """The core's limits follow the request (any K the configuration's core allows), never
    below the test builds' limits, and they are part of the Verilog module name."""
    assert GemmLimits.covering(1, 1, 1) == TEST_LIMITS
    assert GemmLimits.covering(255, 255, 8) == TEST_LIMITS
    # K = 288 at B = 32 (9 blocks, beyond the old fixed 8): the next power of two
    assert GemmLimits.covering(3, 5, 9) == GemmLimits(255, 255, 16)
    assert GemmLimits.covering(256, 1000, 8) == GemmLimits(511, 1023, 8)
    top = GemmLimits.covering(CONFIG_LIMITS.max_m, CONFIG_LIMITS.max_n, CONFIG_LIMITS.max_kb)
    assert top == CONFIG_LIMITS
    for m, n, kb, what in ((1, 1, CONFIG_LIMITS.max_kb + 1, "K"),
                           (CONFIG_LIMITS.max_m + 1, 1, 1, "M"), (1, 0, 1, "N")):
        with pytest.raises(ValueError, match=what):
            GemmLimits.covering(m, n, kb)
    with pytest.raises(ValueError, match="power of two"):
        GemmLimits(255, 255, 12)
    small = load_config(CONFIGS / "small.toml")
    keys = {verilog_key(f"gemm_core_small_{lim.suffix}", GemmCore.from_config, (small,),
                        lim.kwargs()) for lim in (TEST_LIMITS, GemmLimits(255, 255, 16))}
    assert len(keys) == 2
