"""Every component of one configuration, by Verilog module name (constructors, no I/O).

:func:`components` is the one list of what ``semdialect verilog`` emits
(:mod:`semdialect.tb.generate`) and what the area flow synthesizes (:mod:`semdialect.sim.ablation`).
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.lib import wiring
from semdialect.rtl.act_buffer import ActivationBuffer
from semdialect.rtl.block_decoder import BlockDecoder, ElementKind
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.decoder import DialectDecoder
from semdialect.rtl.gemm_core import DEFAULT_MAX_KB, DEFAULT_MAX_M, DEFAULT_MAX_N, GemmCore
from semdialect.rtl.mac_array import MACArray
from semdialect.rtl.pe import BlockPE
from semdialect.rtl.preprocess import BlockPreprocessor
from semdialect.rtl.quantizer import CodeQuantizer
from semdialect.rtl.selector import FormatSelector
from semdialect.rtl.tile_drain import TileDrain

from semdialect.config import Config

__all__ = ["components"]


def components(
    cfg: Config, *, max_m: int = DEFAULT_MAX_M, max_n: int = DEFAULT_MAX_N,
    max_kb: int = DEFAULT_MAX_KB,
) -> dict[str, Callable[[], wiring.Component]]:
    """Module name → constructor of every component :func:`generate` emits (top first)."""
    book = cfg.book()
    kind = ElementKind.dialect(cfg.block, book)
    return {
        "gemm_core": lambda: GemmCore.from_config(cfg, max_m=max_m, max_n=max_n, max_kb=max_kb),
        "block_quantizer": lambda: BlockQuantizer.from_config(cfg),
        "block_preprocessor": lambda: BlockPreprocessor(cfg.block),
        "format_selector": lambda: FormatSelector(cfg.block, book, cfg.select,
                                                  cfg.formats_per_cycle),
        "code_quantizer": lambda: CodeQuantizer(cfg.block, book),
        "dialect_decoder": lambda: DialectDecoder(book),
        "block_decoder": lambda: BlockDecoder(kind),
        "pe": lambda: BlockPE(kind),
        "pe_mxfp4": lambda: BlockPE(ElementKind.mxfp4()),
        "pe_mxint8": lambda: BlockPE(ElementKind.mxint8()),
        "pe_core": lambda: BlockPE(kind, decode=False),
        "pe_core_mxfp4": lambda: BlockPE(ElementKind.mxfp4(), decode=False),
        "pe_core_mxint8": lambda: BlockPE(ElementKind.mxint8(), decode=False),
        "block_decoder_mxfp4": lambda: BlockDecoder(ElementKind.mxfp4()),
        "block_decoder_mxint8": lambda: BlockDecoder(ElementKind.mxint8()),
        "mac_array": lambda: MACArray(cfg.rows, cfg.cols, kind),
        "act_buffer": lambda: ActivationBuffer(cfg.rows, kind.encoded_layout, max_kb),
        "tile_drain": lambda: TileDrain(cfg.rows, cfg.cols),
    }
