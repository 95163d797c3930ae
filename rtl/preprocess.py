"""Block preprocessor (SPEC §2): FP16 lanes → shared exponent, quarter-unit magnitudes, signs.

Derivation (all from the FP16 fields; no arithmetic on values). Lane i has sign bit s_i,
exponent field e_i (5 bits) and fraction f_i (10 bits). With the *effective exponent*
E_i = max(e_i, 1) and the significand m_i = {e_i ≠ 0, f_i} (11 bits), every finite value is
|x_i| = m_i · 2^(E_i − 25), subnormals included.

* M = max |x_i| has the largest exponent field, e_max = max e_i (comparing 5-bit fields
  instead of 15-bit magnitudes). For e_max ≥ 1, floor(log2 M) = e_max − 15, so
  SE = max(e_max − 17, −16); for e_max = 0 (M subnormal or 0), floor(log2 M) ≤ −15 and
  SE = −16. Both cases: **SE field = SE + 16 = max(e_max, 1) − 1 = E_max − 1** ∈ [0, 29]
  (the clamp at −16 is exactly the subnormal/zero case).
* q_i = floor(|x_i| · 2^(2 − SE)) = floor(m_i · 2^(E_i − 25 + 2 − (E_max − 17)))
  = floor(m_i · 2^(E_i − E_max − 6)) = **(m_i >> 6) >> (E_max − E_i)**: the top 5 bits of the
  significand shifted right by the exponent distance (≥ 5 gives 0). q_i ≤ 31.
* sign_i = s_i (−0.0 keeps sign 1, SPEC §2).
* invalid = some e_i = 31 (NaN or ±Inf; SPEC §2). Then ``se``, ``q`` and ``sign`` are
  unspecified (downstream forces codes 0, SE field 0, dialect 0).
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.golden.blocks import BLOCK_SIZES
from semdialect.rtl.layouts import SE_BITS, fp16_block, preprocessed_block
from semdialect.rtl.trees import tree_max

__all__ = ["BlockPreprocessor", "check_block"]

_FRAC_BITS = 10
_EXP_BITS = 5
_Q_SHIFT = 6  # q = significand >> (6 + E_max - E_i)
_SIGN_BIT = 15


def check_block(block: int) -> int:
    """Validate the block size B (SPEC §2: 16, 32 or 64); ``ValueError`` naming ``block``."""
    if isinstance(block, bool):
        raise ValueError(f"block: expected an integer, got {block!r}")
    try:
        block = operator.index(block)
    except TypeError:
        raise ValueError(f"block: expected an integer, got {block!r}") from None
    if block not in BLOCK_SIZES:
        raise ValueError(f"block: must be one of {BLOCK_SIZES}, got {block}")
    return block


class BlockPreprocessor(wiring.Component):
    """SPEC §2 preprocessing of one FP16 block per cycle (combinational stream stage).

    Latency 0 (``o.payload`` is a combinational function of ``i.payload``), initiation
    interval 1 block/cycle; ``o.valid`` is ``i.valid`` and ``i.ready`` is ``o.ready``. Logic:
    a 5-bit max tree over the B exponent fields (log2 B levels), one 5-bit subtractor and one
    5-bit barrel shifter per lane, a B-input AND/OR for ``invalid``.

    Parameters
    ----------
    block : int
        B, elements per block: 16, 32 or 64.

    Members
    -------
    i : ``In(stream.Signature(fp16_block(B)))``
        ``x``: B FP16 bit patterns (16·B bits).
    o : ``Out(stream.Signature(preprocessed_block(B)))``
        ``se`` (5, SE + 16), ``q`` (B × 5, quarter units), ``sign`` (B × 1), ``invalid`` (1).
    """

    def __init__(self, block: int) -> None:
        self._block = check_block(block)
        super().__init__({
            "i": In(stream.Signature(fp16_block(self._block))),
            "o": Out(stream.Signature(preprocessed_block(self._block))),
        })

    @property
    def block(self) -> int:
        """B, elements per block."""
        return self._block

    @property
    def latency(self) -> int:
        """Cycles from input to output: 0 (combinational)."""
        return 0

    def elaborate(self, platform: object) -> Module:
        m = Module()
        lanes = self.i.payload.x
        out = self.o.payload

        exps = [lanes[i][_FRAC_BITS : _FRAC_BITS + _EXP_BITS] for i in range(self._block)]
        e_max = Signal(_EXP_BITS)
        e_max_eff = Signal(_EXP_BITS)  # E_max = max(e_max, 1)
        m.d.comb += [
            e_max.eq(tree_max(exps)),
            e_max_eff.eq(Mux(e_max.any(), e_max, 1)),
            out.se.eq((e_max_eff - 1)[:SE_BITS]),
            out.invalid.eq(Cat(e.all() for e in exps).any()),
        ]
        for i in range(self._block):
            x = lanes[i]
            e = exps[i]
            normal = e.any()
            distance = Signal(_EXP_BITS, name=f"distance{i}")  # E_max - E_i, 0..29
            m.d.comb += [
                distance.eq(e_max_eff - Mux(normal, e, 1)),
                # top 5 bits of the 11-bit significand {normal, fraction}
                out.q[i].eq(Cat(x[_Q_SHIFT:_FRAC_BITS], normal) >> distance),
                out.sign[i].eq(x[_SIGN_BIT]),
            ]

        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready),
        ]
        return m

