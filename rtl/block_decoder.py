"""Block decoder: a quantized block of one of the three PE element kinds → integers + exponent.

Every power-of-two block format of the project has the value Σ_i e_i · 2^x with integer
elements e_i and one exponent x per block (golden's ``QTensor.exp``); the PE multiplies the
integers and adds the exponents (SPEC §5, §8). :class:`ElementKind` says how a kind's payload
becomes (e_i, x). The decoded block keeps the exponent as its unsigned *biased field*
``exp`` (5 or 8 bits), x = exp − ``exp_offset``; the PE folds both offsets into one constant.

==========  =====================================  ==================  =======================
kind        payload (:mod:`rtl.layouts`)           element e_i         x = exp − exp_offset
==========  =====================================  ==================  =======================
dialect     ``quantized_block(B, K)``              ±HU (5 bits)        SE − 1 = se field − 17
mxfp4       ``mx_block(32, 4)`` (E2M1 + E8M0)      ±2·E2M1 = ±HU (5)   e − 1 = scale − 128
mxint8      ``mx_block(32, 8)`` (int8 + E8M0)      int8 (8 bits)       e − 6 = scale − 133
==========  =====================================  ==================  =======================

So a block pair contributes P · 2^(exp_a + exp_w): P · 2^(SE_a + SE_w − 2) for the dialect
formats, P · 2^(e_a + e_w − 2) for MXFP4 and P · 2^(e_a + e_w − 12) for MXINT8, exactly the
SPEC §5/§8 contracts. Dialect and E2M1 elements both go through
:class:`~rtl.decoder.DialectDecoder` (E2M1 is the single-dialect book
:data:`golden.formats.E2M1_HU`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from semdialect.golden.blocks import BLOCK_SIZES
from semdialect.golden.formatbook import Formatbook
from semdialect.golden.formats import E2M1_HU, E8M0_BIAS, MX_BLOCK
from semdialect.rtl.decoder import DialectDecoder
from semdialect.rtl.layouts import (
    E8M0_BITS,
    HU_BITS,
    SE_BITS,
    decoded_block,
    mx_block,
    quantized_block,
)
from semdialect.rtl.selector import resolve_formatbook

__all__ = ["KINDS", "BlockDecoder", "ElementKind", "e2m1_formatbook"]

#: element kinds of :class:`ElementKind`
KINDS = ("dialect", "mxfp4", "mxint8")

#: SE field = SE + 16 (SPEC §2); the per-operand exponent is SE − 1 (dequant = ±HU·2^(SE−1))
_SE_FIELD_BIAS = 16
#: MX block size (SPEC §8)
#: MXINT8 element bits
_INT8_BITS = 8


def e2m1_formatbook() -> Formatbook:
    """E2M1 magnitudes as a single-dialect formatbook (HU: 0 1 2 3 4 6 8 12), from golden."""
    return Formatbook(name="e2m1", hu=E2M1_HU[None, :])


@dataclass(frozen=True, eq=False)
class ElementKind:
    """How one PE element kind is encoded and decoded (see the module docstring).

    Build with :meth:`dialect`, :meth:`mxfp4`, :meth:`mxint8` or :meth:`from_name`.

    Attributes
    ----------
    name : str
        ``"dialect"``, ``"mxfp4"`` or ``"mxint8"``.
    block : int
        B, elements per block (16/32/64 for dialect formats, 32 for MX).
    formatbook : Formatbook | None
        The book the element decoder reads: the dialect formatbook, the E2M1 book, or None
        (MXINT8 elements are their own integers).
    """

    name: str
    block: int
    formatbook: Formatbook | None

    def __post_init__(self) -> None:
        if self.name not in KINDS:
            raise ValueError(f"kind: must be one of {KINDS}, got {self.name!r}")
        allowed = BLOCK_SIZES if self.name == "dialect" else (MX_BLOCK,)
        if isinstance(self.block, bool) or self.block not in allowed:
            raise ValueError(f"block: {self.name} needs B in {allowed}, got {self.block!r}")
        if (self.formatbook is None) != (self.name == "mxint8"):
            raise ValueError(f"formatbook: required for dialect/mxfp4 only, got {self.formatbook}")

    @classmethod
    def dialect(cls, block: int, formatbook: Formatbook | str) -> ElementKind:
        """A dialect format (dfp4, sd32 or a user book) with block size B."""
        return cls("dialect", block, resolve_formatbook(formatbook))

    @classmethod
    def mxfp4(cls, block: int = MX_BLOCK) -> ElementKind:
        """OCP MXFP4: E2M1 elements, E8M0 scale, B = 32."""
        return cls("mxfp4", block, e2m1_formatbook())

    @classmethod
    def mxint8(cls, block: int = MX_BLOCK) -> ElementKind:
        """OCP MXINT8: int8 elements, E8M0 scale, B = 32."""
        return cls("mxint8", block, None)

    @classmethod
    def from_name(
        cls, name: str, block: int, formatbook: Formatbook | str | None = None
    ) -> ElementKind:
        """``"dialect"`` (needs ``formatbook``), ``"mxfp4"`` or ``"mxint8"``."""
        if name == "dialect":
            if formatbook is None:
                raise ValueError("formatbook: the dialect kind needs a formatbook")
            return cls.dialect(block, formatbook)
        if name == "mxfp4":
            return cls.mxfp4(block)
        if name == "mxint8":
            return cls.mxint8(block)
        raise ValueError(f"kind: must be one of {KINDS}, got {name!r}")

    @cached_property
    def encoded_layout(self) -> data.StructLayout:
        """The quantized block payload this kind arrives in."""
        if self.name == "dialect":
            return quantized_block(self.block, self.formatbook.size)
        return mx_block(self.block, 4 if self.name == "mxfp4" else _INT8_BITS)

    @property
    def element_bits(self) -> int:
        """Signed element width: 5 (±HU) or 8 (int8)."""
        return _INT8_BITS if self.name == "mxint8" else HU_BITS

    @property
    def max_element(self) -> int:
        """Largest |element| a payload can encode (the int8 code 0x80 is −128)."""
        if self.name == "mxint8":
            return 1 << (_INT8_BITS - 1)
        return int(self.formatbook.hu.max())

    @property
    def exp_offset(self) -> int:
        """Per-operand exponent x = exp field − exp_offset: 17 (dialect), 128 (MXFP4) or
        133 (MXINT8)."""
        if self.name == "dialect":
            return _SE_FIELD_BIAS + 1
        return E8M0_BIAS + (1 if self.name == "mxfp4" else 6)

    @property
    def exp_bits(self) -> int:
        """Width of the unsigned exponent field: 5 (SE + 16) or 8 (E8M0)."""
        return SE_BITS if self.name == "dialect" else E8M0_BITS

    @cached_property
    def decoded_layout(self) -> data.StructLayout:
        """The PE operand: ``decoded_block(B, element_bits, exp_bits)``."""
        return decoded_block(self.block, self.element_bits, self.exp_bits)

    @property
    def product_bits(self) -> int:
        """Signed width of the exact block product P: |P| ≤ B · max_element²."""
        return (self.block * self.max_element**2).bit_length() + 1


class BlockDecoder(wiring.Component):
    """Decodes one block of ``kind`` into ``kind.decoded_layout``.

    **Latency 0** (combinational), one block per cycle. Dialect and MXFP4 blocks use B
    :class:`~rtl.decoder.DialectDecoder` lanes (one K·8 × 4 ROM each, asynchronous read);
    MXINT8 elements are wires. The exponent field is passed through.

    Members
    -------
    i : ``In(kind.encoded_layout)``
        The quantized block.
    o : ``Out(kind.decoded_layout)``
        ``elems`` (B × signed 5 or 8), ``exp`` (the 5-bit SE field or the 8-bit E8M0
        byte), ``invalid`` (the dialect block's flag; 0 for MX).
    """

    def __init__(self, kind: ElementKind) -> None:
        if not isinstance(kind, ElementKind):
            raise ValueError(f"kind: expected an ElementKind, got {kind!r}")
        self._kind = kind
        super().__init__({
            "i": In(kind.encoded_layout),
            "o": Out(kind.decoded_layout),
        })

    @property
    def kind(self) -> ElementKind:
        return self._kind

    def elaborate(self, platform: object) -> Module:
        m = Module()
        kind = self._kind
        blk = self.i
        if kind.name == "dialect":
            m.d.comb += [
                self.o.exp.eq(blk.se),
                self.o.invalid.eq(blk.invalid),
            ]
        else:
            m.d.comb += self.o.exp.eq(blk.scale)
        for lane in range(kind.block):
            code = blk.codes[lane]
            if kind.name == "mxint8":
                m.d.comb += self.o.elems[lane].eq(code.as_signed())
                continue
            dec = DialectDecoder(kind.formatbook)
            m.submodules[f"lane{lane}"] = dec
            m.d.comb += [
                dec.code.eq(code),
                self.o.elems[lane].eq(dec.value),
            ]
            if kind.name == "dialect":
                m.d.comb += dec.dialect.eq(blk.dialect)
        return m
