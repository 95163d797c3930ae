"""The system model (sim/memory.py, docs/SPEC.md §9): stalls against the DRAM bandwidth, exact
core cycles of the tile steps' commands, cores sharing the DRAM, the operand bits driving the
traffic, decomposition on top, energy and one denoising step."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from semdialect.config import resolve_config
from semdialect.sim.energy import action_counts_for_gemm, energy_per_mac, load_assumptions
from semdialect.sim.mapping import Mapping, core_commands
from semdialect.sim.memory import (
    DEFAULT_CLOCK_MHZ,
    ENERGY_KEYS,
    _est_gemms,
    _Timing,
    commands_cycles,
    evaluate_mapping,
    evaluate_step,
    map_gemm,
    matched_port_width,
    model_system,
    sram_byte_pj,
)
from semdialect.sim.model import Design, layer_result
from semdialect.sim.workloads import Gemm, load_workload, workload_path

CLOCK = 250.0


def _design(name: str = "semanticdialect", **system: object) -> Design:
    return Design.of(name, replace(resolve_config("default"), **system))


def test_default_clock_is_the_180nm_target() -> None:
    assert DEFAULT_CLOCK_MHZ == 250.0


def test_omitted_port_widths_match_the_peak_demand() -> None:
    """default sd32: the frontend takes 8 lanes × 32 FP16 per cycle (C_sel = 1), the array 8
    columns × 17.25-byte blocks, the drain 56 FP32."""
    design = _design()
    assert [matched_port_width(design, s) for s in ("act", "weight", "out")] == [512, 138, 224]


def test_tiny_dram_bandwidth_makes_the_gemm_dram_bound() -> None:
    """0.01 GB/s at 250 MHz = 0.04 bytes/cycle: the time is the DRAM bytes over it plus the
    exposed first input tiles and last output tile."""
    design = _design(dram_gbps=0.01)
    g = Gemm("fc", 512, 1024, 512)
    r = map_gemm(design, g, CLOCK)
    bpc = 0.01e9 / (CLOCK * 1e6)
    mp = r.mapping
    first_in = (min(mp.tm, 512) * min(mp.tk, 1024) * 2
                + min(mp.tn, 512) * math.ceil(min(mp.tk, 1024) / 32) * 17.25)
    last_out = (512 - (math.ceil(512 / mp.tm) - 1) * mp.tm) * (
        512 - (math.ceil(512 / mp.tn) - 1) * mp.tn) * 4
    assert r.bound == "dram"
    assert r.prologue_cycles == pytest.approx(first_in / bpc)
    assert r.epilogue_cycles == pytest.approx(last_out / bpc)
    assert r.stall_cycles == pytest.approx(sum(r.dram_bytes.values()) / bpc - r.core_cycles
                                           + (first_in + last_out) / bpc)
    assert r.cycles == pytest.approx(r.core_cycles + r.stall_cycles)


def test_huge_dram_bandwidth_leaves_only_the_prologue_and_epilogue() -> None:
    design = _design(dram_gbps=1e5)
    r = map_gemm(design, Gemm("fc", 512, 1024, 512), CLOCK)
    assert r.bound == "compute"
    assert r.stall_cycles == pytest.approx(r.prologue_cycles + r.epilogue_cycles)
    assert 0 < r.stall_cycles < 1


def test_a_narrow_sram_port_binds() -> None:
    """An out port of 1 byte/cycle cannot carry a 512×512 FP32 output in the core's time."""
    r = map_gemm(_design(out_sram_width=1, dram_gbps=1e5), Gemm("fc", 512, 64, 512), CLOCK)
    assert r.bound == "sram:out"
    assert r.cycles - r.prologue_cycles - r.epilogue_cycles == pytest.approx(
        r.sram_bytes["out"] / 1)
    assert r.sram_bytes["out"] >= 2 * 512 * 512 * 4  # drained once, read once to DRAM


def test_core_cycles_are_the_exact_commands_of_every_tile_step() -> None:
    """M = 100, K = 96, N = 130 in tiles of 64 × 112 × 64: row tiles 64, 36; column tiles
    112, 18; k tiles of 2 and 1 blocks — eight GEMM commands; a run-time W adds one quantize
    command per W tile (112 or 18 rows × 2 or 1 blocks)."""
    design = _design()
    mp = Mapping(64, 112, 64, "mnk", "m", 1)
    commands = [(64, 112, 2), (64, 112, 1), (64, 18, 2), (64, 18, 1),
                (36, 112, 2), (36, 112, 1), (36, 18, 2), (36, 18, 1)]
    want = sum(design.gemm_cycles(m, n, kb) for m, n, kb in commands)
    assert evaluate_mapping(design, Gemm("w", 100, 96, 130), mp, CLOCK).core_cycles == want
    quant = sum(design.quantize_cycles(n, kb) for n, kb in ((112, 2), (112, 1), (18, 2), (18, 1)))
    got = evaluate_mapping(design, Gemm("rt", 100, 96, 130, 1, "none"), mp, CLOCK).core_cycles
    assert got == want + quant


