"""Golden references and test vectors for the block rotator (:class:`rtl.rotator.BlockRotator`),
shared by the ``amaranth.sim`` tests and the cocotb testbench.

Blocks are raw FP16 bit patterns, ``(n, B) uint16``. Every expected value comes from the golden
model (:meth:`golden.rotation.Rotation.forward`); nothing here models the RTL. One rule is the
hardware's own (SPEC §11 [ours]): a block holding NaN/±Inf, or one whose rotation overflows
FP16 (golden raises for both), leaves as canonical NaN (0x7E00) in every lane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semdialect.golden.rotation import Rotation
from semdialect.tb.frontend_ref import FP16_MAX, SIGN_BIT, is_invalid, to_fp16_bits
from semdialect.tb.mx_quantizer_ref import MXVectors

__all__ = ["INVALID_LANE", "RotatedExpected", "ref_rotated", "rotator_vectors"]

#: every lane of an invalid block (SPEC §11 [ours]: the canonical quiet NaN of binary16)
INVALID_LANE = 0x7E00
_EXP_SHIFT = 10


@dataclass
class RotatedExpected:
    """What the rotator must produce for n blocks of B lanes, and coverage counts."""

    bits: np.ndarray  #: (n, B) uint16: rotated FP16 patterns, 0x7E00 in invalid blocks
    nan_inf: np.ndarray  #: (n,) bool: the input block held NaN or ±Inf
    overflow: np.ndarray  #: (n,) bool: a finite block whose rotation overflows FP16
    ties: np.ndarray  #: (n,) int64: lanes whose exact result is halfway between two FP16
    subnormal: np.ndarray  #: (n,) int64: lanes whose result is a non-zero FP16 subnormal
    negative_zero: np.ndarray  #: (n,) int64: lanes whose exact result is negative and rounds
    #: to zero (the rotator emits +0.0)

    @property
    def invalid(self) -> np.ndarray:
        """(n,) bool: the block leaves as canonical NaN."""
        return self.nan_inf | self.overflow


def ref_rotated(bits: np.ndarray, rotation: Rotation, role: str) -> RotatedExpected:
    """Golden expectation (:meth:`Rotation.forward`) for FP16 blocks ``bits`` (n, B)."""
    bits = np.asarray(bits, np.uint16)
    n, b = bits.shape
    nan_inf = is_invalid(bits)
    finite = np.where(nan_inf[:, None], np.uint16(0), bits).view(np.float16)
    y16, overflow = rotation.forward(finite, role)
    overflow &= ~nan_inf
    out = y16.view(np.uint16).copy()
    out[nan_inf | overflow] = INVALID_LANE
    exact = rotation.forward_exact(finite, role)
    ok = ~(nan_inf | overflow)[:, None]
    r = y16.astype(np.float64)
    with np.errstate(over="ignore"):  # the neighbour of ±65504 away from zero is ±Inf
        other = np.nextafter(y16, np.where(exact > r, np.inf, -np.inf).astype(np.float16)
                             ).astype(np.float64)
    tie = ok & (exact != r) & np.isfinite(other) & (2 * np.abs(exact - r) == np.abs(other - r))
    mag = out & 0x7FFF
    sub = ok & (mag > 0) & (mag < 0x0400)
    negzero = ok & (exact < 0) & (y16 == 0)
    return RotatedExpected(out, nan_inf, overflow, tie.sum(axis=1), sub.sum(axis=1),
                           negzero.sum(axis=1))


# -- vectors -------------------------------------------------------------------------------------


def _signs(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    return (rng.integers(0, 2, shape) << 15).astype(np.uint16)


def _tie_block(rng: np.random.Generator, b: int, unit_exp: int, big: int, rest: int
               ) -> np.ndarray:
    """A block whose every exact rotated lane is a half-integer number of 2^(unit_exp − c)
    units: one lane ``big`` · 2^unit_exp, ``rest`` units of 2^unit_exp spread over a few
    others, and one lane of 2^(unit_exp − 1). The lanes' results are ±big ± (the others) ± 1/2
    units: an FP16 rounding tie wherever those units are the result's ulp (magnitudes in
    [1024, 2048) units, or any magnitude when 2^(unit_exp − c) = 2^-24, the subnormal ulp)."""
    units = np.zeros(b, np.float64)
    lanes = rng.permutation(b)
    units[lanes[0]] = big
    if rest:
        few = lanes[2 : 2 + int(rng.integers(1, 6))]
        units[few] = rng.multinomial(rest, np.ones(len(few)) / len(few))
    x = units * 2.0 ** unit_exp
    x[lanes[1]] = 2.0 ** (unit_exp - 1)
    return to_fp16_bits(x) | _signs(rng, b)


def _adversarial(rng: np.random.Generator, rotation: Rotation, role: str
                 ) -> dict[str, list[np.ndarray]]:
    """Hand-made corner blocks (each (B,) uint16) of one rotation and role."""
    b = rotation.block
    c = rotation.shift(role)
    cls: dict[str, list[np.ndarray]] = {}

    def add(name: str, block: np.ndarray) -> None:
        cls.setdefault(name, []).append(np.asarray(block, np.uint16))

    zero = np.zeros(b, np.uint16)
    add("zeros", zero)
    add("zeros", zero | SIGN_BIT)  # all −0.0: +0.0 out
    for _ in range(3):
        add("zeros", _signs(rng, b))
    for mag in (0x0001, 0x0003, 0x03FF, 0x0400, 0x3C00, FP16_MAX):  # one lane among zeros
        for _ in range(2):
            blk = _signs(rng, b)
            blk[rng.integers(0, b)] = mag | (int(rng.integers(0, 2)) << 15)
            add("single_lane", blk)
    # ±65504: alone (finite), in pairs that cancel in half the lanes, and everywhere (overflow)
    for _ in range(3):
        blk = zero.copy()
        lanes = rng.choice(b, 2, replace=False)
        blk[lanes] = FP16_MAX | _signs(rng, 2)
        add("max_65504", blk)
    aligned = np.where(rotation.signs < 0, SIGN_BIT, np.uint16(0)).astype(np.uint16)
    add("overflow", np.full(b, FP16_MAX, np.uint16) | aligned)  # lane 0: B · 65504 / 2^c
    for _ in range(4):  # large magnitudes with the signs s: lane 0 overflows
        add("overflow", rng.integers(0x7400, 0x7C00, b).astype(np.uint16) | aligned)
    # lane 0 = 65504 + 16 (the tie above FP16's largest value: rounds to 2^16, overflow) or
    # 65504 + 8 (rounds down to 65504): 2^c lanes of 65504 and one more, signs aligned
    for extra, name in ((16, "overflow"), (8, "max_65504"), (15.75, "max_65504")):
        blk = zero.copy()
        lanes = rng.permutation(b)[: (1 << c) + 1]
        blk[lanes[:-1]] = FP16_MAX
        blk[lanes[-1]] = to_fp16_bits(np.array([extra * 2.0**c]))[0]
        add(name, blk | aligned)
    # FP16 subnormal inputs, and results that round to subnormals (or to zero)
    for top in (1, 3, 6, 10):
        add("subnormal", rng.integers(0, 1 << top, b).astype(np.uint16) | _signs(rng, b))
    for _ in range(6):
        blk = rng.integers(0, 0x0C00, b).astype(np.uint16)  # subnormals and tiny normals
        blk[rng.random(b) < 0.5] = 0
        add("to_subnormal", blk | _signs(rng, b))
    # rounding ties: normal results (ulp = 2^(u − c), magnitudes in [1024, 2048) units),
    # across exponents; the carry into the exponent (2047 ± 1/2); subnormal results
    # (2^(u − c) = 2^-24)
    for unit_exp in (-20, -14, -8, -1, 0, 3, 5 - 10 + c):
        for _ in range(2):
            rest = int(rng.integers(0, 120))
            add("tie", _tie_block(rng, b, unit_exp, int(rng.integers(1030 + rest, 1900)), rest))
    for unit_exp in (-12, 0, 2):
        add("tie_carry", _tie_block(rng, b, unit_exp, 2047, 0))
    for _ in range(4):
        add("tie_subnormal", _tie_block(rng, b, c - 24, int(rng.integers(1, 900)),
                                        int(rng.integers(0, 60))))
    # NaN / ±Inf in one lane (or all)
    for _ in range(4):
        blk = rng.integers(0, 0x7C00, b).astype(np.uint16) | _signs(rng, b)
        blk[rng.integers(0, b)] = 0x7C00 | int(rng.integers(0, 1024)) | (
            int(rng.integers(0, 2)) << 15)
        add("nan_inf", blk)
    for special in (0x7C00, 0xFC00, 0x7E00, 0x7C01):
        blk = zero.copy()
        blk[rng.integers(0, b)] = special
        add("nan_inf", blk)
    add("nan_inf", np.full(b, 0x7C00, np.uint16))
    return cls


def _random_classes(rng: np.random.Generator, n: int, b: int) -> dict[str, np.ndarray]:
    """``n`` blocks per class of random finite FP16 data."""
    out: dict[str, np.ndarray] = {}
    scale = np.ldexp(1.0, rng.integers(-26, 12, (n, 1)))
    out["gaussian"] = to_fp16_bits(rng.standard_normal((n, b)) * scale)
    heavy = rng.standard_t(rng.choice([1, 2, 3, 5], (n, 1)), (n, b))
    out["student_t"] = to_fp16_bits(heavy * np.ldexp(1.0, rng.integers(-24, 8, (n, 1))))
    top = rng.integers(1, 27, (n, 1))  # exponents in a window below a random top
    e = np.clip(top - rng.integers(0, 12, (n, b)), 0, 30)
    out["narrow_exponents"] = ((e << _EXP_SHIFT) | rng.integers(0, 1024, (n, b))
                               ).astype(np.uint16) | _signs(rng, (n, b))
    return out


def rotator_vectors(rotation: Rotation, role: str, n_random: int, seed: int) -> MXVectors:
    """Adversarial blocks (every class of :func:`_adversarial`) plus ``n_random`` random
    blocks (split over the random classes), shuffled; labels name each block's class."""
    rng = np.random.default_rng(seed)
    bits: list[np.ndarray] = []
    labels: list[str] = []
    for name, blocks in _adversarial(rng, rotation, role).items():
        bits += blocks
        labels += [name] * len(blocks)
    per_class = -(-n_random // 3) if n_random else 0
    if per_class:
        for name, arr in _random_classes(rng, per_class, rotation.block).items():
            bits += list(arr)
            labels += [name] * len(arr)
    order = rng.permutation(len(bits))
    return MXVectors(np.array(bits, np.uint16)[order], [labels[k] for k in order])
