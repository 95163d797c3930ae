"""cocotb tests of the activation frontend's generated Verilog (:class:`tb.frontend_top.
FrontendTestTop`: a BlockQuantizer, a FormatSelector and a BlockPreprocessor side by side).

Run through :func:`tb.runner.run_cocotb` (see ``tests/test_rtl_frontend_verilator.py``).
Settings arrive in the environment:

``FRONTEND_CONFIG``   JSON of the :class:`semdialect.config.Config` fields the Verilog was
                      generated from (required)
``FRONTEND_RANDOM``   random blocks for the back-pressure test (default 2000; adversarial
                      blocks come on top)
``FRONTEND_SEED``     seed of vectors, masks and valid/ready patterns (default 1)
``FRONTEND_SUMMARY``  if set, a JSON file receiving the number of vectors each test checked
``FRONTEND_CORRUPT``  if ``1``, corrupt one expected value (a self-test: the run must fail)

Every expected value comes from the golden model via :mod:`tb.frontend_ref`. Protocol:
inputs are driven after the falling clock edge; after ``ReadOnly`` the outputs are sampled
(the values the next rising edge acts on). Every output stream is checked for the stream
rules: once ``valid`` it stays valid with a stable payload until ``ready``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
import numpy as np

from semdialect.config import Config
from semdialect.golden.luts import Q_LEVELS, build_luts
from semdialect.rtl.layouts import (
    fp16_block,
    masked_fp16_block,
    masked_preprocessed_block,
    preprocessed_block,
    quantized_block,
    selected_block,
)
from semdialect.tb.drivers import reset, run_stream, stream
from semdialect.tb.frontend_ref import (
    Expected,
    exhaustive_q_vectors,
    frontend_vectors,
    preprocessor_exhaustive_vectors,
    ref_frontend,
    ref_preprocess,
    uniform_q_block,
)
from semdialect.tb.frontend_top import FrontendTestTop
from semdialect.tb.packing import LayoutCodec
from semdialect.tb.ports import port

CFG = Config(**json.loads(os.environ["FRONTEND_CONFIG"]))
N_RANDOM = int(os.environ.get("FRONTEND_RANDOM", "2000"))
SEED = int(os.environ.get("FRONTEND_SEED", "1"))
SUMMARY = os.environ.get("FRONTEND_SUMMARY")
CORRUPT = os.environ.get("FRONTEND_CORRUPT") == "1"

TOP = FrontendTestTop(CFG)
BOOK = CFG.book()
B = CFG.block
K = BOOK.size
MODE = CFG.select
LUT = MODE == "lut"

BQ_IN = LayoutCodec(masked_fp16_block(B, K))
BQ_OUT = LayoutCodec(quantized_block(B, K))
SEL_IN = LayoutCodec(masked_preprocessed_block(B, K))
SEL_OUT = LayoutCodec(selected_block(B, K, TOP.selector.cost_bits))
PRE_IN = LayoutCodec(fp16_block(B))
PRE_OUT = LayoutCodec(preprocessed_block(B))

_summary: dict[str, Any] = {
    "config": CFG.to_dict(),
    "latency": TOP.quantizer.latency,
    "initiation_interval": TOP.quantizer.initiation_interval,
    "tests": {},
}


def record(test: str, **info: Any) -> None:
    """Add one test's counts to the summary file (rewritten after every test)."""
    _summary["tests"][test] = info
    if SUMMARY:
        Path(SUMMARY).write_text(json.dumps(_summary, indent=1, sort_keys=True))


def mask_ints(masks: np.ndarray) -> np.ndarray:
    """(n, K) bool → (n,) uint64 with bit f = dialect f."""
    return (masks.astype(np.uint64) << np.arange(K, dtype=np.uint64)).sum(axis=1)


# -- stream driving ----------------------------------------------------------------------------


async def start(dut: Any) -> Any:
    """Start a 10 ns clock, idle every stream and pulse the synchronous reset."""
    for prefix in ("", "sel_", "pre_"):
        port(dut, f"{prefix}i.valid").value = 0
        port(dut, f"{prefix}i.payload").value = 0
        port(dut, f"{prefix}o.ready").value = 0
    return await reset(dut)


# -- comparisons --------------------------------------------------------------------------------


def compare_quantized(got: dict[str, np.ndarray], want: Expected, labels: list[str]) -> str:
    """Mismatch report ('' if none) of BlockQuantizer outputs vs golden, field by field."""
    problems = []
    checks = {
        "codes": (got["codes"], want.codes.astype(np.int64)),
        "se": (got["se"], want.se),
        "dialect": (got["dialect"] if K > 1 else np.zeros_like(want.dialect), want.dialect),
        "invalid": (got["invalid"], want.invalid.astype(np.int64)),
    }
    for name, (g, w) in checks.items():
        bad = np.flatnonzero((g != w).reshape(len(g), -1).any(axis=1))
        for k in bad[:5]:
            problems.append(
                f"block {k} ({labels[k]}): {name} got {g[k].tolist()} want {w[k].tolist()}"
            )
        if len(bad):
            problems.append(f"{name}: {len(bad)} of {len(g)} blocks differ")
    return "\n".join(problems)


