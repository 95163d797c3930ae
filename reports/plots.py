"""Plots of the generated CSVs (matplotlib, Agg backend, PNG files).

Every function takes already-computed rows (read from ``reports/out/*.csv``) and writes one
PNG; nothing here computes a number the models own.
"""

from __future__ import annotations

import csv
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def accuracy_vs_bits(rows: Sequence[Mapping[str, str]], out: Path, star: str = "") -> Path:
    """SQNR vs bits/element per format: MiniLM layer-output SQNR and video-token SQNR; rows
    whose label starts with ``star`` (the proposal's format name, if given) are stars."""
    panels = (
        ("minilm_w4a4", "out_sqnr_db_mean_over_layers", "act_bits_per_element",
         "MiniLM W4A4: layer-output SQNR (dB)"),
        ("video", "sqnr_db", "act_bits_per_element", "Video tokens: SQNR (dB)"),
    )
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (table, metric, bits_key, title) in zip(axes, panels, strict=True):
        pts = [(float(r[bits_key]), float(r["value"]), r["row"]) for r in rows
               if r["table"] == table and r["metric"] == metric and r["row"] != "fp16"]
        for bits, val, label in pts:
            marker = "*" if star and label.startswith(star) else "o"
            ax.scatter(bits, val, s=70, marker=marker)
            ax.annotate(label, (bits, val), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        ax.set_xlabel("bits / element (activations, incl. metadata)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    return _save(fig, out)


def samples_sqnr_vs_bits(rows: Sequence[Mapping[str, str]], out: Path,
                         max_bits: float = 6.0, star: str = "") -> Path:
    """SQNR vs bits/element of the 4-bit formats on each sample tensor
    (``samples_accuracy.csv`` written by ``make sim``), one panel per tensor, one colour per
    format (shared legend); formats whose label starts with ``star`` (the proposal's format
    name, if given) are stars. Formats above ``max_bits`` (fp16, MXINT8) are left out of the
    axes; the summary's table has them."""
    formats = [f for f in dict.fromkeys(r["format"] for r in rows)
               if all(float(r["bits_per_element"]) <= max_bits for r in rows
                      if r["format"] == f)]
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(formats)}
    tensors = list(dict.fromkeys(r["tensor"] for r in rows))
    cols = min(3, len(tensors))
    nrows = -(-len(tensors) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.0 * cols, 3.6 * nrows), squeeze=False)
    for ax, tensor in zip(axes.ravel(), tensors, strict=False):
        for r in rows:
            if r["tensor"] != tensor or r["format"] not in colours:
                continue
            starred = bool(star) and r["format"].startswith(star)
            ax.scatter(float(r["bits_per_element"]), float(r["sqnr_db"]),
                       s=140 if starred else 60, marker="*" if starred else "o",
                       color=colours[r["format"]], label=r["format"])
        ax.set_title(tensor, fontsize=9)
        ax.set_xlabel("bits / element (incl. scales and dialect ids)")
        ax.set_ylabel("SQNR (dB)")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(tensors):]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=8, ncol=1,
               bbox_to_anchor=(0.98, 0.05))
    fig.suptitle(f"SQNR of the formats up to {max_bits:g} bits/element on the shipped tensors")
    return _save(fig, out)


