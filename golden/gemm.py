"""The GEMM contract (SPEC §5) and the baselines' GEMM contracts (SPEC §8).

Y[m, n] = Σ_k X[m, k]·W[k, n], X quantized in blocks along k per row, W along k per column.

* Power-of-two formats (dfp4/sd32, MXFP4, MXINT8): the block product P = Σ a_i·w_i of the
  integer elements is exact; its value P·2^(exp_a + exp_w) is exact in FP32.
* Float baselines (NVFP4, INT4): per block, the float64 sequential sum (ascending i from
  +0.0) of the float64 products of the dequantized FP32 values, rounded to FP32.
* NVFP4 *hardware* contract (:func:`nvfp4_hw_gemm`, SPEC §8 [ours]): the integer block
  product of the ±2·E2M1 elements times the exact product of the two E4M3 block scales,
  accumulated as above, then one FP32 multiply by RNE_fp32(ts_a · ts_w) per output.

Both then accumulate block contributions in FP32 round-to-nearest-even, starting from +0.0,
in ascending k-block order (:func:`accumulate_blocks`).

Block rotation (SPEC §11 [ours]): with ``rotate``, X is rotated in the activation role and Wᵀ's
rows (W's columns) in the weight role, by the same :class:`~golden.rotation.Rotation`; the
contracts above are applied unchanged to the rotated operands (codes/exp, or ``rotated`` for
the float baselines). Because c_a + c_w = log2 B, the result approximates X·W with no output
correction. A run-time second operand (attention, SPEC §6a) is rotated in the weight role too
when the configuration rotates (every GEMM through the core is rotated) [ours].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .blocks import as_blocks, check_nonempty, pad_last
from .formatbook import Formatbook
from .formats import E2M1_HU, E4M3_GRID, NVFP4, BlockFormat, DialectFormat, resolve_format
from .quantize import QTensor, quantize, quantize_weights
from .rotated import base_format, rotated_format
from .rotation import Rotation

#: bytes of temporaries a GEMM chunk may use
CHUNK_BYTES = 1 << 27


def sequential_sum(terms: np.ndarray, axis: int) -> np.ndarray:
    """Sum along ``axis`` sequentially in the array's dtype, ascending, from +0.0.

    ``np.cumsum`` adds in order with rounding after every addition (a plain ``.sum`` is
    pairwise and does not meet the contract). Adding +0.0 to the first term first turns a
    leading -0.0 into +0.0, exactly as starting the sum from +0.0 does. ``terms`` is modified.
    """
    first = np.take(terms, [0], axis=axis)
    first += terms.dtype.type(0)
    np.put_along_axis(terms, np.zeros_like(first, dtype=np.intp), first, axis=axis)
    return np.take(np.cumsum(terms, axis=axis), -1, axis=axis)


def accumulate_blocks(contrib: np.ndarray, axis: int = 0) -> np.ndarray:
    """SPEC §5 cross-block accumulation: FP32 RNE, from +0.0, ascending k-block order."""
    return sequential_sum(contrib.astype(np.float32, copy=False), axis)


def _dequant_blocks(q: QTensor) -> np.ndarray:
    """(rows, nblocks, B) float32 dequantized blocks of a quantized tensor.

    A tensor quantized with ``pad=True`` keeps its input's k; its short last block is
    zero-padded back to B here, so the product equals that of zero-padded operands (SPEC §2:
    padding equals a short block).
    """
    deq = q.gemm_dequant  # the rotated basis for a rotated tensor (SPEC §11)
    rows = deq.reshape(-1, deq.shape[-1])
    return as_blocks(pad_last(rows, q.block, True, q.format), q.block)


def _integer_elements(q: QTensor) -> np.ndarray:
    """(rows, nblocks, B) float32 integer elements: dequant · 2^-exp (exact)."""
    blocks = _dequant_blocks(q)
    return np.ldexp(blocks, -q.exp.reshape(blocks.shape[:2])[..., None])


def _gemm_pow2(qx: QTensor, qw: QTensor) -> np.ndarray:
    a = _integer_elements(qx).transpose(1, 0, 2)  # (nb, M, B)
    w = _integer_elements(qw).transpose(1, 2, 0)  # (nb, B, N)
    ea = qx.exp.reshape(-1, a.shape[0]).T  # (nb, M)
    ew = qw.exp.reshape(-1, a.shape[0]).T  # (nb, N)
    nb, m, _ = a.shape
    n = w.shape[2]
    y = np.empty((m, n), np.float32)
    step = max(1, CHUNK_BYTES // (8 * nb * n))
    for r0 in range(0, m, step):
        r1 = min(m, r0 + step)
        # exact: |P| <= 225·64 (dialects), 144·32 (MXFP4), 127²·32 (MXINT8), all < 2^24
        p = np.matmul(a[:, r0:r1], w)
        contrib = np.ldexp(p, ea[:, r0:r1, None] + ew[:, None, :])
        y[r0:r1] = accumulate_blocks(contrib, axis=0)
    return y


def _gemm_float(qx: QTensor, qw: QTensor) -> np.ndarray:
    b = qx.block
    # element index first: (B, M, nb) and (B, N, nb) float64
    a = np.moveaxis(_dequant_blocks(qx), -1, 0).astype(np.float64)
    w = np.moveaxis(_dequant_blocks(qw), -1, 0).astype(np.float64)
    _, m, nb = a.shape
    n = w.shape[1]
    y = np.empty((m, n), np.float32)
    step = max(1, CHUNK_BYTES // (16 * n * nb))
    for r0 in range(0, m, step):
        r1 = min(m, r0 + step)
        # SPEC §8 block sum: float64, from +0.0, ascending element index; each product of two
        # FP32 values is exact in float64. One (mc, N, nb) add per element index gives the
        # same sums as sequential_sum over a (mc, N, nb, B) product, without that temporary.
        acc = np.zeros((r1 - r0, n, nb), np.float64)
        for i in range(b):
            acc += a[i, r0:r1, None, :] * w[i, None, :, :]
        y[r0:r1] = accumulate_blocks(acc.astype(np.float32), axis=-1)  # RNE to FP32
    return y


def check_out(out: str) -> None:
    """Reject an output precision other than ``fp32`` / ``fp16``."""
    if out not in ("fp32", "fp16"):
        raise ValueError(f"out: must be 'fp32' or 'fp16', got {out!r}")


def output_precision(y: np.ndarray, out: str) -> np.ndarray:
    """A float32 GEMM result as requested: ``fp32`` as is, ``fp16`` rounded once (RNE;
    overflow becomes ±Inf, SPEC §5)."""
    check_out(out)
    if out == "fp32":
        return y
    with np.errstate(over="ignore"):
        return y.astype(np.float16)


def check_rotation(qx: QTensor, qw: QTensor) -> None:
    """X and Wᵀ must share the same rotation (or none), X in the activation role and W in
    the weight role (SPEC §11): ``ValueError`` starting ``rotate:`` otherwise."""
    def what(q: QTensor) -> str:
        r = q.rotation
        return "not rotated" if r is None else (
            f"rotated (Hadamard B = {r.block}, seed {r.seed}, {q.role} role)")

    if qx.rotation != qw.rotation:
        raise ValueError(f"rotate: X and W must share one rotation, but X is {what(qx)} and "
                         f"W is {what(qw)}")
    if qx.rotation is not None and (qx.role != "activation" or qw.role != "weight"):
        raise ValueError(f"rotate: X must be rotated in the activation role and W in the "
                         f"weight role, got X {qx.role} and W {qw.role}")


def gemm_quantized(qx: QTensor, qw: QTensor, out: str = "fp32") -> np.ndarray:
    """Y from a quantized X (…, k) and a quantized Wᵀ (n, k) of the same format and B.

    Either may come from ``pad=True`` (k not a multiple of B): the short last block counts
    as zero-padded. Empty operands raise ``ValueError`` naming X or W. Rotated operands
    (SPEC §11) must share their rotation (:func:`check_rotation`); they are multiplied in the
    rotated basis.
    """
    check_nonempty(qx.codes, "X")
    check_nonempty(qw.codes, "W")
    check_rotation(qx, qw)
    if qx.format != qw.format or qx.block != qw.block:
        raise ValueError(
            f"gemm: X is {qx.format}/B={qx.block} but W is {qw.format}/B={qw.block}"
        )
    if qx.codes.shape[-1] != qw.codes.shape[-1]:
        raise ValueError(f"gemm: X has k={qx.codes.shape[-1]}, W has k={qw.codes.shape[-1]}")
    check_out(out)  # before the work
    pow2 = qx.fmt.pow2_scaled if qx.fmt is not None else qx.exp is not None
    y = _gemm_pow2(qx, qw) if pow2 else _gemm_float(qx, qw)
    return output_precision(y.reshape(qx.codes.shape[:-1] + (qw.codes.shape[0],)), out)


#: the name :func:`gemm` gives W in error messages (its blocks are named in Wᵀ)
W_NAME = "W (as Wᵀ: rows are output columns)"


def check_operands(x: Any, w: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gemm`'s shape checks, before any quantization: X (…, k) and W (k, n), both
    non-empty (X first); returns both as arrays. Their values are checked when they are
    quantized (X first, then W under the name :data:`W_NAME`)."""
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim < 1:
        raise ValueError("X: expected an (m, k) array")
    if w.ndim != 2:
        raise ValueError(f"W: expected a 2-D (k, n) array, got shape {w.shape}")
    check_nonempty(x, "X")  # X before W
    check_nonempty(w, "W")
    if x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"gemm: shapes do not match: X is {x.shape} (…, k={x.shape[-1]}) but W is "
            f"{w.shape} (k={w.shape[0]}, n)"
        )
    return x, w


