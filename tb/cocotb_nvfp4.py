"""cocotb tests of the NVFP4 activation quantizer's generated Verilog
(:class:`rtl.nvfp4_quantizer.NVFP4Quantizer` as the top: ``i``/``o`` streams, ``ts``,
``inv_ts``) against golden's NVFP4 (:mod:`tb.nvfp4_ref`), bit for bit.

Run through :func:`tb.runner.run_cocotb` (``tests/test_rtl_nvfp4.py``). Settings (environment):

``NVFP4_STAGES``    the quantizer's ``stages`` (default ``NVFP4_STAGES``, 7; must match the
                   Verilog)
``NVFP4_RANDOM``    random blocks per random tensor (default 600)
``NVFP4_SEED``      seed of the data and of the valid/ready patterns (default 1)
``NVFP4_SUMMARY``   if set, a JSON file receiving what each test checked
``NVFP4_CORRUPT``   ``1``: corrupt one expected scale (a self-test: the run must fail)

Tensors run one after another; ``ts``/``inv_ts`` (the per-tensor register set) change only
while the quantizer is empty. Each tensor's blocks go through :func:`tb.drivers.run_stream`
with random ``valid`` on ``i`` and random ``ready`` (with stall bursts) on ``o``; every output
stream rule is checked. One tensor mixes blocks holding NaN/±Inf (any lane) with finite ones:
those give ``invalid`` 1, codes 0 and scale 0, and their neighbours stay bit-exact (its ``ts``
is the finite blocks' tensor scale). A second test checks latency and cycles per block without
stalls.
"""

from __future__ import annotations

import json
import os
from typing import Any

import cocotb
import numpy as np

from semdialect.rtl.layouts import fp16_block
from semdialect.rtl.nvfp4_quantizer import NVFP4_STAGES, NVFP4Quantizer, nvfp4_quantized_block
from semdialect.tb.drivers import reset, run_stream, stream
from semdialect.tb.nvfp4_ref import (
    BLOCK,
    adversarial_blocks,
    f32_bits,
    inject_nonfinite,
    nonfinite_mask,
    random_tensor_blocks,
    ref_quantize_hw,
    tensor_scales,
)
from semdialect.tb.packing import LayoutCodec

STAGES = int(os.environ.get("NVFP4_STAGES", str(NVFP4_STAGES)))
N_RANDOM = int(os.environ.get("NVFP4_RANDOM", "600"))
SEED = int(os.environ.get("NVFP4_SEED", "1"))
SUMMARY = os.environ.get("NVFP4_SUMMARY")
CORRUPT = os.environ.get("NVFP4_CORRUPT") == "1"

QUANT = NVFP4Quantizer(stages=STAGES)
IN = LayoutCodec(fp16_block(BLOCK))
OUT = LayoutCodec(nvfp4_quantized_block(BLOCK))

_summary: dict[str, Any] = {"stages": STAGES, "latency": QUANT.latency,
                            "cycles_per_block": QUANT.cycles_per_block, "tests": {}}


def _record(test: str, info: dict[str, Any]) -> None:
    _summary["tests"][test] = info
    if SUMMARY:
        with open(SUMMARY, "w") as fh:
            json.dump(_summary, fh, indent=1, sort_keys=True)


