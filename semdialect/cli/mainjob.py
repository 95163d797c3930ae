"""``semdialect sim`` — the project's main job, end to end on one configuration.

Stages (progress on the terminal, results in ``reports/out/``):

1. golden model: quantize the shipped real tensors (MiniLM weights/activations, video tokens)
   and two synthetics in every format (``samples_accuracy.csv``, dialect usage);
2. RTL: one GEMM tile of the configuration through :class:`rtl.gemm_core.GemmCore` on
   Verilator, bit-exact with the golden model, its cycles against the cycle model
   (``model_vs_rtl.csv``, with every GEMM the testbenches measured in ``build/cycles/``);
3. cycle model on a video-DiT workload (default Open-Sora 2.0, 256px) for SemanticDialect,
   BlockDialect, MXFP4 and MXINT8 arrays (``COMPUTE_REPORT.csv``, ``BANDWIDTH_REPORT.csv``:
   cycles, where they go, the reason of every layer below 80 % utilization, bytes and the
   drain/frontend bandwidth), and the utilization of every shipped configuration × shipped
   workload × hardware design (``utilization.csv``, a second or two);
4. area: Yosys synthesis of the per-feature ablations (``area.csv``) and each design's array
   logic (``array_area.csv``), iCE40 Fmax of the PE core and the selector (``fmax.csv``), see
   :mod:`sim.ablation`;
5. energy: pJ/MAC from the versioned assumptions table (``energy.csv``, an ESTIMATE): DRAM
   carries the compulsory traffic (X, W and Y once, plus residual rows), the on-chip SRAM
   what the core's streams carry (the cycle model's bytes: weights re-sent per row tile, a
   run-time W through the frontend); the frontend also quantizes a run-time W
   (``static = none``), and decomposition adds its second pass's datapath;

then ``summary.md`` and the plots (:mod:`reports.build`).
"""

from __future__ import annotations

import csv
import functools
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from semdialect.config import Config, load_config, resolve_config, shipped_configs
from semdialect.designs import DESIGNS, configured_design
from semdialect.evaluation.compare import error_rows
from semdialect.golden import quantize
from semdialect.outdir import check_out_dir, staged_dir
from semdialect.paths import build_dir
from semdialect.sim.cycles import gemm_cycles
from semdialect.sim.model import (
    ASSUMED_CLOCK_MHZ,
    LayerResult,
    model_designs,
    model_workload,
    step_cycles,
    step_utilization,
    utilization_rows,
    write_reports,
    write_utilization,
)
from semdialect.sim.model import Design as CycleDesign
from semdialect.sim.workloads import Gemm, load_workload, shipped_workloads, workload_path

#: files of the area stage, and of its Fmax part
AREA_OUTPUTS = ("area.csv", "array_area.csv", "area.png", "ablation.png")
FMAX_OUTPUTS = ("fmax.csv", "fmax_notes.txt")
#: files of the liberty (ASIC) part of the area stage: figures, or why they are missing
ASIC_OUTPUTS = ("asic.csv", "asic_missing.txt")
#: files of the memory stage (:func:`stage_memory`)
MEMORY_OUTPUTS = ("MEMORY_REPORT.csv", "memory_step.csv")
#: which stages ran (``stage,status`` rows; the summary lists them)
STAGES_CSV = "stages.csv"
#: every file a run may write besides plots (``*.png``) and ``summary.md``, which the report
#: builder owns; an earlier run's copy of any of them never survives into a new output
#: folder, whatever this run skipped (other files of ``--out`` are carried over)
SIM_OUTPUTS = frozenset({
    "samples_accuracy.csv", "dialect_usage.csv", "model_vs_rtl.csv", *AREA_OUTPUTS,
    *FMAX_OUTPUTS, *ASIC_OUTPUTS, *MEMORY_OUTPUTS, "COMPUTE_REPORT.csv",
    "BANDWIDTH_REPORT.csv", "utilization.csv", "energy.csv", STAGES_CSV,
})
#: ``--rho``: a plain decimal (optional exponent of at most 3 digits, so that parsing it
#: into a Fraction is instant), at most this many characters
_RHO_TEXT = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_RHO_MAX_CHARS = 40


