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
* :func:`ref_fp32_mul` — ``float32(a) * float32(b)``;
* :func:`nvfp4_pe_vectors` — PE problems (block pairs of one output) with the accumulator of
  ``golden.gemm.nvfp4_hw_accumulate`` as the expected value: golden-quantized random vectors
  and hand-made adversarial blocks (extreme magnitudes, signed zeros, subnormal E4M3 scales
  and scale 0, accumulation ties, cancellation), in the tuple form of ``tb.gemm_ref.pe_vectors``;
  :func:`decoded_block` turns such a block into the PE core's decoded operand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semdialect.golden.formats import E2M1_HU, E4M3_GRID, NVFP4
from semdialect.golden.gemm import nvfp4_hw_accumulate, nvfp4_hw_contributions
from semdialect.golden.quantize import QTensor, quantize, quantize_weights

__all__ = [
    "BLOCK",
    "NONFINITE_BITS",
    "adversarial_blocks",
    "contribution_via_golden",
    "decoded_block",
    "f32_bits",
    "fp16_bits",
    "fp32_mul_vectors",
    "inject_nonfinite",
    "nonfinite_mask",
    "nvfp4_pe_vectors",
    "pe_expected_nvfp4",
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


# -- PE problems (SPEC §8 NVFP4 hardware contract: the accumulator before the tensor scales) ----

#: E4M3 bytes of the largest value (448), 1.0, the smallest normal (2^-6), the subnormals
#: 2^-9 … 7·2^-9, and 0
E4M3_MAX_BYTE, E4M3_ONE, E4M3_MIN_NORMAL = 0x7E, 0x38, 0x08
E4M3_SUBNORMALS = tuple(range(1, 8))


def _qtensor(codes: np.ndarray, scales: np.ndarray) -> QTensor:
    """A one-row NVFP4 QTensor of raw ``codes`` (k,) and E4M3 ``scales`` (k/16,) bytes (the
    tensor scale does not enter the accumulator)."""
    codes = np.asarray(codes, np.uint8)[None]
    return QTensor(format=_FORMAT.name, block=BLOCK, codes=codes,
                   dequant=np.zeros(codes.shape, np.float32), bits_per_element=4.5,
                   scale=np.asarray(scales, np.uint8)[None], tensor_scale=np.float32(1),
                   tensor_bits=32, fmt=_FORMAT)


def _blocks(codes: np.ndarray, scales: np.ndarray) -> list[dict[str, Any]]:
    """The ``nvfp4_block`` field dicts of one row's k-blocks."""
    codes = np.asarray(codes).reshape(-1, BLOCK)
    return [{"codes": [int(c) for c in row], "scale": int(s)}
            for row, s in zip(codes, np.asarray(scales).reshape(-1), strict=True)]


def pe_expected_nvfp4(codes_a: np.ndarray, scales_a: np.ndarray, codes_w: np.ndarray,
                      scales_w: np.ndarray) -> tuple[list, list, int]:
    """One PE problem from raw operands (codes (k,), E4M3 bytes (k/16,)): (activation blocks,
    weight blocks, binary32 bits of ``golden.nvfp4_hw_accumulate`` — golden's accumulator of
    the 1×k · k×1 product)."""
    acc = nvfp4_hw_accumulate(_qtensor(codes_a, scales_a), _qtensor(codes_w, scales_w))
    bits = int(np.asarray(acc, np.float32).reshape(-1)[0].view(np.uint32))
    return _blocks(codes_a, scales_a), _blocks(codes_w, scales_w), bits


def _code(value: float) -> int:
    """The E2M1 code of an exactly representable ±value (−0.0 gives 8)."""
    hu = np.flatnonzero(E2M1_HU == round(abs(value) * 2))
    assert hu.size == 1, value
    return int(hu[0]) | (8 if np.signbit(value) else 0)


def _single(value_a: float, value_w: float, lane: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a block pair whose only nonzero lane ``lane`` holds ``value_a``/``value_w``."""
    a, w = np.zeros(BLOCK, np.uint8), np.zeros(BLOCK, np.uint8)
    a[lane], w[lane] = _code(value_a), _code(value_w)
    return a, w


def _contribution(codes_a: np.ndarray, scale_a: int, codes_w: np.ndarray, scale_w: int
                  ) -> np.float32:
    c = nvfp4_hw_contributions(_qtensor(codes_a, [scale_a]), _qtensor(codes_w, [scale_w]))
    return np.float32(c[0, 0, 0])


def _power_of_two_block(power: int, sign: int) -> tuple[np.ndarray, int, np.ndarray, int] | None:
    """A block pair whose contribution is exactly sign·2^power: one lane 0.5·0.5 (HU 1·1)
    under two scales with S = 8, c = 2^(E'_a + E'_w − 16); None outside E' ∈ [1, 15]."""
    exps = power + 16  # E'_a + E'_w
    if not 2 <= exps <= 30:
        return None
    ea = min(15, exps - 1)
    a, w = _single(0.5 * sign, 0.5)
    return a, ea << 3, w, (exps - ea) << 3  # S = 8 (mantissa 0), E' = exponent field


def _tie_problems(rng: np.random.Generator) -> list[tuple[str, Any]]:
    """Accumulations whose last addition is an exact RNE tie: a large first contribution c0
    (random codes, large scales; at most 20 significant bits, so an even significand), for
    the odd case one ulp of it added next, then ±half an ulp of the running sum
    (:func:`_power_of_two_block`) — ties to even that round down and up, for both signs.
    Each case is checked to be a tie on float32/float64 arithmetic."""
    out = []
    for parity in (0, 1):
        for sign in (1, -1):
            for _ in range(2000):
                ca = rng.integers(0, 16, BLOCK).astype(np.uint8)
                cw = rng.integers(0, 16, BLOCK).astype(np.uint8)
                sa, sw = (int(v) for v in rng.integers(0x60, 0x7F, 2))
                c0 = _contribution(ca, sa, cw, sw)
                if c0 == 0:
                    continue
                codes_a, scales_a, codes_w, scales_w = [ca], [sa], [cw], [sw]
                partial = np.float32(0) + c0
                if parity:  # one ulp more: a 24-bit significand with an odd last bit
                    ulp = _power_of_two_block(int(np.log2(np.spacing(np.abs(partial)))),
                                              1 if partial > 0 else -1)
                    if ulp is None:
                        continue
                    codes_a.append(ulp[0])
                    scales_a.append(ulp[1])
                    codes_w.append(ulp[2])
                    scales_w.append(ulp[3])
                    partial = partial + _contribution(*ulp)
                half = np.spacing(np.abs(partial)) / 2
                last = _power_of_two_block(int(np.log2(half)), sign)
                if last is None:
                    continue
                c2 = _contribution(*last)
                exact = float(partial) + float(c2)  # exact in float64
                if abs(float(partial + c2) - exact) != half or int(
                        np.abs(partial).view(np.uint32) & 1) != parity:
                    continue  # not a tie (a binade edge) or not the parity wanted
                codes_a.append(last[0])
                scales_a.append(last[1])
                codes_w.append(last[2])
                scales_w.append(last[3])
                name = f"tie {'odd' if parity else 'even'} {'+' if sign > 0 else '-'}half"
                out.append((name, (np.concatenate(codes_a), scales_a, np.concatenate(codes_w),
                                   scales_w)))
                break
            else:
                raise AssertionError(f"no tie found (parity {parity}, sign {sign})")
    return out


def _adversarial(rng: np.random.Generator) -> list[tuple[str, Any]]:
    """Named raw problems (codes_a, scales_a, codes_w, scales_w) of the corner cases."""
    z = np.zeros(BLOCK, np.uint8)
    six = np.full(BLOCK, 7, np.uint8)  # +6.0 in every lane
    neg_six = six | 8
    neg_zero = np.full(BLOCK, 8, np.uint8)
    rand = lambda k=1: rng.integers(0, 16, k * BLOCK).astype(np.uint8)  # noqa: E731
    top = E4M3_MAX_BYTE
    cases: list[tuple[str, Any]] = [
        ("zero codes", (np.concatenate([z, z]), [top, 0], rand(2), [top, top])),
        ("scale 0 a", (rand(2), [0, 0], rand(2), [top, E4M3_ONE])),
        ("scale 0 w", (rand(2), [E4M3_ONE, top], rand(2), [0, 0])),
        ("-0 codes", (np.concatenate([neg_zero, neg_zero]), [top, top], rand(2), [top, top])),
        ("±0 mixed", (np.where(rng.random(BLOCK) < 0.5, 8, 0).astype(np.uint8), [top], rand(),
                      [top])),
        ("max 6·448 x max", (np.tile(six, 3), [top] * 3, np.tile(six, 3), [top] * 3)),
        ("max x -max", (np.tile(six, 3), [top] * 3, np.tile(neg_six, 3), [top] * 3)),
        ("max 8 blocks", (np.tile(six, 8), [top] * 8, np.tile(six, 8), [top] * 8)),
        ("min 2^-20", (*_one_lane(0.5, 1), *_one_lane(0.5, 1))),
        ("subnormal scales", (rand(7), list(E4M3_SUBNORMALS), rand(7),
                              list(reversed(E4M3_SUBNORMALS)))),
        ("subnormal x max", (rand(2), [1, 7], rand(2), [top, top])),
        ("min normal", (rand(2), [E4M3_MIN_NORMAL] * 2, rand(2), [E4M3_MIN_NORMAL, 7])),
        ("max then min", (np.concatenate([six, _one_lane(0.5, 1)[0]]), [top, 1],
                          np.concatenate([six, _one_lane(0.5, 1)[0]]), [top, 1])),
        ("min then max", (np.concatenate([_one_lane(-0.5, 1)[0], six]), [1, top],
                          np.concatenate([_one_lane(0.5, 1)[0], six]), [1, top])),
    ]
    x, w = rand(), rand()
    cases.append(("cancel", (np.concatenate([x, x ^ 8]), [0x55, 0x55],
                             np.concatenate([w, w]), [0x43, 0x43])))
    cases.append(("cancel max", (np.concatenate([six, neg_six]), [top, top],
                                 np.concatenate([six, six]), [top, top])))
    cases.append(("mixed scales", (rand(6), rng.integers(0, 0x7F, 6), rand(6),
                                   rng.integers(0, 0x7F, 6))))
    return cases + _tie_problems(rng)


def _one_lane(value: float, scale: int) -> tuple[np.ndarray, list[int]]:
    a, _ = _single(value, value)
    return a, [scale]


def _random_problem(rng: np.random.Generator, golden_quantized: bool) -> tuple[Any, ...]:
    kb = int(rng.integers(1, 6))
    if golden_quantized:  # golden's own NVFP4 quantization of random FP16 vectors
        x = (rng.standard_t(3, kb * BLOCK) * 2.0 ** rng.integers(-12, 10)).astype(np.float16)
        w = (rng.standard_normal(kb * BLOCK) * 2.0 ** rng.integers(-12, 6)).astype(np.float16)
        qx, qw = quantize(x[None], _FORMAT), quantize_weights(w[:, None], _FORMAT)
        return (qx.codes[0], qx.scale[0], qw.codes[0], qw.scale[0])
    # raw operands: any code, any scale byte 0..0x7E (subnormal scales and 0 included)
    return (rng.integers(0, 16, kb * BLOCK), rng.integers(0, 0x7F, kb),
            rng.integers(0, 16, kb * BLOCK), rng.integers(0, 0x7F, kb))


def nvfp4_pe_vectors(count: int, seed: int
                     ) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], int, int]]:
    """``count`` (or more, when the adversarial ones exceed it) NVFP4 PE problems: (name,
    activation blocks, weight blocks, expected accumulator bits, expected invalid 0) — first
    the adversarial ones, then random ones with 1..5 k-blocks, alternately golden-quantized
    FP16 vectors and raw codes with any scale byte."""
    rng = np.random.default_rng(seed)
    out = []
    for name, operands in _adversarial(rng):
        a, w, bits = pe_expected_nvfp4(*operands)
        out.append((name, a, w, bits, 0))
    while len(out) < count:
        operands = _random_problem(rng, golden_quantized=len(out) % 2 == 0)
        a, w, bits = pe_expected_nvfp4(*operands)
        out.append((f"random {len(out)}", a, w, bits, 0))
    return out


def decoded_block(block: dict[str, Any], invalid: int = 0) -> dict[str, Any]:
    """The PE core's decoded operand (``decoded_block(16, 5, 8)``) of an ``nvfp4_block`` dict:
    ``elems`` ±HU = ±2·E2M1 from golden's table (code 8, −0, gives 0), ``exp`` the E4M3
    byte, ``invalid``."""
    elems = [-int(E2M1_HU[c & 7]) if c & 8 else int(E2M1_HU[c & 7]) for c in block["codes"]]
    return {"elems": elems, "exp": block["scale"], "invalid": invalid}
