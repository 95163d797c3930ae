"""Dialects and formatbooks (SPEC §1).

A *dialect* is 8 strictly increasing non-negative magnitudes in half units (HU: integers
0..15, value = HU / 2) starting at 0. A *formatbook* is an ordered list of K dialects; a
dialect's id is its position. Formatbooks are data: the two shipped books are tables here,
user books are TOML files (see :func:`load_formatbook`).

SeDA (SPEC §7) needs each dialect's *variant*: for both shipped books dialect id = G·p + v,
with max group p and variant v (G = 2 for ``dfp4``, 4 for ``sd32``). A user book may declare
``variants = G`` with the same layout; otherwise it has one variant.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: magnitudes per dialect (3-bit magnitude index)
DIALECT_LEN = 8
#: largest magnitude in half units (7.5)
HU_MAX = 15

# DialectFP4 [paper]: pairs (2p, 2p+1) share the maximum 15 - p HU. Dialect 7 has the E2M1
# magnitudes but is not MXFP4 (ties round up, SE clamps at -16).
DFP4_HU: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4, 6, 11, 15),
    (0, 1, 2, 3, 4, 6, 9, 15),
    (0, 1, 2, 3, 4, 6, 11, 14),
    (0, 1, 2, 3, 4, 6, 9, 14),
    (0, 1, 2, 3, 4, 6, 10, 13),
    (0, 1, 2, 3, 4, 6, 8, 13),
    (0, 1, 2, 3, 4, 6, 10, 12),
    (0, 1, 2, 3, 4, 6, 8, 12),
    (0, 1, 2, 3, 4, 6, 9, 11),
    (0, 1, 2, 3, 4, 6, 7, 11),
    (0, 1, 2, 3, 4, 6, 9, 10),
    (0, 1, 2, 3, 4, 6, 7, 10),
    (0, 1, 2, 3, 4, 6, 8, 9),
    (0, 1, 2, 3, 4, 6, 7, 9),
    (0, 1, 2, 3, 4, 6, 7, 8),
    (0, 1, 2, 3, 4, 5, 6, 8),
)


@dataclass(frozen=True, eq=False)
class Formatbook:
    """An ordered list of dialects.

    Attributes:
        name: label used in reports and metadata.
        hu: (K, 8) uint8 magnitudes in half units, validated on construction.
        variants: SeDA variants G; dialect id = G·p + v (1 = no variant structure).
    """

    name: str
    hu: np.ndarray
    variants: int = 1

    def __post_init__(self) -> None:
        hu = validate_dialects(self.hu, where=f"formatbook {self.name!r}")
        hu.setflags(write=False)
        object.__setattr__(self, "hu", hu)
        if self.variants < 1 or len(hu) % self.variants:
            raise ValueError(
                f"formatbook {self.name!r}: variants={self.variants} must divide the number "
                f"of dialects K={len(hu)}"
            )

    @property
    def size(self) -> int:
        """K, the number of dialects."""
        return int(self.hu.shape[0])

    @property
    def id_bits(self) -> int:
        """Bits of the per-block dialect id (0 for a single-dialect book)."""
        return math.ceil(math.log2(self.size)) if self.size > 1 else 0

    def variant_ids(self, v: int) -> np.ndarray:
        """Dialect ids of SeDA sub-formatbook ``v`` (SPEC §7): {G·p + v for every p}."""
        if not 0 <= v < self.variants:
            raise ValueError(f"variant {v} out of range 0..{self.variants - 1} for {self.name}")
        return np.arange(v, self.size, self.variants)

    def variant_mask(self, v: int) -> np.ndarray:
        """(K,) bool candidate mask of sub-formatbook ``v``."""
        mask = np.zeros(self.size, dtype=bool)
        mask[self.variant_ids(v)] = True
        return mask


def validate_dialects(table: object, where: str = "formatbook") -> np.ndarray:
    """Check a dialect table and return it as a (K, 8) uint8 array.

    Raises ``ValueError`` naming the offending dialect unless every row has 8 integer
    magnitudes in 0..15, starts at 0 and is strictly increasing.
    """
    try:
        arr = np.asarray(table)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{where}: dialects must be a list of 8-entry lists ({exc})") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != DIALECT_LEN:
        raise ValueError(
            f"{where}: dialects must be a non-empty list of {DIALECT_LEN}-entry lists, "
            f"got shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{where}: magnitudes must be integers (half units)")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{where}: magnitudes must be integers (half units), got {arr.dtype}")
    for i, row in enumerate(arr):
        mags = [int(v) for v in row]
        if mags[0] != 0:
            raise ValueError(f"{where}: dialect {i} must start at 0, got {mags}")
        if any(v < 0 or v > HU_MAX for v in mags):
            raise ValueError(f"{where}: dialect {i} has a magnitude outside 0..{HU_MAX}: {mags}")
        if any(b <= a for a, b in zip(mags, mags[1:], strict=False)):
            raise ValueError(f"{where}: dialect {i} is not strictly increasing: {mags}")
    return arr.astype(np.uint8)


def dfp4() -> Formatbook:
    """DialectFP4 [paper]: K = 16, variant v = id mod 2, max group p = id // 2."""
    return Formatbook("dfp4", np.array(DFP4_HU, dtype=np.uint8), variants=2)