def sim_owned(name: str) -> bool:
    """True for the files a ``semdialect sim`` run writes into its output folder."""
    return name in SIM_OUTPUTS or name == "summary.md" or name.endswith(".png")


def parse_rho(rho: Fraction | str) -> Fraction:
    """``--rho`` parsed once into an exact Fraction in [0, 1); a one-line ``ValueError``
    naming ``--rho`` otherwise (not a decimal, NaN, infinite, ``1e400``, negative, >= 1)."""
    if isinstance(rho, Fraction):
        value = rho
    else:
        text = str(rho).strip()
        if len(text) > _RHO_MAX_CHARS or not _RHO_TEXT.fullmatch(text):
            raise ValueError(f"--rho: expected a decimal number in [0, 1), got {str(rho)[:50]!r}")
        value = Fraction(text)
    if not 0 <= value < 1:
        raise ValueError(f"--rho: must be in [0, 1) (a fraction of the tokens), got {rho!s:.50}")
    return value


def _load_workload_arg(workload: str) -> list[Gemm]:
    """``--workload``: a shipped name or a CSV path, read and validated completely."""
    try:
        return load_workload(workload_path(workload))
    except ValueError as exc:
        raise ValueError(f"--workload: {exc}") from None


def _say(msg: str) -> None:
    print(msg, flush=True)


def _write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(header))
        w.writerows(rows)


def stage_golden(cfg: Config, out: Path) -> tuple[list[list[object]], dict[str, np.ndarray]]:
    """SQNR of every format on the sample tensors, and sd32/dfp4 dialect usage counts."""
    from semdialect.evaluation.samples import sample_tensors
    from semdialect.reports.tables import format_error_table

    rows: list[list[object]] = []
    usage: dict[str, np.ndarray] = {}
    # the formatbooks of the registry's dialect designs under cfg, with lut selection
    lut_books = {f.name: f for f in (d.weight_format(cfg) for d in DESIGNS.values()
                                     if d.pe is not None and d.pe.has_dialects)}
    for name, x, source in sample_tensors():
        table = list(error_rows(x, block=cfg.block, name=name, cfg=cfg))
        _say(format_error_table(table, f"\n{name} {x.shape} — {source}"))
        rows += [[name, r.label, r.block, r.bits_per_element, r.sqnr_db, r.mse] for r in table]
        for book, fmt in lut_books.items():
            q = quantize(x, fmt, block=cfg.block)
            usage[f"{name} · {book} lut"] = np.bincount(q.dialect.ravel(),
                                                        minlength=fmt.formatbook.size)
    _write_csv(out / "samples_accuracy.csv",
               ["tensor", "format", "block", "bits_per_element", "sqnr_db", "mse"], rows)
    _write_csv(out / "dialect_usage.csv", ["tensor_format", "dialect", "blocks"],
               [[k, i, int(c)] for k, v in usage.items() for i, c in enumerate(v)])
    return rows, usage


#: ``semdialect sim`` runs the RTL stage of an array larger than this many PEs on a reduced
#: array (:func:`rtl_config`) unless ``--full-rtl``: the Verilog generation and Verilator build
#: of the shipped 8×8 default core (C-slow, d = 7) take ~12 min on 2 cores
RTL_FULL_PES = 8
#: the reduced array's largest rows × cols
RTL_REDUCED = (4, 2)


def rtl_config(cfg: Config, full: bool = False) -> Config:
    """The configuration the RTL stage builds: ``cfg`` itself when ``full`` or its array has
    at most :data:`RTL_FULL_PES` PEs, else ``cfg`` on a reduced array
    (:meth:`Config.on_array`: every ``[pipeline]`` stage, B, formatbook and selector kept)."""
    if full or cfg.rows * cfg.cols <= RTL_FULL_PES:
        return cfg
    return cfg.on_array(min(cfg.rows, RTL_REDUCED[0]), min(cfg.cols, RTL_REDUCED[1]))


