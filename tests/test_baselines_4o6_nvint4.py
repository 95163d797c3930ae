"""NVFP4 with Four Over Six (``nvfp4-4o6``) and NVINT4 (``nvint4``), SPEC §8, against an
independent oracle.

The oracle below is written from the published Four Over Six code (github.com/mit-han-lab/
fouroversix, ``src/fouroversix/quantize/pytorch/reference.py``: ``compute_nv_scale_factors``,
``fake_quantize_to_e2m1``, ``fake_quantize_to_int4``, ``select_fouroversix`` and the
``dequantize`` of ``quantize/backend.py``), step by step in NumPy float32, with ml_dtypes'
``float8_e4m3fn`` for the E4M3 scale bytes. It does not use golden's grids or rounders. It
adopts the three documented [ours] rules of SPEC §8 where the PyTorch reference differs:

* E2M1 elements saturate at ±6 (the fouroversix CUDA/Triton path's ``cvt.rn.satfinite``;
  the PyTorch reference rounds 7 to 8, only reachable with subnormal E4M3 scales);
* the element's sign is the scaled value's sign bit (−0.0 gives code 8, as NVFP4; the
  PyTorch reference's ``x.sign()`` maps −0.0 to +0.0, code 0 — both dequantize to zero);
* the Four Over Six block error is compared in float64 (the reference sums it in FP32): the
  oracle keeps the FP32 sum, and the two may choose differently only where the two block
  errors agree to FP32 precision (checked below).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest
from conftest import all_finite_fp16

from semdialect.cli import main
from semdialect.golden import FORMAT_NAMES, gemm, quantize, resolve_format
from semdialect.golden.formats import BASELINES, e2m1_elements
from semdialect.golden.metrics import sqnr_db
from semdialect.golden.quantize import quantize_weights

F32 = np.float32
B = 16
FP16_MAX = 65504.0
E2M1_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], np.float32)
#: (element max, largest block scale) per format: K = their product
CONSTANTS = {"nvfp4-4o6": (6.0, 256.0), "nvint4": (7.0, 448.0)}


# --------------------------------------------------------------------------------------------
# The oracle (fouroversix reference, NumPy float32)
# --------------------------------------------------------------------------------------------


def ref_scales(
    blocks: np.ndarray, amax: np.float32, elem_max: float, scale_max: float,
    expansion: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """compute_nv_scale_factors: E4M3 bytes, their float32 values, the scaled elements."""
    encode = F32(elem_max * scale_max) / amax
    s_hp = (np.abs(blocks).max(axis=-1) / F32(elem_max)) * encode
    if expansion is not None:
        s_hp = s_hp * F32(expansion)
    s8 = s_hp.astype(ml_dtypes.float8_e4m3fn)
    s32 = s8.astype(np.float32)
    decode = F32(1) / encode
    scaled = np.zeros_like(blocks)
    nz = s32 != 0
    scaled[nz] = blocks[nz] * (F32(1) / (decode * s32[nz]))[:, None]
    return s8.view(np.uint8), s32, scaled


def ref_e2m1(v: np.ndarray) -> np.ndarray:
    """fake_quantize_to_e2m1 (round-half-even in three ranges), saturating at 6 [ours]."""
    a = np.abs(v)
    mag = np.where(a < 2, np.round(2 * a) / 2,
                   np.where(a < 4, np.round(a), 2 * np.round(a / 2)))
    return np.copysign(np.minimum(mag, F32(6)), v).astype(np.float32)


def ref_dequant(values: np.ndarray, s32: np.ndarray, amax: np.float32, k: float) -> np.ndarray:
    """backend.dequantize: values · scale (exact), · amax, / K, in float32."""
    return (values * s32[:, None]) * amax / F32(k)


def ref_4o6(x16: np.ndarray) -> dict[str, np.ndarray]:
    """Four Over Six (MSE rule) of a 2-D FP16 tensor: bytes, element values, dequant, and
    both candidates' errors in float64 (for the near-tie check)."""
    blocks = x16.astype(np.float32).reshape(-1, B)
    amax = F32(np.abs(blocks).max())
    cands = []
    for expansion in (None, 1.5):
        s8, s32, scaled = ref_scales(blocks, amax, 6.0, 256.0, expansion)
        values = ref_e2m1(scaled)
        deq = ref_dequant(values, s32, amax, 1536.0)
        err32 = ((deq - blocks) ** 2).sum(axis=-1, dtype=np.float32)
        err64 = ((deq.astype(np.float64) - blocks) ** 2).sum(axis=-1)
        cands.append((s8, values, deq, err32, err64))
    six, four = cands
    pick4 = four[3] < six[3]
    return {
        "scale": np.where(pick4, four[0], six[0]),
        "values": np.where(pick4[:, None], four[1], six[1]),
        "dequant": np.where(pick4[:, None], four[2], six[2]),
        "scale6": six[0], "scale4": four[0], "dequant6": six[2], "dequant4": four[2],
        "err6": six[4], "err4": four[4],
    }


