"""sim.area: Yosys/nextpnr area and Fmax on tiny hand-written modules with known answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from semdialect.sim import area
from semdialect.sim.area import (
    AreaReport,
    area_table,
    ff_weight,
    harness_verilog,
    nand2_equivalent,
    synthesize,
)

# Nangate 45 nm X1 cell areas (µm²), restated here so the weights are checked independently.
NAND2, INV, AND2, XOR2, MUX2, DFF, DFFR = 0.798, 0.532, 1.064, 1.596, 1.862, 4.522, 5.320

VERILOG = """\
module and2(input a, input b, output y);
  assign y = a & b;
endmodule
module reg4(input clk, input [3:0] d, output reg [3:0] q);
  always @(posedge clk) q <= d;
endmodule
module sreg4(input clk, input rst, input en, input [3:0] d, output reg [3:0] q);
  always @(posedge clk) if (rst) q <= 4'd0; else if (en) q <= d;
endmodule
module andreg(input clk, input a, input b, output reg q);
  always @(posedge clk) q <= a & b;
endmodule
module and_pair(input a, input b, input c, output y, output z);
  and2 u0 (.a(a), .b(b), .y(y));
  and2 u1 (.a(b), .b(c), .y(z));
endmodule
"""


@pytest.fixture(scope="module")
def design(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Verilog file and a cache directory shared by this module's tests."""
    root = tmp_path_factory.mktemp("area")
    path = root / "tiny.v"
    path.write_text(VERILOG)
    return path, root / "cache"


def test_and_gate_is_one_and_cell(design: tuple[Path, Path]) -> None:
    path, cache = design
    rep = synthesize(path, "and2", cache_dir=cache)
    assert rep.generic_cells == {"$_AND_": 1}
    assert rep.flip_flops == 0
    assert (rep.transistors, rep.transistors_exact) == (6, True)  # Yosys CMOS AND2
    assert rep.nand2_eq == pytest.approx(AND2 / NAND2)
    assert rep.ice40 is None


def test_hierarchy_is_flattened_without_metadata_cells(design: tuple[Path, Path]) -> None:
    path, cache = design
    rep = synthesize(path, "and_pair", ice40=True, cache_dir=cache)
    assert rep.generic_cells == {"$_AND_": 2}  # no $scopeinfo left by flattening
    assert (rep.transistors, rep.transistors_exact) == (12, True)
    assert rep.ice40 is not None and rep.ice40.cells == {"SB_LUT4": 2}


def test_register_and_its_reset_enable_flavour(design: tuple[Path, Path]) -> None:
    path, cache = design
    plain = synthesize(path, "reg4", cache_dir=cache)
    assert plain.generic_cells == {"$_DFF_P_": 4}
    assert plain.flip_flops == 4
    assert plain.transistors == 4 * 16
    assert plain.nand2_eq == pytest.approx(4 * DFF / NAND2)
    # sync reset + enable: one $_SDFFE_ per bit; CMOS legalises it to DFF + 2 MUX (16 + 2·12)
    gated = synthesize(path, "sreg4", cache_dir=cache)
    assert gated.generic_cells == {"$_SDFFE_PP0P_": 4}
    assert gated.transistors == 4 * (16 + 2 * 12)
    assert gated.nand2_eq == pytest.approx(4 * (DFF + MUX2 + AND2) / NAND2)


def test_nand2_arithmetic_on_a_known_histogram() -> None:
    cells = {"$_NAND_": 3, "$_NOT_": 3, "$_XOR_": 2, "$_DFF_P_": 1, "$_DFF_PN0_": 1,
             "$_DFFE_PP_": 2, "$_SDFF_PP1_": 1}
    expected = (3 * NAND2 + 3 * INV + 2 * XOR2 + DFF + DFFR + 2 * (DFF + MUX2)
                + (DFF + AND2)) / NAND2
    assert nand2_equivalent(cells) == pytest.approx(expected)
    assert nand2_equivalent({}) == 0
    assert ff_weight("$_AND_") is None
    for bad in ("$_DLATCH_P_", "$add", "SB_LUT4"):
        with pytest.raises(ValueError, match=bad.replace("$", r"\$")):
            nand2_equivalent({"$_AND_": 1, bad: 1})


