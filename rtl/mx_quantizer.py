"""OCP MX activation quantizer (SPEC §8): FP16 block → MXFP4 or MXINT8 block, one per cycle.

The baselines' counterpart of the dialect frontend (:class:`~rtl.block_quantizer.
BlockQuantizer`): one generator, parameterised by the element kind
(:meth:`rtl.block_decoder.ElementKind.for_design` of ``PEKind.MXFP4`` or ``PEKind.MXINT8``),
whose output's ``codes`` and ``scale`` fields are exactly ``kind.encoded_layout``, the operand
layout of ``BlockPE(kind)``.

Numbers (bit-exact with :class:`golden.formats.MXFP4` / :class:`~golden.formats.MXINT8`):
with amax = max |x_i| and fl = floor(log2 amax),

* MXFP4: E8M0 byte = fl − 2 + 127 (amax = 0: byte 0); element = E2M1 of x · 2^−(fl − 2)
  with RNE, saturating at ±6; code = sign << 3 | magnitude index, sign = the FP16 sign bit
  (−0 keeps 1, also when the magnitude rounds to 0).
* MXINT8: E8M0 byte = fl + 127 (amax = 0: byte 0); element = clamp(RNE(x · 2^(6 − fl)),
  −127, 127), two's complement (−128 is never produced).

The element rule is data derived from the kind (:class:`MXRule`): the element unit u
(element integer = |x| · 2^(u − fl): the largest |x| of a block lands in [2^u, 2^(u+1))
element units: HU 8..16 for E2M1, 64..128 for int8), the kind's magnitude grid (E2M1's HU
values, the decoder's book, rounded with golden's :func:`~golden.grid.nearest_index`, ties to
even) or none (integer elements, round half to even, clamp at 2^(bits−1) − 1).

Derivation from the FP16 fields (no arithmetic on values). Lane i has sign s_i, exponent
field e_i, fraction f_i, significand m_i = {e_i ≠ 0, f_i} (11 bits), effective exponent
E_i = max(e_i, 1): |x_i| = m_i · 2^(E_i − 25).

* e_max = max e_i (two thermometer passes: the top 3 bits' maximum H = the OR over lanes of
  each (e_i[2:] ≥ k), then the low 2 bits over the lanes with e_i[2:] = H), E_max =
  max(e_max, 1). The block's leading bit position
  inside an 11-bit significand is L = 10 when e_max ≥ 1; for a block of subnormals and zeros
  (e_max = 0) it is the top set bit of F = OR_i f_i (the OR's top bit is the maximum's).
  Then **fl = E_max + L − 25**, and the E8M0 byte = E_max + L + (127 − 25 − emax), where
  emax = floor(log2 of the largest element) − u (2 for E2M1, 0 for int8). amax = 0 exactly
  when e_max = 0 and F = 0.
* t_i = floor(|x_i| · 2^(u + 1 − fl)) (W = u + 2 bits: element units plus one guard bit)
  = floor((m_i · 2^(W − 1)) / 2^(a_i)) with **a_i = L + (E_max − E_i)**, and
  sticky_i = (the bits shifted out are not all zero): a right shift with sticky of the
  (10 + W)-bit value m_i << (W − 1) by a_i. Any a_i ≥ 10 + W gives t = 0, so the hardware
  clamps the distance: d_i = min(E_max − E_i, W), and a_i = 10 + d_i in a normal block
  (e_max ≥ 1), a_i = the top bit of F in a subnormal one (there every E_i = 1 = E_max).
* E8M0 byte: two constant tables (e_max → byte for normal blocks, top bit of F → byte for
  subnormal ones), from :meth:`MXRule.scale_byte`.
* element: E2M1 index = ROM[t_i, sticky_i] (2^(W+1) = 64 words of 3 bits: word
  (t << 1 | s) = golden's ties-to-even grid rounding of (t + s/2) / 2 element units (HU);
  every midpoint of the grid is a whole number of guard units, asserted at construction,
  so s = 1 stands for any value strictly inside (t, t + 1)); int8: with whole = t_i >> 1
  and up = g_i & (sticky_i | lsb_i) (round half to even), code = ±(whole + up) in one adder
  ((whole ⊕ s_i·0xFF) + (up ⊕ s_i): −v = ~v + 1), clamped to ±127 when whole = 127 rounds
  up (the only magnitude above 127).
* invalid = some e_i = 31 (NaN or ±Inf). Golden raises on such a block; the hardware flags
  it and emits codes 0 and scale byte 0 (SPEC §8 [ours], as the dialect frontend, SPEC §2).

Pipeline (``stages`` register stages = the latency; default 2, :data:`MX_QUANTIZER_STAGES`)::

    i ─► e_max, F, its top bit, invalid; per lane d_i = min(E_max − E_i, W)
      ═► blk: (m_i, s_i, d_i) × B, e_max, block kind, msb, zero, invalid     (stages ≥ 2)
      ─► scale tables; per lane a_i and the shift with sticky
      ═► lane: (t, sticky, sign) × B, scale, invalid                         (stages = 3)
      ─► round / E2M1 ROM; NaN/Inf block → codes 0, scale 0
      ═► o (codes, scale, invalid)                                           (always)

Measured on the liberty flow (:func:`semdialect.sim.asic.synthesize_liberty`, OSU 0.18 µm,
4 ns target; area µm² / f_max MHz, MXFP4 and MXINT8):

======  ===================  ===================  ==========================================
stages  MXFP4                MXINT8               critical path
======  ===================  ===================  ==========================================
1       176 367 / 212.3      254 242 / 187.3      input → output register
**2**   255 171 / 283.2      339 136 / 296.1      input → blk
3       284 068 / 254.7      396 958 / 290.2      input → blk
======  ===================  ===================  ==========================================

(The former two-stage design, registers after the shift and at the output: 233 606 / 166.0
and 321 161 / 163.5, its critical path input → the lane register through the 5-level max
tree and the shift-amount arithmetic.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from semdialect.designs import PEKind
from semdialect.golden.formats import E8M0_BIAS
from semdialect.golden.grid import nearest_index
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.layouts import FP16_BITS, fp16_block
from semdialect.rtl.trees import enabled_register, ge_const, thermometer_value, tree_reduce

__all__ = [
    "MX_QUANTIZER_LATENCY",
    "MX_QUANTIZER_MAX_STAGES",
    "MX_QUANTIZER_STAGES",
    "MXQuantizer",
    "MXRule",
    "encoded_view",
    "mx_quantized_block",
]

#: Most register stages :class:`MXQuantizer` can have (block analysis, lanes, output).
MX_QUANTIZER_MAX_STAGES = 3
#: The default register stages: block analysis and output (≥ 250 MHz at 180 nm, module
#: docstring).
MX_QUANTIZER_STAGES = 2
#: Cycles from accepting a block at ``i`` to presenting it at ``o`` (``o.ready`` high) of the
#: default quantizer: one per register stage.
MX_QUANTIZER_LATENCY = MX_QUANTIZER_STAGES

_FRAC_BITS = 10
_EXP_BITS = 5
_SIGN_BIT = FP16_BITS - 1
#: FP16: |x| = m · 2^(E − 25) with the 11-bit significand m and E = max(e, 1)
_FP16_SIG_SHIFT = 25
#: lanes served by one copy of the registered block kind and msb (the shift amount's inputs)
_LANES_PER_COPY = 8


@dataclass(frozen=True)
class MXRule:
    """An MX element rule as data (see the module docstring), derived from an
    :class:`~rtl.block_decoder.ElementKind` by :meth:`for_kind`.

    Attributes
    ----------
    element_bits : int
        Code width (4 or 8).
    unit : int
        u: element integer = |x| · 2^(u − fl); the block maximum lands in [2^u, 2^(u+1)).
    emax : int
        fl − scale exponent (E2M1: 2, int8: 0).
    grid : tuple[int, ...] | None
        Magnitudes in element units, index = code magnitude (E2M1: HU 0 1 2 3 4 6 8 12,
        sign-magnitude codes), or None: two's-complement integer elements clamped at
        ±(2^(element_bits − 1) − 1).
    """

    element_bits: int
    unit: int
    emax: int
    grid: tuple[int, ...] | None

    @classmethod
    def for_kind(cls, kind: ElementKind) -> MXRule:
        """The rule of a fixed-format MX kind: the grid is its decoder's book (None for
        integer elements); u = floor(log2 largest magnitude); emax = u − (exp_offset − E8M0
        bias), the element unit's exponent relative to the scale."""
        bits = kind.pe.element_format().element_bits
        if kind.formatbook is not None:
            grid = tuple(int(v) for v in kind.formatbook.hu[0])
            largest = max(grid)
        else:
            grid = None
            largest = (1 << (bits - 1)) - 1
        unit = largest.bit_length() - 1
        return cls(bits, unit, unit - (kind.exp_offset - E8M0_BIAS), grid)

    @property
    def window(self) -> int:
        """W = u + 2: bits of t (element units plus one guard bit)."""
        return self.unit + 2

    def scale_byte(self, e_max_eff: int, lead: int) -> int:
        """E8M0 byte fl − emax + 127 of a non-zero block with E_max = ``e_max_eff`` and
        leading position L = ``lead`` (fl = E_max + L − 25)."""
        return e_max_eff + lead - _FP16_SIG_SHIFT - self.emax + E8M0_BIAS

    def grid_table(self) -> list[int]:
        """Grid kinds: ROM word (t << 1 | sticky) = the magnitude index of (t + sticky/2)
        element half-units, by golden's ties-to-even rounding on the grid (saturating)."""
        assert self.grid is not None
        t = np.arange(1 << self.window)
        grid = np.array(self.grid, np.float64)
        exact = nearest_index(t / 2, grid, ties="even")
        inside = nearest_index((t + 0.5) / 2, grid, ties="even")
        # every midpoint of the grid is a multiple of the half unit, so (t, t + 1) holds none
        assert np.array_equal(inside, nearest_index((t + 0.99) / 2, grid, ties="even"))
        assert np.array_equal(inside, nearest_index((t + 0.01) / 2, grid, ties="even"))
        return [int(v) for pair in zip(exact, inside, strict=True) for v in pair]


