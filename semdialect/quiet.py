"""Silence what a third-party import writes to the process's stderr (file descriptor 2).

torchao 0.18 prints "Failed to load …" for its CUDA-only extensions and torch logs deprecation
lines when torchao is imported on a CPU machine; neither concerns a CPU benchmark, and they would
bury its progress lines. Only the import is silenced: everything after it reaches stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_stderr"]


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Redirect file descriptor 2 (and ``sys.stderr``) to the null device inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
