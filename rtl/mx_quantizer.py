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

* e_max = max e_i (5-bit max tree), E_max = max(e_max, 1). The block's leading bit position
  inside an 11-bit significand is L = 10 when e_max ≥ 1; for a block of subnormals and zeros
  (e_max = 0) it is the top set bit of F = OR_i f_i (the OR's top bit is the maximum's).
  Then **fl = E_max + L − 25**, and the E8M0 byte = E_max + L + (127 − 25 − emax), where
  emax = floor(log2 of the largest element) − u (2 for E2M1, 0 for int8). amax = 0 exactly
  when e_max = 0 and F = 0.
* t_i = floor(|x_i| · 2^(u + 1 − fl)) (W = u + 2 bits: element units plus one guard bit)
  = floor((m_i · 2^(W − 1)) / 2^(a_i)) with **a_i = L + (E_max − E_i)**, and
  sticky_i = (the bits shifted out are not all zero): a right shift with sticky of the
  (10 + W)-bit value m_i << (W − 1) by a_i (a_i ≥ 10 + W gives t = 0, so the hardware
  clamps E_max − E_i at 15 and a_i ∈ [0, 25] fits 5 bits).
* E8M0 byte: two constant tables (e_max → byte for normal blocks, top bit of F → byte for
  subnormal ones), from :meth:`MXRule.scale_byte`.
* element: E2M1 index = ROM[t_i, sticky_i] (2^(W+1) = 64 words of 3 bits: word
  (t << 1 | s) = golden's ties-to-even grid rounding of (t + s/2) / 2 element units (HU);
  every midpoint of the grid is a whole number of guard units, asserted at construction,
  so s = 1 stands for any value strictly inside (t, t + 1)); int8 magnitude =
  min((t_i >> 1) + (g_i & (sticky_i | lsb_i)), 127), negated for s_i = 1.
* invalid = some e_i = 31 (NaN or ±Inf). Golden raises on such a block; the hardware flags
  it and emits codes 0 and scale byte 0 (SPEC §8 [ours], as the dialect frontend, SPEC §2).

Pipeline (two register stages, :data:`MX_QUANTIZER_LATENCY`)::

    i ─► max tree, shift+sticky (comb) ═► (t, sticky, sign) × B, scale, invalid
                                       ─► round / E2M1 ROM (comb) ═► o (codes, scale, invalid)

mirroring the dialect frontend's split (preprocessor → register → code quantizer register).
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
from semdialect.rtl.trees import tree_max, tree_reduce

__all__ = [
    "MX_QUANTIZER_LATENCY",
    "MXQuantizer",
    "MXRule",
    "encoded_view",
    "mx_quantized_block",
]

#: Cycles from accepting a block at ``i`` to presenting it at ``o`` (``o.ready`` high):
#: two register stages (preprocessed lanes, output codes).
MX_QUANTIZER_LATENCY = 2

_FRAC_BITS = 10
_EXP_BITS = 5
_SIGN_BIT = FP16_BITS - 1
#: FP16: |x| = m · 2^(E − 25) with the 11-bit significand m and E = max(e, 1)
_FP16_SIG_SHIFT = 25
#: width of the per-lane right-shift amount a_i = L + min(E_max − E_i, 15) ≤ 25; any
#: a_i ≥ 10 + W (15 or 18) shifts the whole (10 + W)-bit significand out, so the clamp at 15
#: changes nothing
_SHIFT_BITS = 5


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
    if kind.block != fmt.block_size(None) or fmt.scale_bits() != 8:
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


