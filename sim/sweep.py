"""Design-space sweep: a TOML spec → grid points → content-cached jobs on an engine → the
Pareto front of chip area, time per step, energy per step and accuracy.

**Spec** (:func:`load_spec`; every problem is one ``ValueError`` naming the spec file, the
table and the key)::

    [sweep]
    base = "default"              # a shipped configuration or a TOML path (relative: to the spec)
    workloads = ["opensora2_256px_129f"]  # shipped names or CSV paths; default: all shipped
    designs = ["semanticdialect"] # hardware designs of the registry; default: the configured one
    clock_mhz = 250.0             # default sim.memory.DEFAULT_CLOCK_MHZ (the 180 nm 4 ns target)
    skip_invalid = false          # true: invalid points are skipped and listed in skipped.csv
    description = "..."           # optional, shown in summary.md

    [grid]                        # lists of values of Config keys (a scalar = one value)
    formatbook = ["sd32", "dfp4"]
    block = [16, 32]
    formats_per_cycle = [8, 16]
    array = ["8x8", "16x16", "32x32"]
    act_sram_kib = [64, 128]
    dram_gbps = [25.6, 51.2]
    cores = [1, 2]

Grid keys: :data:`GRID_KEYS` — the format keys (formatbook, select, block,
formats_per_cycle), ``array`` ("ROWSxCOLS", 1..128 each), ``lanes``, ``drain_width``, every
``[pipeline]`` key and every system key (the SRAM sizes and port widths — a width or
``softmax_lanes`` may be ``"auto"``, matched to the design —, ``dram_gbps``, ``cores``,
``fused_attention``). The grid is the Cartesian product, the last key varying fastest.

**A point's configuration** (:func:`point_config`): the base with the grid's format and
pipeline keys; a formatbook on the grid without ``formats_per_cycle`` on it takes the base's
formats per cycle capped at the book's K (as :mod:`sim.ablation` does); then
:meth:`Config.on_array` of the point's array (the drain keeps the base's beats per tile);
frontend lanes keep the base's lanes per PE row (``lanes = base.lanes · rows / base.rows``
rounded down to a divisor of rows, at least 1: the default's one lane per row) unless
``lanes`` is on the grid; then the system keys and an explicit ``drain_width`` (with
``acc_stages`` on the grid, the base's drain width must suit the new tile or ``drain_width``
be on the grid too). Each point runs
every design of ``designs`` (:meth:`semdialect.designs.Design.config` on it) with
:func:`sim.memory.check_fits`. An invalid point or design (a ``Config`` check, a tile that
does not fit its SRAM) is an error naming the point and the key, unless ``skip_invalid``.

**Jobs** (:func:`step_key`): one per (point, design, workload), its key the SHA-256 of the
design's name, the point's configuration (every field but ``name``; a formatbook file's
bytes), the workload file's bytes, the clock and :func:`model_version` (a hash of the model's
source files, :data:`MODEL_SOURCES`, so editing the model invalidates every job). Accuracy
jobs (:func:`accuracy_key`): one per distinct (format, selection, block), the key over the
format, the tensors' bytes and the golden model's sources. Each result is one small JSON file
under the cache folder (``jobs/<2 hex>/<key>.json``), written by the calling process as the
results arrive (the workers need no access to it) to a temporary name and renamed into place,
so processes or machines sharing the folder never read a partial file.

**Area** (:func:`area_stage`, before the jobs): the distinct modules of every (point, design)
(:func:`sim.chip_area.distinct_modules`) are generated in the calling process (Amaranth;
cached by :func:`semdialect.rtl.emit.cached_verilog`) and synthesized on the engine
(:func:`sim.area.synthesize`, cached by Verilog content), largest first.

**Engines** (:func:`open_engine`): ``loky`` (joblib, one machine, ``workers`` processes) or
``dask`` (``distributed``: a ``LocalCluster`` of ``workers`` single-thread processes started
and closed, or an existing cluster at a scheduler address). Jobs travel in batches
(:func:`batches`: about :data:`TASKS_PER_WORKER` tasks per worker, at most :data:`MAX_BATCH`
jobs each; consecutive jobs share a configuration) so the engine's per-task overhead stays
small.

**Accuracy**: the golden SQNR (dB) of the design's activation format (its
:meth:`~semdialect.designs.Design.golden_format` and block) on the shipped real tensors
(:func:`semdialect.evaluation.samples.sample_tensors` without the synthetics: the MiniLM
query weight, the MiniLM FFN activations, the video tokens), each rounded to FP16 first as
``semdialect error`` does, pooled with equal weight per tensor:
SQNR = −10·log10(mean over tensors of Σ(x − q)² / Σ x²). (The tensors are passed in by the
caller: ``sim`` sits below ``evaluation``.)

**Pareto** (:func:`pareto_mask`): minimise area, time per step and energy per step, maximise
SQNR; per workload and over the geometric mean of the workloads' time and energy; a point is
on the front when no other point is at least as good in every objective and better in one.
Without area (``area=False``) the front is over the other three. Front rows of one design
with equal objectives are merged in ``pareto.csv`` (``equivalent_points``).

Layer: sim (the CLI, :mod:`semdialect.cli.sweep`, loads the tensors and writes the outputs
through :func:`semdialect.outdir.staged_dir`).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib
import itertools
import json
import math
import os
import re
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from semdialect import designs
from semdialect.config import (
    MAX_ARRAY,
    PIPELINE_RANGES,
    Config,
    resolve_config,
    system_fields,
)
from semdialect.golden.blocks import to_fp16
from semdialect.golden.formatbook import BUILTIN_FORMATBOOKS, get_formatbook
from semdialect.golden.formats import resolve_format
from semdialect.golden.metrics import sqnr_db_from_sums
from semdialect.golden.quantize import quantize
from semdialect.paths import build_dir, data_dir
from semdialect.sim.workloads import Gemm, load_workload, shipped_workloads, workload_path

__all__ = [
    "ENGINES",
    "GRID_KEYS",
    "MODEL_SOURCES",
    "OUTPUTS",
    "Entry",
    "Plan",
    "Point",
    "Skip",
    "SweepResult",
    "SweepSpec",
    "WorkloadRef",
    "accuracy_key",
    "area_stage",
    "batches",
    "default_cache_dir",
    "geomean_rows",
    "load_spec",
    "model_version",
    "open_engine",
    "pareto_mask",
    "plan_sweep",
    "point_config",
    "run_sweep",
    "scaled_lanes",
    "step_key",
    "write_outputs",
]

#: engines of ``--engine``
ENGINES = ("loky", "dask")
#: most grid points a spec may expand to
MAX_POINTS = 100_000
#: most jobs in one engine task
MAX_BATCH = 64
#: tasks per worker the jobs are split into (load balance vs per-task overhead)
TASKS_PER_WORKER = 8
#: the files a sweep writes into ``--out`` (anything else there is carried over)
OUTPUTS = ("results.csv", "pareto.csv", "pareto.png", "summary.md", "skipped.csv",
           "sweep.json")
#: the model's source files (relative to the repository layout: package folder, file): their
#: bytes make :func:`model_version`
MODEL_SOURCES = (
    ("sim", "memory.py"), ("sim", "mapping.py"), ("sim", "attention.py"),
    ("sim", "model.py"), ("sim", "cycles.py"), ("sim", "energy.py"), ("sim", "workloads.py"),
    ("semdialect", "config.py"), ("semdialect", "designs.py"), ("rtl", "timing.py"),
    ("golden", "formats.py"), ("golden", "formatbook.py"),
    ("data", "energy/assumptions_v1.toml"),
)
#: version of the job/result JSON layout (bump to invalidate every cache entry)
CACHE_FORMAT = 1
#: environment variable naming the default job cache folder
CACHE_ENV = "SEMDIALECT_SWEEP_CACHE"

_FORMAT_KEYS = ("formatbook", "select", "block", "formats_per_cycle")
_ARRAY_KEYS = ("array", "lanes", "drain_width")
_AUTO = "auto"
_ARRAY_RE = re.compile(r"([0-9]{1,3})x([0-9]{1,3})")
_SWEEP_KEYS = ("base", "workloads", "designs", "clock_mhz", "skip_invalid", "description")


def _grid_kinds() -> dict[str, str]:
    """Grid key → value kind ("int", "float", "str", "bool", "array", "int|auto")."""
    defaults = {f.name: f.default for f in fields(Config)}
    kinds: dict[str, str] = {"formatbook": "str", "select": "str", "block": "int",
                             "formats_per_cycle": "int", "array": "array", "lanes": "int",
                             "drain_width": "int"}
    kinds.update(dict.fromkeys(PIPELINE_RANGES, "int"))
    for key in system_fields():
        default = defaults[key]
        kinds[key] = ("int|auto" if default is None else "bool" if isinstance(default, bool)
                      else "float" if isinstance(default, float) else "int")
    return kinds


#: grid key → value kind
GRID_KEYS: dict[str, str] = _grid_kinds()


# ---------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadRef:
    """A workload of a sweep: its name (file stem), file, GEMM rows and file digest."""

    name: str
    path: Path
    gemms: tuple[Gemm, ...]
    sha256: str


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (:func:`load_spec`)."""

    path: Path
    base: Config
    base_spec: str
    workloads: tuple[WorkloadRef, ...]
    designs: tuple[str, ...]
    clock_mhz: float
    skip_invalid: bool
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    description: str = ""

    @property
    def grid_size(self) -> int:
        """Points of the Cartesian product."""
        return math.prod(len(values) for _, values in self.grid)

    @property
    def grid_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.grid)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_value(where: str, key: str, kind: str, value: Any, folder: Path) -> Any:
    """One grid value checked against its kind (``ValueError`` naming ``where`` and the key);
    returns it normalised (``"auto"`` → None, an array → (rows, cols), a formatbook path
    resolved against the spec's folder)."""
    def bad(expected: str) -> ValueError:
        return ValueError(f"{where}: {key}: expected {expected}, got {value!r}")

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind in ("int", "int|auto"):
        if kind == "int|auto" and value == _AUTO:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer" + (' or "auto"' if kind == "int|auto" else ""))
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise bad("a finite number")
        return float(value)
    if not isinstance(value, str):
        raise bad("a string")
    if kind == "array":
        match = _ARRAY_RE.fullmatch(value)
        if not match or not all(1 <= int(v) <= MAX_ARRAY for v in match.groups()):
            raise bad(f'"ROWSxCOLS" with 1..{MAX_ARRAY} rows and columns, e.g. "16x16"')
        return int(match[1]), int(match[2])
    if key == "formatbook":
        book = value
        if value not in BUILTIN_FORMATBOOKS:
            path = Path(value)
            book = str(path if path.is_absolute() else folder / path)
        try:
            get_formatbook(book)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{where}: formatbook: {exc}") from None
        return book
    return value


