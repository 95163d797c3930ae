"""Linear-layer hooks for :class:`~semdialect.evaluation.minilm.MiniLM`: the FP32 recording
hook (:class:`Reference`) and the W4A4 hook of one study row (:class:`QuantHook`).

A hook replaces every linear layer's ``y = x·W + b`` (``MiniLM.encode(..., linear=hook)``).
:class:`QuantHook` quantizes activations and weights in its variant's format, runs the
format's GEMM contract (``golden.gemm_quantized``: SPEC §5 for the power-of-two formats,
SPEC §8 for NVFP4 and INT4) and adds the bias in FP32; it measures every call against the
FP32 run recorded by :class:`Reference`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semdialect.evaluation.metrics import PooledSqnr
from semdialect.evaluation.minilm import LINEAR_SUFFIXES, fp32_linear
from semdialect.evaluation.variants import (
    TAU,
    Recon,
    Variant,
    block_of,
    reconstruct,
)
from semdialect.golden import gemm_quantized, quantize, quantize_weights
from semdialect.golden.blocks import to_fp16
from semdialect.golden.decompose import decomposed_linear, salient_tokens
from semdialect.golden.formats import BlockFormat
from semdialect.golden.quantize import QTensor
from semdialect.golden.seda import SedaGroups, seda_groups, seda_quantize
from semdialect.golden.selector_saliency import err_saliency_quantized, top_rows

__all__ = ["QuantHook", "Reference", "Weights", "layer_of", "linear_of"]


def layer_of(name: str) -> int:
    """Encoder layer index of a MiniLM linear name (``encoder.3.attention...`` → 3)."""
    return int(name.split(".")[1])


def linear_of(name: str) -> str:
    """A MiniLM linear name without its ``encoder.<layer>.`` prefix."""
    return name.split(".", 2)[2]


@dataclass
class Reference:
    """The FP32 run: per linear, per sequence, (x, y); per layer, per sequence, the map.

    Attributes:
        xy: linear name → one (input (N, k), output (N, n)) pair per sequence, float32.
        maps: layer → one attention-probability map (H, N, N) per sequence.
    """

    xy: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    maps: dict[int, list[np.ndarray]] = field(default_factory=dict)

    def __call__(
        self, name: str, x: np.ndarray, weight: np.ndarray, bias: np.ndarray, ctx: Any
    ) -> np.ndarray:
        """An FP32 hook (``evaluation.minilm.fp32_linear``) that records what it sees."""
        y = fp32_linear(name, x, weight, bias, ctx)
        self.xy.setdefault(name, []).append((x, y))
        if name.endswith(LINEAR_SUFFIXES[0]):
            self.maps.setdefault(ctx.layer, []).append(ctx.attention)
        return y


class Weights:
    """Quantized weights, once per (weight format, linear); only the current row's are kept."""

    def __init__(self) -> None:
        self._key: object = None
        self._q: dict[tuple[str, str], QTensor] = {}
        self._fp16: dict[str, np.ndarray] = {}

    def use(self, key: object) -> None:
        """Switch to the row ``key`` (a Variant or a Design), dropping the previous row's
        quantized weights."""
        if key != self._key:
            self._key = key
            self._q.clear()

    def q(self, name: str, w: np.ndarray, fmt: BlockFormat, block: int) -> QTensor:
        """Linear ``name``'s weights W (k, n) quantized as Wᵀ in ``fmt`` (B = ``block``)."""
        key = (name, fmt.name)
        if key not in self._q:
            self._q[key] = quantize_weights(w, fmt, block=block, name=f"W of {name}")
        return self._q[key]

    def fp16(self, name: str, w: np.ndarray) -> np.ndarray:
        """Linear ``name``'s weights rounded to FP16, as float32 (k, n)."""
        if name not in self._fp16:
            self._fp16[name] = to_fp16(w, f"W of {name}", block_of(None)).astype(np.float32)
        return self._fp16[name]


