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
What depends on ts and inv_ts alone (the *tensor unit*: eight E4M3 thresholds, the eight
reciprocal quotients) is computed in free-running registers (no enable, no reset) with no more
register levels than the block pipeline has before their use, so they are right when the
tensor's first block reaches them.

**NaN/Inf [ours].** A block with a lane whose exponent field is 31 (NaN or ±Inf; golden raises,
SPEC §2) leaves with ``invalid`` = 1, codes 0 and scale 0, as the dialect frontend and the MX
quantizer flag it; the output payload (:func:`nvfp4_quantized_block`) is ``nvfp4_block(16)``'s
``codes`` and ``scale`` at the same offsets, then ``invalid``. Nothing of a block stays behind
for the next one.

**How each division is exact** (B, T, I: the 24-bit significands of block_scale, ts, inv_ts).

* ÷ 6: amax = m · 2^(e−10) with the 11-bit m = {exp ≠ 0, fraction}; m/3 = q + r/3 by a long
  division whose remainders are all computed at once (a prefix scan of residues mod 3). The
  normalised quotient M·2^17/3 (M = m shifted to its top bit) is the binary expansion q.(r/3)
  shifted: Cat(the first 27 fraction bits of r/3, q) >> (10 for a normal amax, the top fraction
  bit for a subnormal one), with remainder ≠ 0 ⟺ r ≠ 0. The expansion's fraction repeats 01 or
  10, so the RNE to 24 bits never carries past the significand's LSB (a 0 whenever the round
  bit is 1): B = the top 24 bits with the round bit ORed into the LSB. No adder.
