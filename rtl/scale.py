"""NVFP4 hardware arithmetic (SPEC §8 NVFP4 hardware GEMM contract [ours]).

Two pieces of the NVFP4 datapath, both bit-exact with ``golden.gemm.nvfp4_hw_gemm``:

* :func:`nvfp4_contribution` (combinational) — one block pair's exact FP32 contribution
  c = P · s_a · s_w / 4 from the signed integer block product P = Σ (±HU_a,i)(±HU_w,i) and the
  two E4M3 block-scale bytes. E4M3 byte → integer significand S (4 bits: ``1mmm`` normal,
  ``0mmm`` subnormal) and exponent field E' = max(e, 1) (s = S · 2^(E' − 10)); then
  |c| = |P| · (S_a · S_w) · 2^(E'_a + E'_w − 22). With |P| ≤ 16·12·12 = 2304 (12 bits) and
  S_a·S_w ≤ 225 (8 bits) the integer |P|·S_a·S_w < 2^20 fits FP32's 24-bit significand, so
  the conversion is a leading-zero count and a left shift, never a rounding. Its exponent
  field is msb + E'_a + E'_w + 105 ∈ [107, 153] (msb ∈ [0, 19], E' ∈ [1, 15]): always normal,
  for every E4M3 byte, subnormal scales and scale 0 included (P = 0 or S = 0 gives +0.0).
  Bit 7 of a scale byte (the E4M3 sign; golden scales are non-negative) is ignored.
* :class:`FP32Mul` / :func:`fp32_mul` — binary32 multiply with round-to-nearest-even, for the
  drain's y = RNE_fp32(acc · RNE_fp32(ts_a · ts_w)) (the same multiplier computes the
  tensor-scale product once per GEMM). **Contract:** operands normal or ±0 and a result
  that is ±0 or normal — exactly what SPEC §8 needs: ts ∈ [2^-35.4, 24.4] (FP16 amax / 2688)
  so ts_a·ts_w ∈ [2^-71, 594]; |acc| is 0 or ≥ 2^-20 (a sum of multiples of 2^-20) and far below
  2^100, so every product is normal or zero. Zero operands give a zero of sign
  sign_a ⊕ sign_b (as IEEE). An exponent-field-0 operand (a subnormal) is read as zero, and a
  result outside the normal range is unspecified (no subnormal, overflow, Inf or NaN logic).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, ValueLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.trees import shift_left

__all__ = [
    "FP32Mul",
    "FP32_MUL_SIGNATURE",
    "FP32_PAIR",
    "e4m3_significand",
    "fp32_mul",
    "nvfp4_contribution",
    "unsigned_to_fp32",
]

_FRAC = 23
_BIAS = 127

#: Input payload of :class:`FP32Mul`: two binary32 bit patterns (``a`` bits 31:0, ``b`` 63:32).
FP32_PAIR = data.StructLayout({"a": 32, "b": 32})

#: Signature of :class:`FP32Mul` (independent of its latency).
FP32_MUL_SIGNATURE = wiring.Signature({
    "i": In(stream.Signature(FP32_PAIR)),
    "o": Out(stream.Signature(32)),
})



def e4m3_significand(m: Module, byte: Value, name: str) -> tuple[Signal, Signal]:
    """(S, E') of an E4M3 byte: value = S · 2^(E' − 10), S = ``1mmm`` (normal) or ``0mmm``
    (subnormal, incl. 0), E' = max(exponent field, 1) ∈ [1, 15]. Bit 7 is ignored."""
    exp = byte[3:7]
    sig = Signal(4, name=f"{name}_sig")
    eff = Signal(4, name=f"{name}_exp")
    m.d.comb += [
        sig.eq(Cat(byte[:3], exp.any())),
        eff.eq(Mux(exp.any(), exp, 1)),
    ]
    return sig, eff


