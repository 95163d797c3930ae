# amaranth: UnusedElaboratable=no
"""``amaranth.sim`` unit tests of the activation frontend (preprocess → select → quantize).

``ref_*`` functions give what the hardware must produce (the golden model, through
:mod:`tb.frontend_ref`); ``rtl_*`` functions run the Amaranth simulation and return what it
produced. Streams are driven with ``stream_put``/``stream_get`` and random idle cycles on both
sides (back-pressure), and a background monitor checks every output stream's rules.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from semdialect.config import load_config
from semdialect.golden.formatbook import get_formatbook
from semdialect.golden.luts import Q_LEVELS, build_luts
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.preprocess import BlockPreprocessor
from semdialect.rtl.quantizer import CodeQuantizer
from semdialect.rtl.selector import FormatSelector
from semdialect.rtl.timing import Pipeline
from semdialect.tb.frontend_ref import (
    Expected,
    exhaustive_q_vectors,
    frontend_vectors,
    preprocessor_exhaustive_vectors,
    random_masks,
    ref_frontend,
    ref_preprocess,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# The adversarial vectors include blocks below the SE clamp on purpose; the golden model's
# FlushWarning about them is tested in tests/test_quantize_dialect.py.
pytestmark = pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")

# -- stream helpers (Glasgow style) -----------------------------------------------------------


async def stream_put(ctx: Any, stream: Any, payload: Any) -> None:
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx: Any, stream: Any) -> Any:
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def idle(ctx: Any, rng: random.Random, p_idle: float) -> None:
    """With probability ``p_idle``, stall for a bursty number of cycles (1..13, so longer
    than any selector evaluation) before a transfer."""
    if rng.random() < p_idle:
        await ctx.tick().repeat(rng.choice([1, 1, 1, 2, 2, 3, 5, 8, 13]))


def stream_monitor(stream: Any, errors: list[str]):
    """Background testbench: once ``valid``, a stream must hold valid and its payload until
    ``ready`` (checked at every clock edge)."""

    async def monitor(ctx: Any) -> None:
        pending = None
        cycle = 0
        async for _, _, valid, ready, payload in ctx.tick().sample(
            stream.valid, stream.ready, stream.payload
        ):
            if pending is not None and (not valid or payload != pending):
                errors.append(f"cycle {cycle}: valid={valid}, payload changed={payload != pending}")
            pending = payload if valid and not ready else None
            cycle += 1

    return monitor


def rtl_stream(
    dut: wiring.Component, payloads: Sequence[Any], *, p_idle: float, seed: int
) -> tuple[list[Any], list[int], list[int]]:
    """Send ``payloads`` into ``dut.i`` and collect as many from ``dut.o``, with random idle
    cycles on both sides. Returns (outputs, cycle of each input transfer, cycle of each output
    transfer)."""
    outputs: list[Any] = []
    put_at: list[int] = []
    got_at: list[int] = []
    errors: list[str] = []
    cycle = [0]

    limit = 20 * len(payloads) + 200  # a lost or stuck transfer must fail, not hang

    async def clock_counter(ctx: Any) -> None:
        while True:
            await ctx.tick()
            cycle[0] += 1
            assert cycle[0] < limit, (
                f"stuck after {cycle[0]} cycles: {len(put_at)} in, {len(outputs)} out"
            )

    async def producer(ctx: Any) -> None:
        rng = random.Random(seed)
        for payload in payloads:
            await idle(ctx, rng, p_idle)
            await stream_put(ctx, dut.i, payload)
            put_at.append(cycle[0] - 1)

    async def consumer(ctx: Any) -> None:
        rng = random.Random(seed + 1)
        for _ in payloads:
            await idle(ctx, rng, p_idle)
            outputs.append(await stream_get(ctx, dut.o))
            got_at.append(cycle[0] - 1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(clock_counter, background=True)
    sim.add_testbench(stream_monitor(dut.o, errors), background=True)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert not errors, errors[:5]
    return outputs, put_at, got_at


def ints(rows: np.ndarray) -> list[list[int]]:
    return [[int(v) for v in row] for row in rows]


def mask_int(row: np.ndarray) -> int:
    return sum(1 << f for f, on in enumerate(row) if on)


def assert_equal(name: str, got: np.ndarray, want: np.ndarray, labels: Sequence[str]) -> None:
    got, want = np.asarray(got), np.asarray(want)
    bad = np.flatnonzero((got != want).reshape(len(got), -1).any(axis=1))
    detail = "\n".join(
        f"#{k} ({labels[k]}): got {got[k].tolist()} want {want[k].tolist()}" for k in bad[:5]
    )
    assert not len(bad), f"{name}: {len(bad)} of {len(got)} differ\n{detail}"


# -- preprocessor ------------------------------------------------------------------------------


def rtl_preprocess(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(se field, q, sign, invalid) from the combinational BlockPreprocessor."""
    dut = BlockPreprocessor(bits.shape[1])
    out: list[data.Const] = []

    async def testbench(ctx: Any) -> None:
        for row in ints(bits):
            ctx.set(dut.i.payload, {"x": row})
            out.append(ctx.get(dut.o.payload))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    b = bits.shape[1]
    return (
        np.array([int(p.se) for p in out]),
        np.array([[int(p.q[i]) for i in range(b)] for p in out]),
        np.array([[int(p.sign[i]) for i in range(b)] for p in out]),
        np.array([bool(p.invalid) for p in out]),
    )


