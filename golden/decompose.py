"""Attention-guided activation decomposition (SPEC §6) [ours, from SemanticDialect].

The salient tokens of a sequence — those receiving the most attention — get a second,
residual quantization: R = fp16(fp32(x) - fp32(deq(Q(x)))), quantized with the same format,
B and selection over the whole formatbook. A quantized linear layer then computes
Y = RNE_fp32(main + resid) for salient rows, where main = Q(X)·Q(W) and resid = Q(R_S)·Q(W)
are two independent SPEC §5 accumulations.

With a block rotation (SPEC §11) the main path quantizes the rotated X; the residual is formed
in the rotated basis, R = fp16(y - deq_rot(Q(y))) with y the rotated FP16 blocks, and
quantized without a further rotation (:func:`residual_format`) but carrying the rotation, so
that the second pass multiplies the same rotated W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from .blocks import pad_last, to_fp16
from .formats import BlockFormat
from .gemm import check_out, gemm_quantized, operand_formats, output_precision
from .quantize import QTensor, quantize, quantize_weights
from .rotated import RotatedFormat, base_format
from .rotation import Rotation

#: default salient fraction ρ
DEFAULT_RHO = "0.05"


def as_fraction(value: str | int | float | Fraction | Decimal, what: str) -> Fraction:
    """A decimal parameter (ρ, τ) as an exact fraction: 0.07 is 7/100, not a binary float.

    Floats are read through their shortest repr (``0.07`` -> ``"0.07"``).
    """
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a decimal number, got {value!r}")
    try:
        frac = Fraction(Decimal(str(value))) if isinstance(value, float | str) else Fraction(value)
    except (ValueError, ArithmeticError, TypeError):
        raise ValueError(f"{what}: expected a decimal number, got {value!r}") from None
    if not 0 <= frac <= 1:
        raise ValueError(f"{what}: must be in [0, 1], got {value}")
    return frac


def check_attention(attn: Any, n_tokens: int | None = None) -> np.ndarray:
    """Validate an attention map A (H, N, N) (query i attends to key j: A[h, i, j])."""
    a = np.asarray(attn, dtype=np.float64)
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"attention: expected shape (heads, N, N), got {a.shape}")
    if n_tokens is not None and a.shape[1] != n_tokens:
        raise ValueError(f"attention: map covers {a.shape[1]} tokens, activations have {n_tokens}")
    if not np.all(np.isfinite(a)):
        raise ValueError("attention: contains NaN/Inf")
    return a


def saliency(attn: Any) -> np.ndarray:
    """s_j = Σ_h Σ_i A[h, i, j], the attention token j receives: (N,) float64."""
    return check_attention(attn).sum(axis=(0, 1))


def saliency_order(scores: np.ndarray) -> np.ndarray:
    """Token indices by descending saliency, ties to the lower index (a stable sort)."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


def n_salient(rho: Any, n_tokens: int) -> int:
    """n_S = ceil(ρ·N), evaluated exactly."""
    return math.ceil(as_fraction(rho, "rho") * n_tokens)


def salient_tokens(attn: Any, rho: Any = DEFAULT_RHO) -> np.ndarray:
    """Sorted indices of the ceil(ρ·N) tokens with the highest saliency (ties: lower index)."""
    s = saliency(attn)
    return np.sort(saliency_order(s)[: n_salient(rho, s.shape[0])])


def residual(x16: np.ndarray, q: QTensor) -> np.ndarray:
    """R = fp16(fp32(x) - fp32(deq(Q(x)))) with IEEE RNE (the subtraction is exact).

    ``x16``: the FP16 rows that ``q`` quantized (input basis). For a rotated ``q`` (SPEC §11)
    the residual is formed in the rotated basis: R = fp16(fp32(y) - q.rotated) with y the
    rows rotated as ``q`` was (zero-padded to ``q.rotated``'s length), so R has that length;
    quantize it with :func:`residual_format`. ``q`` must keep ``rotated``
    (:meth:`QTensor.take_rows` does; otherwise ``ValueError`` starting ``rotate:``).
    """
    if q.rotation is None:
        diff = x16.astype(np.float32) - q.dequant
        return diff.astype(np.float16)
    deq = q.gemm_dequant  # q.rotated, or the error naming it
    x16 = np.asarray(x16, np.float16)
    if x16.shape[:-1] != deq.shape[:-1]:
        raise ValueError(f"residual: rows of shape {x16.shape} do not match the quantized "
                         f"rows {deq.shape}")
    x16 = pad_last(x16, q.block, True, "residual")
    if x16.shape != deq.shape:
        raise ValueError(f"residual: rows of shape {x16.shape} do not match the quantized "
                         f"rows {deq.shape}")
    y, bad = q.rotation.forward(x16.reshape(-1, q.block), q.role or "activation")
    if bad.any():
        raise ValueError("residual: the rows are outside the FP16 range after rotation (they "
                         "are not the rows q quantized)")
    diff = y.reshape(deq.shape).astype(np.float32) - deq
    return diff.astype(np.float16)


