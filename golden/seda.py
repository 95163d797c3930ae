"""SeDA: semantic-aware dialect assignment (SPEC §7) [ours, from SemanticDialect].

Correlated tokens share a formatbook *variant*: a group of tokens found from the attention
map picks, per k-block, the variant v whose sub-formatbook SFB(v) = {G·p + v} serves the
group best; each block then takes its own cheapest dialect inside SFB(v), so it still picks
its own max group p. Metadata: a variant id per (group, k-block) plus a max-group id per
block (instead of a full dialect id).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .decompose import as_fraction, check_attention, saliency, saliency_order
from .formatbook import Formatbook, index_bits
from .formats import DialectFormat, resolve_format
from .quantize import QTensor, dialect_costs, quantize
from .rotated import base_format

#: default group threshold τ
DEFAULT_TAU = "0.5"
#: window half-widths: video (Δt, Δh, Δw) and plain sequences
VIDEO_WINDOW = (1, 2, 2)
SEQUENCE_WINDOW = 8


def window(a: int, layout: Sequence[int] | None, n_tokens: int) -> np.ndarray:
    """Keys in token ``a``'s window (``a`` included), ascending.

    ``layout`` = (T, H, W) for video tokens (C order, N = T·H·W): |Δt| <= 1, |Δh| <= 2,
    |Δw| <= 2, no wrap-around. ``None`` for a plain sequence: |j - a| <= 8.
    """
    if layout is None:
        return np.arange(max(0, a - SEQUENCE_WINDOW), min(n_tokens, a + SEQUENCE_WINDOW + 1))
    t, h, w = np.unravel_index(a, tuple(layout))
    ranges = [
        np.arange(max(0, c - r), min(size, c + r + 1))
        for c, r, size in zip((t, h, w), VIDEO_WINDOW, layout, strict=True)
    ]
    tt, hh, ww = np.meshgrid(*ranges, indexing="ij")
    return np.sort(np.ravel_multi_index((tt.ravel(), hh.ravel(), ww.ravel()), tuple(layout)))


def _at_least(lhs: np.ndarray, tau: Fraction, rhs: float) -> np.ndarray:
    """Exact ``lhs >= tau · rhs`` for float64 values (float test, exact on near-ties)."""
    p, q = tau.numerator, tau.denominator
    a, b = lhs * q, p * rhs
    out = a >= b
    near = np.abs(a - b) <= 1e-9 * max(abs(b), 1e-300)
    for i in np.flatnonzero(near):
        out[i] = Fraction(float(lhs[i])) * q >= p * Fraction(float(rhs))
    return out


@dataclass(frozen=True)
class SedaGroups:
    """Token groups of one sequence.

    Attributes:
        group_of: (N,) int group index of every token.
        anchors: (n_groups,) anchor token of every group, in creation order.
    """

    group_of: np.ndarray
    anchors: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.anchors.shape[0])

    @classmethod
    def singletons(cls, n_tokens: int) -> SedaGroups:
        """One group per token."""
        idx = np.arange(n_tokens)
        return cls(group_of=idx, anchors=idx)


def seda_groups(
    attn: Any, layout: Sequence[int] | None = None, tau: Any = DEFAULT_TAU
) -> SedaGroups:
    """Greedy anchor grouping from an attention map A (H, N, N) (SPEC §7).

    Tokens are visited in descending saliency (ties to the lower index); each unassigned
    token becomes an anchor a, and its group is a plus every unassigned j in a's window with
    Σ_h A[h, a, j] >= τ · max_{k in window(a)} Σ_h A[h, a, k] (exact on the head sums).
    """
    a_map = check_attention(attn)
    n = a_map.shape[1]
    if layout is not None:
        layout = tuple(int(v) for v in layout)
        if len(layout) != 3 or math.prod(layout) != n:
            raise ValueError(f"layout: (T, H, W) must multiply to N={n}, got {layout}")
    tau_f = as_fraction(tau, "tau")
    head_sum = a_map.sum(axis=0)  # Σ_h A[h, a, j]
    group_of = np.full(n, -1, dtype=np.int64)
    anchors: list[int] = []
    for a in saliency_order(saliency(a_map)):
        if group_of[a] >= 0:
            continue
        keys = window(int(a), layout, n)
        vals = head_sum[a, keys]
        member = _at_least(vals, tau_f, float(vals.max())) & (group_of[keys] < 0)
        member[keys == a] = True
        group_of[keys[member]] = len(anchors)
        anchors.append(int(a))
    return SedaGroups(group_of=group_of, anchors=np.array(anchors, dtype=np.int64))


@dataclass
class SedaResult:
    """A SeDA-quantized sequence.

    Attributes:
        q: the quantized activations (dialects restricted per (group, k-block)).
        variant: (n_groups, nblocks) uint8 variant of every group and k-block.
        candidates: (N, nblocks, K) bool candidate masks that produced ``q``.
        metadata_bits: total SeDA metadata bits (variants per group and k-block, SE and
            max-group id per block).
        bits_per_element: 4 + metadata per element.
    """

    q: QTensor
    variant: np.ndarray
    candidates: np.ndarray
    metadata_bits: int
    bits_per_element: float


def seda_variants(costs: np.ndarray, groups: SedaGroups, book: Formatbook) -> np.ndarray:
    """Variant of (group G, k-block b) = argmin_v Σ_{j∈G} min_{f∈SFB(v)} cost_f(j, b).

    ``costs``: (N, nblocks, K) LUT costs. Ties go to the lowest v. (n_groups, nblocks) uint8.
    """
    per_variant = np.stack(
        [costs[..., book.variant_ids(v)].min(axis=-1) for v in range(book.variants)], axis=-1
    )  # (N, nb, V)
    sums = np.zeros((groups.n_groups,) + per_variant.shape[1:], dtype=np.int64)
    np.add.at(sums, groups.group_of, per_variant)
    return np.argmin(sums, axis=-1).astype(np.uint8)


def seda_quantize(
    x: Any,
    groups: SedaGroups,
    fmt: str | Formatbook = "sd32",
    *,
    block: int | None = None,
    name: str = "x",
) -> SedaResult:
    """Quantize one sequence X (N, k) with SeDA (``lut`` selection, SPEC §7).

    Variants are recomputed from the current activations on every call; ``groups`` persist
    until the caller builds new ones from a new attention map.

    Tie rules (SPEC §7, literally): the variant tie goes to the lowest v, then the dialect
    tie inside SFB(v) to the lowest id. So with one group per token SeDA reaches the same
    minimal LUT cost as plain ``lut`` in every block, but on an exact cost tie between
    dialects of different variants it may pick another (equal-cost) dialect than plain
    ``lut``'s lowest id.
    """
    f = resolve_format(fmt)
    inner = base_format(f)  # a rotated format (SPEC §11): SeDA on the rotated blocks
    if not isinstance(inner, DialectFormat) or inner.select != "lut":
        raise ValueError("format: SeDA needs a dialect format with lut selection")
    book = f.formatbook
    if book.variants < 2:
        raise ValueError(f"formatbook: {book.name} has no variant structure for SeDA")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] != groups.group_of.shape[0]:
        raise ValueError(
            f"{name}: expected (N={groups.group_of.shape[0]}, k) for these groups, got {x.shape}"
        )
    costs = dialect_costs(x, f, block=block, name=name)
    variant = seda_variants(costs, groups, book)
    masks = np.stack([book.variant_mask(v) for v in range(book.variants)])  # (V, K)
    candidates = masks[variant[groups.group_of]]  # (N, nb, K)
    q = quantize(x, f, block=block, candidates=candidates, name=name)
    n, k = x.shape
    nb = variant.shape[1]
    variant_bits = index_bits(book.variants)
    group_bits = index_bits(book.size // book.variants)  # max-group id
    bits = groups.n_groups * nb * variant_bits + n * nb * (5 + group_bits)
    return SedaResult(q, variant, candidates, bits, 4 + bits / (n * k))
