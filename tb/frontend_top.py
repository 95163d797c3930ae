# amaranth: UnusedElaboratable=no
"""Verilator test top for the activation frontend: one simulator binary per configuration.

A Verilator build costs ~20 s of fixed overhead (the cocotb/Verilator runtime is compiled per
build), so instead of one top per component the cocotb tests share one top that holds three
*independent* instances, each with its own ports (nothing connects them):

============  ===========================================  ==================================
ports         instance                                     what the cocotb tests check there
============  ===========================================  ==================================
``i``/``o``   :class:`~rtl.block_quantizer.BlockQuantizer`  codes, SE, dialect, invalid, timing
``sel_i/o``   :class:`~rtl.selector.FormatSelector`         every ERR entry via ``cost``
``pre_i/o``   :class:`~rtl.preprocess.BlockPreprocessor`    q, sign, SE, invalid (exhaustive)
============  ===========================================  ==================================

The instances are the same generator classes with the same parameters as inside
:class:`BlockQuantizer` (the selector with the configuration's ``selector_stages``), so their
Verilog is the same logic.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from semdialect.config import Config
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.preprocess import BlockPreprocessor
from semdialect.rtl.selector import FormatSelector

__all__ = ["FrontendTestTop"]


class FrontendTestTop(wiring.Component):
    """A :class:`BlockQuantizer`, a :class:`FormatSelector` and a :class:`BlockPreprocessor`
    for ``cfg``, side by side (members named as in the module docstring)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.quantizer = BlockQuantizer.from_config(cfg)
        self.selector = FormatSelector(cfg.block, cfg.book(), cfg.select, cfg.formats_per_cycle,
                                       stages=cfg.selector_stages)
        self.preprocessor = BlockPreprocessor(cfg.block)
        members = {}
        for prefix, part in (("", self.quantizer), ("sel_", self.selector),
                             ("pre_", self.preprocessor)):
            for name, member in part.signature.members.items():
                members[prefix + name] = member
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.block_quantizer = self.quantizer
        m.submodules.selector = self.selector
        m.submodules.preprocessor = self.preprocessor
        for prefix, part in (("", self.quantizer), ("sel_", self.selector),
                             ("pre_", self.preprocessor)):
            for name in part.signature.members:
                wiring.connect(m, getattr(part, name), wiring.flipped(getattr(self, prefix + name)))
        return m
