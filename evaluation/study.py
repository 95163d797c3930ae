"""``semdialect eval``: accuracy of every format on real data (MiniLM sentences, video tokens).

This module only orchestrates the golden model (``docs/SPEC.md`` defines every number) and
measures; it quantizes nothing itself. The rows (formats and study options) are
:data:`~semdialect.evaluation.variants.VARIANTS`. Three measurements:

1. **MiniLM W4A4** (all-MiniLM-L6-v2, :mod:`evaluation.minilm`): every one of the 36 linear
   layers gets its activations AND weights quantized in the format (weights once per format
   and layer), the GEMM follows the format's contract and the bias is added in FP32
   (:class:`~semdialect.evaluation.hooks.QuantHook`). Decomposition (SPEC §6) and SeDA
   (SPEC §7, plain-sequence windows) read that layer's FP32 attention probabilities. Per
   linear: activation SQNR (what the quantized layer sees against the FP32 run's input of that
   layer) and output SQNR (layer output against the FP32 run's output), each pooled over all
   sequences (Σ signal / Σ noise). Then the sentence-embedding cosine to FP32 and the Spearman
   correlation of the two pairwise cosine-similarity matrices.
2. **Video tokens** (:mod:`evaluation.video`, 8×8 grey patches of OpenCV's vtest.avi, one
   sequence, B = 32 so 2 blocks per token): SQNR of the dequantized tokens, and temporal
   consistency (:func:`~semdialect.evaluation.metrics.temporal_consistency`).
3. **Decomposition study** (:mod:`evaluation.decomposition`): attention-selected salient
   tokens against random and largest-error ones, on MiniLM's isolated linears and the video.

Speed (a full run takes a few minutes on 2 cores): weights are quantized once per format and
linear; the FP32 run is recorded once per process and every variant is measured against it
inside its own hook. The 12 independent tasks (10 MiniLM variants, the MiniLM study, the video)
run on joblib's process pool (loky), costliest first, one worker per CPU, each with one BLAS
thread (``semdialect eval`` sets the thread variables before NumPy loads: the matrices are one
sentence tall, and threads only contend). Every GEMM is ``golden.gemm_quantized``. Results
do not depend on the number of processes. The files are written by
:mod:`semdialect.reports.accuracy`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np

from semdialect.evaluation.decomposition import StudyRow, minilm_study, video_study
from semdialect.evaluation.fidelity import (
    TargetRow,
    fidelity_targets,
    rotated_linears,
    video_rotated,
)
from semdialect.evaluation.hooks import QuantHook, Reference, Weights
from semdialect.evaluation.metrics import Temporal, embedding_metrics, temporal_consistency
from semdialect.evaluation.minilm import MiniLM, load_minilm
from semdialect.evaluation.sentences import stdlib_sentences
from semdialect.evaluation.variants import RHO, TAU, VARIANTS, Variant, block_of, reconstruct
from semdialect.evaluation.video import load_video_tokens, self_similarity_attention
from semdialect.golden import sqnr_db
from semdialect.golden.blocks import to_fp16
from semdialect.golden.decompose import salient_tokens
from semdialect.golden.seda import SedaGroups, seda_groups

__all__ = [
    "FULL_SENTENCES",
    "QUICK_FRAMES",
    "QUICK_SENTENCES",
    "MiniLMRow",
    "Results",
    "VideoRow",
    "default_jobs",
    "run_eval",
]

#: sentences of a full run: 64 give 64·63/2 = 2016 sentence pairs for the Spearman
#: correlation while the run stays at a few minutes on 2 cores
FULL_SENTENCES = 64
#: sentences and video frames of ``--quick`` (a smoke run, not a measurement)
QUICK_SENTENCES = 6
QUICK_FRAMES = 3
#: code placeholder for "no residual" rows of a decomposed token (not a valid 4-bit code)
NO_CODE = 0xFF

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    del msg


# ----------------------------------------------------------------------------------- MiniLM
@dataclass
class MiniLMRow:
    """One variant's end-to-end MiniLM W4A4 run.

    Attributes:
        variant: the row.
        act_bits, weight_bits: bits per activation / weight element (metadata included).
        act_sqnr, iso_sqnr, out_sqnr: linear name → pooled SQNR (dB) of the layer input in the
            W4A4 run, of the variant applied to the FP32 run's input, and of the layer output.
        cos_mean, cos_min: sentence-embedding cosine to FP32, mean and worst.
        spearman: rank correlation of the pairwise cosine similarities (FP32 vs quantized).
        salient_fraction: decomposition rows / all rows (0 without decomposition).
    """

    variant: Variant
    act_bits: float
    weight_bits: float
    act_sqnr: dict[str, float]
    iso_sqnr: dict[str, float]
    out_sqnr: dict[str, float]
    cos_mean: float
    cos_min: float
    spearman: float
    salient_fraction: float

    @property
    def act_mean(self) -> float:
        """Activation SQNR of the W4A4 run, mean over the linears in dB."""
        return float(np.mean(list(self.act_sqnr.values())))

    @property
    def iso_mean(self) -> float:
        """Activation SQNR on the FP32 run's inputs, mean over the linears in dB."""
        return float(np.mean(list(self.iso_sqnr.values())))

    @property
    def out_mean(self) -> float:
        """Output SQNR, mean over the linears in dB."""
        return float(np.mean(list(self.out_sqnr.values())))

    @property
    def out_min(self) -> float:
        """Output SQNR of the worst linear, dB."""
        return float(np.min(list(self.out_sqnr.values())))


