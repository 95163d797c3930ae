"""The command line never loses the user's data: outputs vs inputs, symlinks, device files,
modes, failed writes, and every path checked before any work."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import semdialect.cli as cli
from semdialect.cli import main
from semdialect.cli.output import check_dirs, check_paths, write_output


@pytest.fixture
def xw(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """X (4, 64) and W (64, 3) .npy files."""
    x, w = tmp_path / "x.npy", tmp_path / "w.npy"
    np.save(x, rng.standard_normal((4, 64)).astype(np.float32))
    np.save(w, rng.standard_normal((64, 3)).astype(np.float32))
    return x, w


def _quantize(x: Path, out: Path | str, *extra: str) -> list[str]:
    return ["quantize", str(x), "-o", str(out), *extra]


def _gemm(x: Path, w: Path, out: Path | str, *extra: str) -> list[str]:
    return ["gemm", str(x), str(w), "-o", str(out), *extra]


def _one_error_line(err: str, *words: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("cmd, victim", [("quantize", "x"), ("gemm", "x"), ("gemm", "w")])
def test_output_onto_an_input_is_refused(tmp_path, xw, capsys, link, cmd, victim) -> None:
    x, w = xw
    target = x if victim == "x" else w
    before = target.read_bytes()
    out = target
    if link == "symlink":
        out = tmp_path / "link.npy"
        out.symlink_to(target)
    elif link == "hardlink":
        out = tmp_path / "hard.npy"
        os.link(target, out)
    argv = _quantize(x, out) if cmd == "quantize" else _gemm(x, w, out)
    assert main(argv) == 2
    _one_error_line(capsys.readouterr().err, "-o", "same file")
    assert target.read_bytes() == before
    assert out.is_symlink() == (link == "symlink")


def test_symlinked_output_stays_a_link_and_its_target_gets_the_content(tmp_path, xw) -> None:
    x, w = xw
    real = tmp_path / "real" / "y.npy"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "y.npy"
    link.symlink_to(real)
    assert main(_gemm(x, w, link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert np.load(real).shape == (4, 3)


def test_device_output_is_written_in_place(tmp_path, xw) -> None:
    """A link to /dev/null: written into, neither the link nor the device is replaced."""
    x, w = xw
    link = tmp_path / "null.npz"
    link.symlink_to("/dev/null")
    assert main(_quantize(x, link)) == 0
    assert main(_gemm(x, w, link)) == 0
    assert link.is_symlink() and os.readlink(link) == "/dev/null"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


@pytest.mark.parametrize("cmd", ["quantize", "gemm"])
def test_fifo_output_is_written_in_place(tmp_path, xw, cmd: str) -> None:
    """A FIFO (not seekable: NumPy must not try ndarray.tofile on it)."""
    x, w = xw
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert main(_quantize(x, fifo) if cmd == "quantize" else _gemm(x, w, fifo)) == 0
    finally:
        t.join(timeout=10)
        if t.is_alive():  # the command never opened the FIFO: unblock the reader
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            t.join(timeout=10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got
    data = np.load(io.BytesIO(got[0]))
    shape = data["codes"].shape if cmd == "quantize" else data.shape
    assert shape == ((4, 64) if cmd == "quantize" else (4, 3))


def test_output_to_a_stdout_pipe(xw) -> None:
    """`-o /dev/stdout` into a pipe: the data is written into the pipe, and the summary line
    goes to stderr so it does not corrupt the data."""
    x, w = xw
    for argv, check in ((_gemm(x, w, "/dev/stdout"), lambda b: np.load(b).shape == (4, 3)),
                        (_quantize(x, "/dev/stdout"),
                         lambda b: np.load(b)["codes"].shape == (4, 64))):
        r = subprocess.run([sys.executable, "-m", "semdialect", *argv], capture_output=True)
        assert r.returncode == 0, r.stderr
        assert check(io.BytesIO(r.stdout))
        assert b"/dev/stdout" in r.stderr


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_new_output_mode_follows_the_umask(tmp_path, xw, umask: int, mode: int) -> None:
    x, w = xw
    for argv in (_quantize(x, tmp_path / "q.npz"), _gemm(x, w, tmp_path / "y.npy")):
        r = subprocess.run([sys.executable, "-m", "semdialect", *argv], capture_output=True,
                           text=True, umask=umask)
        assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "q.npz").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "y.npy").stat().st_mode) == mode


def test_existing_output_keeps_its_mode(tmp_path, xw) -> None:
    x, w = xw
    out = tmp_path / "y.npy"
    out.write_bytes(b"old")
    out.chmod(0o640)
    assert main(_gemm(x, w, out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert np.load(out).shape == (4, 3)


def test_failed_write_leaves_the_previous_output_whole(tmp_path, xw, capsys, monkeypatch) -> None:
    x, _ = xw
    out = tmp_path / "q.npz"
    out.write_bytes(b"previous result")

    def disk_full(fh: object, **arrays: object) -> None:
        fh.write(b"half a file")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    assert main(_quantize(x, out)) == 2
    _one_error_line(capsys.readouterr().err, "No space left")
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.npz", "w.npy", "x.npy"]


def test_interrupted_write_leaves_the_previous_output_whole(tmp_path) -> None:
    out = tmp_path / "y.npy"
    out.write_bytes(b"previous")

    def interrupted(fh: object) -> None:
        fh.write(b"partial")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_output(out, interrupted)
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["y.npy"]


@pytest.mark.parametrize(
    "make_argv, words",
    [
        (lambda t, x, w: _quantize(x, x), ["-o", "same file"]),
        (lambda t, x, w: _quantize(x, t), ["-o", "folder"]),
        (lambda t, x, w: _quantize(x, x / "sub" / "q.npz"), ["-o", "not a folder"]),
        (lambda t, x, w: _quantize(x, t / "q.npz", "--block", "7"), ["block"]),
        (lambda t, x, w: _quantize(x, t / "q.npz", "--select", "two-stage"), ["two-stage"]),
        (lambda t, x, w: _quantize(x, t / "q.npz", "--formatbook", str(t / "no.toml")),
         ["cannot read"]),
        (lambda t, x, w: _quantize(x, t / "q.npz", "-f", "mxfp4", "--formatbook", "dfp4"),
         ["formatbook"]),
        (lambda t, x, w: _gemm(x, w, w), ["-o", "same file"]),
        (lambda t, x, w: _gemm(x, w, t / "y.npy", "--block", "48"), ["block"]),
        (lambda t, x, w: ["error", str(x), "--block", "12"], ["block"]),
    ],
)
def test_arguments_and_paths_are_checked_before_any_work(tmp_path, xw, capsys, monkeypatch,
                                                          make_argv, words) -> None:
    """Nothing is read (the arrays may be large) before every argument and path is known to
    be good."""
    x, w = xw
    loaded: list[str] = []
    monkeypatch.setattr(cli, "_load_npy", lambda path, what: loaded.append(path))
    assert main(make_argv(tmp_path, x, w)) == 2
    _one_error_line(capsys.readouterr().err, *words)
    assert loaded == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy", "x.npy"]


def test_unwritable_output_folder_is_refused(tmp_path, xw, capsys, monkeypatch) -> None:
    x, _ = xw
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere: make the folder look read-only
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: (
            not mode & os.W_OK if Path(p) == ro else access(p, mode)))
    try:
        assert main(_quantize(x, ro / "q.npz")) == 2
    finally:
        ro.chmod(0o755)
    _one_error_line(capsys.readouterr().err, "-o", "not writable")
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("cmd", ["sim", "verilog", "eval"])
def test_output_folder_that_is_a_file_is_refused_before_work(tmp_path, capsys, monkeypatch,
                                                             cmd) -> None:
    f = tmp_path / "report.md"
    f.write_text("keep me")
    monkeypatch.setattr(cli.subprocess, "Popen", lambda *a, **k: pytest.fail("child started"))
    assert main([cmd, "--out", str(f)]) == 2
    _one_error_line(capsys.readouterr().err, "--out", "not a folder")
    assert f.read_text() == "keep me"


def test_check_paths_and_dirs_name_the_parameter(tmp_path) -> None:
    a = tmp_path / "a"
    a.write_text("a")
    check_paths({"-o": tmp_path / "new.npy"}, {"IN": a})
    check_paths({"-o": "/dev/null"}, {"IN": a})  # a device: its folder need not be writable
    with pytest.raises(ValueError, match="^-o: .*same file as IN"):
        check_paths({"-o": a}, {"IN": a})
    with pytest.raises(ValueError, match="^--x: .*same file as --y"):
        check_paths({"--x": tmp_path / "n", "--y": tmp_path / "n"}, {})
    check_dirs({"--out": tmp_path / "new" / "deeper"})
    with pytest.raises(ValueError, match="^--out: .*not a folder"):
        check_dirs({"--out": a})
