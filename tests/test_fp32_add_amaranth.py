# amaranth: UnusedElaboratable=no
"""``amaranth.sim`` tests of :mod:`rtl.fp32_add` against NumPy float32 addition.

``ref_*`` functions compute what the hardware must produce (NumPy, independent of the RTL);
``rtl_*`` functions run the Amaranth simulation and return what it produced.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.sim import Simulator

from semdialect.rtl.fp32_add import FP32Add, fp32_add
from semdialect.tb.fp32_ref import VECTOR_CLASSES, fp32_add_vectors, ref_fp32_add
from semdialect.tb.streams import OutputMonitor

VECTORS = fp32_add_vectors(8000, seed=2025)


def mismatches(pairs: np.ndarray, got: list[int], want: np.ndarray) -> str:
    got_arr = np.array(got, dtype=np.uint32)
    bad = np.flatnonzero(got_arr != want)
    lines = [
        f"{pairs[k, 0]:08x} + {pairs[k, 1]:08x}: got {got_arr[k]:08x} want {want[k]:08x}"
        for k in bad[:10]
    ]
    return f"{len(bad)} of {len(pairs)} differ:\n" + "\n".join(lines)


def with_clock(dut: FP32Add) -> Simulator:
    """A simulator of ``dut`` with a ``sync`` clock even when ``dut`` has no registers."""
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-6)
    return sim


# -- combinational ------------------------------------------------------------------------------


def rtl_fp32_add_comb(pairs: np.ndarray) -> list[int]:
    """Sums from ``FP32Add(latency=0)`` evaluated combinationally, one pair at a time."""
    dut = FP32Add(latency=0)
    results: list[int] = []

    async def testbench(ctx) -> None:
        for a, b in pairs.tolist():
            ctx.set(dut.i.payload, {"a": a, "b": b})
            results.append(ctx.get(dut.o.payload))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return results


def test_fp32_add_matches_numpy() -> None:
    got = rtl_fp32_add_comb(VECTORS)
    want = ref_fp32_add(VECTORS[:, 0], VECTORS[:, 1])
    assert np.array_equal(np.array(got, np.uint32), want), mismatches(VECTORS, got, want)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (0x0000_0000, 0x8000_0000),  # +0 + -0 = +0
        (0x8000_0000, 0x8000_0000),  # -0 + -0 = -0
        (0x8000_0000, 0x0000_0000),
        (0xC0A0_0000, 0x40A0_0000),  # -5 + 5 = +0
        (0x0000_0001, 0x8000_0001),  # smallest subnormals cancel to +0
        (0x0080_0000, 0x8000_0001),  # min normal - min subnormal: subnormal result
        (0x007F_FFFF, 0x0000_0001),  # largest subnormal + min subnormal = min normal
        (0x3F80_0000, 0x3380_0000),  # 1 + 2^-24: tie, 1 is even -> 1
        (0x3F80_0001, 0x3380_0000),  # odd lsb: tie rounds up
        (0x3FFF_FFFF, 0x3400_0000),  # carry into the exponent
        (0x7F7F_FFFF, 0x7380_0000),  # FLT_MAX + 1/2 ulp: tie rounds to Inf
        (0x7F7F_FFFF, 0x737F_FFFF),  # just below the tie: stays FLT_MAX
        (0xFF7F_FFFF, 0xFF7F_FFFF),  # -> -Inf
        (0x3F80_0000, 0xB37F_FFFF),  # 1 - (just under 1/2 ulp below 1)
    ],
)
def test_fp32_add_corner_cases(a: int, b: int) -> None:
    pairs = np.array([[a, b], [b, a]], dtype=np.uint32)
    got = rtl_fp32_add_comb(pairs)
    want = ref_fp32_add(pairs[:, 0], pairs[:, 1])
    assert got == want.tolist(), mismatches(pairs, got, want)


def test_vectors_cover_corner_cases() -> None:
    """The shared vector set really contains the cases the tests claim to exercise."""
    a, b = VECTORS[:, 0], VECTORS[:, 1]
    r = ref_fp32_add(a, b)
    exp = ((r >> 23) & 0xFF).astype(np.int64)
    exp_a = ((a >> 23) & 0xFF).astype(np.int64)
    exp_b = ((b >> 23) & 0xFF).astype(np.int64)
    exact = a.view(np.float32).astype(np.float64) + b.view(np.float32).astype(np.float64)
    low = exact.view(np.uint64) & ((1 << 29) - 1)  # float64 bits below float32 precision
    fa, fb = a.view(np.float32), b.view(np.float32)
    counts = {
        "+0 from x + -x": int(((r == 0) & (a != 0) & (a == b ^ 0x8000_0000)).sum()),
        "-0 + -0": int(((a == 0x8000_0000) & (b == 0x8000_0000)).sum()),
        "subnormal results": int(((exp == 0) & (r & 0x7FFF_FFFF != 0)).sum()),
        "overflow to inf": int((exp == 255).sum()),
        "exact ties": int(((low == 1 << 28) & (exp > 0) & (exp < 255)).sum()),
        "cancellation > 8 bits": int(
            ((np.sign(fa) != np.sign(fb)) & (exp > 0) & (np.maximum(exp_a, exp_b) - exp > 8)).sum()
        ),
        "exponent carry": int(((exp > np.maximum(exp_a, exp_b)) & (exp < 255)).sum()),
    }
    assert all(n >= 1 for n in counts.values()), counts
    assert len(VECTOR_CLASSES) >= 10


# -- streaming -----------------------------------------------------------------------------------


def rtl_fp32_add_stream(
    latency: int, pairs: np.ndarray, *, p_valid: float, p_ready: float, seed: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Stream ``pairs`` through ``FP32Add(latency)`` with random valid/ready.

    Returns the sums in output order and, per pair, (cycle accepted, cycle emitted). Checks the
    stream rules on ``o``: once valid, it stays valid with a stable payload until taken.
    """
    dut = FP32Add(latency=latency)
    results: list[int] = []
    accepted: list[int] = []
    emitted: list[int] = []

    async def testbench(ctx) -> None:
        rng = random.Random(seed)
        sent = 0
        holding = False
        monitor = OutputMonitor("o")
        cycle = 0
        while len(results) < len(pairs):
            if not holding and sent < len(pairs) and rng.random() < p_valid:
                a, b = pairs[sent].tolist()
                ctx.set(dut.i.payload, {"a": a, "b": b})
                holding = True
            ctx.set(dut.i.valid, holding)
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, ready)
            if holding and ctx.get(dut.i.ready):
                accepted.append(cycle)
                sent += 1
                holding = False
            value = ctx.get(dut.o.payload) if ctx.get(dut.o.valid) else None
            if monitor.transferred(cycle, value, ready):
                results.append(value)
                emitted.append(cycle)
            await ctx.tick()
            cycle += 1
            assert cycle < 10 * len(pairs) + 100, "pipeline stuck"

    sim = with_clock(dut)
    sim.add_testbench(testbench)
    sim.run()
    return results, list(zip(accepted, emitted, strict=True))


