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
dialect wins only with a strictly larger count. One cycle per block (C = 1); pipelined
(``stages`` ≥ 1) the registers are spread over these levels like ``lut``'s. SeDA is not
defined for two-stage selection (SPEC §4, §7): the hardware **ignores** ``mask`` in this mode
(it is not even stored), so any mask gives the result of ``candidates=None``. ``cost`` is 0.

Invalid blocks (NaN/Inf) are selected like any other (the preprocessed values are
unspecified, so the chosen dialect is too); the code quantizer forces their outputs to 0.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
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
    masked_fp16_block,
    masked_preprocessed_block,
    preprocessed_block,
    selected_block,
)
from semdialect.rtl.preprocess import (
    check_block,
    partial_block,
    preprocess_back,
    preprocess_front,
)
from semdialect.rtl.trees import (
    Enables,
    cut_levels,
    held_register,
    pipeline_register,
    tree_depth,
    tree_max,
    tree_reduce,
    tree_sum,
)

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

#: ``stage(level, values)``: the values after an evaluation level, registered when a
#: pipeline register follows that level (see :meth:`FormatSelector._elaborate_pipelined`)
_Stage = Callable[[int, list], list]


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


class _Counts(NamedTuple):
    """Two-stage popcounts of one subtree: elements in the pair's even / odd dialect's
    beneficial range (each as wide as its adder tree level needs)."""

    even: Value
    odd: Value


def _pack(value: Value | tuple) -> Value:
    """A stage value as one bit vector: a NamedTuple of values (``_Candidate``, ``_Counts``)
    concatenated, its first field in the low bits."""
    return Cat(*value) if isinstance(value, tuple) else Value.cast(value)


