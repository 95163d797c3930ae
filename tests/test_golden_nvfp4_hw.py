"""The NVFP4 hardware GEMM contract (SPEC §8 [ours]) against an independent per-element
recomputation in exact rational arithmetic (``fractions``), and against the NVFP4 accuracy GEMM.

The reference below shares nothing with ``golden.gemm`` but the quantized codes, scale bytes and
tensor scales (golden's NVFP4 quantize, checked elsewhere against torchao): it decodes E2M1 and
E4M3 from their bit definitions, multiplies in ``Fraction``, rounds with its own integer RNE to
binary32 and accumulates element by element in plain Python.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from semdialect.golden import (
    gemm,
    nvfp4_hw_gemm,
    nvfp4_hw_gemm_quantized,
    quantize,
    quantize_weights,
)
from semdialect.golden.gemm import (
    nvfp4_hw_accumulate,
    nvfp4_hw_contributions,
    nvfp4_tensor_scale_product,
)

E2M1 = [Fraction(v) for v in ("0", "0.5", "1", "1.5", "2", "3", "4", "6")]


def e2m1(code: int) -> Fraction:
    return -E2M1[code & 7] if code & 8 else E2M1[code & 7]


def e4m3(byte: int) -> Fraction:
    """E4M3 (fn) value from its bits: subnormal m·2^-9, normal (1 + m/8)·2^(e - 7)."""
    e, man = (byte >> 3) & 15, byte & 7
    assert not byte & 0x80 and byte != 0x7F
    return Fraction(man, 512) if e == 0 else Fraction(8 + man, 8) * Fraction(2) ** (e - 7)


def rne32(v: Fraction) -> Fraction:
    """``v`` rounded to binary32 with round-to-nearest-even (finite range, subnormals kept)."""
    if v == 0:
        return Fraction(0)
    sign = -1 if v < 0 else 1
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2^e <= a < 2^(e+2)
    if Fraction(2) ** e > a:
        e -= 1
    elif Fraction(2) ** (e + 1) <= a:
        e += 1
    ulp = Fraction(2) ** (max(e, -126) - 23)
    n, rem = divmod(a, ulp)
    n = int(n)
    if rem > ulp / 2 or (rem == ulp / 2 and n % 2):
        n += 1
    out = n * ulp
    assert out < Fraction(2) ** 128, "overflow"
    return sign * out


def f32(v: Fraction) -> np.float32:
    out = np.float32(float(v))
    assert Fraction(float(out)) == v
    return out


def reference(qx, qw) -> np.ndarray:
    """SPEC §8 NVFP4 hardware contract, element by element in exact arithmetic."""
    cx = qx.codes.reshape(-1, qx.codes.shape[-1])
    cw = qw.codes
    sx = qx.scale.reshape(cx.shape[0], -1)
    sw = qw.scale
    k = cx.shape[1]
    tsp = rne32(Fraction(float(qx.tensor_scale)) * Fraction(float(qw.tensor_scale)))
    y = np.empty((cx.shape[0], cw.shape[0]), np.float32)
    for i in range(cx.shape[0]):
        for j in range(cw.shape[0]):
            acc = Fraction(0)
            for b in range(math.ceil(k / 16)):
                p = sum(
                    int(2 * e2m1(int(cx[i, t]))) * int(2 * e2m1(int(cw[j, t])))
                    for t in range(16 * b, min(k, 16 * b + 16))
                )
                assert abs(p) <= 16 * 12 * 12
                c = Fraction(p, 4) * e4m3(int(sx[i, b])) * e4m3(int(sw[j, b]))
                assert rne32(c) == c, "a block contribution must be exact in FP32"
                assert c == 0 or abs(c) >= Fraction(1, 2**126), "and normal"
                acc = rne32(acc + c)
            y[i, j] = f32(rne32(acc * tsp))
    return y.reshape(qx.codes.shape[:-1] + (cw.shape[0],))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(np.asarray(a, np.float32).view(np.uint32),
                          np.asarray(b, np.float32).view(np.uint32))


def random_operands(rng: np.random.Generator, m: int, k: int, n: int) -> tuple:
    x = rng.standard_t(3, (m, k)) * 2.0 ** rng.integers(-20, 8, (m, 1))
    w = rng.standard_normal((k, n)) * 2.0 ** rng.integers(-6, 6, (1, n))
    return (np.clip(x, -65504, 65504).astype(np.float16),
            np.clip(w, -65504, 65504).astype(np.float16))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_matches_exact_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w = random_operands(rng, 5, 80, 4)
    y = nvfp4_hw_gemm(x, w)
    qx, qw = quantize(x, "nvfp4", name="X"), quantize_weights(w, "nvfp4")
    assert same_bits(y, reference(qx, qw))
    acc = nvfp4_hw_accumulate(qx, qw)  # a PE's sum, before the drain's tensor-scale multiply
    assert same_bits(acc * nvfp4_tensor_scale_product(qx, qw), y)


def adversarial() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    k = 64
    x = rng.standard_normal((6, k)).astype(np.float16)
    w = rng.standard_normal((k, 3)).astype(np.float16)
    x[0] = 65504  # max FP16: |P| = 2304, scales 448
    x[1, :16] = 0  # a zero block: E4M3 floor 2^-6
    x[1, 16:32] = -0.0
    x[2] = np.resize([6e-8, -6e-8, 1e-7, 0], k)  # FP16 subnormals: block scale clamps at 2^-6
    x[3] = np.resize([0.25, -0.75, 1.25, 1.75, -2.5, 3.5, 5.0, 4.0], k)  # E2M1 ties
    x[4, :16] = 1000
    x[4, 16:] = -1e-3  # a large block, then small ones: accumulation rounding
    x[5] = np.resize([65504, -65504], k)  # exact cancellation to +0.0
    w[:, 0] = 65504
    w[:, 1] = np.resize([1, 1, -1, 1], k)
    return {
        "mixed": (x, w),
        "zero_x": (np.zeros((2, k), np.float16), w),
        "zero_w": (x, np.zeros((k, 2), np.float16)),
        "negative_zero_x": (np.full((2, k), -0.0, np.float16), w),
        "max": (np.full((2, k), 65504, np.float16), np.full((k, 2), -65504, np.float16)),
    }


@pytest.mark.parametrize("name", list(adversarial()))
def test_adversarial_matches_exact_reference(name: str) -> None:
    x, w = adversarial()[name]
    y = nvfp4_hw_gemm(x, w)
    qx, qw = quantize(x, "nvfp4", name="X"), quantize_weights(w, "nvfp4")
    want = reference(qx, qw)
    assert same_bits(y, want)
    if name.startswith("zero") or name.startswith("negative"):
        assert same_bits(y, np.zeros_like(y))  # +0.0, never -0.0


def test_subnormal_and_zero_e4m3_scales_are_exact() -> None:
    """Golden never makes them (the clamp [2^-6, 448], or 0 for an all-zero tensor), but the
    contract and the hardware handle every E4M3 byte 0..0x7E exactly."""
    rng = np.random.default_rng(3)
    x, w = random_operands(rng, 4, 128, 3)
    qx, qw = quantize(x, "nvfp4", name="X"), quantize_weights(w, "nvfp4")
    qx.scale[:] = rng.integers(0, 0x7F, qx.scale.shape)
    qw.scale[:] = rng.integers(0, 0x7F, qw.scale.shape)
    qx.scale[0, :4] = [0, 1, 7, 8]
    qw.scale[0, :4] = [0x7E, 1, 0, 9]
    assert same_bits(nvfp4_hw_gemm_quantized(qx, qw), reference(qx, qw))
    c = nvfp4_hw_contributions(qx, qw)
    nz = np.abs(c[c != 0])
    assert nz.min() >= 2.0**-20 and nz.max() < 2.0**27  # normal, as SPEC §8 proves


def test_leading_dims_pad_fp16_and_errors() -> None:
    rng = np.random.default_rng(5)
    x, w = random_operands(rng, 6, 40, 3)
    y = nvfp4_hw_gemm(x.reshape(2, 3, 40), w, pad=True)
    assert y.shape == (2, 3, 3)
    xp = np.pad(x, ((0, 0), (0, 8)))
    wp = np.pad(w, ((0, 8), (0, 0)))
    assert same_bits(y.reshape(6, 3), nvfp4_hw_gemm(xp, wp))
    h = nvfp4_hw_gemm(x, w, pad=True, out="fp16")
    assert h.dtype == np.float16 and np.array_equal(h, y.reshape(6, 3).astype(np.float16))
    with pytest.raises(ValueError, match="multiple of the block size 16"):
        nvfp4_hw_gemm(x, w)
    with pytest.raises(ValueError, match="X: NaN/Inf"):
        nvfp4_hw_gemm(np.full((1, 16), np.nan), np.ones((16, 1)))
    with pytest.raises(ValueError, match="W .*NaN/Inf"):
        nvfp4_hw_gemm(np.ones((1, 16)), np.full((16, 1), np.inf))
    with pytest.raises(ValueError, match="X: empty"):
        nvfp4_hw_gemm(np.ones((0, 16)), np.ones((16, 1)))
    with pytest.raises(ValueError, match="out"):
        nvfp4_hw_gemm(np.ones((1, 16)), np.ones((16, 1)), out="bf16")
    with pytest.raises(ValueError, match="must be an NVFP4 tensor"):
        nvfp4_hw_gemm_quantized(quantize(np.ones((1, 32)), "mxfp4"),
                                quantize(np.ones((1, 32)), "mxfp4"))


#: bound on the relative difference to the accuracy GEMM (measured 3.6e-6 here, SPEC §8)
MAX_REL_DIFF = 1e-5


def test_close_to_the_accuracy_gemm() -> None:
    """Both round the same exact dot product of the dequantized values differently: the hardware
    rounds once per k-block and once at the tensor-scale multiply, the accuracy contract rounds
    every dequantized element (fp32(e2m1 · fp32(ts·s))) and each block's float64 sum. Measured
    on these data: max relative difference 3.6e-6 over outputs above 1e-3 of the largest; and
    |difference| ≤ (k/16 + 4) · 2^-24 · Σ|x̂·ŵ| (the rounding-error bound of both) everywhere."""
    rng = np.random.default_rng(11)
    worst = 0.0
    for _ in range(3):
        x, w = random_operands(rng, 32, 512, 24)
        hw = nvfp4_hw_gemm(x, w).astype(np.float64)
        acc = gemm(x, w, "nvfp4").astype(np.float64)
        qx, qw = quantize(x, "nvfp4", name="X"), quantize_weights(w, "nvfp4")
        mag = np.abs(qx.dequant.astype(np.float64)) @ np.abs(qw.dequant.astype(np.float64)).T
        assert (np.abs(hw - acc) <= (512 / 16 + 4) * 2.0**-24 * mag).all()
        big = np.abs(acc) >= 1e-3 * np.abs(acc).max()
        worst = max(worst, float((np.abs(hw - acc)[big] / np.abs(acc)[big]).max()))
        assert not same_bits(hw.astype(np.float32), acc.astype(np.float32))  # close, not equal
    print(f"\nmax relative difference hardware vs accuracy NVFP4 GEMM: {worst:.3g}")
    assert worst < MAX_REL_DIFF