def operand_formats(
    fmt: str | BlockFormat,
    select: str | None = None,
    formatbook: Formatbook | str | None = None,
    block: int | None = None,
    rotate: str | Rotation | None = None,
    rotate_seed: int = 0,
) -> tuple[BlockFormat, BlockFormat]:
    """(X's format, W's format) of a GEMM: activations with ``select``, dialect weights with
    ``lut`` over the whole formatbook (SPEC §4); with ``rotate`` (or a rotated ``fmt``) both
    behind the same rotation, X in the activation role and W in the weight role (SPEC §11)."""
    fx = resolve_format(fmt, select=select, formatbook=formatbook)
    rotation = getattr(fx, "rotation", None)
    if rotation is not None and rotate not in (None, "none"):
        raise ValueError(f"rotate: {fx.name} is already rotated")
    inner = base_format(fx)
    fw = DialectFormat(inner.formatbook) if (
        isinstance(inner, DialectFormat) and inner.select != "lut") else inner
    rot = rotation if rotation is not None else rotate
    return (rotated_format(inner, rot, rotate_seed, block, "activation"),
            rotated_format(fw, rot, rotate_seed, block, "weight"))


def gemm(
    x: Any,
    w: Any,
    fmt: str | BlockFormat = "sd32",
    *,
    select: str | None = None,
    block: int | None = None,
    formatbook: Formatbook | str | None = None,
    pad: bool = False,
    out: str = "fp32",
    rotate: str | Rotation | None = None,
    rotate_seed: int = 0,
) -> np.ndarray:
    """Quantize X (…, k) and W (k, n) and multiply per the format's GEMM contract.

    Activations use ``select``; weights always use ``lut`` over the whole formatbook (SPEC
    §4). X is checked before W. Returns float32 (``out='fp16'``: rounded once to FP16).
    ``rotate``/``rotate_seed``: a block Hadamard rotation of X (activation role) and of W's
    columns (weight role), SPEC §11; the result approximates X·W without any correction.
    """
    x, w = check_operands(x, w)
    fx, fw = operand_formats(fmt, select, formatbook, block, rotate, rotate_seed)
    qx = quantize(x, fx, block=block, pad=pad, name="X")
    qw = quantize_weights(w, fw, block=block, pad=pad, name=W_NAME)
    return gemm_quantized(qx, qw, out=out)


