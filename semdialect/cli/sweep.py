"""``semdialect sweep SPEC.toml``: a design-space sweep (grid of configurations × designs ×
workloads) on joblib/loky or Dask, every job cached by content, the Pareto front of area,
time per step, energy per step and SQNR as CSV, a plot and a summary (:mod:`sim.sweep`).

Every argument is checked first — the spec (unknown key, empty list, wrong type, unknown
workload or design, a point that is invalid or does not fit its SRAM), ``--out``, ``--cache``,
the engine flags — so bad input gets one line and exit status 2 before anything is created.
Outputs go to a staging folder that replaces ``--out`` only when the run succeeded
(:func:`semdialect.outdir.staged_dir`). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Any

from semdialect.cli.common import EPILOG
from semdialect.cli.output import check_dirs
from semdialect.outdir import check_out_dir, staged_dir
from semdialect.sim.sweep import (
    CACHE_ENV,
    ENGINES,
    GRID_KEYS,
    OUTPUTS,
    default_cache_dir,
    load_spec,
    open_engine,
    plan_sweep,
    run_sweep,
    say_stderr,
    write_outputs,
)

__all__ = ["add_parsers", "cmd_sweep", "real_tensors"]

#: most worker processes ``--workers`` accepts
MAX_WORKERS = 256

def _description() -> str:
    """The ``--help`` text: the spec, the grid keys, the jobs and cache, the outputs."""
    from semdialect.designs import configured_design, hardware_designs
    from semdialect.sim.memory import DEFAULT_CLOCK_MHZ

    hardware = ", ".join(d.name for d in hardware_designs())
    paragraphs = [
        "Sweep a grid of configurations and designs over workloads with the system model "
        "(cycles, DRAM stalls, energy: sim.memory), chip area (estimate, 180 nm: cached Yosys "
        "syntheses of each module x instances, plus SRAM) and the golden SQNR, and write the "
        "Pareto front.",
        f'SPEC.toml: [sweep] base = "default" (a shipped configuration or a TOML path), '
        f"workloads = [...] (shipped names or CSV paths; default all shipped), designs = "
        f'["{configured_design().name}"] (hardware designs: {hardware}), clock_mhz (default '
        f"{DEFAULT_CLOCK_MHZ:g}, stated in every row), skip_invalid = false (true: invalid "
        "points are skipped and listed in skipped.csv instead of an error), description. "
        "Relative paths are relative to the spec file.",
        "[grid]: lists of values (the Cartesian product, last key fastest) of: "
        + ", ".join(GRID_KEYS) + '. array is "ROWSxCOLS" (1..128 each); the drain then keeps '
        "the base's beats per tile (Config.on_array) and the frontend lanes the base's lanes "
        "per row (rounded down to a divisor of rows) unless lanes is on the grid; a "
        "formatbook without formats_per_cycle on the grid takes the base's, capped at its K; "
        '*_sram_width and softmax_lanes take "auto" (matched to the design). Examples: '
        "configs/sweeps/example.toml, configs/sweeps/bench.toml.",
        "Jobs: one per point x design x workload, keyed by the SHA-256 of the configuration, "
        "design, workload file, clock and the model's source files, stored as one JSON each "
        "under --cache by this process (atomic renames: a rerun, or another machine sharing "
        'the folder, reuses them; the run reports "N cached, M computed"); the SQNR once per '
        "distinct format and block.",
        "Outputs in --out: results.csv (every point x design x workload: grid values, "
        "area_logic/sram/mm2, seconds and energy J per step, sqnr_db, cycles, stall share, "
        "utilization, DRAM bytes, cached/computed), pareto.csv (non-dominated rows: minimise "
        "area, time and energy per step, maximise SQNR; per workload and over the geometric "
        "mean of the workloads), pareto.png, summary.md, sweep.json (run statistics), "
        "skipped.csv (if any).",
    ]
    return "\n\n".join(textwrap.fill(p, 92) for p in paragraphs)


def _workers(value: str) -> int:
    """``--workers``: an integer in 1..MAX_WORKERS."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if not 1 <= n <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_WORKERS}, got {n}")
    return n


