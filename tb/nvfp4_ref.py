"""Reference values and test vectors for the NVFP4 hardware pieces (:mod:`rtl.scale`,
:mod:`rtl.nvfp4_quantizer`).

Every expected value comes from the golden model or NumPy float32 arithmetic (IEEE RNE, an
independent oracle); nothing here models the RTL's algorithm:

* :func:`ref_quantize` — golden's NVFP4 block encoder (``golden.formats.NVFP4.encode``) under a
  given tensor scale, and :func:`tensor_scales` — golden's tensor scale of a tensor plus
  RNE_fp32(1/ts); :func:`ref_quantize_hw` — the quantizer's output contract on top of it
  (a block holding NaN/±Inf, where golden raises, gives ``invalid`` 1, codes 0 and scale 0;
  SPEC §8 [ours]), with :func:`inject_nonfinite` making such blocks;
* :func:`ref_contribution` — the block contribution of ``golden.gemm.nvfp4_hw_contributions``
  (P · s_a · s_w / 4 in float32, exact) for raw (P, scale bytes);
* :func:`ref_fp32_mul` — ``float32(a) * float32(b)``.
"""

from __future__ import annotations

import numpy as np

from semdialect.golden.formats import E4M3_GRID, NVFP4
from semdialect.golden.gemm import nvfp4_hw_contributions
from semdialect.golden.quantize import QTensor

__all__ = [
    "BLOCK",
    "NONFINITE_BITS",
    "adversarial_blocks",
    "contribution_via_golden",
    "f32_bits",
    "fp16_bits",
    "fp32_mul_vectors",
    "inject_nonfinite",
    "nonfinite_mask",
    "random_tensor_blocks",
    "ref_contribution",
    "ref_fp32_mul",
    "ref_quantize",
    "ref_quantize_hw",
    "tensor_scales",
]

BLOCK = 16
_FORMAT = NVFP4()


# -- quantizer ----------------------------------------------------------------------------------


def tensor_scales(tensor: np.ndarray) -> tuple[np.float32, np.float32]:
    """(ts, RNE_fp32(1/ts)) of an FP16 tensor as golden computes them (ts = 0: inv_ts 0)."""
    x16 = np.asarray(tensor, np.float16)
    ts = _FORMAT.prepare(x16.reshape(-1, x16.shape[-1]))["tensor_scale"]
    inv = np.float32(1) / ts if ts != 0 else np.float32(0)
    return np.float32(ts), np.float32(inv)


