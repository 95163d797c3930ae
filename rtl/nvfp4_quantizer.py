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
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.layouts import fp16_block, nvfp4_block
from semdialect.rtl.trees import tree_max

__all__ = ["NVFP4Quantizer", "QUOTIENT_BITS"]

BLOCK = 16
#: quotient bits of block_scale / ts: 24 significand bits and the round bit
QUOTIENT_BITS = 25
_EXP = 10  # signed width of the unbiased exponents inside (ranges below ±160)
_E4M3_MIN_CODE = 0x08  # 2^-6
_E4M3_MAX_CODE = 0x7E  # 448
#: E2M1 midpoints in quarter units (4|v|) and whether a tie there rounds up (to the even index)
_E2M1_MIDPOINTS = ((1, False), (3, True), (5, False), (7, True), (10, False), (14, True),
                   (20, False))


def _const_or_signal_divide(m: Module, dividend: Value, divisor: Value | int, rem_bits: int,
                            name: str) -> tuple[Signal, Signal]:
    """Unrolled restoring long division of unsigned ``dividend`` by a small divisor (a
    constant or a ``rem_bits``-bit Value): (quotient, remainder ≠ 0)."""
    width = len(dividend)
    rem: Value = Const(0, rem_bits)
    bits = []
    for k in reversed(range(width)):
        trial = Signal(rem_bits + 1, name=f"{name}_t{k}")
        m.d.comb += trial.eq(Cat(dividend[k], rem))
        take = trial >= divisor
        nxt = Signal(rem_bits, name=f"{name}_r{k}")
        m.d.comb += nxt.eq(Mux(take, trial - divisor, trial))
        bits.append(take)
        rem = nxt
    quotient = Signal(width, name=f"{name}_q")
    m.d.comb += quotient.eq(Cat(*reversed(bits)))
    sticky = Signal(name=f"{name}_sticky")
    m.d.comb += sticky.eq(rem.any())
    return quotient, sticky


def _round24(m: Module, quotient: Value, sticky: Value, name: str) -> tuple[Signal, Signal]:
    """RNE of a 26- or 27-bit ``quotient`` (top bit at 26 or 25) plus ``sticky`` to a 24-bit
    significand with its top bit set: (significand, exponent increment 0..2 relative to a top bit
    at 25)."""
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
    return _rne(m, sig, rnd, st, top, name)


def _rne(m: Module, sig: Value, rnd: Value, sticky: Value, inc: Value,
         name: str) -> tuple[Signal, Signal]:
    """RNE of a 24-bit significand with round and sticky bits: (rounded significand with its top
    bit set, ``inc`` + 1 if rounding carried out — then the significand is 1.0)."""
    up = rnd & (sticky | sig[0])
    total = Signal(25, name=f"{name}_sum")
    m.d.comb += total.eq(sig + up)
    out = Signal(24, name=f"{name}_rounded")
    bump = Signal(2, name=f"{name}_inc")
    m.d.comb += [
        out.eq(Mux(total[24], 1 << 23, total[:24])),
        bump.eq(inc + total[24]),
    ]
    return out, bump


def _fp16_normalised(m: Module, x: Value, name: str) -> tuple[Signal, Signal, Signal]:
    """(M, e, zero) of an FP16 magnitude: |x| = M · 2^(e − 10), M an 11-bit integer with its top
    bit set (subnormals normalised), e signed; zero = 1 for ±0."""
    exp5 = x[10:15]
    raw = Signal(11, name=f"{name}_raw")
    m.d.comb += raw.eq(Cat(x[:10], exp5.any()))
    lzc = Signal(range(12), name=f"{name}_lzc")
    m.d.comb += lzc.eq(11)
    for bit in range(11):
        with m.If(raw[bit]):
            m.d.comb += lzc.eq(10 - bit)
    mant = Signal(11, name=f"{name}_m")
    m.d.comb += mant.eq((raw << lzc)[:11])
    exp = Signal(signed(_EXP), name=f"{name}_e")
    # normal: |x| = raw · 2^(exp5 − 25) = raw · 2^((exp5 − 15) − 10); subnormal: exp5 := 1
    m.d.comb += exp.eq(Mux(exp5.any(), exp5, 1) - 15 - lzc)
    zero = Signal(name=f"{name}_zero")
    m.d.comb += zero.eq(~raw.any())
    return mant, exp, zero