def stage_rtl(cfg: Config, out: Path) -> list[dict[str, object]]:
    """GEMMs through the RTL of ``cfg`` (see :func:`rtl_config`) on Verilator; model-vs-RTL
    rows for every measured GEMM."""
    from semdialect.tb.gemm_run import case, run_gemm

    # a tile is rows × cols·d outputs (d = acc_stages: each PE interleaves d accumulations)
    r, c = cfg.rows, cfg.tile_cols
    # one full tile of the array, then a sweep for the cycle-model check: several row and
    # column tiles, ragged edges, K up to the generated limit, adversarial/NaN/max data
    cases = [case(r, c, 4, "random", 2024), case(2 * r, c, 8, "random", 2025),
             case(r + 3, c + 1, 3, "adversarial", 2026), case(1, 1, 1, "random", 2027),
             case(2 * r + 1, c - 1 or 1, 6, "nan", 2028), case(r, 2 * c, 2, "max", 2029)]
    run, gen_s, cycles_file = run_gemm(cfg, cases, functools.partial(gemm_cycles, cfg))
    measured = json.loads(cycles_file.read_text())
    shapes = ", ".join(f"{x['M']}×{x['N']}×{x['K']}" for x in measured[1:])
    _say(f"  GemmCore {cfg.name}: Y[{r}x{c}] = X·W with K = {4 * cfg.block} and "
         f"{len(cases) - 1} more shapes (M×N×K: {shapes}): "
         f"{run.tests} cocotb tests passed (bit-exact vs golden, with and without stalls); "
         f"generate {gen_s:.0f} s, build {run.build_seconds:.0f} s "
         f"({'built' if run.built else 'cached'}), run {run.test_seconds:.0f} s")
    rows = [{"config": cfg.name, "M": r["M"], "N": r["N"], "K": r["K"],
             "rtl_cycles": r["cycles"], "model_cycles": gemm_cycles(cfg, r["M"], r["N"], r["K"]),
             "source": "semdialect sim"} for r in measured]
    rows += tested_cycle_rows(build_dir() / "cycles")
    exact = sum(r["rtl_cycles"] == r["model_cycles"] for r in rows)
    _say(f"  cycle model vs RTL: {exact}/{len(rows)} GEMMs exact")
    _write_csv(out / "model_vs_rtl.csv", ["config", "M", "N", "K", "rtl_cycles", "model_cycles",
                                          "source"], [list(r.values()) for r in rows])
    return rows


def tested_cycle_rows(folder: Path) -> list[dict[str, object]]:
    """Model-vs-RTL rows of the GEMM cycles the Verilator tests measured
    (``tests/test_rtl_gemm_verilator.py`` writes ``<folder>/<config>.json``:
    ``{"config": <Config fields>, "gemms": [{"M", "N", "K", "cycles"}, ...]}``), the model
    recomputed for the configuration the file records (a reduced array included). A file
    without its configuration (an older format, possibly of an older RTL) is skipped, and
    said so."""
    rows: list[dict[str, object]] = []
    for f in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
            other = Config(**doc["config"])
            gemms = [(int(r["M"]), int(r["N"]), int(r["K"]), int(r["cycles"]))
                     for r in doc["gemms"]]
        except (OSError, ValueError, TypeError, KeyError):
            _say(f"  (skipped {f}: not a cycle record of the current format)")
            continue
        rows += [{"config": other.name, "M": m, "N": n, "K": k, "rtl_cycles": cycles,
                  "model_cycles": gemm_cycles(other, m, n, k), "source": f"tests ({f})"}
                 for m, n, k, cycles in gemms]
    return rows


