"""NVFP4 activation quantizer: FP16 block of 16 → 16 E2M1 codes + E4M3 block scale (SPEC §8).

Bit-exact with golden's NVFP4 (``golden.formats.NVFP4.encode``), every step an FP32 RNE
operation as there:

1. amax_b = max |x_i| (a max tree over the 15-bit FP16 magnitudes);
2. block_scale = RNE_fp32(amax_b / 6);
3. s = E4M3_RNE(clamp(RNE_fp32(block_scale / ts), 2^-6, 448));
4. r = RNE_fp32(inv_ts / s), inv_ts = RNE_fp32(1 / ts) (torchao's twice-rounded reciprocal);
5. code_i = sign_i · E2M1_RNE(min(|RNE_fp32(x_i · r)|, 6)) (sign = the FP16 sign bit, −0 gives 8).

**Tensor scale [ours].** ts = amax/(448·6) is a reduction over the whole tensor that must finish
before its first block can be quantized (a separate amax pass). The quantizer therefore takes
``ts`` and ``inv_ts`` = RNE_fp32(1/ts) as plain inputs from a per-tensor register set; they must
hold still from the transfer of the tensor's first block until its last block has left ``o``.
``ts`` with exponent field 0 (the all-zero tensor, ts = +0) gives codes 0 and scale 0, as golden.

**NaN/Inf [ours].** A block with a lane whose exponent field is 31 (NaN or ±Inf; golden raises,
SPEC §2) leaves with ``invalid`` = 1, codes 0 and scale 0, as the dialect frontend and the MX
quantizer flag it; the output payload (:func:`nvfp4_quantized_block`) is ``nvfp4_block(16)``'s
``codes`` and ``scale`` at the same offsets, then ``invalid``. Every divider register is
reloaded with each block, so an invalid block leaves nothing behind for the next one.

**How each division is exact.**

* ÷ 6: amax_b is an FP16 value M·2^e with an 11-bit integer M (normalised so its top bit is
  set); M·2^17 ÷ 3 by an unrolled long division with a 2-bit remainder (28 tiny steps) gives a
  26–27-bit quotient plus remainder ≠ 0 as sticky — all RNE needs (÷ 2 is an exponent step).
* ÷ s: s = S·2^(E − 10) with a 4-bit integer S ∈ [8, 15] (s ≥ 2^-6 is normal); inv_ts's 24-bit
  significand · 2^6 ÷ S by an unrolled long division with a 4-bit remainder (30 steps of a
  5-bit compare-subtract) gives a 26–27-bit quotient plus sticky.
* ÷ ts (a general FP32 divisor): an iterative restoring divider, ``div_bits`` quotient bits per
  cycle, ⌈25 / div_bits⌉ cycles: 25 quotient bits (24 + round) and the remainder as sticky.

The E4M3 and E2M1 roundings then read the *rounded* FP32 values (double rounding exactly as
golden). The E2M1 step of each lane is an 11 × 24-bit significand product (35 bits), one RNE to
24 bits, and a compare of 4|v| (integer part q ≤ 31, sticky) against the E2M1 midpoints in
quarter units 1 3 5 7 10 14 20 (ties at 3, 7, 14 round up to the even index, the others down).

**Timing** (N = ⌈25 / div_bits⌉ divider iterations): a block accepted in cycle t leaves at ``o``
in cycle t + N + 2 when ``o.ready`` is high (:attr:`NVFP4Quantizer.latency`) and the next block
is accepted in cycle t + N + 1 (:attr:`NVFP4Quantizer.cycles_per_block` = N + 1). Default
``div_bits`` = 5: 6 cycles per block, latency 7. One block in the divider, one in ``o``;
``o.valid``/``o.payload`` are registers that hold still while stalled; ``i.ready`` depends
combinationally on ``o.ready``.

**Widths.** The Verilog is clean under Verilator ``-Wall`` (no width waivers): see the note above
the arithmetic helpers.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.layouts import fp16_block, nvfp4_block
from semdialect.rtl.trees import tree_max

__all__ = ["QUOTIENT_BITS", "NVFP4Quantizer", "nvfp4_quantized_block"]

BLOCK = 16
#: quotient bits of block_scale / ts: 24 significand bits and the round bit
QUOTIENT_BITS = 25
_EXP = 10  # width of the exponents inside: two's complement, |e| < 512 (ranges below ±160)
_E4M3_MIN_CODE = 0x08  # 2^-6
_E4M3_MAX_CODE = 0x7E  # 448
#: E2M1 midpoints in quarter units (4|v|) and whether a tie there rounds up (to the even index)
_E2M1_MIDPOINTS = ((1, False), (3, True), (5, False), (7, True), (10, False), (14, True),
                   (20, False))


def nvfp4_quantized_block(block: int = BLOCK) -> data.StructLayout:
    """The quantizer's output: the fields of :func:`~rtl.layouts.nvfp4_block` at the same
    offsets — ``codes`` (B × 4, E2M1 sign-magnitude) and ``scale`` (8, E4M3 byte) — then
    ``invalid`` (1: the block held NaN/±Inf; codes and scale are then 0). The low
    ``nvfp4_block(B).size`` bits are an :func:`~rtl.layouts.nvfp4_block`."""
    return data.StructLayout({**nvfp4_block(block).members, "invalid": 1})


# -- width-exact arithmetic helpers --------------------------------------------------------------
# Amaranth's Verilog backend drops the constant-zero (or repeated-sign) top bits of every
# arithmetic and comparison operand, so an operand extended with constant bits reaches Verilog
# narrower than the other one (Verilator -Wall WIDTHEXPAND). Every operator below therefore
# gets operands of one width whose top bits are not constant: exponents are _EXP-bit two's
# complement values combined modulo 2^_EXP, constants are added as whichever of k and
# k − 2^_EXP has its top bit set, narrow operands are either single bits or one's
# complements (−1 − x, a full-width value), and comparisons with small constants are adds
# with a carry out or case tables.


def _add_const(value: Value, k: int) -> Value:
    """``value`` + ``k`` modulo 2^len(value), the constant operand full width."""
    width = len(value)
    k %= 1 << width
    if k == 0:
        return value
    if k >> (width - 1):
        return (value + k)[:width]
    return (value - ((1 << width) - k))[:width]


def _ge_const(value: Value, k: int) -> Value:
    """``value`` ≥ ``k`` (unsigned), the constant operand full width (a carry out when ``k``
    is below half the range)."""
    width = len(value)
    assert 0 < k < 1 << width
    if k >> (width - 1):
        return value >= k
    return (value + ((1 << width) - k))[width]


def _ones_complement(m: Module, value: Value, name: str) -> Signal:
    """−1 − ``value`` as an _EXP-bit two's complement value (``value`` unsigned, < 2^(_EXP−1))."""
    out = Signal(_EXP, name=name)
    m.d.comb += out.eq(~Cat(value, Const(0, _EXP - len(value))))
    return out


