"""Energy per MAC of a GEMM from analytic action counts and a cited table — an ESTIMATE.

Two halves, kept apart so either can be replaced:

* :func:`load_assumptions` reads a versioned per-action energy table
  (``data/energy/assumptions_v1.toml``: pJ per action at 45 nm, each entry with its source and
  how it was scaled; see that file).
* :func:`action_counts_for_gemm` counts, from a :class:`~semdialect.config.Config` and the GEMM
  shape, how many of each action the hardware performs; :func:`energy_per_mac` multiplies the
  counts by the table and divides by the MAC count.

Action counts are a dict: the key ``"macs"`` (M·N·K, the GEMM's multiply-accumulates) plus
``"<category>.<action>"`` keys, ``action`` naming a table entry and ``category`` one of
:data:`CATEGORIES` — the part of the hardware the energy is charged to:

``preprocess``   FP16 block → SE and quarter-unit magnitudes q (SPEC §2) and the final code
                 quantization (IDX lookup for dialects, rounding for MX formats);
``selector``     dialect choice (SPEC §4: ERR lookups, cost adder trees, argmin; or two-stage);
``decoder``      4-bit code → ±HU (or E2M1 → 2·value) before the multipliers;
``multiplier``   element products; ``adder_tree``: the B-input sum of a block pair's products;
``accumulator``  block product → FP32 (×2^(SE_a+SE_w−2); NVFP4: × the two E4M3 block scales),
                 the FP32 accumulation (SPEC §5) and NVFP4's per-output FP32 tensor-scale
                 multiply at the drain (SPEC §8);
``memory``       bytes moved to/from the on-chip buffer (SRAM) and DRAM.

Not modelled: clock tree, pipeline/state registers, control, leakage and data-dependent
activity (a zero operand costs as much as any other). Hence ``formats_per_cycle`` changes the
selector's cycles but not its counts here.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semdialect.designs import PEKind
from semdialect.golden.formats import E2M1_HU
from semdialect.paths import data_dir

if TYPE_CHECKING:
    from semdialect.config import Config

__all__ = [
    "CATEGORIES",
    "DEFAULT_ASSUMPTIONS",
    "Action",
    "Assumptions",
    "action_counts_for_gemm",
    "assumptions_table",
    "energy_per_mac",
    "load_assumptions",
    "min_bytes_moved",
    "tree_add_bits",
]

#: Where energy is charged (the breakdown of :func:`energy_per_mac`, plus ``total``).
CATEGORIES = (
    "preprocess", "selector", "decoder", "multiplier", "adder_tree", "accumulator", "memory",
)

DEFAULT_ASSUMPTIONS = data_dir() / "energy" / (
    "assumptions_v1.toml"
)

_MEMORY_LEVELS = ("sram", "dram")
_ACTION_FIELDS = ("pj", "unit", "source", "note")


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One table entry: ``pj`` picojoules per ``unit``; ``source`` keys and a scaling ``note``."""

    pj: float
    unit: str
    source: tuple[str, ...]
    note: str


