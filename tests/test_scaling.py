"""Technology scaling (sim/scaling.py, data/scaling/*.toml): loading, monotonicity, arithmetic."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from semdialect.paths import data_dir
from semdialect.sim import scaling
from semdialect.sim.asic import AsicReport

DATA = data_dir() / scaling.SCALING_FILE

REPORT = AsicReport(
    top="pe", verilog_sha256="0" * 64, node="180nm", library="osu018_stdcells",
    library_path="/x.lib", library_sha256="1" * 64, voltage_v=1.8, area_um2=100_000.0,
    cells=3000, cell_histogram={"NAND2X1": 3000}, flip_flops=0, nand2_um2=24.0,
    target_period_ns=4.0, clock="clk", critical_path_ns=10.0, worst_slack_ns=-6.0,
    wns_ns=-6.0, tns_ns=-60.0, f_max_mhz=100.0, critical_path_start="a", critical_path_end="b",
    critical_path_cells=40, power_mhz=100.0, activity=0.1, duty=0.5, leakage_w=1e-6,
    internal_w=0.03, switching_w=0.01, total_w=0.040001)


def test_factors_load_with_citation() -> None:
    table = scaling.load_scaling()
    assert set(scaling.NODES) <= set(table.nodes) and table.source_node == "180nm"
    assert "Stillmaker" in table.citation and "Integration" in table.citation
    assert table.nodes["180nm"].vdd_v == 1.8
    assert table.factors("180nm") == (1.0, 1.0, 1.0)


def test_monotonic_shrink() -> None:
    table = scaling.load_scaling()
    areas = [table.factors(n)[0] for n in ("180nm", "45nm", "7nm")]
    delays = [table.factors(n)[1] for n in ("180nm", "45nm", "7nm")]
    energies = [table.factors(n)[2] for n in ("180nm", "45nm", "7nm")]
    for series in (areas, delays, energies):
        assert series[0] > series[1] > series[2] > 0


def test_exact_arithmetic_against_the_file() -> None:
    doc = tomllib.loads(DATA.read_text())["nodes"]
    src, dst = doc["180nm"], doc["7nm"]

    def delay(n: dict) -> float:
        a3, a2, a1, a0 = n["delay_poly"]
        v = n["vdd_v"]
        return a3 * v**3 + a2 * v**2 + a1 * v + a0

    def energy(n: dict) -> float:
        e2, e1, e0 = n["energy_poly"]
        v = n["vdd_v"]
        return e2 * v**2 + e1 * v + e0

    out = scaling.scale(REPORT, "7nm")
    assert out.area_um2 == pytest.approx(100_000.0 * dst["area_from_180nm"] /
                                         src["area_from_180nm"], rel=1e-12)
    d = delay(dst) / delay(src)
    e = energy(dst) / energy(src)
    assert out.f_max_mhz == pytest.approx(100.0 / d, rel=1e-12)
    # energy per cycle (0.04 W at 100 MHz) × energy factor × scaled frequency
    assert out.dynamic_power_w == pytest.approx(0.04 / 100e6 * e * (100.0 / d) * 1e6, rel=1e-12)
    assert out.leakage_w is None
    for label in (out.area_label, out.f_max_label, out.power_label):
        assert label.startswith("scaled from 180 nm by ")


def test_bad_node_is_named() -> None:
    with pytest.raises(ValueError, match="node '5nm'"):
        scaling.scale(REPORT, "5nm")


def test_report_from_another_voltage_is_refused() -> None:
    with pytest.raises(ValueError, match="report 'pe'"):
        scaling.scale(replace(REPORT, voltage_v=3.3), "45nm")


def test_malformed_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = DATA.read_text().replace("area_from_180nm = 0.0032", "area_from_180nm = 0.5")
    bad.write_text(text)
    with pytest.raises(ValueError, match="area_from_180nm must shrink"):
        scaling.load_scaling(bad)
    bad.write_text(DATA.read_text().replace("delay_poly = [-28.58, 76.6, -70.26, 24.69]",
                                            "delay_poly = [1.0]"))
    with pytest.raises(ValueError, match=r"nodes\.7nm\.delay_poly"):
        scaling.load_scaling(bad)
