"""ERR-sum saliency (golden/selector_saliency.py) against a brute-force Python reference."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import ref_q, ref_se

from semdialect.golden import get_formatbook, quantize
from semdialect.golden.decompose import saliency_order
from semdialect.golden.quantize import dialect_costs
from semdialect.golden.selector_saliency import (
    err_saliency,
    err_saliency_quantized,
    err_salient_tokens,
    top_rows,
)


def brute_scores(x: np.ndarray, book: str, block: int) -> list[int]:
    """s_j = Σ_b min_f Σ_i (2·HU[f][nearest] − q_i)² · 4^(SE + 16), plain Python per block.

    SE and q from the FP16 values (SPEC §2, conftest), each dialect's cost as the squared
    distance to its nearest grid point (ties cost the same either way), checked against
    golden ``dialect_costs``; the sum is taken in Fractions as Σ c · 4^SE and scaled by 2^32.
    """
    x16 = np.asarray(x, np.float32).astype(np.float16)
    rows = x16.reshape(-1, x16.shape[-1])
    hu = [[int(h) for h in d] for d in get_formatbook(book).hu]
    golden_costs = dialect_costs(rows, book, block=block).reshape(-1, len(hu))
    out = []
    n_blk = rows.shape[1] // block
    for j, row in enumerate(rows):
        total = Fraction(0)
        for b in range(n_blk):
            blk = row[b * block:(b + 1) * block]
            se = ref_se(blk)
            qs = ref_q(blk, se)
            costs = [sum(min((2 * h - q) ** 2 for h in d) for q in qs) for d in hu]
            assert costs == [int(c) for c in golden_costs[j * n_blk + b]]
            total += min(costs) * Fraction(4) ** se
        score = total * 2**32
        assert score.denominator == 1
        out.append(int(score))
    return out


@pytest.mark.parametrize(("book", "block"), [("sd32", 32), ("sd32", 16), ("dfp4", 64)])
def test_scores_equal_brute_force(rng, book, block) -> None:
    x = (rng.standard_normal((7, 128)) * np.exp2(rng.integers(-20, 12, (7, 1)))).astype(np.float32)
    x[2, :block] = 0  # an all-zero block: SE = -16, cost 0
    x[5, 3] = 2.0**-18  # at the SE clamp
    x[5, 4:block] = 0
    got = err_saliency(x, book, block=block)
    assert got.dtype == object and got.shape == (7,)
    want = brute_scores(x, book, block)
    assert [int(v) for v in got] == want
    assert all(type(v) is int for v in got)  # Python ints, not wrapped int64
    # from the main path's own quantization: same numbers, no second dialect search
    q = quantize(x, book, block=block)
    assert [int(v) for v in err_saliency_quantized(x, q)] == want


def test_scores_beyond_float64_are_compared_exactly() -> None:
    # one block at SE = 13 (values near 2^15), the other either empty or one element with
    # q = 1 at SE = -16 (cost 1): the scores differ by 1 in about 2^70
    big = np.full(32, 40000.0, np.float32)
    big[::3] = 52000.0
    tiny = np.zeros(32, np.float32)
    tiny[0] = 2.0**-18
    x = np.stack([np.concatenate([big, np.zeros(32, np.float32)]),
                  np.concatenate([big, tiny])])
    s = err_saliency(x)
    assert int(s[1]) - int(s[0]) == 1 and int(s[0]) > 2**60
    assert [int(v) for v in s] == brute_scores(x, "sd32", 32)
    assert float(s[0]) == float(s[1])  # float64 cannot tell them apart ...
    assert saliency_order(np.array(s, np.float64))[0] == 0
    np.testing.assert_array_equal(err_salient_tokens(x, "0.5"), [1])  # ... the exact rule can


def test_ties_go_to_the_lower_index(rng) -> None:
    base = rng.standard_normal((1, 64)).astype(np.float32)
    x = 0.01 * rng.standard_normal((8, 64)).astype(np.float32)
    x[2] = base
    x[6] = -base  # the sign does not change any cost
    x[4] = base[:, ::-1]  # the same blocks, mirrored within each and swapped
    x[5] = np.concatenate([base[0, 32:][::-1], base[0, :32][::-1]])  # mirrored per block
    s = err_saliency(x)
    assert s[2] == s[5] == s[6]
    assert s[2] == s[4]
    assert all(s[2] > s[j] for j in (0, 1, 3, 7))
    for rho, want in (("0.125", [2]), ("0.25", [2, 4]), ("0.375", [2, 4, 5]),
                      ("0.5", [2, 4, 5, 6])):
        np.testing.assert_array_equal(err_salient_tokens(x, rho), want)
    np.testing.assert_array_equal(top_rows(np.array([5, 7, 7, 5, 7], dtype=object), "0.4"),
                                  [1, 2])


def test_leading_dimensions_are_rows(rng) -> None:
    x = (rng.standard_normal((2, 3, 5, 64)) * np.exp2(rng.integers(-4, 4, (2, 3, 5, 1))))
    s = err_saliency(x)
    assert s.shape == (2, 3, 5)
    flat = err_saliency(x.reshape(30, 64))
    assert list(s.reshape(-1)) == list(flat)
    idx = err_salient_tokens(x, "0.1")  # ⌈3⌉ rows of all 30, flat C-order indices
    np.testing.assert_array_equal(idx, err_salient_tokens(x.reshape(30, 64), "0.1"))
    order = sorted(range(30), key=lambda j: (-int(flat[j]), j))
    np.testing.assert_array_equal(idx, sorted(order[:3]))
    assert [int(v) for v in err_saliency_quantized(x, quantize(x, "sd32")).reshape(-1)] == \
        [int(v) for v in flat]


def test_rho_edge_cases(rng) -> None:
    x = rng.standard_normal((100, 32)).astype(np.float32)
    assert err_salient_tokens(x, 0).size == 0
    assert err_salient_tokens(x, "0").dtype == np.intp
    np.testing.assert_array_equal(err_salient_tokens(x, 1), np.arange(100))
    assert err_salient_tokens(x, "0.07").size == 7  # exact: 0.07·100 is 7, not 7.000…1
    assert err_salient_tokens(x, 0.07).size == 7  # a float is read as its decimal
    assert err_salient_tokens(x, "0.071").size == 8  # ⌈7.1⌉
    assert err_salient_tokens(x[:3], "0.01").size == 1  # any ρ > 0 keeps at least one row
    for bad in ("1.5", -0.1, "x", True):
        with pytest.raises(ValueError, match="rho"):
            err_salient_tokens(x, bad)


def test_outlier_tokens_are_selected(rng) -> None:
    x = rng.standard_normal((40, 96)).astype(np.float32)
    outliers = [3, 17, 31]
    x[outliers] *= 64  # 4^6 times the squared error of a typical row
    np.testing.assert_array_equal(err_salient_tokens(x, "0.075"), outliers)  # n_S = 3


def test_non_dialect_formats_and_bad_quantizations_are_errors(rng) -> None:
    x = rng.standard_normal((4, 32)).astype(np.float32)
    for fmt in ("mxfp4", "nvfp4", "int4", "mxint8"):
        with pytest.raises(ValueError, match="^format: .*dialect"):
            err_saliency(x, fmt)
        with pytest.raises(ValueError, match="^format: .*dialect"):
            err_saliency_quantized(x, quantize(x, fmt))
    with pytest.raises(ValueError, match="^format: .*lut"):
        err_saliency_quantized(x, quantize(x, "dfp4", select="two-stage"))
    with pytest.raises(ValueError, match="^q: "):
        err_saliency_quantized(x[:2], quantize(x, "sd32"))
    with pytest.raises(ValueError, match="^q: .*shared exponents"):
        err_saliency_quantized(4 * x, quantize(x, "sd32"))
    with pytest.raises(ValueError, match="NaN"):
        err_saliency(np.where(np.arange(32) == 5, np.nan, x))
    with pytest.raises(ValueError, match="multiple"):
        err_saliency(x[:, :20])
    assert err_saliency(x[:, :20], pad=True).shape == (4,)
