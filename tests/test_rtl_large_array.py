"""Large arrays: the shipped 32×32 ``xlarge`` GemmCore bit-exact on Verilator, and what the
area of the 64×64 and 128×128 arrays is made of.

* ``test_xlarge_gemm_core_bit_exact`` (marker ``large_rtl``: ``make test-large-rtl``, not
  ``make test``): the shipped ``xlarge`` core (32×32, sd32, B = 32, d = 5, 32 lanes, drain 320)
  runs :data:`XLARGE_CASES` through the GemmCore testbench (``tb/cocotb_gemm.py``: no stalls,
  random stalls, back to back), every output bit against the golden model, every no-stall
  command's cycles equal to :func:`sim.cycles.gemm_cycles` / ``quantize_cycles``. Measured on
  the 2-core machine: Verilog 61 s, Verilator build 5.2 min (peak 7.7 GB), simulation 3.8 min
  (cold ≈ 10 min; warm: the simulation only). ``test_large_gemm_core_bit_exact`` does the same
  for the 16×16 ``large`` core.
* The fast tests (no simulator): the cases cover what the large test claims (row and column
  tiles with ragged edges, every dialect of the book, every data and command kind); one
  Verilog module per replicated cell (:mod:`rtl.cells`); the system keys do not change an RTL
  cache key; the instance counts of the 64×64 and 128×128 array area
  (:func:`sim.ablation.array_parts`, :func:`sim.ablation.part_modules`).
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import re
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from test_rtl_gemm_verilator import check_cycle_records

from semdialect.config import Config, resolve_config
from semdialect.rtl import emit
from semdialect.rtl.addend_adder import AddendAdder
from semdialect.rtl.cells import HIER_BLOCK
from semdialect.rtl.emit import cached_verilog, verilog_key
from semdialect.rtl.gemm_core import GemmCore
from semdialect.sim.ablation import array_parts, part_modules
from semdialect.sim.cycles import gemm_cycles, quantize_cycles
from semdialect.tb.gemm_ref import case_commands, quantized_fields
from semdialect.tb.gemm_run import (
    TEST_LIMITS,
    GemmLimits,
    case,
    config_env,
    gemm_verilog,
    run_gemm,
)

#: the xlarge core's limits: N up to 511 (three 160-column tiles), K/B up to 8
XLARGE_LIMITS = GemmLimits(255, 511, 8)
#: xlarge cases (tiles of 32 × 160): M over 1 to 3 row tiles, N over 1 to 3 column tiles,
#: exact tiles and ragged edges (a 1-row / 1-column last tile), K/B 1 to 4; data: random,
#: adversarial (all-zero, all −0, ±65504, subnormal, outlier and cancelling blocks), NaN/Inf
#: blocks (with salient rows), ±65504 everywhere, zeros/−0, random SeDA masks; commands: plain
#: GEMMs, a quantize command, an addend GEMM (yin with half-ulp ties, ±0, ±Inf), the SPEC §6
#: decomposition and a run-time second operand
XLARGE_CASES = [
    case(70, 330, 2, "random", 61), case(33, 161, 3, "adversarial", 62),
    case(32, 160, 1, "nan", 63, salient={"random": 5}), case(40, 200, 2, "max", 64),
    case(20, 50, 4, "zeros", 65), case(45, 100, 2, "seda", 66),
    case(70, 1, 2, "adversarial", 67, kind="quantize"),
    case(35, 170, 2, "random", 68, kind="add"),
    case(40, 165, 2, "adversarial", 69, kind="decompose", salient={"attention": "0.1"}),
    case(33, 161, 2, "random", 70, kind="dynamic"),
]
#: the 16×16 ``large`` core (tiles of 16 × 112): two and three tiles each way, ragged edges
LARGE_CASES = [
    case(33, 225, 2, "random", 71), case(17, 113, 3, "adversarial", 72),
    case(16, 112, 1, "nan", 73, salient={"random": 3}), case(20, 60, 4, "seda", 74),
    case(35, 1, 2, "adversarial", 75, kind="quantize"),
    case(18, 120, 2, "max", 76, kind="add"),
    case(34, 115, 2, "random", 77, kind="decompose", salient={"attention": "0.1"}),
]


def _run_bit_exact(cfg: Config, cases: list[dict], limits: GemmLimits | None,
                   record_property) -> None:
    """Every case on ``cfg``'s core: 3 cocotb tests pass and every no-stall command's cycles
    equal the cycle model."""
    run, gen_seconds, cycles_file = run_gemm(
        cfg, cases, functools.partial(gemm_cycles, cfg), limits,
        expected_quantize=functools.partial(quantize_cycles, cfg))
    assert run.tests == 3
    check_cycle_records(cfg, cases, json.loads(cycles_file.read_text()))
    timing = {"generate_s": round(gen_seconds, 1), "build_s": round(run.build_seconds, 1),
              "run_s": round(run.test_seconds, 1), "built": run.built}
    for key, value in timing.items():
        record_property(key, value)
    print(f"\n{cfg.name}: {len(cases)} cases; {timing}")


@pytest.mark.large_rtl
def test_xlarge_gemm_core_bit_exact(record_property) -> None:
    _run_bit_exact(resolve_config("xlarge"), XLARGE_CASES, XLARGE_LIMITS, record_property)


@pytest.mark.large_rtl
def test_large_gemm_core_bit_exact(record_property) -> None:
    _run_bit_exact(resolve_config("large"), LARGE_CASES, None, record_property)


def _activation_dialects(cfg: Config, cases: list[dict],
                         monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The dialects golden chooses for the valid X blocks of ``cases``, X made by the
    testbench's own generator (``tb/cocotb_gemm.make_data``, loaded for ``cfg``: it reads the
    configuration from the environment when imported). The bench module builds a GemmCore
    it never elaborates: it is dropped here, its warnings silenced."""
    monkeypatch.setenv("GEMM_CONFIG", config_env(cfg))
    monkeypatch.setenv("GEMM_MAX_KB", str(TEST_LIMITS.max_kb))
    name = "semdialect.tb.cocotb_gemm"
    seen: set[int] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        sys.modules.pop(name, None)
        bench = importlib.import_module(name)
        try:
            for c in cases:
                x16, _, masks = bench.make_data(c)
                fields = quantized_fields(x16, cfg, masks)
                seen |= set(np.asarray(fields.dialect)[~np.asarray(fields.invalid)].tolist())
        finally:
            sys.modules.pop(name, None)
            vars(sys.modules["semdialect.tb"]).pop("cocotb_gemm", None)  # the package's attribute
            del bench
            gc.collect()
    return seen


