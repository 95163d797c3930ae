# amaranth: UnusedElaboratable=no
"""The register stages of :class:`rtl.nvfp4_quantizer.NVFP4Quantizer` (``stages``, default
:data:`~rtl.nvfp4_quantizer.NVFP4_STAGES`): every stage count bit-exact with golden, at 4
and 7 stages under random back-pressure, with the tensor scale changing between tensors
right before a tensor's first block (the tensor unit's free-running registers must be ready
by the time a block uses them), one block per cycle at latency ``stages``, parameter
validation, Verilator lint.

The full Verilator run (cocotb, ``tb/cocotb_nvfp4.py``) is in ``tests/test_rtl_nvfp4.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from amaranth.sim import Simulator

from semdialect.paths import build_dir
from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.nvfp4_quantizer import (
    NVFP4_CUTS,
    NVFP4_MAX_STAGES,
    NVFP4_STAGES,
    NVFP4Quantizer,
)
from semdialect.tb.generate import LINT_WAIVERS
from semdialect.tb.nvfp4_ref import (
    adversarial_blocks,
    f32_bits,
    fp16_bits,
    inject_nonfinite,
    nonfinite_mask,
    random_tensor_blocks,
    ref_quantize_hw,
    tensor_scales,
)
from semdialect.tb.streams import OutputMonitor
from semdialect.tb.verilator import lint

STAGES = tuple(range(1, NVFP4_MAX_STAGES + 1))
Tensor = tuple[np.ndarray, tuple[Any, Any]]


def run(dut: NVFP4Quantizer, tensors: list[Tensor], seed: int, p_valid: float,
        p_ready: float) -> tuple[list, list[int], list[int]]:
    """Each tensor's blocks through ``dut``, ``ts``/``inv_ts`` set when the previous tensor
    has left (in the cycle the next tensor's first block may be offered), random valid and
    ready: (outputs (codes, scale, invalid), accept cycles, emit cycles)."""
    rng = np.random.default_rng(seed)
    got: list[tuple[list[int], int, int]] = []
    accepted: list[int] = []
    emitted: list[int] = []

    async def bench(ctx: Any) -> None:
        mon = OutputMonitor("o")
        cycle = done = 0
        for blocks, (ts, inv) in tensors:
            ctx.set(dut.ts, f32_bits(ts))
            ctx.set(dut.inv_ts, f32_bits(inv))
            words = fp16_bits(blocks)
            sent, holding = 0, False
            done += len(blocks)
            while len(got) < done:
                if not holding and sent < len(words) and rng.random() < p_valid:
                    ctx.set(dut.i.payload, {"x": words[sent]})
                    holding = True
                ctx.set(dut.i.valid, holding)
                ready = bool(rng.random() < p_ready)
                ctx.set(dut.o.ready, ready)
                if holding and ctx.get(dut.i.ready):
                    accepted.append(cycle)
                    sent, holding = sent + 1, False
                payload = ctx.get(dut.o.payload) if ctx.get(dut.o.valid) else None
                if mon.transferred(cycle, payload, ready):
                    got.append(([int(c) for c in payload.codes], int(payload.scale),
                                int(payload.invalid)))
                    emitted.append(cycle)
                await ctx.tick()
                cycle += 1
                assert cycle < 20 * done + 100, "stuck"
            ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, accepted, emitted


def expected(tensors: list[Tensor]) -> list[tuple[list[int], int, int]]:
    out = []
    for blocks, (ts, _) in tensors:
        codes, scales, invalid = ref_quantize_hw(blocks, ts)
        out += [(c.tolist(), int(s), int(v))
                for c, s, v in zip(codes, scales, invalid, strict=True)]
    return out


def mixed_tensors(rng: np.random.Generator) -> list[Tensor]:
    """Tensors with very different scales one after another: the adversarial blocks (E4M3
    and E2M1 ties, clamps, subnormals), random ones, tiny subnormal blocks, NaN/Inf among
    finite blocks, an all-zero tensor (ts = 0), then random blocks again."""
    adv = adversarial_blocks()
    tiny = (rng.integers(-1023, 1024, (5, 16)) * 2.0**-24).astype(np.float16)
    mixed = inject_nonfinite(rng, random_tensor_blocks(rng, 10), 0.4)
    zero = np.zeros((3, 16), np.float16)
    zero[1] = -0.0
    out = [(adv, tensor_scales(np.float16([65504])))]
    for blocks in (random_tensor_blocks(rng, 12), tiny):
        out.append((blocks, tensor_scales(blocks)))
    out.append((mixed, tensor_scales(mixed[~nonfinite_mask(mixed)])))
    out.append((zero, tensor_scales(zero)))
    late = (random_tensor_blocks(rng, 8).astype(np.float32) * 2.0**-9).astype(np.float16)
    out.append((late, tensor_scales(late)))
    return out


@pytest.mark.parametrize("stages", [4, NVFP4_STAGES])
def test_bit_exact_under_backpressure(stages: int) -> None:
    """At 4 and 7 stages (the one- to three-stage quantizers, which pysim evaluates at about
    1 s a block, are checked without stalls by :func:`test_latency_and_interval`)."""
    tensors = mixed_tensors(np.random.default_rng(40 + stages))
    assert tensors[4][1][0] == 0 and len({t[1][0] for t in tensors}) == len(tensors)
    got, _, _ = run(NVFP4Quantizer(stages=stages), tensors, seed=stages, p_valid=0.8,
                    p_ready=0.6)
    want = expected(tensors)
    blocks = np.concatenate([b for b, _ in tensors])
    bad = [(k, blocks[k].tolist(), g, w) for k, (g, w) in enumerate(zip(got, want, strict=True))
           if g != w]
    assert not bad, bad[:4]
    assert sum(w[2] for w in want) >= 3 and len({w[1] for w in want}) > 30


@pytest.mark.parametrize("stages", STAGES)
def test_latency_and_interval(stages: int) -> None:
    """No stalls: a block every cycle, each ``stages`` cycles after its transfer, also for
    the first block after a tensor-scale change."""
    dut = NVFP4Quantizer(stages=stages)
    assert (dut.stages, dut.latency, dut.cycles_per_block) == (stages, stages, 1)
    assert len(dut.cuts) == stages - 1 and set(dut.cuts) <= set(NVFP4_CUTS)
    rng = np.random.default_rng(stages)
    tensors = []
    for scale in (1.0, 2.0**-10):
        blocks = (random_tensor_blocks(rng, 4).astype(np.float32) * scale).astype(np.float16)
        tensors.append((blocks, tensor_scales(blocks)))
    got, accepted, emitted = run(dut, tensors, seed=0, p_valid=1.0, p_ready=1.0)
    assert got == expected(tensors)
    assert [b - a for a, b in zip(accepted, accepted[1:], strict=False)][:3] == [1] * 3
    assert {e - a for a, e in zip(accepted, emitted, strict=True)} == {stages}


def test_default_and_validation() -> None:
    dut = NVFP4Quantizer()
    assert dut.stages == dut.latency == NVFP4_STAGES == NVFP4_MAX_STAGES == 7
    assert dut.cuts == NVFP4_CUTS and dut.cycles_per_block == 1
    for bad in (0, NVFP4_MAX_STAGES + 1, -1, True, 2.0, None, "7"):
        with pytest.raises(ValueError, match="^stages:"):
            NVFP4Quantizer(stages=bad)


def test_lint() -> None:
    """Clean under ``verilator --lint-only -Wall`` with the Amaranth-structural waivers only
    (the default stage count; the others move registers, not widths)."""
    stages = NVFP4_STAGES
    assert not any(w.rule.startswith(("WIDTH", "CASE", "LATCH")) for w in LINT_WAIVERS)
    made = cached_verilog(f"nvfp4_quantizer_s{stages}", NVFP4Quantizer,
                          kwargs={"stages": stages}, out_dir=build_dir() / "verilog" / "nvfp4")
    assert made.copy is not None
    lint([made.copy], made.copy.stem, LINT_WAIVERS)
