"""Chip area of a configuration — an ESTIMATE at 180 nm: the logic from cached per-module Yosys
syntheses × their instance counts, plus the SRAM macros.

``area = cores × (array logic + SRAM)`` (mm²), for one hardware design of the registry on a
configuration:

**Array logic** = Σ over :func:`sim.ablation.array_parts` of the design (PE cores × rows·cols,
block decoders × (rows + cols), frontend lanes × lanes, the tile drain, the addend adders ×
drain lanes, NVFP4's tensor-scale multipliers × drain lanes) of instances × the module's
NAND2-equivalent area (:func:`sim.area.synthesize`, Yosys generic flow, cached by Verilog
content under ``build/area/``), × the area of one NAND2 equivalent: the OSU 0.18 µm library's
``NAND2X1`` cell (``osu018_stdcells.lib``: ``area : 24`` µm², read from the file when
:func:`sim.asic.liberty_path` exists, else :data:`NAND2X1_UM2_OSU018`, the same figure).
Cell area only: no placement density or routing overhead, no GEMM-core sequencer, no softmax
unit.

Module Verilog is generated from :meth:`Config.core` (SRAM sizes, cores, DRAM and attention
keys never change it) and, for every module but the tile drain, on a 1 × 1 array (rows, cols,
lanes and drain width do not reach those modules' constructors,
:func:`semdialect.rtl.components.components`; ``tests/test_chip_area.py`` checks it), so the
configurations of a sweep that differ only in their array share one synthesis per module.
Generation goes through :func:`semdialect.rtl.emit.cached_verilog` (no elaboration on a
repeated call); synthesis through :func:`sim.area.synthesize`.

**Tile drain** (:class:`rtl.tile_drain.TileDrain`): its size is rows·cols·d × 33-bit shadow
registers plus one (beats per tile)-way multiplexer per output lane; the default array's drain
on 16 × 16 PEs (1 792 outputs, 59 k flip-flops) took 3 min of Yosys on this 2-core machine, a
64 × 64 one has 16× the logic and a 128 × 128 one 64× (not run: hours). Above
:data:`DIRECT_DRAIN_OUTPUTS` tile outputs the drain is therefore estimated **per lane**: with
D = beats per tile (each lane's multiplexer depth and shadow slice), two reduced drains of the
same D with 1 and 2 lanes are synthesized, A₁ and A₂, and ``area = A₁ + (w − 1)·(A₂ − A₁)``
for w lanes (A₂ − A₁ is one lane, the rest the shared beat control). Measured against
whole-drain synthesis (TileDrain of commit 13c36f7): the default 8 × 8 drain (w = 56, D = 8)
173 906 vs 173 485 NAND2 (+0.24 %), its 16 × 16 drain (w = 224, D = 8) 695 098 vs 693 186
(+0.28 %), 4 lanes of 8 beats 12 585.0 vs 12 584.7; ``tests/test_chip_area.py`` repeats the
comparison on a 4 × 8 tile of 8 lanes.

**SRAM** = per-core bits (``act_sram_kib + weight_sram_kib + out_sram_kib``, KiB × 8192) ×
:data:`SRAM_BITCELL_UM2` / :data:`SRAM_ARRAY_EFFICIENCY`, both our assumptions (see their
comments): no SRAM compiler for the OSU library is at hand.

Layer: sim (uses rtl for the module generators).
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from semdialect.config import Config
from semdialect.designs import Design, configured_design
from semdialect.rtl.components import components
from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.tile_drain import TileDrain
from semdialect.sim.ablation import array_parts
from semdialect.sim.area import synthesize

__all__ = [
    "AREA_LABEL",
    "DIRECT_DRAIN_OUTPUTS",
    "NAND2X1_UM2_OSU018",
    "SRAM_ARRAY_EFFICIENCY",
    "SRAM_BITCELL_UM2",
    "ChipArea",
    "ModuleSpec",
    "chip_area",
    "design_modules",
    "distinct_modules",
    "module_config",
    "module_nand2",
    "nand2_um2",
    "sram_bits",
    "sram_mm2",
    "synthesize_text",
]

#: how every area figure is labelled
AREA_LABEL = "estimate, 180 nm"
#: NAND2X1 cell area of the OSU 0.18 µm standard cells (µm²): ``osu018_stdcells.lib``
#: (Debian package qflow-tech-osu018), ``cell (NAND2X1) { area : 24; ... }``; used when the
#: file is not installed (it is read from the file otherwise)
NAND2X1_UM2_OSU018 = 24.0
#: area of one 6T SRAM bit cell at 180 nm (µm²) [ours]: ≈ 140 F² at F = 0.18 µm, the order of
#: the high-density 6T cells of 0.18 µm logic processes; an assumption, not a cited figure
SRAM_BITCELL_UM2 = 4.5
#: share of an SRAM macro's area that is bit cells [ours]: decoders, sense amplifiers, write
#: drivers and I/O take the rest; 0.7 is our assumption for the 8 KiB … 2 MiB macros of the
#: shipped configurations (no SRAM compiler for the OSU library to measure it)
SRAM_ARRAY_EFFICIENCY = 0.7
#: a tile drain of at most this many tile outputs (rows·cols·d) is synthesized whole; a larger
#: one per lane (module docstring). The default 8 × 8 array's drain (448 outputs) is whole.
DIRECT_DRAIN_OUTPUTS = 512
#: the name every module configuration gets (configuration names are not part of the logic)
_AREA_NAME = "area"
_TILE_DRAIN = "tile_drain"
#: widest tile (columns) and most rows TileDrain builds
_DRAIN_MAX_COLS, _DRAIN_MAX_ROWS = TileDrain.MAX_COLS, TileDrain.MAX_ROWS


@dataclass(frozen=True)
class ModuleSpec:
    """One module to synthesize: ``module`` (the Verilog top) of ``cfg`` through
    :func:`semdialect.rtl.components.components`, or, for a tile drain, ``TileDrain(*drain)``
    (rows, tile columns, lanes)."""

    module: str
    cfg: Config | None = None
    drain: tuple[int, int, int] | None = None

    def verilog(self) -> str:
        """The module's Verilog (generated once, then from the cache of
        :func:`semdialect.rtl.emit.cached_verilog`). Call from a process's main thread."""
        if self.drain is not None:
            out = cached_verilog(self.module, TileDrain, self.drain)
        else:
            out = cached_verilog(self.module, build_component, (self.cfg, self.module))
        return out.text


