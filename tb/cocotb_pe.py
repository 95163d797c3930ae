"""cocotb tests of :class:`rtl.pe.BlockPE` (every PE kind of the registry) on Verilator vs golden
on 1×K · K×1 problems (top: :class:`tb.pe_top.PETestTop`): ``golden.gemm`` for the
power-of-two kinds (dialect, MXFP4, MXINT8), ``golden.nvfp4_hw_accumulate`` — the SPEC §8
NVFP4 hardware contract's accumulator before the tensor scales — for NVFP4
(:func:`tb.nvfp4_ref.nvfp4_pe_vectors`: adversarial and random block pairs).

Settings (environment): ``PE_CONFIG`` (configuration TOML of the dialect PE, required),
``PE_VECTORS`` (problems per kind, default 400), ``PE_SEED`` (default 1), ``PE_SUMMARY`` (JSON
file receiving the number of problems and block pairs checked per kind), ``PE_CORRUPT``
(``1``: corrupt one expected value of every kind; the run must fail).

The PEs (one per kind) run concurrently with own random valid/ready patterns; every output is
compared bit for bit (FP32 pattern and ``invalid``) with golden, and ``o`` must hold still
while stalled. A second test checks the configuration's PE latency (``[pipeline]``: product +
scale + accumulator stages) and one pair per cycle with no stalls.

With a C-slow accumulator (d = ``acc_stages`` > 1) problem p runs in ring position p mod d:
the driver counts the PE's enabled cycles (``i.ready`` high) to know whose turn it is, offers
that position's next pair (or a bubble), and reads d results per ``o`` beat, in the order the
problems' last pairs went in.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from semdialect.config import load_config
from semdialect.designs import PEKind
from semdialect.tb.gemm_ref import pack, pe_vectors
from semdialect.tb.nvfp4_ref import nvfp4_pe_vectors
from semdialect.tb.pe_top import PE_PREFIXES, PETestTop
from semdialect.tb.ports import port
from semdialect.tb.streams import OutputMonitor

CONFIG = load_config(os.environ["PE_CONFIG"])
TOP = PETestTop(CONFIG)
VECTORS = int(os.environ.get("PE_VECTORS", "400"))
SEED = int(os.environ.get("PE_SEED", "1"))
SUMMARY = os.environ.get("PE_SUMMARY")
CORRUPT = os.environ.get("PE_CORRUPT") == "1"


D = TOP.pes[next(iter(PE_PREFIXES))].acc_stages  # the same pipeline for every kind
LATENCY = TOP.pes[next(iter(PE_PREFIXES))].latency


def problems(prefix: str) -> list:
    kind = PEKind(PE_PREFIXES[prefix])
    count = -(-VECTORS // D) * D
    if not kind.pow2_scaled:  # NVFP4: golden.nvfp4_hw_accumulate (SPEC §8 hardware contract)
        probs = nvfp4_pe_vectors(count, SEED)
    else:
        probs = pe_vectors(CONFIG if kind.has_dialects else kind, count, SEED)
    return probs[: len(probs) // D * D]  # whole groups of d outputs


def beats(prefix: str, probs: list) -> list[int]:
    """Packed ``i.payload`` words of every block pair, ``last`` on each problem's final one."""
    return [word for queue in slot_queues(prefix, probs) for word, _ in queue]


def slot_queues(prefix: str, probs: list) -> list[list[tuple[int, int | None]]]:
    """Per ring position s < d: (packed pair, problem index on its last pair else None) of
    problems s, s + d, …"""
    layout = TOP.pes[prefix].signature.members["i"].signature.members["payload"].shape
    queues: list[list[tuple[int, int | None]]] = [[] for _ in range(D)]
    for index, (_, a_blocks, w_blocks, _, _) in enumerate(probs):
        for kb, (a, w) in enumerate(zip(a_blocks, w_blocks, strict=True)):
            last = kb == len(a_blocks) - 1
            queues[index % D].append(
                (pack(layout, {"a": a, "w": w, "last": int(last)}), index if last else None))
    return queues


def results(raw: int, off_v: int, off_i: int) -> list[tuple[int, int]]:
    """The (value, invalid) pairs of one ``o`` payload (d of them, 33 bits apart)."""
    return [((raw >> (off_v + 33 * k)) & 0xFFFF_FFFF, (raw >> (off_i + 33 * k)) & 1)
            for k in range(D)]


