"""The one configuration that drives the RTL, the golden model and the cycle model.

Loaded from ``configs/*.toml``::

    name = "default"
    [array]
    rows = 8            # PE rows (activation rows in flight)
    cols = 8            # PE columns (weight columns in flight)
    dataflow = "output-stationary"
    drain_width = 32    # FP32 outputs the tile drain emits per cycle (a divisor of the
                        # tile's columns T = cols*acc_stages, or a multiple of T dividing
                        # rows*T)
    [format]
    block = 32          # B, elements per block along K
    formatbook = "sd32" # builtin name or a formatbook .toml (relative to the config file)
    select = "lut"      # "lut" | "two-stage"
    rotate = "none"     # "none" | "hadamard": block Hadamard of size B before quantization
                        # (docs/SPEC.md §11; activations in the frontend, weights offline)
    rotate_seed = 0     # SplitMix64 seed of the rotation's sign vector, 0 <= seed < 2^64
    [selector]
    formats_per_cycle = 32  # dialect costs evaluated per cycle by the LUT selector
    [frontend]
    lanes = 8           # parallel BlockQuantizer lanes (activation blocks per beat), divides rows
    [pipeline]          # register stages (timing closure; see docs/ARCHITECTURE.md "Pipeline")
    decoder_stages = 0      # after the array-edge block decoders, 0..2
    pe_product_stages = 1   # PE element products + adder tree, 1..4 (the last at the tree's end)
    pe_scale_stages = 1     # PE P·2^exp → FP32 conversion, 1..3
    acc_stages = 1          # d: FP32 accumulator loop, 1..7; each PE interleaves d outputs
                            # (C-slow), a tile is rows × (cols·d)
    selector_stages = 0     # extra stages in the LUT selector's cost/argmin trees, 0..6
    addend_stages = 0       # GEMM core output adder (y + yin, SPEC §6 second pass), 0..8
    [memory]            # per-core SRAMs and the shared DRAM (docs/SPEC.md §9; sim/memory.py)
    act_sram_kib = 128      # activation SRAM per core, KiB (quantized blocks, double-buffered)
    weight_sram_kib = 128   # weight SRAM per core, KiB (quantized blocks, double-buffered)
    out_sram_kib = 64       # output SRAM per core, KiB (FP32 outputs/partial sums, double-buffered)
    act_sram_width = 512    # bytes/cycle of each SRAM's port; omitted: matched to the design's
    weight_sram_width = 256 # peak demand (sim/memory.py), so the port never stalls
    out_sram_width = 256
    dram_gbps = 25.6        # DRAM bandwidth shared by all cores, GB/s (10^9 bytes/s)
    k_split = true          # may a mapping split K (partial sums through the output adder:
                            # not SPEC §5's single accumulation, docs/SPEC.md §9)? false: Tk = K
    [chip]
    cores = 1               # 1..4 identical cores (array + frontend + SRAMs) sharing the DRAM
    [attention]
    fused = false           # QKᵀ, softmax, ·V as one fused operator (score tile kept on chip)
    softmax_lanes = 56      # FP32 scores the softmax takes per cycle; omitted: drain_width

Omitted ``[memory]``/``[chip]``/``[attention]`` keys take the values shown (widths and
softmax lanes: matched to the array). These system keys do not change the core's RTL:
:meth:`Config.core` resets them, and every RTL/area cache key uses it.

Omitted ``[pipeline]`` keys take the unpipelined values above (the dataclass defaults: the
design before pipelining, exactly); the shipped TOMLs set them all.

``name`` names build folders (``build/verilog/<name>/``), so it must be a plain identifier.
:func:`resolve_config` takes what a user types after ``--config``: a shipped configuration's
name (``default``, ``small``, ...) or a TOML path. Every invalid combination raises
``ValueError`` naming the parameter.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from semdialect.golden.blocks import BLOCK_SIZES
from semdialect.golden.formatbook import Formatbook, get_formatbook
from semdialect.golden.luts import two_stage_tables
from semdialect.golden.rotation import ROTATIONS, Rotation
from semdialect.paths import configs_dir

DATAFLOWS = ("output-stationary",)
SELECTS = ("lut", "two-stage")
MAX_ARRAY = 128
#: most cores sharing one DRAM
MAX_CORES = 4
#: largest SRAM capacity (KiB) of one [memory] buffer: 1 GiB
MAX_SRAM_KIB = 2**20
#: largest DRAM bandwidth (GB/s) accepted: 100 TB/s
MAX_DRAM_GBPS = 1e5
#: the system keys (TOML section → keys); they do not change the core's RTL (:meth:`Config.core`)
SYSTEM_SECTIONS: dict[str, tuple[str, ...]] = {
    "memory": ("act_sram_kib", "weight_sram_kib", "out_sram_kib", "act_sram_width",
               "weight_sram_width", "out_sram_width", "dram_gbps", "k_split"),
    "chip": ("cores",),
    "attention": ("fused", "softmax_lanes"),
}
#: system field name ↔ TOML key where they differ
_SYSTEM_FIELD = {"fused": "fused_attention"}
#: ``[pipeline]`` keys → (smallest, largest) register stages; the dataclass defaults are the
#: unpipelined design (every latency as before pipelining)
PIPELINE_RANGES: dict[str, tuple[int, int]] = {
    "decoder_stages": (0, 2),
    "pe_product_stages": (1, 4),
    "pe_scale_stages": (1, 3),
    "acc_stages": (1, 7),
    "selector_stages": (0, 6),
    "addend_stages": (0, 8),
}
#: a configuration name: ASCII letters, digits, '_' and '-', not starting with '-' (it becomes
#: a folder and a Verilog module suffix, so no separators, dots, spaces or empty names)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


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
    rotate: str = "none"
    rotate_seed: int = 0
    formats_per_cycle: int = 32
    drain_width: int = 32
    lanes: int = 8
    decoder_stages: int = 0
    pe_product_stages: int = 1
    pe_scale_stages: int = 1
    acc_stages: int = 1
    selector_stages: int = 0
    addend_stages: int = 0
    # --- system keys ([memory], [chip], [attention]): not part of the core's RTL
    act_sram_kib: int = 128
    weight_sram_kib: int = 128
    out_sram_kib: int = 64
    act_sram_width: int | None = None
    weight_sram_width: int | None = None
    out_sram_width: int | None = None
    dram_gbps: float = 25.6
    k_split: bool = True
    cores: int = 1
    fused_attention: bool = False
    softmax_lanes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"name: must be a plain identifier of 1 to 64 ASCII letters, digits, '_' or '-' "
                f"(not starting with '-'), got {self.name!r}"
            )
        for key in ("rows", "cols", "block", "formats_per_cycle", "drain_width", "lanes",
                    *PIPELINE_RANGES):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, int):
                raise ValueError(f"{key}: expected an integer, got {val!r}")
        for key in ("rows", "cols"):
            if not 1 <= getattr(self, key) <= MAX_ARRAY:
                raise ValueError(f"{key}: must be in 1..{MAX_ARRAY}, got {getattr(self, key)}")
        for key, (low, high) in PIPELINE_RANGES.items():
            if not low <= getattr(self, key) <= high:
                raise ValueError(f"{key}: must be in {low}..{high} register stages, "
                                 f"got {getattr(self, key)}")
        check_drain_width(self.drain_width, self.rows, self.cols, self.acc_stages)
        self._check_system()
        check_lanes(self.lanes, self.rows)
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow: must be one of {DATAFLOWS}, got {self.dataflow!r}")
        if self.block not in BLOCK_SIZES:
            raise ValueError(f"block: must be one of {BLOCK_SIZES}, got {self.block}")
        if self.select not in SELECTS:
            raise ValueError(f"select: must be one of {SELECTS}, got {self.select!r}")
        if self.rotate not in ROTATIONS:
            raise ValueError(f"rotate: must be one of {ROTATIONS}, got {self.rotate!r}")
        if isinstance(self.rotate_seed, bool) or not isinstance(self.rotate_seed, int) \
                or not 0 <= self.rotate_seed < 1 << 64:
            raise ValueError(f"rotate_seed: must be an integer in [0, 2^64), "
                             f"got {self.rotate_seed!r}")
        book = self.book()  # raises ValueError naming the formatbook
        if self.select == "two-stage":
            two_stage_tables(book)
        k = book.size
        if not 1 <= self.formats_per_cycle <= k or k % self.formats_per_cycle:
            raise ValueError(
                f"formats_per_cycle: must divide the formatbook size K={k}, "
                f"got {self.formats_per_cycle}"
            )

    def _check_system(self) -> None:
        """The [memory], [chip] and [attention] keys (``ValueError`` naming the key)."""
        for key in ("act_sram_kib", "weight_sram_kib", "out_sram_kib"):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= MAX_SRAM_KIB:
                raise ValueError(f"{key}: must be an integer number of KiB in 1..{MAX_SRAM_KIB}, "
                                 f"got {val!r}")
        for key in ("act_sram_width", "weight_sram_width", "out_sram_width", "softmax_lanes"):
            val = getattr(self, key)
            if val is not None and (isinstance(val, bool) or not isinstance(val, int)
                                    or not 1 <= val <= 2**20):
                raise ValueError(f"{key}: must be an integer in 1..{2**20} (or omitted), "
                                 f"got {val!r}")
        gbps = self.dram_gbps
        if (isinstance(gbps, bool) or not isinstance(gbps, (int, float))
                or not math.isfinite(gbps) or not 0 < gbps <= MAX_DRAM_GBPS):
            raise ValueError(f"dram_gbps: must be a number of GB/s in (0, {MAX_DRAM_GBPS:g}], "
                             f"got {gbps!r}")
        if isinstance(self.cores, bool) or not isinstance(self.cores, int) or not (
                1 <= self.cores <= MAX_CORES):
            raise ValueError(f"cores: must be an integer in 1..{MAX_CORES}, got {self.cores!r}")
        if not isinstance(self.k_split, bool):
            raise ValueError(f"k_split: [memory] k_split must be true or false, "
                             f"got {self.k_split!r}")
        if not isinstance(self.fused_attention, bool):
            raise ValueError(f"fused: [attention] fused must be true or false, "
                             f"got {self.fused_attention!r}")

    def core(self) -> Config:
        """This configuration with every system key ([memory], [chip], [attention]) at its
        default: what the core's RTL, its Verilog and area caches depend on."""
        base = Config()
        return replace(self, **{f: getattr(base, f) for f in system_fields()})

    @property
    def softmax_width(self) -> int:
        """FP32 scores the fused-attention softmax unit takes per cycle (``softmax_lanes``,
        omitted: ``drain_width``, so it keeps up with the drain)."""
        return self.drain_width if self.softmax_lanes is None else self.softmax_lanes

    @property
    def tile_cols(self) -> int:
        """Columns of one output tile: cols · acc_stages (each PE interleaves acc_stages
        outputs, one per virtual column group)."""
        return self.cols * self.acc_stages

    @property
    def drain_rows(self) -> int:
        """Tile rows one drain beat covers: max(1, drain_width / tile_cols)."""
        return drain_beat_shape(self.drain_width, self.tile_cols)[0]

    @property
    def drain_cols(self) -> int:
        """Tile columns one drain beat covers: min(drain_width, tile_cols)."""
        return drain_beat_shape(self.drain_width, self.tile_cols)[1]

    def on_array(self, rows: int, cols: int) -> Config:
        """This configuration on a ``rows`` × ``cols`` array, named ``<name>-<rows>x<cols>``:
        the same formatbook, B, selector and every ``[pipeline]`` stage (tiles of rows ×
        cols·acc_stages); lanes = gcd(lanes, rows); drain_width the widest valid width (a
        drain beat covers part of a tile row or whole tile rows) not above this one's scaled
        by the tile's size, so a tile still drains in as many beats (the default's 8 × 56
        tile in 8 beats of 56, its 4 × 14 tile in 8 beats of 7) and the output adder keeps
        its share of the array."""
        tile = cols * self.acc_stages
        widths = [w for w in range(1, rows * tile + 1)
                  if tile % w == 0 or (w % tile == 0 and (rows * tile) % w == 0)]
        scaled = self.drain_width * rows * tile / (self.rows * self.tile_cols)
        drain = max(w for w in widths if w <= max(1.0, scaled))
        return replace(self, name=f"{self.name}-{rows}x{cols}", rows=rows, cols=cols,
                       lanes=math.gcd(self.lanes, rows), drain_width=drain)

    def pipeline_dict(self) -> dict[str, int]:
        """The ``[pipeline]`` keys and their values."""
        return {key: getattr(self, key) for key in PIPELINE_RANGES}

    def book(self) -> Formatbook:
        """The configured formatbook."""
        return get_formatbook(self.formatbook)

    def rotation(self) -> Rotation | None:
        """The configured block rotation (size B, SPEC §11), or None for ``rotate = "none"``."""
        return None if self.rotate == "none" else Rotation(self.block, self.rotate_seed)

    @property
    def selector_cycles(self) -> int:
        """Cycles the LUT selector needs per block (K / formats per cycle; 1 for two-stage)."""
        return 1 if self.select == "two-stage" else self.book().size // self.formats_per_cycle

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a flat dict (the dataclass fields)."""
        return asdict(self)


def system_fields() -> tuple[str, ...]:
    """Config field names of the system keys (:data:`SYSTEM_SECTIONS`)."""
    return tuple(_SYSTEM_FIELD.get(k, k) for keys in SYSTEM_SECTIONS.values() for k in keys)


def check_drain_width(width: int, rows: int, cols: int, acc_stages: int = 1) -> None:
    """A drain beat covers part of one tile row (``width`` divides the tile's columns
    T = cols·``acc_stages``) or whole tile rows (``width`` is a multiple of T that divides
    rows·T); ``ValueError`` naming ``drain_width`` otherwise (also for a non-integer)."""
    tile = cols * acc_stages
    ok = (isinstance(width, int) and not isinstance(width, bool) and width >= 1
          and (tile % width == 0 or (width % tile == 0 and (rows * tile) % width == 0)))
    if not ok:
        what = f"cols={cols}" if acc_stages == 1 else (
            f"the tile's cols*acc_stages={tile} columns")
        raise ValueError(
            f"drain_width: must divide {what}, or be a multiple of it that divides "
            f"rows*{tile}={rows * tile}, got {width!r}"
        )


def drain_beat_shape(width: int, cols: int) -> tuple[int, int]:
    """(g, c): one drain beat of ``width`` outputs covers g = max(1, width / cols) tile rows ×
    c = min(width, cols) tile columns (``width`` valid per :func:`check_drain_width`)."""
    return max(1, width // cols), min(width, cols)


def check_lanes(lanes: int, rows: int) -> None:
    """Frontend lanes: a positive integer dividing ``rows``; ``ValueError`` naming ``lanes``."""
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1 or rows % lanes:
        raise ValueError(f"lanes: must divide rows={rows}, got {lanes!r}")


#: the configuration TOML's core sections (what the core's RTL depends on) → their keys
CORE_SECTIONS: dict[str, tuple[str, ...]] = {
    "array": ("rows", "cols", "dataflow", "drain_width"),
    "format": ("block", "formatbook", "select", "rotate", "rotate_seed"),
    "selector": ("formats_per_cycle",),
    "frontend": ("lanes",),
    "pipeline": tuple(PIPELINE_RANGES),
}


def shipped_configs() -> tuple[str, ...]:
    """Names of the configurations shipped in :func:`semdialect.paths.configs_dir`."""
    return tuple(sorted(p.stem for p in configs_dir().glob("*.toml")))


def resolve_config(spec: str | os.PathLike[str]) -> Config:
    """The configuration a user means by ``spec``: a shipped configuration's name
    (:func:`shipped_configs`, e.g. ``"default"``) or the path of a configuration TOML file.

    A bare name wins over a file of the same name in the working directory; write
    ``./NAME`` for the file. Raises ``ValueError`` naming ``config`` (and the shipped names)
    when ``spec`` is neither.
    """
    text = os.fspath(spec)
    names = shipped_configs()
    if text in names:
        return load_config(configs_dir() / f"{text}.toml")
    if not Path(text).exists():
        raise ValueError(f"config {text!r}: neither a shipped configuration ("
                         f"{', '.join(names)}) nor an existing file")
    return load_config(text)


def load_config(path: str | Path) -> Config:
    """Read and validate a configuration TOML file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"config {path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config {path}: not valid TOML ({exc})") from None
    sections = {**CORE_SECTIONS, **SYSTEM_SECTIONS}
    flat: dict[str, Any] = {"name": doc.pop("name", path.stem)}
    for sec, keys in sections.items():
        table = doc.pop(sec, {})
        if not isinstance(table, dict):
            raise ValueError(f"config {path}: [{sec}] must be a table")
        for key, val in table.items():
            if key not in keys:
                raise ValueError(f"config {path}: unknown parameter {sec}.{key}")
            flat[_SYSTEM_FIELD.get(key, key)] = val
    if doc:
        raise ValueError(f"config {path}: unknown keys {sorted(doc)}")
    book = flat.get("formatbook")
    if isinstance(book, str) and book.endswith(".toml") and not Path(book).is_absolute():
        flat["formatbook"] = str(path.parent / book)
    try:
        return Config(**flat)
    except ValueError as exc:
        key = str(exc).split(":", 1)[0]
        hint = ""
        if key in _DEFAULTED and key not in flat:
            sec = next(s for s, keys in sections.items() if key in keys)
            hint = f" (the default; set [{sec}] {key})"
        raise ValueError(f"config {path}: {exc}{hint}") from None


#: keys whose dataclass default fits the default 8x8 array only (a hint names them)
_DEFAULTED = ("drain_width", "lanes", "formats_per_cycle")
