"""Array-level power, performance and area from per-module liberty figures (``asic.csv``).

Each hardware design's array (:func:`semdialect.sim.ablation.array_parts`: PE cores, block
decoders, activation-frontend lanes, tile drain, addend adders) is the sum of its separately
synthesized modules × their instance counts. At 180 nm every module figure is measured
(:func:`semdialect.sim.asic.synthesize_liberty`: OSU 0.18 µm cells, OpenSTA); at 45 nm and 7 nm
it is a PROJECTION (:func:`semdialect.sim.scaling.scale`, Stillmaker & Baas 2017), and every
row says which.

* **Clock** of a design's array = the lowest f_max of its parts (the slowest unit sets the
  clock: every part is timed register to register, or input to output for a combinational
  part, whose inputs and outputs are registers of its neighbours). ``limiting`` names it.
* **Power** at that clock = Σ count × (dynamic power of the part scaled linearly from its own
  power frequency to the array clock + leakage), at the report's stated input toggle
  activity (transitions per cycle on every input, propagated by OpenSTA). Leakage is not
  projected to other nodes (no sourced factor): scaled rows carry dynamic power only.
* **Peak** = 2 · rows · cols · B operations per cycle (one MAC = 2 operations) × clock;
  TOPS/mm² over the array's cell area, TOPS/W over its power.

Not included: the activation buffer (SRAM), the GEMM core's sequencing FSM, wires, the clock
tree and placement utilisation (cell area only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from semdialect.sim.asic import AsicReport
from semdialect.sim.scaling import NODES, ScalingTable, load_scaling, scale

__all__ = ["CSV_HEADER", "ArrayPPA", "ModuleFigures", "array_ppa", "module_figures",
           "rows_for_csv"]

#: ``asic.csv`` columns (one row per design × part × node, then one ``ARRAY`` row per design ×
#: node). Units: µm², ns, MHz, W; ``activity`` in transitions per cycle.
CSV_HEADER = ["design", "part", "module", "count", "node", "source", "area_um2", "cells",
              "flip_flops", "slack_ns", "critical_path_ns", "f_max_mhz", "leakage_w",
              "dynamic_w", "power_mhz", "activity", "total_area_um2", "clock_mhz",
              "limiting", "power_w", "peak_tops", "tops_per_mm2", "tops_per_w"]

_MEASURED = "measured: Yosys + OpenSTA, {lib} typical {v:g} V, target {p:g} ns"


@dataclass(frozen=True)
class ModuleFigures:
    """One module at one node: measured (180 nm) or projected. Units: µm², MHz, W."""

    module: str
    node: str
    source: str
    area_um2: float
    f_max_mhz: float | None
    dynamic_w: float | None  # internal + switching at power_mhz
    power_mhz: float | None
    leakage_w: float | None
    activity: float
    report: AsicReport

    def power_at(self, mhz: float) -> float | None:
        """Dynamic power scaled linearly to ``mhz`` plus leakage (W); None if unknown."""
        if self.dynamic_w is None or not self.power_mhz:
            return None
        return self.dynamic_w * mhz / self.power_mhz + (self.leakage_w or 0.0)


def module_figures(report: AsicReport, node: str,
                   table: ScalingTable | None = None) -> ModuleFigures:
    """``report``'s figures at ``node``: as measured at its own node, projected otherwise."""
    if node == report.node:
        dyn = (None if report.internal_w is None or report.switching_w is None
               else report.internal_w + report.switching_w)
        source = _MEASURED.format(lib=report.library, v=report.voltage_v,
                                  p=report.target_period_ns)
        return ModuleFigures(report.top, node, source, report.area_um2, report.f_max_mhz, dyn,
                             report.power_mhz, report.leakage_w, report.activity, report)
    sc = scale(report, node, table)
    return ModuleFigures(report.top, node, f"PROJECTION: {sc.area_label}; {sc.f_max_label}",
                         sc.area_um2, sc.f_max_mhz, sc.dynamic_power_w, sc.f_max_mhz, None,
                         report.activity, report)


