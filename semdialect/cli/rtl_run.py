"""``semdialect rtl-gemm`` and ``semdialect rtl-quantize``: a user's own tensors through the
generated RTL on Verilator.

* ``rtl-gemm X.npy W.npy -o Y.npy --config C``: Y = X·W on the configuration's
  :class:`~semdialect.rtl.gemm_core.GemmCore` (X the FP16 activations, quantized on the fly by
  the core; W quantized beforehand exactly as ``semdialect gemm`` does, ``lut`` over the whole
  formatbook). Y.npy equals ``semdialect gemm X.npy W.npy -o Y.npy --format <book>
  --formatbook ... --select <select> --block <B>`` byte for byte. A rotating configuration
  (``rotate = "hadamard"``, SPEC §11) rotates X in the core's frontend (activation role) and W
  offline here (weight role): Y equals ``semdialect gemm ... --rotate hadamard --rotate-seed
  <seed>``.
* ``rtl-quantize IN.npy -o OUT.npz --config C``: IN's blocks (along its last axis) through the
  configuration's :class:`~semdialect.rtl.block_quantizer.BlockQuantizer`; OUT.npz holds the
  same arrays as ``semdialect quantize`` (codes, dequant, se, dialect, format, block,
  bits_per_element, rotate, rotate_seed; ``dequant`` is the SPEC §4 decode of the RTL's
  codes, SE and dialect).
  The BlockQuantizer runs without a rotator in front: a rotating configuration is refused
  (``rotate: ...``, exit status 2).

Bad input is rejected with the golden commands' own checks and messages (shapes, NaN/Inf,
values outside FP16, K not a multiple of B without ``--pad``), plus the core's limits
(M, N, K of the configuration's GemmCore), before any Verilog is generated or built. Progress
goes to stderr; the tensors travel to the cocotb process as ``.npy`` files in a temporary
folder (:func:`semdialect.tb.gemm_run.run_gemm_arrays`,
:func:`semdialect.tb.frontend_run.run_quantizer_arrays`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semdialect.cli.common import EPILOG, add_gemm_operands, load_npy, salient_arg
from semdialect.cli.output import check_paths, write_output
from semdialect.config import Config, resolve_config, shipped_configs
from semdialect.golden.blocks import pad_last, to_fp16
from semdialect.golden.formatbook import Formatbook
from semdialect.golden.formats import DialectFormat
from semdialect.golden.gemm import W_NAME, check_operands, output_precision
from semdialect.golden.quantize import quantize_weights
from semdialect.golden.rotated import RotatedFormat
from semdialect.paths import configs_dir

__all__ = ["add_parsers", "cmd_rtl_gemm", "cmd_rtl_quantize", "dequantize"]

#: exit status when the RTL run itself fails (not bad input)
EXIT_RTL_FAILURE = 1

def add_parsers(subparsers: Any) -> None:
    """Add ``rtl-gemm`` and ``rtl-quantize`` to the ``semdialect`` subcommands."""
    config_help = ("configuration: a shipped name (" + ", ".join(shipped_configs()) +
                   ") or a TOML file; sets the array, B, formatbook and selection")
    pad_help = ("zero-pad a last axis that is not a multiple of B (as in the golden "
                "commands: zeros add nothing to any cost or product)")
    p = subparsers.add_parser(
        "rtl-gemm", help="Y = X·W on the generated GemmCore RTL (Verilator), from .npy files",
        description="Run X.npy ((m, k) activations, leading dims allowed) times W.npy ((k, n) "
        "weights) through the configuration's GemmCore on Verilator. W is quantized first as "
        "'semdialect gemm' does (lut over the whole formatbook); X is quantized by the RTL. "
        "Y.npy (float32, or float16 with --precision fp16) equals 'semdialect gemm' with the "
        "configuration's formatbook, select and block, byte for byte. Any k up to the core's limit "
        "(512 blocks) works. Generating and building the simulator takes from seconds "
        "(cached) to a few minutes; progress goes to stderr. A failed RTL run exits "
        "with status 1.", epilog=EPILOG)
    add_gemm_operands(
        p, output_help="where Y (X's leading dims + (n,)) is written",
        precision_help="precision of Y (default fp32, what the core outputs; fp16 rounds the "
        "FP32 result once, round-to-nearest-even, as 'semdialect gemm' does)", salient=True)
    p.add_argument("--config", required=True, metavar="CONFIG", help=config_help)
    p.add_argument("--pad", action="store_true", help=pad_help)
    p.set_defaults(func=cmd_rtl_gemm)

    p = subparsers.add_parser(
        "rtl-quantize", help="quantize a .npy tensor on the generated BlockQuantizer RTL",
        description="Run IN.npy's blocks (along its last axis, FP16-rounded first) through the "
        "configuration's activation frontend (BlockQuantizer) on Verilator. OUT.npz holds the "
        "arrays of 'semdialect quantize' with the configuration's formatbook, select and "
        "block: codes, dequant, se, dialect, format, block, bits_per_element, identical byte "
        "for byte. Progress goes to stderr. A failed RTL run exits with status 1.",
        epilog=EPILOG)
    p.add_argument("input", metavar="IN.npy",
                   help="input tensor: a .npy array, blocked along its last axis")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz",
                   help="where the quantized arrays are written")
    p.add_argument("--config", required=True, metavar="CONFIG", help=config_help)
    p.add_argument("--pad", action="store_true", help=pad_help)
    p.set_defaults(func=cmd_rtl_quantize)


def _progress(command: str) -> Callable[[str], None]:
    """A progress callback printing ``semdialect <command>: <message>`` on stderr."""

    def say(message: str) -> None:
        print(f"semdialect {command}: {message}", file=sys.stderr, flush=True)

    return say


def _config(spec: str, *, rotating: bool = True) -> tuple[Config, dict[str, str]]:
    """The configuration and its input files (the TOML and a formatbook file, if any);
    ``rotating`` False: ``ValueError`` naming ``rotate`` for a rotating configuration (the
    command's RTL has no rotator)."""
    cfg = resolve_config(spec)
    if not rotating and cfg.rotate != "none":
        raise ValueError(
            f"rotate: {cfg.rotate!r}: rtl-quantize runs the BlockQuantizer alone, without the "
            "GEMM core's rotator (SPEC §11); use rotate = \"none\" or 'semdialect quantize "
            "--rotate'")
    files: dict[str, str] = {}
    # as resolve_config: a shipped name wins over a file of that name
    path = configs_dir() / f"{spec}.toml" if spec in shipped_configs() else Path(spec)
    if path.is_file():
        files["--config"] = str(path)
    if os.path.isfile(cfg.formatbook):
        files["--config formatbook"] = cfg.formatbook
    return cfg, files


def _rtl_failure(command: str, exc: BaseException) -> int:
    print(f"semdialect {command}: error: the RTL run failed: {exc}", file=sys.stderr)
    return EXIT_RTL_FAILURE


def cmd_rtl_gemm(args: argparse.Namespace) -> int:
    say = _progress("rtl-gemm")
    cfg, config_files = _config(args.config)
    inputs = {"X": args.x, "W": args.w, **config_files}
    if args.salient is not None:
        inputs["--salient"] = args.salient
    check_paths({"-o": args.output}, inputs)
    x, w = check_operands(load_npy(args.x, "X"), load_npy(args.w, "W"))
    salient = salient_arg(args, x)
    b = cfg.block
    rotation = cfg.rotation()
    # the golden gemm's checks, in its order: X's values (FP16 range, NaN/Inf, K vs B; with a
    # rotation, every block inside FP16 after it), then W (rotated offline, weight role)
    x16 = pad_last(to_fp16(x, "X", b), b, args.pad, "X")
    if rotation is not None:
        RotatedFormat(DialectFormat(cfg.book(), cfg.select), rotation).rotate_rows(x16, "X")
    qw = quantize_weights(w, DialectFormat(cfg.book(), "lut"), block=b, pad=args.pad,
                          name=W_NAME, rotate=rotation)
    if rotation is not None:
        # run_gemm_arrays checks the weights' formatbook by name; the codes, SE and dialect it
        # sends are the rotated W's (the core rotates X: SPEC §11)
        qw = dataclasses.replace(qw, format=cfg.book().name)
    k = x16.shape[-1]
    m, n, kb = math.prod(x16.shape[:-1]), w.shape[1], k // b
    if qw.codes.shape[1] < k:  # --pad: W's padding elements are +0 (code 0), as golden's
        qw = dataclasses.replace(qw, codes=np.pad(qw.codes, ((0, 0), (0, k - qw.codes.shape[1]))))

    from semdialect.tb.gemm_run import CONFIG_LIMITS, run_gemm_arrays
    from semdialect.tb.runner import CocotbFailure
    from semdialect.tb.verilator import VerilatorError

    CONFIG_LIMITS.check(m, n, kb, b)
    say(f"Y = X{x.shape} · W{w.shape} on GemmCore {cfg.name} ({cfg.rows}x{cfg.cols} PEs)")
    try:
        with tempfile.TemporaryDirectory(prefix="semdialect-rtl-gemm-") as tmp:
            result = run_gemm_arrays(cfg, x16.reshape(m, k), qw, tmp, progress=say,
                                     salient=salient)
    except (CocotbFailure, VerilatorError) as exc:
        return _rtl_failure("rtl-gemm", exc)
    if result.invalid.any():  # cannot happen: NaN/Inf were rejected above
        return _rtl_failure("rtl-gemm", RuntimeError("the core flagged outputs invalid"))
    y = output_precision(result.y.reshape(x.shape[:-1] + (n,)), args.precision)
    write_output(args.output, lambda fh: np.save(fh, y))
    print(f"Y = X{x.shape} · W{w.shape} -> {args.output} {y.shape} {y.dtype} "
          f"(GemmCore {cfg.name} on Verilator, {result.cycles} cycles)")
    return 0


def dequantize(book: Formatbook, codes: np.ndarray, se: np.ndarray, dialect: np.ndarray,
               block: int) -> np.ndarray:
    """SPEC §4 dequantization of quantized fields: element i of block j is
    HU[dialect_j][code_i & 7] · 2^(SE_j − 1) as FP32 with the sign bit of code bit 3 (code 8
    gives −0.0). ``codes`` (…, nb·B) uint8, ``se`` (…, nb) signed SE, ``dialect`` (…, nb)."""
    ids = np.repeat(dialect.astype(np.intp), block, axis=-1)
    magnitude = book.hu.astype(np.float32)[ids, codes & 7]
    signed = np.where((codes >> 3) & 1, -magnitude, magnitude)
    scale = np.repeat(np.ldexp(np.float32(1), se.astype(np.int32) - 1), block, axis=-1)
    return (signed * scale).astype(np.float32)


def cmd_rtl_quantize(args: argparse.Namespace) -> int:
    say = _progress("rtl-quantize")
    cfg, config_files = _config(args.config, rotating=False)
    check_paths({"-o": args.output}, {"IN": args.input, **config_files})
    x = load_npy(args.input, "IN")
    b = cfg.block
    x16 = to_fp16(x, args.input, b)  # the golden quantize's checks, with its names
    padded = pad_last(x16, b, args.pad, args.input)
    k0, k = x16.shape[-1], padded.shape[-1]
    fmt = DialectFormat(cfg.book(), cfg.select)

    from semdialect.tb.frontend_run import run_quantizer_arrays
    from semdialect.tb.runner import CocotbFailure
    from semdialect.tb.verilator import VerilatorError

    say(f"{args.input}: {x.shape}, {padded.size // b} blocks of {b} on BlockQuantizer "
        f"{cfg.name}")
    try:
        with tempfile.TemporaryDirectory(prefix="semdialect-rtl-quantize-") as tmp:
            result = run_quantizer_arrays(cfg, padded.reshape(-1, b), tmp, progress=say)
    except (CocotbFailure, VerilatorError) as exc:
        return _rtl_failure("rtl-quantize", exc)
    if result.invalid.any():  # cannot happen: NaN/Inf were rejected above
        return _rtl_failure("rtl-quantize", RuntimeError("the frontend flagged blocks invalid"))
    meta_shape = x16.shape[:-1] + (k // b,)
    codes = result.codes.reshape(padded.shape)
    se = result.se.reshape(meta_shape)
    dialect = result.dialect.reshape(meta_shape)
    dequant = dequantize(cfg.book(), codes, se, dialect, b)
    out = {
        "codes": np.ascontiguousarray(codes[..., :k0]),
        "dequant": np.ascontiguousarray(dequant[..., :k0]),
        "se": se,
        "dialect": dialect,
        "format": np.array(fmt.name),
        "block": np.int32(b),
        "bits_per_element": np.float64(fmt.bits_per_element(b)),
        # as 'semdialect quantize' records them (a rotating configuration was refused above)
        "rotate": np.array(cfg.rotate),
        "rotate_seed": np.uint64(cfg.rotate_seed),
    }
    write_output(args.output, lambda fh: np.savez(fh, **out))
    print(f"{args.input}: {x.shape} -> {args.output} ({fmt.name}, B={b}, "
          f"{fmt.bits_per_element(b):.4g} bits/element; BlockQuantizer {cfg.name} on "
          f"Verilator, {result.cycles} cycles)")
    return 0
