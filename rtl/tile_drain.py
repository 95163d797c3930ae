"""Tile drain: captures one tile of array results and emits it ``width`` outputs per beat.

Output-stationary PEs finish a whole tile in one cycle; the drain copies the ``rows × cols``
results into its shadow registers (freeing the PEs for the next tile) and streams the tile's
valid ``rows_t × cols_t`` corner in beats. A beat covers g = max(1, width / cols) tile rows ×
c = min(width, cols) tile columns: beat (br, bc) holds rows br·g … br·g + g − 1, columns
bc·c … bc·c + c − 1, lane i = (row br·g + i // c, column bc·c + i mod c). Beats go row-beat
major (br outer, bc inner) and only those holding at least one output of the tile are sent:
b = ⌈rows_t/g⌉ · ⌈cols_t/c⌉ beats. ``mask`` bit i marks the lanes inside the tile; the
others carry don't-care values.

Structure: one :class:`DrainControl` (handshake, beat counters, ``last``, ``mask`` and the
one-hot beat select) and ``width`` alike :class:`DrainLane` cells (:func:`rtl.cells.cell`: one
Verilog module), lane i holding the D = (rows/g)·(cols/c) results it emits — one per beat of a
full tile — and its D-way AND-OR multiplexer on the shared select. The drain's logic is
therefore one control plus ``width`` lanes (what the area flow counts,
:func:`semdialect.sim.ablation.part_modules`): the select decoding is done once, in the
control, as a flattened synthesis of the whole drain shares it.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.config import MAX_ARRAY, check_drain_width, drain_beat_shape
from semdialect.rtl.cells import cell
from semdialect.rtl.layouts import FP32_RESULT, drain_beat, tile_stream
from semdialect.rtl.trees import tree_reduce

__all__ = ["DrainControl", "DrainLane", "TileDrain"]


def _check_tile(rows: int, cols: int, width: int) -> None:
    """``ValueError`` naming ``rows``, ``cols`` or ``drain_width`` unless 1 ≤ rows ≤
    :data:`~semdialect.config.MAX_ARRAY`, 1 ≤ cols ≤ 7·MAX_ARRAY and ``width`` is a valid
    drain width of the tile."""
    for name, val, top in (("rows", rows, TileDrain.MAX_ROWS), ("cols", cols, TileDrain.MAX_COLS)):
        if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= top:
            raise ValueError(f"{name}: must be an integer in 1..{top}, got {val!r}")
    check_drain_width(width, rows, cols)


class DrainLane(wiring.Component):
    """One output lane of the tile drain: the ``beats`` tile results it emits (entry k for
    beat k = br·(cols/c) + bc of a full tile), in shadow registers that all load from ``tile``
    in a cycle with ``load`` high, and an AND-OR multiplexer presenting the entry whose
    ``sel`` bit is set at ``o`` (``sel`` one-hot; 0 when no bit is set).

    Members
    -------
    load : ``In(1)``; sel : ``In(beats)``; tile : ``In(FP32_RESULT).array(beats)``;
    o : ``Out(FP32_RESULT)``.
    """

    def __init__(self, beats: int) -> None:
        if isinstance(beats, bool) or not isinstance(beats, int) or beats < 1:
            raise ValueError(f"beats: must be a positive integer, got {beats!r}")
        self._beats = beats
        super().__init__({
            "load": In(1),
            "sel": In(beats),
            "tile": In(FP32_RESULT).array(beats),
            "o": Out(FP32_RESULT),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        shadow = [Signal(FP32_RESULT, name=f"shadow{k}") for k in range(self._beats)]
        with m.If(self.load):
            m.d.sync += [reg.eq(self.tile[k]) for k, reg in enumerate(shadow)]
        m.d.comb += self.o.eq(tree_reduce(
            [Mux(self.sel[k], Value.cast(reg), 0) for k, reg in enumerate(shadow)],
            operator.or_))
        return m


class DrainControl(wiring.Component):
    """The tile drain's beat sequencer (see :class:`TileDrain` for the timing): takes a tile
    at ``i`` (``load`` high in that cycle), counts its beats (``br``, ``bc``), flags the
    tile's last beat, masks the lanes past its extent and selects the lanes' entry.

    Members
    -------
    i : ``In(tile_stream(rows, cols, results=False, extent=True))``
        ``valid``, ``ready``, the tile's extent ``rows`` and ``cols``.
    o : ``Out(Signature)``
        ``valid``, ``ready``, ``mask`` (``width``) and ``last`` of the current beat.
    load : ``Out(1)``
        A tile is taken (the lanes load their shadow registers).
    sel : ``Out(beats)``
        One-hot: bit br·(cols/c) + bc is set during beat (br, bc), ``beats`` = (rows/g)·(cols/c)
        (:class:`DrainLane`).
    """

    def __init__(self, rows: int, cols: int, width: int = 1) -> None:
        _check_tile(rows, cols, width)
        self._rows, self._cols, self._width = rows, cols, width
        g, c = drain_beat_shape(width, cols)
        self._beats = (rows // g, cols // c)
        super().__init__({
            "i": In(tile_stream(rows, cols, results=False, extent=True)),
            "o": Out(wiring.Signature({"valid": Out(1), "ready": In(1), "mask": Out(width),
                                       "last": Out(1)})),
            "load": Out(1),
            "sel": Out(self._beats[0] * self._beats[1]),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        g, c = drain_beat_shape(self._width, self._cols)
        n_br, n_bc = self._beats  # beat rows / columns of a full tile
        busy = Signal()
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
            self.o.last.eq(last),
            self.i.ready.eq(~busy | (self.o.ready & last)),
            self.load.eq(self.i.valid & self.i.ready),
        ]
        for lane in range(self._width):
            m.d.comb += self.o.mask[lane].eq(row_in[lane // c] & col_in[lane % c])
        with m.Switch(br):  # the lanes' one-hot entry select (none past a full tile)
            for row_beat in range(n_br):
                with m.Case(row_beat):
                    with m.Switch(bc):
                        for col_beat in range(n_bc):
                            with m.Case(col_beat):
                                m.d.comb += self.sel[row_beat * n_bc + col_beat].eq(1)
                        with m.Default():  # unreachable
                            m.d.comb += self.sel.eq(0)
            with m.Default():  # unreachable
                m.d.comb += self.sel.eq(0)
        with m.If(self.o.valid & self.o.ready):
            with m.If(last_bc):
                m.d.sync += [bc.eq(0), br.eq(br + 1)]
                with m.If(last_br):
                    m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += bc.eq(bc + 1)
        with m.If(self.load):  # after the above: a new tile wins
            m.d.sync += [
                busy.eq(1),
                rows_w.eq(self.i.rows),
                cols_w.eq(self.i.cols),
                br.eq(0),
                bc.eq(0),
            ]
        return m


class TileDrain(wiring.Component):
    """Shadow bank + beat sequencer: a :class:`DrainControl` and ``width`` :class:`DrainLane`
    cells (see the module docstring for the beat order).

    Timing: a tile accepted at ``i`` in cycle X is emitted at ``o`` in cycles X + 1 … X + b
    with ``o.ready`` high. ``i.ready = ~busy | (o.ready & last beat)`` (combinational from
    ``o.ready``): the next tile is accepted in the cycle the previous tile's last beat leaves,
    X + b at the earliest, so back-to-back tiles leave without a gap. Throughput ``width``
    outputs per cycle. Storage: rows·cols × 33-bit shadow registers, the tile extent and the
    beat counters; each output lane is a (rows·cols / width)-way multiplexer.

    Parameters
    ----------
    rows, cols : int
        Tile size: the array's rows (1..128) × the tile's columns (cols·acc_stages of the
        array, 1..896).
    width : int
        Outputs per beat: a divisor of ``cols``, or a multiple of ``cols`` dividing rows·cols.

    Members
    -------
    i : ``In(tile_stream(rows, cols, extent=True))``
        ``valid``, ``ready``, ``results`` (``results[r][c]``: FP32 result, one member each),
        ``rows`` (1..rows), ``cols`` (1..cols): the tile's extent.
    o : ``Out(stream.Signature(drain_beat(width)))``
        ``lanes`` (``width`` FP32 results), ``mask`` and ``last`` (the tile's last beat).
    """

    #: largest array (rows) and tile (columns: cols·d of a C-slow array, 128 · 7) sizes
    MAX_ROWS = MAX_ARRAY
    MAX_COLS = MAX_ARRAY * 7

    def __init__(self, rows: int, cols: int, width: int = 1) -> None:
        _check_tile(rows, cols, width)
        self._rows = rows
        self._cols = cols
        self._width = width
        super().__init__({
            "i": In(tile_stream(rows, cols, extent=True)),
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
        m.submodules.control = ctl = DrainControl(self._rows, self._cols, self._width)
        m.d.comb += [
            ctl.i.valid.eq(self.i.valid),
            self.i.ready.eq(ctl.i.ready),
            ctl.i.rows.eq(self.i.rows),
            ctl.i.cols.eq(self.i.cols),
            self.o.valid.eq(ctl.o.valid),
            ctl.o.ready.eq(self.o.ready),
            self.o.payload.mask.eq(ctl.o.mask),
            self.o.payload.last.eq(ctl.o.last),
        ]
        for lane in range(self._width):
            sub = cell(platform, "drain_lane", DrainLane, n_br * n_bc)
            m.submodules[f"lane{lane}"] = sub
            m.d.comb += [sub.load.eq(ctl.load), sub.sel.eq(ctl.sel),
                         self.o.payload.lanes[lane].eq(sub.o)]
            m.d.comb += [sub.tile[br * n_bc + bc].eq(self.i.results[br * g + lane // c]
                                                                   [bc * c + lane % c])
                         for br in range(n_br) for bc in range(n_bc)]
        return m
