"""Block Hadamard rotation (SPEC §11): the rotation against independent references, then the
rotated quantize path, GEMM, decomposition and designs against the unrotated golden model
applied to explicitly rotated FP16 operands.

References written here: Sylvester's matrix from popcount parity, SplitMix64 from its published
constants (Steele, Lea, Flood 2014; with its published first outputs for seed 0), the FP16
rounding by ``struct.pack('<e', ·)`` (Python's correctly rounded binary16 packing) of the exact
value computed with ``fractions.Fraction``.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np
import pytest

from semdialect.config import Config
from semdialect.designs import DESIGNS, configured_design
from semdialect.golden import FORMAT_NAMES, decomposed_linear, gemm, gemm_quantized, quantize
from semdialect.golden.decompose import residual, residual_format
from semdialect.golden.formats import resolve_format
from semdialect.golden.gemm import nvfp4_hw_gemm, nvfp4_hw_gemm_quantized
from semdialect.golden.metrics import sqnr_db
from semdialect.golden.quantize import dialect_costs, quantize_weights
from semdialect.golden.rotated import RotatedFormat
from semdialect.golden.rotation import Rotation, hadamard_matrix, rotation_signs

SIZES = (16, 32, 64)
MASK = (1 << 64) - 1


# -- independent references ----------------------------------------------------------------

def ref_splitmix64(seed: int, n: int) -> list[int]:
    """SplitMix64 (Steele, Lea, Flood, OOPSLA 2014; Vigna's splitmix64.c), written out."""
    out, x = [], seed
    for _ in range(n):
        x = (x + 0x9E3779B97F4A7C15) % (1 << 64)
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % (1 << 64)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % (1 << 64)
        out.append(z ^ (z >> 31))
    return out


def ref_hadamard(b: int) -> list[list[int]]:
    """Sylvester's construction by recursion: H_2n = [[H, H], [H, -H]]."""
    h = [[1]]
    while len(h) < b:
        h = [row + row for row in h] + [row + [-v for v in row] for row in h]
    return h


def ref_exact(block: np.ndarray, rot: Rotation, role: str) -> list[Fraction]:
    """2^-c · H·(s ⊙ x) of one block, exact."""
    h = ref_hadamard(rot.block)
    s = [1 if z >> 63 == 0 else -1 for z in ref_splitmix64(rot.seed, rot.block)]
    xs = [Fraction(float(v)) for v in block]
    c = Fraction(1, 2 ** rot.shift(role))
    return [c * sum(h[i][j] * s[j] * xs[j] for j in range(rot.block)) for i in range(rot.block)]


def ref_fp16(v: Fraction) -> float:
    """RNE binary16 of an exact value (inf on overflow); +0.0 for a zero (SPEC §11)."""
    f = float(v)
    assert Fraction(f) == v  # the exact value fits float64 (<= 46 significant bits)
    try:
        return struct.unpack("<e", struct.pack("<e", f))[0] + 0.0
    except OverflowError:
        return float("inf") if f > 0 else float("-inf")


def ref_forward(blocks: np.ndarray, rot: Rotation, role: str) -> np.ndarray:
    return np.array([[ref_fp16(v) for v in ref_exact(b, rot, role)] for b in blocks])


def rotate_explicitly(x: np.ndarray, rot: Rotation, role: str, pad: bool = False) -> np.ndarray:
    """FP16 x (…, k) rotated block-wise by the golden Rotation (tested above on its own)."""
    x16 = np.asarray(x).astype(np.float16)
    k = x16.shape[-1]
    if pad and k % rot.block:
        x16 = np.pad(x16, [(0, 0)] * (x16.ndim - 1) + [(0, rot.block - k % rot.block)])
    y, bad = rot.forward(x16.reshape(-1, rot.block), role)
    assert not bad.any()
    return y.reshape(x16.shape)


def heavy(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Student-t (3 degrees of freedom) values: heavy tails."""
    return rng.standard_t(3, size=shape)


def bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.uint16 if a.dtype == np.float16 else np.uint32)


# -- the rotation itself ----------------------------------------------------------------------

@pytest.mark.parametrize("b", SIZES)
def test_hadamard_matrix(b: int) -> None:
    h = hadamard_matrix(b).astype(np.int64)
    assert h.tolist() == ref_hadamard(b)
    assert (h @ h == b * np.eye(b, dtype=np.int64)).all()
    m = Rotation(b, 3).matrix
    assert (m @ m.T == b * np.eye(b)).all()  # diag(s)·H is orthogonal up to B


def test_splitmix64_published_outputs() -> None:
    # the published first outputs of SplitMix64 seeded with 0
    assert ref_splitmix64(0, 3) == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("seed", [0, 1, 42, 0xDEADBEEF, MASK])
@pytest.mark.parametrize("b", SIZES)
def test_sign_vector_is_splitmix64_bit63(seed: int, b: int) -> None:
    want = [-1 if z >> 63 else 1 for z in ref_splitmix64(seed, b)]
    assert rotation_signs(b, seed).tolist() == want
    assert Rotation(b, seed).signs.tolist() == want
    assert abs(sum(want)) < b  # both signs occur


def test_shifts() -> None:
    got = {b: (Rotation(b).shift("activation"), Rotation(b).shift("weight")) for b in SIZES}
    assert got == {16: (2, 2), 32: (3, 2), 64: (3, 3)}


def _tie_blocks(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """Blocks whose exact rotated values are FP16 rounding ties: x0 in [1, 2) (odd and even
    mantissas), x1 = 2^-11 (half an FP16 ulp at 1), the rest zero (|y_i| = 2^-c·(x0 ± 2^-11))."""
    blocks = np.zeros((n, b), np.float16)
    blocks[:, 0] = (1 + rng.integers(0, 1024, n) / 1024).astype(np.float16)
    blocks[:, 1] = 2.0**-11
    return blocks


def _subnormal_blocks(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """FP16 subnormal and tiny normal inputs: rotated results are subnormal (with ties)."""
    return (rng.integers(-8, 9, (n, b)) * 2.0**-24).astype(np.float16)


@pytest.mark.parametrize("role", ["activation", "weight"])
@pytest.mark.parametrize("b", SIZES)
def test_forward_rounding_equals_fp16_oracle(rng, b: int, role: str) -> None:
    rot = Rotation(b, seed=b + 1)
    special = np.zeros((6, b), np.float16)
    special[1, :] = -0.0
    special[2, 0] = 65504
    special[3, 0] = -65504
    special[4, :2] = [1.5, 1.5]  # two equal values: cancel in half the rows
    special[5, :] = rotation_signs(b, rot.seed) * np.float16(0.25)  # all add in row 0
    blocks = np.concatenate([
        rng.standard_normal((6, b)).astype(np.float16),
        heavy(rng, (4, b)).astype(np.float16),
        _tie_blocks(rng, b, 6),
        _subnormal_blocks(rng, b, 6),
        special,
    ])
    y, bad = rot.forward(blocks, role)
    want = ref_forward(blocks, rot, role)
    assert not bad.any()
    assert y.dtype == np.float16
    assert (bits(y) == bits(want.astype(np.float16))).all()  # +0.0 included
    assert not np.signbit(y[y == 0]).any()
    # the vectors exercise what they claim: ties (blocks 10..15), subnormal results, zeros
    c = rot.shift(role)
    scaled = [abs(v) * 2**c for blk in blocks[10:16] for v in ref_exact(blk, rot, role)]
    ties = [v for v in scaled if 1 <= v < 2 and (v * 2**11).denominator == 1
            and (v * 2**11).numerator % 2 == 1]
    assert len(ties) >= len(scaled) // 4
    assert ((np.abs(y[16:22]) < 2.0**-14) & (y[16:22] != 0)).any()
    assert (bits(y[22:24]) == 0).all()


@pytest.mark.parametrize("b", SIZES)
def test_forward_ties_round_to_even(b: int) -> None:
    """x0 = 2^c·(1 + m·2^-10), x1 = 2^c·2^-11: y = ±(1 + m·2^-10 ± 2^-11) exactly half an ulp
    from two FP16 values in the rows where the signs agree; RNE picks the even mantissa."""
    rot = Rotation(b, 7)
    c = rot.shift("activation")
    blocks = np.zeros((4, b), np.float16)
    for i, m in enumerate((0, 1, 2, 3)):
        blocks[i, 0] = 2.0**c * (1 + m * 2.0**-10)
        blocks[i, 1] = 2.0**c * 2.0**-11
    y, _ = rot.forward(blocks, "activation")
    want = ref_forward(blocks, rot, "activation")
    assert (y.astype(np.float64) == want).all()
    s0, s1 = rot.signs[:2]
    h = hadamard_matrix(b)
    for i, m in enumerate((0, 1, 2, 3)):
        for row in range(b):
            if h[row, 0] * s0 == h[row, 1] * s1:  # 1 + m/1024 + 1/2048: a tie
                even = m + (m % 2)  # round to the even mantissa
                assert abs(float(y[i, row])) == 1 + even * 2.0**-10


@pytest.mark.parametrize("b", SIZES)
def test_overflow_detection(b: int) -> None:
    """Row 0 adds every s_j·x_j: Σ v = 4·65520 (activation c = 2 at B = 16) is a tie at
    65520, which overflows; 8 less rounds to 65504."""
    rot = Rotation(b, 11)
    c = rot.shift("activation")
    signs = rot.signs.astype(np.float64)
    limit = 65520 * 2**c

    def block(total: float) -> np.ndarray:
        v = np.full(b, 0.0)
        v[:-1] = 2.0 ** np.ceil(np.log2(limit / b))
        v[-1] = total - v[:-1].sum()
        assert np.float16(v[-1]) == v[-1] and 0 < v[-1] < 65504
        return (signs * v).astype(np.float16)

    blocks = np.stack([block(limit), block(limit - 8 * 2**c), np.zeros(b)])
    y, bad = rot.forward(blocks, "activation")
    want = ref_forward(blocks, rot, "activation")
    assert bad.tolist() == [True, False, False]
    assert np.isinf(want[0]).any() and not np.isinf(want[1:]).any()
    assert (y[1:].astype(np.float64) == want[1:]).all()
    assert y[1, 0] == 65504


@pytest.mark.parametrize("role", ["activation", "weight"])
@pytest.mark.parametrize("b", SIZES)
def test_inverse_of_forward_is_identity_within_rounding(rng, b: int, role: str) -> None:
    rot = Rotation(b, 5)
    x = heavy(rng, (64, b)).astype(np.float16)
    y, _ = rot.forward(x, role)
    back = rot.inverse(y.astype(np.float32), role).astype(np.float64)
    # the forward error |δ_i| <= ulp(y_i)/2 maps to |Δx_j| <= 2^(c - log2 B)·Σ_i |δ_i|
    delta = np.spacing(np.abs(y)).astype(np.float64) / 2
    bound = 2.0 ** (rot.shift(role) - rot.log2_block) * delta.sum(axis=1, keepdims=True)
    err = np.abs(back - x.astype(np.float64))
    assert (err <= bound + np.spacing(np.abs(x).astype(np.float32))).all()
    # exact FP16 blocks whose rotation is exact come back exactly
    ints = rng.integers(-4, 5, (8, b)).astype(np.float16)
    y2, _ = rot.forward(ints, role)
    assert (rot.inverse(y2.astype(np.float32), role) == ints).all()


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_inverse_is_exact_on_dequantized_blocks(rng, fmt: str) -> None:
    """Rotation.inverse of dequantized rotated blocks = RNE_fp32 of the exact value."""
    q = quantize(heavy(rng, (3, 64)), fmt, rotate="hadamard", rotate_seed=9)
    rot = q.rotation
    blocks = q.rotated.reshape(-1, rot.block)[:4]
    got = rot.inverse(blocks, "activation")
    h = ref_hadamard(rot.block)
    s = rot.signs.tolist()
    scale = Fraction(2) ** (rot.shift("activation") - rot.log2_block)
    for blk, g in zip(blocks, got, strict=True):
        yv = [Fraction(float(v)) for v in blk]
        for j in range(rot.block):
            exact = scale * s[j] * sum(h[i][j] * yv[i] for i in range(rot.block))
            assert Fraction(float(exact)) == exact  # float64 holds it: one rounding to FP32
            assert bits(np.float32([float(exact) + 0.0]))[0] == bits(g[j:j + 1])[0]


def test_rotation_arguments() -> None:
    for bad in (24, 1, 0, True, 16.0):
        with pytest.raises(ValueError, match="rotation"):
            Rotation(bad)
    with pytest.raises(ValueError, match="seed"):
        Rotation(16, -1)
    with pytest.raises(ValueError, match="role"):
        Rotation(16).shift("bias")


# -- quantize with rotation -------------------------------------------------------------------

def default_block(fmt: str) -> int:
    """The format's default B (16 for the NVFP4 family, 32 otherwise)."""
    return resolve_format(fmt).block_size(None)


def _blocks_of(fmt: str) -> tuple[int, ...]:
    if fmt in ("sd32", "dfp4", "int4"):
        return (16, 32, 64)
    return (default_block(fmt),)


def _assert_same_quantization(q, p, rot: Rotation, role: str) -> None:
    """q (rotated) against p = plain quantize of the explicitly rotated FP16 tensor."""
    assert (q.codes == p.codes).all()
    for key in ("se", "dialect", "scale", "exp"):
        a, b = getattr(q, key), getattr(p, key)
        assert (a is None) == (b is None), key
        if a is not None:
            assert a.dtype == b.dtype and (bits(a) if a.dtype == np.float32 else a).tolist() \
                == (bits(b) if b.dtype == np.float32 else b).tolist(), key
    assert (q.tensor_scale is None) == (p.tensor_scale is None)
    if q.tensor_scale is not None:
        assert bits(np.float32([q.tensor_scale])) == bits(np.float32([p.tensor_scale]))
    assert (bits(q.rotated) == bits(p.dequant)).all()
    back = rot.inverse(p.dequant.reshape(-1, rot.block), role).reshape(p.dequant.shape)
    assert (bits(q.dequant) == bits(back[..., :q.dequant.shape[-1]])).all()
    assert q.rotation == rot and q.role == role
    assert q.bits_per_element == p.bits_per_element and q.tensor_bits == p.tensor_bits
    assert q.format == f"{p.format}+hadamard"


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_quantize_rotated_equals_plain_quantize_of_rotated_blocks(rng, fmt: str) -> None:
    for b in _blocks_of(fmt):
        rot = Rotation(b, seed=b)
        x = heavy(rng, (5, 2 * b))
        q = quantize(x, fmt, block=b, rotate="hadamard", rotate_seed=b, name="X")
        p = quantize(rotate_explicitly(x, rot, "activation"), fmt, block=b)
        _assert_same_quantization(q, p, rot, "activation")
        # a Rotation object and a RotatedFormat give the same
        q2 = quantize(x, fmt, block=b, rotate=rot)
        q3 = quantize(x, RotatedFormat(resolve_format(fmt), rot), block=b)
        for other in (q2, q3):
            assert (other.codes == q.codes).all() and (bits(other.dequant) == bits(q.dequant)).all()


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_quantize_weights_rotated_uses_the_weight_role(rng, fmt: str) -> None:
    b = default_block(fmt)
    w = heavy(rng, (2 * b, 3))  # (k, n)
    rot = Rotation(b, 2)
    q = quantize_weights(w, fmt, block=b, rotate=rot)
    p = quantize_weights(rotate_explicitly(w.T, rot, "weight").T, fmt, block=b)
    _assert_same_quantization(q, p, rot, "weight")


@pytest.mark.parametrize("fmt", ["sd32", "mxfp4", "nvfp4", "int4"])
def test_quantize_rotated_pad_and_leading_dims(rng, fmt: str) -> None:
    b = default_block(fmt)
    rot = Rotation(b, 4)
    x = heavy(rng, (2, 3, 2 * b + 8))
    q = quantize(x, fmt, block=b, pad=True, rotate=rot)
    y = rotate_explicitly(x, rot, "activation", pad=True)
    p = quantize(y, fmt, block=b)
    assert q.codes.shape == q.rotated.shape == (2, 3, 3 * b)  # padded length
    assert q.dequant.shape == x.shape
    _assert_same_quantization(q, p, rot, "activation")
    # the padded zeros were mixed in: the padded tail of the rotated tensor is not zero
    assert (q.rotated[..., -b:] != 0).any()


def test_quantize_rotated_selection_candidates_and_costs(rng) -> None:
    rot = Rotation(32, 6)
    x = heavy(rng, (4, 64))
    y = rotate_explicitly(x, rot, "activation")
    q = quantize(x, "dfp4", select="two-stage", rotate=rot)
    p = quantize(y, "dfp4", select="two-stage")
    _assert_same_quantization(q, p, rot, "activation")
    cand = rng.random((4, 2, 32)) < 0.3
    cand[..., 5] = True
    q = quantize(x, "sd32", rotate=rot, candidates=cand)
    p = quantize(y, "sd32", candidates=cand)
    _assert_same_quantization(q, p, rot, "activation")
    rf = RotatedFormat(resolve_format("sd32"), rot)
    assert (dialect_costs(x, rf) == dialect_costs(y, "sd32")).all()
    assert (rf.costs(x.astype(np.float16).reshape(-1, 32))
            == resolve_format("sd32").costs(y.reshape(-1, 32))).all()
    assert rf.formatbook.name == "sd32" and rf.select == "lut"  # data attributes delegate
    with pytest.raises(AttributeError, match="unrotated"):
        rf._flushed  # noqa: B018 - methods do not: they would see unrotated blocks


def test_rotated_format_encode_equals_the_driver(rng) -> None:
    rot = Rotation(16, 1)
    f = RotatedFormat(resolve_format("nvfp4"), rot)
    x16 = heavy(rng, (6, 16)).astype(np.float16)
    enc = f.encode(x16, f.prepare(x16))
    q = quantize(x16, f)
    assert (enc.codes == q.codes).all()
    assert (bits(enc.dequant) == bits(q.dequant)).all()
    assert (bits(enc.rotated) == bits(q.rotated)).all()
    assert f.bits_per_element(16) == 4.5 and f.tensor_bits() == 32 and not f.pow2_scaled


def test_quantize_rotated_errors(rng) -> None:
    x = rng.standard_normal((2, 64))
    with pytest.raises(ValueError, match=r"^rotate: .*16.*32"):
        quantize(x, "sd32", block=32, rotate=Rotation(16))
    with pytest.raises(ValueError, match=r"^rotate: .*32.*16"):
        quantize(x, "nvfp4", rotate=Rotation(32))
    with pytest.raises(ValueError, match=r"^rotate: .*B = 24"):
        quantize(rng.standard_normal((2, 48)), "int4", block=24, rotate="hadamard")
    with pytest.raises(ValueError, match="^rotate: expected"):
        quantize(x, "sd32", rotate="givens")
    with pytest.raises(ValueError, match="^rotate: .*already rotated"):
        quantize(x, RotatedFormat(resolve_format("sd32"), Rotation(32)), rotate="hadamard")
    # overflow after rotation names the tensor and the block (row…, block)
    big = np.zeros((2, 3, 64))
    big[1, 2, 32:] = 60000
    with pytest.raises(ValueError, match=r"^act: block \(1, 2, 1\) is outside the FP16 range "
                                         r"after rotation"):
        quantize(big, "sd32", rotate="hadamard", name="act")
    quantize(big, "sd32", name="act")  # fine without the rotation
    # NaN/Inf and FP16 overflow are named as before rotation (SPEC §2)
    bad = np.zeros((3, 64))
    bad[2, 40] = np.nan
    with pytest.raises(ValueError, match=r"^act: NaN/Inf in block \(2, 1\)"):
        quantize(bad, "sd32", rotate="hadamard", name="act")
    bad[2, 40] = 1e6
    with pytest.raises(ValueError, match=r"^act: value 1e\+06 in block \(2, 1\) is outside the "
                                         r"FP16 range"):
        quantize(bad, "sd32", rotate="hadamard", name="act")


def test_rotation_helps_heavy_tails_report(rng, capsys) -> None:
    """Report (not a threshold): sd32 SQNR with and without rotation on heavy-tailed and
    outlier-injected tensors. Asserted only: the rotation spreads an outlier (the block's
    max/RMS crest factor drops) and the rotated quantization is not worse on the outlier
    tensor by more than noise."""
    t = heavy(rng, (256, 256))
    out = rng.standard_normal((256, 256))
    out.reshape(-1, 32)[:, 0] *= 50  # one outlier per block
    lines = []
    for name, x in (("student-t3", t), ("outliers", out)):
        plain = sqnr_db(x, quantize(x, "sd32").dequant)
        rot = sqnr_db(x, quantize(x, "sd32", rotate="hadamard").dequant)
        lines.append(f"{name}: sd32 {plain:.2f} dB, sd32+hadamard {rot:.2f} dB")
    y = rotate_explicitly(out, Rotation(32), "activation").astype(np.float64).reshape(-1, 32)
    xb = out.reshape(-1, 32)

    def crest(b: np.ndarray) -> np.ndarray:
        return np.abs(b).max(1) / np.sqrt((b**2).mean(1))

    assert np.median(crest(y)) < np.median(crest(xb)) / 2
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# -- GEMM ---------------------------------------------------------------------------------------

def _explicit_gemm(x, w, fmt: str, rot: Rotation, pad: bool = False, select=None) -> np.ndarray:
    """SPEC §5/§8 GEMM of plain quantizations of explicitly rotated FP16 operands."""
    yx = rotate_explicitly(x, rot, "activation", pad)
    yw = rotate_explicitly(np.asarray(w).T, rot, "weight", pad)  # Wᵀ's rows
    qx = quantize(yx, fmt, select=select, block=rot.block)
    qw = quantize(yw, fmt, block=rot.block)  # lut for dialect weights
    return gemm_quantized(qx, qw)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_gemm_rotated_is_exact_in_the_rotated_basis(rng, fmt: str) -> None:
    b = default_block(fmt)
    rot = Rotation(b, 13)
    x = heavy(rng, (2, 5, 3 * b))
    w = heavy(rng, (3 * b, 7))
    y = gemm(x, w, fmt, block=b, rotate="hadamard", rotate_seed=13)
    want = _explicit_gemm(x.reshape(-1, 3 * b), w, fmt, rot).reshape(2, 5, 7)
    assert y.dtype == np.float32 and (bits(y) == bits(want)).all()
    # no output correction: the rotated GEMM approximates X·W as the plain one does
    ref = x @ w
    err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    plain = np.linalg.norm(gemm(x, w, fmt, block=b) - ref) / np.linalg.norm(ref)
    assert err < (0.02 if fmt == "mxint8" else 0.3)
    assert err < 2 * plain + 0.01


@pytest.mark.parametrize("fmt", ["sd32", "mxfp4", "int4"])
def test_gemm_rotated_pad_select_and_fp16(rng, fmt: str) -> None:
    rot = Rotation(32, 3)
    x = heavy(rng, (6, 70))
    w = heavy(rng, (70, 4))
    y = gemm(x, w, fmt, pad=True, rotate=rot)
    assert (bits(y) == bits(_explicit_gemm(x, w, fmt, rot, pad=True))).all()
    y16 = gemm(x, w, fmt, pad=True, rotate=rot, out="fp16")
    assert (bits(y16) == bits(y.astype(np.float16))).all()
    if fmt == "sd32":
        y2 = gemm(x, w, "dfp4", select="two-stage", pad=True, rotate=rot)
        want = _explicit_gemm(x, w, "dfp4", rot, pad=True, select="two-stage")
        assert (bits(y2) == bits(want)).all()


def test_nvfp4_hw_gemm_rotated(rng) -> None:
    rot = Rotation(16, 21)
    x = heavy(rng, (5, 48))
    w = heavy(rng, (48, 6))
    y = nvfp4_hw_gemm(x, w, rotate=rot)
    qx = quantize(rotate_explicitly(x, rot, "activation"), "nvfp4")
    qw = quantize(rotate_explicitly(w.T, rot, "weight"), "nvfp4")
    assert (bits(y) == bits(nvfp4_hw_gemm_quantized(qx, qw))).all()
    assert np.linalg.norm(y - x @ w) / np.linalg.norm(x @ w) < 0.3


def test_gemm_rotation_mismatch_errors(rng) -> None:
    x = rng.standard_normal((4, 64))
    w = rng.standard_normal((64, 3))
    qx = quantize(x, "sd32", rotate="hadamard")
    qw = quantize_weights(w, "sd32", rotate="hadamard")
    gemm_quantized(qx, qw)  # matching
    cases = [
        (qx, quantize_weights(w, "sd32")),  # W not rotated
        (quantize(x, "sd32"), qw),  # X not rotated
        (qx, quantize_weights(w, "sd32", rotate="hadamard", rotate_seed=1)),  # other seed
        (quantize(x, "sd32", rotate="hadamard"), quantize(w.T, "sd32", rotate="hadamard")),
        (quantize_weights(x.T, "sd32", rotate="hadamard"), qw),  # X in the weight role
    ]
    for a, b in cases:
        with pytest.raises(ValueError, match="^rotate:"):
            gemm_quantized(a, b)
    nx = quantize(x, "nvfp4", rotate="hadamard")
    with pytest.raises(ValueError, match="^rotate:"):
        nvfp4_hw_gemm_quantized(nx, quantize_weights(w, "nvfp4"))


# -- decomposition ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["sd32", "mxfp4", "nvfp4"])
def test_decomposed_linear_rotated(rng, fmt: str) -> None:
    b = default_block(fmt)
    rot = Rotation(b, 8)
    x = heavy(rng, (12, 2 * b))
    w = heavy(rng, (2 * b, 5))
    sal = np.array([0, 4, 9])
    d = decomposed_linear(x, w, fmt, salient=sal, block=b, rotate=rot)
    # explicitly: the rotated operands, the residual in the rotated basis, plain quantize
    yx = rotate_explicitly(x, rot, "activation")
    qx = quantize(yx, fmt, block=b)
    qw = quantize(rotate_explicitly(w.T, rot, "weight"), fmt, block=b)
    r = (yx[sal].astype(np.float32) - qx.dequant[sal]).astype(np.float16)
    qr = quantize(r, fmt, block=b)
    main = gemm_quantized(qx, qw)
    resid = gemm_quantized(qr, qw)
    want = main.copy()
    want[sal] = main[sal] + resid
    assert (bits(d.parts.main) == bits(main)).all()
    assert (bits(d.parts.residual) == bits(resid)).all()
    assert (bits(d.y) == bits(want)).all()
    assert (bits(d.parts.combine()) == bits(d.y)).all()
    # the residual's QTensor: rotated basis codes, carrying the rotation, dequant in x's basis
    assert d.qr.rotation == rot and d.qr.role == "activation"
    assert (d.qr.codes == qr.codes).all() and (bits(d.qr.rotated) == bits(qr.dequant)).all()
    assert (bits(d.qr.dequant) == bits(rot.inverse(qr.dequant.reshape(-1, b), "activation")
                                         .reshape(qr.dequant.shape))).all()
    # the residual improves the salient rows' reconstruction in the input's basis
    x16 = x.astype(np.float16).astype(np.float64)
    before = np.abs(x16[sal] - d.qx.dequant[sal]).sum()
    after = np.abs(x16[sal] - d.qx.dequant[sal] - d.qr.dequant).sum()
    assert after < before


def test_residual_of_rotated_rows(rng) -> None:
    x = heavy(rng, (6, 64))
    q = quantize(x, "sd32", rotate="hadamard", rotate_seed=2)
    x16 = x.astype(np.float16)
    rows = np.array([1, 3])
    r = residual(x16[rows], q.take_rows(rows))
    y = rotate_explicitly(x, q.rotation, "activation")
    want = (y[rows].astype(np.float32) - q.rotated[rows]).astype(np.float16)
    assert (bits(r) == bits(want)).all()
    f = residual_format(q, q.fmt)
    assert isinstance(f, RotatedFormat) and f.input_rotated and f.rotation == q.rotation
    assert residual_format(quantize(x, "sd32"), resolve_format("sd32")).name == "sd32"
    # rows without their rotated-basis dequant (e.g. a hand-built QTensor) are refused
    bare = type(q)(format=q.format, block=q.block, codes=q.codes[rows],
                   dequant=q.dequant[rows], bits_per_element=q.bits_per_element, fmt=q.fmt)
    assert bare.rotation == q.rotation  # from its format
    with pytest.raises(ValueError, match="^rotate: .*rotated"):
        residual(x16[rows], bare)


# -- designs ------------------------------------------------------------------------------------

def test_designs_follow_the_configured_rotation() -> None:
    cfg = Config(rotate="hadamard", rotate_seed=5, block=64)
    for d in DESIGNS.values():
        fa, fw = d.golden_format(cfg), d.weight_format(cfg)
        b = d.block_size(cfg)
        assert isinstance(fa, RotatedFormat) and isinstance(fw, RotatedFormat)
        assert fa.rotation == fw.rotation == Rotation(b, 5)
        assert (fa.role, fw.role) == ("activation", "weight")
        assert "+ hadamard seed 5" in d.row_label(cfg)
        assert fa.bits_per_element(b) == d.golden_format().bits_per_element(b)
        assert d.golden_format(Config()) is d.golden_format()  # none: unchanged
    assert configured_design().row_label(Config(rotate="hadamard")) == \
        "sd32 lut + hadamard (SemanticDialect)"
    assert DESIGNS["blockdialect"].weight_format(cfg).select == "lut"
