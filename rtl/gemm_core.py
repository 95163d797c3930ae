"""GEMM core: Y (M×N, FP32) = X (M×K, FP16) · W (K×N, quantized) on an output-stationary
MAC array, activations quantized on the fly (SPEC §2–6).

Parts (composed in :meth:`GemmCore.elaborate`)::

    x (L blocks) ─► [L × BlockRotator] ─► L × BlockQuantizer ─► writer ─► ActivationBuffer
                                            (residual path)        │   (2 banks × rows × max_kb)
                                                                   └─► q (quantize) / r (residuals)
                                                         │ rows blocks / cycle
    w (cols blocks) ─► sequencer ─► MACArray (rows × cols BlockPE) ─► TileDrain
                                         ─► AddendAdder (+ yin, ``addend_stages`` registers) ─► y
    cmd (M, N, KB, op, add) ─► controller (counters, bank flags)

**Dataflow** (output-stationary, see :class:`~rtl.mac_array.MACArray`): a *tile* is
rows × T outputs Y[m0 + r, n0 + c], T = cols·d, d = ``acc_stages`` (the C-slow
accumulator: each PE keeps d outputs, virtual column group s = tile columns s·cols …
s·cols + cols − 1); PE (r, c) accumulates output s of its d over the KB k-blocks in ascending
order, getting a block pair every d cycles; the activation block of row r is broadcast along
PE row r (re-read from the activation buffer for each of the d groups), the weight block of
column s·cols + c along PE column c. A tile's last column group may lie wholly past N: its
weight beats are padding and its outputs don't-care (never emitted). Edge tiles (M, N not
multiples of the tile) use the top-left R_t × C_j outputs; the others compute don't-care
values that are never emitted.

**Stream orders** (the full interface — ports, payload bit layouts, handshake, orders and the
rule that the streams are driven concurrently — is ``docs/ARCHITECTURE.md``, section "GemmCore
stream interface"; the testbench and the cycle model follow it exactly): ``x`` beats carry
one k-block of L = ``lanes`` consecutive rows (``for t: for row group g: for kb:``); ``w``
beats one k-block of ``cols`` columns (``for t: for j: for kb: for s < d:``, columns
j·T + s·cols + c); ``y`` beats carry D = ``drain_width`` outputs of one tile
(g = max(1, D/T) rows × min(D, T) columns,
row-beat major, a ``mask`` marking the lanes inside the tile). A quantize command (``op``)
sends the quantized ``x`` beats out on ``q`` instead of computing; a GEMM emits the residual
of every ``salient`` block on ``r`` (SPEC §6) and, with ``add``, adds each ``y`` lane to the
matching ``yin`` lane (the decomposition's second pass): :class:`~rtl.addend_adder.AddendAdder`,
``addend_stages`` register stages that every ``y`` beat passes (without ``add`` its lanes are
added to −0.0, an exact identity), so a GEMM's outputs reach ``y`` that many cycles after they
leave the drain, with or without ``add``.

**Rotation** (SPEC §11, a configuration with ``rotate = "hadamard"``): every frontend lane has
a :class:`~rtl.rotator.BlockRotator` in front of its quantizer (``rotator_stages`` =
:data:`~rtl.timing.ROTATOR_STAGES` registers, one block per cycle), so the quantizer, its
residual (SPEC §6: formed in the rotated basis) and a quantize command's ``q`` blocks see the
rotated blocks. The role is per command: a GEMM's X rows in the activation role (c_a), a
quantize command's rows (a run-time second operand, SPEC §6a) in the weight role (c_w), so the
GEMM of a rotated X with them is exact in the rotated basis (c_a + c_w = log2 B); static
weights are rotated offline in the weight role. A GEMM with ``add`` (the decomposition's
second pass) takes X already in the rotated basis (the residual rows of the first pass's
``r``): its blocks pass the rotators unchanged (``bypass``, same latency). The candidate mask
and the salient flag travel through the rotator with their block; a block with NaN/±Inf or one
that overflows FP16 after rotation reaches the quantizer as 0x7E00 in every lane and is
flagged ``invalid``.

**Schedule**: every lane's quantizer takes one block every C_sel cycles (C_sel =
K_book/formats per cycle for ``lut``, 1 for ``two-stage``), so a row tile enters in
⌈R_t/L⌉·KB·C_sel cycles, filling bank t mod 2 while the array computes row tile t − 1 from
the other bank; the sequencer issues one k-step of one column group (one weight beat) per
cycle, KB·d per tile (after a gap, a beat waits until its ring position comes round:
``turn``); the array's
results for a tile are captured by the drain in one cycle (the PEs stall only while the drain
still emits the previous tile) and leave D per cycle; the drain takes the next tile in the
cycle the previous tile's last beat leaves. A row tile starts issuing after the previous row
tile's last capture. The exact cycle counts without stalls are :func:`sim.cycles.gemm_cycles`
and :func:`sim.cycles.quantize_cycles` (formulas in that module's docstring); in steady state
one column tile costs max(KB·d, b) cycles, b = the drain beats of a tile.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.config import MAX_ARRAY, Config, check_drain_width, check_lanes
from semdialect.designs import PEKind
from semdialect.golden.formatbook import Formatbook
from semdialect.golden.rotation import Rotation
from semdialect.rtl.act_buffer import ActivationBuffer
from semdialect.rtl.addend_adder import AddendAdder
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.cells import cell, prototype
from semdialect.rtl.layouts import (
    FP32_RESULT,
    OP_QUANTIZE,
    dialect_id,
    dialect_id_eq,
    drain_beat,
    gemm_command,
    quantized_beat,
    quantized_block,
    residual_beat,
    salient_masked_fp16_block,
)
from semdialect.rtl.mac_array import MACArray
from semdialect.rtl.rotator import BlockRotator
from semdialect.rtl.tile_drain import TileDrain
from semdialect.rtl.timing import Pipeline

__all__ = ["GemmCore"]

#: widest signal (bits) Amaranth's RTLIL backend emits (and its simulator takes): a stream
#: payload over it (the ``x`` stream of 128 lanes at B = 32: 69 760 bits) cannot be generated
MAX_SIGNAL_BITS = 1 << 16
#: defaults of :meth:`GemmCore.from_config` (K up to 512 blocks = 16384 at B = 32)
DEFAULT_MAX_M = (1 << 17) - 1
DEFAULT_MAX_N = (1 << 16) - 1
DEFAULT_MAX_KB = 512


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return value


class GemmCore(wiring.Component):
    """The GEMM accelerator top (see the module docstring for orders and schedule).

    Latency/throughput: :func:`sim.cycles.gemm_cycles` cycles per GEMM without stalls
    (command accepted → last output accepted, inclusive); commands back to back. Storage:
    the :class:`~rtl.block_quantizer.BlockQuantizer`, rows × 2·max_kb quantized blocks
    (4B + 6 + id_bits(K) bits each), rows × cols PEs (each with d = ``acc_stages``
    accumulators), rows × cols·d × 33 drain registers, the output adder's ``addend_stages``
    register stages of ``drain_width`` lanes.

    Parameters
    ----------
    rows, cols : int
        MAC array size, 1..128 (:data:`semdialect.config.MAX_ARRAY`).
    block : int
        B (16, 32, 64).
    formatbook : Formatbook | str
        The K dialects.
    select : str
        ``"lut"`` or ``"two-stage"`` (activations; weights arrive pre-quantized).
    formats_per_cycle : int | None
        LUT selector dialects per cycle, a divisor of K (default K).
    max_m, max_n : int
        Largest M and N (set the command field and counter widths).
    max_kb : int
        Largest K/B, a power of two (activation buffer depth per bank).
    lanes, drain_width : int
        Frontend quantizer lanes (a divisor of rows) and outputs per drain beat (a divisor of
        the tile's cols·d columns, or a multiple of them dividing rows·cols·d). No stream
        payload may exceed :data:`MAX_SIGNAL_BITS` (``ValueError``): at B = 32 with 32
        dialects at most 120 lanes (the ``x`` beat: 545 bits a lane), so the 128×128
        configuration's core is not generated (its area is counted per module).
    pipeline : Pipeline | None
        Register stages (:class:`~rtl.timing.Pipeline`; None: unpipelined); its
        ``rotator_stages`` are the rotators' (``ValueError`` naming ``pipeline`` if non-zero
        without a ``rotation``).
    rotation : Rotation | None
        SPEC §11 block rotation of the frontend (size B; None: no rotators): a
        :class:`~rtl.rotator.BlockRotator` per lane, role per command (module docstring).

    Members
    -------
    cmd : ``In(stream.Signature(gemm_command(...)))``
        ``m``, ``n``, ``kb``.
    x : ``In(stream.Signature(masked_fp16_block(B, K)))``
        Activation blocks.
    w : ``In(stream.Signature(ArrayLayout(quantized_block(B, K), cols)))``
        Weight beats.
    y : ``Out(stream.Signature(GEMM_OUTPUT))``
        Outputs.
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        block: int,
        formatbook: Formatbook | str,
        select: str = "lut",
        formats_per_cycle: int | None = None,
        *,
        lanes: int = 1,
        drain_width: int = 1,
        max_m: int = DEFAULT_MAX_M,
        max_n: int = DEFAULT_MAX_N,
        max_kb: int = DEFAULT_MAX_KB,
        pipeline: Pipeline | None = None,
        rotation: Rotation | None = None,
    ) -> None:
        # plain parameters first, so that no sub-component is built for a bad one
        for name, val in (("rows", rows), ("cols", cols)):
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= MAX_ARRAY:
                raise ValueError(f"{name}: must be an integer in 1..{MAX_ARRAY}, got {val!r}")
        pipeline = Pipeline() if pipeline is None else pipeline
        if not isinstance(pipeline, Pipeline):
            raise ValueError(f"pipeline: expected a Pipeline, got {pipeline!r}")
        self._pipeline = pipeline
        if rotation is not None and not isinstance(rotation, Rotation):
            raise ValueError(f"rotation: expected a golden.rotation.Rotation or None, "
                             f"got {rotation!r}")
        if rotation is None and pipeline.rotator_stages:
            raise ValueError(f"pipeline: rotator_stages = {pipeline.rotator_stages} without a "
                             "rotation (rotation=None builds no rotators)")
        d = pipeline.acc_stages
        check_lanes(lanes, rows)
        check_drain_width(drain_width, rows, cols, d)
        self._max_m = _positive("max_m", max_m)
        self._max_n = _positive("max_n", max_n)
        self._max_kb = _positive("max_kb", max_kb)
        if max_kb & (max_kb - 1):
            raise ValueError(f"max_kb: must be a power of two, got {max_kb}")
        # one frontend lane (the lanes are alike: built in elaborate, see rtl.cells)
        self._quantizer = quant = prototype(BlockQuantizer(
            block, formatbook, select, formats_per_cycle, residual=True,
            stages=pipeline.selector_stages))
        book = quant.formatbook
        k, b = book.size, quant.block
        # one rotator lane (built in elaborate): the role per block, the mask and the salient
        # flag carried through it
        self._rotation = rotation
        self._rotator = None if rotation is None else prototype(BlockRotator(
            b, rotation, None, stages=pipeline.rotator_stages, side=k + 1))
        payloads = {
            "x": data.ArrayLayout(salient_masked_fp16_block(b, k), lanes),
            "w": data.ArrayLayout(quantized_block(b, k), cols),
            "y": drain_beat(drain_width),
            "yin": data.ArrayLayout(FP32_RESULT, drain_width),
            "q": quantized_beat(b, k, lanes),
            "r": residual_beat(b, lanes),
        }
        for name, layout in payloads.items():
            if layout.size > MAX_SIGNAL_BITS:
                param = {"w": "cols", "y": "drain_width", "yin": "drain_width"}.get(name, "lanes")
                raise ValueError(f"{param}: the {name} stream's payload would be {layout.size} "
                                 f"bits wide; Amaranth emits no signal over {MAX_SIGNAL_BITS}")
        self._kind = ElementKind.for_design(PEKind.DIALECT, quant.block, book)
        self._array = MACArray(rows, cols, self._kind, pipeline=pipeline)
        self._buffer = ActivationBuffer(rows, self._kind.encoded_layout, max_kb, lanes)
        self._drain = TileDrain(rows, cols * d, drain_width)
        self._adder = AddendAdder(drain_width, pipeline.addend_stages, side=drain_width + 1)
        self._rows = rows
        self._cols = cols
        self._lanes = lanes
        self._drain_width = drain_width
        self._cmd_layout = gemm_command(
            max(max_m, rows).bit_length(), max(max_n, cols * d).bit_length(),
            max_kb.bit_length()
        )
        super().__init__({
            "cmd": In(stream.Signature(self._cmd_layout)),
            "x": In(stream.Signature(payloads["x"])),
            "w": In(stream.Signature(payloads["w"])),
            "y": Out(stream.Signature(payloads["y"])),
            "yin": In(stream.Signature(payloads["yin"])),
            "q": Out(stream.Signature(payloads["q"])),
            "r": Out(stream.Signature(payloads["r"])),
        })

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        *,
        max_m: int = DEFAULT_MAX_M,
        max_n: int = DEFAULT_MAX_N,
        max_kb: int = DEFAULT_MAX_KB,
    ) -> GemmCore:
        """The core of a :class:`semdialect.config.Config` (rows, cols, block, formatbook,
        select, formats_per_cycle, the rotation; the dataflow must be output-stationary)."""
        if cfg.dataflow != "output-stationary":
            raise ValueError(f"dataflow: GemmCore is output-stationary, got {cfg.dataflow!r}")
        return cls(cfg.rows, cfg.cols, cfg.block, cfg.book(), cfg.select, cfg.formats_per_cycle,
                   lanes=cfg.lanes, drain_width=cfg.drain_width, max_m=max_m, max_n=max_n,
                   max_kb=max_kb, pipeline=Pipeline.of(cfg), rotation=cfg.rotation())

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def drain_width(self) -> int:
        return self._drain_width

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def rotation(self) -> Rotation | None:
        """The frontend's SPEC §11 rotation (None: no rotators)."""
        return self._rotation

    @property
    def frontend_latency(self) -> int:
        """Cycles from an ``x`` beat accepted to its quantized blocks presented: the rotator's
        ``rotator_stages`` + the quantizer's latency
        (:meth:`rtl.timing.Pipeline.quantizer_latency`)."""
        rot = 0 if self._rotator is None else self._rotator.latency
        return rot + self._quantizer.latency

    @property
    def output_latency(self) -> int:
        """Cycles from a drain beat leaving the tile drain to the ``y`` port: the output
        adder's ``addend_stages`` (:attr:`rtl.timing.Pipeline.output_latency`)."""
        return self._adder.latency

    @property
    def tile_cols(self) -> int:
        """Columns of an output tile: cols · acc_stages (virtual column groups)."""
        return self._cols * self._pipeline.acc_stages

    @property
    def block(self) -> int:
        return self._quantizer.block

    @property
    def formatbook(self) -> Formatbook:
        return self._quantizer.formatbook

    @property
    def selector_cycles(self) -> int:
        """C_sel: cycles per frontend beat (each lane's quantizer initiation interval)."""
        return self._quantizer.initiation_interval

    @property
    def max_kb(self) -> int:
        return self._max_kb

    @property
    def cmd_layout(self) -> data.StructLayout:
        return self._cmd_layout

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rows, cols, lanes = self._rows, self._cols, self._lanes
        d = self._pipeline.acc_stages
        tile_cols = cols * d
        proto = self._quantizer
        quants = [cell(platform, "block_quantizer_residual", BlockQuantizer, proto.block,
                       proto.formatbook, proto.mode, proto.formats_per_cycle, residual=True,
                       stages=proto.stages) for _ in range(lanes)]
        for lane, quant in enumerate(quants):
            m.submodules[f"quantizer{lane}"] = quant
        rot_proto = self._rotator
        rotators = [] if rot_proto is None else [
            cell(platform, "block_rotator", BlockRotator, rot_proto.block, rot_proto.rotation,
                 None, stages=rot_proto.stages, side=rot_proto.side) for _ in range(lanes)]
        for lane, rot in enumerate(rotators):
            m.submodules[f"rotator{lane}"] = rot
        q0 = quants[0]  # all lanes get the same valid/ready: lane 0's handshake stands for all
        m.submodules.buffer = buf = self._buffer
        m.submodules.array = arr = self._array
        m.submodules.drain = drain = self._drain

        start = Signal()  # a command is accepted this cycle
        busy = Signal()
        op_q = Signal()  # the command is a quantize command
        add = Signal()  # the GEMM's outputs are added to ``yin``
        last_kb = Signal(range(max(self._max_kb, 2)))  # KB − 1
        # per bank: reserved by the acceptor / holds a complete row tile (until its release)
        claimed = _BankFlags("claimed")
        full = _BankFlags("full")
        m.d.comb += [
            self.cmd.ready.eq(~busy),
            start.eq(self.cmd.valid & self.cmd.ready),
        ]
        with m.If(start):
            m.d.sync += [busy.eq(1), last_kb.eq(self.cmd.payload.kb - 1),
                         op_q.eq(self.cmd.payload.op == OP_QUANTIZE),
                         add.eq(self.cmd.payload.add & (self.cmd.payload.op != OP_QUANTIZE))]
            claimed.clear(m)
            full.clear(m)

        # Four independent walkers follow the same loop order: the acceptor (x → quantizers),
        # the writer (quantizers → buffer, or → q), the sequencer (buffer + w → array) and the
        # capture (array → drain). Each restarts from zero with every command.
        a_rows = _TileWalker(m, "a_rows", self.cmd.payload.m, start, rows)
        w_rows = _TileWalker(m, "w_rows", self.cmd.payload.m, start, rows)
        s_cols = _TileWalker(m, "s_cols", self.cmd.payload.n, start, tile_cols)
        c_rows = _TileWalker(m, "c_rows", self.cmd.payload.m, start, rows)
        c_cols = _TileWalker(m, "c_cols", self.cmd.payload.n, start, tile_cols)
        a_gm1 = _groups_m1(m, "a", a_rows.extent, rows, lanes)  # row groups of the tile − 1
        w_gm1 = _groups_m1(m, "w", w_rows.extent, rows, lanes)
        group = range(max(rows // lanes, 2))
        a_g, a_kb, a_bank, a_done = (Signal(group, name="a_g"),
                                     Signal(last_kb.shape(), name="a_kb"), Signal(name="a_bank"),
                                     Signal(name="a_done"))
        w_g, w_kb, w_bank = (Signal(group, name="w_g"),
                             Signal(last_kb.shape(), name="w_kb"), Signal(name="w_bank"))
        s_kb, s_bank, s_wait, s_done = (Signal(last_kb.shape(), name="s_kb"), Signal(name="s_bank"),
                                        Signal(name="s_wait"), Signal(name="s_done"))
        final = Signal()
        with m.If(start):
            m.d.sync += [
                sig.eq(0)
                for sig in (a_g, a_kb, a_bank, a_done, w_g, w_kb, w_bank, s_kb, s_bank, s_wait,
                            s_done, final)
            ]

        # -- acceptor: X beats (one row group's k-block) into the quantizers ------------------
        a_first = Signal()
        a_gate = Signal()
        a_take = Signal()
        m.d.comb += [
            a_first.eq(~a_g.any() & ~a_kb.any()),
            # a GEMM claims a bank per row tile; a quantize command writes no bank
            a_gate.eq(busy & ~a_done & (op_q | ~a_first | ~claimed.read(a_bank))),
            # all lanes share one handshake: lane 0's stands for all
            self.x.ready.eq((rotators[0] if rotators else q0).i.ready & a_gate),
            a_take.eq(self.x.valid & self.x.ready),
        ]
        if rotators:
            # x → rotators (role: weight for a quantize command) → quantizers
            k = self.formatbook.size
            for rot, quant, lane_in in zip(rotators, quants, self.x.payload, strict=True):
                m.d.comb += [
                    rot.i.payload.x.eq(lane_in.x),
                    rot.i.payload.side.eq(Cat(lane_in.mask, lane_in.salient)),
                    rot.i.payload.weight.eq(op_q),
                    rot.i.payload.bypass.eq(add),
                    rot.i.valid.eq(self.x.valid & a_gate),
                    quant.i.payload.x.eq(rot.o.payload.x),
                    quant.i.payload.mask.eq(rot.o.payload.side[:k]),
                    quant.i.payload.salient.eq(rot.o.payload.side[k]),
                    quant.i.valid.eq(rot.o.valid),
                    rot.o.ready.eq(quant.i.ready),
                ]
        else:
            for lane, quant in enumerate(quants):
                m.d.comb += [
                    quant.i.payload.eq(self.x.payload[lane]),
                    quant.i.valid.eq(self.x.valid & a_gate),
                ]
        with m.If(a_take):
            with m.If(a_first & ~op_q):
                claimed.set(m, a_bank, 1)
            with m.If(a_kb == last_kb):
                m.d.sync += a_kb.eq(0)
                with m.If(a_g == a_gm1):
                    m.d.sync += [a_g.eq(0), a_bank.eq(~a_bank)]
                    with m.If(a_rows.last):
                        m.d.sync += a_done.eq(1)
                with m.Else():
                    m.d.sync += a_g.eq(a_g + 1)
            with m.Else():
                m.d.sync += a_kb.eq(a_kb + 1)
        a_rows.advance(m, a_take & (a_kb == last_kb) & (a_g == a_gm1))

        # -- writer: quantized beats into the claimed bank (GEMM; salient residuals to r) or out
        # through q (quantize command) --------------------------------------------------------
        w_take = Signal()
        w_end = Signal()  # the row tile's last beat
        any_salient = Signal()
        o_ready = Signal()
        m.d.comb += [
            any_salient.eq(Cat(*(quant.o.payload.salient for quant in quants)).any()),
            o_ready.eq(Mux(op_q, self.q.ready, ~any_salient | self.r.ready)),
            w_take.eq(q0.o.valid & o_ready),
            w_end.eq((w_kb == last_kb) & (w_g == w_gm1)),
            self.q.valid.eq(q0.o.valid & op_q),
            self.q.payload.last.eq(w_end & w_rows.last),
            self.r.valid.eq(q0.o.valid & ~op_q & any_salient),
            buf.wr_en.eq(w_take & ~op_q),
            buf.wr_group.eq(w_g),
            buf.wr_bank.eq(w_bank),
            buf.wr_addr.eq(w_kb),
        ]
        for lane, quant in enumerate(quants):
            m.d.comb += [
                quant.o.ready.eq(o_ready),
                buf.wr_data[lane].codes.eq(quant.o.payload.codes),
                buf.wr_data[lane].se.eq(quant.o.payload.se),
                buf.wr_data[lane].invalid.eq(quant.o.payload.invalid),
                *dialect_id_eq(buf.wr_data[lane], dialect_id(quant.o.payload)),
                self.q.payload.lanes[lane].eq(buf.wr_data[lane]),
                self.r.payload.lanes[lane].eq(quant.o.payload.residual),
                self.r.payload.mask[lane].eq(quant.o.payload.salient),
            ]
        with m.If(w_take):
            with m.If(w_kb == last_kb):
                m.d.sync += w_kb.eq(0)
                with m.If(w_g == w_gm1):
                    m.d.sync += [
                        w_g.eq(0),
                        w_bank.eq(~w_bank),
                    ]
                    with m.If(~op_q):
                        full.set(m, w_bank, 1)
                    with m.If(op_q & w_rows.last):
                        m.d.sync += busy.eq(0)  # the quantize command's last beat
                with m.Else():
                    m.d.sync += w_g.eq(w_g + 1)
            with m.Else():
                m.d.sync += w_kb.eq(w_kb + 1)
        w_rows.advance(m, w_take & w_end)

        # -- sequencer: one k-step of one virtual column group (rows buffered blocks + one
        # weight beat) per cycle: ``for kb: for slot < d:``. With d > 1 a beat goes in only
        # when its ring position comes round (``turn``, counted in the array's enabled
        # cycles from the tile's first beat), so each PE accumulator gets its k-steps exactly
        # d enabled cycles apart; back to back that is every cycle ------------------------
        s_active = Signal()
        s_issue = Signal()
        s_first = Signal()  # the tile's first beat (any ring position may take it)
        phase_ok = Signal()
        slot_last = Signal()
        if d > 1:
            s_slot = Signal(range(d), name="s_slot")
            turn = Signal(range(d), name="turn")
            with m.If(start):
                m.d.sync += s_slot.eq(0)
            m.d.comb += [
                s_first.eq(~s_kb.any() & ~s_slot.any()),
                phase_ok.eq(s_first | (turn == s_slot)),
                slot_last.eq(s_slot == d - 1),
            ]
            with m.If(arr.i.ready):
                m.d.sync += turn.eq(Mux(turn == d - 1, 0, turn + 1))
            with m.If(s_issue):
                with m.If(s_first):
                    m.d.sync += turn.eq(1)
                m.d.sync += s_slot.eq(Mux(slot_last, 0, s_slot + 1))
        else:
            m.d.comb += [phase_ok.eq(1), slot_last.eq(1)]
        m.d.comb += [
            s_active.eq(busy & ~op_q & ~s_done & ~s_wait & full.read(s_bank)),
            buf.rd_bank.eq(s_bank),
            buf.rd_addr.eq(s_kb),
            arr.i.payload.a.eq(buf.rd_data),
            arr.i.payload.w.eq(self.w.payload),
            arr.i.payload.last.eq(s_kb == last_kb),
            arr.i.valid.eq(s_active & self.w.valid & phase_ok),
            self.w.ready.eq(s_active & arr.i.ready & phase_ok),
            s_issue.eq(arr.i.valid & arr.i.ready),
        ]
        with m.If(s_issue & slot_last):
            with m.If(s_kb == last_kb):
                m.d.sync += s_kb.eq(0)
                with m.If(s_cols.last):
                    m.d.sync += s_wait.eq(1)
            with m.Else():
                m.d.sync += s_kb.eq(s_kb + 1)
        s_cols.advance(m, s_issue & slot_last & (s_kb == last_kb), wrap=True)

        # -- capture: finished tiles into the drain; the last column tile releases the bank ----
        capture = Signal()
        m.d.comb += [
            *(drain.i.results[r][c].eq(arr.o.results[r][c])
              for r in range(rows) for c in range(tile_cols)),
            drain.i.rows.eq(c_rows.extent),
            drain.i.cols.eq(c_cols.extent),
            drain.i.valid.eq(arr.o.valid),
            arr.o.ready.eq(drain.i.ready),
            capture.eq(arr.o.valid & drain.i.ready),
        ]
        with m.If(capture & c_cols.last):
            # release the row tile's bank: the sequencer moves on, the acceptor may refill it
            m.d.sync += [s_bank.eq(~s_bank), s_wait.eq(0)]
            full.set(m, s_bank, 0)
            claimed.set(m, s_bank, 0)
            with m.If(c_rows.last):
                m.d.sync += [final.eq(1), s_done.eq(1)]
        c_cols.advance(m, capture, wrap=True)
        c_rows.advance(m, capture & c_cols.last)

        # -- output: drain beats through the output adder (``addend_stages`` registers), each
        # lane added to the addend in a decomposition pass (else to −0.0: unchanged) ---------
        adder = self._adder
        m.submodules.adder = adder
        width = self._drain_width
        gemm_last = Signal()
        addend_ok = Signal()
        m.d.comb += [
            gemm_last.eq(final & drain.o.payload.last),
            addend_ok.eq(~add | self.yin.valid),
            adder.i.valid.eq(drain.o.valid & addend_ok),
            drain.o.ready.eq(adder.i.ready & addend_ok),
            self.yin.ready.eq(add & adder.i.ready & drain.o.valid),
            adder.i.payload.lanes.eq(drain.o.payload.lanes),
            adder.i.payload.addends.eq(self.yin.payload),
            adder.i.payload.add.eq(add),
            adder.i.payload.side.eq(Cat(drain.o.payload.mask, gemm_last)),
            self.y.valid.eq(adder.o.valid),
            adder.o.ready.eq(self.y.ready),
            self.y.payload.lanes.eq(adder.o.payload.lanes),
            self.y.payload.mask.eq(adder.o.payload.side[:width]),
            self.y.payload.last.eq(adder.o.payload.side[width]),
        ]
        with m.If(self.y.valid & self.y.ready & self.y.payload.last):
            m.d.sync += busy.eq(0)
        return m


def _groups_m1(m: Module, prefix: str, extent: Value, rows: int, lanes: int) -> Signal:
    """⌈extent/lanes⌉ − 1 (row groups of a row tile of ``extent`` rows, minus one), as a
    ``rows``-way case table (no divider)."""
    out = Signal(range(max(rows // lanes, 2)), name=f"{prefix}_groups_m1")
    with m.Switch(extent):
        for ext in range(1, rows + 1):
            with m.Case(ext):
                m.d.comb += out.eq((ext - 1) // lanes)
        with m.Default():
            m.d.comb += out.eq(0)
    return out


class _TileWalker:
    """Walks one dimension (M or N) in tiles of ``size``: the current tile's ``extent``
    (min(size, remaining), range(size + 1)), ``extent_m1`` = extent − 1 and ``last`` (this is
    the final tile). Loaded with the command's ``total`` in the cycle ``load`` is high;
    :meth:`advance` steps to the next tile (``wrap``: back to the first after the last).
    Written with equal-width operands only (lint-clean Verilog)."""

    def __init__(self, m: Module, name: str, total: Value, load: Value, size: int) -> None:
        width = len(total)
        self.total = Signal(width, name=f"{name}_total")
        self.remaining = Signal(width, name=f"{name}_remaining")
        self.extent = Signal(range(size + 1), name=f"{name}_extent")
        self.extent_m1 = Signal(range(max(size, 2)), name=f"{name}_extent_m1")
        self.last = Signal(name=f"{name}_last")
        # the extent at the full width (a multiplexer output, not a zero-extended wire)
        self._extent_wide = Signal(width, name=f"{name}_extent_wide")
        k = size.bit_length()  # the constant ``size`` has its top bit set at width k
        if width < k:
            raise ValueError(f"{name}: a {width}-bit size cannot hold a tile of {size}")
        at_least = Signal(name=f"{name}_ge_size")
        low = self.remaining[:k]
        high = self.remaining[k:].any() if width > k else Const(0, 1)
        m.d.comb += [
            at_least.eq(high | (low >= Const(size, k))),
            self._extent_wide.eq(Mux(at_least, Const(size, width), self.remaining)),
            self.extent.eq(self._extent_wide[:k]),
            self.extent_m1.eq(self.extent - 1),
            self.last.eq(self.remaining == self._extent_wide),
        ]
        with m.If(load):
            m.d.sync += [self.total.eq(total), self.remaining.eq(total)]

    def advance(self, m: Module, step: Value, *, wrap: bool = False) -> None:
        with m.If(step):
            if wrap:
                with m.If(self.last):
                    m.d.sync += self.remaining.eq(self.total)
                with m.Else():
                    m.d.sync += self.remaining.eq(self.remaining - self._extent_wide)
            else:
                m.d.sync += self.remaining.eq(self.remaining - self._extent_wide)


class _BankFlags:
    """One flag per activation-buffer bank (two registers), read and written by bank index."""

    def __init__(self, name: str) -> None:
        self.flags = (Signal(name=f"{name}0"), Signal(name=f"{name}1"))

    def read(self, bank: Value) -> Value:
        return Mux(bank, self.flags[1], self.flags[0])

    def set(self, m: Module, bank: Value, value: int) -> None:
        with m.If(bank):
            m.d.sync += self.flags[1].eq(value)
        with m.Else():
            m.d.sync += self.flags[0].eq(value)

    def clear(self, m: Module) -> None:
        m.d.sync += [flag.eq(0) for flag in self.flags]
