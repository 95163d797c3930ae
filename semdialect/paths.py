"""Where shipped data is read from and where build products go (no I/O at import).

Shipped files (configurations, formatbooks, workloads, energy assumptions, the video fixture)
are package data of ``semdialect.configs`` and ``semdialect.data``, so they are found from any
working directory and in a non-editable install. Build products (generated Verilog, Verilator
builds, synthesis caches) go under :func:`build_dir`.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["build_dir", "configs_dir", "data_dir"]


def data_dir() -> Path:
    """The shipped ``data/`` folder (``energy/``, ``workloads/``, ``video/``)."""
    return Path(str(files("semdialect.data")))


def configs_dir() -> Path:
    """The shipped ``configs/`` folder (``*.toml`` and ``formatbooks/*.toml``)."""
    return Path(str(files("semdialect.configs")))


def build_dir() -> Path:
    """Root of build products and caches: ``$SEMDIALECT_BUILD_DIR`` if set, else ``./build``
    in the current working directory."""
    env = os.environ.get("SEMDIALECT_BUILD_DIR")
    return Path(env) if env else Path.cwd() / "build"
