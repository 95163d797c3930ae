"""Dialect selector (SPEC §4): LUT-cost argmin (SemanticDialect) or BlockDialect two-stage.

``lut`` mode **[ours]**: cost_f = Σ_i ERR[f][q_i] and the chosen dialect is the argmin within
the candidate mask, ties to the lowest id. The K dialects are evaluated ``formats_per_cycle``
(P) at a time, so a block occupies the datapath for C = K / P cycles. Group c (cycle c)
evaluates dialects c·P … c·P + P − 1: lane j owns an ERR ROM (``Memory``, depth 32·C, word
c·32 + q = ERR[c·P + j][q], initialised from :func:`golden.luts.build_luts`) with B
asynchronous read ports addressed by {c, q_i}; a balanced adder tree sums the B ERR values;
a left-biased argmin tree over the P lanes (masked-out lanes lose) picks the group's best;
a running best register keeps the block's best so far (a later group wins only with a
strictly smaller cost: its ids are larger, so ties stay with the lowest id). The held mask
is a shift register: it moves right by P after each group, so lane j always reads bit j.

**All-zero mask [ours]:** golden rejects an empty candidate set; this hardware treats a mask
of all zeros as all ones (the whole formatbook), so every block gets a dialect and the
output is that of ``candidates=None``.

``two-stage`` mode **[paper; tie rule ours]** (dfp4-shaped formatbooks only, see
:func:`golden.luts.two_stage_tables`): m = max q_i (max tree), pair = min(15 − min((m + 1)
>> 1, 15), 7), the pair's two beneficial ranges come from an 8-entry ROM (initialised from
``two_stage_tables``); two B-bit range tests and popcounts give the counts, and the odd
dialect wins only with a strictly larger count. One cycle per block (C = 1). SeDA is not
defined for two-stage selection (SPEC §4, §7): the hardware **ignores** ``mask`` in this mode
(it is not even stored), so any mask gives the result of ``candidates=None``. ``cost`` is 0.

Invalid blocks (NaN/Inf) are selected like any other (the preprocessed values are
unspecified, so the chosen dialect is too); the code quantizer forces their outputs to 0.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from semdialect.golden.formatbook import Formatbook, get_formatbook
from semdialect.golden.luts import Q_LEVELS, build_luts, two_stage_tables
from semdialect.rtl.layouts import (
    Q_BITS,
    dialect_id_eq,
    id_bits,
    masked_preprocessed_block,
    preprocessed_block,
    selected_block,
)
from semdialect.rtl.preprocess import check_block
from semdialect.rtl.trees import tree_max, tree_reduce, tree_sum

__all__ = [
    "MODES",
    "FormatSelector",
    "SelectorParameters",
    "resolve_formatbook",
    "selector_parameters",
]

#: selection modes (SPEC §4)
MODES = ("lut", "two-stage")

#: BlockDialect pairs (2p, 2p + 1), p = 0..7 (SPEC §4)
_PAIRS = 8


def resolve_formatbook(formatbook: Formatbook | str) -> Formatbook:
    """Resolve a formatbook object or name/path; ``ValueError`` naming ``formatbook``."""
    try:
        return get_formatbook(formatbook)
    except ValueError as exc:
        raise ValueError(f"formatbook: {exc}") from None


class SelectorParameters(NamedTuple):
    """Validated selector parameters (see :func:`selector_parameters`)."""

    block: int
    formatbook: Formatbook
    mode: str
    formats_per_cycle: int

    @property
    def cycles(self) -> int:
        """C, evaluation cycles per block: K / P (``lut``) or 1 (``two-stage``)."""
        return self.formatbook.size // self.formats_per_cycle if self.mode == "lut" else 1


def selector_parameters(
    block: int,
    formatbook: Formatbook | str,
    mode: str = "lut",
    formats_per_cycle: int | None = None,
) -> SelectorParameters:
    """Validate :class:`FormatSelector`'s parameters; ``ValueError`` naming the bad one.

    ``formats_per_cycle`` defaults to K and must divide K (checked in both modes, like
    :class:`semdialect.config.Config`); ``two-stage`` needs a dfp4-shaped formatbook.
    """
    block = check_block(block)
    book = resolve_formatbook(formatbook)
    k = book.size
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
    if mode == "two-stage":
        try:
            two_stage_tables(book)
        except ValueError as exc:
            raise ValueError(f"mode: two-stage needs a dfp4-shaped formatbook ({exc})") from None
    if formats_per_cycle is None:
        formats_per_cycle = k
    if isinstance(formats_per_cycle, bool):
        raise ValueError(f"formats_per_cycle: expected an integer, got {formats_per_cycle!r}")
    try:
        formats_per_cycle = operator.index(formats_per_cycle)
    except TypeError:
        raise ValueError(
            f"formats_per_cycle: expected an integer, got {formats_per_cycle!r}"
        ) from None
    if not 1 <= formats_per_cycle <= k or k % formats_per_cycle:
        raise ValueError(
            f"formats_per_cycle: must divide the formatbook size K={k}, got {formats_per_cycle}"
        )
    return SelectorParameters(block, book, mode, formats_per_cycle)


class _Candidate(NamedTuple):
    ok: Value  # the dialect is in the candidate set
    cost: Value
    index: Value  # dialect id (or lane index inside a group)


def _keep_lowest(a: _Candidate, b: _Candidate) -> _Candidate:
    """Better of two candidates, ``a`` holding the lower ids: ``b`` only if strictly cheaper."""
    take_b = b.ok & (~a.ok | (b.cost < a.cost))
    return _Candidate(a.ok | b.ok, Mux(take_b, b.cost, a.cost), Mux(take_b, b.index, a.index))


class FormatSelector(wiring.Component):
    """Chooses one dialect per preprocessed block (SPEC §4); see the module docstring.

    Timing: C = K / ``formats_per_cycle`` cycles per block in ``lut`` mode, C = 1 in
    ``two-stage`` mode. A block accepted at ``i`` in cycle t (``i.valid & i.ready`` at the
    clock edge closing t) is evaluated in cycles t+1 … t+C and appears at ``o`` (a register)
    in cycle t + C + 1: **latency C + 1**. **Initiation interval C**: in the last evaluation
    cycle the result moves to the output register and the next block is accepted, so with
    ``o.ready`` high the selector takes one block every C cycles. ``i.ready`` depends
    combinationally on ``o.ready`` (the output register frees itself in the cycle it is read);
    ``o.valid`` and ``o.payload`` are registers and stay stable while ``o.ready`` is low.

    Storage: the held block and mask (6·B + 6 + K bits), the output register, and for C > 1
    the running best (cost, id, valid). ``lut`` logic: P ROMs of 32·C words × ``err_bits``
    with B read ports each, P adder trees of B inputs, a P-input argmin tree.

    Parameters
    ----------
    block : int
        B: 16, 32 or 64.
    formatbook : Formatbook | str
        The K dialects (a :class:`golden.formatbook.Formatbook` or a builtin name/TOML path).
    mode : str
        ``"lut"`` or ``"two-stage"`` (the latter needs a dfp4-shaped book).
    formats_per_cycle : int | None
        P, a divisor of K (default K: one cycle per block). Validated in both modes like
        :class:`semdialect.config.Config`, used only by ``lut``.

    Members
    -------
    i : ``In(stream.Signature(masked_preprocessed_block(B, K)))``
        ``block`` (se 5, q B×5, sign B×1, invalid 1) and ``mask`` (K; bit f = dialect f
        allowed; all zeros = all ones).
    o : ``Out(stream.Signature(selected_block(B, K, cost_bits)))``
        ``block`` (passed along unchanged), ``dialect`` (id_bits(K)), ``cost``
        (``cost_bits`` = bit length of B · max ERR; the chosen dialect's LUT cost, 0 in
        two-stage mode).
    """

    def __init__(
        self,
        block: int,
        formatbook: Formatbook | str,
        mode: str = "lut",
        formats_per_cycle: int | None = None,
    ) -> None:
        self._params = selector_parameters(block, formatbook, mode, formats_per_cycle)
        self._block = self._params.block
        self._book = self._params.formatbook
        self._mode = self._params.mode
        self._per_cycle = self._params.formats_per_cycle
        k = self._book.size
        self._ranges = two_stage_tables(self._book).ranges if mode == "two-stage" else None
        self._luts = build_luts(self._book)
        max_err = int(self._luts.err.max())
        self._err_bits = max(1, max_err.bit_length())
        self._cost_bits = max(1, (max_err * self._block).bit_length())
        super().__init__({
            "i": In(stream.Signature(masked_preprocessed_block(self._block, k))),
            "o": Out(stream.Signature(selected_block(self._block, k, self._cost_bits))),
        })

    # -- parameters ---------------------------------------------------------------------------

    @property
    def block(self) -> int:
        return self._block

    @property
    def formatbook(self) -> Formatbook:
        return self._book

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def formats_per_cycle(self) -> int:
        return self._per_cycle

    @property
    def cost_bits(self) -> int:
        """Width of ``o.payload.cost``."""
        return self._cost_bits

    @property
    def cycles(self) -> int:
        """C, evaluation cycles per block: K / P (``lut``) or 1 (``two-stage``)."""
        return self._params.cycles

    @property
    def latency(self) -> int:
        """Cycles from accepting a block to presenting its result: C + 1."""
        return self.cycles + 1

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted blocks with ``o.ready`` held high: C."""
        return self.cycles

    # -- hardware -----------------------------------------------------------------------------

    def elaborate(self, platform: object) -> Module:
        m = Module()
        c = self.cycles
        k = self._book.size

        busy = Signal()
        # group counter 0..C-1 (absent for C = 1: a zero-width signal would be a [-1:0] port)
        count = Signal(range(c), name="count") if c > 1 else None
        held = Signal(preprocessed_block(self._block))
        last = Signal()
        done = Signal()
        m.d.comb += [
            last.eq(busy & (count == c - 1) if count is not None else busy),
            done.eq(last & (~self.o.valid | self.o.ready)),
            self.i.ready.eq(~busy | done),
        ]

        if self._mode == "lut":
            # candidate mask, shifted right by P after each group: bit j = lane j's dialect
            mask = Signal(k)
            result = self._lut_step(m, held, mask, count, busy, last)
        else:
            mask = None
            result = _Candidate(Const(1), Const(0), self._two_stage(m, held))

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(done):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.block.eq(held),
                *dialect_id_eq(self.o.payload, result.index),
                self.o.payload.cost.eq(result.cost),
                busy.eq(0),
            ]
        if count is not None:
            with m.If(busy & ~last):
                m.d.sync += count.eq(count + 1)
                if mask is not None:
                    m.d.sync += mask.eq(mask >> self._per_cycle)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                busy.eq(1),
                held.eq(self.i.payload.block),
            ]
            if count is not None:
                m.d.sync += count.eq(0)
            if mask is not None:
                given = self.i.payload.mask
                m.d.sync += mask.eq(Mux(given.any(), given, Const((1 << k) - 1, k)))
        return m

    def _lut_step(
        self,
        m: Module,
        held: data.View,
        mask: Signal,
        count: Signal | None,
        busy: Signal,
        last: Signal,
    ) -> _Candidate:
        """This cycle's group of P costs merged with the running best (see module docstring)."""
        c = self.cycles
        p = self._per_cycle
        err = self._luts.err
        lanes = []
        for j in range(p):
            rom = Memory(
                shape=unsigned(self._err_bits),
                depth=Q_LEVELS * c,
                init=[int(err[g * p + j, q]) for g in range(c) for q in range(Q_LEVELS)],
            )
            m.submodules[f"err_rom{j}"] = rom
            terms = []
            for i in range(self._block):
                port = rom.read_port(domain="comb")
                m.d.comb += port.addr.eq(held.q[i] if count is None else Cat(held.q[i], count))
                terms.append(port.data)
            cost = Signal(self._cost_bits, name=f"cost{j}")
            m.d.comb += cost.eq(tree_sum(terms))
            lanes.append(_Candidate(mask[j], cost, Const(j, range(p))))
        group = tree_reduce(lanes, _keep_lowest)
        if count is None:
            return group
        # id = count·P + lane: a concatenation when P is a power of two (every divisor of the
        # builtin K = 16 and K = 32), else a multiply-add
        group_id = Signal(id_bits(self._book.size), name="group_id")
        if p & (p - 1) == 0:
            m.d.comb += group_id.eq(Cat(group.index[: (p - 1).bit_length()], count))
        else:
            m.d.comb += group_id.eq(count * p + group.index)
        group = _Candidate(group.ok, group.cost, group_id)

        best_ok = Signal()
        best_cost = Signal(self._cost_bits)
        best_id = Signal(id_bits(self._book.size))
        first = ~count.any()
        merged = _keep_lowest(_Candidate(best_ok & ~first, best_cost, best_id), group)
        with m.If(busy & ~last):
            m.d.sync += [
                best_ok.eq(merged.ok),
                best_cost.eq(merged.cost),
                best_id.eq(merged.index),
            ]
        return merged

    def _two_stage(self, m: Module, held: data.View) -> Value:
        """BlockDialect two-stage selection of the held block (SPEC §4): the dialect id."""
        qs = [held.q[i] for i in range(self._block)]
        qmax = Signal(Q_BITS)
        half = Signal(Q_BITS)  # (m + 1) >> 1, 0..16
        inverted = Signal(4)  # 15 - min(half, 15): 0 for 16, else the 4-bit complement
        pair = Signal(3)  # min(inverted, 7)
        m.d.comb += [
            qmax.eq(tree_max(qs)),
            half.eq((qmax + 1)[1:]),
            inverted.eq(Mux(half[4], 0, ~half[:4])),
            pair.eq(Mux(inverted[3], _PAIRS - 1, inverted[:3])),
        ]
        ranges = self._ranges  # (8, 2, 2): [pair, even/odd, lo/hi]
        bound_bits = max(1, int(ranges.max()).bit_length())
        rom = Memory(
            shape=data.ArrayLayout(bound_bits, 4),
            depth=_PAIRS,
            init=[[int(v) for v in ranges[p].reshape(-1)] for p in range(_PAIRS)],
        )
        m.submodules.range_rom = rom
        port = rom.read_port(domain="comb")
        m.d.comb += port.addr.eq(pair)
        counts = []
        for side in range(2):
            lo, hi = port.data[2 * side], port.data[2 * side + 1]
            count = Signal(range(self._block + 1), name=("even", "odd")[side] + "_count")
            m.d.comb += count.eq(tree_sum([(q >= lo) & (q < hi) for q in qs]))
            counts.append(count)
        dialect = Signal(id_bits(self._book.size), name="two_stage_id")
        m.d.comb += dialect.eq(Cat(counts[1] > counts[0], pair))  # 2·pair + (odd wins)
        return dialect
