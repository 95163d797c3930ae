"""cocotb tests of :class:`rtl.gemm_core.GemmCore` on Verilator: whole GEMMs vs ``golden.gemm``.

Run through :func:`tb.runner.run_cocotb` (see ``tests/test_rtl_gemm_verilator.py``). Settings
arrive in the environment:

``GEMM_CONFIG``   JSON of the :class:`semdialect.config.Config` fields the Verilog was
                  generated from (required; :func:`tb.gemm_run.config_env`)
``GEMM_MAX_KB``   the core's ``max_kb`` (required; ``max_m``/``max_n`` are ``GEMM_MAX_M``/``N``)
``GEMM_CASES``    JSON list of cases ``{"m", "n", "kb", "data", "seed"[, "cycles"]}``; ``data`` is
                  ``random``, ``adversarial``, ``nan`` (NaN/Inf blocks in X), ``max``
                  (±65504 everywhere), ``zeros`` or ``seda`` (random SeDA candidate masks);
                  ``cycles``, when given, is the expected no-stall cycle count (the caller
                  takes it from the cycle model, :mod:`semdialect.sim.cycles`: the testbench
                  sits below the models and does not import them)
``GEMM_CYCLES``   JSON file the no-stall test writes ``[{M, N, K, cycles, expected}, …]`` to
``GEMM_CORRUPT``  ``1``: corrupt one expected value (a self-test: the run must fail)

Protocol (:class:`tb.drivers.GemmHarness`; stream orders in ``docs/ARCHITECTURE.md``,
"GemmCore stream interface"): inputs are driven after the falling clock edge, and after
``ReadOnly`` the outputs are sampled — the values the next rising edge acts on. Cycle
numbers count falling edges; a GEMM's cycles are those from the command's transfer through
the last output's transfer, both included (:mod:`semdialect.sim.cycles` models them).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

import cocotb
import numpy as np

from semdialect.config import Config
from semdialect.rtl.gemm_core import GemmCore
from semdialect.rtl.layouts import GEMM_OUTPUT
from semdialect.tb.drivers import GemmHarness
from semdialect.tb.gemm_ref import activation_words, gemm_expected, pack, tile_order, weight_beats

CONFIG: Config = Config(**json.loads(os.environ["GEMM_CONFIG"]))
CORE = GemmCore.from_config(
    CONFIG,
    max_m=int(os.environ.get("GEMM_MAX_M", "255")),
    max_n=int(os.environ.get("GEMM_MAX_N", "255")),
    max_kb=int(os.environ["GEMM_MAX_KB"]),
)
CASES: list[dict] = json.loads(os.environ.get("GEMM_CASES", "[]"))
CYCLES_FILE = os.environ.get("GEMM_CYCLES")
CORRUPT = os.environ.get("GEMM_CORRUPT") == "1"

_FP16_MAX = 65504.0
_FP16_TINY = 2.0**-24


def make_data(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """X (M×K, float16), W (K×N, float32) and SeDA masks for one case (all from the seed)."""
    m, n, kb, kind = case["m"], case["n"], case["kb"], case["data"]
    k = kb * CONFIG.block
    rng = np.random.default_rng(case["seed"])
    row_scale = np.exp2(rng.integers(-12, 9, size=(m, 1)))
    x = rng.standard_normal((m, k)) * row_scale
    w = rng.standard_normal((k, n)) * np.exp2(rng.integers(-6, 4, size=(1, n)))
    masks = None
    b = CONFIG.block
    if kind == "zeros":
        x[:] = 0.0
        x[::2] = -0.0
    elif kind == "max":
        x = np.where(rng.random((m, k)) < 0.5, -_FP16_MAX, _FP16_MAX)
        w = np.where(rng.random((k, n)) < 0.5, -_FP16_MAX, _FP16_MAX)
    elif kind in ("adversarial", "nan"):
        blocks = x.reshape(m, kb, b)
        for r in range(m):
            for j in range(kb):
                pick = rng.integers(0, 8)
                if pick == 0:
                    blocks[r, j] = 0.0  # all-zero block
                elif pick == 1:
                    blocks[r, j] = -0.0  # all −0: codes 8, contribution +0
                elif pick == 2:
                    blocks[r, j] = np.sign(blocks[r, j]) * _FP16_MAX  # maximum magnitudes
                elif pick == 3:
                    blocks[r, j] = rng.integers(-1024, 1025, b) * _FP16_TINY  # subnormals
                elif pick == 4:
                    blocks[r, j] *= 1e-3
                    blocks[r, j, rng.integers(0, b)] = 60000.0  # one outlier
        if kb >= 2:  # exact cancellation: the second block is the negated first, W repeats
            x[0, b : 2 * b] = -x[0, :b]
            w[b : 2 * b, 0] = w[:b, 0]
        if n >= 2:
            w[:b, 1] = 0.0  # an all-zero weight block
        if n >= 3:
            w[:, -1] = np.where(rng.random(k) < 0.5, -_FP16_MAX, _FP16_MAX)
        if kind == "nan":
            specials = (np.nan, np.inf, -np.inf)
            for r in range(0, m, 2):
                j = int(rng.integers(0, kb))
                x[r, j * b + int(rng.integers(0, b))] = specials[r % 3]
    elif kind == "seda":
        book = CONFIG.book()
        variants = rng.integers(0, book.variants, size=(m, kb))
        masks = np.stack([book.variant_mask(int(v)) for v in variants.reshape(-1)]).reshape(
            m, kb, book.size
        )
    elif kind != "random":
        raise ValueError(f"unknown data kind {kind!r}")
    with np.errstate(over="ignore"):
        x16 = x.astype(np.float16)
    return x16, w.astype(np.float32), masks


@dataclass
class Prepared:
    case: dict
    cmd: int
    x: list[int]
    w: list[int]
    want: np.ndarray  # (M, N) uint32
    flags: np.ndarray  # (M, N) bool
    order: list[tuple[int, int]]


def prepare(case: dict) -> Prepared:
    x, w, masks = make_data(case)
    want, flags, qw = gemm_expected(x, w, CONFIG, masks)
    m, n, kb = case["m"], case["n"], case["kb"]
    members = CORE.signature.members
    cmd = pack(CORE.cmd_layout, {"m": m, "n": n, "kb": kb})
    xs = activation_words(x, CONFIG, members["x"].signature.members["payload"].shape, masks)
    ws = weight_beats(qw, m, CONFIG, members["w"].signature.members["payload"].shape)
    return Prepared(case, cmd, xs, ws, want, flags, tile_order(m, n, CONFIG.rows, CONFIG.cols))


def check(prep: Prepared, outputs: list[tuple[int, int, int]], corrupt: bool = False) -> None:
    m, n = prep.want.shape
    assert len(outputs) == m * n
    got = np.zeros((m, n), np.uint32)
    inv = np.zeros((m, n), bool)
    lasts = [last for _, _, last in outputs]
    assert lasts == [0] * (m * n - 1) + [1], "y.last must mark exactly the final output"
    for (r, c), (value, invalid, _) in zip(prep.order, outputs, strict=True):
        got[r, c] = value
        inv[r, c] = bool(invalid)
    want = prep.want.copy()
    if corrupt:
        want[m // 2, n // 2] ^= 1
    bad = np.argwhere(got != want)
    detail = [
        f"Y[{r},{c}] got {got[r, c]:08x} ({got[r, c:c + 1].view(np.float32)[0]!r}) want "
        f"{want[r, c]:08x} ({want[r, c:c + 1].view(np.float32)[0]!r})"
        for r, c in bad[:8]
    ]
    assert not len(bad), f"{prep.case}: {len(bad)} of {m * n} outputs differ:\n" + "\n".join(
        detail
    )
    assert np.array_equal(inv, prep.flags), f"{prep.case}: invalid flags differ"


@cocotb.test()
async def test_gemm_no_stall(dut) -> None:
    """Every case alone, all streams always valid/ready: bit-exact Y and, where the case gives
    them, exactly the expected cycles; the measured cycles go to ``GEMM_CYCLES``."""
    h = GemmHarness(dut, GEMM_OUTPUT)
    await h.reset()
    records = []
    for index, case in enumerate(CASES):
        prep = prepare(case)
        out = await h.run([prep.cmd], prep.x, prep.w, len(prep.order), None)
        check(prep, out.outputs, corrupt=CORRUPT and index == 0)
        cycles = out.last_cycles[0] - out.cmd_cycles[0] + 1
        k = case["kb"] * CONFIG.block
        expected = case.get("cycles")
        records.append({"M": case["m"], "N": case["n"], "K": k, "data": case["data"],
                        "cycles": cycles, "expected": expected})
        dut._log.info("%s: %d cycles (expected %s)", case, cycles, expected)
    if CYCLES_FILE:
        with open(CYCLES_FILE, "w") as fh:
            json.dump(records, fh, indent=1)
    wrong = [r for r in records if r["expected"] is not None and r["cycles"] != r["expected"]]
    assert not wrong, f"measured cycles differ from the expected (cycle model) ones: {wrong}"


@cocotb.test()
async def test_gemm_back_to_back(dut) -> None:
    """All cases as one command stream without gaps: each GEMM's outputs are bit-exact and
    each command is accepted exactly its expected cycles (where given) after the previous one."""
    h = GemmHarness(dut, GEMM_OUTPUT)
    await h.reset()
    preps = [prepare(case) for case in CASES]
    out = await h.run(
        [p.cmd for p in preps],
        [w for p in preps for w in p.x],
        [w for p in preps for w in p.w],
        sum(len(p.order) for p in preps),
        None,
    )
    start = 0
    for prep in preps:
        count = len(prep.order)
        check(prep, out.outputs[start : start + count])
        start += count
    periods = [b - a for a, b in zip(out.cmd_cycles[:-1], out.cmd_cycles[1:], strict=True)]
    want = [p.case.get("cycles") for p in preps[:-1]]
    checked = [(got, exp) for got, exp in zip(periods, want, strict=True) if exp is not None]
    assert all(got == exp for got, exp in checked), (
        f"command periods {periods} != expected cycles {want}")


@cocotb.test()
async def test_gemm_random_stalls(dut) -> None:
    """Every case with random valid/ready on cmd, x, w and y (and ``y`` protocol checks)."""
    h = GemmHarness(dut, GEMM_OUTPUT)
    await h.reset()
    for index, case in enumerate(CASES):
        prep = prepare(case)
        rng = random.Random(1000 + index)
        out = await h.run([prep.cmd], prep.x, prep.w, len(prep.order), rng,
                          p_valid=rng.choice([0.3, 0.6, 0.9]), p_ready=rng.choice([0.3, 0.6, 0.9]))
        check(prep, out.outputs)
