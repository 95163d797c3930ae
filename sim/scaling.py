"""Technology scaling of 180 nm liberty-flow figures to 45 nm and 7 nm — a labelled PROJECTION.

The figures of :mod:`semdialect.sim.asic` are measured (synthesis + OpenSTA) on a 180 nm
library. :func:`scale` projects them onto another node with the published fits of Stillmaker &
Baas (Integration 58, 2017), kept with their provenance in
``data/scaling/stillmaker_baas_2017.toml`` (package data, :func:`load_scaling`):

* area (µm²) × ``area_from_180nm`` of the node;
* f_max (MHz) ÷ delay factor, delay factor = D_node(V_node) / D_180(V_180) of the cubic delay
  fits at each node's supply voltage;
* dynamic power (W, internal + switching) at the scaled f_max = 180 nm energy per cycle
  (dynamic power / power frequency) × energy factor (E_node(V_node) / E_180(V_180), the
  quadratic energy fits) × scaled f_max. The activity is the report's, unchanged.
* leakage is not scaled (no sourced factor; ``leakage_w`` stays None).

Every figure carries a label "scaled from 180 nm by …" naming the factor and its source.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semdialect.paths import data_dir
from semdialect.sim.asic import AsicReport

__all__ = ["NODES", "SCALING_FILE", "NodeFactors", "ScaledFigures", "ScalingTable",
           "load_scaling", "scale", "scaled_rows"]

#: The shipped scaling data file, relative to :func:`semdialect.paths.data_dir`.
SCALING_FILE = Path("scaling") / "stillmaker_baas_2017.toml"

#: Nodes :func:`scale` projects onto (the source node, 180 nm, included: factor 1).
NODES: tuple[str, ...] = ("180nm", "45nm", "7nm")


@dataclass(frozen=True)
class NodeFactors:
    """One node of the scaling table (units: V, dimensionless factors)."""

    node: str
    model: str
    vdd_v: float
    area_from_180nm: float
    delay_poly: tuple[float, float, float, float]
    energy_poly: tuple[float, float, float]

    def delay(self) -> float:
        """Relative gate delay at the node's ``vdd_v`` (cubic fit)."""
        a3, a2, a1, a0 = self.delay_poly
        v = self.vdd_v
        return a3 * v**3 + a2 * v**2 + a1 * v + a0

    def energy(self) -> float:
        """Relative switching energy at the node's ``vdd_v`` (quadratic fit)."""
        e2, e1, e0 = self.energy_poly
        v = self.vdd_v
        return e2 * v**2 + e1 * v + e0


@dataclass(frozen=True)
class ScalingTable:
    """The loaded data file: source node, citation, transcription note and the nodes."""

    version: int
    source_node: str
    citation: str
    transcription: str
    nodes: dict[str, NodeFactors]
    path: str

    def factors(self, node: str) -> tuple[float, float, float]:
        """(area, delay, energy) factors from :attr:`source_node` to ``node``."""
        src, dst = self._get(self.source_node), self._get(node)
        return (dst.area_from_180nm / src.area_from_180nm, dst.delay() / src.delay(),
                dst.energy() / src.energy())

    def _get(self, node: str) -> NodeFactors:
        try:
            return self.nodes[node]
        except KeyError:
            raise ValueError(f"node {node!r}: not in the scaling table {self.path} "
                             f"(nodes: {', '.join(self.nodes)})") from None


@dataclass(frozen=True)
class ScaledFigures:
    """A 180 nm :class:`~semdialect.sim.asic.AsicReport` projected onto ``node`` (PROJECTION).

    ``area_um2`` (µm², cells only), ``f_max_mhz`` (MHz), ``dynamic_power_w`` (W at
    ``f_max_mhz`` and the report's activity), ``leakage_w`` (None: not scaled), the factors
    used, ``vdd_v`` (V) of the node, and one ``*_label`` per figure saying how it was scaled.
    """

    top: str
    node: str
    vdd_v: float
    area_um2: float
    f_max_mhz: float | None
    dynamic_power_w: float | None
    leakage_w: float | None
    area_factor: float
    delay_factor: float
    energy_factor: float
    activity: float
    area_label: str
    f_max_label: str
    power_label: str
    citation: str


def _floats(value: Any, n: int, where: str) -> tuple[float, ...]:
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in value)):
        raise ValueError(f"{where}: needs {n} finite numbers, not {value!r}")
    return tuple(float(v) for v in value)


