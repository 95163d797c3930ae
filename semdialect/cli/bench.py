"""``semdialect bench``: quantization and GEMM throughput on one thread.

Run through ``semdialect bench`` (or ``make bench``), which checks the arguments and starts
this module in a child process with the BLAS / OpenMP thread counts set to 1 before NumPy
loads. Where torch and torchao are installed, torchao's MXFP4 ``MXTensor.to_mx`` is timed in
the same run on the same tensor, and the ratio of every format's throughput to it is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from semdialect.designs import DESIGNS
from semdialect.golden import gemm_quantized, quantize, quantize_weights
from semdialect.quiet import quiet_stderr

#: the tensor's side must be a multiple of the largest default block (sd32/dfp4/MX/INT4 32,
#: NVFP4 16) so every format quantizes whole rows without padding
SIZE_MULTIPLE = 32


def check_size(size: int) -> int:
    """``size`` if it is a valid tensor side, else ``ValueError`` naming ``--size``."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % SIZE_MULTIPLE:
        raise ValueError(f"must be a positive multiple of {SIZE_MULTIPLE} (every format's "
                         f"block, {SIZE_MULTIPLE} elements or 16 for NVFP4, must divide a row), "
                         f"got {size}")
    return size


def check_repeat(repeat: int) -> int:
    """``repeat`` if it is a valid number of timed runs, else ``ValueError``."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"must be at least 1 (the best of N timed runs), got {repeat}")
    return repeat


def bench_formats() -> list[tuple[str, str, str | None]]:
    """(label, format, select) timed by the bench: every design of the registry
    (:data:`semdialect.designs.DESIGNS`) under the default configuration, in report order."""
    return [(d.row_label(), *d.format_spec()) for d in DESIGNS.values()]


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes NumPy allocated during ``fn`` (tracemalloc; NumPy reports its buffers)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def torchao_mxfp4(x16: np.ndarray) -> Callable[[], object] | None:
    """A callable running torchao 0.18's MXFP4 ``to_mx`` on ``x16``, or None if missing."""
    try:
        with quiet_stderr():  # torchao's import-time notes about its CUDA-only extensions
            import torch
            from torchao.prototype.mx_formats.mx_tensor import MXTensor
    except Exception:  # noqa: BLE001 - any import failure means "not installed"
        return None
    torch.set_num_threads(1)
    t = torch.from_numpy(x16.astype(np.float32))
    return lambda: MXTensor.to_mx(t, torch.float4_e2m1fn_x2, 32)


def run(size: int, repeat: int) -> str:
    """Time every format on a ``size`` x ``size`` FP16 tensor; the report as Markdown."""
    check_size(size)
    check_repeat(repeat)
    rng = np.random.default_rng(0)
    x16 = rng.standard_normal((size, size)).astype(np.float16)
    n = x16.size
    lines = [f"Quantization, {size}x{size} FP16 ({n / 1e6:.1f} M elements), one thread, "
             f"best of {repeat}", ""]
    ref = torchao_mxfp4(x16)
    ref_rate = None
    if ref is not None:
        ref()  # warm-up
        ref_rate = n / best_time(ref, repeat) / 1e6
    lines += ["| format | M elements/s | vs torchao MXFP4 | peak memory / input |",
              "|---|---:|---:|---:|"]
    formats = bench_formats()
    for label, fmt, select in formats:
        def job(fmt: str = fmt, select: str | None = select) -> object:
            return quantize(x16, fmt, select=select)

        rate = n / best_time(job, repeat) / 1e6
        peak = peak_bytes(job) / x16.nbytes
        ratio = f"{rate / ref_rate:.2f}x" if ref_rate else "n/a (torchao not installed)"
        lines.append(f"| {label} | {rate:.1f} | {ratio} | {peak:.2f}x |")
        print(f"  ... {label}", flush=True)
    if ref_rate:
        lines.append(f"| torchao 0.18 MXFP4 to_mx | {ref_rate:.1f} | 1.00x | |")

    m, k, nn = 256, 2048, 256
    xa = rng.standard_normal((m, k)).astype(np.float16)
    wa = rng.standard_normal((k, nn)).astype(np.float16)
    lines += ["", f"GEMM contract arithmetic (quantized operands), X {m}x{k} · W {k}x{nn}, "
              f"best of {repeat}", "", "| format | GMAC/s |", "|---|---:|"]
    for label, fmt, select in formats:
        qx = quantize(xa, fmt, select=select)
        qw = quantize_weights(wa, fmt)
        secs = best_time(lambda qx=qx, qw=qw: gemm_quantized(qx, qw), repeat)
        lines.append(f"| {label} | {m * k * nn / secs / 1e9:.3f} |")
        print(f"  ... gemm {label}", flush=True)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process ``semdialect bench`` starts; returns the exit status."""
    ap = argparse.ArgumentParser(prog="semdialect bench", description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    for option, check, value in (("--size", check_size, args.size),
                                 ("--repeat", check_repeat, args.repeat)):
        try:
            check(value)
        except ValueError as exc:
            print(f"semdialect bench: error: {option}: {exc}", file=sys.stderr)
            return 2
    print(run(args.size, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
