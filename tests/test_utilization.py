"""Where the cycles go and MAC utilization (sim/model.py, utilization.csv of ``semdialect sim``).

Issue 10's target: one Open-Sora 2.0 denoising step runs at >= 90 % MAC utilization on the
SemanticDialect array of the shipped ``default`` and ``xlarge`` configurations.
"""

from __future__ import annotations

import csv
import itertools
import time
from dataclasses import replace
from math import ceil
from pathlib import Path

import pytest

from semdialect.config import Config, resolve_config, shipped_configs
from semdialect.designs import configured_design
from semdialect.sim.cycles import gemm_cycles_raw, quantize_cycles_raw
from semdialect.sim.model import (
    PARTS,
    REASON_BELOW,
    STEP_LAYER,
    UTILIZATION_COLUMNS,
    Design,
    LayerResult,
    layer_result,
    model_designs,
    model_workload,
    step_cycles,
    step_reason,
    step_utilization,
)
from semdialect.sim.workloads import Gemm, load_workload, shipped_workloads, workload_path

DEFAULT = resolve_config("default")
#: a 2×2 array, B = 16, dfp4 with 4 selector cycles per block on 1 lane, 1-output drain
TINY = Config(name="tiny", rows=2, cols=2, block=16, formatbook="dfp4", formats_per_cycle=4,
              drain_width=1, lanes=1)


def assert_exact(r: LayerResult) -> None:
    """The parts sum to the layer's cycles, the fill sub-parts to ``fill``; none negative."""
    b = r.breakdown
    assert b.total == pytest.approx(r.cycles, rel=1e-12, abs=1e-9), r
    assert b.idle_rows + b.idle_cols + b.k_padding + b.latency == pytest.approx(
        b.fill, rel=1e-12, abs=1e-9), r
    for key in (*PARTS, "idle_rows", "idle_cols", "k_padding", "latency"):
        assert getattr(b, key) >= 0, (key, r)


# --- the breakdown -------------------------------------------------------------------------

@pytest.mark.parametrize("config", shipped_configs())
def test_breakdown_of_every_shipped_layer_is_exact(config: str) -> None:
    cfg = resolve_config(config)
    for name in shipped_workloads():
        gemms = load_workload(workload_path(name))
        for d in [*model_designs(cfg), Design.of(configured_design(), cfg, "0.05")]:
            for r in model_workload(d, gemms):
                assert_exact(r)


def test_breakdown_of_small_shapes_is_exact() -> None:
    """Every small shape on slow and fast frontends/drains, static and run-time W, with and
    without decomposition."""
    configs = [TINY, replace(TINY, lanes=2, drain_width=4), DEFAULT,
               replace(DEFAULT, lanes=1, drain_width=1, formats_per_cycle=4)]
    for cfg, rho in itertools.product(configs, ("0", "0.3")):
        d = Design.of(configured_design(), cfg, rho)
        for m, n, k, static in itertools.product((1, 2, 3, 9, 17), (1, 2, 5, 9), (16, 40, 96),
                                                 ("W", "none")):
            assert_exact(layer_result(d, Gemm("g", m, k, n, static=static)))


def test_counterfactuals() -> None:
    """drain = T − T(unbounded drain), selector = T(unbounded drain) − T(unbounded drain and
    frontend), written out with gemm_cycles_raw."""
    cfg = replace(DEFAULT, lanes=2, drain_width=8, formats_per_cycle=8)  # C_sel = 4
    d = Design.of("semanticdialect", cfg)
    g = Gemm("g", 37, 200, 21)
    kb = 7
    full = gemm_cycles_raw(8, 8, 4, 37, 21, kb, lanes=2, drain_width=8)
    wide = gemm_cycles_raw(8, 8, 4, 37, 21, kb, lanes=2, drain_width=64)
    ideal = gemm_cycles_raw(8, 8, 1, 37, 21, kb, lanes=8, drain_width=64)
    b = layer_result(d, g).breakdown
    assert (b.drain, b.selector) == (full - wide, wide - ideal)
    assert b.compute == pytest.approx(37 * 200 * 21 / (8 * 8 * 32))
    assert b.latency == ideal - 5 * 3 * kb  # T_m·T_n·KB k-step cycles
    assert b.drain > 0 and b.selector > 0


