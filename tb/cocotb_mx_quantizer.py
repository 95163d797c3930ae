# amaranth: UnusedElaboratable=no
"""cocotb tests of the MX activation quantizers' generated Verilog
(:class:`MXQuantizerTestTop`: one :class:`rtl.mx_quantizer.MXQuantizer` per MX kind, side by
side in one simulator binary).

Run through :func:`tb.runner.run_cocotb` (see ``tests/test_rtl_mx_quantizer.py``). Settings
arrive in the environment (read when a test runs, so the pytest side can import this module
for :class:`MXQuantizerTestTop`):

``MXQ_RANDOM``   random blocks per kind for the back-pressure test (default 400; the
                 adversarial blocks of :func:`tb.mx_quantizer_ref.mx_vectors` come on top)
``MXQ_SEED``     seed of vectors and valid/ready patterns (default 1)
``MXQ_SUMMARY``  if set, a JSON file receiving the number of vectors each test checked
``MXQ_CORRUPT``  if ``1``, corrupt one expected code (a self-test: the run must fail)

Every expected value comes from the golden model via :mod:`tb.mx_quantizer_ref`. Protocol
(:func:`tb.drivers.run_stream`): inputs are driven after the falling clock edge, outputs
sampled after ``ReadOnly``; every output stream is checked for the stream rules.
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

from semdialect.designs import PEKind
from semdialect.rtl.layouts import fp16_block
from semdialect.rtl.mx_quantizer import MX_QUANTIZER_LATENCY, MXQuantizer, mx_quantized_block
from semdialect.tb.drivers import reset, run_stream, stream
from semdialect.tb.mx_quantizer_ref import (
    MXExpected,
    MXVectors,
    element_sweep_vectors,
    mx_vectors,
    ref_mx,
)
from semdialect.tb.packing import LayoutCodec
from semdialect.tb.ports import port

__all__ = ["MX_KINDS", "MXQuantizerTestTop", "prefix"]

#: the OCP MX PE kinds of the registry (fixed format, power-of-two E8M0 scale; NVFP4 has its
#: own quantizer, tb/cocotb_nvfp4.py), each with one quantizer in the top
MX_KINDS = tuple(pe for pe in PEKind if not pe.has_dialects and pe.pow2_scaled)


def prefix(pe: PEKind) -> str:
    """Port prefix of ``pe``'s quantizer in the test top: ``<kind>_`` (``mxfp4_i__valid``)."""
    return f"{pe.value}_"


class MXQuantizerTestTop(wiring.Component):
    """One :class:`MXQuantizer` per MX kind, each with its own ``<kind>_i``/``<kind>_o``
    ports (nothing connects them): one Verilator build covers both kinds."""

    def __init__(self) -> None:
        self.quantizers = {pe: MXQuantizer(pe) for pe in MX_KINDS}
        members = {}
        for pe, part in self.quantizers.items():
            for name, member in part.signature.members.items():
                members[prefix(pe) + name] = member
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        for pe, part in self.quantizers.items():
            m.submodules[f"mx_quantizer_{pe.value}"] = part
            for name in part.signature.members:
                wiring.connect(m, getattr(part, name),
                               wiring.flipped(getattr(self, prefix(pe) + name)))
        return m


# -- settings, summary -------------------------------------------------------------------------

_summary: dict[str, Any] = {"latency": MX_QUANTIZER_LATENCY, "tests": {}}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def record(test: str, **info: Any) -> None:
    """Add one test's counts to the summary file (rewritten after every test)."""
    _summary["tests"][test] = info
    target = os.environ.get("MXQ_SUMMARY")
    if target:
        Path(target).write_text(json.dumps(_summary, indent=1, sort_keys=True))


async def start(dut: Any) -> Any:
    """Start the clock, idle every stream and pulse the synchronous reset."""
    for pe in MX_KINDS:
        port(dut, f"{prefix(pe)}i.valid").value = 0
        port(dut, f"{prefix(pe)}i.payload").value = 0
        port(dut, f"{prefix(pe)}o.ready").value = 0
    return await reset(dut)