def load_scaling(path: str | Path | None = None) -> ScalingTable:
    """Read and validate a scaling TOML file (default: the shipped :data:`SCALING_FILE`).

    Checks: every key present, voltages and area factors positive, the source node's area
    factor 1, polynomial lengths, positive delay and energy at each node's voltage, and area
    shrinking monotonically with the node size. ``ValueError`` names the file and the entry.
    """
    file = Path(path) if path is not None else data_dir() / SCALING_FILE
    try:
        doc = tomllib.loads(file.read_text())
    except OSError as exc:
        raise ValueError(f"scaling file {file}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"scaling file {file}: {exc}") from None
    for key in ("version", "source_node", "citation", "transcription", "nodes"):
        if key not in doc:
            raise ValueError(f"scaling file {file}: missing {key!r}")
    nodes: dict[str, NodeFactors] = {}
    for node, entry in doc["nodes"].items():
        where = f"scaling file {file}: nodes.{node}"
        missing = {"model", "vdd_v", "area_from_180nm", "delay_poly", "energy_poly"} - set(entry)
        if missing:
            raise ValueError(f"{where}: missing {', '.join(sorted(missing))}")
        vdd, area_f = entry["vdd_v"], entry["area_from_180nm"]
        for name, value in (("vdd_v", vdd), ("area_from_180nm", area_f)):
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{where}.{name}: must be a positive number, not {value!r}")
        factors = NodeFactors(
            node=node, model=str(entry["model"]), vdd_v=float(vdd),
            area_from_180nm=float(area_f),
            delay_poly=_floats(entry["delay_poly"], 4, f"{where}.delay_poly"),  # type: ignore[arg-type]
            energy_poly=_floats(entry["energy_poly"], 3, f"{where}.energy_poly"),  # type: ignore[arg-type]
        )
        if not factors.delay() > 0 or not factors.energy() > 0:
            raise ValueError(f"{where}: delay and energy fits must be positive at "
                             f"{factors.vdd_v} V")
        nodes[node] = factors
    source = doc["source_node"]
    if source not in nodes or nodes[source].area_from_180nm != 1.0:
        raise ValueError(f"scaling file {file}: source_node {source!r} needs an entry with "
                         "area_from_180nm = 1")
    by_size = sorted(nodes.values(), key=lambda f: -_nm(f.node, file))
    for big, small in zip(by_size, by_size[1:], strict=False):
        if not small.area_from_180nm < big.area_from_180nm:
            raise ValueError(f"scaling file {file}: area_from_180nm must shrink with the node "
                             f"({big.node} {big.area_from_180nm}, {small.node} "
                             f"{small.area_from_180nm})")
    return ScalingTable(version=int(doc["version"]), source_node=source,
                        citation=str(doc["citation"]), transcription=str(doc["transcription"]),
                        nodes=nodes, path=str(file))


def _nm(node: str, file: Path) -> float:
    try:
        return float(node.removesuffix("nm"))
    except ValueError:
        raise ValueError(f"scaling file {file}: node {node!r} is not like '45nm'") from None


def scale(report: AsicReport, node: str, table: ScalingTable | None = None) -> ScaledFigures:
    """Project ``report`` (a 180 nm :func:`~semdialect.sim.asic.synthesize_liberty` result)
    onto ``node`` (one of :data:`NODES`, or any node of ``table``); see the module docstring.

    Raises ``ValueError`` naming ``node`` when the table has no such node, and naming the
    report when it is not from the table's source node and voltage.
    """
    table = table if table is not None else load_scaling()
    if not isinstance(node, str) or node not in table.nodes:
        raise ValueError(f"node {node!r}: no scaling factors (nodes: {', '.join(table.nodes)})")
    source = table.nodes[table.source_node]
    if report.node != table.source_node or not math.isclose(report.voltage_v, source.vdd_v):
        raise ValueError(f"report {report.top!r}: at {report.node} {report.voltage_v} V, the "
                         f"scaling table starts from {table.source_node} {source.vdd_v} V")
    area_f, delay_f, energy_f = table.factors(node)
    dst = table.nodes[node]
    how = (f"Stillmaker & Baas 2017 fits ({source.vdd_v:g} V -> {dst.vdd_v:g} V, "
           f"{dst.model})")
    f_max = None if report.f_max_mhz is None else report.f_max_mhz / delay_f
    power = None
    if f_max is not None and report.power_mhz and report.internal_w is not None \
            and report.switching_w is not None:
        energy_per_cycle = (report.internal_w + report.switching_w) / (report.power_mhz * 1e6)
        power = energy_per_cycle * energy_f * f_max * 1e6
    return ScaledFigures(
        top=report.top,
        node=node,
        vdd_v=dst.vdd_v,
        area_um2=report.area_um2 * area_f,
        f_max_mhz=f_max,
        dynamic_power_w=power,
        leakage_w=None,
        area_factor=area_f,
        delay_factor=delay_f,
        energy_factor=energy_f,
        activity=report.activity,
        area_label=f"scaled from 180 nm by area factor {area_f:.4g} ({how})",
        f_max_label=f"scaled from 180 nm by 1 / delay factor {delay_f:.4g} ({how})",
        power_label=(f"scaled from 180 nm by energy factor {energy_f:.4g} x frequency "
                     f"(dynamic power at the scaled f_max, activity {report.activity:g}; "
                     f"leakage not scaled) ({how})"),
        citation=table.citation,
    )


def scaled_rows(reports: Mapping[str, AsicReport], nodes: Sequence[str] = NODES
                ) -> list[ScaledFigures]:
    """:func:`scale` of every report onto every node (report order, then node order)."""
    table = load_scaling()
    return [scale(rep, node, table) for rep in reports.values() for node in nodes]
