"""Learned formatbooks: fit K dialects to calibration tensors (issue 13) [ours].

A legal dialect (SPEC §1) is 0 followed by 7 strictly increasing half-unit magnitudes from
1..15, so there are exactly C(15, 7) = 6435 candidates (:func:`candidate_dialects`). The
learner is Lloyd's algorithm (k-means over blocks) with an exact update step:

* **Statistics** (once): every block's shared exponent SE and integer q_i (SPEC §2), and the
  exact real position r_i = |x_i| · 2^(2 − SE) of each FP16 element in quarter units
  (q_i = floor(r_i)). Element i dequantizes to v_f(q_i) · 2^(SE − 2) with v_f(q) =
  2·HU[f][IDX[f][q]] (quarter units, SPEC §3), so its real squared error is
  4^(SE − 2) · (v_f(q_i) − r_i)². IDX depends only on the integer q, hence a block's
  32-bin histogram of q holding Σw, Σw·r and Σw·r² per bin (w = 4^(SE − 2) / signal energy
  of the block's tensor) gives the exact error of ANY candidate as
  Σ_q Σw·v² − 2·Σw·r·v + Σw·r² (a matrix product with the (6435, 32) table of v).
* **Assignment**: golden's own LUT selection (SPEC §4: cost = Σ ERR[f][q_i], ties to the
  lowest id), run by :func:`golden.quantize.quantize` with the current book — the hardware
  rule, not the real error.
* **Update**: for every dialect, the candidate with the minimum real squared error over the
  blocks assigned to it (its pooled histogram statistics times the candidate table), kept
  distinct: dialects are served in descending order of their blocks' weight, each taking its
  best candidate not already taken. A dialect that no block selects is re-seeded greedily
  (below).
* **Objective**: Σ_t noise_t / signal_t over the calibration tensors t (each tensor's
  squared error normalised by its own signal energy Σx², so every tensor weighs equally),
  measured on the golden quantize output (LUT-selected, dequantized) against the FP16 input
  (the hardware's input). It is reported as the *balanced SQNR* −10·log10(objective / T).
  Lloyd with a selection rule that is not the real error need not improve every step, so
  the search runs in two phases. **Lloyd** (at most ``iters`` iterations, stopping when a
  book repeats): every update is applied and the best book seen is kept. **Refinement**
  from that best book: the update, or its half, quarter, ... with the largest predicted
  gains, or one of its :data:`SINGLE_MOVES` best single moves (each move set closed so the
  dialects stay distinct) is accepted only if the objective falls; it stops when nothing
  improves or after ``REFINE_EVALUATIONS_PER_ITER · iters`` evaluated books. The returned
  book is the best evaluated, so it is never worse than the initial book on the sample.
* **Greedy seeding**: on a seeded subset of at most :data:`GREEDY_BLOCKS` blocks, each
  block's real error under every candidate (optimal per-block selection, an
  approximation of the LUT rule); candidates are added one at a time, each the one that
  lowers Σ_b min_f error the most (facility location).
* **Initial book** (``init=None``): the builtin book of size K (dfp4 for 16, sd32 for 32);
  else the largest builtin book smaller than K extended greedily (sd32 + greedy for
  K > 32, dfp4 + greedy for 16 < K < 32); else (K < 16, or ``init="greedy"``) greedy from
  nothing. Greedy seeding also re-seeds dialects that no block selects.

Sampling: at most ``max_blocks`` non-zero blocks (default :data:`DEFAULT_MAX_BLOCKS`) are
drawn without replacement with ``numpy.random.default_rng(seed)``, split between the
tensors in proportion to their non-zero block counts (at least one each). All-zero blocks
are exact in every dialect and never sampled. Fewer non-zero blocks (or distinct blocks)
than K is allowed: the unused dialects are still legal and distinct (greedy filler) and the
book always has K dialects.

Order: the returned book lists its dialects ascending by (maximum, then lexicographic
magnitudes) (:func:`canonical_order`), so ids are reproducible; every book is put in this
order before it is evaluated, so the tracked objective is that of the returned ids (the
lowest-id tie rule depends on the order).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blocks import BLOCK_SIZES, check_block, to_fp16
from .formatbook import (
    BUILTIN_FORMATBOOKS,
    DIALECT_LEN,
    HU_MAX,
    MAX_DIALECTS,
    Formatbook,
    get_formatbook,
)
from .luts import Q_LEVELS, build_luts
from .metrics import sqnr_db_from_sums
from .quantize import quantize
from .rotation import Rotation

__all__ = [
    "CANDIDATE_COUNT",
    "DEFAULT_ITERS",
    "DEFAULT_MAX_BLOCKS",
    "GREEDY_BLOCKS",
    "IterationRecord",
    "LearnResult",
    "book_error_sums",
    "candidate_dialects",
    "candidate_values",
    "canonical_order",
    "check_calibration",
    "learn_formatbook",
]

#: legal dialects: 0 then 7 increasing magnitudes from 1..15, C(15, 7)
CANDIDATE_COUNT = 6435
#: most non-zero blocks sampled for fitting (seeded)
DEFAULT_MAX_BLOCKS = 100_000
#: default Lloyd iterations (the loop stops earlier once a book repeats)
DEFAULT_ITERS = 25
#: single moves (best predicted gain first) tried when no larger part of an update improves
SINGLE_MOVES = 16
#: the refinement evaluates at most this many books per allowed Lloyd iteration (``iters``)
REFINE_EVALUATIONS_PER_ITER = 2
#: blocks of the greedy seeding subset (per-candidate errors: GREEDY_BLOCKS x 6435 float32)
GREEDY_BLOCKS = 1024


def canonical_order(hu: np.ndarray) -> np.ndarray:
    """Indices sorting (K, 8) dialects ascending by maximum, then lexicographically."""
    hu = np.asarray(hu)
    keys = [hu[:, j] for j in reversed(range(DIALECT_LEN))] + [hu[:, DIALECT_LEN - 1]]
    return np.lexsort(keys)


@functools.cache
def candidate_dialects() -> np.ndarray:
    """(6435, 8) uint8: every legal dialect (SPEC §1) in :func:`canonical_order` (read-only)."""
    rows = [(0, *c) for c in itertools.combinations(range(1, HU_MAX + 1), DIALECT_LEN - 1)]
    hu = np.array(rows, dtype=np.uint8)
    hu = hu[canonical_order(hu)]
    hu.setflags(write=False)
    return hu


@functools.cache
def candidate_values() -> np.ndarray:
    """(6435, 32) float64: v_c(q) = 2·HU[c][IDX[c][q]], each candidate's value for q in
    quarter units, from golden's LUT generator (:func:`golden.luts.build_luts`, applied to
    chunks of at most 256 candidates) (read-only)."""
    hu = candidate_dialects()
    parts = [build_luts(Formatbook("candidates", hu[i:i + MAX_DIALECTS])).hu
             for i in range(0, len(hu), MAX_DIALECTS)]
    v = 2.0 * np.concatenate(parts).astype(np.float64)
    v.setflags(write=False)
    return v


def _key(hu: np.ndarray) -> np.ndarray:
    """One integer per dialect (its 8 magnitudes as 4-bit digits) for set operations."""
    return (hu.astype(np.int64) << np.arange(0, 4 * DIALECT_LEN, 4)).sum(axis=-1)


@functools.cache
def _candidate_index() -> dict[int, int]:
    return {int(k): i for i, k in enumerate(_key(candidate_dialects()))}


def _candidate_ids(hu: np.ndarray) -> np.ndarray:
    index = _candidate_index()
    return np.array([index[int(k)] for k in _key(hu)], dtype=np.intp)


@dataclass(frozen=True)
class IterationRecord:
    """One iteration (0 = the initial book) and the book it left.

    Attributes:
        iteration: 0 = the initial book.
        phase: ``init``, ``lloyd`` (update applied whatever the objective) or ``refine``
            (accepted only because the objective fell).
        balanced_sqnr_db: −10·log10(mean over tensors of noise_t / signal_t) on the sample.
        used: dialects selected by at least one sampled block.
        changed: dialects replaced by this iteration.
        evaluations: books evaluated (golden quantize of the sample) in this iteration.
    """

    iteration: int
    phase: str
    balanced_sqnr_db: float
    used: int
    changed: int
    evaluations: int


@dataclass
class LearnResult:
    """A learned formatbook and how it was fitted.

    Attributes:
        book: the best book seen (K dialects in :func:`canonical_order`, variants = 1).
        train_sqnr_db: per calibration tensor name, SQNR (dB) of golden quantize with
            ``book`` on the WHOLE tensor (rotated and rotated back with ``rotate``) against
            the tensor itself.
        pooled_sqnr_db: 10·log10(Σ signal / Σ noise) over all calibration tensors.
        balanced_sqnr_db: the objective on the sample, −10·log10(mean_t noise_t / signal_t).
        history: one record per iteration.
        best_iteration: the iteration whose book was returned.
        sampled_blocks / nonzero_blocks: blocks fitted on / non-zero blocks available.
        init: how the initial book was chosen.
    """

    book: Formatbook
    train_sqnr_db: dict[str, float]
    pooled_sqnr_db: float
    balanced_sqnr_db: float
    history: list[IterationRecord] = field(default_factory=list)
    best_iteration: int = 0
    sampled_blocks: int = 0
    nonzero_blocks: int = 0
    init: str = ""


def check_calibration(x: Any, name: str, block: int) -> np.ndarray:
    """One calibration tensor as (n, B) FP16 blocks (SPEC §2 rounding), or ``ValueError``
    naming ``name`` (and its shape): non-numeric, 0-d, empty, a last axis that is not a
    multiple of B, a value outside FP16, NaN/Inf (naming the block) or all zeros."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype} of shape "
                         f"{arr.shape}")
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"{name}: shape {arr.shape}: needs at least one element along its "
                         f"last (reduction) axis")
    if arr.shape[-1] % block:
        raise ValueError(f"{name}: shape {arr.shape}: the last axis {arr.shape[-1]} is not a "
                         f"multiple of the block size B={block}")
    x16 = to_fp16(arr, name, block)  # names the first block holding NaN/Inf or an overflow
    if not (x16.view(np.uint16) & np.uint16(0x7FFF)).any():
        raise ValueError(f"{name}: shape {arr.shape}: all zeros, nothing to learn from")
    return x16.reshape(-1, block)


