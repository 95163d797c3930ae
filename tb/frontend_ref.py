"""Golden references and test vectors for the activation frontend (preprocess → select →
quantize), shared by the ``amaranth.sim`` tests and the cocotb testbench.

Blocks are raw FP16 bit patterns, ``(n, B) uint16``; masks are ``(n, K) bool``. Every
expected value comes from the golden model (:func:`golden.quantize.quantize`,
:func:`golden.quantize.dialect_costs`, :func:`golden.select.preprocess`,
:func:`golden.luts.build_luts`); nothing here models the RTL. Two rules are the hardware's
own, documented in :mod:`rtl.selector` and applied here explicitly:

* a block with NaN/Inf (golden raises) gives ``invalid`` 1, codes 0, SE field 0, dialect 0
  (SPEC §2);
* an all-zero mask (golden raises) means the whole formatbook; in ``two-stage`` mode the
  mask is ignored (SPEC §4: SeDA requires ``lut``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semdialect.golden.formatbook import Formatbook, get_formatbook
from semdialect.golden.luts import Q_LEVELS, build_luts, two_stage_tables
from semdialect.golden.quantize import dialect_costs, quantize
from semdialect.golden.select import SE_BIAS, preprocess

__all__ = [
    "Expected",
    "VectorSet",
    "exhaustive_q_vectors",
    "frontend_vectors",
    "preprocessor_exhaustive_vectors",
    "ref_frontend",
    "ref_preprocess",
    "uniform_q_block",
]

EXP_SHIFT = 10
EXP_ALL_ONES = 0x1F
SIGN_BIT = np.uint16(0x8000)
FP16_MAX = 0x7BFF  # 65504
POS_INF = 0x7C00


def is_invalid(bits: np.ndarray) -> np.ndarray:
    """(n,) bool: the block has a NaN or ±Inf lane (exponent field 31)."""
    return (((bits >> EXP_SHIFT) & EXP_ALL_ONES) == EXP_ALL_ONES).any(axis=-1)


@dataclass
class Expected:
    """What the frontend must produce per block (n blocks of B elements)."""

    codes: np.ndarray  #: (n, B) uint8, 4-bit codes
    se: np.ndarray  #: (n,) int64, SE field = SE + 16
    dialect: np.ndarray  #: (n,) int64
    invalid: np.ndarray  #: (n,) bool
    cost: np.ndarray  #: (n,) int64, LUT cost of the chosen dialect (lut mode; -1 if invalid)
    q: np.ndarray  #: (n, B) int64 preprocessed magnitudes (0 for invalid blocks)
    sign: np.ndarray  #: (n, B) int64 sign bits
    tied: np.ndarray  #: (n,) bool, the argmin had >= 2 candidates at the minimum cost (lut)


def ref_preprocess(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SPEC §2 by golden: (se field (n,), q (n, B), sign (n, B), invalid (n,)); se and q are 0
    for invalid blocks (unspecified in hardware)."""
    bits = np.asarray(bits, dtype=np.uint16)
    invalid = is_invalid(bits)
    se = np.zeros(len(bits), np.int64)
    q = np.zeros(bits.shape, np.int64)
    if (~invalid).any():
        se_v, q_v, _ = preprocess(bits[~invalid].view(np.float16))
        se[~invalid] = se_v + SE_BIAS
        q[~invalid] = q_v
    sign = (bits >> 15).astype(np.int64)
    return se, q, sign, invalid


def effective_masks(masks: np.ndarray | None, book: Formatbook, mode: str) -> np.ndarray | None:
    """The candidate set the hardware uses: all-zero rows become all ones; none for
    two-stage (the mask is ignored)."""
    if mode == "two-stage" or masks is None:
        return None
    masks = np.array(masks, dtype=bool)
    masks[~masks.any(axis=1)] = True
    return masks


