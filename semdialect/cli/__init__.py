"""``semdialect`` — the command line of the project (the Makefile calls these subcommands).

Conventions of every subcommand:

* bad input (arguments, paths, data) gets one line ``semdialect <cmd>: error: ...`` on stderr
  and exit status 2; every argument and path is checked before any work, and no output file
  is written then (outputs go through :mod:`semdialect.cli.output`: never over an input,
  through symlinks, into device files in place, umask respected, the old file kept whole
  if writing fails);
* Ctrl-C prints ``semdialect <cmd>: interrupted`` and exits with status 130, also for the
  commands that run in a child process (``bench``, ``eval``);
* warnings of the golden model print as ``semdialect <cmd>: warning: ...``;
* ``--config`` takes a shipped configuration's name or a TOML path and is parsed once, here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, TextIO

import numpy as np

from semdialect import __version__
from semdialect.cli.bench import check_repeat, check_size
from semdialect.cli.common import (
    EPILOG,
    add_gemm_operands,
    at_least,
    check_seed,
    checked_int,
    salient_arg,
)
from semdialect.cli.common import load_npy as _load_npy  # module global: tests patch it
from semdialect.cli.output import check_dirs, check_paths, is_stdout, write_output
from semdialect.config import Config, resolve_config, shipped_configs
from semdialect.evaluation.compare import error_rows
from semdialect.golden import FORMAT_NAMES, gemm, get_formatbook, quantize, resolve_format
from semdialect.golden.decompose import decomposed_linear
from semdialect.golden.rotated import rotated_format
from semdialect.golden.rotation import ROTATIONS
from semdialect.reports.tables import format_error_table

#: exit status of bad input, and of a run stopped by Ctrl-C (128 + SIGINT, as shells do)
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: the eval child's smallest sentence count (the Spearman correlation of the pairwise
#: similarities needs at least 3 sentences)
MIN_SENTENCES = 3


class _Parser(argparse.ArgumentParser):
    """``argparse`` with a bad command line reported as one line (exit status 2), and no
    abbreviated options (``gemm --out`` must not silently mean ``--output``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _check_format_args(args: argparse.Namespace) -> None:
    """Validate --format/--select/--block/--formatbook/--rotate without touching the data; a
    user formatbook file is read and checked once, here (``args.formatbook`` becomes the book)."""
    if args.formatbook is not None:
        args.formatbook = get_formatbook(args.formatbook)
    fmt = resolve_format(args.format, select=args.select, formatbook=args.formatbook)
    rotated_format(fmt, args.rotate, args.rotate_seed, args.block)  # rotate: size != B
    fmt.block_size(args.block)


def _rotation_text(args: argparse.Namespace) -> str:
    """The rotation of a command for its summary line (SPEC §11)."""
    if args.rotate == "none":
        return "no rotation"
    return f"{args.rotate} rotation, seed {args.rotate_seed}"


def _input_paths(args: argparse.Namespace, **arrays: str) -> dict[str, str]:
    """The input files of a command: its arrays and a user formatbook file, if any."""
    paths = dict(arrays)
    book = getattr(args, "formatbook", None)
    if book is not None and os.path.exists(book):
        paths["--formatbook"] = book
    return paths


def _message_stream(output: str) -> TextIO:
    """Where a command's summary line goes: stdout, or stderr when the data went there."""
    return sys.stderr if is_stdout(output) else sys.stdout


def cmd_quantize(args: argparse.Namespace) -> int:
    """``semdialect quantize``: IN.npy -> OUT.npz (codes, dequant, per-block metadata)."""
    check_paths({"-o": args.output}, _input_paths(args, IN=args.input))
    _check_format_args(args)
    x = _load_npy(args.input, "IN")
    q = quantize(
        x, args.format, select=args.select, block=args.block, formatbook=args.formatbook,
        pad=args.pad, name=args.input, rotate=args.rotate, rotate_seed=args.rotate_seed,
    )
    out: dict[str, np.ndarray] = {"codes": q.codes, "dequant": q.dequant}
    for key in ("se", "dialect", "scale", "rotated"):
        val = getattr(q, key)
        if val is not None:
            out[key] = val
    if q.tensor_scale is not None:
        out["tensor_scale"] = np.float32(q.tensor_scale)
    out["format"] = np.array(q.format)
    out["block"] = np.int32(q.block)
    out["bits_per_element"] = np.float64(q.bits_per_element)
    out["rotate"] = np.array(args.rotate)
    out["rotate_seed"] = np.uint64(args.rotate_seed)

    write_output(args.output, lambda fh: np.savez(fh, **out))
    print(
        f"{args.input}: {x.shape} -> {args.output} ({q.format}, B={q.block}, "
        f"{q.bits_per_element:.4g} bits/element, {_rotation_text(args)})",
        file=_message_stream(args.output)
    )
    return 0


def cmd_gemm(args: argparse.Namespace) -> int:
    """``semdialect gemm``: Y = X·W under the format's GEMM contract -> Y.npy."""
    inputs = {"X": args.x, "W": args.w}
    if args.salient is not None:
        inputs["--salient"] = args.salient
    check_paths({"-o": args.output}, _input_paths(args, **inputs))
    _check_format_args(args)
    x = _load_npy(args.x, "X")
    w = _load_npy(args.w, "W")
    salient = salient_arg(args, x)
    if salient is None:
        y = gemm(
            x, w, args.format, select=args.select, block=args.block, formatbook=args.formatbook,
            pad=args.pad, out=args.precision, rotate=args.rotate, rotate_seed=args.rotate_seed,
        )
    else:
        resolve_format(args.format, select=args.select, formatbook=args.formatbook)  # checks
        # a Formatbook (not a format object) keeps SPEC §4: weights use lut whatever --select
        fmt = get_formatbook(args.formatbook) if args.formatbook is not None else args.format
        y = decomposed_linear(x, w, fmt, salient=salient, select=args.select, block=args.block,
                              out=args.precision, rotate=args.rotate,
                              rotate_seed=args.rotate_seed).y
    write_output(args.output, lambda fh: np.save(fh, y))
    print(f"Y = X{x.shape} · W{w.shape} -> {args.output} {y.shape} {y.dtype} ({args.format}, "
          f"{_rotation_text(args)})", file=_message_stream(args.output))
    return 0


def _progress(msg: str) -> None:
    """Progress of a long command, on stderr."""
    print(f"  ... {msg}", file=sys.stderr, flush=True)


def cmd_error(args: argparse.Namespace) -> int:
    """``semdialect error``: the accuracy table of every format on IN.npy (stdout only)."""
    resolve_format("sd32").block_size(args.block)  # the B of the dialect formats and INT4
    x = _load_npy(args.input, "IN")
    rows = list(error_rows(x, block=args.block, pad=args.pad, name=args.input,
                           progress=_progress if x.size > 1 << 20 else None))
    print(format_error_table(rows, f"{args.input}: shape {x.shape}, {x.dtype}"))
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    """``semdialect sim``: the main job (:mod:`semdialect.cli.mainjob`)."""
    check_dirs({"--out": args.out})
    from semdialect.cli.mainjob import run

    return run(args.config, args.out, workload=args.workload, rho=args.rho,
               skip_rtl=args.skip_rtl, skip_area=args.skip_area, fmax=args.fmax,
               full_rtl=args.full_rtl, full_ablation=args.full_ablation)


def cmd_verilog(args: argparse.Namespace) -> int:
    """``semdialect verilog``: the configuration's Verilog, linted, into DIR/<name>/."""
    from semdialect.paths import build_dir
    from semdialect.tb.generate import generate

    check_dirs({"--out": args.out if args.out is not None else build_dir() / "verilog"})
    cfg: Config = args.config
    print(f"generating Verilog for {cfg.name} ({cfg.rows}x{cfg.cols}, B={cfg.block}, "
          f"{cfg.formatbook} {cfg.select}) and linting it with Verilator ...", flush=True)
    target = generate(cfg, args.out)
    for f in sorted(target.iterdir()):
        print(f"  {f}")
    return 0


def _single_thread_env() -> dict[str, str]:
    """The environment with one BLAS/OpenMP thread; it must be set before NumPy, BLAS or
    torch load, so the commands using it run their work in a child process."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


@contextlib.contextmanager
def one_line_warnings(prog: str, stream: TextIO | None = None) -> Iterator[None]:
    """Within the block, print each warning as one line ``<prog>: warning: <message>`` on
    ``stream`` (default stderr) instead of Python's ``file:line: Category`` format."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text}", file=stream or sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def run_child_main(prog: str, module: str) -> int:
    """What a child process of ``semdialect <cmd>`` runs: ``module.main()`` (arguments in
    ``sys.argv``) with one-line warnings; Ctrl-C ends it quietly with status 130, the parent
    prints the one line."""
    try:
        with one_line_warnings(prog):
            status = importlib.import_module(module).main()
        return int(status or 0)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting
        return EXIT_INTERRUPTED


#: grace period for a child to stop on its own after Ctrl-C (a terminal's Ctrl-C reaches
#: the whole process group) before it is sent SIGINT, then killed (seconds)
CHILD_GRACE_S = 2.0


def _run_child(prog: str, module: str, argv: Sequence[str]) -> int:
    """Run ``module.main()`` in a child process with one BLAS/OpenMP thread (the variables
    must be set before NumPy loads) and return its exit status. Ctrl-C (here or in the
    child) raises ``KeyboardInterrupt`` once the child has stopped."""
    code = ("import sys\nfrom semdialect.cli import run_child_main\n"
            f"sys.exit(run_child_main({prog!r}, {module!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=_single_thread_env())
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        try:
            try:
                proc.wait(timeout=CHILD_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=CHILD_GRACE_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait()
        raise KeyboardInterrupt from None
    if status in (EXIT_INTERRUPTED, -signal.SIGINT):
        raise KeyboardInterrupt
    return status


def cmd_bench(args: argparse.Namespace) -> int:
    """``semdialect bench``: throughput, in a one-thread child process."""
    return _run_child("semdialect bench", "semdialect.cli.bench",
                      ["--size", str(args.size), "--repeat", str(args.repeat)])


def cmd_eval(args: argparse.Namespace) -> int:
    """``semdialect eval``: accuracy on real data, in a child process."""
    # Its matrices are small (one sentence at a time): BLAS threads only add contention.
    check_dirs({"--out": args.out})
    opts = ["--out", args.out]
    if args.sentences is not None:
        opts += ["--sentences", str(args.sentences)]
    if args.quick:
        opts.append("--quick")
    command = " ".join(["semdialect", "eval", *opts])
    return _run_child("semdialect eval", "semdialect.reports.accuracy",
                      [*opts, "--command", command])


def _config_arg(value: str) -> Config:
    """``--config``: a shipped configuration's name or a TOML path, parsed into a Config."""
    try:
        return resolve_config(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _config_help() -> str:
    return (f"a shipped configuration ({', '.join(shipped_configs())}) or the path of a "
            "configuration .toml file (default: default, an 8x8 array, B=32, sd32 lut)")


def _add_format_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", "-f", default="sd32", choices=FORMAT_NAMES,
                   help="number format (default sd32; see README.md for bits/element)")
    p.add_argument("--select", choices=("lut", "two-stage"), default=None,
                   help="dialect selection for dfp4/sd32: lut (SemanticDialect, default) or "
                        "two-stage (BlockDialect, dfp4 only)")
    p.add_argument("--block", "-b", type=int, default=None, metavar="B",
                   help="block size B in elements along the last axis (dialects 16/32/64, "
                        "default 32; MX formats 32; NVFP4 16; INT4 any even size, default 32)")
    p.add_argument("--formatbook", default=None, metavar="FILE.toml",
                   help="user formatbook for dfp4/sd32 instead of the format's own: 8 strictly "
                        "increasing half-unit magnitudes 0..15 per dialect, starting at 0 "
                        "(default: the format's builtin book)")
    p.add_argument("--pad", action="store_true",
                   help="zero-pad a last axis that is not a multiple of B (zeros add nothing "
                        "to any cost or product; outputs keep the input shape)")
    p.add_argument("--rotate", choices=ROTATIONS, default="none",
                   help="block rotation before quantization (SPEC §11): hadamard = a block "
                        "Hadamard of size B with a seeded sign vector, on activations and on "
                        "W's columns (B must be a power of two); dequant is returned in the "
                        "input's basis, the GEMM is exact in the rotated basis (default none)")
    p.add_argument("--rotate-seed", type=checked_int(check_seed), default=0, metavar="N",
                   help="SplitMix64 seed of the rotation's sign vector, an integer in "
                        "[0, 2^64) (default 0)")


def build_parser() -> argparse.ArgumentParser:
    """The ``semdialect`` argument parser (every subcommand)."""
    ap = _Parser(
        prog="semdialect",
        description="SemanticDialect 4-bit block quantization: golden model, RTL and models.",
        epilog=EPILOG,
    )
    ap.add_argument("--version", action="version", version=f"semdialect {__version__}",
                    help="print the version and exit")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("quantize", help="quantize a .npy tensor block-wise along its last axis",
                       description="Quantize IN.npy (FP16-rounded first) along its last axis. "
                       "OUT.npz holds codes (uint8, input shape), dequant (float32), and per "
                       "block se/dialect (dialect formats) or scale (baselines; NVFP4 also "
                       "tensor_scale), and rotate/rotate_seed. With --rotate hadamard, codes "
                       "and metadata are in the rotated basis, dequant in the input's basis, "
                       "and rotated (float32) holds the dequant in the rotated basis; with --pad "
                       "codes and rotated keep the padded length.", epilog=EPILOG)
    p.add_argument("input", metavar="IN.npy",
                   help="input tensor: a .npy array of any numeric dtype, blocked along its "
                        "last axis")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz",
                   help="output .npz file (never one of the inputs; a symlink is written "
                        "through, an existing file keeps its permissions)")
    _add_format_args(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("gemm", help="Y = X·W under a format's GEMM contract",
                       description="X.npy is (m, k) activations (leading dims allowed), W.npy "
                       "is (k, n) weights. Weights always use lut selection over the whole "
                       "formatbook. Y is float32, or float16 with --precision fp16 (SPEC §5; "
                       "baselines SPEC §8).", epilog=EPILOG)
    add_gemm_operands(
        p, output_help="output .npy file for Y (m, n) (never one of the inputs; a symlink is "
        "written through, an existing file keeps its permissions)",
        precision_help="precision of Y (default fp32, the accumulator; fp16 rounds the FP32 "
        "result once, round-to-nearest-even)", salient=True)
    _add_format_args(p)
    p.set_defaults(func=cmd_gemm)

    p = sub.add_parser("error", help="SQNR, MSE and bits/element of every format on a tensor",
                       description="Quantize IN.npy in every format (sd32, dfp4 lut and "
                       "two-stage, mxfp4, nvfp4, int4, mxint8) and print a Markdown table of "
                       "bits/element, SQNR (dB) and MSE against the input itself; the first row "
                       "is plain FP16, the hardware's input precision. Nothing is written.",
                       epilog=EPILOG)
    p.add_argument("input", metavar="IN.npy",
                   help="input tensor: a .npy array, blocked along its last axis")
    p.add_argument("--block", "-b", type=int, default=32, metavar="B",
                   help="block size in elements for the dialect formats and INT4: 16, 32 or 64 "
                        "(default 32; MX formats always use 32, NVFP4 16)")
    p.add_argument("--pad", action="store_true",
                   help="zero-pad a last axis that is not a multiple of B")
    p.set_defaults(func=cmd_error)

    p = sub.add_parser(
        "sim", help="the main job: golden accuracy, RTL check, cycle model, area, energy",
        description="Quantize the shipped real tensors, run one GEMM tile of the configuration "
        "through the RTL on Verilator (bit-exact check, cycles vs the cycle model), run the "
        "cycle model on a video-DiT workload for SemanticDialect, BlockDialect, MXFP4 and "
        "MXINT8, synthesize for area, estimate energy, and write OUT/summary.md plus plots.",
        epilog=EPILOG)
    p.add_argument("--config", default="default", type=_config_arg, metavar="NAME|FILE.toml",
                   help=_config_help())
    p.add_argument("--out", default="reports/out", metavar="DIR",
                   help="output folder for the CSVs, plots and summary.md (default reports/out, "
                        "created if missing)")
    p.add_argument("--workload", default="opensora2_256px_129f",
                   help="a shipped workload (data/workloads/*.csv stem) or a CSV path "
                        "(layer,M,K,N,count or a SCALE-Sim topology) (default "
                        "opensora2_256px_129f, Open-Sora 2.0 at 256px, 129 frames)")
    p.add_argument("--rho", default="0.05",
                   help="decomposition's salient fraction for the +decomposition design, a "
                        "decimal in [0, 1) (default 0.05, i.e. 5%% of the tokens; 0 = no residual "
                        "pass)")
    p.add_argument("--skip-rtl", action="store_true",
                   help="skip the Verilator stage (the slowest without a build cache)")
    p.add_argument("--full-rtl", action="store_true",
                   help="build the configuration's whole array for the Verilator stage; by "
                        "default an array of more than 8 PEs runs there on a reduced 4x2 array "
                        "with every [pipeline] stage, B, formatbook and selector kept (the 8x8 "
                        "default core takes ~12 min to generate and build on 2 cores)")
    p.add_argument("--skip-area", action="store_true", help="skip Yosys synthesis and place "
                   "and route")
    p.add_argument("--full-ablation", action="store_true",
                   help="synthesize every point of the area ablation: each power-of-two "
                        "formats per cycle P dividing K and B = 64 too; by default the quick "
                        "plan (P = 1, the geometric middle, K; B = 16, 32), which keeps a "
                        "cold make sim within about 12 minutes on 2 cores")
    p.add_argument("--no-fmax", dest="fmax", action="store_false",
                   help="skip placing the PE core and the selector on iCE40 (nextpnr), the "
                   "FPGA prototype figures; throughput uses the 180 nm OpenSTA clock, or an "
                   "assumed 100 MHz without the cell library and OpenSTA")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("verilog", help="emit Verilog for a configuration (linted)",
                       description="Write build/verilog/<config>/: the GEMM core top, every "
                       "component and params.json (configuration, limits, tool versions, lint "
                       "waivers); each file passes verilator --lint-only -Wall.", epilog=EPILOG)
    p.add_argument("--config", default="default", type=_config_arg, metavar="NAME|FILE.toml",
                   help=_config_help())
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output root; files go to DIR/<config name>/ (default build/verilog, "
                        "under $SEMDIALECT_BUILD_DIR if set)")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser(
        "eval", help="accuracy of every format on real data (MiniLM W4A4, video tokens)",
        description="Measure every format on real data and write OUT/accuracy.csv, "
        "OUT/accuracy_layers.csv and OUT/accuracy.md (also printed). (1) all-MiniLM-L6-v2 "
        "with every linear layer's activations and weights quantized (W4A4): per-layer "
        "activation/output SQNR, sentence-embedding cosine and Spearman correlation of the "
        "pairwise similarities, on the first sentences of Python standard-library docstrings; "
        "(2) 8x8 patch tokens of a real video: SQNR and temporal consistency; (3) "
        "attention-selected vs random salient tokens for decomposition. Formats: fp16, int4, "
        "mxfp4, nvfp4, dfp4 two-stage (BlockDialect), dfp4 lut, sd32 lut, sd32 + SeDA, "
        "sd32 + decomposition (rho 0.05), sd32 + decomposition + SeDA (tau 0.5). Progress "
        "goes to stderr. A full run takes a few minutes.", epilog=EPILOG)
    p.add_argument("--sentences", type=at_least(MIN_SENTENCES, " (a rank correlation of "
                                                 "pairwise similarities needs 3)"),
                   default=None, metavar="N",
                   help="MiniLM sentences to embed, at least 3 (default 64: 2016 sentence pairs "
                        "for the similarity correlation, a few minutes on 2 cores; --quick: 6)")
    p.add_argument("--out", default="reports/out", metavar="DIR",
                   help="output folder (default reports/out, created if missing)")
    p.add_argument("--quick", action="store_true",
                   help="small smoke run: 6 sentences and 3 video frames (used by the tests); "
                        "its numbers are not a measurement")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="quantization and GEMM throughput, one thread",
                       description="Time every format's quantization of a SIZE x SIZE FP16 "
                       "tensor (M elements/s, best of REPEAT, and peak memory relative to the "
                       "input), then the GEMM contract arithmetic on quantized 256x2048 and "
                       "2048x256 operands (GMAC/s), on one BLAS/OpenMP thread. Where torch and "
                       "torchao are installed, torchao's MXFP4 to_mx is timed on the same "
                       "tensor. Prints a Markdown table; nothing is written.", epilog=EPILOG)
    p.add_argument("--size", type=checked_int(check_size), default=4096, metavar="SIZE",
                   help="the tensor is SIZE x SIZE FP16 elements; a positive multiple of 32 "
                        "so that every format's block (32 elements, NVFP4 16) divides a row "
                        "(default 4096)")
    p.add_argument("--repeat", type=checked_int(check_repeat), default=3, metavar="N",
                   help="time N runs of each format and keep the best (default 3)")
    p.set_defaults(func=cmd_bench)

    from semdialect.cli.rtl_run import add_parsers as add_rtl_parsers  # rtl-gemm, rtl-quantize

    add_rtl_parsers(sub)
    from semdialect.cli.formatbook import add_parsers as add_formatbook_parsers
    from semdialect.cli.scalesim import add_parsers as add_scalesim_parsers
    from semdialect.cli.sweep import add_parsers as add_sweep_parsers

    add_sweep_parsers(sub)
    add_scalesim_parsers(sub)
    add_formatbook_parsers(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 130 Ctrl-C)."""
    prog = "semdialect"
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a bad command line (one line)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        prog = f"semdialect {args.cmd}"
        with one_line_warnings(prog):
            return int(args.func(args))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