def _div3(m: Module, dividend: Value, name: str) -> tuple[Signal, Signal]:
    """Unrolled long division of unsigned ``dividend`` by 3: (quotient, remainder ≠ 0). The
    remainder r ∈ {0, 1, 2} and each step's trial t = 2r + bit ∈ [0, 5] are bitwise logic:
    t ≥ 3 ⟺ t2 | t1·t0, and t − 3 maps 3, 4, 5 to 0, 1, 2."""
    r1: Value = Const(0, 1)
    r0: Value = Const(0, 1)
    bits = []
    for k in reversed(range(len(dividend))):
        t2, t1, t0 = r1, r0, dividend[k]
        take = Signal(name=f"{name}_q{k}")
        n1 = Signal(name=f"{name}_r{k}_1")
        n0 = Signal(name=f"{name}_r{k}_0")
        m.d.comb += [
            take.eq(t2 | (t1 & t0)),
            n1.eq(Mux(take, t2 & t0, t1)),
            n0.eq(Mux(take, t2 & ~t0, t0)),
        ]
        bits.append(take)
        r1, r0 = n1, n0
    quotient = Signal(len(dividend), name=f"{name}_q")
    m.d.comb += quotient.eq(Cat(*reversed(bits)))
    sticky = Signal(name=f"{name}_sticky")
    m.d.comb += sticky.eq(r1 | r0)
    return quotient, sticky