def ref_nvint4(x16: np.ndarray) -> dict[str, np.ndarray]:
    """NVINT4 (fouroversix ``nvint4``, static_6): bytes, int4 elements, dequant."""
    blocks = x16.astype(np.float32).reshape(-1, B)
    amax = F32(np.abs(blocks).max())
    s8, s32, scaled = ref_scales(blocks, amax, 7.0, 448.0)
    q = np.round(np.clip(scaled, -7, 7)).astype(np.int8)  # fake_quantize_to_int4
    deq = ref_dequant(q.astype(np.float32), s32, amax, 3136.0)  # from the int codes: 0 is +0
    return {"scale": s8, "q": q, "dequant": deq}


def decode_e2m1(codes: np.ndarray) -> np.ndarray:
    """Element values of E2M1 sign-magnitude codes (code 8 is −0.0)."""
    v = E2M1_VALUES[codes & 7]
    return np.where(codes & 8, -v, v).astype(np.float32)


def decode_int4(codes: np.ndarray) -> np.ndarray:
    """Two's complement nibbles as int8."""
    c = codes.astype(np.int16)
    return np.where(c >= 8, c - 16, c).astype(np.int8)


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


# --------------------------------------------------------------------------------------------
# Inputs: random and adversarial FP16 tensors
# --------------------------------------------------------------------------------------------


def _fp16(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -FP16_MAX, FP16_MAX).astype(np.float16)


def gaussian(rng: np.random.Generator) -> np.ndarray:
    return _fp16(rng.standard_normal((24, 256)))


def heavy_wide(rng: np.random.Generator) -> np.ndarray:
    """Student-t rows with per-row scales 2^-22 … 2^11: tiny blocks get subnormal E4M3
    scales or scale 0 under the tensor amax."""
    return _fp16(rng.standard_t(3, (24, 256)) * 2.0 ** rng.integers(-22, 12, (24, 1)))


def outliers(rng: np.random.Generator) -> np.ndarray:
    """One outlier per block (×2^4 … 2^10), some rows negative outliers, 65504 once."""
    x = rng.standard_normal((16, 256))
    blk = x.reshape(16, -1, B)
    idx = rng.integers(0, B, blk.shape[:2])
    big = rng.choice([-1, 1], blk.shape[:2]) * 2.0 ** rng.integers(4, 11, blk.shape[:2])
    np.put_along_axis(blk, idx[..., None], big[..., None], axis=-1)
    x[0, 0] = FP16_MAX
    return _fp16(x)


def special_blocks(rng: np.random.Generator) -> np.ndarray:
    """Zeros, −0.0, FP16 subnormals, the largest FP16 value, a sign-mixed block."""
    x = rng.standard_normal((8, 64)) * 100
    x[0, :16] = 0.0
    x[0, 16:32] = -0.0
    x[1, :16] = rng.integers(-1023, 1024, 16) * 2.0**-24  # subnormals next to ~100s: s -> 0
    x[1, 16:32] = np.resize([-0.0, 2.0**-24, -(2.0**-24), 0.0], 16)
    x[2, :16] = FP16_MAX
    x[2, 16:32] = -FP16_MAX
    x[3, :16] = np.resize([FP16_MAX, -1e-3, 1e-3, -0.0], 16)
    return _fp16(x)


