"""GEMM contract (SPEC §5, §8) against integer / sequential recomputations, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from semdialect.golden import QTensor, dfp4, gemm, gemm_quantized, quantize, quantize_weights, sd32

E2M1_HU = [0, 1, 2, 3, 4, 6, 8, 12]
BOOKS = {"dfp4": dfp4().hu, "sd32": sd32().hu}


def ref_integer_elements(q, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, nb, B) int64 elements and (rows, nb) exponents, from codes and metadata only."""
    b = q.block
    codes = q.codes.reshape(q.codes.shape[0], -1, b).astype(np.int64)
    sign = np.where(codes & 8, -1, 1)
    if fmt in BOOKS:
        hu = BOOKS[fmt].astype(np.int64)
        mags = hu[q.dialect.astype(np.int64)[..., None], codes & 7]
        return sign * mags, q.se.astype(np.int64) - 1
    if fmt == "mxfp4":
        return sign * np.array(E2M1_HU)[codes & 7], q.scale.astype(np.int64) - 127 - 1
    if fmt == "mxint8":
        ints = q.codes.view(np.int8).reshape(codes.shape).astype(np.int64)
        return ints, q.scale.astype(np.int64) - 127 - 6
    raise AssertionError(fmt)


def ref_gemm_integer(x: np.ndarray, w: np.ndarray, fmt: str, select: str | None = None):
    qx = quantize(x, fmt, select=select)
    qw = quantize_weights(w, fmt)
    a, ea = ref_integer_elements(qx, fmt)
    b, eb = ref_integer_elements(qw, fmt)
    m, n = a.shape[0], b.shape[0]
    y = np.zeros((m, n), np.float32)
    for i in range(m):
        for j in range(n):
            acc = np.float32(0.0)
            for k in range(a.shape[1]):
                p = int(np.dot(a[i, k], b[j, k]))  # exact integer
                acc = np.float32(acc + np.float32(math.ldexp(p, int(ea[i, k] + eb[j, k]))))
            y[i, j] = acc
    return y


def ref_gemm_float(x: np.ndarray, w: np.ndarray, fmt: str, block: int | None = None):
    qx = quantize(x, fmt, block=block)
    qw = quantize_weights(w, fmt, block=block)
    b = qx.block
    a, c = qx.dequant.astype(np.float64), qw.dequant.astype(np.float64)
    y = np.zeros((a.shape[0], c.shape[0]), np.float32)
    for i in range(a.shape[0]):
        for j in range(c.shape[0]):
            acc = np.float32(0.0)
            for k0 in range(0, a.shape[1], b):
                s = 0.0
                for t in range(k0, k0 + b):
                    s = s + a[i, t] * c[j, t]
                acc = np.float32(acc + np.float32(s))
            y[i, j] = acc
    return y