def test_cache_runs_no_tool_the_second_time(
    design: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, cache = design
    first = synthesize(path, "reg4", cache_dir=cache)
    runs = dict(area.TOOL_RUNS)

    def no_tools(*args: object, **kwargs: object) -> None:
        raise AssertionError("a tool ran although the result is cached")

    monkeypatch.setattr(area, "_run_tool", no_tools)
    again = synthesize(path, "reg4", cache_dir=cache)
    assert again == first
    assert dict(area.TOOL_RUNS) == runs
    monkeypatch.undo()
    # Different content (a comment) is a different design: Yosys runs again, once.
    edited = path.with_name("tiny_edited.v")
    edited.write_text("// edited\n" + VERILOG)
    before = area.TOOL_RUNS["yosys"]
    assert synthesize(edited, "reg4", cache_dir=cache).generic_cells == first.generic_cells
    assert area.TOOL_RUNS["yosys"] == before + 1


def test_ice40_counts_exclude_the_harness_and_reuse_the_generic_stage(
    design: tuple[Path, Path],
) -> None:
    path, cache = design
    synthesize(path, "andreg", cache_dir=cache)
    before = area.TOOL_RUNS["yosys"]
    rep = synthesize(path, "andreg", ice40=True, cache_dir=cache)
    assert area.TOOL_RUNS["yosys"] == before + 1  # the iCE40 stage only
    assert rep.ice40 is not None
    # one LUT for the AND and one flip-flop: the harness's shift registers are not counted
    assert (rep.ice40.lut4, rep.ice40.carry, rep.ice40.dff, rep.ice40.ram) == (1, 0, 1, 0)
    assert rep.ice40.cells == {"SB_LUT4": 1, "SB_DFF": 1}
    assert rep.ice40.fmax_mhz is None
    assert AreaReport.from_json(rep.to_json()) == rep


def test_fmax_from_nextpnr_report(design: tuple[Path, Path]) -> None:
    path, cache = design
    rep = synthesize(path, "andreg", fmax=True, cache_dir=cache)
    assert rep.ice40 is not None and rep.ice40.fmax_mhz is not None
    # one LUT between two flip-flops on an HX8K: far above 100 MHz
    assert rep.ice40.fmax_mhz > 100
    # harness: 2 input + 1 output shift-register bits, 1 capture mux; design: LUT + FF
    assert rep.ice40.pnr_lcs is not None and rep.ice40.pnr_lcs >= 4
    assert rep.ice40.device == "hx8k-ct256"
    assert AreaReport.from_json(rep.to_json()) == rep


def test_missing_top_is_a_clear_error(design: tuple[Path, Path]) -> None:
    path, cache = design
    modules = "and2, reg4, sreg4, andreg, and_pair"
    with pytest.raises(ValueError, match=rf"top 'nope'.*modules: {modules}"):
        synthesize(path, "nope", cache_dir=cache)
    assert not list(cache.glob("nope-*/generic.json"))  # failures are not cached
    with pytest.raises(FileNotFoundError):
        synthesize(path.with_name("missing.v"), "and2", cache_dir=cache)


def test_tool_failure_keeps_its_log(design: tuple[Path, Path]) -> None:
    path, cache = design
    broken = path.with_name("broken.v")
    broken.write_text("module broken(input a, output y);\n  assign y = a &;\nendmodule\n")
    with pytest.raises(area.SynthesisError, match=r"ERROR.*\(log: (\S+)\)") as info:
        synthesize(broken, "broken", cache_dir=cache)
    log = Path(re.search(r"\(log: (\S+)\)", str(info.value))[1])
    assert log.is_file() and "ERROR" in log.read_text()


def test_harness_verilog_shape() -> None:
    text = harness_verilog("dut", {"clk": ("input", 1), "a": ("input", 3), "y": ("output", 2)})
    assert "reg [2:0] in_sr;" in text and "reg [1:0] out_sr;" in text
    assert "dut dut (.clk(clk), .a(in_sr[2:0]), .y(dut_out[1:0]));" in text
    with pytest.raises(ValueError, match="no output"):
        harness_verilog("dut", {"a": ("input", 1)})
    with pytest.raises(ValueError, match="inout"):
        harness_verilog("dut", {"a": ("inout", 1), "y": ("output", 1)})


def test_tables(design: tuple[Path, Path]) -> None:
    path, cache = design
    runs = area.TOOL_RUNS["yosys"]
    table = area_table([("register", synthesize(path, "reg4", cache_dir=cache)),
                        ("gated register", synthesize(path, "sreg4", cache_dir=cache))],
                       baseline=True)
    assert area.TOOL_RUNS["yosys"] == runs  # both cached by the tests above
    lines = table.splitlines()
    assert lines[0].startswith("| design | generic cells | FFs | NAND2-eq (kGE) |")
    assert lines[2].split(" | ")[:5] == ["| register", "4", "4", "0.02", "64"]
    gated_ratio = (DFF + MUX2 + AND2) / DFF
    assert lines[3].endswith(f"| {gated_ratio:.2f} |")
    assert lines[2].endswith("| – | 1.00 |")  # no iCE40 figures; baseline ratio 1
    plain = area_table([synthesize(path, "and2", cache_dir=cache)])
    assert plain.splitlines()[2].startswith("| and2 | 1 | 0 |")


def test_design_that_does_not_place_is_a_cached_result(tmp_path: Path) -> None:
    """A 400-input parity needs ~133 LUT4 (under the lp384's 384 logic cells, so the pre-check
    lets it through) but its harness needs 400 shift-register flip-flops more: nextpnr cannot
    place it, which is reported as ``pnr_error`` (no Fmax) and cached, not raised."""
    path = tmp_path / "wide.v"
    path.write_text("module wide(input clk, input [399:0] d, output reg q);\n"
                    "  always @(posedge clk) q <= ^d;\nendmodule\n")
    cache = tmp_path / "cache"
    rep = synthesize(path, "wide", fmax=True, device="lp384", package="qn32", cache_dir=cache)
    assert rep.ice40 is not None and rep.ice40.lut4 < 384
    assert rep.ice40.fmax_mhz is None
    assert rep.ice40.pnr_error and "ERROR" in rep.ice40.pnr_error
    before = area.TOOL_RUNS["nextpnr-ice40"]
    again = synthesize(path, "wide", fmax=True, device="lp384", package="qn32", cache_dir=cache)
    assert again == rep and area.TOOL_RUNS["nextpnr-ice40"] == before


def test_design_over_the_device_is_not_sent_to_nextpnr(tmp_path: Path) -> None:
    """A 1600-input parity needs more LUT4 than the lp384 has logic cells: reported as not
    placed without running nextpnr."""
    path = tmp_path / "wider.v"
    path.write_text("module wider(input clk, input [1599:0] d, output reg q);\n"
                    "  always @(posedge clk) q <= ^d;\nendmodule\n")
    before = area.TOOL_RUNS["nextpnr-ice40"]
    rep = synthesize(path, "wider", fmax=True, device="lp384", package="qn32",
                     cache_dir=tmp_path / "cache")
    assert area.TOOL_RUNS["nextpnr-ice40"] == before
    assert rep.ice40 is not None and rep.ice40.lut4 > 384 and rep.ice40.fmax_mhz is None
    assert rep.ice40.pnr_error == (f"needs at least {rep.ice40.lut4} logic cells, more than "
                                   "the 384 of an iCE40 lp384")
