"""Dialect quantization (SPEC §2–4) against independent recomputations."""

from __future__ import annotations

import importlib
import math
import re
import warnings

import numpy as np
import pytest
from conftest import ref_nearest_up, ref_q, ref_se
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from semdialect.golden import FlushWarning, dfp4, load_formatbook, quantize, sd32

BOOKS = {"dfp4": dfp4(), "sd32": sd32()}


def ref_lut_block(block: np.ndarray, hu: list[list[int]]) -> tuple[int, int, list[int]]:
    """SPEC §4 lut selection by brute force: (SE, dialect, codes)."""
    se = ref_se(block)
    q = ref_q(block, se)
    costs = [sum((2 * row[ref_nearest_up(qi, row)] - qi) ** 2 for qi in q) for row in hu]
    f = costs.index(min(costs))  # first = lowest id
    codes = [
        (int(np.signbit(v)) << 3) | ref_nearest_up(qi, hu[f])
        for v, qi in zip(block, q, strict=True)
    ]
    return se, f, codes


def ref_two_stage_block(block: np.ndarray, hu: list[list[int]]) -> int:
    """SPEC §4 two-stage by brute force from the beneficial-range definition."""
    se = ref_se(block)
    q = ref_q(block, se)
    m = max(q)
    pair = min(max(15 - min((m + 1) >> 1, 15), 0), 7)
    counts = []
    for s in (0, 1):
        mine, other = set(hu[2 * pair + s]), set(hu[2 * pair + 1 - s])
        union = sorted(mine | other)
        (v,) = mine - other
        i = union.index(v)
        counts.append(sum(v + union[i - 1] <= qi < v + union[i + 1] for qi in q))
    return 2 * pair if counts[0] >= counts[1] else 2 * pair + 1


def ref_dequant(code: int, dialect_hu: list[int], se: int) -> float:
    mag = dialect_hu[code & 7] * 2.0 ** (se - 1)
    return -mag if code & 8 else mag