def stage_cycles(cfg: Config, workload: str, rho: Fraction | str, out: Path, fmax_mhz: float,
                 gemms: Sequence[Gemm] | None = None) -> dict[str, list[LayerResult]]:
    """The cycle model on every design for one workload (``gemms``: its rows, already
    loaded; read from ``workload`` when None)."""
    if gemms is None:
        gemms = load_workload(workload_path(workload))
    results: dict[str, list[LayerResult]] = {}
    t0 = time.perf_counter()
    for d in model_designs(cfg):
        results[d.label] = model_workload(d, gemms)
    d = CycleDesign.of(configured_design(), cfg, rho)
    results[d.label] = model_workload(d, gemms)
    secs = time.perf_counter() - t0
    write_reports([r for rs in results.values() for r in rs], out, fmax_mhz)
    _say(f"  {workload}: {len(gemms)} GEMM shapes × {len(results)} designs in {secs:.2f} s")
    for label, rs in results.items():
        _say(f"  {label:42s} {step_cycles(rs):>16,d} cycles / denoising step, "
             f"{100 * step_utilization(rs):5.1f} % MAC utilization")
    return results


#: attention modes the memory stage compares (the configuration's ``[attention] fused`` is
#: one of them)
ATTENTION_MODES = (("separate", False), ("fused", True))


def stage_memory(cfg: Config, out: Path, clock_mhz: float, gemms: Sequence[Gemm],
                 rho: Fraction | str, clocks: dict[str, float] | None = None
                 ) -> list[dict[str, object]]:
    """The system model (:mod:`sim.memory`: per-core SRAMs, shared DRAM, the searched
    mapping of every GEMM, stalls, energy) of every design on the workload, with attention
    as separate GEMMs and fused: ``MEMORY_REPORT.csv`` (one row per layer, design and mode:
    the chosen mapping, core/stall cycles, the binding bound, DRAM bytes per operand) and
    ``memory_step.csv`` (per design and mode: time and energy per denoising step). Each
    design runs at its own 180 nm clock where ``clocks`` has it, else ``clock_mhz``."""
    from semdialect.sim.energy import load_assumptions
    from semdialect.sim.memory import DRAM_KEYS, evaluate_step

    dram_pj = load_assumptions().actions["dram_byte"].pj

    t0 = time.perf_counter()
    layer_rows: list[list[object]] = []
    steps: list[dict[str, object]] = []
    k_of = {g.layer: g.k for g in gemms}
    for mode, fused in ATTENTION_MODES:
        mcfg = replace(cfg, fused_attention=fused)
        for d in [*model_designs(mcfg), CycleDesign.of(configured_design(), mcfg, rho)]:
            mhz = (clocks or {}).get(d.name) or clock_mhz
            step = evaluate_step(d, gemms, mhz)
            for r in step.layers:
                mp = r.mapping
                layer_rows.append(
                    [d.label, mode, r.layer, r.kind, r.count,
                     *((mp.tm, mp.tn, mp.tk, mp.order, mp.split, mp.cores) if mp else
                       ("",) * 6),
                     # Tk < K: partial sums through the output adder (SPEC §9: not the
                     # single ascending accumulation of SPEC §5)
                     int(bool(mp and r.kind == "gemm" and mp.tk < k_of.get(r.layer, 0))),
                     r.core_cycles, round(r.stall_cycles, 1), round(r.cycles, 1), r.bound,
                     r.macs, *(round(r.dram_bytes.get(k, 0.0), 1) for k in DRAM_KEYS),
                     round(r.dram_total, 1), round(r.energy_total_pj / 1e6, 4)])
            steps.append({
                "design": d.label, "attention": mode, "clock_mhz": round(mhz, 1),
                "cycles": round(step.cycles), "core_cycles": round(step.core_cycles),
                "stall_pct": round(100 * step.stall_cycles / step.cycles, 2),
                "seconds_per_step": round(step.seconds, 3),
                "dram_gb_per_step": round(step.dram_bytes / 1e9, 3),
                "energy_j_per_step": round(step.energy_j, 3),
                "dram_energy_pct": round(100 * step.dram_bytes * dram_pj * 1e-12
                                         / step.energy_j, 1) if step.energy_j else 0.0,
                "utilization_pct": round(100 * step.utilization, 2)})
    _write_csv(out / "MEMORY_REPORT.csv",
               ["design", "attention", "layer", "kind", "count", "tm", "tn", "tk", "order",
                "split", "cores", "k_split", "core_cycles", "stall_cycles", "cycles", "bound",
                "macs",
                *(f"dram_{k}_bytes" for k in DRAM_KEYS), "dram_total_bytes",
                "energy_uj"], layer_rows)
    _write_csv(out / "memory_step.csv", list(steps[0]), [list(s.values()) for s in steps])
    _say(f"  {len(steps)} design × attention runs in {time.perf_counter() - t0:.2f} s "
         f"({cfg.cores} core(s), SRAM act/weight/out {cfg.act_sram_kib}/"
         f"{cfg.weight_sram_kib}/{cfg.out_sram_kib} KiB, DRAM {cfg.dram_gbps:g} GB/s)")
    for s in steps:
        _say(f"  {s['design']:42s} {s['attention']:8s} {s['seconds_per_step']:>10} s/step, "
             f"stalls {s['stall_pct']:5.1f} %, DRAM {s['dram_gb_per_step']:>9} GB/step, "
             f"{s['energy_j_per_step']:>9} J/step")
    return steps


