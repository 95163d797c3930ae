"""SCALE-Sim interchange: workloads, configurations and chosen mappings out; configurations in.

SCALE-Sim (scale-sim-v2 and -v3, github.com/scalesim-project) simulates a systolic array of
one-MAC PEs on a GEMM (``M``, ``N``, ``K``) topology and an INI ``.cfg``. This module writes
what a SCALE-Sim user needs to cross-check our model, and reads their ``.cfg`` back; topology
*reading* is :func:`semdialect.sim.workloads.load_workload`. Every SCALE-Sim fact below cites
scale-sim-v3 at commit ``fab89b7`` (the files named; v2 ``22f88b1`` agrees unless said).

**The equivalence [ours].** Our PE does one B-element block dot product per cycle where
SCALE-Sim's does one MAC, and both arrays are output-stationary with M on the rows and N on the
columns (``systolic_compute_os.py``: S_r = ofmap pixels = M, S_c = filters = N, T = window =
K). So our GEMM M × K × N runs like SCALE-Sim's GEMM M × K' × N with **K' = ⌈K/B⌉** (K
zero-padded to whole blocks, as our model does): one SCALE-Sim MAC stands for one block pair.
:func:`write_topology` writes that GEMM (``block = B``) or the plain element-level one
(``block = 1``). SCALE-Sim has no count column, so a GEMM run ``count`` > 1 times is one row
named ``<layer>*<count>`` (repeating rows would make the opensora2 topologies millions of
rows); :func:`~semdialect.sim.workloads.load_workload` reads the suffix back as ``count``.

**Words [ours].** SCALE-Sim counts memory in words and fixes a word at one byte
(``single_layer_sim.py``: ``word_size = 1``; a buffer of ``S`` kB holds ``1024·S`` words).
:func:`write_config` states our core in words of one of two kinds (:data:`WORDS`):

* ``"block"`` (with the ⌈K/B⌉ topology): a word is one element of the equivalent GEMM, so
  SCALE-Sim's buffers hold as many operand elements as ours: an ifmap word is one block of B
  activations, FP16 in our DRAM and act SRAM (2·B bytes); a filter word one quantized weight
  block (``Design.block_bytes``: B codes + SE + dialect id, 17.25 bytes for sd32); an ofmap
  word one FP32 output (4 bytes). SRAM sizes become ``floor(KiB / word bytes)`` "kB"
  (kilo-words) and the DRAM rate ``floor(bytes per cycle / word bytes)`` words per cycle;
  SCALE-Sim's word counts times these word bytes are our bytes.
* ``"byte"`` (with the element topology): SCALE-Sim's own one-byte word; the SRAM sizes are
  our KiB and the bandwidth our bytes per cycle, as they are; :func:`read_config` with
  ``word_bytes = 1`` reads such a file back exactly.

The DRAM rate of one core is ``dram_gbps·1e9 / (clock_mhz·1e6) / cores`` bytes per cycle (our
DRAM is shared by the cores; a SCALE-Sim run is one core). SCALE-Sim gives each operand its own
DRAM interface (v3 ``single_layer_sim.py``: ifmap at ``[layout] IfmapSRAMBankBandwidth``,
filter at ``FilterSRAMBankBandwidth``, ofmap at ``[architecture_presets] Bandwidth``; v2: all
three at ``Bandwidth``), so each gets the core's whole rate: an upper bound on ours, where they
share it.

Not carried over (written as comments in every file): the formats (bits, SE, dialect ids:
SCALE-Sim counts words), the frontend quantizer and dialect selector (lanes, selector cycles per
block), C-slow tiles (``acc_stages`` d: our tile is rows × cols·d in KB·d cycles, the same
throughput as d SCALE-Sim folds of rows × cols), the drain width, pipeline latency, the SRAM
port widths, run-time second operands (FP16 in DRAM: 2·B-byte filter words), fused attention,
decomposition, cores and the loop-order/tile search (SCALE-Sim streams double-buffered
operands; :func:`write_mappings` lists what our model chose).
"""

from __future__ import annotations

import configparser
import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from semdialect.config import (
    CORE_SECTIONS,
    MAX_ARRAY,
    MAX_DRAM_GBPS,
    MAX_SRAM_KIB,
    NAME_PATTERN,
    SYSTEM_SECTIONS,
    Config,
    system_fields,
)
from semdialect.sim.memory import (
    DRAM_KEYS,
    MemoryResult,
    check_fits,
    dram_bytes_per_cycle,
    map_gemm,
)
from semdialect.sim.model import Design
from semdialect.sim.workloads import COUNT_SUFFIX, Gemm

