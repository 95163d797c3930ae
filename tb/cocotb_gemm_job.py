"""cocotb: one GEMM on a caller's data through :class:`rtl.gemm_core.GemmCore`, via files.

Run by :func:`tb.gemm_run.run_gemm_arrays` (``semdialect rtl-gemm``). ``GEMM_JOB`` names a
folder holding

================  ===============================================================================
``job.json``      ``config`` (:class:`semdialect.config.Config` fields), ``limits`` (``max_m``,
                  ``max_n``, ``max_kb``: what the Verilog was generated for), ``m``, ``n``,
                  ``kb`` (K/B) and ``cycle_limit`` (deadlock guard)
``x.npy``         (M, K) uint16: X as FP16 bit patterns
``w_codes.npy``   (N, K) uint8: Wᵀ's 4-bit codes (bit 3 sign, bits 2:0 index)
``w_se.npy``      (N, K/B) uint8: Wᵀ's SE field, SE + 16 (0..29)
``w_dialect.npy`` (N, K/B) uint8: Wᵀ's dialect ids
================  ===============================================================================

and receives ``progress.json`` every 8192 cycles (``cycle``, ``y`` beats ``done`` of ``total``),
``y.npy`` ((M, N) uint32: binary32 bit patterns of Y), ``invalid.npy`` ((M, N)
bool: the ``invalid`` output flags) and ``result.json`` (``cycles``: command transfer through
last output transfer, both included). Beats are built in the core's stream orders
(``rtl/gemm_core.py``, :mod:`tb.gemm_ref`): one GEMM command (``op`` GEMM, ``add`` 0); ``x`` in
beats of ``lanes`` blocks (row tile, row group, k-block), each with the all-ones candidate
mask (the whole formatbook) and ``salient`` 0; weight beats for every row tile; ``y`` beats of
``drain_width`` lanes put back into (M, N) by their position. No value is compared here: the
caller owns the reference; only the stream protocol, the ``y`` beat masks and ``last`` are
checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from amaranth.lib import data

from semdialect.config import Config
from semdialect.rtl.gemm_core import GemmCore
from semdialect.tb.drivers import GemmHarness, progress_file
from semdialect.tb.gemm_ref import (
    QuantizedFields,
    activation_beats,
    drain_order,
    weight_beats_from_fields,
)
from semdialect.tb.packing import LayoutCodec

JOB = Path(os.environ["GEMM_JOB"])
SPEC: dict[str, Any] = json.loads((JOB / "job.json").read_text())
CFG = Config(**SPEC["config"])
CORE = GemmCore.from_config(CFG, **SPEC["limits"])


def _payload(name: str) -> data.Layout:
    return CORE.signature.members[name].signature.members["payload"].shape


def activation_words(x_bits: np.ndarray) -> list[int]:
    """``x`` beats of X ((M, K) FP16 bit patterns): ``lanes`` blocks per beat in the core's
    order, all-ones masks, salient 0."""
    return activation_beats(x_bits.view(np.float16), CFG, _payload("x"))


def weight_words(codes: np.ndarray, se: np.ndarray, dialect: np.ndarray, m: int) -> list[int]:
    """``w`` beats: for each row tile, each column tile j, each k-block kb, lane c = Wᵀ block
    (column j·cols + c, kb); lanes past N are zero."""
    fields = QuantizedFields(codes.astype(np.int64), se.astype(np.int64),
                             dialect.astype(np.int64), np.zeros(se.shape, bool))
    return weight_beats_from_fields(fields, m, CFG, _payload("w"))


@cocotb.test()
async def test_gemm_job(dut: Any) -> None:
    """Send the command, X and W without stalls; collect Y in stream order into (M, N)."""
    m, n, kb = SPEC["m"], SPEC["n"], SPEC["kb"]
    x_bits = np.load(JOB / "x.npy")
    codes = np.load(JOB / "w_codes.npy")
    se = np.load(JOB / "w_se.npy")
    dialect = np.load(JOB / "w_dialect.npy")
    assert x_bits.shape == (m, kb * CFG.block) and codes.shape == (n, kb * CFG.block)
    cmd = LayoutCodec(CORE.cmd_layout).pack(1, m=[m], n=[n], kb=[kb])
    xs = activation_words(x_bits)
    ws = weight_words(codes, se, dialect, m)
    order = drain_order(m, n, CFG.rows, CFG.cols, CFG.drain_width)
    dut._log.info("GEMM %dx%d . %dx%d: %d x beats, %d w beats, %d y beats", m, kb * CFG.block,
                  kb * CFG.block, n, len(xs), len(ws), len(order))

    h = GemmHarness(dut, CORE.signature)
    await h.reset()
    out = await h.run({"cmd": cmd, "x": xs, "w": ws}, {"y": len(order)}, None,
                      limit=SPEC["cycle_limit"],
                      report=progress_file(JOB / "progress.json", len(order)))
    codec = LayoutCodec(_payload("y"))
    raw = codec.unpack(out.beats["y"])
    assert raw["last"].tolist() == [0] * (len(order) - 1) + [1], (
        "y.last must mark exactly the final beat")
    assert np.array_equal(codec.unpack_bits(out.beats["y"], "mask"), order.mask), (
        "y beat masks differ from the tile positions")
    lanes = range(CFG.drain_width)
    values = np.stack([raw[f"lanes.{i}.value"] for i in lanes], axis=1).astype(np.uint32)
    flags = np.stack([raw[f"lanes.{i}.invalid"] for i in lanes], axis=1).astype(bool)
    y = order.assemble(values, (m, n))
    invalid = order.assemble(flags, (m, n))
    np.save(JOB / "y.npy", y)
    np.save(JOB / "invalid.npy", invalid)
    (cycles,) = out.command_cycles()
    (JOB / "result.json").write_text(json.dumps({"cycles": cycles}))
    dut._log.info("done: %d outputs in %d cycles", m * n, cycles)
