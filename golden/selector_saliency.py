"""ERR-sum saliency: the selector's own minimum block cost as a token score [ours].

An alternative to SPEC §6's attention saliency for choosing the salient (decomposed) rows.
For block b of row j the ``lut`` selector (SPEC §4) already computes every dialect's cost
Σ_i ERR[f][q_i] and keeps the minimum c(j, b) over its candidate set (here the whole
formatbook, as on the main path). ERR is a squared error in quarter units of 2^SE, so

    s_j = Σ_b c(j, b) · 4^(SE(j, b) + 16)

is the row's squared quantization error (of the floored magnitudes q_i, SPEC §2) in real
units times the constant 2^28 (= 2^32 · 2^-4): one number per token, in units of 4^-16.
SE + 16 ∈ [0, 29] is the stored 5-bit SE field.

Exactness: c ≤ 225·B ≤ 14400 < 2^14 and 4^(SE + 16) ≤ 4^29 = 2^58, so a term reaches 2^72
and a row's sum more: neither int64 nor float64 holds it. Scores are therefore Python ints
(NumPy object arrays) and every comparison — ties included — is exact.

Salient set: the n_S = ⌈ρ·N⌉ rows (ρ exact, :func:`~semdialect.golden.decompose.n_salient`)
with the highest score, ties to the lower row index (SPEC §6's tie rule). Every index of
x's leading dimensions is a row: one selection over all of them (flat C-order indices).

Why it is hardware-cheap: the selector computes every block's minimum cost anyway (the
argmin tree and running-best register of ``rtl/selector.py`` hold the winning cost beside the
winning id); the score needs one left shift of that cost by 2·(SE + 16) bits and one
accumulator per token (72 + ⌈log2 nblocks⌉ bits to stay exact). What is not free: the top-n_S
choice needs every token's score before the first salient row is known, i.e. a pre-pass over
the activations (or the previous call's scores, as SeDA reuses its groups). This golden model
uses the scores of the current activations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .blocks import pad_last, to_fp16
from .decompose import DEFAULT_RHO, n_salient
from .formatbook import Formatbook
from .formats import DialectFormat, resolve_format
from .quantize import QTensor
from .rotated import RotatedFormat, base_format
from .select import SE_BIAS, lut_costs, preprocess, q_histogram, signed_bins

__all__ = [
    "err_saliency",
    "err_saliency_quantized",
    "err_salient_tokens",
    "top_rows",
]


def _row_scores(cost: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Σ_b cost · 4^(SE + 16) per row, exactly: (rows, nb) ints -> (rows,) object of ints."""
    shift = (2 * (se.astype(np.int64) + SE_BIAS)).astype(object)
    terms = cost.astype(np.int64).astype(object) << shift
    return terms.sum(axis=-1)


def _dialect_format(f: Any) -> DialectFormat:
    if not isinstance(f, DialectFormat):
        name = getattr(f, "name", f)
        raise ValueError(f"format: ERR saliency exists only for the dialect formats, not {name}")
    if f.select != "lut":
        raise ValueError(f"format: ERR saliency needs select='lut' (the selector's costs), "
                         f"not {f.select!r}")
    return f


def err_saliency(
    x: Any,
    fmt: str | Formatbook = "sd32",
    *,
    block: int | None = None,
    formatbook: Formatbook | str | None = None,
    pad: bool = False,
    name: str = "x",
) -> np.ndarray:
    """ERR-sum score of every row of ``x`` (..., k): shape x.shape[:-1], object of Python ints.

    s_j = Σ_b min_f cost_f(j, b) · 4^(SE(j, b) + 16), the minimum over the whole formatbook
    (SPEC §4 ``lut`` costs), in units of 4^-16 quarter-unit² (real squared error · 2^28).
    Same FP16 rounding, checks and blocking as :func:`~semdialect.golden.quantize`.

    Raises:
        ValueError: a non-dialect format (naming ``format``), bad input (as ``quantize``).
    """
    f = _dialect_format(resolve_format(fmt, formatbook=formatbook))
    b = f.block_size(block)
    x16 = pad_last(to_fp16(x, name, b), b, pad, name)
    k = x16.shape[-1]
    xb = x16.reshape(-1, b)
    se, q, _ = preprocess(xb)
    cost = lut_costs(q_histogram(signed_bins(q, xb)), f.luts).min(axis=-1)
    n_rows = xb.shape[0] // (k // b)
    scores = _row_scores(cost.reshape(n_rows, -1), se.reshape(n_rows, -1))
    return scores.reshape(x16.shape[:-1])


