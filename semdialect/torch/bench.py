"""Quantize-step throughput on CPU, one thread, one run (issue 14): this package's torch
kernels (:mod:`semdialect.torch.kernels`) against torchao 0.18's MXFP4 ``MXTensor.to_mx``
and the golden NumPy model.

Every row quantizes the same n × n tensor of FP16 values (standard normal, rounded to FP16)
given as float32 — the dtype torchao's ``to_mx`` accepts (it rejects float16) — so every
peer pays the same input conversion. A row's figure is the best of ``repeats`` timed runs
(after one untimed warm-up run), in millions of input elements per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from semdialect.golden.formats import resolve_format
from semdialect.golden.quantize import quantize
from semdialect.quiet import quiet_stderr
from semdialect.torch.kernels import quantize_tensor

__all__ = ["bench_rows", "main", "markdown_table"]


def _torchao_mxfp4() -> Callable[[torch.Tensor], object] | None:
    """torchao's MXFP4 ``to_mx`` (FLOOR scales, B = 32), or None when torchao is missing."""
    try:
        with quiet_stderr():  # torchao's import-time notes about its CUDA-only extensions
            from torchao.prototype.mx_formats.config import ScaleCalculationMode
            from torchao.prototype.mx_formats.mx_tensor import MXTensor
    except Exception:  # noqa: BLE001 - any import failure means "peer not available"
        return None

    def run(x: torch.Tensor) -> object:
        return MXTensor.to_mx(x, torch.float4_e2m1fn_x2, 32,
                              scaling_mode=ScaleCalculationMode.FLOOR)

    return run


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (table building, allocator)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_rows(n: int = 4096, repeats: int = 3, seed: int = 0) -> list[dict]:
    """Time every peer on one n × n tensor, one thread; one dict per row.

    Row keys: ``impl`` (``torchao`` / ``torch`` / ``golden-numpy``), ``format`` (``mxfp4``,
    ``sd32``, ``nvfp4``, ``dfp4 two-stage``; ``sd32 (float16 input)`` times the kernel on the
    float16 tensor itself, the others get the float32 copy), ``seconds`` (best of
    ``repeats``), ``melem_s`` (10^6 elements per second) and ``vs_torchao`` (throughput ratio
    to torchao's MXFP4 ``to_mx``; None without torchao). The thread count is restored afterwards.

    Raises:
        ValueError: ``n`` not a positive multiple of 32 or ``repeats`` < 1.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0 or n % 32:
        raise ValueError(f"n: expected a positive multiple of 32, got {n!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats!r}")
    rng = np.random.default_rng(seed)
    x16 = rng.standard_normal((n, n)).astype(np.float16)
    x = torch.from_numpy(x16.astype(np.float32))
    sd32 = resolve_format("sd32")
    peers: list[tuple[str, str, Callable[[], object]]] = []
    ao = _torchao_mxfp4()
    if ao is not None:
        peers.append(("torchao", "mxfp4", lambda: ao(x)))
    for label, fmt in (("sd32", sd32), ("mxfp4", resolve_format("mxfp4")),
                       ("nvfp4", resolve_format("nvfp4")),
                       ("dfp4 two-stage", resolve_format("dfp4", select="two-stage"))):
        peers.append(("torch", label, lambda f=fmt: quantize_tensor(x, f)))
    xh = torch.from_numpy(x16)
    peers.append(("torch", "sd32 (float16 input)", lambda: quantize_tensor(xh, sd32)))
    xn = x.numpy()
    peers.append(("golden-numpy", "sd32", lambda: quantize(xn, sd32)))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = []
        for impl, label, fn in peers:
            sec = _best_seconds(fn, repeats)
            rows.append({"impl": impl, "format": label, "seconds": sec,
                         "melem_s": n * n / sec / 1e6})
    finally:
        torch.set_num_threads(threads)
    ref = rows[0]["melem_s"] if ao is not None else None
    for row in rows:
        row["vs_torchao"] = None if ref is None else row["melem_s"] / ref
    return rows


def markdown_table(rows: list[dict], n: int) -> str:
    """The rows as a Markdown table (one thread, n × n FP16 values)."""
    lines = [f"Quantize throughput, {n}×{n} FP16 values (as float32), 1 thread, best of runs",
             "", "| impl | format | ms | M elem/s | × torchao mxfp4 |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        ratio = "n/a" if r["vs_torchao"] is None else f"{r['vs_torchao']:.2f}"
        lines.append(f"| {r['impl']} | {r['format']} | {r['seconds'] * 1e3:.1f} | "
                     f"{r['melem_s']:.1f} | {ratio} |")
    return "\n".join(lines)


def main(n: int = 4096, repeats: int = 3) -> None:
    """Print :func:`bench_rows` as a Markdown table."""
    print(markdown_table(bench_rows(n, repeats), n))


if __name__ == "__main__":  # pragma: no cover
    main()