def subnormal_tensor(rng: np.random.Generator) -> np.ndarray:
    """A tensor made only of FP16 subnormals (tiny amax: large encode scale)."""
    return (rng.integers(-1023, 1024, (4, 64)) * 2.0**-24).astype(np.float16)


def e2m1_ties(rng: np.random.Generator) -> np.ndarray:
    """Tensor amax 6: a block with max 6 has s6 = 256 and scaled = x exactly, so E2M1
    midpoints are exact ties for the scale-to-6 candidate; a block with max 4 gets s4 = 256
    and exact ties for the scale-to-4 candidate; [6, 0, …] is an MSE tie (both exact)."""
    mids = [0.25, -0.75, 1.25, -1.75, 2.5, -3.5, 5.0]
    x = np.zeros((4, 64))
    x[0, :16] = np.resize([6.0, *mids], 16)
    x[0, 16:32] = np.resize([-4.0, *[m for m in mids if abs(m) < 4]], 16)
    x[0, 32] = 6.0  # the rest of that block: zeros -> zero error for both candidates
    x[1, :16] = np.resize([6.0, 4.0, -2.0, 3.0, 1.5, -0.5], 16)  # E2M1 values: exact at s = 256
    x[2] = rng.choice(np.array(mids + [0.5, 1.0, 3.0, -6.0]), 64)
    return x.astype(np.float16)


def int_ties(rng: np.random.Generator) -> np.ndarray:
    """Tensor amax 7 with a block of half-integers (exact ties when scaled = x) and random
    multiples of 1/2 elsewhere."""
    x = rng.integers(-14, 15, (4, 64)) / 2.0
    x[0, :16] = np.resize([7.0, 0.5, -1.5, 2.5, -3.5, 4.5, -5.5, 6.5], 16)
    x[0, 16:32] = np.resize([-7.0, 0.5, 1.0, -0.5], 16)
    x[:, ::16][1:] = 7.0
    return x.astype(np.float16)


def expansion_rounding(rng: np.random.Generator) -> np.ndarray:
    """Tensor amax 7 and block maxima 1.53125, 3.0625, 6.125: there E4M3(fp32(fp32(amax_b/6)
    · enc) · 1.5) (the published scale-to-4 rule) and E4M3(fp32(amax_b/4) · enc) differ by
    one code (found by search over FP16 block maxima)."""
    peaks = np.resize([1.53125, 3.0625, 6.125], (8, 4))
    x = rng.uniform(-0.95, 0.95, (8, 4, B)) * peaks[..., None]
    x[..., 0] = peaks
    x[0, 0, 1] = 7.0
    x[0, 0, 0] = 7.0
    return x.reshape(8, 4 * B).astype(np.float16)


GENERATORS: list[Callable[[np.random.Generator], np.ndarray]] = [
    gaussian, heavy_wide, outliers, special_blocks, subnormal_tensor, e2m1_ties, int_ties,
    expansion_rounding]


@pytest.fixture(params=GENERATORS, ids=lambda g: g.__name__)
def tensor(request, rng) -> np.ndarray:
    return request.param(rng)


# --------------------------------------------------------------------------------------------
# Registration and widths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nvfp4-4o6", "nvint4"])
def test_registered_float_scaled_baseline(name: str) -> None:
    """Both are baselines and format names; float-scaled, B = 16 only, 4.5 bits/element
    (4 + 8/16) plus 32 bits per tensor."""
    assert name in BASELINES and name in FORMAT_NAMES
    f = resolve_format(name)
    assert f.name == name and not f.pow2_scaled
    assert (f.element_bits, f.scale_bits(), f.id_bits(), f.tensor_bits()) == (4, 8, 0, 32)
    assert f.bits_per_element(16) == 4.5
    assert f.block_size(None) == 16
    for b in (8, 32, 64):
        with pytest.raises(ValueError, match=rf"^block: {name} supports B in \(16,\), got {b}"):
            f.block_size(b)
    q = quantize(np.ones((2, 32), np.float16), name)
    assert (q.block, q.bits_per_element, q.tensor_bits) == (16, 4.5, 32)
    with pytest.raises(ValueError, match=r"^select:"):
        resolve_format(name, select="two-stage")


