"""Attention as one fused operator (QKᵀ, online softmax, ·V; docs/SPEC.md §10).

A workload lists attention per head and sequence as two GEMMs (data/workloads/README.md):
``<prefix>.qk`` = Q·Kᵀ (M = L_q, K = d_k, N = L_k) and ``<prefix>.av`` = P·V (M = L_q,
K = L_k, N = d_v), both with a run-time second operand. :func:`pair_attention` pairs them;
unpaired rows stay plain GEMMs.

**Fused loop nest** (FlashAttention-style; per core, per head and sequence): query tiles of
Tq rows (a multiple of the array's rows) outside, key tiles of Tkv keys (a multiple of B)
inside. Per (query tile i, key tile j): a GEMM command S_ij = Q_i·K_jᵀ (Tq × Tkv × d_k) whose
FP32 tile stays in the out SRAM; the softmax unit updates the running row max and sum,
writes P_ij = exp(S_ij − m) rounded to FP16 into the act SRAM and (j > 0) rescales the O
accumulator by exp(m_old − m_new); a GEMM command O_i += P_ij·V_j (Tq × d_v × Tkv, the
output adder's yin carrying O_i for j > 0). After the last key tile the unit normalizes O_i
by 1/l and O_i (FP32) is written to DRAM once. K and V are FP16 in DRAM and quantized on
chip (one quantize command per K tile of Tkv rows × d_k and per V tile of d_v rows × Tkv):
when the quantized K and V of the whole sequence fit half the weight SRAM they stay resident
(read once); otherwise each query tile streams them again, the first pass writing their
quantized form back to DRAM and the later passes reading it (the rule of a run-time W in
:mod:`sim.mapping`). No score matrix crosses DRAM. Query tiles are dealt among the cores as
row tiles are (:func:`sim.mapping.core_extent`); every core streams its own K and V.

**Softmax unit** (``softmax_width`` = W lane operations per cycle, :func:`softmax_cycles`):
one lane operation per score (max update, subtract, exp, running-sum add, FP32 → FP16
round-to-nearest-even of P), per rescaled or normalized O element (an FP32 multiply) and per
row correction factor exp(m_old − m_new) or final reciprocal 1/l (an exp-class operation).
The unfused operator's separate softmax pass (:func:`softmax_pass`) takes three lane
operations per score (the online max/sum pass, the exp pass, the normalization) and one
reciprocal per row. This is a performance and energy model only: the golden numerics of
attention are unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from semdialect.sim.mapping import Mapping, ceil_div, core_extent, extents
from semdialect.sim.workloads import Gemm

#: bytes of an FP16 (Q, K, V, P) and an FP32 (S, O) element
_FP16, _FP32 = 2, 4
#: lane operations per score of the unfused softmax pass: online max/sum, exp, normalize
UNFUSED_OPS_PER_SCORE = 3


@dataclass(frozen=True)
class AttentionPair:
    """A ``<prefix>.qk`` row and its ``<prefix>.av`` row (same prefix, count and M;
    qk.N = av.K = L_k, qk.K = d_k, av.N = d_v)."""

    qk: Gemm
    av: Gemm

    @property
    def layer(self) -> str:
        """``<prefix>.qk+av``."""
        return self.qk.layer + "+av"

    @property
    def lq(self) -> int:
        return self.qk.m

    @property
    def dk(self) -> int:
        return self.qk.k

    @property
    def lk(self) -> int:
        return self.qk.n

    @property
    def dv(self) -> int:
        return self.av.n

    @property
    def count(self) -> int:
        return self.qk.count

    @property
    def macs(self) -> int:
        """MACs of one run: both GEMMs."""
        return self.qk.m * self.qk.k * self.qk.n + self.av.m * self.av.k * self.av.n


def pair_attention(gemms: Sequence[Gemm]) -> list[Gemm | AttentionPair]:
    """``gemms`` with each ``<prefix>.qk`` row and a ``<prefix>.av`` row of the same prefix
    (the i-th of each, in order) replaced by one :class:`AttentionPair` at the qk row's place;
    unpaired rows stay. ``ValueError`` naming the pair when its shapes or counts disagree."""
    avs: dict[str, list[int]] = {}
    for i, g in enumerate(gemms):
        if g.layer.endswith(".av"):
            avs.setdefault(g.layer[:-3], []).append(i)
    qks: dict[str, int] = {}
    partner: dict[int, int] = {}
    for i, g in enumerate(gemms):
        if not g.layer.endswith(".qk"):
            continue
        prefix = g.layer[:-3]
        nth = qks.get(prefix, 0)
        qks[prefix] = nth + 1
        if nth < len(avs.get(prefix, ())):
            partner[i] = avs[prefix][nth]
    used = set(partner.values())
    out: list[Gemm | AttentionPair] = []
    for i, g in enumerate(gemms):
        if i in used:
            continue
        if i not in partner:
            out.append(g)
            continue
        av = gemms[partner[i]]
        checks = (("M", g.m, av.m), ("count", g.count, av.count),
                  ("qk.N = av.K", g.n, av.k), ("qk.K = av.N", g.k, av.n))
        for what, a, b in checks:
            if a != b:
                raise ValueError(f"gemms: attention pair {g.layer!r}/{av.layer!r}: {what} "
                                 f"differs ({a} vs {b})")
        out.append(AttentionPair(g, av))
    return out


def quantized_kv_bytes(p: AttentionPair, *, block: int, block_bytes: float) -> float:
    """Bytes of the quantized K (L_k rows of ⌈d_k/B⌉ blocks) and V (d_v rows of ⌈L_k/B⌉
    blocks; key tiles are multiples of B, so only the last block is padded)."""
    return (p.lk * -(-p.dk // block) + p.dv * -(-p.lk // block)) * block_bytes


def fused_tile_bytes(p: AttentionPair, tq: np.ndarray, tkv: np.ndarray, *, block: int,
                     block_bytes: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bytes of the fused loop nest's tiles (vectorised): act = a Q tile and a P tile
    (FP16); weight = one quantized K tile and V tile (:func:`kv_tile_bytes`; needed only
    when the whole quantized K and V, :func:`quantized_kv_bytes`, are not resident); out = an
    S tile and the O accumulator (FP32)."""
    rq, rkv = np.minimum(tq, p.lq), np.minimum(tkv, p.lk)
    act = rq * (p.dk + rkv) * _FP16
    out = rq * (rkv + p.dv) * _FP32
    return act, kv_tile_bytes(p, rkv, block=block, block_bytes=block_bytes), out


