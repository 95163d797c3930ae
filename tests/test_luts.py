"""IDX/ERR LUTs (SPEC §3), exhaustively, and the two-stage ranges (SPEC §4)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ref_nearest_up

from semdialect.golden import build_luts, dfp4, sd32, two_stage_tables


@pytest.mark.parametrize("book", [dfp4(), sd32()], ids=["dfp4", "sd32"])
def test_luts_exhaustive(book) -> None:
    luts = build_luts(book)
    assert luts.idx.shape == luts.err.shape == (book.size, 32)
    for f, row in enumerate(book.hu.tolist()):
        for q in range(32):
            k = ref_nearest_up(q, row)
            assert luts.idx[f, q] == k, (f, q)
            assert luts.err[f, q] == (2 * row[k] - q) ** 2, (f, q)
            assert luts.hu[f, q] == row[k]
    assert luts.err.max() <= 225


def test_spec_beneficial_ranges() -> None:
    r = two_stage_tables("dfp4").ranges
    assert tuple(r[2, 0]) == (18, 23)  # dialect 4: [4.5, 5.75) real units
    assert tuple(r[2, 1]) == (14, 18)  # dialect 5


def test_beneficial_ranges_match_brute_force() -> None:
    """The range is where the dialect's unique magnitude is the nearest point of the union."""
    hu = dfp4().hu.tolist()
    r = two_stage_tables("dfp4").ranges
    for p in range(8):
        union = sorted(set(hu[2 * p]) | set(hu[2 * p + 1]))
        for s in (0, 1):
            (v,) = set(hu[2 * p + s]) - set(hu[2 * p + 1 - s])
            inside = [q for q in range(32) if union[ref_nearest_up(q, union)] == v]
            # a q whose nearest point (ties up) in the union is v; the lower tie belongs to v
            lo, hi = r[p, s]
            assert inside == list(range(lo, hi)), (p, s)


def test_two_stage_rejects_other_books() -> None:
    with pytest.raises(ValueError, match="two-stage"):
        two_stage_tables("sd32")
    bad = dfp4().hu.copy()
    bad[1] = [0, 1, 2, 3, 4, 5, 9, 15]  # differs from dialect 0 in two magnitudes
    from semdialect.golden import Formatbook

    with pytest.raises(ValueError, match="exactly one"):
        two_stage_tables(Formatbook("bad", bad))
    ranges = two_stage_tables("dfp4").ranges
    assert np.all(ranges[:, :, 0] < ranges[:, :, 1])
