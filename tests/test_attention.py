"""Attention as a fused operator (sim/attention.py, docs/SPEC.md §10): pairing the qk and av
rows, the fused loop nest's DRAM traffic and work counted by hand, the unfused softmax pass,
and fused against unfused on shipped workloads."""

from __future__ import annotations

from dataclasses import replace

import pytest

from semdialect.config import resolve_config
from semdialect.sim.attention import (
    AttentionPair,
    SoftmaxCore,
    fused_work,
    pair_attention,
    softmax_pass,
)
from semdialect.sim.mapping import Mapping
from semdialect.sim.memory import DRAM_KEYS, evaluate_fused, map_fused, model_system
from semdialect.sim.model import Design
from semdialect.sim.workloads import Gemm, load_workload, workload_path

CLOCK = 250.0


def _design(**system: object) -> Design:
    return Design.of("semanticdialect", replace(resolve_config("default"), **system))


def _pair(lq: int, dk: int, lk: int, dv: int, count: int = 1) -> AttentionPair:
    return AttentionPair(Gemm("a.qk", lq, dk, lk, count, "none"),
                         Gemm("a.av", lq, lk, dv, count, "none"))


def test_pairing_keeps_order_and_unpaired_rows() -> None:
    qk, av = Gemm("s.qk", 64, 32, 96, 4, "none"), Gemm("s.av", 64, 96, 32, 4, "none")
    lone = Gemm("t.qk", 5, 8, 5, 1, "none")
    fc = Gemm("fc", 10, 10, 10)
    assert pair_attention([qk, fc, av, lone]) == [AttentionPair(qk, av), fc, lone]
    # two pairs of one prefix: the i-th qk with the i-th av
    qk2, av2 = Gemm("s.qk", 8, 16, 8, 2, "none"), Gemm("s.av", 8, 8, 16, 2, "none")
    assert pair_attention([qk, qk2, av, av2]) == [AttentionPair(qk, av), AttentionPair(qk2, av2)]
    assert AttentionPair(qk, av).layer == "s.qk+av"


@pytest.mark.parametrize(("av", "what"), [
    (Gemm("s.av", 64, 96, 48, 4, "none"), "qk.K = av.N"),
    (Gemm("s.av", 64, 90, 32, 4, "none"), "qk.N = av.K"),
    (Gemm("s.av", 60, 96, 32, 4, "none"), "M"),
    (Gemm("s.av", 64, 96, 32, 3, "none"), "count"),
])
def test_inconsistent_pair_is_an_error(av: Gemm, what: str) -> None:
    qk = Gemm("s.qk", 64, 32, 96, 4, "none")
    with pytest.raises(ValueError, match=f"^gemms: attention pair 's.qk'/'s.av': {what} "):
        pair_attention([qk, av])


def test_fused_traffic_with_resident_k_and_v() -> None:
    """L_q = 64, d_k = d_v = 64, L_k = 96: the quantized K and V ((96·2 + 64·3) sd32 blocks of
    17.25 bytes = 6624) fit half the 128 KiB weight SRAM, so Q, K, V are read once as FP16 and
    O written once as FP32; no score (S: 64·96·4 bytes) or P crosses DRAM."""
    r = map_fused(_design(fused_attention=True), _pair(64, 64, 96, 64, 3), CLOCK)
    assert r.dram_bytes == {"X": 64 * 64 * 2, "W": 96 * (64 + 64) * 2, "W_write": 0.0,
                            "Y_write": 64 * 64 * 4, "Y_read": 0.0, "residual": 0.0}
    assert r.kind == "attention" and r.count == 3 and r.macs == 2 * 64 * 64 * 96
    assert set(r.dram_bytes) == set(DRAM_KEYS)


