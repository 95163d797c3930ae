"""The design registry (semdialect/designs.py): the one list of designs and PE kinds, its
widths against the golden formats, and every consumer (error table, cycle model, RTL
components, energy, PE test top) iterating it.

Expected widths and labels are written out here from docs/SPEC.md and README.md, not read
from the code under test.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Shape

from semdialect.config import Config, load_config
from semdialect.designs import (
    DESIGNS,
    PEKind,
    configured_design,
    design,
    hardware_designs,
)
from semdialect.evaluation.compare import error_rows
from semdialect.golden.formats import FORMAT_NAMES
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.components import components, kind_module
from semdialect.sim.energy import action_counts_for_gemm, load_assumptions
from semdialect.sim.model import Design as CycleDesign
from semdialect.tb.pe_top import PE_PREFIXES

REPO = Path(__file__).resolve().parents[1]
SMALL = load_config(REPO / "configs" / "small.toml")

#: (element bits, scale bits, dialect-id bits, bits/element — README's table: at B = 32, NVFP4
#: at its 16) of every shipped format (SPEC §1-2, §8)
SPEC_WIDTHS = {
    "sd32": (4, 5, 5, 4.3125),
    "dfp4": (4, 5, 4, 4.28125),
    "mxfp4": (4, 8, 0, 4.25),
    "nvfp4": (4, 8, 0, 4.5),
    "int4": (4, 32, 0, 5.0),
    "mxint8": (8, 8, 0, 8.25),
}

#: source folders of the installed package, and the files allowed to spell lists of design,
#: PE-kind or format names (with the reason)
SOURCE_FOLDERS = ("golden", "rtl", "tb", "sim", "evaluation", "reports", "semdialect", "configs")
ALLOWED = {
    "semdialect/designs.py": "the registry itself",
    "golden/formats.py": "the golden list of formats (FORMAT_NAMES, BASELINES)",
    "golden/formatbook.py": "the golden table of builtin formatbooks (dfp4, sd32)",
}


def _name_lists(path: Path, names: set[str], kinds: set[str]) -> list[str]:
    """Places in ``path`` that spell a list of designs/kinds/formats: a tuple, list, set or
    dict (keys) literal holding two or more of ``names``, or an ``==``/``!=`` comparison with
    one of ``kinds`` (a design or PE-kind name). ``__all__`` export lists are skipped."""
    tree = ast.parse(path.read_text(), str(path))
    exports = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)}
    found = []
    for node in ast.walk(tree):
        if id(node) in exports:
            continue
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            hits = {e.value for e in items if isinstance(e, ast.Constant) and e.value in names}
            if len(hits) >= 2:
                found.append(f"{node.lineno}: {sorted(hits)}")
        elif isinstance(node, ast.Compare) and all(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Constant) and side.value in kinds:
                    found.append(f"{node.lineno}: == {side.value!r}")
    return found


def test_registry_is_the_only_list_of_designs() -> None:
    """No source file outside the registry (and the golden format/formatbook tables) spells a
    list of design, PE-kind or format names, or compares with a design/kind name."""
    kinds = set(DESIGNS) | {k.value for k in PEKind}
    names = kinds | set(FORMAT_NAMES)
    offenders = {}
    scanned = 0
    for folder in SOURCE_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel in ALLOWED:
                continue
            scanned += 1
            found = _name_lists(path, names, kinds)
            if found:
                offenders[rel] = found
    assert scanned > 50  # the whole package was read
    assert not offenders, f"design lists outside semdialect/designs.py: {offenders}"


def test_the_scan_finds_a_hard_coded_list(tmp_path: Path) -> None:
    """The scanner of the test above catches the patterns this refactor removed."""
    src = tmp_path / "bad.py"
    src.write_text('PES = ("dialect", "mxfp4", "mxint8")\n'
                   'TABLE = {"semanticdialect": 1, "blockdialect": 2}\n'
                   'def f(kind):\n    return kind == "mxint8" or kind in ["sd32", "int4"]\n'
                   '__all__ = ["sd32", "dfp4"]\n')
    kinds = set(DESIGNS) | {k.value for k in PEKind}
    found = _name_lists(src, kinds | set(FORMAT_NAMES), kinds)
    assert [f.split(":")[0] for f in found] == ["1", "2", "4", "4"]


def test_registry_invariants() -> None:
    assert list(DESIGNS) == ["semanticdialect", "dfp4-lut", "blockdialect", "mxfp4", "nvfp4",
                             "int4", "mxint8"]
    assert [d.name for d in hardware_designs()] == ["semanticdialect", "blockdialect", "mxfp4",
                                                    "nvfp4", "mxint8"]
    assert configured_design() is DESIGNS["semanticdialect"]
    assert all(d.pe is not None for d in hardware_designs())
    # every PE kind is compared in hardware; exactly one takes the configuration's formatbook
    assert {d.pe for d in hardware_designs()} == set(PEKind)
    assert [k for k in PEKind if k.has_dialects] == [PEKind.DIALECT]
    assert PEKind.of("mxint8") is PEKind.MXINT8 and PEKind.of(PEKind.MXFP4) is PEKind.MXFP4
    # SPEC §8: NVFP4's block scale is E4M3 (not a power of two) and it has an FP32 tensor scale
    assert [k for k in PEKind if not k.pow2_scaled] == [PEKind.NVFP4]
    assert [k for k in PEKind if k.has_tensor_scale] == [PEKind.NVFP4]
    assert (PEKind.NVFP4.fmt, PEKind.NVFP4.block, PEKind.NVFP4.int_bits) == ("nvfp4", 16, 5)
    assert (PEKind.NVFP4.decoder, PEKind.NVFP4.multiplier) == (PEKind.MXFP4.decoder,
                                                                PEKind.MXFP4.multiplier)
    assert DESIGNS["nvfp4"].pe is PEKind.NVFP4 and DESIGNS["nvfp4"].fixed_block == 16
    with pytest.raises(ValueError, match="kind: unknown PE kind 'fp8'"):
        PEKind.of("fp8")
    with pytest.raises(ValueError, match="design: unknown 'fp8'"):
        design("fp8")


@pytest.mark.parametrize("cfg", [Config(), SMALL], ids=["default", "small"])
def test_every_design_has_its_golden_widths(cfg: Config) -> None:
    """Each design's format is its golden format, with SPEC's widths; the cycle model stores
    exactly those widths."""
    for d in DESIGNS.values():
        fmt = d.golden_format(cfg)
        name = cfg.book().name if d.configured else d.fmt
        assert fmt.name == name, d.name
        element, scale, ids, bits = SPEC_WIDTHS[name]
        assert (fmt.element_bits, fmt.scale_bits(), fmt.id_bits()) == (element, scale, ids)
        assert fmt.bits_per_element(d.fixed_block or 32) == bits, d.name
        if d.hardware:
            m = CycleDesign.of(d, cfg)
            assert (m.element_bits, m.se_bits, m.id_bits) == (element, scale, ids), d.name


def test_fixed_blocks_agree_with_golden() -> None:
    """A design's fixed block size is the only one its golden format takes (OCP MX: 32,
    NVFP4: 16); the others take the configuration's B."""
    fixed = {d.name: d.fixed_block for d in DESIGNS.values()}
    assert fixed == {"semanticdialect": None, "dfp4-lut": None, "blockdialect": None,
                     "mxfp4": 32, "nvfp4": 16, "int4": None, "mxint8": 32}
    for d in DESIGNS.values():
        fmt = d.golden_format()
        for b in (16, 32, 64):
            if d.fixed_block is None or b == d.fixed_block:
                assert fmt.block_size(b) == b, (d.name, b)
                assert d.block_size(replace(Config(), block=b)) == b
            else:
                with pytest.raises(ValueError, match="block"):
                    fmt.block_size(b)
                assert d.block_size(replace(Config(), block=b)) == d.fixed_block