def minilm_variant(model: MiniLM, sentences: Sequence[str], variant: Variant,
                   weights: Weights, ref: Reference, ref_emb: np.ndarray) -> MiniLMRow:
    """End-to-end W4A4 run of one variant, measured against the FP32 run ``ref``/``ref_emb``."""
    weights.use(variant)
    hook = QuantHook(variant, weights, ref, rotated_linears(variant))
    emb = model.encode(sentences, linear=hook)
    names = model.linear_names
    total_bits = sum(hook.bits[n] for n in names)
    total_elems = sum(hook.elements[n] for n in names)
    cos_mean, cos_min, rho_s = embedding_metrics(ref_emb, emb)
    return MiniLMRow(
        variant=variant,
        act_bits=total_bits / total_elems,
        weight_bits=hook.weight_bits,
        act_sqnr={n: hook.act[n].db for n in names},
        iso_sqnr={n: hook.iso[n].db for n in names},
        out_sqnr={n: hook.out[n].db for n in names},
        cos_mean=cos_mean,
        cos_min=cos_min,
        spearman=rho_s,
        salient_fraction=hook.salient_rows / hook.rows if variant.decompose else 0.0,
    )


@dataclass
class Fp32Run:
    """The MiniLM FP32 run every variant is measured against.

    Attributes:
        model: the loaded model; texts: the sentences; ref: per-linear inputs, outputs and
        attention maps; embeddings: (n, 384) sentence embeddings.
    """

    model: MiniLM
    texts: tuple[str, ...]
    ref: Reference
    embeddings: np.ndarray


#: this process's FP32 run (each worker records its own once; the run is deterministic)
_FP32: dict[tuple[str, ...], Fp32Run] = {}


def fp32_run(texts: Sequence[str], step: Progress = _quiet) -> Fp32Run:
    """The FP32 run on ``texts``, recorded once per process (only the latest is kept)."""
    key = tuple(texts)
    if key not in _FP32:
        _FP32.clear()
        model = load_minilm()
        step(f"MiniLM FP32 reference run ({len(key)} sentences) in process {os.getpid()}")
        ref = Reference()
        emb = model.encode(list(key), linear=ref)
        _FP32[key] = Fp32Run(model, key, ref, emb)
    return _FP32[key]


# ------------------------------------------------------------------------------------ video
@dataclass
class VideoRow:
    """One variant on the video tokens: bits/element, token SQNR (dB), temporal consistency."""

    variant: Variant
    bits: float
    sqnr: float
    temporal: Temporal


@dataclass
class VideoData:
    """The video tokens (N, 64) with their (T, H, W) layout, proxy attention map (1, N, N),
    FP16 copy, SeDA groups and salient rows."""

    tokens: np.ndarray
    layout: tuple[int, int, int]
    attention: np.ndarray
    x16: np.ndarray
    groups: SedaGroups
    salient: np.ndarray


