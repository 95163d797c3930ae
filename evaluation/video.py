"""Real video tokens (8×8 grey patches of OpenCV's vtest.avi) and a parameter-free map.

The fixture ``data/video/vtest_frames.npz`` (made by ``data/video/make_fixture.py``, which
documents the source, its sha256 and every processing step) holds 16 consecutive grey frames of
96×128 pixels as uint8. Only NumPy is needed to read it.

Tokens are laid out for SPEC §7's video window: token n is (t, h, w) = ``np.unravel_index(n,
(T, H, W))`` in C order, i.e. frame-major, then patch row, then patch column; its 64 features
are that patch's pixels in row-major order (feature 8·dy + dx is pixel (8h + dy, 8w + dx)),
as grey levels in [0, 1] (``uint8 / 255`` as a float32 division). The full fixture gives
T, H, W = 16, 12, 16 and N = 3072 tokens.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from semdialect.paths import data_dir

__all__ = [
    "DEFAULT_FIXTURE",
    "PATCH",
    "MAX_MAP_BYTES",
    "load_video_tokens",
    "self_similarity_attention",
]

#: The committed fixture (repository checkout; ``data/`` is not installed as package data).
DEFAULT_FIXTURE = data_dir() / "video" / "vtest_frames.npz"
#: Patch side in pixels; a token has PATCH² = 64 features.
PATCH = 8
#: A patch whose standard deviation is at most this is flat: its standardised vector is 0.
STD_FLOOR = 1e-6
#: Largest attention map :func:`self_similarity_attention` builds: N·N float64 below 1 GiB.
MAX_MAP_BYTES = 1 << 30


def load_video_tokens(
    path: str | Path | None = None, frames: slice = slice(0, 16)
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """8×8 patch tokens of consecutive fixture frames.

    Args:
        path: the .npz fixture; None = :data:`DEFAULT_FIXTURE`.
        frames: which stored frames (a slice over the fixture's frame axis; the default takes
            all 16, frame indices 0..15 of vtest.avi).

    Returns:
        ``(tokens, (T, H, W))``: tokens is (T·H·W, 64) float32 in [0, 1], row n the patch
        ``(t, h, w) = np.unravel_index(n, (T, H, W))`` (C order), features row-major within the
        patch; T frames, H = height/8 patch rows, W = width/8 patch columns.

    Raises:
        ValueError: the slice selects no frame, or the frame size is not a multiple of 8.
    """
    with np.load(DEFAULT_FIXTURE if path is None else path, allow_pickle=False) as data:
        stored = data["frames"]
    if stored.ndim != 3 or stored.dtype != np.uint8:
        raise ValueError(f"fixture frames must be (T, height, width) uint8, got {stored.shape}")
    selected = stored[frames]
    count, height, width = selected.shape
    if count == 0:
        raise ValueError(f"frames={frames} selects no frame of {stored.shape[0]}")
    if height % PATCH or width % PATCH:
        raise ValueError(f"frame size {height}x{width} is not a multiple of {PATCH}")
    grid = (count, height // PATCH, width // PATCH)
    pixels = selected.astype(np.float32) / np.float32(255)
    patches = pixels.reshape(count, grid[1], PATCH, grid[2], PATCH).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(patches.reshape(-1, PATCH * PATCH)), grid


def self_similarity_attention(tokens: np.ndarray, scale: float | None = None) -> np.ndarray:
    """One-head attention map from patch similarity: softmax(X̂·X̂ᵀ · scale), float64.

    The proxy, plainly: X̂ *standardises each token* (each row of ``tokens``, over its d
    features) to zero mean and unit variance, as a transformer's LayerNorm (no affine) does
    before attention; a flat patch (variance 0) becomes all zeros. X̂·X̂ᵀ/√d is then the
    patches' correlation times √d (the diagonal is √d = 8 for d = 64). The softmax runs over
    KEYS (the last axis, j), so every query row i sums to 1; ``A[0, i, j]`` = query i
    attending to key j (SPEC §6 layout). It stands in for a learned attention map: Q = K = X̂,
    no projections, no parameters.

    Args:
        tokens: (N, d) patch vectors (any real dtype; computed in float64).
        scale: logit multiplier; None = 1/√d, the transformer convention.

    Returns:
        (1, N, N) float64.

    Raises:
        ValueError: ``tokens`` is not 2-D or not finite, or an N×N float64 map would take
            1 GiB or more (N ≥ 11586).
    """
    x = np.asarray(tokens, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"tokens must be (N, d), got shape {x.shape}")
    n, d = x.shape
    if n * n * 8 >= MAX_MAP_BYTES:
        raise ValueError(
            f"N = {n} tokens: an N×N float64 map would take {n * n * 8} bytes ≥ 1 GiB"
        )
    if not np.isfinite(x).all():
        raise ValueError("tokens must be finite")
    centred = x - x.mean(axis=1, keepdims=True)
    std = np.sqrt((centred * centred).mean(axis=1, keepdims=True))
    unit = np.divide(centred, std, out=np.zeros_like(x), where=std > STD_FLOOR)
    logits = unit @ unit.T
    logits *= 1.0 / math.sqrt(d) if scale is None else scale
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits[np.newaxis]
