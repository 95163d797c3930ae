"""Vectorised PyTorch (CPU) quantize kernels, bit-exact with the golden model (issue 14).

:func:`quantize_tensor` is the torch twin of :func:`golden.quantize.quantize` for an already
resolved format object (:func:`golden.formats.resolve_format`, :class:`golden.rotated.
RotatedFormat`): the same FP16 input rounding and checks (SPEC §2), blocking along the last
axis, rotation (SPEC §11), dialect selection (SPEC §3–4) and baseline encodings (SPEC §8),
written as whole-tensor torch ops over chunks of rows (no Python loop over blocks). Every
output — codes, metadata, FP32 dequant bits, warnings and error messages — equals golden's.

Kernel notes (why the arithmetic is exact, not just close):

* FP16 rounding: float32/bfloat16 → float16 is one IEEE RNE conversion (bfloat16 widens to
  float32 exactly first); float64 goes through float32 with *round-to-odd* (truncate, then
  set the sticky bit when inexact), after which RNE to FP16 equals direct RNE (24 ≥ 11 + 2
  bits). Integer inputs use golden's NumPy rounding.
* Dialect formats: q = floor(|x|·2^(2−SE)) (a power-of-two scaling, exact in float32); the
  per-block LUT cost Σ_i ERR[f][q_i] is a 32-bin histogram (``torch.bincount``) times the
  (32 × K) ERR table, a float32 matmul that is exact (integers < 2^24); argmin keeps the
  lowest id on ties; codes and ±HU values come from one flat table indexed
  dialect·64 + sign·32 + q (``torch.take``); dequant = ±HU · 2^(SE−1), exact.
* Baselines: the same FP32 operations in the same order as golden (each an IEEE RNE op);
  E2M1/E4M3 rounding by ``torch.searchsorted`` on exact FP32 midpoints; powers of two are
  built from their bit patterns. Four Over Six compares float64 block errors; blocks whose
  two errors are within 1e-9 (relative) of each other are re-summed with NumPy's einsum as
  golden does, so even summation-order ties decide identically.
* Rotation: the float64 Hadamard sums are exact (≤ 46-bit sums), rounded to FP16 with the
  round-to-odd path above; the inverse is one float64 → float32 RNE.

Formats without a torch kernel here (a user's own ``BlockFormat`` subclass) are encoded by
their golden NumPy ``encode`` chunk by chunk: correct, not fast.
"""

from __future__ import annotations

import functools
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, cast

import numpy as np
import torch

from semdialect.golden.blocks import check_nonempty, pad_last, to_fp16
from semdialect.golden.formats import (
    E2M1_HU,
    E2M1_MAX,
    E4M3_EPS,
    E4M3_GRID,
    E4M3_MAX,
    E8M0_BIAS,
    INT4,
    MXFP4,
    MXINT8,
    NVFP4,
    NVINT4,
    AmaxScaled,
    BlockFormat,
    DialectFormat,
    NVFP4FourOverSix,
)
from semdialect.golden.gemm import operand_formats
from semdialect.golden.quantize import FlushWarning, QTensor
from semdialect.golden.rotated import RotatedFormat, base_format
from semdialect.golden.rotation import Rotation
from semdialect.golden.select import SE_MIN

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = [
    "internal_ops",
    "CHUNK_ELEMENTS",
    "TorchQTensor",
    "fake_quantize",
    "quantize_tensor",
    "quantize_weight_tensor",
]

#: elements per chunk of rows: bounds the temporaries (~30 bytes per element) of large tensors
CHUNK_ELEMENTS = 1 << 18
#: FP16 magnitude bits at and above which a value is Inf or NaN (all-ones exponent)
_FP16_INF_BITS = 0x7C00
#: Four Over Six: relative gap below which the two float64 block errors are re-summed by NumPy
_NEAR_TIE = 1e-9


