"""The liberty flow (sim/asic.py): 180 nm cell mapping, OpenSTA timing and power, caching.

Tests that run Yosys and OpenSTA skip with the reason of ``liberty_available()`` when the OSU
library or ``sta`` is missing. Each run synthesizes into a fresh pytest cache (≈ 35 s on 2
cores, most of it the NAND2 cross-check's three modules).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from semdialect.config import resolve_config
from semdialect.rtl.components import components
from semdialect.rtl.emit import generate_verilog
from semdialect.sim import area, asic

REASON = asic.liberty_available()
needs_liberty = pytest.mark.skipif(REASON is not None, reason=REASON or "")

COUNTER = """\
module counter(input clk, input rst, input en, input [7:0] inc, output reg [7:0] q,
               output wrap);
  always @(posedge clk) if (rst) q <= 0; else if (en) q <= q + inc;
  assign wrap = &q;
endmodule
"""

#: modules of the small configuration whose liberty area (in NAND2X1 areas) must agree with the
#: generic flow's NAND2 equivalents within 10 % (measured: 0.975, 0.976, 1.045; see the report)
CROSS_CHECK = ("pe_core", "pe_core_mxfp4", "addend_adder")


def lib_areas(path: Path) -> dict[str, float]:
    """Cell areas of a liberty file, read independently of sim/asic.py."""
    text = path.read_text()
    return {m[1]: float(m[2]) for m in
            re.finditer(r"cell\s*\(\s*\"?(\w+)\"?\s*\)\s*\{[^}]*?area\s*:\s*([0-9.]+)", text)}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asic-cache")


@pytest.fixture(scope="module")
def counter_v(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("counter") / "counter.v"
    path.write_text(COUNTER)
    return path


@pytest.fixture(scope="module")
def small_verilog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("small-v")
    comps = components(resolve_config("small"))
    for name in CROSS_CHECK:
        generate_verilog(comps[name](), name, out)
    return {name: out / f"{name}.v" for name in CROSS_CHECK}


@pytest.fixture(scope="module")
def counter(counter_v: Path, cache: Path) -> asic.AsicReport:
    return asic.synthesize_liberty(counter_v, "counter", cache_dir=cache)


@pytest.fixture(scope="module")
def adder(small_verilog: dict[str, Path], cache: Path) -> asic.AsicReport:
    return asic.synthesize_liberty(small_verilog["addend_adder"], "addend_adder", cache_dir=cache)


@needs_liberty
def test_area_is_sum_of_library_cell_areas(counter: asic.AsicReport,
                                           adder: asic.AsicReport) -> None:
    areas = lib_areas(asic.liberty_path())
    assert areas["NAND2X1"] == counter.nand2_um2 == 24.0
    for rep in (counter, adder):
        assert rep.cells == sum(rep.cell_histogram.values()) > 0
        expected = sum(areas[c] * n for c, n in rep.cell_histogram.items())
        assert rep.area_um2 == pytest.approx(expected, rel=1e-9)
        assert rep.node == "180nm" and rep.voltage_v == 1.8
        assert rep.library == "osu018_stdcells" and len(rep.library_sha256) == 64
    assert counter.flip_flops == 8  # q[7:0]
    assert adder.flip_flops == 0


@needs_liberty
def test_timing_sequential(counter: asic.AsicReport) -> None:
    assert counter.clock == "clk" and counter.target_period_ns == asic.DEFAULT_PERIOD_NS
    crit = counter.critical_path_ns
    assert crit is not None and 0 < crit
    assert counter.f_max_mhz == pytest.approx(1000.0 / crit)
    assert counter.worst_slack_ns == pytest.approx(counter.target_period_ns - crit)
    assert counter.wns_ns == pytest.approx(min(0.0, counter.worst_slack_ns))
    assert "flip-flop" in counter.critical_path_start and "flip-flop" in counter.critical_path_end
    assert counter.critical_path_cells >= 2  # launch flip-flop + adder logic


@needs_liberty
def test_timing_combinational(adder: asic.AsicReport) -> None:
    assert adder.clock is None  # virtual clock, input -> output
    crit = adder.critical_path_ns
    assert crit is not None and adder.f_max_mhz == pytest.approx(1000.0 / crit)
    assert "input port" in adder.critical_path_start
    assert "output port" in adder.critical_path_end
    assert adder.critical_path_cells > 10  # an FP32 adder is deep


@needs_liberty
def test_power(counter: asic.AsicReport, adder: asic.AsicReport) -> None:
    for rep in (counter, adder):
        assert rep.power_mhz == rep.f_max_mhz and rep.activity == asic.DEFAULT_ACTIVITY
        assert rep.leakage_w > 0 and rep.internal_w > 0 and rep.switching_w > 0
        assert rep.total_w == pytest.approx(rep.leakage_w + rep.internal_w + rep.switching_w,
                                            rel=1e-4)


@needs_liberty
def test_power_frequency_and_port_activity(counter_v: Path, counter: asic.AsicReport,
                                           cache: Path) -> None:
    runs = dict(area.TOOL_RUNS)
    half = asic.synthesize_liberty(counter_v, "counter", cache_dir=cache,
                                   power_mhz=counter.f_max_mhz / 2)
    assert area.TOOL_RUNS["yosys"] == runs.get("yosys", 0)  # synthesis reused: STA only
    dyn = counter.internal_w + counter.switching_w
    assert half.internal_w + half.switching_w == pytest.approx(dyn / 2, rel=1e-3)
    busy = asic.synthesize_liberty(counter_v, "counter", cache_dir=cache,
                                   port_activity={"inc": (0.5, 0.5)})
    assert busy.port_activity == {"inc": (0.5, 0.5)}
    assert busy.switching_w > counter.switching_w
    with pytest.raises(ValueError, match="port_activity: no such port"):
        asic.synthesize_liberty(counter_v, "counter", cache_dir=cache,
                                port_activity={"nope": (0.5, 0.5)})


@needs_liberty
def test_cache_hit_runs_no_tool(counter_v: Path, counter: asic.AsicReport,
                                cache: Path) -> None:
    runs = dict(area.TOOL_RUNS)
    messages: list[str] = []
    again = asic.synthesize_liberty(counter_v, "counter", cache_dir=cache, say=messages.append)
    assert again == counter and dict(area.TOOL_RUNS) == runs and messages == []
    assert asic.AsicReport.from_json(counter.to_json()) == counter


@needs_liberty
def test_many_in_parallel(counter_v: Path, counter: asic.AsicReport, cache: Path) -> None:
    messages: list[str] = []
    jobs = [{"verilog_path": counter_v, "top": "counter", "cache_dir": cache},
            {"verilog_path": counter_v, "top": "counter", "cache_dir": cache,
             "period_ns": 2.0}]
    reps = asic.synthesize_liberty_many(jobs, n_jobs=2, say=messages.append)
    assert reps[0] == counter and reps[1].target_period_ns == 2.0
    assert messages == ["counter: done", "counter: done"]
    assert not any(re.search(r"\d+(\.\d+)? ?s\b", m) for m in messages)  # no wall times


@needs_liberty
def test_unknown_top_is_named(counter_v: Path, cache: Path) -> None:
    with pytest.raises(ValueError, match="top 'nope'.*modules: counter"):
        asic.synthesize_liberty(counter_v, "nope", cache_dir=cache)


@needs_liberty
@pytest.mark.parametrize("name", CROSS_CHECK)
def test_nand2_cross_check(name: str, small_verilog: dict[str, Path], cache: Path) -> None:
    """Liberty area in NAND2X1 areas vs the generic flow's NAND2 equivalents, same Verilog."""
    lib = asic.synthesize_liberty(small_verilog[name], name, cache_dir=cache)
    gen = area.synthesize(small_verilog[name], name, cache_dir=cache)
    nand2 = lib_areas(asic.liberty_path())["NAND2X1"]
    ratio = lib.area_um2 / nand2 / gen.nand2_eq
    assert abs(ratio - 1) <= 0.10, f"{name}: liberty/NAND2 / nand2_eq = {ratio:.3f}"
    assert lib.flip_flops == gen.flip_flops


