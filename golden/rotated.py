"""A block format behind a block Hadamard rotation (SPEC §11) [ours]: rotation as data.

:class:`RotatedFormat` wraps any :class:`~golden.formats.BlockFormat` (dialect formats, MXFP4,
MXINT8, NVFP4, INT4 with B a power of two) with a :class:`~golden.rotation.Rotation` of size B
and an operand role (``activation``: c_a, ``weight``: c_w). Quantizing through it:

1. the FP16 blocks are rotated, y = RNE_fp16(2^-c · H·(s ⊙ x)) (a block that overflows FP16
   is an error naming the tensor and the block, "outside the FP16 range after rotation");
2. the inner format quantizes y exactly as it would any FP16 tensor (its selection, SeDA
   candidates, NVFP4's tensor scale over the whole rotated tensor): codes and every piece of
   metadata are in the rotated basis;
3. ``rotated`` = the inner format's dequant of y (FP32, rotated basis): what the GEMM multiplies;
   ``dequant`` = :meth:`Rotation.inverse` of it, the values in the input's basis (FP32).

Storage: bits per element are the inner format's; the rotation adds no per-block metadata. Its
seed is a per-tensor constant (shared by X and W of a GEMM and fixed by the configuration),
not stored per tensor. A residual formed in the rotated basis (SPEC §6 with a rotation) is
quantized with ``input_rotated=True``: the blocks are not rotated again, but the result
carries the rotation (its ``dequant`` is in the input's basis, its GEMM uses the rotated W).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .blocks import _first_block
from .formats import BlockFormat, Encoded
from .rotation import ROTATIONS, Rotation

__all__ = ["RotatedEncoded", "RotatedFormat", "base_format", "rotated_format"]

#: elements per chunk of :meth:`RotatedFormat.rotate_rows` (bounds its float64 temporaries)
_ROTATE_CHUNK = 1 << 18


@dataclass(frozen=True)
class RotatedEncoded(Encoded):
    """:class:`Encoded` of a rotated format: ``dequant`` in the input's basis, ``rotated``
    (n, B) float32 the inner format's dequant in the rotated basis."""

    rotated: np.ndarray | None = None