def utilization_configs(cfg: Config) -> list[Config]:
    """Every shipped configuration, plus ``cfg`` when it is none of them (a user's file)."""
    configs = [resolve_config(name) for name in shipped_configs()]
    return configs if cfg in configs else [*configs, cfg]


def stage_utilization(cfg: Config, out: Path) -> list[list[object]]:
    """``utilization.csv``: the cycle model of every hardware design on every shipped
    workload under every shipped configuration (and ``cfg``): per layer and per step."""
    t0 = time.perf_counter()
    workloads = {name: load_workload(workload_path(name)) for name in shipped_workloads()}
    configs = utilization_configs(cfg)
    rows: list[list[object]] = []
    for other in configs:
        for name, gemms in workloads.items():
            for d in model_designs(other):
                rows += utilization_rows(other.name, name, model_workload(d, gemms))
    write_utilization(rows, out / "utilization.csv")
    _say(f"  utilization.csv: {len(configs)} configurations × {len(workloads)} workloads × "
         f"{len(model_designs(cfg))} designs in {time.perf_counter() - t0:.2f} s")
    return rows


def stage_asic(cfg: Config, out: Path, parts: list) -> dict[str, float]:
    """Liberty synthesis, OpenSTA timing and power of every module of each design's array
    (and of the configuration's format selector, timed alone), at 180 nm and projected to
    45/7 nm (:mod:`sim.ppa`): writes ``asic.csv`` and returns each design's 180 nm array
    clock (MHz). Without the cell library or OpenSTA, writes ``asic_missing.txt`` (the one-line
    reason) and returns {}: nothing is invented."""
    from semdialect.sim.ablation import module_verilog
    from semdialect.sim.asic import (
        DEFAULT_ACTIVITY,
        DEFAULT_PERIOD_NS,
        liberty_available,
        synthesize_liberty_many,
    )
    from semdialect.sim.ppa import CSV_HEADER as ASIC_HEADER
    from semdialect.sim.ppa import array_ppa
    from semdialect.sim.ppa import rows_for_csv as asic_rows

    reason = liberty_available()
    if reason is not None:
        _say(f"  liberty figures missing: {reason} — NAND2 estimate only")
        (out / "asic_missing.txt").write_text(reason + "\n")
        return {}
    t0 = time.perf_counter()
    selector = ("format selector (timed alone; inside each frontend lane)", "format_selector")
    plan: dict[str, list[tuple[str, str, int, Path]]] = {}
    for p in parts:
        plan.setdefault(p.design, []).append((p.part, p.module, p.count,
                                              module_verilog(p.cfg, p.module)))
    if cfg.select == "lut" and plan:
        first = next(iter(plan))
        plan[first].append((*selector, 0, module_verilog(cfg, "format_selector")))
    unique = list(dict.fromkeys((m, path) for rows in plan.values() for _, m, _, path in rows))
    _say(f"  liberty flow: {len(unique)} modules on {DEFAULT_PERIOD_NS:g} ns target, input "
         f"activity {DEFAULT_ACTIVITY:g}/cycle, 2 processes at a time (cached in build/area/)")
    reports = dict(zip(unique, synthesize_liberty_many(
        [{"verilog_path": path, "top": m} for m, path in unique], n_jobs=2,
        say=lambda text: _say(f"    {text}")), strict=True))
    arrays = []
    macs = {p.design: p.cfg.rows * p.cfg.cols * p.cfg.block for p in parts}
    for design, rows in plan.items():
        arrays += array_ppa(design, [(part, count, reports[(m, path)])
                                     for part, m, count, path in rows], macs[design])
    modules = {(design, part): m for design, rows in plan.items() for part, m, _, _ in rows}
    _write_csv(out / "asic.csv", ASIC_HEADER, asic_rows(arrays, modules))
    clocks: dict[str, float] = {}
    for a in arrays:
        if a.node == "180nm" and a.clock_mhz:
            clocks[a.design] = a.clock_mhz
        _say(f"  {a.design:16s} {a.node:>6s} {a.area_um2 / 1e6:8.2f} mm² "
             f"{a.clock_mhz or float('nan'):7.1f} MHz (limit: {a.limiting}) "
             f"{(a.power_w or float('nan')) * 1e3:9.1f} mW"
             f"{'  PROJECTION' if a.projected else ''}")
    _say(f"  liberty flow done in {time.perf_counter() - t0:.0f} s")
    return clocks