@dataclass
class TorchQTensor:
    """A quantized tensor in torch (CPU) tensors, with golden :class:`QTensor`'s meaning.

    Attributes:
        format: format name (``<inner>+hadamard`` for a rotated format).
        block: block size B along the last axis.
        codes: uint8, input shape (rotated: padded length ceil(k/B)·B, as golden): one code
            per element (bit 3 sign, bits 2:0 index; INT4/NVINT4 two's complement; MXINT8 the
            int8 as uint8).
        dequant: float32, input shape, in the input's basis.
        bits_per_element: storage bits per element including block metadata.
        rotated: float32 dequant in the rotated basis (padded length), or None.
        se: int8 (..., nblocks) shared exponents (dialect formats), else None.
        dialect: uint8 (..., nblocks) dialect ids (dialect formats), else None.
        scale: per-block scale: E8M0 uint8 (MX), E4M3 uint8 (NVFP4 family), float32 (INT4).
        tensor_scale: 0-d float32 per-tensor word (NVFP4 family), else None.
        exp: int32 (..., nblocks) for power-of-two formats: dequant = integer · 2^exp.
        tensor_bits: per-tensor metadata bits (NVFP4 family: 32).
        fmt: the format object the tensor was quantized with.
    """

    format: str
    block: int
    codes: torch.Tensor
    dequant: torch.Tensor
    bits_per_element: float
    rotated: torch.Tensor | None = None
    se: torch.Tensor | None = None
    dialect: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    tensor_scale: torch.Tensor | None = None
    exp: torch.Tensor | None = None
    tensor_bits: int = 0
    fmt: BlockFormat | None = None

    def to_golden(self) -> QTensor:
        """The same tensor as a golden :class:`QTensor` (NumPy arrays; for tests/interop)."""
        def np_(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.numpy()

        return QTensor(
            format=self.format, block=self.block, codes=self.codes.numpy(),
            dequant=self.dequant.numpy(), bits_per_element=self.bits_per_element,
            se=np_(self.se), dialect=np_(self.dialect), scale=np_(self.scale),
            tensor_scale=None if self.tensor_scale is None else np.float32(self.tensor_scale),
            exp=np_(self.exp), tensor_bits=self.tensor_bits, fmt=self.fmt,
            rotated=np_(self.rotated),
        )


# -- exact scalar helpers ---------------------------------------------------------------------
def _pow2(e: torch.Tensor) -> torch.Tensor:
    """float32 2^e, exact, for int32 e in [-149, 127] (subnormal powers included)."""
    e = e.to(torch.int32)
    normal = (e + 127).clamp(min=1) << 23
    sub = torch.ones_like(e) << (e + 149).clamp(0, 22)
    return torch.where(e >= -126, normal, sub).view(torch.float32)


def _floor_log2(amax: torch.Tensor) -> torch.Tensor:
    """int32 floor(log2 m) of positive float32 values (zero entries: arbitrary)."""
    return torch.frexp(amax)[1].to(torch.int32) - 1


def _f64_to_f16(y: torch.Tensor) -> torch.Tensor:
    """float64 → float16 with one IEEE RNE rounding (round-to-odd through float32)."""
    f = y.to(torch.float32)
    back = f.to(torch.float64)
    bits = f.view(torch.int32) - (back.abs() > y.abs()).to(torch.int32)  # truncate to zero
    bits = bits | (back != y).to(torch.int32)  # sticky bit when inexact
    return bits.view(torch.float32).to(torch.float16)


def _nearest_even(values: torch.Tensor, mids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest grid point (midpoints ``mids``), ties to the even index, saturating
    at the ends (golden ``nearest_index(..., ties="even")``). int64."""
    above = torch.searchsorted(mids, values, right=True)
    below = torch.searchsorted(mids, values, right=False)
    return torch.where((above != below) & (below % 2 == 1), above, below)


def _exact_mids(grid: np.ndarray) -> torch.Tensor:
    """FP32 midpoints of a grid, checked exact (golden compares against float64 midpoints)."""
    g = np.asarray(grid, np.float64)
    mids = (g[:-1] + g[1:]) / 2
    m32 = mids.astype(np.float32)
    if not np.array_equal(m32.astype(np.float64), mids):  # pragma: no cover - static tables
        raise AssertionError("grid midpoints are not exact in float32")
    return torch.from_numpy(m32)


#: 1 / (E2M1 grid step) in the octaves [0, 2), [2, 4), [4, ∞)
_E2M1_INV_STEP = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float32)
_E2M1_HU = torch.from_numpy(E2M1_HU.astype(np.float32))
_E4M3_MIDS = _exact_mids(E4M3_GRID)
_E4M3_VALUES = torch.from_numpy(E4M3_GRID.astype(np.float32))


def _lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table[idx]`` for a 1-D table and integer indices of any shape (int32 index_select:
    much faster than ``take`` with int64 indices)."""
    flat = idx.reshape(-1).to(torch.int32)
    return torch.index_select(table, 0, flat).view(idx.shape)


def _mag_bits(x16: torch.Tensor) -> torch.Tensor:
    """int16 FP16 magnitude bits (ordered like the magnitudes)."""
    return x16.view(torch.int16) & 0x7FFF


def _block_amax(x16: torch.Tensor) -> torch.Tensor:
    """(n,) float32 max |x| of (n, B) FP16 blocks (exact: via the magnitude bits)."""
    return _mag_bits(x16).amax(dim=1).view(torch.float16).to(torch.float32)


# -- FP16 input rounding and checks (golden.blocks.to_fp16) -----------------------------------
def _golden_view(x: torch.Tensor) -> np.ndarray:
    """A NumPy array golden's checks read exactly like ``x`` (bfloat16 widened exactly)."""
    x = x.detach().cpu()
    if x.dtype == torch.bfloat16:
        x = x.to(torch.float32)
    return x.numpy()


def _to_fp16(x: Any, name: str, block: int) -> torch.Tensor:
    """FP16 tensor of ``x`` rounded once (RNE from its own dtype), with golden's checks."""
    if not isinstance(x, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(to_fp16(x, name, block)))
    if x.ndim == 0 or x.numel() == 0 or x.dtype not in (
        torch.float16, torch.float32, torch.bfloat16, torch.float64
    ):  # golden's errors (0-d, empty, non-numeric) and its integer rounding
        return torch.from_numpy(np.ascontiguousarray(to_fp16(_golden_view(x), name, block)))
    x = x.detach().cpu()
    if x.dtype == torch.float16:
        x16 = x
    elif x.dtype == torch.float64:
        x16 = _f64_to_f16(x)
    else:
        x16 = x.to(torch.float16)  # bfloat16 → float32 (exact) → float16: one RNE
    x16 = x16.contiguous()
    # one cheap reduction: an overflow (Inf after rounding) or NaN/Inf has exponent all ones
    if int(_mag_bits(x16).max()) >= _FP16_INF_BITS:
        to_fp16(_golden_view(x), name, block)  # raises golden's exact error
        raise AssertionError(f"{name}: torch and golden FP16 checks disagree")  # pragma: no cover
    return x16


def _pad_last(x16: torch.Tensor, block: int, pad: bool, name: str) -> torch.Tensor:
    """Zero-pad the last axis to a multiple of ``block`` or raise golden's error."""
    k = x16.shape[-1]
    if k % block == 0:
        return x16
    pad_last(np.broadcast_to(np.float16(0), (k,)), block, pad, name)  # raises without pad
    return torch.nn.functional.pad(x16, (0, block - k % block))


# -- dialect formats (SPEC §2–4) --------------------------------------------------------------
@dataclass(frozen=True)
class _DialectTables:
    """Torch tables of one dialect format (from its golden ``luts``)."""

    err_packed: torch.Tensor  # (K, 32) float32 256·ERR: packed costs 256·cost + id
    ids: torch.Tensor  # (K, 1) float32 dialect ids 0..K-1
    code_flat: torch.Tensor  # (K·64,) uint8: dialect·64 + sign·32 + q → 4-bit code
    val_flat: torch.Tensor  # (K·64,) float32: ±HU (-0.0 for sign 1)
    idx: torch.Tensor  # (K, 32) int64 IDX
    ranges: torch.Tensor | None  # (8, 2, 2) int64 two-stage beneficial ranges


_DIALECT_TABLES: weakref.WeakKeyDictionary[DialectFormat, _DialectTables] = (
    weakref.WeakKeyDictionary()
)


def _dialect_tables(f: DialectFormat) -> _DialectTables:
    tables = _DIALECT_TABLES.get(f)
    if tables is None:
        luts = f.luts
        sign = np.array([0, 1], np.uint8)[None, :, None]
        code = ((sign << 3) | luts.idx[:, None, :]).reshape(-1)
        hu = luts.hu[:, None, :].astype(np.float32)
        val = np.where(sign == 1, -hu, hu).reshape(-1).astype(np.float32)
        tables = _DialectTables(
            err_packed=torch.from_numpy(luts.err.astype(np.float32) * 256),
            ids=torch.arange(len(luts.err), dtype=torch.float32)[:, None],
            code_flat=torch.from_numpy(code.astype(np.uint8)),
            val_flat=torch.from_numpy(val),
            idx=torch.from_numpy(luts.idx.astype(np.int64)),
            ranges=None if f.two_stage is None else torch.from_numpy(
                f.two_stage.ranges.astype(np.int64)),
        )
        _DIALECT_TABLES[f] = tables
    return tables


def _encode_dialect(f: DialectFormat, xb: torch.Tensor, cand: torch.Tensor | None,
                    out: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """SPEC §2–4 for (n, B) FP16 blocks: codes, dequant, meta (``flushed`` included).

    ``out``: (n, B) uint8 and float32 buffers the codes and dequant are written into.
    """
    t = _dialect_tables(f)
    n, b = xb.shape
    bits = xb.view(torch.int16)
    mag = bits & 0x7FFF
    amax = mag.amax(dim=1).view(torch.float16).to(torch.float32)
    se = torch.where(amax > 0, _floor_log2(amax) - 2, SE_MIN).clamp(min=SE_MIN)
    scale = _pow2(2 - se)
    # q = floor(|x|·2^(2-SE)) in 0..31: an exact product and a truncating conversion
    q = (mag.view(torch.float16).to(torch.float32) * scale[:, None]).to(torch.int16)
    rows32 = torch.arange(0, n * 32, 32, dtype=torch.int32)
    hist = torch.bincount((q + rows32[:, None]).view(-1), minlength=n * 32).view(n, 32)
    qmax = (amax * scale).to(torch.int64)
    if t.ranges is not None:  # BlockDialect two-stage (SPEC §4)
        if cand is not None:
            raise ValueError("candidates: SeDA sub-formatbooks require select='lut'")
        pair = (15 - ((qmax + 1) >> 1).clamp(max=15)).clamp(0, 7)
        cum = torch.cat([torch.zeros(n, 1, dtype=hist.dtype), hist.cumsum(1)], 1)
        rng = t.ranges[pair]  # (n, 2, 2)
        counts = cum.gather(1, rng[:, :, 1]) - cum.gather(1, rng[:, :, 0])
        dialect = 2 * pair + (counts[:, 0] < counts[:, 1]).to(torch.int64)
    elif cand is None:
        # (K, n) packed costs cost·256 + id, exact in float32 (< 225·64·256 + 256 < 2^24):
        # their minimum is the cheapest dialect, ties to the lowest id
        packed = torch.addmm(t.ids, t.err_packed, hist.to(torch.float32).T)
        dialect = packed.amin(dim=0).to(torch.int64) & 255
    else:
        costs = hist.to(torch.float32) @ t.err_packed.T + t.ids.T  # (n, K) packed
        try:
            cand = cand.expand(costs.shape)
        except RuntimeError:
            raise ValueError(f"candidates: shape {tuple(cand.shape)} does not broadcast to "
                             f"{tuple(costs.shape)} (blocks, K)") from None
        if not bool(cand.any(dim=1).all()):
            raise ValueError("candidates: a block has no candidate dialect")
        dialect = costs.masked_fill(~cand, float("inf")).amin(dim=1).to(torch.int64) & 255
    # code/value index dialect·64 + sign·32 + q (FP16 sign bit: -0.0 has sign 1); int32
    # indices and index_select: several times faster than int64 and take
    flat = ((dialect.to(torch.int32) * 64)[:, None] + (q | ((bits >> 10) & 32))).view(-1)
    codes, deq = out if out is not None else (torch.empty(n, b, dtype=torch.uint8),
                                              torch.empty(n, b))
    torch.index_select(t.code_flat, 0, flat, out=codes.view(-1))
    torch.index_select(t.val_flat, 0, flat, out=deq.view(-1))
    deq.mul_(_pow2(se - 1)[:, None])  # exact: ±HU · 2^(SE-1)
    flushed = (t.idx[dialect, qmax] == 0) & (amax > 0)
    meta = {"se": se.to(torch.int8), "dialect": dialect.to(torch.uint8),
            "exp": (se - 1).to(torch.int32), "flushed": flushed}
    return codes, deq, meta


# -- power-of-two baselines (SPEC §8) ---------------------------------------------------------
def _e2m1_index(v: torch.Tensor) -> torch.Tensor:
    """E2M1 magnitude index (RNE, saturating at 6) of non-negative FP32 values: uint8.

    The grid has step 2^(k-1) in octave k = [v >= 2] + [v >= 4] (0, .5 … 2; 2, 3, 4; 4, 6),
    so idx = 2k + RNE(v / 2^(k-1)), at most 7: an exact power-of-two scaling and a half-even
    round. The index LSB is the mantissa bit, so half-even is golden's "ties to the even
    index" (``nearest_index(2v, E2M1_HU, ties="even")``).
    """
    k = (v >= 2).to(torch.int32) + (v >= 4).to(torch.int32)
    n = torch.round(v * _lookup(_E2M1_INV_STEP, k))
    return (n.to(torch.uint8) + (2 * k).to(torch.uint8)).clamp(max=7)


def _sign(x: torch.Tensor) -> torch.Tensor:
    """uint8 sign bit (``-0.0`` has sign 1)."""
    return torch.signbit(x).to(torch.uint8)


def _encode_mxfp4(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    amax = _block_amax(xb)
    e = torch.where(amax > 0, _floor_log2(amax) - 2, -E8M0_BIAS).to(torch.int32)
    scaled = xb.to(torch.float32) * _pow2((-e).clamp(-126, 127))[:, None]  # exact
    mag = _e2m1_index(scaled.abs())
    deq = _lookup(_E2M1_HU, mag) * _pow2((e - 1).clamp(min=-149))[:, None]
    deq = torch.copysign(deq, xb.to(torch.float32))
    codes = mag | (_sign(xb) << 3)
    return codes, deq, {"scale": (e + E8M0_BIAS).to(torch.uint8), "exp": e - 1}


def _encode_mxint8(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    amax = _block_amax(xb)
    e = torch.where(amax > 0, _floor_log2(amax), -E8M0_BIAS).to(torch.int32)
    scaled = xb.to(torch.float32) * _pow2((6 - e).clamp(-126, 127))[:, None]  # exact
    ints = torch.round(scaled).clamp(-127, 127).to(torch.int8)  # half to even, as np.rint
    deq = ints.to(torch.float32) * _pow2((e - 6).clamp(min=-149))[:, None]
    return ints.view(torch.uint8), deq, {"scale": (e + E8M0_BIAS).to(torch.uint8), "exp": e - 6}


def _encode_int4(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    x32 = xb.to(torch.float32)
    scale = _block_amax(xb) / torch.tensor(7, dtype=torch.float32)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))[:, None]
    q = torch.round(x32 / safe).clamp(-7, 7).to(torch.int8)
    deq = q.to(torch.float32) * scale[:, None]  # q = 0 gives +0.0
    return (q & 0xF).to(torch.uint8), deq, {"scale": scale}


# -- the NVFP4 family (SPEC §8) ---------------------------------------------------------------
def _f32(v: Any) -> torch.Tensor:
    """A 0-d float32 tensor (FP32 arithmetic with it stays FP32 and IEEE RNE)."""
    return torch.tensor(np.float32(v), dtype=torch.float32)


def _e2m1_elements(scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """golden ``e2m1_elements``: codes and signed values (±{0 … 6}) of FP32 scaled elements."""
    mag = _e2m1_index(scaled.clamp(-E2M1_MAX, E2M1_MAX).abs())
    values = torch.copysign(_lookup(_E2M1_HU, mag) / 2, scaled)
    return mag | (_sign(scaled) << 3), values


def _e4m3(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E4M3 (fn) bits (RNE, saturating at 448) of non-negative FP32 values and their values."""
    s_bits = _nearest_even(v, _E4M3_MIDS)
    return s_bits.to(torch.uint8), _E4M3_VALUES.take(s_bits)


def _encode_nvfp4(xb: torch.Tensor, ctx: dict[str, Any]
                  ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    ts = _f32(ctx["tensor_scale"])
    block_scale = _block_amax(xb) / _f32(E2M1_MAX)
    s = (block_scale / ts).clamp(float(np.float32(E4M3_EPS)), float(np.float32(E4M3_MAX)))
    s_bits, s32 = _e4m3(s)
    total = ts * s32
    recip = (_f32(1) / ts) / s32  # torchao's twice-rounded reciprocal
    codes, values = _e2m1_elements(xb.to(torch.float32) * recip[:, None])
    return codes, values * total[:, None], {"scale": s_bits}


def _amax_candidate(f: AmaxScaled, xb: torch.Tensor, ctx: dict[str, Any],
                    expansion: float | None, elements: str
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """golden ``AmaxScaled.block_scales`` + elements + ``dequantize``: codes, dequant, E4M3
    scale bits and FP32 scales of (n, B) FP16 blocks (``elements``: ``e2m1`` or ``int``)."""
    x32 = xb.to(torch.float32)
    s_hp = (_block_amax(xb) / _f32(f.ELEMENT_MAX)) * _f32(ctx["encode"])
    if expansion is not None:
        s_hp = s_hp * _f32(expansion)
    s_bits, s32 = _e4m3(s_hp)
    nonzero = s32 > 0
    recip = torch.where(nonzero, _f32(1) / (_f32(ctx["decode"]) * s32), _f32(0))
    scaled = torch.where(nonzero[:, None], x32 * recip[:, None], _f32(0))
    if elements == "e2m1":
        codes, values = _e2m1_elements(scaled)
    else:
        q = torch.round(scaled.clamp(-f.ELEMENT_MAX, f.ELEMENT_MAX)).to(torch.int8)
        codes, values = (q & 0xF).to(torch.uint8), q.to(torch.float32)
    k = _f32(f.ELEMENT_MAX * f.SCALE_MAX)
    deq = (values * s32[:, None]) * _f32(ctx["tensor_scale"]) / k
    return codes, deq, s_bits, s32


def _encode_nvint4(f: NVINT4, xb: torch.Tensor, ctx: dict[str, Any]
                   ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    codes, deq, s_bits, _ = _amax_candidate(f, xb, ctx, None, "int")
    return codes, deq, {"scale": s_bits}


def _block_sq_err(deq: torch.Tensor, x32: torch.Tensor) -> torch.Tensor:
    diff = deq.to(torch.float64) - x32.to(torch.float64)
    return (diff * diff).sum(dim=1)


def _encode_4o6(f: NVFP4FourOverSix, xb: torch.Tensor, ctx: dict[str, Any]
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    x32 = xb.to(torch.float32)
    codes6, deq6, s6, _ = _amax_candidate(f, xb, ctx, None, "e2m1")
    codes4, deq4, s4, _ = _amax_candidate(f, xb, ctx, f.FOUR_EXPANSION, "e2m1")
    err6, err4 = _block_sq_err(deq6, x32), _block_sq_err(deq4, x32)
    four = err4 < err6
    near = (err4 - err6).abs() <= _NEAR_TIE * torch.maximum(err4, err6)
    if bool(near.any()):  # summation order could decide: re-sum those blocks as golden does
        rows = near.nonzero().view(-1)
        xs = x32[rows].numpy()

        def golden_err(deq: torch.Tensor) -> np.ndarray:
            d = deq[rows].numpy().astype(np.float64) - xs
            return np.einsum("ij,ij->i", d, d)

        four[rows] = torch.from_numpy(golden_err(deq4) < golden_err(deq6))
    return (torch.where(four[:, None], codes4, codes6), torch.where(four[:, None], deq4, deq6),
            {"scale": torch.where(four, s4, s6)})


def _encode_nv_family(f: BlockFormat, xb: torch.Tensor, ctx: dict[str, Any]
                      ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """golden ``E4M3Scaled.encode``: an all-zero tensor gives zeros, else the format's blocks."""
    n, b = xb.shape
    if ctx["tensor_scale"] == 0:
        return (torch.zeros((n, b), dtype=torch.uint8), torch.zeros((n, b)),
                {"scale": torch.zeros(n, dtype=torch.uint8)})
    if type(f) is NVFP4:
        return _encode_nvfp4(xb, ctx)
    if type(f) is NVINT4:
        return _encode_nvint4(f, xb, ctx)
    return _encode_4o6(f, xb, ctx)  # type: ignore[arg-type]


_NV_FAMILY = (NVFP4, NVINT4, NVFP4FourOverSix)
_SIMPLE = {MXFP4: _encode_mxfp4, MXINT8: _encode_mxint8, INT4: _encode_int4}


def _encode(f: BlockFormat, xb: torch.Tensor, ctx: dict[str, Any], cand: torch.Tensor | None,
            out: tuple[torch.Tensor, torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(n, B) FP16 blocks → codes (n, B) uint8, dequant (n, B) float32, meta {(n,) tensors}.

    ``out``: (n, B) buffers the dialect kernel writes into (the caller copies otherwise)."""
    kind = type(f)
    if kind is DialectFormat:
        return _encode_dialect(f, xb, cand, out)  # type: ignore[arg-type]
    if kind in _SIMPLE:
        return _SIMPLE[kind](xb)
    if kind in _NV_FAMILY:
        return _encode_nv_family(f, xb, ctx)
    enc = f.encode(xb.numpy(), ctx, None if cand is None else cand.numpy())  # golden fallback
    meta = {key: torch.from_numpy(np.asarray(val)) for key, val in enc.meta.items()}
    return (torch.from_numpy(np.asarray(enc.codes, np.uint8)),
            torch.from_numpy(np.asarray(enc.dequant, np.float32)), meta)


def _prepare(f: BlockFormat, rows16: torch.Tensor) -> dict[str, Any]:
    """Tensor-wide state (NVFP4 family's tensor scale) by golden's own ``prepare``: the
    shipped formats only need the tensor amax, so golden sees that one value."""
    if type(f) in _NV_FAMILY:
        amax = _mag_bits(rows16).max().view(torch.float16).reshape(1).numpy()
        return f.prepare(amax)
    if type(f) is DialectFormat or type(f) in _SIMPLE:
        return f.prepare(np.zeros((1, 1), np.float16))
    return f.prepare(rows16.numpy())


# -- rotation (SPEC §11) ----------------------------------------------------------------------
@cache
def _rotation_matrix(rotation: Rotation) -> torch.Tensor:
    """(B, B) float64 M = diag(s)·H: y = 2^-c · (x @ M)."""
    return torch.from_numpy(np.ascontiguousarray(rotation.matrix))


def _rotate_forward(rot: RotatedFormat, blocks16: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotated FP16 (n, B) blocks (+0.0 for zeros) and the (n,) overflow mask."""
    if rot.input_rotated:
        return blocks16, torch.zeros(blocks16.shape[0], dtype=torch.bool)
    r = rot.rotation
    y = (blocks16.to(torch.float64) @ _rotation_matrix(r)) * 2.0 ** -r.shift(rot.role)
    y16 = _f64_to_f16(y)
    y16 = torch.where(y16 == 0, torch.zeros_like(y16), y16)
    return y16, torch.isinf(y16).any(dim=1)


def _rotate_inverse(rot: RotatedFormat, blocks: torch.Tensor) -> torch.Tensor:
    """(n, B) float32 dequantized rotated blocks in the input's basis (exact, one RNE)."""
    r = rot.rotation
    x = blocks.to(torch.float64) @ _rotation_matrix(r).T
    x = (x * 2.0 ** (r.shift(rot.role) - r.log2_block)).to(torch.float32)
    return torch.where(x == 0, torch.zeros_like(x), x)


def _rotate_rows(rot: RotatedFormat, x16: torch.Tensor, name: str) -> torch.Tensor:
    """golden ``RotatedFormat.rotate_rows`` (its error on an overflowing block)."""
    if rot.input_rotated:
        return x16
    b = rot.rotation.block
    blocks = x16.reshape(-1, b)
    out = torch.empty_like(blocks)
    bad = False
    step = max(1, CHUNK_ELEMENTS // b)
    for i in range(0, blocks.shape[0], step):
        out[i:i + step], over = _rotate_forward(rot, blocks[i:i + step])
        bad = bad or bool(over.any())
    if bad:
        rot.rotate_rows(x16.numpy(), name)  # raises golden's error naming the first block
        raise AssertionError(f"{name}: torch and golden rotation disagree")  # pragma: no cover
    return out.reshape(x16.shape)


# -- the driver -------------------------------------------------------------------------------
def _candidates(candidates: Any, shape: tuple[int, ...], nb: int, n_rows: int
                ) -> torch.Tensor | None:
    """SeDA masks as golden broadcasts them: (K,) or (n_rows·nb, K) bool."""
    if candidates is None:
        return None
    c = candidates if isinstance(candidates, torch.Tensor) else torch.from_numpy(
        np.asarray(candidates, dtype=bool))
    c = c.to(torch.bool)
    if c.ndim <= 1:
        return c
    want = tuple(shape[:-1]) + (nb, c.shape[-1])
    try:
        return c.broadcast_to(want).reshape(n_rows * nb, -1)
    except RuntimeError:
        raise ValueError(
            f"candidates: shape {tuple(c.shape)} does not broadcast to {want}"
        ) from None



# ------------------------------------------------------------------ the kernels' own torch ops
_INTERNAL = threading.local()


def internal_ops() -> bool:
    """True while this thread runs inside :func:`quantize_tensor` /
    :func:`quantize_weight_tensor`: a ``TorchFunctionMode`` observing a model (the workload
    tracer, fake quantization's matmul interception) ignores the kernels' own torch ops (the
    LUT-cost and Hadamard matrix products are not the model's GEMMs)."""
    return getattr(_INTERNAL, "depth", 0) > 0


def _internal(fn: _F) -> _F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _INTERNAL.depth = getattr(_INTERNAL, "depth", 0) + 1
        try:
            return fn(*args, **kwargs)
        finally:
            _INTERNAL.depth -= 1

    return cast(_F, wrapper)


@_internal
def quantize_tensor(
    x: torch.Tensor,
    fmt: BlockFormat,
    *,
    block: int | None = None,
    pad: bool = False,
    candidates: torch.Tensor | np.ndarray | None = None,
    name: str = "x",
) -> TorchQTensor:
    """Quantize ``x`` block-wise along its last axis: golden ``quantize(x, fmt, ...)`` in torch.

    Args:
        x: CPU tensor (..., k), float16/float32/bfloat16/float64 (others via golden's NumPy
            rounding); every index of the leading dimensions is a row.
        fmt: a resolved golden format object (``resolve_format(name)``, a ``DialectFormat``
            with any formatbook and ``lut``/``two-stage``, or a ``RotatedFormat``).
        block: B (default: the format's).
        pad: zero-pad a last axis that is not a multiple of B.
        candidates: SeDA candidate mask, (K,) or (..., nblocks, K) bool (``lut`` only).
        name: tensor name used in error and warning messages.

    Raises:
        ValueError: golden's errors, same text: bad block size, empty/0-d input, a value
            outside FP16 or NaN/Inf, k not a multiple of B without ``pad``, a block outside
            FP16 after rotation, bad candidates.

    Warns:
        FlushWarning: once, if non-zero dialect blocks dequantize to all zeros.
    """
    if not isinstance(fmt, BlockFormat):
        raise ValueError(f"format: expected a resolved golden BlockFormat (resolve_format), "
                         f"got {fmt!r}")
    b = fmt.block_size(block)
    x16 = _to_fp16(x, name, b)
    shape = tuple(x16.shape)
    x16 = _pad_last(x16, b, pad, name)
    k = x16.shape[-1]
    nb = k // b
    rot = fmt if isinstance(fmt, RotatedFormat) else None
    if rot is not None:
        x16 = _rotate_rows(rot, x16, name)
    enc_fmt = base_format(fmt)
    rows = x16.reshape(-1, k)
    n_rows = rows.shape[0]
    ctx = _prepare(enc_fmt, rows)
    cand = _candidates(candidates, shape, nb, n_rows)

    codes = torch.empty((n_rows, k), dtype=torch.uint8)
    dequant = torch.empty((n_rows, k), dtype=torch.float32)
    rotated = torch.empty((n_rows, k), dtype=torch.float32) if rot is not None else None
    meta: dict[str, torch.Tensor] = {}
    step = max(1, CHUNK_ELEMENTS // k)
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        c = cand[r0 * nb:r1 * nb] if cand is not None and cand.ndim > 1 else cand
        deq_out = dequant if rotated is None else rotated  # the encoder's basis
        out = (codes[r0:r1].view(-1, b), deq_out[r0:r1].view(-1, b))
        enc_codes, enc_deq, enc_meta = _encode(enc_fmt, rows[r0:r1].reshape(-1, b), ctx, c, out)
        if enc_codes is not out[0]:
            out[0].copy_(enc_codes)
        if enc_deq is not out[1]:
            out[1].copy_(enc_deq)
        if rot is not None:
            dequant[r0:r1] = _rotate_inverse(rot, out[1]).view(r1 - r0, k)
        for key, val in enc_meta.items():
            if key not in meta:
                meta[key] = torch.empty((n_rows, nb), dtype=val.dtype)
            meta[key][r0:r1] = val.view(r1 - r0, nb)

    flushed = meta.pop("flushed", None)
    if flushed is not None and bool(flushed.any()):
        warnings.warn(
            f"{name}: {int(flushed.sum())} of {flushed.numel()} blocks flushed to zero "
            f"(non-zero values all below the smallest step of their block's grid at the SE "
            f"clamp SE = -16; they dequantize to 0)",
            FlushWarning,
            stacklevel=2,
        )
    k0 = shape[-1]
    meta_shape = shape[:-1] + (nb,)
    m = {key: val.reshape(meta_shape) for key, val in meta.items()}
    kc = k if rot is not None else k0
    ts = ctx.get("tensor_scale")
    return TorchQTensor(
        format=fmt.name,
        block=b,
        codes=codes[:, :kc].reshape(shape[:-1] + (kc,)),
        dequant=dequant[:, :k0].reshape(shape),
        bits_per_element=fmt.bits_per_element(b),
        rotated=None if rotated is None else rotated.reshape(shape[:-1] + (k,)),
        se=m.get("se"),
        dialect=m.get("dialect"),
        scale=m.get("scale"),
        tensor_scale=None if ts is None else torch.tensor(np.float32(ts)),
        exp=m.get("exp"),
        tensor_bits=fmt.tensor_bits(),
        fmt=fmt,
    )


_WEIGHT_FORMATS: weakref.WeakKeyDictionary[BlockFormat, dict[int | None, BlockFormat]] = (
    weakref.WeakKeyDictionary()
)


def _weight_format(fmt: BlockFormat, block: int | None) -> BlockFormat:
    """W's format of a GEMM in ``fmt`` (golden ``operand_formats``, cached per format object):
    dialect weights use ``lut`` over the whole book (SPEC §4) and a rotation is applied in
    the *weight* role (SPEC §11)."""
    per_block = _WEIGHT_FORMATS.get(fmt, {})
    if block in per_block:
        return per_block[block]
    fw = operand_formats(fmt, block=block)[1]
    if fw is not fmt:  # (caching fmt itself would keep the weak key alive)
        _WEIGHT_FORMATS.setdefault(fmt, {})[block] = fw
    return fw


@_internal
def quantize_weight_tensor(
    w_out_in: torch.Tensor,
    fmt: BlockFormat,
    *,
    block: int | None = None,
    pad: bool = False,
    name: str = "W",
) -> TorchQTensor:
    """Quantize an ``nn.Linear`` weight (out, in): blocks along ``in`` per output row.

    (out, in) is Wᵀ of the golden (k, n) weight W, so this equals golden
    ``quantize_weights(w_out_in.T, fw, block=..., pad=..., name=...)`` with ``fw`` the weight
    format of a GEMM in ``fmt`` (golden ``gemm.operand_formats``): dialect weights are
    selected by ``lut`` over the whole formatbook (a two-stage ``fmt`` gives its ``lut``
    twin, SPEC §4), and a rotated ``fmt`` rotates W in the *weight* role (SPEC §11), whichever
    role ``fmt`` was built with. For other formats ``fw`` is ``fmt``. Result shape (out, in).

    Raises:
        ValueError: golden's errors; shapes are named as W's (in, out), as golden does.
    """
    if not isinstance(w_out_in, torch.Tensor):
        raise ValueError(f"{name}: expected a torch tensor, got {type(w_out_in).__name__}")
    w_shape = tuple(reversed(tuple(w_out_in.shape)))  # golden's W = w_out_in.T
    if w_out_in.ndim != 2:
        raise ValueError(f"W: expected a 2-D (k, n) matrix, got shape {w_shape}")
    check_nonempty(np.broadcast_to(np.float16(0), w_shape), name)
    return quantize_tensor(w_out_in, _weight_format(fmt, block), block=block, pad=pad, name=name)


def fake_quantize(
    x: torch.Tensor,
    fmt: BlockFormat,
    *,
    block: int | None = None,
    pad: bool = False,
    candidates: torch.Tensor | np.ndarray | None = None,
    name: str = "x",
) -> torch.Tensor:
    """The dequantized values of :func:`quantize_tensor` (float32, ``x``'s shape)."""
    return quantize_tensor(x, fmt, block=block, pad=pad, candidates=candidates,
                           name=name).dequant