def _e2m1_index(m: Module, q: Value, frac: Value) -> Value:
    """E2M1 magnitude index (RNE, saturating) of 4|v| = q + f, q ∈ [0, 31], f ∈ [0, 1) with
    ``frac`` = (f ≠ 0): the number of midpoints below 4|v|, a tie counting when it rounds up."""
    terms = []
    for mid, tie_up in _E2M1_MIDPOINTS:
        terms.append((q >= mid) if tie_up else ((q > mid) | ((q == mid) & frac)))
    index = Signal(3, name="e2m1_idx")
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
        ``x``: 16 FP16 bit patterns (finite; element i at [16i, 16i + 16)).
    o : ``Out(stream.Signature(nvfp4_block(16)))``
        ``codes`` (16 × 4, bit 3 sign) and ``scale`` (E4M3 byte).
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
            "o": Out(stream.Signature(nvfp4_block(BLOCK))),
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

        # -- tensor scale: significand and unbiased exponent of ts (and of inv_ts below) ------
        ts_sig = Cat(self.ts[:23], 1)
        ts_exp = Signal(signed(_EXP), name="ts_exp")
        ts_zero = Signal(name="ts_zero")
        m.d.comb += [
            ts_exp.eq(self.ts[23:31] - 127),
            ts_zero.eq(~self.ts[23:31].any()),
        ]

        # -- load: amax, block_scale = RNE(amax / 6), divider set-up (combinational on i) ----
        x_in = self.i.payload.x
        amax = tree_max([x_in[k][:15] for k in range(BLOCK)])
        a_m, a_e, a_zero = _fp16_normalised(m, amax, "amax")
        q3, st3 = _const_or_signal_divide(m, Cat(Const(0, 17), a_m), 3, 2, "div3")
        bs_sig, bs_inc = _round24(m, q3[:27], st3, "bs")
        # amax = a_m · 2^(a_e − 10); a_m·2^17/3 with top bit at 25 is ≈ 2^25 · a_m / (3·2^10)...
        # block_scale = q3 · 2^(a_e − 10 − 17 − 1) → unbiased exponent a_e − 28 + 25 + inc
        bs_exp = Signal(signed(_EXP), name="bs_exp")
        m.d.comb += bs_exp.eq(a_e - 3 + bs_inc)
        # t = bs / ts = (bs_sig / ts_sig) · 2^(bs_exp − ts_exp): pre-shift so the quotient is in
        # [1, 2)
        small = Signal(name="div_small")
        m.d.comb += small.eq(bs_sig < ts_sig)

        busy = Signal()
        count = Signal(range(n_iter + 1))
        xreg = Signal.like(x_in, name="xreg")
        blk_zero = Signal()
        rem = Signal(25)  # partial remainder (< 2 · ts_sig)
        quot = Signal(qbits)
        t_exp = Signal(signed(_EXP))

        done = Signal()
        o_load = Signal()
        m.d.comb += [
            done.eq(busy & (count == 0)),
            o_load.eq(done & (~self.o.valid | self.o.ready)),
            self.i.ready.eq(~busy | o_load),
        ]

        # -- divider iteration: div_bits restoring steps per cycle -----------------------------
        r: Value = rem
        q: Value = quot
        for step in range(self._div_bits):
            ge = r >= ts_sig
            diff = Signal(25, name=f"div_diff{step}")
            m.d.comb += diff.eq(Mux(ge, r - ts_sig, r))
            nr = Signal(25, name=f"div_rem{step}")
            m.d.comb += nr.eq(Cat(Const(0, 1), diff[:24]))  # diff < ts_sig < 2^24
            nq = Signal(qbits, name=f"div_quot{step}")
            m.d.comb += nq.eq(Cat(ge, q[:-1]))
            r, q = nr, nq

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                busy.eq(1),
                count.eq(n_iter),
                xreg.eq(x_in),
                blk_zero.eq(a_zero),
                rem.eq(Mux(small, Cat(Const(0, 1), bs_sig), bs_sig)),
                quot.eq(0),
                t_exp.eq(bs_exp - ts_exp - small),
            ]
        with m.Elif(o_load):
            m.d.sync += busy.eq(0)
        with m.Elif(busy & (count != 0)):
            m.d.sync += [rem.eq(r), quot.eq(q), count.eq(count - 1)]

        # -- final stage (combinational from the divider registers) ---------------------------
        # t = quot · 2^(t_exp − (qbits − 1)); RNE to 24 bits, then clamp and E4M3 RNE
        t_sig, t_inc = _rne(m, quot[qbits - 24:], quot[qbits - 25],
                            quot[: qbits - 25].any() | rem.any() if qbits > 25 else rem.any(),
                            0, "t")
        te = Signal(signed(_EXP), name="t_exp_rounded")
        m.d.comb += te.eq(t_exp + t_inc)
        e4m3 = Signal(7, name="e4m3_rounded")
        m.d.comb += e4m3.eq(Cat(t_sig[20:23], (te + 7)[:4])
                            + (t_sig[19] & (t_sig[:19].any() | t_sig[20])))
        s_code = Signal(7, name="s_code")
        with m.If(blk_zero | (te < -6)):
            m.d.comb += s_code.eq(_E4M3_MIN_CODE)
        with m.Elif((te > 8) | ((te == 8) & (t_sig > 0xE00000))):
            m.d.comb += s_code.eq(_E4M3_MAX_CODE)
        with m.Else():
            m.d.comb += s_code.eq(e4m3)

        # r = RNE(inv_ts / s): s = S · 2^(E − 10), S = 1mmm ∈ [8, 15], E = s_code[3:7] ∈ [1, 15]
        s_sig = Cat(s_code[:3], 1)
        s_exp = s_code[3:7]
        inv_sig = Cat(self.inv_ts[:23], 1)
        inv_exp = Signal(signed(_EXP), name="inv_exp")
        m.d.comb += inv_exp.eq(self.inv_ts[23:31] - 127)
        qs, st_s = _const_or_signal_divide(m, Cat(Const(0, 6), inv_sig), s_sig, 4, "divs")
        r_sig, r_inc = _round24(m, qs[:27], st_s, "recip")
        # inv_sig·2^6 / S with top bit at 25 means r ≈ 2^(inv_exp − E + 6)
        r_exp = Signal(signed(_EXP), name="recip_exp")
        m.d.comb += r_exp.eq(inv_exp - s_exp + 6 + r_inc)

        # lanes: v = RNE_fp32(x · r), E2M1 of min(|v|, 6)
        codes = []
        for k in range(BLOCK):
            xv = xreg[k]
            x_m, x_e, x_zero = _fp16_normalised(m, xv[:15], f"x{k}")
            prod = Signal(35, name=f"lane{k}_prod")  # in [2^33, 2^35)
            m.d.comb += prod.eq(x_m * r_sig)
            top = prod[34]
            v_sig, v_inc = _rne(
                m, Mux(top, prod[11:35], prod[10:34]), Mux(top, prod[10], prod[9]),
                Mux(top, prod[:10].any(), prod[:9].any()), top, f"lane{k}")
            v_exp = Signal(signed(_EXP), name=f"lane{k}_exp")  # |v| = 1.f · 2^v_exp
            m.d.comb += v_exp.eq(x_e + r_exp + v_inc)
            # 4|v| = v_sig · 2^(v_exp − 21): for v_exp ∈ [−2, 2] shift right by 21 − v_exp
            qv = Signal(5, name=f"lane{k}_q")
            fv = Signal(name=f"lane{k}_f")
            with m.If(x_zero | (v_exp < -2)):
                m.d.comb += [qv.eq(0), fv.eq(~x_zero)]
            with m.Elif(v_exp > 2):
                m.d.comb += [qv.eq(31), fv.eq(1)]
            for e in range(-2, 3):
                with m.Elif(v_exp == e):
                    sh = 21 - e
                    m.d.comb += [qv.eq(v_sig[sh:]), fv.eq(v_sig[:sh].any())]
            index = _e2m1_index(m, qv, fv)
            codes.append(Cat(index, xv[15]))

        with m.If(o_load):
            m.d.sync += self.o.valid.eq(1)
            with m.If(ts_zero):
                m.d.sync += self.o.payload.eq(0)
            with m.Else():
                m.d.sync += [self.o.payload.codes[k].eq(codes[k]) for k in range(BLOCK)]
                m.d.sync += self.o.payload.scale.eq(s_code)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