def ref_frontend(
    bits: np.ndarray,
    masks: np.ndarray | None,
    formatbook: Formatbook | str,
    mode: str,
) -> Expected:
    """Golden expectation for FP16 blocks ``bits`` (n, B) with candidate ``masks`` (n, K)."""
    book = get_formatbook(formatbook)
    bits = np.asarray(bits, dtype=np.uint16)
    n, b = bits.shape
    se, q, sign, invalid = ref_preprocess(bits)
    codes = np.zeros((n, b), np.uint8)
    dialect = np.zeros(n, np.int64)
    cost = np.full(n, -1, np.int64)
    tied = np.zeros(n, bool)
    se = np.where(invalid, 0, se)
    ok = ~invalid
    if ok.any():
        x16 = bits[ok].view(np.float16)
        cand = effective_masks(masks, book, mode)
        cand_ok = None if cand is None else cand[ok][:, None, :]
        qt = quantize(x16, "sd32", formatbook=book, select=mode, block=b, candidates=cand_ok)
        codes[ok] = qt.codes
        dialect[ok] = qt.dialect[:, 0]
        assert np.array_equal(qt.se[:, 0].astype(np.int64) + SE_BIAS, se[ok])
        costs = dialect_costs(x16, book, block=b)[:, 0, :]
        if mode == "lut":
            cost[ok] = costs[np.arange(len(costs)), dialect[ok]]
            allowed = np.ones_like(costs, bool) if cand is None else cand[ok]
            at_min = (costs == cost[ok][:, None]) & allowed
            tied[ok] = at_min.sum(axis=1) >= 2
        else:
            cost[ok] = 0
    return Expected(codes, se, dialect, invalid, cost, q, sign, tied)


# -- vectors -------------------------------------------------------------------------------------


@dataclass
class VectorSet:
    """Blocks with their masks and a class label per block."""

    bits: np.ndarray  #: (n, B) uint16
    masks: np.ndarray  #: (n, K) bool
    labels: list[str]

    def __len__(self) -> int:
        return len(self.bits)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for label in self.labels:
            out[label] = out.get(label, 0) + 1
        return out

    @staticmethod
    def concat(parts: list[VectorSet]) -> VectorSet:
        return VectorSet(
            np.concatenate([p.bits for p in parts]),
            np.concatenate([p.masks for p in parts]),
            [label for p in parts for label in p.labels],
        )


def to_fp16_bits(x: np.ndarray) -> np.ndarray:
    """Round to FP16 (RNE), saturating finite overflow to ±65504; return the bit patterns."""
    with np.errstate(over="ignore", invalid="ignore"):
        h = np.asarray(x, dtype=np.float64).astype(np.float16)
    bits = h.view(np.uint16).copy()
    inf = ((bits >> EXP_SHIFT) & EXP_ALL_ONES) == EXP_ALL_ONES
    bits[inf] = (bits[inf] & SIGN_BIT) | FP16_MAX
    return bits


def _pow2(k: np.ndarray | int) -> np.ndarray:
    return np.ldexp(1.0, np.asarray(k))


def uniform_q_block(q: int, block: int, rng: np.random.Generator, se_field: int | None = None
                    ) -> np.ndarray:
    """A block whose every element preprocesses to ``q`` (random signs).

    q < 16: all elements are the subnormal 64·q · 2^-24 (SE clamps to -16, q = m >> 6);
    q >= 16: all elements are q · 2^(SE - 2) for a normal SE (random unless ``se_field``).
    """
    if q < 16:
        mag = np.uint16(64 * q)
    else:
        field = int(rng.integers(1, 30)) if se_field is None else se_field
        mag = to_fp16_bits(np.array([q * 2.0 ** (field - SE_BIAS - 2)]))[0]
    signs = rng.integers(0, 2, block).astype(np.uint16) << 15
    return (signs | mag).astype(np.uint16)


def exhaustive_q_vectors(book: Formatbook, block: int, seed: int) -> VectorSet:
    """Every (dialect f, q): a uniform-q block with the one-hot mask {f}: the chosen dialect is
    f, every code is sign | IDX[f][q] and the LUT cost is B · ERR[f][q]."""
    rng = np.random.default_rng(seed)
    k = book.size
    bits, masks, labels = [], [], []
    for f in range(k):
        for q in range(Q_LEVELS):
            bits.append(uniform_q_block(q, block, rng))
            mask = np.zeros(k, bool)
            mask[f] = True
            masks.append(mask)
            labels.append("exhaustive_f_q")
    return VectorSet(np.array(bits, np.uint16), np.array(masks), labels)