def video_variant(v: Variant, data: VideoData) -> VideoRow:
    """SQNR and temporal consistency of one variant on the video tokens."""
    x = data.tokens
    salient = data.salient if v.rho == RHO else salient_tokens(data.attention, v.rho)
    r = reconstruct(x, v, data.groups, salient, "video tokens", rotated=video_rotated(v))
    if r.q is None:  # FP16: the stored code is the FP16 bit pattern
        t = temporal_consistency(x, data.layout, r.deq, data.x16.view(np.uint16))
        return VideoRow(v, r.bits, sqnr_db(x, r.deq), t)
    codes, dialect = r.q.codes, r.q.dialect
    if r.qr is not None:
        # a token's stored codes: main codes, then its residual's (NO_CODE if not salient)
        extra = np.full_like(codes, NO_CODE)
        extra[r.salient] = r.qr.codes
        codes = np.concatenate([codes, extra], axis=1)
        extra_d = np.full_like(dialect, NO_CODE)
        extra_d[r.salient] = r.qr.dialect
        dialect = np.concatenate([dialect, extra_d], axis=1)
    t = temporal_consistency(x, data.layout, r.deq, codes, dialect)
    return VideoRow(v, r.bits, sqnr_db(x, r.deq), t)


def load_video(frames: int | None) -> VideoData:
    """The first ``frames`` frames of the shipped video (None: all), ready for the variants."""
    tokens, layout = load_video_tokens(frames=slice(0, frames))
    attention = self_similarity_attention(tokens)
    return VideoData(
        tokens=tokens,
        layout=layout,
        attention=attention,
        x16=to_fp16(tokens, "video tokens", block_of(None)),
        groups=seda_groups(attention, layout, TAU),
        salient=salient_tokens(attention, RHO),
    )


# ---------------------------------------------------------------------------------- running
@dataclass
class Results:
    """Everything ``semdialect eval`` measured (rendered by ``reports.accuracy``).

    Attributes:
        command: the command line, recorded in the report.
        sentences, tokens_per_sentence: the MiniLM inputs.
        minilm: one row per variant, in :data:`VARIANTS` order.
        minilm_study, video_study: the decomposition study's rows.
        video_layout: (T, H, W) of the video tokens; video_rows: one row per variant.
        targets: the fidelity targets (:func:`evaluation.fidelity.fidelity_targets`).
        seconds: wall time; quick: a ``--quick`` smoke run; jobs: worker processes.
    """

    command: str
    sentences: list[str]
    tokens_per_sentence: list[int]
    minilm: list[MiniLMRow]
    minilm_study: list[StudyRow]
    video_layout: tuple[int, int, int]
    video_rows: list[VideoRow]
    video_study: list[StudyRow]
    targets: list[TargetRow] = field(default_factory=list)
    seconds: float = 0.0
    quick: bool = False
    jobs: int = 1


def _task_cost(kind: str, index: int) -> float:
    """Relative cost of a task (roughly as measured on a quick run), to start the longest ones
    first. NVFP4 and INT4 dominate: golden's SPEC §8 GEMM sums every block sequentially."""
    if kind == "video":
        return 0.2
    if kind == "study":
        return 3.5
    if kind == "targets":
        return 8.0
    v = VARIANTS[index]
    if v.is_fp16:
        return 1.0
    if not v.pow2_scaled:
        return 20.0
    return 2.0 + 3.0 * v.decompose + 1.0 * v.seda + 2.0 * (v.rotate == "calibrated")


#: the tasks, costliest first, so that the pool runs them longest-first
TASKS: tuple[tuple[str, int], ...] = tuple(sorted(
    [("minilm", i) for i in range(len(VARIANTS))]
    + [("study", 0), ("video", 0), ("targets", 0)],
    key=lambda task: -_task_cost(*task),
))


def _task_label(kind: str, index: int) -> str:
    if kind == "minilm":
        return f"MiniLM W4A4: {VARIANTS[index].label}"
    return {"study": "decomposition study, MiniLM", "targets": "fidelity targets"}.get(
        kind, "video tokens (all sections)")


