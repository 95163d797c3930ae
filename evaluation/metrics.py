"""Metrics of the ``semdialect eval`` study beyond the golden model's SQNR and MSE.

SQNR itself is :mod:`semdialect.golden.metrics` (``sqnr_db`` of two arrays,
``sqnr_db_from_sums`` of pooled sums); this module adds what a study on real data needs:
SQNR pooled over many tensors (:class:`PooledSqnr`), per-row squared errors, the sentence-
embedding cosines and Spearman's rank correlation (:func:`embedding_metrics`), and the
temporal consistency of a quantized video (:func:`temporal_consistency`). Everything is
computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from semdialect.golden.metrics import sqnr_db_from_sums

__all__ = [
    "STABLE_REL",
    "PooledSqnr",
    "Temporal",
    "average_ranks",
    "embedding_metrics",
    "row_noise",
    "spearman",
    "temporal_consistency",
    "unit_rows",
]

#: a co-located token pair (t-1, t) is stable when ||x_t - x_{t-1}||_2 < STABLE_REL·||x_{t-1}||_2
STABLE_REL = 0.01


# ------------------------------------------------------------------------------------- SQNR
class PooledSqnr:
    """SQNR pooled over many tensors: 10·log10(Σ ref² / Σ (ref - approx)²) in dB, float64.

    Attributes:
        signal: Σ ref² so far (squared units of the tensors).
        noise: Σ (ref - approx)² so far (same units).
    """

    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0

    def add(self, ref: np.ndarray, approx: np.ndarray) -> None:
        """Add one tensor and its approximation (any shape, the same for both)."""
        r = np.asarray(ref, np.float64)
        d = r - np.asarray(approx, np.float64)
        self.signal += float(np.sum(r * r))
        self.noise += float(np.sum(d * d))

    def add_sums(self, signal: float, noise: float) -> None:
        """Add precomputed sums Σ ref² and Σ (ref - approx)²."""
        self.signal += signal
        self.noise += noise

    @property
    def db(self) -> float:
        """The pooled SQNR in dB (``inf`` without noise, ``nan`` without signal)."""
        return sqnr_db_from_sums(self.signal, self.noise)


def row_noise(ref: np.ndarray, approx: np.ndarray) -> np.ndarray:
    """Σ over the last axis of (ref - approx)², float64: one squared error per row (N,)."""
    d = np.asarray(ref, np.float64) - np.asarray(approx, np.float64)
    return np.sum(d * d, axis=1)


# -------------------------------------------------------------------------- rank statistics
def average_ranks(values: Any) -> np.ndarray:
    """1-based ranks of a 1-D array, tied values sharing the average of their ranks."""
    a = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(a, kind="stable")
    ordered = a[order]
    new = np.ones(a.size, dtype=bool)
    new[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], a.size)  # exclusive
    group = np.cumsum(new) - 1
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = ((starts + ends - 1) / 2.0 + 1.0)[group]
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation: Pearson's r of the average ranks (ties averaged).

    Dimensionless, in [-1, 1]; ``nan`` when either input is constant (its ranks have no
    variance). Raises ``ValueError`` when the inputs differ in length.
    """
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.shape != rb.shape:
        raise ValueError(f"spearman: {ra.shape} and {rb.shape} values")
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / denom if denom > 0 else float("nan")


# ------------------------------------------------------------------------------ embeddings
def unit_rows(e: np.ndarray) -> np.ndarray:
    """Rows of ``e`` scaled to unit L2 norm (float64; an all-zero row stays zero)."""
    e = np.asarray(e, np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-300)


def embedding_metrics(ref: np.ndarray, emb: np.ndarray) -> tuple[float, float, float]:
    """Sentence embeddings (n, d) against their reference (n, d).

    Returns:
        (mean cosine, worst cosine, Spearman correlation of the upper triangles of the two
        pairwise cosine-similarity matrices), all dimensionless.
    """
    r, q = unit_rows(ref), unit_rows(emb)
    cos = np.sum(r * q, axis=1)
    iu = np.triu_indices(r.shape[0], 1)
    return float(cos.mean()), float(cos.min()), spearman((r @ r.T)[iu], (q @ q.T)[iu])


# ------------------------------------------------------------------------- video flicker
@dataclass(frozen=True)
class Temporal:
    """Temporal consistency of a quantized video (see :func:`temporal_consistency`).

    Attributes:
        pairs: co-located token pairs (t-1, t), t = 1..T-1.
        stable: pairs whose input barely changes (||Δx||_2 < rel·||x_{t-1}||_2).
        code_changed: fraction (0..1) of stable pairs with any element code changed.
        dialect_changed: fraction (0..1) of stable pairs with any block's dialect id changed
            (``nan`` for formats without dialects).
        excess: mean over stable pairs of mean_i |Δdeq_i| - mean_i |Δx_i|, in the units of
            the tokens.
    """

    pairs: int
    stable: int
    code_changed: float
    dialect_changed: float
    excess: float


def temporal_consistency(
    x: Any,
    layout: Sequence[int],
    dequant: Any,
    codes: Any,
    dialect: Any = None,
    rel: float = STABLE_REL,
) -> Temporal:
    """Flicker of a quantizer on tokens that barely change between consecutive frames.

    Token n is (t, h, w) = unravel(n, (T, H, W)) (C order). For every (h, w) and t = 1..T-1
    the pair (x_{t-1}, x_t) is *stable* when ||x_t - x_{t-1}||_2 < rel·||x_{t-1}||_2
    (float64, strict). Over the stable pairs:

    - ``code_changed``: fraction with codes[t] != codes[t-1] anywhere in the token's row;
    - ``dialect_changed``: the same for the per-block dialect ids (when given);
    - ``excess``: mean of (mean_i |deq_{t,i} - deq_{t-1,i}| - mean_i |x_{t,i} - x_{t-1,i}|):
      positive when quantization amplifies the frame-to-frame change, 0 when it reproduces
      it on average.

    Args:
        x: (N, d) reference tokens; dequant: (N, d) their reconstruction.
        layout: (T, H, W) with T·H·W = N.
        codes: (N, c) stored codes per token (any dtype).
        dialect: (N, nb) dialect ids per token, or None.
        rel: stability threshold, relative to ||x_{t-1}||_2 (dimensionless).
    """
    t, h, w = (int(v) for v in layout)
    n = t * h * w

    def frames(a: Any, what: str, dtype: Any = None) -> np.ndarray:
        arr = np.asarray(a, dtype=dtype)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(f"{what}: expected ({n}, ...) for layout {tuple(layout)}, "
                             f"got {arr.shape}")
        return arr.reshape(t, h * w, -1)

    xf = frames(x, "x", np.float64)
    df = frames(dequant, "dequant", np.float64)
    prev, cur = xf[:-1], xf[1:]
    dx = cur - prev
    stable = np.linalg.norm(dx, axis=-1) < rel * np.linalg.norm(prev, axis=-1)
    pairs = int(stable.size)
    count = int(stable.sum())

    def changed(a: Any, what: str) -> float:
        arr = frames(a, what)
        diff = np.any(arr[1:] != arr[:-1], axis=-1)
        return float(diff[stable].mean()) if count else float("nan")

    code_changed = changed(codes, "codes")
    dialect_changed = changed(dialect, "dialect") if dialect is not None else float("nan")
    if count:
        ddq = np.abs(df[1:] - df[:-1]).mean(axis=-1)
        dxa = np.abs(dx).mean(axis=-1)
        excess = float((ddq - dxa)[stable].mean())
    else:
        excess = float("nan")
    return Temporal(pairs, count, code_changed, dialect_changed, excess)