__all__ = [
    "EXPORT_FILES",
    "MAPPING_COLUMNS",
    "SCALESIM_WORD_BYTES",
    "TOPOLOGY_HEADER",
    "WORDS",
    "ImportedConfig",
    "ScaleSimCore",
    "config_text",
    "config_toml",
    "export_files",
    "map_workload",
    "mappings_text",
    "read_config",
    "readme_text",
    "scalesim_core",
    "topology_name",
    "topology_text",
    "write_config",
    "write_mappings",
    "write_topology",
]

#: bytes of SCALE-Sim's word (v3 and v2 ``scalesim/single_layer_sim.py``: ``word_size = 1``)
SCALESIM_WORD_BYTES = 1
#: what one SCALE-Sim word is in :func:`write_config` (see the module docstring)
WORDS = ("block", "byte")
#: a GEMM topology's first line (``topologies/GEMM_mnk/vit_s.csv``); SCALE-Sim skips it unread
TOPOLOGY_HEADER = "Layer,M,N,K,"
#: the operands of SCALE-Sim's memory system, in its order
OPERANDS = ("ifmap", "filter", "ofmap")
#: largest .cfg :func:`read_config` reads (bytes)
MAX_CFG_BYTES = 2**20
#: our bytes of one FP16 activation and one FP32 output
_FP16_BYTES, _FP32_BYTES = 2, 4
#: fields of a SCALE-Sim .cfg that :func:`config_text` writes at SCALE-Sim's own values
#: (``configs/scale.cfg``): address offsets (trace addresses only), request queues
#: (read/write ports with Ramulator), and the unused sparsity block
_OFFSETS = {"IfmapOffset": 0, "FilterOffset": 10000000, "OfmapOffset": 20000000}
_REQUEST_BUFFERS = {"ReadRequestBuffer": 32, "WriteRequestBuffer": 32}
_DATAFLOW_NAMES = {"os": "output-stationary", "ws": "weight-stationary",
                   "is": "input-stationary"}


# ---------------------------------------------------------------------------------------------
# Topology out
# ---------------------------------------------------------------------------------------------

def topology_name(g: Gemm) -> str:
    """The layer name of ``g`` in a topology: ``<layer>*<count>`` when it runs more than once
    (or when its own name already ends in ``*<digits>``, so the count reads back as 1), else
    the layer. ``ValueError`` naming the layer when SCALE-Sim could not read it back (empty,
    a comma — SCALE-Sim splits rows on commas —, a line break, or blanks at either end)."""
    name = g.layer
    if (not name or "," in name or name != name.strip()
            or any(ch in name for ch in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")):
        raise ValueError(f"gemms: layer name {name!r} cannot be written to a SCALE-Sim "
                         "topology (it must be non-empty, without commas, line breaks or "
                         "blanks at either end)")
    if g.count > 1 or COUNT_SUFFIX.fullmatch(name):
        return f"{name}*{g.count}"
    return name


def topology_text(gemms: Sequence[Gemm], *, block: int) -> str:
    """A SCALE-Sim GEMM topology (``-i gemm``) of ``gemms``: ``Layer,M,N,K,`` then one row per
    GEMM ``name,M,N,K',`` with K' = ⌈K/block⌉ (``block`` = B: the equivalent block GEMM;
    ``block`` = 1: the element-level GEMM). Every row ends with a comma because SCALE-Sim drops
    the text after a row's last comma (``topology_utils.load_arrays_gemm``:
    ``row.split(',')[:-1]``)."""
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block: must be a positive integer (elements per SCALE-Sim K step), "
                         f"got {block!r}")
    if not gemms:
        raise ValueError("gemms: no GEMMs to write")
    lines = [TOPOLOGY_HEADER]
    lines += [f"{topology_name(g)},{g.m},{g.n},{-(-g.k // block)}," for g in gemms]
    return "\n".join(lines) + "\n"


def write_topology(gemms: Sequence[Gemm], path: str | Path, *, block: int) -> None:
    """Write :func:`topology_text` to ``path``."""
    Path(path).write_text(topology_text(gemms, block=block))


# ---------------------------------------------------------------------------------------------
# Configuration out
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScaleSimCore:
    """One core of ours as SCALE-Sim sees it: array, words and their exact (unrounded) sizes.

    ``word_bytes``, ``sram_kwords`` (1024-word units, SCALE-Sim's "kB") and
    ``bandwidth_words`` (words per cycle) are keyed by :data:`OPERANDS`;
    ``dram_bytes_per_cycle`` is one core's share of the DRAM."""

    run_name: str
    rows: int
    cols: int
    word: str
    word_bytes: dict[str, float]
    sram_kib: dict[str, int]
    sram_kwords: dict[str, float]
    dram_bytes_per_cycle: float
    bandwidth_words: dict[str, float]

    @property
    def sram_kb(self) -> dict[str, int]:
        """The SRAM fields SCALE-Sim reads (an integer: ``int()`` in ``scale_config.py``):
        rounded down, at least 1."""
        return {op: max(1, math.floor(v)) for op, v in self.sram_kwords.items()}

    @property
    def bandwidth(self) -> dict[str, int]:
        """The bandwidth fields SCALE-Sim reads (integers): rounded down, at least 1."""
        return {op: max(1, math.floor(v)) for op, v in self.bandwidth_words.items()}


def _design(cfg: Config, design: str | Design) -> Design:
    """``design`` (a registry name, or a model already built) on ``cfg``'s core and memory."""
    if isinstance(design, str):
        return Design.of(design, cfg)
    keys = ("rows", "cols", "acc_stages", *system_fields())
    if any(getattr(design.cfg, k) != getattr(cfg, k) for k in keys):
        raise ValueError(f"design: {design.name} was built for configuration "
                         f"{design.cfg.name!r}, not for {cfg.name!r} (its array or [memory] "
                         "keys differ)")
    return design


def _check_clock(clock_mhz: float) -> float:
    """``clock_mhz`` as a float (``ValueError`` naming it unless a number in (0, 1e5] MHz)."""
    if (isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float))
            or not math.isfinite(clock_mhz) or not 0 < clock_mhz <= 1e5):
        raise ValueError(f"clock_mhz: must be a number of MHz in (0, 100000], got {clock_mhz!r}")
    return float(clock_mhz)


