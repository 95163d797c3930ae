"""SCALE-Sim interchange (sim/scalesim.py, the SCALE-Sim readers of sim/workloads.py and
``semdialect scalesim``): topologies and configurations out, real SCALE-Sim files in.

Real SCALE-Sim files are byte-exact copies in tests/data/scalesim/ (sources, commits and the
MIT licence in its README.md). What SCALE-Sim itself reads is mirrored from its code:
scale-sim-v3 @ fab89b7 ``scalesim/scale_config.py`` (``read_conf_file``) and
``scalesim/topology_utils.py`` (``load_arrays_gemm``). Every expected number is worked out by
hand in the comments next to it.
"""

from __future__ import annotations

import argparse
import configparser
import csv
import io
import math
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from semdialect.cli import build_parser, main
from semdialect.config import MAX_DRAM_GBPS, Config, load_config, resolve_config
from semdialect.sim import scalesim as ss
from semdialect.sim.memory import map_gemm
from semdialect.sim.model import Design
from semdialect.sim.workloads import Gemm, load_workload, workload_path

DATA = Path(__file__).parent / "data" / "scalesim"
#: default config: 8x8, B = 32, 128/128/64 KiB SRAMs, 25.6 GB/s; sd32 block = (32·4+5+5)/8 B
SD32_BLOCK_BYTES = (32 * 4 + 5 + 5) / 8


# --------------------------------------------------------------------------------------------
# SCALE-Sim's own reading code, mirrored (scale-sim-v3 @ fab89b7)
# --------------------------------------------------------------------------------------------

def scalesim_v3_reads(path: Path) -> dict[str, object]:
    """What scale-sim-v3's ``scale_config.read_conf_file`` takes from a .cfg: the same
    ``configparser`` calls on the same sections and keys, in its order (v2's reader reads a
    subset: general, run_presets InterfaceBandwidth, the architecture_presets keys)."""
    config = configparser.ConfigParser()
    config.read(path)
    out: dict[str, object] = {"run_name": config.get("general", "run_name")}
    bw_mode = config.get("run_presets", "InterfaceBandwidth")
    assert bw_mode in ("USER", "CALC")
    out["use_user_bandwidth"] = bw_mode == "USER"
    out["use_ramulator_trace"] = config.get("run_presets", "UseRamulatorTrace") == "True"
    sec = "architecture_presets"
    for key in ("ArrayHeight", "ArrayWidth", "ifmapsramszkB", "filtersramszkB",
                "ofmapsramszkB", "IfmapOffset", "FilterOffset", "OfmapOffset"):
        out[key.lower()] = int(config.get(sec, key))
    out["df"] = config.get(sec, "Dataflow")
    out["req_buf_sz_rd"] = int(config.get(sec, "ReadRequestBuffer"))
    out["req_buf_sz_wr"] = int(config.get(sec, "WriteRequestBuffer"))
    lay = "layout"
    out["ifmap_custom_layout"] = config.getboolean(lay, "IfmapCustomLayout")
    out["filter_custom_layout"] = config.getboolean(lay, "FilterCustomLayout")
    for key in ("IfmapSRAMBankBandwidth", "IfmapSRAMBankNum", "IfmapSRAMBankPort",
                "FilterSRAMBankBandwidth", "FilterSRAMBankNum", "FilterSRAMBankPort"):
        out[key.lower()] = int(config.get(lay, key))
    if out["use_user_bandwidth"]:
        out["bandwidths"] = [int(x.strip())
                             for x in config.get(sec, "Bandwidth").strip().split(",")]
    out["sparsity_support"] = config.get("sparsity", "SparsitySupport").lower() == "true"
    assert not config.has_section("network_presets")  # v2/v3 read its key from the wrong section
    return out


def scalesim_gemm_rows(path: Path) -> list[tuple[str, int, int, int]]:
    """(name, M, N, K) as scale-sim-v3's ``topology_utils.load_arrays_gemm`` reads a topology:
    strip, skip the first line and blank ones, ``row.split(',')[:-1]``, at least 4 entries,
    the optional 5th a sparsity ratio (default 1:1)."""
    rows = []
    first = True
    for row in path.read_text().splitlines():
        row = row.strip()
        if first:
            first = False
            continue
        if row == "":
            continue
        elems = row.split(",")[:-1]
        assert len(elems) > 3
        if len(elems) < 5:
            elems.append("1:1")
        ratio = elems[4].strip().split(":")
        assert len(ratio) == 2
        rows.append((elems[0].strip(), int(elems[1]), int(elems[2]), int(elems[3])))
    return rows


