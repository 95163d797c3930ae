"""The SPEC §6 residual split around the code quantizer's register (pipelined frontend).

:func:`rtl.residual.block_residual` computes R = fp16(fp32(x) − deq) combinationally from the
quantizer's *registered* output: at 180 nm that is 5.6 ns from the register to the output
port (the HU ROM read, the shift of H_i, the 13-bit difference, its magnitude, the
leading-zero count and the normalising shift in series). A pipelined
:class:`~rtl.block_quantizer.BlockQuantizer` (``selector_stages`` ≥ 1) computes the same
value in two halves around the quantizer's existing register, adding no latency:

* :func:`residual_front`, in the cycle the quantizer loads (from the selector's output
  register and the carried x): per lane H_i = HU[f][IDX[f][q_i]] read from one K·32 × 4 ROM
  addressed by {dialect f, q_i} (the magnitude the code quantizer's IDX read selects, so no
  code is needed), t_i, d_i, the difference r_i = m_i − d_i and its magnitude |r_i| with
  neg_i = r_i < 0 (|r_i| taken as d_i − m_i or m_i − d_i, both computed in parallel). These
  12 bits per lane are registered beside the quantizer's output.
* :func:`residual_back`, after the register: the leading-zero count, the normalising shift,
  the exponent, the sign and the invalid multiplexer, exactly as
  :func:`rtl.residual.block_residual` steps 2–3.

The notation, the bounds and the proof of exactness are those of :mod:`rtl.residual`; both
halves are that module's lane formulas cut between |r_i| and the normalisation, so the result
is the same bit for bit (precondition included: x, the SE field S = E_max − 1 and q_i are
those of the preprocessed block, f the chosen dialect). For an invalid block the result is x
(the front's values are don't-cares).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from semdialect.golden.formatbook import Formatbook
from semdialect.golden.luts import Q_LEVELS, build_luts
from semdialect.rtl.residual import (
    _DEQ_BITS,
    _DIFF_BITS,
    _EXP_BITS,
    _FRAC_BITS,
    _HU_ALIGN,
    _HU_BITS,
    _SIG_BITS,
    _check_magnitudes,
    _shift_left,
    fp16_block_layout,
    residual_pattern,
)
from semdialect.rtl.selector import resolve_formatbook

__all__ = ["front_layout", "residual_back", "residual_front"]


def front_layout(block: int) -> data.ArrayLayout:
    """Per lane ``mag`` (11 bits, |r_i|) and ``neg`` (1, r_i < 0): what the front hands to
    the back through the quantizer's register (12·B bits)."""
    return data.ArrayLayout(data.StructLayout({"mag": _SIG_BITS, "neg": 1}), block)


def _magnitude_rom(formatbook: Formatbook) -> Memory:
    """K·32 × 4-bit ROM, word ``dialect·32 + q`` = HU[dialect][IDX[dialect][q]]."""
    _check_magnitudes(formatbook)
    hu = formatbook.hu
    idx = build_luts(formatbook).idx
    return Memory(
        shape=unsigned(_HU_BITS),
        depth=formatbook.size * Q_LEVELS,
        init=[int(hu[f, idx[f, q]]) for f in range(formatbook.size) for q in range(Q_LEVELS)],
    )


def _lane_front(m: Module, name: str, x: Value, se_field: Value, hu: Value) -> Value:
    """One lane's {|r_i|, neg_i} (step 1 and the difference of step 2, see
    :func:`rtl.residual._lane_residual`; equal-width operands for ``verilator -Wall``)."""
    frac = x[:_FRAC_BITS]
    exp = x[_FRAC_BITS : _FRAC_BITS + _EXP_BITS]
    normal = exp.any()
    e_m1 = Signal(_EXP_BITS, name=f"{name}_e_m1")  # E_i - 1 (0..29)
    dist = Signal(_EXP_BITS, name=f"{name}_dist")  # t_i = S + 1 - E_i (0..29)
    sig = Signal(_DIFF_BITS, name=f"{name}_sig")  # m_i (11 bits), zero-extended
    deq = Signal(_DIFF_BITS, name=f"{name}_deq")  # d_i (12 bits), zero-extended; units u_i
    diff = Signal(_DIFF_BITS, name=f"{name}_diff")  # r_i = m_i - d_i (two's complement)
    back = Signal(_DIFF_BITS, name=f"{name}_back")  # d_i - m_i
    near = ~dist[3:].any()  # t_i < 8 (t_i >= 5 has H_i = 0: d_i = 0)
    m.d.comb += [
        e_m1.eq(Mux(normal, exp, 1) - 1),
        dist.eq(se_field - e_m1),
    ]
    with m.If(normal):
        m.d.comb += sig.eq(Cat(frac, 1))
    with m.Else():
        m.d.comb += sig.eq(frac)
    with m.If(near):  # (H_i << 7) << t_i[2:0], 12 bits
        m.d.comb += deq.eq(_shift_left(Cat(Const(0, _HU_ALIGN), hu), dist[:3], _DEQ_BITS))
    neg = diff[_DIFF_BITS - 1]
    m.d.comb += [
        diff.eq(sig - deq),
        back.eq(deq - sig),
    ]
    return Cat(Mux(neg, back, diff)[:_SIG_BITS], neg)


def residual_front(
    m: Module,
    x: data.View,
    se_field: Value,
    q: data.View,
    dialect: Value,
    formatbook: Formatbook | str,
    *,
    name: str = "residual_front",
) -> data.View:
    """Build the front half in ``m`` (one ROM submodule ``<name>_rom``, comb logic; call
    outside any ``m.If``); return a ``front_layout(B)`` value to register.

    ``x``: the block's FP16 patterns (``fp16_block_layout(B)``); ``se_field``: its SE field
    (5 bits, S = E_max − 1); ``q``: its quarter-unit magnitudes (B × 5); ``dialect``: the
    chosen dialect id (``id_bits(K)`` bits, 0 bits when K = 1)."""
    book = resolve_formatbook(formatbook)
    block = x.shape().length
    rom = _magnitude_rom(book)
    m.submodules[f"{name}_rom"] = rom
    out = Signal(front_layout(block), name=name)
    for i in range(block):
        port = rom.read_port(domain="comb")
        m.d.comb += port.addr.eq(Cat(q[i], dialect))
        m.d.comb += Value.cast(out[i]).eq(_lane_front(m, f"{name}{i}", x[i], se_field,
                                                      port.data))
    return out


def residual_back(
    m: Module,
    x: data.View,
    front: data.View,
    invalid: Value,
    *,
    name: str = "residual",
) -> data.View:
    """Build the back half in ``m`` from the *registered* front (``front_layout(B)``), the
    carried x and the block's ``invalid`` flag; return the B FP16 residual patterns (x itself
    when ``invalid``)."""
    block = x.shape().length
    out = Signal(fp16_block_layout(block), name=name)
    for i in range(block):
        lane = residual_pattern(m, f"{name}{i}", x[i], front[i].mag, front[i].neg)
        m.d.comb += out[i].eq(Mux(invalid, x[i], lane))
    return out
