"""``semdialect`` — the command line of the project (the Makefile calls these subcommands).

Bad input gets one line on stderr and exit status 2; no output file is written then.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semdialect.evaluation.compare import error_rows
from semdialect.golden import FORMAT_NAMES, gemm, quantize
from semdialect.reports.tables import format_error_table

EPILOG = "Numbers follow SPEC v1.2 (see README.md). Exit status: 0 ok, 2 bad input."


class UsageError(ValueError):
    """A user error reported as one line."""


def _load_npy(path: str, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what}: no such file {path}")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"{what}: {path} is not a readable .npy array ({exc})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise UsageError(f"{what}: {path} is an .npz archive; pass a single-array .npy file")
    return arr


def _atomic_write(path: str, writer) -> None:  # type: ignore[no-untyped-def]
    """Write through a temporary file in the target directory, then rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=target.suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_quantize(args: argparse.Namespace) -> int:
    x = _load_npy(args.input, "IN")
    q = quantize(
        x, args.format, select=args.select, block=args.block, formatbook=args.formatbook,
        pad=args.pad, name=args.input,
    )
    out: dict[str, np.ndarray] = {"codes": q.codes, "dequant": q.dequant}
    for key in ("se", "dialect", "scale"):
        val = getattr(q, key)
        if val is not None:
            out[key] = val
    if q.tensor_scale is not None:
        out["tensor_scale"] = np.float32(q.tensor_scale)
    out["format"] = np.array(q.format)
    out["block"] = np.int32(q.block)
    out["bits_per_element"] = np.float64(q.bits_per_element)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **out)

    _atomic_write(args.output, write)
    print(
        f"{args.input}: {x.shape} -> {args.output} ({q.format}, B={q.block}, "
        f"{q.bits_per_element:.4g} bits/element)"
    )
    return 0


def cmd_gemm(args: argparse.Namespace) -> int:
    x = _load_npy(args.x, "X")
    w = _load_npy(args.w, "W")
    y = gemm(
        x, w, args.format, select=args.select, block=args.block, formatbook=args.formatbook,
        pad=args.pad, out=args.out,
    )
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, y)

    _atomic_write(args.output, write)
    print(f"Y = X{x.shape} · W{w.shape} -> {args.output} {y.shape} {y.dtype} ({args.format})")
    return 0


def _progress(msg: str) -> None:
    print(f"  ... {msg}", file=sys.stderr, flush=True)


def cmd_error(args: argparse.Namespace) -> int:
    x = _load_npy(args.input, "IN")
    rows = list(error_rows(x, block=args.block, pad=args.pad, name=args.input,
                           progress=_progress if x.size > 1 << 20 else None))
    print(format_error_table(rows, f"{args.input}: shape {x.shape}, {x.dtype}"))
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from semdialect.cli.mainjob import run

    return run(args.config, args.out, workload=args.workload, rho=args.rho,
               skip_rtl=args.skip_rtl, skip_area=args.skip_area, fmax=args.fmax)


def cmd_verilog(args: argparse.Namespace) -> int:
    from semdialect.config import load_config
    from semdialect.tb.generate import generate

    cfg = load_config(args.config)
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


def cmd_bench(args: argparse.Namespace) -> int:
    env = _single_thread_env()
    cmd = [sys.executable, "-m", "semdialect.cli.bench", "--size", str(args.size),
           "--repeat", str(args.repeat)]
    return subprocess.call(cmd, env=env)


def cmd_eval(args: argparse.Namespace) -> int:
    # Its matrices are small (one sentence at a time): BLAS threads only add contention.
    env = _single_thread_env()
    opts = ["--out", args.out]
    if args.sentences is not None:
        opts += ["--sentences", str(args.sentences)]
    if args.quick:
        opts.append("--quick")
    command = " ".join(["semdialect", "eval", *opts])
    return subprocess.call([sys.executable, "-m", "semdialect.evaluation.study", *opts,
                            "--command", command], env=env)


