"""Accuracy of every format on one tensor: the rows of ``semdialect error``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from semdialect.golden.blocks import to_fp16
from semdialect.golden.metrics import mse, sqnr_db
from semdialect.golden.quantize import quantize

#: (label, format, select) of every format the error table compares
COMPARED: tuple[tuple[str, str, str | None], ...] = (
    ("sd32 lut (SemanticDialect)", "sd32", "lut"),
    ("dfp4 lut", "dfp4", "lut"),
    ("dfp4 two-stage (BlockDialect)", "dfp4", "two-stage"),
    ("mxfp4", "mxfp4", None),
    ("nvfp4", "nvfp4", None),
    ("int4", "int4", None),
    ("mxint8", "mxint8", None),
)


@dataclass(frozen=True)
class ErrorRow:
    """One format's accuracy on a tensor."""

    label: str
    block: int
    bits_per_element: float
    sqnr_db: float
    mse: float


def error_rows(
    x: np.ndarray,
    block: int = 32,
    pad: bool = False,
    name: str = "x",
    progress: Callable[[str], None] | None = None,
) -> Iterator[ErrorRow]:
    """SQNR/MSE of every compared format against ``x`` itself (float64).

    The first row is plain FP16 (the hardware input), so rounding to FP16 is visible.
    Dialect formats and INT4 use ``block``; MX formats use 32 and NVFP4 16.
    """
    x = np.asarray(x)
    x16 = to_fp16(x, name, block)
    yield ErrorRow("fp16", 1, 16.0, sqnr_db(x, x16), mse(x, x16))
    for label, fmt, select in COMPARED:
        if progress:
            progress(label)
        b = block if fmt in ("sd32", "dfp4", "int4") else None
        q = quantize(x16, fmt, select=select, block=b, pad=pad, name=name)
        yield ErrorRow(label, q.block, q.bits_per_element, sqnr_db(x, q.dequant), mse(x, q.dequant))
