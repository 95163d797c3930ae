"""cocotb: a caller's FP16 blocks through the activation frontend
(:class:`rtl.block_quantizer.BlockQuantizer`), via files.

Run by :func:`tb.frontend_run.run_quantizer_arrays` (``semdialect rtl-quantize``).
``QUANTIZE_JOB`` names a folder holding ``job.json`` (``config``: the
:class:`semdialect.config.Config` fields), ``blocks.npy`` ((n, B) uint16: FP16 bit patterns,
one block per row; every block is quantized over the whole formatbook). It receives
``progress.json`` every 8192 cycles (``cycle``, blocks ``done`` of ``total``), ``codes.npy``
((n, B) uint8), ``se.npy`` ((n,) uint8: SE field = SE + 16), ``dialect.npy`` ((n,) uint8),
``invalid.npy`` ((n,) bool) and ``result.json`` (``cycles``). Blocks stream
in order without stalls (``i`` valid and ``o`` ready held high; ``docs/ARCHITECTURE.md``,
"GemmCore stream interface", the activation frontend). No value is compared here: the
caller owns the reference; the stream protocol is checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np

from semdialect.config import Config
from semdialect.rtl.layouts import masked_fp16_block, quantized_block
from semdialect.tb.drivers import progress_file, reset, run_stream, stream
from semdialect.tb.packing import LayoutCodec

JOB = Path(os.environ["QUANTIZE_JOB"])
SPEC: dict[str, Any] = json.loads((JOB / "job.json").read_text())
CFG = Config(**SPEC["config"])


@cocotb.test()
async def test_quantize_job(dut: Any) -> None:
    """Every block through ``i`` → ``o``; the fields of each output block to ``.npy`` files."""
    blocks = np.load(JOB / "blocks.npy")
    b, k_book = CFG.block, CFG.book().size
    assert blocks.ndim == 2 and blocks.shape[1] == b
    # the whole formatbook: all ones (an all-zero mask means the same to the RTL, used when
    # K does not fit the codec's 64-bit columns)
    masks = np.full(len(blocks), (1 << k_book) - 1 if k_book <= 64 else 0, np.uint64)
    payloads = LayoutCodec(masked_fp16_block(b, k_book)).pack(len(blocks), x=blocks, mask=masks)
    dut._log.info("%d blocks of %d", len(blocks), b)
    s = stream(dut, "")
    s.i_valid.value = 0
    s.i_payload.value = 0
    s.o_ready.value = 0
    clk = await reset(dut)
    t = await run_stream(clk, s, payloads, p_valid=1.0, p_ready=1.0, seed=0,
                         cycles_per_item=CFG.selector_cycles + 4,
                         report=progress_file(JOB / "progress.json", len(blocks)))
    got = LayoutCodec(quantized_block(b, k_book)).unpack(t.outputs)
    np.save(JOB / "codes.npy", got["codes"].astype(np.uint8).reshape(len(blocks), b))
    np.save(JOB / "se.npy", got["se"].astype(np.uint8))
    # K = 1 stores no dialect id (rtl.layouts.dialect_field): every block is dialect 0
    np.save(JOB / "dialect.npy", got.get("dialect", np.zeros(len(blocks))).astype(np.uint8))
    np.save(JOB / "invalid.npy", got["invalid"].astype(bool))
    (JOB / "result.json").write_text(json.dumps({"cycles": t.cycles}))
    dut._log.info("done: %d blocks in %d cycles", len(blocks), t.cycles)