def build_component(cfg: Config, module: str) -> object:
    """The Amaranth component ``module`` of ``cfg`` (:func:`components`); a module-level
    factory, so :func:`cached_verilog` can key it."""
    return components(cfg)[module]()


@dataclass(frozen=True)
class ChipArea:
    """Area of one chip (mm², :data:`AREA_LABEL`): ``logic_mm2`` and ``sram_mm2`` are the
    whole chip's (``cores`` × one core's); ``logic_nand2_eq`` is one core's array logic in
    NAND2 equivalents and ``sram_bits`` one core's SRAM bits."""

    logic_mm2: float
    sram_mm2: float
    logic_nand2_eq: float
    sram_bits: int
    cores: int

    @property
    def total_mm2(self) -> float:
        """Logic plus SRAM (mm²)."""
        return self.logic_mm2 + self.sram_mm2


def _drain_specs(rows: int, cols: int, width: int) -> list[tuple[ModuleSpec, float]]:
    """The tile drain of a rows × cols tile with ``width`` lanes as weighted modules: whole up
    to :data:`DIRECT_DRAIN_OUTPUTS` outputs, else A₁ + (w − 1)·(A₂ − A₁) of two reduced drains
    with the same beats per tile (module docstring)."""
    if rows * cols <= DIRECT_DRAIN_OUTPUTS:
        return [(ModuleSpec(_TILE_DRAIN, drain=(rows, cols, width)), 1.0)]
    g, c = max(1, width // cols), min(width, cols)
    n_br, n_bc = rows // g, cols // c
    if n_br <= _DRAIN_MAX_ROWS and 2 * n_bc <= _DRAIN_MAX_COLS:
        shape = [(n_br, n_bc * lanes, lanes) for lanes in (1, 2)]
    elif 2 * n_br * n_bc <= _DRAIN_MAX_COLS:
        shape = [(1, n_br * n_bc * lanes, lanes) for lanes in (1, 2)]
    else:
        raise ValueError(f"drain_width: {width} lanes drain a {rows}x{cols} tile in "
                         f"{n_br * n_bc} beats, too many for the per-lane area estimate "
                         f"(at most {_DRAIN_MAX_COLS // 2})")
    one, two = (ModuleSpec(_TILE_DRAIN, drain=s) for s in shape)
    return [(one, 2.0 - width), (two, width - 1.0)]


def module_config(cfg: Config) -> Config:
    """The configuration a module other than the tile drain is generated from: ``cfg.core()``
    named ``area``, on a 1 × 1 array (1 lane, drain width 1) — the array does not reach those
    modules."""
    return replace(cfg.core(), name=_AREA_NAME, rows=1, cols=1, lanes=1, drain_width=1)


def design_modules(cfg: Config, design: Design | None = None
                   ) -> list[tuple[str, int, list[tuple[ModuleSpec, float]]]]:
    """The array logic of ``design`` (default: the configured design) on ``cfg``: (part,
    instances, weighted modules) per part of :func:`sim.ablation.array_parts`; a part's
    area per instance is Σ weight × the module's NAND2 equivalents."""
    name = (design or configured_design()).name
    out: list[tuple[str, int, list[tuple[ModuleSpec, float]]]] = []
    for part in array_parts(cfg.core()):
        if part.design != name:
            continue
        if part.module == _TILE_DRAIN:
            specs = _drain_specs(part.cfg.rows, part.cfg.tile_cols, part.cfg.drain_width)
        else:
            specs = [(ModuleSpec(part.module, module_config(part.cfg)), 1.0)]
        out.append((part.part, part.count, specs))
    if not out:
        raise ValueError(f"design: {name} has no array in hardware")
    return out


def module_nand2(spec: ModuleSpec) -> float:
    """NAND2 equivalents of one module (generated if needed, synthesized or read from the
    synthesis cache). Call from a process's main thread (Amaranth)."""
    return synthesize_text(spec.verilog(), spec.module)


def synthesize_text(verilog: str, top: str) -> float:
    """NAND2 equivalents of Verilog text ``verilog`` (top ``top``): written to a temporary
    file and :func:`sim.area.synthesize`-d (cached by content). Needs no Amaranth, so it runs
    on any engine worker, given the text."""
    with tempfile.TemporaryDirectory(prefix="semdialect-area-") as tmp:
        path = Path(tmp) / f"{top}.v"
        path.write_text(verilog)
        return synthesize(path, top).nand2_eq


@functools.cache
def nand2_um2() -> float:
    """Area of one NAND2 equivalent (µm²): the OSU 0.18 µm NAND2X1 cell, from the liberty file
    when installed, else :data:`NAND2X1_UM2_OSU018`."""
    from semdialect.sim.asic import liberty_cells, liberty_path

    path = liberty_path()
    if path.is_file():
        cell = liberty_cells(path.read_text()).get("NAND2X1")
        if cell is not None and cell[0] > 0:
            return cell[0]
    return NAND2X1_UM2_OSU018


def sram_mm2(bits: int) -> float:
    """Area of ``bits`` of SRAM (mm²): bit cells / array efficiency."""
    return bits * SRAM_BITCELL_UM2 / SRAM_ARRAY_EFFICIENCY / 1e6


def sram_bits(cfg: Config) -> int:
    """SRAM bits of one core: activation + weight + output SRAM (KiB × 8192)."""
    return (cfg.act_sram_kib + cfg.weight_sram_kib + cfg.out_sram_kib) * 8192


def chip_area(cfg: Config, design: Design | None = None,
              nand2: Mapping[ModuleSpec, float] | Callable[[ModuleSpec], float] = module_nand2
              ) -> ChipArea:
    """Chip area of ``design`` (default: the configured design) on ``cfg`` (module
    docstring); ``nand2`` gives a module's NAND2 equivalents (a mapping of already
    synthesized modules, or a function: default :func:`module_nand2`)."""
    area_of = nand2.__getitem__ if isinstance(nand2, Mapping) else nand2
    per_core = math.fsum(count * weight * area_of(spec)
                         for _, count, specs in design_modules(cfg, design)
                         for spec, weight in specs)
    bits = sram_bits(cfg)
    return ChipArea(logic_mm2=cfg.cores * per_core * nand2_um2() / 1e6,
                    sram_mm2=cfg.cores * sram_mm2(bits), logic_nand2_eq=per_core,
                    sram_bits=bits, cores=cfg.cores)


def distinct_modules(pairs: Iterable[tuple[Config, Design | None]]) -> list[ModuleSpec]:
    """The distinct modules the chip areas of (configuration, design) pairs need, in first-use
    order."""
    seen: dict[ModuleSpec, None] = {}
    for cfg, design in pairs:
        for _, _, specs in design_modules(cfg, design):
            seen.update((spec, None) for spec, _ in specs)
    return list(seen)
