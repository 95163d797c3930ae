"""Writing the user's output files without ever losing their data.

Rules: check every argument before touching any output; never write over an input; write
*through* symlinks and into device files instead of replacing them; keep the umask; leave the
previous output whole if this run fails.

* :func:`check_paths` — before any work: no output is the same file as an input or as another
  output (symlinks and hard links resolved), no output is a directory, an existing output is
  writable, and a regular file's folder exists or can be made and is writable (the new
  content is renamed into it).
* :func:`check_dirs` — the same before any work for output *folders* (``--out DIR``): not an
  existing file, and the folder exists or can be made.
* :func:`write_output` — a regular file (or a new one) is written to a temporary file in the
  same folder and renamed over the target only when complete (the old file survives a failed
  or interrupted run), with the old file's mode or, for a new file, ``0o666 & ~umask``; a
  symlink is followed and its *target* is replaced that way (the link stays); a device file,
  FIFO, pipe or socket (``/dev/null``, ``/dev/stdout``) is opened and written in place (never
  replaced).
* :func:`is_stdout` — whether an output is the process's standard output (then a command
  prints its messages to stderr, not into the data).
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast

from semdialect.outdir import existing_ancestor

__all__ = ["check_dirs", "check_paths", "current_umask", "is_stdout", "same_file",
           "write_output"]

PathArg = str | os.PathLike[str]


def current_umask() -> int:
    """The process umask: from ``/proc/self/status`` where available (no change to the
    process state), else read by setting and restoring it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def same_file(a: PathArg, b: PathArg) -> bool:
    """True when ``a`` and ``b`` name the same existing file (symlinks and hard links
    resolved), or the same path once resolved when either does not exist yet."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _stat(path: PathArg) -> os.stat_result | None:
    """``os.stat`` of ``path`` as given (symlinks followed, also ``/proc`` links such as
    ``/dev/stdout`` to a pipe, which ``realpath`` cannot resolve), None if it does not exist."""
    try:
        return os.stat(path)
    except OSError:
        return None


def is_stdout(path: PathArg) -> bool:
    """True when ``path`` is the file, pipe or device the standard output writes to."""
    st = _stat(path)
    try:
        out = os.fstat(sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        return False
    return st is not None and (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino)


class _StreamWriter(io.RawIOBase):
    """Write-only stream over the descriptor of a device, FIFO or pipe. Not a disk-file type,
    so NumPy writes through :meth:`write` rather than ``ndarray.tofile``, which needs a file
    position that a FIFO or pipe does not have."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Write all of ``data`` (a pipe may take it in parts)."""
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:])
        return done


def _check_creatable(name: str, shown: PathArg, folder: Path, what: str) -> None:
    """Raise unless ``folder`` is a writable folder or could be created as one."""
    base = existing_ancestor(folder)
    if not base.is_dir():
        raise ValueError(f"{name}: cannot create {shown} ({base} is not a folder)")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot create {shown} ({base} is not writable{what})")


def check_paths(outputs: Mapping[str, PathArg], inputs: Mapping[str, PathArg]) -> None:
    """Raise ``ValueError`` naming the parameter if an output would destroy an input or
    another output, or cannot be written as a file. ``outputs``/``inputs`` map a parameter
    name (as the user knows it, e.g. ``"-o"``, ``"X"``) to its path."""
    for out_name, out in outputs.items():
        for in_name, inp in inputs.items():
            if same_file(out, inp):
                raise ValueError(f"{out_name}: {out} is the same file as {in_name} ({inp}); "
                                 "refusing to overwrite an input")
        for other_name, other in outputs.items():
            if other_name != out_name and same_file(out, other):
                raise ValueError(f"{out_name}: {out} is the same file as {other_name}")
        st = _stat(out)
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{out_name}: {out} is a folder, expected a file path")
        if st is not None and not os.access(out, os.W_OK):
            raise ValueError(f"{out_name}: {out} is not writable")
        if st is not None and not stat.S_ISREG(st.st_mode):
            continue  # a device, FIFO or pipe: written in place, its folder is not touched
        real = Path(os.path.realpath(out))
        _check_creatable(out_name, out, real.parent,
                         "; the new file is written next to the old one and renamed"
                         if st is not None else "")


def check_dirs(outputs: Mapping[str, PathArg]) -> None:
    """Raise ``ValueError`` naming the parameter if an output folder (``--out DIR``) is an
    existing non-folder or cannot be created."""
    for name, out in outputs.items():
        real = Path(os.path.realpath(out))
        if real.exists() and not real.is_dir():
            raise ValueError(f"{name}: {out} exists and is not a folder")
        _check_creatable(name, out, real, "")


def write_output(path: PathArg, writer: Callable[[BinaryIO], None]) -> None:
    """Write one output file through ``writer(binary_file)`` (see the module docstring)."""
    st = _stat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{path} is a folder, expected a file path")
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # in place, never replaced
        try:
            with _StreamWriter(fd) as stream:
                writer(cast(BinaryIO, stream))
        finally:
            os.close(fd)
        return
    target = Path(os.path.realpath(path))  # follow symlinks: write the file they point to
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
