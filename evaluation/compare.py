"""Accuracy of every format on one tensor: the rows of ``semdialect error``.

The formats are the registry's designs (:data:`semdialect.designs.DESIGNS`, in report order),
each with its row label (:meth:`semdialect.designs.Design.row_label`): the configured design
(SemanticDialect) is the configuration's formatbook and selection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from semdialect.config import Config
from semdialect.designs import DESIGNS
from semdialect.golden.blocks import to_fp16
from semdialect.golden.metrics import mse, sqnr_db
from semdialect.golden.quantize import quantize

__all__ = ["ErrorRow", "error_rows"]


@dataclass(frozen=True)
class ErrorRow:
    """One format's accuracy on a tensor."""

    label: str
    block: int
    bits_per_element: float
    sqnr_db: float
    mse: float


def on_block(cfg: Config | None, block: int) -> Config | None:
    """``cfg`` with the table's block size, so that a rotating configuration (SPEC §11)
    rotates at the B the table quantizes with (a rotation's size must equal B)."""
    if cfg is None or cfg.rotation() is None or cfg.block == block:
        return cfg
    return replace(cfg, block=block)


def error_rows(
    x: np.ndarray,
    block: int = 32,
    pad: bool = False,
    name: str = "x",
    progress: Callable[[str], None] | None = None,
    cfg: Config | None = None,
) -> Iterator[ErrorRow]:
    """SQNR/MSE of every registered design's format against ``x`` itself (float64).

    The first row is plain FP16 (the hardware input), so rounding to FP16 is visible. Formats
    without a fixed block size (dialect formats, INT4) use ``block``; the others their own
    (MX: 32, NVFP4: 16). ``cfg`` (default :class:`~semdialect.config.Config`: sd32, ``lut``)
    gives the configured design's formatbook and selection; its block size is not used.
    """
    x = np.asarray(x)
    x16 = to_fp16(x, name, block)
    yield ErrorRow("fp16", 1, 16.0, sqnr_db(x, x16), mse(x, x16))
    for d in DESIGNS.values():
        label = d.row_label(cfg)
        if progress:
            progress(label)
        b = block if d.fixed_block is None else d.fixed_block
        q = quantize(x16, d.golden_format(on_block(cfg, b)), block=b, pad=pad, name=name)
        yield ErrorRow(label, q.block, q.bits_per_element, sqnr_db(x, q.dequant), mse(x, q.dequant))
