"""Per-layer performance model of a workload: cycles, where they go, utilization and bytes moved.

The designs compared are the registry's hardware designs
(:func:`semdialect.designs.hardware_designs`), all from the same generator and on the same
output-stationary array (rows × cols block PEs, one block pair per PE per cycle;
:mod:`sim.cycles` is the exact cycle count of ``rtl/gemm_core.py``'s GEMM and quantize
commands). :meth:`Design.of` builds a design's model from its registry entry and the
configuration:

* every design runs on the configuration's array with its frontend (``lanes`` quantizer
  lanes), tile drain (``drain_width`` FP32 outputs per cycle) and register stages
  (``[pipeline]``, :class:`semdialect.rtl.timing.Pipeline`: every design's array is timed with
  the same pipeline; with d = ``acc_stages`` a tile is rows × cols·d outputs and takes KB·d
  array cycles, :mod:`sim.cycles`);
* a dialect design (``semanticdialect`` — the configuration as given; ``blockdialect`` — dfp4
  with two-stage selection) runs its selector: K / formats_per_cycle cycles per activation
  block with ``lut``, 1 with ``two-stage``;
* a fixed-format design (``mxfp4`` / ``mxint8``: E8M0 scale, no selection) is modelled with 1
  selector cycle per block on the same array, lanes and drain, with its kind's fixed block
  size (OCP MX: 32 elements whatever the configuration's B; only their PEs exist as RTL);
* element, scale and dialect-id widths are the golden format's (``element_bits``,
  ``scale_bits()``, ``id_bits()``).

Cycles of one GEMM of a workload row (all from :mod:`sim.cycles`, exact RTL cycles):

* the GEMM command: ``gemm_cycles_raw`` of M × N with KB = ⌈K/B⌉ k-blocks;
* ``static = none`` (the second operand is an activation, e.g. Kᵀ in Q·Kᵀ): first a quantize
  command of N rows × KB blocks (Wᵀ through the frontend, ``quantize_cycles_raw``);
* decomposition (ρ > 0, SPEC §6): a second pass, the GEMM of the n_S = ⌈ρ·M⌉ salient rows'
  residuals, whose outputs are added to the main outputs read back — the same cycles as a
  plain n_S-row GEMM (the add costs none).

**Where the cycles go** (:class:`CycleBreakdown`, exact: the parts sum to the total). With
T the GEMM command's cycles, T_d the same command with an unbounded drain (drain_width =
rows·cols·d, the whole tile: one beat per tile) and T_f with an unbounded drain and an
unbounded frontend (lanes = rows, C_sel = 1: a row tile enters in KB cycles),
counterfactually:

* ``compute`` = useful MACs / (rows·cols·B) (M·K·N real MACs; fractional): the cycles of a
  perfectly used array;
* ``drain`` = T − T_d: cycles added because the drain is slower than the array;
* ``selector`` = T_d − T_f: cycles added because the frontend (lanes, selector cycles per
  block) is slower than the array;
* ``quantize`` = the run-time quantize command of a ``static = none`` operand;
* ``fill`` = T_f − compute, the rest, itself split exactly into ``idle_rows`` (M not a
  multiple of rows: M < rows is a GEMV), ``idle_cols`` (N not a multiple of the tile's
  cols·d columns), ``k_padding`` (K zero-padded to KB·B) — the idle PE slots of the
  T_m·T_n·KB·d k-step cycles (T_n = ⌈N/(cols·d)⌉) — and ``latency`` = T_f − T_m·T_n·KB·d
  (pipeline latency, the first row tile's frontend fill, row-tile start bubbles, the last
  tile's drain);
* ``residual`` = the decomposition's second pass (0 without ρ).

The attribution is counterfactual and ordered (drain first, then frontend): a GEMM bounded by
both shows the drain's share as ``drain`` and what the frontend adds beyond it as
``selector``.

Bytes moved follow the RTL's streams: activations enter as FP16 once (M·K·2 bytes; their SE
and dialect ids are made on chip); weight blocks are re-sent for every row tile (⌈M/rows⌉
times, plus ⌈n_S/rows⌉ for the second pass), reported as element codes (``w_elem_bytes``),
SE/E8M0 fields (``w_se_bytes``) and dialect ids (``w_dialect_bytes``); a run-time second
operand's Wᵀ also enters the frontend as FP16 once (``w_fp16_bytes`` = N·K·2) and leaves it
quantized once (``w_quant_bytes`` = N·KB blocks); decomposition (``residual_bytes``): the main
pass emits the salient rows' FP16 residuals (n_S·K·2), the second pass reads them (n_S·K·2)
and the main outputs of those rows (n_S·N·4) and writes the sums (n_S·N·4); outputs leave as
FP32 (M·N·4 bytes). K that is not a multiple of B is zero-padded to ⌈K/B⌉ blocks (SPEC §2
``pad``): the array spends the padded cycles, utilization counts only the real MACs.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from semdialect import designs
from semdialect.config import Config
from semdialect.designs import PEKind
from semdialect.rtl.timing import TENSOR_SCALE_STAGES, Pipeline
from semdialect.sim.cycles import gemm_cycles_raw, quantize_cycles_raw
from semdialect.sim.workloads import Gemm

#: clock assumed for times and TOPS when no Fmax was measured (``semdialect sim --no-fmax``)
ASSUMED_CLOCK_MHZ = 100.0
#: a layer (or step) below this utilization gets a ``reason``
REASON_BELOW = 0.80
#: a cycle part is named in a reason from this share of the cycles on
REASON_SHARE = 0.05
#: the parts of :class:`CycleBreakdown` that sum to the total, in report order
PARTS = ("compute", "drain", "selector", "quantize", "fill", "residual")
#: bytes of one FP16 element (activations in) and one FP32 output
_FP16_BYTES, _FP32_BYTES = 2, 4


@dataclass(frozen=True)
class Design:
    """One compared design's cycle/traffic model on an array of ``cfg``'s size and block.

    Build with :meth:`of` (from a registry design) or :func:`model_designs`.
    """

    name: str
    cfg: Config
    pe: PEKind
    sel_cycles: int
    element_bits: int
    se_bits: int  # per-block shared exponent (SE field or E8M0 scale)
    id_bits: int  # per-block dialect id (0 for the fixed formats)
    rho: Fraction = Fraction(0)

    @property
    def label(self) -> str:
        return self.name + (f"+decomposition(rho={float(self.rho):g})" if self.rho else "")

    @property
    def pipeline(self) -> Pipeline:
        """The register stages of this design's configuration (every design's array is
        timed with the configuration's ``[pipeline]``)."""
        return Pipeline.of(self.cfg)

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs the array completes per cycle at full use: rows·cols·B."""
        return self.cfg.rows * self.cfg.cols * self.cfg.block

    @property
    def block_bytes(self) -> float:
        """Bytes of one quantized block: B codes, its SE/E8M0 field and dialect id."""
        return (self.cfg.block * self.element_bits + self.se_bits + self.id_bits) / 8

    @property
    def peak_drain_bytes_per_cycle(self) -> int:
        """FP32 output bandwidth of the tile drain: drain_width·4 bytes/cycle."""
        return self.cfg.drain_width * _FP32_BYTES

    @property
    def peak_frontend_bytes_per_cycle(self) -> float:
        """FP16 input bandwidth of the frontend: lanes·B·2 bytes every C_sel cycles."""
        return self.cfg.lanes * self.cfg.block * _FP16_BYTES / self.sel_cycles

    @classmethod
    def of(cls, d: designs.Design | str, cfg: Config, rho: Fraction | str | float = 0) -> Design:
        """Registry design ``d`` (or its name) on ``cfg``'s array, with decomposition ``rho``.

        Its configuration is :meth:`semdialect.designs.Design.config` (``cfg``'s array, lanes
        and drain); its widths are the golden format's; a dialect design's selector takes its
        configuration's ``selector_cycles``, a fixed-format design 1 cycle per block.
        """
        d = designs.design(d) if isinstance(d, str) else d
        if d.pe is None:
            raise ValueError(f"design: {d.name} has no PE in hardware (choose from "
                             f"{', '.join(h.name for h in designs.hardware_designs())})")
        rho_f = Fraction(str(rho)) if not isinstance(rho, Fraction) else rho
        dcfg = d.config(cfg)
        fmt = d.golden_format(cfg)
        sel = dcfg.selector_cycles if d.pe.has_dialects else 1
        return cls(d.name, dcfg, d.pe, sel, fmt.element_bits, fmt.scale_bits(), fmt.id_bits(),
                   rho_f)

    def gemm_cycles(self, m: int, n: int, kb: int, *, unbounded_drain: bool = False,
                    unbounded_frontend: bool = False) -> int:
        """Exact cycles of one GEMM command (M×N, KB k-blocks) on this design, with its
        configuration's register stages (:attr:`pipeline`); the counterfactuals of
        :class:`CycleBreakdown` widen the drain to one beat per tile (drain_width = rows·T,
        T = :attr:`~semdialect.config.Config.tile_cols`) and the frontend to one k-step of a
        row tile per cycle (lanes = rows, C_sel = 1)."""
        cfg = self.cfg
        drain = cfg.rows * cfg.tile_cols if unbounded_drain else cfg.drain_width
        lanes, sel = (cfg.rows, 1) if unbounded_frontend else (cfg.lanes, self.sel_cycles)
        # NVFP4: every output passes the drain's pipelined tensor-scale multiplier (SPEC §8)
        extra = TENSOR_SCALE_STAGES if self.pe.has_tensor_scale else 0
        return extra + gemm_cycles_raw(cfg.rows, cfg.cols, sel, m, n, kb, lanes=lanes,
                                       drain_width=drain, pipeline=self.pipeline)

    def quantize_cycles(self, m: int, kb: int) -> int:
        """Exact cycles of a quantize command of ``m`` rows × ``kb`` blocks on this design."""
        return quantize_cycles_raw(self.cfg.rows, self.sel_cycles, m, kb, lanes=self.cfg.lanes,
                                   pipeline=self.pipeline)


def model_designs(cfg: Config) -> list[Design]:
    """The model of every hardware design of the registry on ``cfg`` (report order)."""
    return [Design.of(d, cfg) for d in designs.hardware_designs()]


@dataclass(frozen=True)
class CycleBreakdown:
    """Where one GEMM's cycles go (cycles per run): :data:`PARTS` sum to the total; ``fill``
    = ``idle_rows`` + ``idle_cols`` + ``k_padding`` + ``latency``. See the module docstring
    for the counterfactual definitions."""

    compute: float
    drain: int
    selector: int
    quantize: int
    fill: float
    residual: int
    idle_rows: float
    idle_cols: float
    k_padding: float
    latency: int

    @property
    def total(self) -> float:
        """Σ :data:`PARTS` (= the layer's cycles)."""
        return sum(self.parts().values())

    def parts(self) -> dict[str, float]:
        """:data:`PARTS` by name (cycles)."""
        return {p: getattr(self, p) for p in PARTS}


def cycle_breakdown(d: Design, g: Gemm, *, quantize: int = 0, residual: int = 0
                    ) -> CycleBreakdown:
    """:class:`CycleBreakdown` of ``g`` on ``d``; ``quantize`` and ``residual`` are the cycles
    of the run-time quantize command and of the decomposition's second pass. A tile is
    rows × cols·d outputs (d = ``acc_stages``) and takes KB·d array cycles, so the array's
    k-step cycles are T_m·T_n·KB·d (T_n = ⌈N/(cols·d)⌉)."""
    cfg = d.cfg
    rows, cols, block, steps = cfg.rows, cfg.cols, cfg.block, cfg.acc_stages
    tile = cfg.tile_cols
    kb = -(-g.k // block)
    full = d.gemm_cycles(g.m, g.n, kb)
    wide_drain = d.gemm_cycles(g.m, g.n, kb, unbounded_drain=True)
    ideal = d.gemm_cycles(g.m, g.n, kb, unbounded_drain=True, unbounded_frontend=True)
    t_m, t_n = -(-g.m // rows), -(-g.n // tile)
    compute = Fraction(g.m * g.k * g.n, d.peak_macs_per_cycle)
    # idle PE slots of the t_m·t_n·kb·d array cycles: (a + M)(b + N)(c + K) expanded
    idle_rows = Fraction((t_m * rows - g.m) * t_n * kb * steps, rows)
    idle_cols = Fraction(g.m * (t_n * tile - g.n) * kb, rows * cols)
    k_padding = Fraction(g.m * g.n * (kb * block - g.k), d.peak_macs_per_cycle)
    return CycleBreakdown(
        compute=float(compute), drain=full - wide_drain, selector=wide_drain - ideal,
        quantize=quantize, fill=float(ideal - compute), residual=residual,
        idle_rows=float(idle_rows), idle_cols=float(idle_cols), k_padding=float(k_padding),
        latency=ideal - t_m * t_n * kb * steps)


@dataclass(frozen=True)
class LayerResult:
    """One workload row on one design, per single GEMM run: ``cycles`` (clock cycles, the
    GEMM command plus a run-time quantize command and the decomposition's second pass),
    ``macs`` (useful M·K·N), ``utilization`` (macs / (cycles · rows·cols·B), 0 … 1), its
    :class:`CycleBreakdown` (cycles) and ``reason`` (below :data:`REASON_BELOW`, else ""),
    the design's peaks (MACs/cycle, bytes/cycle) and the bytes of every stream (bytes)."""

    design: str
    layer: str
    m: int
    k: int
    n: int
    count: int
    static: str
    cycles: int
    macs: int
    utilization: float
    breakdown: CycleBreakdown
    reason: str
    peak_macs_per_cycle: int
    peak_drain_bytes_per_cycle: float
    peak_frontend_bytes_per_cycle: float
    residual_rows: int
    x_bytes: float
    w_elem_bytes: float
    w_se_bytes: float
    w_dialect_bytes: float
    w_fp16_bytes: float
    w_quant_bytes: float
    residual_bytes: float
    y_bytes: float

    @property
    def w_meta_bytes(self) -> float:
        """Weight metadata: SE/scale fields plus dialect ids."""
        return self.w_se_bytes + self.w_dialect_bytes

    @property
    def total_bytes(self) -> float:
        return (self.x_bytes + self.w_elem_bytes + self.w_meta_bytes + self.w_fp16_bytes
                + self.w_quant_bytes + self.residual_bytes + self.y_bytes)

    @property
    def frontend_bytes(self) -> float:
        """FP16 bytes through the frontend: X, a run-time Wᵀ, the residual rows."""
        return self.x_bytes + self.w_fp16_bytes + self.residual_rows * self.k * _FP16_BYTES

    @property
    def required_output_bytes_per_cycle(self) -> float:
        """FP32 output rate the layer needs: M·N·4 bytes over its cycles."""
        return self.y_bytes / self.cycles

    @property
    def required_frontend_bytes_per_cycle(self) -> float:
        """FP16 input rate the layer needs: :attr:`frontend_bytes` over its cycles."""
        return self.frontend_bytes / self.cycles


def layer_result(d: Design, g: Gemm) -> LayerResult:
    """Cycles, their breakdown, utilization and bytes of one GEMM of ``g``'s shape on ``d``."""
    cfg = d.cfg
    kb = -(-g.k // cfg.block)  # a short last block is zero-padded (SPEC §2 pad)
    cycles = d.gemm_cycles(g.m, g.n, kb)
    quant = d.quantize_cycles(g.n, kb) if g.runtime_w else 0
    m_res = math.ceil(d.rho * g.m)
    res_cycles = d.gemm_cycles(m_res, g.n, kb) if m_res else 0
    row_tiles = math.ceil(g.m / cfg.rows) + math.ceil(m_res / cfg.rows)
    w_blocks = row_tiles * g.n * kb
    total = cycles + quant + res_cycles
    macs = g.m * g.k * g.n
    breakdown = cycle_breakdown(d, g, quantize=quant, residual=res_cycles)
    utilization = macs / (total * d.peak_macs_per_cycle)
    return LayerResult(
        design=d.label, layer=g.layer, m=g.m, k=g.k, n=g.n, count=g.count, static=g.static,
        cycles=total, macs=macs, utilization=utilization, breakdown=breakdown,
        reason=layer_reason(d, g, breakdown) if utilization < REASON_BELOW else "",
        peak_macs_per_cycle=d.peak_macs_per_cycle,
        peak_drain_bytes_per_cycle=d.peak_drain_bytes_per_cycle,
        peak_frontend_bytes_per_cycle=d.peak_frontend_bytes_per_cycle, residual_rows=m_res,
        x_bytes=g.m * g.k * _FP16_BYTES, w_elem_bytes=w_blocks * cfg.block * d.element_bits / 8,
        w_se_bytes=w_blocks * d.se_bits / 8, w_dialect_bytes=w_blocks * d.id_bits / 8,
        w_fp16_bytes=g.n * g.k * _FP16_BYTES if g.runtime_w else 0,
        w_quant_bytes=g.n * kb * d.block_bytes if g.runtime_w else 0,
        residual_bytes=2 * m_res * g.k * _FP16_BYTES + 2 * m_res * g.n * _FP32_BYTES,
        y_bytes=g.m * g.n * _FP32_BYTES,
    )


def _pct(part: float, total: float) -> str:
    return f"{100 * part / total:.0f} % of cycles"


def _count(n: int, word: str) -> str:
    """``n`` and ``word``, plural unless n is 1 ("3 blocks", "1 block")."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def layer_reason(d: Design, g: Gemm, b: CycleBreakdown) -> str:
    """The physical reasons a layer's utilization is low, from its breakdown: every cause
    taking at least :data:`REASON_SHARE` of the cycles, largest first, joined by "; ".
    Column counts are the tile's T = cols·d (d = ``acc_stages``), cycle counts the array's
    KB·d cycles per tile; with d = 1 the texts name cols and KB."""
    cfg = d.cfg
    rows, block, lanes, drain = cfg.rows, cfg.block, cfg.lanes, cfg.drain_width
    tile, steps = cfg.tile_cols, cfg.acc_stages
    kb = -(-g.k // block)
    per_tile = kb * steps  # array cycles of one tile
    cycles_text = f"KB={kb}" if steps == 1 else f"KB·d={kb}·{steps}={per_tile}"
    cols_word = "PE columns" if steps == 1 else f"tile columns (cols·d = {cfg.cols}·{steps})"
    cols_name = "cols" if steps == 1 else "T"
    t_n = -(-g.n // tile)
    r0, c0 = min(rows, g.m), min(tile, g.n)
    if g.m < rows:
        gemv = "GEMV, " if g.m == 1 else ""
        rows_text = f"M={g.m} < rows={rows}: {gemv}{rows - g.m} of {rows} PE rows idle"
    else:
        rows_text = (f"M={g.m} not a multiple of rows={rows}: the last row tile fills "
                     f"{g.m % rows} of {rows} PE rows")
    if g.n < tile:
        cols_text = (f"N={g.n} < {cols_name}={tile}: {tile - g.n} of {tile} {cols_word} "
                     "idle")
    else:
        cols_text = (f"N={g.n} not a multiple of {cols_name}={tile}: the last column tile "
                     f"fills {g.n % tile} of {tile} {cols_word}")
    q_row = -(-r0 // lanes) * kb * d.sel_cycles
    compute_text = (f"{t_n}·{kb}" if steps == 1 else f"{t_n}·{kb}·{steps}")
    causes = {
        "drain": f"drain-bound: needs {r0 * c0 / per_tile:.4g} outputs/cycle (a {r0}×{c0} "
                 f"tile every {cycles_text} cycles), drain_width={drain}",
        "selector": f"selector-bound: a row tile enters the frontend in ⌈{r0}/{lanes}⌉·"
                    f"{kb}·{d.sel_cycles} = {q_row} cycles (lanes={lanes}, "
                    f"C_sel={d.sel_cycles}) but computes in {compute_text} = "
                    f"{t_n * per_tile} (N={g.n}: {_count(t_n, 'column tile')})",
        "quantize": f"run-time quantization of the second operand (static=none): "
                    f"{_count(g.n, 'row')} × {_count(kb, 'block')} through "
                    f"{_count(lanes, 'lane')}",
        "residual": f"decomposition's second pass of {_count(math.ceil(d.rho * g.m), 'row')}",
        "idle_rows": rows_text,
        "idle_cols": cols_text,
        "k_padding": f"K={g.k} padded to {kb * block} ({_count(kb, 'block')} of {block})",
        "latency": f"pipeline latency and row-tile start bubbles: {b.latency} cycles against "
                   f"{-(-g.m // rows) * t_n * per_tile} k-step cycles ({cycles_text})",
    }
    total = b.total
    found = sorted(((getattr(b, key), key) for key in causes), reverse=True)
    named = [f"{causes[key]} ({_pct(val, total)})" for val, key in found
             if val >= REASON_SHARE * total]
    return "; ".join(named) or "many small causes: " + ", ".join(
        f"{key} {_pct(val, total)}" for val, key in found[:3])


def model_workload(d: Design, gemms: Iterable[Gemm]) -> list[LayerResult]:
    """Every layer of a workload on one design."""
    return [layer_result(d, g) for g in gemms]


def step_cycles(results: Sequence[LayerResult]) -> int:
    """Cycles of one denoising step: Σ cycles · count."""
    return sum(r.cycles * r.count for r in results)


def step_utilization(results: Sequence[LayerResult]) -> float:
    """MAC utilization of one denoising step: Σ MACs·count / (Σ cycles·count · rows·cols·B)
    (one design's results: one peak)."""
    peak = {r.peak_macs_per_cycle for r in results}
    if len(peak) != 1:
        raise ValueError(f"results: one design's layers expected, got peaks {sorted(peak)}")
    return sum(r.macs * r.count for r in results) / (step_cycles(results) * peak.pop())


def step_parts(results: Sequence[LayerResult]) -> dict[str, float]:
    """:data:`PARTS` of one denoising step (Σ part · count, cycles)."""
    out = dict.fromkeys(PARTS, 0.0)
    for r in results:
        for key, val in r.breakdown.parts().items():
            out[key] += val * r.count
    return out


def step_reason(results: Sequence[LayerResult]) -> str:
    """Why a step's utilization is below :data:`REASON_BELOW` ("" otherwise): each part other
    than ``compute`` taking at least :data:`REASON_SHARE` of the step's cycles, with the
    layer contributing most to it."""
    if step_utilization(results) >= REASON_BELOW:
        return ""
    total = step_cycles(results)
    parts = step_parts(results)
    named = []
    for key in sorted((p for p in PARTS if p != "compute"), key=lambda p: -parts[p]):
        if parts[key] < REASON_SHARE * total:
            continue
        top = max(results, key=lambda r: getattr(r.breakdown, key) * r.count)
        named.append(f"{key} {_pct(parts[key], total)}, mostly {top.layer} "
                     f"({top.reason or 'above the threshold itself'})")
    return "; ".join(named)


#: COMPUTE_REPORT.csv / utilization.csv breakdown columns (cycles of one run)
BREAKDOWN_COLUMNS = tuple(f"{p}_cycles" for p in PARTS)


#: bandwidth columns of BANDWIDTH_REPORT.csv and utilization.csv (bytes/cycle)
BANDWIDTH_COLUMNS = ("peak_drain_bytes_per_cycle", "required_output_bytes_per_cycle",
                     "peak_frontend_bytes_per_cycle", "required_frontend_bytes_per_cycle")


def bandwidth_cells(r: LayerResult) -> list[str]:
    """:data:`BANDWIDTH_COLUMNS` of one layer, formatted."""
    return [f"{getattr(r, c):.3f}" for c in BANDWIDTH_COLUMNS]


def _fmt(val: float) -> str:
    return f"{val:.6f}".rstrip("0").rstrip(".") if isinstance(val, float) else str(val)


def write_reports(results: Sequence[LayerResult], out_dir: str | Path, fmax_mhz: float) -> None:
    """SCALE-Sim-like ``COMPUTE_REPORT.csv`` (with the cycle breakdown and the reason of every
    layer below :data:`REASON_BELOW`) and ``BANDWIDTH_REPORT.csv`` (bytes by operand; peak
    drain/frontend bandwidth of the design and the rates each layer needs)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "COMPUTE_REPORT.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["design", "layer", "M", "K", "N", "count", "static", "cycles",
                    "step_cycles", "macs", "utilization", "effective_tops",
                    *BREAKDOWN_COLUMNS, "reason"])
        for r in results:
            tops = 2 * r.macs / (r.cycles / (fmax_mhz * 1e6)) / 1e12
            w.writerow([r.design, r.layer, r.m, r.k, r.n, r.count, r.static, r.cycles,
                        r.cycles * r.count, r.macs, f"{r.utilization:.6f}", f"{tops:.6f}",
                        *(_fmt(v) for v in r.breakdown.parts().values()), r.reason])
    with open(out / "BANDWIDTH_REPORT.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        byte_fields = ["x_bytes", "w_elem_bytes", "w_se_bytes", "w_dialect_bytes",
                       "w_fp16_bytes", "w_quant_bytes", "residual_bytes", "y_bytes"]
        w.writerow(["design", "layer", *byte_fields, "total_bytes", "bytes_per_cycle",
                    *BANDWIDTH_COLUMNS])
        for r in results:
            d = asdict(r)
            w.writerow([r.design, r.layer, *(f"{d[f]:.0f}" for f in byte_fields),
                        f"{r.total_bytes:.0f}", f"{r.total_bytes / r.cycles:.3f}",
                        *bandwidth_cells(r)])


# ---------------------------------------------------------------------------------------------
# utilization.csv: every configuration × workload × design
# ---------------------------------------------------------------------------------------------

#: utilization.csv's columns
UTILIZATION_COLUMNS = ("config", "workload", "design", "layer", "M", "K", "N", "count",
                       "static", "cycles", "step_cycles", "macs", "utilization",
                       *BREAKDOWN_COLUMNS, *BANDWIDTH_COLUMNS, "reason")
#: the ``layer`` of a workload's whole-step row in utilization.csv
STEP_LAYER = "STEP"


def utilization_rows(config: str, workload: str, results: Sequence[LayerResult]
                     ) -> list[list[object]]:
    """utilization.csv rows of one design on one workload: a row per layer (utilization of
    its ``count`` runs = of one run), then the ``STEP`` row (Σ over the step; breakdown and
    byte rates summed over ``count`` runs)."""
    rows: list[list[object]] = []
    for r in results:
        rows.append([config, workload, r.design, r.layer, r.m, r.k, r.n, r.count, r.static,
                     r.cycles, r.cycles * r.count, r.macs, f"{r.utilization:.6f}",
                     *(_fmt(v) for v in r.breakdown.parts().values()), *bandwidth_cells(r),
                     r.reason])
    total = step_cycles(results)
    sums: dict[str, float] = defaultdict(float)
    for r in results:
        sums["y"] += r.y_bytes * r.count
        sums["in"] += r.frontend_bytes * r.count
    first = results[0]
    rows.append([config, workload, first.design, STEP_LAYER, "", "", "", "", "", total, total,
                 sum(r.macs * r.count for r in results),
                 f"{step_utilization(results):.6f}",
                 *(_fmt(v) for v in step_parts(results).values()),
                 f"{first.peak_drain_bytes_per_cycle:.3f}", f"{sums['y'] / total:.3f}",
                 f"{first.peak_frontend_bytes_per_cycle:.3f}", f"{sums['in'] / total:.3f}",
                 step_reason(results)])
    return rows


def write_utilization(rows: Iterable[Sequence[object]], path: str | Path) -> None:
    """Write utilization.csv (:data:`UTILIZATION_COLUMNS`)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(UTILIZATION_COLUMNS)
        w.writerows(rows)