def kv_tile_bytes(p: AttentionPair, rkv: np.ndarray, *, block: int, block_bytes: float
                  ) -> np.ndarray:
    """Quantized bytes of one K tile (rkv rows × ⌈d_k/B⌉ blocks) and one V tile (d_v rows ×
    ⌈rkv/B⌉ blocks)."""
    return (rkv * -(-p.dk // block) + p.dv * ceil_div(rkv, block)) * block_bytes


def fused_core_traffic(p: AttentionPair, lq: np.ndarray, tq: np.ndarray, *, resident: bool,
                       kv_quant_bytes: float) -> dict[str, np.ndarray]:
    """DRAM bytes (:data:`sim.mapping.TRAFFIC_KEYS`) of one core running ``lq`` query rows
    in tiles of ``tq`` (vectorised; 0 rows move nothing): ``X`` = Q (FP16, once), ``W`` = K
    and V (FP16 once; streamed with t_q > 1 query tiles: + (t_q − 1) quantized re-reads),
    ``W_write`` = their quantized write-back (streamed, t_q > 1), ``Y_write`` = O (FP32,
    once), ``Y_read`` = 0."""
    lq = np.asarray(lq)
    t_q = ceil_div(lq, tq)
    busy = lq > 0
    again = (t_q > 1) & (not resident)
    fp16_kv = p.lk * (p.dk + p.dv) * _FP16
    return {"X": lq * p.dk * _FP16 * 1.0,
            "W": np.where(busy, fp16_kv + np.where(again, (t_q - 1) * kv_quant_bytes, 0.0),
                          0.0),
            "W_write": np.where(again, kv_quant_bytes, 0.0),
            "Y_write": lq * p.dv * _FP32 * 1.0, "Y_read": np.zeros(np.shape(lq))}


def softmax_cycles(rows: np.ndarray, p: AttentionPair, tkv: np.ndarray, width: int
                   ) -> np.ndarray:
    """Softmax-unit cycles of one query tile of ``rows`` rows over all key tiles (module
    docstring; ⌈lane operations / W⌉ per key tile, then the normalization): key tile 0
    ⌈rows·s_0/W⌉; every later key tile of s keys ⌈rows·(s + d_v + 1)/W⌉ (scores, the O
    rescale, the correction factors); the end ⌈rows·(d_v + 1)/W⌉ (normalize O, 1/l).
    Vectorised."""
    rows, tkv = np.asarray(rows), np.asarray(tkv)
    full, edge = np.divmod(p.lk, tkv)
    first = np.where(full > 0, tkv, edge)
    later_full = np.maximum(full - 1, 0)
    later_edge = (edge > 0) & (full > 0)
    return (ceil_div(rows * first, width)
            + later_full * ceil_div(rows * (tkv + p.dv + 1), width)
            + np.where(later_edge, ceil_div(rows * (edge + p.dv + 1), width), 0)
            + ceil_div(rows * (p.dv + 1), width))


@dataclass(frozen=True)
class CoreWork:
    """What one core does for a fused pair: GEMM commands by shape (rows, columns, K
    elements), quantize commands by shape (rows, K elements), softmax-unit cycles and lane
    operations (``scores``, ``out_elems`` rescaled/normalized O elements, ``row_ops``
    correction factors and reciprocals) and its query ``rows``."""

    gemms: Counter[tuple[int, int, int]]
    quants: Counter[tuple[int, int]]
    softmax_cycles: int
    scores: int
    out_elems: int
    row_ops: int
    rows: int


def fused_work(p: AttentionPair, mapping: Mapping, width: int) -> list[CoreWork]:
    """Every core's :class:`CoreWork` for ``mapping`` (``tm`` = Tq, ``tn`` = Tkv, query
    tiles dealt among ``mapping.cores`` cores); cores without a query tile are left out."""
    out = []
    kv = extents(p.lk, mapping.tn)
    t_kv = sum(c for _, c in kv)
    for core in range(mapping.cores):
        lq = int(core_extent(p.lq, mapping.tm, mapping.cores, core))
        if not lq:
            continue
        gemms: Counter[tuple[int, int, int]] = Counter()
        quants: Counter[tuple[int, int]] = Counter()
        cycles = 0
        for rows, cr in extents(lq, mapping.tm):
            cycles += cr * int(softmax_cycles(rows, p, mapping.tn, width))
            for s, cs in kv:
                gemms[rows, s, p.dk] += cr * cs
                gemms[rows, p.dv, s] += cr * cs
        for s, cs in kv:
            quants[s, p.dk] += cs
            quants[p.dv, s] += cs
        out.append(CoreWork(gemms, quants, cycles, scores=lq * p.lk,
                            out_elems=lq * p.dv * t_kv, row_ops=lq * t_kv, rows=lq))
    return out


def fused_sram_bytes(p: AttentionPair, lq: np.ndarray, tkv: np.ndarray,
                     dram: dict[str, np.ndarray], *, rows: int, block: int,
                     block_bytes: float) -> dict[str, np.ndarray]:
    """Bytes through each SRAM of one core running ``lq`` query rows (vectorised): act = Q
    filled, Q read by every QKᵀ command, P written and read (FP16); weight = quantized K/V
    written (every fetch), read for the write-back, and read by the array once per row
    tile of every command; out = S drained and read by the softmax unit, O drained by every
    ·V command, read back as yin (key tiles after the first), read and written by every
    rescale/normalization, and read for the DRAM write."""
    lq = np.asarray(lq)
    t_kv = ceil_div(p.lk, tkv)
    row_tiles = ceil_div(lq, rows)
    kb_k, kb_l = -(-p.dk // block), -(-p.lk // block)
    quant_first = quantized_kv_bytes(p, block=block, block_bytes=block_bytes)
    scores = lq * p.lk
    kv_fetched = np.where(lq > 0, quant_first, 0.0) + np.maximum(
        dram["W"] - p.lk * (p.dk + p.dv) * _FP16, 0.0)
    act = dram["X"] + t_kv * lq * p.dk * _FP16 + 2 * scores * _FP16
    weight = (kv_fetched + dram["W_write"]
              + row_tiles * (p.lk * kb_k + p.dv * kb_l) * block_bytes)
    o_elems = lq * p.dv
    out = (2 * scores * _FP32 + o_elems * _FP32 * (t_kv + (t_kv - 1) + 2 * t_kv)
           + dram["Y_write"])
    return {"act": act, "weight": weight, "out": out}


@dataclass(frozen=True)
class SoftmaxCore:
    """One core's share of an unfused softmax pass: ``rows`` of S, softmax-unit ``cycles``,
    ``scores``, bytes of S read (``s_read``) and of P written (``p_write``)."""

    rows: int
    cycles: int
    scores: int
    s_read: int
    p_write: int


def softmax_pass(p: AttentionPair, *, cores: int, width: int, out_half_bytes: float
                 ) -> list[SoftmaxCore]:
    """The unfused operator's softmax pass, per core (rows dealt as contiguous runs, as row
    tiles of one row): S (FP32) read from DRAM once when a row of L_k scores fits half the
    out SRAM (the row is kept on chip for the exp and normalization passes), else twice; P
    written as FP16; rows·⌈(3·L_k + 1)/W⌉ cycles (three lane operations per score, one
    reciprocal per row)."""
    reads = 1 if p.lk * _FP32 <= out_half_bytes else 2
    per_row = -(-(UNFUSED_OPS_PER_SCORE * p.lk + 1) // width)
    used = min(cores, p.lq)
    out = []
    for core in range(used):
        rows = int(core_extent(p.lq, 1, used, core))
        out.append(SoftmaxCore(rows, rows * per_row, rows * p.lk, reads * rows * p.lk * _FP32,
                               rows * p.lk * _FP16))
    return out


__all__ = ["UNFUSED_OPS_PER_SCORE", "AttentionPair", "CoreWork", "SoftmaxCore",
           "fused_core_traffic", "fused_sram_bytes", "fused_tile_bytes", "fused_work",
           "kv_tile_bytes", "pair_attention", "quantized_kv_bytes", "softmax_cycles",
           "softmax_pass"]
