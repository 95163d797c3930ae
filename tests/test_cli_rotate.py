"""``semdialect quantize/gemm --rotate hadamard --rotate-seed N`` (SPEC §11): the outputs equal
the golden library's, and bad input (a rotation size other than B, overflow after rotation, a
bad seed) gets one line, exit status 2 and no output file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from semdialect.cli import main
from semdialect.golden import FORMAT_NAMES, decomposed_linear, gemm, quantize


def _one_line(err: str, *words: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


@pytest.fixture
def operands(tmp_path, rng):
    x = rng.standard_t(3, size=(6, 40)).astype(np.float32)
    w = rng.standard_normal((40, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    return x, w


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_quantize_rotated_writes_golden_outputs(tmp_path, capsys, operands, fmt: str) -> None:
    x, _ = operands
    out = tmp_path / "q.npz"
    assert main(["quantize", str(tmp_path / "x.npy"), "-o", str(out), "--format", fmt,
                 "--pad", "--rotate", "hadamard", "--rotate-seed", "77"]) == 0
    assert "hadamard rotation, seed 77" in capsys.readouterr().out
    q = quantize(x, fmt, pad=True, rotate="hadamard", rotate_seed=77, name="x")
    with np.load(out) as d:
        assert str(d["rotate"]) == "hadamard" and int(d["rotate_seed"]) == 77
        assert str(d["format"]) == q.format == f"{fmt}+hadamard"
        assert (d["codes"] == q.codes).all() and d["codes"].shape[-1] == q.rotated.shape[-1]
        assert d["dequant"].shape == x.shape
        assert (d["dequant"].view(np.uint32) == q.dequant.view(np.uint32)).all()
        assert (d["rotated"].view(np.uint32) == q.rotated.view(np.uint32)).all()
        for key in ("se", "dialect", "scale"):
            if getattr(q, key) is not None:
                assert (d[key] == getattr(q, key)).all()


def test_quantize_without_rotation_records_none(tmp_path, capsys, operands) -> None:
    out = tmp_path / "q.npz"
    assert main(["quantize", str(tmp_path / "x.npy"), "-o", str(out), "--pad"]) == 0
    assert "no rotation" in capsys.readouterr().out
    with np.load(out) as d:
        assert str(d["rotate"]) == "none" and int(d["rotate_seed"]) == 0
        assert "rotated" not in d.files and str(d["format"]) == "sd32"


@pytest.mark.parametrize("fmt", ["sd32", "mxfp4", "nvfp4"])
def test_gemm_rotated_matches_library(tmp_path, capsys, operands, fmt: str) -> None:
    x, w = operands
    out = tmp_path / "y.npy"
    assert main(["gemm", str(tmp_path / "x.npy"), str(tmp_path / "w.npy"), "-o", str(out),
                 "--format", fmt, "--pad", "--rotate", "hadamard", "--rotate-seed", "3"]) == 0
    assert "hadamard rotation, seed 3" in capsys.readouterr().out
    want = gemm(x, w, fmt, pad=True, rotate="hadamard", rotate_seed=3)
    assert (np.load(out).view(np.uint32) == want.view(np.uint32)).all()


def test_gemm_rotated_with_salient_rows(tmp_path, rng) -> None:
    x = rng.standard_normal((8, 64)).astype(np.float32)
    w = rng.standard_normal((64, 4))
    sal = np.array([2, 5])
    for name, arr in (("x", x), ("w", w), ("s", sal)):
        np.save(tmp_path / f"{name}.npy", arr)
    out = tmp_path / "y.npy"
    assert main(["gemm", str(tmp_path / "x.npy"), str(tmp_path / "w.npy"), "-o", str(out),
                 "--salient", str(tmp_path / "s.npy"), "--rotate", "hadamard"]) == 0
    want = decomposed_linear(x, w, "sd32", salient=sal, rotate="hadamard").y
    assert (np.load(out).view(np.uint32) == want.view(np.uint32)).all()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--format", "int4", "--block", "24", "--rotate", "hadamard"],
         ["rotate:", "B = 24"]),
        (["--rotate-seed", "-1"], ["--rotate-seed", "[0, 2^64)"]),
        (["--rotate-seed", str(1 << 64)], ["--rotate-seed", "[0, 2^64)"]),
        (["--rotate-seed", "x"], ["--rotate-seed"]),
        (["--rotate", "givens"], ["--rotate", "invalid choice"]),
    ],
)
@pytest.mark.parametrize("cmd", ["quantize", "gemm"])
def test_bad_rotation_arguments(tmp_path, capsys, rng, cmd: str, args, words) -> None:
    np.save(tmp_path / "x.npy", rng.standard_normal((4, 48)))
    np.save(tmp_path / "w.npy", rng.standard_normal((48, 2)))
    out = tmp_path / "out.np"
    operands = [str(tmp_path / "x.npy")] + ([str(tmp_path / "w.npy")] if cmd == "gemm" else [])
    assert main([cmd, *operands, "-o", str(out), *args]) == 2
    _one_line(capsys.readouterr().err, f"semdialect {cmd}: error:", *words)
    assert not out.exists()


def test_overflow_after_rotation_is_bad_input(tmp_path) -> None:
    """The installed command: one line naming the tensor and block, exit 2, nothing written."""
    big = np.zeros((3, 64), np.float32)
    big[2, 32:] = 60000  # fine in FP16, 8 times too large after the B = 32 rotation
    src = tmp_path / "big.npy"
    np.save(src, big)
    out = tmp_path / "q.npz"
    r = subprocess.run([sys.executable, "-m", "semdialect", "quantize", str(src), "-o",
                        str(out), "--rotate", "hadamard"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    _one_line(r.stderr, "semdialect quantize: error:", "block (2, 1)",
              "outside the FP16 range after rotation")
    assert not out.exists()
    assert main(["quantize", str(src), "-o", str(out)]) == 0  # without the rotation: fine
