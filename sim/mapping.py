"""Loop-nest tiling of one GEMM on the cores: mappings, SRAM fit, DRAM traffic, commands.

A :class:`Mapping` of Y (M×N) = X (M×K) · W (K×N) (docs/SPEC.md §9) is a loop nest over
tiles of Tm rows × Tn columns × Tk reduction elements — Tm a multiple of the array's rows,
Tn of its tile columns (cols·acc_stages), Tk of the block B; the last tile along each
dimension is partial (a short last k-block zero-padded as today) — in one of the six loop
orders (outer → inner, e.g. ``"mnk"``), the tile grid split among ``cores`` cores along M or
N (:func:`core_shares`). Each core holds one tile per operand in its SRAMs (double buffered:
the next tile loads into the other half) and a tile is loaded when its index changes
between consecutive steps. Everything here is a pure function of the shape and the mapping;
the time and energy of a mapping are :mod:`sim.memory`'s.

**DRAM traffic (closed form, per core).** With trip counts t_m, t_n, t_k of the core's
share, each operand has one irrelevant loop (X: n, W: m, Y: k). A tile of an operand is
fetched f times, f = the irrelevant loop's trip count when some relevant loop with a trip
count > 1 lies inside it (its tile index changes while the irrelevant loop keeps turning),
else 1:

* X: f_X = t_n if (m inside n and t_m > 1) or (k inside n and t_k > 1), else 1;
* W: f_W = t_m if (k inside m and t_k > 1) or (n inside m and t_n > 1), else 1;
* Y: v = t_k visits per output tile if (m inside k and t_m > 1) or (n inside k and
  t_n > 1), else 1; a tile is written once per visit (v·M·N·4 bytes) and read back as a
  partial sum on every visit but the first ((v − 1)·M·N·4), through the output adder's yin.

Every tile of an operand is fetched equally often, so an operand's bytes are f times its
whole size: X = f_X·M·K·x_bits/8 (FP16, not padded); W = f_W·N·⌈K/B⌉·B·w_bits/8
(quantized blocks, a short last block padded). A run-time W (``w_first_bits``, FP16 in
DRAM) is read at ``w_first_bits`` the first time (N·K·16/8), quantized on chip, and, when
f_W > 1, its quantized form is written back once (``W_write``) and read quantized by the
f_W − 1 later fetches. The core's bytes sum over the cores (no multicast).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

#: the six loop orders, outer → inner (their index is the search's fixed tie-break order)
ORDERS = ("mnk", "mkn", "nmk", "nkm", "kmn", "knm")
#: how a GEMM's tile grid is split among cores: along M (row tiles) or N (column tiles)
SPLITS = ("m", "n")
#: keys of :func:`dram_traffic` (bytes)
TRAFFIC_KEYS = ("X", "W", "W_write", "Y_write", "Y_read")
#: position of loop m, n, k in each order of :data:`ORDERS` (0 = outermost)
_POS = np.array([[order.index(loop) for loop in "mnk"] for order in ORDERS])


@dataclass(frozen=True)
class Mapping:
    """Tile sizes (elements: ``tm`` rows, ``tn`` columns, ``tk`` reduction elements), the loop
    order over the tiles (outer → inner, one of :data:`ORDERS`) and the split of the tile
    grid among ``cores`` cores (``split`` one of :data:`SPLITS`; ``cores`` = the cores given
    work, at most the configuration's). For a fused attention pair (:mod:`sim.attention`)
    ``tm`` is the query tile, ``tn`` the key tile and ``tk`` the padded head dimension."""

    tm: int
    tn: int
    tk: int
    order: str
    split: str
    cores: int

    def __post_init__(self) -> None:
        for key in ("tm", "tn", "tk", "cores"):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"mapping.{key}: expected a positive integer, got {val!r}")
        if self.order not in ORDERS:
            raise ValueError(f"mapping.order: must be one of {', '.join(ORDERS)}, "
                             f"got {self.order!r}")
        if self.split not in SPLITS:
            raise ValueError(f"mapping.split: must be one of {', '.join(SPLITS)}, "
                             f"got {self.split!r}")


def ceil_div(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """⌈a/b⌉ of positive integers, vectorised."""
    return -(-np.asarray(a) // np.asarray(b))


def core_extent(total: int, tile: np.ndarray | int, cores: np.ndarray | int,
                core: int) -> np.ndarray:
    """Elements of ``total`` (split into tiles of ``tile``) that core ``core`` gets: the
    ⌈total/tile⌉ tiles are dealt in contiguous runs, the first (t mod cores) cores one tile
    more (t // cores + 1, the rest t // cores); only the last core's run holds the partial
    edge tile. 0 for a core without a tile. Vectorised over ``tile`` and ``cores``."""
    tile, cores = np.asarray(tile), np.asarray(cores)
    tiles = ceil_div(total, tile)
    q, r = np.divmod(tiles, cores)
    count = q + (core < r)
    start = core * q + np.minimum(core, r)
    return np.clip(np.minimum((start + count) * tile, total) - start * tile, 0, None)


def core_shares(m: int, n: int, mapping: Mapping) -> list[tuple[int, int]]:
    """(rows, columns) of Y each of ``mapping.cores`` cores computes (:func:`core_extent`
    along the split dimension, the whole other dimension); ``ValueError`` when a core would
    get no tile."""
    total, tile = (m, mapping.tm) if mapping.split == "m" else (n, mapping.tn)
    if mapping.cores > -(-total // tile):
        raise ValueError(f"mapping.cores: {mapping.cores} cores but only {-(-total // tile)} "
                         f"tiles along {mapping.split}")
    shares = [int(core_extent(total, tile, mapping.cores, c)) for c in range(mapping.cores)]
    return [(s, n) if mapping.split == "m" else (m, s) for s in shares]


def fetch_factors(t_m: np.ndarray, t_n: np.ndarray, t_k: np.ndarray, order: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(f_X, f_W, v_Y) of the module docstring: how often each X and W tile is fetched and
    how many visits each output tile gets, for trip counts ``t_*`` and loop-order indices
    ``order`` (into :data:`ORDERS`); vectorised."""
    pos = _POS[np.asarray(order)]
    pm, pn, pk = pos[..., 0], pos[..., 1], pos[..., 2]
    f_x = np.where(((pm > pn) & (t_m > 1)) | ((pk > pn) & (t_k > 1)), t_n, 1)
    f_w = np.where(((pk > pm) & (t_k > 1)) | ((pn > pm) & (t_n > 1)), t_m, 1)
    v_y = np.where(((pm > pk) & (t_m > 1)) | ((pn > pk) & (t_n > 1)), t_k, 1)
    return f_x, f_w, v_y


def core_traffic(m: np.ndarray, k: int, n: np.ndarray, tm: np.ndarray, tn: np.ndarray,
                 tk: np.ndarray, order: np.ndarray, *, x_bits: float, w_bits: float,
                 y_bits: float = 32, w_first_bits: float | None = None, block: int = 1
                 ) -> dict[str, np.ndarray]:
    """:data:`TRAFFIC_KEYS` bytes of one core computing ``m`` × ``n`` outputs (module
    docstring), vectorised over every array argument (a core with m or n = 0 moves
    nothing)."""
    m, n = np.asarray(m), np.asarray(n)
    t_m, t_n, t_k = ceil_div(m, tm), ceil_div(n, tn), ceil_div(k, tk)
    f_x, f_w, v_y = fetch_factors(t_m, t_n, t_k, order)
    mf, nf = m.astype(float), n.astype(float)  # bytes in float: no int64 overflow
    w_quant = nf * float(ceil_div(k, block) * block) * (w_bits / 8)
    if w_first_bits is None:
        w_read, w_write = f_w * w_quant, np.zeros_like(w_quant)
    else:
        w_read = nf * k * (w_first_bits / 8) + (f_w - 1) * w_quant
        w_write = np.where(f_w > 1, w_quant, 0.0)
    y = mf * nf * (y_bits / 8)
    return {"X": f_x * (mf * k * (x_bits / 8)), "W": w_read, "W_write": w_write,
            "Y_write": v_y * y, "Y_read": (v_y - 1) * y}


def dram_traffic(m: int, k: int, n: int, mapping: Mapping, *, x_bits: float, w_bits: float,
                 y_bits: float = 32, w_first_bits: float | None = None, block: int = 1
                 ) -> dict[str, float]:
    """DRAM bytes of the loop nest of ``mapping`` for one M×K×N GEMM, summed over its cores
    (module docstring): ``"X"`` (reads at ``x_bits`` per element), ``"W"`` (reads at
    ``w_bits`` per element of ⌈K/``block``⌉·``block`` padded elements; a run-time W's first
    read at ``w_first_bits`` of K elements), ``"W_write"`` (a run-time W's quantized form
    written back when it is fetched again), ``"Y_write"``, ``"Y_read"`` (outputs and
    partial sums at ``y_bits``)."""
    order = ORDERS.index(mapping.order)
    out = dict.fromkeys(TRAFFIC_KEYS, 0.0)
    for cm, cn in core_shares(m, n, mapping):
        part = core_traffic(cm, k, cn, mapping.tm, mapping.tn, mapping.tk, order,
                            x_bits=x_bits, w_bits=w_bits, y_bits=y_bits,
                            w_first_bits=w_first_bits, block=block)
        for key in TRAFFIC_KEYS:
            out[key] += float(part[key])
    return out


def extents(total: int, tile: int) -> list[tuple[int, int]]:
    """(size, count) of the tiles of ``total`` elements cut into ``tile``-element tiles: the
    full tiles, then the partial last one (sizes > 0 only)."""
    full, edge = divmod(total, tile)
    return [(s, c) for s, c in ((tile, full), (edge, 1)) if c and s]


def core_commands(m: int, k: int, n: int, mapping: Mapping, *, runtime_w: bool = False
                  ) -> list[tuple[Counter[tuple[int, int, int]], Counter[tuple[int, int]]]]:
    """The commands each core runs for ``mapping``: a Counter of GEMM commands by shape
    (rows, columns, K elements; one per tile step, at most 8 shapes) and a Counter of
    quantize commands by shape (W tile columns, K elements; a run-time W's tiles, each
    quantized once, when first loaded)."""
    out = []
    for cm, cn in core_shares(m, n, mapping):
        gemms: Counter[tuple[int, int, int]] = Counter()
        quants: Counter[tuple[int, int]] = Counter()
        for rows, cr in extents(cm, mapping.tm):
            for cols, cc in extents(cn, mapping.tn):
                for kk, ck in extents(k, mapping.tk):
                    gemms[rows, cols, kk] += cr * cc * ck
        if runtime_w:
            for cols, cc in extents(cn, mapping.tn):
                for kk, ck in extents(k, mapping.tk):
                    quants[cols, kk] += cc * ck
        out.append((gemms, quants))
    return out


def tile_candidates(total: int, unit: int, cores: int = 1) -> np.ndarray:
    """Tile sizes searched along a dimension of ``total`` elements in multiples of ``unit``:
    unit·2^i below the padded extent ⌈total/unit⌉·unit, the padded extent itself and, with
    ``cores`` > 1, the size that deals each core one tile (⌈⌈total/unit⌉/cores⌉·unit);
    sorted, unique."""
    units = -(-total // unit)
    sizes = {unit * (1 << i) for i in range(units.bit_length()) if (1 << i) < units}
    sizes.add(units * unit)
    if cores > 1:
        sizes.add(-(-units // cores) * unit)
    return np.array(sorted(sizes), dtype=np.int64)


def tile_bytes(m: int, k: int, n: int, tm: np.ndarray, tn: np.ndarray, tk: np.ndarray, *,
               x_bits: float, w_bits: float, y_bits: float = 32, block: int = 1
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bytes of the largest X, W and Y tile (the first one: min(tile, extent) along each
    dimension): X at ``x_bits``, W as quantized blocks (⌈Tk/block⌉·block elements at
    ``w_bits``), Y at ``y_bits``; vectorised."""
    rm, rn, rk = np.minimum(tm, m), np.minimum(tn, n), np.minimum(tk, k)
    return (rm * rk * (x_bits / 8), rn * ceil_div(rk, block) * block * (w_bits / 8),
            rm * rn * (y_bits / 8))
