"""Bad numbers get one line and exit status 2 before any work: empty tensors, bench sizes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import semdialect.cli as cli
from semdialect.cli import main


def _one_line(err: str, *words: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("shape", [(0, 64), (0,), (3, 0), (2, 0, 32)])
@pytest.mark.parametrize("cmd", ["error", "quantize", "gemm"])
def test_empty_tensor_is_bad_input(tmp_path, capsys, shape, cmd: str) -> None:
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros(shape, np.float32))
    out = tmp_path / "out.npy"
    argv = {"error": ["error", str(empty)],
            "quantize": ["quantize", str(empty), "-o", str(out)],
            "gemm": ["gemm", str(empty), str(empty), "-o", str(out)]}[cmd]
    assert main(argv) == 2
    captured = capsys.readouterr()
    _one_line(captured.err, "empty")
    assert "inf" not in captured.out and "nan" not in captured.out
    assert not out.exists()


def test_error_on_empty_tensor_subprocess(tmp_path) -> None:
    """The installed command: no table of inf/nan, exit status 2."""
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 32), np.float16))
    r = subprocess.run([sys.executable, "-m", "semdialect", "error", str(empty)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    _one_line(r.stderr, "semdialect error: error:", "IN", "empty")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--repeat", "0"], ["--repeat", "at least 1"]),
        (["--repeat", "-2"], ["--repeat", "at least 1"]),
        (["--repeat", "two"], ["--repeat"]),
        (["--size", "0"], ["--size", "positive multiple of 32"]),
        (["--size", "-5"], ["--size", "positive multiple of 32"]),
        (["--size", "33"], ["--size", "positive multiple of 32", "block"]),
        (["--size", "1e3"], ["--size"]),
    ],
)
def test_bench_arguments_are_checked_before_the_child_starts(capsys, monkeypatch, args,
                                                             words) -> None:
    monkeypatch.setattr(cli.subprocess, "Popen", lambda *a, **k: pytest.fail("child started"))
    assert main(["bench", *args]) == 2
    _one_line(capsys.readouterr().err, "semdialect bench: error:", *words)


@pytest.mark.parametrize("args, words", [(["--sentences", "2"], ["--sentences", "at least 3"]),
                                         (["--sentences", "x"], ["--sentences"])])
def test_eval_arguments_are_checked_before_the_child_starts(capsys, monkeypatch, args,
                                                            words) -> None:
    monkeypatch.setattr(cli.subprocess, "Popen", lambda *a, **k: pytest.fail("child started"))
    assert main(["eval", *args]) == 2
    _one_line(capsys.readouterr().err, "semdialect eval: error:", *words)


def test_bench_runs_a_small_size() -> None:
    r = subprocess.run([sys.executable, "-m", "semdialect", "bench", "--size", "64",
                        "--repeat", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "64x64 FP16" in r.stdout and "| sd32 lut" in r.stdout


def test_usage_errors_are_one_line(capsys) -> None:
    assert main(["quantize", "x.npy"]) == 2  # -o missing
    _one_line(capsys.readouterr().err, "semdialect quantize: error:", "-o/--output")
    assert main(["frobnicate"]) == 2
    _one_line(capsys.readouterr().err, "semdialect: error:", "frobnicate")
