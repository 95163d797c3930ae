"""Independent oracle: golden MXFP4 and NVFP4 (SPEC §8) against torchao 0.18.0, bit for bit.

Every case is an FP16-representable tensor built from a fixed seed. torchao receives it widened
to float32 (it rejects float16); golden receives it both as float16 and as float32 (it rounds to
FP16 first, which is then exact). Codes, scale bytes, the NVFP4 tensor scale and the bits of the
dequantized values must be identical.

The only case not compared is the all-zero NVFP4 tensor, a documented divergence (SPEC §8):
golden gives zero codes, scales and values where torchao gives NaN.

torch==2.13.0 and torchao==0.18.0 are required (``make test-oracle`` installs them); without
them these tests fail with an ``ImportError`` that says so, they are not skipped.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest

from semdialect.golden import quantize

try:  # tests/ laid out as a package
    from . import torchao_ref
except ImportError:  # pytest's default rootdir-relative import of tests/
    import torchao_ref

pytestmark = pytest.mark.oracle

SEED = 2026_0308
ROWS, K = 6, 128  # K is a multiple of both block sizes (32 and 16)
FP16_MAX = 65504.0
# E2M1 round-to-nearest-even tie points (midpoints between neighbouring magnitudes).
E2M1_TIES = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
IN_DTYPES = (np.float16, np.float32)

Generator = Callable[[np.random.Generator, int], np.ndarray]


# --------------------------------------------------------------------------------------------
# Input generators: each returns a finite float16 array of shape (ROWS, K) unless stated.
# --------------------------------------------------------------------------------------------


def _fp16(values: np.ndarray) -> np.ndarray:
    """Round to FP16, clipping to the finite range first so that nothing overflows."""
    return np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)


def _signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random ±1."""
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def _blocks(x: np.ndarray, block: int) -> np.ndarray:
    """View (..., K) as (..., K / block, block)."""
    return x.reshape(*x.shape[:-1], x.shape[-1] // block, block)


def normal(scale: float) -> Generator:
    """Standard normal data times ``scale``."""

    def gen(rng: np.random.Generator, block: int) -> np.ndarray:
        return _fp16(rng.standard_normal((ROWS, K)) * scale)

    return gen


def student_t(df: float, scale: float) -> Generator:
    """Heavy-tailed Student-t data times ``scale``."""

    def gen(rng: np.random.Generator, block: int) -> np.ndarray:
        return _fp16(rng.standard_t(df, (ROWS, K)) * scale)

    return gen


def mixed_magnitudes(rng: np.random.Generator, block: int) -> np.ndarray:
    """Normal blocks whose magnitudes span the FP16 range (1e-7 .. 3e4), one per block.

    For NVFP4 the small blocks fall under the E4M3 lower clamp relative to the tensor amax.
    """
    x = rng.standard_normal((ROWS, K))
    mags = 10.0 ** rng.uniform(-7.0, 4.5, size=(ROWS, K // block, 1))
    return _fp16((_blocks(x, block) * mags).reshape(ROWS, K))


def near_fp16_max(rng: np.random.Generator, block: int) -> np.ndarray:
    """Values in [2^14, 65504] with random signs, and ±65504 itself in some blocks."""
    x = rng.uniform(2.0**14, FP16_MAX, (ROWS, K)) * _signs(rng, (ROWS, K))
    x[::2, ::block] = FP16_MAX
    x[1::2, block // 2 :: block] = -FP16_MAX
    return _fp16(x)


def fp16_subnormals(rng: np.random.Generator, block: int) -> np.ndarray:
    """Tiny-scale blocks: every value an FP16 subnormal or zero; some blocks max out at 2^-24."""
    x = rng.integers(-1023, 1024, (ROWS, K)) * 2.0**-24
    b = _blocks(x, block)
    b[:, ::3] = rng.integers(-1, 2, b[:, ::3].shape) * 2.0**-24
    return _fp16(x)


def random_fp16_bits(rng: np.random.Generator, block: int) -> np.ndarray:
    """Uniformly random finite FP16 bit patterns (all exponents, subnormals, both zeros)."""
    bits = rng.integers(0, 0x7C00, (ROWS, K)) | (rng.integers(0, 2, (ROWS, K)) << 15)
    return bits.astype(np.uint16).view(np.float16)


def zero_blocks(rng: np.random.Generator, block: int) -> np.ndarray:
    """Normal data with all-zero blocks: +0.0 blocks, -0.0 blocks and mixed-sign zero blocks."""
    x = rng.standard_normal((ROWS, K))
    b = _blocks(x, block)
    b[0, 0] = 0.0
    b[1, -1] = -0.0
    b[2, 1] = _signs(rng, (block,)) * 0.0
    b[3:, 2] = 0.0
    return _fp16(x)


def negative_zeros(rng: np.random.Generator, block: int) -> np.ndarray:
    """Blocks containing -0.0, and negative values that quantize to zero (code 8)."""
    x = rng.standard_normal((ROWS, K)) * 3.0
    mask = rng.random((ROWS, K))
    x[mask < 0.2] = -0.0
    x[(mask >= 0.2) & (mask < 0.3)] *= -1e-3  # far below half an E2M1 step: rounds to ±0
    return _fp16(x)


def _pow2_max_blocks(rng: np.random.Generator, block: int, below: bool) -> np.ndarray:
    """Blocks of uniform data whose max is exactly 2^k (or the FP16 value just below 2^k)."""
    exps = rng.integers(-14, 17 if below else 16, (ROWS, K // block))
    maxima = (exps + 15).astype(np.uint16) << 10  # FP16 bits of 2^k (k = 16 gives +inf bits)
    if below:
        maxima -= 1  # next FP16 below 2^k; 2^16 - ulp = 65504
    maxima_val = maxima.view(np.float16).astype(np.float64)[..., None]
    b = rng.uniform(-1.0, 1.0, (ROWS, K // block, block)) * maxima_val
    pos = rng.integers(0, block, (ROWS, K // block))
    np.put_along_axis(b, pos[..., None], maxima_val * _signs(rng, maxima_val.shape), axis=-1)
    return _fp16(b.reshape(ROWS, K))


def pow2_max(rng: np.random.Generator, block: int) -> np.ndarray:
    """Blocks whose max magnitude is exactly a power of two (2^-14 .. 2^15)."""
    return _pow2_max_blocks(rng, block, below=False)


def just_below_pow2_max(rng: np.random.Generator, block: int) -> np.ndarray:
    """Blocks whose max magnitude is the FP16 value just below a power of two (.. 65504)."""
    return _pow2_max_blocks(rng, block, below=True)


def _tie_blocks(
    rng: np.random.Generator, block: int, anchors: np.ndarray, exps: np.ndarray
) -> np.ndarray:
    """Blocks of ±E2M1 tie points times 2^exps, each with one ±anchor * 2^exps element.

    ``exps`` has shape (ROWS, K / block); an anchor fixes the block maximum (and so the scale).
    """
    unit = np.exp2(exps.astype(np.float64))[..., None]
    b = rng.choice(E2M1_TIES, (*exps.shape, block)) * _signs(rng, (*exps.shape, block)) * unit
    anchor = rng.choice(anchors, (*exps.shape, 1)) * _signs(rng, (*exps.shape, 1)) * unit
    np.put_along_axis(b, rng.integers(0, block, (*exps.shape, 1)), anchor, axis=-1)
    return b.reshape(ROWS, K)


def mxfp4_ties(rng: np.random.Generator, block: int) -> np.ndarray:
    """MXFP4 tie points: block max in [4, 8) * 2^e fixes the scale 2^e; others at E2M1 ties.

    e runs over [-22, 12], so every tie point (a multiple of 2^(e-2)) is exact in FP16, down to
    subnormals. Anchors 7 and 7.5 also exercise the saturation to ±6.
    """
    exps = rng.integers(-22, 13, (ROWS, K // block))
    x = _tie_blocks(rng, block, np.array([4.0, 5.0, 6.0, 7.0, 7.5]), exps)
    return _fp16(x)


def nvfp4_ties(rng: np.random.Generator, block: int) -> np.ndarray:
    """NVFP4 exact ties: tensor amax 2688 * 2^k makes the tensor scale exactly 2^k.

    A block with max 6 * 2^(k + j) then has block scale 2^(k + j), E4M3 scale 2^j (j in
    [-6, 8], the lowest at the E4M3 clamp 2^-6), an exact reciprocal 2^-(k + j), and its
    other elements t * 2^(k + j) scale to exactly the tie point t.
    """
    k = int(rng.integers(-12, 5))
    exps = k + rng.integers(max(-6, -22 - k), 9, (ROWS, K // block))
    x = _tie_blocks(rng, block, np.array([6.0]), exps)
    x[0, 0] = 2688.0 * 2.0**k  # the tensor amax; its own block gets E4M3 scale 448
    return _fp16(x)


def _nvfp4_element_scale(amax: np.float32, block_max: np.ndarray) -> tuple[np.ndarray, ...]:
    """Predict torchao's NVFP4 element scaling (only to aim inputs at its rounding boundaries).

    Returns ``(reciprocal, unit)``: torchao multiplies elements by ``reciprocal`` =
    fp32(fp32(1 / ts) / s); ``unit`` = fp32(ts * s) is the dequantization step a division-based
    implementation would use instead.
    """
    f32 = np.float32
    ts = amax / f32(448.0 * 6.0)
    scaled = np.clip((block_max / f32(6.0)) / ts, f32(2.0**-6), f32(448.0))
    s = scaled.astype(ml_dtypes.float8_e4m3fn).astype(f32)
    return (f32(1.0) / ts) / s, ts * s


def nvfp4_scaled_ties(rng: np.random.Generator, block: int) -> np.ndarray:
    """NVFP4 near-ties under a non-dyadic tensor scale.

    Each block has a random FP16 max; its other elements are the FP16 values nearest to (and
    one ulp either side of) t * ts * s for every E2M1 tie t, preferring those where torchao's
    fp32(x * reciprocal) is exactly a tie, or where x / fp32(ts * s) would round the other way.
    """
    f32 = np.float32
    amax = f32(np.float16(2.0 ** rng.uniform(-8.0, 15.9)))
    nblocks = ROWS * K // block
    block_max = _fp16(rng.uniform(2.0**-9, 1.0, nblocks) * amax).astype(f32)
    block_max[0] = amax
    reciprocal, unit = _nvfp4_element_scale(amax, block_max)
    ties = E2M1_TIES.astype(f32)
    nearest = _fp16(ties[None, :] * unit[:, None].astype(np.float64)).view(np.uint16)
    cand = np.concatenate([nearest - 1, nearest, nearest + 1], axis=1)  # (nblocks, 21)
    cand_val = cand.view(np.float16).astype(f32)
    ties3 = np.tile(ties, 3)[None, :]
    scaled_mul = cand_val * reciprocal[:, None]
    scaled_div = cand_val / unit[:, None]
    hit = (scaled_mul == ties3) | (np.sign(scaled_mul - ties3) != np.sign(scaled_div - ties3))
    usable = (cand_val > 0) & (cand_val < block_max[:, None])
    # Rank: usable hits first, then other usable candidates, in random order within each rank.
    rank = np.where(usable, np.where(hit, 0.0, 1.0), 2.0) + rng.random(cand.shape)
    order = np.argsort(rank, axis=1)[:, : block - 1]
    chosen = np.where(
        np.take_along_axis(usable, order, 1), np.take_along_axis(cand_val, order, 1), 0.0
    )
    x = np.concatenate([block_max[:, None], chosen], axis=1)
    x = rng.permuted(x * _signs(rng, x.shape), axis=1)
    return _fp16(x.reshape(ROWS, K))


def all_zero(rng: np.random.Generator, block: int) -> np.ndarray:
    """An all-zero tensor with both signs of zero (MXFP4 only: NVFP4 diverges, see below)."""
    return _fp16(_signs(rng, (ROWS, K)) * 0.0)


COMMON_CASES: dict[str, Generator] = {
    "normal_1e-4": normal(1e-4),
    "normal_1e-2": normal(1e-2),
    "normal_1": normal(1.0),
    "normal_1e2": normal(1e2),
    "normal_1e4": normal(1e4),
    "student_t_df2": student_t(2.0, 10.0),
    "student_t_df3_small": student_t(3.0, 1e-3),
    "mixed_magnitudes": mixed_magnitudes,
    "near_fp16_max": near_fp16_max,
    "fp16_subnormals": fp16_subnormals,
    "random_fp16_bits": random_fp16_bits,
    "zero_blocks": zero_blocks,
    "negative_zeros": negative_zeros,
    "pow2_max": pow2_max,
    "just_below_pow2_max": just_below_pow2_max,
}
MXFP4_CASES = {**COMMON_CASES, "ties": mxfp4_ties, "all_zero": all_zero}
NVFP4_CASES = {**COMMON_CASES, "ties": nvfp4_ties, "scaled_ties": nvfp4_scaled_ties}


def make_case(cases: dict[str, Generator], name: str, block: int) -> np.ndarray:
    """Build case ``name`` from its own fixed-seed stream and check it is finite FP16."""
    rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
    x = cases[name](rng, block)
    assert x.dtype == np.float16 and np.isfinite(x).all(), name
    return x


# --------------------------------------------------------------------------------------------
# Bit-exact comparison with a readable report of the first differing block.
# --------------------------------------------------------------------------------------------


def _bits(a: np.ndarray) -> np.ndarray:
    """Integer view of an array's bits (float32 -> uint32; integer arrays unchanged)."""
    return a.view(np.uint32) if a.dtype == np.float32 else a


def _show(a: np.ndarray) -> str:
    """Values and hex bits of a small array."""
    if a.dtype.kind == "f":
        width = a.dtype.itemsize * 2
        hexes = a.view(f"u{a.dtype.itemsize}")
        return " ".join(
            f"{v!r}(0x{h:0{width}x})" for v, h in zip(a.tolist(), hexes.tolist(), strict=True)
        )
    return " ".join(f"0x{v:02x}" for v in a.tolist())


def assert_same_bits(
    what: str,
    golden_out: object,
    torchao_out: np.ndarray,
    x16: np.ndarray,
    block: int,
    per_block: bool,
) -> None:
    """Fail unless ``golden_out`` has torchao's dtype, shape and bits.

    Args:
        what: output name for the message (``codes``, ``scale``, ``dequant``, ...).
        golden_out: the golden model's array.
        torchao_out: the reference array.
        x16: the FP16 input, quoted block-wise in the failure message.
        block: block size.
        per_block: True when the arrays hold one value per block (scales), False per element.
    """
    got = np.asarray(golden_out)
    assert (got.dtype, got.shape) == (torchao_out.dtype, torchao_out.shape), (
        f"{what}: golden gives {got.dtype}{got.shape}, "
        f"torchao {torchao_out.dtype}{torchao_out.shape}"
    )
    diff = np.argwhere(_bits(got) != _bits(torchao_out))
    if not diff.size:
        return
    first = tuple(int(i) for i in diff[0])
    blk = first if per_block else (*first[:-1], first[-1] // block)
    sl = (*blk[:-1], slice(blk[-1] * block, (blk[-1] + 1) * block))
    out_sl = blk if per_block else sl
    pytest.fail(
        f"{what}: {len(diff)} of {got.size} values differ; first at index {first}, "
        f"in block (row…, block) = {blk}\n"
        f"  input block (fp16): {_show(x16[sl])}\n"
        f"  golden : {_show(np.atleast_1d(got[out_sl]))}\n"
        f"  torchao: {_show(np.atleast_1d(torchao_out[out_sl]))}"
    )


def _golden(x16: np.ndarray, in_dtype: type[np.floating], fmt: str) -> object:
    """Run the golden model on ``x16`` converted (exactly) to ``in_dtype``."""
    return quantize(x16.astype(in_dtype), fmt)


# --------------------------------------------------------------------------------------------
# MXFP4
# --------------------------------------------------------------------------------------------


def check_mxfp4(x16: np.ndarray, in_dtype: type[np.floating]) -> None:
    """Compare golden MXFP4 codes, E8M0 scales and dequantized bits with torchao."""
    block = torchao_ref.MXFP4_BLOCK
    codes, scale = torchao_ref.ref_mxfp4(x16)
    dequant = torchao_ref.ref_mxfp4_dequant(x16)
    qt = _golden(x16, in_dtype, "mxfp4")
    assert_same_bits("mxfp4 codes", qt.codes, codes, x16, block, per_block=False)
    assert_same_bits("mxfp4 scale", qt.scale, scale, x16, block, per_block=True)
    assert_same_bits("mxfp4 dequant", qt.dequant, dequant, x16, block, per_block=False)


@pytest.mark.parametrize("in_dtype", IN_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", sorted(MXFP4_CASES))
def test_mxfp4_matches_torchao(case: str, in_dtype: type[np.floating]) -> None:
    """MXFP4 (FLOOR E8M0 scale, RNE E2M1) equals torchao's ``MXTensor.to_mx`` bit for bit."""
    check_mxfp4(make_case(MXFP4_CASES, case, torchao_ref.MXFP4_BLOCK), in_dtype)


def test_mxfp4_leading_dims_match_torchao() -> None:
    """A 3-D tensor: every leading index is a row; blocks run along the last axis."""
    x16 = make_case(MXFP4_CASES, "student_t_df2", torchao_ref.MXFP4_BLOCK)
    check_mxfp4(x16.reshape(2, ROWS // 2, K), np.float16)


# --------------------------------------------------------------------------------------------
# NVFP4
# --------------------------------------------------------------------------------------------


def check_nvfp4(x16: np.ndarray, in_dtype: type[np.floating]) -> None:
    """Compare golden NVFP4 codes, E4M3 scales, tensor scale and dequantized bits with torchao.

    A tensor with leading dimensions is compared with torchao on its (rows, K) reshape: one
    tensor amax over all of it (SPEC §8).
    """
    block = torchao_ref.NVFP4_BLOCK
    x2d = x16.reshape(-1, x16.shape[-1])
    ref = torchao_ref.ref_nvfp4(x2d)
    qt = _golden(x16, in_dtype, "nvfp4")
    nblocks = x16.shape[-1] // block
    ts = np.asarray(qt.tensor_scale)
    assert (ts.dtype, ts.shape) == (np.float32, ()), f"tensor_scale is {ts.dtype}{ts.shape}"
    context = (
        f"tensor amax {_show(np.abs(x16).max().reshape(1))}, "
        f"torchao tensor_scale {_show(np.asarray(ref.tensor_scale).reshape(1))}"
    )
    if _bits(ts) != _bits(np.asarray(ref.tensor_scale)):
        pytest.fail(f"nvfp4 tensor_scale: golden {_show(ts.reshape(1))}; {context}")
    want = {
        "codes": ref.codes.reshape(x16.shape),
        "scale": ref.scale.reshape(*x16.shape[:-1], nblocks),
        "dequant": ref.dequant.reshape(x16.shape),
    }
    for name, per_block in (("codes", False), ("scale", True), ("dequant", False)):
        assert_same_bits(
            f"nvfp4 {name} ({context})",
            getattr(qt, name),
            want[name],
            x16,
            block,
            per_block=per_block,
        )


@pytest.mark.parametrize("in_dtype", IN_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", sorted(NVFP4_CASES))
def test_nvfp4_matches_torchao(case: str, in_dtype: type[np.floating]) -> None:
    """NVFP4 (tensor scale, clamped E4M3 block scales, RNE E2M1) equals torchao on CPU."""
    check_nvfp4(make_case(NVFP4_CASES, case, torchao_ref.NVFP4_BLOCK), in_dtype)


def test_nvfp4_leading_dims_match_torchao() -> None:
    """A 3-D tensor quantizes like its (rows, K) reshape under one tensor amax."""
    x16 = make_case(NVFP4_CASES, "mixed_magnitudes", torchao_ref.NVFP4_BLOCK)
    check_nvfp4(x16.reshape(2, ROWS // 2, K), np.float16)


def test_nvfp4_tensor_amax_sweep() -> None:
    """64 small tensors whose amax spans the FP16 range, subnormals included.

    amax / 2688 is inexact for most amax, so this pins the tensor-scale division and how its
    rounding propagates into the E4M3 block scales, the codes and the dequantized values.
    """
    rng = np.random.default_rng([SEED, zlib.crc32(b"amax_sweep")])
    for amax in 2.0 ** rng.uniform(-24.0, 15.99, 64):
        x = rng.uniform(-1.0, 1.0, (2, 2 * torchao_ref.NVFP4_BLOCK)) * amax
        x[0, 0] = amax
        check_nvfp4(_fp16(x), np.float16)


def test_nvfp4_all_zero_tensor_gives_zeros() -> None:
    """Documented divergence (SPEC §8): an all-zero tensor gives codes 0, scales 0, +0.0 values.

    torchao divides 0 by a zero tensor scale here and returns NaN, so it is not compared.
    """
    x16 = np.zeros((ROWS, K), dtype=np.float16)
    qt = quantize(x16, "nvfp4")
    nblocks = K // torchao_ref.NVFP4_BLOCK
    zeros = {
        "codes": np.zeros((ROWS, K), np.uint8),
        "scale": np.zeros((ROWS, nblocks), np.uint8),
        "dequant": np.zeros((ROWS, K), np.float32),
    }
    for name, per_block in (("codes", False), ("scale", True), ("dequant", False)):
        assert_same_bits(
            f"nvfp4 all-zero {name}",
            getattr(qt, name),
            zeros[name],
            x16,
            torchao_ref.NVFP4_BLOCK,
            per_block=per_block,
        )
    assert np.asarray(qt.tensor_scale) == 0.0, f"tensor_scale {qt.tensor_scale!r}"


def test_nvfp4_all_zero_tensor_is_nan_in_torchao() -> None:
    """Pins the reason for the divergence above: torchao 0.18 gives NaN for a zero tensor."""
    ref = torchao_ref.ref_nvfp4(np.zeros((2, 32), dtype=np.float16))
    assert ref.tensor_scale == 0.0
    assert np.isnan(ref.dequant).all()
