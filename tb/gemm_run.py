"""Run whole GEMMs through :class:`rtl.gemm_core.GemmCore` on Verilator (cocotb).

Shared by the tests (``tests/test_rtl_gemm_verilator.py``) and ``semdialect sim``: generate the
core for a configuration (test limits), build it once (cached by :func:`tb.runner.run_cocotb`)
and run ``tb/cocotb_gemm.py`` on a list of cases; every output is compared bit for bit with
the golden model inside the cocotb tests, and the measured no-stall cycles are written to a
JSON file.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

from semdialect.rtl.emit import generate_verilog
from semdialect.rtl.gemm_core import GemmCore
from semdialect.tb.runner import FAST_BUILD_ARGS, CocotbRun, run_cocotb

from semdialect.config import Config, load_config
from semdialect.paths import build_dir


def verilog_dir() -> Path:
    """Where the test builds of the GEMM core and their configuration files go."""
    return build_dir() / "verilog" / "gemm_tb"

#: GEMM core limits of the test builds (small: fast counters and a small buffer)
MAX_M = MAX_N = 255
MAX_KB = 8


def case(m: int, n: int, kb: int, data: str = "random", seed: int = 0) -> dict:
    return {"m": m, "n": n, "kb": kb, "data": data, "seed": seed}


#: expected no-stall cycles of a GEMM (M, N, K) — the cycle model, given by the caller
CycleModel = Callable[[int, int, int], int]


@functools.cache
def gemm_verilog(cfg: Config) -> tuple[Path, float]:
    """Generate the GemmCore of ``cfg`` (test limits); return its path and the seconds taken."""
    start = time.monotonic()
    name = f"gemm_core_{cfg.name.replace('-', '_')}"
    core = GemmCore.from_config(cfg, max_m=MAX_M, max_n=MAX_N, max_kb=MAX_KB)
    generate_verilog(core, name, verilog_dir())
    return verilog_dir() / f"{name}.v", time.monotonic() - start


def config_file(cfg: Config) -> Path:
    """A TOML file of ``cfg`` for the cocotb process (reduced configs are not shipped)."""
    path = verilog_dir() / f"{cfg.name}.toml"
    text = (
        f'name = "{cfg.name}"\n[array]\nrows = {cfg.rows}\ncols = {cfg.cols}\n'
        f'dataflow = "{cfg.dataflow}"\n[format]\nblock = {cfg.block}\n'
        f'formatbook = "{cfg.formatbook}"\nselect = "{cfg.select}"\n'
        f"[selector]\nformats_per_cycle = {cfg.formats_per_cycle}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    assert load_config(path) == cfg
    return path


def run_gemm(cfg: Config, cases: list[dict], expected_cycles: CycleModel | None = None,
             **env: str) -> tuple[CocotbRun, float, Path]:
    """Run ``cases`` on ``cfg``'s GemmCore; with ``expected_cycles`` (e.g.
    ``functools.partial(semdialect.sim.cycles.gemm_cycles, cfg)``) every no-stall GEMM and
    every back-to-back command period must take exactly that many cycles."""
    if expected_cycles is not None:
        cases = [{**c, "cycles": expected_cycles(c["m"], c["n"], c["kb"] * cfg.block)}
                 for c in cases]
    top, gen_seconds = gemm_verilog(cfg)
    cycles_tmp = verilog_dir() / f"cycles-{cfg.name}.json"
    cycles_tmp.unlink(missing_ok=True)
    extra_env = {
        "GEMM_CONFIG": str(config_file(cfg)),
        "GEMM_MAX_KB": str(MAX_KB),
        "GEMM_MAX_M": str(MAX_M),
        "GEMM_MAX_N": str(MAX_N),
        "GEMM_CASES": json.dumps(cases),
        "GEMM_CYCLES": str(cycles_tmp),
        **env,
    }
    run = run_cocotb([top], top.stem, "semdialect.tb.cocotb_gemm", extra_env=extra_env,
                     build_args=FAST_BUILD_ARGS)
    return run, gen_seconds, cycles_tmp


