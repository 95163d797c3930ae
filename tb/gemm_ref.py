"""Golden-model stimulus and expected values for the backend (PE, MAC array, GEMM core).

Everything expected here comes from :mod:`golden` (``quantize``, ``quantize_weights``,
``gemm``, ``gemm_quantized``, ``decompose.residual``); nothing models the RTL beyond the
hardware's two documented rules golden has no counterpart for (a NaN/Inf block quantizes to
codes 0, SE field 0, dialect 0, ``invalid`` 1 and its residual is the block itself, SPEC §2
and §6). Payloads are plain Python ints packed at the field offsets of the :mod:`rtl.layouts`
layouts (:func:`pack` / :func:`unpack`, or the vectorised :class:`tb.packing.LayoutCodec`), so
the same helpers drive ``amaranth.sim`` (``ctx.set(view.as_value(), int)``) and cocotb (one
packed port per struct payload, see :mod:`tb.ports`).

**GemmCore stream orders** (``rtl/gemm_core.py``; T_m = ⌈M/rows⌉ row tiles of R_t rows,
T_n = ⌈N/cols⌉ column tiles of C_j columns, L = ``lanes``, D = ``drain_width``):

* ``x`` / ``q`` (:func:`x_beat_rows`): ``for t: for g < ⌈R_t/L⌉: for kb < KB:`` one beat,
  lane l = block (row t·rows + g·L + l, k-block kb); lanes past M are padding.
* ``w`` (:func:`weight_beats`): ``for t: for j: for kb: for s < d:`` one beat of ``cols``
  blocks (columns j·T + s·cols + c), T = cols·d tile columns, d = ``acc_stages``.
* ``y`` / ``yin`` (:func:`drain_order` with T for ``cols``): ``for t: for j: for br: for bc:``
  one beat of D lanes, g = max(1, D/T) tile rows × c = min(D, T) tile columns, lane i =
  Y[t·rows + br·g + i // c, j·T + bc·c + i mod c], inside the tile where ``mask`` bit i is
  set.
* ``r``: one beat per quantized ``x`` beat with at least one salient lane, in ``x`` order.

**Rotation** (a configuration with ``rotate = "hadamard"``, SPEC §11): the expected values
are golden's rotated quantization — a GEMM's X in the activation role (``quantize(...,
rotate=)``), a quantize command's rows in the weight role (``RotatedFormat(inner, rotation,
"weight")`` with the configuration's selection), static W offline in the weight role
(``quantize_weights(..., rotate=)``), the decomposition's residual in the rotated basis
(``golden.decompose.residual``), and a GEMM with ``add`` takes X already in the rotated basis
(the core's rotators pass it unchanged: ``x_rotated``). The hardware's extra rule: a block with
NaN/±Inf, or one golden rejects as "outside the FP16 range after rotation", is the RTL's
invalid block (:func:`invalid_safe`), and its residual is the rotator's output for it, 0x7E00
in every lane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from semdialect import golden
from semdialect.config import Config, check_lanes
from semdialect.designs import PEKind
from semdialect.golden.decompose import residual as golden_residual
from semdialect.golden.formats import BlockFormat, DialectFormat
from semdialect.golden.rotated import RotatedFormat
from semdialect.rtl.block_decoder import ElementKind
from semdialect.rtl.rotator import CANONICAL_NAN
from semdialect.tb.packing import LayoutCodec

__all__ = [
    "DrainOrder",
    "QuantizedFields",
    "activation_beats",
    "CASE_KINDS",
    "activation_words",
    "case_commands",
    "dialect_block_values",
    "drain_order",
    "fp16_bits",
    "frontend_format",
    "gemm_expected",
    "grid_block",
    "invalid_safe",
    "mx_block_values",
    "pack",
    "pe_expected",
    "pe_vectors",
    "quantized_fields",
    "residual_expected",
    "salient_rows",
    "tile_order",
    "unpack",
    "weight_beats",
    "weight_beats_from_fields",
    "x_beat_rows",
    "yin_beats",
]

#: stored SE field = SE + 16 (SPEC §2; golden's se is the signed SE)
_SE_BIAS = 16


def pack(shape: Any, value: Any) -> int:
    """``value`` (dict for a struct, sequence for an array, int otherwise) packed into an int
    at the layout's offsets; signed ints are stored two's complement."""
    if isinstance(shape, data.StructLayout):
        out = 0
        for name, field in shape:
            out |= pack(field.shape, value[name]) << field.offset
        return out
    if isinstance(shape, data.ArrayLayout):
        width = Shape.cast(shape.elem_shape).width
        out = 0
        for index, item in enumerate(value):
            out |= pack(shape.elem_shape, item) << (index * width)
        if len(value) != shape.length:
            raise ValueError(f"array of {shape.length} elements, got {len(value)}")
        return out
    width = Shape.cast(shape).width
    return int(value) & ((1 << width) - 1)


def unpack(shape: Any, raw: int) -> Any:
    """Inverse of :func:`pack` (unsigned fields come back as non-negative ints)."""
    if isinstance(shape, data.StructLayout):
        return {name: unpack(field.shape, raw >> field.offset) for name, field in shape}
    if isinstance(shape, data.ArrayLayout):
        width = Shape.cast(shape.elem_shape).width
        return [unpack(shape.elem_shape, raw >> (i * width)) for i in range(shape.length)]
    sh = Shape.cast(shape)
    value = raw & ((1 << sh.width) - 1)
    if sh.signed and value >> (sh.width - 1):
        value -= 1 << sh.width
    return value


def fp16_bits(x: np.ndarray) -> np.ndarray:
    """FP16 bit patterns (uint16) of ``x`` rounded once to FP16 (NaN/Inf kept)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(x).astype(np.float16).view(np.uint16)


