"""Pieces shared by the ``semdialect`` subcommands: the epilog, the user-error type, loading an
``.npy`` operand and the GEMM operand arguments (below :mod:`semdialect.cli` and
:mod:`semdialect.cli.rtl_run`, which both use them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["EPILOG", "UsageError", "add_gemm_operands", "at_least", "check_seed", "checked_int",
           "load_npy", "load_salient", "salient_arg"]

EPILOG = ("Numbers follow SPEC v1.4 (see README.md). Exit status: 0 ok, 2 bad input, "
          "130 interrupted (Ctrl-C).")
class UsageError(ValueError):
    """A user error reported as one line."""


def load_npy(path: str, what: str) -> np.ndarray:
    """The single array of the .npy file ``path``; ``what`` names the parameter."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what}: no such file {path}")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"{what}: {path} is not a readable .npy array ({exc})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise UsageError(f"{what}: {path} is an .npz archive; pass a single-array .npy file")
    if arr.size == 0:
        raise UsageError(f"{what}: {path} holds an empty array of shape {arr.shape}; every "
                         "dimension needs at least one element")
    return arr


def add_gemm_operands(p: argparse.ArgumentParser, output_help: str, precision_help: str, *,
                      salient: bool = False) -> None:
    """The positionals ``X.npy``/``W.npy``, ``-o Y.npy`` and ``--precision {fp32,fp16}`` of a
    GEMM command (``gemm``, ``rtl-gemm``); ``salient``: also ``--salient S.npy`` (the golden
    ``gemm`` only)."""
    p.add_argument("x", metavar="X.npy", help="activations, a (m, k) .npy array")
    p.add_argument("w", metavar="W.npy", help="weights, a (k, n) .npy array")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy", help=output_help)
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                   help=precision_help)
    if not salient:
        return
    p.add_argument("--salient", metavar="S.npy", default=None,
                   help="activation decomposition (SPEC §6): a 1-D integer .npy of X's salient "
                   "row indices (distinct, 0 <= i < m); their residual rows are quantized and "
                   "run as a second pass added to the main result, Y = "
                   "golden.decomposed_linear(..., salient=S).y. X must be 2-D, no --pad")


def salient_arg(args: argparse.Namespace, x: np.ndarray) -> np.ndarray | None:
    """``--salient`` of a GEMM command (``gemm``, ``rtl-gemm``) checked against X: None when
    not given, else :func:`load_salient`'s indices; X must be one (m, k) sequence and
    ``--pad`` is not supported (a one-line :class:`UsageError` naming ``--salient``)."""
    if args.salient is None:
        return None
    if args.pad:
        raise UsageError("--salient: not supported with --pad")
    if x.ndim != 2:
        raise UsageError(f"--salient: X must be one (m, k) sequence, got shape {x.shape}")
    return load_salient(args.salient, x.shape[0])


def load_salient(path: str, m: int) -> np.ndarray:
    """The sorted salient row indices of ``--salient`` (a 1-D integer .npy of distinct indices
    in 0..m−1; an empty selection is written as a 0-length array, which ``load_npy`` rejects,
    so pass at least one index); a one-line :class:`UsageError` naming ``--salient``."""
    arr = load_npy(path, "--salient")
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise UsageError(f"--salient: expected a 1-D integer array of row indices, got "
                         f"{arr.dtype} of shape {arr.shape}")
    if arr.min() < 0 or arr.max() >= m:
        raise UsageError(f"--salient: row index out of range 0..{m - 1} (X has {m} rows)")
    if np.unique(arr).size != arr.size:
        raise UsageError("--salient: row indices must be distinct")
    return np.sort(arr.astype(np.intp))


def at_least(low: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (``why`` is appended to the error)."""
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}{why}, got {n}")
        return n

    return parse


def checked_int(check: Callable[[int], int]) -> Callable[[str], int]:
    """An argparse type: an integer passed through ``check`` (which raises ValueError)."""
    def parse(value: str) -> int:
        try:
            return check(int(value))
        except ValueError as exc:
            text = str(exc) if "invalid literal" not in str(exc) else (
                f"expected an integer, got {value!r}")
            raise argparse.ArgumentTypeError(text) from None

    return parse


def check_seed(seed: int) -> int:
    """A 64-bit seed (``--rotate-seed``, ``--seed``): an integer in [0, 2^64) (``ValueError``
    otherwise)."""
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"must be an integer in [0, 2^64), got {seed}")
    return seed
