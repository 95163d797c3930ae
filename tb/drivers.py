"""cocotb stream drivers shared by the testbenches and the file-driven runs.

* :class:`GemmHarness` drives a :class:`~rtl.gemm_core.GemmCore` top (``cmd``, ``x``, ``w`` in,
  ``y`` out; stream orders in ``docs/ARCHITECTURE.md``, "GemmCore stream interface").
* :func:`run_stream` pushes payloads through one ``i``/``o`` stream pair (the
  :class:`~rtl.block_quantizer.BlockQuantizer` and the frontend's parts).

Protocol of both: inputs are driven after the falling clock edge; after ``ReadOnly`` the
outputs are sampled — the values the next rising edge acts on. Cycle numbers count falling
edges. Every output is checked with :class:`tb.streams.OutputMonitor` (once ``valid``, the
payload holds until ``ready``). Payloads are plain ints packed at the layout's offsets.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cocotb
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from semdialect.tb.ports import port
from semdialect.tb.streams import OutputMonitor

__all__ = [
    "GemmHarness",
    "GemmOutcome",
    "Report",
    "Stream",
    "Transfer",
    "progress_file",
    "reset",
    "run_stream",
    "stream",
]

#: clock period of every testbench, ns
CLOCK_NS = 10

#: ``report(cycle, items done)``, called every ``report_every`` cycles of a long run
Report = Callable[[int, int], None]


def progress_file(path: os.PathLike[str] | str, total: int) -> Report:
    """A :data:`Report` writing ``{"cycle", "done", "total"}`` as JSON to ``path`` (replaced
    whole each time), for a caller outside the simulator to poll
    (:func:`tb.gemm_run.watch_progress`)."""
    target = Path(path)
    part = target.with_name(target.name + ".part")

    def report(cycle: int, done: int) -> None:
        part.write_text(json.dumps({"cycle": cycle, "done": done, "total": total}))
        os.replace(part, target)

    return report


async def reset(dut: Any, cycles: int = 2) -> Any:
    """Start the 10 ns clock on ``dut.clk`` and hold the synchronous ``rst`` high for
    ``cycles`` rising edges (drive every input to its idle value first); returns ``clk``."""
    clk = dut._get("clk")
    cocotb.start_soon(Clock(clk, CLOCK_NS, unit="ns").start())
    dut._get("rst").value = 1
    for _ in range(cycles):
        await RisingEdge(clk)
    dut._get("rst").value = 0
    return clk


# -- one stream pair (i → o) ---------------------------------------------------------------------


@dataclass
class Stream:
    """Handles of one stream port pair (``<prefix>i`` / ``<prefix>o``) of the top."""

    i_valid: Any
    i_ready: Any
    i_payload: Any
    o_valid: Any
    o_ready: Any
    o_payload: Any


def stream(dut: Any, prefix: str) -> Stream:
    """The ``<prefix>i``/``<prefix>o`` stream handles of ``dut``."""
    return Stream(
        port(dut, f"{prefix}i.valid"),
        port(dut, f"{prefix}i.ready"),
        port(dut, f"{prefix}i.payload"),
        port(dut, f"{prefix}o.valid"),
        port(dut, f"{prefix}o.ready"),
        port(dut, f"{prefix}o.payload"),
    )


@dataclass
class Transfer:
    outputs: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)  # cycle each input was taken
    emitted: list[int] = field(default_factory=list)  # cycle each output was taken
    cycles: int = 0


async def run_stream(
    clk: Any, s: Stream, payloads: list[int], *, p_valid: float, p_ready: float, seed: int,
    cycles_per_item: int = 20, report: Report | None = None, report_every: int = 8192,
) -> Transfer:
    """Push ``payloads`` through ``s`` with random valid/ready (``p_valid = p_ready = 1``: no
    stalls); check the output protocol. One output per input, in order. Fails when the run
    takes more than ``cycles_per_item`` · n + 200 cycles (set it above the design's
    initiation interval, divided by ``p_valid``·``p_ready``). ``report(cycle, outputs)`` is
    called every ``report_every`` cycles."""
    rng = random.Random(seed)
    t = Transfer()
    n = len(payloads)
    sent = 0
    holding = False
    monitor = OutputMonitor("o")
    stall = 0
    readonly = ReadOnly()
    falling = FallingEdge(clk)
    cycle = 0
    limit = cycles_per_item * n + 200
    while len(t.outputs) < n:
        await falling
        if not holding and sent < n and rng.random() < p_valid:
            s.i_payload.value = payloads[sent]
            s.i_valid.value = 1
            holding = True
        elif not holding:
            s.i_valid.value = 0
        if stall:  # a burst of back-pressure, longer than a selector evaluation
            stall -= 1
            ready = False
        else:
            ready = rng.random() < p_ready
            if p_ready < 1 and rng.random() < 0.03:
                stall = rng.randint(1, 12)
        s.o_ready.value = ready
        await readonly
        if holding and s.i_ready.value:
            t.accepted.append(cycle)
            sent += 1
            holding = False
        value = s.o_payload.value.to_unsigned() if s.o_valid.value else None
        if monitor.transferred(cycle, value, ready):
            t.outputs.append(value)
            t.emitted.append(cycle)
        cycle += 1
        if report is not None and cycle % report_every == 0:
            report(cycle, len(t.outputs))
        assert cycle < limit, f"stuck after {cycle} cycles, {len(t.outputs)}/{n} out"
    await falling
    s.i_valid.value = 0
    s.o_ready.value = 0
    t.cycles = cycle
    return t


# -- the GEMM core -------------------------------------------------------------------------------


@dataclass
class _Pending:
    """One input stream's beats and handshake state."""

    words: list[int]
    sent: int = 0
    holding: bool = False


