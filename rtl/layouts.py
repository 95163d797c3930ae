"""Stream payload layouts shared by the RTL components (bit widths in the comments).

Every component imports its layouts from here, so the frontend (preprocessor → selector →
quantizer) and the backend (decoder → PE → array) agree on one definition.
"""

from __future__ import annotations

import math

from amaranth.lib import data

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
    """Width of a dialect id for a K-dialect formatbook (at least 1 bit)."""
    if n_dialects < 1:
        raise ValueError(f"formatbook: needs at least one dialect, got K={n_dialects}")
    return max(1, math.ceil(math.log2(n_dialects)))


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
    ``codes`` (B × 4), ``se`` (5, SE + 16), ``dialect`` (id_bits(K)), ``invalid`` (1)."""
    return data.StructLayout({
        "codes": data.ArrayLayout(CODE_BITS, block),
        "se": SE_BITS,
        "dialect": id_bits(n_dialects),
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
    (id_bits(K), the chosen id) and ``cost`` (``cost_bits``, the chosen dialect's LUT cost
    Σ ERR[dialect][q_i]; 0 in two-stage mode)."""
    return data.StructLayout({
        "block": preprocessed_block(block),
        "dialect": id_bits(n_dialects),
        "cost": cost_bits,
    })


def dialect_block(block: int, n_dialects: int) -> data.StructLayout:
    """Code quantizer input: ``block`` (:func:`preprocessed_block`) and ``dialect``
    (id_bits(K))."""
    return data.StructLayout({
        "block": preprocessed_block(block),
        "dialect": id_bits(n_dialects),
    })
