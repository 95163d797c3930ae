"""Block formats as data: the dialect formats (SPEC §1–4) and the baselines (SPEC §8).

Every format turns (n, B) FP16 blocks into one 4-bit (8-bit for MXINT8) code per element,
the dequantized FP32 value of every element and per-block metadata. One driver
(:func:`golden.quantize.quantize`) does the checks, blocking, padding and chunking for all.

Two families share their arithmetic:

* power-of-two scaled (dfp4/sd32, MXFP4, MXINT8): dequant = integer element · 2^exp exactly,
  with a per-block ``exp``; their GEMM is SPEC §5 on those integers;
* float scaled (NVFP4 and its Four Over Six variant, NVINT4, INT4): accuracy baselines whose
  GEMM is SPEC §8's float64 block sum.
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


def tensor_amax(rows16: np.ndarray) -> np.float32:
    """FP32 max |x| over a whole (FP16) tensor; 0 for an empty one."""
    return np.float32(np.abs(rows16).max()) if rows16.size else np.float32(0)


def e2m1_elements(scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E2M1 codes and signed element values of block-scaled FP32 values (NVFP4 family).

    |scaled| saturates at 6, then rounds RNE (:func:`e2m1_encode`); the sign comes from
    ``scaled``'s sign bit, so -0.0 and negatives that round to 0 give code 8 and value -0.0.

    Returns:
        (codes uint8: bit 3 sign, bits 2:0 magnitude index; values float32 in ±{0 … 6}).
    """
    mag = e2m1_encode(np.clip(scaled, -E2M1_MAX, E2M1_MAX))
    values = np.copysign(E2M1_HU.take(mag) / np.float32(2), scaled)
    return mag | (np.signbit(scaled).astype(np.uint8) << 3), values


class E4M3Scaled(BlockFormat):
    """The NVFP4 family: B = 16, an E4M3 scale byte per block, one FP32 word per tensor.

    Float-scaled accuracy baselines (SPEC §8 float GEMM contract): 4 + 8/16 = 4.5 bits per
    element plus 32 bits per tensor. An all-zero tensor gives codes 0, scale bytes 0 and
    +0.0 values. Subclasses compute ``ctx["tensor_scale"]`` (the per-tensor word, 0 for an
    all-zero tensor) in :meth:`prepare` and quantize the blocks of a non-zero tensor in
    :meth:`encode_blocks`.
    """

    pow2_scaled = False
    #: elements per block (the E4M3 scale's block)
    BLOCK: ClassVar[int] = 16

    def block_size(self, requested: int | None) -> int:
        return check_block(self.BLOCK if requested is None else requested, (self.BLOCK,),
                           f"{self.name} ")

    def scale_bits(self) -> int:
        return 8

    def tensor_bits(self) -> int:
        return 32

    def encode(
        self, xb: np.ndarray, ctx: dict[str, Any], candidates: Any = None, out: Any = None
    ) -> Encoded:
        n, b = xb.shape
        if ctx["tensor_scale"] == 0:  # all-zero tensor
            return Encoded(np.zeros((n, b), np.uint8), np.zeros((n, b), np.float32),
                           {"scale": np.zeros(n, np.uint8)})
        return self.encode_blocks(xb.astype(np.float32), ctx)

    def encode_blocks(self, x32: np.ndarray, ctx: dict[str, Any]) -> Encoded:
        """Codes, FP32 dequant and ``{"scale": E4M3 bytes}`` of (n, B) FP32 blocks."""
        raise NotImplementedError


class NVFP4(E4M3Scaled):
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

    def prepare(self, rows16: np.ndarray) -> dict[str, Any]:
        amax = tensor_amax(rows16)
        return {"tensor_scale": np.float32(amax / np.float32(E4M3_MAX * E2M1_MAX))}

    def encode_blocks(self, x32: np.ndarray, ctx: dict[str, Any]) -> Encoded:
        ts = ctx["tensor_scale"]
        block_scale = np.abs(x32).max(axis=-1) / np.float32(E2M1_MAX)
        s = np.clip(block_scale / ts, np.float32(E4M3_EPS), np.float32(E4M3_MAX))
        s_bits = e4m3_encode(s)
        s32 = E4M3_GRID.astype(np.float32).take(s_bits)
        total = ts * s32
        # torchao scales by a twice-rounded reciprocal, not by dividing by ts·s
        recip = (np.float32(1) / ts) / s32
        codes, values = e2m1_elements(x32 * recip[:, None])
        return Encoded(codes, values * total[:, None], {"scale": s_bits})


