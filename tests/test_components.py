# amaranth: UnusedElaboratable=no
"""rtl/components.py builds every component with the configuration's register stages: every
PE kind's PE, PE core and MAC array with the configuration's ``[pipeline]``, the selector and
both block quantizers with ``selector_stages``, the tile drain on the rows × cols·d tile, and
``addend_adder`` (one output adder lane) with the GEMM core's ``addend_stages``."""

from __future__ import annotations

import pytest

from semdialect.config import resolve_config, shipped_configs
from semdialect.designs import PEKind
from semdialect.rtl.components import components, frontend_module, kind_module
from semdialect.rtl.gemm_core import GemmCore
from semdialect.rtl.timing import Pipeline


@pytest.mark.parametrize("name", ["small", "default", "blockdialect", "xlarge"])
def test_components_follow_the_configuration_pipeline(name: str) -> None:
    cfg = resolve_config(name)
    pipe = Pipeline.of(cfg)
    made = components(cfg, max_kb=8)
    for kind in PEKind:
        for base in ("pe", "pe_core"):
            pe = made[kind_module(base, kind)]()
            assert pe.pipeline == pipe, (kind, base)
            assert pe.latency == pipe.pe_latency
        assert frontend_module(kind) in made
    array = made["mac_array"]()
    assert array.pipeline == pipe and array.latency == pipe.array_latency
    for quant in ("block_quantizer", "block_quantizer_residual"):
        bq = made[quant]()
        assert bq.stages == cfg.selector_stages, quant
        assert bq.latency == pipe.quantizer_latency(cfg.selector_cycles), quant
    assert made["format_selector"]().stages == cfg.selector_stages
    drain = made["tile_drain"]()
    assert drain.width == cfg.drain_width
    assert (drain.beat_rows, drain.beat_cols) == (cfg.drain_rows, cfg.drain_cols)
    adder = made["addend_adder"]()
    assert (adder.lanes, adder.stages) == (1, cfg.addend_stages)
    core = GemmCore.from_config(cfg, max_kb=8)
    assert core.output_latency == pipe.output_latency == cfg.addend_stages
    assert core.tile_cols == cfg.tile_cols == cfg.cols * cfg.acc_stages


def test_shipped_pipelines() -> None:
    """The shipped configurations' output adders: pipelined (5 stages) wherever the array is
    (every configuration but ``small``, which keeps the combinational adder)."""
    stages = {name: resolve_config(name).addend_stages for name in shipped_configs()}
    assert stages.pop("small") == 0
    assert set(stages.values()) == {5}
