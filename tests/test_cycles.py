"""sim/cycles.py: the O(log M) evaluation equals the per-row-tile recurrence it replaced."""

from __future__ import annotations

import functools
import itertools
import random
import time
import tracemalloc
from dataclasses import replace
from math import ceil

import pytest

from semdialect.config import Config, check_drain_width
from semdialect.rtl.timing import BASE_PE_LATENCY, BASE_QUANTIZER_EXTRA, Pipeline
from semdialect.sim.cycles import drain_beats, gemm_cycles, gemm_cycles_raw, quantize_cycles_raw


@functools.cache
def beats(rows_t: int, cols_t: int, cols: int, drain: int) -> int:
    """Drain beats of a rows_t × cols_t tile, counted one beat at a time: a beat is a group of
    ``drain`` consecutive outputs in row-major order over the full-width grid, kept if it holds
    at least one output of the tile."""
    grid = [(r, c) for r in range(rows_t + drain) for c in range(cols)]
    count = 0
    for start in range(0, len(grid), drain):
        if any(r < rows_t and c < cols_t for r, c in grid[start:start + drain]):
            count += 1
    return count


def reference_cycles(rows: int, cols: int, sel_cycles: int, m: int, n: int, kb: int,
                     lanes: int = 1, drain: int = 1, pipe: Pipeline | None = None) -> int:
    """The recurrence of the module docstring, one row tile at a time. With a pipeline of
    d = acc_stages: tiles of rows × cols·d, KB·d array cycles per tile, the array latency L
    and the quantizer's extra latency E_q in place of 3 and 2, the output adder's stages
    after the last drain beat."""
    pipe = pipe or Pipeline()
    d = pipe.acc_stages
    latency, q_extra = pipe.array_latency, pipe.quantizer_extra
    out_stages = pipe.addend_stages  # every y beat passes the output adder's registers
    cols, steps = cols * d, kb * d
    t_m = ceil(m / rows)
    t_n = ceil(n / cols)
    c_last = n - (t_n - 1) * cols
    accept_prev = quant_prev = 0
    capture = [0] * t_m
    n_prev = 0
    for t in range(t_m):
        r_t = min(rows, m - t * rows)
        q_t = -(-r_t // lanes) * kb * sel_cycles
        if t == 0:
            accept = 1
        elif t == 1:
            accept = accept_prev + quant_prev
        else:
            accept = max(accept_prev + quant_prev, capture[t - 2] + 1)
        full = accept + q_t + q_extra + 1
        if t == 0:
            issue = full
            first = issue + steps + latency - 1
        else:
            issue = max(full, capture[t - 1] + 1)
            first = max(issue + steps + latency - 1, capture[t - 1] + n_prev)
        capture[t] = first + (t_n - 1) * max(steps, beats(r_t, cols, cols, drain))
        n_prev = beats(r_t, c_last, cols, drain)
        accept_prev, quant_prev = accept, q_t
    return capture[-1] + n_prev + out_stages + 1


def _drains(rows: int, cols: int) -> list[int]:
    return [d for d in range(1, rows * cols + 1)
            if cols % d == 0 or (d % cols == 0 and rows * cols % d == 0)]


def test_exhaustive_small_shapes() -> None:
    """Every small array/shape combination: 1..4 row tiles and beyond, ragged edges, every
    regime (quantizer-, compute- and drain-bound), every lane count and drain width."""
    for rows, cols, sel, m, n, kb in itertools.product(
        (1, 2, 4), (1, 2, 3), (1, 2, 4), range(1, 14), range(1, 8), (1, 2, 3, 5, 9)
    ):
        for lanes in [d for d in (1, 2, 4) if rows % d == 0]:
            for drain in _drains(rows, cols):
                assert gemm_cycles_raw(rows, cols, sel, m, n, kb, lanes=lanes,
                                       drain_width=drain) == reference_cycles(
                    rows, cols, sel, m, n, kb, lanes, drain
                ), (rows, cols, sel, m, n, kb, lanes, drain)


def test_drain_beats_formula() -> None:
    for rows, cols in itertools.product((1, 2, 3, 4, 8), (1, 2, 3, 4, 8)):
        for drain in _drains(rows, cols):
            for rt in range(1, rows + 1):
                for ct in range(1, cols + 1):
                    assert drain_beats(rt, ct, cols, drain) == beats(rt, ct, cols, drain)


def test_bad_lanes_and_drain_are_rejected() -> None:
    with pytest.raises(ValueError, match="lanes"):
        gemm_cycles_raw(8, 8, 1, 8, 8, 1, lanes=3)
    with pytest.raises(ValueError, match="drain_width"):
        gemm_cycles_raw(8, 8, 1, 8, 8, 1, drain_width=12)
    with pytest.raises(ValueError, match="drain_width"):
        gemm_cycles_raw(8, 8, 1, 8, 8, 1, drain_width=0)


def test_quantize_cycles_formula() -> None:
    """⌈M/L⌉·KB beats one every C_sel cycles from cycle 1, the last leaving C_sel + 2 later."""
    for sel, m, kb, lanes in itertools.product((1, 2, 4), range(1, 10), (1, 3), (1, 2, 4)):
        last_accept = 1 + (-(-m // lanes) * kb - 1) * sel
        assert quantize_cycles_raw(4, sel, m, kb, lanes=lanes) == (
            last_accept + sel + BASE_QUANTIZER_EXTRA + 1)
        for stages in (1, 3):  # the selector's extra stages add to the latency only
            pipe = Pipeline(selector_stages=stages)
            assert quantize_cycles_raw(4, sel, m, kb, lanes=lanes, pipeline=pipe) == (
                last_accept + sel + BASE_QUANTIZER_EXTRA + stages + 1)


def test_random_shapes() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        rows, cols = rng.randint(1, 64), rng.randint(1, 64)
        lanes = rng.choice([d for d in range(1, rows + 1) if rows % d == 0])
        drain = rng.choice([d for d in (1, cols, rows * cols) if cols % d == 0 or (
            d % cols == 0 and rows * cols % d == 0)])
        sel = rng.choice((1, 2, 4, 8, 16, 32))
        m = rng.randint(1, rows * rng.choice((1, 3, 50, 400)))
        n = rng.randint(1, cols * rng.choice((1, 2, 30)))
        kb = rng.randint(1, rng.choice((4, 64, 2000)))
        assert gemm_cycles_raw(rows, cols, sel, m, n, kb, lanes=lanes,
                               drain_width=drain) == reference_cycles(
            rows, cols, sel, m, n, kb, lanes, drain
        ), (rows, cols, sel, m, n, kb, lanes, drain)


def test_long_transients() -> None:
    """Row-tile counts in the tens of thousands, where a periodic regime may set in late."""
    for rows, cols, sel, m, n, kb, lanes, drain in [
        (1, 1, 1, 40_001, 3, 2, 1, 1), (8, 8, 4, 200_003, 100, 7, 1, 1),
        (8, 8, 4, 200_003, 100, 7, 8, 32), (8, 8, 1, 100_003, 9, 2, 4, 64),
        (2, 3, 1, 30_000, 5, 4, 2, 3), (1, 4, 2, 50_000, 9, 5, 1, 2), (3, 1, 1, 60_000, 2, 4, 3, 3),
    ]:
        assert gemm_cycles_raw(rows, cols, sel, m, n, kb, lanes=lanes,
                               drain_width=drain) == reference_cycles(
            rows, cols, sel, m, n, kb, lanes, drain
        )


@pytest.mark.parametrize("rows", [1, 8, 64])
def test_huge_m_is_fast_and_small(rows: int) -> None:
    """M = 2^31 (the workload bound): no list of ⌈M/rows⌉ entries, no 2^31-step loop."""
    tracemalloc.start()
    t0 = time.perf_counter()
    cycles = gemm_cycles_raw(rows, 8, 4, 2**31, 2**31, 2**26)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 0.5 and peak < 1 << 20, (seconds, peak)
    assert cycles > 2**31 // rows * 2**26


def _random_pipeline(rng: random.Random) -> Pipeline:
    return Pipeline(decoder_stages=rng.randint(0, 2), pe_product_stages=rng.randint(1, 4),
                    pe_scale_stages=rng.randint(1, 3), acc_stages=rng.randint(1, 7),
                    selector_stages=rng.randint(0, 6), addend_stages=rng.randint(0, 8))


def test_unpipelined_is_the_old_model() -> None:
    """``Pipeline()`` (every dataclass default) has the old latencies, and passing it
    changes nothing: d = 1 reproduces the design before pipelining."""
    pipe = Pipeline()
    assert (pipe.pe_latency, pipe.array_latency, pipe.quantizer_extra) == (
        BASE_PE_LATENCY, BASE_PE_LATENCY, BASE_QUANTIZER_EXTRA) == (3, 3, 2)
    assert pipe.output_latency == 0  # the combinational output adder
    rng = random.Random(3)
    for _ in range(300):
        rows, cols = rng.randint(1, 8), rng.randint(1, 8)
        args = (rows, cols, rng.choice((1, 4)), rng.randint(1, 40), rng.randint(1, 40),
                rng.randint(1, 9))
        assert gemm_cycles_raw(*args, pipeline=pipe) == gemm_cycles_raw(*args)
    assert Pipeline.of(Config()) == pipe


def test_random_pipelines() -> None:
    """Random pipeline depths (C-slow d = 1..7, every other stage count) on random arrays
    and shapes, drain widths valid for the rows × cols·d tile: the closed form equals the
    per-row-tile recurrence."""
    rng = random.Random(17)
    for _ in range(2000):
        pipe = _random_pipeline(rng)
        rows, cols = rng.randint(1, 8), rng.randint(1, 8)
        d = pipe.acc_stages
        lanes = rng.choice([x for x in range(1, rows + 1) if rows % x == 0])
        drains = [w for w in range(1, rows * cols * d + 1)
                  if (cols * d) % w == 0 or (w % (cols * d) == 0 and rows * cols * d % w == 0)]
        drain = rng.choice(drains)
        check_drain_width(drain, rows, cols, d)
        sel = rng.choice((1, 2, 4, 32))
        m = rng.randint(1, rows * rng.choice((1, 3, 20)))
        n = rng.randint(1, cols * d * rng.choice((1, 2, 7)))
        kb = rng.randint(1, rng.choice((2, 9, 64)))
        assert gemm_cycles_raw(rows, cols, sel, m, n, kb, lanes=lanes, drain_width=drain,
                               pipeline=pipe) == reference_cycles(
            rows, cols, sel, m, n, kb, lanes, drain, pipe), (rows, cols, sel, m, n, kb, pipe)


def test_pipelined_hand_example() -> None:
    """One 2×2 tile, d = 2 (a 2×4 tile), KB = 1, C_sel = 4, 2 lanes, drain 4 (one tile row
    per beat... 8 outputs in 2 beats), array latency 1 + 2 + 2 + 2 = 7, selector + 1: A_0 = 1,
    F_0 = 1 + 4 + 3 + 1 = 9, the two k-steps issue at 9 and 10, X = 10 + 7 = 17, beats at
    18, 19 → 20 cycles; a second tile of 4 columns costs max(KB·d, 2 beats) = 2 more."""
    pipe = Pipeline(decoder_stages=1, pe_product_stages=2, pe_scale_stages=2, acc_stages=2,
                    selector_stages=1)
    assert pipe.array_latency == 7 and pipe.quantizer_extra == 3
    assert gemm_cycles_raw(2, 2, 4, 2, 4, 1, lanes=2, drain_width=4, pipeline=pipe) == 20
    assert gemm_cycles_raw(2, 2, 4, 2, 8, 1, lanes=2, drain_width=4, pipeline=pipe) == 22
    # N = 1: the second virtual column group is all padding, the tile costs the same
    assert gemm_cycles_raw(2, 2, 4, 2, 1, 1, lanes=2, drain_width=4, pipeline=pipe) == 20
    # a 5-stage output adder: the last beat (19) reaches y 5 cycles later, at 24 → 25
    # cycles; the drain still emits one beat per cycle, so N = 8 costs 2 more again
    deep = replace(pipe, addend_stages=5)
    assert deep.output_latency == 5
    assert gemm_cycles_raw(2, 2, 4, 2, 4, 1, lanes=2, drain_width=4, pipeline=deep) == 25
    assert gemm_cycles_raw(2, 2, 4, 2, 8, 1, lanes=2, drain_width=4, pipeline=deep) == 27
    # a quantize command does not use y: the output adder adds nothing
    assert quantize_cycles_raw(2, 4, 2, 1, lanes=2, pipeline=deep) == quantize_cycles_raw(
        2, 4, 2, 1, lanes=2, pipeline=pipe)


def test_gemm_cycles_reads_the_config_pipeline() -> None:
    cfg = Config(name="p", rows=2, cols=2, block=16, formatbook="dfp4", formats_per_cycle=4,
                 lanes=2, drain_width=4, decoder_stages=1, pe_product_stages=2,
                 pe_scale_stages=2, acc_stages=2, selector_stages=1)
    assert gemm_cycles(cfg, 2, 4, 16) == 20
    assert Pipeline.of(cfg).acc_stages == 2 and cfg.tile_cols == 4
    assert gemm_cycles(replace(cfg, addend_stages=3), 2, 4, 16) == 23
    assert Pipeline.of(replace(cfg, addend_stages=3)).addend_stages == 3