def random_masks(book: Formatbook, n: int, rng: np.random.Generator) -> np.ndarray:
    """Candidate masks: all ones, SeDA variant sub-formatbooks, random non-empty, one-hot and
    (rarely) all-zero rows."""
    k = book.size
    kind = rng.choice(5, n, p=[0.35, 0.25, 0.25, 0.1, 0.05])
    masks = np.ones((n, k), bool)
    for r in range(n):
        if kind[r] == 1:
            masks[r] = book.variant_mask(int(rng.integers(0, book.variants)))
        elif kind[r] == 2:
            row = rng.random(k) < rng.uniform(0.1, 0.9)
            row[rng.integers(0, k)] = True
            masks[r] = row
        elif kind[r] == 3:
            masks[r] = False
            masks[r, rng.integers(0, k)] = True
        elif kind[r] == 4:
            masks[r] = False
    return masks


def _random_classes(rng: np.random.Generator, n: int, b: int) -> dict[str, np.ndarray]:
    """``n`` blocks per class of random FP16 data."""
    out: dict[str, np.ndarray] = {}
    bits = rng.integers(0, 1 << 16, (n, b)).astype(np.uint16)
    e = (bits >> EXP_SHIFT) & EXP_ALL_ONES
    out["random_bits"] = np.where(e == EXP_ALL_ONES, bits ^ np.uint16(0x4000), bits)
    # exponents within a window of 0..6 around a random base: q spread over 0..31
    base = rng.integers(0, 31, (n, 1))
    e = np.minimum(base + rng.integers(0, 7, (n, b)) * (rng.random((n, 1)) < 0.9), 30)
    out["narrow_exponents"] = (
        (rng.integers(0, 2, (n, b)) << 15) | (e << EXP_SHIFT) | rng.integers(0, 1024, (n, b))
    ).astype(np.uint16)
    scale = _pow2(rng.integers(-28, 15, (n, 1)))
    out["gaussian"] = to_fp16_bits(rng.standard_normal((n, b)) * scale)
    df = rng.choice([1, 2, 3, 5], (n, 1))
    heavy = rng.standard_t(df, (n, b)) * _pow2(rng.integers(-24, 11, (n, 1)))
    out["student_t"] = to_fp16_bits(heavy)
    amp = rng.uniform(0.5, 1.0, (n, 1)) * scale
    out["uniform"] = to_fp16_bits(rng.uniform(-1, 1, (n, b)) * amp)
    return out


