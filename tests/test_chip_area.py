"""Chip area of a configuration (sim/chip_area.py): the accounting (instances × module
NAND2 equivalents × the NAND2X1 area, plus SRAM, times cores), the module configurations a
sweep shares (the array does not reach the non-drain modules), the per-lane tile-drain
estimate against whole-drain synthesis, and a real synthesis of the ``small`` configuration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import semdialect.sim.chip_area as chip
from semdialect.config import load_config
from semdialect.designs import configured_design, design
from semdialect.rtl.components import components
from semdialect.rtl.emit import generate_verilog
from semdialect.rtl.tile_drain import TileDrain
from semdialect.sim.ablation import module_verilog
from semdialect.sim.area import synthesize

REPO = Path(__file__).resolve().parents[1]
SMALL = load_config(REPO / "configs" / "small.toml")
DEFAULT = load_config(REPO / "configs" / "default.toml")

#: made-up NAND2 equivalents per module (the accounting test needs no synthesis)
FAKE_GE = {"pe_core": 1000.0, "block_decoder": 100.0, "block_quantizer_residual": 10000.0,
           "tile_drain": 500.0, "addend_adder": 50.0}


def test_small_accounting_by_hand() -> None:
    # small: 2x2 PEs, 2 + 2 decoders, 2 frontend lanes, 1 drain, drain_width 4 addend adders
    logic_ge = 4 * 1000 + 4 * 100 + 2 * 10000 + 1 * 500 + 4 * 50  # 25 100
    bits = (16 + 16 + 8) * 1024 * 8
    area = chip.chip_area(SMALL, nand2=lambda spec: FAKE_GE[spec.module])
    assert area.logic_nand2_eq == logic_ge
    assert area.sram_bits == bits
    assert area.logic_mm2 == pytest.approx(logic_ge * 24.0 / 1e6)  # OSU018 NAND2X1: 24 µm²
    assert area.sram_mm2 == pytest.approx(bits * 4.5 / 0.7 / 1e6)
    assert area.total_mm2 == pytest.approx(area.logic_mm2 + area.sram_mm2)
    # cores multiply both parts; SRAM sizes change only the SRAM part
    two = chip.chip_area(replace(SMALL, cores=2, act_sram_kib=32),
                         nand2=lambda spec: FAKE_GE[spec.module])
    assert two.logic_mm2 == pytest.approx(2 * area.logic_mm2)
    assert two.sram_mm2 == pytest.approx(2 * (bits + 16 * 8192) * 4.5 / 0.7 / 1e6)


def test_nand2_area_is_read_from_the_liberty_file_when_installed() -> None:
    from semdialect.sim.asic import liberty_path

    if not liberty_path().is_file():
        pytest.skip("OSU 0.18 µm liberty file not installed")
    text = liberty_path().read_text()
    at = text.index("cell (NAND2X1)")
    assert f"area : {chip.nand2_um2():g};" in text[at:at + 200]


def test_system_keys_and_the_array_do_not_change_non_drain_modules() -> None:
    """The same module specs for every SRAM size, core count and array of one core; the drain
    alone follows the array."""
    base = chip.design_modules(SMALL)
    other = chip.design_modules(replace(SMALL, act_sram_kib=64, cores=3, dram_gbps=1.0))
    assert base == other
    big = chip.design_modules(SMALL.on_array(4, 4))
    assert [p for p in base if p[0] != "tile drain"] != [p for p in big if p[0] != "tile drain"]
    specs = {s for _, _, ss in base for s, _ in ss if s.module != "tile_drain"}
    assert specs == {s for _, _, ss in big for s, _ in ss if s.module != "tile_drain"}


@pytest.mark.parametrize("module", ["pe_core", "block_decoder", "addend_adder"])
def test_the_array_does_not_reach_the_module(module: str) -> None:
    """What :func:`chip_area.module_config` relies on: the module's Verilog is the same on the
    2 × 2 array (2 lanes, drain 4) and on the normalised 1 × 1 configuration (1 lane, 1)."""
    texts = {generate_verilog(components(cfg)[module](), module)
             for cfg in (SMALL, chip.module_config(SMALL))}
    assert len(texts) == 1


def test_large_drains_use_two_reduced_drains_of_the_same_beats() -> None:
    cfg = DEFAULT.on_array(64, 64)  # tile 64 x 448, 3584 lanes of 8 beats
    (drain,) = [p for p in chip.design_modules(cfg) if p[0] == "tile drain"]
    (_, count, specs) = drain
    assert count == 1
    assert [(s.drain, w) for s, w in specs] == [((8, 1, 1), 2.0 - 3584), ((8, 2, 2), 3583.0)]
    # 128 x 128 works the same way (the same 8 beats per lane)
    big = DEFAULT.on_array(128, 128)
    (drain,) = [p for p in chip.design_modules(big) if p[0] == "tile drain"]
    assert {s.drain for s, _ in drain[2]} == {(8, 1, 1), (8, 2, 2)}
    # the default 8 x 8 drain (448 outputs) is synthesized whole
    (drain,) = [p for p in chip.design_modules(DEFAULT) if p[0] == "tile drain"]
    assert [(s.drain, w) for s, w in drain[2]] == [((8, 56, 56), 1.0)]


def test_per_lane_drain_estimate_matches_whole_drain_synthesis(monkeypatch) -> None:
    """A 4 x 8 tile drained 8 lanes wide (4 beats) synthesized whole vs A1 + 7·(A2 − A1)."""
    monkeypatch.setattr(chip, "DIRECT_DRAIN_OUTPUTS", 16)
    specs = chip._drain_specs(4, 8, 8)
    assert len(specs) == 2
    estimate = sum(w * chip.module_nand2(s) for s, w in specs)
    whole = chip.synthesize_text(generate_verilog(TileDrain(4, 8, 8), "tile_drain"),
                                 "tile_drain")
    assert estimate == pytest.approx(whole, rel=0.01)


def test_small_chip_area_against_ablation_modules() -> None:
    """Real synthesis of ``small``: the logic equals Σ instances × NAND2 of each array part
    emitted by sim.ablation.module_verilog from the un-normalised configuration."""
    from semdialect.sim.ablation import array_parts

    area = chip.chip_area(SMALL, configured_design())
    expected = 0.0
    for part in array_parts(SMALL):
        if part.design == configured_design().name:
            rep = synthesize(module_verilog(part.cfg, part.module), part.module)
            expected += part.count * rep.nand2_eq
    assert area.logic_nand2_eq == pytest.approx(expected, rel=1e-9)
    assert area.logic_mm2 == pytest.approx(expected * chip.nand2_um2() / 1e6)
    assert area.total_mm2 > area.logic_mm2 > 0
    with pytest.raises(ValueError, match="design"):
        chip.design_modules(SMALL, design("int4"))
