"""Shared block machinery: FP16 input rounding and checks, blocking along the last axis.

SPEC §2: inputs are rounded once to IEEE binary16 (RNE); a finite value whose rounding
overflows is an error ("outside the FP16 range"), and so is NaN/Inf. Errors name the tensor
and the first bad block as (row index…, block index) in row-major order; overflow is
detected before NaN/Inf. The reduction axis is the last axis.
"""

from __future__ import annotations

import numpy as np

#: block sizes the dialect formats support (SPEC §2)
BLOCK_SIZES = (16, 32, 64)


def _first_block(mask: np.ndarray, block: int) -> tuple[int, ...]:
    """(row index…, block index) of the first True element of ``mask`` in row-major order."""
    flat = int(np.flatnonzero(mask.reshape(-1))[0]) if mask.ndim else 0
    idx = np.unravel_index(flat, mask.shape)
    return tuple(int(i) for i in idx[:-1]) + (int(idx[-1]) // block,)


def check_nonempty(x: np.ndarray, name: str) -> None:
    """Reject an empty operand (a 0 in its shape): ``ValueError`` naming it and its shape.

    The one emptiness check of every quantize and GEMM entry point [ours, SPEC §2]: an
    empty tensor has no blocks to quantize or multiply (and no accuracy to report).
    """
    if x.size == 0:
        raise ValueError(
            f"{name}: empty operand of shape {tuple(x.shape)} (every dimension needs at "
            f"least one element)"
        )


def to_fp16(x: np.ndarray, name: str, block: int) -> np.ndarray:
    """Round ``x`` once to FP16 (IEEE RNE, directly from its own dtype) and check it.

    Args:
        x: numeric array, reduction axis last.
        name: tensor name for error messages.
        block: block size, to name the offending block.

    Raises:
        ValueError: non-numeric, 0-d or empty input, a finite value outside the FP16 range
            (|x| >= 65520 rounds to Inf), or NaN/Inf — naming the first bad block.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name}: needs at least one element along its last (reduction) axis")
    check_nonempty(x, name)
    if x.dtype == np.float16:
        x16 = x
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            x16 = x.astype(np.float16)
        overflow = np.isinf(x16) & np.isfinite(x)
        if overflow.any():
            blk = _first_block(overflow, block)
            val = x.reshape(-1)[int(np.flatnonzero(overflow.reshape(-1))[0])]
            raise ValueError(
                f"{name}: value {float(val):g} in block {blk} is outside the FP16 range (|x| must "
                f"round below 65520)"
            )
    # NaN/Inf have an all-ones exponent: a fast max over the magnitude bits finds any
    mag = x16.view(np.uint16) & np.uint16(0x7FFF)
    if mag.size and mag.max() >= 0x7C00:
        raise ValueError(f"{name}: NaN/Inf in block {_first_block(mag >= 0x7C00, block)}")
    return x16


def check_block(block: int, allowed: tuple[int, ...] | None = BLOCK_SIZES, what: str = "") -> int:
    """Validate a block size (``allowed=None``: any positive even size)."""
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)):
        raise ValueError(f"block: expected an integer, got {block!r}")
    block = int(block)
    if allowed is not None and block not in allowed:
        raise ValueError(f"block: {what}supports B in {allowed}, got {block}")
    if block <= 0 or block % 2:
        raise ValueError(f"block: must be a positive even number, got {block}")
    return block


def pad_last(x16: np.ndarray, block: int, pad: bool, name: str) -> np.ndarray:
    """Zero-pad the last axis to a multiple of ``block`` (``pad=True``) or reject it.

    Padding equals a short block: zeros add nothing to a cost, a range count or a product.
    """
    k = x16.shape[-1]
    rem = k % block
    if rem == 0:
        return x16
    if not pad:
        raise ValueError(
            f"{name}: last-axis length {k} is not a multiple of the block size {block} "
            f"(use --pad / pad=True to zero-pad the last block)"
        )
    widths = [(0, 0)] * (x16.ndim - 1) + [(0, block - rem)]
    return np.pad(x16, widths)


def as_blocks(x: np.ndarray, block: int) -> np.ndarray:
    """View (..., k) as (..., k // block, block); k must be a multiple of ``block``."""
    return x.reshape(x.shape[:-1] + (x.shape[-1] // block, block))


def pow2_floor_log2(amax16: np.ndarray) -> np.ndarray:
    """floor(log2 m) for positive FP16 magnitudes (exact, via float32 frexp); int32.

    Zero entries give an arbitrary value: callers substitute their own zero rule.
    """
    _, e = np.frexp(amax16.astype(np.float32))
    return (e - 1).astype(np.int32)
