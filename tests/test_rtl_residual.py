# amaranth: UnusedElaboratable=no
"""``amaranth.sim`` tests of the hardware residual (SPEC §6): :mod:`rtl.residual` alone and
:class:`~rtl.block_quantizer.BlockQuantizer` with ``residual=True``.

``ref_*`` functions give what the hardware must produce — the golden model
(:func:`golden.quantize.quantize`, :func:`golden.decompose.residual`, through
:func:`tb.frontend_ref.ref_frontend` for codes and metadata) plus the one hardware rule golden
has no counterpart for (SPEC §6 [ours]: an invalid block's residual is the block itself);
``rtl_*`` functions run the simulation. Streams are driven with random idle cycles on both
sides (back-pressure) and a monitor checks the output stream's rules.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from amaranth.lib import wiring
from amaranth.sim import Simulator

from semdialect.golden.decompose import residual
from semdialect.golden.formatbook import get_formatbook
from semdialect.golden.quantize import quantize
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.layouts import (
    masked_fp16_block,
    quantized_block,
    quantized_residual_block,
    salient_masked_fp16_block,
)
from semdialect.rtl.residual import BlockResidual
from semdialect.tb.frontend_ref import (
    effective_masks,
    frontend_vectors,
    is_invalid,
    preprocessor_exhaustive_vectors,
    random_masks,
    ref_frontend,
    to_fp16_bits,
)
from semdialect.tb.generate import LINT_WAIVERS
from semdialect.tb.streams import OutputMonitor
from semdialect.tb.verilator import lint

REPO_ROOT = Path(__file__).resolve().parents[1]

# Blocks below the SE clamp are included on purpose (their FlushWarning is tested elsewhere).
pytestmark = pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")

SIGN = np.uint16(0x8000)
EXP_MASK = np.uint16(0x7C00)

#: (B, formatbook, mode, P) of the BlockQuantizer runs
CONFIGS = [(16, "dfp4", "lut", 4), (32, "sd32", "lut", 32), (32, "dfp4", "two-stage", 16)]

# -- references ----------------------------------------------------------------------------------


def ref_residual(bits: np.ndarray, masks: np.ndarray | None, book: str, mode: str) -> np.ndarray:
    """(n, B) uint16: golden's fp16(fp32(x) − deq(Q(x))) per block, Q with the candidate set
    the hardware uses; an invalid (NaN/Inf) block's residual is the block (SPEC §6 [ours])."""
    bits = np.asarray(bits, np.uint16)
    out = bits.copy()
    ok = ~is_invalid(bits)
    if ok.any():
        x16 = bits[ok].view(np.float16)
        cand = effective_masks(masks, get_formatbook(book), mode)
        qt = quantize(x16, book, select=mode, block=bits.shape[1],
                      candidates=None if cand is None else cand[ok][:, None, :])
        out[ok] = residual(x16, qt).view(np.uint16)
    return out


