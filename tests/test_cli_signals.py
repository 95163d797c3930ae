"""Ctrl-C: one line ``semdialect <cmd>: interrupted`` on stderr and exit status 130, also for
the commands that run their work in a child process (bench, eval)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import numpy as np
import pytest

import semdialect.cli as cli
from semdialect.cli import main


def _wait_for_line(stream: IO[str], marker: str, timeout: float = 60) -> str:
    """Read ``stream`` until a line containing ``marker`` (the command is working)."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
        if marker in line:
            return seen
    pytest.fail(f"no {marker!r} line; saw {seen!r}")


def _interrupt(argv: list[str], marker: str, stream: str, group: bool) -> tuple[int, str]:
    """Start ``semdialect *argv``, wait for ``marker`` on ``stream``, send SIGINT to the
    process (``group=False``) or, like a terminal's Ctrl-C, to its whole process group."""
    proc = subprocess.Popen([sys.executable, "-m", "semdialect", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_line(proc.stdout if stream == "stdout" else proc.stderr, marker)
        if group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 M-element tensor: `semdialect error` shows progress and takes several seconds."""
    p = tmp_path_factory.mktemp("big") / "big.npy"
    np.save(p, np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float16))
    return p


@pytest.mark.parametrize("group", [False, True], ids=["process", "terminal"])
def test_ctrl_c_in_error_is_one_line_and_130(big: Path, group: bool) -> None:
    rc, err = _interrupt(["error", str(big)], "  ...", "stderr", group)
    assert rc == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "semdialect error: interrupted"


@pytest.mark.parametrize("group", [False, True], ids=["process", "terminal"])
def test_ctrl_c_in_bench_child_is_one_line_and_130(group: bool) -> None:
    rc, err = _interrupt(["bench", "--size", "256", "--repeat", "200"], "  ...", "stdout",
                         group)
    assert rc == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines() == ["semdialect bench: interrupted"]


def test_interrupt_in_any_command_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_error", interrupted)
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 32), np.float32))
    assert main(["error", str(x)]) == 130
    assert capsys.readouterr().err == "semdialect error: interrupted\n"


def test_child_runner_is_quiet_on_ctrl_c_and_formats_warnings(tmp_path, capsys,
                                                              monkeypatch) -> None:
    """The code a child process runs: Ctrl-C -> exit 130 without a word (the parent says
    it), warnings as one line."""
    (tmp_path / "child_interrupted.py").write_text(
        "def main():\n    raise KeyboardInterrupt\n")
    (tmp_path / "child_warns.py").write_text(
        "import warnings\n\ndef main():\n    warnings.warn('3 values flushed to zero')\n"
        "    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    handler = signal.getsignal(signal.SIGINT)
    try:
        assert cli.run_child_main("semdialect bench", "child_interrupted") == 130
        # exiting, the child ignores a second Ctrl-C (restored here: children inherit it)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, handler)
    assert cli.run_child_main("semdialect bench", "child_warns") == 0
    err = capsys.readouterr().err
    assert err == "semdialect bench: warning: 3 values flushed to zero\n"


def test_ctrl_c_in_eval_child_is_one_line_and_130(tmp_path) -> None:
    rc, err = _interrupt(["eval", "--quick", "--out", str(tmp_path / "out")], "  ...", "stderr",
                         group=True)
    assert rc == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == "semdialect eval: interrupted"
    assert not (tmp_path / "out" / "accuracy.csv").exists()
