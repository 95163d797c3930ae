"""``semdialect gemm --salient S.npy``: the decomposed linear layer (SPEC §6) from the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from semdialect.cli import main
from semdialect.golden import gemm
from semdialect.golden.decompose import decomposed_linear


@pytest.fixture
def operands(tmp_path):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((21, 64)) * np.exp2(rng.integers(-6, 6, (21, 1)))).astype(np.float16)
    w = rng.standard_normal((64, 9)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    return tmp_path, x, w


@pytest.mark.parametrize("fmt, select", [("sd32", "lut"), ("dfp4", "two-stage")])
def test_salient_gives_decomposed_linear(operands, fmt: str, select: str) -> None:
    tmp, x, w = operands
    salient = np.array([20, 0, 7])
    np.save(tmp / "s.npy", salient)
    assert main(["gemm", str(tmp / "x.npy"), str(tmp / "w.npy"), "-o", str(tmp / "y.npy"),
                 "--format", fmt, "--select", select, "--salient", str(tmp / "s.npy")]) == 0
    y = np.load(tmp / "y.npy")
    want = decomposed_linear(x, w, fmt, salient=np.sort(salient), select=select).y
    assert np.array_equal(y.view(np.uint32), want.view(np.uint32))
    plain = gemm(x, w, fmt, select=select)
    changed = np.flatnonzero((y != plain).any(axis=1))
    assert set(changed) <= set(salient.tolist()) and changed.size  # only salient rows move


@pytest.mark.parametrize("content, words", [
    (np.array([1, 1]), "distinct"), (np.array([21]), "out of range"),
    (np.array([-1]), "out of range"), (np.array([[1]]), "1-D integer"),
    (np.array([0.5]), "1-D integer"),
])
def test_bad_salient_is_one_line(operands, capsys, content, words: str) -> None:
    tmp, _, _ = operands
    np.save(tmp / "s.npy", content)
    assert main(["gemm", str(tmp / "x.npy"), str(tmp / "w.npy"), "-o", str(tmp / "y.npy"),
                 "--salient", str(tmp / "s.npy")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--salient" in err and words in err, err
    assert not (tmp / "y.npy").exists()


def test_salient_is_an_input_never_overwritten(operands, capsys) -> None:
    tmp, _, _ = operands
    np.save(tmp / "s.npy", np.array([2]))
    before = (tmp / "s.npy").read_bytes()
    assert main(["gemm", str(tmp / "x.npy"), str(tmp / "w.npy"), "-o", str(tmp / "s.npy"),
                 "--salient", str(tmp / "s.npy")]) == 2
    assert (tmp / "s.npy").read_bytes() == before