* ÷ ts, then E4M3: with B' = B (B ≥ T) or 2B, t' = B'/T ∈ [1, 2) and te = t's exponent. The
  E4M3 mantissa k = the number of midpoints m_j = (17 + 2j)/16 (j = 0..7) that RNE24(t')
  passes; m_j is exact and even in 24 bits, so RNE24(t') ≥ m_j ⟺ t' ≥ m_j − 2^−24 and
  RNE24(t') > m_j ⟺ t' > m_j + 2^−24, and a tie at m_j goes to the even mantissa: up for odd j
  (≥), down for even j (>). In integers, with X_j = (17 + 2j)·T: odd j passes ⟺ 16·B' +
  (T >> 20) ≥ X_j, even j ⟺ 16·B' + 15 − (T >> 20) ≥ X_j + 16 (the ±2^−24·T terms rounded
  to whole 2^−4 units of 16·B'). The tensor unit holds X_j (+ 16 for even j) (CSD rows of T, a
  carry-save tree and a prefix adder); per block B' is compared with X_j >> 4, the static
  comparison of the low four bits as the compare's carry in (16 comparators, B and 2B). s =
  E4M3 field te + 7 and mantissa k (k = 8: exponent + 1), clamped to [2^−6, 448].
* ÷ s: r = RNE24(I · 2^6 / S) with S = 8 + s's mantissa: the tensor unit holds the eight
  quotients (S = 8 exact; 9..15 long divisions by constants, two dividend bits per table step,
  the six zero bits one table, remainder ≠ 0 as sticky); a block selects one. Its RNE
  increment ``up`` is not added: the lanes multiply by (truncated + up), one more row.
* E2M1: p = M_i · (truncated r + up) (35 bits: radix-4 Booth rows, a carry-save tree, the
  low 9 columns added at once, the rest in the next stage by a prefix adder). 4|x_i·r| =
  p · 2^−w with w = 31 − e_i − r_exp: w ≤ 28 gives index 7, w ≥ 35 index 0 (a value reaching
  1/4 by rounding is a tie to 0), else the FP32 rounding of x_i·r at p's bit 10 or 11 (p's
  top bit 33 or 34) and the E2M1 midpoints on q = p >> w (3 tables of q: no fraction, a
  fraction, the rounding carried into q + 1); midpoints in quarters 1 3 5 7 10 14 20, ties at
  3, 7, 14 rounding up to the even index.

The adds and compares on critical paths are prefix trees in plain gates and the lane products
Booth/carry-save trees (Yosys maps ``+`` and comparisons to ripple carries: 5 ns for 32 bits).

**Pipeline and timing.** ``stages`` block registers (default :data:`NVFP4_STAGES` = 7, the
latency), **one block per cycle** (:attr:`NVFP4Quantizer.cycles_per_block` = 1): a block accepted
in cycle t is at ``o`` in cycle t + ``stages`` when ``o.ready`` is high. Every block register
loads with one stall enable ``~o.valid | o.ready`` and ``i.ready`` is that enable (it depends
combinationally on ``o.ready``); ``o.valid``/``o.payload`` are registers that hold still while
``o.ready`` is low (so does every stage behind them). The optional registers
(:data:`NVFP4_CUTS`), all of them at the default::

    i ─► max tree levels 1–2 ═ amax_half ═► levels 3–4 ═ amax ═► normalise, ÷ 3, B ═ div3 ═►
      16 threshold compares, k, s ═ scale ═► r select, lanes normalised ═ recip ═►
      Booth rows, carry-save tree ═ product ═► prefix adder, FP32 rounding, E2M1 ═ o

Measured on the liberty flow (:func:`semdialect.sim.asic.synthesize_liberty`, OSU 0.18 µm,
4 ns target; tensor unit: 1 register level for the thresholds, up to 4 for the quotients):

======  ==========================================  ===================  =====================
stages  optional registers                          µm² / f_max MHz      critical path
======  ==========================================  ===================  =====================
1       —                                           1 206 744 / 62.8     input → o
2       scale                                       1 209 208 / 110.9    input → scale
3       div3, product                               1 369 005 / 121.3    inv_ts → quotients
4       amax, scale, product                        1 396 902 / 194.4    input → amax
5       amax, div3, scale, product                  1 453 087 / 183.0    input → amax
6       amax, div3, scale, recip, product           1 497 457 / 197.6    input → amax
**7**   all                                         1 566 496 / 261.6    product → o
======  ==========================================  ===================  =====================

The former design (the ÷ ts divider iterating ``div_bits`` = 5 bits a cycle, the unrolled ÷ 6
and ÷ s and the 16 products in one cycle): 1 194 642 µm², 27.0 MHz, 6 cycles per block,
latency 7 — per block/cycle of throughput 7.2 M µm² against 1.57 M µm² now.

**Widths.** The Verilog is clean under Verilator ``-Wall`` (no width waivers): see the note above
the arithmetic helpers.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.layouts import fp16_block, nvfp4_block
from semdialect.rtl.trees import cut_levels, enabled_register, ge_const, thermometer_value

__all__ = ["NVFP4_CUTS", "NVFP4_MAX_STAGES", "NVFP4_STAGES", "NVFP4Quantizer",
           "nvfp4_quantized_block"]

BLOCK = 16
_EXP = 10  # width of the exponents inside: two's complement, |e| < 512 (ranges below ±160)
_E4M3_MIN_CODE = 0x08  # 2^-6
_E4M3_MAX_CODE = 0x7E  # 448
#: E2M1 midpoints in quarter units (4|v|) and whether a tie there rounds up (to the even index)
_E2M1_MIDPOINTS = ((1, False), (3, True), (5, False), (7, True), (10, False), (14, True),
                   (20, False))
#: floor(r · 2^27 / 3) for r = 1, 2: the first 27 fraction bits of 1/3 (0101…) and 2/3 (1010…)
_THIRDS = ((1 << 27) // 3, (2 << 27) // 3)

#: The block pipeline's optional registers, in path order (the output register is always
#: there): after the first two max-tree levels, after the max tree, after amax/6's quotient,
#: after the E4M3 scale, after the reciprocal r and the lanes' normalisation, after the lane
#: products.
NVFP4_CUTS = ("amax_half", "amax", "div3", "scale", "recip", "product")
#: Registers used for each ``stages`` (1 + optional registers), fewest first.
_STAGE_CUTS = {
    1: (),
    2: ("scale",),
    3: ("div3", "product"),
    4: ("amax", "scale", "product"),
    5: ("amax", "div3", "scale", "product"),
    6: ("amax", "div3", "scale", "recip", "product"),
    7: NVFP4_CUTS,
}
#: Most register stages (every optional register and the output register).
NVFP4_MAX_STAGES = 1 + len(NVFP4_CUTS)
#: The default register stages (≥ 250 MHz at 180 nm, module docstring) = the latency.
NVFP4_STAGES = NVFP4_MAX_STAGES
#: Tensor-unit register levels wanted (thresholds, the ÷ S quotients); fewer when the block
#: path reaches their use sooner (see :class:`NVFP4Quantizer`).
_THRESHOLD_LEVELS = 1
_QUOTIENT_LEVELS = 4


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


def _ones_complement(m: Module, value: Value, name: str) -> Signal:
    """−1 − ``value`` as an _EXP-bit two's complement value (``value`` unsigned, < 2^(_EXP−1))."""
    out = Signal(_EXP, name=name)
    m.d.comb += out.eq(~Cat(value, Const(0, _EXP - len(value))))
    return out


# -- fast arithmetic in plain gates -------------------------------------------------------------
# Yosys maps ``+`` and the comparisons to ripple-carry chains (a 32-bit add: 5 ns here), so the
# adds and compares on the critical paths are built from generate/propagate prefix trees, and
# the lane products from full adders (the mapper keeps their depth).


def _csd(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value`` > 0: [(bit, ±1)], no two adjacent."""
    digits = []
    bit = 0
    while value:
        if value & 1:
            digit = 2 - (value & 3)  # 1 for …01, −1 for …11
            digits.append((bit, digit))
            value -= digit
        value >>= 1
        bit += 1
    return digits


def _vec(m: Module, value: Value, name: str) -> Signal:
    """``value`` through a named signal (the next level refers to it: no expression is
    rebuilt, or re-simulated, for each of its users)."""
    out = Signal(len(value), name=name)
    m.d.comb += out.eq(value)
    return out


def _shl(value: Value, step: int) -> Value:
    """``value`` << ``step`` within its width."""
    return Cat(Const(0, step), value[: len(value) - step])


def _prefix(m: Module, a: Value, b: Value, cin: Value, name: str) -> tuple[Value, Value]:
    """(carries into bits 1 … n, propagates) of ``a`` + ``b`` + ``cin`` (equal widths n): a
    Kogge–Stone prefix of (generate, propagate), ⌈log2 n⌉ levels, as vector operations."""
    n = len(a)
    assert len(b) == n
    prop = _vec(m, a ^ b, f"{name}_p")
    big_g = _vec(m, (a & b) | Cat(prop[0] & cin, Const(0, n - 1)), f"{name}_g")
    big_p: Value = prop
    step, level = 1, 0
    while step < n:
        big_g, big_p = (_vec(m, big_g | (big_p & _shl(big_g, step)), f"{name}_g{level}"),
                        _vec(m, big_p & _shl(big_p, step), f"{name}_p{level}"))
        step, level = step * 2, level + 1
    return big_g, prop


def _fast_add(m: Module, a: Value, b: Value, cin: Value, name: str) -> Signal:
    """``a`` + ``b`` + ``cin`` (equal widths n), n + 1 bits, through :func:`_prefix`."""
    carries, prop = _prefix(m, a, b, cin, name)
    n = len(a)
    out = Signal(n + 1, name=name)
    m.d.comb += out.eq(Cat(prop ^ Cat(cin, carries[: n - 1]), carries[n - 1]))
    return out


def _ge(m: Module, a: Value, b: Value, name: str, strict: Value | None = None) -> Value:
    """``a`` ≥ ``b`` (``strict`` = 0 or None) or ``a`` > ``b`` (``strict`` = 1), unsigned,
    equal widths: the carry out of a + ~b + ~strict (only its cone of the prefix remains)."""
    carries, _ = _prefix(m, a, ~b, Const(1, 1) if strict is None else ~strict, name)
    return carries[len(a) - 1]


def _reduce_rows(m: Module, rows: list[Value], name: str) -> tuple[Value, Value]:
    """Wallace reduction of equal-width ``rows`` to two with full adders on whole rows
    (three rows → sum and carry << 1), one adder delay per level; carries out of the top
    bit are dropped (the caller's width bounds the sum). Constant-zero bits cost nothing
    after synthesis."""
    width = len(rows[0])
    level = 0
    while len(rows) > 2:
        nxt = []
        for k in range(0, len(rows) - 2, 3):
            a, b, c = rows[k : k + 3]
            half = a ^ b
            nxt.append(_vec(m, half ^ c, f"{name}_s{level}_{k // 3}"))
            nxt.append(_vec(m, _shl((a & b) | (c & half), 1), f"{name}_c{level}_{k // 3}"))
        nxt += rows[len(rows) - len(rows) % 3 :]
        rows, level = nxt, level + 1
    assert all(len(r) == width for r in rows)
    return rows[0], rows[1]


def _div3_fast(m: Module, value: Value, name: str) -> tuple[Signal, Signal]:
    """(⌊value / 3⌋, value mod 3 as 2 bits) of unsigned ``value``: the long division's
    remainders R_i = (value >> i) mod 3 for every i at once by a Kogge–Stone suffix scan of
    one-hot residues (bits [i, j) and [j, k) combine as high · 2^(j−i) + low, 2^s ≡ (−1)^s
    mod 3), then quotient bit i = (2 R_(i+1) + bit i ≥ 3) = R_(i+1) = 2 or (R_(i+1) = 1 and
    bit i)."""
    n = len(value)
    zero = Const(0, 1)
    res = [(~value[i], value[i], zero) for i in range(n)]  # V[i, i + 1), one-hot
    span, level = 1, 0
    while span < n:
        nxt = []
        for i in range(n):
            if i + span >= n:
                nxt.append(res[i])
                continue
            high = res[i + span]
            if span % 2:  # · 2^span ≡ −1
                high = (high[0], high[2], high[1])
            low = res[i]
            nxt.append(tuple(Cat(*(low[j] & high[(k - j) % 3] for j in range(3))).any()
                             for k in range(3)))
        flat = _vec(m, Cat(*(z for r in nxt for z in r)), f"{name}_res{level}")
        res = [tuple(flat[3 * i : 3 * i + 3]) for i in range(n)]
        span, level = span * 2, level + 1
    quotient = Signal(n, name=f"{name}_q")
    m.d.comb += quotient.eq(Cat(
        *(res[i + 1][2] | (res[i + 1][1] & value[i]) for i in range(n - 1)), zero))
    rem = Signal(2, name=f"{name}_rem")
    m.d.comb += rem.eq(Cat(res[0][1], res[0][2]))
    return quotient, rem


def _div_const(m: Module, sig: Value, divisor: int, low: int, levels: int, name: str
               ) -> tuple[Value, Value]:
    """Unrolled long division of ``sig`` · 2^``low`` by the constant ``divisor`` ∈ [9, 15]
    (``sig`` 24 bits with its top bit set, a quantity that holds still): (27-bit quotient,
    remainder ≠ 0). ``sig``'s top three bits are below the divisor: they preload the 4-bit
    remainder; its other 21 bits enter two at a time (a table of remainder and two bits →
    two quotient bits and the remainder), the ``low`` zero bits in one table of the
    remainder. ``levels`` free-running registers (no reset, no enable) cut these 12 steps
    (:func:`~rtl.trees.cut_levels`; the last one holds the results), each holding the
    remainder and its segment's quotient bits: the result is right ``levels`` cycles after
    ``sig`` settles."""
    width = len(sig)
    rem: Value | None = None  # None: the preload, sig's top three bits (the top one is 1)
    chunks = [(k, min(2, k + 1)) for k in range(width - 4, -1, -2)]  # (top bit, bits)
    cuts = set(cut_levels(len(chunks) + 1, levels)) if levels else set()
    bits: list[Value] = []  # quotient pieces, most significant first
    pending: list[Value] = []

    def step(index: int, data: Value, count: int, tag: str) -> None:
        nonlocal rem, pending
        quo = Signal(count, name=f"{name}_q{tag}")
        nxt = Signal(4, name=f"{name}_r{tag}")
        # a table of the variable input bits (a selector with constant bits would leave
        # its case statement incomplete in the Verilog): trial = rem · 2^count + data
        if rem is None:  # rem = 0b1xy from sig's top bits: select on x, y and data
            select = Cat(data, sig[width - 3 : width - 1])
            trials = [value + (4 << count) for value in range(1 << len(select))]
        elif isinstance(data, Const):  # the zero bits: a table of the remainder alone
            select = rem
            trials = [(r << count) + data.value for r in range(divisor)]
        else:
            select = Cat(data, rem)
            trials = list(range(divisor << count))  # rem < divisor
        with m.Switch(select):
            for value, trial in enumerate(trials):
                with m.Case(value):
                    m.d.comb += [quo.eq(trial // divisor), nxt.eq(trial % divisor)]
            with m.Default():  # unreachable: the remainder is below the divisor
                m.d.comb += [quo.eq(0), nxt.eq(0)]
        pending.append(quo)
        rem = nxt
        if index in cuts:
            held = Signal(sum(len(q) for q in pending), name=f"{name}_qreg{tag}",
                          reset_less=True)
            held_rem = Signal(4, name=f"{name}_rreg{tag}", reset_less=True)
            m.d.sync += [held.eq(Cat(*reversed(pending))), held_rem.eq(rem)]
            bits.append(held)
            pending = []
            rem = held_rem

    for index, (top, count) in enumerate(chunks, start=1):
        step(index, sig[top - count + 1 : top + 1], count, str(top))
    step(len(chunks) + 1, Const(0, low), low, "tail")
    if pending:
        bits.append(Cat(*reversed(pending)))
    quotient = Signal(width + low - 3, name=f"{name}_q")
    m.d.comb += quotient.eq(Cat(*reversed(bits)))
    return quotient, rem.any()


def _booth_rows(m: Module, mult: Value, cand: Value, extra: Value, width: int, name: str
                ) -> list[Value]:
    """Rows (``width`` bits each) whose sum modulo 2^width is ``mult`` · (``cand`` +
    ``extra``) for unsigned ``mult`` (odd length n: (n + 1)/2 radix-4 Booth digits, the top
    one ≥ 0), unsigned ``cand`` and the 1-bit ``extra``: per digit d = −2·b2 + b1 + b0 a row
    |d|·cand with its bits inverted when d < 0; a two's complement row of 2 + len(cand) bits
    is body + neg − neg · 2^(len+1), and −neg · 2^(len+1) = ~neg · 2^(len+1) − 2^(len+1): so
    each row carries ~neg above its body, one row gathers the neg bits (the + 1s) and the
    constant −Σ 2^(2i+len+1), and one row adds ``mult`` · ``extra``."""
    n, c = len(mult), len(cand)
    zero = Const(0, 1)
    bit = [mult[i] if 0 <= i < n else zero for i in range(-1, n + 2)]  # bit[i + 1] = m_i
    rows: list[Value] = []
    negs: list[Value] = []
    const = 0
    for i in range((n + 1) // 2):
        b2, b1, b0 = bit[2 * i + 2], bit[2 * i + 1], bit[2 * i]
        one = Signal(name=f"{name}_one{i}")
        two = Signal(name=f"{name}_two{i}")
        neg = Signal(name=f"{name}_neg{i}")
        m.d.comb += [
            one.eq(b1 ^ b0),
            two.eq((b2 & ~b1 & ~b0) | (~b2 & b1 & b0)),
            neg.eq(b2 & ~(b1 & b0)),
        ]
        mag = (one.replicate(c + 1) & Cat(cand, zero)) | (two.replicate(c + 1) & Cat(zero, cand))
        body = Cat(Const(0, 2 * i), mag ^ neg.replicate(c + 1), ~neg)
        rows.append(Cat(body, Const(0, max(0, width - len(body))))[:width])
        negs.append(neg)
        const -= 1 << (2 * i + c + 1)
    neg_row = Cat(*(Cat(neg_i, zero) for neg_i in negs))
    const_row = Const(const % (1 << width), width)
    rows.append(Cat(neg_row, Const(0, width - len(neg_row))) | const_row)
    rows.append(Cat(mult & extra.replicate(n), Const(0, width - n)))
    return rows


def _fp16_normalised(m: Module, x: Value, name: str) -> tuple[Signal, Signal]:
    """(M, e) of an FP16 magnitude (15 bits): |x| = M · 2^(e − 10), M an 11-bit integer with
    its top bit set (subnormals normalised by a priority chain over their fraction bits; ±0
    gives M = 0), e ∈ [−24, 15] a 6-bit two's complement value."""
    exp5 = x[10:15]
    mant = Signal(11, name=f"{name}_m")
    exp = Signal(6, name=f"{name}_e")
    # normal: e = exp5 − 15 (exp5 + 17 mod 32, sign-extended); subnormal with top fraction
    # bit b: M = f << (10 − b), e = −14 − (10 − b) = b − 24
    with m.If(exp5.any()):
        m.d.comb += [
            mant.eq(Cat(x[:10], 1)),
            exp.eq(_add_const(exp5, 17).as_signed()),
        ]
    for b in reversed(range(10)):
        with m.Elif(x[b]):
            m.d.comb += [
                mant.eq(Cat(Const(0, 10 - b), x[: b + 1])),
                exp.eq((b - 24) & 0x3F),
            ]
    with m.Else():
        m.d.comb += [mant.eq(0), exp.eq(0)]
    return mant, exp


def _e2m1_of(y: int) -> int:
    """E2M1 magnitude index (RNE, saturating) of 4|v| = y/2 (y = 2q + (fraction ≠ 0))."""
    return sum(y >= 2 * mid + (0 if tie_up else 1) for mid, tie_up in _E2M1_MIDPOINTS)


class NVFP4Quantizer(wiring.Component):
    """NVFP4 block quantizer (module docstring: arithmetic, exactness, timing).

    **Latency** :attr:`latency` = ``stages`` cycles (default 7), **one block per cycle**
    (:attr:`cycles_per_block` = 1); ``i.ready = ~o.valid | o.ready``; ``o.valid``/``o.payload``
    are registers that hold still while ``o.ready`` is low. Default: ≥ 250 MHz at 180 nm.

    Parameters
    ----------
    stages : int
        Register stages 1..:data:`NVFP4_MAX_STAGES` (default :data:`NVFP4_STAGES` = 7, every
        optional register): the latency; which optional registers each count uses is
        :attr:`cuts`. ``ValueError`` naming ``stages`` otherwise.

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

    def __init__(self, *, stages: int = NVFP4_STAGES) -> None:
        if isinstance(stages, bool) or not isinstance(stages, int) or stages not in _STAGE_CUTS:
            raise ValueError(f"stages: must be an integer 1..{NVFP4_MAX_STAGES}, "
                             f"got {stages!r}")
        self._stages = stages
        self._cuts = frozenset(_STAGE_CUTS[stages])
        super().__init__({
            "i": In(stream.Signature(fp16_block(BLOCK))),
            "o": Out(stream.Signature(nvfp4_quantized_block(BLOCK))),
            "ts": In(32),
            "inv_ts": In(32),
        })

    @property
    def stages(self) -> int:
        """Register stages of the block pipeline (the output register included)."""
        return self._stages

    @property
    def cuts(self) -> tuple[str, ...]:
        """The optional block registers in use (:data:`NVFP4_CUTS` order)."""
        return tuple(c for c in NVFP4_CUTS if c in self._cuts)

    @property
    def cycles_per_block(self) -> int:
        """Initiation interval: one block per cycle."""
        return 1

    @property
    def latency(self) -> int:
        """Cycles from a block's transfer at ``i`` to its output at ``o``: :attr:`stages`."""
        return self._stages

    def _before(self, cut: str) -> int:
        """Block registers before the logic that follows ``cut``'s position."""
        return sum(1 for c in NVFP4_CUTS[: NVFP4_CUTS.index(cut)] if c in self._cuts)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        # one stall enable for every block register: ~o.valid | o.ready (the synthesis flow
        # drives its fanout through a buffer tree; o.ready's path to the registers is short)
        en = Signal(name="stall_en")
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        def register(value: Value, name: str, init: int | None) -> Signal:
            return enabled_register(m, en, value, name, init)

        def cut(name: str, values: dict[str, Value]) -> dict[str, Value]:
            if name not in self._cuts:
                return values
            return {key: register(Value.cast(value), f"{name}_{key}",
                                  0 if key == "valid" else None)
                    for key, value in values.items()}

        # -- tensor unit: values of ts and inv_ts alone, in free-running registers ----------
        # (they hold still from a tensor's first block on; each value is used by a block no
        # sooner than its register levels after that block's transfer)
        ts_sig = Cat(self.ts[:23], 1)
        t4 = ts_sig[20:24]
        th_levels = min(_THRESHOLD_LEVELS, self._before("scale"))  # used after div3
        multiples = []
        for j in range(8):
            # E4M3 midpoint j: t' = (17 + 2j)/16, between mantissas j and j + 1; a tie there
            # rounds up for odd j. RNE24(B'/T) passes it ⟺ 16·B' + d ≥ X (X = (17 + 2j)·T,
            # d = T>>20, odd j) or 16·B' + (15 − T>>20) ≥ X + 16 (even j): see the module
            # docstring. X (+ 16) from shifted copies of T through a carry-save tree.
            const = 16 if j % 2 == 0 else 0
            rows = []
            for bit, digit in _csd(17 + 2 * j):  # ±T · 2^bit; −v = ~v + 1
                row = Cat(Const(0, bit), ts_sig, Const(0, 5 - bit))
                rows.append(row if digit > 0 else ~row)
                const += 0 if digit > 0 else 1
            rows.append(Const(const % (1 << 29), 29))
            row_a, row_b = _reduce_rows(m, rows, f"th_csa{j}")
            prod: Value = _fast_add(m, row_a, row_b, Const(0, 1), f"th_x{j}")[:29]
            if th_levels >= 1:
                held = Signal(29, name=f"th_reg{j}", reset_less=True)
                m.d.sync += held.eq(prod)
                prod = held
            multiples.append(prod)
        # inv_ts · 2^6 / S for S = 8..15 (S = 8: exact), 27-bit quotient and sticky
        inv_sig = Cat(self.inv_ts[:23], 1)
        q_levels = min(_QUOTIENT_LEVELS, self._before("recip"))  # used after scale
        quotients: list[tuple[Value, Value]] = [(Cat(Const(0, 3), inv_sig), Const(0, 1))]
        for divisor in range(9, 16):
            quotients.append(_div_const(m, inv_sig, divisor, 6, q_levels, f"divs{divisor}"))

        # -- amax: a max tree over the 15-bit magnitudes, cut after two levels --------------
        x_in = self.i.payload.x
        invalid = Signal(name="invalid")  # some lane's exponent field is 31: NaN or ±Inf
        m.d.comb += invalid.eq(Cat(x_in[k][10:15].all() for k in range(BLOCK)).any())
        side: dict[str, Value] = {"valid": self.i.valid, "x": Value.cast(x_in),
                                  "invalid": invalid}
        level = [x_in[k][:15] for k in range(BLOCK)]
        for depth in range(4):
            level = [Mux(b > a, b, a) for a, b in zip(level[0::2], level[1::2], strict=True)]
            if depth == 1:
                regs = cut("amax_half", {**side, **{f"m{j}": v for j, v in enumerate(level)}})
                side = {key: regs[key] for key in side}
                level = [regs[f"m{j}"] for j in range(len(level))]
        regs = cut("amax", {**side, "amax": level[0]})
        side = {key: regs[key] for key in side}
        amax = regs["amax"]

        # -- bs = RNE(amax / 6): amax = m · 2^(…) with m = {e ≠ 0, f}; m / 3 = q + r/3, and the
        # normalised quotient M·2^17/3 (M = m shifted to its top bit) is the binary expansion
        # q.(r/3) shifted: Cat(the first 27 bits of r/3, q) >> shift, shift = 10 for a normal
        # amax, the top bit b of f for a subnormal one. Its low bits repeat 01 or 10, so the
        # RNE to 24 bits never carries past the significand's LSB (a 0 when the round bit is 1)
        exp5, frac = amax[10:15], amax[:10]
        normal = exp5.any()
        q3, r3 = _div3_fast(m, Cat(frac, normal), "div3")
        top_f = Signal(4, name="amax_msb")  # top set bit of f (0 for f = 0)
        top_sel: Value = Const(0, 4)
        for b in range(10):
            top_sel = Mux(frac[b], b, top_sel)
        m.d.comb += top_f.eq(top_sel)
        shift = Signal(4, name="div3_shift")
        m.d.comb += shift.eq(Mux(normal, 10, top_f))
        pattern = Signal(27, name="div3_pattern")
        m.d.comb += pattern.eq(Mux(r3[0], _THIRDS[0], Mux(r3[1], _THIRDS[1], 0)))
        expansion: Value = Cat(pattern, q3[:10])
        for bit in range(4):
            step = 1 << bit
            level_sig = Signal(37, name=f"div3_s{bit}")
            m.d.comb += level_sig.eq(Mux(shift[bit], Cat(expansion[step:], Const(0, step)),
                                         expansion))
            expansion = level_sig
        q27 = expansion[:27]
        bs_top = Signal(name="bs_top")
        bs_sig = Signal(24, name="bs_sig")
        m.d.comb += [
            bs_top.eq(q27[26]),
            bs_sig.eq(Mux(bs_top, Cat(q27[3] | q27[2], q27[4:27]),
                          Cat(q27[2] | q27[1], q27[3:26]))),
        ]
        # amax's exponent (of its leading bit): exp5 − 15 (normal), b − 24 (subnormal)
        a_e = Signal(_EXP, name="amax_e")
        with m.If(normal):
            m.d.comb += a_e.eq(_add_const(exp5, 17).as_signed())
        with m.Else():
            with m.Switch(top_f):
                for b in range(10):
                    with m.Case(b):
                        m.d.comb += a_e.eq((b - 24) & ((1 << _EXP) - 1))
                with m.Default():
                    m.d.comb += a_e.eq(0)
        a_zero = Signal(name="amax_zero")
        m.d.comb += a_zero.eq(~amax.any())
        # t's exponent without the B < T step: a_e + top − 3 − (ts_field − 127) =
        # (a_e + top + 125) + (−1 − ts_field); the first term here
        e_part = Signal(_EXP, name="t_exp_part")
        m.d.comb += e_part.eq((_add_const(a_e, 125) + bs_top)[:_EXP])
        regs = cut("div3", {**side, "bs": bs_sig, "e_part": e_part, "zero": a_zero})
        side = {key: regs[key] for key in side}

        # -- s = E4M3(clamp(RNE(bs / ts))): t' = B'/T ∈ [1, 2) with B' = B or 2B (B < T);
        # the mantissa k = the midpoints passed (thermometer), t's exponent
        # te = bs_exp − ts_exp − small = a_e + top − 3 − (ts_field − 127) − small ----------
        bs = regs["bs"]
        small = Signal(name="small")
        m.d.comb += small.eq(~_ge(m, bs, ts_sig, "bs_ge_ts"))
        passes = []
        for j, mult in enumerate(multiples):
            # B' ≥ X_hi + [d < X_lo]: a compare with the static borrow as its carry in
            high, low = mult[4:], mult[:4]
            d = t4 if j % 2 else ~t4
            borrow = Signal(name=f"th_borrow{j}")
            m.d.comb += borrow.eq(_ge(m, low, d, f"th_lo{j}", Const(1, 1)))
            big = ~high[24] & _ge(m, bs, high[:24], f"th_big{j}", borrow)
            double = _ge(m, Cat(Const(0, 1), bs), high, f"th_small{j}", borrow)
            passes.append(Mux(small, double, big))
        k = Signal(4, name="e4m3_k")
        m.d.comb += k.eq(thermometer_value(passes))
        ts_field_n = _ones_complement(m, self.ts[23:31], "ts_field_n")
        te0 = Signal(_EXP, name="t_exp0")  # t's exponent te = te0 − small
        m.d.comb += te0.eq((regs["e_part"] + ts_field_n)[:_EXP])

        def code_of(e: int) -> Value:
            """The E4M3 byte of t = (1 + k/8) · 2^e (k = 8: 2^(e+1)), clamped to [2^−6, 448]."""
            if e < -6:
                return Const(_E4M3_MIN_CODE, 7)
            if e > 8:
                return Const(_E4M3_MAX_CODE, 7)
            field = Cat(k[:3], Const(e + 7, 4))
            if e == 8:  # 448 = 0x7E is the largest: k ≥ 7 clamps
                return Mux(k[3] | k[:3].all(), _E4M3_MAX_CODE, field)
            return Mux(k[3], (e + 8) << 3, field)

        s_code = Signal(7, name="s_code")
        with m.If(regs["zero"]):
            m.d.comb += s_code.eq(_E4M3_MIN_CODE)
        with m.Else():
            with m.Switch(te0):
                for e0 in range(-6, 10):
                    with m.Case(e0 & ((1 << _EXP) - 1)):
                        m.d.comb += s_code.eq(Mux(small, code_of(e0 - 1), code_of(e0)))
                with m.Default():  # te0 < −6 (sign bit set): 2^−6; te0 > 9: 448
                    m.d.comb += s_code.eq(Mux(te0[-1], _E4M3_MIN_CODE, _E4M3_MAX_CODE))
        regs = cut("scale", {**side, "s_code": s_code})
        side = {key: regs[key] for key in side}
        s_code = regs["s_code"]

        # -- r = RNE(inv_ts / s): the tensor unit's quotient for S = 8 + mantissa; lanes
        # normalised --------------------------------------------------------------------------
        chosen_q = Signal(27, name="recip_q")
        chosen_st = Signal(name="recip_st")
        with m.Switch(s_code[:3]):
            for mant, (quo, st) in enumerate(quotients):
                with m.Case(mant):
                    m.d.comb += [chosen_q.eq(quo), chosen_st.eq(st)]
        # r's significand truncated to 24 bits, and the RNE increment ``up``: the lanes
        # multiply by (trunc + up) (an extra row), so no carry chain here; trunc + up = 2^24
        # (the rounding carries out) is the same value as 2^23 with the exponent one higher
        r_top = chosen_q[26]
        r_trunc = Signal(24, name="recip_trunc")
        r_up = Signal(name="recip_up")
        rnd = Mux(r_top, chosen_q[2], chosen_q[1])
        st = Mux(r_top, chosen_q[:2].any(), chosen_q[0]) | chosen_st
        m.d.comb += [
            r_trunc.eq(Mux(r_top, chosen_q[3:27], chosen_q[2:26])),
            r_up.eq(rnd & (st | r_trunc[0])),
        ]
        # inv_sig·2^6 / S with top bit at 25 means r ≈ 2^(inv_exp − E + 6) with
        # inv_exp = inv_field − 127: r_exp = (−1 − E) − (−1 − inv_field) − 121 + top
        s_exp_n = _ones_complement(m, s_code[3:7], "s_exp_n")
        inv_field_n = _ones_complement(m, self.inv_ts[23:31], "inv_field_n")
        r_exp = Signal(_EXP, name="recip_exp")
        m.d.comb += r_exp.eq(
            (_add_const((s_exp_n - inv_field_n)[:_EXP], -121) + r_top)[:_EXP])
        x = data.View(fp16_block(BLOCK), side["x"]).x
        lanes = []
        for k_ in range(BLOCK):
            mant_k, exp_k = _fp16_normalised(m, x[k_][:15], f"x{k_}")
            lanes.append(Cat(mant_k, exp_k, x[k_][15]))
        regs = cut("recip", {"valid": side["valid"], "invalid": side["invalid"],
                             "s_code": s_code, "r_trunc": r_trunc, "r_up": r_up,
                             "r_exp": r_exp, "lanes": Cat(*lanes)})
        lane_w = 18
        lane_regs = [regs["lanes"][k_ * lane_w : (k_ + 1) * lane_w] for k_ in range(BLOCK)]
        r_trunc, r_up, r_exp = regs["r_trunc"], regs["r_up"], regs["r_exp"]

        # -- lanes: p = M · r_sig (35 bits, in [2^33, 2^35) or 0); 4|x·r| = p · 2^−w with
        # w = 31 − e − r_exp: w ≤ 28 → ≥ 32 quarters (index 7), w ≥ 35 → below one quarter
        # (index 0, RNE reaching 1/4 exactly is a tie to 0), 29..34 → the window below -------
        r_exp_n = Signal(_EXP, name="recip_exp_n")
        m.d.comb += r_exp_n.eq(~r_exp)
        products = []
        for k_ in range(BLOCK):
            reg = lane_regs[k_]
            mant_k, exp6, sign = reg[:11], reg[11:17], reg[17]
            # p = M · (trunc + up): radix-4 Booth rows through a carry-save tree; the low 9
            # columns are added here (p's bits 0..8 only matter as sticky), the rest leaves
            # in carry-save form (its adder is the next stage's)
            booth = _booth_rows(m, mant_k, r_trunc, r_up, 35, f"lane{k_}_booth")
            row_a, row_b = _reduce_rows(m, booth, f"lane{k_}_csa")
            low = _fast_add(m, row_a[:9], row_b[:9], Const(0, 1), f"lane{k_}_low")
            exp_k = Signal(_EXP, name=f"lane{k_}_e")
            m.d.comb += exp_k.eq(exp6.as_signed())
            w = Signal(_EXP, name=f"lane{k_}_w")  # (−1 − e) + (−1 − r_exp) + 33
            m.d.comb += w.eq(_add_const((~exp_k + r_exp_n)[:_EXP], 33))
            wsel = Signal(3, name=f"lane{k_}_wsel")
            sat = Signal(name=f"lane{k_}_sat")
            under = Signal(name=f"lane{k_}_under")
            with m.Switch(w):
                for wv in range(29, 35):
                    with m.Case(wv):
                        m.d.comb += [wsel.eq(wv - 29), under.eq(0), sat.eq(0)]
                with m.Default():
                    m.d.comb += [
                        wsel.eq(0),
                        under.eq(~w[-1] & ge_const(w, 35)),
                        sat.eq(~(~w[-1] & ge_const(w, 35)) & mant_k[10]),
                    ]
            products.append(Cat(low[:9].any(), low[9], row_a[9:], row_b[9:], wsel, sat,
                                under, sign))
        regs = cut("product", {"valid": regs["valid"], "invalid": regs["invalid"],
                               "s_code": regs["s_code"], "lanes": Cat(*products)})
        prod_w = 2 + 26 + 26 + 3 + 1 + 1 + 1
        codes = []
        for k_ in range(BLOCK):
            reg = regs["lanes"][k_ * prod_w : (k_ + 1) * prod_w]
            lo_any, c9 = reg[0], reg[1]  # p[0:9] ≠ 0, the carry into bit 9
            ph = _fast_add(m, reg[2:28], reg[28:54], c9, f"lane{k_}_high")[:26]  # p[9:35]
            wsel, sat, under, sign = reg[54:57], reg[57], reg[58], reg[59]
            p = Cat(Const(0, 9), ph)  # p's bits 9..34 (0..8 only through lo_any)
            top = p[34]
            rnd = Mux(top, p[10], p[9])
            lsb = Mux(top, p[11], p[10])
            sticky = Mux(top, lo_any | p[9], lo_any)
            base_all = p[11:29].all() & (top | p[10])
            base_any = p[11:29].any() | (~top & p[10])
            qv = Signal(6, name=f"lane{k_}_q")  # p >> w
            ext_all = Signal(name=f"lane{k_}_xall")  # p[29:w] all ones
            ext_any = Signal(name=f"lane{k_}_xany")
            with m.Switch(wsel):
                for sel in range(6):
                    wv = 29 + sel
                    with m.Case(sel):
                        m.d.comb += [
                            qv.eq(p[wv:35]),
                            ext_all.eq(p[29:wv].all() if wv > 29 else 1),
                            ext_any.eq(p[29:wv].any() if wv > 29 else 0),
                        ]
                with m.Default():
                    m.d.comb += [qv.eq(0), ext_all.eq(0), ext_any.eq(0)]
            up = Signal(name=f"lane{k_}_up")
            carry = Signal(name=f"lane{k_}_carry")  # the rounding reaches the next quarter
            fr = Signal(name=f"lane{k_}_f")  # a fraction below the quarter, no carry
            m.d.comb += [
                up.eq(rnd & (sticky | lsb)),
                carry.eq(up & base_all & ext_all),
                fr.eq(base_any | ext_any | up),
            ]
            # E2M1 index of q + carry (+ a fraction fr when no carry) from q alone, three
            # tables (index 7 covers every q ≥ 21)
            idx_f0 = Signal(3, name=f"lane{k_}_i0")
            idx_f1 = Signal(3, name=f"lane{k_}_i1")
            idx_up = Signal(3, name=f"lane{k_}_iu")
            with m.Switch(qv):
                for qq in range(64):
                    with m.Case(qq):
                        m.d.comb += [idx_f0.eq(_e2m1_of(2 * qq)),
                                     idx_f1.eq(_e2m1_of(2 * qq + 1)),
                                     idx_up.eq(_e2m1_of(2 * qq + 2))]
            code = Signal(3, name=f"lane{k_}_code")
            m.d.comb += code.eq(Mux(under, 0, Mux(sat, 7, Mux(carry, idx_up,
                                                                 Mux(fr, idx_f1, idx_f0)))))
            codes.append(Cat(code, sign))

        result = Signal(nvfp4_quantized_block(BLOCK), name="result")
        bad = Signal(name="zero_or_invalid")
        m.d.comb += [
            bad.eq(~self.ts[23:31].any() | regs["invalid"]),
            result.invalid.eq(regs["invalid"]),
            result.scale.eq(Mux(bad, 0, regs["s_code"])),
            *(result.codes[k_].eq(Mux(bad, 0, codes[k_])) for k_ in range(BLOCK)),
        ]
        out = {key: register(Value.cast(value), f"out_{key}", 0 if key == "valid" else None)
               for key, value in (("valid", regs["valid"]), ("payload", result))}
        m.d.comb += [self.o.valid.eq(out["valid"]),
                     Value.cast(self.o.payload).eq(out["payload"])]
        return m
