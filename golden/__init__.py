"""semdialect golden model: the executable definition of the numbers (``docs/SPEC.md``).

Public API::

    quantize(x, fmt, select=, block=, formatbook=, pad=, candidates=) -> QTensor
    quantize_weights(w, fmt, ...) -> QTensor of Wᵀ
    gemm(x, w, fmt, select=, block=, pad=, out=) -> float32 Y
    gemm_quantized(qx, qw, out=)
    get_formatbook / load_formatbook / build_luts / pack_nibbles / unpack_nibbles
"""

from .formatbook import Formatbook, dfp4, get_formatbook, load_formatbook, sd32
from .formats import FORMAT_NAMES, resolve_format
from .gemm import gemm, gemm_quantized
from .luts import Luts, build_luts, two_stage_tables
from .metrics import mse, sqnr_db
from .packing import pack_nibbles, unpack_nibbles
from .quantize import QTensor, quantize, quantize_weights

__all__ = [
    "FORMAT_NAMES",
    "Formatbook",
    "Luts",
    "QTensor",
    "build_luts",
    "dfp4",
    "gemm",
    "gemm_quantized",
    "get_formatbook",
    "load_formatbook",
    "mse",
    "pack_nibbles",
    "quantize",
    "quantize_weights",
    "resolve_format",
    "sd32",
    "sqnr_db",
    "two_stage_tables",
    "unpack_nibbles",
]