def test_hand_computed_shapes() -> None:
    """The default array (8×8, B = 32, 8 lanes, C_sel = 1, drain 32 = 4 tile rows per beat),
    from the cycles.py recurrence by hand: A_0 = 1, F_0 = A_0 + Q_0 + 3, X_0 = F_0 + KB + 2,
    cycles = X_0 + b + 1 (one tile)."""
    d = Design.of("semanticdialect", DEFAULT)
    # M = N = 8, K = 32: Q_0 = 1, F_0 = 5, X_0 = 8, b = 2 beats → 11 cycles; one useful cycle
    r = layer_result(d, Gemm("tile", 8, 32, 8))
    assert r.cycles == 11 and r.utilization == pytest.approx(1 / 11)
    assert r.breakdown.parts() == {"compute": 1, "drain": 1, "selector": 0, "quantize": 0,
                                   "fill": 9, "residual": 0}
    # GEMV M = 1: b = 1 beat → 10 cycles, 7 of 8 PE rows idle in the one k-step cycle
    r = layer_result(d, Gemm("gemv", 1, 32, 8))
    assert r.cycles == 10 and r.utilization == pytest.approx(1 / 80)
    assert (r.breakdown.compute, r.breakdown.idle_rows, r.breakdown.latency) == (1 / 8, 7 / 8, 9)
    assert r.reason.startswith("pipeline latency and row-tile start bubbles: 9 cycles")
    assert "; M=1 < rows=8: GEMV, 7 of 8 PE rows idle (9 % of cycles)" in r.reason
    # K = 68 padded to 96: Q_0 = 3, F_0 = 7, X_0 = 12, b = 2 → 15 cycles
    r = layer_result(d, Gemm("pad", 8, 68, 8))
    assert r.cycles == 15
    assert (r.breakdown.compute, r.breakdown.k_padding) == (8 * 8 * 68 / 2048, 8 * 8 * 28 / 2048)


def brute_force_slots(cfg: Config, g: Gemm) -> dict[str, int]:
    """PE slots (one element product of one PE lane in one k-step cycle) of every tile, k-step,
    PE and lane of the output-stationary schedule, counted one at a time: useful, or idle
    because the row is past M, else the column past N, else the element past K (padding)."""
    out = dict.fromkeys(("useful", "idle_rows", "idle_cols", "k_padding"), 0)
    kb = ceil(g.k / cfg.block)
    for t, j, s in itertools.product(range(ceil(g.m / cfg.rows)), range(ceil(g.n / cfg.cols)),
                                     range(kb)):
        for r, c, e in itertools.product(range(cfg.rows), range(cfg.cols), range(cfg.block)):
            row, col, kk = t * cfg.rows + r, j * cfg.cols + c, s * cfg.block + e
            key = ("idle_rows" if row >= g.m else "idle_cols" if col >= g.n
                   else "k_padding" if kk >= g.k else "useful")
            out[key] += 1
    return out


@pytest.mark.parametrize(("m", "k", "n"), [(1, 16, 1), (3, 40, 5), (2, 16, 2), (5, 33, 3),
                                           (4, 100, 7)])
def test_utilization_brute_force(m: int, k: int, n: int) -> None:
    """Utilization and the idle-slot parts of ``fill`` equal a slot-by-slot count."""
    d = Design.of("semanticdialect", TINY)
    g = Gemm("g", m, k, n)
    r = layer_result(d, g)
    slots = brute_force_slots(d.cfg, g)
    per_cycle = TINY.rows * TINY.cols * TINY.block
    assert slots["useful"] == r.macs == m * k * n
    assert r.utilization == pytest.approx(slots["useful"] / (r.cycles * per_cycle))
    for key in ("idle_rows", "idle_cols", "k_padding"):
        assert getattr(r.breakdown, key) == pytest.approx(slots[key] / per_cycle), key
    assert r.breakdown.compute == pytest.approx(slots["useful"] / per_cycle)


