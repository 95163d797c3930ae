"""Dialect-format preprocessing (SPEC §2) and dialect selection (SPEC §4).

Everything works on flattened blocks: ``xb`` is (n, B) FP16 for n blocks. A block's LUT cost
is its 32-bin histogram of q times ERR — a small integer matrix product — so selecting among
K dialects costs one histogram pass over the elements plus an (n, 32) x (32, K) product.
"""

from __future__ import annotations

import numpy as np

from .blocks import pow2_floor_log2
from .luts import Q_LEVELS, Luts, TwoStageTables

#: SPEC §2 [paper, clamp ours]: SE = max(floor(log2 M) - 2, -16); stored as SE + 16 in 5 bits
SE_MIN = -16
SE_BIAS = 16


def shared_exponent(amax16: np.ndarray) -> np.ndarray:
    """SE per block from the block's max magnitude M (FP16): max(floor(log2 M) - 2, -16).

    M = 0 gives -16. Returns int32 in [-16, 13].
    """
    se = np.where(amax16 > 0, pow2_floor_log2(amax16) - 2, SE_MIN)
    return np.maximum(se, SE_MIN).astype(np.int32)


def preprocess(xb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPEC §2 for (n, B) FP16 blocks.

    Returns:
        se: (n,) int32 shared exponents.
        q: (n, B) uint8, q_i = floor(|x_i| · 2^(2 - SE)) in 0..31 (quarter units; exact:
            the product is a power-of-two scaling of an FP16 value, computed in float32).
        qmax: (n,) int32, the largest q of each block (q of M).
    """
    mag = xb.view(np.uint16) & np.uint16(0x7FFF)  # |x| as bits: ordered like the values
    amax = mag.max(axis=-1).view(np.float16)
    se = shared_exponent(amax)
    scale = np.ldexp(np.float32(1), 2 - se)
    q = (mag.view(np.float16).astype(np.float32) * scale[:, None]).astype(np.uint8)  # floor
    qmax = (amax.astype(np.float32) * scale).astype(np.int32)
    return se, q, qmax


def signed_bins(q: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Flat (block, sign, q) bin of every element: block·64 + sign·32 + q. (n, B) intp.

    The sign is the FP16 sign bit (``-0.0`` has sign 1).
    """
    sq = q | ((xb.view(np.uint16) >> 10) & 32).astype(np.uint8)
    return (np.arange(q.shape[0], dtype=np.intp) * 2 * Q_LEVELS)[:, None] + sq


def q_histogram(bins: np.ndarray) -> np.ndarray:
    """(n, 32) int64 count of each q value per block (either sign), from :func:`signed_bins`."""
    n = bins.shape[0]
    h = np.bincount(bins.reshape(-1), minlength=n * 2 * Q_LEVELS).reshape(n, 2, Q_LEVELS)
    return h[:, 0] + h[:, 1]


def lut_costs(hist: np.ndarray, luts: Luts) -> np.ndarray:
    """cost_f = Σ_i ERR[f][q_i] = hist · ERR[f] for every block and dialect: (n, K) int64.

    Computed as a float32 matrix product, exact: every partial sum is an integer below
    225 · 64 < 2^24.
    """
    costs = hist.astype(np.float32) @ luts.err.T.astype(np.float32)
    return costs.astype(np.int64)


def select_lut(costs: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """Argmin of the LUT cost within the candidate set, ties to the lowest id [ours].

    Args:
        costs: (n, K) integer costs.
        candidates: None (whole formatbook), a (K,) bool mask, or an (n, K) per-block mask
            (SeDA sub-formatbooks, SPEC §7). Every block needs at least one candidate.
    """
    if candidates is not None:
        candidates = np.broadcast_to(np.asarray(candidates, dtype=bool), costs.shape)
        if not candidates.any(axis=-1).all():
            raise ValueError("candidates: a block has no candidate dialect")
        costs = np.where(candidates, costs, np.iinfo(np.int64).max)
    return np.argmin(costs, axis=-1).astype(np.uint8)  # argmin returns the first (lowest) id


def two_stage_pair(qmax: np.ndarray) -> np.ndarray:
    """BlockDialect stage 1 [paper]: pair = min(max(15 - min((m + 1) >> 1, 15), 0), 7)."""
    return np.minimum(np.maximum(15 - np.minimum((qmax + 1) >> 1, 15), 0), 7)


def select_two_stage(hist: np.ndarray, qmax: np.ndarray, tables: TwoStageTables) -> np.ndarray:
    """BlockDialect two-stage selection [paper; tie rule ours] (SPEC §4).

    Stage 1 picks the pair from the block maximum; stage 2 counts the block's elements in
    each candidate's beneficial range and picks D_even = 2·pair if its count >= D_odd's.
    """
    pair = two_stage_pair(qmax)
    cum = np.concatenate([np.zeros((hist.shape[0], 1), hist.dtype), np.cumsum(hist, 1)], 1)
    rng = tables.ranges[pair]  # (n, 2 dialects, (lo, hi))
    lo = np.take_along_axis(cum, rng[:, :, 0], axis=1)
    hi = np.take_along_axis(cum, rng[:, :, 1], axis=1)
    counts = hi - lo
    return (2 * pair + (counts[:, 0] < counts[:, 1])).astype(np.uint8)