def mx_quantized_block(kind: ElementKind) -> data.StructLayout:
    """The quantizer's output: the fields of ``kind.encoded_layout`` at the same offsets —
    ``codes`` (32 × 4 E2M1 sign-magnitude, or 32 × 8 int8 two's complement) and ``scale``
    (8, E8M0 byte) — then ``invalid`` (1: the block held NaN/Inf; codes and scale are 0).
    The low ``kind.encoded_layout.size`` bits are the ``BlockPE(kind)`` operand
    (:func:`encoded_view`)."""
    return data.StructLayout({**kind.encoded_layout.members, "invalid": 1})


def encoded_view(kind: ElementKind, payload: data.View | Value) -> data.View:
    """The ``kind.encoded_layout`` view (``codes``, ``scale``) of an :func:`mx_quantized_block`
    payload, e.g. ``pe.i.payload.a.eq(encoded_view(kind, q.o.payload))``."""
    layout = kind.encoded_layout
    return data.View(layout, Value.cast(payload)[: layout.size])


def _resolve_kind(kind: ElementKind | PEKind | str) -> ElementKind:
    if isinstance(kind, bool):
        raise ValueError(f"kind: expected an MX element kind, got {kind!r}")
    if not isinstance(kind, ElementKind):
        if not isinstance(kind, PEKind | str):
            raise ValueError(f"kind: expected an MX element kind, got {kind!r}")
        pe = PEKind.of(kind)  # ValueError naming kind and the choices
        if pe.has_dialects:
            raise ValueError(f"kind: {pe.value} selects dialects (use BlockQuantizer); "
                             "MXQuantizer needs a fixed-format MX kind")
        kind = ElementKind.for_design(pe)
    if kind.pe.has_dialects:
        raise ValueError(f"kind: {kind.name} selects dialects (use BlockQuantizer); "
                         "MXQuantizer needs a fixed-format MX kind")
    fmt = kind.pe.element_format()
    if (kind.block != fmt.block_size(None) or fmt.scale_bits() != 8 or not kind.pe.pow2_scaled
            or kind.pe.has_tensor_scale):  # NVFP4 (E4M3 scale, FP32 tensor scale): no
        raise ValueError(f"kind: {kind.name} is not an OCP MX kind (E8M0 scale, B = 32)")
    return kind


