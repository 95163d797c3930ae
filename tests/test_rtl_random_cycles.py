"""Cycle exactness of :class:`rtl.gemm_core.GemmCore` on random hardware configurations
(Verilator, cocotb): every no-stall command takes exactly :func:`sim.cycles.gemm_cycles` /
:func:`sim.cycles.quantize_cycles` cycles, and every output bit equals the golden model.

A fixed seed (:data:`SEED`) draws :data:`N_CONFIGS` small configurations — rows, cols in 1..4,
B ∈ {16, 32}, the ``dfp4`` (``lut`` or ``two-stage``) or ``sd32`` book, formats per cycle a
divisor of K, lanes a divisor of rows, a drain width valid for the array
(:func:`semdialect.config.check_drain_width`) — plus, from a second generator (so the first
draw stays as it was), random ``[pipeline]`` depths: C-slow accumulators d = 1..3 (whichever
keep the drain width valid for the rows × cols·d tile), product, scale, decoder and selector
stages, and from a third the output adder's stages (``addend_stages`` 0..8); configuration 0
stays unpipelined (the design before pipelining) — and for each
:data:`GEMMS_PER_CONFIG` random GEMMs (M in 1..3·rows + 2, N in 1..3·cols + 2, K/B in 1..8,
random or adversarial data: ties,
±0, ±65504, subnormals, NaN/Inf blocks) plus two quantize commands. Each configuration is one
Verilator build (the test builds' limits, :data:`tb.gemm_run.TEST_LIMITS`) running only the
no-stall test of ``tb/cocotb_gemm.py``; the shipped configurations' runs (stalls, back to
back, every command kind) are ``tests/test_rtl_gemm_verilator.py``.

The draw keeps the frontend small (lanes × formats per cycle ≤ :data:`FRONTEND_BUDGET` dialect
evaluations per cycle) so that the builds stay quick: about 5 minutes for the whole file on
2 cores with a cold cache, seconds once built.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import replace

import pytest

from semdialect.config import Config, check_drain_width
from semdialect.sim.cycles import gemm_cycles, quantize_cycles
from semdialect.tb.gemm_ref import case_commands
from semdialect.tb.gemm_run import TEST_LIMITS, case, run_gemm

SEED = 11  # a draw covering the regimes test_draw_is_broad asks for
N_CONFIGS = 7
GEMMS_PER_CONFIG = 8
QUANTIZE_PER_CONFIG = 2
#: largest lanes × formats per cycle drawn (LUT selector size ∝ both)
FRONTEND_BUDGET = 32
#: the data kinds drawn for the random cases
DATA = ("random", "random", "adversarial", "nan", "max", "zeros")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _drain_widths(rows: int, cols: int) -> list[int]:
    """Every drain width the array allows (a divisor of cols, or a multiple of cols that
    divides rows·cols)."""
    out = []
    for width in range(1, rows * cols + 1):
        try:
            check_drain_width(width, rows, cols)
        except ValueError:
            continue
        out.append(width)
    return out


def draw_config(rng: random.Random, index: int) -> Config:
    """One random small configuration (see the module docstring)."""
    rows, cols = rng.randint(1, 4), rng.randint(1, 4)
    book, select = rng.choice([("dfp4", "lut"), ("dfp4", "two-stage"), ("sd32", "lut")])
    k_book = 16 if book == "dfp4" else 32
    lanes = rng.choice(_divisors(rows))
    per_cycle = rng.choice([d for d in _divisors(k_book) if lanes * d <= FRONTEND_BUDGET])
    return Config(name=f"rc{index}", rows=rows, cols=cols, block=rng.choice([16, 32]),
                  formatbook=book, select=select, formats_per_cycle=per_cycle, lanes=lanes,
                  drain_width=rng.choice(_drain_widths(rows, cols)))


def draw_cases(rng: random.Random, cfg: Config) -> list[dict]:
    """GEMMS_PER_CONFIG random GEMMs and QUANTIZE_PER_CONFIG quantize commands for ``cfg``:
    the first GEMM is one full tile, the second several ragged tiles at the largest K."""
    cases = [case(cfg.rows, cfg.cols, rng.randint(1, TEST_LIMITS.max_kb), "random",
                  rng.randrange(1 << 30)),
             case(2 * cfg.rows + 1, 2 * cfg.cols + 1, TEST_LIMITS.max_kb, "adversarial",
                  rng.randrange(1 << 30))]
    while len(cases) < GEMMS_PER_CONFIG:
        cases.append(case(rng.randint(1, 3 * cfg.rows + 2), rng.randint(1, 3 * cfg.cols + 2),
                          rng.randint(1, TEST_LIMITS.max_kb), rng.choice(DATA),
                          rng.randrange(1 << 30)))
    for _ in range(QUANTIZE_PER_CONFIG):
        cases.append(case(rng.randint(1, 3 * cfg.rows + 2), 1,
                          rng.randint(1, TEST_LIMITS.max_kb), rng.choice(DATA),
                          rng.randrange(1 << 30), kind="quantize"))
    return cases


def draw_pipeline(rng: random.Random, cfg: Config) -> Config:
    """``cfg`` with random pipeline depths (see the module docstring)."""
    accs = []
    for d in (1, 2, 3):
        try:
            check_drain_width(cfg.drain_width, cfg.rows, cfg.cols, d)
        except ValueError:
            continue
        accs.append(d)
    return replace(cfg, acc_stages=rng.choice(accs), pe_product_stages=rng.randint(1, 3),
                   pe_scale_stages=rng.randint(1, 3), decoder_stages=rng.randint(0, 2),
                   selector_stages=rng.randint(0, 3))


def _draw() -> list[tuple[Config, list[dict]]]:
    rng = random.Random(SEED)
    pipes = random.Random(SEED + 1)
    # its own generator (the other draws stay as they were), seeded to cover 0, 1 (the output
    # register only), the default's 5 and deeper
    adders = random.Random(SEED + 32)
    out = []
    for index in range(N_CONFIGS):
        cfg = draw_config(rng, index)
        cases = draw_cases(rng, cfg)
        if index:
            cfg = replace(draw_pipeline(pipes, cfg), addend_stages=adders.randint(0, 8))
        out.append((cfg, cases))
    return out


DRAWN = _draw()


def test_draw_is_broad() -> None:
    """The draw covers ≥ 50 GEMMs, both block sizes, the three selection kinds, 1 to 4 lanes,
    drain beats of part of a tile row and of several rows, a 4-row and a 4-column array,
    quantizer-bound (C_sel ≥ 8) and one-block-per-cycle frontends, compute- and drain-bound
    tiles."""
    gemms = [c for _, cases in DRAWN for c in cases if c.get("kind", "gemm") == "gemm"]
    assert len(gemms) >= 50
    cfgs = [cfg for cfg, _ in DRAWN]
    assert {cfg.block for cfg in cfgs} == {16, 32}
    assert len({(cfg.formatbook, cfg.select) for cfg in cfgs}) == 3
    assert {cfg.lanes for cfg in cfgs} == {1, 2, 3, 4}
    assert any(cfg.drain_width < cfg.cols for cfg in cfgs)
    assert any(cfg.drain_width > cfg.cols for cfg in cfgs)
    assert any(cfg.rows == 4 for cfg in cfgs) and any(cfg.cols == 4 for cfg in cfgs)
    assert {1} < {cfg.selector_cycles for cfg in cfgs} and max(
        cfg.selector_cycles for cfg in cfgs) >= 8
    assert cfgs[0].acc_stages == 1 and cfgs[0].pipeline_dict() == Config().pipeline_dict()
    assert {cfg.acc_stages for cfg in cfgs} >= {1, 2, 3}
    assert any(cfg.selector_stages for cfg in cfgs) and any(cfg.decoder_stages for cfg in cfgs)
    assert {0, 1, 5} < {cfg.addend_stages for cfg in cfgs}
    # drain beats per tile
    beats = [cfg.rows * cfg.tile_cols // cfg.drain_width for cfg in cfgs]
    assert any(b > c["kb"] for b, (_, cases) in zip(beats, DRAWN, strict=True) for c in cases)
    assert any(b < c["kb"] for b, (_, cases) in zip(beats, DRAWN, strict=True) for c in cases)


@pytest.mark.parametrize("index", range(N_CONFIGS),
                         ids=[f"{cfg.name}-{cfg.rows}x{cfg.cols}-b{cfg.block}-{cfg.formatbook}-"
                              f"{cfg.select}-p{cfg.formats_per_cycle}-l{cfg.lanes}-"
                              f"d{cfg.drain_width}-"
                              + "".join(str(v) for v in cfg.pipeline_dict().values())
                              for cfg, _ in DRAWN])
def test_random_config_cycles(index: int, record_property) -> None:
    cfg, cases = DRAWN[index]
    run, gen_seconds, cycles_file = run_gemm(
        cfg, cases, functools.partial(gemm_cycles, cfg), TEST_LIMITS,
        expected_quantize=functools.partial(quantize_cycles, cfg),
        testcase="test_gemm_no_stall")
    assert run.tests == 1
    records = json.loads(cycles_file.read_text())
    commands = [cmd for c in cases for cmd in case_commands(c)]
    assert len(records) == len(commands)
    for rec, cmd in zip(records, commands, strict=True):  # the formulas, recomputed here
        assert (rec["op"], rec["M"], rec["K"]) == (cmd["op"], cmd["m"], cmd["kb"] * cfg.block)
        if cmd["op"] == "gemm":
            assert rec["cycles"] == gemm_cycles(cfg, cmd["m"], cmd["n"], rec["K"]), rec
        else:
            assert rec["cycles"] == quantize_cycles(cfg, cmd["m"], rec["K"]), rec
    for key, value in {"generate_s": round(gen_seconds, 1),
                       "build_s": round(run.build_seconds, 1),
                       "run_s": round(run.test_seconds, 1)}.items():
        record_property(key, value)
    print(f"\n{cfg}: {len(records)} commands, cycles "
          f"{[(r['op'][0], r['M'], r['N'], r['K'], r['cycles']) for r in records]}; "
          f"generate {gen_seconds:.1f} s, build {run.build_seconds:.1f} s, run "
          f"{run.test_seconds:.1f} s")