def residual_format(q: QTensor, fmt: BlockFormat) -> BlockFormat:
    """The format that quantizes the residual of ``q``: ``fmt`` (its unrotated inner format
    if it is rotated) — behind ``q``'s rotation with ``input_rotated`` when ``q`` is rotated
    (R already is in the rotated basis: not rotated again, but its ``dequant`` is mapped back
    to the input's basis and its GEMM uses the rotated W, SPEC §11)."""
    inner = base_format(fmt)
    if q.rotation is None:
        return inner
    return RotatedFormat(inner, q.rotation, q.role or "activation", input_rotated=True)


@dataclass(frozen=True)
class DecomposedParts:
    """The two SPEC §6 accumulations of a decomposed linear layer, before they are added.

    Attributes:
        main: (N, n) float32, Q(X)·Q(W) for every row (SPEC §5).
        residual: (n_S, n) float32, Q(R_S)·Q(W) for the salient rows, in ``salient`` order.
        salient: (n_S,) sorted salient token indices (rows of ``main`` the residual adds to).
    """

    main: np.ndarray
    residual: np.ndarray
    salient: np.ndarray

    def combine(self, out: str = "fp32") -> np.ndarray:
        """Y: ``main`` with Y[s] = RNE_fp32(main[s] + residual) on the salient rows, then
        rounded once to ``out`` — bit for bit :attr:`DecomposedLinear.y`."""
        check_out(out)
        y = self.main.copy()
        if self.salient.size:
            y[self.salient] = y[self.salient] + self.residual  # RNE_fp32(main + resid)
        return output_precision(y, out)


@dataclass
class DecomposedLinear:
    """Result of :func:`decomposed_linear`.

    Attributes:
        y: (N, n) float32 output (``out='fp16'``: float16).
        salient: sorted salient token indices.
        qx: main-path quantization of X; qr: quantization of the salient residual rows.
        bits_per_element: storage bits per element of X including the residual rows and
            their metadata (plus SeDA metadata when given).
        parts: the main and residual accumulations separately (FP32, before the sum);
            ``parts.combine(out)`` equals ``y``.
    """

    y: np.ndarray
    salient: np.ndarray
    qx: QTensor
    qr: QTensor | None
    bits_per_element: float
    parts: DecomposedParts


def decomposed_linear(
    x: Any,
    w: Any,
    fmt: str = "sd32",
    *,
    attn: Any = None,
    salient: np.ndarray | None = None,
    rho: Any = DEFAULT_RHO,
    select: str | None = None,
    block: int | None = None,
    candidates: np.ndarray | None = None,
    extra_bits_per_element: float = 0.0,
    out: str = "fp32",
    qw: QTensor | None = None,
    rotate: str | Rotation | None = None,
    rotate_seed: int = 0,
) -> DecomposedLinear:
    """Y = Q(X)·Q(W) + Q(R_S)·Q(W) for one sequence X (N, k) and weights W (k, n).

    The salient set comes from ``attn`` (H, N, N) or is given as ``salient`` (e.g. a random
    control set). ``candidates`` restricts the main path's selection (SeDA); the residual
    always chooses over the whole formatbook. ``extra_bits_per_element`` adds metadata
    (SeDA's) to the accounting. ``qw``: W already quantized by ``quantize_weights(w, fmt,
    block=...)`` (e.g. cached once per layer); ``w`` is then used only for its shape check.
    ``rotate``/``rotate_seed``: a block Hadamard rotation of X and W (SPEC §11; a given ``qw``
    must carry the same rotation, weight role); the residual is formed in the rotated basis.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim != 2:
        raise ValueError(f"X: expected one sequence (N, k), got shape {x.shape}")
    if w.ndim != 2 or w.shape[0] != x.shape[1]:
        raise ValueError(f"gemm: shapes do not match: X is {x.shape}, W is {w.shape}")
    n_tok = x.shape[0]
    if salient is None:
        if attn is None:
            raise ValueError("attention: pass attn (H, N, N) or an explicit salient set")
        salient = salient_tokens(check_attention(attn, n_tok), rho)
    salient = np.asarray(salient, dtype=np.intp)
    if salient.size and (salient.min() < 0 or salient.max() >= n_tok):
        raise ValueError(f"salient: token index out of range 0..{n_tok - 1}")
    f, fw = operand_formats(fmt, select, block=block, rotate=rotate, rotate_seed=rotate_seed)
    b = f.block_size(block)
    x16 = to_fp16(x, "X", b)
    qx = quantize(x16, f, block=b, candidates=candidates, name="X")
    if qw is None:
        qw = quantize_weights(w, fw, block=b)
    elif qw.codes.shape != w.shape[::-1]:
        raise ValueError(f"qw: expected a quantized Wᵀ {w.shape[::-1]}, got {qw.codes.shape}")
    check_out(out)  # before the work
    main = gemm_quantized(qx, qw)
    resid = np.zeros((0, main.shape[1]), np.float32)
    qr = None
    bits = qx.bits_per_element + extra_bits_per_element
    if salient.size:
        rows = x16[salient]
        r = residual(rows, qx.take_rows(salient))
        qr = quantize(r, residual_format(qx, f), block=b, name="residual")
        resid = gemm_quantized(qr, qw)
        bits += qr.bits_per_element * salient.size / n_tok
    parts = DecomposedParts(main=main, residual=resid, salient=salient)
    return DecomposedLinear(y=parts.combine(out), salient=salient, qx=qx, qr=qr,
                            bits_per_element=bits, parts=parts)

