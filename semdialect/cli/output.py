"""Writing the user's output files without ever losing their data.

Rules (DEVELOPERS.md): check every argument before touching any output; never write over an
input; write *through* symlinks and into device files instead of replacing them; keep the
umask; leave the previous output whole if this run fails.

* :func:`check_paths` — before any work: no output is the same file as an input or as another
  output (symlinks and hard links resolved), no output is a directory, and its folder exists
  or can be made.
* :func:`write_output` — a regular file (or a new one) is written to a temporary file in the
  same folder and renamed over the target only when complete (the old file survives a failed
  or interrupted run), with the old file's mode or, for a new file, ``0o666 & ~umask``; a
  symlink is followed and its *target* is replaced that way (the link stays); a device file,
  FIFO or socket is opened and written in place (never replaced).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

__all__ = ["check_paths", "current_umask", "same_file", "write_output"]


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name the same existing file (symlinks and hard links
    resolved), or the same path once resolved when either does not exist yet."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_paths(outputs: Mapping[str, str | os.PathLike[str]],
                inputs: Mapping[str, str | os.PathLike[str]]) -> None:
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
        real = Path(os.path.realpath(out))
        if real.is_dir():
            raise ValueError(f"{out_name}: {out} is a directory, expected a file path")
        parent = real.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"{out_name}: cannot create {out} ({parent} is not a writable "
                             "folder)")


def write_output(path: str | os.PathLike[str], writer: Callable[[BinaryIO], None]) -> None:
    """Write one output file through ``writer(binary_file)`` (see the module docstring)."""
    target = Path(os.path.realpath(path))  # follow symlinks: write the file they point to
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{path} is a directory, expected a file path")
        with open(target, "wb") as fh:  # device, FIFO: write in place, never replace
            writer(fh)
        return
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
