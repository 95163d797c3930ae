"""The GEMM core and the block dot-product PEs on Verilator (cocotb), bit-exact with golden.

* ``test_gemm_verilator[<config>]``: whole GEMMs through :class:`rtl.gemm_core.GemmCore`
  (``tb/cocotb_gemm.py``): every case with no stalls (bit-exact, cycles == the formula of
  :func:`sim.cycles.gemm_cycles`), all cases back to back, and every case with random
  valid/ready stalls on all four streams. The measured no-stall cycles are written to
  ``build/cycles/<config>.json``, a JSON list of ``{"M", "N", "K", "cycles"}`` (K in
  elements).
* ``test_pe_verilator``: the dialect, MXFP4 and MXINT8 PEs (``tb/cocotb_pe.py``) vs
  ``golden.gemm`` on 1×K · K×1 problems.

Simulators are cached under ``build/sim/`` by :func:`tb.runner.run_cocotb`; ``WAVES=1`` dumps
waveforms. Build and run times are printed (``pytest -s``) and recorded as test properties.
The shipped 8×8 ``default`` (sd32, B = 32, lut 8/cycle) and ``blockdialect`` (dfp4, B = 32,
two-stage) cores run at full size (~1–1.5 min Verilator build each, plus ~30 s of Verilog
generation); ``SEMDIALECT_REDUCED_ARRAYS=1`` runs them on 3×2 / 2×3 arrays instead.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from semdialect.config import Config, load_config
from semdialect.designs import PEKind
from semdialect.paths import build_dir
from semdialect.rtl.emit import cached_verilog, verilog_key
from semdialect.rtl.gemm_core import GemmCore
from semdialect.sim.cycles import gemm_cycles
from semdialect.tb.gemm_run import (
    CONFIG_LIMITS,
    TEST_LIMITS,
    GemmLimits,
    case,
    run_gemm,
    verilog_dir,
)
from semdialect.tb.pe_top import PETestTop
from semdialect.tb.runner import FAST_BUILD_ARGS, CocotbFailure, run_cocotb

REPO_ROOT = Path(__file__).resolve().parents[1]

PE_MODULE = "semdialect.tb.cocotb_pe"
CYCLES_DIR = build_dir() / "cycles"  # read by semdialect sim (model_vs_rtl.csv)
CONFIGS = REPO_ROOT / "configs"

#: ``SEMDIALECT_REDUCED_ARRAYS=1``: run default/blockdialect on 3×2 / 2×3 arrays (same book, B
#: and selector) instead of the shipped 8×8 (quicker local iterations)
REDUCED = os.environ.get("SEMDIALECT_REDUCED_ARRAYS") == "1"


def _reduced(name: str, rows: int, cols: int) -> Config:
    """The shipped config ``name`` on a rows × cols array (same book, B, selector), named
    ``<name>-<rows>x<cols>``."""
    cfg = load_config(CONFIGS / f"{name}.toml")
    return replace(cfg, name=f"{cfg.name}-{rows}x{cols}", rows=rows, cols=cols)


#: configuration → GEMM cases. M, N cover one and several tiles, exact multiples and edges;
#: K/B from 1 to MAX_KB.
SMALL_CASES = [
    case(1, 1, 1), case(2, 2, 1, seed=1), case(3, 5, 2, seed=2),
    case(5, 3, 4, "adversarial", 3), case(7, 6, 3, "nan", 4), case(4, 4, 2, "max", 5),
    case(3, 3, 2, "zeros", 6), case(5, 7, 3, "seda", 7), case(9, 4, 1, seed=8),
    case(2, 9, 8, "adversarial", 9), case(6, 2, 5, "random", 10), case(4, 3, 2, "nan", 11),
    case(17, 13, 6, "random", 12), case(11, 10, 8, "adversarial", 13),
]
B32_CASES = [
    case(3, 5, 2, seed=20), case(5, 3, 3, "adversarial", 21), case(4, 4, 1, "nan", 22),
    case(2, 2, 2, "max", 23), case(5, 6, 4, "seda", 24), case(1, 3, 8, "random", 25),
]
FULL_CASES = [
    case(13, 11, 3, seed=30), case(8, 8, 1, "adversarial", 31), case(9, 17, 2, "nan", 32),
    case(3, 20, 4, "seda", 33), case(16, 3, 2, "max", 34), case(17, 9, 8, "random", 35),
    case(7, 7, 1, "zeros", 36),
]


def _runs() -> dict[str, tuple[Config, list[dict]]]:
    runs = {"small": (load_config(CONFIGS / "small.toml"), SMALL_CASES)}
    if REDUCED:
        runs["default-3x2"] = (_reduced("default", 3, 2), B32_CASES)
        runs["blockdialect-2x3"] = (_reduced("blockdialect", 2, 3),
                                    [c for c in B32_CASES if c["data"] != "seda"])
    else:
        runs["default"] = (load_config(CONFIGS / "default.toml"), FULL_CASES)
        runs["blockdialect"] = (load_config(CONFIGS / "blockdialect.toml"),
                                [c for c in FULL_CASES if c["data"] != "seda"])  # SeDA: lut
    return runs


RUNS = _runs()


@pytest.mark.parametrize("name", list(RUNS))
def test_gemm_verilator(name: str, record_property) -> None:
    cfg, cases = RUNS[name]
    run, gen_seconds, cycles_tmp = run_gemm(cfg, cases, functools.partial(gemm_cycles, cfg))
    assert run.tests == 3
    records = json.loads(cycles_tmp.read_text())
    assert [(r["M"], r["N"], r["K"]) for r in records] == [
        (c["m"], c["n"], c["kb"] * cfg.block) for c in cases
    ]
    for rec in records:  # the cycle model's formula, recomputed here
        assert rec["cycles"] == gemm_cycles(cfg, rec["M"], rec["N"], rec["K"]), rec
    CYCLES_DIR.mkdir(parents=True, exist_ok=True)
    (CYCLES_DIR / f"{cfg.name}.json").write_text(json.dumps(
        [{"M": r["M"], "N": r["N"], "K": r["K"], "cycles": r["cycles"]} for r in records],
        indent=1) + "\n")
    timing = {"generate_s": round(gen_seconds, 1), "build_s": round(run.build_seconds, 1),
              "run_s": round(run.test_seconds, 1), "built": run.built}
    for key, value in timing.items():
        record_property(key, value)
    print(f"\n{name}: {len(cases)} GEMMs × 3 tests; {timing}; cycles "
          f"{[(r['M'], r['N'], r['K'], r['cycles']) for r in records]}")


def test_gemm_verilator_reports_failure() -> None:
    """A deliberately wrong expected value must fail the cocotb run (the build is cached)."""
    cfg, cases = RUNS["small"]
    with pytest.raises(CocotbFailure, match="test_gemm_no_stall"):
        run_gemm(cfg, cases[:2], GEMM_CORRUPT="1")


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