@dataclass
class GemmOutcome:
    outputs: list[tuple[int, int, int]] = field(default_factory=list)  # (value, invalid, last)
    cmd_cycles: list[int] = field(default_factory=list)
    last_cycles: list[int] = field(default_factory=list)


class GemmHarness:
    """Drives ``cmd``/``x``/``w`` of a GemmCore top and collects ``y`` cycle by cycle.

    ``y_layout`` is the core's ``y`` payload layout (``GEMM_OUTPUT``: ``value``, ``invalid``,
    ``last``). The three input streams are driven independently and concurrently, as the core
    requires (see ``docs/ARCHITECTURE.md``, "GemmCore stream interface").
    """

    def __init__(self, dut: Any, y_layout: data.StructLayout) -> None:
        self.dut = dut
        self.clk = dut.clk
        names = ("cmd", "x", "w")
        self.valid = {s: port(dut, f"{s}.valid") for s in names}
        self.ready = {s: port(dut, f"{s}.ready") for s in names}
        self.payload = {s: port(dut, f"{s}.payload") for s in names}
        self.y_valid = port(dut, "y.valid")
        self.y_ready = port(dut, "y.ready")
        self.y_payload = port(dut, "y.payload")
        self.y_offsets = {name: y_layout[name].offset for name in ("value", "invalid", "last")}

    async def reset(self) -> None:
        """Idle every stream, start the clock and pulse the reset."""
        for s in ("cmd", "x", "w"):
            self.valid[s].value = 0
            self.payload[s].value = 0
        self.y_ready.value = 0
        await reset(self.dut)

    async def run(
        self, cmds: list[int], x: list[int], w: list[int], n_out: int, rng: random.Random | None,
        p_valid: float = 0.7, p_ready: float = 0.7, limit: int = 1_000_000,
        report: Report | None = None, report_every: int = 8192,
    ) -> GemmOutcome:
        """Send every command and beat, collect ``n_out`` outputs. ``rng`` None = no stalls;
        otherwise each stream is valid with probability ``p_valid`` per cycle (once valid it
        holds its beat until taken) and ``y.ready`` is high with probability ``p_ready``.
        Fails after ``limit`` cycles. ``report(cycle, outputs)`` is called every
        ``report_every`` cycles."""
        streams = {"cmd": _Pending(cmds), "x": _Pending(x), "w": _Pending(w)}
        out = GemmOutcome()
        monitor = OutputMonitor("y")
        cycle = 0
        readonly = ReadOnly()
        falling = FallingEdge(self.clk)
        off = self.y_offsets
        while len(out.outputs) < n_out:
            await falling
            for name, st in streams.items():
                if not st.holding and st.sent < len(st.words) and (
                    rng is None or rng.random() < p_valid
                ):
                    self.payload[name].value = st.words[st.sent]
                    self.valid[name].value = 1
                    st.holding = True
                elif not st.holding:
                    self.valid[name].value = 0
            ready = rng is None or rng.random() < p_ready
            self.y_ready.value = int(ready)
            await readonly
            for name, st in streams.items():
                if st.holding and self.ready[name].value:
                    st.sent += 1
                    st.holding = False
                    if name == "cmd":
                        out.cmd_cycles.append(cycle)
            raw = self.y_payload.value.to_unsigned() if self.y_valid.value else None
            if monitor.transferred(cycle, raw, ready):
                value = (raw >> off["value"]) & 0xFFFF_FFFF
                invalid = (raw >> off["invalid"]) & 1
                last = (raw >> off["last"]) & 1
                out.outputs.append((value, invalid, last))
                if last:
                    out.last_cycles.append(cycle)
            cycle += 1
            if report is not None and cycle % report_every == 0:
                report(cycle, len(out.outputs))
            assert cycle < limit, f"stuck after {cycle} cycles with {len(out.outputs)} outputs"
        for name, st in streams.items():
            assert st.sent == len(st.words), f"{name}: {st.sent} of {len(st.words)} beats taken"
        return out