def _data(rng, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_t(3, (m, k)) * 2.0 ** rng.integers(-8, 8, (m, 1))
    w = rng.standard_normal((k, n)) * 2.0 ** rng.integers(-8, 4, (1, n))
    x[0, :32] = 0.0
    w[:32, 0] = -0.0
    return x.astype(np.float16), w.astype(np.float16)


def bits(y: np.ndarray) -> list[int]:
    return y.view(np.uint32).ravel().tolist()


@pytest.mark.parametrize(
    "fmt, select", [("sd32", None), ("dfp4", None), ("dfp4", "two-stage"), ("mxfp4", None),
                    ("mxint8", None)]
)
def test_integer_gemm_bit_exact(rng, fmt: str, select: str | None) -> None:
    x, w = _data(rng, 7, 160, 5)
    assert bits(gemm(x, w, fmt, select=select)) == bits(ref_gemm_integer(x, w, fmt, select))


@pytest.mark.parametrize("fmt, block", [("nvfp4", None), ("int4", 32), ("int4", 16)])
def test_float_baseline_gemm_bit_exact(rng, fmt: str, block: int | None) -> None:
    x, w = _data(rng, 6, 96, 4)
    assert bits(gemm(x, w, fmt, block=block)) == bits(ref_gemm_float(x, w, fmt, block))


@pytest.mark.filterwarnings("ignore::semdialect.golden.FlushWarning")  # tiny blocks
@settings(max_examples=25, deadline=None)
@given(
    hnp.arrays(np.float16, (3, 64), elements=st.floats(-2000, 2000, width=16)),
    hnp.arrays(np.float16, (64, 2), elements=st.floats(-2000, 2000, width=16)),
    st.sampled_from(["sd32", "dfp4", "mxfp4", "mxint8"]),
)
def test_gemm_equals_integer_recomputation_property(x, w, fmt: str) -> None:
    assert bits(gemm(x, w, fmt)) == bits(ref_gemm_integer(x, w, fmt))


def test_weights_always_use_lut(rng) -> None:
    """With two-stage activations, W's dialects are still the lut choice (SPEC §4)."""
    x, w = _data(rng, 3, 64, 40)
    y2 = gemm(x, w, "dfp4", select="two-stage")
    assert bits(y2) == bits(ref_gemm_integer(x, w, "dfp4", "two-stage"))
    assert not np.array_equal(
        quantize(w.T, "dfp4", select="two-stage").dialect, quantize_weights(w, "dfp4").dialect
    )


def test_leading_dims_and_fp16_output(rng) -> None:
    x, w = _data(rng, 6, 64, 3)
    y = gemm(x.reshape(2, 3, 64), w, "sd32")
    assert y.shape == (2, 3, 3)
    assert bits(y.reshape(6, 3)) == bits(gemm(x, w, "sd32"))
    big = np.full((1, 64), 60000, np.float16)
    y16 = gemm(big, np.full((64, 1), 60000, np.float16), "sd32", out="fp16")
    assert y16.dtype == np.float16 and np.isposinf(y16[0, 0])
    y32 = gemm(x, w, "sd32")
    assert np.array_equal(gemm(x, w, "sd32", out="fp16"), y32.astype(np.float16))


def test_accumulation_is_sequential_not_pairwise() -> None:
    """Ascending FP32 accumulation differs from a float64 sum here; the GEMM must follow it."""
    k = 96
    x = np.zeros((1, k), np.float16)
    w = np.zeros((k, 1), np.float16)
    x[0, 0], w[0, 0] = 4096.0, 4096.0  # block 0 contributes 2^24
    x[0, 32], w[32, 0] = 1.0, 1.0  # block 1 adds 1: lost in FP32 (ties to even)
    x[0, 64], w[64, 0] = 1.0, 1.0  # block 2 adds 1 again: lost again
    y = gemm(x, w, "sd32")
    assert y[0, 0] == np.float32(2**24)  # a float64 sum would round 2^24 + 2 exactly


def test_gemm_errors(rng) -> None:
    x, w = _data(rng, 2, 64, 2)
    with pytest.raises(ValueError, match="shapes do not match"):
        gemm(x, w[:32], "sd32")
    with pytest.raises(ValueError, match="2-D"):
        gemm(x, w.reshape(64, 2, 1), "sd32")
    xb, wb = x.copy(), w.copy()
    xb[1, 40] = np.nan
    wb[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"^X: NaN/Inf in block \(1, 1\)"):
        gemm(xb, wb, "sd32")  # X is checked before W
    with pytest.raises(ValueError, match=r"^W.*NaN/Inf in block \(1, 0\)"):
        gemm(x, wb, "sd32")
    with pytest.raises(ValueError, match="format"):
        gemm(x, w, "fp8")


PAD_FORMATS = [("sd32", None, None), ("dfp4", None, None), ("dfp4", "two-stage", None),
               ("mxfp4", None, None), ("mxint8", None, None), ("nvfp4", None, None),
               ("int4", None, None), ("int4", None, 16), ("sd32", None, 64)]


def _zero_pad(a: np.ndarray, axis: int, to: int) -> np.ndarray:
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, to - a.shape[axis])
    return np.pad(a, widths)