def _shift_right_sticky(m: Module, value: Value, amount: Value, name: str
                        ) -> tuple[Value, Value]:
    """(``value >> amount``, OR of the bits shifted out) as a log-depth mux chain."""
    width = len(value)
    sticky: Value = Const(0, 1)
    for index, bit in enumerate(amount):
        step = 1 << index
        if step < width:
            shifted = Cat(value[step:], Const(0, step))
            dropped = value[:step].any()
        else:
            shifted = Const(0, width)
            dropped = value.any()
        level = Signal(width, name=f"{name}_s{index}")
        lost = Signal(name=f"{name}_k{index}")
        m.d.comb += [
            level.eq(Mux(bit, shifted, value)),
            lost.eq(sticky | (bit & dropped)),
        ]
        value, sticky = level, lost
    return value, sticky


def _msb(value: Value) -> Value:
    """Index of the highest set bit of ``value`` (0 when ``value`` is 0)."""
    width = max(1, (len(value) - 1).bit_length())
    out: Value = Const(0, width)
    for bit in range(len(value)):  # later (more significant) bits win
        out = Mux(value[bit], bit, out)
    return out


def _fast_max(m: Module, values: list[Value], name: str, low: int = 2) -> Signal:
    """Maximum of unsigned ``values`` in two thermometer passes (shallower than a compare
    tree): the high parts' maximum H = OR over lanes of each (high ≥ k), then the low parts'
    maximum over the lanes whose high part is H."""
    width = len(values[0])
    his = [v[low:] for v in values]
    los = [v[:low] for v in values]
    hi_max = Signal(width - low, name=f"{name}_hi")
    m.d.comb += hi_max.eq(thermometer_value(
        [Cat(*(ge_const(h, k) for h in his)).any() for k in range(1, 1 << (width - low))]))
    cands = [Signal(name=f"{name}_c{i}") for i in range(len(values))]
    m.d.comb += [c.eq(h == hi_max) for c, h in zip(cands, his, strict=True)]
    lo_max = Signal(low, name=f"{name}_lo")
    m.d.comb += lo_max.eq(thermometer_value(
        [Cat(*(c & ge_const(lo, k) for c, lo in zip(cands, los, strict=True))).any()
         for k in range(1, 1 << low)]))
    out = Signal(width, name=name)
    m.d.comb += out.eq(Cat(lo_max, hi_max))
    return out