def _adversarial(rng: np.random.Generator, book: Formatbook, b: int) -> dict[str, list[np.ndarray]]:
    """Hand-made corner blocks (each a (B,) uint16 array)."""
    cls: dict[str, list[np.ndarray]] = {}

    def add(name: str, block: np.ndarray) -> None:
        cls.setdefault(name, []).append(np.asarray(block, np.uint16))

    zero = np.zeros(b, np.uint16)
    add("zeros", zero)
    add("zeros", zero | SIGN_BIT)
    for _ in range(6):
        add("zeros", (rng.integers(0, 2, b) << 15).astype(np.uint16))
    for mag in (1, 0x3FF, 0x400, 0x3C00, FP16_MAX):  # zeros around one value
        blk = zero.copy()
        blk[rng.integers(0, b)] = mag | (int(rng.integers(0, 2)) << 15)
        add("zeros_and_one", blk)
    for _ in range(16):  # subnormal-only and subnormal/normal boundary blocks
        add("subnormal", (rng.integers(0, 2, b) << 15) | rng.integers(0, 1024, b))
        add("subnormal", (rng.integers(0, 2, b) << 15) | rng.integers(0, 2048, b))
        add("subnormal", (rng.integers(0, 2, b) << 15) | rng.integers(0, 64, b))
    for _ in range(12):  # the largest finite magnitude
        blk = rng.integers(0, 0x7C00, b).astype(np.uint16)
        blk[rng.integers(0, b)] = FP16_MAX
        add("max_65504", blk | (rng.integers(0, 2, b) << 15).astype(np.uint16))
        add("max_65504", np.full(b, FP16_MAX, np.uint16) | (rng.integers(0, 2, b) << 15))
        blk = rng.integers(0, 0x400, b).astype(np.uint16)
        blk[rng.integers(0, b)] = FP16_MAX | SIGN_BIT
        add("max_65504", blk)
    for e in range(0, 31):  # exact powers of two and just below them, for every exponent
        for _ in range(2):
            exps = np.clip(e - rng.integers(0, 6, b), 0, 30)
            pow2 = (exps << EXP_SHIFT).astype(np.uint16)
            pow2[exps == 0] = 0
            pow2[rng.integers(0, b)] = max(e, 1) << EXP_SHIFT if e else 0x200
            add("powers_of_two", pow2 | (rng.integers(0, 2, b) << 15).astype(np.uint16))
            below = np.where(pow2 & 0x7FFF, (pow2 & 0x7FFF) - 1, 0).astype(np.uint16)
            add("below_powers_of_two", below | (rng.integers(0, 2, b) << 15).astype(np.uint16))
    # LUT tie points: q = HU_k + HU_{k+1} (equidistant from 2·HU_k and 2·HU_{k+1}), exactly and
    # one FP16 ulp either side, under a block maximum that fixes SE.
    ties = sorted({int(h[k] + h[k + 1]) for h in book.hu for k in range(7)})
    for field in (0, 1, 2, 5, 12, 17, 25, 29):
        for _ in range(6):
            if field == 0:  # SE = -16: subnormal elements, q = m >> 6; tie q needs m = 64q
                tq = [t for t in ties if t < 16]
                m = 64 * rng.choice(tq, b) + rng.choice([-1, 0, 0, 1], b)
                blk = np.clip(m, 0, 1023).astype(np.uint16)
            else:
                scale = 2.0 ** (field - SE_BIAS - 2)  # value of one quarter unit
                t = rng.choice(ties, b).astype(np.float64) * scale
                blk = to_fp16_bits(t)
                step = rng.choice([-1, 0, 0, 1], b).astype(np.int32)
                nonzero = blk != 0
                blk = np.where(nonzero, blk.astype(np.int32) + step, blk).astype(np.uint16)
                top = rng.integers(16, 32)  # the maximum: q in 16..31 at this SE
                blk[rng.integers(0, b)] = to_fp16_bits(np.array([top * scale]))[0]
            add("lut_ties", blk | (rng.integers(0, 2, b) << 15).astype(np.uint16))
    # NaN / ±Inf anywhere: invalid
    for _ in range(24):
        blk = rng.integers(0, 0x7C00, b).astype(np.uint16) | (rng.integers(0, 2, b) << 15)
        lanes = rng.choice(b, int(rng.integers(1, 4)), replace=False)
        blk[lanes] = (0x7C00 | rng.integers(0, 1024, len(lanes))
                      | (rng.integers(0, 2, len(lanes)) << 15))
        add("nan_inf", blk)
    add("nan_inf", np.full(b, POS_INF, np.uint16))
    add("nan_inf", np.full(b, POS_INF | SIGN_BIT, np.uint16))
    blk = zero.copy()
    blk[-1] = 0x7E00  # quiet NaN among zeros
    add("nan_inf", blk)
    blk = np.full(b, FP16_MAX, np.uint16)
    blk[0] = 0xFC00
    add("nan_inf", blk)
    return cls