def _add_format_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", "-f", default="sd32", choices=FORMAT_NAMES,
                   help="number format (default sd32)")
    p.add_argument("--select", choices=("lut", "two-stage"), default=None,
                   help="dialect selection for dfp4/sd32: lut (SemanticDialect, default) or "
                        "two-stage (BlockDialect, dfp4 only)")
    p.add_argument("--block", "-b", type=int, default=None,
                   help="block size B along the last axis (dialects 16/32/64, default 32; "
                        "MX formats 32; NVFP4 16; INT4 any even size)")
    p.add_argument("--formatbook", default=None, metavar="FILE.toml",
                   help="user formatbook for dfp4/sd32: 8 strictly increasing half-unit "
                        "magnitudes 0..15 per dialect, starting at 0")
    p.add_argument("--pad", action="store_true",
                   help="zero-pad a last axis that is not a multiple of B (zeros add nothing "
                        "to any cost or product; outputs keep the input shape)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="semdialect",
        description="SemanticDialect 4-bit block quantization: golden model, RTL and models.",
        epilog=EPILOG,
    )
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("quantize", help="quantize a .npy tensor block-wise along its last axis",
                       description="Quantize IN.npy (FP16-rounded first) along its last axis. "
                       "OUT.npz holds codes (uint8, input shape), dequant (float32), and per "
                       "block se/dialect (dialect formats) or scale (baselines; NVFP4 also "
                       "tensor_scale).", epilog=EPILOG)
    p.add_argument("input", metavar="IN.npy")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    _add_format_args(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("gemm", help="Y = X·W under a format's GEMM contract",
                       description="X.npy is (m, k) activations (leading dims allowed), W.npy "
                       "is (k, n) weights. Weights always use lut selection over the whole "
                       "formatbook. Y is float32 (SPEC §5; baselines SPEC §8).", epilog=EPILOG)
    p.add_argument("x", metavar="X.npy")
    p.add_argument("w", metavar="W.npy")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy")
    p.add_argument("--out", choices=("fp32", "fp16"), default="fp32",
                   help="output precision (fp16 rounds the FP32 result once, RNE)")
    _add_format_args(p)
    p.set_defaults(func=cmd_gemm)

    p = sub.add_parser("error", help="SQNR, MSE and bits/element of every format on a tensor",
                       epilog=EPILOG)
    p.add_argument("input", metavar="IN.npy")
    p.add_argument("--block", "-b", type=int, default=32,
                   help="B for the dialect formats and INT4 (default 32)")
    p.add_argument("--pad", action="store_true", help="zero-pad the last axis to a multiple of B")
    p.set_defaults(func=cmd_error)

    p = sub.add_parser(
        "sim", help="the main job: golden accuracy, RTL check, cycle model, area, energy",
        description="Quantize the shipped real tensors, run one GEMM tile of the configuration "
        "through the RTL on Verilator (bit-exact check, cycles vs the cycle model), run the "
        "cycle model on a video-DiT workload for SemanticDialect, BlockDialect, MXFP4 and "
        "MXINT8, synthesize for area, estimate energy, and write OUT/summary.md plus plots.",
        epilog=EPILOG)
    p.add_argument("--config", default="configs/default.toml", metavar="CONFIG.toml")
    p.add_argument("--out", default="reports/out", metavar="DIR")
    p.add_argument("--workload", default="opensora2_256px_129f",
                   help="a shipped workload (data/workloads/*.csv stem) or a CSV path "
                        "(layer,M,K,N,count or a SCALE-Sim topology)")
    p.add_argument("--rho", default="0.05", help="decomposition's salient fraction for the "
                   "+decomposition design (decimal)")
    p.add_argument("--skip-rtl", action="store_true", help="skip the Verilator stage")
    p.add_argument("--skip-area", action="store_true", help="skip synthesis")
    p.add_argument("--no-fmax", dest="fmax", action="store_false",
                   help="skip placing the PE core and the selector on iCE40 (nextpnr); "
                   "throughput is then given at an assumed 100 MHz clock")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("verilog", help="emit Verilog for a configuration (linted)",
                       description="Write build/verilog/<config>/: the GEMM core top, every "
                       "component and params.json (configuration, limits, tool versions, lint "
                       "waivers); each file passes verilator --lint-only -Wall.", epilog=EPILOG)
    p.add_argument("--config", default="configs/default.toml", metavar="CONFIG.toml")
    p.add_argument("--out", default=None, metavar="DIR", help="output root (default build/verilog)")
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
    p.add_argument("--sentences", type=int, default=None, metavar="N",
                   help="MiniLM sentences, at least 3 (default 64, the issue's minimum; "
                        "--quick: 6)")
    p.add_argument("--out", default="reports/out", metavar="DIR",
                   help="output directory (default reports/out)")
    p.add_argument("--quick", action="store_true",
                   help="small smoke run: 6 sentences and 3 video frames (used by the tests); "
                        "its numbers are not a measurement")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="quantization and GEMM throughput, one thread")
    p.add_argument("--size", type=int, default=4096, help="tensor is SIZE x SIZE FP16")
    p.add_argument("--repeat", type=int, default=3, help="best of N runs")
    p.set_defaults(func=cmd_bench)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:
        print(f"semdialect {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
