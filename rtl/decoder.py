"""Dialect element decoder (SPEC §1, §4): (dialect id, 4-bit code) → signed ±HU.

A code is bit 3 = sign, bits 2:0 = magnitude index; its integer value in half units is
±HU[dialect][index] (the value is that times 2^(SE − 1)). The magnitudes come from a ROM
(``Memory``, K·8 words of 4 bits, word ``dialect·8 + index`` = ``formatbook.hu[dialect,
index]``) initialised from the golden formatbook table; nothing here recomputes it. Code 8
(−0) decodes to the integer 0: the PE's products only need the integer, and a zero block
contribution is +0.0 whatever its sign (SPEC §5).

The same decoder decodes MXFP4 E2M1 elements: E2M1 is the single-dialect book
``[0, 1, 2, 3, 4, 6, 8, 12]`` HU (:data:`golden.formats.E2M1_HU`); the dialect input is then
ignored.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from semdialect.golden.formatbook import DIALECT_LEN, Formatbook
from semdialect.rtl.layouts import CODE_BITS, HU_BITS, id_bits
from semdialect.rtl.selector import resolve_formatbook

__all__ = ["DialectDecoder"]

_INDEX_BITS = CODE_BITS - 1  # magnitude index bits 2:0 (8 magnitudes per dialect)
_HU_MAG_BITS = HU_BITS - 1  # unsigned HU 0..15


class DialectDecoder(wiring.Component):
    """Combinational ±HU decoder for one element lane.

    **Latency 0** (purely combinational: an asynchronous ROM read and a negation), one element
    per cycle. Storage: a K·8 × 4-bit ROM.

    Parameters
    ----------
    formatbook : Formatbook | str
        The K dialects (object or builtin name/TOML path); ``ValueError`` naming
        ``formatbook`` if it cannot be resolved.

    Members
    -------
    dialect : ``In(id_bits(K))``
        Dialect id, < K (a single-dialect book, K = 1, has no dialect input: 0 id bits).
    code : ``In(4)``
        Element code: bit 3 sign, bits 2:0 magnitude index.
    value : ``Out(signed(5))``
        ±HU[dialect][index] in −15..15; 0 for codes 0 and 8.
    """

    def __init__(self, formatbook: Formatbook | str) -> None:
        self._book = resolve_formatbook(formatbook)
        hu = self._book.hu
        if hu.shape[1] != DIALECT_LEN or int(hu.max()) >= 1 << _HU_MAG_BITS:
            raise ValueError(f"formatbook: magnitudes must be 8 per dialect, < 16 HU, got {hu}")
        super().__init__({
            **({"dialect": In(id_bits(self._book.size))} if self._book.id_bits else {}),
            "code": In(CODE_BITS),
            "value": Out(signed(HU_BITS)),
        })

    @property
    def formatbook(self) -> Formatbook:
        return self._book

    @property
    def latency(self) -> int:
        """Combinational: 0."""
        return 0

    @property
    def max_magnitude(self) -> int:
        """Largest |value| this book can produce (HU)."""
        return int(self._book.hu.max())

    def elaborate(self, platform: object) -> Module:
        m = Module()
        k = self._book.size
        rom = Memory(
            shape=unsigned(_HU_MAG_BITS),
            depth=k * DIALECT_LEN,
            init=[int(v) for v in self._book.hu.reshape(-1)],
        )
        m.submodules.hu_rom = rom
        port = rom.read_port(domain="comb")
        index = self.code[:_INDEX_BITS]
        sign = self.code[_INDEX_BITS]
        if k > 1:
            m.d.comb += port.addr.eq(Cat(index, self.dialect[: id_bits(k)]))
        else:
            m.d.comb += port.addr.eq(index)
        magnitude = port.data  # unsigned 0..15
        m.d.comb += self.value.eq(Mux(sign, -magnitude, magnitude))
        return m
