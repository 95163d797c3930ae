"""Formatbooks (SPEC §1): the shipped tables and user TOML books."""

from __future__ import annotations

import math

import numpy as np
import pytest
from semdialect.golden import dfp4, get_formatbook, load_formatbook, sd32


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