# --------------------------------------------------------------------------------------------
# Topology out
# --------------------------------------------------------------------------------------------

def test_topology_round_trip_in_blocks(tmp_path: Path) -> None:
    """A shipped workload written as the ⌈K/B⌉ GEMM topology reads back (our reader and
    SCALE-Sim's) as the same rows with K in blocks, the count from the ``*<count>`` name."""
    gemms = load_workload(workload_path("opensora2_256px_129f"))
    path = tmp_path / "topology.csv"
    ss.write_topology(gemms, path, block=32)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "Layer,M,N,K,"
    # embed.img_in: M 8316, K 64 = 2 blocks of 32, N 3072, run 3 times (3 CFG passes)
    assert lines[1] == "embed.img_in*3,8316,3072,2,"
    # embed.cond_in: K 68 -> ceil(68/32) = 3 blocks (the last one zero-padded)
    assert lines[2] == "embed.cond_in*3,8316,3072,3,"
    assert all(line.endswith(",") for line in lines)
    back = load_workload(path)
    assert [(b.layer, b.m, b.k, b.n, b.count, b.static) for b in back] == [
        (g.layer, g.m, math.ceil(g.k / 32), g.n, g.count, "W") for g in gemms]
    assert scalesim_gemm_rows(path) == [
        (f"{g.layer}*{g.count}" if g.count > 1 else g.layer, g.m, g.n, math.ceil(g.k / 32))
        for g in gemms]


def test_topology_in_elements_round_trips_the_shapes(tmp_path: Path) -> None:
    gemms = load_workload(workload_path("wan21_1p3b_480x832_81f"))
    path = tmp_path / "t.csv"
    ss.write_topology(gemms, path, block=1)
    back = load_workload(path)
    assert [(b.layer, b.m, b.k, b.n, b.count) for b in back] == [
        (g.layer, g.m, g.k, g.n, g.count) for g in gemms]
    # the run-time operands (static = none) are not in a SCALE-Sim topology
    assert {g.static for g in gemms} == {"W", "none"} and {b.static for b in back} == {"W"}


def test_topology_names() -> None:
    assert ss.topology_name(Gemm("fc", 1, 1, 1)) == "fc"
    assert ss.topology_name(Gemm("fc", 1, 1, 1, count=7)) == "fc*7"
    # a name that already looks counted keeps its meaning: "x*3" run once
    assert ss.topology_name(Gemm("x*3", 1, 1, 1)) == "x*3*1"
    for bad in ("a,b", "", " fc", "fc\n", "a\rb"):
        with pytest.raises(ValueError, match="gemms: layer name"):
            ss.topology_name(Gemm(bad, 1, 1, 1))
    for block in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="block"):
            ss.topology_text([Gemm("fc", 1, 1, 1)], block=block)
    with pytest.raises(ValueError, match="gemms: no GEMMs"):
        ss.topology_text([], block=32)


