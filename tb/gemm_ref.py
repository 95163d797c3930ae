"""Golden-model stimulus and expected values for the backend (PE, MAC array, GEMM core).

Everything expected here comes from :mod:`golden` (``quantize``, ``quantize_weights``,
``gemm``, ``gemm_quantized``); nothing models the RTL. Payloads are plain Python ints packed
at the field offsets of the :mod:`rtl.layouts` layouts (:func:`pack` / :func:`unpack`), so the
same helpers drive ``amaranth.sim`` (``ctx.set(view.as_value(), int)``) and cocotb (one packed
port per struct payload, see :mod:`tb.ports`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from semdialect import golden
from semdialect.config import Config
from semdialect.designs import PEKind
from semdialect.golden.formats import DialectFormat
from semdialect.rtl.block_decoder import ElementKind

__all__ = [
    "activation_words",
    "dialect_block_values",
    "fp16_bits",
    "gemm_expected",
    "invalid_safe",
    "mx_block_values",
    "pack",
    "grid_block",
    "pe_expected",
    "pe_vectors",
    "tile_order",
    "unpack",
    "weight_beats",
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
    """The fixed-format PE kind ``fmt`` names (``ValueError`` for a dialect kind)."""
    kind = PEKind.of(fmt)
    if kind.fmt is None:
        raise ValueError(f"fmt: the {kind.value} PE kind takes its formatbook from a Config")
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


def invalid_safe(x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """SPEC §2 invalid blocks as golden sees them: ``x`` with every block that holds a NaN or
    ±Inf replaced by +0.0 (an all-+0 block quantizes to codes 0, SE field 0, dialect 0, the
    RTL's invalid-block output), and the (M, K/B) bool mask of those blocks."""
    x16 = np.asarray(x).astype(np.float16)
    m, k = x16.shape
    bad = ~np.isfinite(x16.reshape(m, k // block, block)).all(axis=-1)
    safe = x16.reshape(m, k // block, block).copy()
    safe[bad] = np.float16(0)
    return safe.reshape(m, k), bad


def gemm_expected(
    x: np.ndarray, w: np.ndarray, cfg: Config, masks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, golden.QTensor]:
    """Golden Y (M, N) as uint32 FP32 bits, the (M, N) invalid flags, and golden's Wᵀ.

    X may hold NaN/Inf: such blocks contribute what golden computes for the RTL's invalid
    block (codes 0 → +0.0, :func:`invalid_safe`), and the row's outputs are flagged.
    ``masks`` (M, K/B, K) bool are SeDA candidate masks (lut only); then Y is
    ``gemm_quantized(quantize(X, candidates=masks), quantize_weights(W))``.
    """
    safe, bad = invalid_safe(x, cfg.block)
    qw = golden.quantize_weights(w, _dialect_format(cfg, True), block=cfg.block)
    if masks is None and not bad.any():
        y = golden.gemm(safe, w, cfg.book(), select=cfg.select, block=cfg.block)
    else:
        qx = golden.quantize(safe, _dialect_format(cfg), block=cfg.block, candidates=masks)
        y = golden.gemm_quantized(qx, qw)
    flags = np.repeat(bad.any(axis=1)[:, None], w.shape[1], axis=1)
    return np.asarray(y, np.float32).view(np.uint32), flags, qw


def activation_words(
    x: np.ndarray, cfg: Config, layout: data.Layout, masks: np.ndarray | None = None
) -> list[int]:
    """GemmCore ``x`` beats: every (row m, k-block kb) of X in row-major order, packed
    ``masked_fp16_block`` (all-ones mask unless ``masks`` (M, K/B, K) is given)."""
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


def weight_beats(
    qw: golden.QTensor, m: int, cfg: Config, layout: data.Layout
) -> list[int]:
    """GemmCore ``w`` beats in the core's order: for each row tile, each column tile, each
    k-block, one beat of ``cols`` blocks (lane c = column n0 + c; lanes past N are zero)."""
    n = qw.codes.shape[0]
    nb = qw.se.shape[-1]
    rows, cols = cfg.rows, cfg.cols
    per_col = [dialect_block_values(qw, col) for col in range(n)]
    zero = pack(layout.elem_shape, {
        "codes": [0] * cfg.block, "se": 0, "dialect": 0, "invalid": 0,
    })
    packed = [[pack(layout.elem_shape, blk) for blk in col] for col in per_col]
    width = Shape.cast(layout.elem_shape).width
    beats = []
    for _m0 in range(0, m, rows):
        for n0 in range(0, n, cols):
            for kb in range(nb):
                word = 0
                for c in range(cols):
                    blk = packed[n0 + c][kb] if n0 + c < n else zero
                    word |= blk << (c * width)
                beats.append(word)
    return beats


def tile_order(m: int, n: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """(row, column) of every GemmCore output in stream order: row tiles, column tiles, then
    row-major inside the tile."""
    order = []
    for m0 in range(0, m, rows):
        for n0 in range(0, n, cols):
            for r in range(m0, min(m0 + rows, m)):
                for c in range(n0, min(n0 + cols, n)):
                    order.append((r, c))
    return order
