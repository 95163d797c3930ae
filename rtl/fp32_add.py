"""IEEE-754 binary32 adder with round-to-nearest-even (SPEC §5 cross-block accumulation).

The block dot-product PE accumulates FP32 block contributions ``P · 2^(SE_a + SE_w − 2)`` in
ascending k-block order, starting from +0.0, with FP32 RNE (SPEC §5, **[ours]**). This file is
that adder. Its result is bit-exact with ``numpy.float32(a) + numpy.float32(b)`` for every pair
of finite operands, including:

* signed zeros: ``+0 + −0 = +0``, ``−0 + −0 = −0``, ``x + (−x) = +0`` (RNE sign rule);
* subnormal operands and subnormal results (no flush-to-zero, no denormals-are-zero);
* ties to even, carries out of the significand into the exponent;
* overflow to ±Inf (RNE never saturates to the largest finite value).

**Not supported:** Inf or NaN *inputs* (exponent field 255). With FP16 inputs no FP32 overflow
can occur (SPEC §5), so no Inf ever reaches the PE's accumulator; for such inputs the output
is unspecified (don't care), and no flag is raised.

Datapath (three combinational steps; widths in bits):

1. *align* — order the operands by magnitude (31-bit compare, ties keep ``a``), effective
   exponents ``E = max(exp_field, 1)`` (8), significands with hidden bit (24) extended by 3
   guard bits (27); shift the smaller one right by ``min(Ex − Ey, 27)`` and OR every bit
   shifted out into its bit 0 (sticky).
2. *normalize* — add or subtract (28, with carry); on carry shift right by one keeping sticky,
   otherwise shift left by ``min(leading zeros, Ex − 1)`` (so a result below the normal range
   lands in the subnormal encoding, exponent field 0). Two guard bits plus sticky are enough:
   a left shift of more than one position only happens for ``Ex − Ey <= 1``, where no bit was
   shifted out. The sign of an exactly-zero sum is ``sign_a & sign_b``.
3. *round* — round to nearest, ties to even, by adding the round-up bit to the packed
   ``{exponent, fraction}`` (31): a carry out of the fraction increments the exponent, turns
   the largest subnormal into the smallest normal, and turns exponent 254 into Inf (255/0).
   A normalize-stage exponent of 255 (carry at exponent 254) is forced to Inf.

:class:`FP32Add` wraps the steps in an ``amaranth.lib.stream`` pipeline with ``latency``
register stages (0..3). :func:`fp32_add` instantiates them combinationally inside a caller's
module (the PE's accumulator feedback loop needs a combinational adder for one accumulation
per cycle).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, ValueLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FP32Add", "FP32_ADD_SIGNATURE", "FP32_PAIR", "SEGMENTS", "fp32_add", "leading_zeros",
           "segment_cuts"]

#: Input payload of :class:`FP32Add`: the two binary32 operands as raw bit patterns.
FP32_PAIR = data.StructLayout({"a": 32, "b": 32})

#: Signature of :class:`FP32Add` (independent of its latency).
FP32_ADD_SIGNATURE = wiring.Signature(
    {
        "i": In(stream.Signature(FP32_PAIR)),
        "o": Out(stream.Signature(32)),
    }
)

_EXT = 27  # 24-bit significand (hidden bit at 23) << 3 guard/round/sticky bits

#: After *align*: both operands on the larger one's exponent.
_ALIGNED = data.StructLayout(
    {
        "sign_x": 1,  # sign of the larger-magnitude operand (the sign of a nonzero sum)
        "zero_sign": 1,  # sign of an exactly-zero sum: sign_a & sign_b (RNE)
        "sub": 1,  # effective subtraction: operand signs differ
        "exp": 8,  # effective biased exponent of the larger operand, 1..254
        "x": _EXT,  # larger significand << 3
        "y": _EXT,  # smaller significand << 3, aligned to x; bit 0 = sticky
    }
)

#: After *normalize*: sign, biased exponent field and significand, still unrounded.
_NORMALIZED = data.StructLayout(
    {
        "sign": 1,
        "exp": 8,  # biased exponent field, 0 = subnormal/zero, 255 = overflow
        "sig": _EXT,  # [26] hidden bit, [25:3] fraction, [2] round bit, [1:0] sticky bits
    }
)


def _shift_left(value: Value, amount: Value) -> Value:
    """``value << amount`` truncated to ``len(value)`` bits, as a log-depth mux chain."""
    width = len(value)
    for index, bit in enumerate(amount):
        step = 1 << index
        shifted = Cat(Const(0, step), value)[:width] if step < width else Const(0, width)
        value = Mux(bit, shifted, value)
    return value


#: After *compare* (segment 1): the operands, their order and the exponent distance.
_COMPARED = data.StructLayout(
    {
        "a": 32,
        "b": 32,
        "swap": 1,  # |b| > |a|: b is the larger magnitude
        "shift": 5,  # min(E_x − E_y, 27): the alignment shift
    }
)

#: After *shift* (segment 2): the larger operand's fields and the smaller significand shifted
#: right, the shifted-out bits still separate.
_SHIFTED = data.StructLayout(
    {
        "sign_x": 1,
        "zero_sign": 1,
        "sub": 1,
        "exp": 8,
        "x": _EXT,
        "wide": 2 * _EXT,  # {sig_y, 3'b0, 27'b0} >> shift: top 27 aligned, low 27 shifted out
    }
)

#: After *add* (segment 4): the significand sum and the fields the normalisation needs.
_SUMMED = data.StructLayout(
    {
        "sign_x": 1,
        "zero_sign": 1,
        "exp": 8,
        "total": _EXT + 1,
    }
)

#: After *count* (segment 5): the sum and its normalisation shift.
_COUNTED = data.StructLayout(
    {
        "sign_x": 1,
        "zero_sign": 1,
        "exp": 8,
        "total": _EXT + 1,
        "shift": 5,  # min(leading zeros, exp − 1), 0..27
    }
)


def prefix_add(a: Value, b: Value, carry_in: Value) -> Value:
    """``a + b + carry_in`` of two equal-width unsigned values, ``len(a) + 1`` bits (the top
    bit the carry out), as a Kogge–Stone parallel-prefix adder: log2(width) levels of
    generate/propagate merging instead of a ripple carry chain (the synthesis flow maps a
    plain ``+`` to a ripple chain, which would set the clock of the adder's segments).
    Written with whole-vector operations (shifts by constants are wiring)."""
    width = len(a)
    assert len(b) == width
    prop = a ^ b
    g = (a & b) | Cat(prop[0] & carry_in, Const(0, width - 1))  # carry in folded into bit 0
    p = prop
    dist = 1
    while dist < width:
        g = (g | (p & Cat(Const(0, dist), g[: width - dist])))[:width]
        # bits below ``dist`` have no left neighbour: their group propagate stays (AND 1)
        p = (p & Cat(Const((1 << dist) - 1, dist), p[: width - dist]))[:width]
        dist *= 2
    carries = Cat(carry_in, g)  # carry into bit i; bit ``width`` = the carry out
    return Cat((prop ^ carries[:width])[:width], carries[width])


def _effective_exp(field: Value) -> Value:
    """max(exponent field, 1) of an 8-bit field (subnormals share exponent 1)."""
    return Mux(field.any(), field, 1)


def leading_zeros(value: Value) -> Value:
    """Leading-zero count of ``value`` (``len(value)`` for 0) as a balanced tree: log-depth
    (the (count, all-zero) pairs of both halves merged per level). Width: bit length of
    ``len(value)``."""
    width = len(value)
    size = 1 << max(width - 1, 0).bit_length()
    if size == width:
        size *= 2  # room for the sentinel
    # the sentinel 1 right below the value bits makes an all-zero value count ``width``
    padded = Cat(Const(0, size - width - 1), Const(1, 1), value)
    # level 0: one bit each → (count, zero) with count 0 bits wide
    nodes: list[tuple[Value | None, Value]] = [(None, ~padded[i]) for i in range(size)]
    bits = 0
    while len(nodes) > 1:
        merged = []
        for k in range(0, len(nodes), 2):
            lo, hi = nodes[k], nodes[k + 1]  # hi holds the more significant bits
            lo_count = lo[0] if lo[0] is not None else Const(0, 0)
            hi_count = hi[0] if hi[0] is not None else Const(0, 0)
            count = Mux(hi[1], Cat(lo_count, Const(1, 1)), Cat(hi_count, Const(0, 1)))
            merged.append((count, hi[1] & lo[1]))
        nodes = merged
        bits += 1
    count = nodes[0][0]
    assert count is not None and len(count) == bits
    return count[: width.bit_length()] if bits > width.bit_length() else count


def _compare(m: Module, operands: data.View) -> data.View:
    """Segment 1: magnitude order (swap) and the alignment shift min(E_x − E_y, 27)."""
    a = operands.a
    b = operands.b
    swap = Signal(name="swap")
    diff = Signal(8, name="exp_diff")
    exp_a = _effective_exp(a[23:31])
    exp_b = _effective_exp(b[23:31])
    out = Signal(_COMPARED, name="compared")
    m.d.comb += [
        swap.eq(b[:31] > a[:31]),
        diff.eq(Mux(swap, exp_b - exp_a, exp_a - exp_b)),
        out.a.eq(a),
        out.b.eq(b),
        out.swap.eq(swap),
        # min(diff, 27), written so that no operand needs implicit width extension
        out.shift.eq(Mux(diff[5:].any() | (diff[:5] > _EXT), _EXT, diff[:5])),
    ]
    return out


def _shift(m: Module, cmp: data.View) -> data.View:
    """Segment 2: the operands in magnitude order and the alignment right shift."""
    a, b, swap = cmp.a, cmp.b, cmp.swap
    x = Signal(32, name="op_x")
    y = Signal(32, name="op_y")
    m.d.comb += [x.eq(Mux(swap, b, a)), y.eq(Mux(swap, a, b))]  # x: larger magnitude
    normal_x = x[23:31].any()  # hidden bit
    normal_y = y[23:31].any()
    sig_x = Cat(x[:23], normal_x)  # 24 bits with hidden bit
    sig_y = Cat(y[:23], normal_y)
    out = Signal(_SHIFTED, name="shifted")
    m.d.comb += [
        out.sign_x.eq(x[31]),
        out.zero_sign.eq(a[31] & b[31]),
        out.sub.eq(a[31] ^ b[31]),
        out.exp.eq(_effective_exp(x[23:31])),
        out.x.eq(Cat(Const(0, 3), sig_x)),
        out.wide.eq(Cat(Const(0, _EXT + 3), sig_y) >> cmp.shift),
    ]
    return out


def _sticky(m: Module, sh: data.View) -> data.View:
    """Segment 3: OR every shifted-out bit into bit 0 (sticky): the aligned operands."""
    wide = sh.wide
    aligned = Signal(_ALIGNED, name="aligned")
    m.d.comb += [
        aligned.sign_x.eq(sh.sign_x),
        aligned.zero_sign.eq(sh.zero_sign),
        aligned.sub.eq(sh.sub),
        aligned.exp.eq(sh.exp),
        aligned.x.eq(sh.x),
        aligned.y.eq(Cat(wide[_EXT] | wide[:_EXT].any(), wide[_EXT + 1 :])),
    ]
    return aligned


def _add(m: Module, aligned: data.View) -> data.View:
    """Segment 4: significand add or subtract (28 bits with carry)."""
    out = Signal(_SUMMED, name="summed")
    m.d.comb += [
        out.sign_x.eq(aligned.sign_x),
        out.zero_sign.eq(aligned.zero_sign),
        out.exp.eq(aligned.exp),
    ]
    # x − y = x + ~y + 1 (>= 0: x is the larger magnitude; the carry out is then dropped)
    y = Signal(_EXT, name="add_y")
    m.d.comb += y.eq(Mux(aligned.sub, ~aligned.y, aligned.y))
    total = prefix_add(aligned.x, y, aligned.sub)
    m.d.comb += out.total.eq(Mux(aligned.sub, total[:_EXT], total))
    return out


def _count(m: Module, summed: data.View) -> data.View:
    """Segment 5: leading zeros of the 27-bit sum, limited to exp − 1 (no shift below the
    smallest normal exponent: what remains is a subnormal)."""
    lzc = Signal(5, name="lzc")  # 0..27
    limit = Signal(8, name="lz_limit")
    out = Signal(_COUNTED, name="counted")
    m.d.comb += [
        lzc.eq(leading_zeros(summed.total[:_EXT])),
        limit.eq(summed.exp - 1),
        out.sign_x.eq(summed.sign_x),
        out.zero_sign.eq(summed.zero_sign),
        out.exp.eq(summed.exp),
        out.total.eq(summed.total),
        # min(lzc, limit) with equal-width operands only (lint-clean Verilog)
        out.shift.eq(Mux(limit[5:].any() | (lzc <= limit[:5]), lzc, limit[:5])),
    ]
    return out


def _shift_norm(m: Module, counted: data.View) -> data.View:
    """Segment 6: normalisation shift (right by one on a carry, else left by ``shift``)."""
    total = counted.total
    shifted = Signal(_EXT, name="norm_left")
    m.d.comb += shifted.eq(_shift_left(total[:_EXT], counted.shift))
    # exp − shift as exp + ~{000, shift} + 1: every operand 8 bits wide (lint-clean Verilog)
    minus_shift = Signal(8, name="minus_shift")
    m.d.comb += minus_shift.eq(Cat(~counted.shift, Const(0b111, 3)))
    result = Signal(_NORMALIZED, name="normalized")
    m.d.comb += result.sign.eq(Mux(total.any(), counted.sign_x, counted.zero_sign))
    with m.If(total[_EXT]):  # carry out: shift right by one, keep the dropped bit as sticky
        m.d.comb += [
            result.exp.eq(counted.exp + 1),
            result.sig.eq(Cat(total[0] | total[1], total[2:])),
        ]
    with m.Else():
        m.d.comb += [
            result.exp.eq(Mux(shifted[_EXT - 1], counted.exp + minus_shift + 1, 0)),
            result.sig.eq(shifted),
        ]
    return result


def _align(m: Module, operands: data.View) -> data.View:
    """Step 1: magnitude order, exponent difference and alignment shift with sticky."""
    return _sticky(m, _shift(m, _compare(m, operands)))


def _normalize(m: Module, aligned: data.View) -> data.View:
    """Step 2: significand add/subtract, leading-zero count and normalization shift."""
    return _shift_norm(m, _count(m, _add(m, aligned)))


def _round(m: Module, norm: data.View) -> Value:
    """Step 3: round to nearest even and pack; overflow gives ±Inf."""
    sig = norm.sig
    round_up = Signal(name="round_up")
    m.d.comb += round_up.eq(sig[2] & (sig[1] | sig[0] | sig[3]))
    packed = Signal(31, name="packed")  # {exponent field, fraction}, carry flows into exponent
    m.d.comb += packed.eq(prefix_add(Cat(sig[3:26], norm.exp), Const(0, 31), round_up)[:31])
    result = Signal(32, name="result")
    m.d.comb += result.eq(Cat(Mux(norm.exp.all(), 0xFF << 23, packed), norm.sign))
    return result


#: The adder as seven segments in order (operands → binary32 sum), the places where a deeper
#: pipeline (the PE's C-slow accumulator) may put registers; each returns one signal of its
#: segment's layout.
SEGMENTS: tuple[Callable[[Module, data.View], data.View | Value], ...] = (
    _compare, _shift, _sticky, _add, _count, _shift_norm, _round,
)

#: Estimated delay of each segment (ns, OSU 180 nm, measured with the flow of
#: ``docs/ARCHITECTURE.md`` "Pipeline"): what :func:`segment_cuts` balances.
SEGMENT_DELAYS = (2.4, 2.6, 1.6, 2.6, 1.8, 1.8, 2.6)


def segment_cuts(stages: int) -> tuple[int, ...]:
    """Register positions of a ``stages``-deep adder pipeline (1 … len(SEGMENTS)): the indices
    k (1-based) of the segments a register follows, the last always after the final segment;
    chosen to minimise the largest estimated stage delay (:data:`SEGMENT_DELAYS`)."""
    n = len(SEGMENTS)
    if not 1 <= stages <= n:
        raise ValueError(f"stages: must be 1..{n}, got {stages}")
    best: tuple[float, tuple[int, ...]] | None = None
    for inner in itertools.combinations(range(1, n), stages - 1):
        cuts = (*inner, n)
        start, worst = 0, 0.0
        for cut in cuts:
            worst = max(worst, sum(SEGMENT_DELAYS[start:cut]))
            start = cut
        if best is None or worst < best[0]:
            best = (worst, cuts)
    assert best is not None
    return best[1]


_STEPS: tuple[Callable[[Module, data.View], data.View | Value], ...] = (
    _align,
    _normalize,
    _round,
)


def fp32_add(m: Module, a: ValueLike, b: ValueLike) -> Value:
    """Build a combinational binary32 adder in ``m``; return the 32-bit sum of ``a`` and ``b``.

    ``a`` and ``b`` are 32-bit raw IEEE-754 bit patterns. Same arithmetic as :class:`FP32Add`.
    """
    operands = Signal(FP32_PAIR, name="operands")
    m.d.comb += [operands.a.eq(a), operands.b.eq(b)]
    value = operands
    for step in _STEPS:
        value = step(m, value)
    return value


class FP32Add(wiring.Component):
    """Streaming IEEE-754 binary32 adder, RNE, bit-exact with NumPy for finite inputs.

    Parameters
    ----------
    latency : int
        Register stages, 0..3 (default 2). The registers sit after the *align* (latency >= 1),
        *normalize* (>= 2) and *round* (3) steps; latency 0 is purely combinational (``o.valid``
        is ``i.valid``, ``i.ready`` is ``o.ready``). With ``o.ready`` held high a sum leaves
        ``latency`` cycles after its operands are accepted, and the adder accepts one pair per
        cycle (throughput 1/cycle). Back-pressure stalls only as far as needed: an empty stage
        accepts data even while the output is stalled. ``i.ready`` depends combinationally on
        ``o.ready``; ``o.valid`` never depends on ``o.ready``.

    Members
    -------
    i : ``In(stream.Signature(FP32_PAIR))``
        Operands: ``payload.a`` (bits 31:0) and ``payload.b`` (bits 63:32), raw binary32.
    o : ``Out(stream.Signature(32))``
        ``a + b`` as raw binary32 (unspecified if an operand is Inf or NaN).
    """

    MAX_LATENCY = len(_STEPS)

    def __init__(self, *, latency: int = 2) -> None:
        latency = operator.index(latency)
        if not 0 <= latency <= self.MAX_LATENCY:
            raise ValueError(f"latency must be 0..{self.MAX_LATENCY}, not {latency}")
        self._latency = latency
        super().__init__(FP32_ADD_SIGNATURE)

    @property
    def latency(self) -> int:
        """Cycles from accepting an operand pair to presenting its sum (without stalls)."""
        return self._latency

    def elaborate(self, platform: object) -> Module:
        m = Module()

        valid: Value = self.i.valid
        value: data.View | Value = self.i.payload
        stages: list[tuple[Signal, Signal]] = []  # (valid register, load enable) per stage
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

        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.eq(value),
        ]
        # A stage loads when it is empty or its contents move on in the same cycle.
        ready: Value = self.o.ready
        for stage_valid, stage_load in reversed(stages):
            m.d.comb += stage_load.eq(~stage_valid | ready)
            ready = stage_load
        m.d.comb += self.i.ready.eq(ready)

        return m
