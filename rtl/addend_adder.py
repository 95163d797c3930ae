"""The GEMM core's output adder: each drained FP32 result plus its addend (SPEC §6 second pass),
in ``addend_stages`` register stages.

A decomposition's second pass adds every ``y`` lane to the matching ``yin`` lane, one binary32
RNE add (:mod:`rtl.fp32_add`, the same seven segments and the same arithmetic); a GEMM without
``add`` passes its results through the same stages with the addend −0.0, an exact identity
for every finite binary32 value (−0.0 included: −0 + −0 = −0, +0 + −0 = +0 under RNE), and
every result the array can produce is finite (SPEC §5: no FP32 overflow from FP16 inputs).
So with or without ``add`` every beat takes the same ``stages`` cycles.

Register positions (:func:`addend_cuts`): position 0 is the operands themselves (the result
from the tile drain's lane multiplexer and the addend, after the −0.0 select), position k
(1 … 7) follows adder segment k (:data:`rtl.fp32_add.SEGMENTS`); the last register always
follows the final segment, so ``o`` is registered. ``stages`` = 0 is the combinational adder
(``o.valid`` = ``i.valid``, ``i.ready`` = ``o.ready``), the design before pipelining.

Several lanes are that many one-lane adders in lockstep (a replicated cell,
:func:`rtl.cells.cell`: one Verilog module for every lane but the first, which also carries
the side bits), each with its own valid and stall-enable registers: the area flow's
``addend_adder`` (one lane) × ``drain_width`` is the GEMM core's output adder exactly.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.cells import cell
from semdialect.rtl.fp32_add import FP32_PAIR, SEGMENTS
from semdialect.rtl.layouts import FP32_RESULT
from semdialect.rtl.trees import Enables, pipeline_register

__all__ = ["ADDER_CUTS", "MAX_STAGES", "AddendAdder", "addend_cuts"]

#: register positions: 0 (the operands) and after each of the adder's segments
MAX_STAGES = len(SEGMENTS) + 1

_NEG_ZERO = 0x8000_0000


#: registers inside the adder (positions after segments 1 … 7) for 1 … 7 registers: the
#: fastest placement of each count on the liberty flow (OSU 180 nm, one lane without the
#: operand register, inputs at the clock edge; every placement
#: synthesized for 2 … 6 registers, 2026-12-04), with its f_max
ADDER_CUTS: dict[int, tuple[int, ...]] = {
    1: (7,),  # the whole adder in one stage: 10.7 ns (93 MHz)
    2: (4, 7),  # 152 MHz
    3: (3, 4, 7),  # 220 MHz
    4: (2, 4, 6, 7),  # 286 MHz
    5: (2, 4, 5, 6, 7),  # 290 MHz
    6: (1, 2, 4, 5, 6, 7),  # 329 MHz
    7: (1, 2, 3, 4, 5, 6, 7),  # 303 MHz
}


def addend_cuts(stages: int) -> tuple[int, ...]:
    """Register positions of a ``stages``-deep output adder (0 … :data:`MAX_STAGES`),
    ascending: 0 = the operands, k = after adder segment k (1 … 7), the last always after
    the final segment. One stage: the output register only; from two stages on the operands
    are registered (position 0: inside the GEMM core the tile drain's lane multiplexer stays
    out of the adder's first stage) and the other ``stages`` − 1 registers sit where
    :data:`ADDER_CUTS` puts that many. ``()`` for 0 stages (combinational).

    Measured (liberty flow, OSU 180 nm, one lane; docs/ARCHITECTURE.md "Pipeline"): 5 stages
    (0, 2, 4, 6, 7) reach 269 MHz alone and 264 MHz behind an 8-way drain multiplexer
    (``TileDrain(8, 7, 7)`` in front); without the operand register, (2, 4, 6, 7) behind the
    same drain reaches only 207 MHz."""
    stages = operator.index(stages)
    if not 0 <= stages <= MAX_STAGES:
        raise ValueError(f"stages: must be 0..{MAX_STAGES}, got {stages}")
    if stages <= 1:
        return ADDER_CUTS[1] * stages
    return (0, *ADDER_CUTS[stages - 1])


class AddendAdder(wiring.Component):
    """``lanes`` FP32 output adders y = result + addend with ``stages`` register stages.

    Parameters
    ----------
    lanes : int
        Results per beat (the GEMM core: ``drain_width``; the area flow's ``addend_adder``
        component: 1).
    stages : int
        Register stages, 0..:data:`MAX_STAGES` (positions: :func:`addend_cuts`). With
        ``o.ready`` high a beat leaves ``stages`` cycles after it was accepted, one beat per
        cycle. All stages advance on one stall enable ``~o.valid | o.ready`` (replicated per
        12 register bits, :class:`rtl.trees.Enables`); ``i.ready`` is that enable
        (combinational from ``o.ready``), ``o.valid`` never depends on ``o.ready``.
    side : int
        Bits carried alongside each beat unchanged (the core's mask and last flag), 0 for none.

    Members
    -------
    i : ``In(stream.Signature(...))``
        ``lanes`` (``lanes`` × :data:`~rtl.layouts.FP32_RESULT`: the results), ``addends``
        (the same: the addends), ``add`` (1: add them; 0: pass the results), ``side``.
    o : ``Out(stream.Signature(...))``
        ``lanes`` (the sums, ``invalid`` = result's | (add & addend's)), ``side``.
    """

    def __init__(self, lanes: int = 1, stages: int = 0, *, side: int = 0) -> None:
        for name, value, low in (("lanes", lanes, 1), ("side", side, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
        self._cuts = addend_cuts(stages)  # checks stages
        self._lanes = lanes
        self._stages = stages
        self._side = side
        results = data.ArrayLayout(FP32_RESULT, lanes)
        fields_in: dict[str, object] = {"lanes": results, "addends": results, "add": 1}
        fields_out: dict[str, object] = {"lanes": results}
        if side:
            fields_in["side"] = side
            fields_out["side"] = side
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(fields_in))),
            "o": Out(stream.Signature(data.StructLayout(fields_out))),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def stages(self) -> int:
        return self._stages

    @property
    def latency(self) -> int:
        """Cycles from a beat accepted to its sums presented (without stalls) = ``stages``."""
        return self._stages

    @property
    def cuts(self) -> tuple[int, ...]:
        """Register positions (:func:`addend_cuts`)."""
        return self._cuts

    def elaborate(self, platform: object) -> Module:
        if self._lanes > 1:
            return self._lanes_of_one(platform)
        m = Module()
        payload = self.i.payload
        cuts = self._cuts
        if not cuts:
            m.d.comb += self.i.ready.eq(self.o.ready)
            en = None
        else:
            en = Enables(m, self.o.ready)
            m.d.comb += self.i.ready.eq(en.get(Enables.FANOUT))  # a copy of its own

        # beat-level values carried through every stage: valid (reset 0) and the side bits
        valid: Value = self.i.valid
        entering: Value = valid  # what the last valid register loads
        side: Value | None = payload.side if self._side else None
        got, addend = payload.lanes[0], payload.addends[0]
        value: Value = Signal(FP32_PAIR, name="operands")
        invalid: Value = Signal(name="invalid_in")
        m.d.comb += [
            value.a.eq(got.value),
            value.b.eq(Mux(payload.add, addend.value, _NEG_ZERO)),
            invalid.eq(got.invalid | (payload.add & addend.invalid)),
        ]

        def stage(position: int) -> None:
            nonlocal valid, entering, side, value, invalid
            if position not in cuts:
                return
            assert en is not None
            tag = f"s{position}"
            entering = valid
            valid = pipeline_register(m, en, valid, f"{tag}_valid", init=0)
            if side is not None:
                side = pipeline_register(m, en, side, f"{tag}_side")
            value = pipeline_register(m, en, value, f"{tag}_value0")
            invalid = pipeline_register(m, en, invalid, f"{tag}_invalid0")

        stage(0)
        for index, segment in enumerate(SEGMENTS, start=1):
            value = segment(m, value)
            stage(index)
        if en is not None:
            # o.valid's replicas load the valid entering the last register
            en.finish(entering)
        m.d.comb += [self.o.payload.lanes[0].value.eq(value),
                     self.o.payload.lanes[0].invalid.eq(invalid)]
        if side is not None:
            m.d.comb += self.o.payload.side.eq(side)
        m.d.comb += self.o.valid.eq(valid)
        return m

    def _lanes_of_one(self, platform: object) -> Module:
        """``lanes`` one-lane adders in lockstep (a replicated cell, :func:`rtl.cells.cell`):
        all get the same ``valid``, ``add`` and ``o.ready``, so their control state is
        identical and lane 0's ``i.ready``/``o.valid`` stand for all; lane 0 also carries the
        side bits."""
        m = Module()
        payload = self.i.payload
        for lane in range(self._lanes):
            sub = cell(platform, "addend_lane", AddendAdder, 1, self._stages,
                       side=self._side if lane == 0 else 0)
            m.submodules[f"lane{lane}"] = sub
            m.d.comb += [
                sub.i.valid.eq(self.i.valid),
                sub.i.payload.lanes[0].eq(payload.lanes[lane]),
                sub.i.payload.addends[0].eq(payload.addends[lane]),
                sub.i.payload.add.eq(payload.add),
                sub.o.ready.eq(self.o.ready),
                self.o.payload.lanes[lane].eq(sub.o.payload.lanes[0]),
            ]
            if lane == 0:
                if self._side:
                    m.d.comb += [sub.i.payload.side.eq(payload.side),
                                 self.o.payload.side.eq(sub.o.payload.side)]
                m.d.comb += [self.i.ready.eq(sub.i.ready), self.o.valid.eq(sub.o.valid)]
        return m