def stage_area(cfg: Config, out: Path, fmax: bool = True, full_ablation: bool = False
               ) -> tuple[float | None, dict[str, float]]:
    """Synthesize the per-feature ablation modules and each design's array logic
    (:mod:`sim.ablation`); with ``fmax`` place the PE core and the selector on iCE40 (an FPGA
    prototype figure); the liberty flow (:func:`stage_asic`) runs beside them in a thread of
    its own (its two processes and the Yosys/nextpnr ones share the cores: no core idles
    while the longest synthesis finishes). Writes ``area.csv``,
    ``array_area.csv``, ``fmax.csv`` and ``asic.csv``; returns the iCE40 clock (MHz) or None
    and each design's 180 nm ASIC array clock (MHz)."""
    from concurrent.futures import ThreadPoolExecutor

    from semdialect.sim.ablation import (
        CSV_HEADER,
        array_parts,
        rotator_overhead,
        rows_for_csv,
        run_area,
    )

    with ThreadPoolExecutor(max_workers=1) as liberty:
        asic_future = liberty.submit(stage_asic, cfg, out, array_parts(cfg))
        run = run_area(cfg, fmax=fmax, full=full_ablation, say=_say)
        asic_clocks = asic_future.result()
    _write_csv(out / "area.csv", CSV_HEADER, rows_for_csv(run.rows))
    _write_csv(out / "array_area.csv",
               ["design", "part", "module", "count", "unit_nand2_eq", "nand2_eq"],
               [[p.design, p.part, p.module, p.count, round(rep.nand2_eq, 1),
                 round(rep.nand2_eq * p.count, 1)] for p, rep in run.parts])
    totals: dict[str, float] = {}
    for p, rep in run.parts:
        totals[p.design] = totals.get(p.design, 0.0) + rep.nand2_eq * p.count
    for name, total in totals.items():
        _say(f"  array logic {name:16s} {total / 1000:10.1f} kGE")
    rotation = rotator_overhead(run, cfg)  # SPEC §11: not in the GEMM core, not in the totals
    if rotation is not None:
        _say(f"  activation rotation (B = {cfg.block}): {rotation.describe()}")
    clock = run.clock
    if clock is not None:
        fm_rows = []
        for unit, rep, mhz, lanes in (("pe_core", clock.pe_report, clock.pe_mhz, ""),
                                      ("format_selector", clock.selector_report,
                                       clock.selector_mhz, clock.selector_p)):
            ice = rep.ice40 if rep else None
            fm_rows.append([unit, lanes, ice.lut4 if ice else "", ice.dff if ice else "",
                            mhz or "", ice.device if ice else ""])
        _write_csv(out / "fmax.csv", ["unit", "formats_per_cycle", "ice40_lut4", "ice40_dff",
                                      "fmax_mhz", "device"], fm_rows)
        (out / "fmax_notes.txt").write_text("".join(n + "\n" for n in clock.notes))
    else:
        for name in FMAX_OUTPUTS:
            (out / name).unlink(missing_ok=True)
    _say(f"  {run.modules_synthesized} distinct modules in {run.seconds:.0f} s")
    return (clock.mhz if clock else None), asic_clocks


