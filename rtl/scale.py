"""NVFP4 hardware arithmetic (SPEC §8 NVFP4 hardware GEMM contract [ours]).

The pieces of the NVFP4 datapath, all bit-exact with ``golden.gemm.nvfp4_hw_gemm``:

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
  The two halves are separate so that :class:`~rtl.pe.BlockPE` can pipeline them:
  :func:`e4m3_pair` (S_a·S_w and E'_a + E'_w, beside the element products) and
  :func:`scaled_contribution` (|P|·S, normalise, pack; with stage hooks).
* :class:`FP32Mul` / :func:`fp32_mul` — binary32 multiply with round-to-nearest-even, for the
  drain's y = RNE_fp32(acc · RNE_fp32(ts_a · ts_w)) (the same multiplier computes the
  tensor-scale product once per GEMM). **Contract:** operands normal or ±0 and a result
  that is ±0 or normal — exactly what SPEC §8 needs: ts ∈ [2^-35.4, 24.4] (FP16 amax / 2688)
  so ts_a·ts_w ∈ [2^-71, 594]; |acc| is 0 or ≥ 2^-20 (a sum of multiples of 2^-20) and far below
  2^100, so every product is normal or zero. Zero operands give a zero of sign
  sign_a ⊕ sign_b (as IEEE). An exponent-field-0 operand (a subnormal) is read as zero, and a
  result outside the normal range is unspecified (no subnormal, overflow, Inf or NaN logic).
  :data:`TENSOR_SCALE_STAGES` register stages (the drain's tensor-scale lane) close timing at
  180 nm.

**Multipliers** are carry-save trees (:func:`multiply_unsigned`): AND partial-product rows,
compressed by levels of 3:2 counters (a Wallace tree on whole rows) to two rows, then one
Kogge–Stone adder (:func:`rtl.fp32_add.prefix_add`) — the synthesis flow maps a plain ``*`` to
an array of ripple adders, too slow for a 4 ns clock. Every operator is bitwise or a
``prefix_add`` of equal-width operands, so the Verilog is clean under Verilator ``-Wall``.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, ValueLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.fp32_add import leading_zeros, prefix_add
from semdialect.rtl.timing import TENSOR_SCALE_STAGES
from semdialect.rtl.trees import Enables, shift_left
from semdialect.rtl.trees import pipeline_register as _register

__all__ = [
    "FP32Mul",
    "FP32_MUL_SIGNATURE",
    "FP32_PAIR",
    "TENSOR_SCALE_STAGES",
    "carry_save",
    "e4m3_pair",
    "e4m3_significand",
    "fp32_mul",
    "fp32_mul_cuts",
    "multiply_unsigned",
    "nvfp4_contribution",
    "ones_magnitude",
    "rows_sum",
    "scaled_contribution",
    "tree_levels",
]

_FRAC = 23
_BIAS = 127
_EXP_BITS = 8

#: Input payload of :class:`FP32Mul`: two binary32 bit patterns (``a`` bits 31:0, ``b`` 63:32).
FP32_PAIR = data.StructLayout({"a": 32, "b": 32})

#: Signature of :class:`FP32Mul` (independent of its latency).
FP32_MUL_SIGNATURE = wiring.Signature({
    "i": In(stream.Signature(FP32_PAIR)),
    "o": Out(stream.Signature(32)),
})


# -- carry-save adder trees ---------------------------------------------------------------------

#: Rows still to be added, each a ``width``-bit Value (a multiplier's partial products).
Rows = list[Value]


def _rows_of(rows: Sequence[tuple[Value, int]], width: int) -> Rows:
    """``width``-bit rows of unsigned ``(value, left shift)`` pairs (truncated)."""
    out = []
    for value, shift in rows:
        row = Cat(Const(0, shift), value, Const(0, max(0, width - shift - len(value))))
        out.append(row[:width])
    return out


def _compress(m: Module, rows: Rows, name: str) -> Rows:
    """One level of a Wallace tree on whole rows: every three rows x, y, z become the sum
    row x ⊕ y ⊕ z and the carry row maj(x, y, z) << 1 (3:2 counters in every column,
    synthesis drops those with constant inputs); one or two rows left over pass through."""
    width = len(rows[0])
    out: Rows = []
    full = len(rows) // 3
    for k in range(full):
        x, y, z = rows[3 * k: 3 * k + 3]
        s = Signal(width, name=f"{name}_s{k}")
        c = Signal(width, name=f"{name}_c{k}")
        m.d.comb += [s.eq(x ^ y ^ z), c.eq(Cat(Const(0, 1), (x & y) | (z & (x ^ y)))[:width])]
        out += [s, c]
    return out + rows[3 * full:]


def tree_levels(count: int) -> int:
    """Levels :func:`rows_sum` builds to bring ``count`` rows down to two."""
    levels = 0
    while count > 2:
        count = 2 * (count // 3) + count % 3
        levels += 1
    return levels


def carry_save(m: Module, rows: Sequence[tuple[Value, int]], width: int, name: str, *,
               stage: Callable[[int, Rows], Rows] | None = None) -> tuple[Value, Value]:
    """Two ``width``-bit rows whose sum is Σ rows (unsigned (value, left shift) pairs) modulo
    2^``width``: a carry-save (Wallace) tree of :func:`_compress` levels (``stage(level,
    rows)`` is called after each level and returns the rows to continue from)."""
    level_rows = _rows_of(rows, width)
    level = 0
    while len(level_rows) > 2:
        level_rows = _compress(m, level_rows, f"{name}_l{level + 1}")
        level += 1
        if stage is not None:
            level_rows = stage(level, level_rows)
    if len(level_rows) == 1:
        level_rows.append(Const(0, width))
    return level_rows[0], level_rows[1]


def rows_sum(m: Module, rows: Sequence[tuple[Value, int]], width: int, name: str, *,
             stage: Callable[[int, Rows], Rows] | None = None) -> Value:
    """Σ rows (unsigned (value, left shift) pairs) modulo 2^``width``: :func:`carry_save`,
    then one Kogge–Stone add. Returns ``width`` bits."""
    row_a, row_b = carry_save(m, rows, width, name, stage=stage)
    total = Signal(width, name=f"{name}_sum")
    m.d.comb += total.eq(prefix_add(row_a, row_b, Const(0, 1))[:width])
    return total


def multiply_unsigned(m: Module, a: Value, b: Value, name: str, *,
                      extra: Sequence[tuple[Value, int]] = (),
                      stage: Callable[[int, Rows], Rows] | None = None) -> Value:
    """a · b (+ Σ ``extra`` rows) of unsigned values, ``len(a) + len(b)`` bits (the caller
    makes sure the extra rows keep the sum below 2^(len(a) + len(b))): one partial-product
    row per bit of the narrower operand, added by :func:`rows_sum`."""
    if len(a) < len(b):
        a, b = b, a
    rows = [(Mux(b[j], a, 0), j) for j in range(len(b))]
    return rows_sum(m, [*rows, *extra], len(a) + len(b), name, stage=stage)


def _add_equal(a: Value, b: Value, carry_in: ValueLike = 0) -> Value:
    """``(a + b + carry_in) mod 2^len(a)`` of equal-width values (a prefix adder: no mixed
    operand widths in the Verilog)."""
    assert len(a) == len(b)
    return prefix_add(a, b, Value.cast(carry_in) if not isinstance(carry_in, int)
                      else Const(carry_in, 1))[:len(a)]


def _const_bits(value: int, width: int) -> Const:
    return Const(value % (1 << width), width)


# -- NVFP4 block contribution -------------------------------------------------------------------


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


def e4m3_pair(m: Module, scale_a: Value, scale_w: Value, name: str = "scale"
              ) -> tuple[Signal, Signal]:
    """(S_a · S_w, E'_a + E'_w) of two E4M3 bytes (8 and 5 bits): s_a · s_w =
    S_a·S_w · 2^(E'_a + E'_w − 20). A 4 × 4 multiply and a 4-bit add — small enough to sit
    beside the PE's element multipliers."""
    sig_a, exp_a = e4m3_significand(m, scale_a, f"{name}_a")
    sig_w, exp_w = e4m3_significand(m, scale_w, f"{name}_w")
    sig = Signal(8, name=f"{name}_sig")  # ≤ 225
    exps = Signal(5, name=f"{name}_exp")  # ∈ [2, 30]
    m.d.comb += [
        sig.eq(multiply_unsigned(m, sig_a, sig_w, f"{name}_mul")),
        exps.eq(_add_equal(Cat(exp_a, Const(0, 1)), Cat(exp_w, Const(0, 1)))),
    ]
    return sig, exps