def residual_vectors(book: str, block: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Corner blocks for the residual on top of :func:`tb.frontend_ref.frontend_vectors`'
    adversarial classes: all −0.0, ±65504, single outliers over small values, SE-clamp
    flushes, residuals in the FP16 subnormal range, FP4-grid ties and NaN/Inf."""
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, str]] = []

    def signs(n: int = block) -> np.ndarray:
        return (rng.integers(0, 2, n) << 15).astype(np.uint16)

    out.append((np.zeros(block, np.uint16), "zeros"))
    out.append((np.full(block, SIGN, np.uint16), "negative_zeros"))
    out.append((np.full(block, 0x7BFF, np.uint16) | signs(), "max_65504"))
    for scale in (2.0**-10, 1.0, 2.0**8):  # one outlier over small values: most codes are 0
        blk = to_fp16_bits(rng.standard_normal(block) * scale)
        blk[rng.integers(0, block)] = to_fp16_bits(np.array([scale * 2.0**9]))[0]
        out.append((blk | signs(), "outlier"))
    for _ in range(2):  # SE clamps at -16 and every |x| < 2^-18: the block flushes to 0
        out.append((rng.integers(1, 64, block).astype(np.uint16) | signs(), "flush"))
    for top in (1, 2, 3, 4):  # normal x near 2^-14: residuals below 2^-14 are subnormal
        e = rng.integers(1, top + 1, block)
        blk = ((e << 10) | rng.integers(0, 1024, block)).astype(np.uint16)
        out.append((blk | signs(), "subnormal_residual"))
    for e in (-20, 0, 9):  # every FP4 (E2M1) midpoint under a maximum of 6 · 2^e
        mids = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
        blk = to_fp16_bits(rng.choice(mids, block) * 2.0**e)
        blk[rng.integers(0, block)] = to_fp16_bits(np.array([6.0 * 2.0**e]))[0]
        out.append((blk | signs(), "e2m1_ties"))
    blk = rng.integers(0, 0x7C00, block).astype(np.uint16)
    blk[rng.integers(0, block)] = 0xFC00  # -Inf
    out.append((blk | signs(), "nan_inf"))
    blk = np.full(block, SIGN, np.uint16)
    blk[-1] = 0x7E00  # NaN among -0.0
    out.append((blk, "nan_inf"))
    return np.array([b for b, _ in out], np.uint16), [lab for _, lab in out]


def vectors(book: str, block: int, mode: str, n_random: int, n_keep: int, seed: int
            ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n_keep`` of :func:`frontend_vectors` (every class kept) plus :func:`residual_vectors`,
    with candidate masks."""
    vs = frontend_vectors(book, block, mode, n_random, seed)
    rng = np.random.default_rng(seed)
    firsts = [vs.labels.index(lab) for lab in dict.fromkeys(vs.labels)]
    rest = np.setdiff1d(np.arange(len(vs)), firsts)
    pick = np.concatenate([firsts, rng.choice(rest, n_keep - len(firsts), replace=False)])
    extra, extra_labels = residual_vectors(book, block, seed)
    bits = np.concatenate([vs.bits[pick], extra])
    masks = np.concatenate([vs.masks[pick], random_masks(get_formatbook(book), len(extra), rng)])
    return bits, masks, [vs.labels[k] for k in pick] + extra_labels


# -- helpers -------------------------------------------------------------------------------------


def ints(row: np.ndarray) -> list[int]:
    return [int(v) for v in row]


def mask_int(row: np.ndarray) -> int:
    return sum(1 << f for f, on in enumerate(row) if on)


def assert_equal(name: str, got: np.ndarray, want: np.ndarray, labels: Sequence[str]) -> None:
    got, want = np.asarray(got), np.asarray(want)
    bad = np.flatnonzero((got != want).reshape(len(got), -1).any(axis=1))
    detail = "\n".join(
        f"#{k} ({labels[k]}): got {got[k].tolist()} want {want[k].tolist()}" for k in bad[:5]
    )
    assert not len(bad), f"{name}: {len(bad)} of {len(got)} differ\n{detail}"


def rtl_stream(dut: wiring.Component, payloads: Sequence[dict], *, p_idle: float, seed: int
               ) -> tuple[list[Any], list[int], list[int]]:
    """Send ``payloads`` into ``dut.i``, collect as many from ``dut.o``, with random idle
    cycles on both sides (probability ``p_idle`` each). Returns (outputs, clock edge of each
    input transfer, clock edge of each output transfer); ``o``'s stream rules are checked at
    every edge (:class:`tb.streams.OutputMonitor`)."""
    outputs: list[Any] = []
    put_at: list[int] = []
    got_at: list[int] = []
    monitor = OutputMonitor("o")
    limit = 20 * len(payloads) + 200  # a lost or stuck transfer must fail, not hang

    async def producer(ctx: Any) -> None:
        rng = random.Random(seed)
        for payload in payloads:
            if rng.random() < p_idle:
                await ctx.tick().repeat(rng.choice([1, 1, 2, 3, 5, 8]))
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, payload)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx: Any) -> None:
        rng = random.Random(seed + 1)
        ctx.set(dut.o.ready, rng.random() >= p_idle)
        edge = 0
        async for _, _, i_valid, i_ready, o_valid, o_ready, payload in ctx.tick().sample(
            dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload
        ):
            if i_valid and i_ready:
                put_at.append(edge)
            if monitor.transferred(edge, payload if o_valid else None, bool(o_ready)):
                outputs.append(payload)
                got_at.append(edge)
            if len(outputs) == len(payloads):
                return
            assert edge < limit, f"stuck after {edge} cycles: {len(put_at)} in, {len(outputs)} out"
            ctx.set(dut.o.ready, rng.random() >= p_idle)
            edge += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert len(put_at) == len(payloads)
    return outputs, put_at, got_at