def test_step_utilization_brute_force() -> None:
    """A step's utilization over ``count`` runs = that of the runs listed one by one."""
    gemms = [Gemm("a", 3, 40, 5, count=3), Gemm("b", 1, 16, 2, count=2, static="none"),
             Gemm("c", 9, 96, 9)]
    d = Design.of("semanticdialect", TINY)
    results = model_workload(d, gemms)
    unrolled = [layer_result(d, replace(g, count=1)) for g in gemms for _ in range(g.count)]
    assert step_cycles(results) == step_cycles(unrolled)
    macs = sum(g.m * g.k * g.n * g.count for g in gemms)
    assert step_utilization(results) == pytest.approx(
        macs / (sum(r.cycles for r in unrolled) * 2 * 2 * 16))
    assert step_utilization(results) == pytest.approx(step_utilization(unrolled))
    with pytest.raises(ValueError, match="results: one design"):
        step_utilization([*results, *model_workload(Design.of("mxfp4", TINY), gemms)])


def test_none_gemm_costs_gemm_plus_quantize() -> None:
    """A run-time second operand costs exactly the GEMM and the quantize command of its Wᵀ."""
    for cfg in (DEFAULT, TINY, resolve_config("xlarge")):
        for d in model_designs(cfg):
            for m, k, n in ((1, 64, 1), (8828, 128, 8828), (77, 8828, 128)):
                kb = ceil(k / d.cfg.block)
                r = layer_result(d, Gemm("qk", m, k, n, static="none"))
                assert r.cycles == gemm_cycles_raw(
                    d.cfg.rows, d.cfg.cols, d.sel_cycles, m, n, kb, lanes=d.cfg.lanes,
                    drain_width=d.cfg.drain_width) + quantize_cycles_raw(
                    d.cfg.rows, d.sel_cycles, n, kb, lanes=d.cfg.lanes)


# --- reasons ---------------------------------------------------------------------------------

def test_reasons_name_the_physical_cause() -> None:
    d = Design.of("semanticdialect", DEFAULT)
    assert layer_result(d, Gemm("mod", 1, 3072, 18432)).reason.startswith(
        "M=1 < rows=8: GEMV, 7 of 8 PE rows idle")
    assert "K=68 padded to 96 (3 blocks of 32)" in layer_result(
        d, Gemm("cond_in", 8316, 68, 3072)).reason
    assert layer_result(d, Gemm("big", 8316, 3072, 3072)).reason == ""  # above 80 %
    xl = Design.of("semanticdialect", resolve_config("xlarge"))
    assert layer_result(xl, Gemm("img_in", 8316, 64, 3072)).reason.startswith(
        "drain-bound: needs 512 outputs/cycle (a 32×32 tile every KB=2 cycles), "
        "drain_width=256")
    slow = Design.of("semanticdialect", replace(DEFAULT, lanes=1, formats_per_cycle=8))
    assert layer_result(slow, Gemm("fc", 64, 256, 8)).reason.startswith(
        "selector-bound: a row tile enters the frontend in ⌈8/1⌉·8·4 = 256 cycles")
    assert "run-time quantization of the second operand (static=none): 4096 rows × 1 block" \
        in layer_result(d, Gemm("qk", 8, 32, 4096, static="none")).reason
    dec = Design.of("semanticdialect", DEFAULT, "0.9")  # ⌈0.9·9⌉ = 9 salient rows
    assert layer_result(dec, Gemm("g", 9, 64, 64)).reason.startswith(
        "decomposition's second pass of 9 rows")


