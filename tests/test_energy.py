"""sim.energy: the cited energy table, analytic action counts and the pJ/MAC breakdown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from semdialect.config import Config
from semdialect.designs import PEKind, hardware_designs
from semdialect.sim.energy import (
    CATEGORIES,
    DEFAULT_ASSUMPTIONS,
    action_counts_for_gemm,
    assumptions_table,
    energy_per_mac,
    load_assumptions,
    min_bytes_moved,
    tree_add_bits,
)

# The published 45 nm figures (Horowitz, ISSCC 2014) the table must carry unchanged.
HOROWITZ = {"int_add_8b": 0.03, "int_add_32b": 0.1, "int_mul_8b": 0.2, "fp32_add": 0.9,
            "fp32_mul": 3.7, "sram_read_64b_8kb": 10.0}


def test_table_loads_and_every_entry_has_a_source_and_note() -> None:
    table = load_assumptions()
    assert table.status == "ESTIMATE" and table.version == 1 and "45 nm" in table.node
    assert len(table.actions) >= 10
    for name, act in table.actions.items():
        assert act.source and all(s in table.sources for s in act.source), name
        assert act.note.strip() and act.unit.strip(), name
    for name, pj in HOROWITZ.items():
        assert table.actions[name].pj == pj
    assert 1300 <= table.actions["dram_access_64b"].pj <= 2600
    rendered = assumptions_table(table)
    assert "ESTIMATE" in rendered and rendered.count("\n| ") == len(table.actions) + 1


def test_scaled_entries_follow_their_stated_rules() -> None:
    a = {k: v.pj for k, v in load_assumptions().actions.items()}
    assert a["int_add_bit"] == pytest.approx(a["int_add_8b"] / 8)
    assert a["mux2_bit"] == pytest.approx(a["int_add_bit"] / 2)
    assert a["int_mul_5b"] == pytest.approx(a["int_mul_8b"] * (5 / 8) ** 2)
    assert a["int_to_fp32"] == pytest.approx(a["int_add_32b"])
    assert a["rom_read_bit"] == pytest.approx(a["sram_read_64b_8kb"] / 64 / 32 ** 0.5, rel=1e-3)
    assert a["sram_byte"] == pytest.approx(a["sram_read_64b_8kb"] / 8)
    assert a["dram_byte"] == pytest.approx(a["dram_access_64b"] / 8)


def _write_table(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = DEFAULT_ASSUMPTIONS.read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, count))
    return path


@pytest.mark.parametrize(("old", "new", "key"), [
    ("pj = 0.2\n", "", "actions.int_mul_8b.pj"),                     # missing
    ("pj = 0.2\n", "pj = -0.2\n", "actions.int_mul_8b.pj"),          # negative
    ("pj = 0.2\n", "pj = \"0.2\"\n", "actions.int_mul_8b.pj"),       # not a number
    ("pj = 0.9\nunit", "pj = 0.9\nwatts = 1\nunit", "actions.fp32_add.watts"),  # unknown key
    ('source = ["horowitz2014"]\nnote = "as published"\n\n[actions.int_add_32b]',
     'source = []\nnote = "as published"\n\n[actions.int_add_32b]', "actions.int_add_8b.source"),
    ('source = ["horowitz2014"]\nnote = "as published"\n\n[actions.int_add_32b]',
     'source = ["nobody"]\nnote = "as published"\n\n[actions.int_add_32b]',
     "actions.int_add_8b.source"),
    ('note = "int_add_8b / 8', 'note = " " #', "actions.int_add_bit.note"),
    ('status = "ESTIMATE"', 'status = "MEASURED"', "status"),
    ("version = 1\n", "", "version"),
])
def test_malformed_table_names_the_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f": {key}: ")):
        load_assumptions(_write_table(tmp_path, old, new))


def test_unreadable_table(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_assumptions(tmp_path / "none.toml")
    (tmp_path / "x.toml").write_text("version = [")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_assumptions(tmp_path / "x.toml")


def test_tree_add_bits() -> None:
    # 4 operands of 8 bits: two 8-bit adders, then one 9-bit adder
    assert tree_add_bits(4, 8) == 2 * 8 + 9
    assert tree_add_bits(1, 8) == 0
    assert tree_add_bits(16, 1) == 8 * 1 + 4 * 2 + 2 * 3 + 1 * 4  # 16-input popcount
    with pytest.raises(ValueError, match="power of two"):
        tree_add_bits(24, 8)


#: a 2×2 array needs a drain and lanes that fit it (the defaults fit 8×8)
TINY = {"rows": 2, "cols": 2, "drain_width": 4, "lanes": 2}
SMALL = Config(name="t", block=16, formatbook="dfp4", select="lut", formats_per_cycle=4, **TINY)


def test_counts_of_a_hand_computed_tiny_gemm() -> None:
    """M = N = 2, K = 32 on a 2×2 array, B = 16, dfp4 (F = 16): nb = 2 k-blocks, one tile,
    8 block pairs, 128 products, 4 activation blocks (64 elements) quantized once."""
    bytes_moved = {"dram": {"X": 128, "W": 40}, "sram": {"X": 80}}
    counts = action_counts_for_gemm(SMALL, 2, 2, 32, bytes_moved)
    tree16_8 = 8 * 8 + 4 * 9 + 2 * 10 + 1 * 11  # 16 ERR values of 8 bits: 131 adder bits
    tree16_10 = 8 * 10 + 4 * 11 + 2 * 12 + 1 * 13  # 16 products of 10 bits: 161 adder bits
    assert counts == {
        "macs": 2 * 2 * 32,
        "preprocess.int_add_bit": 4 * 15 * 5 + 64 * 5,   # max tree + exponent distances
        "preprocess.mux2_bit": 4 * 15 * 5 + 64 * 5 * 3,  # max-tree selects + shifters
        "preprocess.rom_read_bit": 64 * 3,               # IDX lookups
        "selector.rom_read_bit": 4 * 16 * 16 * 8,        # ERR: blocks × B × F × 8 bits
        "selector.int_add_bit": 4 * (16 * tree16_8 + 15 * 12),  # cost trees + 15 compares
        "selector.mux2_bit": 4 * 15 * (12 + 4),          # argmin: cost (12) + id (4) bits
        "decoder.rom_read_bit": (64 + 64) * 4,           # X and W blocks, once each, 4 bits
        "multiplier.int_mul_5b": 128,
        "adder_tree.int_add_bit": 8 * tree16_10,
        "accumulator.int_to_fp32": 8,
        "accumulator.fp32_add": 8,
        "accumulator.int_add_bit": 8 * 5,
        "memory.dram_byte": 168,
        "memory.sram_byte": 80,
    }


def test_count_options_and_formats() -> None:
    base = action_counts_for_gemm(SMALL, 4, 6, 48, {})
    tiles_m, tiles_n, kp = 2, 3, 48
    assert base["decoder.rom_read_bit"] == (4 * kp * tiles_n + 6 * kp * tiles_m) * 4
    in_pe = action_counts_for_gemm(SMALL, 4, 6, 48, {}, decode_in_pe=True)
    assert in_pe["decoder.rom_read_bit"] == 2 * 4 * 6 * kp * 4
    again = action_counts_for_gemm(SMALL, 4, 6, 48, {}, requantize=True)
    assert again["selector.rom_read_bit"] == tiles_n * base["selector.rom_read_bit"]
    # a short last block is zero-padded: K = 40 costs like K = 48, but counts 40 MACs
    padded = action_counts_for_gemm(SMALL, 4, 6, 40, {})
    assert padded["multiplier.int_mul_5b"] == base["multiplier.int_mul_5b"]
    assert padded["macs"] == 4 * 6 * 40
    cfg32 = Config(block=32, formatbook="dfp4", select="two-stage", **TINY,
                   formats_per_cycle=16)
    two = action_counts_for_gemm(cfg32, 2, 2, 32, {})
    assert two["selector.int_add_bit"] == 2 * (31 * 5 + 4 * 32 * 5 + 2 * 57 + 5 + 1)
    assert two["selector.rom_read_bit"] == 2 * 20
    mx8 = action_counts_for_gemm(cfg32, 2, 2, 32, {}, pe="mxint8")
    assert mx8["multiplier.int_mul_8b"] == 2 * 2 * 32
    assert not any(k.startswith(("selector.", "decoder.")) for k in mx8)
    with pytest.raises(ValueError, match="pe: mxfp4 fixes the block size at 32"):
        action_counts_for_gemm(SMALL, 2, 2, 32, {}, pe="mxfp4")
    with pytest.raises(ValueError, match="pe: must be one of dialect, mxfp4, mxint8, nvfp4"):
        action_counts_for_gemm(SMALL, 2, 2, 32, {}, pe="fp8")
    with pytest.raises(ValueError, match="K: expected a positive integer"):
        action_counts_for_gemm(SMALL, 2, 2, 0, {})
    with pytest.raises(ValueError, match="level must be one of"):
        action_counts_for_gemm(SMALL, 2, 2, 32, {"hbm": {"X": 1}})
    with pytest.raises(ValueError, match=r"bytes_moved\['dram'\]\['W'\]"):
        action_counts_for_gemm(SMALL, 2, 2, 32, {"dram": {"W": -1}})


def test_breakdown_sums_to_total_and_matches_hand_energy() -> None:
    table = load_assumptions()
    e = energy_per_mac({"macs": 10, "multiplier.int_mul_8b": 10, "memory.dram_byte": 2,
                        "accumulator.fp32_add": 5}, table)
    assert set(e) == {*CATEGORIES, "total"}
    assert e["multiplier"] == pytest.approx(0.2)
    assert e["memory"] == pytest.approx(2 * 243.75 / 10)
    assert e["accumulator"] == pytest.approx(0.45)
    assert e["selector"] == 0
    for pe in PEKind:  # every PE kind of the registry has an energy model
        cfg = Config(block=pe.block or 32)  # the shipped default (8×8, sd32, lut), kind's B
        counts = action_counts_for_gemm(cfg, 64, 96, 512, min_bytes_moved(cfg, 64, 96, 512, pe=pe),
                                        pe=pe)
        e = energy_per_mac(counts, table)
        assert e["total"] == pytest.approx(sum(e[c] for c in CATEGORIES))
        assert all(e[c] >= 0 for c in CATEGORIES) and e["memory"] > 0


def test_formatbook_size_and_pe_kind_move_the_estimate() -> None:
    table = load_assumptions()
    shape = (64, 96, 512)

    def per_mac(cfg: Config, pe: str = "dialect") -> dict[str, float]:
        return energy_per_mac(action_counts_for_gemm(cfg, *shape, {}, pe=pe), table)

    sd32 = per_mac(Config())
    dfp4 = per_mac(Config(formatbook="dfp4", formats_per_cycle=16))
    assert sd32["selector"] == pytest.approx(2 * dfp4["selector"], rel=0.05)  # K = 32 vs 16
    assert per_mac(Config(), "mxint8")["multiplier"] > sd32["multiplier"]
    assert per_mac(Config(), "mxfp4")["selector"] == 0


def test_energy_per_mac_rejects_bad_counts() -> None:
    table = load_assumptions()
    with pytest.raises(ValueError, match="macs"):
        energy_per_mac({"multiplier.int_mul_8b": 1}, table)
    with pytest.raises(ValueError, match="multiplier.int_mul_3b"):
        energy_per_mac({"macs": 1, "multiplier.int_mul_3b": 1}, table)
    with pytest.raises(ValueError, match="pe.int_mul_8b"):
        energy_per_mac({"macs": 1, "pe.int_mul_8b": 1}, table)
    with pytest.raises(ValueError, match="memory.sram_byte: expected a count"):
        energy_per_mac({"macs": 1, "memory.sram_byte": -3}, table)


def test_min_bytes_moved() -> None:
    # sd32 on 2×2, B = 32: meta = 5 + 5 bits; a block = (32·4 + 10) / 8 = 17.25 bytes
    cfg = Config(formats_per_cycle=8, **TINY)
    moved = min_bytes_moved(cfg, 4, 2, 64)
    q_w = 2 * 2 * 17.25  # N = 2 columns × 2 k-blocks
    q_x = 4 * 2 * 17.25
    assert moved["dram"] == {"X": 2 * 4 * 64, "W": q_w, "Y": 4 * 4 * 2}
    assert moved["sram"] == {"X": q_x * (1 + 1), "W": q_w * (1 + 2), "Y": 4 * 4 * 2}


def test_mxfp4_counts_by_hand() -> None:
    """MXFP4 on a 2×2 array, M = N = 2, K = 32 (one block): every count written out from the
    formulas of the docstring (4-bit E2M1 codes, 8-bit E8M0 scale, no selector, E2M1 decoder
    as a 4-bit mux, 10-bit products)."""
    cfg = Config(block=32, formatbook="dfp4", formats_per_cycle=16, **TINY)
    moved = min_bytes_moved(cfg, 2, 2, 32, pe=PEKind.MXFP4)
    block_bytes = (32 * 4 + 8) / 8  # 17
    assert moved == {"dram": {"X": 2 * 32 * 2, "W": 2 * block_bytes, "Y": 2 * 2 * 4.0},
                     "sram": {"X": 2 * block_bytes * 2, "W": 2 * block_bytes * 2, "Y": 16.0}}
    counts = action_counts_for_gemm(cfg, 2, 2, 32, {}, pe=PEKind.MXFP4)
    tree = 16 * 10 + 8 * 11 + 4 * 12 + 2 * 13 + 1 * 14  # 32 ten-bit products summed
    assert counts == {
        "macs": 128,
        "preprocess.int_add_bit": 2 * 31 * 5 + 64 * 5 + 64 * 4,  # max tree, distance, RNE
        "preprocess.mux2_bit": 2 * 31 * 5 + 64 * 5 * 3,
        "decoder.mux2_bit": (2 * 32 + 2 * 32) * 4,
        "multiplier.int_mul_e2m1": 128,
        "adder_tree.int_add_bit": 4 * tree,
        "accumulator.int_to_fp32": 4,
        "accumulator.fp32_add": 4,
        "accumulator.int_add_bit": 4 * 8,
    }


def test_nvfp4_counts_by_hand() -> None:
    """NVFP4 on a 2×2 array, M = N = 2, K = 32 (two blocks of 16): every count written out
    from the docstring's formulas (SPEC §8 hardware contract: E2M1 decoder as MXFP4, the
    E4M3 pair product and |P|·S per block pair, one tensor-scale multiply per output plus
    ts_a·ts_w; the quantizer's dividers and per-element FP32 multiply)."""
    cfg = Config(block=16, formatbook="dfp4", formats_per_cycle=16, **TINY)
    moved = min_bytes_moved(cfg, 2, 2, 32, pe=PEKind.NVFP4)
    block_bytes = (16 * 4 + 8) / 8  # 9: E2M1 codes + the E4M3 byte
    q = 2 * 2 * block_bytes + 4  # 2 rows × 2 blocks + the FP32 tensor scale
    assert moved == {"dram": {"X": 2 * 32 * 2, "W": q, "Y": 2 * 2 * 4.0},
                     "sram": {"X": q * 2, "W": q * 2, "Y": 16.0}}
    counts = action_counts_for_gemm(cfg, 2, 2, 32, {}, pe=PEKind.NVFP4)
    tree = 8 * 10 + 4 * 11 + 2 * 12 + 1 * 13  # 16 ten-bit products summed
    pairs, blocks, elems = 2 * 2 * 2, 2 * 2, 2 * 32  # block pairs; X's blocks and elements
    assert counts == {
        "macs": 128,
        # amax tree (15 bits), ÷ts 25 × 25, ÷3 28 × 2, ÷S 30 × 5; E2M1: 7 five-bit compares
        "preprocess.int_add_bit": blocks * (15 * 15 + 625 + 56 + 150) + elems * 35,
        "preprocess.mux2_bit": blocks * 15 * 15,
        "preprocess.fp32_mul": elems,
        "decoder.mux2_bit": (2 * 32 + 2 * 32) * 4,
        "multiplier.int_mul_e2m1": 128,
        "adder_tree.int_add_bit": pairs * tree,
        "accumulator.int_to_fp32": pairs,
        "accumulator.fp32_add": pairs,
        "accumulator.int_add_bit": pairs * (16 + 12 * 8 + 4 + 8),  # S_a·S_w, |P|·S, exponents
        "accumulator.fp32_mul": 2 * 2 + 1,  # y = acc · (ts_a·ts_w) per output, the product once
    }
    with pytest.raises(ValueError, match="nvfp4 fixes the block size at 16"):
        action_counts_for_gemm(Config(block=32), 2, 2, 32, {}, pe=PEKind.NVFP4)


