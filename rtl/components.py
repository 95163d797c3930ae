"""Every component of one configuration, by Verilog module name (constructors, no I/O).

:func:`components` is the one list of what ``semdialect verilog`` emits
(:mod:`semdialect.tb.generate`) and what the area flow synthesizes (:mod:`semdialect.sim.ablation`).
Every PE kind of the registry (:class:`semdialect.designs.PEKind`) gets a PE (``pe``), an
array cell without decoders (``pe_core``) and a block decoder (``block_decoder``); their
module names come from :func:`kind_module` (the dialect kind, built on the configuration's
formatbook and B, keeps the plain name; another kind appends its name: ``pe_core_mxfp4``).
Every component is built with the configuration's register stages (``[pipeline]``,
:class:`~semdialect.rtl.timing.Pipeline`): every kind's PE and MAC array with its PE, decoder
and accumulator stages (so every design's PE core is timed with the same pipeline), the
selector and both block quantizers with ``selector_stages``, the tile drain on the tile's
rows × cols·d outputs (and its two parts, ``tile_drain_control`` and one ``tile_drain_lane``
of its ``drain_width``), and ``addend_adder`` (one lane of the GEMM core's output adder) with
``addend_stages``. A rotating configuration (``rotate = "hadamard"``, SPEC §11) adds
``block_rotator``: the GEMM core's per-lane :class:`~rtl.rotator.BlockRotator` (run-time role,
the lane's candidate mask and salient flag carried as side bits,
:data:`~rtl.timing.ROTATOR_STAGES` registers).
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.lib import wiring

from semdialect.config import Config
from semdialect.designs import PEKind
from semdialect.rtl.act_buffer import ActivationBuffer
from semdialect.rtl.addend_adder import AddendAdder
from semdialect.rtl.block_decoder import BlockDecoder, ElementKind
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.decoder import DialectDecoder
from semdialect.rtl.gemm_core import DEFAULT_MAX_KB, DEFAULT_MAX_M, DEFAULT_MAX_N, GemmCore
from semdialect.rtl.mac_array import MACArray
from semdialect.rtl.mx_quantizer import MXQuantizer
from semdialect.rtl.nvfp4_quantizer import NVFP4Quantizer
from semdialect.rtl.pe import BlockPE
from semdialect.rtl.preprocess import BlockPreprocessor
from semdialect.rtl.quantizer import CodeQuantizer
from semdialect.rtl.rotator import BlockRotator
from semdialect.rtl.scale import FP32Mul
from semdialect.rtl.selector import FormatSelector
from semdialect.rtl.tile_drain import DrainControl, DrainLane, TileDrain
from semdialect.rtl.timing import TENSOR_SCALE_STAGES, Pipeline

__all__ = ["KIND_MODULES", "components", "frontend_module", "kind_module"]

#: the per-PE-kind modules (base names) :func:`components` emits for every kind
KIND_MODULES = ("pe", "pe_core", "block_decoder")


def kind_module(base: str, pe: PEKind) -> str:
    """Module name of ``base`` (one of :data:`KIND_MODULES`) for PE kind ``pe``: the plain
    name for a dialect kind (the configuration's), ``<base>_<kind>`` otherwise."""
    if base not in KIND_MODULES:
        raise ValueError(f"module: {base!r} is not per PE kind (one of {KIND_MODULES})")
    return base if pe.has_dialects else f"{base}_{pe.value}"


def frontend_module(pe: PEKind) -> str:
    """Module name of the activation quantizer (one frontend lane) of PE kind ``pe``: the
    dialect kind's :class:`~rtl.block_quantizer.BlockQuantizer` with the SPEC §6 residual path
    (``block_quantizer_residual``, the GEMM core's lane), ``nvfp4_quantizer``
    (:class:`~rtl.nvfp4_quantizer.NVFP4Quantizer`) for the tensor-scaled NVFP4 kind,
    ``mx_quantizer_<kind>`` (:class:`~rtl.mx_quantizer.MXQuantizer`) for an MX kind."""
    if pe.has_dialects:
        return "block_quantizer_residual"
    return f"{pe.value}_quantizer" if pe.has_tensor_scale else f"mx_quantizer_{pe.value}"


def components(
    cfg: Config, *, max_m: int = DEFAULT_MAX_M, max_n: int = DEFAULT_MAX_N,
    max_kb: int = DEFAULT_MAX_KB,
) -> dict[str, Callable[[], wiring.Component]]:
    """Module name → constructor of every component :func:`generate` emits (top first);
    ``block_rotator`` only when ``cfg`` rotates."""
    book = cfg.book()
    pipe = Pipeline.of(cfg)
    stages = cfg.selector_stages
    kind = ElementKind.for_config(PEKind.DIALECT, cfg)
    per_kind: dict[str, Callable[[], wiring.Component]] = {}
    for pe in PEKind:
        k = ElementKind.for_config(pe, cfg)
        per_kind[kind_module("pe", pe)] = lambda k=k: BlockPE(k, pipeline=pipe)
        per_kind[kind_module("pe_core", pe)] = lambda k=k: BlockPE(k, decode=False,
                                                                   pipeline=pipe)
        per_kind[kind_module("block_decoder", pe)] = lambda k=k: BlockDecoder(k)
        if pe.has_tensor_scale:
            per_kind[frontend_module(pe)] = NVFP4Quantizer
        elif not pe.has_dialects:
            per_kind[frontend_module(pe)] = lambda k=k: MXQuantizer(k)
    rotation = cfg.rotation()
    rotator: dict[str, Callable[[], wiring.Component]] = {} if rotation is None else {
        # one frontend lane's rotator, as the GEMM core instantiates it (rtl.gemm_core)
        "block_rotator": lambda: BlockRotator(cfg.block, rotation, None,
                                              stages=pipe.rotator_stages, side=book.size + 1),
    }
    return {
        "gemm_core": lambda: GemmCore.from_config(cfg, max_m=max_m, max_n=max_n, max_kb=max_kb),
        **rotator,
        "block_quantizer": lambda: BlockQuantizer.from_config(cfg),
        "block_quantizer_residual": lambda: BlockQuantizer(
            cfg.block, book, cfg.select, cfg.formats_per_cycle, residual=True, stages=stages),
        "block_preprocessor": lambda: BlockPreprocessor(cfg.block),
        "format_selector": lambda: FormatSelector(cfg.block, book, cfg.select,
                                                  cfg.formats_per_cycle, stages=stages),
        "code_quantizer": lambda: CodeQuantizer(cfg.block, book),
        "dialect_decoder": lambda: DialectDecoder(book),
        **per_kind,
        "mac_array": lambda: MACArray(cfg.rows, cfg.cols, kind, pipeline=pipe),
        "act_buffer": lambda: ActivationBuffer(cfg.rows, kind.encoded_layout, max_kb, cfg.lanes),
        "tile_drain": lambda: TileDrain(cfg.rows, cfg.tile_cols, cfg.drain_width),
        # the tile drain's parts: its beat sequencer, and one of its drain_width lanes (the
        # rows·cols·d / drain_width results a lane emits, with their multiplexer)
        "tile_drain_control": lambda: DrainControl(cfg.rows, cfg.tile_cols, cfg.drain_width),
        "tile_drain_lane": lambda: DrainLane(cfg.rows * cfg.tile_cols // cfg.drain_width),
        # one lane of the GEMM core's output adder (y + yin, the decomposition's second pass;
        # every y beat passes it), with the core's addend_stages registers
        "addend_adder": lambda: AddendAdder(1, cfg.addend_stages),
        # one lane of the NVFP4 array's tensor-scale multiply y = RNE(acc · RNE(ts_a·ts_w))
        # (SPEC §8), one per drain lane, pipelined to TENSOR_SCALE_STAGES registers
        "tensor_scale_mul": lambda: FP32Mul(latency=TENSOR_SCALE_STAGES),
    }