def scalesim_core(cfg: Config, *, design: str | Design = "semanticdialect",
                  clock_mhz: float, word: str = "block") -> ScaleSimCore:
    """One core of ``cfg`` running ``design`` at ``clock_mhz`` MHz, in SCALE-Sim words of kind
    ``word`` (:data:`WORDS`; see the module docstring)."""
    clock = _check_clock(clock_mhz)
    if word not in WORDS:
        raise ValueError(f"word: must be one of {', '.join(WORDS)}, got {word!r}")
    d = _design(cfg, design)
    b = d.cfg.block
    if word == "block":
        words = {"ifmap": float(_FP16_BYTES * b), "filter": d.block_bytes,
                 "ofmap": float(_FP32_BYTES)}
    else:
        words = dict.fromkeys(OPERANDS, float(SCALESIM_WORD_BYTES))
    kib = {"ifmap": cfg.act_sram_kib, "filter": cfg.weight_sram_kib, "ofmap": cfg.out_sram_kib}
    bpc = dram_bytes_per_cycle(d, clock) / cfg.cores
    return ScaleSimCore(
        run_name=f"semdialect_{cfg.name}_{d.name}_{word}", rows=cfg.rows, cols=cfg.cols,
        word=word, word_bytes=words, sram_kib=kib,
        sram_kwords={op: kib[op] / words[op] for op in OPERANDS},  # KiB / B = 1024-words
        dram_bytes_per_cycle=bpc,
        bandwidth_words={op: bpc / words[op] for op in OPERANDS})


def _g(val: float) -> str:
    """A number for a comment: up to 6 significant digits."""
    return f"{val:.6g}"


def _carry_notes(cfg: Config, d: Design) -> list[str]:
    """What of our core and system a SCALE-Sim run does not model (one line each)."""
    ids = f"{d.id_bits}-bit dialect id" if d.id_bits else "no dialect id"
    return [
        f"formats: {d.name} blocks of B={d.cfg.block} ({d.element_bits}-bit codes, "
        f"{d.se_bits}-bit SE/scale, {ids}; {d.block_bytes:g} bytes a block): SCALE-Sim "
        "counts words, not bits",
        f"frontend and selector: {cfg.lanes} quantizer lanes, {d.sel_cycles} selector "
        "cycle(s) per block; SCALE-Sim streams operands straight into the array",
        f"C-slow tiles: acc_stages={cfg.acc_stages}, our tile is rows x cols*d = "
        f"{cfg.rows}x{cfg.tile_cols} in KB*d cycles (same throughput as d SCALE-Sim folds)",
        f"drain: {cfg.drain_width} FP32 outputs per cycle; pipeline register stages; "
        "SRAM port widths",
        f"cores: {cfg.cores} core(s) share the DRAM; this file is one core with 1/{cfg.cores} "
        "of the DRAM rate, and each SCALE-Sim operand gets all of it (ours share it)",
        "run-time second operands (static=none, e.g. K^T, V): FP16 in DRAM, quantized on chip "
        "(filter words of 2*B bytes, not the quantized block)",
        f"fused attention ({'on' if cfg.fused_attention else 'off'}), decomposition (rho), "
        "the loop-order/tile search (see mappings.csv)",
    ]