def _as_list(where: str, key: str, value: Any) -> list[Any]:
    """A spec list (a scalar is one value); an empty list is an error."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError(f"{where}: {key}: empty list (give at least one value)")
    return items


def _check_unique(where: str, key: str, values: Sequence[Any]) -> None:
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise ValueError(f"{where}: {key}: duplicate value {v!r}")
        seen.append(v)


def _resolve_path(value: str, folder: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else folder / path


def _load_workloads(where: str, names: Sequence[Any], folder: Path) -> tuple[WorkloadRef, ...]:
    refs: list[WorkloadRef] = []
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{where}: workloads: expected names or CSV paths, got {name!r}")
        shipped = name in shipped_workloads()
        try:
            path = workload_path(name if shipped else str(_resolve_path(name, folder)))
            gemms = tuple(load_workload(path))
        except (ValueError, OSError) as exc:
            raise ValueError(f"{where}: workloads: {exc}") from None
        refs.append(WorkloadRef(Path(path).stem, Path(path), gemms, _sha256_file(Path(path))))
    _check_unique(where, "workloads", [r.name for r in refs])
    return tuple(refs)


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep spec (see the module docstring); every problem is one
    ``ValueError`` naming the file, the table and the key. Nothing is written."""
    from semdialect.sim.memory import DEFAULT_CLOCK_MHZ

    spec_path = Path(path)
    shown = f"sweep spec {os.fspath(path)}"
    try:
        doc = tomllib.loads(spec_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{shown}: is a folder, expected a TOML file") from None
    except OSError as exc:
        raise ValueError(f"{shown}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{shown}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{shown}: not valid TOML ({exc})") from None
    folder = spec_path.parent
    unknown = sorted(set(doc) - {"sweep", "grid"})
    if unknown:
        raise ValueError(f"{shown}: unknown table or key {unknown[0]!r} (expected [sweep] and "
                         "[grid])")
    sweep, grid = doc.get("sweep", {}), doc.get("grid", {})
    for name, table in (("sweep", sweep), ("grid", grid)):
        if not isinstance(table, dict):
            raise ValueError(f"{shown}: [{name}] must be a table")
    for key in sweep:
        if key not in _SWEEP_KEYS:
            raise ValueError(f"{shown}: [sweep] {key}: unknown key (choose from "
                             f"{', '.join(_SWEEP_KEYS)})")
    where = f"{shown}: [sweep]"

    base_spec = sweep.get("base", "default")
    if not isinstance(base_spec, str):
        raise ValueError(f"{where} base: expected a configuration name or path, got "
                         f"{base_spec!r}")
    try:
        from semdialect.config import shipped_configs

        base_arg = base_spec if base_spec in shipped_configs() else str(
            _resolve_path(base_spec, folder))
        base = resolve_config(base_arg)
    except ValueError as exc:
        raise ValueError(f"{where} base: {exc}") from None

    workloads = _load_workloads(f"{where}", _as_list(where, "workloads", sweep.get(
        "workloads", list(shipped_workloads()))), folder)

    hardware = [d.name for d in designs.hardware_designs()]
    names = _as_list(where, "designs", sweep.get("designs", designs.configured_design().name))
    for name in names:
        if name not in hardware:
            raise ValueError(f"{where} designs: unknown hardware design {name!r} (choose from "
                             f"{', '.join(hardware)})")
    _check_unique(where, "designs", names)

    clock = sweep.get("clock_mhz", DEFAULT_CLOCK_MHZ)
    if (isinstance(clock, bool) or not isinstance(clock, (int, float))
            or not math.isfinite(clock) or not 0 < clock <= 1e5):
        raise ValueError(f"{where} clock_mhz: expected a number of MHz in (0, 100000], "
                         f"got {clock!r}")
    skip = sweep.get("skip_invalid", False)
    if not isinstance(skip, bool):
        raise ValueError(f"{where} skip_invalid: expected true or false, got {skip!r}")
    description = sweep.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"{where} description: expected a string, got {description!r}")

    axes: list[tuple[str, tuple[Any, ...]]] = []
    for key, raw in grid.items():
        gwhere = f"{shown}: [grid]"
        if key not in GRID_KEYS:
            raise ValueError(f"{gwhere} {key}: unknown key (grid keys: {', '.join(GRID_KEYS)})")
        values = [_check_value(gwhere, key, GRID_KEYS[key], v, folder)
                  for v in _as_list(gwhere, key, raw)]
        _check_unique(gwhere, key, values)
        axes.append((key, tuple(values)))
    spec = SweepSpec(spec_path, base, base_spec, workloads, tuple(names), float(clock), skip,
                     tuple(axes), description)
    if spec.grid_size > MAX_POINTS:
        raise ValueError(f"{shown}: [grid] expands to {spec.grid_size} points, more than "
                         f"{MAX_POINTS}")
    return spec


