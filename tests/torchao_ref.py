"""Pure-torch reference for the MXFP4 and NVFP4 baselines (SPEC §8), computed by torchao 0.18.

Imported only by the ``oracle`` tests. It calls torchao on CPU and unpacks its packed FP4
nibbles into the project's canonical layout: one uint8 code per element, in the input's shape,
bit 3 = sign, bits 2:0 = E2M1 magnitude index into ``E2M1_MAGNITUDES``.

torchao facts this module relies on (read from the installed 0.18.0 source):

* ``to_mx`` / ``nvfp4_quantize`` accept float32 or bfloat16 only (float16 is rejected), so the
  FP16 input is widened exactly to float32 before the call.
* ``pack_uint4`` stores element 2i in bits 3:0 and element 2i+1 in bits 7:4 of byte i, along the
  flattened last axis (the same nibble order as SPEC §1); ``unpack_nibbles`` inverts it.
* The FP4 codes are E2M1 encodings (bit 3 sign, bits 2:0 = exponent/mantissa), whose magnitude
  order equals the index order of ``E2M1_MAGNITUDES``.

torch and torchao are imported lazily, so that collecting the tests without them (``make test``
deselects the oracle marker but still imports the test module) does not fail; calling a reference
function without them raises ``ImportError`` naming the packages ``make test-oracle`` installs.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple

import numpy as np

MXFP4_BLOCK = 32
NVFP4_BLOCK = 16
E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
REQUIRED = "torch==2.13.0 torchao==0.18.0"


class NVFP4Ref(NamedTuple):
    """torchao's NVFP4 result in the golden model's layout."""

    codes: np.ndarray  # uint8, input shape, one 4-bit code per element
    scale: np.ndarray  # uint8 E4M3 bits, shape (rows, K / 16)
    tensor_scale: np.float32  # per-tensor scale amax / (448 * 6)
    dequant: np.ndarray  # float32, input shape


def _import(name: str) -> ModuleType:
    """Import ``name``, turning a missing package into an actionable ``ImportError``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # pragma: no cover - exercised only on a broken install
        raise ImportError(
            f"the torchao oracle needs {REQUIRED} (`make test-oracle` installs them via the "
            f"'oracle' extra); importing {name!r} failed: {exc}"
        ) from exc


def torch_modules() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """Return ``(torch, mx_tensor, nvfp4_tensor, config)`` modules, checking the versions.

    Raises:
        ImportError: torch or torchao is missing, or not the version the oracle is pinned to.
    """
    torch = _import("torch")
    torchao = _import("torchao")
    torch_version = torch.__version__.split("+")[0]
    if (torch_version, torchao.__version__) != ("2.13.0", "0.18.0"):
        raise ImportError(
            f"the torchao oracle is pinned to {REQUIRED}, found torch=={torch.__version__} "
            f"torchao=={torchao.__version__}"
        )
    return (
        torch,
        _import("torchao.prototype.mx_formats.mx_tensor"),
        _import("torchao.prototype.mx_formats.nvfp4_tensor"),
        _import("torchao.prototype.mx_formats.config"),
    )


def _as_fp16(x: np.ndarray, block: int) -> np.ndarray:
    """Check that ``x`` is a float16 array whose last axis is a positive multiple of ``block``."""
    x = np.asarray(x)
    if x.dtype != np.float16:
        raise TypeError(f"the reference takes float16 input, got {x.dtype}")
    if x.ndim == 0 or x.shape[-1] == 0 or x.shape[-1] % block:
        raise ValueError(f"last axis of shape {x.shape} must be a positive multiple of {block}")
    if not np.isfinite(x).all():
        raise ValueError("the reference takes finite input only")
    return x


def _to_torch_f32(x16: np.ndarray):  # -> torch.Tensor (torch is imported lazily)
    """Widen FP16 to a contiguous float32 tensor (exact), the dtype torchao accepts."""
    torch = torch_modules()[0]
    return torch.from_numpy(np.ascontiguousarray(x16.astype(np.float32)))


def unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """Split torchao's packed bytes (..., K/2) into one code per element (..., K).

    Byte i holds element 2i in bits 3:0 and element 2i+1 in bits 7:4.
    """
    packed = np.asarray(packed, dtype=np.uint8)
    codes = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), dtype=np.uint8)
    codes[..., 0::2] = packed & 0x0F
    codes[..., 1::2] = packed >> 4
    return codes


def _mxfp4_tensor(x_fp16: np.ndarray):  # -> MXTensor
    """Quantize with ``MXTensor.to_mx(x, torch.float4_e2m1fn_x2, 32)`` in FLOOR mode."""
    torch, mx_tensor, _, config = torch_modules()
    x16 = _as_fp16(x_fp16, MXFP4_BLOCK)
    return mx_tensor.MXTensor.to_mx(
        _to_torch_f32(x16),
        torch.float4_e2m1fn_x2,
        MXFP4_BLOCK,
        scaling_mode=config.ScaleCalculationMode.FLOOR,
    )


def ref_mxfp4(x_fp16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MXFP4 codes and E8M0 scale bytes of ``x_fp16`` as torchao 0.18 computes them.

    Args:
        x_fp16: float16 array of any rank; the last axis is split into blocks of 32.

    Returns:
        ``(codes, scale)``: ``codes`` uint8 of ``x_fp16.shape`` (bit 3 sign, bits 2:0 E2M1
        magnitude index); ``scale`` uint8 biased E8M0 exponents of shape
        ``x_fp16.shape[:-1] + (K / 32,)``.
    """
    mx = _mxfp4_tensor(x_fp16)
    torch = torch_modules()[0]
    codes = unpack_nibbles(mx.qdata.view(torch.uint8).numpy())
    scale = mx.scale.view(torch.uint8).numpy().copy()
    return codes, scale


def ref_mxfp4_dequant(x_fp16: np.ndarray) -> np.ndarray:
    """torchao's ``MXTensor.dequantize(torch.float32)`` of the MXFP4 quantization of ``x_fp16``."""
    torch = torch_modules()[0]
    return _mxfp4_tensor(x_fp16).dequantize(torch.float32).numpy().copy()


def ref_nvfp4(x_fp16_2d: np.ndarray) -> NVFP4Ref:
    """NVFP4 quantization of a 2-D tensor as torchao 0.18 computes it on CPU.

    Calls ``NVFP4Tensor.to_nvfp4(x, per_tensor_scale=per_tensor_amax_to_scale(amax))`` with
    ``amax = max|x|`` over the whole tensor, then ``dequantize()``.

    Args:
        x_fp16_2d: float16 array of shape (rows, K), K a multiple of 16.

    Returns:
        ``NVFP4Ref(codes, scale, tensor_scale, dequant)``: codes uint8 of the input shape,
        scale uint8 E4M3 bit patterns of shape (rows, K / 16), tensor_scale float32, dequant
        float32 of the input shape. An all-zero tensor gives NaN scales and dequant in torchao.
    """
    torch, _, nvfp4_tensor, _ = torch_modules()
    x16 = _as_fp16(x_fp16_2d, NVFP4_BLOCK)
    if x16.ndim != 2:
        raise ValueError(f"the NVFP4 reference takes a 2-D tensor, got shape {x16.shape}")
    x32 = _to_torch_f32(x16)
    amax = torch.max(torch.abs(x32))
    nv = nvfp4_tensor.NVFP4Tensor.to_nvfp4(
        x32, per_tensor_scale=nvfp4_tensor.per_tensor_amax_to_scale(amax)
    )
    return NVFP4Ref(
        codes=unpack_nibbles(nv.qdata.view(torch.uint8).numpy()),
        scale=nv.scale.view(torch.uint8).numpy().copy(),
        tensor_scale=np.float32(nv.per_tensor_scale.item()),
        dequant=nv.dequantize(torch.float32).numpy().copy(),
    )