def add_parsers(subparsers: Any) -> None:
    """Add the ``sweep`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "sweep", help="design-space sweep: grid x designs x workloads -> Pareto front",
        description=_description(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (see above)")
    p.add_argument("--out", default="reports/sweep", metavar="DIR",
                   help="output folder, replaced as a whole when the run succeeds (default "
                        "reports/sweep)")
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help="loky: joblib processes on this machine (the default); dask: "
                        "distributed, a LocalCluster of --workers single-thread processes "
                        "started and closed here, or the cluster at --scheduler")
    p.add_argument("--workers", type=_workers, default=2, metavar="N",
                   help="worker processes of loky or of the local Dask cluster (default 2)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="address of a running Dask scheduler (implies --engine dask); its "
                        "workers need semdialect installed (the job cache is read and "
                        "written here only)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help=f"job cache folder (default ${CACHE_ENV} if set, else "
                        "<build>/sweep-cache, build = $SEMDIALECT_BUILD_DIR or ./build)")
    p.add_argument("--area", choices=("yosys", "none"), default="yosys",
                   help="yosys (default): chip area from cached per-module Yosys syntheses "
                        "(the first run of a new module takes seconds to minutes); none: no "
                        "area (empty columns, fronts over time, energy and SQNR)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the spec and print the grid's size; run and write nothing")
    p.set_defaults(func=cmd_sweep)


def real_tensors() -> dict[str, Any]:
    """The shipped real sample tensors (MiniLM weight and activations, video tokens) by name:
    :func:`semdialect.evaluation.samples.sample_tensors` without the synthetics."""
    from semdialect.evaluation.samples import sample_tensors

    try:
        return {name: x for name, x, source in sample_tensors()
                if not source.startswith("synthetic")}
    except (ModuleNotFoundError, OSError) as exc:
        raise ValueError(f"accuracy: cannot load the shipped tensors ({exc})") from None


def cmd_sweep(args: argparse.Namespace) -> int:
    """``semdialect sweep``: check everything, run the sweep, write the outputs."""
    say = say_stderr("semdialect sweep")
    engine = args.engine or ("dask" if args.scheduler else "loky")
    if engine == "loky" and args.scheduler:
        raise ValueError("--scheduler: a scheduler address needs --engine dask")
    if engine == "dask" and importlib.util.find_spec("distributed") is None:
        raise ValueError("--engine dask: the distributed package is not installed "
                         "(pip install 'dask[distributed]')")
    spec = load_spec(args.spec)
    cache = Path(args.cache) if args.cache is not None else default_cache_dir()
    check_dirs({"--cache": cache})
    target = check_out_dir("--out", args.out)
    real_cache = Path(os.path.realpath(cache))
    if real_cache == target or target in real_cache.parents:
        raise ValueError(f"--cache: {cache} is inside --out {args.out}, which is replaced as a "
                         "whole; choose a cache folder elsewhere")
    plan = plan_sweep(spec, say)
    if args.dry_run:
        print(f"{spec.path}: {spec.grid_size} grid points, {len(plan.entries)} point/design "
              f"pairs, {len(plan.skipped)} skipped, {plan.jobs} jobs over "
              f"{len(spec.workloads)} workloads (dry run: nothing run or written)")
        return 0
    tensors = real_tensors()
    area = args.area != "none"
    with open_engine(engine, args.workers, args.scheduler) as eng:
        result = run_sweep(plan, eng, cache, area=area, tensors=tensors, say=say)
    command = shlex.join(["semdialect", "sweep", *sys.argv[2:]]) if sys.argv[1:2] == [
        "sweep"] else ""
    with staged_dir(args.out, "--out") as staging:
        write_outputs(staging.path, result, area=area, command=command)
        staging.carry_over(lambda name: name not in OUTPUTS)
    stats = result.stats
    print(f"wrote {target}/results.csv, pareto.csv, pareto.png, summary.md: "
          f"{stats['entries']} point/design pairs x {stats['workloads']} workloads, "
          f"{stats['cached']} cached, {stats['computed']} computed")
    return 0