def dialect_block_values(q: golden.QTensor, row: int) -> list[dict[str, Any]]:
    """The ``quantized_block`` field dicts of every k-block of ``q``'s row ``row``."""
    b = q.block
    codes = q.codes.reshape(-1, q.codes.shape[-1])[row]
    se = q.se.reshape(-1, q.se.shape[-1])[row]
    dialect = q.dialect.reshape(-1, q.dialect.shape[-1])[row]
    return [
        {
            "codes": [int(c) for c in codes[kb * b : (kb + 1) * b]],
            "se": int(se[kb]) + _SE_BIAS,
            "dialect": int(dialect[kb]),
            "invalid": 0,
        }
        for kb in range(len(se))
    ]


def mx_block_values(q: golden.QTensor, row: int) -> list[dict[str, Any]]:
    """The ``mx_block`` field dicts of every k-block of ``q``'s row ``row``, ``q`` of a
    fixed-format PE kind (codes and E8M0 scale byte, e.g. MXFP4, MXINT8)."""
    b = q.block
    codes = q.codes.reshape(-1, q.codes.shape[-1])[row]
    scale = q.scale.reshape(-1, q.scale.shape[-1])[row]
    return [
        {"codes": [int(c) for c in codes[kb * b : (kb + 1) * b]], "scale": int(scale[kb])}
        for kb in range(len(scale))
    ]


def _dialect_format(cfg: Config, weights: bool = False) -> DialectFormat:
    return DialectFormat(cfg.book(), "lut" if weights else cfg.select)


def frontend_format(cfg: Config, role: str = "activation", *, x_rotated: bool = False
                    ) -> BlockFormat:
    """The golden format the GemmCore frontend quantizes with: the configuration's dialect
    format (``cfg.select``), behind its rotation in ``role`` when it rotates (SPEC §11:
    ``activation`` for a GEMM's X, ``weight`` for a quantize command's rows); ``x_rotated``:
    the rows already are in the rotated basis (a GEMM with ``add``, the residual pass)."""
    inner = _dialect_format(cfg)
    rotation = cfg.rotation()
    if rotation is None:
        return inner
    return RotatedFormat(inner, rotation, role, input_rotated=x_rotated)