def config_text(cfg: Config, *, design: str | Design = "semanticdialect", clock_mhz: float,
                word: str = "block") -> str:
    """A SCALE-Sim ``.cfg`` of one core of ``cfg`` (see the module docstring): every section
    and key that scale-sim-v3's ``scale_config.read_conf_file`` reads (and v2's, a subset),
    dataflow ``os``, ``InterfaceBandwidth: USER``; comments state the words, the exact
    values behind every rounded field and what does not carry over."""
    core = scalesim_core(cfg, design=design, clock_mhz=clock_mhz, word=word)
    d, clock = _design(cfg, design), _check_clock(clock_mhz)
    kb, bw = core.sram_kb, core.bandwidth
    srams = {"ifmap": ("act_sram_kib", "IfmapSramSzkB"),
             "filter": ("weight_sram_kib", "FilterSramSzkB"),
             "ofmap": ("out_sram_kib", "OfmapSramSzkB")}
    what = {"block": {"ifmap": f"one block of B={d.cfg.block} FP16 activations",
                      "filter": f"one quantized {d.name} weight block",
                      "ofmap": "one FP32 output"},
            "byte": dict.fromkeys(OPERANDS, "one byte (SCALE-Sim's own word)")}[word]
    head = [
        "# SCALE-Sim configuration written by semdialect (sim/scalesim.py, docs/SCALESIM.md)",
        f"# our config {cfg.name!r}, design {d.name}, clock {_g(clock)} MHz; "
        "run with the topology written alongside: scalesim/scale.py -c <this> -t <topology> "
        "-i gemm",
        "# equivalence: our PE does one B-element block dot product per cycle, SCALE-Sim's one "
        "MAC, so " + ("the topology has K = ceil(K/B) (one MAC = one block pair)"
                      if word == "block" else "the element topology has K (one MAC = one MAC)"),
        f"# words ({word}): SCALE-Sim counts words of 1 byte (single_layer_sim.py word_size = 1);"
        " here a word is",
    ]
    head += [f"#   {op}: {what[op]}, {_g(core.word_bytes[op])} bytes" for op in OPERANDS]
    head += ["# SRAM sizes in SCALE-Sim kB = 1024 words (rounded down, at least 1):"]
    head += [f"#   {srams[op][1]} = {kb[op]}: {srams[op][0]} {core.sram_kib[op]} KiB / "
             f"{_g(core.word_bytes[op])} bytes = {_g(core.sram_kwords[op])} kwords" +
             ("" if kb[op] == core.sram_kwords[op] else " (raised to 1)"
              if core.sram_kwords[op] < 1 else " (rounded)") for op in OPERANDS]
    head += [
        f"# DRAM: dram_gbps {_g(cfg.dram_gbps)} GB/s at {_g(clock)} MHz over "
        f"{cfg.cores} core(s) = {_g(core.dram_bytes_per_cycle)} bytes/cycle per core, in words "
        "per cycle (rounded down, at least 1):",
    ]
    head += [f"#   {op}: {bw[op]} (exact {_g(core.bandwidth_words[op])}"
             + (", raised to SCALE-Sim's least 1)" if core.bandwidth_words[op] < 1 else ")")
             for op in OPERANDS]
    head += ["# v3 reads the ifmap/filter rates from [layout] *SRAMBankBandwidth and the ofmap "
             "rate from Bandwidth; v2 reads Bandwidth for all three",
             "# not carried over:"]
    head += [f"#   {line}" for line in _carry_notes(cfg, d)]
    body = [
        "", "[general]", f"run_name = {core.run_name}",
        "", "[architecture_presets]", f"ArrayHeight: {core.rows}", f"ArrayWidth: {core.cols}",
        *(f"{srams[op][1]}: {kb[op]}" for op in OPERANDS),
        *(f"{k}: {v}" for k, v in _OFFSETS.items()),
        f"Bandwidth: {bw['ofmap']}", "Dataflow: os",
        *(f"{k}: {v}" for k, v in _REQUEST_BUFFERS.items()),
        "", "[layout]", "IfmapCustomLayout: False", f"IfmapSRAMBankBandwidth: {bw['ifmap']}",
        "IfmapSRAMBankNum: 1", "IfmapSRAMBankPort: 2", "FilterCustomLayout: False",
        f"FilterSRAMBankBandwidth: {bw['filter']}", "FilterSRAMBankNum: 1",
        "FilterSRAMBankPort: 2",
        "", "[sparsity]", "SparsitySupport: false", "SparseRep: ellpack_block",
        "OptimizedMapping: false", "BlockSize: 8", "RandomNumberGeneratorSeed: 40",
        "", "[run_presets]", "InterfaceBandwidth: USER", "UseRamulatorTrace: False",
    ]
    return "\n".join(head + body) + "\n"


def write_config(cfg: Config, path: str | Path, *, design: str | Design = "semanticdialect",
                 clock_mhz: float, word: str = "block") -> None:
    """Write :func:`config_text` to ``path``."""
    Path(path).write_text(config_text(cfg, design=design, clock_mhz=clock_mhz, word=word))


# ---------------------------------------------------------------------------------------------
# Mappings out
# ---------------------------------------------------------------------------------------------