@dataclass(frozen=True)
class ArrayPPA:
    """One design's array at one node (see the module docstring). Units: µm², MHz, W."""

    design: str
    node: str
    parts: tuple[tuple[str, int, ModuleFigures], ...]  # (part name, count, figures)
    area_um2: float
    clock_mhz: float | None
    limiting: str
    power_w: float | None
    peak_tops: float | None
    projected: bool

    @property
    def tops_per_mm2(self) -> float | None:
        return None if self.peak_tops is None else self.peak_tops / (self.area_um2 / 1e6)

    @property
    def tops_per_w(self) -> float | None:
        if self.peak_tops is None or not self.power_w:
            return None
        return self.peak_tops / self.power_w


def array_ppa(design: str, parts: Sequence[tuple[str, int, AsicReport]],
              macs_per_cycle: int, nodes: Sequence[str] = NODES) -> list[ArrayPPA]:
    """:class:`ArrayPPA` of ``design`` at every node of ``nodes``; ``parts`` = (part name,
    instance count, 180 nm report), ``macs_per_cycle`` = rows · cols · B of the design."""
    table = load_scaling()
    out: list[ArrayPPA] = []
    for node in nodes:
        figs = tuple((name, count, module_figures(rep, node, table))
                     for name, count, rep in parts)
        area = sum(count * f.area_um2 for _, count, f in figs)
        clocks = [(f.f_max_mhz, name) for name, _, f in figs if f.f_max_mhz]
        clock, limiting = min(clocks) if clocks else (None, "")
        power = None
        if clock is not None:
            powers = [f.power_at(clock) for _, _, f in figs]
            if all(p is not None for p in powers):
                power = sum(count * p for (_, count, _), p in zip(figs, powers, strict=True))
        peak = None if clock is None else 2 * macs_per_cycle * clock * 1e6 / 1e12
        out.append(ArrayPPA(design, node, figs, area, clock, limiting, power, peak,
                            projected=any(f.node != f.report.node for _, _, f in figs)))
    return out


def _r(value: float | None, digits: int) -> object:
    return "" if value is None else round(value, digits)


def rows_for_csv(arrays: Sequence[ArrayPPA],
                 modules: Mapping[tuple[str, str], str] | None = None) -> list[list[object]]:
    """``asic.csv`` rows of ``arrays`` (:data:`CSV_HEADER`); ``modules`` maps (design, part
    name) → module name (default: the report's top)."""
    rows: list[list[object]] = []
    for a in arrays:
        for name, count, f in a.parts:
            rep = f.report
            measured = f.node == rep.node
            module = (modules or {}).get((a.design, name), rep.top)
            rows.append([a.design, name, module, count, f.node, f.source,
                         round(f.area_um2, 1), rep.cells if measured else "",
                         rep.flip_flops if measured else "",
                         _r(rep.worst_slack_ns, 3) if measured else "",
                         _r(rep.critical_path_ns, 3) if measured else "",
                         _r(f.f_max_mhz, 1), _r(f.leakage_w, 9), _r(f.dynamic_w, 6),
                         _r(f.power_mhz, 1), f.activity, "", "", "", "", "", "", ""])
        source = ("PROJECTION (Stillmaker & Baas 2017 factors, data/scaling/)" if a.projected
                  else "measured parts summed")
        rows.append([a.design, "ARRAY", "", "", a.node, source, "", "", "", "", "", "", "",
                     "", "", a.parts[0][2].activity if a.parts else "",
                     round(a.area_um2, 1), _r(a.clock_mhz, 1), a.limiting, _r(a.power_w, 6),
                     _r(a.peak_tops, 4), _r(a.tops_per_mm2, 4), _r(a.tops_per_w, 4)])
    return rows
