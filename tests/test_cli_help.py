"""Help, version and messages: every command and option explained, gemm's --precision,
golden-model warnings as one line."""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings

import numpy as np
import pytest

import semdialect
import semdialect.cli as cli
from semdialect.cli import build_parser, main
from semdialect.golden import gemm


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"semdialect {semdialect.__version__}"


@pytest.mark.parametrize("cmd", sorted(_subparsers()))
def test_every_command_and_option_is_explained(cmd: str) -> None:
    p = _subparsers()[cmd]
    assert p.description and len(p.description) > 40, cmd
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help) > 10, f"{cmd} {name}: no help"
        has_default = action.default not in (None, argparse.SUPPRESS) and not isinstance(
            action.default, bool)
        if action.option_strings and has_default:
            assert "default" in action.help, f"{cmd} {name}: help does not give the default"


def test_eval_help_speaks_to_users() -> None:
    text = _subparsers()["eval"].format_help()
    assert "issue" not in text
    assert "default 64" in text


def test_gemm_precision_option(tmp_path, rng) -> None:
    x = rng.standard_normal((3, 64)).astype(np.float32)
    w = rng.standard_normal((64, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    y = tmp_path / "y.npy"
    base = ["gemm", str(tmp_path / "x.npy"), str(tmp_path / "w.npy"), "-o", str(y)]
    assert main([*base, "--precision", "fp16"]) == 0
    got = np.load(y)
    assert got.dtype == np.float16 and np.array_equal(got, gemm(x, w, "sd32", out="fp16"))
    y.unlink()
    # neither the old name nor an abbreviation (`--out Y` would silently mean --output)
    for argv in ([*base, "--out", "fp16"], [*base[:3], "--outp", str(y)]):
        assert main(argv) == 2
    assert not y.exists()
    assert "--precision" in _subparsers()["gemm"].format_help()


def test_golden_warnings_are_one_line(tmp_path, capsys, monkeypatch) -> None:
    real = cli.quantize

    def warning_quantize(*args: object, **kwargs: object) -> object:
        warnings.warn("3 subnormal values flushed to zero", UserWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "quantize", warning_quantize)
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 32), np.float32))
    assert main(["quantize", str(x), "-o", str(tmp_path / "q.npz")]) == 0
    err = capsys.readouterr().err
    assert err == "semdialect quantize: warning: 3 subnormal values flushed to zero\n"


def test_help_runs_as_a_command() -> None:
    r = subprocess.run([sys.executable, "-m", "semdialect", "bench", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "multiple of 32" in " ".join(r.stdout.split())