def _blocks(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """Random FP16 blocks spanning many magnitudes and shapes of distribution."""
    scale = 2.0 ** rng.integers(-20, 12, size=(n, 1))
    kind = rng.integers(0, 3, size=(n, 1))
    x = np.where(kind == 0, rng.standard_normal((n, b)), rng.standard_t(2, (n, b)))
    x = np.where(kind == 2, rng.uniform(-1, 1, (n, b)), x)
    return np.clip(x * scale, -60000, 60000).astype(np.float16)


@pytest.mark.parametrize("name", ["dfp4", "sd32"])
@pytest.mark.parametrize("b", [16, 32, 64])
def test_lut_quantize_matches_brute_force(rng, name: str, b: int) -> None:
    hu = BOOKS[name].hu.tolist()
    x = _blocks(rng, 120, b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = quantize(x.reshape(6, 20 * b), name, block=b)
    se, dia, codes = q.se.reshape(-1), q.dialect.reshape(-1), q.codes.reshape(-1, b)
    deq = q.dequant.reshape(-1, b)
    flushed = 0
    for i, blk in enumerate(x):
        r_se, r_f, r_codes = ref_lut_block(blk, hu)
        flushed += all(c & 7 == 0 for c in r_codes) and any(v != 0 for v in blk)
        assert (se[i], dia[i]) == (r_se, r_f), i
        assert codes[i].tolist() == r_codes, i
        want = np.array([ref_dequant(c, hu[r_f], r_se) for c in r_codes], np.float32)
        assert deq[i].view(np.uint32).tolist() == want.view(np.uint32).tolist()
    # the flush warning counts exactly the non-zero blocks whose codes are all magnitude 0
    msgs = [str(w.message) for w in caught if w.category is FlushWarning]
    assert [m.split(" blocks")[0] for m in msgs] == ([f"x: {flushed} of 120"] if flushed else [])


@pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")
def test_two_stage_matches_brute_force(rng) -> None:
    hu = dfp4().hu.tolist()
    x = _blocks(rng, 400, 32)
    q = quantize(x, "dfp4", select="two-stage")
    for i, blk in enumerate(x):
        assert q.dialect[i, 0] == ref_two_stage_block(blk, hu), i


def test_block_with_max_6_5_picks_pair_2() -> None:
    x = np.zeros(32, np.float16)
    x[0] = 6.5
    x[1:6] = [4.6, 4.7, 5.0, 5.5, 0.1]  # in dialect 4's range [4.5, 5.75)
    q = quantize(x, "dfp4", select="two-stage")
    assert q.se[0] == 0 and q.dialect[0] == 4
    x[1:6] = [3.6, 3.7, 4.0, 4.2, 0.1]  # in dialect 5's range [3.5, 4.5)
    assert quantize(x, "dfp4", select="two-stage").dialect[0] == 5


@pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")  # the subnormal block
@pytest.mark.parametrize("name", ["dfp4", "sd32"])
def test_edge_blocks(name: str) -> None:
    hu = BOOKS[name].hu.tolist()
    blocks = {
        "zeros": np.zeros(32),
        "neg_zeros": -np.zeros(32),
        "subnormals": np.arange(-16, 16) * 2.0**-24,
        "max_fp16": np.full(32, 65504.0) * np.resize([1, -1], 32),
        "powers_of_two": np.resize(2.0 ** np.arange(-24, 16), 32),
        "below_powers_of_two": np.nextafter(
            np.resize(2.0 ** np.arange(-14, 16), 32).astype(np.float16), np.float16(0)
        ),
    }
    for label, blk in blocks.items():
        blk16 = np.asarray(blk).astype(np.float16)
        q = quantize(blk16, name)
        r_se, r_f, r_codes = ref_lut_block(blk16, hu)
        assert (q.se[0], q.dialect[0]) == (r_se, r_f), label
        assert q.codes.tolist() == r_codes, label
    zero = quantize(-np.zeros(32, np.float16), name)
    assert zero.se[0] == -16 and zero.dialect[0] == 0
    assert np.all(zero.codes == 8) and np.all(np.signbit(zero.dequant))
    assert quantize(np.full(32, 65504.0, np.float16), name).se[0] == 13  # field 29


@pytest.mark.parametrize("name", ["dfp4", "sd32"])
def test_every_lut_tie_point(name: str) -> None:
    """Each dialect, forced by a one-hot candidate mask, on q = every midpoint (ties go up)."""
    book = BOOKS[name]
    for f, row in enumerate(book.hu.tolist()):
        mids = [row[k] + row[k + 1] for k in range(7)]  # quarter units
        q = np.resize(mids + [2 * row[-1]], 32)  # the max (>= 4.0) pins SE = 0
        x = (q / 4.0).astype(np.float16) * np.resize([1, -1], 32).astype(np.float16)
        qt = quantize(x, book, candidates=np.eye(book.size, dtype=bool)[f])
        assert qt.se[0] == 0 and qt.dialect[0] == f
        want = [ref_nearest_up(int(qi), row) for qi in q]
        assert (qt.codes & 7).tolist() == want
        assert all(w == k + 1 for w, k in zip(want[:7], range(7), strict=True))


@pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")
@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float16, (4, 32), elements=st.floats(-65504, 65504, width=16)),
    st.sampled_from(["dfp4", "sd32"]),
)
def test_in_range_elements_within_half_grid_step(x: np.ndarray, name: str) -> None:
    """SPEC §4: every element at or below the chosen dialect's maximum is within half a step."""
    hu = BOOKS[name].hu
    q = quantize(x, name)
    for r in range(4):
        se, f = int(q.se[r, 0]), int(q.dialect[r, 0])
        grid = hu[f].astype(np.float64) * 2.0 ** (se - 1)
        for v, d in zip(x[r].astype(np.float64), q.dequant[r].astype(np.float64), strict=True):
            a = abs(v)
            if a > grid[-1]:
                assert abs(d) == grid[-1]  # clipped on purpose by lut
                continue
            k = int(np.searchsorted(grid, a, side="right")) - 1
            hi = grid[min(k + 1, 7)]
            half = (hi - grid[k]) / 2
            assert abs(abs(d) - a) <= half, (v, d, se, f)
            assert math.copysign(1, d) == math.copysign(1, v)


@pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")
@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float16, (3, 64), elements=st.floats(-1000, 1000, width=16)))
def test_superset_formatbook_never_costs_more(x: np.ndarray) -> None:
    """sd32 contains every dfp4 dialect, so its chosen LUT cost is never higher."""
    def chosen_cost(name: str) -> list[int]:
        q = quantize(x, name)
        hu = BOOKS[name].hu
        out = []
        for r in range(3):
            for b in range(2):
                blk = x[r, 32 * b: 32 * b + 32]
                se = int(q.se[r, b])
                qs = ref_q(blk, se)
                mags = hu[q.dialect[r, b]][q.codes[r, 32 * b: 32 * b + 32] & 7]
                out.append(sum((2 * int(m) - qi) ** 2 for m, qi in zip(mags, qs, strict=True)))
        return out

    for a, b in zip(chosen_cost("sd32"), chosen_cost("dfp4"), strict=True):
        assert a <= b


