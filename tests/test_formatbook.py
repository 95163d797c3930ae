"""Formatbooks (SPEC §1): the shipped tables and user TOML books."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from semdialect.golden import (
    Formatbook,
    dfp4,
    get_formatbook,
    load_formatbook,
    quantize,
    sd32,
)


def test_dfp4_pairs_share_maximum_and_dialect7_is_e2m1() -> None:
    hu = dfp4().hu
    assert hu.shape == (16, 8)
    for p in range(8):
        assert hu[2 * p, 7] == hu[2 * p + 1, 7] == 15 - p
    assert list(hu[7]) == [0, 1, 2, 3, 4, 6, 8, 12]  # E2M1 magnitudes x 2
    assert list(hu[15]) == [0, 1, 2, 3, 4, 5, 6, 8]


def test_sd32_follows_the_spec_rules() -> None:
    book, base = sd32().hu, dfp4().hu
    assert book.shape == (32, 8)
    for p in range(8):
        m = 15 - p
        assert list(book[4 * p]) == list(base[2 * p])
        assert list(book[4 * p + 1]) == list(base[2 * p + 1])
        assert list(book[4 * p + 2]) == [math.floor(k * m / 7 + 0.5) for k in range(8)]
        outlier = [0, 1, 2, 3, 4, 5, 7, 8] if p == 7 else [0, 1, 2, 3, 4, 5, 6, m]
        assert list(book[4 * p + 3]) == outlier
    # every dialect distinct
    assert len({tuple(r) for r in book}) == 32


def test_variant_sub_formatbooks() -> None:
    assert list(sd32().variant_ids(2)) == [2, 6, 10, 14, 18, 22, 26, 30]
    assert list(dfp4().variant_ids(1)) == [1, 3, 5, 7, 9, 11, 13, 15]
    with pytest.raises(ValueError, match="variant"):
        dfp4().variant_ids(2)


def test_user_formatbook_roundtrip(tmp_path) -> None:
    f = tmp_path / "book.toml"
    f.write_text('name = "mine"\nvariants = 2\ndialects = [[0,1,2,3,4,6,8,12],[0,1,2,3,4,5,6,7]]\n')
    book = load_formatbook(f)
    assert book.name == "mine" and book.size == 2 and book.id_bits == 1
    assert get_formatbook(str(f)).hu.tolist() == book.hu.tolist()


@pytest.mark.parametrize(
    "body, message",
    [
        ("dialects = [[1,2,3,4,5,6,7,8]]", "start at 0"),
        ("dialects = [[0,1,2,3,4,6,6,8]]", "strictly increasing"),
        ("dialects = [[0,1,2,3,4,6,8,16]]", "outside 0..15"),
        ("dialects = [[0,1,2,3,4,6,8]]", "8-entry"),
        ("dialects = [[0,1,2,3,4,6,8,12.5]]", "integers"),
        ("dialects = []", "8-entry"),
        ("name = 'x'", "missing the 'dialects'"),
        ("dialects = [[0,1,2,3,4,6,8,12]]\nfoo = 1", "unknown keys"),
        ("dialects = [[0,1,2,3", "not valid TOML"),
        ("variants = 3\ndialects = [[0,1,2,3,4,6,8,12],[0,1,2,3,4,5,6,7]]", "variants"),
    ],
)
def test_malformed_formatbook_is_rejected(tmp_path, body: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ValueError, match=message) as info:
        load_formatbook(f)
    assert str(f) in str(info.value)


def test_missing_formatbook_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_formatbook(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match="unknown"):
        get_formatbook("fp8")
    assert isinstance(np.asarray(dfp4().hu), np.ndarray)


def _distinct_dialects(k: int) -> list[list[int]]:
    """k distinct valid dialects: 0 then 7 of the magnitudes 1..15 (6435 combinations)."""
    combos = itertools.combinations(range(15, 0, -1), 7)  # the first 1716 all contain 15
    return [[0, *sorted(c)] for c in itertools.islice(combos, k)]


def _toml(dialects: list[list[int]], head: str = "") -> str:
    return head + "dialects = [\n" + ",\n".join(str(d) for d in dialects) + "\n]\n"


@pytest.mark.parametrize("k", [1, 2, 255, 256])
def test_largest_formatbook_keeps_every_dialect_id(tmp_path, k: int) -> None:
    """K up to 256 fits the uint8 dialect id: the last dialect keeps its id."""
    f = tmp_path / "big.toml"
    f.write_text(_toml(_distinct_dialects(k)))
    book = load_formatbook(f)
    assert book.size == k and book.id_bits == (k - 1).bit_length()
    last = book.hu[-1].astype(np.float64)
    assert last[-1] >= 8  # so SE = floor(log2(max)) - 2 = 0 and x = HU/2 is on the grid
    x = np.zeros((1, 32), np.float16)
    x[0, :8] = last / 2  # exactly the last dialect: cost 0, no other dialect has cost 0
    q = quantize(x, book)
    assert q.se[0, 0] == 0
    assert book.hu[q.dialect[0, 0]].tolist() == book.hu[-1].tolist()


@pytest.mark.parametrize("k", [257, 300])
def test_more_than_256_dialects_is_rejected(tmp_path, k: int) -> None:
    f = tmp_path / "huge.toml"
    f.write_text(_toml(_distinct_dialects(k)))
    with pytest.raises(ValueError, match=r"dialect 256.*at most 256.*uint8") as info:
        load_formatbook(f)
    assert str(f) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"dialect 256.*at most 256"):
        Formatbook("huge", np.array(_distinct_dialects(k)))


@pytest.mark.parametrize(
    "body, message",
    [
        ("dialects = [[0,1,2,3,4,6,8,12],[0,1,2,3,4,5,6,7],[0,1,2,3,4,6,8,12]]",
         r"dialect 2 duplicates dialect 0"),
        ("dialects = [[0,1,2,3,4,6,8,12],[0,true,2,3,4,6,8,13]]", r"dialect 1 .*boolean"),
        ("dialects = [[false,true,2,3,4,6,8,12]]", r"dialect 0 .*boolean"),
        ("variants = true\ndialects = [[0,1,2,3,4,6,8,12]]", r"variants.*integer.*True"),
        ("variants = 1.0\ndialects = [[0,1,2,3,4,6,8,12]]", r"variants.*integer"),
        ("variants = 0\ndialects = [[0,1,2,3,4,6,8,12]]", r"variants"),
        ("variants = -1\ndialects = [[0,1,2,3,4,6,8,12]]", r"variants"),
        ("variants = '2'\ndialects = [[0,1,2,3,4,6,8,12]]", r"variants.*integer"),
        ("name = 3\ndialects = [[0,1,2,3,4,6,8,12]]", r"name.*string"),
        ("name = true\ndialects = [[0,1,2,3,4,6,8,12]]", r"name.*string"),
        ("name = ''\ndialects = [[0,1,2,3,4,6,8,12]]", r"name.*empty"),
        ("dialects = [[0,1,2,3,4,6,8,'12']]", r"integers"),
        ("dialects = 'abc'", r"8-entry"),
        ("dialects = [[[0,1,2,3,4,6,8,12]]]", r"8-entry"),
    ],
)
def test_formatbook_type_holes_are_rejected(tmp_path, body: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ValueError, match=message) as info:
        load_formatbook(f)
    assert str(f) in str(info.value) and "\n" not in str(info.value)


E2M1 = [0, 1, 2, 3, 4, 6, 8, 12]


@pytest.mark.parametrize(
    "table, kwargs, message",
    [
        (np.array([E2M1, E2M1]), {}, r"dialect 1 duplicates dialect 0"),
        ([E2M1, [np.False_, *E2M1[1:]]], {}, r"dialect 1 .*boolean"),
        ([[0, True, 2, 3, 4, 6, 8, 12]], {}, r"dialect 0 .*boolean"),
        (np.array([[False] + [True] * 7]), {}, r"dialect 0 .*boolean"),
        ([np.array(E2M1), np.array([0, 1, 2, 3, 4, 5, 6, 7]).astype(bool)], {},
         r"dialect 1 .*boolean"),
        ([E2M1], {"variants": True}, r"variants.*integer"),
        ([E2M1, [0, 1, 2, 3, 4, 5, 6, 7]], {"variants": 2.0}, r"variants.*integer"),
        ([E2M1], {"name": 7}, r"name.*string"),
    ],
)
def test_formatbook_constructor_holes_are_rejected(table, kwargs, message: str) -> None:
    kwargs = {"name": "b", **kwargs}
    with pytest.raises(ValueError, match=message):
        Formatbook(kwargs.pop("name"), table, **kwargs)


def test_numpy_integer_variants_are_accepted() -> None:
    book = Formatbook("b", np.array([E2M1, [0, 1, 2, 3, 4, 5, 6, 7]]), variants=np.int64(2))
    assert book.variants == 2 and type(book.variants) is int
    assert book.variant_ids(1).tolist() == [1]
