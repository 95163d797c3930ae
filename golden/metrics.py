"""Error metrics: MSE and SQNR, computed in float64 against the reference values."""

from __future__ import annotations

import numpy as np


def mse(ref: np.ndarray, approx: np.ndarray) -> float:
    """Mean squared error, float64."""
    d = np.asarray(ref, np.float64) - np.asarray(approx, np.float64)
    return float(np.mean(d * d))


def sqnr_db(ref: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio 10·log10(Σref² / Σ(ref - approx)²) in dB.

    ``inf`` for an exact approximation; ``nan`` for an all-zero reference with error.
    """
    r = np.asarray(ref, np.float64)
    d = r - np.asarray(approx, np.float64)
    return sqnr_db_from_sums(float(np.sum(r * r)), float(np.sum(d * d)))


def sqnr_db_from_sums(signal: float, noise: float) -> float:
    """SQNR 10·log10(signal / noise) in dB from the sums Σref² and Σ(ref - approx)².

    For SQNR pooled over many tensors (add their sums first). ``inf`` when ``noise`` is 0;
    ``nan`` when ``signal`` is 0 and ``noise`` is not.
    """
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("nan")
    return 10.0 * float(np.log10(signal / noise))
