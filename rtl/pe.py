"""Block dot-product PE (SPEC §5 MAC contract, SPEC §8 MXFP4/MXINT8/NVFP4 GEMM contracts).

One generator, four element kinds (:class:`~rtl.block_decoder.ElementKind`): dialect
formats, MXFP4, MXINT8 and NVFP4. Per block pair (a, w) of the same k-block the PE computes the
exact signed integer P = Σ_i a_i · w_i, its exact FP32 value P · 2^(exp_a + exp_w) (P = 0 gives
+0.0; NVFP4: P · s_a · s_w / 4 with the E4M3 block scales, below), and accumulates it with the
FP32 round-to-nearest-even adder
(:func:`rtl.fp32_add.fp32_add`) in arrival order starting from +0.0. The caller sends the
pairs of one output in ascending k-block order and flags the last one; the PE then presents
the sum and restarts from +0.0 with the next pair.

Pipeline (``pe_product_stages`` + ``pe_scale_stages`` + ``acc_stages`` registers, all
advanced by one stall enable, replicated per 12 register bits so no net drives them all)::

    i ─► [decode] ─► B products ─► adder tree ═► P·2^exp → FP32 ═► ring of d adder stages ═► o
                     (product stages, spread      (scale stages:     (C-slow: d accumulators,
                      over the tree levels)        lzc | shift)       d − 1 holding registers)

Unpipelined (``Pipeline()``): one register each, latency 3, one accumulator.

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

**NVFP4** (``kind.float_scaled``, SPEC §8 NVFP4 hardware contract [ours]). The block scale
is an E4M3 byte (decoded ``exp``), not 2^x. Beside the element multipliers the first product
stage forms S_a·S_w (8 bits) and E'_a + E'_w (5 bits) (:func:`rtl.scale.e4m3_pair`), carried
in place of the exponent sum; the register that ends the adder tree holds P as
(P ⊕ sign, sign) (:func:`rtl.scale.ones_magnitude`, |P| ≤ 2304 in 12 bits). The scale stages
compute c = |P|·S_a·S_w · 2^(E'_a + E'_w − 22) exactly (:func:`rtl.scale.scaled_contribution`:
a carry-save multiplier and carry-select adder | leading-zero count and shift | pack; the
scale cuts sit after the adder's halves and after the shift), c is normal or +0.0 for every
scale byte 0x00..0x7E; the accumulator is the same. The FP32 tensor scales are not the PE's:
the drain multiplies each output once (:class:`rtl.scale.FP32Mul`). Each output equals
``golden.nvfp4_hw_accumulate``.

**Signed zeros.** P = 0 always gives +0.0, whatever the element signs. The reference's
running sum starts from +0.0 and x + (−0) = x for every x reachable from +0.0 (RNE), so the
sign of a zero contribution never shows in any output bit.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.block_decoder import BlockDecoder, ElementKind
from semdialect.rtl.fp32_add import FP32_PAIR, SEGMENTS, leading_zeros, segment_cuts
from semdialect.rtl.layouts import FP32_RESULT, pe_operands
from semdialect.rtl.scale import e4m3_pair, ones_magnitude, scaled_contribution
from semdialect.rtl.timing import BASE_PE_LATENCY, Pipeline
from semdialect.rtl.trees import Enables as _Enables
from semdialect.rtl.trees import cut_levels, shift_left, tree_depth, tree_reduce
from semdialect.rtl.trees import held_register as _held_register
from semdialect.rtl.trees import pipeline_register as _register

__all__ = ["BlockPE"]

_FP32_FRAC = 23
_FP32_BIAS = 127
_FP32_EXP = 8
_NEG_ZERO = 0x8000_0000
_FRESH = 0b010  # accumulator flags at reset: not invalid, fresh (start from +0.0), no new sum



def int_to_fp32(m: Module, p: Value, exp_sum: Value, offset: int,
                stage: Callable[[int, dict[str, Value]], dict[str, Value]] | None = None
                ) -> Value:
    """Combinational: the binary32 pattern of the signed integer ``p`` times 2^(``exp_sum`` −
    ``offset``), ``exp_sum`` an 8-bit unsigned register (the two operands' biased exponent
    fields added, modulo 256).

    Exact for ``len(p)`` ≤ 24 when the result is 0 (gives +0.0) or a normal number (the
    module docstring's precondition). Leading-zero count (a log-depth tree), normalising left
    shift (mux chain), exponent field ``exp_sum − offset + 127 + msb`` computed modulo 256
    (only in-range results are specified, and those are exact modulo 256).

    ``stage(k, values)``, when given, is called at the segment boundaries k = 1 (after the
    magnitude and leading-zero count) and k = 2 (after the normalising shift) with the
    values the rest needs; it returns the values to continue from (registered copies: the
    pipelined PE's scale stages).
    """
    width = len(p)
    if width > _FP32_FRAC + 1:
        raise ValueError(f"p: at most 24 bits convert exactly, got {width}")
    if len(exp_sum) != _FP32_EXP:
        raise ValueError(f"exp_sum: must be {_FP32_EXP} bits wide, got {len(exp_sum)}")
    keep = stage if stage is not None else (lambda _k, values: values)
    neg = p[-1]
    mag = Signal(width, name="p_mag")  # |p|; |−2^(width−1)| still fits in width bits
    m.d.comb += mag.eq(Mux(neg, -p, p))
    # leading-zero count 0..width
    lzc = Signal(width.bit_length(), name="p_lzc")
    m.d.comb += lzc.eq(leading_zeros(mag))
    # biased exponent field = exp_sum + k − lzc (mod 256), k = 127 + (width − 1) − offset;
    # the constant is added as k or subtracted as 256 − k, whichever has its top bit set, so
    # every operand is a full 8 bits wide
    k = (_FP32_BIAS + width - 1 - offset) % (1 << _FP32_EXP)
    shifted_exp = Signal(_FP32_EXP, name="exp_const")
    if k == 0:
        m.d.comb += shifted_exp.eq(exp_sum)
    elif k >> (_FP32_EXP - 1):
        m.d.comb += shifted_exp.eq(exp_sum + Const(k, _FP32_EXP))
    else:
        m.d.comb += shifted_exp.eq(exp_sum - Const((1 << _FP32_EXP) - k, _FP32_EXP))
    v = keep(1, {"neg": neg, "mag": mag, "lzc": lzc, "exp": shifted_exp})
    norm = shift_left(m, v["mag"], v["lzc"], "p_norm")  # leading one at the top
    # exp − lzc as exp + ~{0…, lzc} + 1: every operand 8 bits wide (lint-clean Verilog)
    minus_lzc = Signal(_FP32_EXP, name="p_minus_lzc")
    biased = Signal(_FP32_EXP, name="p_biased_exp")
    m.d.comb += [
        minus_lzc.eq(Cat(~v["lzc"], Const((1 << (_FP32_EXP - len(lzc))) - 1,
                                          _FP32_EXP - len(lzc)))),
        biased.eq(v["exp"] + minus_lzc + 1),
    ]
    nonzero = Signal(name="p_nonzero")
    m.d.comb += nonzero.eq(norm[-1])  # the leading one is at the top unless p = 0
    v = keep(2, {"neg": v["neg"], "norm": norm, "biased": biased, "nonzero": nonzero})
    fraction = Cat(Const(0, _FP32_FRAC + 1 - width), v["norm"])[:_FP32_FRAC]
    result = Signal(32, name="p_fp32")
    m.d.comb += result.eq(Mux(v["nonzero"], Cat(fraction, v["biased"], v["neg"]), 0))
    return result


class BlockPE(wiring.Component):
    """Accumulating block dot-product PE (see the module docstring).

    **Latency** ``pipeline.pe_latency`` = product + scale + accumulator stages (3 unpipelined):
    the last pair of an accumulation accepted in cycle t has its sum at ``o`` in cycle
    t + latency (with d > 1: the last pair of the d-th output of a group).
    **Throughput 1 pair/cycle.** Back-pressure: the pipeline advances only when ``o`` is empty
    or read (``en = ~o.valid | o.ready``, ``i.ready = en``, so ``i.ready`` depends
    combinationally on ``o.ready``); ``o.valid`` and ``o.payload`` are registers and hold
    still while stalled.

    **C-slow accumulation (d = ``pipeline.acc_stages`` > 1).** The FP32 adder is cut into d
    register stages that form a ring: the pair accepted in an enabled cycle joins the
    accumulator that entered the ring d enabled cycles earlier, so the PE keeps d independent
    accumulations, one per ring position, visited round-robin. A caller sends output s's pairs
    exactly d enabled cycles apart (its k-blocks in ascending order, ``last`` on the final
    one); a cycle without a pair (``i.valid`` low while enabled) is a bubble: its position's
    accumulator passes unchanged (the adder adds −0.0, an exact identity for every binary32
    value, −0.0 included). Finished sums are collected in completion order in d − 1 holding
    registers; the d-th completion presents all d at ``o`` (``payload[0]`` the earliest).
    With d = 1 ``o.payload`` is one :data:`FP32_RESULT` and the PE behaves exactly as the
    unpipelined one.

    Storage: the product/scale pipeline registers (P, exponent sum, flags per stage), the
    ring (d stages of the adder's intermediate layouts + 3 flag bits; the last stage is the
    accumulator), d − 1 holding registers and a completion counter.

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
    pipeline : Pipeline | None
        Register stages (``pe_product_stages``, ``pe_scale_stages``, ``acc_stages``; the
        others are not used here). None: the unpipelined ``Pipeline()``.

    Members
    -------
    i : ``In(stream.Signature(pe_operands(operand)))``
        ``a``, ``w`` (one block pair of one k-block) and ``last`` (1 = the last k-block).
    o : ``Out(stream.Signature(FP32_RESULT))`` (d = 1) or ``ArrayLayout(FP32_RESULT, d)``
        ``value`` (binary32 accumulated sum) and ``invalid`` (some operand block of the
        accumulation had its ``invalid`` flag set; SPEC §2).
    """

    #: latency of the unpipelined PE (``Pipeline().pe_latency``)
    LATENCY = BASE_PE_LATENCY
    #: the adder's segments a ring can be cut into (largest ``acc_stages``)
    MAX_ACC_STAGES = len(SEGMENTS)
    #: positions of the scale stages' registers (after lzc, after the shift, at the end)
    _SCALE_CUTS = {1: (3,), 2: (1, 3), 3: (1, 2, 3)}

    def __init__(self, kind: ElementKind, *, decode: bool = True,
                 pipeline: Pipeline | None = None) -> None:
        if not isinstance(kind, ElementKind):
            raise ValueError(f"kind: expected an ElementKind, got {kind!r}")
        if not isinstance(decode, bool):
            raise ValueError(f"decode: expected a bool, got {decode!r}")
        if kind.product_bits > _FP32_FRAC + 2:  # sign + 24 magnitude bits
            raise ValueError(f"kind: block products of {kind.product_bits} bits are not exact")
        pipeline = self.check_pipeline(kind, pipeline)
        self._kind = kind
        self._decode = decode
        self._pipeline = pipeline
        operand = kind.encoded_layout if decode else kind.decoded_layout
        d = pipeline.acc_stages
        result = FP32_RESULT if d == 1 else data.ArrayLayout(FP32_RESULT, d)
        super().__init__({
            "i": In(stream.Signature(pe_operands(operand))),
            "o": Out(stream.Signature(result)),
        })

    @classmethod
    def check_pipeline(cls, kind: ElementKind, pipeline: Pipeline | None) -> Pipeline:
        """The PE stages of ``pipeline`` (None: unpipelined) checked for ``kind``;
        ``ValueError`` naming the key that does not fit."""
        pipeline = Pipeline() if pipeline is None else pipeline
        if not isinstance(pipeline, Pipeline):
            raise ValueError(f"pipeline: expected a Pipeline, got {pipeline!r}")
        levels = tree_depth(kind.block) + 1
        for key, value, top in (("pe_product_stages", pipeline.pe_product_stages, levels),
                                ("pe_scale_stages", pipeline.pe_scale_stages,
                                 len(cls._SCALE_CUTS)),
                                ("acc_stages", pipeline.acc_stages, cls.MAX_ACC_STAGES)):
            if not 1 <= value <= top:
                raise ValueError(f"{key}: must be 1..{top} for this PE, got {value}")
        return pipeline

    @property
    def kind(self) -> ElementKind:
        return self._kind

    @property
    def decode(self) -> bool:
        return self._decode

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def acc_stages(self) -> int:
        """d: interleaved accumulations (outputs presented per ``o`` beat)."""
        return self._pipeline.acc_stages

    @property
    def latency(self) -> int:
        """Cycles from accepting the last pair to presenting the sum."""
        return self._pipeline.pe_latency

    def elaborate(self, platform: object) -> Module:
        m = Module()
        kind = self._kind
        pipe = self._pipeline
        d = pipe.acc_stages
        payload = self.i.payload
        if self._decode:
            m.submodules.dec_a = dec_a = BlockDecoder(kind)
            m.submodules.dec_w = dec_w = BlockDecoder(kind)
            m.d.comb += [dec_a.i.eq(payload.a), dec_w.i.eq(payload.w)]
            a, w = dec_a.o, dec_w.o
        else:
            a, w = payload.a, payload.w

        en = _Enables(m, self.o.ready)
        m.d.comb += self.i.ready.eq(en.get(_Enables.FANOUT))  # a copy of its own

        # products + adder tree, registers at ``cuts`` (position 1 = after the multipliers,
        # 1 + l = after tree level l; the last one at the end: P and the block scale)
        if kind.float_scaled:
            # NVFP4: the E4M3 pair's S_a·S_w and E'_a + E'_w (13 bits instead of the two
            # bytes), a 4 × 4 multiply beside the element multipliers
            invalid_in = Signal(name="invalid_in")
            scale_sig, scale_exps = e4m3_pair(m, a.exp, w.exp)
            m.d.comb += invalid_in.eq(a.invalid | w.invalid)
            scale: dict[str, Value] = {"sig": scale_sig, "exps": scale_exps}
        else:
            exp_sum = Signal(_FP32_EXP, name="exp_sum")  # exp_a + exp_w (biased), modulo 256
            invalid_in = Signal(name="invalid_in")
            m.d.comb += [exp_sum.eq(a.exp + w.exp), invalid_in.eq(a.invalid | w.invalid)]
            scale = {"exp": exp_sum}
        side: dict[str, Value] = {"valid": self.i.valid, "last": payload.last,
                                  "invalid": invalid_in, **scale}
        top = tree_depth(kind.block) + 1
        cuts = set(cut_levels(top, pipe.pe_product_stages))
        mag_bits = kind.product_bits - 1  # |P| ≤ B · max_element² < 2^(product_bits − 1)

        def stage_side(tag: str) -> None:
            for key in list(side):  # only ``valid`` needs a reset value
                side[key] = _register(m, en, side[key], f"{tag}_{key}",
                                      0 if key == "valid" else None)

        def product_stage(level: int, values: list) -> list:
            if kind.float_scaled and level + 1 == top:  # P as (P ⊕ sign, sign): see scale
                values = [ones_magnitude(values[0], mag_bits)]
            if level + 1 not in cuts:
                return values
            stage_side(f"prod{level + 1}")
            return [_register(m, en, v, f"prod{level + 1}_{k}") for k, v in enumerate(values)]

        products = product_stage(0, [a.elems[i] * w.elems[i] for i in range(kind.block)])
        tree = tree_reduce(products, operator.add, stage=product_stage)
        s1_p = Signal(signed(kind.product_bits), name="s1_p")
        m.d.comb += s1_p.eq(tree)

        # exact conversion P · 2^exp (NVFP4: P · s_a · s_w / 4) → binary32, registers at the
        # scale cuts
        scale_cuts = self._SCALE_CUTS[pipe.pe_scale_stages]

        def scale_stage(k: int, values: dict[str, Value]) -> dict[str, Value]:
            if k not in scale_cuts:
                return values
            stage_side(f"scale{k}")
            return {key: _register(m, en, v, f"scale{k}_{key}") for key, v in values.items()}

        if kind.float_scaled:
            sig_reg, exps_reg = side.pop("sig"), side.pop("exps")
            contribution = scaled_contribution(m, s1_p, sig_reg, exps_reg, mag_bits=mag_bits,
                                               ones_form=True, stage=scale_stage)
        else:
            exp_reg = side.pop("exp")
            contribution = int_to_fp32(m, s1_p, exp_reg, 2 * kind.exp_offset, scale_stage)
        # a bubble's addend is −0.0 (an exact identity), chosen before the register so the
        # accumulator loop does not carry that multiplexer
        addend = Signal(32, name="addend")
        m.d.comb += addend.eq(Mux(side["valid"], contribution, _NEG_ZERO))
        stage_side("scale3")
        c_value = _register(m, en, addend, "scale3_value")
        c_valid, c_last, c_invalid = side["valid"], side["last"], side["invalid"]

        # FP32 RNE accumulation from +0.0: a ring of d adder stages (the last = accumulator)
        acc = Signal(32, name="acc")
        acc_flags = Signal(3, name="acc_flags")  # invalid, fresh, new_final (a register)
        acc_invalid, acc_fresh, acc_final = acc_flags[0], acc_flags[1], acc_flags[2]
        operands = Signal(FP32_PAIR, name="acc_operands")
        flags = Signal(3, name="acc_in_flags")
        m.d.comb += [
            operands.a.eq(Mux(c_valid & acc_fresh, 0, acc)),
            operands.b.eq(c_value),  # −0.0 for a bubble: the accumulator passes unchanged
            flags.eq(Mux(c_valid, Cat(c_invalid | (acc_invalid & ~acc_fresh), c_last, c_last),
                         Cat(acc_invalid, acc_fresh, Const(0, 1)))),
        ]
        ring_cuts = segment_cuts(d)
        value: Value = operands
        for index, segment in enumerate(SEGMENTS, start=1):
            value = segment(m, value)
            if index in ring_cuts and index != len(SEGMENTS):
                value = _register(m, en, value, f"ring{index}")
                flags = _register(m, en, flags, f"ring{index}_flags", init=_FRESH)
        m.d.comb += [acc.eq(_register(m, en, value, "acc_value")),
                     acc_flags.eq(_register(m, en, flags, "acc_flag_reg", init=_FRESH))]

        if d == 1:
            en.finish(flags[2])
            m.d.comb += [
                self.o.valid.eq(acc_final),
                self.o.payload.value.eq(acc),
                self.o.payload.invalid.eq(acc_invalid),
            ]
            return m
        # completions are collected in order; the d-th presents all of them
        done = Signal(range(d), name="done_count")  # completions collected so far
        held = [Signal(FP32_RESULT, name=f"held{k}") for k in range(d - 1)]
        last_one = Signal(name="group_done")
        m.d.comb += [
            last_one.eq(done == d - 1),
            self.o.valid.eq(acc_final & last_one),
            self.o.payload[d - 1].value.eq(acc),
            self.o.payload[d - 1].invalid.eq(acc_invalid),
            *(self.o.payload[k].eq(held[k]) for k in range(d - 1)),
        ]
        done_next = Signal(range(d), name="done_next")
        with m.If(acc_final):
            m.d.comb += done_next.eq(Mux(last_one, 0, done + 1))
        with m.Else():
            m.d.comb += done_next.eq(done)
        m.d.comb += done.eq(_register(m, en, done_next, "done_reg", 0))
        # a completion that is not the group's last shifts into the holding registers; the
        # condition after an enabled cycle: the sum entering the accumulator is final and
        # will not be the group's last
        shift_next = flags[2] & (done_next != d - 1)
        for k in range(d - 1):
            newer = Cat(acc, acc_invalid) if k == d - 2 else Value.cast(held[k + 1])
            m.d.comb += held[k].eq(_held_register(m, en, newer, shift_next, f"held_reg{k}"))
        en.finish(flags[2] & (done_next == d - 1))
        return m