def expected_rows(exp: Expected) -> Expected:
    if CORRUPT:
        exp.dialect = exp.dialect.copy()
        k = len(exp.dialect) // 2
        exp.dialect[k] = (exp.dialect[k] + 1) % K
    return exp


# -- tests --------------------------------------------------------------------------------------


@cocotb.test()
async def test_preprocessor_exhaustive(dut: Any) -> None:
    """BlockPreprocessor: every finite FP16 value under every block-maximum exponent (every
    (x_i, SE) pair), plus every NaN/Inf pattern; se, q, sign and invalid vs golden."""
    clk = await start(dut)
    bits, covered = preprocessor_exhaustive_vectors(B, SEED)
    payloads = PRE_IN.pack(len(bits), x=bits)
    s = stream(dut, "pre_")
    # combinational stage: the handshake passes straight through (random valid/ready)
    t = await run_stream(clk, s, payloads, p_valid=0.9, p_ready=0.9, seed=SEED)
    assert t.accepted == t.emitted, "the preprocessor must be combinational (latency 0)"
    got = PRE_OUT.unpack(t.outputs)
    se, q, sign, invalid = ref_preprocess(bits)
    ok = ~invalid
    assert np.array_equal(got["invalid"], invalid.astype(np.int64)), "invalid flag differs"
    assert np.array_equal(got["sign"], sign), "sign differs"
    bad_se = np.flatnonzero(got["se"][ok] != se[ok])
    assert not len(bad_se), f"se differs in {len(bad_se)} blocks, e.g. {bits[ok][bad_se[0]]}"
    bad_q = np.argwhere(got["q"][ok] != q[ok])
    assert not len(bad_q), (
        f"q differs for {len(bad_q)} elements, e.g. x={bits[ok][tuple(bad_q[0])]:#06x} "
        f"got {got['q'][ok][tuple(bad_q[0])]} want {q[ok][tuple(bad_q[0])]}"
    )
    record(
        "test_preprocessor_exhaustive",
        blocks=len(bits),
        element_se_pairs=covered,
        invalid_blocks=int(invalid.sum()),
        cycles=t.cycles,
    )
    dut._log.info("preprocessor: %d blocks (%d element/SE pairs) match golden", len(bits), covered)


def selector_inputs(bits: np.ndarray, masks: np.ndarray) -> list[int]:
    """Selector payloads from golden's preprocessing of ``bits`` (so the selector is tested
    on its own, independent of the RTL preprocessor)."""
    se, q, sign, invalid = ref_preprocess(bits)
    return SEL_IN.pack(
        len(bits), block__se=se, block__q=q, block__sign=sign, block__invalid=invalid,
        mask=mask_ints(masks),
    )