def test_candidates_restrict_the_choice(rng) -> None:
    x = _blocks(rng, 50, 32)
    for v in range(4):
        q = quantize(x, "sd32", candidates=sd32().variant_mask(v))
        assert np.all(q.dialect % 4 == v)
    per_block = np.zeros((50, 1, 32), bool)
    per_block[:, :, 5] = True
    assert np.all(quantize(x, "sd32", candidates=per_block).dialect == 5)
    with pytest.raises(ValueError, match="candidates"):
        quantize(x, "dfp4", select="two-stage", candidates=dfp4().variant_mask(0))
    with pytest.raises(ValueError, match="no candidate"):
        quantize(x, "sd32", candidates=np.zeros(32, bool))


#: largest FP16 value below 2^-18: q = floor(|x| · 2^18) = 0 at the SE clamp SE = -16
BELOW_CLAMP = np.float16(63 * 2.0**-24)


def _flush_input() -> np.ndarray:
    """(2, 96): blocks (row, block) (0, 1) and (1, 2) are tiny but non-zero, (1, 0) is
    all zero (±0), the rest are ordinary values."""
    x = np.linspace(-3, 5, 2 * 96).reshape(2, 96).astype(np.float16)
    x[0, 32:64] = 0
    x[0, 40] = BELOW_CLAMP
    x[0, 41] = -np.float16(2.0**-24)  # the smallest subnormal
    x[1, 64:96] = np.float16(2.0**-20)
    x[1, 0:32] = 0
    x[1, 3] = -0.0
    return x


@pytest.mark.parametrize("fmt, select", [("sd32", "lut"), ("dfp4", "lut"),
                                         ("dfp4", "two-stage")])
def test_flushed_blocks_warn_once_with_the_count(fmt: str, select: str) -> None:
    """SPEC §2: a non-zero block below the SE clamp dequantizes to all zeros: one
    FlushWarning per call naming how many blocks of how many."""
    x = _flush_input()
    with pytest.warns(FlushWarning) as record:
        q = quantize(x, fmt, select=select, name="acts")
    assert len(record) == 1
    assert re.match(r"^acts: 2 of 6 blocks .*flushed to zero", str(record[0].message))
    assert not q.dequant[0, 32:64].any() and not q.dequant[1, 64:].any()
    assert issubclass(FlushWarning, UserWarning)


def test_flush_warning_is_once_per_call_across_chunks(monkeypatch) -> None:
    driver = importlib.import_module("semdialect.golden.quantize")  # the module, not the function
    monkeypatch.setattr(driver, "CHUNK_ELEMENTS", 96)  # one row per chunk
    x = np.concatenate([_flush_input()] * 3)
    with pytest.warns(FlushWarning, match=r"^x: 6 of 18 blocks") as record:
        quantize(x, "sd32")
    assert len(record) == 1


def test_flush_at_the_clamp_boundary_and_user_books(tmp_path) -> None:
    x = np.zeros((1, 32), np.float16)
    x[0, 0] = np.float16(2.0**-18)  # q = 1: a tie between HU 0 and HU 1, which goes up
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert quantize(x, "sd32").dequant[0, 0] == 2.0**-17  # HU 1 · 2^(SE - 1)
    # a dialect without HU 1 rounds q = 1 to 0: that block is flushed too
    f = tmp_path / "coarse.toml"
    f.write_text("dialects = [[0, 2, 3, 4, 5, 6, 7, 8]]\n")
    with pytest.warns(FlushWarning, match=r"1 of 1 block"):
        q = quantize(x, load_formatbook(f))
    assert not q.dequant.any()


@pytest.mark.parametrize("fmt", ["sd32", "dfp4", "mxfp4", "mxint8", "nvfp4", "int4"])
def test_no_flush_warning_for_normal_or_zero_inputs(rng, fmt: str) -> None:
    x = rng.standard_normal((4, 64)).astype(np.float16)
    x[0] = 0
    x[1, :32] = -0.0  # an all-zero block is exact, not flushed
    x[2, 32:] = np.float16(2.0**-24) * np.arange(32)  # tiny elements next to ...
    x[2, 63] = 1.0  # ... a large one: they round to 0 inside a non-zero block (not a flush)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantize(x, fmt)
        quantize(np.zeros((2, 64)), fmt, pad=True)
