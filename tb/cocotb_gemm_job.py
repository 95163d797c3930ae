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

and receives ``progress.json`` every 8192 cycles (``cycle``, outputs ``done`` of ``total``),
``y.npy`` ((M, N) uint32: binary32 bit patterns of Y), ``invalid.npy`` ((M, N)
bool: the ``invalid`` output flags) and ``result.json`` (``cycles``: command transfer through
last output transfer, both included). Beats are built in the stream orders of
``docs/ARCHITECTURE.md`` ("GemmCore stream interface"): X blocks with the all-ones candidate
mask (the whole formatbook), weight beats for every row tile. No value is compared here: the
caller owns the reference; only the stream protocol and ``y.last`` are checked.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from amaranth.lib import data

from semdialect.config import Config
from semdialect.rtl.gemm_core import GemmCore
from semdialect.rtl.layouts import GEMM_OUTPUT
from semdialect.tb.drivers import GemmHarness, progress_file
from semdialect.tb.gemm_ref import tile_order
from semdialect.tb.packing import LayoutCodec

JOB = Path(os.environ["GEMM_JOB"])
SPEC: dict[str, Any] = json.loads((JOB / "job.json").read_text())
CFG = Config(**SPEC["config"])
CORE = GemmCore.from_config(CFG, **SPEC["limits"])


def _payload(name: str) -> data.Layout:
    return CORE.signature.members[name].signature.members["payload"].shape


def activation_words(x_bits: np.ndarray) -> list[int]:
    """``x`` beats: X's blocks in row-major (row, k-block) order, all-ones mask."""
    m, k = x_bits.shape
    b = CFG.block
    blocks = x_bits.reshape(m * (k // b), b)
    k_book = CFG.book().size
    # an all-zero mask also means the whole formatbook (for K beyond the codec's 64 bits)
    mask = np.full(len(blocks), (1 << k_book) - 1 if k_book <= 64 else 0, np.uint64)
    return LayoutCodec(_payload("x")).pack(len(blocks), x=blocks, mask=mask)


def weight_words(codes: np.ndarray, se: np.ndarray, dialect: np.ndarray, m: int) -> list[int]:
    """``w`` beats: for each row tile, each column tile j, each k-block kb, lane c = Wᵀ block
    (column j·cols + c, kb); lanes past N are zero."""
    n, k = codes.shape
    b, rows, cols = CFG.block, CFG.rows, CFG.cols
    nb = k // b
    tiles_n = math.ceil(n / cols)
    j_idx = np.repeat(np.arange(tiles_n), nb)  # beat order within one row tile: j, then kb
    kb_idx = np.tile(np.arange(nb), tiles_n)
    blocks = codes.reshape(n, nb, b)
    fields: dict[str, np.ndarray] = {}
    has_id = CFG.book().id_bits > 0  # K = 1 stores no dialect id (rtl.layouts.dialect_field)
    for c in range(cols):
        col = j_idx * cols + c
        ok = col < n
        safe = np.where(ok, col, 0)
        fields[f"{c}__codes"] = np.where(ok[:, None], blocks[safe, kb_idx], 0)
        fields[f"{c}__se"] = np.where(ok, se[safe, kb_idx], 0)
        if has_id:
            fields[f"{c}__dialect"] = np.where(ok, dialect[safe, kb_idx], 0)
    one_row_tile = LayoutCodec(_payload("w")).pack(len(j_idx), **fields)
    return one_row_tile * math.ceil(m / rows)


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
    dut._log.info("GEMM %dx%d . %dx%d: %d x beats, %d w beats", m, kb * CFG.block,
                  kb * CFG.block, n, len(xs), len(ws))

    h = GemmHarness(dut, GEMM_OUTPUT)
    await h.reset()
    out = await h.run(cmd, xs, ws, m * n, None, limit=SPEC["cycle_limit"],
                      report=progress_file(JOB / "progress.json", m * n))
    lasts = [last for _, _, last in out.outputs]
    assert lasts == [0] * (m * n - 1) + [1], "y.last must mark exactly the final output"

    order = np.array(tile_order(m, n, CFG.rows, CFG.cols), np.int64).reshape(-1, 2)
    y = np.zeros((m, n), np.uint32)
    invalid = np.zeros((m, n), bool)
    y[order[:, 0], order[:, 1]] = [value for value, _, _ in out.outputs]
    invalid[order[:, 0], order[:, 1]] = [bool(flag) for _, flag, _ in out.outputs]
    np.save(JOB / "y.npy", y)
    np.save(JOB / "invalid.npy", invalid)
    cycles = out.last_cycles[0] - out.cmd_cycles[0] + 1
    (JOB / "result.json").write_text(json.dumps({"cycles": cycles}))
    dut._log.info("done: %d outputs in %d cycles", m * n, cycles)
