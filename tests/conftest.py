"""Shared test helpers: independent (slow, obvious) recomputations of SPEC rules.

Under pytest-xdist (``make test`` runs two workers, one per core, ``--dist loadfile``) each
worker gets its own build folder, ``<build>/xdist-<worker>`` (``SEMDIALECT_BUILD_DIR``, set
here before any test module computes a path from it): the Verilog, Verilator and synthesis
caches are written by one process only, so two workers never build the same simulator in the
same folder at once.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    _root = os.environ.get("SEMDIALECT_BUILD_DIR") or str(Path.cwd() / "build")
    os.environ["SEMDIALECT_BUILD_DIR"] = str(Path(_root) / f"xdist-{_WORKER}")


def all_finite_fp16() -> np.ndarray:
    """Every finite FP16 value (both zeros included), as float16."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    vals = bits.view(np.float16)
    return vals[np.isfinite(vals)]


def ref_se(block: np.ndarray) -> int:
    """SPEC §2 shared exponent by plain Python: max(floor(log2 M) - 2, -16)."""
    m = max(abs(float(v)) for v in block)
    if m == 0:
        return -16
    return max(math.frexp(m)[1] - 1 - 2, -16)


def ref_q(block: np.ndarray, se: int) -> list[int]:
    """SPEC §2 q_i = floor(|x_i| · 2^(2 - SE)) in exact float64 arithmetic."""
    return [int(math.floor(abs(float(v)) * 2.0 ** (2 - se))) for v in block]


def ref_nearest_up(q: int, hu: list[int]) -> int:
    """SPEC §3 IDX by brute force: nearest 2·HU to q, ties to the larger index."""
    dist = [abs(2 * h - q) for h in hu]
    best = min(dist)
    return max(k for k, d in enumerate(dist) if d == best)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