class AmaxScaled(E4M3Scaled):
    """The NVFP4 family as the Four Over Six code computes it (github.com/mit-han-lab/
    fouroversix, ``quantize/pytorch/reference.py``): the per-tensor word is the tensor amax
    A (FP32), and with K = ``ELEMENT_MAX`` · ``SCALE_MAX`` every step is one FP32 RNE op:

    * enc = K / A, dec = 1 / enc (per tensor);
    * block scale s = E4M3_RNE(fp32(amax_b / ELEMENT_MAX) · enc [· expansion]), subnormal
      E4M3 values and 0 included (no floor, unlike torchao's NVFP4);
    * scaled element = x · fp32(1 / fp32(dec · s)), or +0.0 where s = 0;
    * dequant = fp32(fp32(element · s · A) / K) (element · s is exact).
    """

    #: largest element magnitude the block amax maps to, and the largest block scale
    ELEMENT_MAX: ClassVar[float]
    SCALE_MAX: ClassVar[float]

    def prepare(self, rows16: np.ndarray) -> dict[str, Any]:
        amax = tensor_amax(rows16)
        if amax == 0:
            return {"tensor_scale": amax}
        enc = np.float32(self.ELEMENT_MAX * self.SCALE_MAX) / amax
        return {"tensor_scale": amax, "encode": enc, "decode": np.float32(1) / enc}

    def block_scales(
        self, x32: np.ndarray, ctx: dict[str, Any], expansion: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n,) E4M3 scale bytes, their FP32 values s, and the (n, B) scaled elements
        x · fp32(1 / fp32(dec · s)) (+0.0 in blocks with s = 0) of (n, B) FP32 blocks.

        ``expansion`` multiplies the FP32 scale before its E4M3 rounding (Four Over Six's
        1.5 turns the block-max-to-6 scale into the block-max-to-4 one).
        """
        s_hp = (np.abs(x32).max(axis=-1) / np.float32(self.ELEMENT_MAX)) * ctx["encode"]
        if expansion is not None:
            s_hp = s_hp * np.float32(expansion)
        s_bits = e4m3_encode(s_hp)
        s32 = E4M3_GRID.astype(np.float32).take(s_bits)
        nonzero = s32 > 0
        with np.errstate(divide="ignore"):
            recip = np.where(nonzero, np.float32(1) / (ctx["decode"] * s32), np.float32(0))
        scaled = np.where(nonzero[:, None], x32 * recip[:, None], np.float32(0))
        return s_bits, s32, scaled

    def dequantize(self, values: np.ndarray, s32: np.ndarray, ctx: dict[str, Any]) -> np.ndarray:
        """fp32(fp32(values · s · A) / K) for (n, B) element values and (n,) scales."""
        k = np.float32(self.ELEMENT_MAX * self.SCALE_MAX)
        return (values * s32[:, None]) * ctx["tensor_scale"] / k


class NVFP4FourOverSix(AmaxScaled):
    """NVFP4 with Four Over Six (4/6) adaptive block scaling (arXiv 2512.02010), MSE rule.

    Each block is quantized twice with E2M1 elements (:meth:`AmaxScaled.block_scales`, K =
    6 · 256): with the scale that maps its amax to 6, and with that FP32 scale · 1.5 (amax
    to 4; the tensor scale uses 256, not 448, so this one never exceeds 384 < 448). The block
    keeps the candidate with the smaller Σ(dequant − x)² (evaluated in float64 [ours]; the
    published code sums in FP32); a tie keeps the scale-to-6 candidate (the code's strict
    ``err4 < err6``). Elements saturate at ±6 before RNE [ours: as the CUDA/Triton path's
    ``cvt.rn.satfinite``; the PyTorch reference would round 7 to 8, reachable only with
    subnormal E4M3 scales]. The per-tensor word (``tensor_scale``) is the tensor amax.
    """

    name = "nvfp4-4o6"
    ELEMENT_MAX = E2M1_MAX
    #: Four Over Six's largest scale-to-6 block scale (E4M3_MAX_FOUROVERSIX)
    SCALE_MAX = 256.0
    #: FP32 factor from the scale-to-6 block scale to the scale-to-4 one
    FOUR_EXPANSION = 1.5

    def candidate(
        self, x32: np.ndarray, ctx: dict[str, Any], expansion: float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One candidate scaling of (n, B) FP32 blocks: E2M1 codes, FP32 dequant, E4M3 scale
        bytes and the float64 block error Σ(dequant − x)² ((n,))."""
        s_bits, s32, scaled = self.block_scales(x32, ctx, expansion)
        codes, values = e2m1_elements(scaled)
        deq = self.dequantize(values, s32, ctx)
        diff = deq.astype(np.float64) - x32
        return codes, deq, s_bits, np.einsum("ij,ij->i", diff, diff)

    def encode_blocks(self, x32: np.ndarray, ctx: dict[str, Any]) -> Encoded:
        codes6, deq6, s6, err6 = self.candidate(x32, ctx, None)
        codes4, deq4, s4, err4 = self.candidate(x32, ctx, self.FOUR_EXPANSION)
        four = err4 < err6  # a tie keeps the scale-to-6 candidate
        return Encoded(np.where(four[:, None], codes4, codes6),
                       np.where(four[:, None], deq4, deq6), {"scale": np.where(four, s4, s6)})


class NVINT4(AmaxScaled):
    """NVINT4 (arXiv 2510.25602): NVFP4's two-level scaling with symmetric INT4 elements.

    B = 16, K = 7 · 448 (:meth:`AmaxScaled.block_scales`: the block amax maps to 7), element
    q = RNE_int(clamp(scaled, −7, 7)) ∈ [−7, 7] (symmetric: −8 is never used), stored two's
    complement (q & 0xF); dequant = fp32(fp32(q · s · A) / K), q = 0 giving +0.0. As the
    fouroversix code's ``nvint4`` (``ScaleRule.static_6``). The per-tensor word
    (``tensor_scale``) is the tensor amax.
    """

    name = "nvint4"
    ELEMENT_MAX = 7.0
    SCALE_MAX = E4M3_MAX

    def encode_blocks(self, x32: np.ndarray, ctx: dict[str, Any]) -> Encoded:
        s_bits, s32, scaled = self.block_scales(x32, ctx)
        q = np.rint(np.clip(scaled, -self.ELEMENT_MAX, self.ELEMENT_MAX)).astype(np.int8)
        deq = self.dequantize(q.astype(np.float32), s32, ctx)  # q = 0 gives +0.0
        return Encoded((q & 0xF).astype(np.uint8), deq, {"scale": s_bits})


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
    "nvfp4-4o6": NVFP4FourOverSix,
    "nvint4": NVINT4,
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
