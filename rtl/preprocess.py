"""Block preprocessor (SPEC §2): FP16 lanes → shared exponent, quarter-unit magnitudes, signs.

Derivation (all from the FP16 fields; no arithmetic on values). Lane i has sign bit s_i,
exponent field e_i (5 bits) and fraction f_i (10 bits). With the *effective exponent*
E_i = max(e_i, 1) and the significand m_i = {e_i ≠ 0, f_i} (11 bits), every finite value is
|x_i| = m_i · 2^(E_i − 25), subnormals included.

* M = max |x_i| has the largest exponent field, e_max = max e_i (comparing 5-bit fields
  instead of 15-bit magnitudes). For e_max ≥ 1, floor(log2 M) = e_max − 15, so
  SE = max(e_max − 17, −16); for e_max = 0 (M subnormal or 0), floor(log2 M) ≤ −15 and
  SE = −16. Both cases: **SE field = SE + 16 = max(e_max, 1) − 1 = E_max − 1** ∈ [0, 29]
  (the clamp at −16 is exactly the subnormal/zero case).
* q_i = floor(|x_i| · 2^(2 − SE)) = floor(m_i · 2^(E_i − 25 + 2 − (E_max − 17)))
  = floor(m_i · 2^(E_i − E_max − 6)) = **(m_i >> 6) >> (E_max − E_i)**: the top 5 bits of the
  significand shifted right by the exponent distance (≥ 5 gives 0). q_i ≤ 31.
* sign_i = s_i (−0.0 keeps sign 1, SPEC §2).
* invalid = some e_i = 31 (NaN or ±Inf; SPEC §2). Then ``se``, ``q`` and ``sign`` are
  unspecified (downstream forces codes 0, SE field 0, dialect 0).

**Split around a register** (:func:`preprocess_front`, :func:`preprocess_back`; what a
pipelined :class:`~rtl.selector.FormatSelector` with ``raw=True`` uses, its held register
sitting between the halves): the front is the first log2 B − 1 levels of the exponent max
tree (the two partial maxima) with each lane's sign, E_i and top five significand bits and the
block's ``invalid`` (:func:`partial_block`, 11·B + 11 bits); the back is the last max level,
E_max, the distances and the shifts. At 180 nm the whole preprocessor is 5.6 ns at B = 32,
the front four compare–mux levels (≈ 3 ns).
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.golden.blocks import BLOCK_SIZES
from semdialect.rtl.layouts import SE_BITS, fp16_block, preprocessed_block
from semdialect.rtl.trees import tree_depth, tree_max, tree_reduce

__all__ = ["BlockPreprocessor", "check_block", "partial_block", "preprocess_back",
           "preprocess_front"]

_FRAC_BITS = 10
_EXP_BITS = 5
_Q_SHIFT = 6  # q = significand >> (6 + E_max - E_i)
_SIGN_BIT = 15


def check_block(block: int) -> int:
    """Validate the block size B (SPEC §2: 16, 32 or 64); ``ValueError`` naming ``block``."""
    if isinstance(block, bool):
        raise ValueError(f"block: expected an integer, got {block!r}")
    try:
        block = operator.index(block)
    except TypeError:
        raise ValueError(f"block: expected an integer, got {block!r}") from None
    if block not in BLOCK_SIZES:
        raise ValueError(f"block: must be one of {BLOCK_SIZES}, got {block}")
    return block


class BlockPreprocessor(wiring.Component):
    """SPEC §2 preprocessing of one FP16 block per cycle (combinational stream stage).

    Latency 0 (``o.payload`` is a combinational function of ``i.payload``), initiation
    interval 1 block/cycle; ``o.valid`` is ``i.valid`` and ``i.ready`` is ``o.ready``. Logic:
    a 5-bit max tree over the B exponent fields (log2 B levels), one 5-bit subtractor and one
    5-bit barrel shifter per lane, a B-input AND/OR for ``invalid``.

    Parameters
    ----------
    block : int
        B, elements per block: 16, 32 or 64.

    Members
    -------
    i : ``In(stream.Signature(fp16_block(B)))``
        ``x``: B FP16 bit patterns (16·B bits).
    o : ``Out(stream.Signature(preprocessed_block(B)))``
        ``se`` (5, SE + 16), ``q`` (B × 5, quarter units), ``sign`` (B × 1), ``invalid`` (1).
    """

    def __init__(self, block: int) -> None:
        self._block = check_block(block)
        super().__init__({
            "i": In(stream.Signature(fp16_block(self._block))),
            "o": Out(stream.Signature(preprocessed_block(self._block))),
        })

    @property
    def block(self) -> int:
        """B, elements per block."""
        return self._block

    @property
    def latency(self) -> int:
        """Cycles from input to output: 0 (combinational)."""
        return 0

    def elaborate(self, platform: object) -> Module:
        m = Module()
        lanes = self.i.payload.x
        out = self.o.payload

        exps = [lanes[i][_FRAC_BITS : _FRAC_BITS + _EXP_BITS] for i in range(self._block)]
        e_max = Signal(_EXP_BITS)
        e_max_eff = Signal(_EXP_BITS)  # E_max = max(e_max, 1)
        m.d.comb += [
            e_max.eq(tree_max(exps)),
            e_max_eff.eq(Mux(e_max.any(), e_max, 1)),
            out.se.eq((e_max_eff - 1)[:SE_BITS]),
            out.invalid.eq(Cat(e.all() for e in exps).any()),
        ]
        for i in range(self._block):
            x = lanes[i]
            e = exps[i]
            normal = e.any()
            distance = Signal(_EXP_BITS, name=f"distance{i}")  # E_max - E_i, 0..29
            m.d.comb += [
                distance.eq(e_max_eff - Mux(normal, e, 1)),
                # top 5 bits of the 11-bit significand {normal, fraction}
                out.q[i].eq(Cat(x[_Q_SHIFT:_FRAC_BITS], normal) >> distance),
                out.sign[i].eq(x[_SIGN_BIT]),
            ]

        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready),
        ]
        return m


# -- the preprocessor split around a register --------------------------------------------------

#: partial maxima the front hands over: the max tree's values after level log2 B − 1
_PARTIALS = 2
_LANE_SIG = 5  # {normal, fraction[9:6]}


def partial_block(block: int) -> data.StructLayout:
    """What :func:`preprocess_front` produces for a block of B lanes: ``e_max`` (2 × 5, the
    partial maxima of the exponent fields), ``invalid`` (1) and per lane ``sig`` (5, the top
    five significand bits {normal, fraction[9:6]}), ``e_eff`` (5, E_i = max(e_i, 1)) and
    ``sign`` (1)."""
    check_block(block)
    lane = data.StructLayout({"sig": _LANE_SIG, "e_eff": _EXP_BITS, "sign": 1})
    return data.StructLayout({
        "e_max": data.ArrayLayout(_EXP_BITS, _PARTIALS),
        "invalid": 1,
        "lanes": data.ArrayLayout(lane, block),
    })


def _max(a: Value, b: Value) -> Value:
    return Mux(b > a, b, a)


def preprocess_front(x: Value, block: int) -> Value:
    """The front half of the preprocessor for the FP16 lanes ``x`` (``fp16_block(B).x``):
    a ``partial_block(B)`` value (combinational; the caller registers it)."""
    exps = [x[i][_FRAC_BITS : _FRAC_BITS + _EXP_BITS] for i in range(block)]
    cut = tree_depth(block) - 1
    partial: list[Value] = []

    def stage(level: int, values: list[Value]) -> list[Value]:
        if level == cut:
            partial.extend(values)
        return values

    tree_reduce(exps, _max, stage=stage)
    assert len(partial) == _PARTIALS  # B is a power of two, at least 16
    lanes = []
    for i in range(block):
        normal = exps[i].any()
        lanes.append(Cat(x[i][_Q_SHIFT:_FRAC_BITS], normal, Mux(normal, exps[i], 1),
                         x[i][_SIGN_BIT]))
    value = Cat(*partial, Cat(e.all() for e in exps).any(), *lanes)
    assert len(value) == partial_block(block).size
    return value


def preprocess_back(m: Module, partial: data.View, name: str = "pre") -> data.View:
    """The back half: the preprocessed block (``preprocessed_block(B)``, combinational) of a
    ``partial_block(B)`` view; equal to :class:`BlockPreprocessor`'s output for the same x."""
    block = len(partial.lanes)
    out = Signal(preprocessed_block(block), name=name)
    e_max = Signal(_EXP_BITS, name=f"{name}_e_max")
    e_max_eff = Signal(_EXP_BITS, name=f"{name}_e_max_eff")  # E_max = max(e_max, 1)
    m.d.comb += [
        e_max.eq(_max(partial.e_max[0], partial.e_max[1])),
        e_max_eff.eq(Mux(e_max.any(), e_max, 1)),
        out.se.eq((e_max_eff - 1)[:SE_BITS]),
        out.invalid.eq(partial.invalid),
    ]
    for i in range(block):
        lane = partial.lanes[i]
        distance = Signal(_EXP_BITS, name=f"{name}_distance{i}")  # E_max - E_i, 0..29
        m.d.comb += [
            distance.eq(e_max_eff - lane.e_eff),
            out.q[i].eq(lane.sig >> distance),
            out.sign[i].eq(lane.sign),
        ]
    return out