def ref_quantize(blocks: np.ndarray, ts: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Golden NVFP4 codes (n, 16) uint8 and E4M3 scale bytes (n,) of (n, 16) FP16 blocks under
    the tensor scale ``ts``."""
    enc = _FORMAT.encode(np.asarray(blocks, np.float16), {"tensor_scale": np.float32(ts)})
    return enc.codes, enc.meta["scale"]


#: FP16 bit patterns of non-finite values: +Inf, −Inf, quiet and signalling NaNs of both signs
NONFINITE_BITS = (0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0xFFFF, 0x7D55)


def nonfinite_mask(blocks: np.ndarray) -> np.ndarray:
    """(n,) bool: the blocks holding a NaN or ±Inf."""
    return ~np.isfinite(np.asarray(blocks, np.float16)).all(axis=-1)


def ref_quantize_hw(blocks: np.ndarray, ts: np.float32
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The quantizer's expected (codes (n, 16), scale bytes (n,), invalid (n,)) of (n, 16) FP16
    blocks that may hold NaN/±Inf: golden (:func:`ref_quantize`) for the finite blocks; a
    block with a non-finite lane gives invalid 1, codes 0 and scale 0."""
    blocks = np.asarray(blocks, np.float16)
    invalid = nonfinite_mask(blocks)
    codes = np.zeros(blocks.shape, np.uint8)
    scales = np.zeros(len(blocks), np.uint8)
    if (~invalid).any():
        c, s = ref_quantize(blocks[~invalid], ts)
        codes[~invalid], scales[~invalid] = c, s
    return codes, scales, invalid.astype(np.uint8)


def inject_nonfinite(rng: np.random.Generator, blocks: np.ndarray, fraction: float
                     ) -> np.ndarray:
    """A copy of (n, 16) FP16 ``blocks`` with about ``fraction`` of them made invalid: one to
    three random lanes set to a random pattern of :data:`NONFINITE_BITS`."""
    bits = np.asarray(blocks, np.float16).copy().view(np.uint16)
    for row in np.flatnonzero(rng.random(len(bits)) < fraction):
        lanes = rng.choice(BLOCK, int(rng.integers(1, 4)), replace=False)
        bits[row, lanes] = rng.choice(NONFINITE_BITS, lanes.size)
    return bits.view(np.float16)


def adversarial_blocks() -> np.ndarray:
    """(n, 16) FP16 blocks of the corner cases, meant for a tensor whose amax is 65504 (and
    reused under other tensor scales): zeros and −0, max FP16, FP16 subnormals, E2M1 ties,
    E4M3-tie block maxima, amax exactly representable, single outliers."""
    rows = []
    rows.append(np.zeros(BLOCK))
    rows.append(np.full(BLOCK, -0.0))
    rows.append(np.resize([65504.0, -65504.0], BLOCK))
    rows.append(np.resize([6e-8, -6e-8, 0.0, -0.0, 1.2e-7, 5.96e-8], BLOCK))  # FP16 subnormals
    rows.append(np.resize([2**-24, 2**-14, -(2**-14 - 2**-24)], BLOCK))  # sub/normal edge
    base = np.array([0.25, -0.75, 1.25, 1.75, -2.5, 3.5, 5.0, 6.0, 0.5, 1.0, -3.0, 4.0,
                     2.0, 1.5, -0.0, 0.0])
    for scale in (1.0, 2.0**-8, 2.0**6, 3.0, 0.1, 1000.0):  # E2M1 ties after scaling
        rows.append(base * scale)
    for amax in (6.0, 12.0, 448 * 6.0, 24.0, 0.75, 1.0, 65504.0, 2.0**-14):  # representable
        rows.append(np.resize([amax, -amax / 2, amax / 3, amax / 6], BLOCK))
    # block maxima whose scale t = amax/6/ts lands on or near an E4M3 midpoint (ts of 65504)
    ts = np.float32(np.float32(65504) / np.float32(448 * 6))
    for code in range(8, 0x7E, 7):
        mid = (E4M3_GRID[code] + E4M3_GRID[code + 1]) / 2
        for nudge in (-1, 0, 1):
            amax = np.float16(mid * 6 * ts)
            amax = np.nextafter(amax, np.float16(np.inf * nudge)) if nudge else amax
            rows.append(np.resize([amax, -amax * 0.3, amax * 0.61], BLOCK))
    rows.append(np.eye(BLOCK)[3] * -7.0)  # one outlier, the rest zeros
    return np.clip(np.array(rows), -65504, 65504).astype(np.float16)


def random_tensor_blocks(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 16) random FP16 blocks: heavy-tailed values, per-block magnitudes over most of the
    FP16 range, some zero lanes."""
    scale = 2.0 ** rng.integers(-26, 14, (n, 1))
    x = rng.standard_t(2, (n, BLOCK)) * scale
    x[rng.random((n, BLOCK)) < 0.05] = 0.0
    return np.clip(x, -65504, 65504).astype(np.float16)


def fp16_bits(blocks: np.ndarray) -> list[list[int]]:
    """FP16 bit patterns of (n, 16) blocks as nested Python ints."""
    return np.asarray(blocks, np.float16).view(np.uint16).astype(int).tolist()


def f32_bits(v: np.float32) -> int:
    return int(np.float32(v).view(np.uint32))


# -- block contribution and FP32 multiply ----------------------------------------------------------


def ref_contribution(p: np.ndarray, scale_a: np.ndarray, scale_w: np.ndarray) -> np.ndarray:
    """binary32 patterns (uint32) of the exact contributions P · s_a · s_w / 4 of golden's NVFP4
    hardware contract, for raw block products ``p`` and E4M3 bytes (bit 7 clear). A zero
    contribution is +0.0 (golden's −0.0 of a negative P times a zero scale never reaches an
    output: the accumulation starts from +0.0)."""
    p = np.asarray(p, np.int64)
    n = p.size
    # one-element blocks whose elements are ±HU with the product p: build them as QTensors
    # would be heavy; the contribution rule is golden's, written on the decoded values
    sa = E4M3_GRID.astype(np.float32)[np.asarray(scale_a, np.int64)]
    sw = E4M3_GRID.astype(np.float32)[np.asarray(scale_w, np.int64)]
    c = p.astype(np.float32) * (sa * sw) * np.float32(0.25)
    assert n == c.size
    return (c + np.float32(0)).view(np.uint32)


def contribution_via_golden(codes_a: np.ndarray, scale_a: int, codes_w: np.ndarray,
                            scale_w: int) -> int:
    """binary32 pattern of one block pair's contribution computed by
    ``golden.gemm.nvfp4_hw_contributions`` itself (16 E2M1 codes + E4M3 byte per operand)."""

    def qt(codes: np.ndarray, scale: int) -> QTensor:
        return QTensor(format=_FORMAT.name, block=BLOCK, codes=np.asarray(codes, np.uint8)[None],
                       dequant=np.zeros((1, BLOCK), np.float32), bits_per_element=4.5,
                       scale=np.array([[scale]], np.uint8), tensor_scale=np.float32(1),
                       fmt=_FORMAT)

    c = nvfp4_hw_contributions(qt(codes_a, scale_a), qt(codes_w, scale_w))[0, 0, 0]
    return int((c + np.float32(0)).view(np.uint32))


def ref_fp32_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``float32(a) * float32(b)`` on raw binary32 patterns (uint32 in and out)."""
    a = np.asarray(a, np.uint32).view(np.float32)
    b = np.asarray(b, np.uint32).view(np.float32)
    return (a * b).view(np.uint32)


def _pack(sign: np.ndarray, exp: np.ndarray, frac: np.ndarray) -> np.ndarray:
    return ((np.asarray(sign, np.uint32) << 31) | (np.asarray(exp, np.uint32) << 23)
            | np.asarray(frac, np.uint32))


def fp32_mul_vectors(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """(m, 2) uint32 operand pairs per class, every product within the multiplier's contract
    (operands normal or ±0, product normal or zero): random, ties (the 48-bit product's low
    half exactly one half ulp), exact (few-bit significands), round-up carries to the next
    binade, signed zeros, and the NVFP4 drain's operand ranges."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}

    def normal(k: int, lo: int = 64, hi: int = 190) -> np.ndarray:
        return _pack(rng.integers(0, 2, k), rng.integers(lo, hi, k), rng.integers(0, 1 << 23, k))

    out["random"] = np.stack([normal(n), normal(n)], 1)
    # ties: b = 1 + 2^-j; a's low j bits = 1 followed by zeros → a·b's discarded bits are a
    # half ulp exactly (when a + a·2^-j stays below 2), so keep the ones that are ties
    ties = []
    while len(ties) < n:
        j = int(rng.integers(1, 23))
        fa = (int(rng.integers(0, 1 << 23)) >> j << j) | (1 << (j - 1))
        ea, eb = (int(v) for v in rng.integers(100, 150, 2))
        a = (int(rng.integers(0, 2)) << 31) | (ea << 23) | fa
        b = (eb << 23) | (1 << (23 - j))
        sa, sb = (a & 0x7FFFFF) | 1 << 23, (b & 0x7FFFFF) | 1 << 23
        prod = sa * sb
        shift = 24 if prod >> 47 else 23
        if prod & ((1 << shift) - 1) == 1 << (shift - 1):
            ties.append((a, b))
    out["ties"] = np.array(ties, np.uint32)
    few = lambda k: rng.integers(0, 1 << 4, k) << 19  # noqa: E731
    out["exact"] = np.stack([_pack(rng.integers(0, 2, n), rng.integers(100, 150, n), few(n)),
                             _pack(rng.integers(0, 2, n), rng.integers(100, 150, n), few(n))], 1)
    big = (1 << 23) - rng.integers(1, 64, n)
    out["carry"] = np.stack([_pack(0, rng.integers(100, 150, n), big),
                             _pack(rng.integers(0, 2, n), rng.integers(100, 150, n),
                                   rng.integers(0, 64, n))], 1)
    zeros = np.array([0, 0x8000_0000], np.uint32)
    z = rng.choice(zeros, n)
    out["zeros"] = np.stack([np.where(rng.random(n) < 0.5, z, normal(n)), z], 1)
    out["zeros"][: n // 2] = out["zeros"][: n // 2, ::-1]
    # the drain: acc (any float32 in ±[2^-20, 2^60]) times ts_a·ts_w ∈ [2^-71, 594]
    acc = _pack(rng.integers(0, 2, n), rng.integers(107, 187, n), rng.integers(0, 1 << 23, n))
    tsp = _pack(0, rng.integers(56, 137, n), rng.integers(0, 1 << 23, n))
    out["drain"] = np.stack([acc, tsp], 1)
    return {k: v.astype(np.uint32) for k, v in out.items()}
