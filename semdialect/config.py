"""The one configuration that drives the RTL, the golden model and the cycle model.

Loaded from ``configs/*.toml``::

    name = "default"
    [array]
    rows = 8            # PE rows (activation rows in flight)
    cols = 8            # PE columns (weight columns in flight)
    dataflow = "output-stationary"
    [format]
    block = 32          # B, elements per block along K
    formatbook = "sd32" # builtin name or a formatbook .toml (relative to the config file)
    select = "lut"      # "lut" | "two-stage"
    [selector]
    formats_per_cycle = 8   # dialect costs evaluated per cycle by the LUT selector

Every invalid combination raises ``ValueError`` naming the parameter.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from semdialect.golden.blocks import BLOCK_SIZES
from semdialect.golden.formatbook import Formatbook, get_formatbook
from semdialect.golden.luts import two_stage_tables

DATAFLOWS = ("output-stationary",)
SELECTS = ("lut", "two-stage")
MAX_ARRAY = 64


@dataclass(frozen=True)
class Config:
    """A validated hardware/numerics configuration (see the module docstring for units)."""

    name: str = "default"
    rows: int = 8
    cols: int = 8
    dataflow: str = "output-stationary"
    block: int = 32
    formatbook: str = "sd32"
    select: str = "lut"
    formats_per_cycle: int = 8

    def __post_init__(self) -> None:
        for key in ("rows", "cols", "block", "formats_per_cycle"):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, int):
                raise ValueError(f"{key}: expected an integer, got {val!r}")
        for key in ("rows", "cols"):
            if not 1 <= getattr(self, key) <= MAX_ARRAY:
                raise ValueError(f"{key}: must be in 1..{MAX_ARRAY}, got {getattr(self, key)}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow: must be one of {DATAFLOWS}, got {self.dataflow!r}")
        if self.block not in BLOCK_SIZES:
            raise ValueError(f"block: must be one of {BLOCK_SIZES}, got {self.block}")
        if self.select not in SELECTS:
            raise ValueError(f"select: must be one of {SELECTS}, got {self.select!r}")
        book = self.book()  # raises ValueError naming the formatbook
        if self.select == "two-stage":
            two_stage_tables(book)
        k = book.size
        if not 1 <= self.formats_per_cycle <= k or k % self.formats_per_cycle:
            raise ValueError(
                f"formats_per_cycle: must divide the formatbook size K={k}, "
                f"got {self.formats_per_cycle}"
            )

    def book(self) -> Formatbook:
        """The configured formatbook."""
        return get_formatbook(self.formatbook)

    @property
    def selector_cycles(self) -> int:
        """Cycles the LUT selector needs per block (K / formats per cycle; 1 for two-stage)."""
        return 1 if self.select == "two-stage" else self.book().size // self.formats_per_cycle

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | Path) -> Config:
    """Read and validate a configuration TOML file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"config {path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config {path}: not valid TOML ({exc})") from None
    sections = {"array": ("rows", "cols", "dataflow"),
                "format": ("block", "formatbook", "select"),
                "selector": ("formats_per_cycle",)}
    flat: dict[str, Any] = {"name": doc.pop("name", path.stem)}
    for sec, keys in sections.items():
        table = doc.pop(sec, {})
        if not isinstance(table, dict):
            raise ValueError(f"config {path}: [{sec}] must be a table")
        for key, val in table.items():
            if key not in keys:
                raise ValueError(f"config {path}: unknown parameter {sec}.{key}")
            flat[key] = val
    if doc:
        raise ValueError(f"config {path}: unknown keys {sorted(doc)}")
    book = flat.get("formatbook")
    if isinstance(book, str) and book.endswith(".toml") and not Path(book).is_absolute():
        flat["formatbook"] = str(path.parent / book)
    try:
        return Config(**flat)
    except ValueError as exc:
        raise ValueError(f"config {path}: {exc}") from None
