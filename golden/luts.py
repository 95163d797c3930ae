"""IDX/ERR lookup tables (SPEC §3) and two-stage beneficial ranges (SPEC §4).

This module is the only LUT generator of the project: the RTL's ROMs are initialised from
:func:`build_luts` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .formatbook import Formatbook, get_formatbook
from .grid import nearest_index

#: preprocessed magnitudes q are 5-bit quarter units: 0..31
Q_LEVELS = 32


@dataclass(frozen=True, eq=False)
class Luts:
    """Per-formatbook tables, all indexed [dialect, q] with q in 0..31 (quarter units).

    Attributes:
        idx: (K, 32) uint8 magnitude index, nearest 2·HU to q, ties to the larger index.
        err: (K, 32) uint16 squared error (2·HU[idx] - q)^2, at most 225.
        hu: (K, 32) uint8 the chosen magnitude HU[idx] in half units.
    """

    idx: np.ndarray
    err: np.ndarray
    hu: np.ndarray


def build_luts(formatbook: Formatbook | str) -> Luts:
    """IDX[f][q] and ERR[f][q] of SPEC §3 for every dialect f and q in 0..31."""
    fb = get_formatbook(formatbook)
    q = np.arange(Q_LEVELS)
    grids = 2 * fb.hu.astype(np.int64)  # quarter units
    idx = np.stack([nearest_index(q, g, ties="up") for g in grids]).astype(np.uint8)
    chosen = np.take_along_axis(grids, idx.astype(np.intp), axis=1)
    err = (chosen - q) ** 2
    for t in (idx, err, chosen):
        t.setflags(write=False)
    return Luts(idx=idx, err=err.astype(np.uint16), hu=(chosen // 2).astype(np.uint8))


@dataclass(frozen=True, eq=False)
class TwoStageTables:
    """BlockDialect two-stage selection data (SPEC §4) for a pair-structured formatbook.

    Attributes:
        ranges: (8, 2, 2) int, ``ranges[p, s] = (lo, hi)``: dialect 2p+s's beneficial range
            lo <= q < hi in quarter units.
    """

    ranges: np.ndarray


def two_stage_tables(formatbook: Formatbook | str) -> TwoStageTables:
    """Beneficial ranges of every pair (2p, 2p+1) of a dfp4-shaped formatbook.

    The formatbook must have 16 dialects whose pairs (2p, 2p+1) share the maximum 15 - p HU
    and differ in exactly one magnitude each; otherwise ``ValueError`` (two-stage selection is
    defined for ``dfp4`` only).
    """
    fb = get_formatbook(formatbook)
    if fb.size != 16:
        raise ValueError(
            f"select: two-stage needs a dfp4-shaped formatbook (K=16), got K={fb.size}"
        )
    ranges = np.zeros((8, 2, 2), dtype=np.int64)
    for p in range(8):
        even, odd = (set(int(v) for v in fb.hu[2 * p + s]) for s in (0, 1))
        if max(even) != 15 - p or max(odd) != 15 - p:
            raise ValueError(
                f"select: two-stage needs pair {p} (dialects {2 * p}, {2 * p + 1}) to share the "
                f"maximum {15 - p} HU"
            )
        union = sorted(even | odd)
        for s, (mine, other) in enumerate(((even, odd), (odd, even))):
            only = sorted(mine - other)
            if len(only) != 1:
                raise ValueError(
                    f"select: two-stage needs dialect {2 * p + s} to differ from its partner in "
                    f"exactly one magnitude, got {only}"
                )
            v = only[0]
            pos = union.index(v)
            lo, hi = union[pos - 1], union[pos + 1]  # v is never the pair's 0 or shared max
            ranges[p, s] = (v + lo, v + hi)
    ranges.setflags(write=False)
    return TwoStageTables(ranges=ranges)
