"""Baselines (SPEC §8) against independent recomputations; E2M1/E4M3 against ml_dtypes."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from conftest import all_finite_fp16

from semdialect.golden import quantize
from semdialect.golden.formats import e2m1_encode, e4m3_encode

E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def e2m1_value(code: int) -> float:
    v = E2M1_VALUES[code & 7]
    return -v if code & 8 else v


def ml_e2m1(v: np.ndarray) -> np.ndarray:
    """Oracle: ml_dtypes' float4_e2m1fn (RNE, saturating), back to float32."""
    return np.asarray(v, np.float32).astype(ml_dtypes.float4_e2m1fn).astype(np.float32)


def test_e2m1_rounding_equals_ml_dtypes_on_every_fp16_value() -> None:
    x = all_finite_fp16().astype(np.float32)
    mag = e2m1_encode(x)
    got = np.array(E2M1_VALUES, np.float32)[mag]
    got = np.copysign(got, x)
    want = ml_e2m1(x)
    assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist()


def test_e4m3_rounding_equals_ml_dtypes() -> None:
    x = all_finite_fp16().astype(np.float32)
    x = x[(x >= 0) & (x <= 448) & ~np.signbit(x)]
    got = e4m3_encode(x)
    want = x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    assert np.array_equal(got, want)


