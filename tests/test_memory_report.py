"""``semdialect sim``'s memory stage (``MEMORY_REPORT.csv``, ``memory_step.csv``) and the
roofline drawn from it: every design × attention mode, the chosen mapping of every layer, the
step table's totals equal the per-layer rows × count."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from semdialect.cli import mainjob
from semdialect.config import resolve_config
from semdialect.reports.build import memory_section, roofline_plot
from semdialect.sim.model import model_designs
from semdialect.sim.workloads import load_workload, workload_path

WORKLOAD = "opensora12_240p_51f"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_memory_stage_reports_every_design_and_mode(tmp_path: Path) -> None:
    cfg = resolve_config("default")
    gemms = load_workload(workload_path(WORKLOAD))
    steps = mainjob.stage_memory(cfg, tmp_path, 250.0, gemms, "0.05", {"mxfp4": 300.0})
    designs = [d.label for d in model_designs(cfg)] + [
        "semanticdialect+decomposition(rho=0.05)"]
    assert [(s["design"], s["attention"]) for s in steps] == [
        (d, mode) for mode, _ in mainjob.ATTENTION_MODES for d in designs]
    assert {s["design"]: s["clock_mhz"] for s in steps}["mxfp4"] == 300.0
    layers = _rows(tmp_path / "MEMORY_REPORT.csv")
    block = {d.label: d.cfg.block for d in model_designs(cfg)}  # NVFP4: 16
    block["semanticdialect+decomposition(rho=0.05)"] = cfg.block
    for s in steps:
        mine = [r for r in layers if (r["design"], r["attention"]) == (s["design"],
                                                                        s["attention"])]
        kinds = {r["kind"] for r in mine}
        # separate attention runs a softmax pass between QK^T and .V; fused has none
        assert ("softmax" in kinds) == (s["attention"] == "separate"), kinds
        assert ("attention" in kinds) == (s["attention"] == "fused"), kinds
        cycles = sum(float(r["cycles"]) * int(r["count"]) for r in mine)
        assert cycles == pytest.approx(float(s["cycles"]), rel=1e-4, abs=1)
        dram = sum(float(r["dram_total_bytes"]) * int(r["count"]) for r in mine)
        assert dram / 1e9 == pytest.approx(float(s["dram_gb_per_step"]), rel=1e-3, abs=1e-3)
        for r in mine:
            if r["kind"] == "gemm":
                assert int(r["tm"]) % cfg.rows == 0 and int(r["tk"]) % block[r["design"]] == 0
                assert float(r["cycles"]) >= float(r["core_cycles"])
                assert r["k_split"] in ("0", "1")
    fused = {s["design"]: float(s["dram_gb_per_step"]) for s in steps
             if s["attention"] == "fused"}
    separate = {s["design"]: float(s["dram_gb_per_step"]) for s in steps
                if s["attention"] == "separate"}
    assert all(fused[d] < separate[d] for d in designs)


def test_roofline_and_summary_come_from_the_memory_stage(tmp_path: Path) -> None:
    cfg = resolve_config("small")
    gemms = load_workload(workload_path(WORKLOAD))
    mainjob.stage_memory(cfg, tmp_path, 100.0, gemms, "0", None)
    png = roofline_plot(tmp_path, cfg)
    assert png.name == "roofline.png" and png.stat().st_size > 10_000
    text = "\n".join(memory_section(tmp_path, cfg, WORKLOAD))
    assert f"DRAM {cfg.dram_gbps:g} GB/s" in text and "| fused |" in text
