"""Code quantizer (SPEC §4): code_i = sign_i << 3 | IDX[dialect][q_i].

The IDX ROM holds K·32 words of 3 bits, word f·32 + q = IDX[f][q] (nearest 2·HU to q, ties
to the larger index; SPEC §3), initialised from :func:`golden.luts.build_luts`. It has B
*synchronous* read ports: the ROM's output registers are this stage's pipeline register.

Invalid blocks (NaN/Inf, SPEC §2) are forced at the ROM address: q = 0 and dialect 0 read
IDX[0][0] = 0 (every dialect starts at magnitude 0, so q = 0 always maps to index 0), the
sign is cleared, and the stored SE field and dialect are 0. The output is then codes 0,
SE field 0 (SE = −16), dialect 0, ``invalid`` 1.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from semdialect.golden.formatbook import Formatbook
from semdialect.golden.luts import Q_LEVELS, build_luts
from semdialect.rtl.layouts import (
    CODE_BITS,
    SE_BITS,
    dialect_block,
    dialect_id,
    dialect_id_eq,
    id_bits,
    quantized_block,
)
from semdialect.rtl.preprocess import check_block
from semdialect.rtl.selector import resolve_formatbook

__all__ = ["CodeQuantizer"]

_INDEX_BITS = CODE_BITS - 1


class CodeQuantizer(wiring.Component):
    """Turns a preprocessed block and its dialect into 4-bit codes (one pipeline stage).

    **Latency 1, initiation interval 1** block/cycle: a block accepted in cycle t is at ``o``
    in cycle t + 1. The stage loads whenever it is empty or its output is taken in the same
    cycle (``i.ready = ~o.valid | o.ready``, so ``i.ready`` depends combinationally on
    ``o.ready``); ``o`` holds still while ``o.ready`` is low. Storage: B × 3 ROM output
    registers, B sign bits, SE (5), dialect (id_bits(K)), invalid and valid.

    Parameters
    ----------
    block : int
        B: 16, 32 or 64.
    formatbook : Formatbook | str
        The K dialects (object or builtin name/TOML path).

    Members
    -------
    i : ``In(stream.Signature(dialect_block(B, K)))``
        ``block`` (se 5, q B×5, sign B×1, invalid 1) and ``dialect`` (id_bits(K), < K).
    o : ``Out(stream.Signature(quantized_block(B, K)))``
        ``codes`` (B×4), ``se`` (5), ``dialect`` (id_bits(K)), ``invalid`` (1).
    """

    def __init__(self, block: int, formatbook: Formatbook | str) -> None:
        self._block = check_block(block)
        self._book = resolve_formatbook(formatbook)
        self._idx = build_luts(self._book).idx
        # The invalid-block trick below reads word 0: IDX[0][0] must be 0 (dialects start at 0).
        assert int(self._idx[0, 0]) == 0
        k = self._book.size
        super().__init__({
            "i": In(stream.Signature(dialect_block(self._block, k))),
            "o": Out(stream.Signature(quantized_block(self._block, k))),
        })

    @property
    def block(self) -> int:
        return self._block

    @property
    def formatbook(self) -> Formatbook:
        return self._book

    @property
    def latency(self) -> int:
        """Cycles from accepting a block to presenting its codes: 1."""
        return 1

    @property
    def initiation_interval(self) -> int:
        """Cycles between accepted blocks with ``o.ready`` held high: 1."""
        return 1

    def elaborate(self, platform: object) -> Module:
        m = Module()
        k = self._book.size
        blk = self.i.payload.block
        invalid = blk.invalid

        load = Signal()
        m.d.comb += [
            load.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(load),
        ]

        rom = Memory(
            shape=unsigned(_INDEX_BITS),
            depth=Q_LEVELS * k,
            init=[int(self._idx[f, q]) for f in range(k) for q in range(Q_LEVELS)],
        )
        m.submodules.idx_rom = rom
        signs = Signal(self._block)
        for i in range(self._block):
            port = rom.read_port(domain="sync")
            m.d.comb += [
                port.en.eq(load),
                port.addr.eq(Mux(invalid, 0, Cat(blk.q[i], dialect_id(self.i.payload)))),
                self.o.payload.codes[i].eq(Cat(port.data, signs[i])),
            ]

        with m.If(load):
            m.d.sync += [
                self.o.valid.eq(self.i.valid),
                signs.eq(Mux(invalid, 0, blk.sign.as_value())),
                self.o.payload.se.eq(Mux(invalid, 0, blk.se)),
                *dialect_id_eq(self.o.payload, Mux(invalid, 0, dialect_id(self.i.payload))),
                self.o.payload.invalid.eq(invalid),
            ]
        assert len(self.o.payload.se) == SE_BITS and len(dialect_id(self.o.payload)) == id_bits(k)
        return m
