"""Nibble packing of 4-bit codes (SPEC §1) [ours, OCP/torchao nibble order].

Codes are packed along the reduction (last) axis: within each block, code 2i goes to bits
3:0 and code 2i+1 to bits 7:4 of byte i. Blocks have an even size, so bytes never straddle
blocks. Weights are packed per output column: pack the (n, k) codes of Wᵀ.
"""

from __future__ import annotations

import numpy as np


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """(…, k) uint8 codes < 16 with k even -> (…, k/2) uint8 bytes."""
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise ValueError(f"codes: expected uint8, got {codes.dtype}")
    if codes.ndim == 0 or codes.shape[-1] % 2:
        raise ValueError(f"codes: last axis must have even length, got shape {codes.shape}")
    if codes.size and codes.max() > 0xF:
        raise ValueError("codes: not 4-bit (a code exceeds 15; MXINT8 codes are bytes)")
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_nibbles`: (…, k/2) bytes -> (…, k) codes."""
    packed = np.asarray(packed, dtype=np.uint8)
    out = np.empty(packed.shape[:-1] + (2 * packed.shape[-1],), np.uint8)
    out[..., 0::2] = packed & 0xF
    out[..., 1::2] = packed >> 4
    return out
