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

Timing: the PEs' (latency 3, one k-step per cycle, see :class:`~rtl.pe.BlockPE`). All PEs get
the same ``valid``/``last``/``ready``, so their control state is identical; PE (0, 0)'s
``i.ready`` and ``o.valid`` stand for the whole array.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.rtl.block_decoder import BlockDecoder, ElementKind
from semdialect.rtl.layouts import array_operands, array_results
from semdialect.rtl.pe import BlockPE

__all__ = ["MACArray"]


class MACArray(wiring.Component):
    """``rows × cols`` output-stationary block dot-product array (see the module docstring).

    **Latency 3** (the k-step flagged ``last`` accepted in cycle t → all results at ``o`` in
    cycle t + 3), **throughput one k-step (rows·cols block pairs) per cycle**. ``o`` is a
    register bank and holds still while ``o.ready`` is low; the whole array then stalls
    (``i.ready`` low, combinationally from ``o.ready``). Storage: rows·cols PEs.

    Parameters
    ----------
    rows, cols : int
        Array size, 1..64 each.
    kind : ElementKind
        Element kind of the operand blocks (dialect, MXFP4 or MXINT8).

    Members
    -------
    i : ``In(stream.Signature(array_operands(kind.encoded_layout, rows, cols)))``
        ``a`` (rows blocks), ``w`` (cols blocks), ``last``.
    o : ``Out(stream.Signature(array_results(rows, cols)))``
        ``[r][c]`` = FP32 result (``value``, ``invalid``) of PE (r, c).
    """

    MAX_SIZE = 64

    def __init__(self, rows: int, cols: int, kind: ElementKind) -> None:
        for name, val in (("rows", rows), ("cols", cols)):
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= self.MAX_SIZE:
                raise ValueError(f"{name}: must be an integer in 1..{self.MAX_SIZE}, got {val!r}")
        if not isinstance(kind, ElementKind):
            raise ValueError(f"kind: expected an ElementKind, got {kind!r}")
        self._rows = rows
        self._cols = cols
        self._kind = kind
        super().__init__({
            "i": In(stream.Signature(array_operands(kind.encoded_layout, rows, cols))),
            "o": Out(stream.Signature(array_results(rows, cols))),
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
    def latency(self) -> int:
        """Cycles from accepting the ``last`` k-step to presenting the results: 3."""
        return BlockPE.LATENCY

    def elaborate(self, platform: object) -> Module:
        m = Module()
        row_blocks = []
        for r in range(self._rows):
            dec = BlockDecoder(self._kind)
            m.submodules[f"row_dec{r}"] = dec
            m.d.comb += dec.i.eq(self.i.payload.a[r])
            row_blocks.append(dec.o)
        col_blocks = []
        for c in range(self._cols):
            dec = BlockDecoder(self._kind)
            m.submodules[f"col_dec{c}"] = dec
            m.d.comb += dec.i.eq(self.i.payload.w[c])
            col_blocks.append(dec.o)
        for r in range(self._rows):
            for c in range(self._cols):
                pe = BlockPE(self._kind, decode=False)
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.i.payload.a.eq(row_blocks[r]),
                    pe.i.payload.w.eq(col_blocks[c]),
                    pe.i.payload.last.eq(self.i.payload.last),
                    pe.i.valid.eq(self.i.valid),
                    pe.o.ready.eq(self.o.ready),
                    self.o.payload[r][c].eq(pe.o.payload),
                ]
                if r == 0 and c == 0:
                    m.d.comb += [
                        self.i.ready.eq(pe.i.ready),
                        self.o.valid.eq(pe.o.valid),
                    ]
        return m
