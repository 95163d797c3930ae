"""The one quantize path every format goes through, and its result :class:`QTensor`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blocks import check_nonempty, pad_last, to_fp16
from .formatbook import Formatbook
from .formats import BlockFormat, DialectFormat, resolve_format
from .rotated import RotatedFormat, base_format, rotated_format
from .rotation import Rotation

#: elements per chunk: bounds the temporaries (a few bytes per element) of large tensors
CHUNK_ELEMENTS = 1 << 18


class FlushWarning(UserWarning):
    """Blocks with non-zero values were flushed to zero (every element below the format's
    smallest step: for the dialect formats, below the grid at the SE clamp SE = -16, SPEC §2).

    Issued at most once per :func:`quantize` call, with the count of such blocks [ours].
    All-zero blocks are exact and never counted.
    """


@dataclass
class QTensor:
    """A quantized tensor (SPEC §1 canonical outputs).

    Attributes:
        format: format name (the formatbook's name for dialect formats).
        block: block size B along the last axis.
        codes: uint8, input shape: one 4-bit code per element (bit 3 sign, bits 2:0 index;
            INT4 two's complement; MXINT8 the int8 as uint8).
        dequant: float32, input shape.
        se: int8 (..., nblocks) shared exponents (dialect formats), else None.
        dialect: uint8 (..., nblocks) dialect ids (dialect formats), else None.
        scale: per-block scale bits: E8M0 uint8 (MX), E4M3 uint8 (NVFP4), float32 (INT4).
        tensor_scale: float32 NVFP4 tensor scale, else None.
        exp: int32 (..., nblocks) for power-of-two formats: dequant = integer · 2^exp.
        bits_per_element: storage bits per element including block metadata.
        tensor_bits: per-tensor metadata bits (NVFP4: 32).
        rotation: the block Hadamard rotation (SPEC §11) the tensor was quantized behind, else
            None. With a rotation, ``codes``, ``se``, ``dialect``, ``scale``, ``exp`` and
            ``tensor_scale`` are in the rotated basis; ``dequant`` is in the input's basis.
        role: the rotation's operand role (``activation`` / ``weight``), else None.
        rotated: float32 dequant in the rotated basis (the values the GEMM multiplies), else
            None. With ``pad=True`` the rotation mixes the padded zeros into the last block,
            so ``codes`` and ``rotated`` keep the padded length ceil(k/B)·B while ``dequant``
            has the input's shape.

    ``rotation``/``role`` default to those of ``fmt`` when it is a rotated format.
    """

    format: str
    block: int
    codes: np.ndarray
    dequant: np.ndarray
    bits_per_element: float
    se: np.ndarray | None = None
    dialect: np.ndarray | None = None
    scale: np.ndarray | None = None
    tensor_scale: np.float32 | None = None
    exp: np.ndarray | None = None
    tensor_bits: int = 0
    fmt: BlockFormat | None = field(default=None, repr=False)
    rotation: Rotation | None = None
    role: str | None = None
    rotated: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.rotation is None and isinstance(self.fmt, RotatedFormat):
            self.rotation, self.role = self.fmt.rotation, self.fmt.role

    @property
    def gemm_dequant(self) -> np.ndarray:
        """The dequantized values a GEMM multiplies: ``rotated`` when rotated, else
        ``dequant`` (float32)."""
        if self.rotation is None:
            return self.dequant
        if self.rotated is None:
            raise ValueError(f"rotate: this {self.format} tensor lost its rotated-basis "
                             f"dequant (QTensor.rotated); take rows with QTensor.take_rows")
        return self.rotated

    def take_rows(self, rows: np.ndarray) -> QTensor:
        """The given rows (first axis) of a 2-D quantized tensor, with their metadata."""
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return QTensor(
            format=self.format, block=self.block, codes=self.codes[rows],
            dequant=self.dequant[rows], bits_per_element=self.bits_per_element,
            se=pick(self.se), dialect=pick(self.dialect),
            scale=pick(self.scale),
            tensor_scale=self.tensor_scale, exp=pick(self.exp), tensor_bits=self.tensor_bits,
            fmt=self.fmt, rotation=self.rotation, role=self.role, rotated=pick(self.rotated),
        )


def quantize(
    x: Any,
    fmt: str | BlockFormat = "sd32",
    *,
    select: str | None = None,
    block: int | None = None,
    formatbook: Formatbook | str | None = None,
    pad: bool = False,
    candidates: np.ndarray | None = None,
    name: str = "x",
    rotate: str | Rotation | None = None,
    rotate_seed: int = 0,
) -> QTensor:
    """Quantize ``x`` block-wise along its last axis.

    Args:
        x: array (..., k); every index of the leading dimensions is a row.
        fmt: ``dfp4``, ``sd32``, ``mxfp4``, ``mxint8``, ``nvfp4``, ``int4`` or a format object.
        select: ``lut`` (default) or ``two-stage`` (dialect formats only).
        block: B (dialect formats 16/32/64, default 32; MX 32; NVFP4 16; INT4 any even).
        formatbook: replaces a dialect format's book (name, TOML path or object).
        pad: zero-pad a last axis that is not a multiple of B (outputs keep x's shape;
            metadata has ceil(k / B) blocks).
        candidates: SeDA candidate mask, (K,) or (..., nblocks, K) bool (``lut`` only).
        name: tensor name used in error and warning messages.
        rotate: ``None``/``"none"``, ``"hadamard"`` (``Rotation(B, rotate_seed)``) or a
            :class:`Rotation`: quantize behind a block Hadamard rotation as an *activation*
            (SPEC §11; :class:`golden.rotated.RotatedFormat`; ``fmt`` may also be one).
            Weights: :func:`quantize_weights`.
        rotate_seed: SplitMix64 seed of the rotation's signs (``rotate="hadamard"``).

    Raises:
        ValueError: bad arguments, an empty tensor, values outside FP16 or NaN/Inf (named
            before any rotation), a rotation size other than B (``rotate: ...``), a block
            outside the FP16 range after rotation.

    Warns:
        FlushWarning: once, if blocks with non-zero values dequantize to all zeros.
    """
    f = rotated_format(resolve_format(fmt, select=select, formatbook=formatbook), rotate,
                       rotate_seed, block)
    b = f.block_size(block)
    x16 = to_fp16(x, name, b)
    shape = x16.shape
    x16 = pad_last(x16, b, pad, name)
    k = x16.shape[-1]
    nb = k // b
    rot = f if isinstance(f, RotatedFormat) else None
    if rot is not None:  # the inner format quantizes the rotated tensor (SPEC §11)
        x16 = rot.rotate_rows(x16, name)
    enc_fmt = base_format(f)
    rows = x16.reshape(-1, k)
    n_rows = rows.shape[0]
    ctx = enc_fmt.prepare(rows)
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=bool)
        if candidates.ndim > 1:
            want = shape[:-1] + (nb, candidates.shape[-1])
            try:
                candidates = np.broadcast_to(candidates, want).reshape(n_rows, nb, -1)
            except ValueError:
                raise ValueError(
                    f"candidates: shape {candidates.shape} does not broadcast to {want}"
                ) from None

    codes = np.empty((n_rows, k), np.uint8)
    dequant = np.empty((n_rows, k), np.float32)
    rotated = np.empty((n_rows, k), np.float32) if rot is not None else None
    meta: dict[str, np.ndarray] = {}
    step = max(1, CHUNK_ELEMENTS // k)
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        cand = candidates[r0:r1].reshape((r1 - r0) * nb, -1) if (
            candidates is not None and candidates.ndim > 1
        ) else candidates
        deq_out = dequant if rotated is None else rotated  # the encoder's basis
        out = (codes[r0:r1].reshape(-1, b), deq_out[r0:r1].reshape(-1, b))
        enc = enc_fmt.encode(rows[r0:r1].reshape(-1, b), ctx, cand, out)
        if enc.codes is not out[0]:
            out[0][...] = enc.codes
        if enc.dequant is not out[1]:
            out[1][...] = enc.dequant
        if rot is not None:
            dequant[r0:r1] = rot.to_input_basis(out[1]).reshape(r1 - r0, k)
        for key, val in enc.meta.items():
            if key not in meta:
                meta[key] = np.empty((n_rows, nb), val.dtype)
            meta[key][r0:r1] = val.reshape(r1 - r0, nb)

    flushed = meta.pop("flushed", None)
    if flushed is not None and flushed.any():
        warnings.warn(
            f"{name}: {int(flushed.sum())} of {flushed.size} blocks flushed to zero (non-zero "
            f"values all below the smallest step of their block's grid at the SE clamp "
            f"SE = -16; they dequantize to 0)",
            FlushWarning,
            stacklevel=2,
        )
    k0 = shape[-1]
    meta_shape = shape[:-1] + (nb,)
    m = {key: val.reshape(meta_shape) for key, val in meta.items()}
    # rotated: codes and the rotated dequant keep the padded length (the rotation mixed the
    # padded zeros into the last block); dequant is cut back to the input's shape
    kc = k if rot is not None else k0
    return QTensor(
        format=f.name,
        block=b,
        codes=codes[:, :kc].reshape(shape[:-1] + (kc,)),
        dequant=dequant[:, :k0].reshape(shape),
        bits_per_element=f.bits_per_element(b),
        se=m.get("se"),
        dialect=m.get("dialect"),
        scale=m.get("scale"),
        tensor_scale=ctx.get("tensor_scale"),
        exp=m.get("exp"),
        tensor_bits=f.tensor_bits(),
        fmt=f,
        rotated=None if rotated is None else rotated.reshape(shape[:-1] + (k,)),
    )


def quantize_weights(w: Any, fmt: str | BlockFormat = "sd32", **kwargs: Any) -> QTensor:
    """Quantize a (k, n) weight matrix as Wᵀ: blocks along k per output column (SPEC §2).

    Dialect weights always use ``lut`` selection over the whole formatbook (SPEC §4), so the
    result has shape (n, k). ``select`` and ``candidates`` are not accepted. ``rotate`` /
    ``rotate_seed`` as :func:`quantize`, with the rotation's *weight* role (SPEC §11): Wᵀ's
    rows (W's columns) are rotated block-wise along k.
    """
    if "select" in kwargs or "candidates" in kwargs:
        raise ValueError("select/candidates: weights always use lut over the whole formatbook")
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"W: expected a 2-D (k, n) matrix, got shape {w.shape}")
    check_nonempty(w, kwargs.setdefault("name", "W"))  # W's own shape, not Wᵀ's
    rotate = kwargs.pop("rotate", None)
    seed = kwargs.pop("rotate_seed", 0)
    if rotate is not None and not (isinstance(rotate, str) and rotate == "none"):
        f = resolve_format(fmt, formatbook=kwargs.pop("formatbook", None))
        fmt = rotated_format(f, rotate, seed, kwargs.get("block"), role="weight")
    return quantize(w.T, fmt, **kwargs)


def dialect_costs(
    x: Any,
    fmt: str | Formatbook = "sd32",
    *,
    block: int | None = None,
    formatbook: Formatbook | str | None = None,
    pad: bool = False,
    name: str = "x",
) -> np.ndarray:
    """LUT cost of every dialect for every block of ``x``: (..., nblocks, K) int64.

    Same checks and blocking as :func:`quantize` (SeDA's variant choice needs the costs). A
    rotated dialect format's costs are those of the rotated blocks (SPEC §11).
    """
    f = resolve_format(fmt, formatbook=formatbook)
    inner = base_format(f)
    if not isinstance(inner, DialectFormat):
        raise ValueError(f"format: costs exist only for the dialect formats, not {f.name}")
    b = f.block_size(block)
    x16 = pad_last(to_fp16(x, name, b), b, pad, name)
    if isinstance(f, RotatedFormat):
        x16 = f.rotate_rows(x16, name)
    k = x16.shape[-1]
    return inner.costs(x16.reshape(-1, b)).reshape(x16.shape[:-1] + (k // b, -1))
