"""cocotb tests of :class:`rtl.pe.BlockPE` (every PE kind: dialect, MXFP4, MXINT8) on Verilator vs
``golden.gemm`` on 1×K · K×1 problems (top: :class:`tb.pe_top.PETestTop`).

Settings (environment): ``PE_CONFIG`` (configuration TOML of the dialect PE, required),
``PE_VECTORS`` (problems per kind, default 400), ``PE_SEED`` (default 1), ``PE_SUMMARY`` (JSON
file receiving the number of problems and block pairs checked per kind), ``PE_CORRUPT``
(``1``: corrupt one expected value of every kind; the run must fail).

The PEs (one per kind) run concurrently with own random valid/ready patterns; every output is
compared bit for bit (FP32 pattern and ``invalid``) with golden, and ``o`` must hold still
while stalled. A second test checks latency 3 and one pair per cycle with no stalls.
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
from semdialect.tb.pe_top import PE_PREFIXES, PETestTop
from semdialect.tb.ports import port
from semdialect.tb.streams import OutputMonitor

CONFIG = load_config(os.environ["PE_CONFIG"])
TOP = PETestTop(CONFIG)
VECTORS = int(os.environ.get("PE_VECTORS", "400"))
SEED = int(os.environ.get("PE_SEED", "1"))
SUMMARY = os.environ.get("PE_SUMMARY")
CORRUPT = os.environ.get("PE_CORRUPT") == "1"


def problems(prefix: str) -> list:
    kind = PEKind(PE_PREFIXES[prefix])
    return pe_vectors(CONFIG if kind.has_dialects else kind, VECTORS, SEED)


def beats(prefix: str, probs: list) -> list[int]:
    """Packed ``i.payload`` words of every block pair, ``last`` on each problem's final one."""
    layout = TOP.pes[prefix].signature.members["i"].signature.members["payload"].shape
    out = []
    for _, a_blocks, w_blocks, _, _ in probs:
        for kb, (a, w) in enumerate(zip(a_blocks, w_blocks, strict=True)):
            out.append(pack(layout, {"a": a, "w": w, "last": int(kb == len(a_blocks) - 1)}))
    return out


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
        layout = TOP.pes[prefix].signature.members["o"].signature.members["payload"].shape
        state[prefix] = {
            "probs": probs, "words": beats(prefix, probs), "sent": 0, "holding": False,
            "got": [], "monitor": OutputMonitor(f"{prefix}o"),
            "off_v": layout["value"].offset, "off_i": layout["invalid"].offset,
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
            if not s["holding"] and s["sent"] < len(s["words"]) and rng.random() < 0.75:
                s["i_payload"].value = s["words"][s["sent"]]
                s["i_valid"].value = 1
                s["holding"] = True
            elif not s["holding"]:
                s["i_valid"].value = 0
            ready[id(s)] = rng.random() < 0.7
            s["o_ready"].value = int(ready[id(s)])
        await readonly
        for s in state.values():
            if s["holding"] and s["i_ready"].value:
                s["sent"] += 1
                s["holding"] = False
            raw = s["o_payload"].value.to_unsigned() if s["o_valid"].value else None
            if s["monitor"].transferred(cycle, raw, ready[id(s)]):
                s["got"].append(((raw >> s["off_v"]) & 0xFFFF_FFFF, (raw >> s["off_i"]) & 1))
        cycle += 1
        assert cycle < 20 * sum(len(s["words"]) for s in state.values()) + 100, "stuck"
    summary = {}
    for prefix, s in state.items():
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
    """No stalls: one pair per cycle, each sum 3 cycles after its last pair."""
    await start(dut)
    for prefix in PE_PREFIXES:
        probs = problems(prefix)[:40]
        words = beats(prefix, probs)
        i_valid, i_payload = port(dut, f"{prefix}i.valid"), port(dut, f"{prefix}i.payload")
        i_ready = port(dut, f"{prefix}i.ready")
        o_valid, o_payload = port(dut, f"{prefix}o.valid"), port(dut, f"{prefix}o.payload")
        port(dut, f"{prefix}o.ready").value = 1
        lasts = []  # cycle of each problem's last pair
        outs = []
        cycle = 0
        sent = 0
        index = 0
        count = 0
        while len(outs) < len(probs):
            await FallingEdge(dut.clk)
            if sent < len(words):
                i_payload.value = words[sent]
                i_valid.value = 1
            else:
                i_valid.value = 0
            await ReadOnly()
            if sent < len(words):
                assert i_ready.value, "the PE must accept a pair every cycle"
                count += 1
                if count == len(probs[index][1]):
                    lasts.append(cycle)
                    index += 1
                    count = 0
                sent += 1
            if o_valid.value:
                outs.append((cycle, o_payload.value.to_unsigned() & 0xFFFF_FFFF))
            cycle += 1
            assert cycle < len(words) + 20
        assert [c for c, _ in outs] == [c + 3 for c in lasts]
        assert [v for _, v in outs] == [p[3] for p in probs]
        await FallingEdge(dut.clk)
        i_valid.value = 0
        port(dut, f"{prefix}o.ready").value = 0