@pytest.mark.parametrize("latency", range(FP32Add.MAX_LATENCY + 1))
def test_fp32_add_stream_backpressure(latency: int) -> None:
    pairs = VECTORS[latency::4][:1000]
    got, _ = rtl_fp32_add_stream(latency, pairs, p_valid=0.7, p_ready=0.6, seed=latency)
    want = ref_fp32_add(pairs[:, 0], pairs[:, 1])
    assert len(got) == len(pairs)
    assert np.array_equal(np.array(got, np.uint32), want), mismatches(pairs, got, want)


@pytest.mark.parametrize("latency", range(FP32Add.MAX_LATENCY + 1))
def test_fp32_add_latency_throughput(latency: int) -> None:
    """Always valid and ready: one result per cycle, exactly ``latency`` cycles after input."""
    pairs = VECTORS[:200]
    got, timing = rtl_fp32_add_stream(latency, pairs, p_valid=1.0, p_ready=1.0, seed=0)
    assert got == ref_fp32_add(pairs[:, 0], pairs[:, 1]).tolist()
    assert FP32Add(latency=latency).latency == latency
    assert [out - inp for inp, out in timing] == [latency] * len(pairs)
    assert [inp for inp, _ in timing] == list(range(len(pairs)))


@pytest.mark.parametrize("latency", range(FP32Add.MAX_LATENCY + 1))
def test_fp32_add_fills_while_stalled(latency: int) -> None:
    """With ``o.ready`` low an empty pipeline still takes ``latency`` pairs, then stalls."""
    dut = FP32Add(latency=latency)
    taken: list[int] = []

    async def testbench(ctx) -> None:
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        for cycle in range(latency + 4):
            ctx.set(dut.i.payload, {"a": cycle, "b": 0})
            if ctx.get(dut.i.ready):
                taken.append(cycle)
            await ctx.tick()
        # The oldest pair is at the output: the first one (0 + 0), or with latency 0 the pair
        # presented now (a small subnormal a, plus +0, is a).
        assert ctx.get(dut.o.valid)
        assert ctx.get(dut.o.payload) == (0 if latency else latency + 3)

    sim = with_clock(dut)
    sim.add_testbench(testbench)
    sim.run()
    assert taken == list(range(latency))


@pytest.mark.parametrize("latency", [-1, FP32Add.MAX_LATENCY + 1])
def test_fp32_add_rejects_bad_latency(latency: int) -> None:
    with pytest.raises(ValueError, match="latency"):
        FP32Add(latency=latency)


# -- accumulation (how the PE uses the adder) ---------------------------------------------------


def ref_fp32_accumulate(values: np.ndarray) -> list[int]:
    """SPEC §5: running FP32 RNE sum from +0.0 in order; the bit pattern after each step."""
    total = np.float32(0.0)
    out = []
    for v in values.view(np.float32):
        total = np.float32(total + v)
        out.append(int(np.array(total).view(np.uint32)))
    return out


def rtl_fp32_accumulate(values: np.ndarray) -> list[int]:
    """A one-per-cycle accumulator ``acc <= fp32_add(acc, x)`` built with :func:`fp32_add`."""
    m = Module()
    m.domains.sync = ClockDomain()
    addend = Signal(32)
    acc = Signal(32)  # init 0 = +0.0
    m.d.sync += acc.eq(fp32_add(m, acc, addend))
    out: list[int] = []

    async def testbench(ctx) -> None:
        for v in values.tolist():
            ctx.set(addend, v)
            await ctx.tick()
            out.append(ctx.get(acc))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return out


def test_fp32_accumulate_in_order() -> None:
    rng = np.random.default_rng(7)
    n = 300
    # Block-contribution-like values: integers P (|P| <= 225*64) times 2^k, mixed signs, and a
    # run of negated earlier addends (cancellation).
    p = rng.integers(-14400, 14401, n).astype(np.float64)
    k = rng.integers(-40, 20, n).astype(np.float64)
    values = (p * np.exp2(k)).astype(np.float32)
    values[100:150] = -values[50:100]
    values = values.view(np.uint32)
    assert rtl_fp32_accumulate(values) == ref_fp32_accumulate(values)