def test_mapping_must_fit_and_be_aligned() -> None:
    design = _design()
    g = Gemm("w", 100, 96, 130)
    with pytest.raises(ValueError, match="^mapping.tn: must be a multiple of tile_cols=56"):
        evaluate_mapping(design, g, Mapping(64, 64, 64, "mnk", "m", 1), CLOCK)
    with pytest.raises(ValueError, match="^out_sram_kib: "):
        evaluate_mapping(design, Gemm("w", 1000, 96, 1000), Mapping(512, 560, 32, "mnk", "m", 1),
                         CLOCK)
    with pytest.raises(ValueError, match="^clock_mhz: "):
        map_gemm(design, g, 0.0)


def test_more_cores_speed_up_compute_but_share_the_dram() -> None:
    g = Gemm("fc", 4096, 1024, 1024)
    fast = {c: map_gemm(_design(cores=c, dram_gbps=1e4), g, CLOCK) for c in (1, 2, 4)}
    assert [fast[c].mapping.cores for c in (1, 2, 4)] == [1, 2, 4]
    assert fast[2].core_cycles < 0.55 * fast[1].core_cycles
    assert fast[4].core_cycles < 0.3 * fast[1].core_cycles
    assert fast[4].cycles < fast[2].cycles < fast[1].cycles
    # DRAM-bound: the cores share one DRAM, so more cores do not shorten the time
    slow = {c: map_gemm(_design(cores=c, dram_gbps=0.5), g, CLOCK) for c in (1, 4)}
    assert slow[1].bound == slow[4].bound == "dram"
    assert slow[4].cycles >= 0.95 * slow[1].cycles


def test_weight_traffic_scales_with_the_designs_bits() -> None:
    """Same mapping, W fetched for each of 8 row tiles: sd32 4.3125, MXFP4 4.25, NVFP4 4.5
    and MXINT8 8.25 bits per element with their metadata."""
    g = Gemm("fc", 512, 1024, 448)
    mp = Mapping(64, 112, 64, "mnk", "m", 1)
    for name, bits in (("semanticdialect", 4.3125), ("mxfp4", 4.25), ("nvfp4", 4.5),
                       ("mxint8", 8.25)):
        r = evaluate_mapping(_design(name), g, mp, CLOCK)
        assert r.dram_bytes["W"] == 8 * 448 * 1024 * bits / 8, name
        assert r.dram_bytes["X"] == 4 * 512 * 1024 * 2  # X re-fetched for each column tile
        assert r.dram_bytes["Y_write"] == 512 * 448 * 4 and r.dram_bytes["Y_read"] == 0


@pytest.mark.parametrize("config", ["default", "small", "array64", "array128"])
def test_the_searchs_cycle_estimate_tracks_the_exact_commands(config: str) -> None:
    """The search ranks mappings by a closed-form estimate of the core cycles; on random
    shapes and tilings it is within 3 % of the exact sum of the commands' cycles."""
    rng = random.Random(3)
    design = Design.of("semanticdialect", resolve_config(config))
    cfg, timing = design.cfg, _Timing.of(design)
    for _ in range(40):
        m, k, n = rng.randint(1, 3000), rng.randint(1, 2000), rng.randint(1, 3000)
        mp = Mapping(cfg.rows * rng.choice([1, 2, 8, 64]), cfg.tile_cols * rng.choice([1, 3, 8]),
                     cfg.block * rng.choice([1, 4, 16]), "mnk", "m", 1)
        ((gemms, _),) = core_commands(m, k, n, mp)
        exact = commands_cycles(design, gemms, {})
        est = float(_est_gemms(timing, cfg.block, np.asarray(m), k, np.asarray(n),
                               np.asarray(mp.tm), np.asarray(mp.tn), np.asarray(mp.tk)))
        assert est == pytest.approx(exact, rel=0.03), (m, k, n, mp)


def test_decomposition_keeps_the_second_pass_on_top() -> None:
    g = Gemm("fc", 1000, 512, 512)
    plain = _design()
    rho = Design.of("semanticdialect", resolve_config("default"), Fraction(1, 20))
    lr = layer_result(rho, g)
    mp = map_gemm(plain, g, CLOCK).mapping
    a, b = evaluate_mapping(plain, g, mp, CLOCK), evaluate_mapping(rho, g, mp, CLOCK)
    assert b.core_cycles == a.core_cycles + lr.breakdown.residual
    assert b.dram_bytes["residual"] == lr.residual_bytes == 2 * 50 * 512 * 2 + 2 * 50 * 512 * 4