# --------------------------------------------------------------------------------------------
# Element and scale rounding against ml_dtypes (exhaustive over FP16)
# --------------------------------------------------------------------------------------------


def test_e2m1_elements_equal_ml_dtypes_on_every_fp16_value() -> None:
    """The shared element rounder (NVFP4, 4o6): every finite FP16 value (±0, subnormals,
    beyond ±6) against ml_dtypes' float4_e2m1fn (RNE, saturating), sign bit included, and the
    code decodes to the value."""
    x = all_finite_fp16().astype(np.float32)
    codes, values = e2m1_elements(x)
    want = x.astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert np.array_equal(bits(values), bits(want))
    assert np.array_equal(bits(decode_e2m1(codes)), bits(want))


def test_e2m1_reference_rounding_equals_ml_dtypes() -> None:
    """The oracle's port of fake_quantize_to_e2m1 (with saturation) is RNE on E2M1: checked
    against ml_dtypes on every finite FP16 value, so the oracle is itself independent."""
    x = all_finite_fp16().astype(np.float32)
    want = x.astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert np.array_equal(bits(ref_e2m1(x)), bits(want))


def test_int4_element_rounding_is_round_half_even() -> None:
    """NVINT4's element rule through the format, on a tensor of every finite FP16 value in
    [-7, 7]: each element equals Python's round() (half-even) of the oracle's scaled value,
    clamped to [-7, 7]."""
    x = all_finite_fp16()
    x = x[np.abs(x.astype(np.float32)) <= 7]
    x = np.concatenate([x, np.zeros((-len(x)) % B, np.float16)])
    s8, s32, scaled = ref_scales(x.astype(np.float32).reshape(-1, B), F32(7), 7.0, 448.0)
    q = quantize(x.reshape(1, -1), "nvint4")
    got = decode_int4(q.codes.reshape(-1, B))
    want = np.array([max(-7, min(7, round(float(v)))) for v in scaled.reshape(-1)], np.int8)
    assert np.array_equal(got.reshape(-1), want)
    assert np.array_equal(q.scale.reshape(-1), s8)
    assert got.min() >= -7  # symmetric: -8 never occurs


# --------------------------------------------------------------------------------------------
# Bit-exact against the oracle
# --------------------------------------------------------------------------------------------


def test_nvint4_matches_reference(tensor: np.ndarray) -> None:
    """Codes (two's complement), E4M3 scale bytes, the per-tensor word (the tensor amax) and
    every dequantized bit equal the fouroversix nvint4 reference."""
    ref = ref_nvint4(tensor)
    q = quantize(tensor, "nvint4")
    n = ref["scale"].size
    assert q.tensor_scale == F32(np.abs(tensor.astype(np.float32)).max())
    assert np.array_equal(q.scale.reshape(n), ref["scale"])
    assert np.array_equal(decode_int4(q.codes.reshape(n, B)), ref["q"])
    assert np.array_equal(q.codes & 0xF, q.codes)
    assert np.array_equal(bits(q.dequant.reshape(n, B)), bits(ref["dequant"]))


def test_4o6_matches_reference(tensor: np.ndarray) -> None:
    """Scale bytes, element codes and dequantized bits equal the Four Over Six reference.
    The only blocks allowed to choose the other candidate are those where the reference's
    FP32 error sums cannot tell the two apart (float64 errors within 2^-20 relative)."""
    ref = ref_4o6(tensor)
    q = quantize(tensor, "nvfp4-4o6")
    n = ref["scale"].size
    assert q.tensor_scale == F32(np.abs(tensor.astype(np.float32)).max())
    scale = q.scale.reshape(n)
    differ = scale != ref["scale"]
    near_tie = np.abs(ref["err4"] - ref["err6"]) <= 2.0**-20 * np.maximum(ref["err4"],
                                                                          ref["err6"])
    assert not np.any(differ & ~near_tie), np.flatnonzero(differ & ~near_tie)
    same = ~differ
    assert np.array_equal(bits(decode_e2m1(q.codes.reshape(n, B))[same]),
                          bits(ref["values"][same]))
    assert np.array_equal(bits(q.dequant.reshape(n, B)[same]), bits(ref["dequant"][same]))


