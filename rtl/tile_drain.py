"""Tile drain: captures one tile of array results and emits it ``width`` outputs per beat.

Output-stationary PEs finish a whole tile in one cycle; the drain copies the ``rows × cols``
results into its shadow registers (freeing the PEs for the next tile) and streams the tile's
valid ``rows_t × cols_t`` corner in beats. A beat covers g = max(1, width / cols) tile rows ×
c = min(width, cols) tile columns: beat (br, bc) holds rows br·g … br·g + g − 1, columns
bc·c … bc·c + c − 1, lane i = (row br·g + i // c, column bc·c + i mod c). Beats go row-beat
major (br outer, bc inner) and only those holding at least one output of the tile are sent:
b = ⌈rows_t/g⌉ · ⌈cols_t/c⌉ beats. ``mask`` bit i marks the lanes inside the tile; the
others carry don't-care values.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.config import check_drain_width, drain_beat_shape
from semdialect.rtl.layouts import array_results, drain_beat, drain_tile

__all__ = ["TileDrain"]


class TileDrain(wiring.Component):
    """Shadow bank + beat sequencer (see the module docstring for the beat order).

    Timing: a tile accepted at ``i`` in cycle X is emitted at ``o`` in cycles X + 1 … X + b
    with ``o.ready`` high. ``i.ready = ~busy | (o.ready & last beat)`` (combinational from
    ``o.ready``): the next tile is accepted in the cycle the previous tile's last beat leaves,
    X + b at the earliest, so back-to-back tiles leave without a gap. Throughput ``width``
    outputs per cycle. Storage: rows·cols × 33-bit shadow registers, the tile extent and the
    beat counters; each output lane is a (rows·cols / width)-way multiplexer.

    Parameters
    ----------
    rows, cols : int
        Tile size: the array's rows (1..64) × the tile's columns (cols·acc_stages of the
        array, 1..448).
    width : int
        Outputs per beat: a divisor of ``cols``, or a multiple of ``cols`` dividing rows·cols.

    Members
    -------
    i : ``In(stream.Signature(drain_tile(rows, cols)))``
        ``results`` ([r][c] FP32 result), ``rows`` (1..rows), ``cols`` (1..cols).
    o : ``Out(stream.Signature(drain_beat(width)))``
        ``lanes`` (``width`` FP32 results), ``mask`` and ``last`` (the tile's last beat).
    """

    #: largest array (rows) and tile (columns: cols·d of a C-slow array, 64 · 7) sizes
    MAX_ROWS = 64
    MAX_COLS = 64 * 7

    def __init__(self, rows: int, cols: int, width: int = 1) -> None:
        for name, val, top in (("rows", rows, self.MAX_ROWS), ("cols", cols, self.MAX_COLS)):
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= top:
                raise ValueError(f"{name}: must be an integer in 1..{top}, got {val!r}")
        check_drain_width(width, rows, cols)
        self._rows = rows
        self._cols = cols
        self._width = width
        super().__init__({
            "i": In(stream.Signature(drain_tile(rows, cols))),
            "o": Out(stream.Signature(drain_beat(width))),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def beat_rows(self) -> int:
        """g: tile rows per beat."""
        return drain_beat_shape(self._width, self._cols)[0]

    @property
    def beat_cols(self) -> int:
        """c: tile columns per beat."""
        return drain_beat_shape(self._width, self._cols)[1]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        g, c = self.beat_rows, self.beat_cols
        n_br, n_bc = self._rows // g, self._cols // c  # beat rows / columns of a full tile
        busy = Signal()
        shadow = Signal(array_results(self._rows, self._cols))
        br = Signal(range(max(n_br, 2)))
        bc = Signal(range(max(n_bc, 2)))
        last_br = Signal()
        last_bc = Signal()
        last = Signal()
        # beat-position flags as case tables over (beat index, tile extent): constant
        # assignments only, no arithmetic or comparison (lint-clean Verilog)
        rows_w = Signal(range(self._rows + 1))  # the tile extent
        cols_w = Signal(range(self._cols + 1))
        row_in = [Signal(name=f"in_row{dr}") for dr in range(g)]  # row br·g + dr in the tile
        col_in = [Signal(name=f"in_col{dc}") for dc in range(c)]  # column bc·c + dc in it
        for index, extent, n_beats, per, last_flag, inside in (
            (br, rows_w, n_br, g, last_br, row_in), (bc, cols_w, n_bc, c, last_bc, col_in)
        ):
            with m.Switch(index):
                for beat in range(n_beats):
                    with m.Case(beat):
                        with m.Switch(extent):
                            for ext in range(1, n_beats * per + 1):
                                with m.Case(ext):
                                    m.d.comb += last_flag.eq((beat + 1) * per >= ext)
                                    m.d.comb += [flag.eq(beat * per + d < ext)
                                                 for d, flag in enumerate(inside)]
                            with m.Default():  # extent 0: never captured
                                m.d.comb += [last_flag.eq(1), *(f.eq(0) for f in inside)]
                with m.Default():  # unreachable while busy
                    m.d.comb += [last_flag.eq(1), *(f.eq(0) for f in inside)]
        m.d.comb += [
            last.eq(last_br & last_bc),
            self.o.valid.eq(busy),
            self.o.payload.last.eq(last),
            self.i.ready.eq(~busy | (self.o.ready & last)),
        ]
        # lane multiplexers: one case per (br, bc) position of a full tile
        with m.Switch(br):
            for row_beat in range(n_br):
                with m.Case(row_beat):
                    with m.Switch(bc):
                        for col_beat in range(n_bc):
                            with m.Case(col_beat):
                                for lane in range(self._width):
                                    r = row_beat * g + lane // c
                                    col = col_beat * c + lane % c
                                    m.d.comb += self.o.payload.lanes[lane].eq(shadow[r][col])
                        with m.Default():  # unreachable
                            m.d.comb += self.o.payload.lanes.eq(0)
            with m.Default():  # unreachable
                m.d.comb += self.o.payload.lanes.eq(0)
        for lane in range(self._width):
            m.d.comb += self.o.payload.mask[lane].eq(row_in[lane // c] & col_in[lane % c])
        with m.If(self.o.valid & self.o.ready):
            with m.If(last_bc):
                m.d.sync += [bc.eq(0), br.eq(br + 1)]
                with m.If(last_br):
                    m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += bc.eq(bc + 1)
        with m.If(self.i.valid & self.i.ready):  # after the above: a new tile wins
            m.d.sync += [
                busy.eq(1),
                shadow.eq(self.i.payload.results),
                rows_w.eq(self.i.payload.rows),
                cols_w.eq(self.i.payload.cols),
                br.eq(0),
                bc.eq(0),
            ]
        return m