#: mappings.csv columns: the GEMM, its mapping, DRAM bytes per operand, cycles and bound
MAPPING_COLUMNS = ("layer", "topology_layer", "M", "K", "N", "count", "static", "tm", "tn",
                   "tk", "order", "split", "cores", *(f"dram_{k}_bytes" for k in DRAM_KEYS),
                   "dram_total_bytes", "core_cycles", "stall_cycles", "cycles", "bound")


def map_workload(design: Design, gemms: Sequence[Gemm], clock_mhz: float
                 ) -> list[tuple[Gemm, MemoryResult]]:
    """Every GEMM with the mapping our model chooses for it (:func:`semdialect.sim.memory.
    map_gemm`, one GEMM at a time — attention unfused, as the GEMMs of a SCALE-Sim topology —
    so the rows line up with :func:`topology_text`'s). ``ValueError`` naming the SRAM key
    when the smallest tile does not fit (:func:`semdialect.sim.memory.check_fits`)."""
    clock = _check_clock(clock_mhz)
    check_fits(design)
    return [(g, map_gemm(design, g, clock)) for g in gemms]


def _num(val: float) -> str:
    """A CSV number: an integer as such, else up to 3 decimals."""
    if float(val).is_integer():
        return str(int(val))
    return f"{val:.3f}".rstrip("0").rstrip(".")