class RotatedFormat(BlockFormat):
    """``inner`` behind a block Hadamard rotation (module docstring, SPEC §11).

    Attributes:
        inner: the format quantizing the rotated blocks.
        rotation: the rotation; its size must equal the block size B.
        role: ``activation`` or ``weight`` (the rotation's shift c, :meth:`Rotation.shift`).
        input_rotated: the blocks already are in the rotated basis (a residual, SPEC §6/§11):
            they are quantized as they are, and only the inverse is applied.
        name: ``<inner name>+hadamard`` (bits per element, pow2_scaled and the element codes
            are the inner format's; other attributes, e.g. ``formatbook``/``select``, too).
    """

    def __init__(self, inner: BlockFormat, rotation: Rotation, role: str = "activation", *,
                 input_rotated: bool = False) -> None:
        if isinstance(inner, RotatedFormat):
            raise ValueError(f"rotate: {inner.name} is already rotated")
        if not isinstance(inner, BlockFormat):
            raise ValueError(f"rotate: expected a block format to rotate, got {inner!r}")
        if not isinstance(rotation, Rotation):
            raise ValueError(f"rotate: expected a Rotation, got {rotation!r}")
        rotation.shift(role)  # ValueError naming role
        self.inner = inner
        self.rotation = rotation
        self.role = role
        self.input_rotated = bool(input_rotated)
        self.name = f"{inner.name}+hadamard"
        self.pow2_scaled = inner.pow2_scaled  # type: ignore[misc]
        self.element_bits = inner.element_bits  # type: ignore[misc]
        self.nibble_codes = inner.nibble_codes  # type: ignore[misc]

    def __getattr__(self, attr: str) -> Any:
        """The inner format's *data* attributes (``formatbook``, ``select``, ``luts``): only
        called for names not found here. Its methods are not delegated (they would act on
        unrotated blocks): the wrapper defines the ones that apply."""
        if attr == "inner" or attr.startswith("__"):  # before __init__ / copy protocols
            raise AttributeError(attr)
        val = getattr(self.inner, attr)
        if callable(val):
            raise AttributeError(f"{type(self).__name__} does not delegate the method {attr!r} "
                                 f"of {self.inner.name} (it would see unrotated blocks)")
        return val

    def __repr__(self) -> str:
        return (f"RotatedFormat({self.inner.name}, block={self.rotation.block}, "
                f"seed={self.rotation.seed}, role={self.role}"
                f"{', input_rotated' if self.input_rotated else ''})")

    # -- sizes and bits: the inner format's -------------------------------------------------
    def block_size(self, requested: int | None) -> int:
        """The inner format's B; it must equal the rotation's size."""
        b = self.inner.block_size(requested)
        if b != self.rotation.block:
            raise ValueError(f"rotate: the Hadamard size {self.rotation.block} must equal the "
                             f"block size B = {b} of {self.inner.name}")
        return b

    def scale_bits(self) -> int:
        return self.inner.scale_bits()

    def id_bits(self) -> int:
        return self.inner.id_bits()

    def metadata_bits(self) -> int:
        return self.inner.metadata_bits()

    def tensor_bits(self) -> int:
        """The inner format's per-tensor bits (the seed is a configuration constant)."""
        return self.inner.tensor_bits()

    def bits_per_element(self, block: int) -> float:
        return self.inner.bits_per_element(block)

    # -- the rotation ------------------------------------------------------------------------
    def rotate_blocks(self, xb16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, B) FP16 blocks in the rotated basis and the (n,) bool overflow mask
        (``input_rotated``: the blocks themselves, no overflow)."""
        if self.input_rotated:
            return xb16, np.zeros(xb16.shape[0], dtype=bool)
        return self.rotation.forward(xb16, self.role)

    def rotate_rows(self, x16: np.ndarray, name: str = "x") -> np.ndarray:
        """Rotate FP16 ``x16`` (..., k), k a multiple of B, block-wise along its last axis.

        Raises:
            ValueError: a block overflows FP16 after rotation, naming ``name`` and the first
                such block as (row index…, block index) (SPEC §2 style).
        """
        if self.input_rotated:
            return x16
        b = self.rotation.block
        blocks = x16.reshape(-1, b)
        out = np.empty_like(blocks)
        bad = np.zeros(blocks.shape[0], dtype=bool)
        step = max(1, _ROTATE_CHUNK // b)
        for i in range(0, blocks.shape[0], step):
            out[i:i + step], bad[i:i + step] = self.rotation.forward(blocks[i:i + step],
                                                                     self.role)
        if bad.any():
            mask = np.repeat(bad, b).reshape(x16.shape)
            raise ValueError(
                f"{name}: block {_first_block(mask, b)} is outside the FP16 range after "
                f"rotation (a rotated value rounds beyond 65504; Hadamard B = {b}, "
                f"{self.role} shift c = {self.rotation.shift(self.role)})"
            )
        return out.reshape(x16.shape)

    def costs(self, xb: np.ndarray) -> np.ndarray:
        """LUT costs (n, K) of the *rotated* (n, B) FP16 blocks (dialect inner formats only)."""
        if not hasattr(self.inner, "costs"):
            raise ValueError(f"format: costs exist only for the dialect formats, not {self.name}")
        yb, bad = self.rotate_blocks(xb)
        if bad.any():
            raise ValueError(f"block {int(np.flatnonzero(bad)[0])} of these blocks is outside "
                             f"the FP16 range after rotation")
        return self.inner.costs(yb)

    def to_input_basis(self, rotated: np.ndarray) -> np.ndarray:
        """(n, B) float32 dequantized rotated blocks → the input's basis (:meth:`inverse`)."""
        return self.rotation.inverse(rotated, self.role)

    # -- the BlockFormat interface (the driver uses rotate_rows + inner directly) ------------
    def prepare(self, rows16: np.ndarray) -> dict[str, Any]:
        """The inner format's tensor-wide state of the *rotated* rows (NVFP4's tensor scale)."""
        return self.inner.prepare(self.rotate_rows(rows16))

    def encode(
        self, xb: np.ndarray, ctx: dict[str, Any], candidates: Any = None, out: Any = None
    ) -> RotatedEncoded:
        """Rotate (n, B) FP16 blocks, encode them with the inner format (``ctx`` from
        :meth:`prepare`), return codes/metadata (rotated basis), ``rotated`` and ``dequant``
        (input basis). An overflowing block raises ``ValueError`` naming its chunk index."""
        yb, bad = self.rotate_blocks(xb)
        if bad.any():
            raise ValueError(f"block {int(np.flatnonzero(bad)[0])} of this chunk is outside "
                             f"the FP16 range after rotation")
        enc = self.inner.encode(yb, ctx, candidates)
        rot = np.asarray(enc.dequant, np.float32)
        return RotatedEncoded(enc.codes, self.to_input_basis(rot), enc.meta, rotated=rot)


def base_format(f: BlockFormat) -> BlockFormat:
    """The format that quantizes the elements: ``f.inner`` for a rotated format, else ``f``."""
    return f.inner if isinstance(f, RotatedFormat) else f


def rotated_format(
    f: BlockFormat,
    rotate: str | Rotation | None,
    rotate_seed: int = 0,
    block: int | None = None,
    role: str = "activation",
) -> BlockFormat:
    """``f`` behind the rotation ``rotate`` for ``role`` (``None``/``"none"``: ``f`` itself).

    ``"hadamard"`` builds ``Rotation(B, rotate_seed)`` with B = ``f.block_size(block)``; a
    :class:`Rotation` is used as given (its size must equal B). ``ValueError`` starting
    ``rotate:`` for an unknown kind, a size that is not B or B not a power of two.
    """
    if rotate is None or (isinstance(rotate, str) and rotate == "none"):
        return f
    if isinstance(f, RotatedFormat):
        raise ValueError(f"rotate: {f.name} is already rotated")
    b = f.block_size(block)
    if isinstance(rotate, Rotation):
        rotation = rotate
    elif isinstance(rotate, str) and rotate in ROTATIONS:
        if b & (b - 1):
            raise ValueError(f"rotate: the Hadamard size must equal the block size B and be "
                             f"a power of two; {f.name} has B = {b}")
        rotation = Rotation(b, rotate_seed)
    else:
        raise ValueError(f"rotate: expected one of {', '.join(ROTATIONS)} or a Rotation, "
                         f"got {rotate!r}")
    rf = RotatedFormat(f, rotation, role)
    rf.block_size(b)  # the Hadamard size must equal B
    return rf