def err_saliency_quantized(x: Any, q: QTensor, *, name: str = "x") -> np.ndarray:
    """ERR-sum scores from an existing ``lut`` quantization ``q`` of ``x`` (no second search).

    Uses q's SE and chosen dialect per block: c = Σ_i ERR[dialect][q_i], the cost of the
    dialect the selector chose. For ``quantize(x, fmt)`` (whole formatbook) that is the
    minimum cost, so this equals :func:`err_saliency` bit for bit; for a SeDA quantization it
    is the minimum within each block's sub-formatbook (what that selector computed).

    Args:
        x: the tensor ``q`` quantizes (any dtype; rounded to FP16 as ``quantize`` does).
        q: its dialect-format QTensor with ``lut`` selection (possibly behind a block
            rotation, SPEC §11: the scores are then those of the rotated blocks, which the
            selector saw).

    Raises:
        ValueError: ``q`` is not a ``lut`` dialect quantization (naming ``format``), or does
            not match ``x`` (naming ``q``).
    """
    f = _dialect_format(base_format(q.fmt))
    b = q.block
    x16 = to_fp16(x, name, b)
    if isinstance(q.fmt, RotatedFormat):  # SPEC §11: the costs are those of the rotated blocks
        x16 = q.fmt.rotate_rows(pad_last(x16, b, True, name), name)
    if x16.shape != q.codes.shape:
        raise ValueError(f"q: quantizes shape {q.codes.shape}, {name} has shape {x16.shape}")
    x16 = pad_last(x16, b, True, name)
    xb = x16.reshape(-1, b)
    se, qv, _ = preprocess(xb)
    se_q = q.se.reshape(-1).astype(np.int32)
    if se_q.shape != se.shape or np.any(se_q != se):
        raise ValueError(f"q: its shared exponents are not those of {name}")
    dialect = q.dialect.reshape(-1).astype(np.intp)
    cost = f.luts.err[dialect[:, None], qv].astype(np.int64).sum(axis=-1)
    n_rows = int(np.prod(x16.shape[:-1], dtype=np.int64))
    scores = _row_scores(cost.reshape(n_rows, -1), se.reshape(n_rows, -1))
    return scores.reshape(x16.shape[:-1])


def top_rows(scores: Any, rho: Any = DEFAULT_RHO) -> np.ndarray:
    """Sorted flat indices of the ⌈ρ·N⌉ highest exact scores, ties to the lower index.

    ``scores``: integers of any shape (N = its size; Python ints in an object array are
    compared exactly, never through float64).
    """
    s = np.asarray(scores, dtype=object).reshape(-1)
    ns = n_salient(rho, s.shape[0])
    order = np.argsort(-s, kind="stable")  # exact int comparisons; stable: lower index first
    return np.sort(order[:ns].astype(np.intp))


def err_salient_tokens(
    x: Any,
    rho: Any = DEFAULT_RHO,
    fmt: str | Formatbook = "sd32",
    *,
    block: int | None = None,
    formatbook: Formatbook | str | None = None,
    pad: bool = False,
    name: str = "x",
) -> np.ndarray:
    """Sorted flat row indices of the ⌈ρ·N⌉ rows with the highest ERR-sum score.

    N = every row of x's leading dimensions (``np.unravel_index(idx, x.shape[:-1])`` gives
    them back); ties go to the lower flat index.
    """
    return top_rows(err_saliency(x, fmt, block=block, formatbook=formatbook, pad=pad,
                                 name=name), rho)