def test_sram_energy_per_byte_follows_horowitz_in_log_log() -> None:
    """Horowitz (ISSCC 2014): 10, 20, 100 pJ per 64-bit read at 8 KB, 32 KB, 1 MB."""
    assert sram_byte_pj(8) == pytest.approx(10 / 8)
    assert sram_byte_pj(32) == pytest.approx(20 / 8)
    assert sram_byte_pj(1024) == pytest.approx(100 / 8)
    assert sram_byte_pj(128) == pytest.approx(20 * 4 ** (math.log(5) / math.log(32)) / 8)
    assert sram_byte_pj(16) == pytest.approx(10 * math.sqrt(2) / 8)


def test_energy_charges_dram_bytes_and_the_datapath() -> None:
    r = map_gemm(_design(), Gemm("fc", 512, 1024, 512), CLOCK)
    assert set(r.energy_pj) == set(ENERGY_KEYS)
    assert r.energy_pj["softmax"] == 0
    sram = (r.sram_bytes["act"] * sram_byte_pj(128) + r.sram_bytes["weight"] * sram_byte_pj(128)
            + r.sram_bytes["out"] * sram_byte_pj(64))
    assert r.energy_pj["memory"] == pytest.approx(r.dram_total * 243.75 + sram)
    assert r.energy_pj["multiplier"] == pytest.approx(512 * 1024 * 512 * 0.078125)


def test_run_time_w_is_quantized_once_at_the_frontends_energy() -> None:
    """A run-time W fetched once (one row tile) costs, beyond the static GEMM's datapath,
    exactly the ``runtime_w`` share of sim.energy's action counts for its N × K elements."""
    design = _design()
    mp = Mapping(64, 112, 64, "mnk", "m", 1)
    static = evaluate_mapping(design, Gemm("s", 64, 200, 130), mp, CLOCK)
    runtime = evaluate_mapping(design, Gemm("r", 64, 200, 130, 1, "none"), mp, CLOCK)
    table = load_assumptions()
    with_w = energy_per_mac(action_counts_for_gemm(design.cfg, 1, 130, 200, {},
                                                   runtime_w=True), table)
    without = energy_per_mac(action_counts_for_gemm(design.cfg, 1, 130, 200, {}), table)
    for cat in ("preprocess", "selector"):
        share = (with_w[cat] - without[cat]) * 130 * 200
        assert runtime.energy_pj[cat] - static.energy_pj[cat] == pytest.approx(share)
    for cat in ("decoder", "multiplier", "adder_tree", "accumulator"):
        assert runtime.energy_pj[cat] == pytest.approx(static.energy_pj[cat])


def test_step_sums_count_times_each_run() -> None:
    gemms = load_workload(workload_path("latte1_512px_16f"))
    design = _design(cores=2)
    step = evaluate_step(design, gemms)
    layers = model_system(design, gemms, DEFAULT_CLOCK_MHZ)
    assert step.layers == layers
    assert step.cycles == pytest.approx(sum(r.cycles * r.count for r in layers))
    assert step.seconds == pytest.approx(step.cycles / 250e6)
    assert step.energy_j == pytest.approx(sum(step.energy_parts_j.values()))
    assert step.macs == sum(g.m * g.k * g.n * g.count for g in gemms)
    assert step.utilization == pytest.approx(step.macs / (step.cycles * 8 * 8 * 32 * 2))
    assert 0 < step.utilization < 1
    assert step.stall_cycles == pytest.approx(step.cycles - step.core_cycles)
    with pytest.raises(ValueError, match="^out_sram_kib: "):
        evaluate_step(_design(out_sram_kib=1), gemms)


def test_k_split_false_keeps_every_reduction_whole() -> None:
    """``[memory] k_split = false``: every chosen Tk covers the padded K (one SPEC §5
    accumulation per output); with the default the search does split K where it is faster;
    too small an SRAM for a whole-K tile is an error naming that SRAM."""
    gemms = load_workload(workload_path("opensora12_240p_51f"))
    base = replace(resolve_config("default"), act_sram_kib=1024, weight_sram_kib=1024)
    whole = Design.of("semanticdialect", replace(base, k_split=False))
    for g in gemms:
        mp = map_gemm(whole, g, CLOCK).mapping
        assert mp is not None and mp.tk >= -(-g.k // base.block) * base.block, (g, mp)
    split = Design.of("semanticdialect", base)
    assert any(map_gemm(split, g, CLOCK).mapping.tk < g.k for g in gemms)
    tight = Design.of("semanticdialect", replace(base, k_split=False, weight_sram_kib=16))
    with pytest.raises(ValueError, match=r"^weight_sram_kib: .*k_split = false"):
        map_gemm(tight, Gemm("wide", 64, 8192, 512), CLOCK)