def check_preprocess(bits: np.ndarray, labels: Sequence[str]) -> None:
    se, q, sign, invalid = rtl_preprocess(bits)
    want_se, want_q, want_sign, want_invalid = ref_preprocess(bits)
    assert_equal("invalid", invalid, want_invalid, labels)
    assert_equal("sign", sign, want_sign, labels)
    ok = ~want_invalid  # se and q are unspecified for NaN/Inf blocks
    ok_labels = [lab for lab, v in zip(labels, ok, strict=True) if v]
    assert_equal("se", se[ok], want_se[ok], ok_labels)
    assert_equal("q", q[ok], want_q[ok], ok_labels)


@pytest.mark.parametrize("block", [16, 64])
def test_preprocessor_adversarial(block: int) -> None:
    vs = frontend_vectors("dfp4", block, "lut", 40, seed=block)
    step = 1 if block == 16 else 3  # pysim is slow on wide blocks: a third of them at B = 64
    bits, labels = vs.bits[::step], vs.labels[::step]
    assert {"zeros", "subnormal", "max_65504", "powers_of_two", "below_powers_of_two",
            "lut_ties", "nan_inf"} <= set(labels)
    check_preprocess(bits, labels)


def test_preprocessor_exhaustive_sample() -> None:
    """Every 40th block of the exhaustive (element, SE) sweep (all of it runs on Verilator)."""
    bits, _ = preprocessor_exhaustive_vectors(16, seed=3)
    sample = bits[::40]
    check_preprocess(sample, ["exhaustive"] * len(sample))


def test_preprocessor_handshake_passes_through() -> None:
    dut = BlockPreprocessor(16)

    async def testbench(ctx: Any) -> None:
        for valid in (0, 1):
            for ready in (0, 1):
                ctx.set(dut.i.valid, valid)
                ctx.set(dut.o.ready, ready)
                assert ctx.get(dut.o.valid) == valid
                assert ctx.get(dut.i.ready) == ready

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()


def test_preprocessor_specials() -> None:
    """Hand-checked values: -0 keeps sign 1; 65504 gives SE 13 (field 29), q 31; the smallest
    subnormal alone gives SE -16 (field 0), q 0."""
    blocks = np.zeros((3, 16), np.uint16)
    blocks[0, :] = 0x8000
    blocks[1, 0] = 0x7BFF
    blocks[2, 5] = 0x0001
    se, q, sign, invalid = rtl_preprocess(blocks)
    assert se.tolist() == [0, 29, 0] and not invalid.any()
    assert sign[0].tolist() == [1] * 16 and q[1, 0] == 31 and q[2].tolist() == [0] * 16


# -- selector ----------------------------------------------------------------------------------


def selector_payloads(bits: np.ndarray, masks: np.ndarray) -> list[dict]:
    """Selector inputs built from golden's preprocessing (independent of the RTL one)."""
    se, q, sign, invalid = ref_preprocess(bits)
    return [
        {"block": {"se": int(se[n]), "q": ints(q[n:n + 1])[0], "sign": ints(sign[n:n + 1])[0],
                   "invalid": int(invalid[n])}, "mask": mask_int(masks[n])}
        for n in range(len(bits))
    ]


