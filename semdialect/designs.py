"""The design registry: the one list of compared designs and PE kinds.

A *design* is a number format with its selection (the golden model's format), the PE kind that
computes with it in hardware (or ``None`` for an accuracy-only baseline with no PE in RTL), and
whether the cycle/area/energy models compare it. Every other list in the project — the error
table, the benchmark, the evaluation study, the cycle model, area ablation, energy, the report
and the PE testbenches — iterates :data:`DESIGNS`; none spells design names of its own.

Bit widths are not restated here: they come from the golden format
(:meth:`~semdialect.golden.formats.BlockFormat.element_bits`, ``scale_bits()``, ``id_bits()``).

Layer: above :mod:`semdialect.golden` and :mod:`semdialect.config`, below ``rtl``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from types import MappingProxyType

from semdialect.config import Config
from semdialect.golden.formatbook import get_formatbook
from semdialect.golden.formats import MX_BLOCK, BlockFormat, resolve_format

__all__ = ["DESIGNS", "Design", "PEKind", "design", "hardware_designs"]


class PEKind(enum.Enum):
    """How a PE decodes its 4/8-bit elements (one RTL decoder/PE branch per member)."""

    #: dialect id + 4-bit code → ±HU through the formatbook ROM; SE exponent (SPEC §5)
    DIALECT = "dialect"
    #: OCP MX E2M1 element, E8M0 scale (SPEC §8)
    MXFP4 = "mxfp4"
    #: OCP MX INT8 element, E8M0 scale (SPEC §8)
    MXINT8 = "mxint8"


@dataclass(frozen=True)
class Design:
    """One compared design.

    Attributes:
        name: registry key (lower case, used in CSV ``design`` columns and file names).
        label: human-readable label for tables and plots.
        fmt: golden format name, or ``None`` for "the configuration's formatbook" (the
            configured SemanticDialect design).
        select: dialect selection (``"lut"``/``"two-stage"``), ``None`` for baselines or for
            "the configuration's selection".
        pe: PE kind in the RTL, ``None`` when the format has no PE (accuracy baseline only).
        block: fixed block size in elements (MX: 32, NVFP4: 16), ``None`` = the
            configuration's B.
        hardware: compared by the cycle, area and energy models (needs ``pe``).
    """

    name: str
    label: str
    fmt: str | None
    select: str | None
    pe: PEKind | None
    block: int | None = None
    hardware: bool = False

    def __post_init__(self) -> None:
        if self.hardware and self.pe is None:
            raise ValueError(f"design {self.name}: a hardware design needs a PE kind")

    def config(self, cfg: Config) -> Config:
        """This design on ``cfg``'s array: ``cfg`` with this design's format fields."""
        changes: dict[str, object] = {}
        if self.block is not None:
            changes["block"] = self.block
        if self.pe is PEKind.DIALECT and self.fmt is not None:
            k = get_formatbook(self.fmt).size
            per_cycle = cfg.formats_per_cycle  # the configured LUT width where it divides K
            if self.select == "two-stage" or per_cycle > k or k % per_cycle:
                per_cycle = k
            changes.update(formatbook=self.fmt, select=self.select or "lut",
                           formats_per_cycle=per_cycle)
        return replace(cfg, **changes) if changes else cfg

    def golden_format(self, cfg: Config) -> BlockFormat:
        """The golden model's format object of this design under ``cfg``."""
        if self.fmt is None:
            return resolve_format(cfg.book(), cfg.select)
        return resolve_format(self.fmt, self.select)

    def block_size(self, cfg: Config) -> int:
        """Elements per block of this design under ``cfg``."""
        return self.block if self.block is not None else cfg.block


_ALL = (
    Design("semanticdialect", "SemanticDialect (configured formatbook, lut)", None, None,
           PEKind.DIALECT, hardware=True),
    Design("blockdialect", "dfp4 two-stage (BlockDialect)", "dfp4", "two-stage",
           PEKind.DIALECT, hardware=True),
    Design("dfp4-lut", "dfp4 lut", "dfp4", "lut", PEKind.DIALECT),
    Design("mxfp4", "mxfp4", "mxfp4", None, PEKind.MXFP4, block=MX_BLOCK, hardware=True),
    Design("nvfp4", "nvfp4", "nvfp4", None, None, block=16),
    Design("int4", "int4", "int4", None, None),
    Design("mxint8", "mxint8", "mxint8", None, PEKind.MXINT8, block=MX_BLOCK, hardware=True),
)

#: every design, by name, in report order
DESIGNS: MappingProxyType[str, Design] = MappingProxyType({d.name: d for d in _ALL})


def design(name: str) -> Design:
    """The registered design ``name`` (``ValueError`` naming the choices otherwise)."""
    try:
        return DESIGNS[name]
    except KeyError:
        raise ValueError(f"design: unknown {name!r} (choose from {', '.join(DESIGNS)})") from None


def hardware_designs() -> tuple[Design, ...]:
    """The designs the cycle, area and energy models compare, in report order."""
    return tuple(d for d in DESIGNS.values() if d.hardware)
