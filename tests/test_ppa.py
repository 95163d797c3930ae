"""Array-level PPA from per-module liberty figures (sim/ppa.py), the `asic.csv` stage and the
summary's Silicon section — on made-up module reports, so every expected total is recomputed
here by hand from the inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from semdialect.cli import mainjob
from semdialect.config import resolve_config
from semdialect.reports import plots
from semdialect.reports.build import build_report
from semdialect.sim import ablation, asic, ppa
from semdialect.sim.asic import AsicReport
from semdialect.sim.scaling import load_scaling

SMALL = resolve_config("small")


def fake_report(top: str, area: float, fmax: float | None, dyn_w: float = 1e-3,
                leak_w: float = 1e-6) -> AsicReport:
    """A 180 nm report: ``dyn_w`` split evenly into internal and switching at ``fmax``."""
    return AsicReport(
        top=top, verilog_sha256="0", node="180nm", library="osu018_stdcells",
        library_path="x.lib", library_sha256="0", voltage_v=1.8, area_um2=area, cells=10,
        cell_histogram={"NAND2X1": 10}, flip_flops=2, nand2_um2=16.0, target_period_ns=4.0,
        clock="clk", critical_path_ns=None if fmax is None else 1000 / fmax,
        worst_slack_ns=None if fmax is None else 4.0 - 1000 / fmax, wns_ns=0.0, tns_ns=0.0,
        f_max_mhz=fmax, critical_path_start="a", critical_path_end="b",
        critical_path_cells=3, power_mhz=fmax, activity=0.1, duty=0.5,
        leakage_w=leak_w, internal_w=dyn_w / 2, switching_w=dyn_w / 2)


def test_array_ppa_sums_parts_and_takes_the_slowest_clock() -> None:
    parts = [("PE cores", 4, fake_report("pe_core", 1000.0, 300.0, 2e-3)),
             ("tile drain", 1, fake_report("tile_drain", 500.0, 250.0, 1e-3, 0.0)),
             ("addend adders", 2, fake_report("addend_adder", 100.0, 400.0, 4e-4))]
    at180, at45, at7 = ppa.array_ppa("d", parts, macs_per_cycle=4 * 32)
    assert at180.area_um2 == pytest.approx(4 * 1000 + 500 + 2 * 100)
    assert (at180.clock_mhz, at180.limiting) == (250.0, "tile drain")
    # dynamic power scales linearly from each unit's own f_max to the array clock
    want = (4 * (2e-3 * 250 / 300 + 1e-6) + 1e-3 + 2 * (4e-4 * 250 / 400 + 1e-6))
    assert at180.power_w == pytest.approx(want)
    assert at180.peak_tops == pytest.approx(2 * 128 * 250e6 / 1e12)
    assert at180.tops_per_mm2 == pytest.approx(at180.peak_tops / (at180.area_um2 / 1e6))
    assert not at180.projected and at45.projected and at7.projected
    table = load_scaling()
    area45, delay45, energy45 = table.factors("45nm")
    assert at45.area_um2 == pytest.approx(at180.area_um2 * area45)
    assert at45.clock_mhz == pytest.approx(250.0 / delay45)
    # projected: energy per cycle × energy factor × scaled clock; leakage not projected
    e_cycle = 4 * 2e-3 / 300e6 + 1e-3 / 250e6 + 2 * 4e-4 / 400e6
    assert at45.power_w == pytest.approx(e_cycle * energy45 * at45.clock_mhz * 1e6)
    assert at7.area_um2 < at45.area_um2 < at180.area_um2


def test_unknown_clock_leaves_power_and_tops_empty() -> None:
    (at180,) = ppa.array_ppa("d", [("comb", 1, fake_report("c", 10.0, None))], 1,
                             nodes=("180nm",))
    assert at180.clock_mhz is None and at180.power_w is None and at180.peak_tops is None
    row = ppa.rows_for_csv([at180])[-1]
    assert row[1] == "ARRAY" and row[ppa.CSV_HEADER.index("clock_mhz")] == ""


@pytest.fixture()
def asic_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """stage_asic on the small config with fake Verilog and fake liberty reports."""
    areas = {"pe_core": 1000.0, "block_decoder": 50.0, "tile_drain": 400.0,
             "addend_adder": 120.0, "block_quantizer_residual": 3000.0,
             "format_selector": 900.0}

    def fake_many(jobs, n_jobs=2, *, say=None):
        out = []
        for job in jobs:
            top = job["top"]
            area = areas.get(top, 700.0 + len(top))
            out.append(fake_report(top, area, 200.0 + 10 * len(top)))
        return out

    monkeypatch.setattr(ablation, "module_verilog", lambda cfg, m: Path(f"/fake/{m}.v"))
    monkeypatch.setattr(asic, "liberty_available", lambda: None)
    monkeypatch.setattr(asic, "synthesize_liberty_many", fake_many)
    parts = ablation.array_parts(SMALL)
    clocks = mainjob.stage_asic(SMALL, tmp_path, parts)
    assert set(clocks) == {p.design for p in parts}
    return tmp_path


def test_asic_csv_rows_add_up(asic_out: Path) -> None:
    rows = plots.read_csv(asic_out / "asic.csv")
    assert list(rows[0]) == ppa.CSV_HEADER
    for (design, node) in {(r["design"], r["node"]) for r in rows}:
        mine = [r for r in rows if r["design"] == design and r["node"] == node]
        (array,) = [r for r in mine if r["part"] == "ARRAY"]
        units = [r for r in mine if r["part"] != "ARRAY"]
        total = sum(int(r["count"]) * float(r["area_um2"]) for r in units)
        slack = 0.05 * (1 + sum(int(r["count"]) for r in units))  # 0.1 µm² rounding per row
        assert float(array["total_area_um2"]) == pytest.approx(total, abs=slack)
        slowest = min(units, key=lambda r: float(r["f_max_mhz"]))
        assert float(array["clock_mhz"]) == pytest.approx(float(slowest["f_max_mhz"]),
                                                          abs=0.1)
        assert array["limiting"] == slowest["part"]
        assert node in ("180nm", "45nm", "7nm")
        assert array["source"].startswith("PROJECTION") == (node != "180nm")
    # each row names its own design's module
    parts = {(p.design, p.part): p.module for p in ablation.array_parts(SMALL)}
    for r in rows:
        if (r["design"], r["part"]) in parts:
            assert r["module"] == parts[(r["design"], r["part"])], r
    # the selector is timed (a unit of the frontend lane) but adds no area of its own
    sel = [r for r in rows if r["module"] == "format_selector"]
    assert sel and all(r["count"] == "0" for r in sel)


def test_summary_silicon_section(asic_out: Path) -> None:
    mainjob.stage_cycles(SMALL, "opensora2_256px_129f", "0.05", asic_out, 100.0)
    text = build_report(asic_out, cfg=SMALL, workload="opensora2_256px_129f",
                        fmax_mhz=None, fallback_mhz=100.0).read_text()
    assert "## Silicon (liberty flow" in text
    assert "(projected)" in text and "TOPS/mm²" in text and "TOPS/W" in text
    assert "Table 5" in text  # BlockDialect's published ratio beside ours
    rows = plots.read_csv(asic_out / "asic.csv")
    clock = next(float(r["clock_mhz"]) for r in rows if r["part"] == "ARRAY"
                 and r["design"] == "semanticdialect" and r["node"] == "180nm")
    compute = plots.read_csv(asic_out / "COMPUTE_REPORT.csv")
    cyc = sum(int(r["step_cycles"]) for r in compute if r["design"] == "semanticdialect")
    key = next(ln for ln in text.splitlines() if ln.startswith("| semanticdialect |"))
    assert f"| {cyc / (clock * 1e6):.2f} |" in key  # time at the design's own clock


def test_missing_library_is_stated_not_invented(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asic, "liberty_available", lambda: "no cell library at /nowhere.lib")
    assert mainjob.stage_asic(SMALL, tmp_path, ablation.array_parts(SMALL)) == {}
    assert not (tmp_path / "asic.csv").exists()
    assert "/nowhere.lib" in (tmp_path / "asic_missing.txt").read_text()
    mainjob.stage_cycles(SMALL, "opensora2_256px_129f", "0.05", tmp_path, 100.0)
    text = build_report(tmp_path, cfg=SMALL, workload="opensora2_256px_129f",
                        fmax_mhz=None, fallback_mhz=100.0).read_text()
    assert "Not in this run: no cell library at /nowhere.lib" in text
