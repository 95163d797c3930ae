"""The rows of the ``semdialect eval`` study: which formats it measures, and how each one
quantizes a sequence of activations.

The plain formats are the 4-bit designs of the design registry
(:data:`semdialect.designs.DESIGNS`; the study is W4A4, so designs with wider element codes,
MXINT8, are left out by their golden format's ``element_bits``), in reverse registry order
(baselines first, SemanticDialect last), under the default configuration :data:`CONFIG`.
Around them the study adds an FP16 reference row and three study options on the configured
(SemanticDialect) design: SeDA (SPEC §7), activation decomposition (SPEC §6), and both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semdialect.config import Config
from semdialect.designs import DESIGNS, Design, configured_design
from semdialect.golden.blocks import to_fp16
from semdialect.golden.decompose import residual
from semdialect.golden.formats import BlockFormat, DialectFormat
from semdialect.golden.quantize import QTensor, quantize
from semdialect.golden.seda import SedaGroups, seda_quantize

__all__ = [
    "CONFIG",
    "RHO",
    "TAU",
    "VARIANTS",
    "Recon",
    "Variant",
    "block_of",
    "build_variants",
    "main_path",
    "reconstruct",
]

#: the configuration the registry's configured design is measured under (the default one:
#: formatbook sd32, lut selection, B = 32)
CONFIG = Config()
#: salient fraction ρ of the decomposition rows, SeDA threshold τ (SPEC §6-7 defaults)
RHO = "0.05"
TAU = "0.5"


def block_of(d: Design | None, cfg: Config = CONFIG) -> int:
    """Elements per block of design ``d`` under ``cfg`` (FP16, ``None``: the configured B,
    which only names blocks in error messages)."""
    return cfg.block if d is None else d.block_size(cfg)


def main_path(cfg: Config = CONFIG) -> str:
    """The configured design's format and selection, e.g. ``sd32 lut``: the main path the
    decomposition and SeDA options build on."""
    f = configured_design().golden_format(cfg)
    return f"{f.name} {f.select}" if isinstance(f, DialectFormat) else f.name


@dataclass(frozen=True)
class Variant:
    """One evaluated row.

    Attributes:
        label: row label in every table and CSV.
        design: the registry design; None = FP16 (X and W rounded to FP16, FP32 matmul).
        decompose: attention-guided decomposition at ρ = :data:`RHO` (SPEC §6).
        seda: SeDA at τ = :data:`TAU` (SPEC §7).
        extra: marked ``*`` in the tables: SeDA without decomposition, measured only to
            separate the effects of the two techniques.
    """

    label: str
    design: Design | None = None
    decompose: bool = False
    seda: bool = False
    extra: bool = False

    @property
    def block(self) -> int:
        """Elements per block (:func:`block_of`)."""
        return block_of(self.design)

    @property
    def plain(self) -> bool:
        """A registry design as it is (no study option), or FP16."""
        return not (self.decompose or self.seda)

    @property
    def act_format(self) -> BlockFormat:
        """The golden format of the activations (the design's, under :data:`CONFIG`)."""
        assert self.design is not None, "fp16 has no block format"
        return self.design.golden_format(CONFIG)

    @property
    def weight_format(self) -> BlockFormat:
        """The golden format of the weights and of decomposition residuals: ``lut`` over the
        whole formatbook for dialect designs (SPEC §4, §6), the activation format otherwise."""
        assert self.design is not None, "fp16 has no block format"
        return self.design.weight_format(CONFIG)


def build_variants(cfg: Config = CONFIG) -> tuple[Variant, ...]:
    """FP16, every 4-bit registry design (reverse registry order), then the SPEC §6-7
    options on the configured design."""
    plain = tuple(Variant(d.row_label(cfg), d) for d in reversed(DESIGNS.values())
                  if d.golden_format(cfg).element_bits == 4)
    sd = configured_design()
    name = sd.golden_format(cfg).name
    return (
        Variant("fp16"),
        *plain,
        Variant(f"{name} + SeDA (tau={TAU})", sd, seda=True, extra=True),
        Variant(f"{name} + decomposition (rho={RHO})", sd, decompose=True),
        Variant(f"{name} + decomposition + SeDA (rho={RHO}, tau={TAU})", sd,
                decompose=True, seda=True),
    )


#: every row of the study, in table order
VARIANTS: tuple[Variant, ...] = build_variants()


@dataclass
class Recon:
    """A sequence's activations as a variant stores them (:func:`reconstruct`).

    Attributes:
        deq: (N, k) float64 reconstruction: deq(Q(x)), plus deq(Q(R)) on the salient rows.
        bits: activation bits per element (residual rows and SeDA metadata included).
        q: main-path quantization (None for FP16); qr: residual rows' quantization.
        salient: the salient rows (empty without decomposition).
    """

    deq: np.ndarray
    bits: float
    q: QTensor | None
    qr: QTensor | None
    salient: np.ndarray


def reconstruct(x: np.ndarray, v: Variant, groups: SedaGroups | None = None,
                salient: np.ndarray | None = None, name: str = "x") -> Recon:
    """Quantize one sequence X (N, k) as ``v`` does, activations only (no GEMM).

    SeDA (``v.seda``) needs the sequence's ``groups``; decomposition (``v.decompose``) its
    ``salient`` rows, whose residual R = fp16(x - deq(Q(x))) (``golden.decompose.residual``)
    is quantized over the whole formatbook (SPEC §6).
    """
    empty = np.zeros(0, dtype=np.intp)
    b = v.block
    if v.design is None:
        return Recon(to_fp16(x, name, b).astype(np.float64), 16.0, None, None, empty)
    if v.seda:
        assert groups is not None
        sr = seda_quantize(x, groups, v.act_format, block=b, name=name)
        q, bits = sr.q, sr.bits_per_element
    else:
        q = quantize(x, v.act_format, block=b, name=name)
        bits = q.bits_per_element
    deq = q.dequant.astype(np.float64)
    if not v.decompose:
        return Recon(deq, bits, q, None, empty)
    assert salient is not None
    r = residual(to_fp16(x, name, b)[salient], _rows(q, salient))
    qr = quantize(r, v.weight_format, block=b, name=f"residual of {name}")
    deq[salient] += qr.dequant
    bits += qr.bits_per_element * salient.size / x.shape[0]
    return Recon(deq, bits, q, qr, salient)


def _rows(q: QTensor, rows: np.ndarray) -> QTensor:
    """The given rows of a 2-D quantized tensor (``residual`` reads only ``dequant``)."""
    return QTensor(format=q.format, block=q.block, codes=q.codes[rows],
                   dequant=q.dequant[rows], bits_per_element=q.bits_per_element, fmt=q.fmt)