@pytest.mark.parametrize("fmt, select, block", PAD_FORMATS)
@pytest.mark.parametrize("k", [5, 40, 100])
def test_padded_gemm_equals_gemm_of_zero_padded_operands(rng, fmt, select, block, k) -> None:
    """SPEC §2/§8: pad=True equals zero-padding X along k and W along k, bit for bit."""
    x, w = _data(rng, 4, 128, 3)
    x, w = x[:, :k], w[:k]
    b = block or {"mxfp4": 32, "mxint8": 32, "nvfp4": 16}.get(fmt, 32)
    kp = -(-k // b) * b
    assert kp != k  # the case under test: a short last block
    want = gemm(_zero_pad(x, 1, kp), _zero_pad(w, 0, kp), fmt, select=select, block=block)
    got = gemm(x, w, fmt, select=select, block=block, pad=True)
    assert got.shape == (4, 3) and bits(got) == bits(want)
    got16 = gemm(x[None], w, fmt, select=select, block=block, pad=True, out="fp16")
    assert got16.shape == (1, 4, 3) and np.array_equal(got16[0], want.astype(np.float16))


@pytest.mark.parametrize("fmt", ["sd32", "mxfp4", "nvfp4", "int4"])
def test_gemm_quantized_of_padded_tensors(rng, fmt: str) -> None:
    x, w = _data(rng, 3, 64, 2)
    x, w = x[:, :50], w[:50]
    qx = quantize(x, fmt, pad=True)
    qw = quantize_weights(w, fmt, pad=True)
    assert bits(gemm_quantized(qx, qw)) == bits(gemm(x, w, fmt, pad=True))
    kp = -(-50 // qx.block) * qx.block
    assert bits(gemm_quantized(qx, qw)) == bits(gemm(_zero_pad(x, 1, kp), _zero_pad(w, 0, kp),
                                                     fmt))


@pytest.mark.parametrize("fmt", ["sd32", "dfp4", "mxfp4", "mxint8", "nvfp4", "int4"])
@pytest.mark.parametrize(
    "xs, ws, operand, shape",
    [((0, 32), (32, 3), "X", r"\(0, 32\)"), ((2, 32), (32, 0), "W", r"\(32, 0\)"),
     ((2, 0), (0, 3), "X", r"\(2, 0\)"), ((0, 0), (0, 0), "X", r"\(0, 0\)"),
     ((2, 0, 32), (32, 3), "X", r"\(2, 0, 32\)")],
)
def test_gemm_rejects_empty_operands(fmt: str, xs, ws, operand: str, shape: str) -> None:
    with pytest.raises(ValueError, match=rf"^{operand}: .*empty.*{shape}") as info:
        gemm(np.ones(xs, np.float16), np.ones(ws, np.float16), fmt, pad=True)
    assert "\n" not in str(info.value)


def test_gemm_quantized_rejects_empty_operands(rng) -> None:
    x, w = _data(rng, 2, 64, 2)
    qx, qw = quantize(x, "sd32"), quantize_weights(w, "sd32")
    empty = QTensor(format="sd32", block=32, codes=np.zeros((0, 64), np.uint8),
                    dequant=np.zeros((0, 64), np.float32), bits_per_element=4.3125,
                    se=np.zeros((0, 2), np.int8), dialect=np.zeros((0, 2), np.uint8),
                    exp=np.zeros((0, 2), np.int32))
    with pytest.raises(ValueError, match=r"^X: .*empty.*\(0, 64\)"):
        gemm_quantized(empty, qw)
    with pytest.raises(ValueError, match=r"^W: .*empty.*\(0, 64\)"):
        gemm_quantized(qx, empty)


def test_cli_gemm_pad(tmp_path, rng) -> None:
    """``semdialect gemm --pad`` with k = 40 (not a multiple of 32) writes the padded GEMM."""
    from semdialect.cli import main

    x, w = _data(rng, 3, 64, 2)
    x, w = x[:, :40], w[:40]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "y.npy"
    assert main(["gemm", str(tmp_path / "x.npy"), str(tmp_path / "w.npy"), "-o", str(out),
                 "--format", "sd32", "--pad"]) == 0
    want = gemm(_zero_pad(x, 1, 64), _zero_pad(w, 0, 64), "sd32")
    assert bits(np.load(out)) == bits(want)