def _two_stage_classes(rng: np.random.Generator, book: Formatbook, b: int) -> list[np.ndarray]:
    """Blocks around the BlockDialect decision: for every pair, count_even - count_odd in
    {-1, 0, 1} (0 = the tie, which goes to the even dialect)."""
    ranges = two_stage_tables(book).ranges
    out = []
    for p in range(8):
        m = 2 * (15 - p)  # q of a maximum in pair p: (m + 1) >> 1 = 15 - p
        for diff in (-1, 0, 1, 0):
            field = int(rng.integers(1, 30))
            scale = 2.0 ** (field - SE_BIAS - 2)
            qs = np.zeros(b, np.int64)
            qs[0] = m
            lo_e, hi_e = ranges[p, 0]
            lo_o, hi_o = ranges[p, 1]
            n_odd = int(rng.integers(1, (b - 1) // 2 - 1))
            n_even = max(0, n_odd + diff)
            qs[1 : 1 + n_even] = rng.integers(lo_e, hi_e, n_even)
            qs[1 + n_even : 1 + n_even + n_odd] = rng.integers(lo_o, hi_o, n_odd)
            rest = 1 + n_even + n_odd
            qs[rest:] = rng.integers(0, 4, b - rest)
            vals = qs.astype(np.float64) * scale
            vals = vals * (1 + rng.uniform(0, 0.2, b) / np.maximum(qs, 1))  # stay in floor(q)
            blk = to_fp16_bits(vals) | (rng.integers(0, 2, b) << 15).astype(np.uint16)
            out.append(rng.permutation(blk))
    return out


def frontend_vectors(
    book: Formatbook | str, block: int, mode: str, n_random: int, seed: int
) -> VectorSet:
    """Adversarial blocks plus ``n_random`` random blocks (split over the random classes),
    each with a candidate mask from :func:`random_masks`, shuffled."""
    book = get_formatbook(book)
    rng = np.random.default_rng(seed)
    parts: list[VectorSet] = []
    for name, blocks in _adversarial(rng, book, block).items():
        arr = np.array(blocks, np.uint16)
        parts.append(VectorSet(arr, random_masks(book, len(arr), rng), [name] * len(arr)))
    if mode == "two-stage":
        arr = np.array(_two_stage_classes(rng, book, block), np.uint16)
        masks = random_masks(book, len(arr), rng)
        parts.append(VectorSet(arr, masks, ["two_stage_ties"] * len(arr)))
    per_class = max(1, n_random // 5)
    for name, arr in _random_classes(rng, per_class, block).items():
        parts.append(VectorSet(arr, random_masks(book, len(arr), rng), [name] * len(arr)))
    vs = VectorSet.concat(parts)
    order = rng.permutation(len(vs))
    return VectorSet(vs.bits[order], vs.masks[order], [vs.labels[i] for i in order])


def preprocessor_exhaustive_vectors(block: int, seed: int) -> tuple[np.ndarray, int]:
    """Every finite FP16 value under every block maximum exponent, plus every NaN/Inf pattern.

    For each maximum exponent field e_max in 0..30, every finite value with exponent field
    <= e_max (both signs) is placed in lanes 1..B-1 of blocks whose remaining lane holds a
    random value with exponent field exactly e_max (at a random position), so the block's
    SE is fixed by e_max; q_i depends only on x_i and e_max, so this covers every
    (element, SE) combination. Then each of the 2048 exponent-31 patterns (±Inf, NaNs) once,
    in a random lane of a random finite block. Returns (bits (n, B) uint16, number of
    finite (element, e_max) pairs covered).
    """
    rng = np.random.default_rng(seed)
    per = block - 1
    rows = []
    covered = 0
    all_bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    exp = (all_bits >> EXP_SHIFT) & EXP_ALL_ONES
    for e_max in range(31):
        vals = rng.permutation(all_bits[exp <= e_max])
        covered += len(vals)
        pad = (-len(vals)) % per
        vals = np.concatenate([vals, vals[:pad]]).reshape(-1, per)
        top = ((rng.integers(0, 2, len(vals)) << 15) | (e_max << EXP_SHIFT)
               | rng.integers(0, 1024, len(vals))).astype(np.uint16)
        blk = np.concatenate([top[:, None], vals], axis=1)
        pos = rng.integers(0, block, len(blk))
        idx = np.arange(len(blk))
        blk[idx, 0], blk[idx, pos] = blk[idx, pos], blk[idx, 0]
        rows.append(blk)
    specials = all_bits[exp == EXP_ALL_ONES]
    blk = (rng.integers(0, 0x7C00, (len(specials), block))
           | (rng.integers(0, 2, (len(specials), block)) << 15)).astype(np.uint16)
    blk[np.arange(len(specials)), rng.integers(0, block, len(specials))] = specials
    rows.append(blk)
    return np.concatenate(rows), covered


def err_table(book: Formatbook) -> np.ndarray:
    """ERR (K, 32) from the one LUT generator."""
    return build_luts(book).err.astype(np.int64)