def rtl_block_residual(book: str, bits: np.ndarray, quantized: dict[str, np.ndarray]
                       ) -> np.ndarray:
    """(n, B) uint16 residuals of the combinational :class:`BlockResidual` for the given
    blocks and their quantized blocks (``codes``, ``se`` field, ``dialect``, ``invalid``)."""
    dut = BlockResidual(bits.shape[1], book)
    out: list[list[int]] = []

    async def testbench(ctx: Any) -> None:
        for n, row in enumerate(bits):
            ctx.set(dut.x, ints(row))
            ctx.set(dut.quantized, {
                "codes": ints(quantized["codes"][n]), "se": int(quantized["se"][n]),
                "dialect": int(quantized["dialect"][n]), "invalid": int(quantized["invalid"][n]),
            })
            out.append([int(v) for v in ctx.get(dut.residual)])

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(out, np.uint16)


def quantized_of(want: Any) -> dict[str, np.ndarray]:
    return {"codes": want.codes, "se": want.se, "dialect": want.dialect, "invalid": want.invalid}


# -- the combinational residual --------------------------------------------------------------


@pytest.mark.parametrize("book", ["dfp4", "sd32"])
def test_block_residual_forced_dialects(book: str) -> None:
    """Every FP16 value under every block maximum (a sample of the exhaustive sweep) and the
    adversarial blocks, each quantized with a random forced dialect (golden, one-hot
    candidate set): the bound d ≤ 2·m of :mod:`rtl.residual` must hold for every dialect,
    clipping ones included."""
    rng = np.random.default_rng(17)
    exhaustive, _ = preprocessor_exhaustive_vectors(16, seed=17)
    sample = exhaustive[rng.choice(len(exhaustive), 1500, replace=False)]
    adversarial, _, labels = vectors(book, 16, "lut", 40, 120, seed=17)
    bits = np.concatenate([sample, adversarial])
    labels = ["exhaustive"] * len(sample) + labels
    k = get_formatbook(book).size
    onehot = np.eye(k, dtype=bool)[rng.integers(0, k, len(bits))]
    want = ref_frontend(bits, onehot, book, "lut")
    got = rtl_block_residual(book, bits, quantized_of(want))
    assert_equal("residual", got, ref_residual(bits, onehot, book, "lut"), labels)


def test_block_residual_invalid_is_input() -> None:
    """``invalid`` = 1 passes the block through, whatever the codes, SE and dialect say."""
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 1 << 16, (20, 16)).astype(np.uint16)
    quantized = {"codes": rng.integers(0, 16, (20, 16)), "se": rng.integers(0, 32, 20),
                 "dialect": rng.integers(0, 16, 20), "invalid": np.ones(20, bool)}
    assert np.array_equal(rtl_block_residual("dfp4", bits, quantized), bits)


# -- the block quantizer with residual=True --------------------------------------------------


def rtl_quantize_residual(dut: BlockQuantizer, bits: np.ndarray, masks: np.ndarray,
                          salient: np.ndarray, *, p_idle: float, seed: int
                          ) -> tuple[dict[str, np.ndarray], list[int], list[int]]:
    payloads = [{"x": ints(bits[n]), "mask": mask_int(masks[n]), "salient": int(salient[n])}
                for n in range(len(bits))]
    outs, put_at, got_at = rtl_stream(dut, payloads, p_idle=p_idle, seed=seed)
    got = {
        "codes": np.array([[int(c) for c in p.codes] for p in outs]),
        "se": np.array([int(p.se) for p in outs]),
        "dialect": np.array([int(p.dialect) for p in outs]),
        "invalid": np.array([bool(p.invalid) for p in outs]),
        "residual": np.array([[int(r) for r in p.residual] for p in outs], np.uint16),
        "salient": np.array([int(p.salient) for p in outs]),
    }
    return got, put_at, got_at


