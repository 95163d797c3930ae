"""Block decoder: a quantized block of one PE kind (:class:`semdialect.designs.PEKind`) →
integers + exponent.

Every power-of-two block format of the project has the value Σ_i e_i · 2^x with integer
elements e_i and one exponent x per block (golden's ``QTensor.exp``); the PE multiplies the
integers and adds the exponents (SPEC §5, §8). :class:`ElementKind` says how a kind's payload
becomes (e_i, x); :meth:`ElementKind.for_design` is the one place the RTL maps a registry PE
kind to its decoder (a new kind adds its branch there). The decoded block keeps the exponent
as its unsigned *biased field* ``exp`` (5 or 8 bits), x = exp − ``exp_offset``; the PE folds
both offsets into one constant.

==========  =====================================  ==================  =======================
kind        payload (:mod:`rtl.layouts`)           element e_i         x = exp − exp_offset
==========  =====================================  ==================  =======================
dialect     ``quantized_block(B, K)``              ±HU (5 bits)        SE − 1 = se field − 17
mxfp4       ``mx_block(32, 4)`` (E2M1 + E8M0)      ±2·E2M1 = ±HU (5)   e − 1 = scale − 128
mxint8      ``mx_block(32, 8)`` (int8 + E8M0)      int8 (8 bits)       e − 6 = scale − 133
nvfp4       ``nvfp4_block(16)`` (E2M1 + E4M3)      ±2·E2M1 = ±HU (5)   (not a power of two)
==========  =====================================  ==================  =======================

NVFP4 (``ElementKind.for_design(PEKind.NVFP4)`` = :meth:`ElementKind.nvfp4`, SPEC §8 hardware
contract [ours]) is the exception (``float_scaled``): its block scale is an E4M3 number, not
2^x. The decoded ``exp`` field carries the E4M3 scale byte unchanged, and the PE computes the
block contribution P · s_a · s_w / 4 with :mod:`rtl.scale` (:func:`~rtl.scale.e4m3_pair`,
:func:`~rtl.scale.scaled_contribution`) instead of adding exponents.

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

from semdialect.config import Config
from semdialect.designs import PEKind
from semdialect.golden.blocks import BLOCK_SIZES
from semdialect.golden.formatbook import Formatbook
from semdialect.golden.formats import E2M1_HU, E8M0_BIAS
from semdialect.rtl.decoder import DialectDecoder
from semdialect.rtl.layouts import (
    E4M3_BITS,
    E8M0_BITS,
    SE_BITS,
    decoded_block,
    mx_block,
    nvfp4_block,
    quantized_block,
)
from semdialect.rtl.selector import resolve_formatbook

__all__ = ["BlockDecoder", "ElementKind", "NVFP4ElementKind", "e2m1_formatbook"]

#: SE field = SE + 16 (SPEC §2); the per-operand exponent is SE − 1 (dequant = ±HU·2^(SE−1))
_SE_FIELD_BIAS = 16


def e2m1_formatbook() -> Formatbook:
    """E2M1 magnitudes as a single-dialect formatbook (HU: 0 1 2 3 4 6 8 12), from golden."""
    return Formatbook(name="e2m1", hu=E2M1_HU[None, :])


@dataclass(frozen=True, eq=False)
class ElementKind:
    """How one PE kind's blocks are encoded and decoded in RTL (see the module docstring).

    Build with :meth:`for_design` (the one map from a :class:`~semdialect.designs.PEKind` to
    its RTL element kind) or :meth:`for_config`.

    Attributes
    ----------
    pe : PEKind
        The registry's PE kind (widths and block size come from it and its golden format).
    block : int
        B, elements per block (16/32/64 for dialect kinds, the kind's fixed block otherwise).
    formatbook : Formatbook | None
        The book the element decoder reads: the dialect formatbook, the E2M1 book, or None
        (elements are their own integers, e.g. MXINT8).
    exp_offset : int
        Per-operand exponent x = exp field − exp_offset: 17 (dialect), 128 (MXFP4) or
        133 (MXINT8).
    """

    pe: PEKind
    block: int
    formatbook: Formatbook | None
    exp_offset: int

    def __post_init__(self) -> None:
        if not isinstance(self.pe, PEKind):
            raise ValueError(f"kind: expected a PEKind, got {self.pe!r}")
        allowed = BLOCK_SIZES if self.pe.block is None else (self.pe.block,)
        if isinstance(self.block, bool) or self.block not in allowed:
            raise ValueError(f"block: {self.pe.value} needs B in {allowed}, got {self.block!r}")

    @classmethod
    def for_design(
        cls, pe: PEKind | str, block: int | None = None, book: Formatbook | str | None = None
    ) -> ElementKind:
        """The RTL element kind of PE kind ``pe`` (a member or its name) — the one place the
        RTL branches per kind. ``block`` defaults to the kind's fixed block; ``book`` is the
        dialect formatbook of a dialect kind (ignored by the others).

        A new PE kind adds its branch here: the decoder book (or None for integer elements)
        and its exponent offset (golden's ``exp`` = scale field − offset)."""
        kind = PEKind.of(pe)
        if block is None:
            block = kind.block if kind.block is not None else 32
        if kind is PEKind.DIALECT:
            if book is None:
                raise ValueError("formatbook: the dialect kind needs a formatbook")
            return cls(kind, block, resolve_formatbook(book), _SE_FIELD_BIAS + 1)
        if kind is PEKind.MXFP4:  # value = E2M1 · 2^e = HU · 2^(e − 1)
            return cls(kind, block, e2m1_formatbook(), E8M0_BIAS + 1)
        if kind is PEKind.MXINT8:  # value = int8 · 2^(e − 6)
            return cls(kind, block, None, E8M0_BIAS + 6)
        if kind is PEKind.NVFP4:  # value = ±HU · s / 2, s the E4M3 byte's value (not 2^x)
            if block != kind.block:
                raise ValueError(f"block: {kind.value} needs B in ({kind.block},), got {block!r}")
            return cls.nvfp4()
        raise ValueError(f"kind: {kind.value} has no RTL element decoder")

    @classmethod
    def nvfp4(cls) -> NVFP4ElementKind:
        """The NVFP4 element kind of ``PEKind.NVFP4`` (B = 16, E2M1 elements decoded to ±HU
        like MXFP4, E4M3 scale byte in the decoded ``exp`` field; SPEC §8 hardware contract);
        the same as ``ElementKind.for_design(PEKind.NVFP4)``."""
        return NVFP4ElementKind(PEKind.NVFP4, PEKind.NVFP4.block, e2m1_formatbook(), 0)

    @property
    def float_scaled(self) -> bool:
        """True when the block scale is not a power of two (NVFP4's E4M3; the golden format's
        ``pow2_scaled`` is False): the PE then takes the contribution from
        :func:`rtl.scale.nvfp4_contribution`'s arithmetic, not from ``exp``."""
        return not self.pe.pow2_scaled

    @classmethod
    def for_config(cls, pe: PEKind | str, cfg: Config) -> ElementKind:
        """Kind ``pe`` on ``cfg``: a dialect kind with ``cfg``'s book and B, a fixed-format
        kind with its own block."""
        kind = PEKind.of(pe)
        return cls.for_design(kind, cfg.block if kind.block is None else kind.block, cfg.book())

    @property
    def name(self) -> str:
        """The PE kind's name (``pe.value``)."""
        return self.pe.value

    @cached_property
    def encoded_layout(self) -> data.StructLayout:
        """The quantized block payload this kind arrives in: ``quantized_block`` for dialect
        kinds, ``mx_block`` (codes of the golden format's element bits + E8M0) otherwise."""
        if self.pe.has_dialects:
            assert self.formatbook is not None
            return quantized_block(self.block, self.formatbook.size)
        return mx_block(self.block, self.pe.element_format().element_bits)

    @property
    def element_bits(self) -> int:
        """Signed decoded element width (``pe.int_bits``): 5 (±HU) or 8 (int8)."""
        return self.pe.int_bits

    @property
    def max_element(self) -> int:
        """Largest |element| a payload can encode (the int8 code 0x80 is −128)."""
        if self.formatbook is None:
            return 1 << (self.element_bits - 1)
        return int(self.formatbook.hu.max())

    @property
    def exp_bits(self) -> int:
        """Width of the unsigned exponent field: the golden scale field, 5 (SE + 16) or 8
        (E8M0)."""
        book = self.formatbook if self.pe.has_dialects else None
        bits = self.pe.element_format(book).scale_bits()
        assert bits == (SE_BITS if self.pe.has_dialects else E8M0_BITS)
        return bits

    @cached_property
    def decoded_layout(self) -> data.StructLayout:
        """The PE operand: ``decoded_block(B, element_bits, exp_bits)``."""
        return decoded_block(self.block, self.element_bits, self.exp_bits)

    @property
    def product_bits(self) -> int:
        """Signed width of the exact block product P: |P| ≤ B · max_element²."""
        return (self.block * self.max_element**2).bit_length() + 1


@dataclass(frozen=True, eq=False)
class NVFP4ElementKind(ElementKind):
    """NVFP4 elements (:meth:`ElementKind.nvfp4`): payload :func:`rtl.layouts.nvfp4_block`
    (16 E2M1 codes + E4M3 byte), decoded by :class:`BlockDecoder` into
    ``decoded_block(16, 5, 8)`` whose ``exp`` is the E4M3 byte; ``exp_offset`` is unused (0).
    |P| ≤ 16·12² = 2304: ``product_bits`` 13."""

    def __post_init__(self) -> None:
        if self.pe is not PEKind.NVFP4:
            raise ValueError(f"kind: expected the NVFP4 PE kind, got {self.pe!r}")
        if self.block != PEKind.NVFP4.block:
            raise ValueError(f"block: nvfp4 needs B = {PEKind.NVFP4.block}, got {self.block!r}")

    @cached_property
    def encoded_layout(self) -> data.StructLayout:
        return nvfp4_block(self.block)

    @property
    def exp_bits(self) -> int:
        """Width of the decoded ``exp`` field: the E4M3 scale byte (8)."""
        return E4M3_BITS


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
        if kind.pe.has_dialects:
            m.d.comb += [
                self.o.exp.eq(blk.se),
                self.o.invalid.eq(blk.invalid),
            ]
        else:
            m.d.comb += self.o.exp.eq(blk.scale)
        for lane in range(kind.block):
            code = blk.codes[lane]
            if kind.formatbook is None:  # the codes are the integers
                m.d.comb += self.o.elems[lane].eq(code.as_signed())
                continue
            dec = DialectDecoder(kind.formatbook)
            m.submodules[f"lane{lane}"] = dec
            m.d.comb += [
                dec.code.eq(code),
                self.o.elems[lane].eq(dec.value),
            ]
            if kind.pe.has_dialects and kind.formatbook.id_bits:  # K = 1: no dialect id
                m.d.comb += dec.dialect.eq(blk.dialect)
        return m
