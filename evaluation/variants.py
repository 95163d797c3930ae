"""The rows of the ``semdialect eval`` study: which formats it measures, and how each one
quantizes a sequence of activations.

The plain formats are the 4-bit designs of the design registry
(:data:`semdialect.designs.DESIGNS`; the study is W4A4, so designs with wider element codes,
MXINT8, are left out by their golden format's ``element_bits``), in reverse registry order
(baselines first, SemanticDialect last), under the default configuration :data:`CONFIG`.
Around them the study adds an FP16 reference row and three study options on the configured
(SemanticDialect) design: SeDA (SPEC §7), activation decomposition (SPEC §6), and both.

Then the format-fidelity rows (:func:`fidelity_variants`, ``fidelity=True``): formats named
directly (``fmt``: a golden format name or a formatbook TOML, not registry designs) — the
stronger 4.5-bit baselines (NVFP4 Four-over-Six, NVINT4, with and without the block Hadamard
rotation of SPEC §11, MXFP4 rotated), sd32 rotated, the shipped learned formatbook, and the
SemanticDialect configuration meant to meet the fidelity targets. ``rotate`` is ``none``,
``hadamard`` (every linear) or ``calibrated`` (per linear, chosen on calibration data that the
evaluation never measures: :mod:`semdialect.evaluation.fidelity`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from semdialect.config import Config
from semdialect.designs import DESIGNS, Design, configured_design
from semdialect.golden.blocks import to_fp16
from semdialect.golden.decompose import residual, residual_format
from semdialect.golden.formatbook import get_formatbook
from semdialect.golden.formats import BlockFormat, DialectFormat, resolve_format
from semdialect.golden.quantize import QTensor, quantize
from semdialect.golden.rotated import RotatedFormat, base_format
from semdialect.golden.rotation import Rotation
from semdialect.golden.seda import SedaGroups, seda_quantize
from semdialect.golden.selector_saliency import err_saliency_quantized, top_rows
from semdialect.paths import configs_dir

__all__ = [
    "CONFIG",
    "FIDELITY_RHO",
    "fidelity_variants",
    "format_of",
    "LEARNED_BOOK",
    "LEARNED_BOOK_PLAIN",
    "LEARNED_BOOK_B16",
    "SD_FIDELITY_B16_LABEL",
    "SD_FIDELITY_LABEL",
    "ROTATE_CHOICES",
    "SALIENCY_RULES",
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
#: rotation of a row: none, every tensor, or per tensor chosen on calibration data
ROTATE_CHOICES = ("none", "hadamard", "calibrated")
#: how decomposition selects its salient rows: attention received (SPEC §6, the design's
#: default) or the selector's ERR sum (SPEC §6 ERR-sum saliency)
SALIENCY_RULES = ("attention", "err")
#: the shipped learned formatbooks (``semdialect formatbook learn``; each header says how it
#: was fitted, on data none of the evaluation's tensors come from): fitted on plain blocks, and
#: on Hadamard-rotated blocks — the one SemanticDialect's fidelity configuration uses (with
#: the rotation chosen per tensor, the rotated-fit book is the better one on both kinds)
LEARNED_BOOK_PLAIN = configs_dir() / "formatbooks" / "learned_k256.toml"
LEARNED_BOOK = configs_dir() / "formatbooks" / "learned_k256_hadamard.toml"
#: the same at B = 16 with K = 8 dialects: 4 + (5 + 3)/16 = 4.5 bits, NVFP4's block size
LEARNED_BOOK_B16 = configs_dir() / "formatbooks" / "learned_k8_b16_hadamard.toml"


@functools.cache
def format_of(spec: str) -> BlockFormat:
    """The golden format a row names: a format name (``nvfp4-4o6``, ``sd32`` …) or a
    formatbook TOML (``lut`` selection)."""
    if spec.endswith(".toml"):
        return DialectFormat(get_formatbook(spec), "lut")
    return resolve_format(spec)


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
        design: the registry design; None = FP16 (X and W rounded to FP16, FP32 matmul) unless
            ``fmt`` names the format.
        decompose: activation decomposition at ρ = ``rho`` (SPEC §6), salient rows by
            ``saliency``.
        seda: SeDA at τ = :data:`TAU` (SPEC §7).
        extra: marked ``*`` in the tables: SeDA without decomposition, measured only to
            separate the effects of the two techniques.
        fmt: a golden format name or formatbook TOML instead of a registry design (fidelity
            rows); dialect weights then use ``lut`` over the whole book (SPEC §4).
        rotate: :data:`ROTATE_CHOICES` (SPEC §11; X and W of a linear share it).
        saliency: :data:`SALIENCY_RULES`; rho: the salient fraction ρ.
        fidelity: a row of the format-fidelity comparison (its own table section).
        fmt_block: B of a ``fmt`` row (None: the format's default, 32 for formatbooks).
    """

    label: str
    design: Design | None = None
    decompose: bool = False
    seda: bool = False
    extra: bool = False
    fmt: str | None = None
    rotate: str = "none"
    saliency: str = "attention"
    rho: str = RHO
    fidelity: bool = False
    fmt_block: int | None = None

    def __post_init__(self) -> None:
        if self.rotate not in ROTATE_CHOICES:
            raise ValueError(f"rotate: one of {ROTATE_CHOICES}, got {self.rotate!r}")
        if self.saliency not in SALIENCY_RULES:
            raise ValueError(f"saliency: one of {SALIENCY_RULES}, got {self.saliency!r}")

    @property
    def is_fp16(self) -> bool:
        """The FP16 reference row (no block format)."""
        return self.design is None and self.fmt is None

    @property
    def block(self) -> int:
        """Elements per block (:func:`block_of`, or the named format's default B)."""
        if self.fmt is not None:
            return format_of(self.fmt).block_size(self.fmt_block)
        return block_of(self.design)

    @property
    def plain(self) -> bool:
        """A registry design as it is (no study option), or FP16."""
        return not (self.decompose or self.seda or self.fmt is not None
                    or self.rotate != "none")

    @property
    def pow2_scaled(self) -> bool:
        """The format's GEMM is SPEC §5's integer one (dialect, MX), not SPEC §8's float one;
        a formatbook row answers without loading its file."""
        if self.fmt is not None and self.fmt.endswith(".toml"):
            return True
        return self.act_format.pow2_scaled

    @property
    def act_format(self) -> BlockFormat:
        """The golden format of the activations, unrotated (the design's under
        :data:`CONFIG`, or ``fmt``'s)."""
        if self.fmt is not None:
            return format_of(self.fmt)
        assert self.design is not None, "fp16 has no block format"
        return base_format(self.design.golden_format(CONFIG))

    @property
    def weight_format(self) -> BlockFormat:
        """The golden format of the weights and of decomposition residuals, unrotated: ``lut``
        over the whole formatbook for dialect formats (SPEC §4, §6), the activation format
        otherwise."""
        if self.fmt is not None:
            f = format_of(self.fmt)
            return DialectFormat(f.formatbook, "lut") if isinstance(f, DialectFormat) else f
        assert self.design is not None, "fp16 has no block format"
        return base_format(self.design.weight_format(CONFIG))

    def formats(self, rotated: bool) -> tuple[BlockFormat, BlockFormat]:
        """(activation, weight) formats, behind the block Hadamard (seed 0, size B, SPEC §11)
        when ``rotated``."""
        a, w = self.act_format, self.weight_format
        if not rotated:
            return a, w
        rot = Rotation(self.block)
        return RotatedFormat(a, rot, "activation"), RotatedFormat(w, rot, "weight")


