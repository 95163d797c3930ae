"""Benchmark of ``semdialect sweep`` (``python -m semdialect.sim.sweep_bench``).

1. **area warm-up** (timed on its own): every module the bench spec's chip areas need,
   generated and synthesized on loky with ``--workers`` processes (:func:`sim.sweep.area_stage`,
   cached: seconds when ``build/area`` already holds them);
2. **full sweep**: ``semdialect sweep configs/sweeps/bench.toml`` (≥ 1000 configurations × the
   7 shipped workloads) with the default engine (loky) on ``--workers`` processes, from an
   empty job cache, area from the warmed module cache — wall time of the command, and the
   job stage's time and rate from its ``sweep.json``;
3. **rerun** of the same command on the now full job cache (every job cached);
4. **Dask speedup**: the same command with ``--engine dask`` (a LocalCluster of 1, then 2
   single-thread worker processes, alternating, ``--repeat`` times each, the fastest counting)
   on a subset of the spec (the grid with ``cores`` = its first value only,
   :data:`DASK_SUBSET`), each from an empty job cache; the ratio of the job stages' times (and
   of the wall times) is measured in the same run. The load average before and after is
   printed: the machine's other work slows the 2-worker run more than the 1-worker one.

Prints a Markdown table. Every sweep runs the real command in a child process (the CLI loads
the shipped tensors for the SQNR column, a layer above ``sim``); work files go to a temporary
folder (``--keep DIR`` keeps them there instead).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from semdialect.paths import configs_dir
from semdialect.sim.sweep import area_stage, load_spec, open_engine, plan_sweep, say_stderr

__all__ = ["DASK_SUBSET", "main", "run_sweep_command", "subset_spec"]

#: the grid key the Dask comparison keeps at its first value (a stated subset of the bench)
DASK_SUBSET = "cores"


def run_sweep_command(spec: Path, work: Path, tag: str, cache: Path, *options: str
                      ) -> dict[str, Any]:
    """Run ``semdialect sweep spec`` in a child process (output in ``work/tag``, job cache
    ``cache``); returns its ``sweep.json`` statistics plus ``wall_s`` (seconds)."""
    out = work / tag
    cmd = [sys.executable, "-m", "semdialect", "sweep", str(spec), "--out", str(out),
           "--cache", str(cache), *options]
    print(f"sweep_bench: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    stats = json.loads((out / "sweep.json").read_text())
    stats["wall_s"] = time.perf_counter() - t0
    return stats


def _toml_value(value: Any) -> str:
    """A TOML literal of a string, number, bool or list of them (JSON's syntax is TOML's for
    these, but for booleans written the same way)."""
    return json.dumps(value)


def subset_spec(spec: Path, out: Path, key: str = DASK_SUBSET) -> int:
    """Write ``spec`` with grid ``key`` reduced to its first value to ``out`` (paths made
    absolute); returns the subset's grid points."""
    doc = tomllib.loads(spec.read_text())
    sweep, grid = dict(doc.get("sweep", {})), dict(doc.get("grid", {}))
    if isinstance(grid.get(key), list) and grid[key]:
        grid[key] = grid[key][:1]
    base = sweep.get("base")
    if isinstance(base, str) and (spec.parent / base).exists():
        sweep["base"] = str((spec.parent / base).resolve())
    lines = ["[sweep]", *(f"{k} = {_toml_value(v)}" for k, v in sweep.items()), "", "[grid]",
             *(f"{k} = {_toml_value(v)}" for k, v in grid.items()), ""]
    out.write_text("\n".join(lines))
    return load_spec(out).grid_size


def _row(label: str, s: dict[str, Any]) -> str:
    """One table row of a run's statistics."""
    jobs_s = s["seconds"]["jobs"]
    return (f"| {label} | {s['entries']} × {s['workloads']} | {s['jobs']} | "
            f"{s['cached']} / {s['computed']} | {s['engine']} | {jobs_s:.1f} | "
            f"{s['computed'] / jobs_s if jobs_s else 0:.0f} | {s['wall_s']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (module docstring) and print its Markdown table."""
    ap = argparse.ArgumentParser(prog="python -m semdialect.sim.sweep_bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(configs_dir() / "sweeps" / "bench.toml"),
                    help="the sweep spec (default configs/sweeps/bench.toml)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="Dask runs of each worker count, alternating 1, N, 1, N, ...; the "
                         "fastest of each counts (default 2: less noise from other load)")
    ap.add_argument("--dask-only", action="store_true",
                    help="only the area warm-up and the Dask comparison")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep the outputs and job caches in DIR (default: a temporary folder)")
    args = ap.parse_args(argv)
    spec_path = Path(args.spec).resolve()
    spec = load_spec(spec_path)
    plan = plan_sweep(spec)
    say = say_stderr("sweep_bench")
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    with open_engine("loky", args.workers) as engine:
        _, modules = area_stage(plan, engine, say)
    area_s = time.perf_counter() - t0

    runs: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="semdialect-sweep-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        workers = ["--workers", str(args.workers)]
        if not args.dask_only:
            runs.append(("full sweep, empty job cache",
                         run_sweep_command(spec_path, work, "full", work / "cache-full",
                                           *workers)))
            runs.append(("rerun, full job cache",
                         run_sweep_command(spec_path, work, "rerun", work / "cache-full",
                                           *workers)))
        subset = work / "subset.toml"
        points = subset_spec(spec_path, subset)
        best: dict[int, dict[str, Any]] = {}
        for rep in range(args.repeat):
            for n in (1, args.workers):
                tag = f"dask{n}-{rep}"
                stats = run_sweep_command(subset, work, tag, work / f"cache-{tag}",
                                          "--engine", "dask", "--workers", str(n))
                if n not in best or stats["seconds"]["jobs"] < best[n]["seconds"]["jobs"]:
                    best[n] = stats
    load_after = os.getloadavg()
    one, many = best[1], best[args.workers]
    runs += [(f"Dask subset, 1 worker (best of {args.repeat})", one),
             (f"Dask subset, {args.workers} workers (best of {args.repeat})", many)]

    print(f"\n## semdialect sweep benchmark ({spec_path.name}: {spec.grid_size} "
          f"configurations × {len(spec.workloads)} workloads; Dask subset: {DASK_SUBSET} = "
          f"its first value, {points} configurations)\n")
    print(f"Area warm-up: {modules} distinct modules, {area_s:.1f} s (loky, {args.workers} "
          "workers; cached syntheses are reused). Load average (1 min) "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} CPUs.\n")
    print("| run | points × workloads | jobs | cached / computed | engine | job stage (s) | "
          "jobs/s | command wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, stats in runs:
        print(_row(label, stats))
    print(f"\nDask speedup {args.workers} workers vs 1: "
          f"{one['seconds']['jobs'] / many['seconds']['jobs']:.2f}x (job stage), "
          f"{one['wall_s'] / many['wall_s']:.2f}x (command wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
