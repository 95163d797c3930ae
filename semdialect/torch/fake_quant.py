"""One-call fake quantization of a PyTorch model in any golden format (issue 14).

:func:`fake_quantize_` is the torchao-style entry point (``torchao.quantization.quantize_``
swaps Linear weights in place and takes a ``filter_fn(module, fqn)``): in place, every selected
``nn.Linear`` becomes a :class:`FakeQuantLinear` whose weights are quantized once and whose
input activations are quantized on every call; with ``matmuls=True`` the attention matmuls
(Q·Kᵀ and P·V) are fake-quantized too. It returns a :class:`FakeQuantSummary` (torchao returns
nothing); :func:`remove_fake_quant_` undoes it (torchao has no undo).

What is bit-exact and what is not:

* The quantize/dequantize step is the NumPy golden model's (``docs/SPEC.md`` §1–4, §6, §8,
  §11): the same codes and the same FP32 dequantized values as ``golden.quantize`` (activation
  role: the configuration's ``select``) and ``golden.quantize_weights`` (weights: ``lut`` over
  the whole formatbook, SPEC §4; weight role of a rotation, SPEC §11), computed by the
  vectorised torch kernels of :mod:`semdialect.torch.kernels`. Decomposition (SPEC §6) runs
  the golden functions on NumPy copies (``residual``, ``residual_format``, ``salient_tokens``,
  ``err_saliency_quantized``/``top_rows``).
* The matmul is NOT SPEC §5's integer block GEMM: it is torch's float32 ``F.linear`` /
  ``torch.matmul`` of the dequantized FP32 operands (``x̂ · ŵᵀ``, then ``+ bias`` in FP32), so
  outputs agree with ``golden.gemm`` to float32 rounding, not bit for bit. With rotation the
  product is taken in the input basis (the dequantized values map back through the inverse
  rotation), which equals the rotated-basis product up to that rounding.

Autograd: none through the quantizer (the dequantized values are constants; this is
post-training fake quantization for evaluation, not QAT with a straight-through estimator).

Rows and scopes [ours]: every index of an input's leading dimensions is a row (SPEC §2); one
forward call quantizes the layer's whole input at once, so NVFP4's tensor scale spans the
call's input (one sequence per call in :mod:`semdialect.torch.minilm`, as in ``semdialect
eval``). Decomposition selects salient rows per SEQUENCE: the input's second-to-last axis is
the token axis, every index of the dimensions before it is one sequence.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear
from torch.overrides import TorchFunctionMode

from semdialect.golden.blocks import to_fp16
from semdialect.golden.decompose import (
    as_fraction,
    check_attention,
    residual,
    residual_format,
    salient_tokens,
)
from semdialect.golden.formatbook import Formatbook
from semdialect.golden.formats import BlockFormat, DialectFormat
from semdialect.golden.gemm import operand_formats
from semdialect.golden.metrics import sqnr_db
from semdialect.golden.quantize import quantize
from semdialect.golden.rotated import RotatedFormat, base_format
from semdialect.golden.rotation import Rotation
from semdialect.golden.selector_saliency import err_saliency_quantized, top_rows
from semdialect.torch.kernels import quantize_tensor, quantize_weight_tensor

__all__ = [
    "SUPPORTED_WEIGHT_DTYPES",
    "FakeQuantConfig",
    "FakeQuantLinear",
    "FakeQuantSummary",
    "ReplacedLayer",
    "SkippedModule",
    "fake_quantize_",
    "remove_fake_quant_",
]

#: weight dtypes a layer may have (rounded once to FP16 by the quantizer, SPEC §2)
SUPPORTED_WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
#: salient-row rules of decomposition (SPEC §6): attention received, or the ERR sum
SALIENCY_RULES = ("attention", "err")
#: attribute of the root module holding the installed state (hooks, config)
_STATE_ATTR = "_semdialect_fake_quant"

#: ``attention(fqn, module) -> (heads, N, N) or (sequences, heads, N, N) map, or None``
AttentionProvider = Callable[[str, nn.Module], "torch.Tensor | None"]


# ------------------------------------------------------------------------ quantize step
_SUSPEND = threading.local()


@contextlib.contextmanager
def _suspended() -> Iterator[None]:
    """Torch ops run inside (the quantizer's own) are never intercepted as model matmuls."""
    _SUSPEND.depth = getattr(_SUSPEND, "depth", 0) + 1
    try:
        yield
    finally:
        _SUSPEND.depth -= 1


def _numpy(x: torch.Tensor) -> np.ndarray:
    """A NumPy copy of a float tensor (bfloat16 widened to float32, exactly)."""
    x = x.detach()
    if x.dtype == torch.bfloat16:
        x = x.float()
    return x.cpu().numpy()


def _dequant_act(x: torch.Tensor, fmt: BlockFormat, block: int, pad: bool,
                 name: str) -> torch.Tensor:
    """Golden ``quantize(x, fmt).dequant`` (float32, x's shape) by the torch kernels, on x's
    device (the kernels run on CPU)."""
    return quantize_tensor(x.detach().cpu(), fmt, block=block, pad=pad,
                           name=name).dequant.to(x.device)


def _quantize_weight(w: torch.Tensor, fmt: BlockFormat, block: int, pad: bool,
                     name: str) -> dict[str, Any]:
    """Golden ``quantize_weights(w.T, fmt)`` of an (out, in) weight by the torch kernels:
    dequant (out, in) float32, codes (out, in) uint8 and the block metadata that exists, as
    tensors on w's device."""
    q = quantize_weight_tensor(w.detach().cpu(), fmt, block=block, pad=pad, name=name)
    out: dict[str, Any] = {"bits_per_element": float(q.bits_per_element)}
    for key in ("dequant", "codes", "se", "dialect", "scale"):
        val = getattr(q, key)
        out[key] = None if val is None else val.to(w.device)
    out["tensor_scale"] = None if q.tensor_scale is None else float(q.tensor_scale)
    return out


# ------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class FakeQuantConfig:
    """Everything :func:`fake_quantize_` parsed before touching the model.

    Attributes:
        act_format: golden format of the activations (``select``; rotation's activation role).
        weight_format: golden format of the weights (``lut`` over the whole formatbook for the
            dialect formats, SPEC §4; rotation's weight role, SPEC §11).
        second_format: format of a run-time second operand (Kᵀ, V; SPEC §6a): the activation
            selection, the rotation's weight role.
        block: B, elements per block along the reduction axis.
        rho: salient fraction ρ (exact); 0 = no decomposition.
        saliency: ``attention`` or ``err`` (SPEC §6).
        pad: zero-pad a reduction length that is not a multiple of B (SPEC §2).
    """

    act_format: BlockFormat
    weight_format: BlockFormat
    second_format: BlockFormat
    block: int
    rho: Fraction
    saliency: str
    pad: bool

    @property
    def decompose(self) -> bool:
        """Activation decomposition is on (ρ > 0)."""
        return self.rho > 0

    @property
    def name(self) -> str:
        """The activation format's name with its selection, e.g. ``sd32 lut``."""
        inner = base_format(self.act_format)
        sel = f" {inner.select}" if isinstance(inner, DialectFormat) else ""
        return f"{self.act_format.name}{sel}"


def _parse(fmt: Any, select: str | None, block: int | None, formatbook: Any, rotate: Any,
           rotate_seed: int, rho: Any, saliency: str, pad: bool) -> FakeQuantConfig:
    """Arguments → :class:`FakeQuantConfig` (every ``ValueError`` names its parameter)."""
    fx, fw = operand_formats(fmt, select, formatbook, block, rotate, rotate_seed)
    b = fx.block_size(block)
    inner = base_format(fx)
    if isinstance(fx, RotatedFormat):
        second: BlockFormat = RotatedFormat(inner, fx.rotation, "weight")
    else:
        second = fx
    frac = as_fraction(rho, "rho")
    if saliency not in SALIENCY_RULES:
        raise ValueError(f"saliency: one of {', '.join(SALIENCY_RULES)}, got {saliency!r}")
    if frac > 0 and saliency == "err" and not (
            isinstance(inner, DialectFormat) and inner.select == "lut"):
        raise ValueError(f"saliency: 'err' needs a dialect format with lut selection (the "
                         f"selector's costs), not {fx.name}")
    if not isinstance(pad, bool):
        raise ValueError(f"pad: expected True or False, got {pad!r}")
    return FakeQuantConfig(fx, fw, second, b, frac, saliency, pad)


# ---------------------------------------------------------------------------- the layer
class FakeQuantLinear(nn.Module):
    """An ``nn.Linear`` whose weight is quantized once and whose input is quantized per call.

    ``y = F.linear(x̂, ŵ) + b`` in float32, cast back to x's dtype: ``x̂`` the golden dequant of
    x (activation role), ``ŵ`` = :attr:`weight` the golden dequant of the weight, ``b`` the
    original bias in float32. The matmul is torch's float32, not SPEC §5's integer GEMM. With
    decomposition (ρ > 0) the salient rows' quantized residual r̂ (SPEC §6) is a second float32
    product added to those rows before the bias, as golden's two accumulations.

    Buffers (state_dict): ``weight`` (out, in) float32 dequantized weight; ``weight_codes``
    uint8 codes (SPEC §1; in the rotated basis if rotated); ``weight_se`` / ``weight_dialect``
    / ``weight_scale`` block metadata where the format has it. ``bias`` stays the original
    Parameter. The original module is kept (unregistered) for :func:`remove_fake_quant_`.
    """

    def __init__(self, linear: nn.Linear, fqn: str, config: FakeQuantConfig,
                 staged: dict[str, Any], attention: AttentionProvider | None) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.fqn = fqn
        self.config = config
        self.attention = attention
        self.bias = linear.bias
        self.weight_bits = staged["bits_per_element"]
        self.weight_tensor_scale = staged["tensor_scale"]
        self.register_buffer("weight", staged["dequant"].float())
        self.register_buffer("weight_codes", staged["codes"])
        for key in ("se", "dialect", "scale"):
            self.register_buffer(f"weight_{key}", staged[key])
        object.__setattr__(self, "_original", linear)  # not a submodule: no state_dict entries

    @property
    def original(self) -> nn.Linear:
        """The nn.Linear this layer replaced (unchanged)."""
        return self._original

    def extra_repr(self) -> str:
        c = self.config
        dec = f", rho={c.rho}, saliency={c.saliency}" if c.decompose else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, fmt={c.name}, block={c.block}{dec}")

    def quantize_input(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(x̂, salient, r̂): the golden dequant of x as float32 (x's shape), and with
        decomposition the flat row indices (C order over x's leading dims, int64) of the
        salient rows and their quantized residual (n_S, in) float32 (else None, None)."""
        c = self.config
        name = f"X of {self.fqn}"
        if not c.decompose:
            return _dequant_act(x, c.act_format, c.block, c.pad, name), None, None
        k = x.shape[-1]
        n_tok = x.shape[-2] if x.dim() >= 2 else 1
        x16 = to_fp16(_numpy(x).reshape(-1, k), name, c.block)
        q = quantize(x16, c.act_format, block=c.block, pad=c.pad, name=name)
        n_seq = x16.shape[0] // n_tok
        maps = self._maps(n_seq, n_tok) if c.saliency == "attention" else None
        picked = []
        for s in range(n_seq):
            rows = np.arange(s * n_tok, (s + 1) * n_tok)
            if maps is None:
                scores = err_saliency_quantized(x16[rows], q.take_rows(rows), name=name)
                sal = top_rows(scores, c.rho)
            else:
                sal = salient_tokens(check_attention(maps[s], n_tok), c.rho)
            picked.append(rows[sal])
        flat = np.concatenate(picked).astype(np.int64)
        deq = torch.from_numpy(q.dequant.reshape(x.shape)).to(x.device)
        if flat.size == 0:
            return deq, None, None
        r = residual(x16[flat], q.take_rows(flat))
        qr = quantize(r, residual_format(q, c.act_format), block=c.block, pad=c.pad,
                      name=f"residual of {name}")
        r_deq = np.ascontiguousarray(qr.dequant[..., :k])
        return deq, torch.from_numpy(flat).to(x.device), torch.from_numpy(r_deq).to(x.device)

    def _maps(self, n_seq: int, n_tok: int) -> np.ndarray:
        """This call's attention maps, (sequences, heads, N, N) float64."""
        if self.attention is None:
            raise ValueError(f"attention: {self.fqn}: decomposition with saliency='attention' "
                             f"needs an attention provider")
        a = self.attention(self.fqn, self)
        if a is None:
            raise ValueError(f"attention: the provider returned no map for {self.fqn}")
        a = torch.as_tensor(a).detach().double().cpu().numpy()
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[0] != n_seq or a.shape[2:] != (n_tok, n_tok):
            raise ValueError(f"attention: {self.fqn} has {n_seq} sequence(s) of {n_tok} tokens "
                             f"but the map has shape {a.shape} (expected (heads, N, N) or "
                             f"(sequences, heads, N, N))")
        return a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(x):
            raise ValueError(f"X of {self.fqn}: expected a floating-point input, got {x.dtype}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"X of {self.fqn}: last dimension must be in_features = "
                             f"{self.in_features}, got shape {tuple(x.shape)}")
        with _suspended():
            xq, rows, r = self.quantize_input(x)
            y = F.linear(xq, self.weight)
            if rows is not None:
                flat = y.reshape(-1, self.out_features)
                flat[rows] = flat[rows] + F.linear(r, self.weight)
            if self.bias is not None:
                y = y + self.bias.float()
        return y.to(x.dtype)


# ---------------------------------------------------------------------- attention matmuls
class _MatmulMode(TorchFunctionMode):
    """Intercepts ``torch.matmul``, ``Tensor.matmul``, the ``@`` operator, ``torch.bmm`` /
    ``Tensor.bmm`` (both operands floating point with at least 2 dims) and
    ``F.scaled_dot_product_attention`` while the model's forward runs; everything else (and
    anything the quantizer runs) passes through unchanged."""

    MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
               torch.Tensor.bmm)

    def __init__(self, state: _RootState) -> None:
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if getattr(_SUSPEND, "depth", 0) == 0:
            if func in self.MATMULS and len(args) == 2 and not kwargs and all(
                    isinstance(a, torch.Tensor) and a.dim() >= 2 and torch.is_floating_point(a)
                    for a in args):
                return self.state.matmul(getattr(func, "__name__", "matmul"), *args)
            if func is F.scaled_dot_product_attention:
                return self.state.sdpa(*args, **kwargs)
        return func(*args, **kwargs)


class _RootState:
    """The root module's fake-quantized matmuls: hooks, the mode and per-op call counts."""

    def __init__(self, config: FakeQuantConfig) -> None:
        self.config = config
        self.calls: Counter[str] = Counter()
        self.depth = 0
        self.mode: _MatmulMode | None = None
        self.handles: list[Any] = []

    def enter(self, *_: Any) -> None:
        self.depth += 1
        if self.depth == 1:
            self.mode = _MatmulMode(self)
            self.mode.__enter__()

    def exit(self, *_: Any) -> None:
        self.depth -= 1
        if self.depth == 0 and self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.mode = None

    def _check_k(self, op: str, k: int) -> None:
        b = self.config.block
        if k % b and not self.config.pad:
            raise ValueError(f"matmuls: {op} reduces over {k} elements, not a multiple of the "
                             f"block size B = {b} (pass pad=True to zero-pad the last block)")

    def matmul(self, op: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """â · b̂ in float32: a's rows blocked along k (activation role); b blocked along k per
        output column, i.e. bᵀ's rows (SPEC §6a: Kᵀ's columns are K's rows; for P·V, Vᵀ's
        rows), with the activation selection and the rotation's weight role."""
        c = self.config
        self._check_k(op, a.shape[-1])
        with _suspended():
            self.calls[op] += 1
            aq = _dequant_act(a, c.act_format, c.block, c.pad, f"{op} operand 1")
            bq = _dequant_act(b.transpose(-1, -2), c.second_format, c.block, c.pad,
                              f"{op} operand 2 (transposed: rows are output columns)")
            out = torch.matmul(aq, bq.transpose(-1, -2))
        return out.to(torch.result_type(a, b))

    def sdpa(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
             is_causal: bool = False, scale: float | None = None,
             enable_gqa: bool = False) -> torch.Tensor:
        """``F.scaled_dot_product_attention`` with both matmuls fake-quantized: softmax(Q̂·K̂ᵀ ·
        scale + mask) in float32, then P̂·V̂ (:meth:`matmul`)."""
        if dropout_p:
            raise ValueError("matmuls: scaled_dot_product_attention with dropout_p > 0 is not "
                             "supported (fake quantization is for evaluation)")
        if enable_gqa and key.shape[-3] != query.shape[-3]:
            rep = query.shape[-3] // key.shape[-3]
            key = key.repeat_interleave(rep, dim=-3)
            value = value.repeat_interleave(rep, dim=-3)
        s = self.matmul("sdpa Q·Kᵀ", query, key.transpose(-1, -2)).float()
        s = s * (1.0 / math.sqrt(query.shape[-1]) if scale is None else scale)
        n_q, n_k = query.shape[-2], key.shape[-2]
        if is_causal:
            keep = torch.ones(n_q, n_k, dtype=torch.bool, device=s.device).tril()
            s = s.masked_fill(~keep, float("-inf"))
        if attn_mask is not None:
            s = (s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool
                 else s + attn_mask.float())
        p = torch.softmax(s, dim=-1)
        return self.matmul("sdpa P·V", p, value.float()).to(query.dtype)


# ------------------------------------------------------------------------------ summary
@dataclass(frozen=True)
class ReplacedLayer:
    """One replaced nn.Linear.

    Attributes:
        fqn: qualified module name; shape: (out_features, in_features);
        dtype: the original weight dtype; fmt: activation format (weights: same book, lut);
        weight_bits, act_bits: storage bits per element including block metadata;
        weight_sqnr_db: SQNR of the dequantized weight against the original, dB.
    """

    fqn: str
    shape: tuple[int, int]
    dtype: str
    fmt: str
    weight_bits: float
    act_bits: float
    weight_sqnr_db: float


@dataclass(frozen=True)
class SkippedModule:
    """A linear-like module left as it was, and why."""

    fqn: str
    reason: str


@dataclass
class FakeQuantSummary:
    """What :func:`fake_quantize_` did.

    Attributes:
        config: the parsed configuration; replaced: every replaced layer, in module order;
        skipped: linear modules left unchanged with the reason; matmuls: attention matmuls
        are fake-quantized too; matmul_calls: live count of
        intercepted matmuls by op (grows as the model runs).
    """

    config: FakeQuantConfig
    replaced: tuple[ReplacedLayer, ...]
    skipped: tuple[SkippedModule, ...]
    matmuls: bool
    matmul_calls: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        """Number of replaced layers."""
        return len(self.replaced)

    def __str__(self) -> str:
        c = self.config
        head = (f"fake_quantize_: {self.count} nn.Linear replaced, format {c.name}, B = "
                f"{c.block}" + (f", decomposition rho = {c.rho} ({c.saliency})"
                                if c.decompose else "")
                + (", attention matmuls fake-quantized" if self.matmuls else ""))
        note = ("quantize step bit-exact with the golden model (torch kernels); matmuls in "
                "torch float32, not the SPEC §5 integer GEMM")
        w = max([len("layer")] + [len(r.fqn) for r in self.replaced])
        lines = [head, note, f"{'layer':<{w}}  {'out x in':>11}  {'dtype':<8}  {'W bits':>6}  "
                             f"{'X bits':>6}  {'W SQNR dB':>9}"]
        for r in self.replaced:
            shape = f"{r.shape[0]}x{r.shape[1]}"
            lines.append(f"{r.fqn:<{w}}  {shape:>11}  {r.dtype:<8}  {r.weight_bits:>6.3f}  "
                         f"{r.act_bits:>6.3f}  {r.weight_sqnr_db:>9.2f}")
        for s in self.skipped:
            lines.append(f"not replaced: {s.fqn}: {s.reason}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the call
def _locations(model: nn.Module) -> dict[int, list[tuple[str, nn.Module, str]]]:
    """id(module) → every (fqn, parent, attribute) it sits at (a shared module has several)."""
    out: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for pname, parent in model.named_modules(remove_duplicate=False):
        for attr, child in parent._modules.items():  # named_children() skips repeats
            if child is None:
                continue
            fqn = f"{pname}.{attr}" if pname else attr
            out.setdefault(id(child), []).append((fqn, parent, attr))
    return out


def _check_weight(fqn: str, lin: nn.Linear, config: FakeQuantConfig) -> None:
    """A target layer's weight must be a plain float tensor with in_features % B == 0."""
    w = lin.weight
    if not isinstance(w, torch.Tensor) or type(w.detach()) is not torch.Tensor:
        raise ValueError(f"{fqn}: weight is a {type(w).__name__} (an already quantized or "
                         f"wrapped tensor), not a plain float tensor")
    if w.dtype not in SUPPORTED_WEIGHT_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in SUPPORTED_WEIGHT_DTYPES)
        raise ValueError(f"{fqn}: unsupported weight dtype {str(w.dtype).removeprefix('torch.')}"
                         f" (supported: {names})")
    if w.is_meta:
        raise ValueError(f"{fqn}: weight is on the meta device (no values to quantize)")
    if tuple(w.shape) != (lin.out_features, lin.in_features):
        raise ValueError(f"{fqn}: weight shape {tuple(w.shape)} is not (out_features, "
                         f"in_features) = ({lin.out_features}, {lin.in_features})")
    if lin.in_features % config.block and not config.pad:
        raise ValueError(f"{fqn}: in_features {lin.in_features} is not a multiple of the block "
                         f"size B = {config.block} (pass pad=True to zero-pad the last block)")
    if lin.bias is not None and not torch.is_floating_point(lin.bias):
        raise ValueError(f"{fqn}: unsupported bias dtype {lin.bias.dtype}")


def fake_quantize_(
    model: nn.Module,
    fmt: str | BlockFormat | Formatbook = "sd32",
    select: str | None = "lut",
    block: int | None = None,
    formatbook: Formatbook | str | None = None,
    rotate: str | Rotation | None = None,
    rotate_seed: int = 0,
    rho: Any = 0.0,
    *,
    saliency: str = "attention",
    attention: AttentionProvider | None = None,
    matmuls: bool = False,
    pad: bool = False,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
) -> FakeQuantSummary:
    """Fake-quantize ``model`` in place: every selected ``nn.Linear`` → :class:`FakeQuantLinear`.

    Args:
        model: the root module (not itself an nn.Linear: a module cannot replace itself).
        fmt: ``sd32``, ``dfp4``, ``mxfp4``, ``mxint8``, ``nvfp4``, ``int4``, … (any golden
            format name), a format object or a :class:`Formatbook`.
        select: activation selection ``lut`` or ``two-stage`` (dialect formats; weights always
            ``lut`` over the whole formatbook, SPEC §4); ``None`` for a baseline's default.
        block: B (None: the format's default — 32, NVFP4 16).
        formatbook: replaces a dialect format's book (name, TOML path or object).
        rotate, rotate_seed: block Hadamard rotation (SPEC §11): X in the activation role,
            W in the weight role.
        rho: salient fraction ρ of decomposition (SPEC §6), a decimal read exactly; 0 = off.
        saliency: ``attention`` (needs ``attention``) or ``err`` (SPEC §6 ERR-sum rule).
        attention: ``attention(fqn, module)`` → the layer's attention probabilities for the
            current input, (heads, N, N) or (sequences, heads, N, N), A[h, i, j] = query i →
            key j; called on every forward of a decomposed layer.
        matmuls: also fake-quantize the attention matmuls run inside ``model.forward``
            (``torch.matmul``/``@``/``torch.bmm``/``F.scaled_dot_product_attention``, see
            :class:`_MatmulMode`); their reduction length must be a multiple of B unless
            ``pad``.
        pad: zero-pad a reduction length that is not a multiple of B (SPEC §2).
        filter_fn: ``filter_fn(module, fqn) -> bool`` chooses among the nn.Linear layers
            (torchao's convention); default: every nn.Linear except nn.MultiheadAttention's
            ``out_proj`` (its forward is never called; torchao skips it too).

    Returns:
        :class:`FakeQuantSummary` (``print`` it for a table).

    Raises:
        ValueError: a bad argument (naming it); no nn.Linear selected; a layer with a
            non-float weight, in_features not a multiple of B without ``pad``, or values the
            quantizer rejects (naming the layer's qualified name). The model is unchanged
            when the call raises: every weight is quantized into a staging dict first.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, nn.Linear):
        raise ValueError("model: the root module is itself an nn.Linear and cannot replace "
                         "itself in place; wrap it, e.g. nn.Sequential(linear)")
    config = _parse(fmt, select, block, formatbook, rotate, rotate_seed, rho, saliency, pad)
    if config.decompose and config.saliency == "attention" and attention is None:
        raise ValueError("attention: rho > 0 with saliency='attention' needs an attention "
                         "provider attention(fqn, module) -> (heads, N, N) map (or use "
                         "saliency='err')")
    if attention is not None and not callable(attention):
        raise ValueError("attention: expected a callable attention(fqn, module)")
    if filter_fn is not None and not callable(filter_fn):
        raise ValueError("filter_fn: expected a callable filter_fn(module, fqn) -> bool")
    if matmuls and getattr(model, _STATE_ATTR, None) is not None:
        raise ValueError("matmuls: this model's matmuls are already fake-quantized; call "
                         "remove_fake_quant_(model) first")

    targets: list[tuple[str, nn.Linear]] = []
    skipped: list[SkippedModule] = []
    for fqn, mod in model.named_modules():
        if isinstance(mod, FakeQuantLinear):
            skipped.append(SkippedModule(fqn, "already fake-quantized"))
        elif not isinstance(mod, nn.Linear):
            continue
        elif filter_fn is not None:
            if filter_fn(mod, fqn):
                targets.append((fqn, mod))
            else:
                skipped.append(SkippedModule(fqn, "excluded by filter_fn"))
        elif isinstance(mod, NonDynamicallyQuantizableLinear):
            skipped.append(SkippedModule(fqn, "nn.MultiheadAttention out_proj (its forward is "
                                              "never called)"))
        else:
            targets.append((fqn, mod))
    if not targets and not matmuls:
        what = "" if not skipped else f" (none selected of {len(skipped)}: {skipped[0].reason})"
        raise ValueError(f"model: {type(model).__name__} has no nn.Linear layer to "
                         f"fake-quantize{what}")
    for fqn, lin in targets:
        _check_weight(fqn, lin, config)

    staged: dict[str, dict[str, Any]] = {}
    rows: list[ReplacedLayer] = []
    for fqn, lin in targets:
        try:
            with _suspended():
                staged[fqn] = _quantize_weight(lin.weight, config.weight_format, config.block,
                                               config.pad, f"W of {fqn}")
        except ValueError as exc:
            raise ValueError(f"{fqn}: {exc}") from exc
        rows.append(ReplacedLayer(
            fqn=fqn, shape=(lin.out_features, lin.in_features),
            dtype=str(lin.weight.dtype).removeprefix("torch."), fmt=config.name,
            weight_bits=staged[fqn]["bits_per_element"],
            act_bits=config.act_format.bits_per_element(config.block),
            weight_sqnr_db=sqnr_db(_numpy(lin.weight), staged[fqn]["dequant"].cpu().numpy()),
        ))

    # swap: nothing below can fail on a validated target
    where = _locations(model)
    for fqn, lin in targets:
        new = FakeQuantLinear(lin, fqn, config, staged[fqn], attention)
        for _, parent, attr in where[id(lin)]:
            setattr(parent, attr, new)
    calls: Counter[str] = Counter()
    if matmuls:
        state = _RootState(config)
        calls = state.calls
        state.handles = [model.register_forward_pre_hook(state.enter),
                         model.register_forward_hook(state.exit, always_call=True)]
        setattr(model, _STATE_ATTR, state)
    return FakeQuantSummary(config=config, replaced=tuple(rows), skipped=tuple(skipped),
                            matmuls=matmuls, matmul_calls=calls)


def remove_fake_quant_(model: nn.Module) -> int:
    """Undo :func:`fake_quantize_` in place: every :class:`FakeQuantLinear` becomes the
    original nn.Linear again (the same object, unchanged) and the matmul hooks are removed.

    Returns:
        The number of layers restored (0 if there was nothing to undo).
    """
    where = _locations(model)
    restored = 0
    for _, mod in list(model.named_modules()):
        if isinstance(mod, FakeQuantLinear):
            for _, parent, attr in where[id(mod)]:
                setattr(parent, attr, mod.original)
            restored += 1
    state = getattr(model, _STATE_ATTR, None)
    if state is not None:
        for h in state.handles:
            h.remove()
        delattr(model, _STATE_ATTR)
    return restored