def compare(pe: PEKind, outputs: list[int], want: MXExpected, labels: list[str]) -> str:
    """Mismatch report ('' if none) of one kind's outputs vs golden, field by field."""
    got = LayoutCodec(mx_quantized_block(MXQuantizer(pe).kind)).unpack(outputs)
    problems = []
    for name, g, w in (("codes", got["codes"], want.codes), ("scale", got["scale"], want.scale),
                       ("invalid", got["invalid"], want.invalid.astype(np.int64))):
        bad = np.flatnonzero((g != w).reshape(len(g), -1).any(axis=1))
        for k in bad[:5]:
            problems.append(f"{pe.value} block {k} ({labels[k]}): {name} got {g[k].tolist()} "
                            f"want {w[k].tolist()}")
        if len(bad):
            problems.append(f"{pe.value} {name}: {len(bad)} of {len(g)} blocks differ")
    return "\n".join(problems)


def payloads(vs: MXVectors) -> list[int]:
    return LayoutCodec(fp16_block(vs.bits.shape[1])).pack(len(vs), x=vs.bits)


# -- tests --------------------------------------------------------------------------------------


@cocotb.test()
async def test_random_backpressure(dut: Any) -> None:
    """Every MX kind on random + adversarial blocks (ties, saturation, subnormals, 65504,
    −0, zeros, power-of-two maxima, single non-zero lanes, NaN/Inf) with random valid/ready;
    codes, scale and invalid vs golden ``quantize``."""
    clk = await start(dut)
    seed = _env_int("MXQ_SEED", 1)
    vs = mx_vectors(_env_int("MXQ_RANDOM", 400), seed)
    info = {}
    for k, pe in enumerate(MX_KINDS):
        want = ref_mx(vs.bits, pe)
        if os.environ.get("MXQ_CORRUPT") == "1":
            row = len(vs) // 2
            want.codes[row, 0] ^= 1
        t = await run_stream(clk, stream(dut, prefix(pe)), payloads(vs), p_valid=0.8,
                             p_ready=0.6, seed=seed + k)
        report = compare(pe, t.outputs, want, vs.labels)
        assert not report, report
        info[pe.value] = {
            "blocks": len(vs), "invalid_blocks": int(want.invalid.sum()),
            "ties": int(want.ties.sum()), "saturated": int(want.saturated.sum()),
            "cycles": t.cycles,
        }
        dut._log.info("%s: %d blocks match golden over %d cycles", pe.value, len(vs), t.cycles)
    record("test_random_backpressure", classes=vs.counts(), **info)


@cocotb.test()
async def test_element_sweep(dut: Any) -> None:
    """Every element code path (:func:`tb.mx_quantizer_ref.element_sweep_vectors`: every
    FP16 value at every exponent distance 0..16 under a normal maximum, every subnormal
    under every subnormal leading position), light random back-pressure, vs golden."""
    clk = await start(dut)
    seed = _env_int("MXQ_SEED", 1)
    vs, covered = element_sweep_vectors(seed + 3)
    info = {}
    for k, pe in enumerate(MX_KINDS):
        want = ref_mx(vs.bits, pe)
        t = await run_stream(clk, stream(dut, prefix(pe)), payloads(vs), p_valid=0.95,
                             p_ready=0.9, seed=seed + 10 + k)
        report = compare(pe, t.outputs, want, vs.labels)
        assert not report, report
        info[pe.value] = {"blocks": len(vs), "ties": int(want.ties.sum()),
                          "saturated": int(want.saturated.sum()), "cycles": t.cycles}
    record("test_element_sweep", element_pairs=covered, classes=vs.counts(), **info)


@cocotb.test()
async def test_latency_throughput(dut: Any) -> None:
    """Valid and ready held high: every quantizer takes a block every cycle and emits each
    :data:`MX_QUANTIZER_LATENCY` cycles after taking it, bit-exact."""
    clk = await start(dut)
    vs = mx_vectors(40, _env_int("MXQ_SEED", 1) + 5)
    info = {}
    for pe in MX_KINDS:
        t = await run_stream(clk, stream(dut, prefix(pe)), payloads(vs), p_valid=1.0,
                             p_ready=1.0, seed=0)
        gaps = set(np.diff(t.accepted).tolist())
        lat = {e - a for a, e in zip(t.accepted, t.emitted, strict=True)}
        assert gaps == {1}, f"{pe.value}: input gaps {gaps}"
        assert lat == {MX_QUANTIZER_LATENCY}, f"{pe.value}: latencies {lat}"
        report = compare(pe, t.outputs, ref_mx(vs.bits, pe), vs.labels)
        assert not report, report
        info[pe.value] = {"blocks": len(vs), "latency": sorted(lat), "gaps": sorted(gaps),
                          "cycles": t.cycles}
    record("test_latency_throughput", **info)