def ones_magnitude(p: Value, mag_bits: int) -> Value:
    """``Cat(P ⊕ n, n)`` of a signed ``p`` with sign n: the low ``mag_bits`` bits of |P| − n
    (one's complement magnitude, no carry chain) and the sign on top — the form
    :func:`scaled_contribution` takes with ``ones_form=True`` (the PE forms it before the
    register that ends its adder tree)."""
    neg = p[-1]
    return Cat((p.as_unsigned() ^ neg.replicate(len(p)))[:mag_bits], neg)


def scaled_contribution(
    m: Module, p: Value, sig: Value, exps: Value, *, mag_bits: int | None = None,
    ones_form: bool = False,
    stage: Callable[[int, dict[str, Value]], dict[str, Value]] | None = None,
    name: str = "contrib",
) -> Value:
    """Combinational: the binary32 pattern of P · ``sig`` · 2^(``exps`` − 22), exact: ``p`` the
    signed block product, ``sig`` = S_a·S_w (8 bits) and ``exps`` = E'_a + E'_w (5 bits) of
    :func:`e4m3_pair` — the NVFP4 contribution P·s_a·s_w/4.

    ``mag_bits``: bits of |P| (default ``len(p)``; the PE passes 12, |P| ≤ 2304). |P| is never
    formed by a negation: with the sign bit n, P ⊕ n = |P| − n, so |P|·S = (P ⊕ n)·S + n·S,
    one more partial-product row. ``ones_form``: ``p`` is already :func:`ones_magnitude`'s
    ``Cat(P ⊕ n, n)`` (``mag_bits`` + 1 bits). The carry-save rows are added as a
    carry-select adder: the low half, and the high half both without and with a carry in,
    each a Kogge–Stone adder;
    the low half's carry out picks the high half. Then a leading-zero count (a balanced
    tree), the normalising left shift and the exponent field ``exps + (W + 104) − lzc`` (W =
    ``mag_bits`` + 8, the product width).

    ``stage(k, values)``, when given, is called at k = 1 (after the half additions, before
    the carry-select multiplexer: |P|·S in W + 1 + (W − W/2) bits, and the exponent field)
    and k = 2 (after the normalising shift); it returns the values to continue from (the
    pipelined PE's scale registers).
    """
    width = len(p)
    mag_bits = width if mag_bits is None else mag_bits
    if not 1 <= mag_bits <= width or mag_bits + 8 > _FRAC + 1:
        raise ValueError(f"mag_bits: |P|·S must stay below 2^24, got {mag_bits} bits of {width}")
    if ones_form and width != mag_bits + 1:
        raise ValueError(f"p: the ones form has mag_bits + 1 = {mag_bits + 1} bits, not {width}")
    if (len(sig), len(exps)) != (8, 5):
        raise ValueError(f"sig/exps: expected 8 and 5 bits, got {len(sig)} and {len(exps)}")
    keep = stage if stage is not None else (lambda _k, values: values)
    form = p if ones_form else ones_magnitude(p, mag_bits)
    neg = form[mag_bits]
    ones = Signal(mag_bits, name=f"{name}_ones")  # |P| − neg
    m.d.comb += ones.eq(form[:mag_bits])
    nbits = mag_bits + 8
    rows = [(Mux(sig[j], ones, 0), j) for j in range(len(sig))]
    row_a, row_b = carry_save(m, [*rows, (Mux(neg, sig, 0), 0)], nbits, f"{name}_mul")
    half = nbits // 2
    low = Signal(half + 1, name=f"{name}_low")  # the low half's sum and carry out
    high0 = Signal(nbits - half, name=f"{name}_high0")  # the high half without a carry in
    high1 = Signal(nbits - half, name=f"{name}_high1")  # with one
    m.d.comb += [
        low.eq(prefix_add(row_a[:half], row_b[:half], Const(0, 1))),
        high0.eq(prefix_add(row_a[half:], row_b[half:], Const(0, 1))[:nbits - half]),
        high1.eq(prefix_add(row_a[half:], row_b[half:], Const(1, 1))[:nbits - half]),
    ]
    # biased exponent with n's top bit set: (nbits − 1) + exps − 22 + 127
    field = Signal(_EXP_BITS, name=f"{name}_field")
    m.d.comb += field.eq(_add_equal(Cat(exps, Const(0, _EXP_BITS - len(exps))),
                                    _const_bits(nbits + 104, _EXP_BITS)))
    v = keep(1, {"neg": neg, "low": low, "high0": high0, "high1": high1, "field": field})
    n = Signal(nbits, name=f"{name}_n")  # |P| · S
    m.d.comb += n.eq(Cat(v["low"][:half], Mux(v["low"][half], v["high1"], v["high0"])))
    lzc = Signal(nbits.bit_length(), name=f"{name}_lzc")
    m.d.comb += lzc.eq(leading_zeros(n))
    norm = shift_left(m, n, lzc, f"{name}_norm")
    biased = Signal(_EXP_BITS, name=f"{name}_biased")  # field − lzc = field + ~lzc + 1
    m.d.comb += biased.eq(_add_equal(
        v["field"], Cat(~lzc, Const((1 << (_EXP_BITS - len(lzc))) - 1, _EXP_BITS - len(lzc))),
        1))
    nonzero = Signal(name=f"{name}_nonzero")
    m.d.comb += nonzero.eq(norm[-1])
    v = keep(2, {"neg": v["neg"], "norm": norm, "biased": biased, "nonzero": nonzero})
    fraction = Cat(Const(0, _FRAC + 1 - nbits), v["norm"])[:_FRAC]
    result = Signal(32, name=f"{name}_fp32")
    m.d.comb += result.eq(Mux(v["nonzero"], Cat(fraction, v["biased"], v["neg"]), 0))
    return result


