"""Verilator test top for the block dot-product PE: every PE kind side by side.

One simulator binary holds one *independent* :class:`~rtl.pe.BlockPE` per PE kind of the
registry (:class:`semdialect.designs.PEKind`), each with its own ports (nothing connects
them), so one Verilator build covers every kind. The ports of kind ``k`` carry the prefix
``<k>_`` (:data:`PE_PREFIXES`): ``dialect_i``/``dialect_o`` for
``BlockPE(ElementKind.for_config(PEKind.DIALECT, cfg))`` (the configuration's book and B),
``mxfp4_i``/``mxfp4_o``, ``mxint8_i``/``mxint8_o``, ``nvfp4_i``/``nvfp4_o`` for the
fixed-format kinds (each at its own B). Every PE has the configuration's ``[pipeline]``
stages (product, scale, accumulator).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from semdialect.config import Config
from semdialect.designs import PEKind
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.pe import BlockPE
from semdialect.rtl.timing import Pipeline

__all__ = ["PE_PREFIXES", "PETestTop"]

#: port prefix → PE kind name (``PEKind`` value; a dialect kind uses the configuration's book
#: and B)
PE_PREFIXES: dict[str, str] = {f"{kind.value}_": kind.value for kind in PEKind}


class PETestTop(wiring.Component):
    """One BlockPE per PE kind (the dialect kind of ``cfg``) with prefixed members."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.pes = {
            prefix: BlockPE(ElementKind.for_config(kind, cfg), pipeline=Pipeline.of(cfg))
            for prefix, kind in PE_PREFIXES.items()
        }
        members = {}
        for prefix, pe in self.pes.items():
            for name, member in pe.signature.members.items():
                members[prefix + name] = member
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        for prefix, pe in self.pes.items():
            m.submodules[f"pe_{prefix.rstrip('_')}"] = pe
            for name in pe.signature.members:
                wiring.connect(m, getattr(pe, name), wiring.flipped(getattr(self, prefix + name)))
        return m
