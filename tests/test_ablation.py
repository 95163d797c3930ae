"""The area ablation plan (sim/ablation.py): which variants, which array parts, and the Fmax
fallback for modules too large for the iCE40 — without running any synthesis tool."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest

import semdialect.sim.ablation as ablation
from semdialect.config import Config, load_config
from semdialect.designs import PEKind, hardware_designs
from semdialect.rtl.components import frontend_module
from semdialect.sim.area import AreaReport, Ice40Stats

REPO = Path(__file__).resolve().parents[1]
DEFAULT = load_config(REPO / "configs" / "default.toml")


def changed(base: Config, cfg: Config) -> set[str]:
    a, b = asdict(base), asdict(cfg)
    return {k for k in a if a[k] != b[k]}


def test_every_axis_has_one_baseline_and_changes_only_its_parameters() -> None:
    vs = ablation.variants(DEFAULT)
    assert set(v.axis for v in vs) == set(ablation.ABLATION_AXES)
    allowed = {"formatbook": {"formatbook", "formats_per_cycle"},
               "selector": {"formatbook", "formats_per_cycle", "select"},
               "formats_per_cycle": {"formats_per_cycle"},
               "block": {"block"}, "pe": set(), "rotate": {"rotate"}}
    for axis in ablation.ABLATION_AXES:
        on_axis = [v for v in vs if v.axis == axis]
        assert sum(v.baseline for v in on_axis) == 1, axis
        for v in on_axis:
            assert changed(DEFAULT, v.cfg) <= allowed[axis], (axis, v.label)
            assert v.modules, (axis, v.label)
        assert len({v.label for v in on_axis}) == len(on_axis), axis


def test_quick_plan_is_a_subset_with_the_same_baselines() -> None:
    quick, full = ablation.variants(DEFAULT), ablation.variants(DEFAULT, full=True)
    assert [v.cfg.formats_per_cycle for v in quick if v.axis == "formats_per_cycle"] == [
        1, 4, 32]
    assert [v.cfg.block for v in quick if v.axis == "block"] == [16, 32]
    assert set(quick) < set(full)
    assert {v for v in quick if v.baseline} == {v for v in full if v.baseline}
    assert {v.axis for v in full} == {v.axis for v in quick}
    assert ablation.quick_lanes(16, 2) == {1, 2, 4, 16}


def test_default_axes_cover_the_issue_points() -> None:
    vs = ablation.variants(DEFAULT, full=True)
    sizes = sorted(v.cfg.book().size for v in vs if v.axis == "formatbook")
    assert sizes == [1, 16, 32]
    assert sorted(v.cfg.block for v in vs if v.axis == "block") == [16, 32, 64]
    lanes = [v.cfg.formats_per_cycle for v in vs if v.axis == "formats_per_cycle"]
    assert lanes == [1, 2, 4, 8, 16, 32]
    assert [v.cfg.selector_cycles for v in vs if v.axis == "formats_per_cycle"] == [
        32, 16, 8, 4, 2, 1]
    assert sorted(v.cfg.select for v in vs if v.axis == "selector") == ["lut", "two-stage"]
    pe = {m for v in vs if v.axis == "pe" for m in v.modules}
    assert {"pe_core", "pe_core_mxfp4", "pe_core_mxint8", "block_decoder",
            "block_decoder_mxfp4", "block_decoder_mxint8"} <= pe  # the shipped kinds
    assert {"pe_core_nvfp4", "block_decoder_nvfp4", "nvfp4_quantizer", "mx_quantizer_mxfp4",
            "mx_quantizer_mxint8"} <= pe
    assert pe == {"pe_core", "block_decoder", "block_quantizer"} | {  # one core, decoder
        f"{base}_{k.value}" for k in PEKind if k is not PEKind.DIALECT
        for base in ("pe_core", "block_decoder")} | {  # and frontend per kind
        frontend_module(k) for k in PEKind if k is not PEKind.DIALECT}
    assert all(m in ablation.ROLES for v in vs for m in v.modules)
    baseline = next(v for v in vs if v.axis == "formatbook" and v.baseline)
    assert baseline.cfg == DEFAULT


def test_k1_formatbook_is_the_e2m1_grid() -> None:
    cfg = replace(DEFAULT, formatbook=str(ablation.K1_FORMATBOOK), formats_per_cycle=1)
    book = cfg.book()
    assert book.size == 1 and book.id_bits == 0
    assert book.hu.tolist() == [[0, 1, 2, 3, 4, 6, 8, 12]]
    assert cfg.selector_cycles == 1


def test_two_stage_base_compares_with_one_cycle_lut() -> None:
    bd = load_config(REPO / "configs" / "blockdialect.toml")
    vs = ablation.variants(bd)
    axes = {v.axis for v in vs}
    assert axes == {"selector", "block", "pe", "rotate"}
    sel = [v for v in vs if v.axis == "selector"]
    assert [v.cfg.select for v in sel] == ["two-stage", "lut"]
    assert sel[0].baseline and sel[0].cfg == bd
    assert sel[1].cfg.selector_cycles == 1


def test_user_formatbook_is_the_formatbook_baseline(tmp_path: Path) -> None:
    book = tmp_path / "two.toml"
    book.write_text("dialects = [[0, 1, 2, 3, 4, 6, 8, 12], [0, 1, 2, 3, 4, 5, 6, 7]]\n")
    base = replace(DEFAULT, formatbook=str(book), formats_per_cycle=2)
    fb = [v for v in ablation.variants(base) if v.axis == "formatbook"]
    assert fb[0].baseline and fb[0].cfg == base
    assert [v.cfg.book().size for v in fb] == [2, 1, 16, 32]
    assert [v.cfg.formats_per_cycle for v in fb] == [2, 1, 2, 2]


@pytest.mark.parametrize("rows, cols, lanes, drain", [(8, 8, 8, 56), (2, 3, 1, 3),
                                                     (4, 4, 2, 28)])
def test_array_parts_count_instances(rows: int, cols: int, lanes: int, drain: int) -> None:
    base = replace(DEFAULT, rows=rows, cols=cols, lanes=lanes, drain_width=drain)
    parts = ablation.array_parts(base)
    by = {(p.design, p.part): p for p in parts}
    for name in ("semanticdialect", "blockdialect", "mxfp4", "nvfp4", "mxint8"):
        assert by[(name, "PE cores")].count == rows * cols
        assert by[(name, "block decoders")].count == rows + cols
        assert by[(name, "tile drain")].count == 1
        # SPEC §8: only NVFP4 multiplies its outputs by the tensor scales, once per drain lane
        scaled = by.get((name, "tensor-scale multipliers"))
        assert (scaled is not None) == (name == "nvfp4"), name
    assert by[("nvfp4", "tensor-scale multipliers")].count == drain
    assert by[("nvfp4", "tensor-scale multipliers")].module == "tensor_scale_mul"
    assert by[("nvfp4", "activation frontend")].module == "nvfp4_quantizer"
    assert by[("nvfp4", "activation frontend")].count == lanes
    assert by[("nvfp4", "PE cores")].module == "pe_core_nvfp4"
    assert by[("nvfp4", "PE cores")].cfg.block == 16
    assert by[("semanticdialect", "activation frontend")].cfg == base
    assert by[("semanticdialect", "activation frontend")].count == lanes  # one per lane
    assert by[("semanticdialect", "activation frontend")].module == "block_quantizer_residual"
    assert by[("blockdialect", "activation frontend")].cfg.select == "two-stage"
    assert by[("mxfp4", "activation frontend")].module == "mx_quantizer_mxfp4"
    assert by[("mxfp4", "activation frontend")].count == lanes
    assert by[("mxint8", "PE cores")].module == "pe_core_mxint8"


def _report(lut4: int, fmax: float | None = None) -> AreaReport:
    return AreaReport(top="t", verilog_sha256="0", generic_cells={"$_AND_": 1}, flip_flops=0,
                      transistors=6, transistors_exact=True, nand2_eq=1.33,
                      yosys_version="x",
                      ice40=Ice40Stats(lut4=lut4, carry=0, dff=10, ram=0, cells={},
                                       fmax_mhz=fmax))


def test_selector_fmax_climbs_to_the_largest_p_that_fits(monkeypatch) -> None:
    sizes = {"pe": 4000, "sel2": 3000, "sel4": 5000, "sel8": 9000, "sel16": 12000}
    calls: list[tuple[str, bool]] = []

    def fake(path, top, *, ice40=False, fmax=False, **_):
        name = Path(path).stem
        calls.append((name, fmax))
        return _report(sizes[name], {"pe": 19.0, "sel2": 45.0, "sel4": 40.0}.get(name)
                       if fmax else None)

    monkeypatch.setattr(ablation, "synthesize", fake)
    assert ablation._selector_lanes(DEFAULT) == [1, 2, 4, 8, 16, 32]  # default P = K = 32
    assert ablation._selector_lanes(replace(DEFAULT, formats_per_cycle=8)) == [1, 2, 4, 8]
    clock = ablation._clock(DEFAULT, Path("pe.v"),
                            {p: Path(f"sel{p}.v") for p in (2, 4, 8, 16)},
                            say=lambda _: None)
    assert clock.selector_p == 4 and clock.selector_mhz == 40.0 and clock.pe_mhz == 19.0
    assert clock.mhz == 19.0
    assert ("sel16", True) not in calls  # stops at the first that does not fit
    assert len(clock.notes) == 1 and "P = 8 needs 9000 LUT4" in clock.notes[0]


def test_nothing_fits_gives_no_clock(monkeypatch) -> None:
    monkeypatch.setattr(ablation, "synthesize",
                        lambda path, top, **_: _report(99_999))
    clock = ablation._clock(DEFAULT, Path("pe.v"), {1: Path("sel1.v")}, say=lambda _: None)
    assert clock.mhz is None and clock.selector_p is None and len(clock.notes) == 2


def test_every_hardware_design_and_pe_kind_has_components() -> None:
    """The array parts are exactly the registry's hardware designs (each with PE cores, block
    decoders, a tile drain and its kind's frontend lanes), and every module the plan
    synthesizes — every PE kind's PE core and block decoder included — is a component the
    generator emits for its configuration."""
    from semdialect.rtl.components import components, frontend_module

    parts = ablation.array_parts(DEFAULT)
    assert list(dict.fromkeys(p.design for p in parts)) == [d.name for d in hardware_designs()]
    for d in hardware_designs():
        mine = {p.part: p for p in parts if p.design == d.name}
        assert {"PE cores", "block decoders", "tile drain"} <= set(mine), d.name
        assert mine["activation frontend"].module == frontend_module(d.pe), d.name
        assert mine["activation frontend"].count == DEFAULT.lanes, d.name
        assert all(p.cfg == d.config(DEFAULT) for p in mine.values()), d.name
    pe_axis = [v for v in ablation.variants(DEFAULT) if v.axis == "pe"]
    assert len(pe_axis) == len(PEKind)
    for v in [*ablation.variants(DEFAULT), *parts]:
        cfg = v.cfg
        for module in getattr(v, "modules", None) or (v.module,):
            assert module in components(cfg), module
            assert module in ablation.ROLES, module