def area_bars(rows: Sequence[Mapping[str, str]], out: Path) -> Path:
    """Array logic per design (``array_area.csv``), stacked by part, in kGE."""
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        groups[r["design"]][r["part"]] = float(r["nand2_eq"]) / 1000
    parts = list(dict.fromkeys(r["part"] for r in rows))
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(names)), 4.8))
    bottom = np.zeros(len(names))
    for part in parts:
        vals = np.array([groups[d].get(part, 0.0) for d in names])
        ax.bar(names, vals, bottom=bottom, label=part)
        bottom += vals
    for x, total in enumerate(bottom):
        ax.annotate(f"{total:,.0f}", (x, total), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("kGE (NAND2 equivalents, Yosys generic synthesis)")
    ax.set_title("Array logic per design (estimate; activation SRAM not included)")
    ax.legend(fontsize=8)
    return _save(fig, out)


def ablation_bars(rows: Sequence[Mapping[str, str]], out: Path) -> Path:
    """Per-feature area ablation (``area.csv``): one panel per axis, variants stacked by module
    role (kGE); the baseline variant's bar is hatched."""
    axes_rows: dict[str, list[Mapping[str, str]]] = defaultdict(list)
    for r in rows:
        axes_rows[r["axis"]].append(r)
    n = len(axes_rows)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.6), squeeze=False)
    for ax, (axis, rs) in zip(axes[0], axes_rows.items(), strict=True):
        variants = list(dict.fromkeys(r["variant"] for r in rs))
        roles = list(dict.fromkeys(r["role"] for r in rs))
        bottom = np.zeros(len(variants))
        for mod in roles:
            vals = np.array([sum(float(r["nand2_eq"]) / 1000 for r in rs
                                 if r["variant"] == v and r["role"] == mod) for v in variants])
            ax.bar(range(len(variants)), vals, bottom=bottom, label=mod)
            bottom += vals
        for x, v in enumerate(variants):
            if any(r["variant"] == v and r["baseline"] == "1" for r in rs):
                ax.bar(x, bottom[x], fill=False, hatch="//", edgecolor="k", lw=0)
        ax.set_xticks(range(len(variants)), variants, rotation=35, ha="right", fontsize=7)
        ax.set_title(axis, fontsize=9)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("kGE (NAND2 equivalents)")
    return _save(fig, out)


def throughput_per_layer(rows: Sequence[Mapping[str, str]], out: Path) -> Path:
    """Effective TOPS and utilization per layer of a workload, one series per PE kind."""
    by_pe: dict[str, list[Mapping[str, str]]] = defaultdict(list)
    for r in rows:
        by_pe[r["design"]].append(r)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 7), sharex=True)
    markers = "o^sx"
    width = 0.6 / max(1, len(by_pe))
    for i, (design, rs) in enumerate(by_pe.items()):
        # one marker per layer (no connecting lines: layers are categories), designs side by
        # side so equal values stay visible
        x = np.arange(len(rs)) + (i - (len(by_pe) - 1) / 2) * width
        style = {"marker": markers[i % len(markers)], "ls": "none", "label": design}
        ax1.plot(x, [float(r["effective_tops"]) for r in rs], **style)
        ax2.plot(x, [100 * float(r["utilization"]) for r in rs], **style)
        ax2.set_xticks(np.arange(len(rs)), [r["layer"] for r in rs], rotation=90, fontsize=6)
    ax1.set_ylabel("effective TOPS at Fmax")
    ax2.set_ylabel("utilization (%)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    return _save(fig, out)


def dialect_histograms(counts: Mapping[str, np.ndarray], out: Path) -> Path:
    """Share of blocks choosing each dialect, one panel per (tensor, formatbook)."""
    n = len(counts)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.2 * n), squeeze=False)
    for ax, (label, hist) in zip(axes[:, 0], counts.items(), strict=True):
        share = hist / max(1, hist.sum())
        ax.bar(np.arange(len(hist)), 100 * share)
        ax.set_ylabel("% blocks")
        ax.set_title(label, fontsize=9)
        ax.set_xticks(np.arange(len(hist)))
        ax.tick_params(axis="x", labelsize=6)
    axes[-1, 0].set_xlabel("dialect id")
    return _save(fig, out)