def nvfp4_contribution(m: Module, p: Value, scale_a: Value, scale_w: Value) -> Value:
    """Combinational: the binary32 pattern of the exact NVFP4 block contribution
    P · s_a · s_w / 4 (see the module docstring), ``p`` the signed block product (at most 16
    bits; NVFP4's |P| ≤ 2304 needs 13), ``scale_a``/``scale_w`` the 8-bit E4M3 scale bytes:
    :func:`e4m3_pair` then :func:`scaled_contribution`. P = 0 or a zero scale gives +0.0.
    """
    width = len(p)
    if width > 16:
        raise ValueError(f"p: at most 16 bits (|p|·225 must stay below 2^24), got {width}")
    sig, exps = e4m3_pair(m, scale_a, scale_w)
    return scaled_contribution(m, p, sig, exps)


# -- FP32 multiplier ----------------------------------------------------------------------------

_SIG = _FRAC + 1  # 24-bit significands
_PROD = 2 * _SIG  # 48-bit product
_EXT_EXP = 10  # two's complement exponent inside the multiplier

#: Estimated delay (ns at 180 nm, OSU cells; calibrated on OpenSTA runs of this multiplier
#: with the registers after chosen segments: the partial products and all seven carry-save
#: levels in one stage ≤ 3.4 ns, levels + add 5.5 ns, decision + increment ≤ 3.8 ns) of the
#: multiplier's segments, in order: one per carry-save level (partial products included),
#: the final 48-bit prefix add, the rounding decision (normalisation mux, sticky, round bit),
#: the increment and pack.
_LEVEL_NS = 0.45
_ADD_NS = 2.0
_DECIDE_NS = 1.3
_INCREMENT_NS = 2.2


