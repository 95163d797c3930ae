"""The activation frontend's generated Verilog on Verilator (cocotb) and its lint.

One simulator per configuration: :class:`tb.frontend_top.FrontendTestTop` (BlockQuantizer,
FormatSelector and BlockPreprocessor side by side), cached under ``build/sim/`` by
:func:`tb.runner.run_cocotb`. The cocotb side is ``tb/cocotb_frontend.py``; it writes the
number of vectors each test checked to ``summary.json`` in its run directory, which the tests
here print and check.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from semdialect.config import Config, load_config
from semdialect.golden.luts import Q_LEVELS
from semdialect.paths import build_dir
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.timing import Pipeline
from semdialect.tb.frontend_top import FrontendTestTop
from semdialect.tb.generate import LINT_WAIVERS
from semdialect.tb.runner import FAST_BUILD_ARGS, CocotbFailure, CocotbRun, run_cocotb
from semdialect.tb.verilator import lint

REPO_ROOT = Path(__file__).resolve().parents[1]

VERILOG_DIR = build_dir() / "verilog" / "frontend"
TEST_MODULE = "semdialect.tb.cocotb_frontend"

#: the B = 64 run: dfp4, lut, 8 formats per cycle (C = 2, a value no shipped config has)
B64 = Config(name="b64", rows=2, cols=2, block=64, formatbook="dfp4", select="lut",
             formats_per_cycle=8, lanes=1, drain_width=1)

#: the K = 1 run: one dialect (no id bits, nothing to select), the area ablation's K = 1 point
K1 = Config(name="k1", rows=2, cols=2, block=32,
            formatbook=str(REPO_ROOT / "configs" / "formatbooks" / "k1_e2m1.toml"),
            select="lut", formats_per_cycle=1, lanes=1, drain_width=1)

#: (config, random blocks for the back-pressure test)
RUNS = {
    "small": (load_config(REPO_ROOT / "configs" / "small.toml"), 4000),
    "default": (load_config(REPO_ROOT / "configs" / "default.toml"), 2000),
    "blockdialect": (load_config(REPO_ROOT / "configs" / "blockdialect.toml"), 2000),
    "b64": (B64, 600),
    "k1": (K1, 600),
}


@functools.cache
def frontend_verilog(cfg: Config) -> Path:
    """The test top of ``cfg`` (Verilog cached by content, :func:`rtl.emit.cached_verilog`),
    copied to ``VERILOG_DIR/frontend_<name>.v``; return that path."""
    made = cached_verilog(f"frontend_{cfg.name}", FrontendTestTop, (cfg,), out_dir=VERILOG_DIR)
    assert made.copy is not None
    return made.copy


def block_quantizer_verilog(cfg: Config) -> Path:
    """The bare BlockQuantizer of ``cfg`` (what the chip instantiates), cached likewise."""
    made = cached_verilog(f"block_quantizer_{cfg.name}", BlockQuantizer.from_config, (cfg,),
                          out_dir=VERILOG_DIR)
    assert made.copy is not None
    return made.copy


def run_frontend(
    cfg: Config, n_random: int, testcase: str | None = None, **env: str
) -> tuple[CocotbRun, dict]:
    top = frontend_verilog(cfg)
    config = {k: v for k, v in asdict(cfg).items()}
    extra_env = {
        "FRONTEND_CONFIG": json.dumps(config),
        "FRONTEND_RANDOM": str(n_random),
        **env,
    }
    summary_path = None
    if "FRONTEND_SUMMARY" not in extra_env:
        summary_path = build_dir() / "sim" / f"summary-{top.stem}.json"
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.unlink(missing_ok=True)
        extra_env["FRONTEND_SUMMARY"] = str(summary_path)
    run = run_cocotb([top], top.stem, TEST_MODULE, extra_env=extra_env, build_args=FAST_BUILD_ARGS,
                     testcase=testcase)
    summary = json.loads(summary_path.read_text()) if summary_path else {}
    return run, summary


@pytest.mark.parametrize("name", list(RUNS))
def test_frontend_verilator(name: str, record_property) -> None:
    cfg, n_random = RUNS[name]
    run, summary = run_frontend(cfg, n_random)
    assert run.tests == 5
    tests = summary["tests"]
    k = cfg.book().size
    lut = cfg.select == "lut"
    # every test ran and checked what it claims
    assert tests["test_preprocessor_exhaustive"]["element_se_pairs"] == 2048 * 496
    assert tests["test_preprocessor_exhaustive"]["invalid_blocks"] == 2048
    assert tests["test_selector"]["err_entries"] == (k * Q_LEVELS if lut else 0)
    assert tests["test_idx_exhaustive"]["blocks"] == (k * Q_LEVELS if lut else 4 * Q_LEVELS)
    if lut:
        assert tests["test_idx_exhaustive"]["idx_entries"] == k * Q_LEVELS
    if lut and k > 1:
        assert tests["test_random_backpressure"]["tied_argmin"] > 100
        masks = tests["test_random_backpressure"]["masks"]
        assert min(masks.values()) > 0, masks
    rnd = tests["test_random_backpressure"]
    assert rnd["blocks"] >= n_random and rnd["invalid_blocks"] >= 28
    assert summary["latency"] == Pipeline.of(cfg).quantizer_latency(cfg.selector_cycles)
    assert summary["latency"] == cfg.selector_cycles + 2 + cfg.selector_stages
    assert summary["initiation_interval"] == cfg.selector_cycles
    line = ", ".join(
        f"{test}: {info.get('blocks')} blocks" for test, info in sorted(tests.items())
    )
    print(
        f"\n[{name}] B={cfg.block} {cfg.formatbook} {cfg.select} P={cfg.formats_per_cycle} "
        f"latency={summary['latency']} II={summary['initiation_interval']} "
        f"build {run.build_seconds:.1f}s (cached={not run.built}) test {run.test_seconds:.1f}s"
        f"\n  {line}\n  random classes: {rnd['classes']}"
    )
    record_property("frontend_summary", json.dumps(summary, sort_keys=True))


def test_frontend_verilator_catches_corruption() -> None:
    """A deliberately wrong expected dialect must surface as failing cocotb tests."""
    cfg, _ = RUNS["small"]
    with pytest.raises(CocotbFailure, match="test_random_backpressure"):
        run_frontend(cfg, 100, "test_random_backpressure", FRONTEND_CORRUPT="1",
                     FRONTEND_SUMMARY=str(VERILOG_DIR / "corrupt-summary.json"))


@pytest.mark.parametrize("name", list(RUNS))
def test_frontend_lint(name: str) -> None:
    """The bare BlockQuantizer (preprocessor, selector and quantizer inside) is lint-clean
    under ``-Wall`` with only the Amaranth-structural waivers."""
    cfg, _ = RUNS[name]
    bare = block_quantizer_verilog(cfg)
    lint([bare], bare.stem, LINT_WAIVERS)