def test_4o6_chooses_the_smaller_error_ties_to_six(tensor: np.ndarray) -> None:
    """Brute force per block: the stored scale byte is one of the two candidates' (6 or 4),
    the dequant is that candidate's, its float64 error is <= the other's, and an exact tie
    keeps the scale-to-6 candidate."""
    ref = ref_4o6(tensor)
    q = quantize(tensor, "nvfp4-4o6")
    n = ref["scale"].size
    scale = q.scale.reshape(n)
    deq = q.dequant.reshape(n, B)
    err = ((deq.astype(np.float64) - tensor.astype(np.float64).reshape(n, B)) ** 2).sum(-1)
    is6 = scale == ref["scale6"]
    is4 = (scale == ref["scale4"]) & ~is6
    assert np.all(is6 | is4)
    assert np.array_equal(bits(deq[is6]), bits(ref["dequant6"][is6]))
    assert np.array_equal(bits(deq[is4]), bits(ref["dequant4"][is4]))
    other = np.where(is6, ref["err4"], ref["err6"])
    assert np.all(err <= other)
    assert np.all(is6[err == other]), "ties keep the scale-to-6 candidate"


def test_4o6_tie_and_rounding_cases_by_hand() -> None:
    """e2m1_ties, worked out by hand: [6, 0 …] is exact for both candidates (scale bytes
    256 = 0x78 and 384 = 0x7C) and keeps 6; E2M1 midpoints at s = 256 round to even."""
    x = e2m1_ties(np.random.default_rng(0))
    q = quantize(x, "nvfp4-4o6")
    assert q.tensor_scale == 6.0
    assert q.scale[0, 2] == 0x78  # 256: the tie keeps the scale-to-6 candidate
    assert q.dequant[0, 32] == 6.0 and not q.dequant[0, 33:48].any()
    assert np.array_equal(q.dequant[1, :16], x[1, :16].astype(np.float32))  # exact at s=256
    blk = x[0, :16].astype(np.float32)
    if q.scale[0, 0] == 0x78:  # scale-to-6 chosen: the midpoints are exact ties
        want = blk.astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
        assert np.array_equal(decode_e2m1(q.codes[0, :16]), want)
        assert want[1:8].tolist() == [0.0, -1.0, 1.0, -2.0, 2.0, -4.0, 4.0]


def test_nvint4_ties_by_hand() -> None:
    """int_ties: tensor amax 7 makes a block with max 7 scale exactly (s = 448, scaled = x),
    so its half-integers round half to even."""
    x = int_ties(np.random.default_rng(0))
    q = quantize(x, "nvint4")
    assert q.scale[0, 0] == 0x7E  # 448
    _, _, scaled = ref_scales(x.astype(np.float32).reshape(-1, B), F32(7), 7.0, 448.0)
    assert np.array_equal(scaled[0], x[0, :16].astype(np.float32))  # precondition: exact
    assert decode_int4(q.codes[0, :8]).tolist() == [7, 0, -2, 2, -4, 4, -6, 6]


@pytest.mark.parametrize("name", ["nvfp4-4o6", "nvint4"])
def test_zero_tensor_and_zero_blocks(name: str) -> None:
    """An all-zero tensor (±0) gives codes 0, scale bytes 0, +0.0 values and tensor word 0;
    an all-zero block in a non-zero tensor gets scale byte 0 and codes 0, and a block whose
    scale rounds to 0 in E4M3 flushes to +0.0 with codes 0."""
    x = np.zeros((2, 32), np.float16)
    x[1] = -0.0
    q = quantize(x, name)
    assert q.tensor_scale == 0 and not q.codes.any() and not q.scale.any()
    assert not np.signbit(q.dequant).any() and not q.dequant.any()
    y = np.zeros((1, 48), np.float16)
    y[0, :16] = 1000.0
    y[0, 16:32] = -0.0
    y[0, 32:48] = np.float16(-(2.0**-24))  # s_hp ~ 2^-24/1000·256: E4M3 0
    q = quantize(y, name)
    assert q.scale[0, 1:].tolist() == [0, 0]
    assert not q.codes[0, 16:].any() and not np.signbit(q.dequant[0, 16:]).any()


