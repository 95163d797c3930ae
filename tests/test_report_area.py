"""`make sim`'s area stage and the report's area sections, end to end on the `small` config
with the synthesis tools replaced by a deterministic fake (the tools have their own tests in
test_area.py; the real numbers come from `make sim`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pytest

import semdialect.sim.ablation as ablation
from semdialect.cli import mainjob
from semdialect.config import Config, load_config
from semdialect.reports import plots
from semdialect.reports.build import build_report
from semdialect.sim.area import AreaReport, Ice40Stats

REPO = Path(__file__).resolve().parents[1]
SMALL = load_config(REPO / "configs" / "small.toml")
FMAX = {"pe_core": 21.5, "format_selector": 33.0}


def fake_gates(path: Path) -> float:
    """A made-up but deterministic NAND2 count per emitted (config, module)."""
    return 100.0 + int(hashlib.sha256(str(path).encode()).hexdigest()[:6], 16) % 5000


def fake_verilog(cfg: Config, module: str) -> tuple[Path, str]:
    key = hashlib.sha256(json.dumps([asdict(cfg), module], sort_keys=True).encode()).hexdigest()
    return Path(f"/fake/{module}-{key[:10]}.v"), key


def fake_synthesize(path, top, *, ice40=False, fmax=False, **_):
    gates = fake_gates(Path(path))
    ice = None
    if ice40 or fmax:
        ice = Ice40Stats(lut4=int(gates), carry=0, dff=3, ram=0, cells={},
                         fmax_mhz=FMAX[top] if fmax else None)
    return AreaReport(top=top, verilog_sha256="0", generic_cells={"$_NAND_": int(gates)},
                      flip_flops=0, transistors=4 * int(gates), transistors_exact=True,
                      nand2_eq=gates, yosys_version="fake", ice40=ice)


@pytest.fixture()
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(ablation, "_verilog", fake_verilog)
    monkeypatch.setattr(ablation, "synthesize", fake_synthesize)
    monkeypatch.setattr(mainjob, "stage_asic", lambda cfg, out, parts: {})  # test_asic_report
    clock, asic = mainjob.stage_area(SMALL, tmp_path, fmax=True)
    assert clock == min(FMAX.values()) and asic == {}
    mainjob.stage_cycles(SMALL, "opensora2_256px_129f", "0.05", tmp_path, clock)
    return tmp_path


def test_csvs_hold_every_variant_and_array_part(out: Path) -> None:
    area = plots.read_csv(out / "area.csv")
    plan = ablation.variants(SMALL)
    assert len(area) == sum(len(v.modules) for v in plan)
    assert {r["axis"] for r in area} == set(ablation.ABLATION_AXES)
    for r in area:
        v = next(v for v in plan if v.label == r["variant"] and v.axis == r["axis"])
        path, _ = fake_verilog(v.cfg, r["module"])
        assert float(r["nand2_eq"]) == pytest.approx(fake_gates(path), abs=0.05)
    array = plots.read_csv(out / "array_area.csv")
    assert len(array) == len(ablation.array_parts(SMALL))
    pe = next(r for r in array if r["design"] == "mxint8" and r["part"] == "PE cores")
    assert int(pe["count"]) == SMALL.rows * SMALL.cols
    assert float(pe["nand2_eq"]) == pytest.approx(float(pe["unit_nand2_eq"]) * 4, abs=0.2)
    fmax = {r["unit"]: r for r in plots.read_csv(out / "fmax.csv")}
    assert float(fmax["pe_core"]["fmax_mhz"]) == FMAX["pe_core"]
    assert fmax["format_selector"]["formats_per_cycle"] == str(SMALL.formats_per_cycle)


def test_summary_reports_ablation_array_and_clock(out: Path) -> None:
    path = build_report(out, cfg=SMALL, workload="opensora2_256px_129f", fmax_mhz=None,
                        fallback_mhz=100.0)
    text = path.read_text()
    assert f"time at {min(FMAX.values()):.1f} MHz" in text
    for axis in ablation.ABLATION_AXES:
        assert f"**{axis}**" in text
    # every axis has exactly one baseline row, and its ratio to itself is 1.00
    assert text.count(" * |") == len(ablation.ABLATION_AXES)
    for line in text.splitlines():
        if " * |" in line:
            assert line.rstrip().endswith("| 1.00 |"), line
    # the array total in the key table = the parts in array_area.csv
    array = plots.read_csv(out / "array_area.csv")
    total = sum(float(r["nand2_eq"]) for r in array if r["design"] == "blockdialect") / 1000
    key_row = next(ln for ln in text.splitlines() if ln.startswith("| blockdialect |"))
    assert f"| {total:,.1f} |" in key_row
    mx_row = next(ln for ln in text.splitlines() if ln.startswith("| mxfp4 |"))
    mx_front = next(float(r["nand2_eq"]) for r in array  # the MX quantizer lanes
                    if r["design"] == "mxfp4" and r["part"] == "activation frontend") / 1000
    assert mx_row.split("|")[6].strip() == f"{mx_front:.1f}" and mx_front > 0
    for png in ("area.png", "ablation.png"):
        assert (out / png).stat().st_size > 10_000


@pytest.mark.parametrize("config", ["small", "blockdialect"])
def test_key_table_accuracy_is_the_configured_format(
    config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key table's ``semanticdialect`` row reads the accuracy of the configured
    formatbook and selection at the configured B (dfp4 lut B = 16 for `small`, dfp4
    two-stage for `blockdialect`), not sd32's; expected values from the golden model."""
    import numpy as np

    from semdialect.evaluation import samples
    from semdialect.golden import quantize, sqnr_db

    cfg = load_config(REPO / "configs" / f"{config}.toml")
    rng = np.random.default_rng(11)
    tensors = {"minilm.ffn_act": rng.standard_t(3, (64, 256)).astype(np.float32),
               "video.tokens": rng.standard_normal((32, 128)).astype(np.float32) ** 3}
    monkeypatch.setattr(samples, "sample_tensors",
                        lambda: iter((n, x, "test") for n, x in tensors.items()))
    mainjob.stage_golden(cfg, tmp_path)
    mainjob.stage_cycles(cfg, "opensora2_256px_129f", "0.05", tmp_path, 100.0)
    text = build_report(tmp_path, cfg=cfg, workload="opensora2_256px_129f", fmax_mhz=None,
                        fallback_mhz=100.0).read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("| semanticdialect |"))
    bits, act, video = (c.strip() for c in row.split("|")[2:5])

    def golden_row(book: str, select: str) -> tuple[str, str, str]:
        q = {n: quantize(x, book, select=select, block=cfg.block) for n, x in tensors.items()}
        return (f"{q['minilm.ffn_act'].bits_per_element:.3f}",
                f"{sqnr_db(tensors['minilm.ffn_act'], q['minilm.ffn_act'].dequant):.2f}",
                f"{sqnr_db(tensors['video.tokens'], q['video.tokens'].dequant):.2f}")

    assert cfg.formatbook == "dfp4"
    assert (bits, act, video) == golden_row("dfp4", cfg.select)
    assert (bits, act, video) != golden_row("sd32", "lut")  # the row before the fix