def test_fused_traffic_streams_k_and_v_when_they_do_not_fit() -> None:
    """8 KiB of weight SRAM (4096 bytes a tile) cannot keep 6624 bytes of K and V: each query
    tile streams them, FP16 the first time (then written back quantized), quantized after."""
    pair = _pair(512, 64, 96, 64)
    r = map_fused(_design(fused_attention=True, weight_sram_kib=8), pair, CLOCK)
    t_q = -(-512 // r.mapping.tm)
    assert t_q > 1  # half the out SRAM holds at most 85 rows of S and O
    assert r.dram_bytes["W"] == 96 * 128 * 2 + (t_q - 1) * 6624
    assert r.dram_bytes["W_write"] == 6624
    assert r.dram_bytes["X"] == 512 * 64 * 2 and r.dram_bytes["Y_write"] == 512 * 64 * 4


def test_fused_work_of_a_hand_mapping() -> None:
    """L_q = 20, L_k = 70, d = 64 in query tiles of 16 (16, 4) and key tiles of 32 (32, 32,
    6): one QKᵀ and one ·V command per (query, key) tile, one quantize command per K and V
    tile, and the softmax unit (56 lanes) per query tile: ⌈r·32/56⌉ + ⌈r·97/56⌉ + ⌈r·71/56⌉
    + ⌈r·65/56⌉ = 10 + 28 + 21 + 19 (r = 16) and 3 + 7 + 6 + 5 (r = 4)."""
    pair = _pair(20, 64, 70, 64)
    (work,) = fused_work(pair, Mapping(16, 32, 64, "mnk", "m", 1), 56)
    assert dict(work.gemms) == {(16, 32, 64): 2, (16, 6, 64): 1, (4, 32, 64): 2, (4, 6, 64): 1,
                                (16, 64, 32): 2, (16, 64, 6): 1, (4, 64, 32): 2, (4, 64, 6): 1}
    assert dict(work.quants) == {(32, 64): 2, (6, 64): 1, (64, 32): 2, (64, 6): 1}
    assert work.softmax_cycles == 78 + 21
    assert (work.scores, work.out_elems, work.row_ops) == (20 * 70, 20 * 64 * 3, 20 * 3)
    design = _design()
    want = (sum(c * design.gemm_cycles(m, n, -(-k // 32)) for (m, n, k), c in work.gemms.items())
            + sum(c * design.quantize_cycles(m, -(-k // 32)) for (m, k), c in work.quants.items())
            + 99)
    r = evaluate_fused(design, pair, Mapping(16, 32, 64, "mnk", "m", 1), CLOCK)
    assert r.core_cycles == want
    with pytest.raises(ValueError, match="^mapping.tn: "):
        evaluate_fused(design, pair, Mapping(16, 56, 64, "mnk", "m", 1), CLOCK)


def test_query_tiles_are_dealt_among_cores() -> None:
    pair = _pair(1000, 64, 96, 64)
    works = fused_work(pair, Mapping(64, 32, 64, "mnk", "m", 3), 56)
    assert [w.rows for w in works] == [384, 320, 296]  # 16 tiles: 6, 5, 5 (the last partial)
    assert sum(w.scores for w in works) == 1000 * 96


def test_unfused_softmax_pass_reads_s_once_when_a_row_fits() -> None:
    """A row of 96 FP32 scores fits half the out SRAM: S read once; 5000 scores per row do
    not fit 16 KiB: twice. Three lane operations per score and one per row."""
    short = softmax_pass(_pair(10, 64, 96, 64), cores=1, width=56, out_half_bytes=32768)
    assert short == [SoftmaxCore(rows=10, cycles=10 * -(-(3 * 96 + 1) // 56), scores=960,
                                 s_read=960 * 4, p_write=960 * 2)]
    long = softmax_pass(_pair(10, 64, 5000, 64), cores=2, width=56, out_half_bytes=16384)
    assert [c.s_read for c in long] == [2 * 5 * 5000 * 4] * 2


def test_unfused_pair_is_qk_softmax_av_and_s_crosses_dram() -> None:
    gemms = [Gemm("a.qk", 256, 64, 300, 2, "none"), Gemm("a.av", 256, 300, 64, 2, "none")]
    rs = model_system(_design(), gemms, CLOCK)
    assert [r.layer for r in rs] == ["a.qk", "a.softmax", "a.av"]
    assert [r.kind for r in rs] == ["gemm", "softmax", "gemm"]
    assert rs[0].dram_bytes["Y_write"] >= 256 * 300 * 4  # S leaves as FP32
    assert rs[1].dram_bytes["X"] == 256 * 300 * 4 and rs[1].dram_bytes["Y_write"] == 256 * 300 * 2
    assert rs[2].dram_bytes["X"] >= 256 * 300 * 2  # P enters the ·V GEMM as FP16
    fused = model_system(_design(fused_attention=True), gemms, CLOCK)
    assert [r.layer for r in fused] == ["a.qk+av"]


@pytest.mark.parametrize(("config", "workload", "at_most"), [
    ("default", "wan21_1p3b_480x832_81f", 0.55),
    ("default", "opensora2_256px_129f", 0.55),
    ("array128", "wan21_1p3b_480x832_81f", 0.15),
])
def test_fused_attention_moves_far_fewer_dram_bytes(config: str, workload: str,
                                                    at_most: float) -> None:
    """The 32,760- and 8,828-token self-attention: the unfused score matrices (L² FP32, read
    back, P written and read) against K and V streamed per query tile."""
    rows = [g for g in load_workload(workload_path(workload))
            if g.layer.endswith(("attn.qk", "attn.av"))][:2]
    seq = rows[0].m
    assert seq in (32760, 8828) and rows[0].n == seq
    cfg = resolve_config(config)
    unfused = model_system(Design.of("semanticdialect", cfg), rows, CLOCK)
    (fused,) = model_system(Design.of("semanticdialect", replace(cfg, fused_attention=True)),
                            rows, CLOCK)
    before = sum(r.dram_total for r in unfused)
    assert before > 2 * seq * seq * 4  # S written and read at least once
    assert fused.dram_total <= at_most * before
    assert fused.cycles < sum(r.cycles for r in unfused)
    assert fused.energy_total_pj < sum(r.energy_total_pj for r in unfused)
    assert fused.energy_pj["softmax"] > 0