def _named(calib: Any) -> list[tuple[str, Any]]:
    if isinstance(calib, Mapping):
        return [(str(k), v) for k, v in calib.items()]
    if isinstance(calib, np.ndarray):
        return [("calib", calib)]
    items = list(calib)
    if not items:
        raise ValueError("calib: no calibration tensor given")
    return [(f"calib[{i}]", v) for i, v in enumerate(items)]


def _rotate_blocks(blocks16: np.ndarray, rotate: Rotation | None, name: str) -> np.ndarray:
    if rotate is None:
        return blocks16
    if rotate.block != blocks16.shape[1]:
        raise ValueError(f"rotate: Hadamard size {rotate.block} differs from the block size "
                         f"B={blocks16.shape[1]}")
    y16, overflow = rotate.forward(blocks16, "activation")
    if overflow.any():
        raise ValueError(f"{name}: block {int(np.flatnonzero(overflow)[0])} is outside the FP16 "
                         f"range after rotation")
    return y16


def book_error_sums(x: Any, fmt: str | Formatbook, *, block: int | None = 32,
                    rotate: Rotation | None = None, name: str = "x") -> tuple[float, float]:
    """(Σx², Σ(x − x̂)²) in float64 of golden quantize of ``x`` against ``x`` itself.

    ``fmt`` is a Formatbook (dialect quantization with it) or a golden format name. With
    ``rotate``, golden quantize's own rotation (``quantize(..., rotate=)``, activation role,
    SPEC §11): ``dequant`` is back in the input's basis.
    """
    ref = np.asarray(x, dtype=np.float64)
    kwargs: dict[str, Any] = ({"formatbook": fmt, "block": block}
                              if isinstance(fmt, Formatbook) else {"block": block})
    src = "sd32" if isinstance(fmt, Formatbook) else fmt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FlushWarning: flushed blocks count as error here
        xhat = quantize(x, src, name=name, rotate=rotate, **kwargs).dequant
    d = ref - xhat.astype(np.float64)
    return float(np.sum(ref * ref)), float(np.sum(d * d))


