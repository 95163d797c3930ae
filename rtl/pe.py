"""Block dot-product PE (SPEC §5 MAC contract, SPEC §8 MXFP4/MXINT8 GEMM contracts).

One generator, three element kinds (:class:`~rtl.block_decoder.ElementKind`): dialect
formats, MXFP4 and MXINT8. Per block pair (a, w) of the same k-block the PE computes the exact
signed integer P = Σ_i a_i · w_i, its exact FP32 value P · 2^(exp_a + exp_w) (P = 0 gives
+0.0), and accumulates it with the FP32 round-to-nearest-even adder
(:func:`rtl.fp32_add.fp32_add`) in arrival order starting from +0.0. The caller sends the
pairs of one output in ascending k-block order and flags the last one; the PE then presents
the sum and restarts from +0.0 with the next pair.

Pipeline (three register stages, all advanced by one enable)::

    i ─► [decode] ─► B products ─► adder tree ─► P, exp ═► P·2^exp → FP32 ═► acc ← acc + c ═► o
         (decode=True only)       (stage 1 register)      (stage 2 register)  (stage 3: acc)

Widths: elements signed 5 (±HU) or 8 (int8); products signed 10 or 16; P signed
``kind.product_bits`` (|P| ≤ B·max_element²: 13/14/15 bits for dialect B = 16/32/64, 14 for
MXFP4, 21 for MXINT8 — always < 2^24, so the FP32 conversion is exact); exponents are the
unsigned biased fields (5-bit SE + 16, 8-bit E8M0), added modulo 256 in an 8-bit register;
both operands' offsets (:attr:`~rtl.block_decoder.ElementKind.exp_offset`) fold into one
constant of the FP32 exponent computation.

**Exponent range [precondition].** The conversion is exact when P = 0 or the result is a
normal FP32 number. Every block that golden can produce from FP16 data satisfies this: the
contribution exponent is SE_a + SE_w − 2 ∈ [−34, 24] for dialect blocks, e_a + e_w − 2 ∈
[−54, 24] for MXFP4 and e_a + e_w − 12 ∈ [−60, 18] for MXINT8 (nonzero MX blocks have
e ∈ [−26, 15]; an all-zero MX block has scale byte 0, e = −127, but then P = 0). For other
scale bytes (e.g. hand-made E8M0 extremes near 0 or 254) the output is unspecified: no
subnormal or overflow handling is built. With FP16 inputs no FP32 subnormal or overflow can
occur in the accumulator either (SPEC §5).

**Signed zeros.** P = 0 always gives +0.0, whatever the element signs. The reference's
running sum starts from +0.0 and x + (−0) = x for every x reachable from +0.0 (RNE), so the
sign of a zero contribution never shows in any output bit.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.block_decoder import BlockDecoder, ElementKind
from semdialect.rtl.fp32_add import fp32_add
from semdialect.rtl.layouts import FP32_RESULT, pe_operands
from semdialect.rtl.timing import PE_LATENCY
from semdialect.rtl.trees import shift_left, tree_reduce

__all__ = ["BlockPE"]

_FP32_FRAC = 23
_FP32_BIAS = 127
_FP32_EXP = 8



def int_to_fp32(m: Module, p: Value, exp_sum: Value, offset: int) -> Value:
    """Combinational: the binary32 pattern of the signed integer ``p`` times 2^(``exp_sum`` −
    ``offset``), ``exp_sum`` an 8-bit unsigned register (the two operands' biased exponent
    fields added, modulo 256).

    Exact for ``len(p)`` ≤ 24 when the result is 0 (gives +0.0) or a normal number (the
    module docstring's precondition). Leading-zero count, normalising left shift (mux chain),
    exponent field ``exp_sum − offset + 127 + msb`` computed modulo 256 (only in-range
    results are specified, and those are exact modulo 256).
    """
    width = len(p)
    if width > _FP32_FRAC + 1:
        raise ValueError(f"p: at most 24 bits convert exactly, got {width}")
    neg = p[-1]
    mag = Signal(width, name="p_mag")  # |p|; |−2^(width−1)| still fits in width bits
    m.d.comb += mag.eq(Mux(neg, -p, p))
    # leading-zero count 0..width, kept 8 bits wide for the exponent arithmetic below
    lzc = Signal(_FP32_EXP, name="p_lzc")
    m.d.comb += lzc.eq(width)
    for bit in range(width):  # later (more significant) bits win
        with m.If(mag[bit]):
            m.d.comb += lzc.eq(width - 1 - bit)
    norm = shift_left(m, mag, lzc[: width.bit_length()], "p_norm")  # leading one at top

    # biased exponent field = exp_sum + k − lzc (mod 256), k = 127 + (width − 1) − offset;
    # the constant is added as k or subtracted as 256 − k, whichever has its top bit set, so
    # every operand is a full 8 bits wide
    if len(exp_sum) != _FP32_EXP:
        raise ValueError(f"exp_sum: must be {_FP32_EXP} bits wide, got {len(exp_sum)}")
    k = (_FP32_BIAS + width - 1 - offset) % (1 << _FP32_EXP)
    exp8 = exp_sum
    shifted_exp = Signal(_FP32_EXP, name="exp_const")
    biased = Signal(_FP32_EXP, name="p_biased_exp")
    if k == 0:
        m.d.comb += shifted_exp.eq(exp8)
    elif k >> (_FP32_EXP - 1):
        m.d.comb += shifted_exp.eq(exp8 + Const(k, _FP32_EXP))
    else:
        m.d.comb += shifted_exp.eq(exp8 - Const((1 << _FP32_EXP) - k, _FP32_EXP))
    m.d.comb += biased.eq(shifted_exp - lzc)

    fraction = Cat(Const(0, _FP32_FRAC + 1 - width), norm)[:_FP32_FRAC]
    result = Signal(32, name="p_fp32")
    m.d.comb += result.eq(Mux(mag.any(), Cat(fraction, biased, neg), 0))
    return result


class BlockPE(wiring.Component):
    """Accumulating block dot-product PE (see the module docstring).

    **Latency 3**: the last pair of an accumulation accepted in cycle t (``i.valid & i.ready``)
    has its sum at ``o`` in cycle t + 3. **Throughput 1 pair/cycle.** Back-pressure: the
    pipeline advances only when ``o`` is empty or read (``en = ~o.valid | o.ready``,
    ``i.ready = en``, so ``i.ready`` depends combinationally on ``o.ready``); ``o.valid`` and
    ``o.payload`` are registers and hold still while stalled. Storage: P (``product_bits``)
    and exponent-field sum (8), an FP32 addend, the FP32 accumulator, valid/last/invalid
    bits per stage and a ``fresh`` bit (next pair starts from +0.0).

    Parameters
    ----------
    kind : ElementKind
        Any PE kind of the registry: ``ElementKind.for_design(PEKind.DIALECT, B,
        formatbook)``, ``ElementKind.for_design(PEKind.MXFP4)``, …
    decode : bool
        True (default): operands are quantized blocks (``kind.encoded_layout``) decoded by two
        :class:`~rtl.block_decoder.BlockDecoder` inside the PE. False: operands are already
        decoded (``kind.decoded_layout``), as in :class:`~rtl.mac_array.MACArray`, which
        decodes each row's and column's block once and broadcasts the integers.

    Members
    -------
    i : ``In(stream.Signature(pe_operands(operand)))``
        ``a``, ``w`` (one block pair of one k-block) and ``last`` (1 = the last k-block).
    o : ``Out(stream.Signature(FP32_RESULT))``
        ``value`` (binary32 accumulated sum) and ``invalid`` (some operand block of the
        accumulation had its ``invalid`` flag set; SPEC §2).
    """

    LATENCY = PE_LATENCY

    def __init__(self, kind: ElementKind, *, decode: bool = True) -> None:
        if not isinstance(kind, ElementKind):
            raise ValueError(f"kind: expected an ElementKind, got {kind!r}")
        if not isinstance(decode, bool):
            raise ValueError(f"decode: expected a bool, got {decode!r}")
        if kind.product_bits > _FP32_FRAC + 2:  # sign + 24 magnitude bits
            raise ValueError(f"kind: block products of {kind.product_bits} bits are not exact")
        self._kind = kind
        self._decode = decode
        operand = kind.encoded_layout if decode else kind.decoded_layout
        super().__init__({
            "i": In(stream.Signature(pe_operands(operand))),
            "o": Out(stream.Signature(FP32_RESULT)),
        })

    @property
    def kind(self) -> ElementKind:
        return self._kind

    @property
    def decode(self) -> bool:
        return self._decode

    @property
    def latency(self) -> int:
        """Cycles from accepting the last pair to presenting the sum: 3."""
        return self.LATENCY

    def elaborate(self, platform: object) -> Module:
        m = Module()
        kind = self._kind
        payload = self.i.payload
        if self._decode:
            m.submodules.dec_a = dec_a = BlockDecoder(kind)
            m.submodules.dec_w = dec_w = BlockDecoder(kind)
            m.d.comb += [dec_a.i.eq(payload.a), dec_w.i.eq(payload.w)]
            a, w = dec_a.o, dec_w.o
        else:
            a, w = payload.a, payload.w

        en = Signal()
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
        ]

        # stage 1: exact block product and exponent sum
        product = tree_reduce(
            [a.elems[i] * w.elems[i] for i in range(kind.block)], operator.add
        )
        s1_valid = Signal()
        s1_last = Signal()
        s1_invalid = Signal()
        s1_p = Signal(signed(kind.product_bits))
        s1_exp = Signal(_FP32_EXP)  # exp_a + exp_w (biased fields), modulo 256
        with m.If(en):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1_last.eq(payload.last),
                s1_invalid.eq(a.invalid | w.invalid),
                s1_p.eq(product),
                s1_exp.eq(a.exp + w.exp),
            ]

        # stage 2: exact conversion P · 2^exp → binary32
        contribution = int_to_fp32(m, s1_p, s1_exp, 2 * kind.exp_offset)
        s2_valid = Signal()
        s2_last = Signal()
        s2_invalid = Signal()
        s2_value = Signal(32)
        with m.If(en):
            m.d.sync += [
                s2_valid.eq(s1_valid),
                s2_last.eq(s1_last),
                s2_invalid.eq(s1_invalid),
                s2_value.eq(contribution),
            ]

        # stage 3: FP32 RNE accumulation from +0.0 (one addition per cycle)
        fresh = Signal(init=1)  # the next pair starts a new accumulation
        acc = self.o.payload.value
        acc_invalid = self.o.payload.invalid
        total = fp32_add(m, Mux(fresh, 0, acc), s2_value)
        with m.If(en):
            m.d.sync += self.o.valid.eq(s2_valid & s2_last)
            with m.If(s2_valid):
                m.d.sync += [
                    acc.eq(total),
                    acc_invalid.eq((acc_invalid & ~fresh) | s2_invalid),
                    fresh.eq(s2_last),
                ]
        return m
