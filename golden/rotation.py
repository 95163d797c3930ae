"""Block Hadamard rotation before quantization (SPEC §11) [ours, after MR-GPTQ / BRQ].

A rotation of block size B (a power of two, equal to the format's block size) acts on every
block of B consecutive elements along the reduction axis:

    y = RNE_fp16(2^-c · H_B · (s ⊙ x))

* ``H_B`` is Sylvester's Hadamard matrix, H[i, j] = (-1)^popcount(i & j) (symmetric, entries
  ±1, H·H = B·I);
* ``s`` is a fixed sign vector: s_i = -1 when bit 63 of the i-th output of SplitMix64 seeded
  with ``seed`` is set, else +1 (:func:`rotation_signs`; SplitMix64 is written out there);
* ``c`` is a power-of-two shift by operand role: activations (X of a GEMM, a residual)
  ``c_a`` = ceil(log2(B) / 2), weights (static W, and a run-time second operand)
  ``c_w`` = log2(B) - c_a (B = 16: 2 and 2;
  B = 32: 3 and 2; B = 64: 3 and 3). Because c_a + c_w = log2 B and H·H = B·I,
  (X R_a)(W^T R_w)^T = X·W exactly before quantization: the GEMM contract (SPEC §5) is applied
  unchanged to the rotated operands and needs no output correction.

Arithmetic: the sum Σ_j H[i, j] s_j x_j of FP16 values is exact (FP16 spans 2^-24..2^16, so
B ≤ 64 terms need at most 46 bits: float64 and a 47-bit fixed-point adder tree are both
exact), the shift is exact, and the one rounding is IEEE binary16 round-to-nearest-even of
that exact value. A zero result is +0.0 (the fixed-point sum has no signed zero). A result
that rounds beyond 65504 is an error ("outside the FP16 range after rotation"), naming the
block as SPEC §2 does; the RTL flags the block ``invalid``.

The inverse (dequantized values back in the input's basis) is
x̂ = RNE_fp32(2^(c - log2 B) · s ⊙ (H · ŷ)), computed exactly in float64 (every dequantized
block of the shipped formats has a common scale and small integer significands, so the
sums are exact) and rounded once to FP32; a zero is +0.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = [
    "ROLES",
    "ROTATIONS",
    "Rotation",
    "hadamard_matrix",
    "rotation_signs",
    "splitmix64",
]

#: rotation kinds (``none`` = no rotation)
ROTATIONS = ("none", "hadamard")
#: operand roles and what they are: the shift c depends on the role
ROLES = ("activation", "weight")
_MASK64 = (1 << 64) - 1
#: FP16 largest finite magnitude
_FP16_MAX = 65504.0


def splitmix64(seed: int, n: int) -> list[int]:
    """The first ``n`` outputs of SplitMix64 (Steele, Lea, Flood 2014) seeded with ``seed``.

    state += 0x9E3779B97F4A7C15; z = state; z = (z ^ (z >> 30)) · 0xBF58476D1CE4E5B9;
    z = (z ^ (z >> 27)) · 0x94D049BB133111EB; output z ^ (z >> 31), all modulo 2^64.
    """
    state = seed & _MASK64
    out = []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(z ^ (z >> 31))
    return out


@cache
def rotation_signs(block: int, seed: int) -> np.ndarray:
    """(B,) int8 signs ±1: -1 where bit 63 of SplitMix64(seed)'s i-th output is set."""
    signs = np.array([-1 if z >> 63 else 1 for z in splitmix64(seed, block)], dtype=np.int8)
    signs.setflags(write=False)
    return signs


@cache
def hadamard_matrix(block: int) -> np.ndarray:
    """(B, B) int8 Sylvester Hadamard matrix, H[i, j] = (-1)^popcount(i & j)."""
    i = np.arange(block)
    parity = np.bitwise_count(i[:, None] & i[None, :]) & 1
    h = (1 - 2 * parity).astype(np.int8)
    h.setflags(write=False)
    return h


def _check_block(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 2 \
            or block & (block - 1):
        raise ValueError(f"rotation: the Hadamard size must be a power of two >= 2 (the "
                         f"format's block size B), got {block!r}")
    return int(block)


@dataclass(frozen=True)
class Rotation:
    """A block Hadamard rotation (module docstring, SPEC §11).

    Attributes:
        block: B, the Hadamard size (a power of two; must equal the format's block size).
        seed: SplitMix64 seed of the sign vector (a non-negative integer < 2^64).
    """

    block: int
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "block", _check_block(self.block))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) \
                or not 0 <= self.seed < 1 << 64:
            raise ValueError(f"rotation seed: expected an integer in [0, 2^64), got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def log2_block(self) -> int:
        """log2 B."""
        return self.block.bit_length() - 1

    def shift(self, role: str) -> int:
        """c of ``role``: ceil(log2(B)/2) for ``activation``, log2(B) minus that for ``weight``."""
        act = (self.log2_block + 1) // 2
        if role == "activation":
            return act
        if role == "weight":
            return self.log2_block - act
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")

    @property
    def signs(self) -> np.ndarray:
        """(B,) int8 ±1 sign vector s."""
        return rotation_signs(self.block, self.seed)

    @property
    def matrix(self) -> np.ndarray:
        """(B, B) float64 M = diag(s)·H (rows j, columns i): y = 2^-c · (x @ M)."""
        return self.signs[:, None].astype(np.float64) * hadamard_matrix(self.block)

    def forward_exact(self, blocks16: np.ndarray, role: str) -> np.ndarray:
        """(n, B) float64: 2^-c · H·(s ⊙ x) of FP16 blocks, exact (before rounding to FP16)."""
        if blocks16.shape[-1] != self.block:
            raise ValueError(f"rotation: blocks of {blocks16.shape[-1]} elements, but the "
                             f"Hadamard size is {self.block} (it must equal the block size B)")
        y = blocks16.astype(np.float64) @ self.matrix  # exact: ≤ 46-bit sums
        return np.ldexp(y, -self.shift(role))

    def forward(self, blocks16: np.ndarray, role: str) -> tuple[np.ndarray, np.ndarray]:
        """Rotate (n, B) FP16 blocks: (rotated FP16 (n, B), (n,) bool overflow per block).

        The caller turns an overflowing block into its error (the golden model) or its
        ``invalid`` flag (a hardware reference); overflowing elements are ±Inf here.
        """
        with np.errstate(over="ignore"):
            y16 = self.forward_exact(blocks16, role).astype(np.float16)
        y16[y16 == 0] = 0  # +0.0
        return y16, np.isinf(y16).any(axis=-1)

    def inverse(self, blocks: np.ndarray, role: str) -> np.ndarray:
        """(n, B) float32 in the input's basis of dequantized rotated blocks (exact, one RNE)."""
        x = blocks.astype(np.float64) @ self.matrix.T  # M^T = H·diag(s): s ⊙ (H·ŷ)
        x = np.ldexp(x, self.shift(role) - self.log2_block).astype(np.float32)
        x[x == 0] = 0
        return x