@dataclass(frozen=True)
class Assumptions:
    """A loaded energy table (ESTIMATE): ``actions`` by name, ``sources`` by key."""

    version: int
    status: str
    node: str
    sources: dict[str, str]
    actions: dict[str, Action]
    path: str


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def load_assumptions(path: str | Path | None = None) -> Assumptions:
    """Read and validate an energy table (default :data:`DEFAULT_ASSUMPTIONS`).

    Raises ``ValueError`` naming the offending key (``actions.<name>.pj`` …) for a missing or
    unknown field, a non-numeric, negative or non-finite ``pj``, an empty ``unit``/``note``, a
    ``source`` that is not a key of ``[sources]``, or a ``status`` other than ``"ESTIMATE"``.
    """
    path = Path(DEFAULT_ASSUMPTIONS if path is None else path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"energy table {path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"energy table {path}: not valid TOML ({exc})") from None

    def fail(key: str, msg: str) -> ValueError:
        return ValueError(f"energy table {path}: {key}: {msg}")

    for key in ("version", "status", "node", "sources", "actions"):
        if key not in doc:
            raise fail(key, "missing")
    unknown = sorted(set(doc) - {"version", "status", "node", "sources", "actions"})
    if unknown:
        raise fail(unknown[0], "unknown key")
    version = doc["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail("version", f"expected a positive integer, got {version!r}")
    if doc["status"] != "ESTIMATE":
        raise fail("status", f"must be \"ESTIMATE\", got {doc['status']!r}")
    if not _is_text(doc["node"]):
        raise fail("node", f"expected a non-empty string, got {doc['node']!r}")
    sources = doc["sources"]
    if not isinstance(sources, dict) or not sources:
        raise fail("sources", "expected a non-empty table of source texts")
    for key, text in sources.items():
        if not _is_text(text):
            raise fail(f"sources.{key}", f"expected a non-empty string, got {text!r}")
    if not isinstance(doc["actions"], dict) or not doc["actions"]:
        raise fail("actions", "expected a non-empty table of [actions.<name>]")

    actions: dict[str, Action] = {}
    for name, entry in doc["actions"].items():
        where = f"actions.{name}"
        if not isinstance(entry, dict):
            raise fail(where, "expected a table")
        for key in _ACTION_FIELDS:
            if key not in entry:
                raise fail(f"{where}.{key}", "missing")
        extra = sorted(set(entry) - set(_ACTION_FIELDS))
        if extra:
            raise fail(f"{where}.{extra[0]}", "unknown key")
        pj = entry["pj"]
        if isinstance(pj, bool) or not isinstance(pj, int | float) or not math.isfinite(pj) \
                or pj < 0:
            raise fail(f"{where}.pj", f"expected a finite number >= 0, got {pj!r}")
        src = entry["source"]
        src = [src] if isinstance(src, str) else src
        if not isinstance(src, list) or not src:
            raise fail(f"{where}.source", "expected a source key or a non-empty list of them")
        for s in src:
            if s not in sources:
                raise fail(f"{where}.source", f"{s!r} is not a key of [sources]")
        for key in ("unit", "note"):
            if not _is_text(entry[key]):
                raise fail(f"{where}.{key}", f"expected a non-empty string, got {entry[key]!r}")
        actions[name] = Action(float(pj), entry["unit"], tuple(src), entry["note"])
    return Assumptions(version, doc["status"], doc["node"], dict(sources), actions, str(path))


def assumptions_table(assumptions: Assumptions) -> str:
    """Markdown rendering of the table (every value labelled ESTIMATE)."""
    lines = [
        f"Energy table v{assumptions.version} ({assumptions.node}) — **{assumptions.status}**",
        "",
        "| action | pJ | per | source | note |",
        "|---|---|---|---|---|",
    ]
    for name, act in assumptions.actions.items():
        lines.append(f"| {name} | {act.pj:g} | {act.unit} | {', '.join(act.source)} "
                     f"| {act.note} |")
    lines += ["", *(f"- {k}: {v}" for k, v in assumptions.sources.items())]
    return "\n".join(lines) + "\n"


def energy_per_mac(
    action_counts: Mapping[str, float], assumptions: Assumptions
) -> dict[str, float]:
    """Energy per MAC (pJ/MAC, ESTIMATE) by category, plus ``"total"`` (their sum).

    ``action_counts`` holds ``"macs"`` (> 0) and ``"<category>.<action>"`` counts (≥ 0), e.g.
    from :func:`action_counts_for_gemm`. Each category's value is
    Σ count × ``assumptions.actions[action].pj`` / macs. ``ValueError`` names a malformed or
    unknown key.
    """
    macs = action_counts.get("macs")
    if isinstance(macs, bool) or not isinstance(macs, int | float) or not macs > 0:
        raise ValueError(f"macs: expected a positive MAC count, got {macs!r}")
    out = dict.fromkeys(CATEGORIES, 0.0)
    for key, count in action_counts.items():
        if key == "macs":
            continue
        category, sep, action = key.partition(".")
        if not sep or category not in out:
            raise ValueError(f"{key}: expected '<category>.<action>' with a category in "
                             f"{CATEGORIES}")
        if action not in assumptions.actions:
            raise ValueError(f"{key}: action {action!r} is not in the energy table "
                             f"{assumptions.path}")
        if isinstance(count, bool) or not isinstance(count, int | float) or count < 0:
            raise ValueError(f"{key}: expected a count >= 0, got {count!r}")
        out[category] += count * assumptions.actions[action].pj / macs
    out["total"] = sum(out[c] for c in CATEGORIES)
    return out


# ---------------------------------------------------------------------------------------------
# Action counts
# ---------------------------------------------------------------------------------------------

_Q_BITS = 5  # preprocessed magnitude q (SPEC §2) and FP16 exponent field
_ERR_BITS = 8  # ERR ≤ 225 (SPEC §3)
_IDX_BITS = 3  # magnitude index of a code
_SHIFT_LEVELS = 3  # q = (m >> 6) >> (E_max − E_i), distance saturating at 5: 3 mux levels

# NVFP4 (SPEC §8): the quantizer's operations per block and element, and rtl/scale.py
_FP16_MAG_BITS = 15  # amax_b: a max tree over the 15-bit FP16 magnitudes
#: SPEC §8's three exact RNE divisions per block, counted as restoring dividers'
#: compare-subtract adder bits: ÷ts (25 quotient bits × a 25-bit compare-subtract), ÷6 as ÷3
#: (28 steps of a 2-bit remainder), ÷s as ÷S (30 steps of a 5-bit compare-subtract, S ≤ 15).
#: An upper estimate: a quantizer that precomputes per-tensor values (thresholds of ts, the
#: eight inv_ts / S) does less per block.
_NVFP4_DIVIDE_BITS = 25 * 25 + 28 * 2 + 30 * 5
_E2M1_MIDPOINTS = 7  # E2M1 rounding: 4|v| (5-bit integer part) against 7 midpoints
_E4M3_SIG_BITS = 4  # E4M3 integer significand S (1mmm / 0mmm) and exponent E' (4 bits)


@dataclass(frozen=True)
class _Widths:
    """Widths (bits) used by the count formulas, for one PE kind under one configuration.

    From the golden format (:meth:`semdialect.designs.PEKind.config_format`): ``elem`` /
    ``meta`` stored bits per element / per block (``element_bits``; ``metadata_bits()`` = SE +
    dialect id, or the E8M0 scale), ``exp`` the scale-exponent adder (``scale_bits()``: two
    5-bit SE fields, two 8-bit E8M0 exponents), ``ids`` the dialect id (``id_bits()``).
    From the kind (:class:`semdialect.designs.PEKind`): ``prod`` the signed element product
    as rtl/pe.py builds it (2 · ``int_bits``: 5-bit ±HU or ±2·E2M1 operands → 10 bits; int8
    → 16 bits), ``decode`` the magnitude bits out of the decoder (``int_bits`` − 1: HU ≤ 15,
    2·E2M1 ≤ 12; 0 without a decoder, MXINT8).
    """

    elem: int
    meta: int
    exp: int
    ids: int
    prod: int
    decode: int
    tensor: int = 0


def _widths(cfg: Config, kind: PEKind) -> _Widths:
    """The count formulas' widths of PE kind ``kind`` under ``cfg`` (see :class:`_Widths`);
    ``tensor`` = the golden format's per-tensor metadata bits (NVFP4: the FP32 tensor
    scale)."""
    fmt = kind.config_format(cfg)
    return _Widths(elem=fmt.element_bits, meta=fmt.metadata_bits(), exp=fmt.scale_bits(),
                   ids=fmt.id_bits(), prod=2 * kind.int_bits,
                   decode=kind.int_bits - 1 if kind.decoder else 0,
                   tensor=fmt.tensor_bits())


def tree_add_bits(n: int, width: int) -> int:
    """Adder bits of a balanced binary tree summing ``n`` (a power of two) ``width``-bit operands.

    Level l = 1 … log2 n has n / 2^l adders whose inputs are ``width + l − 1`` bits wide (each
    level's sums are one bit wider, as :func:`rtl.trees.tree_sum`); an adder of w-bit inputs
    counts w adder bits: Σ_l (n / 2^l)·(width + l − 1). ``tree_add_bits(n, 1)`` is an n-input
    popcount.
    """
    if n < 1 or n & (n - 1):
        raise ValueError(f"n: expected a power of two, got {n}")
    return sum((n >> level) * (width + level - 1) for level in range(1, n.bit_length()))


def _check_shape(m: int, n: int, k: int) -> None:
    for name, val in (("M", m), ("N", n), ("K", k)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name}: expected a positive integer, got {val!r}")


def _pe_kind(cfg: Config, pe: PEKind | str) -> tuple[PEKind, int]:
    """The PE kind ``pe`` names and its block size (a fixed-block kind needs it in ``cfg``)."""
    try:
        kind = PEKind.of(pe)
    except ValueError:
        raise ValueError(f"pe: must be one of {', '.join(k.value for k in PEKind)}, "
                         f"got {pe!r}") from None
    if kind.block is not None and cfg.block != kind.block:
        raise ValueError(f"pe: {kind.value} fixes the block size at {kind.block}, config has "
                         f"block = {cfg.block}")
    return kind, cfg.block


def action_counts_for_gemm(
    cfg: Config,
    M: int,  # noqa: N803 (GEMM shape names)
    N: int,  # noqa: N803
    K: int,  # noqa: N803
    bytes_moved: Mapping[str, Mapping[str, float]],
    *,
    pe: PEKind | str = PEKind.DIALECT,
    decode_in_pe: bool = False,
    requantize: bool = False,
    runtime_w: bool = False,
) -> dict[str, float]:
    """Action counts of Y (M×N) = X (M×K) · W (K×N) on the configured array.

    Symbols: R, C = ``cfg.rows``, ``cfg.cols``; B = ``cfg.block``; F = formatbook size;
    nb = ⌈K/B⌉ k-blocks (a short last block is zero-padded: the hardware still processes
    Kp = nb·B elements); TM = ⌈M/R⌉, TN = ⌈N/C⌉ output tiles; pairs = M·N·nb block pairs;
    products = M·N·Kp; ab = M·nb activation blocks quantized (× TN with ``requantize``,
    i.e. re-quantized for every column tile instead of reusing stored codes; + N·nb with
    ``runtime_w``: the second operand is an activation, Wᵀ's N rows quantized once at run
    time by the same frontend); ae = ab·B. Static weights are quantized offline (SPEC §4): no
    preprocessing or selection for W.

    Counts (each ``category.action``; widths in bits from the golden format and the PE kind,
    see ``_Widths``; the examples are the dialect, MXFP4 and MXINT8 kinds):

    * ``macs`` = M·N·K.
    * preprocess: ``int_add_bit`` = ab·(B−1)·5 (5-bit exponent max tree) + ae·5 (exponent
      distance); ``mux2_bit`` = ab·(B−1)·5 (max-tree selects) + ae·5·3 (3-level 5-bit shifter);
      code quantization: dialect kinds ``rom_read_bit`` += ae·3 (IDX lookup), fixed-format
      kinds ``int_add_bit`` += ae·elem (round-to-nearest-even increment: 4 MXFP4, 8 MXINT8).
      NVFP4 (a float-scaled kind, SPEC §8's quantizer) instead: ``int_add_bit`` =
      ab·((B−1)·15 + 25·25 + 28·2 + 30·5) + ae·7·5 (15-bit amax tree; the ÷ts, ÷6 and ÷s
      divisions as restoring dividers' compare-subtract bits, an upper estimate; E2M1
      rounding as 5-bit compares with 7 midpoints), ``mux2_bit`` = ab·(B−1)·15 (amax
      selects), ``fp32_mul`` = ae (x_i · r, one binary32 RNE multiply per element).
    * selector, ``lut``: ``rom_read_bit`` = ab·B·F·8 (ERR word per element per dialect);
      ``int_add_bit`` = ab·(F·tree_add_bits(B, 8) + (F−1)·(8 + log2 B)) (cost trees, then F−1
      cost compares); ``mux2_bit`` = ab·(F−1)·(8 + log2 B + id_bits(F)) (argmin selects).
      ``two-stage``: ``int_add_bit`` = ab·((B−1)·5 + 4·B·5 + 2·tree_add_bits(B, 1) +
      log2 B + 1) (max-q tree, two range tests of two bounds per element, two popcounts, count
      compare); ``mux2_bit`` = ab·(B−1)·5; ``rom_read_bit`` = ab·20 (pair ROM: 2 × 2 bounds ×
      5 bits). Fixed-format PEs: no selector. ``formats_per_cycle`` does not change these
      counts.
    * decoder: decodes = M·Kp·TN + N·Kp·TM (at the array edges: every operand block entering a
      tile is decoded once and ±HU broadcast along the row/column, as rtl/mac_array.py does)
      or 2·products with ``decode_in_pe`` (a stand-alone ``BlockPE(decode=True)``); the
      kind's ``decoder`` action = decodes·decode: dialect ``rom_read_bit`` = decodes·4 (HU
      from a K×8 ROM), MXFP4 ``mux2_bit`` = decodes·4 (a fixed 8-entry map is a few gates),
      MXINT8 none.
    * multiplier: the kind's ``multiplier`` action = products (``int_mul_5b`` /
      ``int_mul_e2m1`` / ``int_mul_8b``).
    * adder_tree: ``int_add_bit`` = pairs·tree_add_bits(B, prod) (prod = 10, 10, 16 bits).
    * accumulator: ``int_to_fp32`` = ``fp32_add`` = pairs; ``int_add_bit`` = pairs·exp
      (scale-exponent adder: 5 bits, 8 for E8M0). NVFP4 (SPEC §8: c = P·s_a·s_w/4, then
      y = RNE_fp32(acc · RNE_fp32(ts_a·ts_w)) at the drain): ``int_add_bit`` = pairs·(4·4 +
      12·8 + 4 + 8) — the E4M3 significand product S_a·S_w (a 4 × 4 multiplier, counted as
      its 16 adder cells like every multiplier here, whose 8 × 8 cost int_mul_8b ≈ 64
      int_add_bit), |P|·S (12 × 8 cells: |P| ≤ 2304), E'_a + E'_w (4 bits) and the 8-bit
      exponent field; ``int_to_fp32`` = ``fp32_add`` = pairs (normalisation, accumulation);
      ``fp32_mul`` = M·N + 1 (one tensor-scale multiply per output, and ts_a·ts_w once).
    * memory: ``sram_byte`` / ``dram_byte`` = Σ ``bytes_moved["sram"|"dram"]`` over operands
      (e.g. from :func:`min_bytes_moved` or a cycle model).

    Parameters
    ----------
    cfg : semdialect.config.Config
        Array, block, formatbook and selector configuration.
    M, N, K : int
        GEMM shape (rows of X, columns of W, reduction length).
    bytes_moved : Mapping[str, Mapping[str, float]]
        ``{"sram": {operand: bytes}, "dram": {operand: bytes}}`` (either level may be absent).
    pe : semdialect.designs.PEKind | str
        The PE kind (or its name): a dialect kind uses the configured formatbook; a
        fixed-block kind (MXFP4, MXINT8: 32; NVFP4: 16) needs that B in ``cfg``.
    decode_in_pe : bool
        Decoders inside every PE instead of at the array edges.
    requantize : bool
        Re-run the activation frontend for every column tile.
    runtime_w : bool
        W is produced at run time (a workload row with ``static = none``, e.g. Kᵀ of Q·Kᵀ):
        its N×K blocks go through the preprocessor and selector once too.
    """
    _check_shape(M, N, K)
    kind, block = _pe_kind(cfg, pe)
    widths = _widths(cfg, kind)
    n_books = cfg.book().size
    log_b = block.bit_length() - 1
    nb = -(-K // block)
    kp = nb * block
    tm, tn = -(-M // cfg.rows), -(-N // cfg.cols)
    pairs = M * N * nb
    products = M * N * kp
    ab = M * nb * (tn if requantize else 1) + (N * nb if runtime_w else 0)
    ae = ab * block

    counts: dict[str, float] = {"macs": M * N * K}

    def add(key: str, value: float) -> None:
        if value:
            counts[key] = counts.get(key, 0) + value

    # preprocess (SPEC §2) and code quantization
    if not kind.pow2_scaled:  # NVFP4's quantizer (SPEC §8): FP32 divisions and multiplies
        add("preprocess.int_add_bit", ab * ((block - 1) * _FP16_MAG_BITS + _NVFP4_DIVIDE_BITS)
            + ae * _E2M1_MIDPOINTS * _Q_BITS)
        add("preprocess.mux2_bit", ab * (block - 1) * _FP16_MAG_BITS)
        add("preprocess.fp32_mul", ae)
    else:
        add("preprocess.int_add_bit", ab * (block - 1) * _Q_BITS + ae * _Q_BITS)
        add("preprocess.mux2_bit", ab * (block - 1) * _Q_BITS + ae * _Q_BITS * _SHIFT_LEVELS)
    if kind.has_dialects:
        add("preprocess.rom_read_bit", ae * _IDX_BITS)
    elif kind.pow2_scaled:
        add("preprocess.int_add_bit", ae * widths.elem)

    # selector (SPEC §4)
    if kind.has_dialects and cfg.select == "lut":
        cost_bits = _ERR_BITS + log_b
        add("selector.rom_read_bit", ab * block * n_books * _ERR_BITS)
        add("selector.int_add_bit", ab * (n_books * tree_add_bits(block, _ERR_BITS)
                                          + (n_books - 1) * cost_bits))
        add("selector.mux2_bit", ab * (n_books - 1) * (cost_bits + widths.ids))
    elif kind.has_dialects:  # two-stage
        add("selector.int_add_bit", ab * ((block - 1) * _Q_BITS + 4 * block * _Q_BITS
                                          + 2 * tree_add_bits(block, 1) + log_b + 1))
        add("selector.mux2_bit", ab * (block - 1) * _Q_BITS)
        add("selector.rom_read_bit", ab * 2 * 2 * _Q_BITS)

    # decoder
    decodes = 2 * products if decode_in_pe else M * kp * tn + N * kp * tm
    if kind.decoder is not None:
        add(f"decoder.{kind.decoder}", decodes * widths.decode)

    # PE datapath (SPEC §5)
    add(f"multiplier.{kind.multiplier}", products)
    add("adder_tree.int_add_bit", pairs * tree_add_bits(block, widths.prod))
    add("accumulator.int_to_fp32", pairs)
    add("accumulator.fp32_add", pairs)
    if kind.pow2_scaled:
        add("accumulator.int_add_bit", pairs * widths.exp)
    else:  # NVFP4: the exact P·s_a·s_w/4 (rtl/scale.py), then the drain's tensor scales
        mag_bits = (block * int(E2M1_HU.max()) ** 2).bit_length()  # |P| ≤ B·12² = 2304
        add("accumulator.int_add_bit", pairs * (_E4M3_SIG_BITS * _E4M3_SIG_BITS
                                                + mag_bits * 2 * _E4M3_SIG_BITS
                                                + _E4M3_SIG_BITS + 8))
    if widths.tensor:
        add("accumulator.fp32_mul", M * N + 1)

    # memory
    for level in bytes_moved:
        if level not in _MEMORY_LEVELS:
            raise ValueError(f"bytes_moved[{level!r}]: level must be one of {_MEMORY_LEVELS}")
    for level in _MEMORY_LEVELS:
        total = 0.0
        for operand, nbytes in bytes_moved.get(level, {}).items():
            if isinstance(nbytes, bool) or not isinstance(nbytes, int | float) or nbytes < 0:
                raise ValueError(f"bytes_moved[{level!r}][{operand!r}]: expected bytes >= 0, "
                                 f"got {nbytes!r}")
            total += nbytes
        add(f"memory.{level}_byte", total)
    return counts


def min_bytes_moved(
    cfg: Config,
    M: int,  # noqa: N803
    N: int,  # noqa: N803
    K: int,  # noqa: N803
    *,
    pe: PEKind | str = PEKind.DIALECT,
    runtime_w: bool = False,
) -> dict[str, dict[str, float]]:
    """A simple traffic model (bytes) for :func:`action_counts_for_gemm`, until a cycle model
    supplies measured traffic.

    Quantized operand size q(rows) = rows·nb·(B·elem + meta)/8 + tensor/8 bytes, widths from
    the golden format (elem = 4 bits, 8 for MXINT8; meta = 5 + id_bits(F) bits of SE and
    dialect id, 8 for an E8M0 or E4M3 scale; tensor = 32 bits of NVFP4's FP32 tensor scale,
    else 0).
    DRAM: X read once as FP16 (2·M·K), W read once pre-quantized (q(N)), Y written once as
    FP32 (4·M·N). SRAM: X codes written once and read once per column tile (q(M)·(1 + TN)),
    W written once and read once per row tile (q(N)·(1 + TM)), Y written once (4·M·N).
    With ``runtime_w`` (W is an activation made at run time, quantized on chip like X): DRAM
    reads W once as FP16 (2·N·K); SRAM also holds the FP16 W, written and read once
    (+ 4·N·K).
    """
    _check_shape(M, N, K)
    kind, block = _pe_kind(cfg, pe)
    widths = _widths(cfg, kind)
    nb = -(-K // block)
    tm, tn = -(-M // cfg.rows), -(-N // cfg.cols)
    per_block = (block * widths.elem + widths.meta) / 8

    def quantized(rows: int) -> float:
        return rows * nb * per_block + widths.tensor / 8

    fp16_w = 2.0 * N * K
    return {
        "dram": {"X": 2.0 * M * K, "W": fp16_w if runtime_w else quantized(N), "Y": 4.0 * M * N},
        "sram": {"X": quantized(M) * (1 + tn),
                 "W": quantized(N) * (1 + tm) + (2 * fp16_w if runtime_w else 0.0),
                 "Y": 4.0 * M * N},
    }
