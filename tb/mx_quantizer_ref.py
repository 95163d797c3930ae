"""Golden references and test vectors for the MX activation quantizer
(:class:`rtl.mx_quantizer.MXQuantizer`), shared by the ``amaranth.sim`` tests and the cocotb
testbench.

Blocks are raw FP16 bit patterns, ``(n, 32) uint16``. Every expected value comes from the
golden model (:func:`golden.quantize.quantize` with the kind's golden format); nothing here
models the RTL. One rule is the hardware's own (SPEC §8 [ours]): a block with NaN/Inf (golden
raises) gives ``invalid`` 1, codes 0 and scale byte 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semdialect.designs import PEKind
from semdialect.golden.formats import E2M1_HU, MX_BLOCK
from semdialect.golden.quantize import quantize
from semdialect.tb.frontend_ref import FP16_MAX, SIGN_BIT, is_invalid, to_fp16_bits

__all__ = ["MXExpected", "MXVectors", "element_sweep_vectors", "mx_vectors", "ref_mx"]

#: FP16 exponent field offset and bias
_EXP_SHIFT = 10
_FP16_BIAS = 15


@dataclass
class MXExpected:
    """What the quantizer must produce per block (n blocks of 32 elements)."""

    codes: np.ndarray  #: (n, 32) int64: E2M1 codes (bit 3 sign) or int8 as uint8
    scale: np.ndarray  #: (n,) int64, E8M0 byte (0 for invalid blocks)
    invalid: np.ndarray  #: (n,) bool
    ties: np.ndarray  #: (n,) int64: elements exactly halfway between two representable ones
    saturated: np.ndarray  #: (n,) int64: elements beyond the largest element (clamped)


def ref_mx(bits: np.ndarray, pe: PEKind) -> MXExpected:
    """Golden expectation for FP16 blocks ``bits`` (n, 32) quantized to ``pe``'s format
    (``PEKind.MXFP4`` or ``PEKind.MXINT8``), plus tie/saturation counts for coverage."""
    fmt = pe.element_format()
    bits = np.asarray(bits, dtype=np.uint16)
    n, b = bits.shape
    invalid = is_invalid(bits)
    codes = np.zeros((n, b), np.int64)
    scale = np.zeros(n, np.int64)
    ties = np.zeros(n, np.int64)
    saturated = np.zeros(n, np.int64)
    ok = ~invalid
    if ok.any():
        x16 = bits[ok].view(np.float16)
        qt = quantize(x16, fmt, block=b)
        codes[ok] = qt.codes
        scale[ok] = qt.scale[:, 0]
        # |x| in element units (E2M1: half units; int8: integers), exact in float64
        units = np.abs(x16.astype(np.float64)) * np.ldexp(1.0, -qt.exp.astype(np.int64))
        if fmt.nibble_codes:  # sign-magnitude grid elements (E2M1)
            mids = (E2M1_HU[:-1] + E2M1_HU[1:]) / 2
            ties[ok] = np.isin(units, mids).sum(axis=1)
            saturated[ok] = (units > E2M1_HU[-1]).sum(axis=1)
        else:  # integer elements
            ties[ok] = (units % 1 == 0.5).sum(axis=1)
            saturated[ok] = (units >= 127.5).sum(axis=1)
    return MXExpected(codes, scale, invalid, ties, saturated)


# -- vectors -------------------------------------------------------------------------------------


@dataclass
class MXVectors:
    """Blocks with a class label per block."""

    bits: np.ndarray  #: (n, 32) uint16
    labels: list[str]

    def __len__(self) -> int:
        return len(self.bits)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for label in self.labels:
            out[label] = out.get(label, 0) + 1
        return out

    def take(self, index: np.ndarray | list[int]) -> MXVectors:
        return MXVectors(self.bits[index], [self.labels[k] for k in index])


def _signs(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    return (rng.integers(0, 2, shape) << 15).astype(np.uint16)


def _at_units(units: np.ndarray, unit_exp: int) -> np.ndarray:
    """FP16 bit patterns of ``units`` · 2^unit_exp (RNE, saturating at 65504)."""
    return to_fp16_bits(np.asarray(units, np.float64) * 2.0**unit_exp)


def _nudge(rng: np.random.Generator, blk: np.ndarray) -> np.ndarray:
    """Move non-zero magnitudes by -1, 0, 0 or +1 FP16 ulp (bit pattern steps)."""
    step = rng.choice([-1, 0, 0, 1], blk.shape).astype(np.int32)
    mag = (blk & 0x7FFF).astype(np.int32)
    moved = np.where(mag != 0, np.clip(mag + step, 0, FP16_MAX), mag)
    return ((blk & SIGN_BIT) | moved).astype(np.uint16)


def _adversarial(rng: np.random.Generator, b: int) -> dict[str, list[np.ndarray]]:
    """Hand-made corner blocks (each a (B,) uint16 array), for both MX kinds."""
    cls: dict[str, list[np.ndarray]] = {}

    def add(name: str, block: np.ndarray) -> None:
        cls.setdefault(name, []).append(np.asarray(block, np.uint16))

    zero = np.zeros(b, np.uint16)
    add("zeros", zero)
    add("zeros", zero | SIGN_BIT)  # all -0.0: MXFP4 codes 8, MXINT8 codes 0, scale 0
    for _ in range(3):
        add("zeros", _signs(rng, b))
    for mag in (0x0001, 0x0002, 0x0155, 0x03FF, 0x0400, 0x3C00, 0x3E00, FP16_MAX,
                int(rng.integers(1, 0x7C00))):  # one non-zero element among signed zeros
        blk = _signs(rng, b)
        blk[rng.integers(0, b)] = mag | (int(rng.integers(0, 2)) << 15)
        add("single_nonzero", blk)
    for top in range(1, 11):  # subnormal-only blocks with the largest fraction below 2^top
        add("subnormal", _signs(rng, b) | rng.integers(0, 1 << top, b).astype(np.uint16))
        blk = _signs(rng, b) | rng.integers(0, 1 << top, b).astype(np.uint16)
        blk[rng.integers(0, b)] |= 1 << (top - 1)  # every leading position (scale byte)
        add("subnormal", blk)
    for _ in range(4):  # subnormals under a small normal maximum
        blk = rng.integers(0, 0x0800, b).astype(np.uint16)
        add("subnormal", blk | _signs(rng, b))
    for _ in range(3):  # the largest finite magnitude
        blk = rng.integers(0, 0x7C00, b).astype(np.uint16)
        blk[rng.integers(0, b)] = FP16_MAX
        add("max_65504", blk | _signs(rng, b))
    add("max_65504", np.full(b, FP16_MAX, np.uint16) | _signs(rng, b))
    for e in range(0, 31):  # amax an exact power of two (every E8M0 byte), one ulp below
        exps = np.clip(e - rng.integers(0, 8, b), 0, 30)
        blk = ((exps << _EXP_SHIFT) | rng.integers(0, 1024, b)).astype(np.uint16)
        blk[exps >= e] = 0
        lane = rng.integers(0, b)
        blk[lane] = e << _EXP_SHIFT if e else 0x0200
        add("pow2_amax", blk | _signs(rng, b))
        below = blk.copy()
        below[lane] = (blk[lane] & 0x7FFF) - 1
        add("below_pow2_amax", below | _signs(rng, b))
    # E2M1 RNE ties (quarter units of the scale: 1 3 5 7 10 14 20 = 0.25 0.75 1.25 1.75 2.5
    # 3.5 5.0) and saturation (24..31.99 = 6.0..7.99), exactly and one ulp either side, under
    # a block maximum in [4, 8) · 2^e; field = the maximum's FP16 exponent field
    for field in (1, 3, 9, 15, 22, 30):
        quarter = field - _FP16_BIAS - 4  # 2^(e - 2), e = floor(log2 amax) - 2
        for _ in range(2):
            t = rng.choice([0, 1, 3, 5, 7, 10, 14, 20, 20, 14, 10], b).astype(np.float64)
            blk = _at_units(t, quarter)
            add("e2m1_ties", _nudge(rng, blk) | _signs(rng, b))
            blk = _at_units(t, quarter)
            blk[rng.integers(0, b)] = _at_units(np.array([rng.integers(16, 32)]), quarter)[0]
            add("e2m1_ties", blk | _signs(rng, b))
            sat = rng.choice([23, 24, 25, 26, 27, 28, 29, 30, 31, 31.75, 31.9375], b)
            add("e2m1_saturate", _at_units(sat, quarter) | _signs(rng, b))
    # MXINT8 ties (k + 0.5 element units) and the clamp (127.5 rounds to 128 -> 127; 127.x)
    for field in (1, 5, 12, 15, 24, 30):
        unit = field - _FP16_BIAS - 6  # 2^(e - 6), e = floor(log2 amax)
        for _ in range(2):
            k = rng.integers(0, 127, b) + 0.5
            blk = _at_units(k, unit)
            blk[rng.integers(0, b)] = _at_units(np.array([127.5]), unit)[0]
            add("int8_ties", blk | _signs(rng, b))
            add("int8_ties", _nudge(rng, blk) | _signs(rng, b))
            c = rng.choice([126.5, 127.0, 127.25, 127.5, 127.75, 127.9375], b)
            add("int8_clamp", _at_units(c, unit) | _signs(rng, b))
    # NaN / ±Inf anywhere: invalid
    for _ in range(6):
        blk = rng.integers(0, 0x7C00, b).astype(np.uint16) | _signs(rng, b)
        lanes = rng.choice(b, int(rng.integers(1, 4)), replace=False)
        blk[lanes] = 0x7C00 | rng.integers(0, 1024, len(lanes)) | (rng.integers(0, 2, len(lanes))
                                                                    << 15)
        add("nan_inf", blk)
    add("nan_inf", np.full(b, 0x7C00, np.uint16))
    add("nan_inf", np.full(b, 0xFC00, np.uint16))
    blk = zero.copy()
    blk[-1] = 0x7E00  # quiet NaN among zeros
    add("nan_inf", blk)
    blk = np.full(b, FP16_MAX, np.uint16)
    blk[0] = 0xFC00
    add("nan_inf", blk)
    return cls


def _random_classes(rng: np.random.Generator, n: int, b: int) -> dict[str, np.ndarray]:
    """``n`` blocks per class of random finite FP16 data."""
    out: dict[str, np.ndarray] = {}
    bits = rng.integers(0, 1 << 16, (n, b)).astype(np.uint16)
    e = (bits >> _EXP_SHIFT) & 0x1F
    out["random_bits"] = np.where(e == 0x1F, bits ^ np.uint16(0x4000), bits)
    base = rng.integers(0, 31, (n, 1))  # exponents in a window of 0..8 below a random top
    e = np.clip(base - rng.integers(0, 9, (n, b)), 0, 30)
    out["narrow_exponents"] = ((e << _EXP_SHIFT) | rng.integers(0, 1024, (n, b))
                               ).astype(np.uint16) | _signs(rng, (n, b))
    scale = np.ldexp(1.0, rng.integers(-28, 15, (n, 1)))
    out["gaussian"] = to_fp16_bits(rng.standard_normal((n, b)) * scale)
    heavy = rng.standard_t(rng.choice([1, 2, 3, 5], (n, 1)), (n, b))
    out["student_t"] = to_fp16_bits(heavy * np.ldexp(1.0, rng.integers(-24, 11, (n, 1))))
    return out


def _under_maximum(rng: np.random.Generator, vals: np.ndarray, top: np.ndarray, b: int,
                   label: str) -> tuple[list[np.ndarray], list[str]]:
    """Blocks of B − 1 of ``vals`` (the last block padded cyclically) each with one
    lane (at a random position) drawn from ``top``, the block maximum."""
    per = b - 1
    vals = rng.permutation(vals)
    vals = np.resize(vals, -(-len(vals) // per) * per).reshape(-1, per)  # cyclic padding
    blk = np.concatenate([rng.choice(top, len(vals))[:, None], vals], axis=1)
    pos = rng.integers(0, b, len(blk))
    idx = np.arange(len(blk))
    blk[idx, 0], blk[idx, pos] = blk[idx, pos], blk[idx, 0]
    return list(blk.astype(np.uint16)), [label] * len(blk)


def element_sweep_vectors(seed: int, block: int = MX_BLOCK) -> tuple[MXVectors, int]:
    """Every element the hardware can see, by its position under the block maximum.

    * ``sweep_normal``: under a maximum with exponent field 30, every FP16 value with
      exponent field 14..30 (exponent distance 0..16: past the distance where every bit is
      shifted out) or 0 (subnormals), both signs;
    * ``sweep_subnormal``: for each leading position k = 0..9 of a subnormal-only block,
      every fraction below 2^(k+1), both signs, under a maximum with top bit k.

    An element's code depends only on its sign, significand, exponent distance (clamped)
    and the block's leading position, so this covers every element code path of both
    kinds. Returns (vectors, number of (element, maximum position) pairs covered).
    """
    rng = np.random.default_rng(seed)
    values = np.arange(1 << 15, dtype=np.uint16)
    exp = values >> _EXP_SHIFT
    both = lambda v: np.concatenate([v, v | SIGN_BIT])  # noqa: E731
    bits: list[np.ndarray] = []
    labels: list[str] = []
    normal = both(values[((exp >= 14) & (exp <= 30)) | (exp == 0)])
    top = both((30 << _EXP_SHIFT) | np.arange(1024, dtype=np.uint16))
    more, lab = _under_maximum(rng, normal, top, block, "sweep_normal")
    bits += more
    labels += lab
    covered = len(normal)
    for k in range(_EXP_SHIFT):
        sub = both(np.arange(1 << (k + 1), dtype=np.uint16))
        top = both((1 << k) | np.arange(1 << k, dtype=np.uint16))
        more, lab = _under_maximum(rng, sub, top, block, "sweep_subnormal")
        bits += more
        labels += lab
        covered += len(sub)
    return MXVectors(np.array(bits, np.uint16), labels), covered


def mx_vectors(n_random: int, seed: int, block: int = MX_BLOCK) -> MXVectors:
    """Adversarial blocks (every class of :func:`_adversarial`, for both kinds) plus
    ``n_random`` random blocks (split over the random classes), shuffled."""
    rng = np.random.default_rng(seed)
    bits: list[np.ndarray] = []
    labels: list[str] = []
    for name, blocks in _adversarial(rng, block).items():
        bits += blocks
        labels += [name] * len(blocks)
    per_class = max(1, n_random // 4) if n_random else 0
    if per_class:
        for name, arr in _random_classes(rng, per_class, block).items():
            bits += list(arr)
            labels += [name] * len(arr)
    order = rng.permutation(len(bits))
    arr = np.array(bits, np.uint16)[order]
    return MXVectors(arr, [labels[k] for k in order])
