"""cocotb tests for the generated Verilog of :class:`rtl.fp32_add.FP32Add` (run on Verilator).

Run through :func:`tb.runner.run_cocotb` (see ``tests/test_fp32_add_verilator.py``). Settings
arrive in the environment:

``FP32_ADD_LATENCY``  the ``latency`` the Verilog was generated with (required)
``FP32_ADD_VECTORS``  operand pairs for the back-pressure test (default 100000)
``FP32_ADD_SEED``     seed of the vectors and of the valid/ready pattern (default 1)
``FP32_ADD_CORRUPT``  if ``1``, corrupt one expected value (a self-test: the run must fail)

Protocol: inputs are driven just after the falling clock edge; after ``ReadOnly`` the
combinational outputs (``i.ready``, ``o.valid``, ``o.payload``) are sampled, which are the
values the next rising edge acts on. ``latency=0`` Verilog is purely combinational and has no
``clk``/``rst`` ports; its "cycles" are then 10 ns time steps.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer, Trigger

from semdialect.rtl.fp32_add import FP32_ADD_SIGNATURE, FP32_PAIR
from semdialect.tb.fp32_ref import fp32_add_vectors, ref_fp32_add
from semdialect.tb.ports import port
from semdialect.tb.streams import OutputMonitor

LATENCY = int(os.environ["FP32_ADD_LATENCY"])
VECTORS = int(os.environ.get("FP32_ADD_VECTORS", "100000"))
SEED = int(os.environ.get("FP32_ADD_SEED", "1"))
CORRUPT = os.environ.get("FP32_ADD_CORRUPT") == "1"


class Ports:
    """The DUT's stream ports, resolved once with :func:`tb.ports.port`."""

    def __init__(self, dut) -> None:
        self.clk = dut._get("clk")  # absent for latency 0
        self.rst = dut._get("rst")
        self.i_valid = port(dut, "i.valid")
        self.i_ready = port(dut, "i.ready")
        self.i_payload = port(dut, "i.payload")
        self.i_a = port(dut, "i.payload.a", FP32_ADD_SIGNATURE)
        self.i_b = port(dut, "i.payload.b", FP32_ADD_SIGNATURE)
        self.o_valid = port(dut, "o.valid")
        self.o_ready = port(dut, "o.ready")
        self.o_payload = port(dut, "o.payload")

    def next_cycle(self) -> Trigger:
        """Where to drive the next cycle's inputs: the falling edge (or +10 ns if no clock)."""
        return FallingEdge(self.clk) if self.clk is not None else Timer(10, unit="ns")


async def start(dut) -> Ports:
    """Start a 10 ns clock, idle the streams and pulse the synchronous reset."""
    p = Ports(dut)
    p.i_valid.value = 0
    p.o_ready.value = 0
    p.i_payload.value = 0
    if p.clk is None:
        assert LATENCY == 0, "a pipelined adder must have a clock"
        await Timer(10, unit="ns")
        return p
    cocotb.start_soon(Clock(p.clk, 10, unit="ns").start())
    p.rst.value = 1
    for _ in range(2):
        await RisingEdge(p.clk)
    p.rst.value = 0
    return p


def packed_operands(pairs: np.ndarray) -> list[int]:
    """Pack (a, b) pairs into ``i.payload`` integers at the layout's field offsets."""
    a = pairs[:, 0].astype(np.uint64) << np.uint64(FP32_PAIR["a"].offset)
    b = pairs[:, 1].astype(np.uint64) << np.uint64(FP32_PAIR["b"].offset)
    return [int(v) for v in a | b]


@cocotb.test()
async def test_packed_field_ports(dut) -> None:
    """``port()`` field proxies: two field writes in one time step land in the packed port."""
    p = await start(dut)
    await p.next_cycle()
    p.i_a.value = 0x3F80_0000
    p.i_b.value = 0xC000_0000
    await ReadOnly()
    packed = p.i_payload.value.to_unsigned()
    assert packed == packed_operands(np.array([[0x3F80_0000, 0xC000_0000]], np.uint32))[0]
    assert p.i_a.value == 0x3F80_0000 and p.i_b.value == 0xC000_0000


@cocotb.test()
async def test_latency_throughput(dut) -> None:
    """With valid and ready held high: one sum per cycle, each ``LATENCY`` cycles late."""
    p = await start(dut)
    pairs = fp32_add_vectors(256, SEED + 1)
    expected = ref_fp32_add(pairs[:, 0], pairs[:, 1]).tolist()
    accepted: list[int] = []
    emitted: list[int] = []
    results: list[int] = []
    cycle = 0
    while len(results) < len(pairs) and cycle < len(pairs) + LATENCY + 16:
        await p.next_cycle()
        sent = len(accepted)
        p.i_valid.value = int(sent < len(pairs))
        if sent < len(pairs):
            p.i_a.value = int(pairs[sent, 0])
            p.i_b.value = int(pairs[sent, 1])
        p.o_ready.value = 1
        await ReadOnly()
        if sent < len(pairs) and p.i_ready.value:
            accepted.append(cycle)
        if p.o_valid.value:
            emitted.append(cycle)
            results.append(p.o_payload.value.to_unsigned())
        cycle += 1
    assert results == expected
    assert [e - a for a, e in zip(accepted, emitted, strict=True)] == [LATENCY] * len(pairs)
    assert cycle == len(pairs) + LATENCY


@cocotb.test()
async def test_random_backpressure(dut) -> None:
    """``VECTORS`` random + adversarial pairs vs NumPy, random valid/ready, protocol checks."""
    p = await start(dut)
    pairs = fp32_add_vectors(VECTORS, SEED)
    operands = packed_operands(pairs)
    expected = ref_fp32_add(pairs[:, 0], pairs[:, 1]).tolist()
    if CORRUPT:
        expected[len(expected) // 2] ^= 1
    rng = random.Random(SEED)
    n = len(operands)
    sent = 0
    results: list[int] = []
    holding = False
    monitor = OutputMonitor("o")
    cycle = 0
    readonly = ReadOnly()
    i_valid, i_ready, i_payload = p.i_valid, p.i_ready, p.i_payload
    o_valid, o_ready, o_payload = p.o_valid, p.o_ready, p.o_payload
    while len(results) < n:
        await p.next_cycle()
        if not holding and sent < n and rng.random() < 0.8:
            i_payload.value = operands[sent]
            i_valid.value = 1
            holding = True
        elif not holding:
            i_valid.value = 0
        ready = rng.random() < 0.75
        o_ready.value = ready
        await readonly
        if holding and i_ready.value:
            sent += 1
            holding = False
        value = o_payload.value.to_unsigned() if o_valid.value else None
        if monitor.transferred(cycle, value, ready):
            results.append(value)
        cycle += 1
        assert cycle < 4 * n + 100, f"stuck after {cycle} cycles, {len(results)} results"
    got = np.array(results, dtype=np.uint32)
    want = np.array(expected, dtype=np.uint32)
    bad = np.flatnonzero(got != want)
    detail = [
        f"{pairs[k, 0]:08x} + {pairs[k, 1]:08x}: got {got[k]:08x} want {want[k]:08x}"
        for k in bad[:10]
    ]
    assert not len(bad), f"{len(bad)} of {n} sums differ from numpy:\n" + "\n".join(detail)
    dut._log.info("%d sums match numpy over %d cycles (latency %d)", n, cycle, LATENCY)