@pytest.mark.parametrize(("name", "cases"), [("xlarge", XLARGE_CASES), ("large", LARGE_CASES)])
def test_large_cases_cover_tiles_dialects_and_kinds(
        name: str, cases: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    """What the large tests claim: three row and three column tiles, an exact tile and
    ragged (one-row, one-column) edges; every dialect of the book chosen by some activation
    block (golden quantization of the testbench's own data); every data and command kind."""
    cfg = resolve_config(name)
    rows, cols = cfg.rows, cfg.tile_cols
    gemms = [c for c in cases if c.get("kind", "gemm") != "quantize"]
    assert max(-(-c["m"] // rows) for c in gemms) >= 3
    assert max(-(-c["n"] // cols) for c in gemms) >= 3
    assert {c["m"] % rows for c in gemms} >= {0, 1} and {c["n"] % cols for c in gemms} >= {0, 1}
    assert {c["data"] for c in cases} >= {"random", "adversarial", "nan", "max", "seda"}
    assert {c.get("kind", "gemm") for c in cases} >= {"gemm", "quantize", "add", "decompose"}
    assert _activation_dialects(cfg, cases, monkeypatch) == set(range(cfg.book().size))


def test_replicated_parts_are_one_module_each() -> None:
    """A GemmCore's Verilog defines each replicated cell once (rtl.cells: PE core, block
    decoder, frontend lane, output adder lanes, drain lanes), marked as a Verilator
    hierarchical block, and instantiates it once per copy."""
    cfg = resolve_config("small")
    text = gemm_verilog(cfg).text
    defined = re.findall(r"(?m)^module (\w+_[0-9a-f]{16})\(", text)
    assert len(defined) == len(set(defined))
    counts = {name: len(re.findall(rf"(?m)^  {name} \S+ \(", text)) for name in defined}
    by_kind: dict[str, int] = {}
    for name, n in counts.items():
        by_kind[name[:-17]] = by_kind.get(name[:-17], 0) + n
    assert by_kind == {
        "pe_core": cfg.rows * cfg.cols,
        "block_decoder": cfg.rows + cfg.cols,
        "block_quantizer_residual": cfg.lanes,
        "addend_lane": cfg.drain_width,  # lane 0 (with the side bits) is a module of its own
        "drain_lane": cfg.drain_width,
    }
    assert sum(1 for n in defined if n.startswith("addend_lane_")) == 2
    assert text.count(HIER_BLOCK) == len(defined)


def test_system_keys_do_not_change_the_rtl_key() -> None:
    """SRAM sizes, cores, DRAM bandwidth and attention settings never reach the RTL: the
    Verilog cache key of a configuration's core ignores them (the array does not)."""
    cfg = resolve_config("xlarge")
    key = verilog_key("core", GemmCore.from_config, (cfg,), TEST_LIMITS.kwargs())
    system = replace(cfg, act_sram_kib=64, weight_sram_kib=2048, out_sram_kib=8, cores=4,
                     dram_gbps=12.5, fused_attention=True, softmax_lanes=7)
    assert verilog_key("core", GemmCore.from_config, (system,), TEST_LIMITS.kwargs()) == key
    assert verilog_key("core", GemmCore.from_config, (replace(cfg, addend_stages=4),),
                       TEST_LIMITS.kwargs()) != key


@pytest.mark.parametrize(("name", "n", "d", "lanes", "drain", "entries"), [
    # array64: 64 × 64, d = 5 (tile 64 × 320), 64 lanes, drain 640 = two tile rows per beat,
    # so 32 beats per tile and 32 results per drain lane
    ("array64", 64, 5, 64, 640, 32),
    ("array128", 128, 5, 128, 1280, 64),
])
def test_large_array_area_instance_counts(name: str, n: int, d: int, lanes: int, drain: int,
                                          entries: int) -> None:
    """The 64×64 and 128×128 arrays' area parts (module area × instances): n² PE cores, 2n
    block decoders, one frontend lane per lane, one output adder per drain lane, and the
    tile drain as its control plus one lane module per drain lane (each lane holding
    n·n·d / drain results), for every hardware design."""
    cfg = resolve_config(name)
    assert (cfg.rows, cfg.cols, cfg.acc_stages, cfg.lanes, cfg.drain_width) == (
        n, n, d, lanes, drain)
    parts = array_parts(cfg)
    designs = {p.design for p in parts}
    assert len(designs) == 5
    for design in designs:
        by = {p.part: p for p in parts if p.design == design}
        assert by["PE cores"].count == n * n
        assert by["block decoders"].count == 2 * n
        assert by["activation frontend"].count == lanes
        assert by["addend adders"].count == drain
        assert by["tile drain"].count == 1
        assert part_modules(by["tile drain"]) == (("tile_drain_control", 1),
                                                  ("tile_drain_lane", drain))
        assert part_modules(by["PE cores"]) == ((by["PE cores"].module, 1),)
    base = next(p for p in parts if p.design == "semanticdialect" and p.part == "tile drain")
    lane_cfg = base.cfg
    assert (lane_cfg.rows // lane_cfg.drain_rows) * (
        lane_cfg.tile_cols // lane_cfg.drain_cols) == entries
    assert n * n * d // drain == entries


def test_commands_of_the_xlarge_cases_fit_the_limits() -> None:
    """Every command of :data:`XLARGE_CASES` fits :data:`XLARGE_LIMITS` (one build)."""
    for c in XLARGE_CASES:
        for cmd in case_commands(c):
            XLARGE_LIMITS.check(cmd["m"], max(cmd["n"], 1), cmd["kb"])


def test_cell_names_follow_their_logic_not_the_sources(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A source edit that leaves the logic alone misses the cache (the key hashes the
    generator's sources) but gives the same text, cell module names included, so simulator
    builds keyed on the text are reused."""
    first = cached_verilog("adder3", AddendAdder, (3, 1), cache_dir=tmp_path)
    assert re.search(r"(?m)^module addend_lane_[0-9a-f]{16}\(", first.text)
    sources = emit._generator_sources
    monkeypatch.setattr(emit, "_generator_sources",
                        lambda extra: {**sources(extra), "rtl/an_edit.py": "0" * 64})
    second = cached_verilog("adder3", AddendAdder, (3, 1), cache_dir=tmp_path)
    assert not second.hit and second.key != first.key
    assert second.text == first.text and second.path == first.path


def test_cores_generate_up_to_where_a_stream_fits_a_signal() -> None:
    """The 64×64 core builds; the 128×128 one (128 lanes: an x beat of 128 × (32·16 + 32 + 1)
    = 69 760 bits, over Amaranth's 2^16-bit signals) is refused by name, before any part of
    it is built. The cores are only built here, never elaborated (their warnings silenced)."""
    assert 128 * (32 * 16 + 32 + 1) == 69_760 > 1 << 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        assert GemmCore.from_config(resolve_config("array64"), **TEST_LIMITS.kwargs()).lanes == 64
        with pytest.raises(ValueError,
                           match=r"^lanes: the x stream's payload would be 69760 bits"):
            GemmCore.from_config(resolve_config("array128"))
        gc.collect()