# -- NVFP4 hardware GEMM contract (SPEC §8 [ours]) ---------------------------------------------

#: E4M3 (fn) value of every scale byte 0..0x7E as float32 (exact: at most 4 significant bits)
_E4M3_F32 = E4M3_GRID.astype(np.float32)


def _nvfp4_operand(q: QTensor) -> tuple[np.ndarray, np.ndarray]:
    """(rows, nblocks, 16) float32 signed elements ±HU = ±2·E2M1 (exact small integers; code 8,
    -0, gives 0) and (rows, nblocks) float32 E4M3 block-scale values of an NVFP4 tensor (a
    ``pad=True`` tensor's short last block is zero-padded back to 16)."""
    codes = q.codes.reshape(-1, q.codes.shape[-1])
    codes = pad_last(codes, q.block, True, q.format)
    hu = E2M1_HU.take(codes & 7)
    hu = np.where((codes & 8) != 0, -hu, hu).astype(np.float32)
    blocks = as_blocks(hu, q.block)
    assert q.scale is not None
    scales = _E4M3_F32.take(q.scale.reshape(blocks.shape[:2]))
    return blocks, scales


def nvfp4_tensor_scale_product(qx: QTensor, qw: QTensor) -> np.float32:
    """RNE_fp32(ts_x · ts_w): the one FP32 factor the NVFP4 hardware applies per output (0 when
    either tensor is all zero)."""
    return np.float32(np.float32(qx.tensor_scale) * np.float32(qw.tensor_scale))


def nvfp4_hw_contributions(qx: QTensor, qw: QTensor) -> np.ndarray:
    """(nblocks, M, N) float32 exact block contributions of the NVFP4 hardware contract:
    P · s_a · s_w / 4 with P = Σ_i (±HU_a,i)(±HU_w,i) (|P| ≤ 16·12·12 = 2304) and the E4M3
    block-scale values s (SPEC §8 [ours]). Every step is exact in float32: s_a·s_w has at most
    8 significant bits, P·s_a·s_w at most 12 + 8 = 20 (< 24), and every value is 0 or at least
    2^-20 (normal). For small operands only (no chunking)."""
    a, sa = _nvfp4_operand(qx)
    w, sw = _nvfp4_operand(qw)
    p = np.matmul(a.transpose(1, 0, 2), w.transpose(1, 2, 0))  # (nb, M, N), exact
    return p * (sa.T[:, :, None] * sw.T[:, None, :]) * np.float32(0.25)


