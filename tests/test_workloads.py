"""Workload CSVs: the shipped video-DiT tables and SCALE-Sim topologies."""

from __future__ import annotations

import pytest
from semdialect.sim.workloads import WORKLOADS, load_workload, workload_path

# GMACs per denoising step from data/workloads/README.md (§2), computed there by
# gen_workloads.py from the models' architecture values (an independent source).
GMACS_PER_STEP = {
    "opensora2_256px_129f": 252_878.2,
    "opensora2_768px_129f": 7_638_037.9,
    "opensora12_240p_51f": 13_534.5,
    "opensora12_720p_102f": 283_785.2,
    "cogvideox2b_480x720_49f": 119_997.3,
    "latte1_512px_16f": 34_399.0,
    "wan21_1p3b_480x832_81f": 283_001.8,
}


@pytest.mark.parametrize("name", sorted(GMACS_PER_STEP))
def test_shipped_workloads_total_macs(name: str) -> None:
    gemms = load_workload(workload_path(name))
    assert sum(g.macs for g in gemms) / 1e9 == pytest.approx(GMACS_PER_STEP[name], abs=0.06)
    assert (WORKLOADS / "README.md").exists()


def test_scalesim_topologies(tmp_path) -> None:
    gemm = tmp_path / "gemm.csv"
    gemm.write_text("Layer, M, N, K,\nfc1, 64, 128, 256,\n")
    (g,) = load_workload(gemm)
    assert (g.m, g.k, g.n, g.count) == (64, 256, 128, 1)
    conv = tmp_path / "conv.csv"
    conv.write_text(
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,\nconv1, 224, 224, 7, 7, 3, 64, 2,\n"
    )
    (c,) = load_workload(conv)
    assert (c.m, c.k, c.n) == (109 * 109, 7 * 7 * 3, 64)


def test_bad_workloads(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,M,K,N,count\nx,10,0,5,1\n")
    with pytest.raises(ValueError, match="line 2.*'K'"):
        load_workload(bad)
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="unknown header"):
        load_workload(bad)
    with pytest.raises(ValueError, match="unknown"):
        workload_path("nope")
    with pytest.raises(ValueError, match="cannot read"):
        load_workload(tmp_path / "missing.csv")