def unsigned_to_fp32(m: Module, mag: Value, neg: ValueLike, exp_field: Value, name: str) -> Value:
    """binary32 pattern of ±``mag`` · 2^(e), where the caller's ``exp_field`` (an unsigned
    Value) is the biased exponent the result has when ``mag``'s top bit is set; each leading
    zero lowers it by one. ``mag`` ≤ 24 bits, so the conversion is exact (no rounding); the
    result must be normal (the caller's precondition). ``mag`` = 0 gives +0.0."""
    width = len(mag)
    if width > _FRAC + 1:
        raise ValueError(f"mag: at most 24 bits convert exactly, got {width}")
    lzc = Signal(range(width + 1), name=f"{name}_lzc")
    m.d.comb += lzc.eq(width)
    for bit in range(width):  # later (more significant) bits win
        with m.If(mag[bit]):
            m.d.comb += lzc.eq(width - 1 - bit)
    norm = shift_left(m, mag, lzc, f"{name}_norm")
    biased = Signal(8, name=f"{name}_exp_field")
    m.d.comb += biased.eq(exp_field - lzc)
    fraction = Cat(Const(0, _FRAC + 1 - width), norm)[:_FRAC]
    result = Signal(32, name=f"{name}_fp32")
    m.d.comb += result.eq(Mux(mag.any(), Cat(fraction, biased, neg), 0))
    return result


def nvfp4_contribution(m: Module, p: Value, scale_a: Value, scale_w: Value) -> Value:
    """Combinational: the binary32 pattern of the exact NVFP4 block contribution
    P · s_a · s_w / 4 (see the module docstring), ``p`` the signed block product (at most 16
    bits; NVFP4's |P| ≤ 2304 needs 13), ``scale_a``/``scale_w`` the 8-bit E4M3 scale bytes.

    Logic: two 4-bit decodes, a 4×4 multiply (S_a·S_w), |p| × 8-bit multiply, a 4-bit exponent
    add, a leading-zero count and left shift over the ≤ 24-bit integer, sign = p's sign.
    P = 0 or a zero scale gives +0.0.
    """
    width = len(p)
    if width > 16:
        raise ValueError(f"p: at most 16 bits (|p|·225 must stay below 2^24), got {width}")
    sig_a, exp_a = e4m3_significand(m, scale_a, "scale_a")
    sig_w, exp_w = e4m3_significand(m, scale_w, "scale_w")
    sig = Signal(8, name="scale_sig")  # S_a · S_w ≤ 225
    exps = Signal(5, name="scale_exp")  # E'_a + E'_w ∈ [2, 30]
    mag = Signal(width, name="p_abs")  # |p|; |−2^(width−1)| still fits
    m.d.comb += [
        sig.eq(sig_a * sig_w),
        exps.eq(exp_a + exp_w),
        mag.eq(Mux(p[-1], -p, p)),
    ]
    n = Signal(width + 8, name="contrib_int")  # |P| · S_a · S_w
    m.d.comb += n.eq(mag * sig)
    # |c| = n · 2^(exps − 22); with the top bit of n (bit width+7) set the biased exponent is
    # (width + 7) + exps − 22 + 127
    field = Signal(8, name="contrib_exp")
    m.d.comb += field.eq(exps + (width + 7 - 22 + _BIAS))
    return unsigned_to_fp32(m, n, p[-1], field, "contrib")


# -- FP32 multiplier ----------------------------------------------------------------------------

#: After the significand multiply: sign, zero flag, signed exponent and the 48-bit product.
_PRODUCT = data.StructLayout({
    "sign": 1,
    "zero": 1,  # an operand is zero (exponent field 0)
    "exp": 10,  # ea + eb − 127 (two's complement, for a product in [1, 2))
    "prod": 48,  # 24 × 24-bit significand product, in [2^46, 2^48)
})