def test_every_hardware_design_has_an_energy_model() -> None:
    """Each hardware design's PE kind names energy actions that exist in the shipped table,
    and its estimate is positive in every datapath category."""
    table = load_assumptions()
    for d in hardware_designs():
        assert d.pe is not None
        for action in (d.pe.decoder, d.pe.multiplier):
            assert action is None or action in table.actions, (d.name, action)
        cfg = d.config(Config())
        counts = action_counts_for_gemm(cfg, 16, 16, 256, min_bytes_moved(cfg, 16, 16, 256,
                                                                          pe=d.pe), pe=d.pe)
        e = energy_per_mac(counts, table)
        for category in ("preprocess", "multiplier", "adder_tree", "accumulator", "memory"):
            assert e[category] > 0, (d.name, category)
        assert (e["selector"] > 0) == d.pe.has_dialects, d.name


def test_runtime_second_operand_is_quantized_by_the_frontend() -> None:
    """``runtime_w``: Wᵀ's N·nb blocks go through the preprocessor and the selector once
    (an activation like X), nothing else changes; its traffic is FP16 in DRAM and SRAM."""
    m, n, k = 4, 6, 48  # nb = 3 on SMALL (B = 16)
    static = action_counts_for_gemm(SMALL, m, n, k, {})
    runtime = action_counts_for_gemm(SMALL, m, n, k, {}, runtime_w=True)
    scale = (m + n) / m  # activation blocks quantized: M·nb → (M + N)·nb
    for key, val in static.items():
        front = key.startswith(("preprocess.", "selector."))
        assert runtime[key] == (val * scale if front else val), key
    assert runtime.keys() == static.keys()
    moved = min_bytes_moved(SMALL, m, n, k)
    moved_rt = min_bytes_moved(SMALL, m, n, k, runtime_w=True)
    assert moved_rt["dram"] == {**moved["dram"], "W": 2 * n * k}
    assert moved_rt["sram"] == {**moved["sram"], "W": moved["sram"]["W"] + 4 * n * k}


