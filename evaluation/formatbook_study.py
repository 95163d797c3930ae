"""Held-out study of learned formatbooks (issue 13) and the data of the shipped learned books.

:func:`formatbook_study` fits books with :func:`semdialect.golden.learn.learn_formatbook` on
one part of the real data and measures them on another, next to sd32 and dfp4 on the same
held-out tensors:

* ``minilm 0-2 -> 3-5``: fit on the inputs of every linear of all-MiniLM-L6-v2 layers 0..2
  over the first 16 standard-library sentences, measure on layers 3..5 (same sentences);
* ``minilm 3-5 -> 0-2``: the reverse;
* ``video 1st -> 2nd half``: fit on the 8x8 patch tokens of frames 0..7 of the video
  fixture, measure on frames 8..15.

A layer's query, key and value projections read the same input, so each layer gives four
distinct input tensors (query, attention.output.dense, intermediate.dense, output.dense).
Every row is one split × K × rotation; SQNRs are *balanced* (−10·log10 of the mean over the
held-out tensors of noise/signal, each tensor weighing equally, the learner's objective) and
*pooled* (10·log10 Σsignal / Σnoise). With rotation, the learned book is fitted on rotated
blocks and all three books are measured through the same rotation (SPEC §11, B = 32).

:func:`shipped_book_data` is the data the shipped ``configs/formatbooks/learned_k256*.toml``
were fitted on: MiniLM layers 3..5 linear inputs on sentences 16..63 and those layers'
weights — none of it is one of the three shipped sample tensors
(:mod:`semdialect.evaluation.samples`), so measuring the books on those is held out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from semdialect.evaluation.minilm import MiniLM, load_minilm
from semdialect.evaluation.sentences import stdlib_sentences
from semdialect.evaluation.video import load_video_tokens
from semdialect.golden.formatbook import (
    BUILTIN_FORMATBOOKS,
    Formatbook,
    get_formatbook,
    write_formatbook,
)
from semdialect.golden.learn import LearnResult, book_error_sums, learn_formatbook
from semdialect.golden.metrics import sqnr_db_from_sums
from semdialect.golden.rotation import Rotation

__all__ = [
    "shipped_name",
    "BOOK_SENTENCES",
    "DISTINCT_INPUTS",
    "STUDY_KS",
    "StudyRow",
    "SampleRow",
    "error_sums_sqnr",
    "fit_shipped_book",
    "shipped_sample_rows",
    "write_shipped_book",
    "format_study",
    "formatbook_study",
    "minilm_inputs",
    "shipped_book_data",
    "study_splits",
]

#: the linears whose inputs differ within a layer (key and value read query's input)
DISTINCT_INPUTS = ("attention.self.query", "attention.output.dense", "intermediate.dense",
                   "output.dense")
#: formatbook sizes of the study
STUDY_KS = (16, 32, 64, 256)
#: block size of the study
BLOCK = 32


@dataclass(frozen=True)
class StudyRow:
    """One fit (split × K × rotation) measured on held-out tensors.

    Attributes:
        split: e.g. ``minilm 0-2 -> 3-5``.
        k: dialects of the learned book.
        rotate: ``none`` or ``hadamard``.
        bits_per_element: 4 + (5 + ceil(log2 K)) / 32.
        train_db: the learned book's balanced SQNR on the fit data (whole tensors).
        learned_db / sd32_db / dfp4_db: balanced held-out SQNR (dB).
        learned_pooled_db / sd32_pooled_db / dfp4_pooled_db: pooled held-out SQNR (dB).
        heldout_tensors: number of held-out tensors.
        book: the learned book.
    """

    split: str
    k: int
    rotate: str
    bits_per_element: float
    train_db: float
    learned_db: float
    sd32_db: float
    dfp4_db: float
    learned_pooled_db: float
    sd32_pooled_db: float
    dfp4_pooled_db: float
    heldout_tensors: int
    book: Formatbook


def minilm_inputs(model: MiniLM, layers: range, sentences: list[str],
                  weights: bool = False) -> dict[str, np.ndarray]:
    """The distinct linear inputs of ``layers`` (all tokens of ``sentences`` stacked), and
    with ``weights`` those layers' weights as Wᵀ (out, in), blocked along ``in``."""
    record: dict = {}
    ids, mask = model.tokenize(sentences)
    model.forward(ids, mask, record=record)
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        for suffix in DISTINCT_INPUTS:
            name = f"layer.{layer}.{suffix}"
            out[f"{name}.input"] = np.concatenate([x for x, _ in record[name]], axis=0)
    if weights:
        for layer in layers:
            for suffix in ("attention.self.query", "attention.self.key", "attention.self.value",
                           *DISTINCT_INPUTS[1:]):
                name = f"layer.{layer}.{suffix}"
                w, _ = model.linear_weights(name)
                out[f"{name}.weight"] = np.ascontiguousarray(w.T)
    return out


#: sentences the shipped books are fitted on: ``stdlib_sentences(193)[80:]``, disjoint from
#: the evaluation's first 64, from the rotation calibration's 64..79
#: (``evaluation.fidelity.CAL_SENTENCES``) and from the sample activation's first 16
BOOK_SENTENCES = (80, 193)