#: carry-save levels of the 24 × 24 significand product (24 partial-product rows)
_LEVELS = tree_levels(_SIG)
#: segments a multiplier pipeline can be cut after: each level, the add, the two rounding
#: steps
_SEGMENTS = _LEVELS + 3


def _segment_bits() -> list[int]:
    """Register bits a cut after each segment costs (rows of the carry-save tree × 48 + the
    exponent/sign side; the product; the rounding fields; the result)."""
    side = 1 + 1 + 2 * _EXT_EXP
    rows, bits = _SIG, []
    for _ in range(_LEVELS):
        rows = 2 * (rows // 3) + rows % 3
        bits.append(rows * _PROD + side)
    return bits + [_PROD + side, _FRAC + 2 * _EXP_BITS + 3, 32]


def fp32_mul_cuts(latency: int) -> tuple[int, ...]:
    """Segments (1-based, of :data:`_SEGMENTS`) a ``latency``-stage multiplier has a register
    after: the last always after the increment, the others minimising the largest estimated
    stage delay, then the register bits. Latency 0: no register."""
    if not 0 <= latency <= _SEGMENTS:
        raise ValueError(f"latency must be 0..{_SEGMENTS}, not {latency}")
    if latency == 0:
        return ()
    delays = [_LEVEL_NS] * _LEVELS + [_ADD_NS, _DECIDE_NS, _INCREMENT_NS]
    bits = _segment_bits()
    best: tuple[float, int, tuple[int, ...]] | None = None
    for inner in itertools.combinations(range(1, _SEGMENTS), latency - 1):
        cuts = (*inner, _SEGMENTS)
        start, worst = 0, 0.0
        for cut in cuts:
            worst = max(worst, sum(delays[start:cut]))
            start = cut
        key = (round(worst, 6), sum(bits[c - 1] for c in cuts), cuts)
        if best is None or key[:2] < best[:2]:
            best = key
    assert best is not None
    return best[2]


class _Datapath:
    """The multiplier's datapath built segment by segment; ``cut(k, values)`` hooks the
    registers (identity for a combinational multiplier)."""

    def __init__(self, m: Module, cut: Callable[[int, dict[str, Value]], dict[str, Value]]
                 ) -> None:
        self.m = m
        self.cut = cut

    def build(self, a: Value, b: Value) -> Value:
        m = self.m
        sign = Signal(name="mul_sign")
        zero = Signal(name="mul_zero")  # an operand is zero (exponent field 0)
        exp = Signal(_EXT_EXP, name="mul_exp")  # ea + eb − 127 (two's complement)
        exp1 = Signal(_EXT_EXP, name="mul_exp1")  # the same + 1 (a product in [2, 4))
        ea = Cat(a[23:31], Const(0, _EXT_EXP - 8))
        eb = Cat(b[23:31], Const(0, _EXT_EXP - 8))
        sum_ab = Signal(_EXT_EXP, name="mul_exp_ab")
        m.d.comb += [
            sign.eq(a[31] ^ b[31]),
            zero.eq(~a[23:31].any() | ~b[23:31].any()),
            sum_ab.eq(_add_equal(ea, eb)),
            exp.eq(_add_equal(sum_ab, _const_bits(-_BIAS, _EXT_EXP))),
            exp1.eq(_add_equal(sum_ab, _const_bits(1 - _BIAS, _EXT_EXP))),
        ]
        side = {"sign": sign, "zero": zero, "exp": exp, "exp1": exp1}
        sig_a, sig_b = Cat(a[:23], 1), Cat(b[:23], 1)

        def level_stage(level: int, rows: Rows) -> Rows:
            got = self.cut(level, {**side, **{f"row{k}": row for k, row in enumerate(rows)}})
            for key in side:
                side[key] = got[key]
            return [got[f"row{k}"] for k in range(len(rows))]

        prod = multiply_unsigned(m, sig_a, sig_b, "mul_sig", stage=level_stage)
        got = self.cut(_LEVELS + 1, {**side, "prod": prod})
        got = self.cut(_LEVELS + 2, self._decide(got))
        return self.cut(_LEVELS + 3, {"result": self._increment(got)})["result"]

    def _decide(self, v: dict[str, Value]) -> dict[str, Value]:
        """Rounding, part 1: the one-bit normalisation, the round-up bit (RNE: round bit and
        (sticky or lsb)) and the exponent field (precomputed e or e + 1 for the two binades).
        Only a product in [1, 2) can round up into the next binade (its field is then e + 1):
        in [2, 4) the largest product (2 − 2^-23)² = 4 − 2^-21 + 2^-46 rounds down to
        4 − 2^-21."""
        m = self.m
        p = v["prod"]
        top = p[_PROD - 1]  # product in [2, 4): shift right by one
        low = Signal(name="mul_sticky_low")
        m.d.comb += low.eq(p[:_FRAC - 1].any())
        frac = Signal(_FRAC, name="mul_frac")
        lsb, rnd, sticky = Signal(name="mul_lsb"), Signal(name="mul_rnd"), Signal(name="mul_st")
        field = Signal(_EXP_BITS, name="mul_field")
        m.d.comb += [
            frac.eq(Mux(top, p[24:47], p[23:46])),
            lsb.eq(Mux(top, p[24], p[23])),
            rnd.eq(Mux(top, p[23], p[22])),
            sticky.eq(low | (top & p[22])),
            field.eq(Mux(top, v["exp1"][:_EXP_BITS], v["exp"][:_EXP_BITS])),
        ]
        round_up = Signal(name="mul_round_up")
        m.d.comb += round_up.eq(rnd & (sticky | lsb))
        return {"sign": v["sign"], "zero": v["zero"], "frac": frac, "field": field,
                "field_up": v["exp1"][:_EXP_BITS], "round_up": round_up}

    def _increment(self, v: dict[str, Value]) -> Value:
        """Rounding, part 2: fraction + round-up (a prefix incrementer); its carry out (an
        all-ones fraction of a product in [1, 2) rounded up to 2: fraction 0) selects the
        exponent field e + 1; pack, zero and sign."""
        m = self.m
        inc = Signal(_FRAC + 1, name="mul_frac_inc")
        m.d.comb += inc.eq(prefix_add(v["frac"], Const(0, _FRAC), v["round_up"]))
        packed = Signal(31, name="mul_packed")
        m.d.comb += packed.eq(Cat(inc[:_FRAC], Mux(inc[_FRAC], v["field_up"], v["field"])))
        result = Signal(32, name="mul_result")
        m.d.comb += result.eq(Cat(Mux(v["zero"], 0, packed), v["sign"]))
        return result


def fp32_mul(m: Module, a: ValueLike, b: ValueLike) -> Value:
    """Build a combinational binary32 RNE multiplier in ``m``; return the product's 32-bit
    pattern (the contract of the module docstring)."""
    operands = Signal(FP32_PAIR, name="mul_operands")
    m.d.comb += [operands.a.eq(a), operands.b.eq(b)]
    return _Datapath(m, lambda _k, values: values).build(operands.a, operands.b)


class FP32Mul(wiring.Component):
    """Streaming binary32 multiplier, RNE (contract: module docstring).

    Datapath: 24 × 24 significand product as a carry-save tree (:data:`_LEVELS` levels of 3:2
    counters), a 48-bit Kogge–Stone add, then the rounding in two steps (one-bit
    normalisation and the RNE round-up bit; a prefix incrementer whose carry out selects the
    precomputed exponent field e + 1, then zero and sign).

    Parameters
    ----------
    latency : int
        Register stages, 0..``MAX_LATENCY`` (default :data:`TENSOR_SCALE_STAGES`), placed by
        :func:`fp32_mul_cuts` (the last after the rounding). Latency 0 is combinational
        (``o.valid`` = ``i.valid``, ``i.ready`` = ``o.ready``). One pair per cycle. The
        stages advance together on one stall enable (``en = ~o.valid | o.ready``, replicated
        per 12 register bits: :class:`rtl.trees.Enables`), so ``i.ready`` depends
        combinationally on ``o.ready``; ``o.valid`` and ``o.payload`` are registers (latency
        ≥ 1) and hold still while stalled.

    Members
    -------
    i : ``In(stream.Signature(FP32_PAIR))``
        ``a``, ``b``: raw binary32 operands (normal or ±0).
    o : ``Out(stream.Signature(32))``
        RNE_fp32(a · b).
    """

    MAX_LATENCY = _SEGMENTS

    def __init__(self, *, latency: int = TENSOR_SCALE_STAGES) -> None:
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
        if self._latency == 0:
            out = fp32_mul(m, self.i.payload.a, self.i.payload.b)
            m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(out),
                         self.i.ready.eq(self.o.ready)]
            return m
        cuts = set(fp32_mul_cuts(self._latency))
        en = Enables(m, self.o.ready)
        m.d.comb += self.i.ready.eq(en.get(Enables.FANOUT))
        valid: list[Value] = [self.i.valid]  # the valid bit of each stage's input, in order

        def cut(k: int, values: dict[str, Value]) -> dict[str, Value]:
            if k not in cuts:
                return values
            valid.append(_register(m, en, valid[-1], f"s{k}_valid", 0))
            return {key: _register(m, en, v, f"s{k}_{key}") for key, v in values.items()}

        operands = self.i.payload
        result = _Datapath(m, cut).build(operands.a, operands.b)
        en.finish(valid[-2])  # what o.valid (the last valid register) loads
        m.d.comb += [self.o.valid.eq(valid[-1]), self.o.payload.eq(result)]
        return m
