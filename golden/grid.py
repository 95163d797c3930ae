"""Rounding to a finite grid of magnitudes — the one element rounder every format uses.

Dialect LUTs (SPEC §3: nearest, ties to the *larger* index) and E2M1 elements (MXFP4/NVFP4:
round-to-nearest-even, which on the E2M1 grid is "ties to the even index", since the index
LSB is the mantissa bit) both come from :func:`nearest_index`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Ties = Literal["up", "even"]


def nearest_index(values: np.ndarray, grid: np.ndarray, ties: Ties) -> np.ndarray:
    """Index of the grid point nearest to each value, saturating at the grid's ends.

    Args:
        values: non-negative magnitudes, in the grid's unit (any real dtype; compared exactly
            against the midpoints, which are computed in float64 and exact for grids of small
            integers or halves).
        grid: strictly increasing 1-D magnitudes.
        ties: ``"up"`` sends a value exactly between two grid points to the larger index,
            ``"even"`` to the even index.

    Returns:
        ``intp`` indices with the shape of ``values``.
    """
    grid = np.asarray(grid, dtype=np.float64)
    mids = (grid[:-1] + grid[1:]) / 2
    above = np.searchsorted(mids, values, side="right")  # midpoints <= v: ties go up
    if ties == "up":
        return above
    if ties != "even":
        raise ValueError(f"ties must be 'up' or 'even', got {ties!r}")
    below = np.searchsorted(mids, values, side="left")  # midpoints < v: ties go down
    return np.where((above != below) & (below % 2 == 1), above, below)
