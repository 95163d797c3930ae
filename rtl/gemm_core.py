"""GEMM core: Y (M×N, FP32) = X (M×K, FP16) · W (K×N, pre-quantized) on an output-stationary
MAC array, activations quantized on the fly (SPEC §2–5).

Parts (composed in :meth:`GemmCore.elaborate`)::

    x ─► BlockQuantizer ─► writer ─► ActivationBuffer (2 banks × rows × max_kb blocks)
                                              │ rows blocks / cycle
    w (cols blocks / beat) ──► sequencer ─► MACArray (rows × cols BlockPE) ─► TileDrain ─► y
    cmd (M, N, KB) ─► controller (counters, bank flags)

**Dataflow** (output-stationary, see :class:`~rtl.mac_array.MACArray`): a *tile* is
rows × cols outputs Y[m0 + r, n0 + c]; PE (r, c) accumulates its output over the KB k-blocks
in ascending order; the activation block of row r is broadcast along PE row r, the weight
block of column c along PE column c. Edge tiles (M, N not multiples of the array) use the
top-left R_t × C_j PEs; the others compute don't-care values that are never emitted.

**Stream orders** (a summary; the full interface — ports, payload bit layouts, handshake,
orders and the rule that the streams are driven concurrently — is ``docs/ARCHITECTURE.md``,
section "GemmCore stream interface"; the testbench and the cycle model follow it exactly):

* ``cmd``: one beat per GEMM, ``m`` = M ≥ 1, ``n`` = N ≥ 1, ``kb`` = K/B in 1..max_kb
  (outside these the behaviour is unspecified). Accepted only while idle (``cmd.ready`` is
  high exactly when no GEMM is in progress).
* ``x``: M·KB FP16 blocks (``masked_fp16_block``: B lanes + K-bit candidate mask, all ones =
  whole formatbook) in X's natural order: row m = 0 … M−1, and within a row k-block
  kb = 0 … KB−1. Each row tile (``rows`` consecutive rows) goes into one bank of the
  activation buffer; a bank is reused only after its row tile is computed.
* ``w``: T_m · T_n · KB beats: ``for t in row tiles: for j in column tiles: for kb in
  0..KB−1:`` one beat of ``cols`` pre-quantized blocks, lane c = W block (k-block kb, column
  j·cols + c) exactly as ``golden.quantize_weights`` gives it (codes, SE + 16, dialect,
  invalid 0); lanes past N are ignored. The weights of a column tile are sent once per row
  tile.
* ``y``: M·N outputs: ``for t in row tiles: for j in column tiles: for r < R_t: for c < C_j:``
  Y[t·rows + r, j·cols + c] (``value`` binary32, ``invalid`` = an X block of that row held
  NaN/Inf (SPEC §2: the block then contributes +0.0) or a weight block was flagged,
  ``last`` = the GEMM's final output).

**Schedule**: the quantizer takes one block every C_sel cycles (C_sel = K_book/formats per
cycle for ``lut``, 1 for ``two-stage``) and fills bank t mod 2 for row tile t while the
array computes row tile t − 1 from the other bank; the sequencer issues one k-step (one weight
beat) per cycle; the array's results for a tile are captured by the drain in one cycle (the
PEs stall only if the drain is still emitting the previous tile) and leave one per cycle.
A row tile starts issuing after the previous row tile's last capture. The exact cycle count
without stalls is :func:`sim.cycles.gemm_cycles` (formula in its module docstring); in
steady state one column tile costs max(KB, rows·cols + 1) cycles.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.config import Config
from semdialect.designs import PEKind
from semdialect.golden.formatbook import Formatbook
from semdialect.rtl.act_buffer import ActivationBuffer
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.layouts import GEMM_OUTPUT, gemm_command, masked_fp16_block, quantized_block
from semdialect.rtl.mac_array import MACArray
from semdialect.rtl.tile_drain import TileDrain

__all__ = ["GemmCore"]

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
    (4B + 6 + id_bits(K) bits each), rows × cols PEs, rows × cols × 33 drain registers.

    Parameters
    ----------
    rows, cols : int
        MAC array size, 1..64.
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
        max_m: int = DEFAULT_MAX_M,
        max_n: int = DEFAULT_MAX_N,
        max_kb: int = DEFAULT_MAX_KB,
    ) -> None:
        # plain parameters first, so that no sub-component is built for a bad one
        for name, val in (("rows", rows), ("cols", cols)):
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= 64:
                raise ValueError(f"{name}: must be an integer in 1..64, got {val!r}")
        self._max_m = _positive("max_m", max_m)
        self._max_n = _positive("max_n", max_n)
        self._max_kb = _positive("max_kb", max_kb)
        if max_kb & (max_kb - 1):
            raise ValueError(f"max_kb: must be a power of two, got {max_kb}")
        self._quantizer = BlockQuantizer(block, formatbook, select, formats_per_cycle)
        book = self._quantizer.formatbook
        self._kind = ElementKind.for_design(PEKind.DIALECT, self._quantizer.block, book)
        self._array = MACArray(rows, cols, self._kind)
        self._buffer = ActivationBuffer(rows, self._kind.encoded_layout, max_kb)
        self._drain = TileDrain(rows, cols)
        self._rows = rows
        self._cols = cols
        k = book.size
        self._cmd_layout = gemm_command(
            max(max_m, rows).bit_length(), max(max_n, cols).bit_length(), max_kb.bit_length()
        )
        super().__init__({
            "cmd": In(stream.Signature(self._cmd_layout)),
            "x": In(stream.Signature(masked_fp16_block(self._quantizer.block, k))),
            "w": In(stream.Signature(data.ArrayLayout(quantized_block(self._quantizer.block, k),
                                                      cols))),
            "y": Out(stream.Signature(GEMM_OUTPUT)),
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
        select, formats_per_cycle; the dataflow must be output-stationary)."""
        if cfg.dataflow != "output-stationary":
            raise ValueError(f"dataflow: GemmCore is output-stationary, got {cfg.dataflow!r}")
        return cls(cfg.rows, cfg.cols, cfg.block, cfg.book(), cfg.select, cfg.formats_per_cycle,
                   max_m=max_m, max_n=max_n, max_kb=max_kb)

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def block(self) -> int:
        return self._quantizer.block

    @property
    def formatbook(self) -> Formatbook:
        return self._quantizer.formatbook

    @property
    def selector_cycles(self) -> int:
        """C_sel: quantizer cycles per activation block."""
        return self._quantizer.initiation_interval

    @property
    def max_kb(self) -> int:
        return self._max_kb

    @property
    def cmd_layout(self) -> data.StructLayout:
        return self._cmd_layout

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rows, cols = self._rows, self._cols
        m.submodules.quantizer = quant = self._quantizer
        m.submodules.buffer = buf = self._buffer
        m.submodules.array = arr = self._array
        m.submodules.drain = drain = self._drain

        start = Signal()  # a command is accepted this cycle
        busy = Signal()
        last_kb = Signal(range(max(self._max_kb, 2)))  # KB − 1
        # per bank: reserved by the acceptor / holds a complete row tile (until its release)
        claimed = _BankFlags("claimed")
        full = _BankFlags("full")
        m.d.comb += [
            self.cmd.ready.eq(~busy),
            start.eq(self.cmd.valid & self.cmd.ready),
        ]
        with m.If(start):
            m.d.sync += [busy.eq(1), last_kb.eq(self.cmd.payload.kb - 1)]
            claimed.clear(m)
            full.clear(m)

        # Four independent walkers follow the same loop order: the acceptor (x → quantizer),
        # the writer (quantizer → buffer), the sequencer (buffer + w → array) and the capture
        # (array → drain). Each restarts from zero with every command.
        a_rows = _TileWalker(m, "a_rows", self.cmd.payload.m, start, rows)
        w_rows = _TileWalker(m, "w_rows", self.cmd.payload.m, start, rows)
        s_cols = _TileWalker(m, "s_cols", self.cmd.payload.n, start, cols)
        c_rows = _TileWalker(m, "c_rows", self.cmd.payload.m, start, rows)
        c_cols = _TileWalker(m, "c_cols", self.cmd.payload.n, start, cols)
        a_r, a_kb, a_bank, a_done = (Signal(a_rows.extent_m1.shape(), name="a_r"),
                                     Signal(last_kb.shape(), name="a_kb"), Signal(name="a_bank"),
                                     Signal(name="a_done"))
        w_r, w_kb, w_bank = (Signal(w_rows.extent_m1.shape(), name="w_r"),
                             Signal(last_kb.shape(), name="w_kb"), Signal(name="w_bank"))
        s_kb, s_bank, s_wait, s_done = (Signal(last_kb.shape(), name="s_kb"), Signal(name="s_bank"),
                                        Signal(name="s_wait"), Signal(name="s_done"))
        final = Signal()
        with m.If(start):
            m.d.sync += [
                sig.eq(0)
                for sig in (a_r, a_kb, a_bank, a_done, w_r, w_kb, w_bank, s_kb, s_bank, s_wait,
                            s_done, final)
            ]

        # -- acceptor: X blocks into the quantizer, a bank claimed per row tile ----------------
        a_first = Signal()
        a_gate = Signal()
        a_take = Signal()
        m.d.comb += [
            a_first.eq(~a_r.any() & ~a_kb.any()),
            a_gate.eq(busy & ~a_done & (~a_first | ~claimed.read(a_bank))),
            quant.i.payload.eq(self.x.payload),
            quant.i.valid.eq(self.x.valid & a_gate),
            self.x.ready.eq(quant.i.ready & a_gate),
            a_take.eq(self.x.valid & self.x.ready),
        ]
        with m.If(a_take):
            with m.If(a_first):
                claimed.set(m, a_bank, 1)
            with m.If(a_kb == last_kb):
                m.d.sync += a_kb.eq(0)
                with m.If(a_r == a_rows.extent_m1):
                    m.d.sync += [a_r.eq(0), a_bank.eq(~a_bank)]
                    with m.If(a_rows.last):
                        m.d.sync += a_done.eq(1)
                with m.Else():
                    m.d.sync += a_r.eq(a_r + 1)
            with m.Else():
                m.d.sync += a_kb.eq(a_kb + 1)
        a_rows.advance(m, a_take & (a_kb == last_kb) & (a_r == a_rows.extent_m1))

        # -- writer: quantized blocks into the claimed bank (never stalls the quantizer) -------
        w_end = Signal()
        m.d.comb += [
            quant.o.ready.eq(1),
            buf.wr_en.eq(quant.o.valid),
            buf.wr_row.eq(w_r),
            buf.wr_bank.eq(w_bank),
            buf.wr_addr.eq(w_kb),
            buf.wr_data.eq(quant.o.payload),
            w_end.eq(quant.o.valid & (w_kb == last_kb) & (w_r == w_rows.extent_m1)),
        ]
        with m.If(quant.o.valid):
            with m.If(w_kb == last_kb):
                m.d.sync += w_kb.eq(0)
                with m.If(w_r == w_rows.extent_m1):
                    m.d.sync += [
                        w_r.eq(0),
                        w_bank.eq(~w_bank),
                    ]
                    full.set(m, w_bank, 1)
                with m.Else():
                    m.d.sync += w_r.eq(w_r + 1)
            with m.Else():
                m.d.sync += w_kb.eq(w_kb + 1)
        w_rows.advance(m, w_end)

        # -- sequencer: one k-step (rows buffered blocks + one weight beat) per cycle ----------
        s_active = Signal()
        s_issue = Signal()
        m.d.comb += [
            s_active.eq(busy & ~s_done & ~s_wait & full.read(s_bank)),
            buf.rd_bank.eq(s_bank),
            buf.rd_addr.eq(s_kb),
            arr.i.payload.a.eq(buf.rd_data),
            arr.i.payload.w.eq(self.w.payload),
            arr.i.payload.last.eq(s_kb == last_kb),
            arr.i.valid.eq(s_active & self.w.valid),
            self.w.ready.eq(s_active & arr.i.ready),
            s_issue.eq(arr.i.valid & arr.i.ready),
        ]
        with m.If(s_issue):
            with m.If(s_kb == last_kb):
                m.d.sync += s_kb.eq(0)
                with m.If(s_cols.last):
                    m.d.sync += s_wait.eq(1)
            with m.Else():
                m.d.sync += s_kb.eq(s_kb + 1)
        s_cols.advance(m, s_issue & (s_kb == last_kb), wrap=True)

        # -- capture: finished tiles into the drain; the last column tile releases the bank ----
        capture = Signal()
        m.d.comb += [
            drain.i.payload.results.eq(arr.o.payload),
            drain.i.payload.rows.eq(c_rows.extent),
            drain.i.payload.cols.eq(c_cols.extent),
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

        # -- output ----------------------------------------------------------------------------
        gemm_last = Signal()
        m.d.comb += [
            gemm_last.eq(final & drain.o.payload.last),
            self.y.payload.value.eq(drain.o.payload.result.value),
            self.y.payload.invalid.eq(drain.o.payload.result.invalid),
            self.y.payload.last.eq(gemm_last),
            self.y.valid.eq(drain.o.valid),
            drain.o.ready.eq(self.y.ready),
        ]
        with m.If(self.y.valid & self.y.ready & gemm_last):
            m.d.sync += busy.eq(0)
        return m


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
