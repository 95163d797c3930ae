"""Run a caller's FP16 blocks through the activation frontend
(:class:`rtl.block_quantizer.BlockQuantizer`, the bare component the chip instantiates) on
Verilator (``semdialect rtl-quantize``).

The Verilog is cached by :func:`rtl.emit.cached_verilog`, the simulator by
:func:`tb.runner.run_cocotb`. Blocks go to ``tb/cocotb_quantize_job.py`` as a ``.npy`` file in
a work folder and the quantized fields come back the same way; nothing is compared here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semdialect.config import Config
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.emit import CachedVerilog, cached_verilog
from semdialect.tb.gemm_run import config_env, run_job, verilog_identifier
from semdialect.tb.runner import CocotbRun

__all__ = ["QuantizeResult", "quantizer_verilog", "run_quantizer_arrays"]


@dataclass(frozen=True)
class QuantizeResult:
    """Outcome of :func:`run_quantizer_arrays`: the ``o`` fields of every block, in order."""

    codes: np.ndarray  #: (n, B) uint8, 4-bit codes (bit 3 sign, bits 2:0 magnitude index)
    se_field: np.ndarray  #: (n,) uint8, SE + 16 (0..29; 0 for an invalid block)
    dialect: np.ndarray  #: (n,) uint8, dialect id
    invalid: np.ndarray  #: (n,) bool, the block held NaN/Inf (then codes, SE field, dialect 0)
    cycles: int  #: simulated cycles
    verilog: CachedVerilog
    run: CocotbRun

    @property
    def se(self) -> np.ndarray:
        """(n,) int8 signed SE (SPEC §2)."""
        return (self.se_field.astype(np.int16) - 16).astype(np.int8)


def quantizer_verilog(cfg: Config) -> CachedVerilog:
    """The bare BlockQuantizer of ``cfg`` (module ``block_quantizer_<config>``), cached."""
    name = f"block_quantizer_{verilog_identifier(cfg.name)}"
    return cached_verilog(name, BlockQuantizer.from_config, (cfg,))


def run_quantizer_arrays(
    cfg: Config,
    blocks: np.ndarray,
    work_dir: str | os.PathLike[str],
    *,
    progress: Callable[[str], None] | None = None,
) -> QuantizeResult:
    """Quantize ``blocks`` ((n, B) float16 or uint16 FP16 bit patterns, n ≥ 1) on ``cfg``'s
    BlockQuantizer over the whole formatbook. Files go through ``work_dir`` (an existing
    folder); the simulator's log goes to ``work_dir/run/``."""
    say = progress or (lambda _msg: None)
    blocks = np.asarray(blocks)
    if blocks.dtype not in (np.float16, np.uint16) or blocks.ndim != 2 or (
            blocks.shape[1] != cfg.block) or not len(blocks):
        raise ValueError(f"blocks: expected an (n, {cfg.block}) float16 array with n >= 1, got "
                         f"{blocks.dtype} {blocks.shape}")
    t0 = time.monotonic()
    say(f"Verilog: BlockQuantizer {cfg.name} (B = {cfg.block}, {cfg.formatbook} {cfg.select}, "
        f"{cfg.selector_cycles} cycle(s) per block) ...")
    top = quantizer_verilog(cfg)
    say(f"Verilog: {'reused from the cache' if top.hit else 'generated'} in "
        f"{time.monotonic() - t0:.1f} s ({top.path})")

    work = Path(work_dir)
    np.save(work / "blocks.npy", np.ascontiguousarray(blocks).view(np.uint16))
    (work / "job.json").write_text(json.dumps({"config": json.loads(config_env(cfg))}))
    run, result = run_job(top, "semdialect.tb.cocotb_quantize_job", "QUANTIZE_JOB", work, say,
                          progress, unit="blocks", what=f"{len(blocks)} blocks",
                          build_time="0.5-1 min")
    codes = np.load(work / "codes.npy")
    if codes.shape != blocks.shape:
        raise RuntimeError(f"cocotb job returned codes {codes.shape}, expected {blocks.shape}")
    return QuantizeResult(codes, np.load(work / "se.npy"), np.load(work / "dialect.npy"),
                          np.load(work / "invalid.npy"), int(result["cycles"]), top, run)
