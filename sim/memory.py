"""System model of a workload: per-core SRAMs, shared DRAM, tiling, stalls and energy.

docs/SPEC.md §9 is the contract; in short. Each of ``cores`` cores (the configuration's
``[chip]``) has the GEMM core (frontend quantizer, array, drain, output adder y + yin) and
three double-buffered SRAMs — act (FP16 activations), weight (quantized blocks), out (FP32
outputs and partial sums) — of ``*_sram_kib`` KiB; all cores share one DRAM of ``dram_gbps``
GB/s. Operands in DRAM: X FP16 (16 bits/element, quantized on chip by the frontend), static
W at the design's bits per element with metadata (``Design.block_bytes``·8/B: sd32 4.3125,
MXFP4 4.25, NVFP4 4.5, MXINT8 8.25), a run-time W (``static = none``) FP16, Y FP32.

Per GEMM (:func:`map_gemm`) a mapping (:class:`sim.mapping.Mapping`: tile sizes, loop
order, split among cores) is searched: every candidate whose tiles fit half of each SRAM is
ranked by its estimated time, then by DRAM bytes, then by a fixed order; the chosen
mapping's core cycles are then counted exactly (:meth:`Design.gemm_cycles` of every tile
step's command, :meth:`Design.quantize_cycles` of every run-time W tile). Time
(Timeloop-style bandwidth bound with double buffering):

    cycles = max(core cycles, DRAM bytes / DRAM bytes per cycle, SRAM port bytes / width)
             + prologue (the first step's input tiles from DRAM) + epilogue (the last output
             tile to DRAM),

stall cycles = cycles − core cycles, ``bound`` the binding term (``compute``, ``dram``,
``sram:act``, ``sram:weight``, ``sram:out``). DRAM bytes per cycle = dram_gbps·10⁹ /
(clock_mhz·10⁶), shared by the cores (their bytes add up); core cycles and SRAM ports are
per core (the busiest core). A port width omitted in the configuration is matched to the
design's peak demand (:func:`matched_port_width`) and never binds. Attention pairs are
fused (``[attention] fused``) or run as two GEMMs with a softmax pass between them
(:mod:`sim.attention`). Energy per run: the datapath from :func:`sim.energy.
action_counts_for_gemm` of every command, DRAM bytes at ``dram_byte`` and each SRAM's bytes
at a per-byte energy interpolated from Horowitz's 8 KB / 32 KB / 1 MB read energies by its
capacity (:func:`sram_byte_pj`), plus the softmax unit's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import TypeVar

import numpy as np

from semdialect.rtl.timing import TENSOR_SCALE_STAGES
from semdialect.sim import attention as attn
from semdialect.sim.energy import (
    CATEGORIES,
    Assumptions,
    action_counts_for_gemm,
    energy_per_mac,
    load_assumptions,
)
from semdialect.sim.mapping import (
    ORDERS,
    SPLITS,
    TRAFFIC_KEYS,
    Mapping,
    ceil_div,
    core_commands,
    core_extent,
    core_traffic,
    tile_bytes,
    tile_candidates,
)
from semdialect.sim.model import Design, layer_result
from semdialect.sim.workloads import Gemm

_K = TypeVar("_K", tuple[int, int, int], tuple[int, int])  # a command shape

#: the sweep's default clock (MHz): 4 ns, the OSU 180 nm timing target of the shipped
#: ``[pipeline]`` stages (docs/ARCHITECTURE.md "Pipeline")
DEFAULT_CLOCK_MHZ = 250.0
#: the three per-core SRAMs (keys of ``sram_bytes``; configuration keys ``<name>_sram_kib``
#: and ``<name>_sram_width``)
SRAMS = ("act", "weight", "out")
#: keys of ``MemoryResult.dram_bytes``: the loop nest's operands and the decomposition's
#: residual traffic (sim.model.layer_result ``residual_bytes``)
DRAM_KEYS = (*TRAFFIC_KEYS, "residual")
#: keys of ``MemoryResult.energy_pj``
ENERGY_KEYS = (*CATEGORIES, "softmax")
#: the terms of the time bound, in tie-break order
BOUNDS = ("compute", "dram", *(f"sram:{s}" for s in SRAMS))
#: bits of an FP16 element (X, a run-time W in DRAM, P) and an FP32 one (Y, S, O)
_FP16_BITS, _FP32_BITS = 16, 32
#: Horowitz (ISSCC 2014, 45 nm) SRAM read energy per 64 bits: table entry, capacity in KiB
_SRAM_POINTS = (("sram_read_64b_8kb", 8), ("sram_read_64b_32kb", 32),
                ("sram_read_64b_1mb", 1024))


@dataclass(frozen=True)
class MemoryResult:
    """One GEMM (or one fused attention pair, or an unfused pair's softmax pass) per single
    run: ``mapping`` (None for a softmax pass), ``core_cycles`` (the busiest core's exact
    command cycles, + the decomposition's second pass), ``cycles`` and ``stall_cycles``
    (clock cycles, :mod:`sim.memory`), ``bound`` (:data:`BOUNDS`), ``dram_bytes``
    (:data:`DRAM_KEYS`, bytes, all cores), ``sram_bytes`` (:data:`SRAMS`, bytes through each
    SRAM's port, all cores), ``macs`` (useful M·K·N), ``energy_pj`` (:data:`ENERGY_KEYS`,
    pJ), ``count`` (runs per step), ``kind`` (``gemm``, ``attention``, ``softmax``),
    ``prologue_cycles`` and ``epilogue_cycles`` (the exposed DRAM transfers in ``cycles``)."""

    layer: str
    mapping: Mapping | None
    core_cycles: int
    cycles: float
    stall_cycles: float
    bound: str
    dram_bytes: dict[str, float]
    sram_bytes: dict[str, float]
    macs: int
    energy_pj: dict[str, float]
    count: int
    kind: str = "gemm"
    prologue_cycles: float = 0.0
    epilogue_cycles: float = 0.0

    @property
    def dram_total(self) -> float:
        """DRAM bytes of one run (all keys)."""
        return sum(self.dram_bytes.values())

    @property
    def energy_total_pj(self) -> float:
        """Energy of one run (pJ, all categories)."""
        return sum(self.energy_pj.values())


@dataclass(frozen=True)
class StepResult:
    """One denoising step (Σ count × per-run): cycles, core and stall cycles (clock
    cycles), ``seconds`` at the clock, ``energy_j`` and its ``energy_parts_j``
    (:data:`ENERGY_KEYS`, J), ``dram_bytes``, ``macs``, ``utilization`` (MACs / (cycles ·
    rows·cols·B · cores), 0 … 1) and every layer's :class:`MemoryResult`."""

    cycles: float
    core_cycles: float
    stall_cycles: float
    seconds: float
    energy_j: float
    energy_parts_j: dict[str, float]
    dram_bytes: float
    macs: int
    utilization: float
    layers: list[MemoryResult]


# ---------------------------------------------------------------------------------------------
# The system's parameters
# ---------------------------------------------------------------------------------------------


def dram_bytes_per_cycle(design: Design, clock_mhz: float) -> float:
    """DRAM bytes per clock cycle shared by the cores: dram_gbps·10⁹ / (clock_mhz·10⁶)."""
    if (isinstance(clock_mhz, bool) or not isinstance(clock_mhz, int | float)
            or not math.isfinite(clock_mhz) or clock_mhz <= 0):
        raise ValueError(f"clock_mhz: expected a positive number of MHz, got {clock_mhz!r}")
    return design.cfg.dram_gbps * 1e9 / (clock_mhz * 1e6)


def sram_half_bytes(design: Design) -> dict[str, float]:
    """Bytes one tile of each SRAM may take: half its capacity (double buffering)."""
    cfg = design.cfg
    return {s: getattr(cfg, f"{s}_sram_kib") * 1024 / 2 for s in SRAMS}


def matched_port_width(design: Design, sram: str) -> float:
    """The peak demand of the core on an SRAM (bytes/cycle), what an omitted width means:
    act lanes·B·2 per C_sel cycles (the frontend), weight cols·block_bytes per array cycle,
    out drain_width·4 (the drain)."""
    cfg = design.cfg
    return {"act": design.peak_frontend_bytes_per_cycle,
            "weight": cfg.cols * design.block_bytes,
            "out": float(design.peak_drain_bytes_per_cycle)}[sram]


def _port_widths(design: Design) -> dict[str, float]:
    """The configured port widths (bytes/cycle) that can bind (omitted ones never do)."""
    cfg = design.cfg
    return {s: float(w) for s in SRAMS if (w := getattr(cfg, f"{s}_sram_width")) is not None}


def w_bits(design: Design) -> float:
    """Bits per element of a quantized W in DRAM and SRAM, metadata included:
    block_bytes·8/B."""
    return design.block_bytes * 8 / design.cfg.block


def k_candidates(design: Design, k: int) -> np.ndarray:
    """Tk searched for a GEMM of ``k`` elements: every :func:`sim.mapping.tile_candidates`
    with ``[memory] k_split`` (the default), else only the padded full K (every output is one
    accumulation over K, SPEC §5 bit-exact)."""
    block = design.cfg.block
    if design.cfg.k_split:
        return tile_candidates(k, block)
    return np.array([-(-k // block) * block], dtype=np.int64)


def check_fits(design: Design) -> None:
    """``ValueError`` naming the SRAM key when the smallest tile of any GEMM does not fit half
    that SRAM: rows × B FP16 activations (act), B × tile_cols quantized weights (weight),
    rows × tile_cols FP32 outputs (out)."""
    cfg = design.cfg
    half = sram_half_bytes(design)
    need = {"act": (cfg.rows * cfg.block * _FP16_BITS / 8,
                    f"rows {cfg.rows} x B {cfg.block} FP16 activations"),
            "weight": (cfg.tile_cols * design.block_bytes,
                       f"B {cfg.block} x tile_cols {cfg.tile_cols} quantized weights"),
            "out": (cfg.rows * cfg.tile_cols * _FP32_BITS / 8,
                    f"rows {cfg.rows} x tile_cols {cfg.tile_cols} FP32 outputs")}
    for s in SRAMS:
        nbytes, what = need[s]
        if nbytes > half[s]:
            raise ValueError(f"{s}_sram_kib: the smallest tile ({what}, {nbytes:g} bytes) "
                             f"does not fit half of the {getattr(cfg, f'{s}_sram_kib')} KiB "
                             "SRAM (double buffering)")


@cache
def _table() -> Assumptions:
    return load_assumptions()


def sram_byte_pj(kib: float) -> float:
    """Energy (pJ) of one byte read or written in an SRAM of ``kib`` KiB: Horowitz's 64-bit
    read energies at 8 KB (10 pJ), 32 KB (20 pJ) and 1 MB (100 pJ) interpolated linearly in
    log(capacity)–log(energy) (extrapolated along the end segments), divided by 8 bytes."""
    table = _table().actions
    xs = [math.log(k) for _, k in _SRAM_POINTS]
    ys = [math.log(table[name].pj) for name, _ in _SRAM_POINTS]
    x = math.log(kib)
    i = 0 if x <= xs[1] else 1
    y = ys[i] + (x - xs[i]) * (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
    return math.exp(y) / 8


# ---------------------------------------------------------------------------------------------
# Core cycles: the closed-form estimate (search) and the exact counts (chosen mapping)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timing:
    """The constants of :mod:`sim.cycles`' recurrence for one design (estimate only)."""

    rows: int
    tile: int  # T = cols·d
    d: int
    lanes: int
    sel: int
    e_q: int
    lat: int
    e_y: int
    extra: int  # NVFP4's tensor-scale stages
    beat_rows: int
    beat_cols: int

    @classmethod
    def of(cls, design: Design) -> _Timing:
        cfg, pipe = design.cfg, design.pipeline
        extra = TENSOR_SCALE_STAGES if design.pe.has_tensor_scale else 0
        return cls(cfg.rows, cfg.tile_cols, cfg.acc_stages, cfg.lanes, design.sel_cycles,
                   pipe.quantizer_extra, pipe.array_latency, pipe.output_latency, extra,
                   cfg.drain_rows, cfg.drain_cols)


def _est_command(t: _Timing, r: np.ndarray | int, b: np.ndarray, kb: np.ndarray,
                 prev_beats: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(period, head, tail) of a GEMM command of ``b`` columns and ``kb`` k-blocks for row
    tiles of ``r`` rows (:mod:`sim.cycles`' recurrence in steady state): a command takes
    ≈ Σ over its row tiles of their period + the head of its first row tile + the tail
    (last drain beats) of its last. Period = max(frontend q, (T_n − 1)·max(S, beats) +
    max(S + L, last beats of the previous row tile, ``prev_beats``, default this one's),
    (1 + q + E_q + S + L + (T_n − 1)·max(S, beats))/2 — a row tile is accepted only when the
    one two before has left its bank); one row tile alone takes
    exactly q + E_q + S + L + (T_n − 1)·max(S, beats) + last beats + 2 + E_y."""
    s = kb * t.d
    t_n = ceil_div(b, t.tile)
    c_last = b - (t_n - 1) * t.tile
    rg = ceil_div(r, t.beat_rows)
    b_full = rg * -(-t.tile // t.beat_cols)
    b_last = rg * ceil_div(c_last, t.beat_cols)
    q = ceil_div(r, t.lanes) * kb * t.sel
    body = (t_n - 1) * np.maximum(s, b_full)
    chain = q + t.e_q + s + t.lat + body
    drain = b_last if prev_beats is None else prev_beats
    period = np.maximum(np.maximum(q, body + np.maximum(s + t.lat, drain)), (1 + chain) / 2)
    return period, chain + 2 + t.e_y + t.extra - period, b_last


def _groups(total: np.ndarray | int, tile: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(size, count) of the full tiles and of the edge tile (count 0 when absent; size ≥ 1),
    vectorised :func:`sim.mapping.extents`."""
    full, edge = np.divmod(np.asarray(total), tile)
    return [(np.broadcast_to(tile, np.shape(full)), full),
            (np.maximum(edge, 1), (edge > 0).astype(np.int64))]


def _est_gemms(t: _Timing, block: int, m: np.ndarray, k: np.ndarray | int, n: np.ndarray,
               tm: np.ndarray, tn: np.ndarray, tk: np.ndarray) -> np.ndarray:
    """Estimated cycles of one core's GEMM commands (M×K×N in tiles of tm×tk×tn): for every
    column and k tile shape, count·(Σ over the row tiles of their period + Σ over the m
    tiles of their first row tile's head and last row tile's tail, :func:`_est_command`);
    only the core's last row tile is partial."""
    full_rows, edge_rows = np.divmod(m, t.rows)
    m_tiles = ceil_div(m, tm)
    first_last = np.minimum(m - (m_tiles - 1) * tm, t.rows)  # first row tile of the last m tile
    last_rows = np.where(edge_rows > 0, edge_rows, t.rows)  # the last row tile
    est = np.zeros(np.broadcast_shapes(np.shape(m), np.shape(tm), np.shape(tn),
                                       np.shape(tk), np.shape(n)))
    has_edge, full_first = bool(np.any(edge_rows > 0)), bool(np.all(first_last == t.rows))
    for b, cb in _groups(n, tn):
        for kk, ck in _groups(k, tk):
            count = cb * ck
            if not np.any(count):  # no candidate has this edge shape
                continue
            kb = ceil_div(kk, block)
            per_full, head_full, tail_full = _est_command(t, t.rows, b, kb)
            per_edge, tail_edge, head_last = 0, tail_full, head_full
            if has_edge:
                per_self, _, tail_edge = _est_command(t, np.maximum(edge_rows, 1), b, kb)
                per_after, _, _ = _est_command(t, np.maximum(edge_rows, 1), b, kb, tail_full)
                per_edge = np.where(first_last < t.rows, per_self, per_after)
            if not full_first:
                _, head_last, _ = _est_command(t, np.maximum(first_last, 1), b, kb)
            est = est + count * (full_rows * per_full + (edge_rows > 0) * per_edge
                                 + np.maximum(m_tiles - 1, 0) * (head_full + tail_full)
                                 + (m_tiles > 0) * (head_last + np.where(
                                     last_rows < t.rows, tail_edge, tail_full)))
    return est


def _est_quantize(t: _Timing, block: int, n: np.ndarray | int, k: np.ndarray | int,
                  tn: np.ndarray | int, tk: np.ndarray | int) -> np.ndarray:
    """Cycles of one quantize command per W tile (N×K in tiles of tn×tk):
    ⌈cols/lanes⌉·KB·C_sel + E_q + 2 each (:mod:`sim.cycles`)."""
    est = 0
    for b, cb in _groups(n, np.asarray(tn)):
        for kk, ck in _groups(k, np.asarray(tk)):
            est = est + cb * ck * (ceil_div(b, t.lanes) * ceil_div(kk, block) * t.sel + t.e_q + 2)
    return np.asarray(est)


@lru_cache(maxsize=1 << 16)
def _gemm_cycles(design: Design, m: int, n: int, kb: int) -> int:
    return design.gemm_cycles(m, n, kb)


@lru_cache(maxsize=1 << 16)
def _quantize_cycles(design: Design, m: int, kb: int) -> int:
    return design.quantize_cycles(m, kb)


def commands_cycles(design: Design, gemms: dict[tuple[int, int, int], int],
                    quants: dict[tuple[int, int], int]) -> int:
    """Exact cycles of a list of commands run back to back (a command's cycles are also its
    period, :mod:`sim.cycles`): Σ count·``gemm_cycles`` (rows, columns, ⌈K/B⌉) + Σ
    count·``quantize_cycles`` (rows, ⌈K/B⌉)."""
    b = design.cfg.block
    return (sum(c * _gemm_cycles(design, r, n, -(-k // b)) for (r, n, k), c in gemms.items())
            + sum(c * _quantize_cycles(design, r, -(-k // b)) for (r, k), c in quants.items()))


# ---------------------------------------------------------------------------------------------
# Energy
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 16)
def _command_pj(design: Design, m: int, n: int, k: int, runtime_w: bool = False
                ) -> tuple[float, ...]:
    """Datapath energy (pJ by :data:`CATEGORIES`) of one M×N×K GEMM command."""
    counts = action_counts_for_gemm(design.cfg, m, n, k, {}, pe=design.pe,
                                    runtime_w=runtime_w)
    per_mac = energy_per_mac(counts, _table())
    return tuple(per_mac[c] * m * n * k for c in CATEGORIES)


@lru_cache(maxsize=256)
def _block_quantize_pj(design: Design) -> tuple[float, ...]:
    """Energy (pJ by :data:`CATEGORIES`) of quantizing one block of a run-time W through the
    frontend: the ``runtime_w`` share of :func:`sim.energy.action_counts_for_gemm` for one
    row of B elements (its quantizer actions are counted per block, so r rows of ⌈k/B⌉
    blocks cost r·⌈k/B⌉ times this)."""
    b = design.cfg.block
    with_w = _command_pj(design, 1, 1, b, True)
    return tuple(a - c for a, c in zip(with_w, _command_pj(design, 1, 1, b), strict=True))


def _energy(design: Design, gemms: dict[tuple[int, int, int], int],
            quants: dict[tuple[int, int], int], dram_total: float,
            sram: dict[str, float], softmax_pj: float = 0.0) -> dict[str, float]:
    """pJ by :data:`ENERGY_KEYS`: every command's datapath, DRAM and SRAM bytes, softmax."""
    out = dict.fromkeys(ENERGY_KEYS, 0.0)
    for (m, n, k), c in gemms.items():
        for cat, pj in zip(CATEGORIES, _command_pj(design, m, n, k), strict=True):
            out[cat] += c * pj
    blocks = sum(c * rows * -(-k // design.cfg.block) for (rows, k), c in quants.items())
    for cat, pj in zip(CATEGORIES, _block_quantize_pj(design), strict=True):
        out[cat] += blocks * pj
    cfg = design.cfg
    out["memory"] += dram_total * _table().actions["dram_byte"].pj + sum(
        nbytes * sram_byte_pj(getattr(cfg, f"{s}_sram_kib")) for s, nbytes in sram.items())
    out["softmax"] += softmax_pj
    return out


# ---------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------


def _time(core: np.ndarray, dram: np.ndarray, ports: dict[str, np.ndarray], bpc: float,
          widths: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(the bound max(core, DRAM, ports) in cycles, the index of its term in
    :data:`BOUNDS`; the first on ties), vectorised."""
    terms = [np.asarray(core, dtype=float), np.asarray(dram) / bpc]
    terms += [np.asarray(ports[s]) / widths[s] if s in widths else np.zeros(1) for s in SRAMS]
    stacked = np.stack(np.broadcast_arrays(*terms))
    return stacked.max(axis=0), stacked.argmax(axis=0)


def _pick(time: np.ndarray, dram: np.ndarray) -> int:
    """Index of the fewest cycles, then the fewest DRAM bytes, then the first (flat)."""
    time, dram = time.ravel(), dram.ravel()
    tied = np.flatnonzero(time == time.min())
    return int(tied[np.argmin(dram[tied])])


def _result(design: Design, layer: str, count: int, mapping: Mapping | None, core: int,
            arr: dict[str, np.ndarray], macs: int, energy: dict[str, float], kind: str,
            clock_mhz: float, residual_bytes: float = 0.0) -> MemoryResult:
    """A :class:`MemoryResult` from exact core cycles and one candidate's quantities
    (:func:`_gemm_arrays`; time per the module docstring)."""
    bpc = dram_bytes_per_cycle(design, clock_mhz)
    dram = {key: float(arr[key].item()) for key in TRAFFIC_KEYS}
    dram["residual"] = residual_bytes
    bound, which = _time(np.asarray(core), np.asarray(sum(dram.values())),
                         {s: arr[f"max:{s}"] for s in SRAMS}, bpc, _port_widths(design))
    pro, epi = float(arr["pro"].item()) / bpc, float(arr["epi"].item()) / bpc
    cycles = float(np.ravel(bound)[0]) + pro + epi
    return MemoryResult(layer, mapping, core, cycles, cycles - core,
                        BOUNDS[int(np.ravel(which)[0])], dram, _sram_sums(arr), macs, energy,
                        count, kind, pro, epi)


def _sram_sums(arr: dict[str, np.ndarray]) -> dict[str, float]:
    """Bytes through each SRAM, all cores, of one candidate."""
    return {s: float(arr[f"sum:{s}"].item()) for s in SRAMS}


# ---------------------------------------------------------------------------------------------
# GEMMs
# ---------------------------------------------------------------------------------------------


def _zeros() -> dict[str, np.ndarray]:
    """Accumulators of :func:`_gemm_arrays` / :func:`_fused_arrays`."""
    keys = (*TRAFFIC_KEYS, "est", "pro", "epi", *(f"{a}:{s}" for a in ("max", "sum")
                                                  for s in SRAMS))
    return {key: np.zeros(1) for key in keys}


def _add_core(out: dict[str, np.ndarray], traffic: dict[str, np.ndarray],
              ports: dict[str, np.ndarray], pro: np.ndarray, epi: np.ndarray) -> None:
    """Add one core's DRAM bytes, SRAM port bytes (sum and max) and prologue/epilogue bytes."""
    for key in TRAFFIC_KEYS:
        out[key] = out[key] + traffic[key]
    for s in SRAMS:
        out[f"max:{s}"] = np.maximum(out[f"max:{s}"], ports[s])
        out[f"sum:{s}"] = out[f"sum:{s}"] + ports[s]
    out["pro"] = out["pro"] + pro
    out["epi"] = out["epi"] + epi
    out["dram"] = sum(out[key] for key in TRAFFIC_KEYS)


def _merge(counters: Iterable[Counter[_K]]) -> Counter[_K]:
    """All cores' commands by shape."""
    total: Counter[_K] = Counter()
    for c in counters:
        total.update(c)
    return total


def _gemm_arrays(design: Design, m: int, k: int, n: int, runtime_w: bool, tm: np.ndarray,
                 tn: np.ndarray, tk: np.ndarray, order: np.ndarray, split: str,
                 cores: np.ndarray) -> dict[str, np.ndarray]:
    """Per-candidate quantities of GEMM mappings (vectorised; ``order`` broadcast against
    the tile arrays): DRAM bytes by key (all cores), ``dram``, SRAM port bytes (``max:<s>``
    the busiest core, ``sum:<s>`` all cores), ``est`` (estimated core cycles, busiest
    core), ``pro`` and ``epi`` (prologue and epilogue bytes, all cores)."""
    cfg = design.cfg
    t = _Timing.of(design)
    block, bb = cfg.block, design.block_bytes
    kb = -(-k // block)
    x_bytes = _FP16_BITS / 8
    out = _zeros()
    for c in range(cfg.cores):
        if split == "m":
            cm = core_extent(m, tm, cores, c)
            cn = np.where(cm > 0, n, 0)
        else:
            cn = core_extent(n, tn, cores, c)
            cm = np.where(cn > 0, m, 0)
        if not np.any(cm):
            break
        tr = core_traffic(cm, k, cn, tm, tn, tk, order, x_bits=_FP16_BITS, w_bits=w_bits(design),
                          w_first_bits=_FP16_BITS if runtime_w else None, block=block)
        t_n, t_k = ceil_div(cn, tn), ceil_div(k, tk)
        w_quant = cn * kb * bb
        written = tr["W"] - cn * k * x_bytes + w_quant if runtime_w else tr["W"]
        ports = {"act": tr["X"] + t_n * cm * k * x_bytes,
                 "weight": written + tr["W_write"] + ceil_div(cm, t.rows) * cn * kb * bb,
                 "out": (2 * t_k - 1) * cm * cn * _FP32_BITS / 8 + tr["Y_write"] + tr["Y_read"]}
        if c == 0:  # the busiest core: the most tiles, all full
            out["est"] = _est_gemms(t, block, cm, k, cn, tm, tn, tk)
            if runtime_w:
                out["est"] = out["est"] + _est_quantize(t, block, cn, k, tn, tk)
        rk = np.minimum(tk, k)
        w_first = np.minimum(tn, cn) * (rk * x_bytes if runtime_w else ceil_div(rk, block) * bb)
        pro = np.minimum(tm, cm) * rk * x_bytes + w_first
        busy = cm > 0
        last_rows = np.where(busy, cm - (ceil_div(cm, tm) - 1) * tm, 0)
        last_cols = np.where(busy, cn - (t_n - 1) * tn, 0)
        _add_core(out, tr, ports, pro, last_rows * last_cols * _FP32_BITS / 8)
    return out


def _fit_error(design: Design, layer: str, sizes: dict[str, float]) -> ValueError:
    half = sram_half_bytes(design)
    key = next(s for s in SRAMS if sizes[s] > half[s])
    hint = "" if design.cfg.k_split else " with k_split = false (Tk = K)"
    return ValueError(f"{key}_sram_kib: the smallest {key} tile of {layer} ({sizes[key]:g} "
                      f"bytes{hint}) does not fit half of the "
                      f"{getattr(design.cfg, f'{key}_sram_kib')} KiB SRAM (double buffering)")


def _residual(design: Design, m: int, k: int, n: int) -> tuple[int, float, int]:
    """The decomposition's (ρ > 0) second pass kept from :func:`sim.model.layer_result`:
    (its cycles, its ``residual_bytes``, its rows n_S)."""
    if not design.rho:
        return 0, 0.0, 0
    lr = layer_result(design, Gemm("residual", m, k, n))
    return lr.breakdown.residual, lr.residual_bytes, lr.residual_rows


def search_gemm(design: Design, m: int, k: int, n: int, runtime_w: bool,
                clock_mhz: float) -> Mapping:
    """The mapping :func:`map_gemm` chooses for an M×K×N GEMM (SPEC §9): every candidate
    (tiles from :func:`sim.mapping.tile_candidates`, six orders, split along M or N with
    as many cores as there are tiles, up to ``cores``) whose tiles fit half of each SRAM,
    ranked by estimated cycles, then DRAM bytes, then the order tm, tn, tk, order, split
    (ascending). ``ValueError`` naming the SRAM key when even the smallest tile does not
    fit."""
    cfg = design.cfg
    bpc = dram_bytes_per_cycle(design, clock_mhz)
    cores = cfg.cores
    tm, tn, tk = np.meshgrid(tile_candidates(m, cfg.rows, cores),
                             tile_candidates(n, cfg.tile_cols, cores),
                             k_candidates(design, k), indexing="ij")
    xb, wb, yb = tile_bytes(m, k, n, tm.ravel(), tn.ravel(), tk.ravel(), x_bits=_FP16_BITS,
                            w_bits=w_bits(design), block=cfg.block)
    half = sram_half_bytes(design)
    fit = (xb <= half["act"]) & (wb <= half["weight"]) & (yb <= half["out"])
    if not fit.any():
        small = tile_bytes(m, k, n, cfg.rows, cfg.tile_cols, int(k_candidates(design, k)[0]),
                           x_bits=_FP16_BITS,
                           w_bits=w_bits(design), block=cfg.block)
        raise _fit_error(design, f"GEMM {m}x{k}x{n}", dict(zip(SRAMS, map(float, small),
                                                                strict=True)))
    tm, tn, tk = tm.ravel()[fit], tn.ravel()[fit], tk.ravel()[fit]
    # tie-break order: tm, tn, tk ascending (the meshgrid's), then order, then split
    res_cycles, res_bytes, _ = _residual(design, m, k, n)
    widths = _port_widths(design)
    order = np.arange(len(ORDERS))[:, None]
    best: list[tuple[float, float, int, int, int]] = []
    for si, split in enumerate(SPLITS if cores > 1 else SPLITS[:1]):
        along = ceil_div(m, tm) if split == "m" else ceil_div(n, tn)
        used = np.minimum(cores, along)
        arr = _gemm_arrays(design, m, k, n, runtime_w, tm, tn, tk, order, split, used)
        ports = {s: arr[f"max:{s}"] for s in SRAMS}
        bound, _ = _time(arr["est"] + res_cycles, arr["dram"] + res_bytes, ports, bpc, widths)
        time = bound + (arr["pro"] + arr["epi"]) / bpc
        dram = np.broadcast_to(arr["dram"], time.shape)
        i = _pick(time, dram)
        o, g = np.unravel_index(i, time.shape)
        best.append((float(time.ravel()[i]), float(dram.ravel()[i]), int(g), int(o), si))
    _, _, g, o, si = min(best)
    split = SPLITS[si]
    along = -(-m // int(tm[g])) if split == "m" else -(-n // int(tn[g]))
    return Mapping(int(tm[g]), int(tn[g]), int(tk[g]), ORDERS[o], split, min(cores, along))


def _check_mapping(design: Design, g: Gemm, mapping: Mapping) -> None:
    """``ValueError`` naming the field when ``mapping``'s tiles are not multiples of the
    array's units or do not fit half of each SRAM (naming the SRAM key)."""
    cfg = design.cfg
    for key, unit, name in (("tm", cfg.rows, "rows"), ("tn", cfg.tile_cols, "tile_cols"),
                            ("tk", cfg.block, "B")):
        if getattr(mapping, key) % unit:
            raise ValueError(f"mapping.{key}: must be a multiple of {name}={unit}, "
                             f"got {getattr(mapping, key)}")
    sizes = tile_bytes(g.m, g.k, g.n, mapping.tm, mapping.tn, mapping.tk, x_bits=_FP16_BITS,
                       w_bits=w_bits(design), block=cfg.block)
    half = sram_half_bytes(design)
    for s, nbytes in zip(SRAMS, sizes, strict=True):
        if float(nbytes) > half[s]:
            raise ValueError(f"{s}_sram_kib: the {s} tile of mapping {mapping} for {g.layer} "
                             f"({float(nbytes):g} bytes) does not fit half of the "
                             f"{getattr(cfg, f'{s}_sram_kib')} KiB SRAM (double buffering)")


def evaluate_mapping(design: Design, g: Gemm, mapping: Mapping, clock_mhz: float
                     ) -> MemoryResult:
    """:class:`MemoryResult` of GEMM ``g`` (one run) under ``mapping``, with exact core
    cycles (every tile step's command, a run-time W's quantize commands, the
    decomposition's second pass) and energy."""
    m, k, n = g.m, g.k, g.n
    _check_mapping(design, g, mapping)
    arr = _gemm_arrays(design, m, k, n, g.runtime_w, np.asarray(mapping.tm),
                       np.asarray(mapping.tn), np.asarray(mapping.tk),
                       np.asarray(ORDERS.index(mapping.order)), mapping.split,
                       np.asarray(mapping.cores))
    per_core = core_commands(m, k, n, mapping, runtime_w=g.runtime_w)
    res_cycles, res_bytes, res_rows = _residual(design, m, k, n)
    core = max(commands_cycles(design, gm, qz) for gm, qz in per_core) + res_cycles
    gemms = _merge(gm for gm, _ in per_core)
    if res_rows:
        gemms[res_rows, n, k] += 1
    energy = _energy(design, gemms, _merge(qz for _, qz in per_core),
                     float(arr["dram"].item()) + res_bytes, _sram_sums(arr))
    return _result(design, g.layer, g.count, mapping, core, arr, m * k * n, energy, "gemm",
                   clock_mhz, res_bytes)


@lru_cache(maxsize=1 << 14)
def _map_shape(design: Design, m: int, k: int, n: int, static: str, clock_mhz: float
               ) -> MemoryResult:
    g = Gemm("", m, k, n, 1, static)
    return evaluate_mapping(design, g, search_gemm(design, m, k, n, g.runtime_w, clock_mhz),
                            clock_mhz)


def map_gemm(design: Design, g: Gemm, clock_mhz: float) -> MemoryResult:
    """The chosen mapping of GEMM ``g`` (:func:`search_gemm`) and its cycles, stalls, DRAM
    and SRAM bytes and energy per run (:func:`evaluate_mapping`); memoised by shape."""
    dram_bytes_per_cycle(design, clock_mhz)  # validates clock_mhz
    return replace(_map_shape(design, g.m, g.k, g.n, g.static, float(clock_mhz)),
                   layer=g.layer, count=g.count)


# ---------------------------------------------------------------------------------------------
# Attention pairs
# ---------------------------------------------------------------------------------------------


def _fused_arrays(design: Design, p: attn.AttentionPair, tq: np.ndarray, tkv: np.ndarray,
                  cores: np.ndarray, resident: bool) -> dict[str, np.ndarray]:
    """:func:`_gemm_arrays`' quantities for fused tilings (Tq, Tkv), vectorised."""
    cfg = design.cfg
    t = _Timing.of(design)
    block, bb = cfg.block, design.block_bytes
    kv_quant = attn.quantized_kv_bytes(p, block=block, block_bytes=bb)
    dk_pad = -(-p.dk // block) * block
    out = _zeros()
    for c in range(cfg.cores):
        lq = core_extent(p.lq, tq, cores, c)
        if not np.any(lq):
            break
        tr = attn.fused_core_traffic(p, lq, tq, resident=resident, kv_quant_bytes=kv_quant)
        ports = attn.fused_sram_bytes(p, lq, tkv, tr, rows=cfg.rows, block=block,
                                      block_bytes=bb)
        if c == 0:  # the busiest core: the most query tiles, all full
            est = (_est_gemms(t, block, lq, p.dk, p.lk, tq, tkv, dk_pad)
                   + _est_gemms(t, block, lq, p.lk, p.dv, tq, p.dv, tkv)
                   + _est_quantize(t, block, p.lk, p.dk, tkv, dk_pad)
                   + _est_quantize(t, block, p.dv, p.lk, p.dv, tkv))
            for rows, cnt in _groups(lq, tq):
                est = est + cnt * attn.softmax_cycles(rows, p, tkv, cfg.softmax_width)
            out["est"] = est
        busy = lq > 0
        pro = np.where(busy, np.minimum(tq, lq) * p.dk * 2
                       + np.minimum(tkv, p.lk) * (p.dk + p.dv) * 2, 0)
        last = np.where(busy, lq - (ceil_div(lq, tq) - 1) * tq, 0)
        _add_core(out, tr, ports, pro, last * p.dv * _FP32_BITS / 8)
    return out


def search_fused(design: Design, p: attn.AttentionPair, clock_mhz: float) -> Mapping:
    """The fused tiling :func:`map_fused` chooses: Tq from
    :func:`sim.mapping.tile_candidates` (units of rows), Tkv (units of B), query tiles
    dealt among up to ``cores`` cores; the fitting candidates ranked as GEMM mappings.
    Returned as a :class:`sim.mapping.Mapping` (tm = Tq, tn = Tkv, tk = d_k padded to B,
    order ``mnk``, split ``m``)."""
    cfg = design.cfg
    block, bb = cfg.block, design.block_bytes
    bpc = dram_bytes_per_cycle(design, clock_mhz)
    tq, tkv = np.meshgrid(tile_candidates(p.lq, cfg.rows, cfg.cores),
                          tile_candidates(p.lk, block), indexing="ij")
    tq, tkv = tq.ravel(), tkv.ravel()
    half = sram_half_bytes(design)
    resident = attn.quantized_kv_bytes(p, block=block, block_bytes=bb) <= half["weight"]
    act, kv, out = attn.fused_tile_bytes(p, tq, tkv, block=block, block_bytes=bb)
    fit = (act <= half["act"]) & (out <= half["out"]) & (resident | (kv <= half["weight"]))
    if not fit.any():
        small = attn.fused_tile_bytes(p, np.asarray(cfg.rows), np.asarray(block),
                                      block=block, block_bytes=bb)
        raise _fit_error(design, f"fused attention {p.layer}",
                         dict(zip(SRAMS, map(float, small), strict=True)))
    tq, tkv = tq[fit], tkv[fit]
    used = np.minimum(cfg.cores, ceil_div(p.lq, tq))
    arr = _fused_arrays(design, p, tq, tkv, used, resident)
    bound, _ = _time(arr["est"], arr["dram"], {s: arr[f"max:{s}"] for s in SRAMS}, bpc,
                     _port_widths(design))
    time = bound + (arr["pro"] + arr["epi"]) / bpc
    i = _pick(time, np.broadcast_to(arr["dram"], time.shape))
    return Mapping(int(tq[i]), int(tkv[i]), -(-p.dk // block) * block, "mnk", "m",
                   int(used[i]))


def map_fused(design: Design, p: attn.AttentionPair, clock_mhz: float) -> MemoryResult:
    """The fused attention operator of pair ``p`` (:mod:`sim.attention`) per run with its
    chosen tiling (:func:`search_fused`, :func:`evaluate_fused`)."""
    return evaluate_fused(design, p, search_fused(design, p, clock_mhz), clock_mhz)


def evaluate_fused(design: Design, p: attn.AttentionPair, mapping: Mapping, clock_mhz: float
                   ) -> MemoryResult:
    """:class:`MemoryResult` of the fused pair ``p`` (one run) under ``mapping`` (tm = Tq,
    tn = Tkv, split ``m``): exact core cycles (the QKᵀ and ·V commands, the K/V quantize
    commands and the softmax unit, one after another, on the busiest core) and energy.
    ``ValueError`` naming the field when Tq, Tkv are not multiples of rows, B or the tiles
    do not fit."""
    cfg = design.cfg
    block, bb = cfg.block, design.block_bytes
    for key, unit, name in (("tm", cfg.rows, "rows"), ("tn", block, "B")):
        if getattr(mapping, key) % unit or mapping.split != "m":
            raise ValueError(f"mapping.{key}: a fused tiling needs a multiple of {name}={unit} "
                             f"and split 'm', got {mapping}")
    half = sram_half_bytes(design)
    resident = attn.quantized_kv_bytes(p, block=block, block_bytes=bb) <= half["weight"]
    sizes = attn.fused_tile_bytes(p, np.asarray(mapping.tm), np.asarray(mapping.tn),
                                  block=block, block_bytes=bb)
    for s, nbytes in zip(SRAMS, sizes, strict=True):
        if float(nbytes) > half[s] and not (s == "weight" and resident):
            raise ValueError(f"{s}_sram_kib: the {s} tiles of fused {p.layer} under {mapping} "
                             f"({float(nbytes):g} bytes) do not fit half of the "
                             f"{getattr(cfg, f'{s}_sram_kib')} KiB SRAM (double buffering)")
    arr = _fused_arrays(design, p, np.asarray(mapping.tm), np.asarray(mapping.tn),
                        np.asarray(mapping.cores), resident)
    work = attn.fused_work(p, mapping, cfg.softmax_width)
    core = max(commands_cycles(design, w.gemms, w.quants) + w.softmax_cycles for w in work)
    table = _table().actions
    softmax_pj = sum(w.scores * table["softmax_score"].pj + w.out_elems * table["fp32_mul"].pj
                     + w.row_ops * table["fp32_exp"].pj for w in work)
    energy = _energy(design, _merge(w.gemms for w in work), _merge(w.quants for w in work),
                     float(arr["dram"].item()), _sram_sums(arr), softmax_pj)
    return _result(design, p.layer, p.count, mapping, core, arr, p.macs, energy, "attention",
                   clock_mhz)


def map_softmax(design: Design, p: attn.AttentionPair, clock_mhz: float) -> MemoryResult:
    """The unfused pair's softmax pass (:func:`sim.attention.softmax_pass`) per run: S read
    from DRAM (``X``), P written (``Y_write``), the rows dealt among the cores' softmax
    units; S passes the out SRAM and P the act SRAM (each written and read once)."""
    cores = attn.softmax_pass(p, cores=design.cfg.cores, width=design.cfg.softmax_width,
                              out_half_bytes=sram_half_bytes(design)["out"])
    arr = _zeros()
    for c in cores:
        traffic = dict.fromkeys(TRAFFIC_KEYS, 0.0) | {"X": c.s_read, "Y_write": c.p_write}
        ports = {"act": 2.0 * c.p_write, "weight": 0.0, "out": 2.0 * c.s_read}
        # exposed: the first row of S in, the last row of P out
        _add_core(out=arr, traffic=traffic, ports=ports, pro=np.asarray(p.lk * 4.0),
                  epi=np.asarray(p.lk * 2.0))
    table = _table().actions
    softmax_pj = (sum(c.scores for c in cores)
                  * (2 * table["softmax_score"].pj + table["fp32_mul"].pj)
                  + p.lq * table["fp32_exp"].pj)
    energy = _energy(design, {}, {}, float(arr["dram"].item()), _sram_sums(arr), softmax_pj)
    return _result(design, p.qk.layer[:-3] + ".softmax", p.count, None,
                   max(c.cycles for c in cores), arr, 0, energy, "softmax", clock_mhz)


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------


def model_system(design: Design, gemms: Sequence[Gemm], clock_mhz: float) -> list[MemoryResult]:
    """Every GEMM of a workload on the system (:func:`check_fits` first): attention pairs
    (:func:`sim.attention.pair_attention`) as one fused operator with ``[attention] fused``,
    else as the qk GEMM, the softmax pass and the av GEMM; other rows :func:`map_gemm`."""
    check_fits(design)
    dram_bytes_per_cycle(design, clock_mhz)
    out: list[MemoryResult] = []
    for item in attn.pair_attention(gemms):
        if isinstance(item, Gemm):
            out.append(map_gemm(design, item, clock_mhz))
        elif design.cfg.fused_attention:
            out.append(map_fused(design, item, clock_mhz))
        else:
            out += [map_gemm(design, item.qk, clock_mhz), map_softmax(design, item, clock_mhz),
                    map_gemm(design, item.av, clock_mhz)]
    return out


def evaluate_step(design: Design, gemms: Sequence[Gemm],
                  clock_mhz: float = DEFAULT_CLOCK_MHZ) -> StepResult:
    """One denoising step of ``gemms`` on the system at ``clock_mhz`` (Σ count × per run)."""
    layers = model_system(design, gemms, clock_mhz)
    cycles = sum(r.cycles * r.count for r in layers)
    core = sum(r.core_cycles * r.count for r in layers)
    parts = {key: sum(r.energy_pj[key] * r.count for r in layers) * 1e-12
             for key in ENERGY_KEYS}
    macs = sum(r.macs * r.count for r in layers)
    peak = design.peak_macs_per_cycle * design.cfg.cores
    return StepResult(cycles=cycles, core_cycles=core, stall_cycles=cycles - core,
                      seconds=cycles / (clock_mhz * 1e6), energy_j=sum(parts.values()),
                      energy_parts_j=parts,
                      dram_bytes=sum(r.dram_total * r.count for r in layers), macs=macs,
                      utilization=macs / (cycles * peak) if cycles else 0.0, layers=layers)
