"""The cycle/traffic model of a workload (sim/model.py)."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import pytest

from semdialect.config import load_config
from semdialect.designs import DESIGNS, PEKind, hardware_designs
from semdialect.rtl.timing import TENSOR_SCALE_STAGES, Pipeline
from semdialect.sim.cycles import gemm_cycles, gemm_cycles_raw, quantize_cycles_raw
from semdialect.sim.model import Design, layer_result, model_designs, model_workload, step_cycles
from semdialect.sim.workloads import Gemm, load_workload, workload_path

CFG = load_config("configs/default.toml")
#: the default array's frontend and drain, as gemm_cycles_raw takes them
ARRAY = {"lanes": CFG.lanes, "drain_width": CFG.drain_width}


def raw(sel: int, m: int, n: int, kb: int, cfg=CFG) -> int:
    """gemm_cycles_raw on ``cfg``'s array, lanes, drain and register stages."""
    return gemm_cycles_raw(cfg.rows, cfg.cols, sel, m, n, kb, lanes=cfg.lanes,
                           drain_width=cfg.drain_width, pipeline=Pipeline.of(cfg))


def test_layer_result_counts() -> None:
    g = Gemm("fc", m=20, k=96, n=10, count=3)
    r = layer_result(Design.of("semanticdialect", CFG), g)
    assert r.cycles == gemm_cycles(CFG, 20, 10, 96)
    assert r.macs == 20 * 96 * 10
    assert r.utilization == pytest.approx(r.macs / (r.cycles * 8 * 8 * 32))
    row_tiles = math.ceil(20 / 8)
    assert r.x_bytes == 20 * 96 * 2 and r.y_bytes == 20 * 10 * 4
    assert r.w_elem_bytes == row_tiles * 10 * 96 / 2  # 4-bit codes, re-sent per row tile
    assert r.w_se_bytes == row_tiles * 10 * 3 * 5 / 8  # 5-bit SE per block
    assert r.w_dialect_bytes == row_tiles * 10 * 3 * 5 / 8  # 5-bit sd32 dialect id per block
    assert r.w_meta_bytes == r.w_se_bytes + r.w_dialect_bytes
    mx = layer_result(Design.of("mxfp4", CFG), g)
    assert mx.w_se_bytes == row_tiles * 10 * 3 * 8 / 8 and mx.w_dialect_bytes == 0  # E8M0
    assert r.residual_bytes == 0 and r.residual_rows == 0
    assert r.w_fp16_bytes == r.w_quant_bytes == 0  # static weights: quantized offline
    assert r.static == "W" and r.breakdown.quantize == 0


