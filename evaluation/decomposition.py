"""The decomposition study: attention- and ERR-selected salient tokens against random and oracle.

The configured (SemanticDialect) design's main path (its format with ``lut`` over the whole
formatbook); the residual
R = fp16(x - deq(Q(x))) of the salient rows is quantized in the same format (SPEC §6). At each
ρ of :data:`STUDY_RHOS` the same number of salient rows n_S = ⌈ρ·N⌉ is chosen four ways:
*attention* (the tokens receiving the most attention, SPEC §6; the design's default rule),
*err* (the highest ERR-sum score: the main path's own minimum ``lut`` block costs summed per
row, :mod:`semdialect.golden.selector_saliency`), *random* (uniform, one draw per
:data:`SEEDS` seed) and *oracle* (the rows with the largest quantization error
‖x − deq(Q(x))‖², a reference that needs the exact error). ρ = 0 is the main path alone.

MiniLM (:func:`minilm_study`): every linear on its FP32 input (isolated layers, so every
selection sees identical inputs). Video (:func:`video_study`): token SQNR.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from semdialect.designs import configured_design
from semdialect.evaluation.hooks import Reference, Weights, layer_of
from semdialect.evaluation.metrics import row_noise
from semdialect.evaluation.minilm import MiniLM
from semdialect.evaluation.variants import CONFIG, block_of
from semdialect.golden import gemm_quantized, quantize
from semdialect.golden.blocks import to_fp16
from semdialect.golden.decompose import n_salient, residual, saliency_order, salient_tokens
from semdialect.golden.metrics import sqnr_db_from_sums
from semdialect.golden.selector_saliency import err_saliency_quantized, top_rows

__all__ = ["SEEDS", "SELECTIONS", "STUDY_RHOS", "StudyRow", "minilm_study", "video_study"]

#: ρ values of the study; random selections are averaged over SEEDS seeds
STUDY_RHOS = ("0.02", "0.05", "0.1")
SEEDS = 5
#: the ways of choosing the salient rows, in table order
SELECTIONS = ("attention", "err", "random", "oracle")

Progress = Callable[[str], None]


@dataclass
class StudyRow:
    """One (ρ, selection) of the decomposition study.

    Attributes:
        rho: salient fraction ρ as written ("0" = no decomposition).
        selection: "none", "attention", "err", "random" or "oracle".
        bits: activation bits per element, residual rows included.
        salient_fraction: salient rows / all rows (0..1).
        values: metric → one SQNR in dB per seed (a single value unless random).
        weight_bits: bits per element of the design's weights (the video table repeats it).
    """

    rho: str
    selection: str
    bits: float
    salient_fraction: float
    values: dict[str, list[float]]
    weight_bits: float

    def mean(self, metric: str) -> float:
        """Mean over the seeds, dB."""
        return float(np.mean(self.values[metric]))

    def std(self, metric: str) -> float:
        """Standard deviation over the seeds (population), dB."""
        return float(np.std(self.values[metric]))


def _selections(rho: str, n: int, attn: Any, err_scores: np.ndarray, noise: np.ndarray,
                key: tuple[int, ...]) -> dict[tuple[str, int], np.ndarray]:
    """Salient rows per (selection, seed) for one sequence of ``n`` rows (one layer's map).

    ``err_scores``: exact ERR-sum score per row (Python ints, from the main path's own
    quantization); ``noise``: per-row squared quantization error (the oracle's score);
    ``key`` seeds the random draws together with the seed number.
    """
    ns = n_salient(rho, n)
    sel = {("attention", 0): salient_tokens(attn, rho),
           ("err", 0): top_rows(err_scores, rho),
           ("oracle", 0): np.sort(saliency_order(noise)[:ns])}
    for seed in range(SEEDS):
        rng = np.random.default_rng((seed,) + key)
        sel[("random", seed)] = np.sort(rng.choice(n, ns, replace=False))
    return sel


class _StudyAcc:
    """Pooled (signal, noise) sums per (ρ, selection, seed, metric + linear)."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str, int, str], list[float]] = {}
        self.bits: Counter[tuple[str, str]] = Counter()
        self.salient: Counter[tuple[str, str]] = Counter()

    def add(self, key: tuple[str, str, int, str], signal: float, noise: float) -> None:
        s = self.sums.setdefault(key, [0.0, 0.0])
        s[0] += signal
        s[1] += noise

    def db(self, key: tuple[str, str, int, str]) -> float:
        return sqnr_db_from_sums(*self.sums[key])


def minilm_study(model: MiniLM, ref: Reference, weights: Weights,
                 progress: Progress) -> list[StudyRow]:
    """Decomposition study on MiniLM: every linear on its FP32 inputs.

    For each linear and sequence: Q(X) and the residual of EVERY row are quantized once;
    a salient set S then takes deq(Q(x)) + deq(Q(R)) and Y_main + Y_resid on its rows.
    This equals ``decomposed_linear(x, w, fmt, salient=S)`` bit for bit (dialect blocks are
    per row and the SPEC §5 GEMM is exact per row; tested in tests/test_evaluate.py) while
    sharing the main path among all selections.
    """
    sd = configured_design()
    weights.use(sd)
    fmt, b = sd.weight_format(CONFIG), block_of(sd)
    acc = _StudyAcc()
    names = model.linear_names
    elems: Counter[str] = Counter()
    weight_bits = 0.0
    for i, name in enumerate(names):
        if i % 6 == 0:
            progress(f"decomposition study, MiniLM layer {layer_of(name)}")
        w, bias = model.linear_weights(name)
        qw = weights.q(name, w, fmt, b)
        weight_bits = qw.bits_per_element
        layer = layer_of(name)
        for k, (x, y_ref) in enumerate(ref.xy[name]):
            n = x.shape[0]
            x16 = to_fp16(x, f"X of {name}", b)
            qx = quantize(x16, fmt, block=b, name=f"X of {name}")
            scores = err_saliency_quantized(x16, qx, name=f"X of {name}")
            qr = quantize(residual(x16, qx), fmt, block=b, name=f"residual of {name}")
            y_main = gemm_quantized(qx, qw)
            y0 = y_main + bias
            y1 = (y_main + gemm_quantized(qr, qw)) + bias  # RNE_fp32(main + resid), then bias
            x0 = qx.dequant.astype(np.float64)
            x1 = x0 + qr.dequant
            a0, a1 = row_noise(x, x0), row_noise(x, x1)
            o0, o1 = row_noise(y_ref, y0), row_noise(y_ref, y1)
            a_sig = float(np.sum(np.square(x, dtype=np.float64)))
            o_sig = float(np.sum(np.square(y_ref, dtype=np.float64)))
            elems[name] += x.size
            acc.add(("0", "none", 0, "act" + name), a_sig, float(a0.sum()))
            acc.add(("0", "none", 0, "out" + name), o_sig, float(o0.sum()))
            acc.bits[("0", "none")] += qx.bits_per_element * x.size
            for rho in STUDY_RHOS:
                sel = _selections(rho, n, ref.maps[layer][k], scores, a0, (layer, k))
                for (how, seed), s in sel.items():
                    a_noise = float(a0.sum() - a0[s].sum() + a1[s].sum())
                    o_noise = float(o0.sum() - o0[s].sum() + o1[s].sum())
                    acc.add((rho, how, seed, "act" + name), a_sig, a_noise)
                    acc.add((rho, how, seed, "out" + name), o_sig, o_noise)
                    if seed == 0:
                        acc.bits[(rho, how)] += (qx.bits_per_element + qr.bits_per_element
                                                 * s.size / n) * x.size
                        acc.salient[(rho, how)] += s.size
    total = sum(elems.values())
    rows_per_pass = sum(x.shape[0] for x, _ in ref.xy[names[0]]) * len(names)
    out = []
    for rho, how in [("0", "none")] + [(r, h) for r in STUDY_RHOS for h in SELECTIONS]:
        seeds = range(SEEDS) if how == "random" else range(1)
        values = {
            metric: [float(np.mean([acc.db((rho, how, s, metric + n)) for n in names]))
                     for s in seeds]
            for metric in ("act", "out")
        }
        out.append(StudyRow(rho, how, acc.bits[(rho, how)] / total,
                            acc.salient[(rho, how)] / rows_per_pass, values, weight_bits))
    return out


def video_study(tokens: np.ndarray, x16: np.ndarray, attention: np.ndarray) -> list[StudyRow]:
    """Decomposition study on video tokens: token SQNR (dB) per (ρ, selection).

    Args:
        tokens: (N, d) FP32 tokens (the reference); x16: the same rounded to FP16.
        attention: (H, N, N) attention map the *attention* selection reads.
    """
    sd = configured_design()
    fmt, b = sd.weight_format(CONFIG), block_of(sd)
    x = tokens
    n = x.shape[0]
    q = quantize(x16, fmt, block=b, name="video tokens")
    scores = err_saliency_quantized(x16, q, name="video tokens")
    qr = quantize(residual(x16, q), fmt, block=b, name="video residual")
    weight_bits = fmt.bits_per_element(b)
    x0 = q.dequant.astype(np.float64)
    x1 = x0 + qr.dequant
    e0, e1 = row_noise(x, x0), row_noise(x, x1)
    signal = float(np.sum(np.square(x, dtype=np.float64)))
    rows = [StudyRow("0", "none", q.bits_per_element, 0.0,
                     {"sqnr": [sqnr_db_from_sums(signal, e0.sum())]}, weight_bits)]
    for rho in STUDY_RHOS:
        sel = _selections(rho, n, attention, scores, e0, ())
        for how in SELECTIONS:
            vals = []
            for (h, _), s in sel.items():
                if h == how:
                    vals.append(sqnr_db_from_sums(signal,
                                                  float(e0.sum() - e0[s].sum() + e1[s].sum())))
            ns = n_salient(rho, n)
            bits = q.bits_per_element + qr.bits_per_element * ns / n
            rows.append(StudyRow(rho, how, bits, ns / n, {"sqnr": vals}, weight_bits))
    return rows