# --------------------------------------------------------------------------------------------
# Guarantees by construction, GEMM, CLI
# --------------------------------------------------------------------------------------------


def test_4o6_never_worse_than_its_scale_to_6_nvfp4(rng) -> None:
    """On a Gaussian tensor: every block's squared error is <= that of NVFP4 with the same
    tensor scale (the scale-to-6 candidate), so the tensor's SQNR is too."""
    x = _fp16(rng.standard_normal((64, 512)))
    ref = ref_4o6(x)
    q = quantize(x, "nvfp4-4o6")
    blocks = x.astype(np.float64).reshape(-1, B)
    err = ((q.dequant.astype(np.float64).reshape(-1, B) - blocks) ** 2).sum(-1)
    assert np.all(err <= ref["err6"])
    assert sqnr_db(x, q.dequant) >= sqnr_db(x.reshape(-1, B), ref["dequant6"])
    assert np.any(err < ref["err6"])  # the choice is not vacuous on Gaussian data


def _float_contract(qx, qw) -> np.ndarray:
    """SPEC §8 float GEMM contract by plain Python: per block the float64 sum of the float64
    products (ascending i from +0.0), rounded to FP32, accumulated in FP32 from +0.0."""
    a, w = qx.dequant, qw.dequant
    m, k = a.shape
    y = np.zeros((m, w.shape[0]), np.float32)
    for i in range(m):
        for j in range(w.shape[0]):
            acc = F32(0)
            for b0 in range(0, k, B):
                s = 0.0
                for t in range(b0, b0 + B):
                    s += float(a[i, t]) * float(w[j, t])
                acc = F32(acc + F32(s))
            y[i, j] = acc
    return y


@pytest.mark.parametrize("name", ["nvfp4-4o6", "nvint4"])
def test_gemm_follows_the_float_contract(rng, name: str) -> None:
    x = rng.standard_normal((5, 64)).astype(np.float32)
    w = rng.standard_normal((64, 3)).astype(np.float32)
    y = gemm(x, w, name)
    want = _float_contract(quantize(x, name), quantize_weights(w, name))
    assert y.dtype == np.float32 and np.array_equal(bits(y), bits(want))
    y16 = gemm(x, w, name, out="fp16")
    assert np.array_equal(y16, want.astype(np.float16))


@pytest.mark.parametrize("name", ["nvfp4-4o6", "nvint4"])
def test_cli_quantize(tmp_path, rng, name: str) -> None:
    """``semdialect quantize --format NAME`` writes the library's outputs; a wrong block size
    is one line on stderr, status 2, and no file."""
    x = rng.standard_normal((4, 3, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "o.npz"
    assert main(["quantize", str(tmp_path / "x.npy"), "-o", str(out), "--format", name]) == 0
    z = np.load(out)
    ref = quantize(x, name)
    assert np.array_equal(z["codes"], ref.codes) and np.array_equal(z["dequant"], ref.dequant)
    assert z["scale"].dtype == np.uint8 and z["scale"].shape == (4, 3, 4)
    assert z["tensor_scale"] == ref.tensor_scale == F32(np.abs(x.astype(np.float16)).max())
    assert str(z["format"]) == name and int(z["block"]) == 16
    assert float(z["bits_per_element"]) == 4.5
    bad = tmp_path / "bad.npz"
    r = subprocess.run([sys.executable, "-m", "semdialect", "quantize", str(tmp_path / "x.npy"),
                        "-o", str(bad), "--format", name, "--block", "32"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and not bad.exists()
    assert len(r.stderr.strip().splitlines()) == 1 and "block" in r.stderr