async def start(dut) -> None:
    for prefix in PE_PREFIXES:
        port(dut, f"{prefix}i.valid").value = 0
        port(dut, f"{prefix}i.payload").value = 0
        port(dut, f"{prefix}o.ready").value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def test_pe_random_stalls(dut) -> None:
    await start(dut)
    rng = random.Random(SEED)
    state = {}
    for prefix in PE_PREFIXES:
        probs = problems(prefix)
        state[prefix] = {
            "probs": probs, "queues": slot_queues(prefix, probs), "position": 0,
            "offered": False, "order": [], "words": beats(prefix, probs),
            "got": [], "monitor": OutputMonitor(f"{prefix}o"), "off_v": 0, "off_i": 32,
            "i_valid": port(dut, f"{prefix}i.valid"), "i_ready": port(dut, f"{prefix}i.ready"),
            "i_payload": port(dut, f"{prefix}i.payload"),
            "o_valid": port(dut, f"{prefix}o.valid"), "o_ready": port(dut, f"{prefix}o.ready"),
            "o_payload": port(dut, f"{prefix}o.payload"),
        }
    cycle = 0
    readonly = ReadOnly()
    while any(len(s["got"]) < len(s["probs"]) for s in state.values()):
        await FallingEdge(dut.clk)
        ready = {}
        for s in state.values():
            queue = s["queues"][s["position"] % D]
            # a pair waits for its ring position's turn; with d = 1 an offered pair is held
            # until it transfers (the stream rule)
            keep = s["offered"] and D == 1
            s["offered"] = keep or (bool(queue) and rng.random() < 0.75)
            if s["offered"]:
                s["i_payload"].value = queue[0][0]
            s["i_valid"].value = int(s["offered"])
            ready[id(s)] = rng.random() < 0.7
            s["o_ready"].value = int(ready[id(s)])
        await readonly
        for s in state.values():
            if s["i_ready"].value:
                if s["offered"]:
                    _, done = s["queues"][s["position"] % D].pop(0)
                    if done is not None:
                        s["order"].append(done)
                    s["offered"] = False
                s["position"] += 1
            raw = s["o_payload"].value.to_unsigned() if s["o_valid"].value else None
            if s["monitor"].transferred(cycle, raw, ready[id(s)]):
                s["got"].extend(results(raw, s["off_v"], s["off_i"]))
        cycle += 1
        assert cycle < 20 * sum(len(s["words"]) for s in state.values()) + 100, "stuck"
    summary = {}
    for prefix, s in state.items():
        got = dict(zip(s["order"], s["got"], strict=True))  # completion order → problem order
        s["got"] = [got[k] for k in range(len(s["probs"]))]
        want = [(bits, inv) for _, _, _, bits, inv in s["probs"]]
        if CORRUPT:
            want[len(want) // 2] = (want[len(want) // 2][0] ^ 1, want[len(want) // 2][1])
        bad = [
            f"{name}: got {g[0]:08x}/{g[1]} want {w[0]:08x}/{w[1]}"
            for (name, *_), g, w in zip(s["probs"], s["got"], want, strict=True) if g != w
        ]
        assert not bad, f"{PE_PREFIXES[prefix]}: {len(bad)} of {len(want)} differ:\n" + "\n".join(
            bad[:10]
        )
        summary[PE_PREFIXES[prefix]] = {"problems": len(want), "block_pairs": len(s["words"])}
    dut._log.info("PE results match golden over %d cycles: %s", cycle, summary)
    if SUMMARY:
        with open(SUMMARY, "w") as fh:
            json.dump(summary, fh)


@cocotb.test()
async def test_pe_latency_throughput(dut) -> None:
    """No stalls: one pair per cycle (ring positions in turn), each ``o`` beat ``latency``
    cycles after the last pair of its d-th output."""
    await start(dut)
    for prefix in PE_PREFIXES:
        probs = problems(prefix)[: 40 // D * D]
        queues = slot_queues(prefix, probs)
        i_valid, i_payload = port(dut, f"{prefix}i.valid"), port(dut, f"{prefix}i.payload")
        i_ready = port(dut, f"{prefix}i.ready")
        o_valid, o_payload = port(dut, f"{prefix}o.valid"), port(dut, f"{prefix}o.payload")
        port(dut, f"{prefix}o.ready").value = 1
        lasts = []  # (cycle, problem) of each problem's last pair, in issue order
        outs = []
        cycle = 0
        while len(outs) < len(probs) // D:
            await FallingEdge(dut.clk)
            queue = queues[cycle % D]
            if queue:
                i_payload.value = queue[0][0]
                i_valid.value = 1
            else:
                i_valid.value = 0
            await ReadOnly()
            assert i_ready.value, "the PE must accept a pair every cycle"
            if queue:
                _, done = queue.pop(0)
                if done is not None:
                    lasts.append((cycle, done))
            if o_valid.value:
                outs.append((cycle, results(o_payload.value.to_unsigned(), 0, 32)))
            cycle += 1
            assert cycle < sum(len(p[1]) for p in probs) + 20 * D + LATENCY
        assert [c for c, _ in outs] == [lasts[(k + 1) * D - 1][0] + LATENCY
                                        for k in range(len(outs))]
        got = [v for _, group in outs for v, _ in group]
        assert got == [probs[p][3] for _, p in lasts]
        await FallingEdge(dut.clk)
        i_valid.value = 0
        port(dut, f"{prefix}o.ready").value = 0
