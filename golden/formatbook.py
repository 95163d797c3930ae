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

import functools
import json
import operator
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: magnitudes per dialect (3-bit magnitude index)
DIALECT_LEN = 8
#: largest magnitude in half units (7.5)
HU_MAX = 15
#: most dialects a formatbook may hold: the per-block dialect id is stored as uint8 [ours]
MAX_DIALECTS = 256


def index_bits(n: int) -> int:
    """Bits of an unsigned index into ``n`` items: ceil(log2 n), 0 for ``n`` = 1.

    The dialect-id width of a K-dialect formatbook (:attr:`Formatbook.id_bits`, SPEC §1) and
    the width of SeDA's variant and max-group ids; the RTL layouts and the energy model use it.
    """
    try:
        count = operator.index(n) if not isinstance(n, bool) else 0
    except TypeError:
        count = 0
    if count < 1:
        raise ValueError(f"n: expected a positive number of items, got {n!r}")
    return (count - 1).bit_length()

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
        name: label used in reports and metadata (a non-empty string).
        hu: (K, 8) uint8 magnitudes in half units, validated on construction
            (:func:`validate_dialects`: 1 <= K <= 256 distinct dialects).
        variants: SeDA variants G (a positive integer dividing K); dialect id = G·p + v
            (1 = no variant structure).
    """

    name: str
    hu: np.ndarray
    variants: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValueError(f"formatbook name: must be a string, got {self.name!r}")
        if not self.name:
            raise ValueError("formatbook name: must not be empty")
        try:
            if isinstance(self.variants, bool | np.bool_):
                raise TypeError
            variants = operator.index(self.variants)
        except TypeError:
            raise ValueError(
                f"formatbook {self.name!r}: variants must be an integer, got {self.variants!r}"
            ) from None
        object.__setattr__(self, "variants", variants)
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
        """Bits of the per-block dialect id: ceil(log2 K), 0 for a single-dialect book.

        The one definition of the dialect-id width (SPEC §1): the golden formats, the RTL
        layouts and the cycle/energy models all use it (:func:`index_bits`).
        """
        return index_bits(self.size)

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


def _first_boolean_row(table: object) -> int | None:
    """Index of the first dialect holding a boolean magnitude (``true``/``false`` in TOML or a
    NumPy bool), or None. NumPy would silently turn booleans mixed with integers into 0/1."""
    if isinstance(table, np.ndarray):
        return 0 if table.dtype.kind == "b" and table.size else None
    if not isinstance(table, list | tuple):
        return None
    for i, row in enumerate(table):
        if isinstance(row, np.ndarray):
            if row.dtype.kind == "b":
                return i
        elif isinstance(row, list | tuple):
            if any(isinstance(v, bool | np.bool_) for v in row):
                return i
        elif isinstance(row, bool | np.bool_):
            return i
    return None


def validate_dialects(table: object, where: str = "formatbook") -> np.ndarray:
    """Check a dialect table and return it as a (K, 8) uint8 array.

    Raises ``ValueError`` naming the offending dialect unless there are 1..256 dialects
    (the id is stored as uint8) and every row has 8 integer (not boolean) magnitudes in
    0..15, starts at 0, is strictly increasing and differs from every other row.
    """
    bad = _first_boolean_row(table)
    if bad is not None:
        raise ValueError(f"{where}: dialect {bad} has a boolean magnitude (true/false); "
                         f"magnitudes are integers (half units)")
    try:
        arr = np.asarray(table)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{where}: dialects must be a list of 8-entry lists ({exc})") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != DIALECT_LEN:
        raise ValueError(
            f"{where}: dialects must be a non-empty list of {DIALECT_LEN}-entry lists, "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] > MAX_DIALECTS:
        raise ValueError(
            f"{where}: dialect {MAX_DIALECTS} and later do not fit: a formatbook holds at most "
            f"{MAX_DIALECTS} dialects (the dialect id is stored as uint8), got K={arr.shape[0]}"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{where}: magnitudes must be integers (half units)")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{where}: magnitudes must be integers (half units), got {arr.dtype}")
    not_zero = arr[:, 0] != 0
    out_of_range = ((arr < 0) | (arr > HU_MAX)).any(axis=1)
    not_increasing = (arr[:, 1:] <= arr[:, :-1]).any(axis=1)
    broken = np.flatnonzero(not_zero | out_of_range | not_increasing)
    if broken.size:
        i = int(broken[0])
        mags = [int(v) for v in arr[i]]
        if not_zero[i]:
            raise ValueError(f"{where}: dialect {i} must start at 0, got {mags}")
        if out_of_range[i]:
            raise ValueError(f"{where}: dialect {i} has a magnitude outside 0..{HU_MAX}: {mags}")
        raise ValueError(f"{where}: dialect {i} is not strictly increasing: {mags}")
    hu = arr.astype(np.uint8)
    # one 32-bit key per dialect (8 magnitudes of 4 bits): np.unique on plain integers, not on
    # rows (axis=0 compares a structured view, which turns a Ctrl-C arriving meanwhile into a
    # TypeError)
    key = (hu.astype(np.uint32) << np.arange(0, 4 * DIALECT_LEN, 4, dtype=np.uint32)).sum(
        axis=1, dtype=np.uint32)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    original = first[inverse.reshape(-1)]  # the first row equal to each row
    dups = np.flatnonzero(original != np.arange(hu.shape[0]))
    if dups.size:
        i = int(dups[0])
        raise ValueError(f"{where}: dialect {i} duplicates dialect {int(original[i])}: "
                         f"{[int(v) for v in hu[i]]}")
    return hu


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
    try:  # Formatbook checks the name, the variants and the dialects
        return Formatbook(doc.get("name", path.stem), doc["dialects"],
                          variants=doc.get("variants", 1))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def formatbook_toml(book: Formatbook, comments: tuple[str, ...] | list[str] = ()) -> str:
    """The TOML text of ``book`` that :func:`load_formatbook` reads back to an equal book
    (same name, variants and dialects in the same order).

    ``comments`` become ``#`` lines at the top (a comment holding newlines gives several).
    ``variants`` is written only when it is not 1.
    """
    # TOML comments may not hold control characters other than tab: those become '?'
    clean = ["".join(ch if ch == "\t" or (ch >= " " and ch != "\x7f") else "?" for ch in part)
             for c in comments for part in (str(c).splitlines() or [""])]
    lines = [f"# {part}".rstrip() for part in clean]
    # a TOML basic string: JSON's escapes are TOML's, plus DEL, which TOML requires escaped
    name = json.dumps(book.name, ensure_ascii=False).replace("\x7f", "\\u007f")
    lines.append(f"name = {name}")
    if book.variants != 1:
        lines.append(f"variants = {book.variants}")
    lines.append("dialects = [")
    lines += [f"  [{', '.join(str(int(v)) for v in row)}],  # {i}"
              for i, row in enumerate(book.hu)]
    lines.append("]")
    return "\n".join(lines) + "\n"


def write_formatbook(book: Formatbook, path: str | Path,
                     comments: tuple[str, ...] | list[str] = ()) -> None:
    """Write :func:`formatbook_toml` to ``path`` atomically (a temporary file in the same
    folder, renamed over the target; the old file stays whole if writing fails)."""
    target = Path(os.path.realpath(path))
    text = formatbook_toml(book, comments)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.cache
def _builtin(name: str) -> Formatbook:
    """The builtin formatbook ``name``, built once (immutable: its ``hu`` is read-only)."""
    return BUILTIN_FORMATBOOKS[name]()


def get_formatbook(spec: str | Path | Formatbook) -> Formatbook:
    """A formatbook by builtin name (``dfp4``, ``sd32``), TOML path, or passed through."""
    if isinstance(spec, Formatbook):
        return spec
    if isinstance(spec, str) and spec in BUILTIN_FORMATBOOKS:
        return _builtin(spec)
    if str(spec).endswith(".toml"):
        return load_formatbook(spec)
    raise ValueError(
        f"formatbook: unknown {spec!r} (builtin: {', '.join(BUILTIN_FORMATBOOKS)}, or a .toml file)"
    )