def tensors() -> list[tuple[str, np.ndarray]]:
    """(name, (n, 16) FP16 blocks of one tensor): ts is each tensor's own golden tensor scale."""
    rng = np.random.default_rng(SEED)
    adv = adversarial_blocks()
    out = [
        ("max_fp16_adversarial", np.concatenate([adv, random_tensor_blocks(rng, N_RANDOM)])),
        ("random", (random_tensor_blocks(rng, N_RANDOM).astype(np.float32) * 2.0**-12)
         .astype(np.float16)),  # amax ≤ 16: a mid-range tensor scale
    ]
    # a tensor with amax 1: E2M1 ties and E4M3 scale ties at unit scale
    unit = rng.choice(np.float16([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, -1.0, 0.0]),
                      (N_RANDOM // 3, BLOCK)) / np.float16(6)
    unit[0, 0] = 1.0
    out.append(("unit_amax_ties", unit.astype(np.float16)))
    # FP16 subnormals only: the smallest tensor scales
    tiny = (rng.integers(-1023, 1024, (N_RANDOM // 3, BLOCK)) * 2.0**-24).astype(np.float16)
    out.append(("fp16_subnormal", tiny))
    # a tensor whose blocks span 2^-24 .. 65504 (block scales clamp at 2^-6)
    wide = random_tensor_blocks(rng, N_RANDOM // 3)
    wide[0, 0] = 65504
    out.append(("clamped_scales", wide))
    zero = np.zeros((12, BLOCK), np.float16)
    zero[::2] = -0.0
    out.append(("all_zero", zero))  # ts = 0: codes 0, scale 0
    # NaN/±Inf in random lanes of ~15 % of the blocks, a run of invalid blocks, and an invalid
    # block between two finite ones of very different magnitude
    mixed = inject_nonfinite(rng, random_tensor_blocks(rng, N_RANDOM // 3), 0.15)
    mixed[3:6, 0] = np.float16(np.inf)
    mixed[8, 15] = np.float16(np.nan)
    mixed[7] = mixed[9] = np.float16(2.0**-20)
    mixed[9, 4] = -3.0
    out.append(("nonfinite_mixed", mixed))
    # a tensor whose finite blocks are all zero (ts = 0) with NaN/−Inf blocks among them
    zmix = np.zeros((8, BLOCK), np.float16)
    zmix[1, 2] = np.float16(np.nan)
    zmix[4, 15] = np.float16(-np.inf)
    out.append(("nonfinite_all_zero", zmix))
    return out


def scales_of(blocks: np.ndarray) -> tuple[np.float32, np.float32]:
    """(ts, inv_ts) of a tensor from its finite blocks (golden raises on the others)."""
    return tensor_scales(blocks[~nonfinite_mask(blocks)])


def _expected(blocks: np.ndarray, ts: np.float32) -> list[tuple[list[int], int, int]]:
    codes, scales, invalid = ref_quantize_hw(blocks, ts)
    return [(c.tolist(), int(s), int(v)) for c, s, v in zip(codes, scales, invalid, strict=True)]


def _got(words: list[int]) -> list[tuple[list[int], int, int]]:
    f = OUT.unpack(words)
    return [(c.tolist(), int(s), int(v))
            for c, s, v in zip(f["codes"], f["scale"], f["invalid"], strict=True)]


@cocotb.test()
async def test_random_backpressure(dut) -> None:
    clk = await reset(dut)
    s = stream(dut, "")
    checked = {}
    for index, (name, blocks) in enumerate(tensors()):
        ts, inv = scales_of(blocks)
        dut.ts.value = f32_bits(ts)
        dut.inv_ts.value = f32_bits(inv)
        words = IN.pack(len(blocks), x=blocks.view(np.uint16))
        run = await run_stream(clk, s, words, p_valid=0.7, p_ready=0.6, seed=SEED + index,
                               cycles_per_item=8 * QUANT.cycles_per_block)
        want = _expected(blocks, ts)
        if CORRUPT and index == 0:
            want[3] = (want[3][0], want[3][1] ^ 1, want[3][2])
        got = _got(run.outputs)
        bad = [f"{name} block {k}: x={blocks[k].tolist()} got {g} want {w}"
               for k, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        assert not bad, f"{len(bad)} of {len(want)} blocks differ:\n" + "\n".join(bad[:8])
        checked[name] = {"blocks": len(blocks), "ts": float(ts), "cycles": run.cycles,
                         "distinct_scales": len({w[1] for w in want}),
                         "invalid_blocks": sum(w[2] for w in want)}
    _record("test_random_backpressure", checked)


@cocotb.test()
async def test_latency_throughput(dut) -> None:
    """No stalls: one block every ``cycles_per_block`` cycles, each ``latency`` cycles after its
    transfer."""
    clk = await reset(dut)
    s = stream(dut, "")
    rng = np.random.default_rng(SEED + 100)
    blocks = random_tensor_blocks(rng, 40)
    ts, inv = tensor_scales(blocks)
    dut.ts.value = f32_bits(ts)
    dut.inv_ts.value = f32_bits(inv)
    run = await run_stream(clk, s, IN.pack(len(blocks), x=blocks.view(np.uint16)), p_valid=1,
                           p_ready=1, seed=SEED)
    assert _got(run.outputs) == _expected(blocks, ts)
    gaps = {b - a for a, b in zip(run.accepted, run.accepted[1:], strict=False)}
    lat = {e - a for a, e in zip(run.accepted, run.emitted, strict=True)}
    assert gaps == {QUANT.cycles_per_block}, gaps
    assert lat == {QUANT.latency}, lat
    _record("test_latency_throughput", {"blocks": len(blocks), "gaps": sorted(gaps),
                                        "latency": sorted(lat)})