def test_sim_energy_charges_runtime_quantization_and_the_second_pass(tmp_path: Path) -> None:
    """``semdialect sim``'s energy stage: a ``static = none`` GEMM pays the frontend for its
    Wᵀ, decomposition pays its second pass's datapath (same MACs, more pJ/MAC)."""
    from semdialect.cli.mainjob import stage_energy
    from semdialect.sim.model import Design, model_workload
    from semdialect.sim.workloads import Gemm

    cfg = Config()
    sd = Design.of("semanticdialect", cfg)
    results = {  # labels: the design name before "+"
        "semanticdialect": model_workload(sd, [Gemm("qk", 256, 128, 256)]),
        "semanticdialect+runtime-w": model_workload(
            sd, [Gemm("qk", 256, 128, 256, static="none")]),
        "semanticdialect+decomposition": model_workload(
            Design.of("semanticdialect", cfg, "0.25"), [Gemm("qk", 256, 128, 256)]),
    }
    rows = stage_energy(cfg, results, tmp_path)
    header = (tmp_path / "energy.csv").read_text().splitlines()[0].split(",")
    by = {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows}
    static, runtime = by["semanticdialect"], by["semanticdialect+runtime-w"]
    dec = by["semanticdialect+decomposition"]
    close = {"abs": 2e-4}  # energy.csv rounds to 4 decimals
    for category in ("selector", "preprocess"):  # N = M: twice the blocks quantized
        assert runtime[category] == pytest.approx(2 * static[category], **close)
        assert dec[category] == pytest.approx(1.25 * static[category], **close)
    assert runtime["memory"] > static["memory"]
    assert (runtime["multiplier"], runtime["accumulator"]) == (
        static["multiplier"], static["accumulator"])
    assert dec["multiplier"] == pytest.approx(1.25 * static["multiplier"], **close)
