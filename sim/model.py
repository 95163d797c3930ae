"""Per-layer performance model of a workload: cycles, utilization and bytes moved by operand.

The designs compared come from the same generator and the same output-stationary array
(rows × cols block PEs, one block pair per PE per cycle; :mod:`sim.cycles` is the exact cycle
count of ``rtl/gemm_core.py``):

* ``semanticdialect`` — the configuration as given (sd32, ``lut`` selection: the selector
  takes K / formats_per_cycle cycles per activation block);
* ``blockdialect`` — dfp4 with two-stage selection (1 cycle per block);
* ``mxfp4`` / ``mxint8`` — the OCP MX PEs (E8M0 scale: no selection, modelled with 1
  selector cycle per block on the same rows × cols array, always with 32-element blocks —
  the OCP block size — whatever the configuration's B; only their PEs exist as RTL);
* ``+decomposition`` (ρ > 0) adds ⌈ρ·M⌉ residual rows per GEMM, run as a second pass through
  the array whose FP32 outputs are added to the main ones (modelled, not in the RTL).

Bytes moved follow the RTL's streams: activations enter as FP16 once (M·K·2 bytes; their SE
and dialect ids are made on chip); weight blocks are re-sent for every row tile (⌈M/rows⌉
times), reported as element codes (``w_elem_bytes``), SE/E8M0 fields (``w_se_bytes``) and
dialect ids (``w_dialect_bytes``); residual rows of decomposition enter as FP16 and leave as
FP32 partial outputs (``residual_bytes``); outputs leave as FP32 (M·N·4 bytes). K that is not
a multiple of B is zero-padded to ⌈K/B⌉ blocks (SPEC §2 ``pad``): the array spends the padded
cycles, utilization counts only the real MACs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

from semdialect.golden.formats import MX_BLOCK
from semdialect.sim.cycles import gemm_cycles_raw
from semdialect.sim.workloads import Gemm

from semdialect.config import Config

#: the compared designs (see the module docstring)
DESIGNS = ("semanticdialect", "blockdialect", "mxfp4", "mxint8")

#: clock assumed for times and TOPS when no Fmax was measured (``semdialect sim --no-fmax``)
ASSUMED_CLOCK_MHZ = 100.0


@dataclass(frozen=True)
class Design:
    """One compared design on an array of ``cfg``'s size and block."""

    name: str
    cfg: Config
    sel_cycles: int
    element_bits: int
    se_bits: int  # per-block shared exponent (SE field or E8M0 scale)
    id_bits: int  # per-block dialect id (0 for the MX formats)
    rho: Fraction = Fraction(0)

    @property
    def label(self) -> str:
        return self.name + (f"+decomposition(rho={float(self.rho):g})" if self.rho else "")


def design(name: str, cfg: Config, rho: Fraction | str | float = 0) -> Design:
    """The named design on ``cfg``'s array (``semanticdialect`` uses ``cfg`` as is)."""
    rho_f = Fraction(str(rho)) if not isinstance(rho, Fraction) else rho
    if name == "semanticdialect":
        book = cfg.book()
        return Design(name, cfg, cfg.selector_cycles, 4, 5, book.id_bits, rho_f)
    if name == "blockdialect":
        bd = replace(cfg, formatbook="dfp4", select="two-stage", formats_per_cycle=16)
        return Design(name, bd, 1, 4, 5, 4, rho_f)
    if name in ("mxfp4", "mxint8"):  # OCP MX blocks are 32 elements whatever cfg.block says
        mx = replace(cfg, block=MX_BLOCK)
        return Design(name, mx, 1, 4 if name == "mxfp4" else 8, 8, 0, rho_f)
    raise ValueError(f"design: unknown {name!r} (choose from {', '.join(DESIGNS)})")


@dataclass(frozen=True)
class LayerResult:
    """One workload row on one design (cycles and bytes per single GEMM run)."""

    design: str
    layer: str
    m: int
    k: int
    n: int
    count: int
    cycles: int
    macs: int
    utilization: float
    x_bytes: float
    w_elem_bytes: float
    w_se_bytes: float
    w_dialect_bytes: float
    residual_bytes: float
    y_bytes: float

    @property
    def w_meta_bytes(self) -> float:
        """Weight metadata: SE/scale fields plus dialect ids."""
        return self.w_se_bytes + self.w_dialect_bytes

    @property
    def total_bytes(self) -> float:
        return (self.x_bytes + self.w_elem_bytes + self.w_meta_bytes + self.residual_bytes
                + self.y_bytes)


def layer_result(d: Design, g: Gemm) -> LayerResult:
    """Cycles, utilization and bytes of one GEMM of ``g``'s shape on design ``d``."""
    cfg = d.cfg
    kb = -(-g.k // cfg.block)  # a short last block is zero-padded (SPEC §2 pad)
    cycles = gemm_cycles_raw(cfg.rows, cfg.cols, d.sel_cycles, g.m, g.n, kb)
    m_res = math.ceil(d.rho * g.m)
    res_cycles = gemm_cycles_raw(cfg.rows, cfg.cols, d.sel_cycles, m_res, g.n, kb) if m_res else 0
    row_tiles = math.ceil(g.m / cfg.rows) + (math.ceil(m_res / cfg.rows) if m_res else 0)
    w_blocks = row_tiles * g.n * kb
    total = cycles + res_cycles
    macs = g.m * g.k * g.n
    return LayerResult(
        design=d.label, layer=g.layer, m=g.m, k=g.k, n=g.n, count=g.count, cycles=total,
        macs=macs, utilization=macs / (total * cfg.rows * cfg.cols * cfg.block),
        x_bytes=g.m * g.k * 2, w_elem_bytes=w_blocks * cfg.block * d.element_bits / 8,
        w_se_bytes=w_blocks * d.se_bits / 8, w_dialect_bytes=w_blocks * d.id_bits / 8,
        residual_bytes=m_res * g.k * 2 + m_res * g.n * 4, y_bytes=g.m * g.n * 4,
    )


def model_workload(d: Design, gemms: Iterable[Gemm]) -> list[LayerResult]:
    """Every layer of a workload on one design."""
    return [layer_result(d, g) for g in gemms]


def step_cycles(results: Sequence[LayerResult]) -> int:
    """Cycles of one denoising step: Σ cycles · count."""
    return sum(r.cycles * r.count for r in results)


def write_reports(results: Sequence[LayerResult], out_dir: str | Path, fmax_mhz: float) -> None:
    """SCALE-Sim-like ``COMPUTE_REPORT.csv`` and ``BANDWIDTH_REPORT.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "COMPUTE_REPORT.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["design", "layer", "M", "K", "N", "count", "cycles", "step_cycles", "macs",
                    "utilization", "effective_tops"])
        for r in results:
            tops = 2 * r.macs / (r.cycles / (fmax_mhz * 1e6)) / 1e12
            w.writerow([r.design, r.layer, r.m, r.k, r.n, r.count, r.cycles, r.cycles * r.count,
                        r.macs, f"{r.utilization:.6f}", f"{tops:.6f}"])
    with open(out / "BANDWIDTH_REPORT.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        fields = ["x_bytes", "w_elem_bytes", "w_se_bytes", "w_dialect_bytes", "residual_bytes",
                  "y_bytes"]
        w.writerow(["design", "layer", *fields, "total_bytes", "bytes_per_cycle"])
        for r in results:
            d = asdict(r)
            w.writerow([r.design, r.layer, *(f"{d[f]:.0f}" for f in fields),
                        f"{r.total_bytes:.0f}", f"{r.total_bytes / r.cycles:.3f}"])
