"""Block Hadamard rotation of FP16 activations (SPEC §11) [ours]: one block per cycle.

:class:`BlockRotator` computes, bit-exact with :meth:`golden.rotation.Rotation.forward`,

    y = RNE_fp16(2^-c · H_B · (s ⊙ x))

for one FP16 block x of B lanes (Sylvester H, SplitMix64 signs s, shift c of the operand
role, :meth:`~golden.rotation.Rotation.shift`). The datapath is exact fixed point; the only
rounding is the final IEEE binary16 round-to-nearest-even.

Datapath (L = log2 B; widths for B = 16 / 32 / 64):

1. **FP16 → fixed point** (per lane): with sign σ_i, exponent field e_i, fraction f_i, the
   11-bit significand m_i = {e_i ≠ 0, f_i} and E_i = max(e_i, 1), |x_i| = m_i · 2^(E_i − 1) ·
   2^−24: the 40-bit magnitude m_i << (E_i − 1) (at most 2047 · 2^29 < 2^40) in units of
   2^−24, the LSB of the FP16 subnormals. The sign vector is a free negation: the lane's sign
   is σ_i ⊕ (s_i = −1) (a constant XOR, wired in); the signed value is 41 bits, two's
   complement.
2. **L butterfly stages** (the fast Walsh–Hadamard transform in natural order): stage k pairs
   lanes j and j + 2^k within groups of 2^(k+1) and forms (a + b, a − b); the widths grow one
   bit per stage, 41 + L bits after the last (45 / 46 / 47). The sums are exact (SPEC §11).
3. **Round** (per lane) the exact S_i = Σ_j H_ij s_j x_j · 2^24 (signed 41 + L bits) times
   2^−c to FP16: M = |S_i| (40 + L bits); with p = the position of M's leading one the
   effective exponent is E = max(p − c − 9, 1), so the significand is m = M >> (c + q),
   q = E − 1 = max(p − 10 − c, 0), with guard and sticky bits below it. Leading-one
   detection is a thermometer code of suffix ORs, ge_j = (M[10 + c + j:] ≠ 0) = (p ≥ 10 + c
   + j): q = #{j ≥ 1: ge_j}, the exponent field F = #{j ≥ 0: ge_j} = max(p − c − 9, 0) (0 for
   a subnormal result), and the sticky bit = M[0 : c − 1] ≠ 0 or some M[c − 1 + k] with
   ge_(k+1) (bit k of the shifted value is shifted out exactly when q > k). Round half to
   even: up = guard ∧ (sticky ∨ m_0); the FP16 magnitude is {F, m mod 2^10} + up (16 bits,
   computed as {F, m mod 2^10} − {16{up}} mod 2^16: equal operand widths for Verilator
   -Wall): a significand that rounds to 2^11 carries into the exponent field, a subnormal
   that rounds to 2^10 becomes the smallest normal. A magnitude ≥ 0x7C00 overflows. The sign
   bit is S_i < 0 unless the magnitude is 0: a zero result is +0.0.
4. **Invalid blocks** [ours]: a block holding NaN or ±Inf (some e_i = 31), or one with a lane
   that overflows FP16 (golden: "outside the FP16 range after rotation"), leaves as canonical
   NaN (:data:`CANONICAL_NAN` = 0x7E00) in every lane. The BlockQuantizer downstream flags
   such a block ``invalid`` by its own SPEC §2 rule (codes 0, SE field 0, dialect 0).

Run-time role and side bits (the GEMM core's frontend, SPEC §11): with ``role=None`` the role
is chosen per block by the input field ``weight`` (1: the weight role's c_w, 0: the activation
role's c_a), and the field ``bypass`` (1) passes the block through unchanged (the same
latency; a block already in the rotated basis, the decomposition's residual, SPEC §6/§11; its
unrotated copy travels through the registers beside the datapath). Since c_a − c_w = δ ∈ {0,
1} (δ = 1 only for odd log2 B, B = 32), a weight block's magnitude is shifted left by δ before
the rounding of step 3, which then uses c = c_a for both roles (S · 2^−c_w = (2^δ · S) ·
2^−c_a; one more bit of M, the same leading-one span as the weight role alone). ``side`` > 0
carries that many bits (e.g. a candidate mask and a salient flag) through the same registers
as the block, unchanged.

Pipeline: ``stages`` register stages split the L + 3 logic levels (conversion, L
butterflies, magnitude and leading-one detection, shift and rounding) with
:func:`~rtl.trees.cut_levels` (the last register at the output). Latency = ``stages`` cycles,
initiation interval 1. Every register loads with one stall enable ``en = ~o.valid | o.ready``
and ``i.ready = en``, as :class:`~rtl.mx_quantizer.MXQuantizer`; ``stages = 0`` is
combinational (``o.valid = i.valid``, ``i.ready = o.ready``).

Area (Yosys generic flow of :func:`semdialect.sim.area.synthesize`, NAND2 equivalents; the
``rotate`` row of :mod:`semdialect.sim.ablation`), ``default`` configuration, B = 32,
activation role, 2 stages: 109.6 kGE (62 873 cells, 1 895 flip-flops), against 190.1 kGE for
one frontend lane (``block_quantizer_residual``) and 118.3 kGE for the plain
``block_quantizer``: +58 % per lane, +877 kGE over the 8 lanes. The GEMM core's form
(``role=None``, side = K + 1 = 33 bits, bypass; ``block_rotator`` of
:func:`rtl.components.components`): 123.5 kGE, 2 475 flip-flops (the unrotated copy for the
bypass and the side bits ride in the pipeline registers), +988 kGE over the 8 lanes.
Timing at 180 nm is not yet measured (the liberty flow needs the OSU library, ``make asic-tools``).
"""

