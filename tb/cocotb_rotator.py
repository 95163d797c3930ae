# amaranth: UnusedElaboratable=no
"""cocotb tests of the block rotator's generated Verilog (:class:`RotatorTestTop`: one
:class:`rtl.rotator.BlockRotator` per operand role at B = 32, side by side in one simulator
binary).

Run through :func:`tb.runner.run_cocotb` (see ``tests/test_rtl_rotator.py``). Settings arrive in
the environment (read when a test runs, so the pytest side can import this module for
:class:`RotatorTestTop`):

``ROT_RANDOM``   random blocks per role for the back-pressure test (default 300; the
                 adversarial blocks of :func:`tb.rotator_ref.rotator_vectors` come on top)
``ROT_SEED``     seed of vectors and valid/ready patterns (default 1)
``ROT_SUMMARY``  if set, a JSON file receiving the number of vectors each test checked
``ROT_CORRUPT``  if ``1``, corrupt one expected lane (a self-test: the run must fail)

Every expected value comes from the golden model via :mod:`tb.rotator_ref`. Protocol
(:func:`tb.drivers.run_stream`): inputs are driven after the falling clock edge, outputs
sampled after ``ReadOnly``; the output stream is checked for the stream rules.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring

from semdialect.golden.rotation import ROLES, Rotation
from semdialect.rtl.layouts import fp16_block
from semdialect.rtl.rotator import ROTATOR_STAGES, BlockRotator
from semdialect.tb.drivers import reset, run_stream, stream
from semdialect.tb.mx_quantizer_ref import MXVectors
from semdialect.tb.packing import LayoutCodec
from semdialect.tb.ports import port
from semdialect.tb.rotator_ref import RotatedExpected, ref_rotated, rotator_vectors

__all__ = ["TOP_BLOCK", "TOP_ROTATION", "RotatorTestTop", "prefix"]

#: B of the test top's rotators, and their rotation (a seed whose signs are mixed)
TOP_BLOCK = 32
TOP_ROTATION = Rotation(TOP_BLOCK, seed=2026)


def prefix(role: str) -> str:
    """Port prefix of ``role``'s rotator in the test top: ``<role>_``."""
    return f"{role}_"


class RotatorTestTop(wiring.Component):
    """One :class:`BlockRotator` (B = 32, default stages) per role, each with its own
    ``<role>_i``/``<role>_o`` ports (nothing connects them)."""

    def __init__(self) -> None:
        self.rotators = {role: BlockRotator(TOP_BLOCK, TOP_ROTATION, role) for role in ROLES}
        members = {}
        for role, part in self.rotators.items():
            for name, member in part.signature.members.items():
                members[prefix(role) + name] = member
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        for role, part in self.rotators.items():
            m.submodules[f"rotator_{role}"] = part
            for name in part.signature.members:
                wiring.connect(m, getattr(part, name),
                               wiring.flipped(getattr(self, prefix(role) + name)))
        return m


# -- settings, summary -------------------------------------------------------------------------

_summary: dict[str, Any] = {"latency": ROTATOR_STAGES, "tests": {}}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def record(test: str, **info: Any) -> None:
    """Add one test's counts to the summary file (rewritten after every test)."""
    _summary["tests"][test] = info
    target = os.environ.get("ROT_SUMMARY")
    if target:
        Path(target).write_text(json.dumps(_summary, indent=1, sort_keys=True))


async def start(dut: Any) -> Any:
    """Start the clock, idle every stream and pulse the synchronous reset."""
    for role in ROLES:
        port(dut, f"{prefix(role)}i.valid").value = 0
        port(dut, f"{prefix(role)}i.payload").value = 0
        port(dut, f"{prefix(role)}o.ready").value = 0
    return await reset(dut)


def compare(role: str, outputs: list[int], want: RotatedExpected, labels: list[str]) -> str:
    """Mismatch report ('' if none) of one rotator's output blocks vs golden."""
    got = LayoutCodec(fp16_block(TOP_BLOCK)).unpack(outputs)["x"]
    bad = np.flatnonzero((got != want.bits).any(axis=1))
    problems = [f"{role} block {k} ({labels[k]}): got {[hex(v) for v in got[k]]} "
                f"want {[hex(v) for v in want.bits[k]]}" for k in bad[:3]]
    if len(bad):
        problems.append(f"{role}: {len(bad)} of {len(got)} blocks differ")
    return "\n".join(problems)


def payloads(vs: MXVectors) -> list[int]:
    return LayoutCodec(fp16_block(vs.bits.shape[1])).pack(len(vs), x=vs.bits)


# -- tests --------------------------------------------------------------------------------------


@cocotb.test()
async def test_random_backpressure(dut: Any) -> None:
    """Both roles on random + adversarial blocks (ties, subnormal results, ±65504, −0, zeros,
    overflow, NaN/±Inf) with random valid/ready; every output lane vs golden."""
    clk = await start(dut)
    seed = _env_int("ROT_SEED", 1)
    info = {}
    for k, role in enumerate(ROLES):
        vs = rotator_vectors(TOP_ROTATION, role, _env_int("ROT_RANDOM", 300), seed + k)
        want = ref_rotated(vs.bits, TOP_ROTATION, role)
        if os.environ.get("ROT_CORRUPT") == "1":
            want.bits[len(vs) // 2, 0] ^= 1
        t = await run_stream(clk, stream(dut, prefix(role)), payloads(vs), p_valid=0.8,
                             p_ready=0.6, seed=seed + 10 + k)
        report = compare(role, t.outputs, want, vs.labels)
        assert not report, report
        info[role] = {
            "blocks": len(vs), "ties": int(want.ties.sum()),
            "subnormal": int(want.subnormal.sum()), "overflow": int(want.overflow.sum()),
            "nan_inf": int(want.nan_inf.sum()), "negative_zero": int(want.negative_zero.sum()),
            "classes": vs.counts(), "cycles": t.cycles,
        }
        dut._log.info("%s: %d blocks match golden over %d cycles", role, len(vs), t.cycles)
    record("test_random_backpressure", **info)


@cocotb.test()
async def test_latency_throughput(dut: Any) -> None:
    """Valid and ready held high: each rotator takes a block every cycle and emits each
    :data:`ROTATOR_STAGES` cycles after taking it, bit-exact."""
    clk = await start(dut)
    info = {}
    for k, role in enumerate(ROLES):
        vs = rotator_vectors(TOP_ROTATION, role, 30, _env_int("ROT_SEED", 1) + 5 + k)
        t = await run_stream(clk, stream(dut, prefix(role)), payloads(vs), p_valid=1.0,
                             p_ready=1.0, seed=0)
        gaps = set(np.diff(t.accepted).tolist())
        lat = {e - a for a, e in zip(t.accepted, t.emitted, strict=True)}
        assert gaps == {1}, f"{role}: input gaps {gaps}"
        assert lat == {ROTATOR_STAGES}, f"{role}: latencies {lat}"
        report = compare(role, t.outputs, ref_rotated(vs.bits, TOP_ROTATION, role), vs.labels)
        assert not report, report
        info[role] = {"blocks": len(vs), "latency": sorted(lat), "gaps": sorted(gaps),
                      "cycles": t.cycles}
    record("test_latency_throughput", **info)
