"""The design registry: the one list of compared designs and PE kinds.

A *design* is a number format with its selection (the golden model's format), the PE kind that
computes with it in hardware (or ``None`` for an accuracy-only baseline with no PE in RTL), and
whether the cycle/area/energy models compare it. Every other list in the project — the error
table, the benchmark, the evaluation study, the cycle model, area ablation, energy, the report
and the PE testbenches — iterates :data:`DESIGNS` (or :class:`PEKind`); none spells design or
PE-kind names of its own (``tests/test_designs.py`` greps the sources for such lists).

Bit widths are not restated here: they come from the golden format
(:attr:`~semdialect.golden.formats.BlockFormat.element_bits`, ``scale_bits()``, ``id_bits()``).
A :class:`PEKind` adds only what the golden format cannot say: the signed width of a decoded
element, the fixed block size, and the energy-table actions of its decoder and multiplier.

Adding a PE kind or a baseline format: ``docs/ARCHITECTURE.md``, section "Adding a PE kind or a
baseline format".

Layer: above :mod:`semdialect.golden` and :mod:`semdialect.config`, below ``rtl``.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, replace
from types import MappingProxyType

from semdialect.config import Config
from semdialect.golden.formatbook import BUILTIN_FORMATBOOKS, Formatbook, get_formatbook
from semdialect.golden.formats import MX_BLOCK, NVFP4, BlockFormat, DialectFormat, resolve_format
from semdialect.golden.rotated import RotatedFormat, base_format
from semdialect.golden.rotation import Rotation

__all__ = [
    "DESIGNS",
    "Design",
    "PEKind",
    "configured_design",
    "design",
    "hardware_designs",
]


@functools.lru_cache(maxsize=32)
def _builtin_format(fmt: str, select: str | None) -> BlockFormat:
    """A golden format built once per (builtin name, selection): a dialect format builds its
    LUTs on construction, and the models ask for the same few formats many times."""
    return resolve_format(fmt, select)


def _book_format(book: Formatbook | str, select: str | None) -> BlockFormat:
    """The dialect format of ``book`` (a builtin name, a TOML path or a book) with ``select``."""
    if isinstance(book, str) and book in BUILTIN_FORMATBOOKS:
        return _builtin_format(book, select or "lut")
    return DialectFormat(get_formatbook(book), select or "lut")


class PEKind(enum.Enum):
    """How a PE decodes its elements: one RTL decoder/PE branch
    (:meth:`semdialect.rtl.block_decoder.ElementKind.for_design`) per member.

    Each member's value is its name (CSV columns, module suffixes, port prefixes); its other
    fields are what the RTL and the energy model need beyond the golden format:

    ``fmt``
        golden format of the elements; ``None`` = a dialect formatbook (the configuration's,
        or the design's): such a kind selects a dialect per block (selector, IDX quantizer,
        activation frontend in RTL).
    ``block``
        fixed elements per block (``None``: the configuration's B).
    ``int_bits``
        signed width of a decoded element, the PE's multiplier operand (±HU: 5; int8: 8).
        Element products are ``2 · int_bits`` wide.
    ``decoder``
        energy-table action charged per decoded magnitude bit (``int_bits − 1`` bits per
        element), or ``None`` when the codes are the integers (no decoder).
    ``multiplier``
        energy-table action of one element product.
    """

    fmt: str | None
    block: int | None
    int_bits: int
    decoder: str | None
    multiplier: str

    #: dialect id + 4-bit code → ±HU through the formatbook ROM; 5-bit SE exponent (SPEC §5)
    DIALECT = ("dialect", None, None, 5, "rom_read_bit", "int_mul_5b")
    #: OCP MX E2M1 element → ±2·E2M1 = ±HU (a fixed 8-entry map), E8M0 scale (SPEC §8)
    MXFP4 = ("mxfp4", "mxfp4", MX_BLOCK, 5, "mux2_bit", "int_mul_e2m1")
    #: OCP MX INT8 element (its own integer, no decoder), E8M0 scale (SPEC §8)
    MXINT8 = ("mxint8", "mxint8", MX_BLOCK, 8, None, "int_mul_8b")
    #: NVFP4 E2M1 element → ±2·E2M1 = ±HU (the MXFP4 map), E4M3 block scale: a float-scaled
    #: kind (SPEC §8 NVFP4 hardware contract [ours]; its block contribution is
    #: P·s_a·s_w/4, not P·2^exp, and the FP32 tensor scales are applied at the drain)
    NVFP4 = ("nvfp4", NVFP4.name, 16, 5, "mux2_bit", "int_mul_e2m1")

    def __new__(cls, value: str, fmt: str | None, block: int | None, int_bits: int,
                decoder: str | None, multiplier: str) -> PEKind:
        obj = object.__new__(cls)
        obj._value_ = value
        obj.fmt = fmt
        obj.block = block
        obj.int_bits = int_bits
        obj.decoder = decoder
        obj.multiplier = multiplier
        return obj

    @classmethod
    def of(cls, kind: PEKind | str) -> PEKind:
        """``kind`` itself, or the kind named by its value or by its golden format's name
        (``ValueError`` naming the choices otherwise)."""
        if isinstance(kind, cls):
            return kind
        for member in cls:
            if kind in (member.value, member.fmt):
                return member
        raise ValueError(f"kind: unknown PE kind {kind!r} (choose from "
                         f"{', '.join(m.value for m in cls)})")

    @property
    def has_dialects(self) -> bool:
        """True for a dialect-formatbook kind (per-block dialect selection), False for a
        fixed-format kind."""
        return self.fmt is None

    @property
    def pow2_scaled(self) -> bool:
        """True when a block's scale is a power of two (dialect SE, OCP MX E8M0): the PE's
        block contribution is P·2^exp (SPEC §5). False for a float-scaled kind (NVFP4's E4M3
        block scale and FP32 tensor scale, SPEC §8): the golden format says which."""
        return self.fmt is None or _builtin_format(self.fmt, None).pow2_scaled

    @property
    def has_tensor_scale(self) -> bool:
        """True when the kind's tensors carry a per-tensor FP32 scale (NVFP4): the drain
        multiplies every output once by RNE_fp32(ts_a·ts_w) (SPEC §8). From the golden
        format's per-tensor metadata bits."""
        return self.fmt is not None and _builtin_format(self.fmt, None).tensor_bits() > 0

    def element_format(self, book: Formatbook | str | None = None,
                       select: str | None = None) -> BlockFormat:
        """The golden format of this kind's elements: ``book`` (required) with ``select`` for
        a dialect kind, the fixed format otherwise (``book``/``select`` ignored)."""
        if self.fmt is not None:
            return _builtin_format(self.fmt, None)
        if book is None:
            raise ValueError(f"formatbook: the {self.value} PE kind needs a formatbook")
        return _book_format(book, select)

    def config_format(self, cfg: Config) -> BlockFormat:
        """:meth:`element_format` under ``cfg`` (its formatbook and selection)."""
        return self.element_format(cfg.formatbook if self.has_dialects else None, cfg.select)


@dataclass(frozen=True)
class Design:
    """One compared design.

    Attributes:
        name: registry key (lower case, used in CSV ``design`` columns and file names).
        label: human-readable description.
        fmt: golden format name, or ``None`` for "the configuration's formatbook" (the
            configured SemanticDialect design, :func:`configured_design`).
        select: dialect selection (``"lut"``/``"two-stage"``), ``None`` for baselines or for
            "the configuration's selection".
        pe: PE kind in the RTL, ``None`` when the format has no PE (accuracy baseline only).
        block: fixed block size in elements of a design without a PE; a PE design's fixed
            block is its kind's (MX: 32, NVFP4: 16); ``None`` = the configuration's B.
        hardware: compared by the cycle, area and energy models (needs ``pe``).
        role: what the design stands for in the tables ("SemanticDialect", "BlockDialect"),
            appended to its row label; ``None`` for plain formats.
    """

    name: str
    label: str
    fmt: str | None
    select: str | None
    pe: PEKind | None
    block: int | None = None
    hardware: bool = False
    role: str | None = None

    def __post_init__(self) -> None:
        if self.hardware and self.pe is None:
            raise ValueError(f"design {self.name}: a hardware design needs a PE kind")
        if self.pe is not None and self.pe.fmt is not None and self.pe.fmt != self.fmt:
            raise ValueError(f"design {self.name}: PE kind {self.pe.value} computes "
                             f"{self.pe.fmt}, not {self.fmt}")
        if self.fmt is None and self.pe is not PEKind.DIALECT:
            raise ValueError(f"design {self.name}: the configured formatbook needs a dialect PE")
        if self.pe is not None and self.block is not None:
            raise ValueError(f"design {self.name}: a PE design's block comes from its kind")

    @property
    def configured(self) -> bool:
        """True for the design whose format is the configuration's formatbook and selection."""
        return self.fmt is None

    @property
    def fixed_block(self) -> int | None:
        """The design's fixed block size (its PE kind's, or its own), None = the config's B."""
        if self.pe is not None:
            return self.pe.block
        return self.block

    def block_size(self, cfg: Config) -> int:
        """Elements per block of this design under ``cfg``."""
        fixed = self.fixed_block
        return fixed if fixed is not None else cfg.block

    def format_spec(self, cfg: Config | None = None) -> tuple[str, str | None]:
        """(format name or formatbook spec, selection) of this design under ``cfg`` (default
        :class:`Config`), as the golden ``quantize(x, fmt, select=...)`` takes them."""
        if self.fmt is None:
            cfg = cfg if cfg is not None else Config()
            return cfg.formatbook, cfg.select
        return self.fmt, self.select

    def rotation(self, cfg: Config | None = None) -> Rotation | None:
        """The block rotation of this design under ``cfg`` (SPEC §11): ``cfg.rotation()``'s
        seed at this design's block size (a fixed-block design, MX 32 or NVFP4 16, is
        rotated at its own B), or None for ``rotate = "none"``."""
        if cfg is None or cfg.rotation() is None:
            return None
        return Rotation(self.block_size(cfg), cfg.rotate_seed)

    def _rotated(self, fmt: BlockFormat, cfg: Config | None, role: str) -> BlockFormat:
        rotation = self.rotation(cfg)
        return fmt if rotation is None else RotatedFormat(fmt, rotation, role)

    def golden_format(self, cfg: Config | None = None) -> BlockFormat:
        """The golden model's format object of this design's activations under ``cfg``
        (behind ``cfg``'s rotation in the activation role, if any: :meth:`rotation`)."""
        fmt, select = self.format_spec(cfg)
        if self.pe is PEKind.DIALECT:
            return self._rotated(_book_format(fmt, select), cfg, "activation")
        return self._rotated(_builtin_format(fmt, select), cfg, "activation")

    def weight_format(self, cfg: Config | None = None) -> BlockFormat:
        """The golden format of this design's weights: dialect weights always use ``lut``
        selection over the whole formatbook (SPEC §4); other formats equal the activations'.
        Behind ``cfg``'s rotation in the weight role, if any (SPEC §11)."""
        if self.pe is PEKind.DIALECT:
            return self._rotated(_book_format(self.format_spec(cfg)[0], "lut"), cfg, "weight")
        return self._rotated(base_format(self.golden_format(cfg)), cfg, "weight")

    def row_label(self, cfg: Config | None = None) -> str:
        """The design's row label in accuracy tables under ``cfg``: ``"<format> <select>"`` for
        dialect formats, the format name otherwise, then `` + hadamard`` (`` + hadamard seed
        N`` for a seed N ≠ 0) under a rotation, then `` (<role>)`` if it has one — e.g.
        ``"sd32 lut (SemanticDialect)"``, ``"dfp4 two-stage (BlockDialect)"``, ``"mxfp4"``,
        ``"mxfp4 + hadamard"``."""
        rotated = self.golden_format(cfg)
        fmt = base_format(rotated)
        text = f"{fmt.name} {fmt.select}" if isinstance(fmt, DialectFormat) else fmt.name
        if isinstance(rotated, RotatedFormat):
            seed = rotated.rotation.seed
            text += " + hadamard" + (f" seed {seed}" if seed else "")
        return f"{text} ({self.role})" if self.role else text

    def config(self, cfg: Config) -> Config:
        """This design on ``cfg``'s array: ``cfg`` with this design's format fields."""
        changes: dict[str, object] = {}
        if self.fixed_block is not None:
            changes["block"] = self.fixed_block
        if self.pe is PEKind.DIALECT and self.fmt is not None:
            k = get_formatbook(self.fmt).size
            per_cycle = cfg.formats_per_cycle  # the configured LUT width where it divides K
            if self.select == "two-stage" or per_cycle > k or k % per_cycle:
                per_cycle = k
            changes.update(formatbook=self.fmt, select=self.select or "lut",
                           formats_per_cycle=per_cycle)
        return replace(cfg, **changes) if changes else cfg


# Report order: the error table, the benchmark and the key table list designs in this order
# (the evaluation study lists its 4-bit designs in reverse: baselines first).
_ALL = (
    Design("semanticdialect", "SemanticDialect (configured formatbook and selection)", None,
           None, PEKind.DIALECT, hardware=True, role="SemanticDialect"),
    Design("dfp4-lut", "DialectFP4 with LUT selection", "dfp4", "lut", PEKind.DIALECT),
    Design("blockdialect", "BlockDialect: DialectFP4 with two-stage selection", "dfp4",
           "two-stage", PEKind.DIALECT, hardware=True, role="BlockDialect"),
    Design("mxfp4", "OCP MXFP4", "mxfp4", None, PEKind.MXFP4, hardware=True),
    Design("nvfp4", "NVFP4", "nvfp4", None, PEKind.NVFP4, hardware=True),
    Design("int4", "symmetric INT4, FP32 scale per block", "int4", None, None),
    Design("mxint8", "OCP MXINT8", "mxint8", None, PEKind.MXINT8, hardware=True),
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


def configured_design() -> Design:
    """The design that is the configuration itself (its formatbook, selection and B)."""
    (only,) = (d for d in DESIGNS.values() if d.configured)
    return only