def sd32() -> Formatbook:
    """The scaled formatbook [ours], K = 32, id = 4p + v (SPEC §1).

    For max group p (maximum M = 15 - p HU): v0 = dfp4 dialect 2p, v1 = dfp4 dialect 2p+1,
    v2 = uniform grid floor(k·M/7 + 1/2), v3 = outlier grid 0 1 2 3 4 5 6 M, except p = 7
    where that grid equals dfp4 15 and v3 = 0 1 2 3 4 5 7 8.
    """
    rows: list[tuple[int, ...]] = []
    for p in range(8):
        m = HU_MAX - p
        uniform = tuple((2 * k * m + 7) // 14 for k in range(DIALECT_LEN))  # floor(kM/7 + 1/2)
        outlier = (0, 1, 2, 3, 4, 5, 7, 8) if p == 7 else (0, 1, 2, 3, 4, 5, 6, m)
        rows += [DFP4_HU[2 * p], DFP4_HU[2 * p + 1], uniform, outlier]
    return Formatbook("sd32", np.array(rows, dtype=np.uint8), variants=4)


BUILTIN_FORMATBOOKS = {"dfp4": dfp4, "sd32": sd32}


def load_formatbook(path: str | Path) -> Formatbook:
    """Load a user formatbook from TOML.

    File format::

        name = "mybook"            # optional, defaults to the file stem
        variants = 2               # optional SeDA variants (id = variants·p + v)
        dialects = [
          [0, 1, 2, 3, 4, 6, 8, 12],
          ...
        ]

    Raises ``ValueError`` with the file name on a missing file, bad TOML or bad table.
    """
    path = Path(path)
    where = f"formatbook file {path}"
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read ({exc.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML ({exc})") from None
    if "dialects" not in doc:
        raise ValueError(f"{where}: missing the 'dialects' table (a list of 8-entry lists)")
    unknown = set(doc) - {"name", "variants", "dialects"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    name = doc.get("name", path.stem)
    variants = doc.get("variants", 1)
    if not isinstance(name, str) or not isinstance(variants, int):
        raise ValueError(f"{where}: 'name' must be a string and 'variants' an integer")
    hu = validate_dialects(doc["dialects"], where=where)
    try:
        return Formatbook(name, hu, variants=variants)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def get_formatbook(spec: str | Path | Formatbook) -> Formatbook:
    """A formatbook by builtin name (``dfp4``, ``sd32``), TOML path, or passed through."""
    if isinstance(spec, Formatbook):
        return spec
    if isinstance(spec, str) and spec in BUILTIN_FORMATBOOKS:
        return BUILTIN_FORMATBOOKS[spec]()
    if str(spec).endswith(".toml"):
        return load_formatbook(spec)
    raise ValueError(
        f"formatbook: unknown {spec!r} (builtin: {', '.join(BUILTIN_FORMATBOOKS)}, or a .toml file)"
    )
