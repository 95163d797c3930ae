"""Double-banked activation buffer: quantized blocks of one row tile, read one k-step at a time.

``rows`` memories (one per PE row) of ``2 · max_kb`` words of one ``quantized_block`` each;
word address ``{bank, kb}``. The GEMM core's writer fills bank b with the blocks (row r,
k-block kb) of one row tile, ``lanes`` rows (one row group) per write, while the sequencer
reads the other bank, all ``rows`` blocks of one k-block per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from semdialect.config import MAX_ARRAY, check_lanes

__all__ = ["ActivationBuffer"]


class ActivationBuffer(wiring.Component):
    """Two banks × ``rows`` rows × ``max_kb`` k-blocks of ``layout`` words.

    Write: **synchronous** (``wr_en`` in cycle t → readable from cycle t + 1), one row group
    (``lanes`` blocks: rows ``wr_group·lanes + l``) per cycle. Read: **asynchronous**
    (combinational) — ``rd_data`` shows bank ``rd_bank``, address ``rd_addr`` of every row in
    the same cycle. Storage: rows memories of
    2·max_kb × ``layout`` bits.

    Parameters
    ----------
    rows : int
        PE rows, 1..128 (:data:`semdialect.config.MAX_ARRAY`).
    layout : data.Layout
        One stored block (``quantized_block(B, K)``).
    max_kb : int
        k-blocks per bank, a power of two ≥ 1.
    lanes : int
        Blocks per write (rows per row group), a divisor of ``rows``.

    Members
    -------
    wr_en, wr_group (range(max(rows/lanes, 2))), wr_bank (1), wr_addr (range(max_kb) or 1
    bit), wr_data (``ArrayLayout(layout, lanes)``) : In
        Write port: lane l goes to row wr_group·lanes + l.
    rd_bank (1), rd_addr : In
        Read address.
    rd_data : ``Out(ArrayLayout(layout, rows))``
        ``[r]`` = row r's block at ``{rd_bank, rd_addr}``.
    """

    def __init__(self, rows: int, layout: data.Layout, max_kb: int, lanes: int = 1) -> None:
        if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= MAX_ARRAY:
            raise ValueError(f"rows: must be an integer in 1..{MAX_ARRAY}, got {rows!r}")
        if isinstance(max_kb, bool) or not isinstance(max_kb, int) or max_kb < 1 or (
            max_kb & (max_kb - 1)
        ):
            raise ValueError(f"max_kb: must be a power of two >= 1, got {max_kb!r}")
        check_lanes(lanes, rows)
        self._rows = rows
        self._layout = layout
        self._max_kb = max_kb
        self._lanes = lanes
        addr = range(max(max_kb, 2))
        super().__init__({
            "wr_en": In(1),
            "wr_group": In(range(max(rows // lanes, 2))),
            "wr_bank": In(1),
            "wr_addr": In(addr),
            "wr_data": In(data.ArrayLayout(layout, lanes)),
            "rd_bank": In(1),
            "rd_addr": In(addr),
            "rd_data": Out(data.ArrayLayout(layout, rows)),
        })

    @property
    def addr_bits(self) -> int:
        """Bits of a k-block address inside one bank (0 for max_kb = 1)."""
        return (self._max_kb - 1).bit_length()

    def elaborate(self, platform: object) -> Module:
        m = Module()
        bits = self.addr_bits
        lanes = self._lanes
        groups = self._rows // lanes
        group_en = Signal(groups)  # one-hot write row-group decoder
        with m.Switch(self.wr_group):
            for grp in range(groups):
                with m.Case(grp):
                    m.d.comb += group_en[grp].eq(self.wr_en)
            with m.Default():
                m.d.comb += group_en.eq(0)
        for r in range(self._rows):
            mem = Memory(shape=self._layout, depth=2 * self._max_kb, init=[])
            m.submodules[f"row{r}"] = mem
            wr = mem.write_port()
            rd = mem.read_port(domain="comb")
            m.d.comb += [
                wr.addr.eq(Cat(self.wr_addr[:bits], self.wr_bank)),
                wr.data.eq(self.wr_data[r % lanes]),
                rd.addr.eq(Cat(self.rd_addr[:bits], self.rd_bank)),
                self.rd_data[r].eq(rd.data),
            ]
            m.d.comb += wr.en.eq(group_en[r // lanes])
        return m