def _unpack(like: Value | tuple, bits: Value) -> Value | tuple:
    """The inverse of :func:`_pack`: ``bits`` (e.g. its register) split like ``like``."""
    if not isinstance(like, tuple):
        return bits
    fields, at = [], 0
    for field in like:
        width = len(Value.cast(field))
        fields.append(bits[at:at + width])
        at += width
    return type(like)(*fields)


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
    stages : int
        Keyword only, ``selector_stages`` 0..6 (default 0): extra register stages in the
        evaluation (see :meth:`_elaborate_pipelined`); latency C + 1 + stages.
    raw : bool
        Keyword only, default False; True needs ``stages`` ≥ 1. The input is the FP16 block
        (``masked_fp16_block(B, K)``) and the SPEC §2 preprocessing happens inside, split by
        the held register (:func:`~rtl.preprocess.preprocess_front` before it,
        :func:`~rtl.preprocess.preprocess_back` after it, followed by one of the ``stages``
        registers); ``o`` is unchanged (the preprocessed block, dialect, cost). Latency and
        initiation interval are those of a :class:`~rtl.preprocess.BlockPreprocessor` in
        front of this selector without ``raw``, plus nothing: C + 1 + stages.

    Members
    -------
    i : ``In(stream.Signature(masked_preprocessed_block(B, K)))``
        ``block`` (se 5, q B×5, sign B×1, invalid 1) and ``mask`` (K; bit f = dialect f
        allowed; all zeros = all ones). With ``raw``: ``masked_fp16_block(B, K)`` (``x``,
        B FP16 lanes, and ``mask``).
    o : ``Out(stream.Signature(selected_block(B, K, cost_bits)))``
        ``block`` (passed along unchanged), ``dialect`` (id_bits(K)), ``cost``
        (``cost_bits`` = bit length of B · max ERR; the chosen dialect's LUT cost, 0 in
        two-stage mode).
    """

    #: pipelined ``lut`` mode: ERR ROM lanes per replica of the held block
    _LANES_PER_COPY = 4

    def __init__(
        self,
        block: int,
        formatbook: Formatbook | str,
        mode: str = "lut",
        formats_per_cycle: int | None = None,
        *,
        stages: int = 0,
        raw: bool = False,
    ) -> None:
        self._params = selector_parameters(block, formatbook, mode, formats_per_cycle)
        if isinstance(stages, bool) or not isinstance(stages, int) or not 0 <= stages <= 6:
            raise ValueError(f"selector_stages: must be an integer in 0..6, got {stages!r}")
        if not isinstance(raw, bool) or (raw and not stages):
            raise ValueError(f"raw: expected a bool, True only with stages >= 1, got {raw!r}")
        self._stages = stages
        self._raw = raw
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
        layout = masked_fp16_block if raw else masked_preprocessed_block
        super().__init__({
            "i": In(stream.Signature(layout(self._block, k))),
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
    def stages(self) -> int:
        """Extra register stages in the evaluation (``selector_stages``)."""
        return self._stages

    @property
    def raw(self) -> bool:
        """True when the input is the FP16 block (the preprocessor inside, split)."""
        return self._raw

    @property
    def latency(self) -> int:
        """Cycles from accepting a block to presenting its result: C + 1 + stages."""
        return self.cycles + 1 + self._stages

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted blocks with ``o.ready`` held high: C."""
        return self.cycles

    # -- hardware -----------------------------------------------------------------------------

    def elaborate(self, platform: object) -> Module:
        if self._stages:
            return self._elaborate_pipelined()
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

    def _elaborate_pipelined(self) -> Module:
        """``stages`` > 0: the evaluation is cut by ``stages`` registers spread over its levels,
        the last after the final level (:meth:`_cuts`): in ``lut`` mode the group
        evaluation (ERR ROM reads, B-input adder trees, P-input argmin tree), in
        ``two-stage`` mode the selection (max tree, pair and range ROM, range tests, popcount
        trees, count compare; :meth:`_two_stage`). The registers carry the block, the group's
        place and the mask bits (``lut``) or the pair (``two-stage``) with it. One stall
        enable for all (``en = ~o.valid | o.ready``); the front takes a block every C enabled
        cycles.

        ``raw``: the held register (one copy) holds the preprocessor's front half; its back
        half follows, then the first of the ``stages`` registers (the block's replicas, one
        per ``_LANES_PER_COPY`` ROM lanes, with the group's place and mask bits): the one
        that would sit after the final level (the argmin, or the two-stage count compare).
        The last levels then feed the output register (and for C > 1 the merge with the
        running best) directly."""
        m = Module()
        c = self.cycles
        k = self._book.size
        p = self._per_cycle
        # every register of the evaluation loads with a copy of the stall enable
        # ``~o.valid | o.ready`` (:class:`~rtl.trees.Enables`: no net drives them all)
        en = Enables(m, self.o.ready)
        front = en.get(Enables.FANOUT)
        busy = Signal()
        count = Signal(range(c), name="count") if c > 1 else None
        last = Signal()
        take = Signal()  # a block is accepted (without the enable)
        m.d.comb += [
            last.eq(busy & (count == c - 1) if count is not None else busy),
            take.eq(self.i.valid & (~busy | last)),
            self.i.ready.eq((~busy | last) & front),
        ]
        mask = Signal(k, reset_less=True) if self._mode == "lut" else None
        with m.If(front):
            with m.If(last):
                m.d.sync += busy.eq(0)
            if count is not None:
                with m.If(busy & ~last):
                    m.d.sync += count.eq(count + 1)
                    if mask is not None:
                        m.d.sync += mask.eq(mask >> p)
            with m.If(take):
                m.d.sync += busy.eq(1)
                if count is not None:
                    m.d.sync += count.eq(0)
                if mask is not None:
                    given = self.i.payload.mask
                    m.d.sync += mask.eq(Mux(given.any(), given, Const((1 << k) - 1, k)))
        # the held block, one replica per ``_LANES_PER_COPY`` ROM lanes (each element's q
        # addresses P ROMs: the replicas split that fanout); raw: one held front half of the
        # preprocessor, the replicas made by the register after the back half
        copies = max(1, p // self._LANES_PER_COPY) if self._mode == "lut" else 1
        if self._raw:
            layout, source = partial_block(self._block), preprocess_front(self.i.payload.x,
                                                                           self._block)
        else:
            layout, source = preprocessed_block(self._block), self.i.payload.block
        helds = []
        for index in range(1 if self._raw else copies):
            held = Signal(layout, name=f"held{index}", reset_less=True)
            bits, src = Value.cast(held), Value.cast(source)
            for low in range(0, len(bits), Enables.FANOUT):
                high = min(low + Enables.FANOUT, len(bits))
                with m.If(en.get(high - low) & take):
                    m.d.sync += bits[low:high].eq(src[low:high])
            helds.append(held)
        if self._raw:
            helds = [preprocess_back(m, helds[0])] * copies
        held = helds[0]

        side: dict[str, Value] = {"valid": busy, "first": Const(1) if count is None else
                                  ~count.any(), "last": last}
        if count is not None:
            side["count"] = count
        if mask is not None:
            side["mask"] = mask[:p]

        def register(tag: str, values: dict[str, Value]) -> dict[str, Value]:
            return {key: pipeline_register(m, en, Value.cast(value), f"{tag}_{key}",
                                           0 if key == "valid" else None)
                    for key, value in values.items()}

        if self._raw:
            # the preprocessor's stage: after its back half, the block's replicas (and the
            # side values) are registered
            pre_side = side
            side = register("pre", side)
            helds = [data.View(preprocessed_block(self._block),
                               pipeline_register(m, en, Value.cast(held), f"held{index}_pre"))
                     for index in range(copies)]
            held = helds[0]
        else:
            pre_side = None
        side["block"] = held

        cuts = self._cuts()
        assert cuts.pop(0, 0) == int(self._raw)  # the raw register is built above
        state = {"side": side}
        if pre_side is not None:
            state["pre_tail"] = pre_side

        def stage(level: int, values: list) -> list:
            for copy in range(cuts.get(level, 0)):
                tag = f"sel{level}" + (f"_{copy}" if copy else "")
                state["pre_tail"] = state["side"]  # what the last register loads
                state["side"] = register(tag, state["side"])
                flat = register(f"{tag}v", {str(i): _pack(v) for i, v in enumerate(values)})
                values = [_unpack(v, flat[str(i)]) for i, v in enumerate(values)]
            return values

        if self._mode == "lut":
            group = self._lut_group(m, helds, side.get("count"), stage, state, base_level=1,
                                    argmin_base=1 + tree_depth(self._block))
        else:
            group = _Candidate(Const(1), Const(0, 1), self._two_stage(m, held, stage, state))
        tail = state["side"]
        pre_tail = state["pre_tail"]

        if count is not None:
            group_id = Signal(id_bits(k), name="group_id")
            if p & (p - 1) == 0:
                m.d.comb += group_id.eq(Cat(group.index[: (p - 1).bit_length()], tail["count"]))
            else:
                m.d.comb += group_id.eq(tail["count"] * p + group.index)
            group = _Candidate(group.ok, group.cost, group_id)
            best_ok = Signal()
            best_cost = Signal(self._cost_bits)
            best_id = Signal(id_bits(k))
            merged = _keep_lowest(_Candidate(best_ok & ~tail["first"], best_cost, best_id), group)
            with m.If(en.get(len(best_cost) + 8) & tail["valid"] & ~tail["last"]):
                m.d.sync += [best_ok.eq(merged.ok), best_cost.eq(merged.cost),
                             best_id.eq(merged.index)]
            group = merged
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        done = Signal(name="tail_done")
        m.d.comb += done.eq(tail["valid"] & tail["last"])
        with m.If(en.get(1) & done):
            m.d.sync += self.o.valid.eq(1)
        result = Signal(self.o.payload.shape(), name="result")
        m.d.comb += [
            result.block.eq(tail["block"]),
            *dialect_id_eq(result, group.index),
            result.cost.eq(group.cost),
        ]
        # the output register (no reset: only ``o.valid`` needs one)
        payload = Signal(self.o.payload.shape(), name="o_payload")
        m.d.comb += self.o.payload.eq(payload)
        # loaded in chunks, each under its enable copy and its own replica of ``done`` (the
        # value ``done`` takes after an enabled cycle: the last stage's input), so neither
        # signal drives the whole register
        done_next = pre_tail["valid"] & pre_tail["last"]
        m.d.comb += Value.cast(payload).eq(held_register(m, en, Value.cast(result), done_next,
                                                         "o_payload_reg"))
        en.finish(tail["valid"] & tail["last"])  # after the last copy is handed out
        return m

    def _levels(self) -> int:
        """Logic levels of the pipelined evaluation (the positions :meth:`_cuts` distributes
        the registers over). ``lut``: 1 (ERR ROM reads) + log2 B (adder trees) + log2 P
        (argmin). ``two-stage``: log2 B (max tree) + 1 (pair) + 1 (range ROM read) + 1
        (range tests) + log2 B (popcount trees) + 1 (count compare), see
        :meth:`_two_stage`."""
        depth = tree_depth(self._block)
        if self._mode == "lut":
            return 1 + depth + tree_depth(self._per_cycle)
        return 2 * depth + 4

    def _cuts(self) -> dict[int, int]:
        """Pipelined evaluation: level → number of stage registers after it.

        The ``stages`` registers go where :func:`~rtl.trees.cut_levels` puts them over the
        :meth:`_levels` levels, the last after the final level (with more registers than
        levels, the surplus stacks there too). ``raw``: that last register would stand right
        before the output register (for C = 1 a pure delay), so it moves in front of the
        evaluation instead, after the preprocessor's back half (level 0)."""
        levels = self._levels()
        fit = min(self._stages, levels)
        cuts: dict[int, int] = {}
        for level in cut_levels(levels, fit):
            cuts[level] = cuts.get(level, 0) + 1
        cuts[levels] += self._stages - fit
        if self._raw:
            cuts[levels] -= 1
            if not cuts[levels]:
                del cuts[levels]
            cuts[0] = 1
        assert sum(cuts.values()) == self._stages
        return cuts

    def _err_terms(self, m: Module, j: int, held: data.View, count: Signal | None
                   ) -> list[Value]:
        """ROM lane ``j`` (``err_rom<j>``: ERR[g·P + j][q] at address {q, g}, g = the cycle's
        group ``count``) read at each of the B quarter-unit magnitudes of ``held``: the B
        ERR terms of format g·P + j's cost (``err_bits`` each)."""
        c, p, err = self.cycles, self._per_cycle, self._luts.err
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
        return terms

    def _lut_group(self, m: Module, helds: list, count: Signal | None, stage: _Stage,
                   state: dict, base_level: int, argmin_base: int) -> _Candidate:
        """This cycle's group of P costs and its argmin, with ``stage(level, values)`` called
        after the ROM reads (level ``base_level``), after every adder-tree level and after
        every argmin level (levels continue from ``argmin_base``); the mask bits come from
        ``state["side"]["mask"]`` as they stand when the argmin starts."""
        p = self._per_cycle
        sums = [self._err_terms(m, j, helds[j * len(helds) // p], count) for j in range(p)]
        # the P trees advance level by level together, so one stage call registers them all
        flat = stage(base_level, [t for terms in sums for t in terms])
        b = self._block
        sums = [flat[j * b:(j + 1) * b] for j in range(p)]
        depth = tree_depth(b)
        for level in range(1, depth + 1):
            nxt = []
            for terms in sums:
                paired = [terms[x] + terms[x + 1] for x in range(0, len(terms) - 1, 2)]
                if len(terms) % 2:
                    paired.append(terms[-1])
                nxt.append(paired)
            sizes = [len(t) for t in nxt]
            flat = stage(base_level + level, [t for terms in nxt for t in terms])
            sums, at = [], 0
            for size in sizes:
                sums.append(flat[at:at + size])
                at += size
        mask = state["side"]["mask"]
        lanes = []
        for j in range(p):
            cost = Signal(self._cost_bits, name=f"cost{j}")
            m.d.comb += cost.eq(sums[j][0])
            lanes.append(_Candidate(mask[j], cost, Const(j, range(p))))
        return tree_reduce(lanes, _keep_lowest,
                           stage=lambda level, values: stage(argmin_base + level, values))

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
        p = self._per_cycle
        lanes = []
        for j in range(p):
            terms = self._err_terms(m, j, held, count)
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

    def _two_stage(self, m: Module, held: data.View, stage: _Stage | None = None,
                   state: dict | None = None) -> Value:
        """BlockDialect two-stage selection of ``held`` (SPEC §4): the dialect id
        (id_bits(K) bits, 2·pair + odd wins).

        Levels (D = log2 B): 1 … D the max tree over the B 5-bit q values; D + 1 the pair
        (3 bits, from the 5-bit maximum); D + 2 its two ranges (4 bounds of ``bound_bits``)
        read from the 8-entry ROM; D + 3 the 2 × B range tests (1 bit each); D + 4 … 2D + 3
        the two popcount trees (advancing together as :class:`_Counts`); 2D + 4 the count
        compare. ``stage(level, values)``, when given, is called after every level and
        returns the values the next level uses (registered copies, see
        :meth:`_elaborate_pipelined`); the block and, from level D + 1 on, the pair travel
        in ``state["side"]`` (``block``, ``pair``) and are read from there, as they stand
        after the stage. Without ``stage`` the selection is combinational."""
        if stage is None or state is None:
            stage, state = (lambda level, values: values), {"side": {"block": held}}
        depth = tree_depth(self._block)

        def qs() -> list[Value]:  # the block's q values as they stand after the last stage
            view = data.View(preprocessed_block(self._block), state["side"]["block"])
            return [view.q[i] for i in range(self._block)]

        qmax = Signal(Q_BITS)
        half = Signal(Q_BITS)  # (m + 1) >> 1, 0..16
        inverted = Signal(4)  # 15 - min(half, 15): 0 for 16, else the 4-bit complement
        pair = Signal(3)  # min(inverted, 7)
        m.d.comb += [
            qmax.eq(tree_max(qs(), stage=stage)),
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
        state["side"]["pair"] = pair
        stage(depth + 1, [])
        m.d.comb += port.addr.eq(state["side"]["pair"])
        lo_even, hi_even, lo_odd, hi_odd = stage(depth + 2, [port.data[x] for x in range(4)])
        tests = stage(depth + 3, [_Counts((q >= lo_even) & (q < hi_even),
                                          (q >= lo_odd) & (q < hi_odd)) for q in qs()])
        total = tree_reduce(tests, lambda a, b: _Counts(a.even + b.even, a.odd + b.odd),
                            stage=lambda level, values: stage(depth + 3 + level, values))
        counts = []
        for side, name in enumerate(("even", "odd")):
            count = Signal(range(self._block + 1), name=f"{name}_count")
            m.d.comb += count.eq(total[side])
            counts.append(count)
        dialect = Signal(id_bits(self._book.size), name="two_stage_id")
        # 2·pair + (odd wins)
        m.d.comb += dialect.eq(Cat(counts[1] > counts[0], state["side"]["pair"]))
        return stage(2 * depth + 4, [dialect])[0]
