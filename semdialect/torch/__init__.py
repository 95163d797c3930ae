"""PyTorch front end: fake-quantize a model's linear layers (and attention matmuls) in any
golden format, bit-exact with the NumPy golden model, and trace its GEMM workload.

Needs the ``torch`` extra (``pip install 'semdialect[torch]'``); nothing else in semdialect
imports this package. Public API::

    from semdialect.torch import fake_quantize_, trace_workload
    summary = fake_quantize_(model, fmt="sd32")        # in place; returns what was replaced
    workload = trace_workload(model, example_input)     # every linear and attention matmul
    workload.to_csv("my.csv")                           # semdialect sim --workload my.csv
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise ModuleNotFoundError(
        "semdialect.torch needs PyTorch: pip install 'semdialect[torch]' (torch==2.13.0)"
    ) from exc

__all__ = ["fake_quantize_", "trace_workload"]


def __getattr__(name: str):  # lazy: the submodules import torch-heavy code on first use
    if name == "fake_quantize_":
        from semdialect.torch.fake_quant import fake_quantize_

        return fake_quantize_
    if name == "trace_workload":
        from semdialect.torch.trace import trace_workload

        return trace_workload
    raise AttributeError(f"module 'semdialect.torch' has no attribute {name!r}")
