"""NumPy reference and test vectors for the binary32 adder (:mod:`rtl.fp32_add`).

Operands and results are raw IEEE-754 binary32 bit patterns in ``uint32`` arrays. The
reference is NumPy's own ``float32`` addition (IEEE RNE, no flush-to-zero), the arithmetic
SPEC §5 prescribes for cross-block accumulation; nothing here models the RTL's algorithm.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ref_fp32_add", "fp32_add_vectors", "VECTOR_CLASSES"]

SIGN = np.uint32(0x8000_0000)
MANT_MASK = 0x007F_FFFF


def ref_fp32_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``float32(a) + float32(b)`` on raw 32-bit patterns (uint32 in, uint32 out)."""
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    with np.errstate(over="ignore"):  # overflow to ±Inf is an expected result
        return (a.view(np.float32) + b.view(np.float32)).view(np.uint32)


def _pack(sign: np.ndarray, exp: np.ndarray, mant: np.ndarray) -> np.ndarray:
    """Assemble binary32 patterns from sign (1), biased exponent (8) and fraction (23)."""
    sign = np.asarray(sign, dtype=np.uint32) & 1
    exp = np.asarray(exp, dtype=np.int64)
    if exp.size and (exp.min() < 0 or exp.max() > 254):
        raise ValueError("exponent field out of the finite range 0..254")
    return (sign << 31) | (exp.astype(np.uint32) << 23) | (np.asarray(mant, np.uint32) & MANT_MASK)


def _finite(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform random finite patterns (exponent field uniform in 0..254)."""
    return _pack(rng.integers(0, 2, n), rng.integers(0, 255, n), rng.integers(0, 1 << 23, n))


def _bits(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)


def _class_vectors(rng: np.random.Generator, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``n`` operand pairs per adversarial class (fewer for the exhaustive zero class)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sgn = lambda: rng.integers(0, 2, n)  # noqa: E731
    mant = lambda: rng.integers(0, 1 << 23, n)  # noqa: E731

    # Uniform bit patterns (exponent 255 mapped into the finite range).
    a, b = _bits(rng, n), _bits(rng, n)
    a = np.where((a >> 23) & 0xFF == 0xFF, a ^ (1 << 23), a).astype(np.uint32)
    b = np.where((b >> 23) & 0xFF == 0xFF, b ^ (1 << 23), b).astype(np.uint32)
    out["random_bits"] = (a, b)

    # Exponents within ±3: short alignment shifts, effective subtraction with cancellation.
    ea = rng.integers(4, 251, n)
    out["close_exponents"] = (
        _pack(sgn(), ea, mant()),
        _pack(sgn(), ea + rng.integers(-3, 4, n), mant()),
    )

    # Same exponent, opposite signs, fractions equal except the low k bits: massive
    # cancellation down to a few bits (and into the subnormal range for small exponents).
    ea = rng.integers(0, 255, n)
    ma = mant()
    k = rng.integers(0, 24, n)
    mb = (ma & ~((1 << k) - 1)) | (rng.integers(0, 1 << 23, n) & ((1 << k) - 1))
    s = sgn()
    out["cancellation"] = (_pack(s, ea, ma), _pack(1 - s, ea, mb))

    # x + (-x) = +0 and x + x (exponent carry; overflow for the largest exponents).
    a = _finite(rng, n)
    out["negation"] = (a, a ^ SIGN)
    out["doubling"] = (a, a.copy())

    # Signed zeros against each other and against random values, both orders.
    zeros = np.array([0, 0x8000_0000], dtype=np.uint32)
    za, zb = np.meshgrid(zeros, zeros)
    x = _finite(rng, n)
    z = zeros[rng.integers(0, 2, n)]
    out["zeros"] = (
        np.concatenate([za.ravel(), z, x]),
        np.concatenate([zb.ravel(), x, z]),
    )

    # Subnormal operands, subnormal + small normal, and subnormal results of normals.
    out["subnormal_operands"] = (
        _pack(sgn(), np.zeros(n), mant()),
        _pack(sgn(), rng.integers(0, 3, n), mant()),
    )
    s = sgn()
    out["subnormal_results"] = (
        _pack(s, rng.integers(1, 3, n), mant()),
        _pack(1 - s, rng.integers(1, 3, n), mant()),
    )

    # Exact ties and near-ties: b is 1/2 ulp(a) (or 3/2 ulp) of either sign, optionally with
    # a low bit set or cleared; a's fraction low bit random (even/odd) or all ones (carry).
    e = rng.integers(26, 255, n)
    ma = np.where(rng.random(n) < 0.25, MANT_MASK, mant())
    eb = e - rng.integers(23, 25, n)  # 1/2 ulp at e-24, 3/2 ulp at e-23 (fraction 0x400000)
    mb = rng.choice(np.array([0, 0, 1, 0x7F_FFFF, 0x40_0000]), n)
    out["ties"] = (_pack(sgn(), e, ma), _pack(sgn(), eb, mb))

    # Round-up carry into the exponent: fraction all ones plus something below 1 ulp.
    e = rng.integers(25, 255, n)
    s = sgn()
    out["exponent_carry"] = (
        _pack(s, e, MANT_MASK - rng.integers(0, 4, n)),
        _pack(s, e - rng.integers(1, 25, n), mant()),
    )

    # Overflow to ±Inf around the largest finite value (ties at FLT_MAX + 1/2 ulp round up).
    s = sgn()
    out["overflow"] = (
        _pack(s, rng.integers(252, 255, n), np.where(rng.random(n) < 0.5, MANT_MASK, mant())),
        _pack(s, rng.integers(229, 255, n), np.where(rng.random(n) < 0.3, 0, mant())),
    )

    # Exponent differences around the alignment width (sticky-only operands).
    ea = rng.integers(40, 255, n)
    out["large_shift"] = (
        _pack(sgn(), ea, mant()),
        _pack(sgn(), ea - rng.integers(22, 35, n), mant()),
    )
    return out


#: Names of the adversarial classes in :func:`fp32_add_vectors`.
VECTOR_CLASSES = tuple(_class_vectors(np.random.default_rng(0), 1))


def fp32_add_vectors(count: int, seed: int, *, per_class: int | None = None) -> np.ndarray:
    """``count`` operand pairs as a ``(count, 2)`` uint32 array, shuffled.

    Every class of :data:`VECTOR_CLASSES` contributes ``per_class`` pairs (default
    ``count // 20``; the signed-zero class also has all 4 zero/zero pairs); the rest are
    uniformly random finite patterns. No operand is Inf or NaN.
    """
    rng = np.random.default_rng(seed)
    if per_class is None:
        per_class = count // 20
    parts = [np.stack(pair, axis=1) for pair in _class_vectors(rng, per_class).values()]
    pairs = np.concatenate(parts)
    if len(pairs) > count:
        raise ValueError(f"count={count} is smaller than the {len(pairs)} adversarial pairs")
    fill = count - len(pairs)
    pairs = np.concatenate([pairs, np.stack([_finite(rng, fill), _finite(rng, fill)], axis=1)])
    pairs = pairs[rng.permutation(len(pairs))].astype(np.uint32)
    assert ((pairs >> 23) & 0xFF != 0xFF).all()
    return pairs