def _check_nvfp4_pair(qx: QTensor, qw: QTensor) -> None:
    check_nonempty(qx.codes, "X")
    check_nonempty(qw.codes, "W")
    check_rotation(qx, qw)
    for name, q in (("X", qx), ("W", qw)):
        base = base_format(q.fmt).name if q.fmt is not None else q.format
        if base != NVFP4.name or q.scale is None or q.tensor_scale is None:
            raise ValueError(f"nvfp4_hw_gemm: {name} must be an NVFP4 tensor, got {q.format}")
    if qx.codes.shape[-1] != qw.codes.shape[-1]:
        raise ValueError(f"gemm: X has k={qx.codes.shape[-1]}, W has k={qw.codes.shape[-1]}")


def nvfp4_hw_accumulate(qx: QTensor, qw: QTensor) -> np.ndarray:
    """(…, n) float32 accumulators of the NVFP4 hardware contract *before* the tensor scales:
    acc = FP32 RNE sum from +0.0, ascending k-blocks, of the exact block contributions
    P · s_a · s_w / 4 — what a PE presents (SPEC §8 [ours])."""
    _check_nvfp4_pair(qx, qw)
    a, sa = _nvfp4_operand(qx)
    w, sw = _nvfp4_operand(qw)
    a = a.transpose(1, 0, 2)  # (nb, M, B)
    w = w.transpose(1, 2, 0)  # (nb, B, N)
    sa, sw = sa.T, sw.T  # (nb, M), (nb, N)
    nb, m, _ = a.shape
    n = w.shape[2]
    acc = np.empty((m, n), np.float32)
    step = max(1, CHUNK_BYTES // (8 * nb * n))
    for r0 in range(0, m, step):
        r1 = min(m, r0 + step)
        p = np.matmul(a[:, r0:r1], w)  # exact: |P| <= 2304
        # exact: s_a·s_w = (S_a·S_w ≤ 225)·2^e, P·s_a·s_w < 2^19·2^e, all normal or 0
        contrib = p * (sa[:, r0:r1, None] * sw[:, None, :]) * np.float32(0.25)
        acc[r0:r1] = accumulate_blocks(contrib, axis=0)
    return acc.reshape(qx.codes.shape[:-1] + (n,))


def nvfp4_hw_gemm_quantized(qx: QTensor, qw: QTensor, out: str = "fp32") -> np.ndarray:
    """The NVFP4 *hardware* GEMM (SPEC §8 [ours]) of a quantized X (…, k) and a quantized Wᵀ
    (n, k), both NVFP4 (:func:`golden.quantize.quantize` / ``quantize_weights``).

    Per block pair: c = P · s_a · s_w / 4, exact in FP32 (P the integer product of the ±2·E2M1
    elements, s the E4M3 block scales multiplied exactly); acc = FP32 RNE sum of c from +0.0 in
    ascending k-block order (SPEC §5, :func:`nvfp4_hw_accumulate`); y = RNE_fp32(acc ·
    RNE_fp32(ts_x · ts_w)) — the tensor scales are applied once per output, at the drain.
    ``out='fp16'`` rounds y once.
    """
    _check_nvfp4_pair(qx, qw)
    check_out(out)
    y = nvfp4_hw_accumulate(qx, qw) * nvfp4_tensor_scale_product(qx, qw)  # one FP32 RNE multiply
    return output_precision(y, out)


def nvfp4_hw_gemm(x: Any, w: Any, *, pad: bool = False, out: str = "fp32",
                  rotate: str | Rotation | None = None, rotate_seed: int = 0) -> np.ndarray:
    """Quantize X (…, k) and W (k, n) to NVFP4 (SPEC §8: X under one tensor amax, W as Wᵀ
    under its own) and multiply per the NVFP4 hardware contract
    (:func:`nvfp4_hw_gemm_quantized`). Same checks and errors as :func:`gemm` (X before W).
    Returns float32 (``out='fp16'``: rounded once to FP16). ``rotate``: as :func:`gemm`
    (SPEC §11: the codes, scales and tensor amax are those of the rotated operands)."""
    x, w = check_operands(x, w)
    fx, fw = operand_formats(NVFP4(), rotate=rotate, rotate_seed=rotate_seed)
    qx = quantize(x, fx, pad=pad, name="X")
    qw = quantize_weights(w, fw, pad=pad, name=W_NAME)
    return nvfp4_hw_gemm_quantized(qx, qw, out=out)
