"""Block formats as data: the dialect formats (SPEC §1–4) and the baselines (SPEC §8).

Every format turns (n, B) FP16 blocks into one 4-bit (8-bit for MXINT8) code per element,
the dequantized FP32 value of every element and per-block metadata. One driver
(:func:`golden.quantize.quantize`) does the checks, blocking, padding and chunking for all.

Two families share their arithmetic:

* power-of-two scaled (dfp4/sd32, MXFP4, MXINT8): dequant = integer element · 2^exp exactly,
  with a per-block ``exp``; their GEMM is SPEC §5 on those integers;
* float scaled (NVFP4, INT4): accuracy baselines whose GEMM is SPEC §8's float64 block sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .blocks import BLOCK_SIZES, check_block, pow2_floor_log2
from .formatbook import Formatbook, get_formatbook
from .grid import nearest_index
from .luts import build_luts, two_stage_tables
from .select import (
    lut_costs,
    preprocess,
    q_histogram,
    select_lut,
    select_two_stage,
    signed_bins,
)

#: E2M1 magnitudes in half units (value = HU / 2): 0 0.5 1 1.5 2 3 4 6
E2M1_HU = np.array([0, 1, 2, 3, 4, 6, 8, 12], dtype=np.float32)
#: E2M1 largest magnitude
E2M1_MAX = 6.0
#: bits of a dialect block's shared-exponent (SE) field (SPEC §2)
SE_FIELD_BITS = 5
#: OCP MX block size (elements per E8M0 scale), fixed for MXFP4 and MXINT8
MX_BLOCK = 32
#: OCP E8M0 bias; scale exponent of an all-zero MX block
E8M0_BIAS = 127
#: largest finite FP8 E4M3 (e4m3fn) value and its smallest normal (torchao's E4M3_EPS)
E4M3_MAX = 448.0
E4M3_EPS = 2.0**-6


def _e4m3_grid() -> np.ndarray:
    """All non-negative finite E4M3 (fn) values, indexed by their 7-bit magnitude code."""
    codes = np.arange(0x7F)  # 0x7F is NaN
    exp, man = codes >> 3, codes & 7
    sub = man * 2.0**-9
    norm = (8 + man) * 2.0 ** (exp - 10)
    return np.where(exp == 0, sub, norm)


E4M3_GRID = _e4m3_grid()


def e2m1_encode(scaled: np.ndarray) -> np.ndarray:
    """E2M1 magnitude index of |scaled| with RNE, saturating at 6 (3 bits; index LSB = mantissa)."""
    return nearest_index(np.abs(scaled) * 2, E2M1_HU, ties="even").astype(np.uint8)


def e4m3_encode(v: np.ndarray) -> np.ndarray:
    """E4M3 (fn) bits of non-negative float32 values at most 448, RNE."""
    return nearest_index(v, E4M3_GRID, ties="even").astype(np.uint8)


def sign_bits(xb: np.ndarray) -> np.ndarray:
    """FP16 sign bit as uint8 (``-0.0`` has sign 1)."""
    return np.signbit(xb).astype(np.uint8)


def _zero_safe_pow2(exp: np.ndarray) -> np.ndarray:
    """float32 2^exp per block, exp clipped to the normal range.

    Only an all-zero block's exponent (-127 for MX) needs the clip; its elements are 0.
    """
    return np.ldexp(np.float32(1), np.clip(exp, -126, 127))


@dataclass(frozen=True)
class Encoded:
    """One chunk's output: per-element ``codes``/``dequant`` (n, B) and per-block ``meta``.

    ``meta["flushed"]`` (optional, (n,) bool) marks non-zero blocks that dequantize to all
    zeros; the driver reports them (:class:`golden.quantize.FlushWarning`) and drops the key.

    ``encode(..., out=(codes, dequant))`` may write the per-element outputs into the given
    (n, B) buffers and return them (the dialect formats do, to save a copy).
    """

    codes: np.ndarray
    dequant: np.ndarray
    meta: dict[str, np.ndarray]


class BlockFormat:
    """A block format. Subclasses are small tables of rules; see the module docstring."""

    name: str
    #: dequant = integer element · 2^exp (SPEC §5 GEMM); False: SPEC §8 float baseline GEMM
    pow2_scaled: ClassVar[bool] = True
    #: bits per element code
    element_bits: ClassVar[int] = 4
    #: True when codes are sign-magnitude (bit 3 sign) and packable as nibbles
    nibble_codes: ClassVar[bool] = True

    def block_size(self, requested: int | None) -> int:
        raise NotImplementedError

    def scale_bits(self) -> int:
        """Bits of the per-block scale field (SE, E8M0, E4M3 or FP32 scale)."""
        raise NotImplementedError

    def id_bits(self) -> int:
        """Bits of the per-block dialect id (0 for formats without dialects)."""
        return 0

    def metadata_bits(self) -> int:
        """Bits of per-block metadata: scale field + dialect id."""
        return self.scale_bits() + self.id_bits()

    def tensor_bits(self) -> int:
        """Bits of per-tensor metadata."""
        return 0

    def bits_per_element(self, block: int) -> float:
        return self.element_bits + self.metadata_bits() / block

    def prepare(self, rows16: np.ndarray) -> dict[str, Any]:
        """Tensor-wide state computed once before the chunks (e.g. NVFP4's tensor scale)."""
        return {}

    def encode(
        self, xb: np.ndarray, ctx: dict[str, Any], candidates: Any = None, out: Any = None
    ) -> Encoded:
        raise NotImplementedError


class DialectFormat(BlockFormat):
    """dfp4 / sd32 / user formatbooks: SE (5 bits) + dialect id per block (SPEC §1–4)."""

    def __init__(self, formatbook: Formatbook | str, select: str = "lut") -> None:
        self.formatbook = get_formatbook(formatbook)
        self.name = self.formatbook.name
        if select not in ("lut", "two-stage"):
            raise ValueError(f"select: must be 'lut' or 'two-stage', got {select!r}")
        self.select = select
        self.luts = build_luts(self.formatbook)
        self.two_stage = two_stage_tables(self.formatbook) if select == "two-stage" else None
        # flat (K·2·32) tables indexed by dialect·64 + sign·32 + q: the 4-bit code and the
        # signed magnitude ±HU (-0.0 for sign 1), so dequant = table · 2^(SE-1) keeps the sign
        sign = np.array([0, 1], np.uint8)[None, :, None]
        self._code_flat = ((sign << 3) | self.luts.idx[:, None, :]).reshape(-1)
        hu = self.luts.hu[:, None, :].astype(np.float32)
        self._val_flat = np.where(sign == 1, -hu, hu).reshape(-1)

    def block_size(self, requested: int | None) -> int:
        return check_block(32 if requested is None else requested, BLOCK_SIZES, f"{self.name} ")

    def scale_bits(self) -> int:
        return SE_FIELD_BITS

    def id_bits(self) -> int:
        return self.formatbook.id_bits

    def costs(self, xb: np.ndarray) -> np.ndarray:
        """LUT cost of every dialect for (n, B) FP16 blocks: (n, K) int64 (SPEC §4)."""
        se, q, _ = preprocess(xb)
        return lut_costs(q_histogram(signed_bins(q, xb)), self.luts)

    def encode(
        self, xb: np.ndarray, ctx: dict[str, Any], candidates: Any = None, out: Any = None
    ) -> Encoded:
        se, q, qmax = preprocess(xb)
        bins = signed_bins(q, xb)
        hist = q_histogram(bins)
        if self.two_stage is not None:
            if candidates is not None:
                raise ValueError("candidates: SeDA sub-formatbooks require select='lut'")
            dialect = select_two_stage(hist, qmax, self.two_stage)
        else:
            dialect = select_lut(lut_costs(hist, self.luts), candidates)
        # dialect·64 + sign·32 + q, reusing the histogram bins (block·64 + sign·32 + q)
        n = xb.shape[0]
        flat = bins + ((dialect.astype(np.intp) - np.arange(n, dtype=np.intp)) * 64)[:, None]
        codes, deq = out if out is not None else (None, None)
        codes = np.take(self._code_flat, flat, out=codes)
        deq = np.take(self._val_flat, flat, out=deq)
        deq *= np.ldexp(np.float32(1), se - 1)[:, None]
        meta = {"se": se.astype(np.int8), "dialect": dialect, "exp": se - 1,
                "flushed": self._flushed(xb, dialect, qmax)}
        return Encoded(codes, deq, meta)

    def _flushed(self, xb: np.ndarray, dialect: np.ndarray, qmax: np.ndarray) -> np.ndarray:
        """(n,) bool: the block has a non-zero element but every element rounds to
        magnitude index 0 (only possible at the SE clamp SE = -16, SPEC §2).

        IDX is non-decreasing in q, so the block maximum's index decides; only those few
        blocks (all-zero ones included) have their elements inspected.
        """
        flushed = np.zeros(xb.shape[0], dtype=bool)
        cand = np.flatnonzero(self.luts.idx[dialect, qmax] == 0)
        if cand.size:
            flushed[cand] = (xb[cand].view(np.uint16) & np.uint16(0x7FFF)).any(axis=-1)
        return flushed


class MXFP4(BlockFormat):
    """OCP MX v1.0 MXFP4: B = 32, E8M0 scale 2^(floor(log2 amax) - 2), E2M1 RNE elements.

    Equal to torchao 0.18 ``MXTensor.to_mx(x, torch.float4_e2m1fn_x2, 32)`` (FLOOR mode).
    amax = 0 gives the exponent -127 (scale byte 0).
    """

    name = "mxfp4"

    def block_size(self, requested: int | None) -> int:
        return check_block(MX_BLOCK if requested is None else requested, (MX_BLOCK,), "mxfp4 ")

    def scale_bits(self) -> int:
        return 8

    def encode(
        self, xb: np.ndarray, ctx: dict[str, Any], candidates: Any = None, out: Any = None
    ) -> Encoded:
        amax = np.abs(xb).max(axis=-1)
        e = np.where(amax > 0, pow2_floor_log2(amax) - 2, -E8M0_BIAS).astype(np.int32)
        scaled = xb.astype(np.float32) * _zero_safe_pow2(-e)[:, None]  # exact
        mag = e2m1_encode(scaled)
        deq = E2M1_HU.take(mag) * np.ldexp(np.float32(1), np.maximum(e - 1, -149))[:, None]
        np.copysign(deq, xb, out=deq)
        codes = mag | (sign_bits(xb) << 3)
        meta = {"scale": (e + E8M0_BIAS).astype(np.uint8), "exp": e - 1}
        return Encoded(codes, deq, meta)


class MXINT8(BlockFormat):
    """OCP MX v1.0 MXINT8: B = 32, e = floor(log2 amax), int8 = clamp(RNE(x·2^(6-e)), ±127).

    Codes hold the int8 elements as uint8 (two's complement); value = int8 · 2^(e - 6),
    0 gives +0.0. amax = 0 gives e = -127.
    """

    name = "mxint8"
    element_bits = 8
    nibble_codes = False

    def block_size(self, requested: int | None) -> int:
        return check_block(MX_BLOCK if requested is None else requested, (MX_BLOCK,), "mxint8 ")

    def scale_bits(self) -> int:
        return 8

    def encode(
        self, xb: np.ndarray, ctx: dict[str, Any], candidates: Any = None, out: Any = None
    ) -> Encoded:
        amax = np.abs(xb).max(axis=-1)
        e = np.where(amax > 0, pow2_floor_log2(amax), -E8M0_BIAS).astype(np.int32)
        scaled = xb.astype(np.float32) * _zero_safe_pow2(6 - e)[:, None]  # exact
        ints = np.clip(np.rint(scaled), -127, 127).astype(np.int8)
        deq = ints.astype(np.float32) * np.ldexp(np.float32(1), np.maximum(e - 6, -149))[:, None]
        meta = {"scale": (e + E8M0_BIAS).astype(np.uint8), "exp": e - 6}
        return Encoded(ints.view(np.uint8), deq, meta)


class NVFP4(BlockFormat):
    """NVFP4: B = 16, FP32 tensor scale amax/(448·6), E4M3 block scales, E2M1 elements.

    Follows torchao 0.18 ``NVFP4Tensor.to_nvfp4(x, per_tensor_scale=
    per_tensor_amax_to_scale(amax))`` on CPU, every step an FP32 RNE operation:
    block_scale = amax_b / 6; s = clamp(block_scale / ts, 2^-6, 448) rounded to E4M3;
    element = E2M1_RNE(clamp(fp32(x · fp32(fp32(1 / ts) / s)), ±6)) — torchao multiplies by
    that twice-rounded reciprocal rather than dividing by ts·s, which differs at ties [ours:
    SPEC §8 "equal to torchao" decides]; dequant = fp32(e2m1 · fp32(ts · s)).
    A zero block inside a non-zero tensor gets the E4M3 floor 2^-6 (torchao's E4M3_EPS).
    An all-zero tensor gives codes 0, scales 0 and zeros (torchao gives NaN) [ours].
    """

    name = "nvfp4"
    pow2_scaled = False

    def block_size(self, requested: int | None) -> int:
        return check_block(16 if requested is None else requested, (16,), "nvfp4 ")

    def scale_bits(self) -> int:
        return 8

    def tensor_bits(self) -> int:
        return 32

    def prepare(self, rows16: np.ndarray) -> dict[str, Any]:
        amax = np.float32(np.abs(rows16).max()) if rows16.size else np.float32(0)
        return {"tensor_scale": np.float32(amax / np.float32(E4M3_MAX * E2M1_MAX))}

    def encode(
        self, xb: np.ndarray, ctx: dict[str, Any], candidates: Any = None, out: Any = None
    ) -> Encoded:
        ts = ctx["tensor_scale"]
        n, b = xb.shape
        if ts == 0:  # all-zero tensor [ours]
            zeros = np.zeros(n, np.uint8)
            return Encoded(
                np.zeros((n, b), np.uint8), np.zeros((n, b), np.float32), {"scale": zeros}
            )
        x32 = xb.astype(np.float32)
        block_scale = np.abs(x32).max(axis=-1) / np.float32(E2M1_MAX)
        s = np.clip(block_scale / ts, np.float32(E4M3_EPS), np.float32(E4M3_MAX))
        s_bits = e4m3_encode(s)
        s32 = E4M3_GRID.astype(np.float32).take(s_bits)
        total = ts * s32
        # torchao scales by a twice-rounded reciprocal, not by dividing by ts·s
        recip = (np.float32(1) / ts) / s32
        scaled = np.clip(x32 * recip[:, None], -E2M1_MAX, E2M1_MAX)
        mag = e2m1_encode(scaled)
        deq = (E2M1_HU.take(mag) / np.float32(2)) * total[:, None]
        np.copysign(deq, xb, out=deq)
        codes = mag | (sign_bits(xb) << 3)
        return Encoded(codes, deq, {"scale": s_bits})


class INT4(BlockFormat):
    """Symmetric INT4 with an FP32 scale per block of the run's B (SPEC §8).

    scale = RNE_fp32(amax / 7); q = clamp(RNE_int(RNE_fp32(x / scale)), -7, 7), stored two's
    complement (q & 0xF); dequant = RNE_fp32(q · scale); amax = 0 gives scale 0 and q 0.
    """

    name = "int4"
    pow2_scaled = False
    nibble_codes = True

    def block_size(self, requested: int | None) -> int:
        return check_block(32 if requested is None else requested, None)

    def scale_bits(self) -> int:
        return 32

    def encode(
        self, xb: np.ndarray, ctx: dict[str, Any], candidates: Any = None, out: Any = None
    ) -> Encoded:
        x32 = xb.astype(np.float32)
        scale = np.abs(x32).max(axis=-1) / np.float32(7)
        safe = np.where(scale > 0, scale, np.float32(1))[:, None]
        q = np.clip(np.rint(x32 / safe), -7, 7).astype(np.int8)
        deq = q.astype(np.float32) * scale[:, None]  # q = 0 gives +0.0
        return Encoded((q & 0xF).astype(np.uint8), deq, {"scale": scale})


BASELINES: dict[str, type[BlockFormat]] = {
    "mxfp4": MXFP4,
    "mxint8": MXINT8,
    "nvfp4": NVFP4,
    "int4": INT4,
}
DIALECT_FORMATS = ("dfp4", "sd32")
FORMAT_NAMES = DIALECT_FORMATS + tuple(BASELINES)


def resolve_format(
    fmt: str | BlockFormat,
    select: str | None = None,
    formatbook: Formatbook | str | None = None,
) -> BlockFormat:
    """A format object from its name; ``formatbook`` replaces a dialect format's book."""
    if isinstance(fmt, BlockFormat):
        return fmt
    if isinstance(fmt, Formatbook):
        return DialectFormat(fmt, select or "lut")
    if fmt in DIALECT_FORMATS:
        return DialectFormat(formatbook if formatbook is not None else fmt, select or "lut")
    if fmt in BASELINES:
        if select not in (None, "lut"):
            raise ValueError(f"select: {select!r} applies only to the dialect formats, not {fmt}")
        if formatbook is not None:
            raise ValueError(f"formatbook: applies only to the dialect formats, not {fmt}")
        return BASELINES[fmt]()
    raise ValueError(f"format: unknown {fmt!r} (choose from {', '.join(FORMAT_NAMES)})")