def shipped_book_data(model: MiniLM | None = None) -> dict[str, np.ndarray]:
    """Fit data of the shipped learned books: every MiniLM layer's distinct linear inputs over
    the sentences :data:`BOOK_SENTENCES`, and the 18 weights of layers 3..5 (as Wᵀ; the
    shipped sample weight is layer 0's query)."""
    model = model or load_minilm()
    lo, hi = BOOK_SENTENCES
    data = minilm_inputs(model, range(0, 6), stdlib_sentences(hi)[lo:])
    weights = minilm_inputs(model, range(3, 6), stdlib_sentences(1), weights=True)
    data.update({k: v for k, v in weights.items() if k.endswith(".weight")})
    return data


def study_splits(model: MiniLM | None = None
                 ) -> Iterator[tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """(split name, fit tensors, held-out tensors) of the study (module docstring)."""
    model = model or load_minilm()
    sentences = stdlib_sentences(16)
    low = minilm_inputs(model, range(0, 3), sentences)
    high = minilm_inputs(model, range(3, 6), sentences)
    yield "minilm 0-2 -> 3-5", low, high
    yield "minilm 3-5 -> 0-2", high, low
    first, _ = load_video_tokens(frames=slice(0, 8))
    second, _ = load_video_tokens(frames=slice(8, 16))
    yield "video 1st -> 2nd half", {"video frames 0-7": first}, {"video frames 8-15": second}


def error_sums_sqnr(tensors: dict[str, np.ndarray], book: Formatbook,
                    rotate: Rotation | None) -> tuple[float, float]:
    """(balanced, pooled) SQNR in dB of ``book`` over ``tensors`` (module docstring)."""
    sums = [book_error_sums(x, book, block=BLOCK, rotate=rotate, name=name)
            for name, x in tensors.items()]
    ratio = float(np.mean([n / s for s, n in sums]))
    balanced = -10.0 * float(np.log10(ratio)) if ratio > 0 else float("inf")
    pooled = sqnr_db_from_sums(sum(s for s, _ in sums), sum(n for _, n in sums))
    return balanced, pooled


def formatbook_study(
    ks: tuple[int, ...] = STUDY_KS,
    rotations: tuple[str, ...] = ("none", "hadamard"),
    *,
    seed: int = 0,
    iters: int = 25,
    progress: Callable[[str], None] | None = None,
) -> list[StudyRow]:
    """Fit on one part of the data, measure on the other (module docstring): one row per
    split × K × rotation."""
    say = progress or (lambda _msg: None)
    rows: list[StudyRow] = []
    for split, fit, held in study_splits():
        for rot_name in rotations:
            rotate = Rotation(BLOCK) if rot_name == "hadamard" else None
            base = {b: error_sums_sqnr(held, get_formatbook(b), rotate)
                    for b in BUILTIN_FORMATBOOKS}
            for k in ks:
                say(f"{split}, K={k}, rotate={rot_name}")
                res = learn_formatbook(fit, k, block=BLOCK, iters=iters, seed=seed,
                                       name=f"learned_k{k}", rotate=rotate)
                train_db, _ = error_sums_sqnr(fit, res.book, rotate)
                learned = error_sums_sqnr(held, res.book, rotate)
                rows.append(StudyRow(
                    split=split, k=k, rotate=rot_name,
                    bits_per_element=4 + (5 + res.book.id_bits) / BLOCK, train_db=train_db,
                    learned_db=learned[0], sd32_db=base["sd32"][0], dfp4_db=base["dfp4"][0],
                    learned_pooled_db=learned[1], sd32_pooled_db=base["sd32"][1],
                    dfp4_pooled_db=base["dfp4"][1], heldout_tensors=len(held), book=res.book))
                say(f"  held-out balanced SQNR: learned {learned[0]:.3f} dB, sd32 "
                    f"{base['sd32'][0]:.3f}, dfp4 {base['dfp4'][0]:.3f}")
    return rows


def format_study(rows: list[StudyRow]) -> str:
    """The study as a Markdown table."""
    head = ("| split | K | rotate | bits/el | train dB | learned dB | sd32 dB | dfp4 dB | "
            "learned − sd32 | pooled learned | pooled sd32 |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r.split} | {r.k} | {r.rotate} | {r.bits_per_element:.4g} | "
                     f"{r.train_db:.3f} | {r.learned_db:.3f} | {r.sd32_db:.3f} | "
                     f"{r.dfp4_db:.3f} | {r.learned_db - r.sd32_db:+.3f} | "
                     f"{r.learned_pooled_db:.3f} | {r.sd32_pooled_db:.3f} |")
    return "\n".join(lines)


#: K of the shipped learned books
SHIPPED_K = 256


def shipped_name(k: int = SHIPPED_K, block: int = BLOCK, rotate: str = "none") -> str:
    """A shipped book's name: ``learned_k<K>[_b<B>][_hadamard]`` (B shown unless 32)."""
    return (f"learned_k{k}" + ("" if block == BLOCK else f"_b{block}")
            + ("_hadamard" if rotate == "hadamard" else ""))


def fit_shipped_book(rotate: str = "none", *, seed: int = 0,
                     progress: Callable[[str], None] | None = None, k: int = SHIPPED_K,
                     block: int = BLOCK) -> LearnResult:
    """A shipped ``learned_k<K>[_b<B>][_hadamard]`` book: :func:`learn_formatbook` on
    :func:`shipped_book_data` with K = ``k`` (256), B = ``block`` (32), default init,
    iterations and sample, ``seed``; ``rotate="hadamard"`` fits on blocks rotated by
    ``Rotation(B, 0)``."""
    rot = Rotation(block) if rotate == "hadamard" else None
    return learn_formatbook(shipped_book_data(), k, block=block, seed=seed,
                            name=shipped_name(k, block, rotate), rotate=rot, progress=progress)


@dataclass(frozen=True)
class SampleRow:
    """A shipped book on one shipped sample tensor: SQNR (dB) of the book, sd32 (both
    through ``rotate``) and NVFP4 (never rotated), and the book's bits/element."""

    tensor: str
    rotate: str
    learned_db: float
    sd32_db: float
    nvfp4_db: float
    bits_per_element: float


def shipped_sample_rows(book: Formatbook, rotate: str = "none", block: int = BLOCK
                        ) -> list[SampleRow]:
    """``book`` vs sd32 and NVFP4 on the three real shipped sample tensors (MiniLM query
    weight, MiniLM layer-2 FFN-down input on 16 sentences, video tokens)."""
    from semdialect.evaluation.samples import sample_tensors

    rot = Rotation(block) if rotate == "hadamard" else None
    rows = []
    for name, x, source in sample_tensors():
        if source.startswith("synthetic"):
            continue

        def db(fmt: Formatbook | str, r: Rotation | None, x: np.ndarray = x,
               name: str = name, b: int = block) -> float:
            block = b if isinstance(fmt, Formatbook) else None  # a baseline: its own B
            return sqnr_db_from_sums(*book_error_sums(x, fmt, block=block, rotate=r, name=name))

        rows.append(SampleRow(name, rotate, db(book, rot), db(get_formatbook("sd32"), rot),
                              db("nvfp4", None), 4 + (5 + book.id_bits) / block))
    return rows


def write_shipped_book(path: str, rotate: str = "none", *, seed: int = 0,
                       progress: Callable[[str], None] | None = None, k: int = SHIPPED_K,
                       block: int = BLOCK) -> tuple[LearnResult, list[SampleRow]]:
    """Fit (:func:`fit_shipped_book`) and write the shipped book to ``path``, its header
    recording the call, the data, the seed and its SQNR on the shipped sample tensors."""
    res = fit_shipped_book(rotate, seed=seed, progress=progress, k=k, block=block)
    rows = shipped_sample_rows(res.book, rotate, block)
    rot = "None" if rotate == "none" else f"Rotation({block}, 0)"
    size = "" if (k, block) == (SHIPPED_K, BLOCK) else f", k={k}, block={block}"
    comments = [
        f"Learned formatbook {res.book.name}: K={k}, B={block}, "
        f"{4 + (5 + res.book.id_bits) / block:.5g} bits/element; dialects ascending by (max, "
        "then lexicographic); variants = 1.",
        f"Made by: semdialect.evaluation.formatbook_study.write_shipped_book(path, "
        f"{rotate!r}, seed={seed}{size})",
        f"  = semdialect.golden.learn.learn_formatbook(shipped_book_data(), {k}, "
        f"block={block}, seed={seed}, name={res.book.name!r}, rotate={rot}) with the default "
        f"init ({res.init}), iters and max_blocks.",
        "Data (shipped_book_data): all-MiniLM-L6-v2 layers 0..5, the inputs of query (= key "
        "= value), attention.output.dense, intermediate.dense and output.dense over "
        f"stdlib_sentences({BOOK_SENTENCES[1]})[{BOOK_SENTENCES[0]}:] (none of the sentences "
        "semdialect eval measures or calibrates on), and the 18 weights of layers 3..5 as "
        "W^T; each tensor weighs equally. None of it is a shipped sample tensor, so the rows "
        "below are held out.",
        f"Fit: {res.sampled_blocks} of {res.nonzero_blocks} non-zero blocks sampled; "
        f"balanced SQNR on the sample {res.balanced_sqnr_db:.3f} dB; best at iteration "
        f"{res.best_iteration}.",
    ]
    if rotate != "none":
        comments.append("Fitted on Hadamard-rotated blocks: use it with rotate = "
                        "\"hadamard\", rotate_seed = 0.")
    comments += [f"Held-out SQNR on {r.tensor}: {res.book.name} {r.learned_db:.3f} dB, sd32 "
                 f"{r.sd32_db:.3f} dB (rotate={r.rotate}), nvfp4 {r.nvfp4_db:.3f} dB "
                 "(no rotation)" for r in rows]
    write_formatbook(res.book, path, comments)
    return res, rows