# ---------------------------------------------------------------------------------------------
# Points
# ---------------------------------------------------------------------------------------------


def scaled_lanes(base: Config, rows: int) -> int:
    """Frontend lanes of an array with ``rows`` PE rows: the base's lanes per row
    (``base.lanes · rows / base.rows``, rounded down), lowered to a divisor of ``rows``, at
    least 1."""
    target = max(1, min(rows, base.lanes * rows // base.rows))
    return max(d for d in range(1, target + 1) if rows % d == 0)


def point_config(base: Config, params: Mapping[str, Any]) -> Config:
    """The configuration of one grid point (``params``: grid key → normalised value, see the
    module docstring for the order); ``ValueError`` naming the key when invalid."""
    fmt = {k: params[k] for k in (*_FORMAT_KEYS, *PIPELINE_RANGES) if k in params}
    if "formatbook" in params and "formats_per_cycle" not in params:
        fmt["formats_per_cycle"] = min(base.formats_per_cycle,
                                       get_formatbook(params["formatbook"]).size)
    if "drain_width" in params:  # overridden below: any valid width meanwhile
        fmt["drain_width"] = base.rows * base.cols * params.get("acc_stages", base.acc_stages)
    try:
        cfg = replace(base, **fmt)
    except ValueError as exc:
        if str(exc).startswith("drain_width") and "acc_stages" in params:
            raise ValueError(f"{exc} (the base's drain width with acc_stages="
                             f"{params['acc_stages']}: put drain_width on the grid)") from None
        raise
    rows, cols = params.get("array", (base.rows, base.cols))
    cfg = replace(cfg.on_array(rows, cols), name=base.name)
    final: dict[str, Any] = {k: params[k] for k in system_fields() if k in params}
    if "array" in params and "lanes" not in params:
        final["lanes"] = scaled_lanes(base, rows)
    for key in ("lanes", "drain_width"):
        if key in params:
            final[key] = params[key]
    return replace(cfg, **final) if final else cfg


@dataclass(frozen=True)
class Point:
    """One grid point: its 0-based ``index``, grid values (as the spec shows them) and
    configuration."""

    index: int
    params: tuple[tuple[str, Any], ...]
    cfg: Config

    def describe(self) -> str:
        """``key=value, ...`` of its grid values."""
        return ", ".join(f"{k}={v}" for k, v in self.params) or "the base configuration"


@dataclass(frozen=True)
class Entry:
    """A point run with one design."""

    point: Point
    design: str


@dataclass(frozen=True)
class Skip:
    """A skipped point (``design`` empty: every design) and why."""

    index: int
    params: tuple[tuple[str, Any], ...]
    design: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """A validated sweep: its spec, the (point, design) entries that run and the skipped
    ones."""

    spec: SweepSpec
    entries: tuple[Entry, ...]
    skipped: tuple[Skip, ...]

    @property
    def jobs(self) -> int:
        """(point, design, workload) jobs."""
        return len(self.entries) * len(self.spec.workloads)


def _shown(key: str, value: Any) -> Any:
    """A normalised grid value as the spec wrote it."""
    if key == "array":
        return f"{value[0]}x{value[1]}"
    if value is None:
        return _AUTO
    return value


def plan_sweep(spec: SweepSpec, say: Callable[[str], None] | None = None) -> Plan:
    """Expand the grid and check every point with every design (:meth:`Config` checks and
    :func:`sim.memory.check_fits`); an invalid one is a ``ValueError`` naming the point and
    the key, or, with ``skip_invalid``, a :class:`Skip`. Nothing is written."""
    from semdialect.sim.memory import check_fits
    from semdialect.sim.model import Design

    keys = spec.grid_keys
    entries: list[Entry] = []
    skipped: list[Skip] = []
    hint = " (set [sweep] skip_invalid = true to skip such points)"
    for index, values in enumerate(itertools.product(*(v for _, v in spec.grid))):
        params = dict(zip(keys, values, strict=True))
        shown = tuple((k, _shown(k, v)) for k, v in params.items())
        try:
            cfg = point_config(spec.base, params)
        except ValueError as exc:
            if not spec.skip_invalid:
                where = ", ".join(f"{k}={v}" for k, v in shown)
                raise ValueError(f"sweep spec {spec.path}: grid point {index} ({where}): "
                                 f"{exc}{hint}") from None
            skipped.append(Skip(index, shown, "", str(exc)))
            continue
        point = Point(index, shown, cfg)
        for name in spec.designs:
            try:
                check_fits(Design.of(name, cfg))
            except ValueError as exc:
                if not spec.skip_invalid:
                    raise ValueError(f"sweep spec {spec.path}: grid point {index} "
                                     f"({point.describe()}), design {name}: {exc}{hint}"
                                     ) from None
                skipped.append(Skip(index, shown, name, str(exc)))
                continue
            entries.append(Entry(point, name))
    if not entries:
        raise ValueError(f"sweep spec {spec.path}: no valid point ({len(skipped)} skipped; "
                         f"first: {skipped[0].reason if skipped else '-'})")
    if say and skipped:
        say(f"{len(skipped)} invalid point/design pairs skipped (skipped.csv)")
    return Plan(spec, tuple(entries), tuple(skipped))


# ---------------------------------------------------------------------------------------------
# Keys and the cache
# ---------------------------------------------------------------------------------------------


def _source_folder(folder: str) -> Path:
    """Where the package folder ``folder`` of :data:`MODEL_SOURCES` lives (editable or
    installed): ``data`` → :func:`semdialect.paths.data_dir`, ``semdialect`` → the package's
    own folder, else the subpackage ``semdialect.<folder>``."""
    if folder == "data":
        return data_dir()
    module = importlib.import_module("semdialect" if folder == "semdialect"
                                     else f"semdialect.{folder}")
    return Path(str(module.__file__)).resolve().parent


def _sources_digest(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.parent.name}/{path.name}\0".encode())
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except FileNotFoundError:
            digest.update(b"missing")
    return digest.hexdigest()


def model_version() -> str:
    """SHA-256 of the model's source files (:data:`MODEL_SOURCES`; a missing file counts as
    missing): a job cached under another model version is never reused."""
    return _sources_digest(_source_folder(folder) / name for folder, name in MODEL_SOURCES)


def golden_version() -> str:
    """SHA-256 of the golden model's source files (accuracy jobs)."""
    return _sources_digest(sorted(_source_folder("golden").glob("*.py")))


def _config_doc(cfg: Config) -> dict[str, Any]:
    """A configuration as a key document: every field but ``name``; a formatbook file adds
    its bytes' SHA-256."""
    doc = {k: v for k, v in asdict(cfg).items() if k != "name"}
    if cfg.formatbook not in BUILTIN_FORMATBOOKS:
        doc["formatbook_sha256"] = _sha256_file(Path(cfg.formatbook))
    return doc


def _digest(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def step_key(cfg: Config, design: str, workload_sha256: str, clock_mhz: float, model: str
             ) -> str:
    """The cache key of one (configuration, design, workload) job (module docstring)."""
    return _digest({"kind": "step", "format": CACHE_FORMAT, "config": _config_doc(cfg),
                    "design": design, "rho": "0", "workload": workload_sha256,
                    "clock_mhz": repr(float(clock_mhz)), "model": model})


def accuracy_spec(cfg: Config, design: str) -> tuple[str, str | None, int]:
    """(format or formatbook, selection, block) of a design's activations on ``cfg``."""
    d = designs.design(design)
    fmt, select = d.format_spec(cfg)
    return fmt, select, d.block_size(cfg)


def accuracy_key(fmt: str, select: str | None, block: int, tensors_sha256: str,
                 golden: str) -> str:
    """The cache key of one accuracy job (module docstring)."""
    book = None if fmt in BUILTIN_FORMATBOOKS or not fmt.endswith(".toml") else _sha256_file(
        Path(fmt))
    return _digest({"kind": "sqnr", "format": CACHE_FORMAT, "fmt": fmt, "book": book,
                    "select": select, "block": block, "tensors": tensors_sha256,
                    "golden": golden})


def tensors_digest(tensors: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        x = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}\0{x.dtype.str}\0{x.shape}\0".encode())
        digest.update(x.tobytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$SEMDIALECT_SWEEP_CACHE`` if set, else ``<build>/sweep-cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else build_dir() / "sweep-cache"


def _entry_path(cache: Path, key: str) -> Path:
    return cache / "jobs" / key[:2] / f"{key}.json"


def cache_read(cache: Path, key: str) -> dict[str, Any] | None:
    """The cached result of ``key``, or None (missing, unreadable or of another key)."""
    try:
        doc = json.loads(_entry_path(cache, key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    result = doc.get("result")
    return result if isinstance(result, dict) else None


def cache_write(cache: Path, key: str, result: Mapping[str, Any]) -> None:
    """Store ``result`` under ``key``: a temporary file in the entry's folder renamed into
    place (atomic: a concurrent reader sees the old state or the whole new file)."""
    path = _entry_path(cache, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"key": key, "result": result}, fh, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Tasks (run on the engine's workers: module-level, picklable)
# ---------------------------------------------------------------------------------------------


def _step_result(cfg: Config, design: str, gemms: Sequence[Gemm], clock_mhz: float
                 ) -> dict[str, Any]:
    """One job: :func:`sim.memory.evaluate_step` of ``design`` on ``cfg`` → a JSON-able dict."""
    from semdialect.sim.memory import evaluate_step
    from semdialect.sim.model import Design

    step = evaluate_step(Design.of(design, cfg), gemms, clock_mhz)
    return {"cycles": float(step.cycles), "core_cycles": float(step.core_cycles),
            "stall_cycles": float(step.stall_cycles), "seconds": float(step.seconds),
            "energy_j": float(step.energy_j),
            "energy_parts_j": {k: float(v) for k, v in step.energy_parts_j.items()},
            "dram_bytes": float(step.dram_bytes), "macs": int(step.macs),
            "utilization": float(step.utilization)}


def sqnr_pooled(tensors: Mapping[str, np.ndarray], fmt: str, select: str | None, block: int
                ) -> dict[str, Any]:
    """Golden SQNR (dB) of a format on ``tensors``, pooled with equal weight per tensor
    (module docstring); also each tensor's own SQNR."""
    ratios: list[float] = []
    each: dict[str, float] = {}
    # a formatbook file names a dialect format with that book
    book_file = fmt not in BUILTIN_FORMATBOOKS and fmt.endswith(".toml")
    form = resolve_format(get_formatbook(fmt) if book_file else fmt, select)
    for name in sorted(tensors):
        x = np.asarray(tensors[name], np.float64)
        q = quantize(to_fp16(tensors[name], name, block), form, block=block, name=name)
        d = x - np.asarray(q.dequant, np.float64)
        signal, noise = float(np.sum(x * x)), float(np.sum(d * d))
        each[name] = sqnr_db_from_sums(signal, noise)
        ratios.append(noise / signal)
    return {"sqnr_db": sqnr_db_from_sums(float(len(ratios)), math.fsum(ratios)),
            "per_tensor_db": each}


def run_task(task: tuple[str, Any]) -> list[tuple[str, Any]]:
    """Run one engine task: ``("step", (jobs, gemms by workload, clock))``,
    ``("sqnr", (jobs, tensors))`` or ``("area", (key, verilog, top))``; returns (key,
    result) pairs (an area task: its key and the module's NAND2 equivalents)."""
    kind, payload = task
    if kind == "step":
        jobs, gemms, clock = payload
        return [(key, _step_result(cfg, design, gemms[wl], clock))
                for key, cfg, design, wl in jobs]
    if kind == "sqnr":
        jobs, tensors = payload
        return [(key, sqnr_pooled(tensors, fmt, select, block))
                for key, fmt, select, block in jobs]
    if kind == "area":
        from semdialect.sim.chip_area import synthesize_text

        key, verilog, top = payload
        return [(key, synthesize_text(verilog, top))]
    raise ValueError(f"task: unknown kind {kind!r}")


def batches(items: Sequence[Any], workers: int) -> list[list[Any]]:
    """``items`` in consecutive batches: about :data:`TASKS_PER_WORKER` per worker, at most
    :data:`MAX_BATCH` items each."""
    if not items:
        return []
    size = max(1, min(MAX_BATCH, math.ceil(len(items) / (workers * TASKS_PER_WORKER))))
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------------


@dataclass
class Engine:
    """A running engine: ``map`` runs a function over tasks on its workers and yields the
    results as they finish (any order)."""

    name: str
    workers: int
    describe: str
    map: Callable[[Callable[[Any], Any], Sequence[Any]], Iterator[Any]]


@contextlib.contextmanager
def open_engine(kind: str = "loky", workers: int = 2, scheduler: str | None = None
                ) -> Iterator[Engine]:
    """An engine (module docstring): ``loky`` with ``workers`` processes, or ``dask`` — a
    ``LocalCluster`` of ``workers`` single-thread worker processes (started here, closed on
    exit) or, with ``scheduler`` (``tcp://HOST:PORT``), the existing cluster there."""
    if kind not in ENGINES:
        raise ValueError(f"--engine: unknown {kind!r} (choose from {', '.join(ENGINES)})")
    if kind == "loky":
        if scheduler is not None:
            raise ValueError("--scheduler: a scheduler address needs --engine dask")
        from joblib import Parallel, delayed

        def loky_map(fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
            if not tasks:
                return iter(())
            run = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
            return iter(run(delayed(fn)(t) for t in tasks))

        yield Engine("loky", workers, f"joblib/loky, {workers} worker processes", loky_map)
        return
    import logging

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        text = f"Dask LocalCluster, {workers} single-thread worker processes"
    else:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValueError(f"--scheduler: cannot connect to {scheduler} ({exc})") from None
        workers = max(1, sum(w.get("nthreads", 1) for w in
                             client.scheduler_info()["workers"].values()))
        text = f"Dask cluster at {scheduler}, {workers} worker threads"

    def dask_map(fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
        futures = client.map(fn, list(tasks), pure=False)
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            client.cancel(futures)

    try:
        yield Engine("dask", workers, text, dask_map)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


class Progress:
    """Done/total, cached, rate and ETA of the jobs on stderr, at most once a second."""

    def __init__(self, total: int, cached: int, say: Callable[[str], None]) -> None:
        self.total, self.cached, self.done = total, cached, cached
        self.say = say
        self.t0 = self.last = time.perf_counter()

    def add(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < 1.0 and self.done < self.total:
            return
        self.last = now
        computed = self.done - self.cached
        rate = computed / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate else float("inf")
        self.say(f"jobs {self.done}/{self.total} ({self.cached} cached, {computed} computed), "
                 f"{rate:.0f} jobs/s, ETA {eta:.0f} s")


@dataclass
class SweepResult:
    """What :func:`run_sweep` produced: the plan, the rows of ``results.csv`` and the run's
    statistics (``sweep.json``)."""

    plan: Plan
    rows: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


def area_stage(plan: Plan, engine: Engine, say: Callable[[str], None]
                ) -> tuple[dict[tuple[int, str], Any], int]:
    """Synthesize every distinct module the chip areas need — Verilog generated here (cached,
    :func:`semdialect.rtl.emit.cached_verilog`), Yosys on the engine (cached by content) —
    and return the :class:`~sim.chip_area.ChipArea` of each (point index, design) and the
    number of distinct modules."""
    from semdialect.sim.chip_area import chip_area, distinct_modules

    modules = distinct_modules((e.point.cfg, designs.design(e.design)) for e in plan.entries)
    say(f"area: {len(modules)} distinct modules (Verilog generated here; Yosys on the engine; "
        "both cached)")
    key_of: dict[Any, str] = {}
    tasks: dict[str, tuple[str, Any]] = {}
    for spec in modules:
        text = spec.verilog()
        key = hashlib.sha256(f"{spec.module}\0{text}".encode()).hexdigest()
        key_of[spec] = key
        tasks.setdefault(key, ("area", (key, text, spec.module)))
    nand2_by_key: dict[str, float] = {}
    t0 = time.perf_counter()
    # the largest Verilog first: the longest syntheses start first
    ordered = sorted(tasks.values(), key=lambda t: -len(t[1][1]))
    for out in engine.map(run_task, ordered):
        for key, value in out:
            nand2_by_key[key] = value
            say(f"area: {len(nand2_by_key)}/{len(tasks)} modules synthesized "
                f"({time.perf_counter() - t0:.0f} s)")
    nand2 = {spec: nand2_by_key[key] for spec, key in key_of.items()}
    areas = {(e.point.index, e.design): chip_area(e.point.cfg, designs.design(e.design), nand2)
             for e in plan.entries}
    return areas, len(tasks)


def run_sweep(plan: Plan, engine: Engine, cache: Path, *, area: bool = True,
              tensors: Mapping[str, np.ndarray] | None = None,
              say: Callable[[str], None] = print) -> SweepResult:
    """Run a planned sweep on ``engine``: the area stage (unless ``area`` is False), the
    accuracy jobs (when ``tensors`` are given) and the step jobs, each reused from ``cache``
    when its key is there and stored there when computed; returns the rows of
    ``results.csv`` and the statistics."""
    spec = plan.spec
    stats: dict[str, Any] = {"engine": engine.describe, "workers": engine.workers,
                             "points": len({e.point.index for e in plan.entries}),
                             "entries": len(plan.entries), "workloads": len(spec.workloads),
                             "skipped": len(plan.skipped), "seconds": {}}
    t0 = time.perf_counter()
    areas: dict[tuple[int, str], Any] = {}
    stats["area_modules"] = 0
    if area:
        areas, stats["area_modules"] = area_stage(plan, engine, say)
    stats["seconds"]["area"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    model, golden = model_version(), golden_version()
    # accuracy jobs: one per distinct (format, selection, block)
    acc_of: dict[tuple[int, str], str] = {}
    acc_jobs: dict[str, tuple[str, str | None, int]] = {}
    if tensors is not None:
        tdigest = tensors_digest(tensors)
        for e in plan.entries:
            fmt, select, block = accuracy_spec(e.point.cfg, e.design)
            key = accuracy_key(fmt, select, block, tdigest, golden)
            acc_of[(e.point.index, e.design)] = key
            acc_jobs.setdefault(key, (fmt, select, block))
    # step jobs: one per (point, design, workload); equal keys run once
    step_of: dict[tuple[int, str, str], str] = {}
    step_jobs: dict[str, tuple[Config, str, str]] = {}
    for e in plan.entries:
        for wl in spec.workloads:
            key = step_key(e.point.cfg, e.design, wl.sha256, spec.clock_mhz, model)
            step_of[(e.point.index, e.design, wl.name)] = key
            step_jobs.setdefault(key, (e.point.cfg, e.design, wl.name))
    results: dict[str, dict[str, Any]] = {}
    for key in [*acc_jobs, *step_jobs]:
        hit = cache_read(cache, key)
        if hit is not None:
            results[key] = hit
    cached = set(results)
    todo_acc = [(k, *v) for k, v in acc_jobs.items() if k not in cached]
    todo_step = [(k, *v) for k, v in step_jobs.items() if k not in cached]
    gemms = {wl.name: wl.gemms for wl in spec.workloads}
    tasks: list[tuple[str, Any]] = [("sqnr", ([job], dict(tensors or {}))) for job in todo_acc]
    for batch in batches(todo_step, engine.workers):
        needed = {wl for *_, wl in batch}
        tasks.append(("step", (batch, {wl: gemms[wl] for wl in needed}, spec.clock_mhz)))
    total = len(acc_jobs) + len(step_jobs)
    say(f"jobs: {len(step_jobs)} step jobs ({len(plan.entries)} point/design pairs × "
        f"{len(spec.workloads)} workloads) + {len(acc_jobs)} accuracy jobs; "
        f"{len(cached)} cached, {len(todo_acc) + len(todo_step)} to compute on "
        f"{engine.describe}")
    progress = Progress(total, len(cached), say)
    cache.mkdir(parents=True, exist_ok=True)
    for out in engine.map(run_task, tasks):
        for key, result in out:
            cache_write(cache, key, result)
            results[key] = result
        progress.add(len(out))
    stats["seconds"]["jobs"] = time.perf_counter() - t1
    stats.update(jobs=total, step_jobs=len(step_jobs), accuracy_jobs=len(acc_jobs),
                 cached=len(cached), computed=total - len(cached))
    say(f"jobs done: {len(cached)} cached, {total - len(cached)} computed "
        f"({stats['seconds']['jobs']:.1f} s)")

    rows: list[dict[str, Any]] = []
    for e in plan.entries:
        ident = (e.point.index, e.design)
        chip = areas.get(ident)
        acc = results.get(acc_of[ident]) if ident in acc_of else None
        for wl in spec.workloads:
            key = step_of[(e.point.index, e.design, wl.name)]
            rows.append(_row(plan, e, wl.name, results[key], chip, acc,
                             "cached" if key in cached else "computed"))
    return SweepResult(plan, rows, stats)


# ---------------------------------------------------------------------------------------------
# Rows, Pareto fronts and outputs
# ---------------------------------------------------------------------------------------------

#: configuration columns of results.csv beyond the grid keys (the point's resolved values)
_RESOLVED = ("rows", "cols", "lanes", "drain_width", "cores")
#: result columns of results.csv
RESULT_COLUMNS = ("clock_mhz", "area_logic_mm2", "area_sram_mm2", "area_mm2",
                  "seconds_per_step", "energy_j_per_step", "sqnr_db", "cycles_per_step",
                  "core_cycles_per_step", "stall_share", "utilization", "dram_bytes_per_step",
                  "macs_per_step", "job")
#: prefix of the energy-by-category columns
_PART = "energy_part_"
#: the objectives: column → +1 minimised, −1 maximised
OBJECTIVES = {"area_mm2": 1, "seconds_per_step": 1, "energy_j_per_step": 1, "sqnr_db": -1}


def result_columns(spec: SweepSpec, rows: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Columns of results.csv: point, design, format, workload, the grid keys, the resolved
    array/cores values not on the grid, design_block, :data:`RESULT_COLUMNS`, then the energy
    per step by category (``energy_part_<category>_j``, the model's categories in ``rows``)."""
    grid = list(spec.grid_keys)
    parts = sorted({k for r in rows for k in r if k.startswith(_PART) and k.endswith("_j")})
    return ["point", "design", "format", "workload", *grid,
            *(k for k in _RESOLVED if k not in grid), "design_block", *RESULT_COLUMNS, *parts]


def _row(plan: Plan, e: Entry, workload: str, step: Mapping[str, Any], chip: Any,
         acc: Mapping[str, Any] | None, job: str) -> dict[str, Any]:
    cfg = e.point.cfg
    d = designs.design(e.design)
    row: dict[str, Any] = {"point": e.point.index, "design": e.design,
                           "format": d.row_label(cfg), "workload": workload,
                           **dict(e.point.params)}
    row.update({k: getattr(cfg, k) for k in _RESOLVED if k not in row})
    row["design_block"] = d.block_size(cfg)
    cycles = step["cycles"]
    row.update({
        "clock_mhz": plan.spec.clock_mhz,
        "area_logic_mm2": chip.logic_mm2 if chip else "",
        "area_sram_mm2": chip.sram_mm2 if chip else "",
        "area_mm2": chip.total_mm2 if chip else "",
        "seconds_per_step": step["seconds"], "energy_j_per_step": step["energy_j"],
        "sqnr_db": acc["sqnr_db"] if acc else "", "cycles_per_step": cycles,
        "core_cycles_per_step": step["core_cycles"],
        "stall_share": step["stall_cycles"] / cycles if cycles else 0.0,
        "utilization": step["utilization"], "dram_bytes_per_step": step["dram_bytes"],
        "macs_per_step": step["macs"], "job": job})
    row.update({f"{_PART}{k}_j": v for k, v in step["energy_parts_j"].items()})
    return row


def pareto_mask(objectives: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``objectives`` (n × k, every column minimised): row i is kept
    unless some row j is ≤ in every column and < in one. Vectorised in chunks of rows."""
    obj = np.asarray(objectives, dtype=np.float64)
    n = obj.shape[0]
    keep = np.ones(n, dtype=bool)
    chunk = max(1, (1 << 22) // max(1, n * obj.shape[1]))
    for start in range(0, n, chunk):
        mine = obj[start:start + chunk, None, :]  # (c, 1, k)
        le = np.all(obj[None, :, :] <= mine, axis=2)  # j ≤ i in every column
        lt = np.any(obj[None, :, :] < mine, axis=2)  # j < i in one
        keep[start:start + chunk] = ~np.any(le & lt, axis=1)
    return keep


def _objective_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The objectives present (area and SQNR are blank when not computed)."""
    return [c for c in OBJECTIVES if rows and all(r[c] != "" for r in rows)]


def geomean_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (point, design): area and SQNR as they are, time and energy per step the
    geometric mean over the workloads (``workload`` = ``geomean``)."""
    groups: dict[tuple[int, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["point"], r["design"]), []).append(r)
    out = []
    for group in groups.values():
        row = dict(group[0])
        row["workload"] = "geomean"
        for col in ("seconds_per_step", "energy_j_per_step"):
            row[col] = math.exp(math.fsum(math.log(g[col]) for g in group) / len(group))
        out.append(row)
    return out


def pareto_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Pareto-optimal rows per workload, then over the geometric mean (:data:`OBJECTIVES`
    present in the rows). Front rows of one design with equal objectives (e.g. a baseline
    design on points that differ only in keys it does not use, such as the formatbook for
    MXFP4) are merged into the first; ``equivalent_points`` lists the others."""
    cols = _objective_columns(rows)
    out: list[dict[str, Any]] = []
    by_workload: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_workload.setdefault(r["workload"], []).append(r)
    by_workload["geomean"] = geomean_rows(rows)
    for group in by_workload.values():
        obj = np.array([[OBJECTIVES[c] * float(r[c]) for c in cols] for r in group])
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r, on in zip(group, pareto_mask(obj), strict=True):
            if not on:
                continue
            same = (r["design"], *(r[c] for c in cols))
            if same in merged:
                text = merged[same]["equivalent_points"]
                merged[same]["equivalent_points"] = f"{text} {r['point']}".strip()
            else:
                merged[same] = {**r, "equivalent_points": ""}
        out += merged.values()
    return out


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _assumptions(area: bool, clock_mhz: float) -> list[str]:
    """The stated assumptions of every output."""
    from semdialect.sim.chip_area import (
        AREA_LABEL,
        SRAM_ARRAY_EFFICIENCY,
        SRAM_BITCELL_UM2,
        nand2_um2,
    )

    lines = [f"clock {clock_mhz:g} MHz for every design and point (time = cycles / clock)"]
    if area:
        lines.append(f"area: {AREA_LABEL} — cores × (array logic + SRAM); logic = module "
                     f"NAND2 equivalents (Yosys generic) × instances × {nand2_um2():g} µm² "
                     "(OSU 0.18 µm NAND2X1); SRAM = bits × "
                     f"{SRAM_BITCELL_UM2:g} µm²/bit [ours] / {SRAM_ARRAY_EFFICIENCY:g} array "
                     "efficiency [ours]")
    else:
        lines.append("area: not computed (--area none); the fronts are over time, energy and "
                     "SQNR")
    lines.append("SQNR: golden model, the design's activation format on the shipped real "
                 "tensors (MiniLM query weight, MiniLM FFN activations, video tokens), pooled "
                 "with equal weight per tensor")
    return lines


def plot_front(rows: Sequence[Mapping[str, Any]], path: Path, title: str, area: bool) -> None:
    """``pareto.png``: over the geometric mean of the workloads, (left) area — or energy
    without area — vs time per step and (right) SQNR vs time per step, colour = energy per
    step, the Pareto front ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import NullFormatter

    geo = geomean_rows(rows)
    cols = _objective_columns(geo)
    front = pareto_mask(np.array([[OBJECTIVES[c] * float(r[c]) for c in cols] for r in geo]))
    t = np.array([r["seconds_per_step"] for r in geo])
    e = np.array([r["energy_j_per_step"] for r in geo])
    has_sqnr = "sqnr_db" in cols
    fig, axes = plt.subplots(1, 2 if has_sqnr else 1, figsize=(13 if has_sqnr else 7, 5.2),
                             squeeze=False, sharey=True, layout="constrained")
    left_x = np.array([r["area_mm2"] for r in geo]) if area else e
    panels = [(axes[0][0], left_x, "chip area (mm², estimate, 180 nm)" if area
               else "energy per step (J, geomean of the workloads)")]
    if has_sqnr:
        panels.append((axes[0][1], np.array([r["sqnr_db"] for r in geo]),
                       "SQNR (dB, golden, shipped tensors)"))
    norm = LogNorm(vmin=e.min(), vmax=max(e.max(), e.min() * 1.0001))
    for ax, x, label in panels:
        sc = ax.scatter(x, t, c=e, cmap="viridis", norm=norm, s=14, alpha=0.8)
        ax.scatter(x[front], t[front], s=60, facecolors="none", edgecolors="red",
                   linewidths=1.2, label=f"Pareto front ({int(front.sum())})")
        ax.set_xlabel(label)
        ax.set_yscale("log")
        if x.min() > 0 and label.startswith(("chip", "energy")):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[0][0].set_ylabel("time per step (s, geomean of the workloads)")
    fig.colorbar(sc, ax=[a for a, _, _ in panels], label="energy per step (J)")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_outputs(out: Path, result: SweepResult, *, area: bool, command: str = "") -> None:
    """``results.csv``, ``pareto.csv``, ``pareto.png``, ``summary.md``, ``sweep.json`` and
    (when points were skipped) ``skipped.csv`` into the folder ``out``."""
    plan, rows = result.plan, result.rows
    spec = plan.spec
    t0 = time.perf_counter()
    _write_csv(out / "results.csv", result_columns(spec, rows), rows)
    front = pareto_rows(rows)
    pcols = ["workload", "point", "design", "format", *spec.grid_keys, *OBJECTIVES,
             "clock_mhz", "equivalent_points"]
    _write_csv(out / "pareto.csv", pcols, front)
    if plan.skipped:
        _write_csv(out / "skipped.csv", ["point", "design", *spec.grid_keys, "reason"],
                   [{"point": s.index, "design": s.design or "(all)", **dict(s.params),
                     "reason": s.reason} for s in plan.skipped])
    from semdialect.sim.chip_area import AREA_LABEL

    title = (f"semdialect sweep {spec.path.name}: {result.stats['entries']} point/design pairs "
             f"× {len(spec.workloads)} workloads; clock {spec.clock_mhz:g} MHz; "
             + (f"area {AREA_LABEL}" if area else "no area"))
    plot_front(rows, out / "pareto.png", title, area)
    result.stats["seconds"]["outputs"] = time.perf_counter() - t0
    (out / "sweep.json").write_text(json.dumps(result.stats, indent=1, sort_keys=True) + "\n")
    (out / "summary.md").write_text(_summary(result, front, area, command))


def _summary(result: SweepResult, front: Sequence[Mapping[str, Any]], area: bool,
             command: str) -> str:
    plan, stats = result.plan, result.stats
    spec = plan.spec
    geo = [r for r in front if r["workload"] == "geomean"]
    geo.sort(key=lambda r: r["seconds_per_step"])
    lines = [f"# Design-space sweep: {spec.path.name}", ""]
    if spec.description:
        lines += [spec.description, ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"- base configuration: {spec.base_spec} ({spec.base.rows}x{spec.base.cols}, "
              f"B={spec.base.block}, {spec.base.formatbook} {spec.base.select})",
              f"- designs: {', '.join(spec.designs)}",
              f"- workloads ({len(spec.workloads)}): "
              + ", ".join(w.name for w in spec.workloads),
              "- grid: " + ("; ".join(f"{k} = {', '.join(str(_shown(k, v)) for v in vals)}"
                                      for k, vals in spec.grid) or "(none: the base only)"),
              f"- {spec.grid_size} grid points, {stats['entries']} point/design pairs run, "
              f"{stats['skipped']} skipped" + (" (skipped.csv)" if plan.skipped else ""),
              f"- jobs: {stats['jobs']} ({stats['cached']} cached, {stats['computed']} "
              f"computed) on {stats['engine']}; area modules: {stats['area_modules']}",
              "- time: " + ", ".join(f"{k} {v:.1f} s" for k, v in stats["seconds"].items()),
              ""]
    lines += ["## Assumptions", "", *(f"- {a}" for a in _assumptions(area, spec.clock_mhz)),
              "- Pareto front: minimise area, time per step, energy per step; maximise SQNR "
              "(per workload and over the geometric mean of the workloads' time and energy)",
              ""]
    lines += [f"## Pareto front over the geometric mean ({len(geo)} pairs, fastest first)", ""]
    head = ["point", "design", *spec.grid_keys, "area_mm2", "seconds_per_step",
            "energy_j_per_step", "sqnr_db"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in geo[:20]:
        lines.append("| " + " | ".join(_fmt(r[c]) for c in head) + " |")
    if len(geo) > 20:
        lines.append(f"\n({len(geo) - 20} more in pareto.csv)")
    lines += ["", "Files: results.csv (every point × design × workload), pareto.csv (the fronts), "
              "pareto.png, sweep.json (run statistics)"
              + (", skipped.csv" if plan.skipped else "") + ".", ""]
    return "\n".join(lines)


def say_stderr(prefix: str) -> Callable[[str], None]:
    """A progress callback printing ``<prefix>: <message>`` on stderr."""
    def say(message: str) -> None:
        print(f"{prefix}: {message}", file=sys.stderr, flush=True)

    return say