@pytest.mark.parametrize(("block", "book", "mode", "per_cycle"), CONFIGS)
def test_block_quantizer_residual(block: int, book: str, mode: str, per_cycle: int) -> None:
    """Random blocks of widely varying scale and the corner classes under random
    back-pressure: codes, SE, dialect, invalid as golden; residual bit for bit as
    golden.decompose.residual (the block itself if invalid); salient passed through."""
    n_keep = 200 if block == 16 else 120
    bits, masks, labels = vectors(book, block, mode, 200, n_keep, seed=block + per_cycle)
    rng = np.random.default_rng(block)
    salient = rng.integers(0, 2, len(bits))
    dut = BlockQuantizer(block, book, mode, per_cycle, residual=True)
    got, _, _ = rtl_quantize_residual(dut, bits, masks, salient, p_idle=0.5, seed=block)
    want = ref_frontend(bits, masks, book, mode)
    for name in ("codes", "se", "dialect", "invalid"):
        assert_equal(name, got[name], getattr(want, name), labels)
    want_r = ref_residual(bits, masks, book, mode)
    assert_equal("residual", got["residual"], want_r, labels)
    assert got["salient"].tolist() == salient.tolist()
    # the corners were really exercised
    normal_in = (bits & EXP_MASK) != 0
    subnormal_out = ((want_r & EXP_MASK) == 0) & ((want_r & 0x3FF) != 0)
    assert (normal_in & subnormal_out).sum() >= 10  # x - deq an FP16 subnormal
    assert ((bits == SIGN) & (want_r == 0)).sum() >= block  # -0.0 - (-0.0) = +0.0
    assert not (want_r[~want.invalid] == SIGN).any()  # no -0.0 residual of a valid block
    assert want.invalid.sum() >= 3 and np.array_equal(want_r[want.invalid], bits[want.invalid])
    flush = np.array([lab == "flush" for lab in labels])
    assert not (want.codes[flush] & 7).any() and np.array_equal(want_r[flush], bits[flush])
    assert {"lut_ties", "e2m1_ties", "subnormal", "max_65504", "outlier", "flush", "gaussian",
            "student_t"} <= set(labels)


@pytest.mark.parametrize(("block", "book", "mode", "per_cycle"), CONFIGS)
def test_residual_latency_and_interval(block: int, book: str, mode: str, per_cycle: int
                                       ) -> None:
    """Always valid and ready: a block every C cycles, each out C + 2 cycles after it went
    in, as without the residual path."""
    plain = BlockQuantizer(block, book, mode, per_cycle)
    dut = BlockQuantizer(block, book, mode, per_cycle, residual=True)
    c = plain.initiation_interval
    assert (dut.latency, dut.initiation_interval) == (plain.latency, c) == (c + 2, c)
    rng = np.random.default_rng(1)
    bits = to_fp16_bits(rng.standard_normal((8, block)) * 2.0 ** rng.integers(-20, 12, (8, 1)))
    masks = np.ones((8, get_formatbook(book).size), bool)
    salient = rng.integers(0, 2, 8)
    got, put_at, got_at = rtl_quantize_residual(dut, bits, masks, salient, p_idle=0.0, seed=0)
    assert np.diff(put_at).tolist() == [c] * (len(bits) - 1)
    assert [g - p for p, g in zip(put_at, got_at, strict=True)] == [c + 2] * len(bits)
    assert np.array_equal(got["residual"], ref_residual(bits, masks, book, mode))


# -- interface -----------------------------------------------------------------------------------


def test_residual_false_keeps_the_plain_ports() -> None:
    plain = BlockQuantizer(16, "dfp4", "lut", 4)
    assert not plain.residual
    assert plain.signature.members["i"].signature.members["payload"].shape == \
        masked_fp16_block(16, 16)
    assert plain.signature.members["o"].signature.members["payload"].shape == \
        quantized_block(16, 16)
    assert plain.signature == BlockQuantizer(16, "dfp4", "lut", 4, residual=False).signature
    dut = BlockQuantizer(16, "dfp4", "lut", 4, residual=True)
    assert dut.residual
    assert dut.signature.members["i"].signature.members["payload"].shape == \
        salient_masked_fp16_block(16, 16)
    assert dut.signature.members["o"].signature.members["payload"].shape == \
        quantized_residual_block(16, 16)


def test_new_layouts_extend_the_old_ones() -> None:
    """The existing fields keep their offsets; the new ones follow."""
    for old, new, extra in (
        (masked_fp16_block(32, 32), salient_masked_fp16_block(32, 32), ["salient"]),
        (quantized_block(32, 32), quantized_residual_block(32, 32), ["residual", "salient"]),
    ):
        assert list(new.members) == [*old.members, *extra]
        for name, field in old:
            assert new[name].offset == field.offset
    assert quantized_residual_block(16, 1).size == quantized_block(16, 1).size + 16 * 16 + 1


@pytest.mark.parametrize("value", [1, "yes", None])
def test_residual_parameter_is_validated(value: Any) -> None:
    with pytest.raises(ValueError, match="^residual:"):
        BlockQuantizer(16, "dfp4", residual=value)


def test_residual_lint(tmp_path: Path) -> None:
    """The B = 16 dfp4 frontend with the residual path is lint-clean under ``-Wall`` with the
    project's Amaranth-structural waivers."""
    made = cached_verilog("block_quantizer_residual", BlockQuantizer, (16, "dfp4", "lut", 4),
                          {"residual": True}, out_dir=tmp_path)
    assert made.copy is not None
    lint([made.copy], "block_quantizer_residual", LINT_WAIVERS)
