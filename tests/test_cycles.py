"""sim/cycles.py: the O(log M) evaluation equals the per-row-tile recurrence it replaced."""

from __future__ import annotations

import itertools
import random
import time
import tracemalloc
from math import ceil

import pytest

from semdialect.rtl.timing import PE_LATENCY, QUANTIZER_EXTRA
from semdialect.sim.cycles import gemm_cycles_raw


def reference_cycles(rows: int, cols: int, sel_cycles: int, m: int, n: int, kb: int) -> int:
    """The recurrence of the module docstring, one row tile at a time (the original code)."""
    t_m = ceil(m / rows)
    t_n = ceil(n / cols)
    c_last = n - (t_n - 1) * cols
    accept_prev = quant_prev = 0
    capture = [0] * t_m
    n_prev = 0
    for t in range(t_m):
        r_t = min(rows, m - t * rows)
        q_t = r_t * kb * sel_cycles
        if t == 0:
            accept = 1
        elif t == 1:
            accept = accept_prev + quant_prev
        else:
            accept = max(accept_prev + quant_prev, capture[t - 2] + 1)
        full = accept + q_t + QUANTIZER_EXTRA + 1
        if t == 0:
            issue = full
            first = issue + kb + PE_LATENCY - 1
        else:
            issue = max(full, capture[t - 1] + 1)
            first = max(issue + kb + PE_LATENCY - 1, capture[t - 1] + n_prev + 1)
        capture[t] = first + (t_n - 1) * max(kb, r_t * cols + 1)
        n_prev = r_t * c_last
        accept_prev, quant_prev = accept, q_t
    return capture[-1] + n_prev + 1


def test_exhaustive_small_shapes() -> None:
    """Every small array/shape combination: 1..4 row tiles and beyond, ragged edges, every
    regime (quantizer-, compute- and drain-bound)."""
    for rows, cols, sel, m, n, kb in itertools.product(
        (1, 2, 3), (1, 2, 3), (1, 2, 4), range(1, 14), range(1, 8), (1, 2, 3, 5, 9)
    ):
        assert gemm_cycles_raw(rows, cols, sel, m, n, kb) == reference_cycles(
            rows, cols, sel, m, n, kb
        ), (rows, cols, sel, m, n, kb)


def test_random_shapes() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        rows, cols = rng.randint(1, 64), rng.randint(1, 64)
        sel = rng.choice((1, 2, 4, 8, 16, 32))
        m = rng.randint(1, rows * rng.choice((1, 3, 50, 400)))
        n = rng.randint(1, cols * rng.choice((1, 2, 30)))
        kb = rng.randint(1, rng.choice((4, 64, 2000)))
        assert gemm_cycles_raw(rows, cols, sel, m, n, kb) == reference_cycles(
            rows, cols, sel, m, n, kb
        ), (rows, cols, sel, m, n, kb)


def test_long_transients() -> None:
    """Row-tile counts in the tens of thousands, where a periodic regime may set in late."""
    for rows, cols, sel, m, n, kb in [(1, 1, 1, 40_001, 3, 2), (8, 8, 4, 200_003, 100, 7),
                                      (2, 3, 1, 30_000, 5, 4), (1, 4, 2, 50_000, 9, 5),
                                      (3, 1, 1, 60_000, 2, 4)]:
        assert gemm_cycles_raw(rows, cols, sel, m, n, kb) == reference_cycles(
            rows, cols, sel, m, n, kb
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