def _blocks(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    scale = 2.0 ** rng.integers(-22, 12, size=(rows, 1))
    x = rng.standard_t(3, (rows, k)) * scale
    x[0, :16] = 0.0
    x[1, :32] = -0.0
    x[2, :32] = np.resize([0.25, -0.75, 1.25, 1.75, -2.5, 3.5, 5.0, 4.0], 32)  # E2M1 ties
    x[3, :32] = np.resize([2.5, 0.5, 1.0, -4.0], 32)  # max 4 = a power of two
    return np.clip(x, -65504, 65504).astype(np.float16)


def test_mxfp4_matches_independent_recomputation(rng) -> None:
    x = _blocks(rng, 40, 128)
    q = quantize(x, "mxfp4")
    for r in range(x.shape[0]):
        for b in range(4):
            blk = x[r, 32 * b: 32 * b + 32].astype(np.float32)
            amax = float(np.max(np.abs(blk)))
            e = math.frexp(amax)[1] - 1 - 2 if amax else -127
            assert q.scale[r, b] == e + 127
            want = ml_e2m1(blk / np.float32(2.0**e) if amax else np.zeros(32, np.float32))
            codes = q.codes[r, 32 * b: 32 * b + 32]
            got = np.array([e2m1_value(c) for c in codes], np.float32)
            assert got.view(np.uint32).tolist() == np.copysign(want, blk).view(np.uint32).tolist()
            deq = (got * 2.0**e).astype(np.float32) if amax else np.copysign(got, blk)
            got_deq = q.dequant[r, 32 * b: 32 * b + 32]
            assert got_deq.view(np.uint32).tolist() == deq.view(np.uint32).tolist()


def test_mxint8_matches_independent_recomputation(rng) -> None:
    x = _blocks(rng, 40, 64)
    x[5, :32] = np.resize([127.5, -0.5, 1.5, 2.5, 128.0], 32)  # RNE ties, clamp to 127
    q = quantize(x, "mxint8")
    ints = q.codes.view(np.int8)
    for r in range(x.shape[0]):
        for b in range(2):
            blk = x[r, 32 * b: 32 * b + 32].astype(np.float64)
            amax = float(np.max(np.abs(blk)))
            e = math.frexp(amax)[1] - 1 if amax else -127
            assert q.scale[r, b] == e + 127
            want = [max(-127, min(127, round(v * 2.0 ** (6 - e)))) if amax else 0 for v in blk]
            assert ints[r, 32 * b: 32 * b + 32].tolist() == want  # Python round() is RNE
            deq = [w * 2.0 ** (e - 6) for w in want]
            assert q.dequant[r, 32 * b: 32 * b + 32].tolist() == deq
            assert not np.any(np.signbit(q.dequant[r, 32 * b: 32 * b + 32][np.array(want) == 0]))


def test_nvfp4_matches_independent_recomputation(rng) -> None:
    x = _blocks(rng, 12, 64)
    q = quantize(x, "nvfp4")
    f32 = np.float32
    ts = f32(f32(np.max(np.abs(x.astype(np.float64)))) / f32(448.0 * 6.0))
    assert q.tensor_scale == ts
    for r in range(x.shape[0]):
        for b in range(4):
            blk = x[r, 16 * b: 16 * b + 16].astype(np.float32)
            bs = f32(np.max(np.abs(blk)) / f32(6.0))
            s = np.clip(f32(bs / ts), f32(2.0**-6), f32(448.0))
            s8 = np.array([s], np.float32).astype(ml_dtypes.float8_e4m3fn)
            assert q.scale[r, b] == s8.view(np.uint8)[0]
            total = f32(ts * s8.astype(np.float32)[0])
            recip = f32(f32(f32(1) / ts) / s8.astype(np.float32)[0])
            want = ml_e2m1(np.clip(blk * recip, -6, 6))
            codes = q.codes[r, 16 * b: 16 * b + 16]
            got = np.array([e2m1_value(c) for c in codes], np.float32)
            assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist()
            deq = (want * total).astype(np.float32)
            assert q.dequant[r, 16 * b: 16 * b + 16].view(np.uint32).tolist() == deq.view(
                np.uint32
            ).tolist()


def test_nvfp4_all_zero_tensor_gives_zeros() -> None:
    q = quantize(np.zeros((2, 32), np.float16), "nvfp4")
    assert q.tensor_scale == 0 and not q.codes.any() and not q.scale.any()
    assert not q.dequant.any()


@pytest.mark.parametrize("b", [16, 32, 64])
def test_int4_matches_independent_recomputation(rng, b: int) -> None:
    x = _blocks(rng, 20, 128)
    q = quantize(x, "int4", block=b)
    f32 = np.float32
    for r in range(x.shape[0]):
        for j in range(128 // b):
            blk = x[r, b * j: b * j + b].astype(np.float32)
            scale = f32(np.max(np.abs(blk)) / f32(7))
            assert q.scale[r, j] == scale
            if scale == 0:
                want = np.zeros(b, np.int64)
            else:
                want = np.clip(np.rint((blk / scale).astype(np.float32)), -7, 7).astype(np.int64)
            codes = q.codes[r, b * j: b * j + b]
            assert codes.tolist() == (want & 0xF).tolist()
            assert q.dequant[r, b * j: b * j + b].tolist() == (want * scale).astype(f32).tolist()


def test_dfp4_dialect7_is_not_mxfp4() -> None:
    """Same magnitudes, different tie rule: 2.5 rounds up to 3 in dialect 7, to 2 in MXFP4."""
    x = np.resize(np.array([6.0, 2.5], np.float16), 32)
    mx = quantize(x, "mxfp4")
    d7 = quantize(x, "dfp4", candidates=np.eye(16, dtype=bool)[7])
    assert mx.dequant[1] == 2.0 and d7.dequant[1] == 3.0


def test_bits_per_element() -> None:
    x = np.ones((1, 64), np.float16)
    want = {"dfp4": 4 + 9 / 32, "sd32": 4 + 10 / 32, "mxfp4": 4.25, "mxint8": 8.25,
            "nvfp4": 4.5, "int4": 5.0}
    for fmt, bits in want.items():
        assert quantize(x, fmt).bits_per_element == bits, fmt
    assert quantize(x, "nvfp4").tensor_bits == 32
    assert quantize(x, "int4", block=16).bits_per_element == 6.0
    assert quantize(x, "sd32", block=64).bits_per_element == 4 + 10 / 64


@pytest.mark.parametrize("fmt, block", [("mxfp4", 16), ("mxint8", 64), ("nvfp4", 32)])
def test_fixed_block_formats_reject_other_blocks(fmt: str, block: int) -> None:
    with pytest.raises(ValueError, match="block"):
        quantize(np.ones((1, 64)), fmt, block=block)
