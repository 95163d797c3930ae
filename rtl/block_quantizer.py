"""The activation frontend: FP16 block (+ candidate mask) → quantized block (SPEC §2–4).

:class:`BlockQuantizer` composes :class:`~rtl.preprocess.BlockPreprocessor` (combinational),
:class:`~rtl.selector.FormatSelector` (registered input, C evaluation cycles, registered
output) and :class:`~rtl.quantizer.CodeQuantizer` (one registered stage)::

    i ─► preprocess ─► selector ─► quantizer ─► o
    (x, mask)  (comb)   (C + 1)      (1)      (codes, se, dialect, invalid)

The mask rides beside the combinational preprocessor into the selector's input register, so
block and mask stay together without a side FIFO.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.config import Config
from semdialect.golden.formatbook import Formatbook
from semdialect.rtl.layouts import dialect_id, dialect_id_eq, masked_fp16_block, quantized_block
from semdialect.rtl.preprocess import BlockPreprocessor
from semdialect.rtl.quantizer import CodeQuantizer
from semdialect.rtl.selector import FormatSelector, selector_parameters
from semdialect.rtl.timing import QUANTIZER_EXTRA

__all__ = ["BlockQuantizer"]


class BlockQuantizer(wiring.Component):
    """SPEC §2–4 block quantization, fully stream-handshaked.

    With C = K / ``formats_per_cycle`` (``lut``) or 1 (``two-stage``): **latency C + 2**
    cycles (a block accepted at ``i`` in cycle t leaves at ``o`` in cycle t + C + 2 when
    ``o.ready`` is high) and **initiation interval C** (one block every C cycles; the
    selector is the only multi-cycle stage). Up to two blocks are in flight behind the one
    being selected (selector output register and quantizer register), so back-pressure at
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

    Members
    -------
    i : ``In(stream.Signature(masked_fp16_block(B, K)))``
        ``x`` (B × 16, FP16 bit patterns) and ``mask`` (K; candidate dialects, all ones = the
        whole formatbook; all zeros is treated as all ones; ignored in two-stage mode).
    o : ``Out(stream.Signature(quantized_block(B, K)))``
        ``codes`` (B × 4), ``se`` (5, SE + 16), ``dialect`` (id_bits(K)), ``invalid`` (1:
        the block held NaN/Inf; then codes, se and dialect are 0).
    """

    def __init__(
        self,
        block: int,
        formatbook: Formatbook | str,
        mode: str = "lut",
        formats_per_cycle: int | None = None,
    ) -> None:
        self._params = selector_parameters(block, formatbook, mode, formats_per_cycle)
        k = self._params.formatbook.size
        super().__init__({
            "i": In(stream.Signature(masked_fp16_block(self._params.block, k))),
            "o": Out(stream.Signature(quantized_block(self._params.block, k))),
        })

    @classmethod
    def from_config(cls, cfg: Config) -> BlockQuantizer:
        """The frontend of a :class:`semdialect.config.Config` (block, formatbook, select,
        formats_per_cycle)."""
        return cls(cfg.block, cfg.book(), cfg.select, cfg.formats_per_cycle)

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
    def latency(self) -> int:
        """Cycles from accepting a block to presenting it at ``o``: C + 2 (preprocessor 0,
        selector C + 1, quantizer 1)."""
        return self._params.cycles + QUANTIZER_EXTRA

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted blocks with ``o.ready`` held high: C."""
        return self._params.cycles

    def elaborate(self, platform: object) -> Module:
        m = Module()
        block, book, mode, per_cycle = self._params
        m.submodules.preprocessor = pre = BlockPreprocessor(block)
        m.submodules.selector = sel = FormatSelector(block, book, mode, per_cycle)
        m.submodules.quantizer = qnt = CodeQuantizer(block, book)
        # the mask bypasses the preprocessor without a register
        assert pre.latency == 0
        assert pre.latency + sel.latency + qnt.latency == self.latency
        assert max(sel.initiation_interval, qnt.initiation_interval) == self.initiation_interval

        m.d.comb += [
            pre.i.payload.x.eq(self.i.payload.x),
            pre.i.valid.eq(self.i.valid),
            self.i.ready.eq(pre.i.ready),
            sel.i.payload.block.eq(pre.o.payload),
            sel.i.payload.mask.eq(self.i.payload.mask),
            sel.i.valid.eq(pre.o.valid),
            pre.o.ready.eq(sel.i.ready),
            qnt.i.payload.block.eq(sel.o.payload.block),
            *dialect_id_eq(qnt.i.payload, dialect_id(sel.o.payload)),
            qnt.i.valid.eq(sel.o.valid),
            sel.o.ready.eq(qnt.i.ready),
        ]
        wiring.connect(m, qnt.o, wiring.flipped(self.o))
        return m