def pe_expected(
    x: np.ndarray, w: np.ndarray, fmt: Config | PEKind | str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """One PE problem: x (K,) and w (K,) → (activation blocks, weight blocks, FP32 bits of
    ``golden.gemm(x[None], w[:, None])``). ``fmt`` is a Config (dialect formats: its book,
    select and B) or a fixed-format PE kind (:class:`~semdialect.designs.PEKind` or its name,
    e.g. ``"mxfp4"``)."""
    x2 = np.asarray(x)[None, :]
    w2 = np.asarray(w)[:, None]
    if isinstance(fmt, Config):
        qx = golden.quantize(x2, _dialect_format(fmt), block=fmt.block)
        qw = golden.quantize_weights(w2, _dialect_format(fmt, True), block=fmt.block)
        y = golden.gemm(x2, w2, fmt.book(), select=fmt.select, block=fmt.block)
        blocks = dialect_block_values
    else:
        name = _fixed_kind(fmt).fmt
        qx = golden.quantize(x2, name)
        qw = golden.quantize_weights(w2, name)
        y = golden.gemm(x2, w2, name)
        blocks = mx_block_values
    return blocks(qx, 0), blocks(qw, 0), int(np.asarray(y, np.float32).view(np.uint32)[0, 0])


def grid_block(book: golden.Formatbook, dialect: int, block: int, exp: int,
               rng: np.random.Generator) -> np.ndarray:
    """A block holding every magnitude of ``dialect`` (random signs and order, times 2^exp):
    its LUT cost is 0 for that dialect only, so ``lut`` selection picks it (SPEC §4). Needs
    −17 ≤ exp ≤ 12 (no SE clamp, FP16-exact)."""
    hu = book.hu[dialect].astype(np.float64)
    idx = np.concatenate([np.arange(8), rng.integers(0, 8, block - 8)])
    rng.shuffle(idx)
    return rng.choice([-1.0, 1.0], block) * hu[idx] * 2.0**exp


_FP16_MAX = 65504.0
_TINY = 2.0**-24


def _fixed_kind(fmt: PEKind | str) -> PEKind:
    """The power-of-two-scaled fixed-format PE kind ``fmt`` names (``ValueError`` for a
    dialect kind, and for NVFP4, whose PE follows SPEC §8's hardware contract, not the
    accuracy path here: its vectors are :func:`semdialect.tb.nvfp4_ref.nvfp4_pe_vectors`)."""
    kind = PEKind.of(fmt)
    if kind.fmt is None:
        raise ValueError(f"fmt: the {kind.value} PE kind takes its formatbook from a Config")
    if not kind.pow2_scaled:
        raise ValueError(f"fmt: the {kind.value} PE kind's vectors come from "
                         f"semdialect.tb.nvfp4_ref.nvfp4_pe_vectors (SPEC §8 hardware contract)")
    return kind


def _adversarial_pairs(b: int, rng: np.random.Generator, kind: ElementKind | None) -> list:
    """Edge cases for every kind, then for a fixed-format ``kind`` its element extremes:
    integer elements at ±(2^(bits−1) − 1), or a fixed grid's ties (RNE) and saturation."""
    normal = lambda kb, e=0: rng.standard_normal(kb * b) * 2.0**e  # noqa: E731
    signs = lambda kb: rng.choice([-1.0, 1.0], kb * b)  # noqa: E731
    cases = [
        ("zero x", np.zeros(2 * b), normal(2)),
        ("-0 x", np.full(2 * b, -0.0), normal(2)),
        ("zero w", normal(2), np.zeros(2 * b)),
        ("±0 mixed", np.where(rng.random(b) < 0.5, -0.0, 0.0), normal(1)),
        ("max x max w", signs(3) * _FP16_MAX, signs(3) * _FP16_MAX),
        ("max same sign", np.full(b, _FP16_MAX), np.full(b, -_FP16_MAX)),
        ("tiny x tiny w", rng.integers(-1023, 1024, 2 * b) * _TINY,
         rng.integers(-1023, 1024, 2 * b) * _TINY),
        ("min subnormal", np.full(b, _TINY), np.full(b, -_TINY)),
        ("max x tiny w", signs(2) * _FP16_MAX, rng.integers(-3, 4, 2 * b) * _TINY),
        ("tiny x max w", rng.integers(-3, 4, 2 * b) * _TINY, signs(2) * _FP16_MAX),
        ("outlier", np.concatenate([normal(1, -8)[:-1], [60000.0]]), normal(1)),
        ("mixed scales", np.concatenate([normal(1, 12), normal(1, -12), normal(1, 0),
                                         normal(1, -20)]), normal(4)),
    ]
    x = normal(1)
    w = normal(1)
    cases.append(("cancel", np.concatenate([x, -x]), np.concatenate([w, w])))
    if kind is not None and kind.formatbook is None:  # integer elements at ±(2^(n−1) − 1):
        bits = kind.element_bits  # amax just below a power of two
        cases.append((f"int{bits} ±{(1 << (bits - 1)) - 1}", signs(2) * 1.99, signs(2) * 3.99))
    elif kind is not None and not kind.pe.has_dialects:  # a fixed grid: ties and saturation
        grid = kind.formatbook.hu[0].astype(np.float64) / 2  # values (HU / 2), e.g. E2M1
        top, below = grid[-1], grid[-2]
        ties = np.append((grid[1:] + grid[:-1]) / 2, top + (top - below) / 2)
        cases.append((f"{kind.formatbook.name} ties", np.resize(ties, b) * signs(1),
                      np.full(b, top - 0.1)))
    return cases


def pe_vectors(
    fmt: Config | PEKind | str, count: int, seed: int
) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], int, int]]:
    """``count`` PE problems: (name, activation blocks, weight blocks, expected FP32 bits,
    expected invalid flag). First the adversarial ones (zeros, −0, FP16 max/min magnitudes,
    cancellation, a fixed-format kind's element extremes; for dialect formats a block
    selecting every dialect of the book and one invalid block, SPEC §2), then random ones
    with 1..4 k-blocks and block scales 2^−14 … 2^10."""
    rng = np.random.default_rng(seed)
    kind = None if isinstance(fmt, Config) else ElementKind.for_design(_fixed_kind(fmt))
    b = fmt.block if isinstance(fmt, Config) else kind.block
    pairs = _adversarial_pairs(b, rng, kind)
    if isinstance(fmt, Config):
        book = fmt.book()
        k = book.size
        for f in range(k):  # every dialect, as activation and (another) as weight
            pairs.append((f"dialect {f}", grid_block(book, f, b, int(rng.integers(-17, 13)), rng),
                          grid_block(book, (f + 5) % k, b, int(rng.integers(-17, 13)), rng)))
    out = []
    for name, x, w in pairs:
        a_blocks, w_blocks, want = pe_expected(x, w, fmt)
        out.append((name, a_blocks, w_blocks, want, 0))
    if isinstance(fmt, Config):
        # an invalid activation block (NaN) as the RTL quantizer emits it: codes 0, SE field
        # 0, dialect 0, invalid 1; golden computes that block as all +0.0 (contribution +0.0)
        x = rng.standard_normal(3 * b)
        w = rng.standard_normal(3 * b)
        x[b : 2 * b] = 0.0
        a_blocks, w_blocks, want = pe_expected(x, w, fmt)
        a_blocks[1] = {"codes": [0] * b, "se": 0, "dialect": 0, "invalid": 1}
        out.append(("invalid block", a_blocks, w_blocks, want, 1))
    while len(out) < count:
        kb = int(rng.integers(1, 5))
        scales_x = np.repeat(np.exp2(rng.integers(-14, 11, kb)), b)
        scales_w = np.repeat(np.exp2(rng.integers(-14, 11, kb)), b)
        x = rng.standard_normal(kb * b) * scales_x
        w = rng.standard_normal(kb * b) * scales_w
        a_blocks, w_blocks, want = pe_expected(x, w, fmt)
        out.append((f"random {len(out)}", a_blocks, w_blocks, want, 0))
    return out