def build_variants(cfg: Config = CONFIG) -> tuple[Variant, ...]:
    """FP16, every 4-bit registry design (reverse registry order), then the SPEC §6-7
    options on the configured design, then the fidelity rows (:func:`fidelity_variants`)."""
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
        *fidelity_variants(),
    )


#: SemanticDialect's fidelity configurations: a rotated-fit learned book with the rotation per
#: linear from calibration, at B = 32 (K = 256, 4.406 bits) and at B = 16 (K = 8, 4.5 bits);
#: their W4A4 cosine is a target (decomposition does not fit 4.5 bits on MiniLM's short
#: sentences)
SD_FIDELITY_LABEL = "learned K=256 (hadamard-fit) + calibrated hadamard"
SD_FIDELITY_B16_LABEL = "learned K=8 B=16 (hadamard-fit) + calibrated hadamard"
#: ρ of the fidelity rows' decomposition: the largest of 0.01 steps whose residual rows keep
#: the learned K = 256 book (4.40625 bits) at or under 4.5 bits on the video (N = 3072:
#: 4.40625 · (1 + ⌈0.02·N⌉/N) = 4.4944); MiniLM's short sentences (8–30 tokens) get at least
#: one salient row each, so decomposition is left out there (see fidelity.py)
FIDELITY_RHO = "0.02"