from __future__ import annotations

import operator
from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.golden.rotation import ROLES, Rotation
from semdialect.rtl.layouts import FP16_BITS, fp16_block
from semdialect.rtl.preprocess import check_block
from semdialect.rtl.timing import ROTATOR_STAGES
from semdialect.rtl.trees import cut_levels, enabled_register, shift_left, thermometer_value

__all__ = [
    "CANONICAL_NAN",
    "ROTATOR_MAX_STAGES",
    "ROTATOR_STAGES",
    "BlockRotator",
    "fixed_width",
    "rotator_input",
    "rotator_output",
]

#: Most register stages :class:`BlockRotator` takes.
ROTATOR_MAX_STAGES = 4
#: The FP16 pattern of every lane of an invalid block (NaN/±Inf input or FP16 overflow).
CANONICAL_NAN = 0x7E00

_FRAC_BITS = 10
_EXP_BITS = 5
_SIGN_BIT = FP16_BITS - 1
#: FP16 magnitude in units of 2^-24: m << (E − 1) < 2^40
_MAG_BITS = 40


def rotator_input(block: int, side: int = 0, role_input: bool = False) -> data.StructLayout:
    """:class:`BlockRotator` input: ``x`` (B × 16, FP16 patterns, at bit 0 as in
    :func:`~rtl.layouts.fp16_block`), then ``side`` (``side`` bits passed through; absent at
    0), then, only with a run-time role, ``weight`` (1 bit: 1 = weight role c_w, 0 =
    activation role c_a) and ``bypass`` (1 bit: 1 = pass ``x`` through unrotated)."""
    members: dict[str, Any] = dict(fp16_block(block).members)
    if side:
        members["side"] = side
    if role_input:
        members["weight"] = 1
        members["bypass"] = 1
    return data.StructLayout(members)


def rotator_output(block: int, side: int = 0) -> data.StructLayout:
    """:class:`BlockRotator` output: ``x`` (B × 16, the rotated FP16 patterns), then ``side``
    (the input's, absent at 0). ``side`` 0: :func:`~rtl.layouts.fp16_block` itself."""
    return rotator_input(block, side)


def fixed_width(block: int) -> int:
    """Bits of the signed fixed-point sums after the last butterfly stage: 41 + log2 B."""
    return _MAG_BITS + 1 + (block.bit_length() - 1)