def _multiply(m: Module, operands: data.View) -> data.View:
    """Step 1: signs, exponents and the exact 48-bit significand product."""
    a, b = operands.a, operands.b
    out = Signal(_PRODUCT, name="mul_product")
    m.d.comb += [
        out.sign.eq(a[31] ^ b[31]),
        out.zero.eq(~a[23:31].any() | ~b[23:31].any()),
        out.exp.eq(a[23:31] + b[23:31] - _BIAS),
        out.prod.eq(Cat(a[:23], 1) * Cat(b[:23], 1)),
    ]
    return out


def _round(m: Module, prod: data.View) -> Value:
    """Step 2: one-bit normalisation, RNE to 24 bits (a carry flows into the exponent), pack."""
    p = prod.prod
    top = p[47]
    sig = Signal(48, name="mul_norm")
    m.d.comb += sig.eq(Mux(top, p, Cat(Const(0, 1), p[:47])))
    lsb, rnd, sticky = sig[24], sig[23], sig[:23].any()
    round_up = Signal(name="mul_round_up")
    m.d.comb += round_up.eq(rnd & (sticky | lsb))
    packed = Signal(31, name="mul_packed")
    m.d.comb += packed.eq(Cat(sig[24:47], (prod.exp + top)[:8]) + round_up)
    result = Signal(32, name="mul_result")
    m.d.comb += result.eq(Cat(Mux(prod.zero, 0, packed), prod.sign))
    return result


_STEPS: tuple[Callable[[Module, data.View], data.View | Value], ...] = (_multiply, _round)


def fp32_mul(m: Module, a: ValueLike, b: ValueLike) -> Value:
    """Build a combinational binary32 RNE multiplier in ``m``; return the product's 32-bit
    pattern (the contract of the module docstring)."""
    operands = Signal(FP32_PAIR, name="mul_operands")
    m.d.comb += [operands.a.eq(a), operands.b.eq(b)]
    value = operands
    for step in _STEPS:
        value = step(m, value)
    return value


class FP32Mul(wiring.Component):
    """Streaming binary32 multiplier, RNE (contract: module docstring).

    Parameters
    ----------
    latency : int
        Register stages, 0..2 (default 1): after the significand multiply (≥ 1) and after
        rounding (2). Latency 0 is combinational (``o.valid`` = ``i.valid``, ``i.ready`` =
        ``o.ready``). One pair per cycle; an empty stage accepts data while the output is
        stalled; ``i.ready`` depends combinationally on ``o.ready``.

    Members
    -------
    i : ``In(stream.Signature(FP32_PAIR))``
        ``a``, ``b``: raw binary32 operands (normal or ±0).
    o : ``Out(stream.Signature(32))``
        RNE_fp32(a · b).
    """

    MAX_LATENCY = len(_STEPS)

    def __init__(self, *, latency: int = 1) -> None:
        latency = operator.index(latency)
        if not 0 <= latency <= self.MAX_LATENCY:
            raise ValueError(f"latency must be 0..{self.MAX_LATENCY}, not {latency}")
        self._latency = latency
        super().__init__(FP32_MUL_SIGNATURE)

    @property
    def latency(self) -> int:
        """Cycles from accepting an operand pair to presenting its product (no stalls)."""
        return self._latency

    def elaborate(self, platform: object) -> Module:
        m = Module()
        valid: Value = self.i.valid
        value: data.View | Value = self.i.payload
        stages: list[tuple[Signal, Signal]] = []
        for index, step in enumerate(_STEPS):
            value = step(m, value)
            if index < self._latency:
                stage_valid = Signal(name=f"stage{index}_valid")
                stage_load = Signal(name=f"stage{index}_load")
                stage_data = Signal(value.shape(), name=f"stage{index}_data", reset_less=True)
                with m.If(stage_load):
                    m.d.sync += [stage_valid.eq(valid), stage_data.eq(value)]
                stages.append((stage_valid, stage_load))
                valid, value = stage_valid, stage_data
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.eq(value)]
        ready: Value = self.o.ready
        for stage_valid, stage_load in reversed(stages):
            m.d.comb += stage_load.eq(~stage_valid | ready)
            ready = stage_load
        m.d.comb += self.i.ready.eq(ready)
        return m