class MXQuantizer(wiring.Component):
    """OCP MX block quantization of FP16 activations (module docstring), stream-handshaked.

    **Latency** :data:`MX_QUANTIZER_LATENCY` = 2 cycles (a block accepted at ``i`` in cycle t
    is at ``o`` in cycle t + 2 when ``o.ready`` is high), **initiation interval 1** block per
    cycle. Each stage loads when it is empty or its block moves on in the same cycle
    (``en2 = ~o.valid | o.ready``, ``en1 = ~s1.valid | en2``, ``i.ready = en1``: ``i.ready``
    depends combinationally on ``o.ready``; no ``valid`` depends on a ``ready``);
    ``o.valid``/``o.payload`` are registers and hold still while ``o.ready`` is low.

    Storage: stage 1 B × (W + 2) bits (t, sticky, sign; W = 5 for MXFP4, 8 for MXINT8) +
    8 (scale) + 1 (invalid) + valid; stage 2 the output payload (B × 4 + 9 or B × 8 + 9) +
    valid. Logic: a 5-bit max tree and a 10-bit OR tree over the lanes, a 10-bit priority
    encoder, two small scale tables, per lane a 5-bit subtract, a clamp to 4 bits, a 4-bit
    add and a (10 + W)-bit right shift with sticky (5 levels); then per lane a 64 × 3 ROM
    (MXFP4) or an 8-bit increment, clamp and negate
    (MXINT8).

    Parameters
    ----------
    kind : ElementKind | PEKind | str
        A fixed-format MX kind: ``ElementKind.for_design(PEKind.MXFP4)`` or
        ``ElementKind.for_design(PEKind.MXINT8)`` (a PEKind or its name is resolved the same
        way). ``ValueError`` naming ``kind`` otherwise.

    Members
    -------
    i : ``In(stream.Signature(fp16_block(32)))``
        ``x``: 32 FP16 bit patterns (512 bits, lane i at [16i, 16i + 16)).
    o : ``Out(stream.Signature(mx_quantized_block(kind)))``
        ``codes`` (32 × 4 or 32 × 8) and ``scale`` (8, E8M0) — ``kind.encoded_layout`` at
        the same offsets — then ``invalid`` (1). 137 bits (MXFP4) or 265 bits (MXINT8).
    """

    def __init__(self, kind: ElementKind | PEKind | str) -> None:
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
    def latency(self) -> int:
        """Cycles from accepting a block to presenting it at ``o``: 2."""
        return MX_QUANTIZER_LATENCY

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted blocks with ``o.ready`` held high: 1."""
        return 1

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rule = self._rule
        b = self._kind.block
        w = rule.window
        lanes = self.i.payload.x

        # -- stage 1 (comb): block exponent, leading position, per-lane shift with sticky ----
        exps = [lanes[i][_FRAC_BITS : _FRAC_BITS + _EXP_BITS] for i in range(b)]
        fracs = [lanes[i][:_FRAC_BITS] for i in range(b)]
        e_max = Signal(_EXP_BITS)
        e_max_eff = Signal(_EXP_BITS)  # E_max = max(e_max, 1)
        frac_or = Signal(_FRAC_BITS)
        msb = Signal(4)  # top set bit of F
        lead = Signal(4)  # L: 10, or the top set bit of F for a subnormal/zero block
        invalid = Signal()
        zero = Signal()
        scale = Signal(8)
        m.d.comb += [
            e_max.eq(tree_max(exps)),
            e_max_eff.eq(Mux(e_max.any(), e_max, 1)),
            frac_or.eq(tree_reduce(fracs, lambda p, q: p | q)),
            msb.eq(_msb(frac_or)),
            lead.eq(Mux(e_max.any(), _FRAC_BITS, msb)),
            zero.eq(~e_max.any() & ~frac_or.any()),
            invalid.eq(Cat(e.all() for e in exps).any()),
        ]
        # E8M0 byte = E_max + L + offset, as two constant tables (normal: L = 10, E_max =
        # e_max; subnormal: E_max = 1, L = msb); zero blocks give 0. Tables rather than adders
        # of unequal widths (Verilator -Wall WIDTHEXPAND on Amaranth's narrowed operands).
        with m.If(zero):
            m.d.comb += scale.eq(0)
        with m.Elif(e_max.any()):
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

        s1 = Signal(data.StructLayout({
            "t": data.ArrayLayout(w, b),
            "sticky": data.ArrayLayout(1, b),
            "sign": data.ArrayLayout(1, b),
            "scale": 8,
            "invalid": 1,
        }), name="s1", reset_less=True)
        s1_valid = Signal(name="s1_valid")
        t_next = []
        for i in range(b):
            normal = exps[i].any()
            dist = Signal(_EXP_BITS, name=f"distance{i}")  # E_max − E_i, 0..29
            near = Signal(4, name=f"near{i}")  # min(E_max − E_i, 15): a_i ≥ 15 shifts all out
            amount = Signal(_SHIFT_BITS, name=f"amount{i}")  # a_i = L + min(E_max − E_i, 15)
            m.d.comb += [
                dist.eq(e_max_eff - Mux(normal, exps[i], 1)),
                near.eq(Mux(dist[4], 15, dist[:4])),
                amount.eq(lead + near),
            ]
            sig = Cat(Const(0, w - 1), fracs[i], normal)  # m_i << (W − 1), 10 + W bits
            shifted, sticky = _shift_right_sticky(m, sig, amount, f"lane{i}")
            t_next.append((shifted[:w], sticky, lanes[i][_SIGN_BIT]))

        en1 = Signal()
        en2 = Signal()
        m.d.comb += [
            en2.eq(~self.o.valid | self.o.ready),
            en1.eq(~s1_valid | en2),
            self.i.ready.eq(en1),
        ]
        with m.If(en1):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1.scale.eq(Mux(invalid, 0, scale)),
                s1.invalid.eq(invalid),
            ]
            for i, (t, sticky, sign) in enumerate(t_next):
                m.d.sync += [
                    s1.t[i].eq(Mux(invalid, 0, t)),
                    s1.sticky[i].eq(sticky & ~invalid),
                    s1.sign[i].eq(sign & ~invalid),
                ]

        # -- stage 2 (comb): round each lane to its element; output register ----------------
        codes = []
        if self._table is not None:
            rom = Memory(shape=unsigned(rule.element_bits - 1), depth=len(self._table),
                         init=self._table)
            m.submodules.grid_rom = rom
            for i in range(b):
                port = rom.read_port(domain="comb")
                m.d.comb += port.addr.eq(Cat(s1.sticky[i], s1.t[i]))
                codes.append(Cat(port.data, s1.sign[i]))
        else:
            top = (1 << (rule.element_bits - 1)) - 1
            for i in range(b):
                t = s1.t[i]
                whole = t[1:]  # element units, unit + 1 bits
                up = t[0] & (s1.sticky[i] | whole[0])  # round half to even
                rounded = Signal(rule.element_bits, name=f"rounded{i}")
                mag = Signal(rule.element_bits - 1, name=f"mag{i}")
                code = Signal(rule.element_bits, name=f"code{i}")
                m.d.comb += [
                    rounded.eq(whole + up),
                    # rounded ≤ 2^(bits−1) (the maximum's t < 2^W): its top bit is "> top"
                    mag.eq(Mux(rounded[-1], top, rounded[:-1])),
                    code.eq(Mux(s1.sign[i], -mag, mag)),
                ]
                codes.append(code)

        with m.If(en2):
            m.d.sync += [
                self.o.valid.eq(s1_valid),
                self.o.payload.scale.eq(s1.scale),
                self.o.payload.invalid.eq(s1.invalid),
            ]
            m.d.sync += [self.o.payload.codes[i].eq(codes[i]) for i in range(b)]
        return m