def test_counted_names_read_back(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Layer,M,N,K,\nx*3*1,4,5,6,\nfc*12,4,5,6,\n")
    a, b = load_workload(path)
    assert (a.layer, a.count, b.layer, b.count) == ("x*3", 1, "fc", 12)
    path.write_text("Layer,M,N,K,\nfc*4294967296,4,5,6,\n")
    with pytest.raises(ValueError, match="line 2, column 'Layer'.*run count"):
        load_workload(path)


# --------------------------------------------------------------------------------------------
# Real SCALE-Sim topologies in (sim/workloads.py)
# --------------------------------------------------------------------------------------------

def _shapes(name: str) -> list[tuple[str, int, int, int, int]]:
    return [(g.layer, g.m, g.k, g.n, g.count) for g in load_workload(DATA / name)]


def test_real_gemm_topologies() -> None:
    # Layer,M,N,K, with trailing commas and a trailing blank line: K is the 4th column
    assert _shapes("gemm_vit_s.csv") == [("L0", 196, 384, 192, 1), ("L1", 196, 64, 1176, 1),
                                         ("L2", 196, 1176, 64, 1), ("L3", 196, 384, 1536, 1),
                                         ("L4", 196, 1536, 384, 1)]
    # CRLF line ends
    assert b"\r\n" in (DATA / "gemm_unet2d_head.csv").read_bytes()
    assert _shapes("gemm_unet2d_head.csv") == [("Conv1a", 4186116, 9, 64, 1),
                                               ("Conv1b", 4177936, 576, 64, 1)]
    # "Layer Name, M, N, K," and a name with a blank, no final newline
    assert _shapes("gemm_test_mnk_input.csv") == [("Test 1", 256, 256, 128, 1)]
    # our reader and SCALE-Sim's agree on these files
    for name in ("gemm_vit_s.csv", "gemm_unet2d_head.csv", "gemm_test_mnk_input.csv"):
        assert [(n, m, nn, k) for n, m, k, nn, _ in _shapes(name)] == scalesim_gemm_rows(
            DATA / name)


def test_real_conv_topologies() -> None:
    # header "Layer, IFMAP Width, IFMAP Width, ..." (height misspelt), CRLF, a trailing blank.
    # Conv1 700x161, 41x11, C 1, 32 filters, stride 2: SCALE-Sim's ceil((H-R+s)/s) gives
    # ceil(661/2) = 331 by ceil(152/2) = 76 -> M 25156; K 41*11*1 = 451
    # Conv2 341x79, 21x11, C 32, stride 2: ceil(322/2) = 161 by ceil(70/2) = 35 -> M 5635,
    # K 21*11*32 = 7392; BatchRNN1 672x2560, 1x2560, stride 1: M 672*1, K 2560
    assert _shapes("conv_deepspeech2_head.csv") == [("Conv1", 25156, 451, 32, 1),
                                                    ("Conv2", 5635, 7392, 32, 1),
                                                    ("BatchRNN1", 672, 2560, 4, 1)]
    # BOM and no-break spaces in the header: Linear1 10000x1600, filter 1x1600 -> M 10000
    assert _shapes("conv_gpt2_sans_mulithead_head.csv") == [
        ("Linear1", 10000, 1600, 4800, 1), ("Linear2", 10000, 1600, 1600, 1)]
    # lower-case spellings ("channel", "num filters") and a BOM
    assert _shapes("conv_dlrm_weight_grad_head.csv") == [
        ("Embedding/Pooling", 16, 128, 24, 1), ("MLP_Bottom_0", 13, 128, 512, 1)]
    # runs of blanks and a Batch Size column of 1: 512x512 pixels, 1x1 filters
    assert _shapes("conv_llama3b_head.csv") == [("Embedding", 262144, 3, 4096, 1),
                                                ("Attention_1", 262144, 4096, 16, 1)]
    # unnamed and extra columns (Eh, Ew, e2: the file's own output size, 110 x 110 = 12100
    # for 224 with R 7, s 2) and a row of empty cells
    assert _shapes("conv_resnet50_head.csv") == [("Conv1", 12100, 147, 64, 1),
                                                 ("CB2a_1", 3136, 64, 64, 1)]
    # a blank line and "#dw" after a row's last comma (SCALE-Sim never reads it):
    # Conv1 2160x4096, 3x3, s 2: ceil(2159/2) = 1080 by ceil(4095/2) = 2048 -> 2211840
    # Conv2_dw 1080x2048, 3x3, s 1: 1078 x 2046 = 2205588, K 9, one filter
    assert _shapes("conv_mobilnet_4k_head.csv") == [("Conv1", 2211840, 27, 32, 1),
                                                    ("Conv2_dw", 2205588, 9, 1, 1),
                                                    ("Conv3", 2211840, 32, 64, 1)]


def test_depthwise_and_two_strides(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    # SCALE-Sim's depthwise rule: a "DP" layer is C single-channel convolutions
    # 112x112, 3x3, stride 1: 110 x 110 = 12100 pixels, K 3*3*1 = 9, count C = 32
    path.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\nConvDP1, 112, 112, 3, 3, 32, 1, 1,\n")
    assert _shapes_of(path) == [("ConvDP1", 12100, 9, 1, 32)]
    # v2's write_topo_file header: two strides, 10x12 with 3x3, strides 1 and 2:
    # 8 by ceil(11/2) = 6 -> M 48, K 3*3*2 = 18
    path.write_text("Layer name,IFMAP height,IFMAP width,Filter height,Filter width,Channels,"
                    "Num filter,Stride height,Stride width,\nc,10,12,3,3,2,4,1,2,\n")
    assert _shapes_of(path) == [("c", 48, 18, 4, 1)]


def _shapes_of(path: Path) -> list[tuple[str, int, int, int, int]]:
    return [(g.layer, g.m, g.k, g.n, g.count) for g in load_workload(path)]


@pytest.mark.parametrize(("name", "match"), [
    ("gemm_sparsity.csv", r"line 2, column 'Sparsity': 3:4 structured sparsity is not modelled"),
    ("conv_sparsity.csv", r"line 2, column 'Sparsity': 2:4 structured sparsity is not modelled"),
])
def test_real_sparse_topologies_are_refused(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_workload(DATA / name)


@pytest.mark.parametrize(("text", "match"), [
    ("Layer, M, N, K, Sparsity,\nfc, 1, 2, 3, 1:1,\n", None),
    ("Layer, M, N, K, Sparsity,\nfc, 1, 2, 3, ,\n", None),
    ("Layer, M, N, K, Sparsity,\nfc, 1, 2, 3, half,\n", "column 'Sparsity': expected a ratio"),
    ("Layer, M, N, K, Sparsity,\nfc, 1, 2, 3, 0:0,\n", "0:0 structured sparsity"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
     "Strides, Batch Size,\nc, 8, 8, 1, 1, 3, 4, 1, 2,\n", "column 'Batch Size': a batch of '2'"),
    ("Layer,M,N,K,\nfc,1,2,3,4,\n", r"line 2: 5 values but the header has 4 columns"),
    ("Layer\tM\tN\tK\nfc\t1\t2\t3\n", "unknown header"),
    ("Layer,M,N,K,count,\nfc,1,2,3,4,\n", "line 1: a SCALE-Sim topology has no 'count' column"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,\n"
     "c, 1, 1, 1, 1, 1,\n", "missing column.*'Num Filter'"),
])
def test_topology_variants_and_errors(tmp_path: Path, text: str, match: str | None) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    if match is None:
        (g,) = load_workload(path)
        assert (g.m, g.k, g.n) == (1, 3, 2)
        return
    with pytest.raises(ValueError, match=match) as info:
        load_workload(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


# --------------------------------------------------------------------------------------------
# Configuration out
# --------------------------------------------------------------------------------------------

def test_config_block_words_read_as_scalesim_reads_them(tmp_path: Path) -> None:
    cfg = resolve_config("default")
    path = tmp_path / "scale.cfg"
    ss.write_config(cfg, path, design="semanticdialect", clock_mhz=250.0)
    # DRAM: 25.6e9 B/s / 250e6 cycles/s = 102.4 bytes per cycle (one core)
    # ifmap word = 32 FP16 = 64 B: 128 KiB = 2048 words = 2 kwords; 102.4 / 64 = 1.6 -> 1
    # filter word = sd32 block = 17.25 B: 131072 / 17.25 = 7598.4 words -> 7; 102.4/17.25 -> 5
    # ofmap word = FP32 = 4 B: 64 KiB = 16384 words = 16; 102.4 / 4 = 25.6 -> 25
    assert SD32_BLOCK_BYTES == 17.25
    assert scalesim_v3_reads(path) == {
        "run_name": "semdialect_default_semanticdialect_block", "use_user_bandwidth": True,
        "use_ramulator_trace": False, "arrayheight": 8, "arraywidth": 8,
        "ifmapsramszkb": 2, "filtersramszkb": 7, "ofmapsramszkb": 16, "ifmapoffset": 0,
        "filteroffset": 10000000, "ofmapoffset": 20000000, "df": "os", "req_buf_sz_rd": 32,
        "req_buf_sz_wr": 32, "ifmap_custom_layout": False, "filter_custom_layout": False,
        "ifmapsrambankbandwidth": 1, "ifmapsrambanknum": 1, "ifmapsrambankport": 2,
        "filtersrambankbandwidth": 5, "filtersrambanknum": 1, "filtersrambankport": 2,
        "bandwidths": [25], "sparsity_support": False}
    text = path.read_text()
    assert "7.42029 kwords (rounded)" in text and "exact 1.6" in text
    for topic in ("formats:", "selector", "C-slow", "cores:"):
        assert topic in text


def test_config_cores_share_the_dram_and_byte_words(tmp_path: Path) -> None:
    cfg = replace(resolve_config("default"), cores=2)
    path = tmp_path / "scale.cfg"
    ss.write_config(cfg, path, clock_mhz=250.0)
    got = scalesim_v3_reads(path)
    # one core's share: 102.4 / 2 = 51.2 B/cycle: ofmap 12.8 -> 12, filter 2.97 -> 2,
    # ifmap 0.8 -> raised to SCALE-Sim's least 1
    assert (got["bandwidths"], got["filtersrambankbandwidth"],
            got["ifmapsrambankbandwidth"]) == ([12], 2, 1)
    ss.write_config(cfg, path, clock_mhz=250.0, word="byte")
    got = scalesim_v3_reads(path)
    assert (got["ifmapsramszkb"], got["filtersramszkb"], got["ofmapsramszkb"]) == (128, 128, 64)
    assert (got["bandwidths"], got["ifmapsrambankbandwidth"]) == ([51], 51)


def test_config_of_a_fixed_format_design(tmp_path: Path) -> None:
    # MXFP4 block: 32 E2M1 codes + an 8-bit E8M0 scale = 136 bits = 17 bytes
    core = ss.scalesim_core(resolve_config("default"), design="mxfp4", clock_mhz=100.0)
    assert core.word_bytes == {"ifmap": 64.0, "filter": 17.0, "ofmap": 4.0}
    # 25.6e9 / 100e6 = 256 B/cycle: 256 / 17 = 15.06 -> 15
    assert core.bandwidth == {"ifmap": 4, "filter": 15, "ofmap": 64}


def test_config_bad_arguments() -> None:
    cfg = resolve_config("default")
    for clock in (0, -1, float("nan"), float("inf"), True, "250"):
        with pytest.raises(ValueError, match="clock_mhz"):
            ss.config_text(cfg, clock_mhz=clock)
    with pytest.raises(ValueError, match="word: must be one of block, byte"):
        ss.config_text(cfg, clock_mhz=100.0, word="bit")
    with pytest.raises(ValueError, match="design: unknown"):
        ss.config_text(cfg, design="nope", clock_mhz=100.0)
    other = Design.of("semanticdialect", replace(cfg, act_sram_kib=256))
    with pytest.raises(ValueError, match="design: semanticdialect was built for"):
        ss.config_text(cfg, design=other, clock_mhz=100.0)


# --------------------------------------------------------------------------------------------
# Configuration in
# --------------------------------------------------------------------------------------------

def test_import_real_v2_config() -> None:
    """scale-sim-v2 configs/scale.cfg: 32x32, os, 64 kB each, InterfaceBandwidth CALC."""
    imp = ss.read_config(DATA / "v2_scale.cfg", clock_mhz=250.0)
    assert imp.keys == {"name": "scale_example_run_32x32_os", "rows": 32, "cols": 32,
                        "act_sram_kib": 64, "weight_sram_kib": 64, "out_sram_kib": 64,
                        "dram_gbps": MAX_DRAM_GBPS}
    assert any("CALC" in n for n in imp.notes)
    cfg = imp.config(resolve_config("default"))
    assert (cfg.name, cfg.rows, cfg.cols, cfg.act_sram_kib, cfg.block) == (
        "scale_example_run_32x32_os", 32, 32, 64, 32)
    assert 32 % cfg.lanes == 0


def test_import_real_v3_config(tmp_path: Path) -> None:
    """scale-sim-v3 configs/scale_layout.cfg: 128x128, os, 256 kB ("256 " with a trailing
    blank), USER Bandwidth 64 words/cycle, [layout] bank bandwidths 64 and 640."""
    imp = ss.read_config(DATA / "v3_scale_layout.cfg", clock_mhz=250.0)
    # 64 words x 1 byte x 250e6 /s = 16e9 B/s = 16 GB/s
    assert imp.keys == {"name": "scale_example_run_32x32_os", "rows": 128, "cols": 128,
                        "act_sram_kib": 256, "weight_sram_kib": 256, "out_sram_kib": 256,
                        "dram_gbps": pytest.approx(16.0)}
    assert any("[layout]" in n for n in imp.notes)
    # FP16 words: 256 kwords x 2 B = 512 KiB; 64 x 2 x 250e6 = 32 GB/s
    imp2 = ss.read_config(DATA / "v3_scale_layout.cfg", clock_mhz=250.0, word_bytes=2)
    assert (imp2.keys["act_sram_kib"], imp2.keys["dram_gbps"]) == (512, pytest.approx(32.0))
    # the imported keys make a valid configuration, and our TOML reads back equal to it
    cfg = imp.config(resolve_config("array128"))
    toml = tmp_path / "my.toml"
    toml.write_text(ss.config_toml(cfg, ["from v3_scale_layout.cfg", "line\nbreak"]))
    assert load_config(toml) == cfg
    assert "# line break" in toml.read_text()


def test_config_written_in_bytes_reads_back() -> None:
    """word "byte" at a clock where the DRAM rate is whole: 25.6 GB/s / 200 MHz = 128 B."""
    cfg = resolve_config("default")
    text = ss.config_text(cfg, clock_mhz=200.0, word="byte")
    imp = _read_text_config(text, clock_mhz=200.0)
    assert {k: v for k, v in imp.keys.items() if k != "name"} == {
        "rows": 8, "cols": 8, "act_sram_kib": 128, "weight_sram_kib": 128, "out_sram_kib": 64,
        "dram_gbps": pytest.approx(25.6)}


def _read_text_config(text: str, **kwargs: float) -> ss.ImportedConfig:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.cfg"
        path.write_text(text)
        return ss.read_config(path, **kwargs)


def _edited(name: str, old: str, new: str) -> str:
    text = (DATA / name).read_text()
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(("text", "match"), [
    ((DATA / "v3_scale.cfg").read_text(),
     r"\[architecture_presets\] Dataflow: 'ws' \(weight-stationary\) cannot be mapped"),
    (_edited("v3_scale.cfg", "Dataflow : ws", "Dataflow : is"), r"'is' \(input-stationary\)"),
    (_edited("v2_scale.cfg", "Dataflow : os", "Dataflow : OS"), r"'OS' \(not os, ws or is\)"),
    (_edited("v2_scale.cfg", "ArrayHeight:    32", "ArrayHeight:    256"),
     r"ArrayHeight: 256 exceeds our largest array \(128\)"),
    (_edited("v2_scale.cfg", "ArrayWidth:     32\n", ""), r"\[architecture_presets\] ArrayWidth "
     "missing"),
    (_edited("v2_scale.cfg", "ArrayHeight:    32", "ArrayHeight:    3.5"),
     r"ArrayHeight: expected an integer, got '3.5'"),
    (_edited("v2_scale.cfg", "OfmapSramSzkB:   64", "OfmapSramSzkB:   0"),
     r"OfmapSramSzkB: must be at least 1"),
    (_edited("v2_scale.cfg", "InterfaceBandwidth: CALC", "InterfaceBandwidth: user"),
     r"\[run_presets\] InterfaceBandwidth: expected USER or CALC"),
    (_edited("v2_scale.cfg", "InterfaceBandwidth: CALC", "InterfaceBandwidth: USER")
     .replace("Bandwidth : 10", "Bandwidth : ten"), r"Bandwidth: expected integers"),
    (_edited("v3_scale_layout.cfg", "Dataflow : os", "Dataflow : os\n[sparsity]\n"
             "SparsitySupport : true"), r"\[sparsity\] SparsitySupport: true cannot be mapped"),
    (_edited("v2_scale.cfg", "[general]\n", ""), r"not a valid \.cfg"),
    (_edited("v2_scale.cfg", "MemoryBanks:   1", "ArrayHeight: 4"), r"not a valid \.cfg"),
    (_edited("v2_scale.cfg", "run_name = ", "run_name = 100%"), r"\[general\] run_name"),
])
def test_import_errors_are_one_line(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        _read_text_config(text, clock_mhz=250.0)
    assert "\n" not in str(info.value)


def test_import_bad_files_and_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        ss.read_config(tmp_path / "none.cfg", clock_mhz=250.0)
    with pytest.raises(ValueError, match="not a regular file"):
        ss.read_config(tmp_path, clock_mhz=250.0)
    bad = tmp_path / "bad.cfg"
    bad.write_bytes(b"[general]\nrun_name = \xff\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        ss.read_config(bad, clock_mhz=250.0)
    bad.write_text("#" * (ss.MAX_CFG_BYTES + 1))
    with pytest.raises(ValueError, match="larger than"):
        ss.read_config(bad, clock_mhz=250.0)
    for word in (0, -2, float("nan"), 2000):
        with pytest.raises(ValueError, match="word_bytes"):
            ss.read_config(DATA / "v2_scale.cfg", clock_mhz=250.0, word_bytes=word)
    with pytest.raises(ValueError, match="clock_mhz"):
        ss.read_config(DATA / "v2_scale.cfg", clock_mhz=0)
    # a kB figure of half-byte words below 1 KiB
    with pytest.raises(ValueError, match=r"IfmapSramSzkB: 1 kwords of 0.5 bytes is 0.5 KiB"):
        _read_text_config(_edited("v2_scale.cfg", "IfmapSramSzkB:   64", "IfmapSramSzkB: 1"),
                          clock_mhz=250.0, word_bytes=0.5)


# --------------------------------------------------------------------------------------------
# Mappings out and the export folder
# --------------------------------------------------------------------------------------------

def test_mappings_line_up_with_the_topology() -> None:
    cfg = resolve_config("default")
    gemms = load_workload(workload_path("wan21_1p3b_480x832_81f"))
    texts = ss.export_files(cfg, gemms, clock_mhz=250.0, workload="wan21")
    assert tuple(texts) == ss.EXPORT_FILES
    rows = list(csv.DictReader(io.StringIO(texts["mappings.csv"])))
    topo = texts["topology.csv"].splitlines()[1:]
    assert len(rows) == len(topo) == len(gemms)
    design = Design.of("semanticdialect", cfg)
    for g, row, line in zip(gemms, rows, topo, strict=True):
        assert line.split(",")[0] == row["topology_layer"]
        r = map_gemm(design, g, 250.0)
        mp = r.mapping
        assert (row["layer"], int(row["M"]), int(row["K"]), int(row["N"]), int(row["count"]),
                row["static"]) == (g.layer, g.m, g.k, g.n, g.count, g.static)
        assert (int(row["tm"]), int(row["tn"]), int(row["tk"]), row["order"], row["split"],
                int(row["cores"])) == (mp.tm, mp.tn, mp.tk, mp.order, mp.split, mp.cores)
        for key, val in r.dram_bytes.items():
            assert float(row[f"dram_{key}_bytes"]) == pytest.approx(val, abs=1e-3)
        assert float(row["dram_total_bytes"]) == pytest.approx(sum(r.dram_bytes.values()),
                                                               abs=1e-3)
        assert int(row["core_cycles"]) == r.core_cycles
        assert float(row["cycles"]) == pytest.approx(r.cycles, abs=1e-3)
        assert float(row["stall_cycles"]) == pytest.approx(r.stall_cycles, abs=1e-3)
        assert row["bound"] == r.bound
    assert "K' = ceil(K/B), B = 32" in texts["README.txt"]
    elements = ss.export_files(cfg, gemms[:2], clock_mhz=250.0, elements=True)
    assert elements["topology.csv"].splitlines()[1] == "embed.patch_embedding*2,32760,1536,64,"
    assert "IfmapSramSzkB: 128" in elements["scale.cfg"]


def test_export_refuses_an_sram_too_small() -> None:
    cfg = replace(resolve_config("default"), out_sram_kib=1)
    with pytest.raises(ValueError, match="out_sram_kib"):
        ss.export_files(cfg, [Gemm("fc", 8, 64, 8)], clock_mhz=250.0)


# --------------------------------------------------------------------------------------------
# semdialect scalesim
# --------------------------------------------------------------------------------------------

def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "topology.csv").write_text("old\n")
    assert main(["scalesim", "export", "--workload", "latte1_512px_16f", "--out", str(out),
                 "--clock-mhz", "200"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*ss.EXPORT_FILES, "notes.txt"])
    assert (out / "notes.txt").read_text() == "mine\n"
    assert load_workload(out / "topology.csv")[0].layer == "embed.pos_embed.proj"
    assert "200 MHz" in (out / "scale.cfg").read_text()
    assert "latte1_512px_16f" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "match"), [
    (["--workload", "nope"], "workload: unknown 'nope'"),
    (["--workload", "latte1_512px_16f", "--clock-mhz", "0"], "argument --clock-mhz"),
    (["--workload", "latte1_512px_16f", "--design", "fp16"], "argument --design"),
    (["--workload", "latte1_512px_16f", "--config", "nope"], "config 'nope'"),
])
def test_cli_export_errors_touch_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], match: str) -> None:
    out = tmp_path / "out"
    assert main(["scalesim", "export", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "error:" in err
    assert not out.exists()


def test_cli_export_keeps_its_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    wl = out / "topology.csv"
    wl.write_text("Layer,M,N,K,\nfc,8,8,64,\n")
    assert main(["scalesim", "export", "--workload", str(wl), "--out", str(out)]) == 2
    assert "holds --workload" in capsys.readouterr().err
    assert wl.read_text() == "Layer,M,N,K,\nfc,8,8,64,\n"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["scalesim", "export", "--workload", "latte1_512px_16f", "--out",
                 str(blocker)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_cli_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "my.toml"
    assert main(["scalesim", "import", str(DATA / "v2_scale.cfg"), "--out", str(toml),
                 "--topology", str(DATA / "gemm_vit_s.csv")]) == 0
    cfg = load_config(toml)
    assert (cfg.rows, cfg.cols, cfg.act_sram_kib, cfg.dram_gbps) == (32, 32, 64, MAX_DRAM_GBPS)
    # the rest from the base (default): B, formatbook and the pipeline
    base = resolve_config("default")
    assert (cfg.block, cfg.formatbook, cfg.acc_stages) == (base.block, base.formatbook,
                                                           base.acc_stages)
    text = toml.read_text()
    assert "gemm_vit_s.csv (5 GEMMs" in text and "CALC" in text
    captured = capsys.readouterr()
    assert "32x32" in captured.out and "note: InterfaceBandwidth CALC" in captured.err


@pytest.mark.parametrize(("name", "extra", "match"), [
    ("v3_scale.cfg", [], "Dataflow: 'ws'"),
    # 128 x 128 with the default base's acc_stages 7: an output tile of 128 x 896 FP32 is
    # 458752 bytes, more than half of 256 KiB
    ("v3_scale_layout.cfg", [], r"out_sram_kib.*choose a --base with fewer acc_stages"),
    ("v2_scale.cfg", ["--topology", str(DATA / "gemm_sparsity.csv")], "structured sparsity"),
    ("v2_scale.cfg", ["--word-bytes", "0"], "argument --word-bytes"),
    ("missing.cfg", [], "no such file"),
])
def test_cli_import_errors_touch_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         name: str, extra: list[str], match: str) -> None:
    toml = tmp_path / "my.toml"
    assert main(["scalesim", "import", str(DATA / name), "--out", str(toml), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err
    assert re.search(match, err), err
    assert not toml.exists()


def test_cli_import_never_overwrites_its_input(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "scale.cfg"
    cfg.write_bytes((DATA / "v2_scale.cfg").read_bytes())
    assert main(["scalesim", "import", str(cfg), "--out", str(cfg)]) == 2
    assert "same file as SCALE.cfg" in capsys.readouterr().err
    assert cfg.read_bytes() == (DATA / "v2_scale.cfg").read_bytes()


def test_config_toml_round_trips_every_shipped_config(tmp_path: Path) -> None:
    from semdialect.config import shipped_configs

    for name in shipped_configs():
        cfg = resolve_config(name)
        path = tmp_path / f"{name}.toml"
        path.write_text(ss.config_toml(cfg))
        assert load_config(path) == cfg, name
    plain = tmp_path / "plain.toml"
    plain.write_text(ss.config_toml(Config()))
    assert load_config(plain) == Config()


def test_every_scalesim_option_is_explained() -> None:
    """The rule of tests/test_cli_help.py for the nested ``export`` and ``import`` parsers."""
    def subs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(action.choices)

    nested = subs(subs(build_parser())["scalesim"])
    assert sorted(nested) == ["export", "import"]
    for name, p in nested.items():
        assert p.description and len(p.description) > 40, name
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, (name, action.dest)
            if (action.option_strings and action.default not in (None, argparse.SUPPRESS)
                    and not isinstance(action.default, bool)):
                assert "default" in action.help, (name, action.dest)