class BlockRotator(wiring.Component):
    """SPEC §11 block rotation of one FP16 block per cycle (module docstring), stream-handshaked.

    Storage: a register stage after logic level ℓ holds B × (41 + the butterflies done) bits
    of sums (B × 16 at the output), the block's NaN/Inf flag and ``valid``; ``stages`` of them
    (:func:`~rtl.trees.cut_levels`). Logic: B 40-bit variable left shifts and negations,
    B · log2 B adders/subtractors of 41 … 40 + log2 B bits, then per lane a (41 + log2 B)-bit
    negation, a suffix-OR leading-one detector, a right shift by 0..31 (or 32), a 16-bit
    rounding adder and the overflow compare.

    Parameters
    ----------
    block : int
        B: 16, 32 or 64 (``ValueError`` naming ``block`` otherwise).
    rotation : Rotation
        The rotation (:class:`golden.rotation.Rotation`: size and seed of the signs); its size
        must equal ``block`` (``ValueError`` naming ``rotation`` otherwise).
    role : str | None
        ``"activation"`` (default, c = ceil(log2 B / 2)) or ``"weight"`` (c = log2 B − that):
        the shift 2^−c; None: chosen per block by the input field ``weight`` (module
        docstring; ``ValueError`` naming ``role`` otherwise).
    stages : int
        Register stages 0..:data:`ROTATOR_MAX_STAGES` (default :data:`ROTATOR_STAGES`); 0 is
        combinational. :attr:`latency` = ``stages`` (``ValueError`` naming ``stages``).
    side : int
        Bits carried from ``i`` to ``o`` with the block, unchanged (default 0: none;
        ``ValueError`` naming ``side`` unless a non-negative integer).

    Members
    -------
    i : ``In(stream.Signature(rotator_input(B, side, role is None)))``
        ``x``: B FP16 bit patterns (16·B bits, lane i at [16i, 16i + 16)); ``side``;
        ``weight`` and ``bypass`` (run-time role only). Fixed role and ``side`` 0:
        ``fp16_block(B)``.
    o : ``Out(stream.Signature(rotator_output(B, side)))``
        ``x``: the rotated block's B FP16 patterns, 0x7E00 in every lane of an invalid block;
        ``side``: the input's.
    """

    def __init__(self, block: int, rotation: Rotation, role: str | None = "activation", *,
                 stages: int = ROTATOR_STAGES, side: int = 0) -> None:
        self._block = check_block(block)
        if not isinstance(rotation, Rotation):
            raise ValueError(f"rotation: expected a golden.rotation.Rotation, got {rotation!r}")
        if rotation.block != self._block:
            raise ValueError(f"rotation: its Hadamard size {rotation.block} must equal the "
                             f"block size B = {self._block}")
        if role is not None and role not in ROLES:
            raise ValueError(f"role: expected one of {', '.join(ROLES)} or None (a run-time "
                             f"role), got {role!r}")
        if isinstance(side, bool) or not isinstance(side, int) or side < 0:
            raise ValueError(f"side: must be a non-negative integer, got {side!r}")
        if isinstance(stages, bool):
            raise ValueError(f"stages: must be an integer 0..{ROTATOR_MAX_STAGES}, "
                             f"got {stages!r}")
        try:
            stages = operator.index(stages)
        except TypeError:
            raise ValueError(f"stages: must be an integer 0..{ROTATOR_MAX_STAGES}, "
                             f"got {stages!r}") from None
        if not 0 <= stages <= ROTATOR_MAX_STAGES:
            raise ValueError(f"stages: must be an integer 0..{ROTATOR_MAX_STAGES}, "
                             f"got {stages}")
        self._rotation = rotation
        self._role = role
        self._stages = stages
        self._side = side
        if role is None:
            in_layout: data.Layout = rotator_input(self._block, side, True)
        else:  # fixed role: fp16_block itself without side bits (the standalone rotator)
            in_layout = rotator_input(self._block, side) if side else fp16_block(self._block)
        out_layout = rotator_output(self._block, side) if side else fp16_block(self._block)
        super().__init__({
            "i": In(stream.Signature(in_layout)),
            "o": Out(stream.Signature(out_layout)),
        })

    @property
    def block(self) -> int:
        """B, lanes per block."""
        return self._block

    @property
    def rotation(self) -> Rotation:
        return self._rotation

    @property
    def role(self) -> str | None:
        """The fixed role, or None: chosen per block by the input field ``weight``."""
        return self._role

    @property
    def side(self) -> int:
        """Bits carried with the block from ``i`` to ``o``."""
        return self._side

    @property
    def shift(self) -> int | None:
        """c: the result is scaled by 2^−c (None for a run-time role: c_a or c_w per block)."""
        return None if self._role is None else self._rotation.shift(self._role)

    @property
    def stages(self) -> int:
        """Register stages (0 = combinational)."""
        return self._stages

    @property
    def latency(self) -> int:
        """Cycles from accepting a block at ``i`` to presenting it at ``o``: :attr:`stages`."""
        return self._stages

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted blocks with ``o.ready`` held high: 1."""
        return 1

    @property
    def levels(self) -> int:
        """Logic levels the registers split: conversion, log2 B butterflies, leading-one
        detection, rounding."""
        return self._rotation.log2_block + 3

    def elaborate(self, platform: object) -> Module:
        m = Module()
        b = self._block
        # the rounding's shift: a run-time role rounds both roles with c_a, a weight block's
        # magnitude first shifted left by delta = c_a - c_w (module docstring)
        if self._role is None:
            c = self._rotation.shift("activation")
            delta = c - self._rotation.shift("weight")
        else:
            c, delta = self._rotation.shift(self._role), 0
        cuts = set(cut_levels(self.levels, self._stages)) if self._stages else set()
        en = Signal(name="stall_en")
        if self._stages:
            m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        else:
            m.d.comb += self.i.ready.eq(self.o.ready)

        level = 0
        valid: Value = self.i.valid
        lanes = self.i.payload.x

        def step(values: list[Value], carried: dict[str, Value], tag: str
                 ) -> tuple[list[Value], dict[str, Value]]:
            """End of a logic level: register the lanes, the ``carried`` one-or-more-bit
            values (NaN/Inf flag, role, side bits) and valid when a cut falls here (all in one
            register of their concatenation)."""
            nonlocal level, valid
            level += 1
            if level not in cuts:
                return values, carried
            parts = [*values, *carried.values()]
            widths = [len(v) for v in parts]
            packed = enabled_register(m, en, Cat(*parts), f"{tag}_r")
            valid = enabled_register(m, en, valid, f"{tag}_valid", 0)
            out, low = [], 0
            for v, w in zip(parts, widths, strict=True):
                out.append(packed[low : low + w].as_signed() if v.shape().signed
                           else packed[low : low + w])
                low += w
            return out[: len(values)], dict(zip(carried, out[len(values):], strict=True))

        # -- 1. FP16 → signed fixed point, LSB 2^-24; the sign vector flips the sign bit ----
        exps = [lanes[i][_FRAC_BITS : _FRAC_BITS + _EXP_BITS] for i in range(b)]
        nan_inf = Signal(name="nan_inf")
        m.d.comb += nan_inf.eq(Cat(e.all() for e in exps).any())
        carried: dict[str, Value] = {"flag": nan_inf}
        if delta:
            carried["weight"] = self.i.payload.weight
        if self._side:
            carried["side"] = self.i.payload.side
        if self._role is None:
            carried["bypass"] = self.i.payload.bypass
            carried["raw"] = lanes.as_value()
        values: list[Value] = []
        for i, negate in enumerate(self._rotation.signs < 0):
            x, e = lanes[i], exps[i]
            normal = e.any()
            exp_m1 = Signal(_EXP_BITS, name=f"exp_m1_{i}")  # E_i − 1, 0..30
            mag = Signal(_MAG_BITS, name=f"mag{i}")
            fixed = Signal(signed(_MAG_BITS + 1), name=f"fixed{i}")
            sign = x[_SIGN_BIT] ^ int(negate)
            m.d.comb += [
                exp_m1.eq(Mux(normal, (e - 1)[:_EXP_BITS], 0)),
                mag.eq(shift_left(m, Cat(x[:_FRAC_BITS], normal,
                                         Const(0, _MAG_BITS - _FRAC_BITS - 1)),
                                  exp_m1, f"mag{i}_s")),
                fixed.eq(Mux(sign, -mag, mag)),
            ]
            values.append(fixed)
        values, carried = step(values, carried, "fixed")

        # -- 2. butterflies: (a, b) → (a + b, a − b) for lanes j, j + h ---------------------
        h = 1
        while h < b:
            width = len(values[0]) + 1
            nxt: list[Value] = [Const(0)] * b
            for j in range(b):
                if j & h:
                    continue
                s = Signal(signed(width), name=f"bf{h}_sum{j}")
                d = Signal(signed(width), name=f"bf{h}_dif{j}")
                m.d.comb += [s.eq(values[j] + values[j + h]), d.eq(values[j] - values[j + h])]
                nxt[j], nxt[j + h] = s, d
            values, carried = step(nxt, carried, f"bf{h}")
            h <<= 1

        # -- 3. magnitude, leading one (the exponent field and q = E − 1) and sticky -------
        width = len(values[0])
        abs_bits = width - 1  # |S| < 2^(40 + L)
        mag_bits = abs_bits + delta  # a weight block's |S| shifted left by delta
        top = mag_bits - 1  # highest bit index of M
        span = top - 10 - c  # q ≤ span, the exponent field ≤ span + 1
        weight = carried.pop("weight", None)
        parts: list[Value] = []
        for i, s in enumerate(values):
            neg = s[-1]
            mag = Signal(mag_bits, name=f"abs{i}")
            absolute = Mux(neg, -s, s)[:abs_bits]
            if delta:
                assert weight is not None
                m.d.comb += mag.eq(Mux(weight, Cat(Const(0, delta), absolute), absolute))
            else:
                m.d.comb += mag.eq(absolute)
            # ge[j] = M has a bit at 10 + c + j or above: (exponent field ≥ j + 1), (q ≥ j)
            ge = [Signal(name=f"lead{i}_ge{j}") for j in range(span + 1)]
            m.d.comb += [t.eq(mag[10 + c + j :].any()) for j, t in enumerate(ge)]
            q = Signal(range(span + 1), name=f"q{i}")
            field = Signal(range(span + 2), name=f"field{i}")
            m.d.comb += [q.eq(thermometer_value(ge[1:])), field.eq(thermometer_value(ge))]
            # bits below the guard: M[0:c−1] always, then M[c − 1 + k] when q > k
            sticky = Signal(name=f"sticky{i}")
            m.d.comb += sticky.eq(Cat(mag[: c - 1].any(),
                                      *(mag[c - 1 + k] & ge[k + 1] for k in range(span))).any())
            kept = mag[c - 1 :]  # guard bit at 0
            parts.append(Cat(kept, q, field, sticky, neg))
        kept_w = mag_bits - (c - 1)
        q_w = span.bit_length()  # bits of q (range(span + 1))
        field_w = (span + 1).bit_length()
        assert _FRAC_BITS + field_w == FP16_BITS  # the exponent field and its carry
        values, carried = step(parts, carried, "lead")

        # -- 4. shift, round half to even, pack; invalid blocks → canonical NaN -------------
        results: list[Value] = []
        overflows: list[Value] = []
        for i, part in enumerate(values):
            kept = part[:kept_w]
            q = part[kept_w : kept_w + q_w]
            field = part[kept_w + q_w : kept_w + q_w + field_w]
            sticky = part[kept_w + q_w + field_w]
            neg = part[kept_w + q_w + field_w + 1]
            window = Signal(12, name=f"window{i}")  # significand (11) and guard (1)
            up = Signal(name=f"up{i}")
            magnitude = Signal(FP16_BITS, name=f"magnitude{i}")
            # {field, fraction} + up (a carry out of the fraction increments the field), as
            # {field, fraction} − {16{up}} modulo 2^16 (no sum reaches 2^16): equal operand
            # widths, which Verilator -Wall asks for
            m.d.comb += [
                window.eq((kept >> q)[:12]),
                up.eq(window[0] & (sticky | window[1])),
                magnitude.eq((Cat(window[1:11], field) - up.replicate(FP16_BITS))[:FP16_BITS]),
            ]
            # ≥ 0x7C00: exponent field 31, or a carry past it
            overflows.append(magnitude[15] | magnitude[_FRAC_BITS:15].all())
            results.append(Cat(magnitude[:15], neg & magnitude[:15].any()))
        bad = Signal(name="invalid")
        flag = carried.pop("flag")
        m.d.comb += bad.eq(flag | Cat(*overflows).any())
        out: Value = Cat(*(Mux(bad, CANONICAL_NAN, r) for r in results))
        if self._role is None:
            out = Mux(carried.pop("bypass"), carried.pop("raw"), out)
        final, carried = step([out], carried, "out")
        assert level == self.levels
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.x.as_value().eq(final[0]),
        ]
        if self._side:
            m.d.comb += self.o.payload.side.eq(carried["side"])
        return m