@cocotb.test()
async def test_selector(dut: Any) -> None:
    """FormatSelector alone: every (dialect, q) ERR entry (lut: one-hot mask, uniform-q block,
    cost = B·ERR[f][q]) and random/adversarial blocks with random masks; dialect, cost and
    the passed-along block vs golden; random back-pressure on both sides."""
    clk = await start(dut)
    parts = []
    if LUT:
        parts.append(exhaustive_q_vectors(BOOK, B, SEED))
    parts.append(frontend_vectors(BOOK, B, MODE, N_RANDOM // 4, SEED + 7))
    bits = np.concatenate([p.bits for p in parts])
    masks = np.concatenate([p.masks for p in parts])
    labels = [lab for p in parts for lab in p.labels]
    valid = ~ref_preprocess(bits)[3]
    bits, masks = bits[valid], masks[valid]  # invalid blocks: the selector's output is a don't-care
    labels = [lab for lab, v in zip(labels, valid, strict=True) if v]
    want = expected_rows(ref_frontend(bits, masks, BOOK, MODE))
    s = stream(dut, "sel_")
    t = await run_stream(clk, s, selector_inputs(bits, masks), p_valid=0.8, p_ready=0.7,
                         seed=SEED + 1)
    got = SEL_OUT.unpack(t.outputs)
    for name, g, w in (
        ("dialect", got["dialect"] if K > 1 else np.zeros_like(want.dialect), want.dialect),
        ("cost", got["cost"], want.cost),
        ("block.q", got["block.q"], want.q),
        ("block.sign", got["block.sign"], want.sign),
        ("block.se", got["block.se"], want.se),
    ):
        bad = np.flatnonzero((g != w).reshape(len(g), -1).any(axis=1))
        detail = [f"#{k} ({labels[k]}): got {g[k]} want {w[k]}" for k in bad[:5]]
        assert not len(bad), f"selector {name}: {len(bad)} of {len(g)} differ\n" + "\n".join(detail)
    n_err = K * Q_LEVELS if LUT else 0
    if LUT:  # the exhaustive part checks the ROM contents directly
        err = build_luts(BOOK).err.astype(np.int64)
        f = np.repeat(np.arange(K), Q_LEVELS)
        q = np.tile(np.arange(Q_LEVELS), K)
        assert np.array_equal(got["cost"][:n_err], B * err[f, q])
    record("test_selector", blocks=len(bits), err_entries=n_err,
           tied_argmin=int(want.tied.sum()), cycles=t.cycles)
    dut._log.info("selector: %d blocks (%d ERR entries) match golden", len(bits), n_err)


@cocotb.test()
async def test_idx_exhaustive(dut: Any) -> None:
    """BlockQuantizer: every (dialect, q) IDX entry — lut: one-hot mask {f} and a uniform-q
    block; two-stage (mask ignored): every uniform-q block with several SEs."""
    clk = await start(dut)
    if LUT:
        vs = exhaustive_q_vectors(BOOK, B, SEED + 2)
        bits, masks, labels = vs.bits, vs.masks, vs.labels
    else:
        rng = np.random.default_rng(SEED + 2)
        bits = np.array([uniform_q_block(q, B, rng, field) for q in range(Q_LEVELS)
                         for field in (1, 9, 17, 29)], np.uint16)
        masks = rng.random((len(bits), K)) < 0.5
        labels = ["uniform_q"] * len(bits)
    want = expected_rows(ref_frontend(bits, masks, BOOK, MODE))
    payloads = BQ_IN.pack(len(bits), x=bits, mask=mask_ints(masks))
    t = await run_stream(clk, stream(dut, ""), payloads, p_valid=0.9, p_ready=0.8, seed=SEED + 3)
    report = compare_quantized(BQ_OUT.unpack(t.outputs), want, labels)
    assert not report, report
    entries = len({(int(d), int(q)) for d, q in zip(want.dialect, want.q[:, 0], strict=True)})
    record("test_idx_exhaustive", blocks=len(bits), idx_entries=entries, cycles=t.cycles)
    dut._log.info("IDX: %d blocks, %d distinct (dialect, q) entries match golden",
                  len(bits), entries)


@cocotb.test()
async def test_random_backpressure(dut: Any) -> None:
    """BlockQuantizer on random + adversarial blocks with random masks, random valid/ready;
    codes, SE field, dialect and invalid vs golden ``quantize(..., candidates=mask)``."""
    clk = await start(dut)
    vs = frontend_vectors(BOOK, B, MODE, N_RANDOM, SEED)
    want = expected_rows(ref_frontend(vs.bits, vs.masks, BOOK, MODE))
    payloads = BQ_IN.pack(len(vs), x=vs.bits, mask=mask_ints(vs.masks))
    t = await run_stream(clk, stream(dut, ""), payloads, p_valid=0.8, p_ready=0.6, seed=SEED)
    report = compare_quantized(BQ_OUT.unpack(t.outputs), want, vs.labels)
    assert not report, report
    record(
        "test_random_backpressure",
        blocks=len(vs),
        classes=vs.counts(),
        invalid_blocks=int(want.invalid.sum()),
        tied_argmin=int(want.tied.sum()),
        masks={
            "all_ones": int(vs.masks.all(axis=1).sum()),
            "all_zero": int((~vs.masks.any(axis=1)).sum()),
            "partial": int((vs.masks.any(axis=1) & ~vs.masks.all(axis=1)).sum()),
        },
        cycles=t.cycles,
    )
    dut._log.info("random: %d blocks match golden over %d cycles", len(vs), t.cycles)


@cocotb.test()
async def test_latency_throughput(dut: Any) -> None:
    """Valid and ready held high: the BlockQuantizer takes a block every II cycles and emits
    each ``latency`` cycles after taking it; the selector likewise (C, C + 1)."""
    clk = await start(dut)
    vs = frontend_vectors(BOOK, B, MODE, 40, SEED + 5)
    want = ref_frontend(vs.bits, vs.masks, BOOK, MODE)
    checks = (
        ("", TOP.quantizer, BQ_IN.pack(len(vs), x=vs.bits, mask=mask_ints(vs.masks))),
        ("sel_", TOP.selector, selector_inputs(vs.bits, vs.masks)),
    )
    for prefix, part, payloads in checks:
        t = await run_stream(clk, stream(dut, prefix), payloads, p_valid=1.0, p_ready=1.0,
                             seed=0)
        gaps = set(np.diff(t.accepted).tolist())
        lat = {e - a for a, e in zip(t.accepted, t.emitted, strict=True)}
        assert gaps == {part.initiation_interval}, f"{prefix or 'bq_'}: input gaps {gaps}"
        assert lat == {part.latency}, f"{prefix or 'bq_'}: latencies {lat}"
        if prefix == "":
            report = compare_quantized(BQ_OUT.unpack(t.outputs), want, vs.labels)
            assert not report, report
    record("test_latency_throughput", blocks=2 * len(vs), latency=TOP.quantizer.latency,
           initiation_interval=TOP.quantizer.initiation_interval)
