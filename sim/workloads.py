"""GEMM workloads: the project's ``layer,M,K,N,count`` CSVs and SCALE-Sim topology CSVs.

Each row is one GEMM Y[M, N] = X[M, K] · W[K, N] run ``count`` times per denoising step
(``data/workloads/README.md`` gives every model's sources and conventions). SCALE-Sim
topologies are accepted too: GEMM topologies (``Layer, M, N, K``) and convolution topologies
(``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
Strides``), a convolution becoming the GEMM M = ofmap pixels, K = filter volume, N = filters.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from semdialect.paths import data_dir

WORKLOADS = data_dir() / "workloads"


@dataclass(frozen=True)
class Gemm:
    """One GEMM shape of a workload (M, K, N elements; ``count`` runs per step)."""

    layer: str
    m: int
    k: int
    n: int
    count: int = 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all ``count`` runs."""
        return self.m * self.k * self.n * self.count


def _int(row: dict[str, str], key: str, where: str, minimum: int = 1) -> int:
    try:
        val = int(str(row[key]).strip())
    except (KeyError, ValueError):
        got = row.get(key)
        raise ValueError(f"{where}: column {key!r} must be an integer, got {got!r}") from None
    if val < minimum:
        raise ValueError(f"{where}: column {key!r} must be >= {minimum}, got {val}")
    return val


def _norm(header: list[str]) -> list[str]:
    return [h.strip() for h in header]


def load_workload(path: str | Path) -> list[Gemm]:
    """Read a workload CSV (project format or SCALE-Sim GEMM/conv topology)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"workload {path}: cannot read ({exc.strerror})") from None
    rows = list(csv.reader(text.splitlines()))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"workload {path}: empty")
    header = [h for h in _norm(rows[0]) if h]
    records = [dict(zip(header, (c.strip() for c in r), strict=False)) for r in rows[1:]]
    keys = set(header)
    out: list[Gemm] = []
    for i, rec in enumerate(records, start=2):
        where = f"workload {path} line {i}"
        if {"layer", "M", "K", "N"} <= keys:
            count = _int(rec, "count", where) if "count" in keys else 1
            out.append(Gemm(rec["layer"], _int(rec, "M", where), _int(rec, "K", where),
                            _int(rec, "N", where), count))
        elif {"Layer", "M", "N", "K"} <= keys:
            out.append(Gemm(rec["Layer"], _int(rec, "M", where), _int(rec, "K", where),
                            _int(rec, "N", where)))
        elif {"Layer name", "IFMAP Height", "Filter Height", "Num Filter"} <= keys:
            ih, iw = _int(rec, "IFMAP Height", where), _int(rec, "IFMAP Width", where)
            fh, fw = _int(rec, "Filter Height", where), _int(rec, "Filter Width", where)
            stride = _int(rec, "Strides", where) if "Strides" in keys else 1
            if fh > ih or fw > iw:
                raise ValueError(f"{where}: filter larger than the input feature map")
            oh, ow = (ih - fh) // stride + 1, (iw - fw) // stride + 1
            out.append(Gemm(rec["Layer name"], oh * ow, fh * fw * _int(rec, "Channels", where),
                            _int(rec, "Num Filter", where)))
        else:
            raise ValueError(
                f"workload {path}: unknown header {header} (expected layer,M,K,N,count or a "
                f"SCALE-Sim topology)"
            )
    return out


def workload_path(name: str) -> Path:
    """A shipped workload by stem (e.g. ``opensora2_256px_129f``) or a path."""
    p = Path(name)
    if p.suffix == ".csv" and p.exists():
        return p
    shipped = WORKLOADS / f"{name}.csv"
    if shipped.exists():
        return shipped
    names = sorted(f.stem for f in WORKLOADS.glob("*.csv"))
    raise ValueError(f"workload: unknown {name!r} (shipped: {', '.join(names)}; or a CSV path)")
