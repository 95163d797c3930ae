"""Verilator test top for the block dot-product PE: the three element kinds side by side.

One simulator binary holds three *independent* :class:`~rtl.pe.BlockPE` instances, each with
its own ports (nothing connects them), so one Verilator build covers every kind:

==============  ==================================================
ports           instance
==============  ==================================================
``dial_i/o``    ``BlockPE(ElementKind.dialect(cfg.block, cfg.book()))``
``fp4_i/o``     ``BlockPE(ElementKind.mxfp4())``
``int8_i/o``    ``BlockPE(ElementKind.mxint8())``
==============  ==================================================
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.pe import BlockPE

from semdialect.config import Config

__all__ = ["PE_PREFIXES", "PETestTop"]

#: port prefix → PE kind name ("dialect" uses the configuration's book and B)
PE_PREFIXES = {"dial_": "dialect", "fp4_": "mxfp4", "int8_": "mxint8"}


class PETestTop(wiring.Component):
    """Three BlockPEs (dialect of ``cfg``, MXFP4, MXINT8) with prefixed members."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.pes = {
            prefix: BlockPE(ElementKind.from_name(kind, 32 if kind != "dialect" else cfg.block,
                                                  cfg.book() if kind == "dialect" else None))
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
