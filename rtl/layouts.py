"""Stream payload layouts shared by the RTL components (bit widths in the comments).

Every component imports its layouts from here, so the frontend (preprocessor → selector →
quantizer) and the backend (decoder → PE → array) agree on one definition.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Const, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from semdialect.golden.formatbook import index_bits

#: FP16 element (IEEE binary16 bit pattern)
FP16_BITS = 16
#: element code: bit 3 sign, bits 2:0 magnitude index (SPEC §1)
CODE_BITS = 4
#: stored shared exponent field SE + 16 in 0..29 (SPEC §2)
SE_BITS = 5
#: preprocessed magnitude q in quarter units, 0..31 (SPEC §2)
Q_BITS = 5
#: signed decoded magnitude ±HU, -15..15 (SPEC §1)
HU_BITS = 5
#: FP32 bit pattern
FP32_BITS = 32


def id_bits(n_dialects: int) -> int:
    """Width of a dialect id for a K-dialect formatbook: ceil(log2 K), 0 bits at K = 1.

    The golden definition (:attr:`semdialect.golden.formatbook.Formatbook.id_bits`).
    """
    if n_dialects < 1:
        raise ValueError(f"formatbook: needs at least one dialect, got K={n_dialects}")
    return index_bits(n_dialects)


def dialect_field(n_dialects: int) -> dict[str, int]:
    """The ``dialect`` member of a payload layout: ``{"dialect": id_bits(K)}``, or no member
    at K = 1. A single-dialect book stores no id, and a 0-bit field would be emitted as an
    ill-formed ``[-1:0]`` Verilog vector; :func:`dialect_id` reads either kind of payload."""
    bits = id_bits(n_dialects)
    return {"dialect": bits} if bits else {}


def dialect_id_eq(view: data.View, value: Value) -> list[Any]:
    """``[view.dialect.eq(value)]``, or no assignment when the layout has no ``dialect``
    field (K = 1, :func:`dialect_field`)."""
    return [view.dialect.eq(value)] if "dialect" in view.shape().members else []


def dialect_id(view: data.View) -> Value:
    """A payload's dialect id (``id_bits(K)`` bits): its ``dialect`` field, or a 0-bit
    constant when the layout has none (K = 1, :func:`dialect_field`)."""
    if "dialect" in view.shape().members:
        return view.dialect
    return Const(0, 0)


def fp16_block(block: int) -> data.StructLayout:
    """One activation block as it enters the chip: ``x`` = B FP16 lanes (16·B bits)."""
    return data.StructLayout({"x": data.ArrayLayout(FP16_BITS, block)})


def preprocessed_block(block: int) -> data.StructLayout:
    """Preprocessor output: ``se`` (5, SE + 16), ``q`` (B × 5), ``sign`` (B × 1),
    ``invalid`` (1: the block had a NaN/Inf; SPEC §2)."""
    return data.StructLayout({
        "se": SE_BITS,
        "q": data.ArrayLayout(Q_BITS, block),
        "sign": data.ArrayLayout(1, block),
        "invalid": 1,
    })


def quantized_block(block: int, n_dialects: int) -> data.StructLayout:
    """A quantized block (activations after the quantizer, or pre-quantized weights):
    ``codes`` (B × 4), ``se`` (5, SE + 16), ``dialect`` (id_bits(K); absent at K = 1,
    :func:`dialect_field`), ``invalid`` (1)."""
    return data.StructLayout({
        "codes": data.ArrayLayout(CODE_BITS, block),
        "se": SE_BITS,
        **dialect_field(n_dialects),
        "invalid": 1,
    })


# -- frontend (preprocessor → selector → quantizer) stream payloads ------------------------------


def masked_fp16_block(block: int, n_dialects: int) -> data.StructLayout:
    """Block quantizer input: ``x`` = B FP16 lanes (16·B bits, same offsets as
    :func:`fp16_block`) and ``mask`` (K bits, bit f = dialect f is a candidate; all ones = the
    whole formatbook, a SeDA sub-formatbook otherwise; SPEC §7)."""
    return data.StructLayout({
        "x": data.ArrayLayout(FP16_BITS, block),
        "mask": n_dialects,
    })


def masked_preprocessed_block(block: int, n_dialects: int) -> data.StructLayout:
    """Selector input: ``block`` (:func:`preprocessed_block`) and ``mask`` (K bits)."""
    return data.StructLayout({
        "block": preprocessed_block(block),
        "mask": n_dialects,
    })


def selected_block(block: int, n_dialects: int, cost_bits: int) -> data.StructLayout:
    """Selector output: ``block`` (:func:`preprocessed_block`, passed along), ``dialect``
    (id_bits(K), the chosen id; absent at K = 1) and ``cost`` (``cost_bits``, the chosen
    dialect's LUT cost Σ ERR[dialect][q_i]; 0 in two-stage mode)."""
    return data.StructLayout({
        "block": preprocessed_block(block),
        **dialect_field(n_dialects),
        "cost": cost_bits,
    })


def dialect_block(block: int, n_dialects: int) -> data.StructLayout:
    """Code quantizer input: ``block`` (:func:`preprocessed_block`) and ``dialect``
    (id_bits(K); absent at K = 1)."""
    return data.StructLayout({
        "block": preprocessed_block(block),
        **dialect_field(n_dialects),
    })


# -- backend (decoder → PE → MAC array → GEMM core) stream payloads ------------------------------

#: OCP MX E8M0 shared scale byte (biased exponent, bias 127)
E8M0_BITS = 8


def mx_block(block: int, element_bits: int) -> data.StructLayout:
    """A quantized OCP MX block (SPEC §8): ``codes`` (B × ``element_bits``: 4 for MXFP4 E2M1
    sign-magnitude codes, 8 for MXINT8 two's complement int8) and ``scale`` (8, E8M0 byte)."""
    return data.StructLayout({
        "codes": data.ArrayLayout(element_bits, block),
        "scale": E8M0_BITS,
    })


def decoded_block(block: int, element_bits: int, exp_bits: int) -> data.StructLayout:
    """A block as integers (the PE's operand): ``elems`` (B × signed(``element_bits``): ±HU for
    dialect and E2M1 elements, the int8 for MXINT8), ``exp`` (unsigned ``exp_bits``: the
    block's biased exponent field — SE + 16 or the E8M0 byte — so that the block's value is
    Σ elems_i · 2^(exp − offset) with the element kind's offset,
    :attr:`rtl.block_decoder.ElementKind.exp_offset`) and ``invalid`` (1)."""
    return data.StructLayout({
        "elems": data.ArrayLayout(signed(element_bits), block),
        "exp": exp_bits,
        "invalid": 1,
    })


def pe_operands(operand: data.Layout) -> data.StructLayout:
    """PE input: one block pair ``a`` (activation) and ``w`` (weight), both ``operand``, and
    ``last`` (1: the last k-block of this output's accumulation)."""
    return data.StructLayout({"a": operand, "w": operand, "last": 1})


#: An FP32 result: ``value`` (32, binary32 bit pattern) and ``invalid`` (1: an operand block
#: of the accumulation was invalid, SPEC §2).
FP32_RESULT = data.StructLayout({"value": FP32_BITS, "invalid": 1})


def array_operands(operand: data.Layout, rows: int, cols: int) -> data.StructLayout:
    """MAC array input for one k-step: ``a`` (rows × ``operand``: one activation block per PE
    row), ``w`` (cols × ``operand``: one weight block per PE column), ``last`` (1)."""
    return data.StructLayout({
        "a": data.ArrayLayout(operand, rows),
        "w": data.ArrayLayout(operand, cols),
        "last": 1,
    })


def tile_stream(rows: int, cols: int, *, results: bool = True,
                extent: bool = False) -> wiring.Signature:
    """A tile of FP32 results with one stream handshake (``valid``, ``ready``): ``results``,
    one :data:`FP32_RESULT` member per position (``results[r][c]``, r < ``rows``, c <
    ``cols``; left out with ``results=False``). With ``extent`` (the tile drain's input) also
    the tile's valid extent ``rows`` (range(rows + 1), 1..rows) and ``cols`` (range(cols + 1),
    1..cols).

    A member per result rather than one payload: Amaranth emits no signal (port) wider than
    2^16 bits (a 32 × 160 tile is 168 960), and results that stay 33-bit words are copied
    word by word in a Verilator model instead of being packed into one wide vector."""
    members: dict[str, wiring.Member] = {"valid": Out(1), "ready": In(1)}
    if results:
        members["results"] = Out(FP32_RESULT).array(rows, cols)
    if extent:
        members.update(rows=Out(range(rows + 1)), cols=Out(range(cols + 1)))
    return wiring.Signature(members)


#: Tile drain / GEMM output: ``result`` (:data:`FP32_RESULT`) and ``last`` (1: the tile's last
#: element).
DRAIN_OUTPUT = data.StructLayout({"result": FP32_RESULT, "last": 1})


def gemm_command(m_bits: int, n_bits: int, kb_bits: int) -> data.StructLayout:
    """GEMM core command: ``m`` (M rows of X and Y), ``n`` (N columns of W and Y), ``kb``
    (K / B k-blocks), unsigned fields of the given widths, each at least 1; then ``op`` (1:
    :data:`OP_GEMM` or :data:`OP_QUANTIZE` — quantize M rows of KB blocks and send them out,
    ``n`` ignored) and ``add`` (1: a GEMM's outputs are added to the addend stream, the second
    pass of SPEC §6 decomposition)."""
    return data.StructLayout({"m": m_bits, "n": n_bits, "kb": kb_bits, "op": 1, "add": 1})


#: :func:`gemm_command` ``op`` values
OP_GEMM = 0
OP_QUANTIZE = 1


def drain_beat(width: int) -> data.StructLayout:
    """One beat of the tile drain / GEMM output: ``lanes`` (``width`` × :data:`FP32_RESULT`),
    ``mask`` (``width``: lane i holds an output of the tile) and ``last`` (1: the tile's last
    beat at the drain; the GEMM's last beat at the core's ``y``)."""
    return data.StructLayout({
        "lanes": data.ArrayLayout(FP32_RESULT, width),
        "mask": width,
        "last": 1,
    })


def quantized_beat(block: int, n_dialects: int, lanes: int) -> data.StructLayout:
    """A quantize command's output beat: ``lanes`` quantized blocks (:func:`quantized_block`)
    in the input beat's order and ``last`` (1: the command's final beat)."""
    return data.StructLayout({
        "lanes": data.ArrayLayout(quantized_block(block, n_dialects), lanes),
        "last": 1,
    })


def residual_beat(block: int, lanes: int) -> data.StructLayout:
    """A residual beat (SPEC §6): ``lanes`` FP16 blocks (B × 16-bit patterns each) and ``mask``
    (``lanes``: lane i is the residual of a salient row's block)."""
    return data.StructLayout({
        "lanes": data.ArrayLayout(data.ArrayLayout(FP16_BITS, block), lanes),
        "mask": lanes,
    })


#: GEMM core output: ``value`` (32, binary32 Y element), ``invalid`` (1: an X block of its row
#: held NaN/Inf, or a weight block had ``invalid`` set) and ``last`` (1: the GEMM's final
#: output).
GEMM_OUTPUT = data.StructLayout({"value": FP32_BITS, "invalid": 1, "last": 1})


# -- activation decomposition (SPEC §6): the block quantizer with ``residual=True`` -----------


def salient_masked_fp16_block(block: int, n_dialects: int) -> data.StructLayout:
    """Block quantizer input with the residual path: the fields of
    :func:`masked_fp16_block` at the same offsets — ``x`` (B × 16, FP16 bit patterns),
    ``mask`` (K) — then ``salient`` (1: the block belongs to a salient row, SPEC §6; passed
    through unchanged)."""
    return data.StructLayout({**masked_fp16_block(block, n_dialects).members, "salient": 1})


def quantized_residual_block(block: int, n_dialects: int) -> data.StructLayout:
    """Block quantizer output with the residual path: the fields of :func:`quantized_block`
    at the same offsets — ``codes`` (B × 4), ``se`` (5, SE + 16), ``dialect`` (id_bits(K);
    absent at K = 1), ``invalid`` (1) — then ``residual`` (B × 16: FP16 bit patterns of
    fp16(fp32(x_i) − deq_i), SPEC §6; the input block itself when ``invalid``) and
    ``salient`` (1, the input's flag)."""
    return data.StructLayout({
        **quantized_block(block, n_dialects).members,
        "residual": data.ArrayLayout(FP16_BITS, block),
        "salient": 1,
    })


# -- NVFP4 (SPEC §8 NVFP4 hardware contract [ours]) ----------------------------------------------

#: FP8 E4M3 (fn) block-scale byte of NVFP4 (bit 7 sign, always 0 for a golden scale)
E4M3_BITS = 8


def nvfp4_block(block: int = 16) -> data.StructLayout:
    """A quantized NVFP4 block: ``codes`` (B × 4, E2M1 sign-magnitude: bit 3 sign, bits 2:0 the
    E2M1 magnitude index) and ``scale`` (8, the E4M3 block-scale byte). The same bit layout as
    :func:`mx_block` ``(B, 4)``, with an E4M3 instead of an E8M0 scale; the FP32 tensor scale
    is not part of a block (a per-tensor register)."""
    return data.StructLayout({
        "codes": data.ArrayLayout(CODE_BITS, block),
        "scale": E4M3_BITS,
    })