def test_designs_differ_where_they_should() -> None:
    g = Gemm("fc", m=64, k=1024, n=64)
    sd = layer_result(Design.of("semanticdialect", CFG), g)
    bd = layer_result(Design.of("blockdialect", CFG), g)
    i8 = layer_result(Design.of("mxint8", CFG), g)
    assert sd.cycles == raw(32 // CFG.formats_per_cycle, 64, 64, 32)
    assert bd.cycles == raw(1, 64, 64, 32)
    assert i8.w_elem_bytes == 2 * sd.w_elem_bytes
    dec = layer_result(Design.of("semanticdialect", CFG, "0.05"), g)
    m_res = math.ceil(Fraction(5, 100) * 64)
    # the second pass: a plain GEMM of the salient rows (adding the main outputs is free)
    assert dec.cycles == sd.cycles + raw(CFG.selector_cycles, m_res, 64, 32)
    assert dec.breakdown.residual == dec.cycles - sd.cycles
    # residuals out of the main pass and into the second (FP16), main outputs read back
    # and the sums written (FP32)
    assert dec.residual_bytes == 2 * m_res * 1024 * 2 + 2 * m_res * 64 * 4
    assert dec.w_elem_bytes == (8 + 1) * 64 * 1024 / 2  # weights re-sent per row tile of both
    assert dec.macs == sd.macs and dec.utilization < sd.utilization
    with pytest.raises(ValueError, match="design: unknown 'fp8'"):
        Design.of("fp8", CFG)
    with pytest.raises(ValueError, match="design: int4 has no PE"):
        Design.of(DESIGNS["int4"], CFG)
    padded = layer_result(Design.of("mxfp4", CFG), Gemm("odd", 4, 68, 4))  # K padded to 96
    assert padded.cycles == raw(1, 4, 4, 3)
    assert padded.macs == 4 * 68 * 4


def test_whole_workload_step() -> None:
    gemms = load_workload(workload_path("opensora2_256px_129f"))
    rs = model_workload(Design.of("semanticdialect", CFG), gemms)
    assert len(rs) == len(gemms)
    sel = CFG.selector_cycles
    want = sum((raw(sel, g.m, g.n, -(-g.k // 32))
                + (quantize_cycles_raw(8, sel, g.n, -(-g.k // 32), lanes=CFG.lanes,
                                       pipeline=Pipeline.of(CFG))
                   if g.static == "none" else 0)) * g.count for g in gemms)
    assert step_cycles(rs) == want
    assert all(0 < r.utilization <= 1 for r in rs)


def test_mx_designs_keep_ocp_32_element_blocks() -> None:
    small = replace(CFG, block=16, formatbook="dfp4", formats_per_cycle=4)
    g = Gemm("fc", m=16, k=256, n=16)
    for name in ("mxfp4", "mxint8"):
        d = Design.of(name, small)
        assert d.pe is PEKind(name)
        assert d.cfg.block == 32 and d.cfg.rows == small.rows
        r = layer_result(d, g)
        assert r.cycles == raw(1, 16, 16, 256 // 32)  # no selector cycles, same lanes/drain
        assert r.utilization == pytest.approx(r.macs / (r.cycles * 8 * 8 * 32))
    assert Design.of("semanticdialect", small).cfg.block == 16


def test_model_designs_are_the_registry_hardware_designs() -> None:
    """The cycle model compares exactly the registry's hardware designs, in its order, each
    with the widths its golden format stores (written out here for the shipped formats)."""
    models = model_designs(CFG)
    assert [d.name for d in models] == [d.name for d in hardware_designs()]
    widths = {d.name: (d.element_bits, d.se_bits, d.id_bits, d.sel_cycles) for d in models}
    assert widths.items() >= {
        "semanticdialect": (4, 5, 5, 32 // CFG.formats_per_cycle),  # sd32: K/P cycles
        "blockdialect": (4, 5, 4, 1),  # dfp4: 16 dialects, two-stage: 1 cycle
        "mxfp4": (4, 8, 0, 1),  # E2M1 + E8M0
        "mxint8": (8, 8, 0, 1),  # int8 + E8M0
    }.items()


def test_configured_design_follows_the_configuration() -> None:
    """``semanticdialect`` is the configuration itself: a dfp4 configuration's model stores
    dfp4's 4-bit dialect ids and takes its own selector cycles."""
    small = load_config("configs/small.toml")  # dfp4, B = 16, lut, 4 formats per cycle
    d = Design.of("semanticdialect", small)
    assert d.cfg == small and d.id_bits == 4 and d.sel_cycles == 16 // 4
    assert Design.of("blockdialect", small).cfg.block == 16


def test_every_design_uses_the_configured_lanes_and_drain() -> None:
    """Lanes and drain width come from the configuration, for the fixed-format designs too
    (with 1 selector cycle per block): a 1-lane, 1-output drain array is slower."""
    narrow = replace(CFG, lanes=1, drain_width=1, formats_per_cycle=8)  # sd32: C_sel = 4
    g = Gemm("fc", m=24, k=256, n=20)
    for d in model_designs(narrow):
        assert (d.cfg.lanes, d.cfg.drain_width) == (1, 1), d.name
        r = layer_result(d, g)
        # NVFP4's outputs also pass the drain's tensor-scale multiplier (SPEC §8)
        tail = TENSOR_SCALE_STAGES if d.pe.has_tensor_scale else 0
        assert r.cycles == tail + raw(d.sel_cycles, 24, 20, 256 // d.cfg.block, cfg=d.cfg), d.name
        assert r.cycles > layer_result(Design.of(d.name, CFG), g).cycles, d.name
        assert r.peak_drain_bytes_per_cycle == 4
        assert r.peak_frontend_bytes_per_cycle == d.cfg.block * 2 / d.sel_cycles
    assert Design.of("semanticdialect", narrow).sel_cycles == 4
    assert Design.of("mxfp4", narrow).sel_cycles == 1


def test_runtime_second_operand_costs_a_quantize_command() -> None:
    """static = none: a quantize command of N rows × KB blocks before the GEMM, exactly; Wᵀ
    enters as FP16 once, leaves quantized once and re-enters per row tile as weights do."""
    for name in ("semanticdialect", "blockdialect", "mxint8"):
        d = Design.of(name, replace(CFG, formats_per_cycle=8))
        for m, k, n in ((20, 96, 10), (1, 32, 300), (64, 68, 8)):
            w = layer_result(d, Gemm("qk", m, k, n, static="W"))
            a = layer_result(d, Gemm("qk", m, k, n, static="none"))
            kb = -(-k // 32)
            quant = quantize_cycles_raw(8, d.sel_cycles, n, kb, lanes=d.cfg.lanes,
                                        pipeline=Pipeline.of(d.cfg))
            assert a.cycles == w.cycles + quant
            assert a.breakdown.quantize == quant
            assert {**a.breakdown.parts(), "quantize": 0} == w.breakdown.parts()
            assert a.w_fp16_bytes == n * k * 2
            assert a.w_quant_bytes == n * kb * (32 * d.element_bits + d.se_bits + d.id_bits) / 8
            assert (a.w_elem_bytes, a.w_se_bytes, a.w_dialect_bytes) == (
                w.w_elem_bytes, w.w_se_bytes, w.w_dialect_bytes)
            assert a.total_bytes == w.total_bytes + a.w_fp16_bytes + a.w_quant_bytes
            assert a.frontend_bytes == w.frontend_bytes + n * k * 2
