"""Output folders replaced as a whole: a run's files appear together, or not at all.

``semdialect sim`` and the report builder write a *set* of files (CSVs, plots, a summary that
points at them). Writing them one by one into ``--out`` leaves a mixed folder when a run fails
or is interrupted (a new CSV beside an old summary). Instead:

* :func:`check_out_dir` — before any work: ``--out`` is a folder or can be made one (an
  existing non-folder is refused), it may be replaced as a whole (not the working folder or
  an ancestor of it, not the installed package or its shipped data, and it holds only files
  and symlinks — no subfolders, devices or FIFOs), and its folder is writable.
* :func:`staged_dir` — a context manager: every output goes into a fresh staging folder next
  to ``--out`` (same filesystem, so the final rename is atomic); :meth:`Staging.carry_over`
  copies the files of the current ``--out`` that the run does not own (another command's
  report, a user's notes) into it; when the block ends normally the staging folder is swapped
  in (the old folder renamed aside, the new one renamed in, the old one removed; Ctrl-C is
  held back during the swap). On any exception, ``KeyboardInterrupt`` included, the staging
  folder and any parent folders made for it are removed and ``--out`` is left exactly as it
  was. A symlinked ``--out`` is written through: its target is replaced, the link stays.

Created folders get ``0o777 & ~umask`` (they are made with :func:`os.mkdir`, which applies
the umask); a replaced folder keeps the old folder's mode.

Layer: the bottom (standard library and :mod:`semdialect.paths` only), so that both
``semdialect.reports`` and ``semdialect.cli`` can use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import semdialect
from semdialect.paths import configs_dir, data_dir

__all__ = ["Staging", "check_out_dir", "existing_ancestor", "staged_dir"]

PathArg = str | os.PathLike[str]


def _is_within(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or inside it (both resolved)."""
    return path == folder or folder in path.parents


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_out_dir(name: str, path: PathArg) -> Path:
    """Check ``path`` as an output folder that is replaced as a whole (see the module
    docstring); return its real location (symlinks resolved). Raises a one-line
    ``ValueError`` starting with ``name`` (the parameter, e.g. ``"--out"``)."""
    real = Path(os.path.realpath(path))
    shown = os.fspath(path)
    if real == real.parent:
        raise ValueError(f"{name}: {shown} is the filesystem root")
    for folder, what in ((Path.cwd().resolve(), "the working folder"),
                         (Path(semdialect.__file__).resolve().parent, "the semdialect package")):
        if _is_within(folder, real):
            raise ValueError(f"{name}: {shown} is or contains {what} ({folder}); the output "
                             "folder is replaced as a whole, choose a folder of its own")
    for folder in (data_dir().resolve(), configs_dir().resolve()):
        if _is_within(real, folder) or _is_within(folder, real):
            raise ValueError(f"{name}: {shown} overlaps the shipped data folder {folder}")
    try:
        st = real.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ValueError(f"{name}: cannot use {shown} ({exc.strerror})") from None
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{name}: {shown} exists and is not a folder")
        if not os.access(real, os.R_OK | os.W_OK | os.X_OK):
            raise ValueError(f"{name}: {shown} is not a readable and writable folder")
        try:
            entries = list(os.scandir(real))
        except OSError as exc:
            raise ValueError(f"{name}: cannot list {shown} ({exc.strerror})") from None
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                raise ValueError(f"{name}: {shown} holds a folder ({entry.name}/), so it is "
                                 "not an output folder (it is replaced as a whole); choose an "
                                 "empty or new folder")
            if not (entry.is_symlink() or entry.is_file(follow_symlinks=False)):
                raise ValueError(f"{name}: {shown} holds {entry.name}, which is neither a "
                                 "file nor a symlink")
    base = existing_ancestor(real.parent)
    if not base.is_dir():
        raise ValueError(f"{name}: cannot create {shown} ({base} is not a folder)")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write next to {shown} ({base} is not writable; the "
                         "new output is made beside the old one and renamed)")
    return real


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back for the duration of the block; it is delivered after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@dataclass
class Staging:
    """A staging folder for the new contents of :attr:`target`."""

    target: Path  #: the folder that is replaced (symlinks resolved)
    path: Path  #: the staging folder: write every output here
    made_parents: list[Path] = field(default_factory=list)  #: folders created for it

    def carry_over(self, keep: Callable[[str], bool]) -> list[str]:
        """Copy each entry of the current :attr:`target` whose name ``keep`` accepts and that
        the staging folder does not hold yet (files with their mode and times, symlinks as
        symlinks); return the names copied."""
        if not self.target.is_dir():
            return []
        copied = []
        for entry in sorted(os.scandir(self.target), key=lambda e: e.name):
            dest = self.path / entry.name
            if not keep(entry.name) or os.path.lexists(dest):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.copytree(entry.path, dest, symlinks=True)
            elif entry.is_symlink() or entry.is_file(follow_symlinks=False):
                shutil.copy2(entry.path, dest, follow_symlinks=False)
            else:
                raise ValueError(f"cannot carry {entry.path} over into the new output folder "
                                 "(neither a file nor a symlink)")
            copied.append(entry.name)
        return copied

    def _swap(self) -> None:
        """Put the staging folder in place of :attr:`target` (the old one is removed)."""
        parent, name = self.target.parent, self.target.name
        with _sigint_held():
            if not os.path.lexists(self.target):
                os.rename(self.path, self.target)
                return
            aside = parent / f".{name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(self.target, aside)
            try:
                os.rename(self.path, self.target)
            except BaseException:
                os.rename(aside, self.target)
                raise
            shutil.rmtree(aside, ignore_errors=True)

    def _discard(self) -> None:
        """Remove the staging folder and the parent folders made for it."""
        shutil.rmtree(self.path, ignore_errors=True)
        for folder in reversed(self.made_parents):
            with contextlib.suppress(OSError):
                folder.rmdir()


@contextlib.contextmanager
def staged_dir(path: PathArg, name: str = "--out") -> Iterator[Staging]:
    """Stage a new version of the output folder ``path`` (see the module docstring): yields a
    :class:`Staging` whose :attr:`~Staging.path` receives every output; swapped in when the
    block ends normally, discarded (``path`` untouched) when it raises."""
    target = check_out_dir(name, path)
    made: list[Path] = []
    missing = target.parent
    while not missing.exists():
        made.append(missing)
        missing = missing.parent
    staging = Staging(target, target.parent / f".{target.name}.new-{os.getpid()}-"
                      f"{secrets.token_hex(4)}", made[::-1])
    try:
        for folder in staging.made_parents:
            os.mkdir(folder)  # 0o777 & ~umask
        os.mkdir(staging.path)
        if target.is_dir():
            os.chmod(staging.path, stat.S_IMODE(target.stat().st_mode))
        yield staging
        staging._swap()
    except BaseException:
        staging._discard()
        raise