def mappings_text(results: Sequence[tuple[Gemm, MemoryResult]]) -> str:
    """``mappings.csv`` (:data:`MAPPING_COLUMNS`): per GEMM and single run (``count`` runs a
    step), its name in the topology, shape and ``static``, the chosen mapping (tiles ``tm``,
    ``tn``, ``tk`` in elements, loop ``order`` outer→inner, ``split`` among ``cores``), DRAM
    bytes per operand (:data:`semdialect.sim.memory.DRAM_KEYS`, all cores) and their total,
    core, stall and total cycles (clock cycles) and the binding ``bound``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(MAPPING_COLUMNS)
    for g, r in results:
        mp = r.mapping
        tiles = ([""] * 6 if mp is None else
                 [mp.tm, mp.tn, mp.tk, mp.order, mp.split, mp.cores])
        w.writerow([g.layer, topology_name(g), g.m, g.k, g.n, g.count, g.static, *tiles,
                    *(_num(r.dram_bytes.get(k, 0.0)) for k in DRAM_KEYS),
                    _num(r.dram_total), r.core_cycles, _num(r.stall_cycles), _num(r.cycles),
                    r.bound])
    return out.getvalue()


def write_mappings(results: Sequence[tuple[Gemm, MemoryResult]], path: str | Path) -> None:
    """Write :func:`mappings_text` to ``path``."""
    Path(path).write_text(mappings_text(results))


# ---------------------------------------------------------------------------------------------
# The export folder
# ---------------------------------------------------------------------------------------------

#: the files :func:`export_files` makes
EXPORT_FILES = ("topology.csv", "scale.cfg", "mappings.csv", "README.txt")


def export_files(cfg: Config, gemms: Sequence[Gemm], *,
                 design: str | Design = "semanticdialect", clock_mhz: float,
                 elements: bool = False, workload: str = "") -> dict[str, str]:
    """The text of every file of :data:`EXPORT_FILES` for ``gemms`` on ``cfg`` running
    ``design`` at ``clock_mhz`` MHz: the ⌈K/B⌉ topology with block words, or with
    ``elements`` the element topology with SCALE-Sim's byte words; ``workload`` names the
    workload in the README. Everything is computed before anything is written (the caller
    writes the texts)."""
    d = _design(cfg, design)
    clock = _check_clock(clock_mhz)
    block, word = (1, "byte") if elements else (d.cfg.block, "block")
    texts = {"topology.csv": topology_text(gemms, block=block),
             "scale.cfg": config_text(cfg, design=d, clock_mhz=clock, word=word)}
    texts["mappings.csv"] = mappings_text(map_workload(d, gemms, clock))
    texts["README.txt"] = readme_text(cfg, design=d, clock_mhz=clock, word=word,
                                      workload=workload, rows=len(gemms))
    return texts


def readme_text(cfg: Config, *, design: Design, clock_mhz: float, word: str, workload: str,
                rows: int) -> str:
    """README.txt of an export folder: what each file is, how to run SCALE-Sim on it, the
    equivalence and how to compare SCALE-Sim's reports with ``mappings.csv``."""
    core = scalesim_core(cfg, design=design, clock_mhz=clock_mhz, word=word)
    wb = core.word_bytes
    b = design.cfg.block
    k_text = (f"K' = ceil(K/B), B = {b} (one SCALE-Sim MAC = one of our block pairs)"
              if word == "block" else
              "K as is (one SCALE-Sim MAC = one MAC: the same GEMM on a one-MAC-per-PE array, "
              "B times the compute cycles of ours)")
    lines = [
        f"SCALE-Sim export of workload {workload or '(given)'} ({rows} GEMMs) on configuration "
        f"{cfg.name!r}, design {design.name}, clock {_g(clock_mhz)} MHz",
        "written by semdialect (sim/scalesim.py); docs/SCALESIM.md explains every choice",
        "",
        "Files",
        f"  topology.csv  SCALE-Sim GEMM topology (-i gemm): one row per GEMM, M, N, {k_text};",
        "                a GEMM run count > 1 times per step is one row named <layer>*<count>",
        "                (SCALE-Sim has no count column: multiply its per-layer figures by it)",
        "  scale.cfg     one core of the configuration as a SCALE-Sim v2/v3 .cfg (dataflow os,",
        "                InterfaceBandwidth USER); its comments give the exact value behind every",
        "                rounded field and what does not carry over",
        "  mappings.csv  per GEMM, row for row with topology.csv: the tiling our model chose",
        "                (tm, tn, tk elements, loop order outer->inner, split among cores), DRAM",
        "                bytes per operand, core/stall/total cycles and the binding bound, per run",
        "",
        "Run (from a scale-sim-v3 checkout; checked at commit fab89b7 with numpy 1.26 — numpy 2",
        "fails in scalesim/memory/read_buffer.py):",
        "  python3 scalesim/scale.py -c scale.cfg -t topology.csv -i gemm -p results",
        "SCALE-Sim steps through every cycle and builds M x K' address matrices: rows of long",
        "videos (attention with M, N ~ 10^4..10^5) take hours and many GB; cut topology.csv to",
        "the rows you want to compare (keep mappings.csv's matching rows).",
        "",
        "Equivalence [ours]",
        "  Both arrays are output-stationary with M on the PE rows and N on the PE columns.",
        f"  Words ({word}): ifmap {_g(wb['ifmap'])} B, filter {_g(wb['filter'])} B, ofmap "
        f"{_g(wb['ofmap'])} B per SCALE-Sim word.",
        f"  One core's DRAM: {_g(core.dram_bytes_per_cycle)} bytes/cycle; SRAMs "
        + ", ".join(f"{op} {core.sram_kib[op]} KiB" for op in OPERANDS) + ".",
        "",
        "Compare (per run of one GEMM; SCALE-Sim's LayerID i is GEMM row i + 1 of topology.csv",
        "and of mappings.csv)",
        "  COMPUTE_REPORT.csv 'Total Cycles'  <-> mappings.csv cycles (core_cycles: ours",
        "                                         without DRAM stalls)",
        "  COMPUTE_REPORT.csv 'Stall Cycles'  <-> stall_cycles",
        "  DETAILED_ACCESS_REPORT.csv, in words times the word bytes above:",
        f"    'DRAM IFMAP Reads' x {_g(wb['ifmap'])}  <-> dram_X_bytes",
        f"    'DRAM Filter Reads' x {_g(wb['filter'])}  <-> dram_W_bytes",
        f"    'DRAM OFMAP Writes' x {_g(wb['ofmap'])}  <-> dram_Y_write_bytes",
        "  Expect differences: SCALE-Sim streams double-buffered operands without a tiling",
        "  search and holds every output in its PE until its whole K' is done (no partial",
        "  sums: our dram_Y_read_bytes has no SCALE-Sim counterpart); its fold takes a systolic",
        "  fill and drain where ours pipelines row tiles; SCALE-Sim gives each operand its own",
        "  DRAM interface where ours share one.",
        "",
        "Not carried over",
        *(f"  {line}" for line in _carry_notes(cfg, design)),
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Configuration in
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportedConfig:
    """A SCALE-Sim ``.cfg`` in our terms: ``keys`` (Config field → value: ``name``, ``rows``,
    ``cols``, the three ``*_sram_kib`` and ``dram_gbps``) and ``notes`` (what was read but
    does not carry over, one line each)."""

    keys: dict[str, Any]
    notes: tuple[str, ...]

    def config(self, base: Config | None = None) -> Config:
        """``base`` (default :class:`Config`) on the imported array (:meth:`Config.on_array`:
        its lanes and drain width fitted to the array) with the imported name, SRAMs and DRAM;
        the DRAM read is one core's, so it is multiplied by ``base.cores``."""
        base = base if base is not None else Config()
        keys = dict(self.keys)
        keys["dram_gbps"] = min(MAX_DRAM_GBPS, keys["dram_gbps"] * base.cores)
        return replace(base.on_array(keys.pop("rows"), keys.pop("cols")), **keys)


def _cfg_text(path: Path) -> str:
    """The text of the .cfg at ``path`` (one-line ``ValueError`` when unreadable)."""
    try:
        if not path.is_file():
            raise ValueError(f"scalesim config {path}: not a regular file"
                             if path.exists() else f"scalesim config {path}: no such file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_CFG_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"scalesim config {path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_CFG_BYTES:
        raise ValueError(f"scalesim config {path}: larger than {MAX_CFG_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"scalesim config {path}: not UTF-8 text (byte "
                         f"0x{data[exc.start]:02x})") from None


def _parse(path: Path) -> configparser.ConfigParser:
    """The .cfg as SCALE-Sim parses it: ``configparser.ConfigParser()`` with its defaults
    (``scale_config.read_conf_file``), so keys are case-insensitive."""
    parser = configparser.ConfigParser()
    try:
        parser.read_string(_cfg_text(path), source=str(path))
    except configparser.Error as exc:
        msg = " ".join(str(exc).split())
        raise ValueError(f"scalesim config {path}: not a valid .cfg ({msg[:200]})") from None
    return parser


def _get(parser: configparser.ConfigParser, path: Path, section: str, key: str) -> str:
    try:
        return parser.get(section, key)
    except (configparser.NoSectionError, configparser.NoOptionError):
        raise ValueError(f"scalesim config {path}: [{section}] {key} missing (SCALE-Sim "
                         "reads it)") from None
    except configparser.Error as exc:  # e.g. a bad %-interpolation, as SCALE-Sim would fail
        msg = " ".join(str(exc).split())
        raise ValueError(f"scalesim config {path}: [{section}] {key}: {msg[:200]}") from None


def _int_field(parser: configparser.ConfigParser, path: Path, section: str, key: str) -> int:
    """``int()`` of a field as SCALE-Sim takes it, and at least 1."""
    cell = _get(parser, path, section, key)
    try:
        val = int(cell)
    except ValueError:
        raise ValueError(f"scalesim config {path}: [{section}] {key}: expected an integer, "
                         f"got {cell[:40]!r}") from None
    if val < 1:
        raise ValueError(f"scalesim config {path}: [{section}] {key}: must be at least 1, "
                         f"got {val}")
    return val


def _flag(parser: configparser.ConfigParser, section: str, key: str) -> bool:
    """A true/false field SCALE-Sim may read (absent: false)."""
    return parser.get(section, key, fallback="false").strip().lower() == "true"


def _config_name(run_name: str) -> str:
    """Our configuration name for SCALE-Sim's ``run_name`` (a plain identifier)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", run_name.strip())[:64].lstrip("-")
    return name if NAME_PATTERN.fullmatch(name or "-") else "scalesim"


def read_config(path: str | Path, *, clock_mhz: float,
                word_bytes: float = SCALESIM_WORD_BYTES) -> ImportedConfig:
    """A SCALE-Sim ``.cfg`` in our configuration's keys (see :class:`ImportedConfig`).

    Read as SCALE-Sim reads it (``configparser``, the keys of ``scale_config.read_conf_file``):
    ``ArrayHeight``/``ArrayWidth`` → ``rows``/``cols`` (1 … 128); ``IfmapSramSzkB``,
    ``FilterSramSzkB``, ``OfmapSramSzkB`` (1024-word units) → ``act_sram_kib``,
    ``weight_sram_kib``, ``out_sram_kib`` = ⌊kB · ``word_bytes``⌋ KiB (SCALE-Sim's word: 1
    byte); ``InterfaceBandwidth: USER`` → ``dram_gbps`` = the first ``Bandwidth`` value (words
    per cycle) · ``word_bytes`` · ``clock_mhz`` MHz / 1000 (one core's DRAM); ``CALC``
    (SCALE-Sim sizes the interface so nothing stalls) → an unbounded DRAM (the largest
    ``dram_gbps``, 1e5 GB/s). ``Dataflow`` must be ``os`` (our array is output-stationary) and
    ``[sparsity] SparsitySupport`` false; ``run_name`` becomes the name. One-line
    ``ValueError`` naming the section and key for anything that cannot be mapped."""
    clock = _check_clock(clock_mhz)
    if (isinstance(word_bytes, bool) or not isinstance(word_bytes, (int, float))
            or not math.isfinite(word_bytes) or not 0 < word_bytes <= 1024):
        raise ValueError(f"word_bytes: must be a number of bytes in (0, 1024], got "
                         f"{word_bytes!r}")
    path = Path(path)
    p = _parse(path)
    arch = "architecture_presets"
    notes: list[str] = []
    run_name = _get(p, path, "general", "run_name")
    mode = _get(p, path, "run_presets", "InterfaceBandwidth")
    if mode not in ("USER", "CALC"):
        raise ValueError(f"scalesim config {path}: [run_presets] InterfaceBandwidth: expected "
                         f"USER or CALC (as SCALE-Sim spells them), got {mode[:40]!r}")
    flow = _get(p, path, arch, "Dataflow")
    if flow != "os":
        known = _DATAFLOW_NAMES.get(flow)
        what = f"{flow!r} ({known})" if known else f"{flow[:40]!r} (not os, ws or is)"
        raise ValueError(f"scalesim config {path}: [{arch}] Dataflow: {what} cannot be "
                         "mapped: our array is output-stationary only (Dataflow: os)")
    keys: dict[str, Any] = {"name": _config_name(run_name)}
    for key, field in (("ArrayHeight", "rows"), ("ArrayWidth", "cols")):
        val = _int_field(p, path, arch, key)
        if val > MAX_ARRAY:
            raise ValueError(f"scalesim config {path}: [{arch}] {key}: {val} exceeds our "
                             f"largest array ({MAX_ARRAY})")
        keys[field] = val
    for key, field in (("IfmapSramSzkB", "act_sram_kib"), ("FilterSramSzkB", "weight_sram_kib"),
                       ("OfmapSramSzkB", "out_sram_kib")):
        kb = _int_field(p, path, arch, key)
        kib = math.floor(kb * word_bytes)
        if not 1 <= kib <= MAX_SRAM_KIB:
            raise ValueError(f"scalesim config {path}: [{arch}] {key}: {kb} kwords of "
                             f"{word_bytes:g} bytes is {kb * word_bytes:g} KiB, outside our "
                             f"1..{MAX_SRAM_KIB} KiB")
        if kib != kb * word_bytes:
            notes.append(f"{key}: {kb * word_bytes:g} KiB rounded down to {kib}")
        keys[field] = kib
    if mode == "USER":
        cell = _get(p, path, arch, "Bandwidth")
        try:
            rates = [int(x.strip()) for x in cell.strip().split(",")]
        except ValueError:
            raise ValueError(f"scalesim config {path}: [{arch}] Bandwidth: expected integers "
                             f"(words per cycle), got {cell[:40]!r}") from None
        if rates[0] < 1:
            raise ValueError(f"scalesim config {path}: [{arch}] Bandwidth: must be at least "
                             f"1 word per cycle, got {rates[0]}")
        gbps = rates[0] * word_bytes * clock * 1e6 / 1e9
        keys["dram_gbps"] = min(gbps, MAX_DRAM_GBPS)
        if len(rates) > 1:
            notes.append(f"Bandwidth: only the first of {cell.strip()} is used (as SCALE-Sim)")
        if p.has_section("layout"):
            notes.append("[layout] IfmapSRAMBankBandwidth/FilterSRAMBankBandwidth (v3's "
                         "per-operand DRAM rates) are not read: one shared DRAM at Bandwidth")
    else:
        keys["dram_gbps"] = MAX_DRAM_GBPS
        notes.append("InterfaceBandwidth CALC (stall-free): DRAM unbounded "
                     f"(dram_gbps = {MAX_DRAM_GBPS:g})")
    if _flag(p, "sparsity", "SparsitySupport"):
        raise ValueError(f"scalesim config {path}: [sparsity] SparsitySupport: true cannot be "
                         "mapped: our array computes dense blocks")
    for section, key, what in (("layout", "IfmapCustomLayout", "SRAM bank layouts"),
                               ("layout", "FilterCustomLayout", "SRAM bank layouts"),
                               ("run_presets", "UseRamulatorTrace", "Ramulator DRAM latencies")):
        if _flag(p, section, key):
            notes.append(f"[{section}] {key}: {what} are not modelled")
    return ImportedConfig(keys, tuple(dict.fromkeys(notes)))


#: characters a TOML comment may not hold (control characters but tab)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _toml_value(val: Any) -> str:
    if isinstance(val, bool):
        return "true" if val else "false"
    if isinstance(val, int):
        return str(val)
    if isinstance(val, float):
        return repr(val)
    return json.dumps(str(val))  # a TOML basic string (JSON escapes are TOML escapes)


def config_toml(cfg: Config, comments: Sequence[str] = ()) -> str:
    """``cfg`` as a configuration TOML that :func:`semdialect.config.load_config` reads back to
    an equal :class:`Config` (``comments``: ``#`` lines on top, control characters as
    blanks; omitted optional keys stay
    omitted; a formatbook file is written as an absolute path)."""
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    book = values["formatbook"]
    if book.endswith(".toml"):
        values["formatbook"] = str(Path(book).resolve())
    system = dict(zip((k for keys in SYSTEM_SECTIONS.values() for k in keys),
                      system_fields(), strict=True))
    lines = ["# " + _CONTROL.sub(" ", c) for c in comments]
    lines.append(f"name = {_toml_value(cfg.name)}")
    for section, keys in {**CORE_SECTIONS, **SYSTEM_SECTIONS}.items():
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {_toml_value(values[system.get(key, key)])}" for key in keys
                  if values[system.get(key, key)] is not None]
    return "\n".join(lines) + "\n"
