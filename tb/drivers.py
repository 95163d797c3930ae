"""cocotb stream drivers shared by the testbenches and the file-driven runs.

* :class:`GemmHarness` drives a :class:`~rtl.gemm_core.GemmCore` top (``cmd``, ``x``, ``w``,
  ``yin`` in; ``y``, ``q``, ``r`` out; stream orders in ``rtl/gemm_core.py`` and
  :mod:`tb.gemm_ref`).
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
from amaranth.lib import wiring
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from semdialect.tb.ports import port
from semdialect.tb.streams import OutputMonitor

__all__ = [
    "GEMM_INPUTS",
    "GEMM_OUTPUTS",
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

#: the GemmCore's input and output streams, in the order the harness serves them
GEMM_INPUTS = ("cmd", "x", "w", "yin")
GEMM_OUTPUTS = ("y", "q", "r")


@dataclass
class _Pending:
    """One input stream's beats and handshake state."""

    words: list[int]
    sent: int = 0
    holding: bool = False


@dataclass
class GemmOutcome:
    """What one :meth:`GemmHarness.run` saw. Cycle numbers count falling edges from the start
    of the run."""

    #: raw payloads (packed ints) of every ``y``, ``q`` and ``r`` beat, in transfer order
    beats: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in GEMM_OUTPUTS})
    #: the cycle each of those beats transferred
    beat_cycles: dict[str, list[int]] = field(
        default_factory=lambda: {s: [] for s in GEMM_OUTPUTS})
    #: the cycle each command transferred
    cmd_cycles: list[int] = field(default_factory=list)
    #: the cycle of every beat with ``last`` set on ``y`` or ``q`` (a command's final output),
    #: in order: entry i ends command i
    end_cycles: list[int] = field(default_factory=list)
    cycles: int = 0  #: cycles the run took

    def command_cycles(self) -> list[int]:
        """Cycles of each command: its transfer through its final output's transfer, both
        included."""
        return [end - start + 1 for start, end in zip(self.cmd_cycles, self.end_cycles,
                                                      strict=True)]


class GemmHarness:
    """Drives ``cmd``/``x``/``w``/``yin`` of a GemmCore top and collects ``y``/``q``/``r``
    cycle by cycle.

    ``signature`` is the core's (``GemmCore.signature``): the offsets of ``last`` in the ``y``
    and ``q`` payloads come from it. The streams are driven independently and concurrently,
    as the core requires: each input offers its next beat as soon as the previous one
    transferred (or, with stalls, at random), each output is ready every cycle (or at
    random). Every output is checked with :class:`tb.streams.OutputMonitor`.
    """

    def __init__(self, dut: Any, signature: wiring.Signature) -> None:
        self.dut = dut
        self.clk = dut.clk
        streams = GEMM_INPUTS + GEMM_OUTPUTS
        self.valid = {s: port(dut, f"{s}.valid") for s in streams}
        self.ready = {s: port(dut, f"{s}.ready") for s in streams}
        self.payload = {s: port(dut, f"{s}.payload") for s in streams}
        self.last_bit = {s: signature.members[s].signature.members["payload"].shape["last"].offset
                         for s in ("y", "q")}

    async def reset(self) -> None:
        """Idle every stream, start the clock and pulse the reset."""
        for s in GEMM_INPUTS:
            self.valid[s].value = 0
            self.payload[s].value = 0
        for s in GEMM_OUTPUTS:
            self.ready[s].value = 0
        await reset(self.dut)

    async def run(
        self, inputs: dict[str, list[int]], counts: dict[str, int], rng: random.Random | None,
        p_valid: float = 0.7, p_ready: float = 0.7, limit: int = 1_000_000,
        report: Report | None = None, report_every: int = 8192, settle: int = 8,
    ) -> GemmOutcome:
        """Send every beat of ``inputs`` (``cmd``, ``x``, ``w``, ``yin``: lists of packed
        payloads, missing = none) and collect ``counts[s]`` beats of each output ``s`` (``y``,
        ``q``, ``r``; missing = 0). ``rng`` None = no stalls (every input valid while it has
        beats, every output ready); otherwise each input is valid with probability
        ``p_valid`` per cycle (once valid it holds its beat until taken) and each output is
        ready with probability ``p_ready``, with occasional bursts of back-pressure. Then
        ``settle`` more cycles with every output ready must show no further output beat.
        Fails after ``limit`` cycles or when an input beat is left over. ``report(cycle,
        y beats)`` is called every ``report_every`` cycles."""
        pending = {s: _Pending(list(inputs.get(s, []))) for s in GEMM_INPUTS}
        want = {s: counts.get(s, 0) for s in GEMM_OUTPUTS}
        out = GemmOutcome()
        monitors = {s: OutputMonitor(s) for s in GEMM_OUTPUTS}
        stall = dict.fromkeys(GEMM_OUTPUTS, 0)
        cycle = 0
        readonly = ReadOnly()
        falling = FallingEdge(self.clk)

        def done() -> bool:
            return all(len(out.beats[s]) >= want[s] for s in GEMM_OUTPUTS)

        while not done():
            await falling
            for name, st in pending.items():
                if not st.holding and st.sent < len(st.words) and (
                    rng is None or rng.random() < p_valid
                ):
                    self.payload[name].value = st.words[st.sent]
                    self.valid[name].value = 1
                    st.holding = True
                elif not st.holding:
                    self.valid[name].value = 0
            ready = {}
            for name in GEMM_OUTPUTS:
                if rng is None:
                    ready[name] = True
                elif stall[name]:  # a burst of back-pressure, longer than a selector pass
                    stall[name] -= 1
                    ready[name] = False
                else:
                    ready[name] = rng.random() < p_ready
                    if rng.random() < 0.02:
                        stall[name] = rng.randint(1, 12)
                self.ready[name].value = int(ready[name])
            await readonly
            for name, st in pending.items():
                if st.holding and self.ready[name].value:
                    st.sent += 1
                    st.holding = False
                    if name == "cmd":
                        out.cmd_cycles.append(cycle)
            for name in GEMM_OUTPUTS:
                raw = self.payload[name].value.to_unsigned() if self.valid[name].value else None
                if monitors[name].transferred(cycle, raw, ready[name]):
                    assert len(out.beats[name]) < want[name], (
                        f"{name}: more than the expected {want[name]} beats @{cycle}")
                    out.beats[name].append(raw)
                    out.beat_cycles[name].append(cycle)
                    if name in self.last_bit and (raw >> self.last_bit[name]) & 1:
                        out.end_cycles.append(cycle)
            cycle += 1
            if report is not None and cycle % report_every == 0:
                report(cycle, len(out.beats["y"]))
            assert cycle < limit, (
                f"stuck after {cycle} cycles with "
                f"{ {s: f'{len(out.beats[s])}/{want[s]}' for s in GEMM_OUTPUTS} } out, "
                f"{ {s: f'{st.sent}/{len(st.words)}' for s, st in pending.items()} } in")
        out.cycles = cycle
        for name, st in pending.items():
            assert st.sent == len(st.words) and not st.holding, (
                f"{name}: {st.sent} of {len(st.words)} beats taken")
        for _ in range(settle):  # nothing more may come out
            await falling
            for name in GEMM_INPUTS:
                self.valid[name].value = 0
            for name in GEMM_OUTPUTS:
                self.ready[name].value = 1
            await readonly
            for name in GEMM_OUTPUTS:
                assert not self.valid[name].value, (
                    f"{name}: a beat beyond the expected {want[name]} @{cycle}")
            cycle += 1
        return out
