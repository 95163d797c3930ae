"""Hardware latencies, defined once here (the RTL asserts them; the cycle model reads them).

Plain integers and one small dataclass, no Amaranth import, so :mod:`semdialect.sim.cycles`
can read them cheaply. Every latency is a function of the configuration's ``[pipeline]``
register stages (:data:`semdialect.config.PIPELINE_RANGES`), held in a :class:`Pipeline`:

* BlockPE: ``pe_product_stages`` (products + adder tree) + ``pe_scale_stages`` (P·2^exp →
  FP32) + ``acc_stages`` (the FP32 accumulator loop, d) cycles from the last pair accepted
  to the sum presented (the last pair of the last of the d interleaved outputs, see
  :class:`~semdialect.rtl.pe.BlockPE`);
* MACArray: ``decoder_stages`` (registers after the array-edge block decoders) + the PE's;
* BlockQuantizer: C (selector evaluation cycles) + 1 (selector output register) +
  ``selector_stages`` + 1 (code quantizer);
* frontend lane of a rotating configuration (``[format] rotate = "hadamard"``, SPEC §11):
  the :class:`~semdialect.rtl.rotator.BlockRotator` in front of the BlockQuantizer adds
  ``rotator_stages`` = :data:`ROTATOR_STAGES` cycles (0 without rotation; not a
  ``[pipeline]`` key: it follows from ``rotate``), counted in :attr:`Pipeline.quantizer_extra`
  (the frontend's latency beyond C, which the cycle model reads);
* GemmCore output: ``addend_stages`` (the output adder y + yin,
  :class:`~semdialect.rtl.addend_adder.AddendAdder`, that every ``y`` beat passes, with or
  without ``add``) cycles from a drain beat leaving the tile drain to the ``y`` port.

``Pipeline()`` is the unpipelined design (latencies 3, C + 2 and 0, one output per PE).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from semdialect.config import PIPELINE_RANGES

__all__ = ["BASE_PE_LATENCY", "BASE_QUANTIZER_EXTRA", "ROTATOR_STAGES", "TENSOR_SCALE_STAGES",
           "Pipeline"]

#: Register stages of the block rotator (:class:`~semdialect.rtl.rotator.BlockRotator`) in each
#: frontend lane of a rotating configuration: its default (after the conversion and the first
#: butterflies, and at the output).
ROTATOR_STAGES = 2

#: Register stages of the NVFP4 drain's tensor-scale multiplier (one lane: acc · RNE(ts_a·ts_w),
#: :class:`~semdialect.rtl.scale.FP32Mul`): the fewest that meet 250 MHz at 180 nm
#: (``rtl.scale.fp32_mul_cuts``: registers after the carry-save tree, after the add and the
#: rounding decision, and at the end — measured 3.57 ns critical path, 280 MHz, 156 575 µm²
#: with the OSU 0.18 µm liberty flow; two stages reach 5.5 ns). The NVFP4 design's output path
#: is this many cycles longer than the dialect core's (:mod:`semdialect.sim.model`).
TENSOR_SCALE_STAGES = 3

#: The unpipelined :class:`~semdialect.rtl.pe.BlockPE` latency (one register per part: block
#: product, scale, FP32 accumulator) = ``Pipeline().pe_latency``.
BASE_PE_LATENCY = 3
#: The unpipelined :class:`~semdialect.rtl.block_quantizer.BlockQuantizer` latency beyond the
#: selector's C cycles: the selector's output register (+1) and the code quantizer (+1) =
#: ``Pipeline().quantizer_extra``.
BASE_QUANTIZER_EXTRA = 2


@dataclass(frozen=True)
class Pipeline:
    """Register stages of one configuration (``[pipeline]``, the same names and units) and
    every latency derived from them. Build with :meth:`of` (a Config) or directly; the
    ranges are checked by :class:`semdialect.config.Config`. ``rotator_stages`` is not a
    ``[pipeline]`` key: :meth:`of` sets it from ``rotate`` (:data:`ROTATOR_STAGES` when the
    configuration rotates, else 0)."""

    decoder_stages: int = 0
    pe_product_stages: int = 1
    pe_scale_stages: int = 1
    acc_stages: int = 1
    selector_stages: int = 0
    addend_stages: int = 0
    rotator_stages: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low = PIPELINE_RANGES[f.name][0] if f.name in PIPELINE_RANGES else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{f.name}: must be an integer >= {low}, got {value!r}")

    @classmethod
    def of(cls, cfg: Any) -> Pipeline:
        """The pipeline of a :class:`semdialect.config.Config` (or anything with the
        ``[pipeline]`` attributes; ``rotator_stages`` from its ``rotate``, none: "none")."""
        rotates = getattr(cfg, "rotate", "none") != "none"
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)
                      if f.name in PIPELINE_RANGES},
                   rotator_stages=ROTATOR_STAGES if rotates else 0)

    @property
    def pe_latency(self) -> int:
        """BlockPE: last pair accepted in cycle t → its output presented in cycle t + this."""
        return self.pe_product_stages + self.pe_scale_stages + self.acc_stages

    @property
    def array_latency(self) -> int:
        """MACArray: the ``last`` k-step of a tile's last virtual column group accepted in
        cycle t → the tile's results presented in cycle t + this."""
        return self.decoder_stages + self.pe_latency

    @property
    def quantizer_extra(self) -> int:
        """Frontend lane latency beyond the selector's C evaluation cycles: the
        BlockQuantizer's 2 + selector_stages, plus the rotator's ``rotator_stages``."""
        return BASE_QUANTIZER_EXTRA + self.selector_stages + self.rotator_stages

    def quantizer_latency(self, sel_cycles: int) -> int:
        """Frontend lane latency with C = ``sel_cycles``: C + 2 + selector_stages +
        rotator_stages (the BlockQuantizer's, and the rotator's in front of it)."""
        return sel_cycles + self.quantizer_extra

    @property
    def output_latency(self) -> int:
        """GemmCore: a drain beat leaving the tile drain in cycle t → on ``y`` in cycle
        t + this (the output adder's register stages)."""
        return self.addend_stages

    def selector_latency(self, sel_cycles: int) -> int:
        """FormatSelector latency with C = ``sel_cycles``: C + 1 + selector_stages."""
        return sel_cycles + 1 + self.selector_stages
