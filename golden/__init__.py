"""semdialect golden model: the executable definition of the numbers (``docs/SPEC.md``).

Public API::

    quantize(x, fmt, select=, block=, formatbook=, pad=, candidates=) -> QTensor
    quantize_weights(w, fmt, ...) -> QTensor of Wᵀ
    gemm(x, w, fmt, select=, block=, pad=, out=) -> float32 Y
    gemm_quantized(qx, qw, out=)
    nvfp4_hw_gemm(x, w, pad=, out=) / nvfp4_hw_gemm_quantized(qx, qw, out=)
    nvfp4_hw_accumulate(qx, qw)        (its accumulators before the tensor scales: a PE's sum)
                                       (NVFP4 hardware GEMM contract, SPEC §8 [ours])
    get_formatbook / load_formatbook / build_luts / pack_nibbles / unpack_nibbles
    FlushWarning                       (non-zero blocks flushed to zero, SPEC §2)

    # SPEC §6: attention-guided activation decomposition
    decomposed_linear(x, w, fmt, attn=|salient=, rho=, ...) -> DecomposedLinear
        .y, .salient, .qx, .qr, .parts (DecomposedParts: main, residual, salient, combine())
    saliency(attn) / salient_tokens(attn, rho) / residual(x16, q)

    # SPEC §7: SeDA
    seda_groups(attn, layout=, tau=) -> SedaGroups
    seda_quantize(x, groups, fmt, block=) -> SedaResult (.q, .variant, .candidates, ...)

The modules themselves are ``semdialect.golden.decompose`` and ``semdialect.golden.seda``.
"""

from . import decompose, seda
from .decompose import (
    DecomposedLinear,
    DecomposedParts,
    decomposed_linear,
    residual,
    saliency,
    salient_tokens,
)
from .formatbook import Formatbook, dfp4, get_formatbook, load_formatbook, sd32
from .formats import FORMAT_NAMES, resolve_format
from .gemm import (
    gemm,
    gemm_quantized,
    nvfp4_hw_accumulate,
    nvfp4_hw_gemm,
    nvfp4_hw_gemm_quantized,
)
from .luts import Luts, build_luts, two_stage_tables
from .metrics import mse, sqnr_db
from .packing import pack_nibbles, unpack_nibbles
from .quantize import FlushWarning, QTensor, quantize, quantize_weights
from .seda import SedaGroups, SedaResult, seda_groups, seda_quantize

__all__ = [
    "FORMAT_NAMES",
    "DecomposedLinear",
    "DecomposedParts",
    "FlushWarning",
    "Formatbook",
    "Luts",
    "QTensor",
    "SedaGroups",
    "SedaResult",
    "build_luts",
    "decompose",
    "decomposed_linear",
    "dfp4",
    "gemm",
    "gemm_quantized",
    "get_formatbook",
    "load_formatbook",
    "mse",
    "nvfp4_hw_accumulate",
    "nvfp4_hw_gemm",
    "nvfp4_hw_gemm_quantized",
    "pack_nibbles",
    "quantize",
    "quantize_weights",
    "residual",
    "resolve_format",
    "saliency",
    "salient_tokens",
    "sd32",
    "seda",
    "seda_groups",
    "seda_quantize",
    "sqnr_db",
    "two_stage_tables",
    "unpack_nibbles",
]
