"""Per-layer performance model of a workload: cycles, utilization and bytes moved by operand.

The designs compared are the registry's hardware designs
(:func:`semdialect.designs.hardware_designs`), all from the same generator and on the same
output-stationary array (rows × cols block PEs, one block pair per PE per cycle;
:mod:`sim.cycles` is the exact cycle count of ``rtl/gemm_core.py``). :meth:`Design.of` builds
a design's model from its registry entry and the configuration:

* a dialect design (``semanticdialect`` — the configuration as given; ``blockdialect`` — dfp4
  with two-stage selection) runs its selector: K / formats_per_cycle cycles per activation
  block with ``lut``, 1 with ``two-stage``;
* a fixed-format design (``mxfp4`` / ``mxint8``: E8M0 scale, no selection) is modelled with 1
  selector cycle per block on the same rows × cols array, with its kind's fixed block size
  (OCP MX: 32 elements whatever the configuration's B; only their PEs exist as RTL);
* element, scale and dialect-id widths are the golden format's (``element_bits``,
  ``scale_bits()``, ``id_bits()``);
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
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from semdialect import designs
from semdialect.config import Config
from semdialect.designs import PEKind
from semdialect.sim.cycles import gemm_cycles_raw
from semdialect.sim.workloads import Gemm

#: clock assumed for times and TOPS when no Fmax was measured (``semdialect sim --no-fmax``)
ASSUMED_CLOCK_MHZ = 100.0


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

    @classmethod
    def of(cls, d: designs.Design | str, cfg: Config, rho: Fraction | str | float = 0) -> Design:
        """Registry design ``d`` (or its name) on ``cfg``'s array, with decomposition ``rho``.

        Its configuration is :meth:`semdialect.designs.Design.config`; its widths are the
        golden format's; a dialect design's selector takes its configuration's
        ``selector_cycles``, a fixed-format design 1 cycle per block.
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


def model_designs(cfg: Config) -> list[Design]:
    """The model of every hardware design of the registry on ``cfg`` (report order)."""
    return [Design.of(d, cfg) for d in designs.hardware_designs()]


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
