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

``job.json`` may also hold ``salient`` (sorted row indices of X) and ``cycle_limit2``: then the
GEMM flags those rows salient, collects their residual blocks from ``r``, and runs a second
GEMM with ``add`` over the residual rows (all-ones masks) with ``yin`` = the first GEMM's
outputs of those rows (SPEC §6); Y is the first GEMM's with the salient rows replaced by the
second's, ``golden.decomposed_linear(..., salient=S).y``; ``result.json`` then also holds
``cycles_main`` and ``cycles_residual`` (``cycles`` is their sum).

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
    DrainOrder,
    QuantizedFields,
    activation_beats,
    drain_order,
    residual_rows,
    salient_lanes,
    weight_beats_from_fields,
    x_beat_rows,
    yin_beats,
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


def _outputs(raws: list[int], order: DrainOrder, m: int, n: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) uint32 Y bits and bool invalid flags from one GEMM's ``y`` beats (protocol,
    masks and ``last`` checked)."""
    codec = LayoutCodec(_payload("y"))
    raw = codec.unpack(raws)
    assert raw["last"].tolist() == [0] * (len(order) - 1) + [1], (
        "y.last must mark exactly the final beat")
    assert np.array_equal(codec.unpack_bits(raws, "mask"), order.mask), (
        "y beat masks differ from the tile positions")
    lanes = range(CFG.drain_width)
    values = np.stack([raw[f"lanes.{i}.value"] for i in lanes], axis=1).astype(np.uint32)
    flags = np.stack([raw[f"lanes.{i}.invalid"] for i in lanes], axis=1).astype(bool)
    return order.assemble(values, (m, n)), order.assemble(flags, (m, n))


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
    order = drain_order(m, n, CFG.rows, CFG.tile_cols, CFG.drain_width)
    dut._log.info("GEMM %dx%d . %dx%d: %d x beats, %d w beats, %d y beats", m, kb * CFG.block,
                  kb * CFG.block, n, len(xs), len(ws), len(order))

    salient = SPEC.get("salient")
    r_beats = 0
    if salient:
        xs = activation_beats(x_bits.view(np.float16), CFG, _payload("x"), None, salient)
        row_of, kb_of = x_beat_rows(m, kb, CFG.rows, CFG.lanes)
        is_salient = np.zeros(m, bool)
        is_salient[salient] = True
        flagged = salient_lanes(is_salient, row_of)
        r_beats = int(flagged.any(axis=1).sum())

    h = GemmHarness(dut, CORE.signature)
    await h.reset()
    out = await h.run({"cmd": cmd, "x": xs, "w": ws}, {"y": len(order), "r": r_beats}, None,
                      limit=SPEC["cycle_limit"],
                      report=progress_file(JOB / "progress.json", len(order)))
    y, invalid = _outputs(out.beats["y"], order, m, n)
    (cycles,) = out.command_cycles()
    result = {"cycles": cycles}
    if salient:
        # the second pass: the residual rows, each output added to the main output of its row
        mask, resid = residual_rows(LayoutCodec(_payload("r")), out.beats["r"], flagged, row_of,
                                    kb_of, m, CFG.block)
        assert np.array_equal(mask, flagged[flagged.any(axis=1)]), (
            "r beat masks differ from the salient lanes")
        resid = resid[salient]
        s = len(salient)
        order2 = drain_order(s, n, CFG.rows, CFG.tile_cols, CFG.drain_width)
        cmd2 = LayoutCodec(CORE.cmd_layout).pack(1, m=[s], n=[n], kb=[kb], add=[1])
        out2 = await h.run({
            "cmd": cmd2,
            "x": activation_beats(resid.view(np.float16), CFG, _payload("x")),
            "w": weight_words(codes, se, dialect, s),
            "yin": yin_beats(y[salient], invalid[salient], order2, _payload("yin")),
        }, {"y": len(order2)}, None, limit=SPEC["cycle_limit2"])
        y2, invalid2 = _outputs(out2.beats["y"], order2, s, n)
        y[salient], invalid[salient] = y2, invalid2
        (cycles2,) = out2.command_cycles()
        result = {"cycles": cycles + cycles2, "cycles_main": cycles, "cycles_residual": cycles2}
        dut._log.info("decomposition: %d salient rows, second pass %d cycles", s, cycles2)
    np.save(JOB / "y.npy", y)
    np.save(JOB / "invalid.npy", invalid)
    (JOB / "result.json").write_text(json.dumps(result))
    dut._log.info("done: %d outputs in %d cycles", m * n, result["cycles"])