def _div_small(m: Module, sig: Value, divisor: Value, low: int, name: str
               ) -> tuple[Signal, Signal]:
    """Unrolled long division of ``sig`` · 2^``low`` by ``divisor`` = 1ddd ∈ [8, 15]:
    (quotient, remainder ≠ 0). ``sig``'s top bit is 1, so its top three bits (4..7) are
    below the divisor: they preload the 4-bit remainder (quotient bits 0). Each step's 5-bit
    trial t < 2·divisor; t ≥ divisor ⟺ t4 | (t[:4] ≥ divisor), and then t − divisor < 16 is
    (t[:4] − divisor) mod 16."""
    dividend = Cat(Const(0, low), sig)
    width = len(dividend)
    assert len(divisor) == 4
    rem: Value = Cat(dividend[width - 3:], Const(0, 1))
    bits: list[Value] = [Const(0, 1)] * 3
    for k in reversed(range(width - 3)):
        trial = Cat(dividend[k], rem)
        take = Signal(name=f"{name}_q{k}")
        diff = Signal(4, name=f"{name}_d{k}")
        nxt = Signal(4, name=f"{name}_r{k}")
        m.d.comb += [
            take.eq(trial[4] | (trial[:4] >= divisor)),
            diff.eq((trial[:4] - divisor)[:4]),
            nxt.eq(Mux(take, diff, trial[:4])),
        ]
        bits.append(take)
        rem = nxt
    quotient = Signal(width, name=f"{name}_q")
    m.d.comb += quotient.eq(Cat(*reversed(bits)))
    sticky = Signal(name=f"{name}_sticky")
    m.d.comb += sticky.eq(rem.any())
    return quotient, sticky


def _round24(m: Module, quotient: Value, sticky: Value, name: str
             ) -> tuple[Signal, Value, Signal]:
    """RNE of a 26- or 27-bit ``quotient`` (top bit at 26 or 25) plus ``sticky`` to a 24-bit
    significand with its top bit set: (significand, top, carry); the exponent relative to a
    top bit at 25 grows by top + carry (0..2)."""
    assert len(quotient) == 27
    top = quotient[26]
    sig = Signal(24, name=f"{name}_sig")
    rnd = Signal(name=f"{name}_rnd")
    st = Signal(name=f"{name}_st")
    m.d.comb += [
        sig.eq(Mux(top, quotient[3:27], quotient[2:26])),
        rnd.eq(Mux(top, quotient[2], quotient[1])),
        st.eq(Mux(top, quotient[:2].any(), quotient[0]) | sticky),
    ]
    out, carry = _rne(m, sig, rnd, st, name)
    return out, top, carry


def _rne(m: Module, sig: Value, rnd: Value, sticky: Value, name: str) -> tuple[Signal, Signal]:
    """RNE of a 24-bit significand with round and sticky bits: (rounded significand with its top
    bit set, carry: 1 if rounding carried out — the significand is then 1.0, the exponent
    grows by one)."""
    up = rnd & (sticky | sig[0])
    total = Signal(25, name=f"{name}_sum")
    m.d.comb += total.eq(sig + up)
    out = Signal(24, name=f"{name}_rounded")
    m.d.comb += out.eq(Mux(total[24], 1 << 23, total[:24]))
    return out, total[24]


def _fp16_normalised(m: Module, x: Value, name: str) -> tuple[Signal, Signal, Signal]:
    """(M, e, zero) of an FP16 magnitude (15 bits): |x| = M · 2^(e − 10), M an 11-bit integer
    with its top bit set (subnormals normalised by a priority chain over their fraction bits),
    e an _EXP-bit two's complement value; zero = 1 for ±0 (then M = 0)."""
    exp5 = x[10:15]
    mant = Signal(11, name=f"{name}_m")
    exp = Signal(_EXP, name=f"{name}_e")
    # normal: e = exp5 − 15 ∈ [−14, 15] (exp5 = 31, NaN/Inf, wraps: don't care), as a 5-bit
    # two's complement value (exp5 + 17 mod 32) sign-extended; subnormal with top fraction bit
    # b: M = f << (10 − b), e = −14 − (10 − b) = b − 24
    with m.If(exp5.any()):
        m.d.comb += [
            mant.eq(Cat(x[:10], 1)),
            exp.eq(_add_const(exp5, 17).as_signed()),
        ]
    for b in reversed(range(10)):
        with m.Elif(x[b]):
            m.d.comb += [
                mant.eq(Cat(Const(0, 10 - b), x[: b + 1])),
                exp.eq((b - 24) & ((1 << _EXP) - 1)),
            ]
    with m.Else():
        m.d.comb += [mant.eq(0), exp.eq(0)]
    zero = Signal(name=f"{name}_zero")
    m.d.comb += zero.eq(~x[:15].any())
    return mant, exp, zero


