"""Hardware latencies, defined once here (the RTL asserts them; the cycle model reads them).

Plain integers, no Amaranth import, so :mod:`semdialect.sim.cycles` can read them cheaply.
"""

from __future__ import annotations

__all__ = ["PE_LATENCY", "QUANTIZER_EXTRA"]

#: :class:`~semdialect.rtl.pe.BlockPE` latency in cycles: last k-step accepted in cycle t →
#: accumulated FP32 sum presented in cycle t + 3 (block product, scale, FP32 add registers).
PE_LATENCY = 3
#: :class:`~semdialect.rtl.block_quantizer.BlockQuantizer` latency beyond the selector's C
#: cycles per block: the selector's output register (+1) and the code quantizer (+1), so the
#: quantizer latency is C + 2.
QUANTIZER_EXTRA = 2
