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

import operator
from collections.abc import Callable

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, ValueLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FP32Add", "FP32_ADD_SIGNATURE", "FP32_PAIR", "fp32_add"]

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


def _align(m: Module, operands: data.View) -> data.View:
    """Step 1: magnitude order, exponent difference and alignment shift with sticky."""
    a = operands.a
    b = operands.b
    swap = Signal(name="swap")
    m.d.comb += swap.eq(b[:31] > a[:31])
    x = Mux(swap, b, a)  # larger magnitude
    y = Mux(swap, a, b)

    normal_x = x[23:31].any()  # hidden bit
    normal_y = y[23:31].any()
    exp_x = Signal(8, name="exp_x")
    exp_y = Signal(8, name="exp_y")
    m.d.comb += [
        exp_x.eq(Mux(normal_x, x[23:31], 1)),
        exp_y.eq(Mux(normal_y, y[23:31], 1)),
    ]
    sig_x = Cat(x[:23], normal_x)  # 24 bits with hidden bit
    sig_y = Cat(y[:23], normal_y)

    diff = Signal(8, name="exp_diff")
    shift = Signal(8, name="align_shift")
    m.d.comb += [
        diff.eq(exp_x - exp_y),
        # min(diff, 27), written so that no operand needs implicit width extension
        shift.eq(Mux(diff[5:].any() | (diff[:5] > _EXT), _EXT, diff)),
    ]
    # {sig_y, 3'b0, 27'b0} >> shift: the top 27 bits are the aligned operand, the low 27 bits
    # are what was shifted out.
    wide = Signal(2 * _EXT, name="align_wide")
    m.d.comb += wide.eq(Cat(Const(0, _EXT + 3), sig_y) >> shift[:5])

    aligned = Signal(_ALIGNED, name="aligned")
    m.d.comb += [
        aligned.sign_x.eq(x[31]),
        aligned.zero_sign.eq(a[31] & b[31]),
        aligned.sub.eq(a[31] ^ b[31]),
        aligned.exp.eq(exp_x),
        aligned.x.eq(Cat(Const(0, 3), sig_x)),
        aligned.y.eq(Cat(wide[_EXT] | wide[:_EXT].any(), wide[_EXT + 1 :])),
    ]
    return aligned


def _normalize(m: Module, aligned: data.View) -> data.View:
    """Step 2: significand add/subtract, leading-zero count and normalization shift."""
    total = Signal(_EXT + 1, name="sum")
    with m.If(aligned.sub):
        m.d.comb += total.eq(aligned.x - aligned.y)  # >= 0: x is the larger magnitude
    with m.Else():
        m.d.comb += total.eq(aligned.x + aligned.y)

    # Leading zeros of total[:27]; 27 for a zero sum. Later (more significant) bits win.
    lzc = Signal(8, name="lzc")
    m.d.comb += lzc.eq(_EXT)
    for bit in range(_EXT):
        with m.If(total[bit]):
            m.d.comb += lzc.eq(_EXT - 1 - bit)

    # Do not shift below the smallest normal exponent: what remains is a subnormal.
    limit = Signal(8, name="lz_limit")
    shift = Signal(8, name="norm_shift")
    m.d.comb += [
        limit.eq(aligned.exp - 1),
        shift.eq(Mux(lzc > limit, limit, lzc)),
    ]
    shifted = Signal(_EXT, name="norm_left")
    m.d.comb += shifted.eq(_shift_left(total[:_EXT], shift[:5]))

    result = Signal(_NORMALIZED, name="normalized")
    m.d.comb += result.sign.eq(Mux(total.any(), aligned.sign_x, aligned.zero_sign))
    with m.If(total[_EXT]):  # carry out: shift right by one, keep the dropped bit as sticky
        m.d.comb += [
            result.exp.eq(aligned.exp + 1),
            result.sig.eq(Cat(total[0] | total[1], total[2:])),
        ]
    with m.Else():
        m.d.comb += [
            result.exp.eq(Mux(shifted[_EXT - 1], aligned.exp - shift, 0)),
            result.sig.eq(shifted),
        ]
    return result


def _round(m: Module, norm: data.View) -> Value:
    """Step 3: round to nearest even and pack; overflow gives ±Inf."""
    sig = norm.sig
    round_up = Signal(name="round_up")
    m.d.comb += round_up.eq(sig[2] & (sig[1] | sig[0] | sig[3]))
    packed = Signal(31, name="packed")  # {exponent field, fraction}, carry flows into exponent
    m.d.comb += packed.eq(Cat(sig[3:26], norm.exp) + round_up)
    result = Signal(32, name="result")
    m.d.comb += result.eq(Cat(Mux(norm.exp.all(), 0xFF << 23, packed), norm.sign))
    return result


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