class QuantHook:
    """The W4A4 hook of one :class:`~semdialect.evaluation.variants.Variant`; measures each
    call against the FP32 run.

    The k-th call of a linear belongs to the k-th sequence: ``MiniLM.encode`` runs the
    sentences in order, one sequence at a time, 36 calls each.

    Attributes:
        act, iso, out: linear name → pooled SQNR of what the layer sees (W4A4 run), of the
            variant applied to the FP32 run's input, and of the layer output.
        bits, elements: linear name → Σ activation bits, Σ activation elements.
        weight_bits: bits per weight element (16 for FP16).
        salient_rows, rows: decomposition rows and all rows seen.
    """

    def __init__(self, variant: Variant, weights: Weights, ref: Reference,
                 rotated: frozenset[str] = frozenset()) -> None:
        self.v = variant
        self.rotated = rotated
        self.weights = weights
        self.ref = ref
        self.calls: Counter[str] = Counter()
        self.act: dict[str, PooledSqnr] = {}
        self.iso: dict[str, PooledSqnr] = {}
        self.out: dict[str, PooledSqnr] = {}
        self._iso_last: tuple[int, int, Recon, bool] | None = None
        self.bits: dict[str, float] = Counter()
        self.elements: dict[str, int] = Counter()
        self.weight_bits = 16.0
        self.salient_rows = 0
        self.rows = 0
        self._map: np.ndarray | None = None
        self._groups: SedaGroups | None = None

    def __call__(
        self, name: str, x: np.ndarray, weight: np.ndarray, bias: np.ndarray, ctx: Any
    ) -> np.ndarray:
        """y = Q(x)·Q(W) + b (float32), measured against the FP32 run's call."""
        k = self.calls[name]
        self.calls[name] += 1
        x_ref, y_ref = self.ref.xy[name][k]
        approx, y, bits = self._linear(name, x, weight, ctx)
        y = y + bias
        self.act.setdefault(name, PooledSqnr()).add(x_ref, approx)
        self.out.setdefault(name, PooledSqnr()).add(y_ref, y)
        self.iso.setdefault(name, PooledSqnr()).add(x_ref, self._isolated(name, k, x_ref, ctx))
        self.bits[name] += bits * x.size
        self.elements[name] += x.size
        self.rows += x.shape[0]
        return y

    def _isolated(self, name: str, k: int, x_ref: np.ndarray, ctx: Any) -> np.ndarray:
        """What the variant makes of the FP32 run's input (no propagated error).

        Query, key and value share their input: it is quantized once for the three.
        """
        layer = layer_of(name)
        last = self._iso_last
        v = self.v
        rot = name in self.rotated
        if name.endswith((LINEAR_SUFFIXES[1], LINEAR_SUFFIXES[2])) and last is not None \
                and last[:2] == (layer, k) and last[3] == rot:
            return last[2].deq
        groups = self._seda_groups(ctx.attention) if v.seda else None
        salient = salient_tokens(ctx.attention, v.rho) if (
            v.decompose and v.saliency == "attention") else None
        rec = reconstruct(x_ref, v, groups, salient, f"X of {name}", rotated=rot)
        self._iso_last = (layer, k, rec, rot)
        return rec.deq

    def _seda_groups(self, attention: np.ndarray) -> SedaGroups:
        """SeDA groups of this layer and sequence (the 6 linears of a layer share them)."""
        if self._map is not attention:
            self._map = attention
            self._groups = seda_groups(attention, None, TAU)
        assert self._groups is not None
        return self._groups

    def _linear(
        self, name: str, x: np.ndarray, w: np.ndarray, ctx: Any
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """(what the layer sees as its input, X·W without bias, activation bits/element)."""
        v = self.v
        if v.is_fp16:
            x16 = to_fp16(x, f"X of {name}", v.block).astype(np.float32)
            return x16, x16 @ self.weights.fp16(name, w), 16.0
        b = v.block
        fmt, wfmt = v.formats(name in self.rotated)
        qw = self.weights.q(name, w, wfmt, b)
        self.weight_bits = qw.bits_per_element
        candidates, extra, seda_q, seda_bits = None, 0.0, None, 0.0
        if v.seda:
            sr = seda_quantize(x, self._seda_groups(ctx.attention), fmt, block=b,
                               name=f"X of {name}")
            candidates, seda_q, seda_bits = sr.candidates, sr.q, sr.bits_per_element
            extra = sr.bits_per_element - sr.q.bits_per_element
        if v.decompose:
            if v.saliency == "err":
                main = seda_q if seda_q is not None else quantize(
                    x, fmt, block=b, name=f"X of {name}")
                select = {"salient": top_rows(err_saliency_quantized(x, main), v.rho)}
            else:
                select = {"attn": ctx.attention, "rho": v.rho}
            res = decomposed_linear(
                x, w, fmt, block=b, candidates=candidates, extra_bits_per_element=extra,
                qw=qw, **select,
            )
            approx = res.qx.dequant.astype(np.float64)
            if res.qr is not None:
                approx[res.salient] += res.qr.dequant[..., :x.shape[-1]]
            self.salient_rows += res.salient.size
            return approx, res.y, res.bits_per_element
        if seda_q is not None:
            return seda_q.dequant, gemm_quantized(seda_q, qw), seda_bits
        qx = quantize(x, fmt, block=b, name=f"X of {name}")
        return qx.dequant, gemm_quantized(qx, qw), qx.bits_per_element