def roofline(peaks: Mapping[str, float], bandwidth_gbs: float,
             points: Sequence[tuple[str, str, float, float]], out: Path, note: str = "") -> Path:
    """Roofline of the system model: attainable TOPS vs operational intensity (ops per DRAM
    byte of the chosen mapping), one roof per design (``peaks``: design → peak TOPS at its
    clock) under the configured DRAM bandwidth, and one point per (design, layer, intensity,
    attained TOPS) of :mod:`sim.memory` (its cycles include the DRAM stalls)."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    colors = dict(zip(peaks, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4,
                      strict=False))
    lo = min([p[2] for p in points] + [0.1]) / 2
    hi = max([p[2] for p in points] + [1e4]) * 2
    oi = np.logspace(np.log10(lo), np.log10(hi), 200)
    for design, peak in peaks.items():
        ax.loglog(oi, np.minimum(peak, oi * bandwidth_gbs / 1e3), "-", color=colors[design],
                  lw=1, label=f"{design} roof ({peak:.3g} TOPS)")
    for design, layer, intensity, tops in points:
        ax.scatter(intensity, tops, s=14, color=colors.get(design, "k"), alpha=0.8)
        if design == next(iter(peaks)):
            ax.annotate(layer, (intensity, tops), fontsize=5)
    ax.set_xlabel("operational intensity (ops / DRAM byte, chosen mapping)")
    ax.set_ylabel("attained TOPS (model cycles incl. DRAM stalls)")
    ax.set_title(f"Roofline of the system model: DRAM {bandwidth_gbs:g} GB/s{note}", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out)


def model_vs_rtl(rows: Sequence[Mapping[str, str]], out: Path) -> Path:
    """Cycle-model prediction vs cycles measured on the RTL (Verilator), one point per GEMM."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    meas = np.array([float(r["rtl_cycles"]) for r in rows])
    pred = np.array([float(r["model_cycles"]) for r in rows])
    ax.loglog(meas, pred, "o")
    lim = [max(1.0, min(meas.min(), pred.min()) / 1.5), max(meas.max(), pred.max()) * 1.5]
    ax.loglog(lim, lim, "k:", lw=1)
    exact = int(np.sum(meas == pred))
    ax.set_title(f"cycle model vs RTL: {exact}/{len(rows)} exact")
    ax.set_xlabel("RTL cycles (Verilator)")
    ax.set_ylabel("model cycles")
    return _save(fig, out)


def cycles_breakdown(rows: Sequence[Mapping[str, str]], parts: Sequence[str], out: Path,
                     source: str = "") -> Path:
    """Where the cycles of one denoising step go, per GEMM class (``COMPUTE_REPORT.csv``
    rows: one per workload layer, its name as written, e.g. ``double.attn.qk``): one panel
    per design, a bar per layer stacked by part (the ``<part>_cycles`` columns × ``count``),
    as a fraction of the design's step cycles; ``parts[0]`` is the useful part (``compute``);
    ``source`` is printed under the title."""
    by_design: dict[str, list[Mapping[str, str]]] = defaultdict(list)
    for r in rows:
        by_design[r["design"]].append(r)
    n = len(by_design)
    fig, axes = plt.subplots(n, 1, figsize=(13, 2.4 * n + 2.2), sharex=True, squeeze=False)
    colours = {p: plt.get_cmap("tab10")(i) for i, p in enumerate(parts)}
    for ax, (design, rs) in zip(axes[:, 0], by_design.items(), strict=True):
        step = sum(float(r["step_cycles"]) for r in rs)
        x = np.arange(len(rs))
        bottom = np.zeros(len(rs))
        for part in parts:
            vals = np.array([float(r[f"{part}_cycles"]) * int(r["count"]) / step for r in rs])
            ax.bar(x, 100 * vals, bottom=100 * bottom, color=colours[part], label=part)
            bottom += vals
        ax.set_ylim(0, 100 * bottom.max() * 1.12)
        ax.set_ylabel("% of step cycles")
        other = 1 - sum(float(r[f"{parts[0]}_cycles"]) * int(r["count"]) for r in rs) / step
        ax.set_title(f"{design}: {100 * other:.2f} % of the step's cycles not {parts[0]}",
                     fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.set_xticks(x, [r["layer"] for r in rs], rotation=90, fontsize=6)
    axes[0, 0].legend(fontsize=7, ncol=len(parts), loc="upper left")
    fig.suptitle("Where the cycles of one denoising step go, per GEMM class"
                 + "".join(f"\n{line}" for line in textwrap.wrap(source, 160)), fontsize=9)
    return _save(fig, out)