def invalid_safe(x: np.ndarray, block: int, rotation: golden.Rotation | None = None,
                 role: str = "activation") -> tuple[np.ndarray, np.ndarray]:
    """SPEC §2 invalid blocks as golden sees them: ``x`` with every block that holds a NaN or
    ±Inf — or, with a ``rotation`` (SPEC §11, in ``role``), whose rotation overflows FP16
    ("outside the FP16 range after rotation") — replaced by +0.0 (an all-+0 block rotates to
    itself and quantizes to codes 0, SE field 0, dialect 0, the RTL's invalid-block output),
    and the (M, K/B) bool mask of those blocks."""
    with np.errstate(over="ignore", invalid="ignore"):
        x16 = np.asarray(x).astype(np.float16)
    m, k = x16.shape
    bad = ~np.isfinite(x16.reshape(m, k // block, block)).all(axis=-1)
    safe = x16.reshape(m, k // block, block).copy()
    safe[bad] = np.float16(0)
    if rotation is not None:
        _, over = rotation.forward(safe.reshape(-1, block), role)
        bad |= over.reshape(bad.shape)
        safe[bad] = np.float16(0)
    return safe.reshape(m, k), bad


def gemm_expected(
    x: np.ndarray, w: np.ndarray, cfg: Config, masks: np.ndarray | None = None,
    qw: golden.QTensor | None = None, *, x_rotated: bool = False,
) -> tuple[np.ndarray, np.ndarray, golden.QTensor]:
    """Golden Y (M, N) as uint32 FP32 bits, the (M, N) invalid flags, and golden's Wᵀ.

    X may hold NaN/Inf: such blocks contribute what golden computes for the RTL's invalid
    block (codes 0 → +0.0, :func:`invalid_safe`), and the row's outputs are flagged.
    ``masks`` (M, K/B, K) bool are SeDA candidate masks (lut only); then Y is
    ``gemm_quantized(quantize(X, candidates=masks), quantize_weights(W))``. ``qw``: a
    quantized Wᵀ (N, K) to use instead of ``quantize_weights(W)`` (e.g. a run-time second
    operand quantized by a quantize command); ``w`` then only gives N.

    A rotating ``cfg`` (SPEC §11): X in the activation role, W (``quantize_weights(...,
    rotate=)``, or the given ``qw``: weight role) rotated; a block that overflows after the
    rotation is invalid as a NaN block is. ``x_rotated``: X already is in the rotated basis (a
    GEMM with ``add`` on a rotating core: not rotated again).
    """
    rotation = cfg.rotation()
    again = rotation if not x_rotated else None  # X's blocks the rotators rotate
    safe, bad = invalid_safe(x, cfg.block, again)
    given = qw is not None
    if qw is None:
        qw = golden.quantize_weights(w, _dialect_format(cfg, True), block=cfg.block,
                                     rotate=rotation)
    if masks is None and not bad.any() and not given and not x_rotated:
        y = golden.gemm(safe, w, cfg.book(), select=cfg.select, block=cfg.block,
                        rotate=rotation)
    else:
        qx = golden.quantize(safe, frontend_format(cfg, x_rotated=x_rotated), block=cfg.block,
                             candidates=masks)
        y = golden.gemm_quantized(qx, qw)
    flags = np.repeat(bad.any(axis=1)[:, None], w.shape[1], axis=1)
    return np.asarray(y, np.float32).view(np.uint32), flags, qw


def activation_words(
    x: np.ndarray, cfg: Config, layout: data.Layout, masks: np.ndarray | None = None,
    salient: np.ndarray | None = None,
) -> list[int]:
    """GemmCore ``x`` beats for X (M, K). ``layout`` is the core's ``x`` payload: an
    ``ArrayLayout`` of ``lanes`` ``salient_masked_fp16_block`` gives :func:`activation_beats`;
    a single ``masked_fp16_block`` (the one-block-per-beat interface) gives every (row m,
    k-block kb) of X in row-major order. Masks: all ones unless ``masks`` (M, K/B, K)."""
    if isinstance(layout, data.ArrayLayout):
        return activation_beats(x, cfg, layout, masks, salient)
    bits = fp16_bits(x)
    m, k = bits.shape
    b = cfg.block
    kbook = cfg.book().size
    words = []
    for row in range(m):
        for kb in range(k // b):
            mask = (1 << kbook) - 1
            if masks is not None:
                mask = sum(1 << f for f in range(kbook) if masks[row, kb, f])
            lanes = [int(v) for v in bits[row, kb * b : (kb + 1) * b]]
            words.append(pack(layout, {"x": lanes, "mask": mask}))
    return words


def x_beat_rows(m: int, kb: int, rows: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``x`` (and ``q``) beat order of an M-row, KB-block command: ((beats, L) int64 row
    of every lane, −1 past M; (beats,) int64 k-block of every beat). ``for t in row tiles:
    for g < ⌈R_t/L⌉: for kb < KB:`` lane l = row t·rows + g·L + l."""
    check_lanes(lanes, rows)
    row_of: list[np.ndarray] = []
    kb_of: list[np.ndarray] = []
    for m0 in range(0, m, rows):
        r_t = min(rows, m - m0)
        for g in range(-(-r_t // lanes)):
            lane_rows = m0 + g * lanes + np.arange(lanes)
            lane_rows = np.where(lane_rows < m0 + r_t, lane_rows, -1)
            row_of += [lane_rows] * kb
            kb_of.append(np.arange(kb))
    return np.array(row_of, np.int64).reshape(-1, lanes), np.concatenate(kb_of).astype(np.int64)


def activation_beats(
    x: np.ndarray, cfg: Config, layout: data.ArrayLayout, masks: np.ndarray | None = None,
    salient: np.ndarray | None = None, pad_seed: int = 0,
) -> list[int]:
    """GemmCore ``x`` beats (``ArrayLayout`` of L ``salient_masked_fp16_block``) for X
    (M, K) in the order of :func:`x_beat_rows`. Lane l of a beat: the FP16 bits of its block,
    the candidate mask (all ones, or ``masks`` (M, K/B, K) bool), ``salient`` = row in
    ``salient`` (a sequence of row indices). Lanes past M are padding: random FP16 bit
    patterns (NaN/Inf included, from ``pad_seed``), all-ones mask, salient 0 — the core must
    ignore them."""
    bits = fp16_bits(x)
    m, k = bits.shape
    b = cfg.block
    kb = k // b
    kbook = cfg.book().size
    lanes = layout.length
    row_of, kb_of = x_beat_rows(m, kb, cfg.rows, lanes)
    n = len(kb_of)
    blocks = bits.reshape(m, kb, b)
    if masks is None:
        mask_vals = np.full((m, kb), (1 << kbook) - 1, dtype=object)
    else:
        weights = [1 << f for f in range(kbook)]
        mask_vals = np.array([[sum(w for w, on in zip(weights, masks[r, j], strict=True) if on)
                               for j in range(kb)] for r in range(m)], dtype=object)
    flags = np.zeros(m, bool)
    if salient is not None:
        flags[np.asarray(salient, np.int64)] = True
    pad_rng = np.random.default_rng(pad_seed)
    fields: dict[str, np.ndarray] = {}
    for lane in range(lanes):
        rows = row_of[:, lane]
        ok = rows >= 0
        safe = np.where(ok, rows, 0)
        junk = pad_rng.integers(0, 1 << 16, (n, b)).astype(np.uint16)
        fields[f"{lane}__x"] = np.where(ok[:, None], blocks[safe, kb_of], junk)
        fields[f"{lane}__mask"] = np.where(ok, mask_vals[safe, kb_of], (1 << kbook) - 1)
        fields[f"{lane}__salient"] = (ok & flags[safe]).astype(np.int64)
    return LayoutCodec(layout).pack(n, **fields)


@dataclass(frozen=True)
class DrainOrder:
    """Where every lane of every ``y`` (and ``yin``) beat of one GEMM goes:
    ``row``/``col`` (beats, D) int64 output coordinates (−1 outside the tile) and ``mask``
    (beats, D) bool, the lanes inside the tile (the beat's expected ``mask`` bits)."""

    row: np.ndarray
    col: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.mask)

    def assemble(self, lanes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """(M, N) array of the masked ``lanes`` values ((beats, D)); every output is written
        exactly once (the order covers the tile grid)."""
        out = np.zeros(shape, lanes.dtype)
        out[self.row[self.mask], self.col[self.mask]] = lanes[self.mask]
        return out

    def scatter(self, values: np.ndarray) -> np.ndarray:
        """(beats, D) lanes of an (M, N) array in beat order (0 outside the tile)."""
        out = np.zeros(self.mask.shape, values.dtype)
        out[self.mask] = values[self.row[self.mask], self.col[self.mask]]
        return out


def drain_order(m: int, n: int, rows: int, cols: int, width: int) -> DrainOrder:
    """The ``y`` beat order of an M × N GEMM on a rows × cols array with ``width`` = D
    outputs per beat: ``for t: for j: for br < ⌈R_t/g⌉: for bc < ⌈C_j/c⌉:`` lane i =
    (t·rows + br·g + i // c, j·cols + bc·c + i mod c), g = max(1, D/cols), c = min(D, cols)."""
    g, c = max(1, width // cols), min(width, cols)  # the order's definition, restated here
    lane = np.arange(width)
    row_parts: list[np.ndarray] = []
    col_parts: list[np.ndarray] = []
    for m0 in range(0, m, rows):
        r_t = min(rows, m - m0)
        for n0 in range(0, n, cols):
            c_t = min(cols, n - n0)
            for br in range(-(-r_t // g)):
                for bc in range(-(-c_t // c)):
                    tr = br * g + lane // c
                    tc = bc * c + lane % c
                    inside = (tr < r_t) & (tc < c_t)
                    row_parts.append(np.where(inside, m0 + tr, -1))
                    col_parts.append(np.where(inside, n0 + tc, -1))
    row = np.array(row_parts, np.int64).reshape(-1, width)
    col = np.array(col_parts, np.int64).reshape(-1, width)
    return DrainOrder(row, col, row >= 0)


def yin_beats(values: np.ndarray, invalid: np.ndarray, order: DrainOrder,
              layout: data.ArrayLayout) -> list[int]:
    """GemmCore ``yin`` beats (``ArrayLayout`` of D ``FP32_RESULT``): the addend (M, N)
    uint32 binary32 bits ``values`` with their (M, N) ``invalid`` flags, in ``order`` (the
    GEMM's ``y`` beat order); lanes outside the tile carry 0."""
    vals = order.scatter(np.asarray(values, np.uint32).astype(np.int64))
    flags = order.scatter(np.asarray(invalid, bool).astype(np.int64))
    fields = {}
    for lane in range(layout.length):
        fields[f"{lane}__value"] = vals[:, lane]
        fields[f"{lane}__invalid"] = flags[:, lane]
    return LayoutCodec(layout).pack(len(order), **fields)


@dataclass(frozen=True)
class QuantizedFields:
    """Quantized blocks of an (M, K) tensor in hardware fields: ``codes`` (M, K) int64,
    ``se`` (M, K/B) int64 SE field (SE + 16), ``dialect`` (M, K/B) int64, ``invalid``
    (M, K/B) bool."""

    codes: np.ndarray
    se: np.ndarray
    dialect: np.ndarray
    invalid: np.ndarray


def quantized_fields(x: np.ndarray, cfg: Config, masks: np.ndarray | None = None, *,
                     weights: bool = False, role: str = "weight") -> QuantizedFields:
    """Golden quantization of X (M, K) as the hardware fields: ``golden.quantize(X, book,
    select=cfg.select, candidates=masks)`` (``weights``: ``lut`` over the whole book, as
    ``golden.quantize_weights`` quantizes Wᵀ). A NaN/Inf block gives codes 0, SE field 0,
    dialect 0, ``invalid`` 1 (SPEC §2; golden rejects such blocks). A rotating ``cfg``: the
    rows are rotated in ``role`` first (default ``weight``: the GemmCore quantize command's
    role, SPEC §11), and a block that overflows after the rotation is invalid too."""
    rotation = cfg.rotation()
    safe, bad = invalid_safe(x, cfg.block, rotation, role)
    cand = None if (masks is None or weights or cfg.select == "two-stage") else masks
    fmt: BlockFormat = _dialect_format(cfg, weights)
    if rotation is not None:
        fmt = RotatedFormat(fmt, rotation, role)
    q = golden.quantize(safe, fmt, block=cfg.block, candidates=cand)
    b = cfg.block
    codes = q.codes.astype(np.int64)
    codes[np.repeat(bad, b, axis=1)] = 0
    se = np.where(bad, 0, q.se.astype(np.int64) + _SE_BIAS)
    dialect = np.where(bad, 0, q.dialect.astype(np.int64))
    return QuantizedFields(codes, se, dialect, bad)


def residual_expected(x: np.ndarray, cfg: Config, masks: np.ndarray | None = None
                      ) -> np.ndarray:
    """(M, K) uint16 FP16 bits of the residual of every block of X (M, K):
    ``golden.decompose.residual`` = fp16(fp32(x) − deq(Q(x))), Q the main-path quantization
    (``cfg.select``, candidates ``masks``); a NaN/Inf block's residual is the block itself
    (SPEC §6). A rotating ``cfg`` (SPEC §11): the residual is in the rotated basis (X in the
    activation role), and an invalid block's (NaN/Inf, or overflowing after the rotation) is
    the block the quantizer saw, 0x7E00 in every lane."""
    bits = fp16_bits(x)
    rotation = cfg.rotation()
    safe, bad = invalid_safe(x, cfg.block, rotation)
    cand = None if (masks is None or cfg.select == "two-stage") else masks
    q = golden.quantize(safe, frontend_format(cfg), block=cfg.block, candidates=cand)
    out = golden_residual(safe, q).view(np.uint16).copy()
    whole = np.repeat(bad, cfg.block, axis=1)
    out[whole] = bits[whole] if rotation is None else CANONICAL_NAN
    return out


def weight_beats(
    qw: golden.QTensor, m: int, cfg: Config, layout: data.Layout
) -> list[int]:
    """GemmCore ``w`` beats in the core's order: for each row tile, each column tile, each
    k-block, one beat of ``cols`` blocks (lane c = column n0 + c; lanes past N are zero) of
    golden's quantized Wᵀ (N, K) (``invalid`` 0)."""
    codes = np.asarray(qw.codes, np.int64)
    se = qw.se.astype(np.int64) + _SE_BIAS
    return weight_beats_from_fields(
        QuantizedFields(codes, se, qw.dialect.astype(np.int64), np.zeros(se.shape, bool)),
        m, cfg, layout)


def weight_beats_from_fields(wt: QuantizedFields, m: int, cfg: Config,
                             layout: data.ArrayLayout) -> list[int]:
    """GemmCore ``w`` beats for an M-row GEMM from Wᵀ (N, K) given as hardware fields (e.g.
    a quantize command's ``q`` output, the run-time second operand): ``for t in
    ⌈M/rows⌉ row tiles: for j (tiles of cols·d columns): for kb: for s < d:`` lane c = Wᵀ
    block (column j·cols·d + s·cols + c, kb), d = ``cfg.acc_stages``; lanes past N are zero
    (a beat wholly past N is still sent: its group computes don't-care outputs)."""
    n, k = wt.codes.shape
    b, rows, cols, d = cfg.block, cfg.rows, cfg.cols, cfg.acc_stages
    nb = k // b
    tiles_n = -(-n // (cols * d))
    # beat order within one row tile: tile j, k-block kb, virtual column group s; beat (j,
    # kb, s) is the column block group j·d + s (columns (j·d + s)·cols + c)
    j_idx = np.repeat(np.arange(tiles_n), nb * d) * d + np.tile(np.arange(d), tiles_n * nb)
    kb_idx = np.tile(np.repeat(np.arange(nb), d), tiles_n)
    blocks = wt.codes.reshape(n, nb, b)
    has_id = "dialect" in layout.elem_shape.members  # K = 1 stores no id
    fields: dict[str, np.ndarray] = {}
    for c in range(layout.length):
        col = j_idx * cols + c
        ok = col < n
        safe = np.where(ok, col, 0)
        fields[f"{c}__codes"] = np.where(ok[:, None], blocks[safe, kb_idx], 0)
        fields[f"{c}__se"] = np.where(ok, wt.se[safe, kb_idx], 0)
        fields[f"{c}__invalid"] = np.where(ok, wt.invalid[safe, kb_idx], 0).astype(np.int64)
        if has_id:
            fields[f"{c}__dialect"] = np.where(ok, wt.dialect[safe, kb_idx], 0)
    one_row_tile = LayoutCodec(layout).pack(len(j_idx), **fields)
    return one_row_tile * -(-m // rows)


def tile_order(m: int, n: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """(row, column) of every output in tile order: row tiles, column tiles, then row-major
    inside the tile (the order of a one-output-per-beat drain; :func:`drain_order` gives the
    beats of a wider one)."""
    order = []
    for m0 in range(0, m, rows):
        for n0 in range(0, n, cols):
            for r in range(m0, min(m0 + rows, m)):
                for c in range(n0, min(n0 + cols, n)):
                    order.append((r, c))
    return order


# -- GemmCore test programs ------------------------------------------------------------------------

#: case kinds of the GemmCore testbench (:func:`case_commands`)
CASE_KINDS = ("gemm", "add", "quantize", "dynamic", "decompose")


def salient_rows(spec: Any, m: int, seed: int) -> np.ndarray:
    """Sorted salient row indices (int64) of an M-row X: ``spec`` is a sequence of indices,
    ``{"random": count}`` (a random subset drawn from ``seed``) or ``{"attention": rho}``
    (``golden.decompose.salient_tokens`` of a random attention map (2, M, M) with dyadic
    entries k/64, drawn from ``seed``: its saliency sums are exact)."""
    if spec is None:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng([seed, 0x5A11])
    if isinstance(spec, dict) and "random" in spec:
        rows = rng.choice(m, size=int(spec["random"]), replace=False)
    elif isinstance(spec, dict) and "attention" in spec:
        attn = rng.integers(0, 64, (2, m, m)) / 64.0
        rows = golden.decompose.salient_tokens(attn, spec["attention"])
    else:
        rows = np.asarray(spec, np.int64).reshape(-1)
    rows = np.unique(np.asarray(rows, np.int64))
    if rows.size and (rows.min() < 0 or rows.max() >= m):
        raise ValueError(f"salient: row index outside 0..{m - 1}: {rows.tolist()}")
    return rows


def case_commands(case: dict) -> list[dict[str, int | str]]:
    """The commands a testbench case sends, in order: ``{"op": "gemm" | "quantize", "m",
    "n", "kb", "add"}`` (``n`` 0 for a quantize command, where it is ignored). Kinds
    (``case["kind"]``, default ``gemm``):

    * ``gemm``: one GEMM (M, N, KB); rows in ``case["salient"]`` (:func:`salient_rows`) are
      flagged and their residuals come out on ``r``.
    * ``add``: one GEMM with ``add`` (every output added to an addend from ``yin``).
    * ``quantize``: one quantize command of X's M rows.
    * ``dynamic``: a quantize command of Wᵀ (N rows), then the GEMM with those blocks as W.
    * ``decompose``: the GEMM with the salient rows flagged, then (when any row is salient)
      a GEMM with ``add`` over the |S| residual rows.
    """
    kind = case.get("kind", "gemm")
    m, n, kb = case["m"], case["n"], case["kb"]
    gemm = {"op": "gemm", "m": m, "n": n, "kb": kb, "add": 0}
    if kind == "gemm":
        return [gemm]
    if kind == "add":
        return [{**gemm, "add": 1}]
    if kind == "quantize":
        return [{"op": "quantize", "m": m, "n": 0, "kb": kb, "add": 0}]
    if kind == "dynamic":
        return [{"op": "quantize", "m": n, "n": 0, "kb": kb, "add": 0}, gemm]
    if kind == "decompose":
        count = len(salient_rows(case.get("salient"), m, case["seed"]))
        second = [{"op": "gemm", "m": count, "n": n, "kb": kb, "add": 1}] if count else []
        return [gemm, *second]
    raise ValueError(f"case kind: one of {CASE_KINDS}, got {kind!r}")


def salient_lanes(salient: np.ndarray, row_of: np.ndarray) -> np.ndarray:
    """(x beats, L) bool: the lanes of each ``x`` beat holding a salient row (``salient`` (M,)
    bool; ``row_of`` from :func:`x_beat_rows`, −1 past M)."""
    return salient[np.maximum(row_of, 0)] & (row_of >= 0)


def residual_rows(codec: LayoutCodec, raws: list[int], flagged: np.ndarray,
                  row_of: np.ndarray, kb_of: np.ndarray, m: int, block: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Decode a GEMM's ``r`` beats: (their ``mask`` bits (beats, L) bool, the residual rows
    (M, K) uint16 FP16 bits, 0 where not salient). ``flagged`` = :func:`salient_lanes`; each
    ``x`` beat with a flagged lane gave one ``r`` beat, in ``x`` order."""
    raw = codec.unpack(raws)
    mask = codec.unpack_bits(raws, "mask")
    carrying = flagged.any(axis=1)
    lanes = np.stack([raw[f"lanes.{i}"] for i in range(flagged.shape[1])], axis=1)
    kb = int(kb_of.max()) + 1 if len(kb_of) else 0
    out = np.zeros((m, kb, block), np.uint16)
    beat, lane = np.nonzero(flagged[carrying])
    out[row_of[carrying][beat, lane], kb_of[carrying][beat]] = lanes[beat, lane]
    return mask, out.reshape(m, kb * block)
