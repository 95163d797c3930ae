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
    # SPEC §11: block Hadamard rotation (quantize/quantize_weights/gemm take rotate=)
    Rotation(block, seed) / RotatedFormat(inner, rotation, role)
    FlushWarning                       (non-zero blocks flushed to zero, SPEC §2)

    # SPEC §6: attention-guided activation decomposition
    decomposed_linear(x, w, fmt, attn=|salient=, rho=, ...) -> DecomposedLinear
        .y, .salient, .qx, .qr, .parts (DecomposedParts: main, residual, salient, combine())
    saliency(attn) / salient_tokens(attn, rho) / residual(x16, q)

    # SPEC §7: SeDA
    seda_groups(attn, layout=, tau=) -> SedaGroups
    seda_quantize(x, groups, fmt, block=) -> SedaResult (.q, .variant, .candidates, ...)

    # SPEC §6: ERR-sum saliency (the selector's own minimum block cost per token)
    err_saliency(x, fmt, block=) / err_salient_tokens(x, rho, fmt) / top_rows(scores, rho)

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
from .rotated import RotatedFormat
from .rotation import Rotation
from .seda import SedaGroups, SedaResult, seda_groups, seda_quantize
from .selector_saliency import err_saliency, err_salient_tokens, top_rows

__all__ = [
    "FORMAT_NAMES",
    "DecomposedLinear",
    "DecomposedParts",
    "FlushWarning",
    "Formatbook",
    "Luts",
    "QTensor",
    "RotatedFormat",
    "Rotation",
    "SedaGroups",
    "SedaResult",
    "build_luts",
    "decompose",
    "decomposed_linear",
    "dfp4",
    "err_saliency",
    "err_salient_tokens",
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
    "top_rows",
    "two_stage_tables",
    "unpack_nibbles",
]
