"""Output-stationary MAC array of block dot-product PEs (SPEC §5).

Dataflow: ``rows × cols`` :class:`~rtl.pe.BlockPE` in lockstep. PE (r, c) owns one output,
Y[m0 + r, n0 + c] of the current tile, in its FP32 accumulator. Each k-step one activation
block per PE row (``a[r]``: X[m0 + r, k-block kb]) is *broadcast along row r* and one weight
block per PE column (``w[c]``: W[k-block kb, n0 + c]) is *broadcast along column c*. Each
broadcast block is decoded once, at the array edge (``rows + cols``
:class:`~rtl.block_decoder.BlockDecoder`), and the PEs receive integers (``decode=False``), so
the array holds (rows + cols)·B element decoders instead of 2·rows·cols·B. No systolic skew:
all PEs see the same k-step in the same cycle, so every output of a tile completes in the
same cycle.

Timing: ``decoder_stages`` registers after the edge decoders, then the PEs' pipeline (see
:class:`~rtl.pe.BlockPE`), one k-step per cycle; latency ``pipeline.array_latency`` (3
unpipelined). All PEs get the same ``valid``/``last``/``ready``, so their control state is
identical; PE (0, 0)'s ``i.ready`` and ``o.valid`` stand for the whole array.

**C-slow (d = ``acc_stages`` > 1).** Each PE interleaves d accumulations, so the array holds
a tile of rows × (cols·d) outputs: *virtual column group* s (tile columns s·cols …
s·cols + cols − 1) is accumulated in ring position s. The caller sends the k-steps of a tile
as ``for kb: for s < d:`` one beat (the row blocks of k-block kb, again for every s, with the
weight blocks of group s), consecutive enabled cycles for consecutive beats — or, after a gap,
a beat only when its ring position comes round again (``GemmCore``'s sequencer counts the
enabled cycles). ``o`` presents the whole tile: ``[r][s·cols + c]`` = PE (r, c)'s output s.

The PEs and the edge decoders are replicated cells (:func:`rtl.cells.cell`): in Verilog one
PE-core module and one decoder module, instantiated rows·cols and rows + cols times.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.config import MAX_ARRAY
from semdialect.rtl.block_decoder import BlockDecoder, ElementKind
from semdialect.rtl.cells import cell
from semdialect.rtl.layouts import array_operands, tile_stream
from semdialect.rtl.pe import BlockPE
from semdialect.rtl.timing import Pipeline

__all__ = ["MACArray"]


class MACArray(wiring.Component):
    """``rows × cols`` output-stationary block dot-product array (see the module docstring).

    **Latency** ``pipeline.array_latency`` (the tile's final k-step accepted in cycle t → all
    results at ``o`` in cycle t + latency; 3 unpipelined), **throughput one k-step of one
    virtual column group (rows·cols block pairs) per cycle**. ``o`` is a
    register bank and holds still while ``o.ready`` is low; the whole array then stalls
    (``i.ready`` low, combinationally from ``o.ready``). Storage: rows·cols PEs.

    Parameters
    ----------
    rows, cols : int
        Array size, 1..128 each (:data:`semdialect.config.MAX_ARRAY`).
    kind : ElementKind
        Element kind of the operand blocks (dialect, MXFP4 or MXINT8).
    pipeline : Pipeline | None
        Register stages (``decoder_stages`` here, the PE's in each PE); None: unpipelined.

    Members
    -------
    i : ``In(stream.Signature(array_operands(kind.encoded_layout, rows, cols)))``
        ``a`` (rows blocks), ``w`` (cols blocks), ``last``.
    o : ``Out(tile_stream(rows, cols·d))``
        ``valid``, ``ready`` and ``results[r][s·cols + c]`` = FP32 result (``value``,
        ``invalid``) s of PE (r, c) (:func:`~rtl.layouts.tile_stream`: one member each).
    """

    MAX_SIZE = MAX_ARRAY

    def __init__(self, rows: int, cols: int, kind: ElementKind, *,
                 pipeline: Pipeline | None = None) -> None:
        for name, val in (("rows", rows), ("cols", cols)):
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= self.MAX_SIZE:
                raise ValueError(f"{name}: must be an integer in 1..{self.MAX_SIZE}, got {val!r}")
        if not isinstance(kind, ElementKind):
            raise ValueError(f"kind: expected an ElementKind, got {kind!r}")
        self._rows = rows
        self._cols = cols
        self._kind = kind
        self._pipeline = BlockPE.check_pipeline(kind, pipeline)
        self._pe_args = {"decode": False, "pipeline": self._pipeline}
        d = self._pipeline.acc_stages
        super().__init__({
            "i": In(stream.Signature(array_operands(kind.encoded_layout, rows, cols))),
            "o": Out(tile_stream(rows, cols * d)),
        })

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def kind(self) -> ElementKind:
        return self._kind

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def latency(self) -> int:
        """Cycles from accepting a tile's final k-step to presenting the results."""
        return self._pipeline.array_latency

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self._pipeline.acc_stages
        en = Signal()  # the PEs advance (all alike)
        valid, last = self.i.valid, self.i.payload.last
        row_blocks = []
        for r in range(self._rows):
            dec = cell(platform, "block_decoder", BlockDecoder, self._kind)
            m.submodules[f"row_dec{r}"] = dec
            m.d.comb += dec.i.eq(self.i.payload.a[r])
            row_blocks.append(dec.o)
        col_blocks = []
        for c in range(self._cols):
            dec = cell(platform, "block_decoder", BlockDecoder, self._kind)
            m.submodules[f"col_dec{c}"] = dec
            m.d.comb += dec.i.eq(self.i.payload.w[c])
            col_blocks.append(dec.o)
        for stage in range(self._pipeline.decoder_stages):  # registers after the decoders
            regs = []
            for name, value in (("valid", valid), ("last", last)):
                reg = Signal(name=f"dec{stage}_{name}")
                with m.If(en):
                    m.d.sync += reg.eq(value)
                regs.append(reg)
            valid, last = regs
            blocks = []
            for group, name in ((row_blocks, "row"), (col_blocks, "col")):
                staged = []
                for index, block in enumerate(group):
                    reg = Signal(self._kind.decoded_layout, name=f"dec{stage}_{name}{index}")
                    with m.If(en):
                        m.d.sync += reg.eq(block)
                    staged.append(reg)
                blocks.append(staged)
            row_blocks, col_blocks = blocks
        for r in range(self._rows):
            for c in range(self._cols):
                pe = cell(platform, "pe_core", BlockPE, self._kind, **self._pe_args)
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.i.payload.a.eq(row_blocks[r]),
                    pe.i.payload.w.eq(col_blocks[c]),
                    pe.i.payload.last.eq(last),
                    pe.i.valid.eq(valid),
                    pe.o.ready.eq(self.o.ready),
                ]
                if d == 1:
                    m.d.comb += self.o.results[r][c].eq(pe.o.payload)
                else:
                    m.d.comb += [self.o.results[r][s * self._cols + c].eq(pe.o.payload[s])
                                 for s in range(d)]
                if r == 0 and c == 0:
                    m.d.comb += [
                        en.eq(pe.i.ready),
                        self.i.ready.eq(pe.i.ready),
                        self.o.valid.eq(pe.o.valid),
                    ]
        return m