@dataclass
class _Stats:
    """Per sampled block: FP16 blocks, tensor id, signal of its tensor's sample, weighted
    q-histograms (Σw, Σw·r, Σw·r² per bin, w = 4^(SE−2) / signal)."""

    blocks: np.ndarray
    tensor: np.ndarray
    signal: np.ndarray
    hw: np.ndarray
    hs1: np.ndarray
    hs2: np.ndarray

    @classmethod
    def of(cls, blocks16: np.ndarray, tensor: np.ndarray, n_tensors: int) -> _Stats:
        from .select import preprocess

        se, q, _ = preprocess(blocks16)
        mag = np.abs(blocks16.astype(np.float64))
        signal = np.bincount(tensor, weights=(mag * mag).sum(axis=1), minlength=n_tensors)
        r = mag * np.ldexp(1.0, 2 - se)[:, None]  # exact: power-of-two scaling of FP16
        w = np.ldexp(1.0, 2 * (se - 2)) / signal[tensor]
        n = len(blocks16)
        bins = (np.arange(n)[:, None] * Q_LEVELS + q).reshape(-1)
        wr = np.broadcast_to(w[:, None], q.shape)

        def hist(weights: np.ndarray) -> np.ndarray:
            return np.bincount(bins, weights=weights.reshape(-1),
                               minlength=n * Q_LEVELS).reshape(n, Q_LEVELS)

        return cls(blocks16, tensor, signal, hist(wr), hist(wr * r), hist(wr * r * r))

    def candidate_errors(self, rows: np.ndarray | slice) -> np.ndarray:
        """(len(rows), 6435) real weighted squared error of each block under each candidate."""
        v = candidate_values()
        return (self.hw[rows] @ (v * v).T - 2.0 * self.hs1[rows] @ v.T
                + self.hs2[rows].sum(axis=1)[:, None])

    def cluster_errors(self, assign: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """((k, 6435) error of each dialect's assigned blocks under each candidate,
        (k,) total weight of each dialect's blocks)."""
        bins = (assign.astype(np.intp)[:, None] * Q_LEVELS + np.arange(Q_LEVELS)).reshape(-1)

        def pool(h: np.ndarray) -> np.ndarray:
            return np.bincount(bins, weights=h.reshape(-1),
                               minlength=k * Q_LEVELS).reshape(k, Q_LEVELS)

        hw, hs1, hs2 = pool(self.hw), pool(self.hs1), pool(self.hs2)
        v = candidate_values()
        err = hw @ (v * v).T - 2.0 * hs1 @ v.T + hs2.sum(axis=1)[:, None]
        return err, hw.sum(axis=1)


def _greedy_add(errors: np.ndarray, cur: np.ndarray | None, taken: np.ndarray,
                count: int) -> list[int]:
    """Add ``count`` candidates not in ``taken`` (bool (6435,), updated), each lowering
    Σ_b min(cur_b, errors[b, c]) the most; ``cur`` None = nothing chosen yet."""
    picks: list[int] = []
    for _ in range(count):
        if cur is None:
            score = -errors.sum(axis=0)
        else:
            score = np.maximum(cur[:, None] - errors, 0).sum(axis=0)
        score[taken] = -np.inf
        c = int(np.argmax(score))
        picks.append(c)
        taken[c] = True
        cur = errors[:, c].copy() if cur is None else np.minimum(cur, errors[:, c])
    return picks


def _update(stats: _Stats, sub_err: np.ndarray, ids: np.ndarray, assign: np.ndarray, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """The exact update step: (proposed candidate per dialect, predicted gain per dialect).

    Each used dialect takes the candidate with the minimum real error over its blocks,
    served in descending order of their weight, distinct; unused dialects are re-seeded
    greedily (predicted gain -inf: tried last)."""
    err, weight = stats.cluster_errors(assign, k)
    new = ids.copy()
    gain = np.full(k, -np.inf)
    taken = np.zeros(CANDIDATE_COUNT, bool)
    order = np.argsort(-weight, kind="stable")
    for f in order[weight[order] > 0]:
        row = np.where(taken, np.inf, err[f])
        new[f] = int(np.argmin(row))
        taken[new[f]] = True
        gain[f] = err[f, ids[f]] - row[new[f]]
    empty = [int(f) for f in order if weight[f] <= 0]
    if empty:
        taken[ids[empty]] = True  # an unused dialect is not proposed again
        served = new[weight > 0]
        cur = sub_err[:, served].min(axis=1) if served.size else None
        new[empty] = _greedy_add(sub_err, cur, taken, len(empty))
    return new, gain


def _closure(subset: list[int], proposal: np.ndarray, ids: np.ndarray) -> list[int]:
    """``subset`` plus every dialect whose current candidate a moved dialect takes over
    (transitively), so that applying the moves keeps the dialects distinct."""
    slot = {int(c): f for f, c in enumerate(ids)}
    moved = list(dict.fromkeys(subset))
    seen = set(moved)
    i = 0
    while i < len(moved):
        g = slot.get(int(proposal[moved[i]]))
        if g is not None and g not in seen:
            seen.add(g)
            moved.append(g)
        i += 1
    return moved


def _resolve_init(init: Any, k: int) -> Formatbook | None:
    """The initial book, or None: greedy, starting from the largest builtin book of at most
    K dialects (:func:`_initial_ids`)."""
    if isinstance(init, str) and init == "greedy":
        return None
    if init is None:
        builtin = [get_formatbook(n) for n in BUILTIN_FORMATBOOKS]
        return next((b for b in builtin if b.size == k), None)
    book = get_formatbook(init)
    if book.size != k:
        raise ValueError(f"init: formatbook {book.name!r} has K={book.size} dialects, but "
                         f"k={k} were asked for")
    return book


def _initial_ids(start: Formatbook | None, init: Any, k: int, sub_err: np.ndarray
                 ) -> tuple[np.ndarray, str]:
    """Candidate ids of the initial book and its label. Without a book of size K: for
    ``init=None`` the largest builtin book smaller than K (sd32 for K > 32, dfp4 for
    16 < K < 32) extended greedily, else (K < 16 or ``"greedy"``) greedy from nothing."""
    if start is not None:
        return _candidate_ids(start.hu), start.name
    base = None
    if init is None:
        smaller = [get_formatbook(n) for n in BUILTIN_FORMATBOOKS]
        smaller = [b for b in smaller if b.size < k]
        base = max(smaller, key=lambda b: b.size) if smaller else None
    taken = np.zeros(CANDIDATE_COUNT, bool)
    if base is None:
        return np.array(_greedy_add(sub_err, None, taken, k)), "greedy"
    ids = _candidate_ids(base.hu)
    taken[ids] = True
    extra = _greedy_add(sub_err, sub_err[:, ids].min(axis=1), taken, k - len(ids))
    return np.concatenate([ids, extra]), f"{base.name} + greedy"


def _sample(parts: list[np.ndarray], max_blocks: int, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray, int]:
    """Non-zero blocks of every tensor, at most about ``max_blocks`` in all (proportional,
    at least one per tensor): (blocks, tensor id, non-zero blocks available)."""
    nonzero = [np.flatnonzero((p.view(np.uint16) & np.uint16(0x7FFF)).any(axis=1))
               for p in parts]
    total = sum(len(nz) for nz in nonzero)
    blocks, tensor = [], []
    for t, (p, nz) in enumerate(zip(parts, nonzero, strict=True)):
        if total > max_blocks:
            take = min(len(nz), max(1, round(max_blocks * len(nz) / total)))
            nz = np.sort(rng.choice(nz, take, replace=False))
        blocks.append(p[nz])
        tensor.append(np.full(len(nz), t, np.intp))
    return np.concatenate(blocks), np.concatenate(tensor), total


def learn_formatbook(
    calib: Any,
    k: int,
    *,
    block: int = 32,
    init: str | Formatbook | None = None,
    iters: int = DEFAULT_ITERS,
    seed: int = 0,
    name: str = "learned",
    rotate: Rotation | None = None,
    progress: Callable[[str], None] | None = None,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
) -> LearnResult:
    """Fit a K-dialect formatbook to calibration tensors (module docstring).

    Args:
        calib: one array, a sequence of arrays (named ``calib[i]``) or a mapping name → array;
            each is blocked along its last axis (length a multiple of B) and rounded to FP16.
        k: dialects K, 1..256 (SPEC §1).
        block: B (16, 32 or 64).
        init: ``None`` (the builtin book of size K if there is one — dfp4 for 16, sd32 for
            32 — else greedy), ``"greedy"``, or a formatbook (name, TOML path, object) of
            size K.
        iters: most Lloyd iterations (>= 0; 0 evaluates the initial book only); the
            refinement then evaluates at most ``REFINE_EVALUATIONS_PER_ITER · iters`` books.
        seed: seeds the block sample and the greedy subset.
        name: the learned book's name.
        rotate: learn on Hadamard-rotated blocks (``Rotation.forward(blocks, "activation")``);
            its size must equal B.
        progress: called with one line per iteration.
        max_blocks: most non-zero blocks fitted on.

    Raises:
        ValueError: naming the parameter or the calibration tensor.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_DIALECTS:
        raise ValueError(f"k: the number of dialects must be an integer in 1..{MAX_DIALECTS} "
                         f"(the dialect id is stored as uint8; {CANDIDATE_COUNT} legal dialects "
                         f"exist), got {k!r}")
    k = int(k)
    block = check_block(block, BLOCK_SIZES, "learned formatbooks ")
    for label, val, low in (("iters", iters, 0), ("max_blocks", max_blocks, 1)):
        if isinstance(val, bool) or not isinstance(val, int | np.integer) or val < low:
            raise ValueError(f"{label}: expected an integer >= {low}, got {val!r}")
    if rotate is not None and not isinstance(rotate, Rotation):
        raise ValueError(f"rotate: expected a Rotation or None, got {rotate!r}")
    Formatbook(name, candidate_dialects()[:1])  # checks the name before any work
    named = _named(calib)
    start = _resolve_init(init, k)
    parts = [check_calibration(x, nm, block) for nm, x in named]
    parts = [_rotate_blocks(p, rotate, nm) for p, (nm, _) in zip(parts, named, strict=True)]
    rng = np.random.default_rng(seed)
    blocks, tensor, nonzero = _sample(parts, max_blocks, rng)
    stats = _Stats.of(blocks, tensor, len(parts))
    n_t = int(np.count_nonzero(stats.signal))
    subset = np.sort(rng.choice(len(blocks), min(GREEDY_BLOCKS, len(blocks)), replace=False))
    sub_err = stats.candidate_errors(subset).astype(np.float32)
    say = progress or (lambda _msg: None)
    say(f"{len(blocks)} of {nonzero} non-zero blocks sampled from {len(parts)} tensor(s); "
        f"K={k}, B={block}, rotate={'none' if rotate is None else 'hadamard'}")

    ids, init_label = _initial_ids(start, init, k, sub_err)
    def evaluate(ids: np.ndarray) -> tuple[float, np.ndarray]:
        """(objective, LUT-selected dialect per sampled block) of the book of ``ids``
        (sorted candidate ids = canonical order), by golden quantize."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FlushWarning: flushed blocks are error too
            qt = quantize(blocks, formatbook=Formatbook(name, candidate_dialects()[ids]),
                          block=block)
        d = blocks.astype(np.float64) - qt.dequant.astype(np.float64)
        return float(((d * d).sum(axis=1) / stats.signal[tensor]).sum()), qt.dialect[:, 0]

    def balanced(objective: float) -> float:
        return -10.0 * float(np.log10(objective / n_t)) if objective > 0 else float("inf")

    ids = np.sort(ids)
    objective, assign = evaluate(ids)
    history = [IterationRecord(0, "init", balanced(objective), int(np.unique(assign).size), 0,
                               1)]
    say(f"iteration 0 ({init_label}): balanced SQNR {balanced(objective):.4f} dB, "
        f"{history[0].used}/{k} dialects used")
    best = (objective, ids, assign, 0)
    seen = {ids.tobytes()}

    def record(phase: str, obj: float, ids_: np.ndarray, assign_: np.ndarray, old: np.ndarray,
               evaluations: int) -> None:
        it = len(history)
        changed = k - int(np.intersect1d(ids_, old).size)
        rec = IterationRecord(it, phase, balanced(obj), int(np.unique(assign_).size), changed,
                              evaluations)
        history.append(rec)
        say(f"iteration {it} ({phase}): balanced SQNR {rec.balanced_sqnr_db:.4f} dB, "
            f"{rec.used}/{k} dialects used, {changed} replaced ({evaluations} evaluated)")

    # phase 1, Lloyd: every update applied, the best book kept (it may get worse on the way)
    for _ in range(iters):
        proposal, _gain = _update(stats, sub_err, ids, assign, k)
        proposal = np.sort(proposal)
        if proposal.tobytes() in seen:
            break
        seen.add(proposal.tobytes())
        obj, new_assign = evaluate(proposal)
        record("lloyd", obj, proposal, new_assign, ids, 1)
        ids, assign = proposal, new_assign
        if obj < best[0]:
            best = (obj, ids, assign, len(history) - 1)
    # phase 2, refinement from the best book: the update, or its better-predicted half,
    # quarter, ..., or one of its best single moves, accepted only if the objective falls
    objective, ids, assign, best_it = best
    budget = REFINE_EVALUATIONS_PER_ITER * iters  # books the refinement may evaluate
    while budget > 0:
        proposal, gain = _update(stats, sub_err, ids, assign, k)
        moves = [int(f) for f in np.argsort(-gain, kind="stable") if proposal[f] != ids[f]]
        sizes = [len(moves) >> j for j in range(len(moves).bit_length())]
        subsets = [moves[:m] for m in sizes] + [[f] for f in moves[1:SINGLE_MOVES]]
        evaluations = 0
        accepted = False
        for subset in subsets[:budget]:
            moved = _closure(subset, proposal, ids)
            trial = ids.copy()
            trial[moved] = proposal[moved]
            trial = np.sort(trial)
            if trial.tobytes() in seen:  # evaluated before (a Lloyd book or a partial move)
                continue
            seen.add(trial.tobytes())
            evaluations += 1
            budget -= 1
            trial_obj, trial_assign = evaluate(trial)
            if trial_obj < objective:
                record("refine", trial_obj, trial, trial_assign, ids, evaluations)
                ids, objective, assign = trial, trial_obj, trial_assign
                best_it = len(history) - 1
                accepted = True
                break
        if not accepted and budget > 0:
            say(f"refinement: no improving move ({len(moves)} proposed, {evaluations} "
                f"tried); stopping")
            break
    best = (objective, ids, assign, best_it)

    book = Formatbook(name, candidate_dialects()[best[1]])
    sums = [book_error_sums(x, book, block=block, rotate=rotate, name=nm) for nm, x in named]
    train = {nm: sqnr_db_from_sums(s, n) for (nm, _), (s, n) in zip(named, sums, strict=True)}
    pooled = sqnr_db_from_sums(sum(s for s, _ in sums), sum(n for _, n in sums))
    best_balanced = balanced(best[0])
    return LearnResult(book=book, train_sqnr_db=train, pooled_sqnr_db=pooled,
                       balanced_sqnr_db=best_balanced, history=history,
                       best_iteration=best[3], sampled_blocks=len(blocks),
                       nonzero_blocks=nonzero, init=init_label)