class MXQuantizer(wiring.Component):
    """OCP MX block quantization of FP16 activations (module docstring), stream-handshaked.

    **Latency** :attr:`latency` = ``stages`` cycles (default 2, :data:`MX_QUANTIZER_LATENCY`:
    a block accepted at ``i`` in cycle t is at ``o`` in cycle t + 2 when ``o.ready`` is high),
    **initiation interval 1** block per cycle. Every register loads with one stall enable
    ``en = ~o.valid | o.ready`` (its fanout is a buffer tree of the synthesis flow: fewer cells
    than replicated enables, :class:`~rtl.trees.Enables`, and off the critical path), and
    ``i.ready = en``: ``i.ready`` depends combinationally on ``o.ready``, no ``valid`` depends on a
    ``ready``; ``o.valid``/``o.payload`` are registers and hold still while ``o.ready`` is
    low (so does every stage behind them). Default: ≥ 250 MHz at 180 nm (module docstring).

    Storage (stages ≥ 2): the blk register B × (13 + ⌈log2(W + 1)⌉) bits (fraction, normal
    bit, sign, d_i; W = 5 for MXFP4, 8 for MXINT8) + 5 (e_max) + 4 (msb) + 3 (kind, zero,
    invalid) + 5 per 8 lanes (copies of the block kind and msb: the shift amounts' fanout) +
    valid; stages = 3 adds B × (W + 2) (t, sticky, sign) + 9 + valid; the output payload
    (B × 4 + 9 or B × 8 + 9) + valid. Logic: the two-pass 5-bit maximum and a 10-bit OR tree
    over the lanes, a 10-bit priority encoder, two small scale tables, per lane a 5-bit
    subtract and clamp, a table (10 + d_i), a mux and a (10 + W)-bit right shift with sticky
    (MXINT8: a W-bit shift by d_i and a (9 + W)-bit shift by msb, the block kind selecting);
    then per lane a 64 × 3 ROM (MXFP4) or an 8-bit increment and clamp (MXINT8).

    Parameters
    ----------
    kind : ElementKind | PEKind | str
        A fixed-format MX kind: ``ElementKind.for_design(PEKind.MXFP4)`` or
        ``ElementKind.for_design(PEKind.MXINT8)`` (a PEKind or its name is resolved the same
        way). ``ValueError`` naming ``kind`` otherwise (also for NVFP4: E4M3 scale).
    stages : int
        Register stages 1..3 (default 2, :data:`MX_QUANTIZER_STAGES`): 1 = the output register
        only, 2 = + the register after the block analysis, 3 = + the register after the
        lane shifts. :attr:`latency` = ``stages``. ``ValueError`` naming ``stages`` otherwise.

    Members
    -------
    i : ``In(stream.Signature(fp16_block(32)))``
        ``x``: 32 FP16 bit patterns (512 bits, lane i at [16i, 16i + 16)).
    o : ``Out(stream.Signature(mx_quantized_block(kind)))``
        ``codes`` (32 × 4 or 32 × 8) and ``scale`` (8, E8M0) — ``kind.encoded_layout`` at
        the same offsets — then ``invalid`` (1). 137 bits (MXFP4) or 265 bits (MXINT8).
    """

    def __init__(self, kind: ElementKind | PEKind | str, *,
                 stages: int = MX_QUANTIZER_STAGES) -> None:
        if isinstance(stages, bool) or not isinstance(stages, int) or not (
                1 <= stages <= MX_QUANTIZER_MAX_STAGES):
            raise ValueError(f"stages: must be an integer 1..{MX_QUANTIZER_MAX_STAGES}, "
                             f"got {stages!r}")
        self._stages = stages
        self._kind = _resolve_kind(kind)
        self._rule = MXRule.for_kind(self._kind)
        self._table = self._rule.grid_table() if self._rule.grid is not None else None
        super().__init__({
            "i": In(stream.Signature(fp16_block(self._kind.block))),
            "o": Out(stream.Signature(mx_quantized_block(self._kind))),
        })

    @property
    def kind(self) -> ElementKind:
        return self._kind

    @property
    def rule(self) -> MXRule:
        return self._rule

    @property
    def block(self) -> int:
        """B, elements per block (32)."""
        return self._kind.block

    @property
    def stages(self) -> int:
        """Register stages (1..3), the output register included."""
        return self._stages

    @property
    def latency(self) -> int:
        """Cycles from accepting a block to presenting it at ``o``: :attr:`stages`."""
        return self._stages

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted blocks with ``o.ready`` held high: 1."""
        return 1

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rule = self._rule
        b = self._kind.block
        w = rule.window
        # one stall enable for every register, ``~o.valid | o.ready`` (the synthesis flow
        # drives its fanout through a buffer tree; o.ready's path to the registers is short)
        en = Signal(name="stall_en")
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        def register(tag: str, values: dict[str, Value]) -> dict[str, Value]:
            return {key: enabled_register(m, en, Value.cast(value), f"{tag}_{key}",
                                          0 if key == "valid" else None)
                    for key, value in values.items()}

        # -- block analysis: e_max, F = OR of the fractions, its top bit, NaN/Inf; per lane the
        # distance d_i = min(E_max − E_i, W) (d = W already shifts every bit out) -------------
        lanes = self.i.payload.x
        exps = [lanes[i][_FRAC_BITS : _FRAC_BITS + _EXP_BITS] for i in range(b)]
        fracs = [lanes[i][:_FRAC_BITS] for i in range(b)]
        normals = [e.any() for e in exps]
        e_max = _fast_max(m, exps, "e_max")
        normal_blk = Signal()  # e_max ≥ 1
        e_max_eff = Signal(_EXP_BITS)  # E_max = max(e_max, 1)
        frac_or = Signal(_FRAC_BITS)
        msb = Signal(4)  # top set bit of F
        zero = Signal()  # amax = 0
        invalid = Signal()
        m.d.comb += [
            normal_blk.eq(Cat(*normals).any()),
            e_max_eff.eq(Mux(normal_blk, e_max, 1)),
            frac_or.eq(tree_reduce(fracs, lambda p, q: p | q)),
            msb.eq(_msb(frac_or)),
            zero.eq(~normal_blk & ~frac_or.any()),
            invalid.eq(Cat(e.all() for e in exps).any()),
        ]
        dist_bits = w.bit_length()
        dists = []
        for i in range(b):
            diff = Signal(_EXP_BITS, name=f"diff{i}")  # E_max − E_i, 0..29
            dist = Signal(dist_bits, name=f"dist{i}")
            m.d.comb += [
                diff.eq(e_max_eff - Mux(normals[i], exps[i], 1)),
                dist.eq(Mux(ge_const(diff, w), w, diff[:dist_bits])),
            ]
            dists.append(dist)
        # per lane: sign, normal bit, fraction (the significand m_i = {normal, fraction}), d_i
        lane_bits = [Cat(fracs[i], normals[i], lanes[i][_SIGN_BIT], dists[i]) for i in range(b)]
        front: dict[str, Value] = {"valid": self.i.valid, "lanes": Cat(*lane_bits),
                                   "e_max": e_max, "normal": normal_blk, "msb": msb,
                                   "zero": zero, "invalid": invalid}
        # the shift amounts' block inputs: one register copy per _LANES_PER_COPY lanes
        for group in range(-(-b // _LANES_PER_COPY)):
            front[f"normal{group}"] = normal_blk
            front[f"msb{group}"] = msb
        if self._stages >= 2:
            front = register("blk", front)
        lane_w = _FRAC_BITS + 2 + dist_bits
        lane_regs = [front["lanes"][i * lane_w : (i + 1) * lane_w] for i in range(b)]
        e_max, normal_blk, msb, zero = (front["e_max"], front["normal"], front["msb"],
                                        front["zero"])

        # E8M0 byte = E_max + L + offset, as two constant tables (normal: L = 10, E_max =
        # e_max; subnormal: E_max = 1, L = msb); zero blocks give 0. Tables rather than adders
        # of unequal widths (Verilator -Wall WIDTHEXPAND on Amaranth's narrowed operands).
        scale = Signal(8)
        with m.If(zero):
            m.d.comb += scale.eq(0)
        with m.Elif(normal_blk):
            with m.Switch(e_max):
                for field in range(1, 1 << _EXP_BITS):
                    with m.Case(field):
                        m.d.comb += scale.eq(rule.scale_byte(field, _FRAC_BITS))
                with m.Default():  # e_max = 0: the Elif excludes it
                    m.d.comb += scale.eq(0)
        with m.Else():
            with m.Switch(msb):
                for top in range(_FRAC_BITS):
                    with m.Case(top):
                        m.d.comb += scale.eq(rule.scale_byte(1, top))
                with m.Default():  # msb ≤ 9
                    m.d.comb += scale.eq(0)

        # -- per lane: a_i = 10 + d_i (normal block) or msb (subnormal block: every E_i = 1 =
        # E_max), then the right shift with sticky of m_i << (W − 1) ------------------------
        amount_bits = (_FRAC_BITS + w).bit_length()
        t_all, sticky_all, sign_all = [], [], []
        for i in range(b):
            reg = lane_regs[i]
            frac, normal, sign, dist = (reg[:_FRAC_BITS], reg[_FRAC_BITS],
                                        reg[_FRAC_BITS + 1], reg[_FRAC_BITS + 2 :])
            group = i // _LANES_PER_COPY
            sig = Cat(Const(0, w - 1), frac, normal)  # m_i << (W − 1), 10 + W bits
            if rule.grid is None:
                # integer elements (the rounding adder follows): one shifter per block kind,
                # the kind selecting at the end, so that its fanout settles while they shift.
                # Normal: the fixed 10-bit shift leaves sig's top W bits, shifted by d_i ≤ W;
                # subnormal: every m_i < 2^10, shifted by msb.
                t_norm, st_norm = _shift_right_sticky(m, sig[_FRAC_BITS:], dist, f"lane{i}n")
                t_sub, st_sub = _shift_right_sticky(m, sig[: _FRAC_BITS + w - 1],
                                                    front[f"msb{group}"], f"lane{i}s")
                t = Signal(w, name=f"t{i}")
                sticky = Signal(name=f"sticky{i}")
                m.d.comb += [
                    t.eq(Mux(front[f"normal{group}"], t_norm, t_sub[:w])),
                    sticky.eq(Mux(front[f"normal{group}"], st_norm | sig[:_FRAC_BITS].any(),
                                  st_sub)),
                ]
                t_all.append(t)
                sticky_all.append(sticky)
                sign_all.append(sign)
                continue
            normal_amount = Signal(amount_bits, name=f"normal_amount{i}")  # 10 + d_i
            amount = Signal(amount_bits, name=f"amount{i}")
            with m.Switch(dist):
                for d in range(w + 1):
                    with m.Case(d):
                        m.d.comb += normal_amount.eq(_FRAC_BITS + d)
                with m.Default():  # d_i ≤ W
                    m.d.comb += normal_amount.eq(_FRAC_BITS + w)
            m.d.comb += amount.eq(Mux(front[f"normal{group}"], normal_amount,
                                      front[f"msb{group}"]))
            shifted, sticky = _shift_right_sticky(m, sig, amount, f"lane{i}")
            t_all.append(shifted[:w])
            sticky_all.append(sticky)
            sign_all.append(sign)
        mid: dict[str, Value] = {"valid": front["valid"], "t": Cat(*t_all),
                                 "sticky": Cat(*sticky_all), "sign": Cat(*sign_all),
                                 "scale": scale, "invalid": front["invalid"]}
        if self._stages >= 3:
            mid = register("lane", mid)
        t_of = [mid["t"][i * w : (i + 1) * w] for i in range(b)]
        sticky_of, sign_of = mid["sticky"], mid["sign"]

        # -- per lane: round to the element (E2M1 ROM or int8 RNE + clamp) ------------------
        codes = []
        if self._table is not None:
            rom = Memory(shape=unsigned(rule.element_bits - 1), depth=len(self._table),
                         init=self._table)
            m.submodules.grid_rom = rom
            for i in range(b):
                port = rom.read_port(domain="comb")
                m.d.comb += port.addr.eq(Cat(sticky_of[i], t_of[i]))
                codes.append(Cat(port.data, sign_of[i]))
        else:
            bits = rule.element_bits
            top = (1 << (bits - 1)) - 1
            for i in range(b):
                t = t_of[i]
                whole = t[1:]  # element units, unit + 1 = bits − 1 bits: ≤ top
                up = t[0] & (sticky_of[i] | whole[0])  # round half to even
                sign = sign_of[i]
                # ±(whole + up) in one adder: −(whole + up) = ~whole + ~up (bits wide); the
                # magnitude exceeds top only as whole = top rounding up: clamp to ±top
                signed = Signal(bits, name=f"signed{i}")
                code = Signal(bits, name=f"code{i}")
                m.d.comb += [
                    signed.eq(Cat(whole, Const(0, 1)) ^ Mux(sign, (1 << bits) - 1, 0)),
                    code.eq(Mux(whole.all() & up, Mux(sign, (1 << bits) - top, top),
                                (signed + (up ^ sign))[:bits])),
                ]
                codes.append(code)

        # -- output register: a NaN/Inf block leaves codes 0 and scale 0 --------------------
        result = Signal(mx_quantized_block(self._kind), name="result")
        bad = mid["invalid"]
        m.d.comb += [
            result.scale.eq(Mux(bad, 0, mid["scale"])),
            result.invalid.eq(bad),
            *(result.codes[i].eq(Mux(bad, 0, codes[i])) for i in range(b)),
        ]
        out = register("out", {"valid": mid["valid"], "payload": Value.cast(result)})
        m.d.comb += [self.o.valid.eq(out["valid"]), Value.cast(self.o.payload).eq(out["payload"])]
        return m