def rtl_select(dut: FormatSelector, bits: np.ndarray, masks: np.ndarray, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dialect, cost, passed-along q) per block."""
    outs, _, _ = rtl_stream(dut, selector_payloads(bits, masks), p_idle=0.4, seed=seed)
    b = bits.shape[1]
    return (
        np.array([int(p.dialect) for p in outs]),
        np.array([int(p.cost) for p in outs]),
        np.array([[int(p.block.q[i]) for i in range(b)] for p in outs]),
    )


def ref_select(bits: np.ndarray, masks: np.ndarray, book: str, mode: str) -> Expected:
    return ref_frontend(bits, masks, book, mode)


def selector_vectors(book: str, block: int, mode: str, seed: int, n: int = 40):
    vs = frontend_vectors(book, block, mode, 10, seed)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(vs), n, replace=False)
    keep = [k for k in pick if vs.labels[k] != "nan_inf"]
    bits, masks = vs.bits[keep], vs.masks[keep]
    masks[:3] = False  # all-zero masks: treated as all ones
    return bits, masks, [vs.labels[k] for k in keep]


@pytest.mark.parametrize(
    ("book", "block", "per_cycle"), [("dfp4", 16, 4), ("dfp4", 16, 16), ("sd32", 16, 8)]
)
def test_selector_lut(book: str, block: int, per_cycle: int) -> None:
    bits, masks, labels = selector_vectors(book, block, "lut", seed=per_cycle)
    dut = FormatSelector(block, book, "lut", per_cycle)
    dialect, cost, q = rtl_select(dut, bits, masks, seed=1)
    want = ref_select(bits, masks, book, "lut")
    assert_equal("dialect", dialect, want.dialect, labels)
    assert_equal("cost", cost, want.cost, labels)
    assert_equal("block.q", q, want.q, labels)
    assert want.tied.sum() >= 5  # the lowest-id tie rule is exercised


def test_selector_err_one_dialect_per_group() -> None:
    """One-hot masks, one per dialect, on uniform-q blocks: cost = B·ERR[f][q] (a slice of
    the exhaustive Verilator test)."""
    vs = exhaustive_q_vectors(get_formatbook("dfp4"), 16, seed=5)
    pick = np.arange(0, len(vs), 7)  # every dialect, q values spread
    bits, masks = vs.bits[pick], vs.masks[pick]
    dut = FormatSelector(16, "dfp4", "lut", 4)
    dialect, cost, _ = rtl_select(dut, bits, masks, seed=2)
    err = build_luts("dfp4").err.astype(np.int64)
    f, q = pick // Q_LEVELS, pick % Q_LEVELS
    assert dialect.tolist() == f.tolist()
    assert cost.tolist() == (16 * err[f, q]).tolist()
    assert cost.tolist() == ref_select(bits, masks, "dfp4", "lut").cost.tolist()


def test_selector_two_stage_ignores_mask() -> None:
    bits, masks, labels = selector_vectors("dfp4", 16, "two-stage", seed=9)
    dut = FormatSelector(16, "dfp4", "two-stage", 16)
    dialect, cost, _ = rtl_select(dut, bits, masks, seed=3)
    want = ref_select(bits, None, "dfp4", "two-stage")
    assert_equal("dialect", dialect, want.dialect, labels)
    assert cost.tolist() == [0] * len(bits)
    assert {"two_stage_ties"} & set(labels)


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("stages", [1, 2, 3, 4])
@pytest.mark.parametrize("block", [16, 32])
def test_selector_two_stage_pipelined(block: int, stages: int, raw: bool) -> None:
    """Two-stage selection with ``stages`` registers spread over its evaluation (plain and
    ``raw``, the lane's FP16 input): dialect, cost 0 and the passed-along q bit for bit under
    random back-pressure, then with both sides always ready a block every cycle, each out
    C + 1 + stages = 2 + stages cycles after it went in."""
    bits, masks, labels = selector_vectors("dfp4", block, "two-stage", seed=10 * block + stages)
    want = ref_select(bits, None, "dfp4", "two-stage")
    payloads = ([{"x": row, "mask": mask_int(mask)} for row, mask in zip(ints(bits), masks,
                                                                        strict=True)]
                if raw else selector_payloads(bits, masks))
    for p_idle in (0.4, 0.0):
        dut = FormatSelector(block, "dfp4", "two-stage", 16, stages=stages, raw=raw)
        outs, put_at, got_at = rtl_stream(dut, payloads, p_idle=p_idle, seed=stages)
        assert_equal("dialect", np.array([int(p.dialect) for p in outs]), want.dialect, labels)
        assert_equal("block.q", np.array([[int(p.block.q[i]) for i in range(block)]
                                          for p in outs]), want.q, labels)
        assert [int(p.cost) for p in outs] == [0] * len(bits)
    assert dut.latency == 2 + stages
    assert np.diff(put_at).tolist() == [1] * (len(bits) - 1)
    assert [g - p for p, g in zip(put_at, got_at, strict=True)] == [dut.latency] * len(bits)


def test_selector_all_zero_mask_is_whole_formatbook() -> None:
    vs = frontend_vectors("dfp4", 16, "lut", 10, seed=4)
    bits = vs.bits[[k for k, lab in enumerate(vs.labels) if lab == "gaussian"][:6]]
    dut = FormatSelector(16, "dfp4", "lut", 4)
    zero = np.zeros((len(bits), 16), bool)
    dialect, _, _ = rtl_select(dut, bits, zero, seed=4)
    want = ref_select(bits, np.ones_like(zero), "dfp4", "lut")
    assert dialect.tolist() == want.dialect.tolist()


# -- code quantizer ----------------------------------------------------------------------------


def rtl_code_quantize(bits: np.ndarray, dialects: np.ndarray, book: str
                      ) -> dict[str, np.ndarray]:
    b = bits.shape[1]
    se, q, sign, invalid = ref_preprocess(bits)
    payloads = [
        {"block": {"se": int(se[n]), "q": ints(q[n:n + 1])[0], "sign": ints(sign[n:n + 1])[0],
                   "invalid": int(invalid[n])}, "dialect": int(dialects[n])}
        for n in range(len(bits))
    ]
    outs, _, _ = rtl_stream(CodeQuantizer(b, book), payloads, p_idle=0.4, seed=6)
    return {
        "codes": np.array([[int(p.codes[i]) for i in range(b)] for p in outs]),
        "se": np.array([int(p.se) for p in outs]),
        "dialect": np.array([int(p.dialect) for p in outs]),
        "invalid": np.array([bool(p.invalid) for p in outs]),
    }


@pytest.mark.parametrize("book", ["dfp4", "sd32"])
def test_code_quantizer(book: str) -> None:
    """Random forced dialects (golden with a one-hot candidate set) and NaN/Inf blocks."""
    vs = frontend_vectors(book, 16, "lut", 20, seed=11)
    rng = np.random.default_rng(11)
    pick = rng.choice(len(vs), 50, replace=False)
    bits, labels = vs.bits[pick], [vs.labels[k] for k in pick]
    k = get_formatbook(book).size
    dialects = rng.integers(0, k, len(bits))
    onehot = np.eye(k, dtype=bool)[dialects]
    want = ref_frontend(bits, onehot, book, "lut")
    got = rtl_code_quantize(bits, dialects, book)
    assert want.invalid.any()
    assert_equal("codes", got["codes"], want.codes, labels)
    assert_equal("se", got["se"], want.se, labels)
    assert_equal("dialect", got["dialect"], want.dialect, labels)
    assert_equal("invalid", got["invalid"], want.invalid, labels)


# -- block quantizer ---------------------------------------------------------------------------


def rtl_block_quantize(dut: BlockQuantizer, bits: np.ndarray, masks: np.ndarray, *,
                       p_idle: float, seed: int):
    payloads = [{"x": ints(bits[n:n + 1])[0], "mask": mask_int(masks[n])}
                for n in range(len(bits))]
    outs, put_at, got_at = rtl_stream(dut, payloads, p_idle=p_idle, seed=seed)
    b = bits.shape[1]
    got = {
        "codes": np.array([[int(p.codes[i]) for i in range(b)] for p in outs]),
        "se": np.array([int(p.se) for p in outs]),
        "dialect": np.array([int(p.dialect) for p in outs]),
        "invalid": np.array([bool(p.invalid) for p in outs]),
    }
    return got, put_at, got_at


@pytest.mark.parametrize(("mode", "per_cycle"), [("lut", 4), ("two-stage", 16)])
def test_block_quantizer_backpressure(mode: str, per_cycle: int) -> None:
    vs = frontend_vectors("dfp4", 16, mode, 20, seed=21)
    rng = np.random.default_rng(21)
    pick = np.concatenate([
        [k for k, lab in enumerate(vs.labels) if lab == "nan_inf"][:4],
        rng.choice(len(vs), 56, replace=False),
    ])
    bits, masks, labels = vs.bits[pick], vs.masks[pick], [vs.labels[k] for k in pick]
    dut = BlockQuantizer(16, "dfp4", mode, per_cycle)
    got, _, _ = rtl_block_quantize(dut, bits, masks, p_idle=0.5, seed=7)
    want = ref_frontend(bits, masks, "dfp4", mode)
    for name in ("codes", "se", "dialect", "invalid"):
        assert_equal(name, got[name], getattr(want, name), labels)


@pytest.mark.parametrize("config", ["small", "default", "blockdialect"])
def test_block_quantizer_latency_and_interval(config: str) -> None:
    """Always valid and ready: a block every C cycles, each out C + 2 + selector_stages cycles
    after it went in (rtl.timing.Pipeline.quantizer_latency; default: 4 selector stages)."""
    cfg = load_config(REPO_ROOT / "configs" / f"{config}.toml")
    dut = BlockQuantizer.from_config(cfg)
    c = cfg.selector_cycles
    latency = Pipeline.of(cfg).quantizer_latency(c)
    assert latency == c + 2 + cfg.selector_stages
    assert (dut.latency, dut.initiation_interval) == (latency, c)
    b = cfg.block
    rng = np.random.default_rng(0)
    bits = np.array([to_bits(rng.standard_normal(b)) for _ in range(12)])
    masks = random_masks(cfg.book(), len(bits), rng)
    got, put_at, got_at = rtl_block_quantize(dut, bits, masks, p_idle=0.0, seed=0)
    assert np.diff(put_at).tolist() == [c] * (len(bits) - 1)
    assert [g - p for p, g in zip(put_at, got_at, strict=True)] == [latency] * len(bits)
    want = ref_frontend(bits, masks, cfg.book(), cfg.select)
    assert got["dialect"].tolist() == want.dialect.tolist()
    assert got["codes"].tolist() == want.codes.tolist()


def to_bits(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).view(np.uint16)


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (lambda: BlockPreprocessor(24), "block"),
        (lambda: BlockPreprocessor(True), "block"),
        (lambda: FormatSelector(32, "nope"), "formatbook"),
        (lambda: FormatSelector(32, "dfp4", "exact"), "mode"),
        (lambda: FormatSelector(32, "sd32", "two-stage", 32), "mode"),
        (lambda: FormatSelector(32, "dfp4", "lut", 3), "formats_per_cycle"),
        (lambda: FormatSelector(32, "dfp4", "lut", 0), "formats_per_cycle"),
        (lambda: FormatSelector(32, "dfp4", "lut", 32), "formats_per_cycle"),
        (lambda: CodeQuantizer(8, "dfp4"), "block"),
        (lambda: BlockQuantizer(32, "sd32", "lut", 5), "formats_per_cycle"),
    ],
)
def test_parameters_are_validated(make, param: str) -> None:
    with pytest.raises(ValueError, match=f"^{param}:"):
        make()


@pytest.mark.parametrize("config", ["small", "default", "large", "blockdialect"])
def test_from_config(config: str) -> None:
    cfg = load_config(REPO_ROOT / "configs" / f"{config}.toml")
    dut = BlockQuantizer.from_config(cfg)
    assert (dut.block, dut.formatbook.name, dut.mode) == (cfg.block, cfg.formatbook, cfg.select)
    assert dut.initiation_interval == cfg.selector_cycles
    assert dut.latency == cfg.selector_cycles + 2 + cfg.selector_stages
    assert dut.latency == Pipeline.of(cfg).quantizer_latency(cfg.selector_cycles)
    Fragment.get(dut, None)  # every shipped configuration elaborates