def stage_energy(cfg: Config, results: dict[str, list[LayerResult]], out: Path
                 ) -> list[list[object]]:
    """pJ/MAC per design over the workload (action counts × the assumptions table)."""
    from semdialect.sim.energy import (
        action_counts_for_gemm,
        energy_per_mac,
        load_assumptions,
        min_bytes_moved,
    )

    table = load_assumptions()
    rows: list[list[object]] = []
    for label, rs in results.items():
        name = label.split("+")[0]
        d = CycleDesign.of(name, cfg)
        totals: dict[str, float] = {}
        macs = 0
        for r in rs:
            runtime_w = r.static == "none"
            # DRAM: compulsory traffic (X, W, Y once; residual rows); SRAM: what the core's
            # streams carry (weights re-sent for every row tile, a run-time W as FP16 into
            # the frontend and quantized out of it), from the cycle model
            dram = min_bytes_moved(d.cfg, r.m, r.n, r.k, pe=d.pe, runtime_w=runtime_w)["dram"]
            traffic = {"dram": {**dram, "R": r.residual_bytes},
                       "sram": {"X": r.x_bytes, "Y": r.y_bytes,
                                "W": r.w_elem_bytes + r.w_meta_bytes + r.w_fp16_bytes
                                + r.w_quant_bytes}}
            counts = action_counts_for_gemm(d.cfg, r.m, r.n, r.k, traffic, pe=d.pe,
                                            runtime_w=runtime_w)
            if r.residual_rows:  # decomposition's second pass: its datapath, no new MACs
                second = action_counts_for_gemm(d.cfg, r.residual_rows, r.n, r.k, {}, pe=d.pe)
                for key, val in second.items():
                    if key != "macs":
                        counts[key] = counts.get(key, 0) + val
            e = energy_per_mac(counts, table)
            for key, val in e.items():
                totals[key] = totals.get(key, 0.0) + val * counts["macs"] * r.count
            macs += counts["macs"] * r.count
        per_mac = {k: v / macs for k, v in totals.items()}
        rows.append([label] + [round(per_mac[k], 4) for k in sorted(per_mac)])
        header = ["design"] + sorted(per_mac)
    _write_csv(out / "energy.csv", header, rows)
    for row in rows:
        _say(f"  {row[0]:42s} {dict(zip(header[1:], row[1:], strict=True))['total']:.3f} pJ/MAC")
    return rows