def _run_task(kind: str, index: int, texts: Sequence[str], frames: int | None,
              step: Progress) -> tuple[str, int, Any]:
    """One independent task (a worker process runs it; so does a single-process run)."""
    step(f"started {_task_label(kind, index)}")
    result: Any
    if kind == "minilm":
        run = fp32_run(texts, step)
        result = minilm_variant(run.model, run.texts, VARIANTS[index], Weights(), run.ref,
                                run.embeddings)
    elif kind == "study":
        run = fp32_run(texts, step)
        result = minilm_study(run.model, run.ref, Weights(), step)
    elif kind == "targets":
        result = fidelity_targets(fp32_run(texts, step).ref, step)
    else:
        video = load_video(frames)
        result = (video.layout, [video_variant(v, video) for v in VARIANTS],
                  video_study(video.tokens, video.x16, video.attention))
    return kind, index, result


def default_jobs() -> int:
    """Worker processes: the CPUs this process may use (joblib's count; 2 on the target)."""
    return max(1, joblib.cpu_count())


def run_eval(sentences: int | None = None, quick: bool = False, progress: Progress = _quiet,
             command: str = "semdialect eval", jobs: int | None = None) -> Results:
    """Run every measurement.

    Args:
        sentences: MiniLM sentences (default :data:`FULL_SENTENCES`; quick:
            :data:`QUICK_SENTENCES`); at least 3.
        quick: small smoke run (few sentences, :data:`QUICK_FRAMES` video frames).
        progress: called with one line per step (the CLI prints it on stderr); worker
            processes call it too, so it must survive pickling (cloudpickle).
        command: the command line, recorded in the report.
        jobs: worker processes for the 12 independent tasks (10 MiniLM variants, the MiniLM
            decomposition study, the video); default :func:`default_jobs`; 1 runs everything
            in this process. The results do not depend on it.

    Raises:
        ValueError: fewer than 3 sentences (Spearman needs 3 pairs).
    """
    start = time.perf_counter()
    n_sent = sentences if sentences is not None else (QUICK_SENTENCES if quick else
                                                      FULL_SENTENCES)
    if isinstance(n_sent, bool) or not isinstance(n_sent, int) or n_sent < 3:
        raise ValueError(f"sentences: need an integer >= 3 (Spearman needs 3 pairs), "
                         f"got {n_sent!r}")
    jobs = default_jobs() if jobs is None else jobs
    # workers tokenize too: keep the tokenizers library from using its thread pool
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def step(msg: str) -> None:
        progress(f"[{time.perf_counter() - start:6.1f} s] {msg}")

    step("loading MiniLM and the sentences")
    texts = stdlib_sentences(n_sent)
    _, mask = load_minilm().tokenize(texts)
    step(f"{n_sent} sentences, {int(mask.sum())} tokens; {len(TASKS)} tasks on {jobs} "
         f"worker process{'es' if jobs > 1 else ''}")
    frames = QUICK_FRAMES if quick else None
    results: dict[tuple[str, int], Any] = {}
    calls = (joblib.delayed(_run_task)(kind, index, texts, frames, step)
             for kind, index in TASKS)
    try:
        parallel = joblib.Parallel(n_jobs=jobs, batch_size=1, return_as="generator_unordered")
        for kind, index, result in parallel(calls):
            results[(kind, index)] = result
            step(f"done {len(results)}/{len(TASKS)}: {_task_label(kind, index)}")
    finally:
        _FP32.clear()  # a single-process run keeps no model in memory

    layout, video_rows, vstudy = results[("video", 0)]
    res = Results(
        command=command,
        sentences=texts,
        tokens_per_sentence=[int(c) for c in mask.sum(axis=1)],
        minilm=[results[("minilm", i)] for i in range(len(VARIANTS))],
        minilm_study=results[("study", 0)],
        video_layout=layout,
        video_rows=video_rows,
        video_study=vstudy,
        targets=results[("targets", 0)],
        quick=quick,
        jobs=jobs,
    )
    res.seconds = time.perf_counter() - start
    return res