def test_row_labels_follow_the_configuration() -> None:
    """The accuracy-table labels; the configured design is the configuration's book and
    selection (the default's sd32 lut, small's dfp4 lut)."""
    assert [d.row_label() for d in DESIGNS.values()] == [
        "sd32 lut (SemanticDialect)", "dfp4 lut", "dfp4 two-stage (BlockDialect)", "mxfp4",
        "nvfp4", "int4", "mxint8"]
    assert configured_design().row_label(SMALL) == "dfp4 lut (SemanticDialect)"
    assert configured_design().format_spec(SMALL) == ("dfp4", "lut")
    assert DESIGNS["blockdialect"].weight_format().select == "lut"  # SPEC §4: weights lut


def test_error_table_iterates_the_registry() -> None:
    """`semdialect error` rows: FP16, then every design in registry order; the configured
    design's row is the given configuration's format."""
    x = np.random.default_rng(3).standard_normal((8, 64)).astype(np.float32)
    rows = list(error_rows(x, block=16, cfg=SMALL))
    assert [r.label for r in rows] == ["fp16", *(d.row_label(SMALL) for d in DESIGNS.values())]
    by_label = {r.label: r for r in rows}
    assert by_label["dfp4 lut (SemanticDialect)"].sqnr_db == by_label["dfp4 lut"].sqnr_db
    assert by_label["mxfp4"].block == 32 and by_label["nvfp4"].block == 16
    assert by_label["int4"].block == 16


@pytest.mark.parametrize("kind", list(PEKind), ids=lambda k: k.value)
def test_every_pe_kind_has_rtl_and_energy(kind: PEKind) -> None:
    """Each PE kind: an RTL element kind whose layouts carry the golden widths, a PE, PE core
    and block decoder among the generated components, a port prefix in the PE test top, and
    an energy estimate whose actions are in the shipped table."""
    cfg = SMALL if kind.has_dialects else replace(SMALL, block=kind.block)
    ek = ElementKind.for_config(kind, cfg)
    fmt = kind.config_format(cfg)
    assert ek.block == cfg.block
    width = lambda layout, field: Shape.cast(layout[field].shape).width  # noqa: E731
    assert Shape.cast(ek.decoded_layout["elems"].shape.elem_shape).width == kind.int_bits
    assert width(ek.decoded_layout, "exp") == fmt.scale_bits()
    assert Shape.cast(ek.encoded_layout["codes"].shape.elem_shape).width == fmt.element_bits
    made = components(cfg)
    for base in ("pe", "pe_core", "block_decoder"):
        assert kind_module(base, kind) in made
    assert kind_module("pe_core", kind) == ("pe_core" if kind is PEKind.DIALECT
                                            else f"pe_core_{kind.value}")
    assert f"{kind.value}_" in PE_PREFIXES
    counts = action_counts_for_gemm(cfg, 4, 4, 64, {}, pe=kind)
    actions = load_assumptions().actions
    assert all(key.partition(".")[2] in actions for key in counts if key != "macs")
    assert counts[f"multiplier.{kind.multiplier}"] == 4 * 4 * 64