def test_step_reason() -> None:
    d = Design.of("semanticdialect", DEFAULT)
    gemvs = model_workload(d, [Gemm("mod", 1, 3072, 3072, count=5), Gemm("fc", 64, 64, 64)])
    assert step_utilization(gemvs) < REASON_BELOW
    assert step_reason(gemvs).startswith("fill ")
    assert "mostly mod (M=1 < rows=8: GEMV" in step_reason(gemvs)
    assert step_reason(model_workload(d, [Gemm("fc", 4096, 4096, 4096)])) == ""


# --- the target ------------------------------------------------------------------------------

@pytest.mark.parametrize("config", ["default", "xlarge"])
def test_opensora2_step_utilization_target(config: str) -> None:
    """Issue 10: >= 90 % MAC utilization over an Open-Sora 2.0 step (256px, 129 frames)."""
    gemms = load_workload(workload_path("opensora2_256px_129f"))
    results = model_workload(Design.of("semanticdialect", resolve_config(config)), gemms)
    assert step_utilization(results) >= 0.90


# --- utilization.csv -------------------------------------------------------------------------

def test_utilization_csv_covers_every_config_workload_and_design(tmp_path: Path) -> None:
    from semdialect.cli.mainjob import stage_utilization

    t0 = time.perf_counter()
    stage_utilization(DEFAULT, tmp_path)
    assert time.perf_counter() - t0 < 20
    with open(tmp_path / "utilization.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == UTILIZATION_COLUMNS
    designs = [d.name for d in model_designs(DEFAULT)]
    steps = {(r["config"], r["workload"], r["design"]): r for r in rows
             if r["layer"] == STEP_LAYER}
    assert set(steps) == set(itertools.product(shipped_configs(), shipped_workloads(), designs))
    for r in rows:
        util = float(r["utilization"])
        assert 0 < util <= 1
        assert bool(r["reason"]) == (util < REASON_BELOW), r
        parts = sum(float(r[f"{p}_cycles"]) for p in PARTS)
        assert parts == pytest.approx(float(r["cycles"]), rel=1e-6), r
        assert float(r["peak_drain_bytes_per_cycle"]) > 0
    # the STEP row is the model's step utilization
    xl = resolve_config("xlarge")
    gemms = load_workload(workload_path("opensora2_256px_129f"))
    want = step_utilization(model_workload(Design.of("semanticdialect", xl), gemms))
    got = float(steps["xlarge", "opensora2_256px_129f", "semanticdialect"]["utilization"])
    assert got == pytest.approx(want, abs=1e-6)
    # a layer's required output rate: M·N·4 bytes over its cycles
    layer = next(r for r in rows if r["config"] == "xlarge" and r["layer"] == "embed.img_in"
                 and r["workload"] == "opensora2_256px_129f")
    assert float(layer["required_output_bytes_per_cycle"]) == pytest.approx(
        8316 * 3072 * 4 / int(layer["cycles"]), abs=1e-3)
    assert float(layer["peak_drain_bytes_per_cycle"]) == 256 * 4


def test_summary_has_a_utilization_section(tmp_path: Path) -> None:
    from semdialect.cli.mainjob import stage_cycles, stage_utilization
    from semdialect.reports.build import build_report

    stage_cycles(DEFAULT, "opensora2_256px_129f", "0.05", tmp_path, 100.0)
    stage_utilization(DEFAULT, tmp_path)
    text = build_report(tmp_path, cfg=DEFAULT, workload="opensora2_256px_129f",
                        fmax_mhz=None, fallback_mhz=100.0).read_text()
    section = text.split("## Utilization", 1)[1].split("\n## ", 1)[0]
    assert "Source: the cycle model" in section
    assert "| semanticdialect | **99." in section
    assert "GEMV, 7 of 8 PE rows idle" in section
    assert "![cycles_breakdown](cycles_breakdown.png)" in section
    assert (tmp_path / "cycles_breakdown.png").stat().st_size > 0
    assert "| opensora2_256px_129f |" in section  # every shipped config × workload