def _e2m1_index(m: Module, q: Value, frac: Value, name: str) -> Signal:
    """E2M1 magnitude index (RNE, saturating) of 4|v| = q + f, q ∈ [0, 31], f ∈ [0, 1) with
    ``frac`` = (f ≠ 0): the number of midpoints below 4|v|, a tie counting when it rounds up.
    On y = 2q + frac (6 bits): 4|v| > mid ⟺ y ≥ 2·mid + 1, 4|v| ≥ mid ⟺ y ≥ 2·mid."""
    y = Cat(frac, q)
    terms = [_ge_const(y, 2 * mid + (0 if tie_up else 1)) for mid, tie_up in _E2M1_MIDPOINTS]
    index = Signal(3, name=f"{name}_idx")
    m.d.comb += index.eq(sum(terms[1:], terms[0]))
    return index


class NVFP4Quantizer(wiring.Component):
    """NVFP4 block quantizer (module docstring: arithmetic, exactness, timing).

    Parameters
    ----------
    div_bits : int
        Quotient bits of the ÷ ts divider per cycle, 1..25 (default 5): N = ⌈25 / div_bits⌉
        iterations, :attr:`cycles_per_block` = N + 1, :attr:`latency` = N + 2.

    Members
    -------
    i : ``In(stream.Signature(fp16_block(16)))``
        ``x``: 16 FP16 bit patterns (element i at [16i, 16i + 16)).
    o : ``Out(stream.Signature(nvfp4_quantized_block(16)))``
        ``codes`` (16 × 4, bit 3 sign) and ``scale`` (E4M3 byte) at the offsets of
        ``nvfp4_block(16)``, then ``invalid`` (1: the block held NaN/±Inf; codes and scale 0).
    ts : ``In(32)``
        The tensor scale, binary32 (normal, or +0 for an all-zero tensor).
    inv_ts : ``In(32)``
        RNE_fp32(1 / ts), binary32 (ignored when ts = 0).
    """

    def __init__(self, *, div_bits: int = 5) -> None:
        if isinstance(div_bits, bool) or not isinstance(div_bits, int) or not (
                1 <= div_bits <= QUOTIENT_BITS):
            raise ValueError(f"div_bits: must be 1..{QUOTIENT_BITS}, got {div_bits!r}")
        self._div_bits = div_bits
        super().__init__({
            "i": In(stream.Signature(fp16_block(BLOCK))),
            "o": Out(stream.Signature(nvfp4_quantized_block(BLOCK))),
            "ts": In(32),
            "inv_ts": In(32),
        })

    @property
    def div_bits(self) -> int:
        return self._div_bits

    @property
    def iterations(self) -> int:
        """N = ⌈25 / div_bits⌉ divider cycles per block."""
        return math.ceil(QUOTIENT_BITS / self._div_bits)

    @property
    def cycles_per_block(self) -> int:
        """Initiation interval: one block every N + 1 cycles."""
        return self.iterations + 1

    @property
    def latency(self) -> int:
        """Cycles from a block's transfer at ``i`` to its output at ``o``: N + 2."""
        return self.iterations + 2

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n_iter = self.iterations
        qbits = n_iter * self._div_bits  # quotient bits produced (≥ 25; extras are sticky)

        # -- tensor scale: significand and −1 − (exponent field) of ts -------------------------
        ts_sig = Cat(self.ts[:23], 1)
        ts_zero = Signal(name="ts_zero")
        m.d.comb += ts_zero.eq(~self.ts[23:31].any())
        ts_field_n = _ones_complement(m, self.ts[23:31], "ts_field_n")

        # -- load: amax, block_scale = RNE(amax / 6), divider set-up (combinational on i) ----
        x_in = self.i.payload.x
        invalid = Signal(name="invalid")  # some lane's exponent field is 31: NaN or ±Inf
        m.d.comb += invalid.eq(Cat(x_in[k][10:15].all() for k in range(BLOCK)).any())
        amax = tree_max([x_in[k][:15] for k in range(BLOCK)])
        a_m, a_e, a_zero = _fp16_normalised(m, amax, "amax")
        q3, st3 = _div3(m, Cat(Const(0, 17), a_m), "div3")
        bs_sig, bs_top, bs_carry = _round24(m, q3[:27], st3, "bs")
        # amax = a_m · 2^(a_e − 10); block_scale = q3 · 2^(a_e − 10 − 17 − 1) with q3's top bit
        # at 25 (+ bs_top + bs_carry): unbiased exponent bs_exp = a_e − 3 + bs_top + bs_carry.
        # t = bs / ts = (bs_sig / ts_sig) · 2^(bs_exp − (ts_field − 127)): pre-shift so the
        # quotient is in [1, 2), t_exp = bs_exp − ts_field + 127 − small
        #       = a_e + (−1 − ts_field) + 125 + bs_top + bs_carry − small
        small = Signal(name="div_small")
        m.d.comb += small.eq(bs_sig < ts_sig)
        t_exp_in = Signal(_EXP, name="t_exp_in")
        m.d.comb += t_exp_in.eq(
            ((_add_const((a_e + ts_field_n)[:_EXP], 125) + bs_top)[:_EXP] + bs_carry - small)
            [:_EXP])

        busy = Signal()
        count = Signal(range(n_iter + 1))
        xreg = Signal.like(x_in, name="xreg")
        blk_zero = Signal()
        blk_invalid = Signal()
        rem = Signal(25)  # partial remainder (< 2 · ts_sig)
        quot = Signal(qbits)
        t_exp = Signal(_EXP)

        done = Signal()
        o_load = Signal()
        m.d.comb += [
            done.eq(busy & ~count.any()),
            o_load.eq(done & (~self.o.valid | self.o.ready)),
            self.i.ready.eq(~busy | o_load),
        ]

        # -- divider iteration: div_bits restoring steps per cycle -----------------------------
        # r < 2 · ts_sig: r ≥ ts_sig ⟺ r24 | (r[:24] ≥ ts_sig), and then r − ts_sig < 2^24 is
        # (r[:24] − ts_sig) mod 2^24
        r: Value = rem
        q: Value = quot
        for step in range(self._div_bits):
            ge = Signal(name=f"div_ge{step}")
            diff = Signal(24, name=f"div_diff{step}")
            m.d.comb += [
                ge.eq(r[24] | (r[:24] >= ts_sig)),
                diff.eq(Mux(ge, (r[:24] - ts_sig)[:24], r[:24])),
            ]
            nr = Signal(25, name=f"div_rem{step}")
            m.d.comb += nr.eq(Cat(Const(0, 1), diff))  # diff < ts_sig < 2^24
            nq = Signal(qbits, name=f"div_quot{step}")
            m.d.comb += nq.eq(Cat(ge, q[:-1]))
            r, q = nr, nq

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                busy.eq(1),
                count.eq(n_iter),
                xreg.eq(x_in),
                blk_zero.eq(a_zero),
                blk_invalid.eq(invalid),
                rem.eq(Mux(small, Cat(Const(0, 1), bs_sig), bs_sig)),
                quot.eq(0),
                t_exp.eq(t_exp_in),
            ]
        with m.Elif(o_load):
            m.d.sync += busy.eq(0)
        with m.Elif(busy & count.any()):
            m.d.sync += [rem.eq(r), quot.eq(q), count.eq(count - 1)]

        # -- final stage (combinational from the divider registers) ---------------------------
        # t = quot · 2^(t_exp − (qbits − 1)); RNE to 24 bits, then clamp and E4M3 RNE
        t_sig, t_carry = _rne(m, quot[qbits - 24:], quot[qbits - 25],
                              quot[: qbits - 25].any() | rem.any() if qbits > 25 else rem.any(),
                              "t")
        te = Signal(_EXP, name="t_exp_rounded")  # t = 1.f · 2^te, two's complement
        m.d.comb += te.eq((t_exp + t_carry)[:_EXP])
        e4m3 = Signal(7, name="e4m3_rounded")  # E4M3 RNE for te ∈ [−6, 8] (field te + 7)
        m.d.comb += e4m3.eq((Cat(t_sig[20:23], _add_const(te, 7)[:4])
                             + (t_sig[19] & (t_sig[:19].any() | t_sig[20])))[:7])
        s_code = Signal(7, name="s_code")
        with m.If(blk_zero):
            m.d.comb += s_code.eq(_E4M3_MIN_CODE)
        with m.Else():
            with m.Switch(te):
                for e in range(-6, 9):
                    with m.Case(e & ((1 << _EXP) - 1)):
                        if e == 8:  # t ≥ 2^8: t > 448 clamps to 448
                            m.d.comb += s_code.eq(Mux(t_sig > 0xE00000, _E4M3_MAX_CODE, e4m3))
                        else:
                            m.d.comb += s_code.eq(e4m3)
                with m.Default():  # te < −6 (sign bit set): clamp to 2^−6; te > 8: to 448
                    m.d.comb += s_code.eq(Mux(te[-1], _E4M3_MIN_CODE, _E4M3_MAX_CODE))

        # r = RNE(inv_ts / s): s = S · 2^(E − 10), S = 1mmm ∈ [8, 15], E = s_code[3:7] ∈ [1, 15]
        s_sig = Cat(s_code[:3], 1)
        inv_sig = Cat(self.inv_ts[:23], 1)
        qs, st_s = _div_small(m, inv_sig, s_sig, 6, "divs")
        r_sig, r_top, r_carry = _round24(m, qs[:27], st_s, "recip")
        # inv_sig·2^6 / S with top bit at 25 means r ≈ 2^(inv_exp − E + 6) with
        # inv_exp = inv_field − 127: r_exp = (−1 − E) − (−1 − inv_field) − 121 + top + carry
        s_exp_n = _ones_complement(m, s_code[3:7], "s_exp_n")
        inv_field_n = _ones_complement(m, self.inv_ts[23:31], "inv_field_n")
        r_exp = Signal(_EXP, name="recip_exp")
        m.d.comb += r_exp.eq(
            ((_add_const((s_exp_n - inv_field_n)[:_EXP], -121) + r_top)[:_EXP] + r_carry)
            [:_EXP])

        # lanes: v = RNE_fp32(x · r), E2M1 of min(|v|, 6)
        codes = []
        for k in range(BLOCK):
            xv = xreg[k]
            x_m, x_e, x_zero = _fp16_normalised(m, xv[:15], f"x{k}")
            prod = Signal(35, name=f"lane{k}_prod")  # in [2^33, 2^35)
            m.d.comb += prod.eq(x_m * r_sig)
            top = prod[34]
            v_sig, v_carry = _rne(
                m, Mux(top, prod[11:35], prod[10:34]), Mux(top, prod[10], prod[9]),
                Mux(top, prod[:10].any(), prod[:9].any()), f"lane{k}")
            v_exp = Signal(_EXP, name=f"lane{k}_exp")  # |v| = 1.f · 2^v_exp
            m.d.comb += v_exp.eq((((x_e + r_exp)[:_EXP] + top)[:_EXP] + v_carry)[:_EXP])
            # 4|v| = v_sig · 2^(v_exp − 21): for v_exp ∈ [−2, 2] shift right by 21 − v_exp
            qv = Signal(5, name=f"lane{k}_q")
            fv = Signal(name=f"lane{k}_f")
            with m.If(x_zero):
                m.d.comb += [qv.eq(0), fv.eq(0)]
            with m.Else():
                with m.Switch(v_exp):
                    for e in range(-2, 3):
                        with m.Case(e & ((1 << _EXP) - 1)):
                            sh = 21 - e
                            m.d.comb += [qv.eq(v_sig[sh:]), fv.eq(v_sig[:sh].any())]
                    with m.Default():  # v_exp < −2 (sign bit set): below 1/4; > 2: ≥ 8
                        m.d.comb += [qv.eq(Mux(v_exp[-1], 0, 31)), fv.eq(1)]
            index = _e2m1_index(m, qv, fv, f"lane{k}")
            codes.append(Cat(index, xv[15]))

        with m.If(o_load):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.invalid.eq(blk_invalid)]
            with m.If(ts_zero | blk_invalid):
                m.d.sync += [self.o.payload.codes.eq(0), self.o.payload.scale.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.codes[k].eq(codes[k]) for k in range(BLOCK)]
                m.d.sync += self.o.payload.scale.eq(s_code)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
