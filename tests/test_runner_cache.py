"""tb/runner.py's Verilator build cache heals itself: a cached build is reused only when its
completion stamp (written last) records the simulator binary's size and SHA-256 and the binary
still matches them; a truncated or corrupted binary, a missing/garbled stamp or a stamp of an
older format triggers a clean rebuild instead of a permanent "Exec format error" (whose only
cure used to be ``make clean``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semdialect.rtl.emit import generate_verilog
from semdialect.rtl.fp32_add import FP32Add
from semdialect.tb import runner
from semdialect.tb.runner import run_cocotb

TEST_MODULE = "semdialect.tb.cocotb_fp32_add"


# --- the stamp check itself (no Verilator) ---------------------------------------------------

@pytest.fixture
def fake_build(tmp_path: Path) -> tuple[Path, Path]:
    """A build folder with a 'binary' and the stamp a successful build writes."""
    sim_dir = tmp_path / "top-0123"
    sim_dir.mkdir()
    binary = sim_dir / "top"
    binary.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    runner._write_stamp(sim_dir / runner._STAMP, binary, {"toplevel": "top"})
    return sim_dir, binary


def test_intact_build_is_reused(fake_build: tuple[Path, Path]) -> None:
    sim_dir, binary = fake_build
    assert runner._cached_build_ok(sim_dir / runner._STAMP, binary)


def test_truncated_binary_is_rejected(fake_build: tuple[Path, Path]) -> None:
    sim_dir, binary = fake_build
    data = binary.read_bytes()
    binary.write_bytes(data[: len(data) // 2])
    assert not runner._cached_build_ok(sim_dir / runner._STAMP, binary)


def test_corrupted_binary_same_size_is_rejected(fake_build: tuple[Path, Path]) -> None:
    sim_dir, binary = fake_build
    data = bytearray(binary.read_bytes())
    data[100] ^= 0xFF
    binary.write_bytes(bytes(data))
    assert not runner._cached_build_ok(sim_dir / runner._STAMP, binary)


@pytest.mark.parametrize("stamp_text", [
    "",  # interrupted while writing
    "{not json",
    "[]",
    json.dumps({"toplevel": "top", "sources": [], "waves": False}),  # older format, no hash
    json.dumps({"binary_size": "x", "binary_sha256": 5}),
])
def test_bad_or_old_stamp_is_rejected(fake_build: tuple[Path, Path], stamp_text: str) -> None:
    sim_dir, binary = fake_build
    (sim_dir / runner._STAMP).write_text(stamp_text)
    assert not runner._cached_build_ok(sim_dir / runner._STAMP, binary)


def test_missing_pieces_are_rejected(fake_build: tuple[Path, Path]) -> None:
    sim_dir, binary = fake_build
    binary.unlink()
    assert not runner._cached_build_ok(sim_dir / runner._STAMP, binary)
    assert not runner._cached_build_ok(sim_dir / "nope.json", sim_dir / "nope")


# --- end to end: a truncated cached Verilator binary is rebuilt -----------------------------

def test_truncated_cached_binary_is_rebuilt(tmp_path: Path) -> None:
    """Build the combinational FP32 adder in a private cache, truncate the cached binary (as
    a full disk or a killed copy would), and run again: the runner rebuilds and passes."""
    name = "fp32_add_l0"
    generate_verilog(FP32Add(latency=0), name, tmp_path / "verilog")
    source = tmp_path / "verilog" / f"{name}.v"
    env = {"FP32_ADD_LATENCY": "0", "FP32_ADD_VECTORS": "200"}
    cache = tmp_path / "sim"

    first = run_cocotb([source], name, TEST_MODULE, cache, extra_env=env)
    assert first.built and first.tests == 3
    binary = first.build_dir / name
    size = binary.stat().st_size
    with open(binary, "r+b") as fh:
        fh.truncate(size // 3)

    second = run_cocotb([source], name, TEST_MODULE, cache, extra_env=env)
    assert second.build_dir == first.build_dir
    assert second.built and second.tests == 3
    assert runner._cached_build_ok(first.build_dir / runner._STAMP, binary)

    third = run_cocotb([source], name, TEST_MODULE, cache, extra_env=env)
    assert not third.built and third.build_seconds == 0.0
