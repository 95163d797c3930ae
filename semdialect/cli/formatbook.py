"""``semdialect formatbook learn``: fit a formatbook to calibration tensors (issue 13).

``formatbook learn CALIB.npy [CALIB.npy ...] -o BOOK.toml --dialects K [--block B]
[--init NAME|FILE.toml|greedy] [--iters N] [--seed S] [--rotate none|hadamard]
[--rotate-seed S] [--max-blocks N] [--holdout H.npy ...] [--name NAME]`` runs
:func:`semdialect.golden.learn.learn_formatbook` and writes the book as TOML
(:func:`semdialect.golden.formatbook.formatbook_toml`, its header recording the command,
the data and the result), ready for ``--formatbook`` and a configuration's ``formatbook``
(golden, RTL and cycle model unchanged).

Every argument and every input file is checked first (``-o`` never one of the inputs, K in
1..256, each calibration and holdout array numeric, at least 1-D, its last axis a multiple of
B, finite, inside FP16, not all zeros), so bad input gets one line ``semdialect formatbook:
error: ...``, exit status 2, and nothing is written. Progress goes to stderr, the summary to
stdout.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Any

from semdialect.cli.common import EPILOG, at_least, check_seed, checked_int, load_npy
from semdialect.cli.output import check_paths, is_stdout, write_output
from semdialect.golden.blocks import BLOCK_SIZES
from semdialect.golden.formatbook import (
    BUILTIN_FORMATBOOKS,
    MAX_DIALECTS,
    Formatbook,
    formatbook_toml,
    get_formatbook,
)
from semdialect.golden.learn import (
    CANDIDATE_COUNT,
    DEFAULT_ITERS,
    DEFAULT_MAX_BLOCKS,
    book_error_sums,
    check_calibration,
    learn_formatbook,
)
from semdialect.golden.metrics import sqnr_db_from_sums
from semdialect.golden.rotation import ROTATIONS, Rotation

__all__ = ["add_parsers", "cmd_learn"]

#: builtin books the holdout summary compares against
BASELINES = tuple(BUILTIN_FORMATBOOKS)


def _description() -> str:
    paragraphs = [
        "Fit a formatbook of K dialects (8 strictly increasing half-unit magnitudes 0..15 "
        f"starting at 0; {CANDIDATE_COUNT} legal dialects exist, K <= {MAX_DIALECTS}) to the "
        "calibration tensors, maximising the SQNR of golden's own LUT selection (SPEC §4), "
        "and write it as a formatbook TOML: use it with --formatbook or as a configuration's "
        "formatbook (golden, RTL and cycle model unchanged).",
        "Algorithm (semdialect.golden.learn): Lloyd iterations over blocks of B elements "
        "along each tensor's last axis. Assignment = golden's LUT selection with the current "
        "book; update = for each dialect, the legal dialect with the minimum real squared "
        "error over its blocks, exact, from per-block 32-bin histograms of q (dialects kept "
        "distinct; unused ones re-seeded greedily), then a refinement that accepts (parts of) "
        "the update only when they improve. Objective: each tensor's squared error "
        "divided by its own signal energy, summed over tensors (every tensor weighs "
        "equally); the best book seen is written. At most --max-blocks non-zero blocks are "
        "sampled (seeded by --seed). Dialects are written ascending by (max, then "
        "lexicographic), so ids are reproducible; learned books have variants = 1.",
        "Prints the train SQNR (whole tensors) per file and pooled, and with --holdout the "
        "SQNR of the learned book, sd32 and dfp4 on every holdout file (with --rotate, all "
        "three through the same rotation).",
    ]
    return "\n\n".join(textwrap.fill(p, 92) for p in paragraphs)


def _dialects(value: str) -> int:
    """``--dialects``: K in 1..256."""
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer K, got {value!r}") from None
    if not 1 <= k <= MAX_DIALECTS:
        raise argparse.ArgumentTypeError(
            f"K must be in 1..{MAX_DIALECTS} (the dialect id is stored as uint8; "
            f"{CANDIDATE_COUNT} legal dialects exist), got {k}")
    return k


def add_parsers(subparsers: Any) -> None:
    """Add ``formatbook`` (``learn``) to the ``semdialect`` subcommands."""
    p = subparsers.add_parser(
        "formatbook", help="formatbook tools: learn a formatbook from calibration tensors",
        description="Formatbook tools. 'learn' fits a formatbook of K dialects to calibration "
        ".npy tensors and writes it as TOML.", epilog=EPILOG)
    sub = p.add_subparsers(dest="formatbook_cmd", required=True, metavar="{learn}",
                           help="learn: fit a formatbook to calibration tensors")
    learn = sub.add_parser(
        "learn", help="fit a formatbook to calibration tensors and write it as TOML",
        description=_description(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    learn.add_argument("calib", nargs="+", metavar="CALIB.npy",
                       help="calibration tensors: numeric .npy arrays, blocked along their "
                       "last axis (a multiple of B), rounded to FP16")
    learn.add_argument("-o", "--output", required=True, metavar="BOOK.toml",
                       help="where the formatbook TOML is written (never one of the inputs; "
                       "a symlink is written through; replaced atomically)")
    learn.add_argument("--dialects", "-k", required=True, type=_dialects, metavar="K",
                       help=f"number of dialects K, 1..{MAX_DIALECTS}")
    learn.add_argument("--block", "-b", type=int, choices=BLOCK_SIZES, default=32, metavar="B",
                       help="block size B: 16, 32 or 64 (default 32)")
    learn.add_argument("--init", default=None, metavar="NAME|FILE.toml|greedy",
                       help="initial book: a builtin (" + ", ".join(BUILTIN_FORMATBOOKS)
                       + ") or a formatbook TOML with K dialects, or 'greedy' (default: the "
                       "builtin of size K if any, i.e. dfp4 for 16 and sd32 for 32, else "
                       "greedy)")
    learn.add_argument("--iters", type=at_least(0), default=DEFAULT_ITERS, metavar="N",
                       help=f"most Lloyd iterations (default {DEFAULT_ITERS}; it stops "
                       "earlier when a book repeats); the refinement that follows evaluates "
                       "at most 2N more books, each accepted only if it improves")
    learn.add_argument("--seed", type=checked_int(check_seed), default=0, metavar="S",
                       help="seed of the block sample and the greedy subset (default 0)")
    learn.add_argument("--max-blocks", type=at_least(1), default=DEFAULT_MAX_BLOCKS,
                       metavar="N", help="most non-zero blocks fitted on (default "
                       f"{DEFAULT_MAX_BLOCKS}, split between the files in proportion)")
    learn.add_argument("--rotate", choices=ROTATIONS, default="none",
                       help="fit on block-Hadamard-rotated blocks (SPEC §11; size B, "
                       "activation role) for use with rotate = \"hadamard\" (default none)")
    learn.add_argument("--rotate-seed", type=checked_int(check_seed), default=0, metavar="S",
                       help="SplitMix64 seed of the rotation's sign vector (default 0)")
    learn.add_argument("--holdout", nargs="+", default=[], metavar="H.npy",
                       help="held-out tensors: report the learned book's SQNR on them next to "
                       "sd32 and dfp4 (not used for fitting; default: none)")
    learn.add_argument("--name", default="learned", help="the book's name (default learned)")
    learn.set_defaults(func=cmd_learn)


def _command() -> str:
    argv = sys.argv[1:]
    return shlex.join(["semdialect", *argv]) if argv[:2] == ["formatbook", "learn"] else ""


def cmd_learn(args: argparse.Namespace) -> int:
    """``semdialect formatbook learn``: check everything, fit, write BOOK.toml, summarise."""
    inputs = {f"CALIB {path}": path for path in args.calib}
    inputs.update({f"--holdout {path}": path for path in args.holdout})
    init: Any = args.init
    if init is not None and init != "greedy" and init not in BUILTIN_FORMATBOOKS:
        inputs["--init"] = init
    check_paths({"-o": args.output}, inputs)
    if not args.name:
        raise ValueError("--name: must not be empty")
    try:
        Formatbook(args.name, [[0, 1, 2, 3, 4, 5, 6, 7]])
    except ValueError as exc:
        raise ValueError(f"--name: {exc}") from None
    if init is not None and init != "greedy":
        try:
            init = get_formatbook(init)
        except ValueError as exc:
            raise ValueError(f"--init: {exc}") from None
        if init.size != args.dialects:
            raise ValueError(f"--init: {args.init} has K={init.size} dialects, but --dialects "
                             f"is {args.dialects}")
    rotate = Rotation(args.block, args.rotate_seed) if args.rotate == "hadamard" else None
    calib = {path: load_npy(path, "CALIB") for path in args.calib}
    holdout = {path: load_npy(path, "--holdout") for path in args.holdout}
    for what, arrays in (("CALIB", calib), ("--holdout", holdout)):
        for path, x in arrays.items():
            try:
                check_calibration(x, path, args.block)
            except ValueError as exc:
                raise ValueError(f"{what}: {exc}") from None

    def progress(msg: str) -> None:
        print(f"  ... {msg}", file=sys.stderr, flush=True)

    result = learn_formatbook(calib, args.dialects, block=args.block, init=init,
                              iters=args.iters, seed=args.seed, name=args.name, rotate=rotate,
                              progress=progress, max_blocks=args.max_blocks)
    book = result.book
    rot = "none" if rotate is None else f"hadamard (seed {args.rotate_seed})"
    lines = [f"{path}: shape {calib[path].shape}, train SQNR {result.train_sqnr_db[path]:.3f} dB"
             for path in calib]
    lines.append(f"pooled train SQNR {result.pooled_sqnr_db:.3f} dB; balanced (objective, "
                 f"sample) {result.balanced_sqnr_db:.3f} dB")
    for path, x in holdout.items():
        parts = [f"{book.name} {_sqnr(x, book, args.block, rotate, path):.3f}"]
        parts += [f"{b} {_sqnr(x, get_formatbook(b), args.block, rotate, path):.3f}"
                  for b in BASELINES]
        lines.append(f"holdout {path}: shape {x.shape}, SQNR dB: " + ", ".join(parts))
    bits = 4 + (5 + book.id_bits) / args.block
    comments = [
        f"Learned formatbook: K={book.size}, B={args.block}, {bits:.4g} bits/element "
        f"(4 + (5 + {book.id_bits})/{args.block}), rotate={rot}.",
        f"Made by: {_command() or 'semdialect formatbook learn'}",
        "  = semdialect.golden.learn.learn_formatbook(calib, "
        f"{args.dialects}, block={args.block}, init={_init_label(args.init)}, "
        f"iters={args.iters}, seed={args.seed}, max_blocks={args.max_blocks}, "
        f"rotate={'None' if rotate is None else f'Rotation({args.block}, {args.rotate_seed})'})",
        *(f"calibration: {path} {calib[path].shape} {calib[path].dtype}" for path in calib),
        f"sampled {result.sampled_blocks} of {result.nonzero_blocks} non-zero blocks; init "
        f"{result.init}; best at iteration {result.best_iteration} of "
        f"{len(result.history) - 1}",
        *(f"result: {line}" for line in lines),
    ]
    if rotate is not None:
        comments.append("fitted on rotated blocks: use it with rotate = \"hadamard\", "
                        f"rotate_seed = {args.rotate_seed}")
    text = formatbook_toml(book, comments)
    write_output(args.output, lambda fh: fh.write(text.encode()))
    out = sys.stderr if is_stdout(args.output) else sys.stdout
    for line in lines:
        print(line, file=out)
    print(f"wrote {args.output}: {book.name}, K={book.size}, B={args.block}, {bits:.4g} "
          f"bits/element", file=out)
    return 0


def _init_label(init: str | None) -> str:
    return "None" if init is None else repr(str(Path(init)) if init.endswith(".toml") else init)


def _sqnr(x: Any, book: Formatbook, block: int, rotate: Rotation | None, name: str) -> float:
    signal, noise = book_error_sums(x, book, block=block, rotate=rotate, name=name)
    return sqnr_db_from_sums(signal, noise)