def run(config_path: Config | str, out_dir: str = "reports/out",
        workload: str = "opensora2_256px_129f", rho: Fraction | str = "0.05",
        skip_rtl: bool = False, skip_area: bool = False, fmax: bool = True,
        full_rtl: bool = False, full_ablation: bool = False) -> int:
    """The main job on a Config (the CLI parses --config) or a config path; returns the
    process exit status.

    Every argument is checked first (configuration, workload file read and validated, rho,
    the output folder); a bad one raises a one-line ``ValueError`` naming it before anything
    is touched. Outputs go into a staging folder next to ``out_dir`` that replaces it only
    when every stage succeeded (:func:`semdialect.outdir.staged_dir`): ``out_dir`` then holds
    this run's files only — none of an earlier run's, whatever this run skipped — plus the
    files it held that a run does not write (``semdialect eval``'s report, a user's notes).
    On failure or Ctrl-C the staging folder is removed and ``out_dir`` is left as it was."""
    t_start = time.perf_counter()
    cfg = config_path if isinstance(config_path, Config) else load_config(config_path)
    rho_f = parse_rho(rho)
    gemms = _load_workload_arg(workload)
    target = check_out_dir("--out", out_dir)  # also all that cli.output.check_dirs checks
    stages = [("golden model", "ran"),
              ("RTL on Verilator", "skipped (--skip-rtl)" if skip_rtl else
               "ran" if rtl_config(cfg, full_rtl) == cfg else
               f"ran on {rtl_config(cfg, full_rtl).name} (reduced array; --full-rtl for "
               f"{cfg.rows}x{cfg.cols})"),
              ("area", "skipped (--skip-area)" if skip_area else
               "ran (full ablation)" if full_ablation else
               "ran (quick ablation; --full-ablation for every P and B = 64)"),
              ("iCE40 Fmax", "skipped (--skip-area)" if skip_area else
               "skipped (--no-fmax)" if not fmax else "ran"),
              ("cycle model", "ran"), ("memory system", "ran"), ("energy", "ran")]
    _say(f"semdialect sim — config {cfg.name}: {cfg.rows}x{cfg.cols} array, B={cfg.block}, "
         f"{cfg.formatbook} {cfg.select}, {cfg.formats_per_cycle} formats/cycle")
    with staged_dir(out_dir, "--out") as staging:
        out = staging.path
        _say("\n[1/5] golden model: every format on the shipped real tensors")
        stage_golden(cfg, out)
        if skip_rtl:
            _say("\n[2/5] RTL on Verilator: skipped (--skip-rtl)")
        else:
            rcfg = rtl_config(cfg, full_rtl)
            what = ("" if rcfg == cfg else
                    f" on a reduced {rcfg.rows}x{rcfg.cols} array with every [pipeline] stage "
                    f"({rcfg.name}; --full-rtl builds the {cfg.rows}x{cfg.cols} core, ~12 min)")
            _say(f"\n[2/5] RTL: GEMMs on Verilator{what}, bit-exact check and cycles")
            stage_rtl(rcfg, out)
        measured, asic_clocks = None, {}
        if skip_area:
            _say("\n[3/5] area: skipped (--skip-area)")
        else:
            _say("\n[3/5] area: Yosys synthesis of the ablation modules and each design's "
                 "array, liberty synthesis and OpenSTA timing at 180 nm (cached)")
            measured, asic_clocks = stage_area(cfg, out, fmax, full_ablation)
        asic_clock = asic_clocks.get(configured_design().name)
        clock = asic_clock or measured or ASSUMED_CLOCK_MHZ
        how = ("the array's 180 nm OpenSTA clock" if asic_clock else
               "measured iCE40 Fmax (FPGA)" if measured else "assumed")
        _say(f"\n[4/5] cycle model: {workload} (clock for TOPS: {clock:.1f} MHz = {how})")
        results = stage_cycles(cfg, workload, rho_f, out, clock, gemms)
        stage_utilization(cfg, out)
        _say(f"\n  memory system: {workload}, SRAM-fitted mappings, DRAM stalls, attention "
             "separate and fused (sim/memory.py)")
        stage_memory(cfg, out, clock, gemms, rho_f, asic_clocks)
        _say("\n[5/5] energy (ESTIMATE, data/energy/assumptions_v1.toml)")
        stage_energy(cfg, results, out)
        _write_csv(out / STAGES_CSV, ["stage", "status"], stages)
        # files of --out that no run writes (`semdialect eval`'s accuracy.csv, which the
        # report reads, a user's notes) come along; an earlier run's outputs do not
        staging.carry_over(lambda name: not sim_owned(name))
        from semdialect.reports import build as report_build

        summary = report_build.build_report(out, cfg=cfg, workload=workload,
                                            fmax_mhz=measured, fallback_mhz=ASSUMED_CLOCK_MHZ)
    _say(f"\nwrote {target / summary.name} and plots in {target}/ "
         f"({time.perf_counter() - t_start:.0f} s)")
    return 0