# --- without the tools -----------------------------------------------------------------------


def test_missing_library_gives_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        counter_v: Path) -> None:
    missing = tmp_path / "no_such.lib"
    monkeypatch.setattr(asic, "LIBERTY_PATH", missing)
    reason = asic.liberty_available()
    assert reason is not None and str(missing) in reason and "\n" not in reason
    runs = dict(area.TOOL_RUNS)
    with pytest.raises(asic.LibertyUnavailable, match=re.escape(str(missing))):
        asic.synthesize_liberty(counter_v, "counter", cache_dir=tmp_path)
    assert dict(area.TOOL_RUNS) == runs


def test_library_found_under_build_tech(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``make asic-tools`` extracts the library under <build>/tech/ when it is not installed."""
    system = tmp_path / "usr" / "share" / "osu018_stdcells.lib"
    monkeypatch.setattr(asic, "SYSTEM_LIBERTY", system)
    monkeypatch.delenv("SEMDIALECT_LIBERTY", raising=False)
    monkeypatch.setenv("SEMDIALECT_BUILD_DIR", str(tmp_path / "build"))
    assert asic.liberty_path() == system  # neither exists: the system path, for the message
    local = tmp_path / "build" / "tech" / system.relative_to("/")
    local.parent.mkdir(parents=True)
    local.write_text("library (x) { nom_voltage : 1.8; }")
    assert asic.liberty_path() == local


def test_missing_sta_gives_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    counter_v: Path) -> None:
    if not asic.liberty_path().is_file():
        pytest.skip(REASON or "no library")
    monkeypatch.setattr(asic, "STA", "sta-not-installed-here")
    reason = asic.liberty_available()
    assert reason is not None and "sta-not-installed-here" in reason and "\n" not in reason
    with pytest.raises(asic.LibertyUnavailable, match="sta-not-installed-here"):
        asic.synthesize_liberty_many([{"verilog_path": counter_v, "top": "counter"}])


@pytest.mark.parametrize(("option", "value"), [
    ("period_ns", 0.0), ("activity", -0.1), ("activity", 3.0), ("duty", 1.5),
    ("power_mhz", -5.0), ("port_activity", {"inc": 0.3}),
])
def test_bad_options_are_named(option: str, value: object, counter_v: Path) -> None:
    with pytest.raises(ValueError, match=option):
        asic.synthesize_liberty(counter_v, "counter", **{option: value})


def test_report_json_round_trip() -> None:
    rep = asic.AsicReport(
        top="t", verilog_sha256="0" * 64, node="180nm", library="lib", library_path="/x.lib",
        library_sha256="1" * 64, voltage_v=1.8, area_um2=48.0, cells=2,
        cell_histogram={"NAND2X1": 2}, flip_flops=0, nand2_um2=24.0, target_period_ns=4.0,
        clock=None, critical_path_ns=0.5, worst_slack_ns=3.5, wns_ns=0.0, tns_ns=0.0,
        f_max_mhz=2000.0, critical_path_start="a (input port clocked by clk)",
        critical_path_end="y (output port clocked by clk)", critical_path_cells=1,
        power_mhz=2000.0, activity=0.1, duty=0.5, port_activity={"a": (0.2, 0.5)},
        leakage_w=1e-9, internal_w=1e-6, switching_w=1e-6, total_w=2.001e-6)
    assert asic.AsicReport.from_json(rep.to_json()) == rep
    assert rep.nand2_eq == 2.0
    assert math.isclose(rep.f_max_mhz, 1000 / rep.critical_path_ns)
