"""Tile drain: captures one tile of array results and emits them one per cycle, row-major.

Output-stationary PEs finish a whole tile in one cycle; the drain copies the ``rows × cols``
results into its shadow registers (freeing the PEs for the next tile) and streams the tile's
valid ``rows_t × cols_t`` corner in row-major order (r outer, c inner).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.layouts import DRAIN_OUTPUT, array_results, drain_tile

__all__ = ["TileDrain"]


class TileDrain(wiring.Component):
    """Shadow bank + row-major sequencer.

    Timing: a tile accepted at ``i`` in cycle X is emitted at ``o`` in cycles X + 1 …
    X + n (n = rows_t · cols_t) with ``o.ready`` high; ``i.ready = ~busy`` is a register
    (busy clears after the last element's transfer), so the next tile can be accepted in cycle
    X + n + 1 at the earliest. Throughput one element per cycle. Storage: rows·cols × 33-bit
    shadow registers, the tile extent and (r, c) counters; the output is a rows·cols-way mux.

    Parameters
    ----------
    rows, cols : int
        Array size, 1..64.

    Members
    -------
    i : ``In(stream.Signature(drain_tile(rows, cols)))``
        ``results`` ([r][c] FP32 result), ``rows`` (1..rows), ``cols`` (1..cols).
    o : ``Out(stream.Signature(DRAIN_OUTPUT))``
        ``result`` (``value``, ``invalid``) and ``last`` (the tile's last element).
    """

    def __init__(self, rows: int, cols: int) -> None:
        for name, val in (("rows", rows), ("cols", cols)):
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= 64:
                raise ValueError(f"{name}: must be an integer in 1..64, got {val!r}")
        self._rows = rows
        self._cols = cols
        super().__init__({
            "i": In(stream.Signature(drain_tile(rows, cols))),
            "o": Out(stream.Signature(DRAIN_OUTPUT)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        busy = Signal()
        shadow = Signal(array_results(self._rows, self._cols))
        r = Signal(range(max(self._rows, 2)))
        c = Signal(range(max(self._cols, 2)))
        r_end = Signal.like(r)  # rows_t − 1
        c_end = Signal.like(c)  # cols_t − 1
        last_c = Signal()
        last_r = Signal()
        m.d.comb += [
            last_c.eq(c == c_end),
            last_r.eq(r == r_end),
            self.i.ready.eq(~busy),
            self.o.valid.eq(busy),
            self.o.payload.last.eq(last_r & last_c),
        ]
        with m.Switch(r):  # the rows·cols-way output multiplexer
            for row in range(self._rows):
                with m.Case(row):
                    with m.Switch(c):
                        for col in range(self._cols):
                            with m.Case(col):
                                m.d.comb += self.o.payload.result.eq(shadow[row][col])
                        with m.Default():  # unreachable (c < cols)
                            m.d.comb += self.o.payload.result.eq(shadow[row][0])
            with m.Default():  # unreachable (r < rows)
                m.d.comb += self.o.payload.result.eq(shadow[0][0])
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                busy.eq(1),
                shadow.eq(self.i.payload.results),
                r_end.eq(self.i.payload.rows - 1),
                c_end.eq(self.i.payload.cols - 1),
                r.eq(0),
                c.eq(0),
            ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(last_c):
                m.d.sync += [c.eq(0), r.eq(r + 1)]
                with m.If(last_r):
                    m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += c.eq(c + 1)
        return m