def fidelity_variants() -> tuple[Variant, ...]:
    """The fidelity rows: the stronger baselines, then SemanticDialect's options."""
    book = str(LEARNED_BOOK)
    return (
        Variant("nvfp4 four-over-six", fmt="nvfp4-4o6", fidelity=True),
        Variant("nvint4", fmt="nvint4", fidelity=True),
        Variant("nvint4 + hadamard", fmt="nvint4", rotate="hadamard", fidelity=True),
        Variant("mxfp4 + hadamard", fmt="mxfp4", rotate="hadamard", fidelity=True),
        Variant("sd32 lut + hadamard", fmt="sd32", rotate="hadamard", fidelity=True),
        Variant("sd32 lut + calibrated hadamard", fmt="sd32", rotate="calibrated",
                fidelity=True),
        Variant("learned K=256", fmt=str(LEARNED_BOOK_PLAIN), fidelity=True),
        Variant(SD_FIDELITY_LABEL, fmt=book, rotate="calibrated", fidelity=True),
        Variant(SD_FIDELITY_B16_LABEL, fmt=str(LEARNED_BOOK_B16), fmt_block=16,
                rotate="calibrated", fidelity=True),
        Variant(f"{SD_FIDELITY_LABEL} + err decomposition (rho={FIDELITY_RHO})", fmt=book,
                rotate="calibrated", decompose=True, saliency="err", rho=FIDELITY_RHO,
                fidelity=True),
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
                salient: np.ndarray | None = None, name: str = "x",
                rotated: bool = False) -> Recon:
    """Quantize one sequence X (N, k) as ``v`` does, activations only (no GEMM).

    SeDA (``v.seda``) needs the sequence's ``groups``; decomposition (``v.decompose``) its
    ``salient`` rows for the attention rule (the ERR rule selects them from the main path's
    own quantization, ``golden.selector_saliency``), whose residual R = fp16(x - deq(Q(x)))
    (``golden.decompose.residual``) is quantized over the whole formatbook (SPEC §6).
    ``rotated``: X behind the block Hadamard (SPEC §11; the residual in the rotated basis).
    """
    empty = np.zeros(0, dtype=np.intp)
    b = v.block
    if v.is_fp16:
        return Recon(to_fp16(x, name, b).astype(np.float64), 16.0, None, None, empty)
    act, weight = v.formats(rotated)
    if v.seda:
        assert groups is not None
        sr = seda_quantize(x, groups, act, block=b, name=name)
        q, bits = sr.q, sr.bits_per_element
    else:
        q = quantize(x, act, block=b, name=name)
        bits = q.bits_per_element
    deq = q.dequant.astype(np.float64)
    if not v.decompose:
        return Recon(deq, bits, q, None, empty)
    if v.saliency == "err":
        salient = top_rows(err_saliency_quantized(x, q, name=name), v.rho)
    assert salient is not None
    r = residual(to_fp16(x, name, b)[salient], q.take_rows(salient))
    qr = quantize(r, residual_format(q, weight), block=b, name=f"residual of {name}")
    deq[salient] += qr.dequant[..., :x.shape[-1]]
    bits += qr.bits_per_element * salient.size / x.shape[0]
    return Recon(deq, bits, q, qr, salient)
