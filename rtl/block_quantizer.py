"""The activation frontend: FP16 block (+ candidate mask) → quantized block (SPEC §2–4).

:class:`BlockQuantizer` composes :class:`~rtl.preprocess.BlockPreprocessor` (combinational),
:class:`~rtl.selector.FormatSelector` (registered input, C evaluation cycles, registered
output) and :class:`~rtl.quantizer.CodeQuantizer` (one registered stage)::

    i ─► preprocess ─► selector ─► quantizer ─► o
    (x, mask)  (comb)   (C + 1)      (1)      (codes, se, dialect, invalid)

The mask rides beside the combinational preprocessor into the selector's input register, so
block and mask stay together without a side FIFO.

With ``residual=True`` (activation decomposition, SPEC §6) the FP16 block x and a ``salient``
flag ride beside the whole pipeline in three shadow registers, one per block slot (the
selector's held block, the selector's output register, the quantizer's register), each
loading exactly when the slot it shadows can load (see :meth:`BlockQuantizer.elaborate`);
the residual fp16(fp32(x) − deq) is then computed combinationally
(:func:`~rtl.residual.block_residual`) from the quantizer's registered output and the carried
x::

    i ─► preprocess ─► selector ─► quantizer ─► residual ─► o
    (x, mask,  (comb)   (C + 1)      (1)         (comb)    (codes, se, dialect, invalid,
     salient)    x, salient ─► held ─► sel_out ─► qnt_out ─┘     residual, salient)

**Pipelined** (``stages`` = ``selector_stages`` ≥ 1; timing closure at 180 nm, see
docs/ARCHITECTURE.md "Pipeline"): the same latency C + 2 + stages and interval C, with no
combinational path longer than a pipeline segment between the ports and the registers:

* the preprocessor moves into the selector (:class:`~rtl.selector.FormatSelector` with
  ``raw=True``): the selector's held register cuts it after the first log2 B − 1 levels of
  the exponent max tree (:func:`~rtl.preprocess.preprocess_front`), and one of the
  ``stages`` registers follows its back half (:func:`~rtl.preprocess.preprocess_back`); the
  other stages − 1 cut the selector's evaluation (ERR ROMs, adder trees, argmin);
* the residual is split around the quantizer's register (:mod:`rtl.residual_split`): H_i,
  the difference m_i − d_i and its magnitude are computed in the quantizer's cycle from the
  selector's output register and the carried x, the normalisation after the register;
* x and salient wait in a FIFO whose output is a register (``SyncFIFOBuffered``).

``stages`` = 0 is the unpipelined design above, unchanged.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from semdialect.config import Config
from semdialect.golden.formatbook import Formatbook
from semdialect.rtl.layouts import (
    dialect_id,
    dialect_id_eq,
    masked_fp16_block,
    quantized_block,
    quantized_residual_block,
    salient_masked_fp16_block,
)
from semdialect.rtl.preprocess import BlockPreprocessor
from semdialect.rtl.quantizer import CodeQuantizer
from semdialect.rtl.residual import block_residual, fp16_block_layout
from semdialect.rtl.residual_split import residual_back, residual_front
from semdialect.rtl.selector import FormatSelector, selector_parameters
from semdialect.rtl.timing import Pipeline

__all__ = ["BlockQuantizer"]


class BlockQuantizer(wiring.Component):
    """SPEC §2–4 block quantization, fully stream-handshaked.

    With C = K / ``formats_per_cycle`` (``lut``) or 1 (``two-stage``): **latency C + 2 +
    stages** cycles (a block accepted at ``i`` in cycle t leaves at ``o`` in cycle
    t + C + 2 + stages when ``o.ready`` is high) and **initiation interval C** (one block
    every C cycles; the selector is the only multi-cycle stage). Up to 2 + stages blocks are
    in flight behind the one being selected (selector pipeline and output registers,
    quantizer register), so back-pressure at
    ``o`` stalls the pipeline without losing or duplicating a block; ``o.valid``/``o.payload``
    are registers and hold still while ``o.ready`` is low; ``i.ready`` depends
    combinationally on ``o.ready``.

    Parameters
    ----------
    block : int
        B: 16, 32 or 64.
    formatbook : Formatbook | str
        The K dialects.
    mode : str
        ``"lut"`` or ``"two-stage"`` (see :class:`~rtl.selector.FormatSelector`).
    formats_per_cycle : int | None
        P, a divisor of K (default K).
    residual : bool
        Keyword only, default False. True adds the SPEC §6 residual path: the payloads gain
        ``salient`` (in and out) and ``residual`` (out); latency, initiation interval and
        handshake are unchanged. Storage: 3 × (16·B + 1) shadow register bits; logic: one
        :func:`~rtl.residual.block_residual` (a K·8 × 4 ROM with B read ports and B lanes of
        fixed-point subtract and normalise) after the quantizer register.
        False gives exactly the plain frontend (same ports, same logic).
    stages : int
        Keyword only, ``selector_stages`` 0..6 (default 0, the unpipelined frontend): pipeline
        register stages, see the module docstring ("Pipelined").

    Members
    -------
    i : ``In(stream.Signature(masked_fp16_block(B, K)))``
        ``x`` (B × 16, FP16 bit patterns) and ``mask`` (K; candidate dialects, all ones = the
        whole formatbook; all zeros is treated as all ones; ignored in two-stage mode).
        With ``residual=True``: ``salient_masked_fp16_block(B, K)``, the same plus
        ``salient`` (1).
    o : ``Out(stream.Signature(quantized_block(B, K)))``
        ``codes`` (B × 4), ``se`` (5, SE + 16), ``dialect`` (id_bits(K)), ``invalid`` (1:
        the block held NaN/Inf; then codes, se and dialect are 0).
        With ``residual=True``: ``quantized_residual_block(B, K)``, the same plus
        ``residual`` (B × 16: FP16 patterns of fp16(fp32(x_i) − deq_i), computed for every
        block, bit-exact with :func:`golden.decompose.residual`; for an invalid block the
        input block unchanged, SPEC §6 [ours]) and ``salient`` (1, the input's flag). The
        residual is a combinational function of registers (the quantizer's output register
        and the carried x), so it too holds still while ``o.ready`` is low.
    """

    def __init__(
        self,
        block: int,
        formatbook: Formatbook | str,
        mode: str = "lut",
        formats_per_cycle: int | None = None,
        *,
        residual: bool = False,
        stages: int = 0,
    ) -> None:
        if not isinstance(residual, bool):
            raise ValueError(f"residual: expected a bool, got {residual!r}")
        self._params = selector_parameters(block, formatbook, mode, formats_per_cycle)
        if isinstance(stages, bool) or not isinstance(stages, int) or not 0 <= stages <= 6:
            raise ValueError(f"selector_stages: must be an integer in 0..6, got {stages!r}")
        self._stages = stages
        self._residual = residual
        k = self._params.formatbook.size
        b = self._params.block
        if residual:
            ports = {
                "i": In(stream.Signature(salient_masked_fp16_block(b, k))),
                "o": Out(stream.Signature(quantized_residual_block(b, k))),
            }
        else:
            ports = {
                "i": In(stream.Signature(masked_fp16_block(b, k))),
                "o": Out(stream.Signature(quantized_block(b, k))),
            }
        super().__init__(ports)

    @classmethod
    def from_config(cls, cfg: Config) -> BlockQuantizer:
        """The frontend of a :class:`semdialect.config.Config` (block, formatbook, select,
        formats_per_cycle, selector_stages)."""
        return cls(cfg.block, cfg.book(), cfg.select, cfg.formats_per_cycle,
                   stages=cfg.selector_stages)

    @property
    def block(self) -> int:
        return self._params.block

    @property
    def formatbook(self) -> Formatbook:
        return self._params.formatbook

    @property
    def mode(self) -> str:
        return self._params.mode

    @property
    def formats_per_cycle(self) -> int:
        return self._params.formats_per_cycle

    @property
    def residual(self) -> bool:
        """True when the block carries the SPEC §6 residual path (``salient``, ``residual``)."""
        return self._residual

    @property
    def stages(self) -> int:
        """The lane's extra register stages (``selector_stages``): one after the
        preprocessor, the rest in the selector's evaluation (when ≥ 1)."""
        return self._stages

    @property
    def latency(self) -> int:
        """Cycles from accepting a block to presenting it at ``o``: C + 2 + stages
        (preprocessor 0 — inside the selector when stages ≥ 1 —, selector C + 1 + stages,
        quantizer 1)."""
        return Pipeline(selector_stages=self._stages).quantizer_latency(self._params.cycles)

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted blocks with ``o.ready`` held high: C."""
        return self._params.cycles

    def elaborate(self, platform: object) -> Module:
        m = Module()
        block, book, mode, per_cycle = self._params
        staged = self._stages > 0
        if staged:
            # pipelined: the preprocessor moves into the selector (``raw``), split by the
            # selector's held register, with one of the stages after its back half (the
            # selector's evaluation gets the others); the latency stays C + 2 + stages
            m.submodules.selector = sel = FormatSelector(block, book, mode, per_cycle,
                                                         stages=self._stages, raw=True)
            m.d.comb += [
                sel.i.payload.x.eq(self.i.payload.x),
                sel.i.payload.mask.eq(self.i.payload.mask),
                sel.i.valid.eq(self.i.valid),
                self.i.ready.eq(sel.i.ready),
            ]
            pre_latency = 0
        else:
            m.submodules.preprocessor = pre = BlockPreprocessor(block)
            m.submodules.selector = sel = FormatSelector(block, book, mode, per_cycle)
            # the mask bypasses the preprocessor without a register
            assert pre.latency == 0
            m.d.comb += [
                pre.i.payload.x.eq(self.i.payload.x),
                pre.i.valid.eq(self.i.valid),
                self.i.ready.eq(pre.i.ready),
                sel.i.payload.block.eq(pre.o.payload),
                sel.i.payload.mask.eq(self.i.payload.mask),
                sel.i.valid.eq(pre.o.valid),
                pre.o.ready.eq(sel.i.ready),
            ]
            pre_latency = pre.latency
        m.submodules.quantizer = qnt = CodeQuantizer(block, book)
        assert pre_latency + sel.latency + qnt.latency == self.latency
        assert max(sel.initiation_interval, qnt.initiation_interval) == self.initiation_interval

        m.d.comb += [
            qnt.i.payload.block.eq(sel.o.payload.block),
            *dialect_id_eq(qnt.i.payload, dialect_id(sel.o.payload)),
            qnt.i.valid.eq(sel.o.valid),
            sel.o.ready.eq(qnt.i.ready),
        ]
        if not self._residual:
            wiring.connect(m, qnt.o, wiring.flipped(self.o))
            return m

        # Residual path (unpipelined): x and salient in one shadow register per block slot,
        # so that each holds its slot's block whenever that slot is valid:
        #   held    ← i        on an i transfer (exactly when the selector latches its held
        #                      block);
        #   sel_out ← held     whenever the selector's output register may load, i.e. it is
        #                      empty or read this cycle (``~sel.o.valid | sel.o.ready``): the
        #                      selector fills it only in such a cycle, always from its held
        #                      block (the one accepted last), and the stream rules keep it
        #                      otherwise; in such a cycle without a fill the slot ends up
        #                      empty and sel_out is a don't-care;
        #   qnt_out ← sel_out  exactly when the quantizer loads (``qnt.i.ready``, its load
        #                      enable, valid or not).
        carried = data.StructLayout({"x": fp16_block_layout(block), "salient": 1})
        quantized = qnt.o.payload
        if staged:
            # the pipelined lane holds up to stages + 2 blocks between its input and the
            # selector's output (held block, stages registers, output register; one more
            # for a write while full and read): x and salient wait in a FIFO of depth
            # stages + 3, written when the lane takes a block and read when the quantizer
            # takes one from the selector. The FIFO's output is a register
            # (SyncFIFOBuffered: an entry reaches it two cycles after its write, before its
            # block can leave the selector, C + 1 + stages >= 3 cycles), and the residual's
            # front half (rtl.residual_split) is computed from it and the selector's output
            # register, then registered beside the quantizer's output
            fifo = SyncFIFOBuffered(width=carried.size, depth=self._stages + 3)
            m.submodules.carried = fifo
            head = data.View(carried, fifo.r_data)
            take = Signal()
            m.d.comb += [
                fifo.w_data.eq(Cat(self.i.payload.x, self.i.payload.salient)),
                fifo.w_en.eq(self.i.valid & self.i.ready),
                take.eq(sel.o.valid & sel.o.ready),
                fifo.r_en.eq(take),
            ]
            front = residual_front(m, head.x, sel.o.payload.block.se, sel.o.payload.block.q,
                                   dialect_id(sel.o.payload), book)
            qnt_out = Signal(carried, name="carried_qnt_out", reset_less=True)
            front_out = Signal(front.shape(), name="residual_front_qnt_out", reset_less=True)
            with m.If(take):
                m.d.sync += [
                    Value.cast(qnt_out).eq(fifo.r_data),
                    front_out.eq(front),
                ]
            residual = residual_back(m, qnt_out.x, front_out, quantized.invalid)
        else:
            qnt_out = self._shadow_chain(m, carried, sel, qnt)
            residual = block_residual(m, qnt_out.x, quantized, book)
        m.d.comb += [
            self.o.valid.eq(qnt.o.valid),
            qnt.o.ready.eq(self.o.ready),
            self.o.payload.codes.eq(quantized.codes),
            self.o.payload.se.eq(quantized.se),
            *dialect_id_eq(self.o.payload, dialect_id(quantized)),
            self.o.payload.invalid.eq(quantized.invalid),
            self.o.payload.residual.eq(residual),
            self.o.payload.salient.eq(qnt_out.salient),
        ]
        return m

    def _shadow_chain(self, m: Module, carried: data.StructLayout, sel: FormatSelector,
                      qnt: CodeQuantizer) -> data.View:
        """The unpipelined selector's three shadow registers (see :meth:`elaborate`)."""
        held = Signal(carried, name="carried_held", reset_less=True)
        sel_out = Signal(carried, name="carried_sel_out", reset_less=True)
        qnt_out = Signal(carried, name="carried_qnt_out", reset_less=True)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                held.x.eq(self.i.payload.x),
                held.salient.eq(self.i.payload.salient),
            ]
        with m.If(~sel.o.valid | sel.o.ready):
            m.d.sync += sel_out.eq(held)
        with m.If(qnt.i.ready):
            m.d.sync += qnt_out.eq(sel_out)
        return qnt_out
