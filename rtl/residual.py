"""Hardware residual of the attention-guided decomposition (SPEC §6): R = fp16(fp32(x) − deq).

For one FP16 block x (B lanes) and its quantized block Q(x) (``quantized_block(B, K)``: codes,
SE field, dialect, invalid) this computes, per lane, the FP16 bit pattern of

    R_i = fp16(fp32(x_i) − fp32(deq_i)),   deq_i = ±HU[dialect][code_i & 7] · 2^(SE − 1)

bit for bit as :func:`golden.decompose.residual` (NumPy FP32 subtraction, then an IEEE RNE
cast to FP16). The arithmetic is done exactly, in fixed point, per lane.

**Precondition.** ``quantized`` is the SPEC §2–4 quantization of ``x`` with ``formatbook``
(what :class:`~rtl.quantizer.CodeQuantizer` produces for this block, any dialect chosen by
the selector or a candidate mask): the SE field is S = E_max − 1 (see below) and every code
is sign_i | IDX[dialect][q_i]. The results for other inputs are unspecified.

Notation (all integers; *units* say what one LSB is worth):

* lane i: sign s_i, exponent field e_i (5 bits), fraction f_i (10 bits); effective exponent
  E_i = max(e_i, 1) (5 bits, 1..30) and significand m_i = {e_i ≠ 0, f_i} (11 bits,
  0..2047), so |x_i| = m_i · u_i with the lane unit **u_i = 2^(E_i − 25)** (the ulp of x_i;
  subnormals included, u_i = 2^−24 for e_i ≤ 1).
* S = SE + 16, the stored 5-bit SE field. The preprocessor (:mod:`rtl.preprocess`) sets
  S = E_max − 1 with E_max = max_i E_i, hence SE − 1 = S − 17.
* H_i = HU[dialect][code_i & 7] (4 bits, 0..15), read from one K·8 × 4-bit ROM (initialised
  from ``formatbook.hu``) with B asynchronous read ports.

**Step 1: deq in lane units.** |deq_i| = H_i · 2^(S − 17) = H_i · 2^(S + 8 − E_i) · u_i.
With the lane distance t_i = S + 1 − E_i = E_max − E_i (5 bits, 0..29) this is
**d_i = (H_i · 2^7) << t_i** (in units u_i).

*Bound d_i ≤ 2·m_i (so d_i fits 12 bits, d_i ≤ 4094).* q_i = floor(|x_i| · 2^(2 − SE)) =
floor(m_i · 2^(E_i − S − 7)) ≤ m_i · 2^(E_i − S − 7). IDX picks the index k whose 2·HU_k is
nearest to q_i (SPEC §3); index 0 has HU 0, so |2·H_i − q_i| ≤ |0 − q_i| and H_i ≤ q_i.
Then d_i = H_i · 2^(S + 8 − E_i) ≤ q_i · 2^(S + 8 − E_i) ≤ 2·m_i. A non-zero H_i therefore
has 2^(7 + t_i) ≤ d_i < 2^12, i.e. t_i ≤ 4. The hardware shifts the 11-bit H_i · 2^7 left
by t_i[2:0], keeping 12 bits, when t_i < 8 and sets d_i = 0 otherwise; both drop only bits
of a product that must be 0 (t_i ≥ 5 forces H_i = 0), so d_i is exact for every t_i.

**Step 2: exact difference.** deq_i has the sign of x_i (the code's sign bit is s_i), so
x_i − deq_i = (−1)^s_i · (m_i − d_i) · u_i. **r_i = m_i − d_i** is computed as a 13-bit
two's-complement integer (the width of a 12-bit d_i subtracted from a zero-extended m_i); by
0 ≤ d_i ≤ 2·m_i its value is in −m_i..m_i, so neg_i = r_i < 0 (bit 12) and
**|r_i| ≤ m_i < 2^11** (11 bits). So R_i = (−1)^(s_i ⊕ neg_i) · |r_i| · u_i.

**Step 3: FP16 encoding (no rounding needed).** |r_i| · u_i is an integer of at most 11
bits times 2^(E_i − 25) with E_i ≥ 1: exactly an FP16 number (normal or subnormal), so both
the FP32 subtraction (SPEC §6: "this subtraction is exact") and the RNE cast to FP16 are the
identity on it — the single rounding step of the golden model never rounds, and none is
built. Normalisation: lz = leading zeros of |r_i| in 11 bits (0..11, 11 for 0; held in
5 bits like E_i), shift = min(lz, E_i − 1) (0..11, 5 bits), n = |r_i| << shift (11 bits, no
bit lost since
shift ≤ lz). If n[10] = 1 the result is normal with exponent field E_i − shift (1..30) and
fraction n[9:0]; otherwise (shift = E_i − 1 < lz) it is the subnormal n[9:0] · 2^−24 =
|r_i| · 2^(E_i − 25) with exponent field 0 — FP16 subnormal results come out exactly.
*Overflow cannot occur:* |R_i| ≤ |x_i| ≤ 65504 and the exponent field is at most E_i ≤ 30.

**Signs of zero** (as NumPy gives): r_i = 0 (x_i = deq_i, including x_i = ±0 with H_i = 0)
gives +0.0 (``0x0000``): an FP32 difference of equal values is +0.0 in RNE, and
−0.0 − (−0.0) = +0.0. A non-zero r_i never becomes a zero (no rounding), so −0.0 never
appears; x_i ≠ 0 with H_i = 0 returns x_i unchanged (sign included).

**Invalid blocks [ours]** (``invalid`` = 1: the block held NaN/±Inf, SPEC §2; golden rejects
them, so it has no rule): the residual is the input block unchanged (SPEC §6), so that
re-quantizing it flags the block invalid again.

Logic per lane: one ROM read port, two 5-bit subtractors (E_i − 1, t_i), a 3-bit-amount
shifter into 12 bits, a 13-bit subtractor with a conditional negation, an 11-bit
leading-zero count, a 5-bit minimum, an 11-bit left shifter (4-bit amount), a 5-bit
subtractor and the 16-bit invalid multiplexer. Purely combinational (latency 0); every
operator has equal-width operands, so the Verilog is lint-clean under ``verilator -Wall``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from semdialect.golden.formatbook import DIALECT_LEN, Formatbook
from semdialect.rtl.layouts import CODE_BITS, FP16_BITS, dialect_id, quantized_block
from semdialect.rtl.preprocess import check_block
from semdialect.rtl.selector import resolve_formatbook

__all__ = ["BlockResidual", "block_residual", "fp16_block_layout", "residual_pattern"]

_FRAC_BITS = 10  # FP16 fraction
_EXP_BITS = 5  # FP16 exponent field
_SIG_BITS = _FRAC_BITS + 1  # significand m_i with hidden bit: 11
_INDEX_BITS = CODE_BITS - 1  # magnitude index, code bits 2:0
_HU_BITS = 4  # unsigned HU 0..15
_HU_ALIGN = 7  # d_i = (H_i << 7) << t_i in lane units u_i
_DEQ_BITS = 12  # d_i <= 2·m_i <= 4094
_DIFF_BITS = _DEQ_BITS + 1  # r_i = m_i - d_i, signed


def fp16_block_layout(block: int) -> data.ArrayLayout:
    """B FP16 bit patterns (16·B bits): the shape of ``x`` and of the residual."""
    return data.ArrayLayout(FP16_BITS, block)


def _check_magnitudes(formatbook: Formatbook) -> None:
    """``ValueError`` naming ``formatbook`` unless it has 8 magnitudes per dialect, < 16 HU."""
    hu = formatbook.hu
    if hu.shape[1] != DIALECT_LEN or int(hu.max()) >= 1 << _HU_BITS:
        raise ValueError(f"formatbook: magnitudes must be 8 per dialect, < 16 HU, got {hu}")


def _hu_rom(formatbook: Formatbook) -> Memory:
    """K·8 × 4-bit ROM, word ``dialect·8 + index`` = ``formatbook.hu[dialect, index]``."""
    _check_magnitudes(formatbook)
    hu = formatbook.hu
    return Memory(
        shape=unsigned(_HU_BITS),
        depth=formatbook.size * DIALECT_LEN,
        init=[int(v) for v in hu.reshape(-1)],
    )


def _shift_left(value: Value, amount: Value, width: int) -> Value:
    """``(value << amount)`` truncated to ``width`` bits, as a log-depth mux chain (a plain
    ``<<`` by a signal widens its operand, which ``verilator -Wall`` flags)."""
    value = Cat(value, Const(0, width - len(value))) if len(value) < width else value[:width]
    for index, bit in enumerate(amount):
        step = 1 << index
        shifted = Cat(Const(0, step), value)[:width] if step < width else Const(0, width)
        value = Mux(bit, shifted, value)
    return value


def _lane_residual(
    m: Module, name: str, x: Value, se_field: Value, hu: Value
) -> Value:
    """One lane's 16-bit residual pattern (steps 1–3 of the module docstring).

    Lint note: every arithmetic operator gets operands of equal width. Amaranth emits a
    zero-extended operand at its narrow width (``verilator -Wall`` then reports WIDTHEXPAND),
    so the operands that need extension (``sig``, ``deq``, ``lz``) are driven by
    ``m.If``/``m.Else`` assignments, which keep the declared width (as in
    :mod:`rtl.fp32_add`)."""
    frac = x[:_FRAC_BITS]
    exp = x[_FRAC_BITS : _FRAC_BITS + _EXP_BITS]
    normal = exp.any()

    e_eff = Signal(_EXP_BITS, name=f"{name}_e_eff")  # E_i = max(e_i, 1)
    e_m1 = Signal(_EXP_BITS, name=f"{name}_e_m1")  # E_i - 1 (0..29)
    dist = Signal(_EXP_BITS, name=f"{name}_dist")  # t_i = S + 1 - E_i (0..29)
    sig = Signal(_DIFF_BITS, name=f"{name}_sig")  # m_i (11 bits), zero-extended
    deq = Signal(_DIFF_BITS, name=f"{name}_deq")  # d_i (12 bits), zero-extended; units u_i
    diff = Signal(signed(_DIFF_BITS), name=f"{name}_diff")  # r_i = m_i - d_i
    mag = Signal(_SIG_BITS, name=f"{name}_mag")  # |r_i| <= m_i
    neg = diff[_DIFF_BITS - 1]
    near = ~dist[3:].any()  # t_i < 8 (t_i >= 5 has H_i = 0: d_i = 0, module docstring)
    m.d.comb += [
        e_eff.eq(Mux(normal, exp, 1)),
        e_m1.eq(e_eff - 1),
        dist.eq(se_field - e_m1),
    ]
    with m.If(normal):
        m.d.comb += sig.eq(Cat(frac, 1))
    with m.Else():
        m.d.comb += sig.eq(frac)
    with m.If(near):  # (H_i << 7) << t_i[2:0], 12 bits
        m.d.comb += deq.eq(_shift_left(Cat(Const(0, _HU_ALIGN), hu), dist[:3], _DEQ_BITS))
    m.d.comb += [
        diff.eq(sig - deq),
        mag.eq(Mux(neg, -diff, diff)[:_SIG_BITS]),
    ]
    return residual_pattern(m, name, x, mag, neg, e_eff, e_m1)


def residual_pattern(m: Module, name: str, x: Value, mag: Value, neg: Value,
                     e_eff: Value | None = None, e_m1: Value | None = None) -> Value:
    """Step 3 of the module docstring: one lane's 16-bit residual pattern from |r_i|
    (``mag``, 11 bits, units u_i) and its sign ``neg`` (1: r_i < 0), with x's sign and
    exponent; ``e_eff`` = E_i = max(e_i, 1) and ``e_m1`` = E_i − 1 (5 bits each) when the
    caller has them, else built here. Shared by :func:`block_residual` and the split
    residual's back half (:func:`rtl.residual_split.residual_back`)."""
    exp = x[_FRAC_BITS : _FRAC_BITS + _EXP_BITS]
    sign = x[FP16_BITS - 1]
    if e_eff is None or e_m1 is None:
        e_eff = Signal(_EXP_BITS, name=f"{name}_e_eff")  # E_i = max(e_i, 1)
        e_m1 = Signal(_EXP_BITS, name=f"{name}_e_m1")  # E_i - 1 (0..29)
        m.d.comb += [e_eff.eq(Mux(exp.any(), exp, 1)), e_m1.eq(e_eff - 1)]
    lz = Signal(_EXP_BITS, name=f"{name}_lz")  # leading zeros of |r_i| in 11 bits (0..11)
    shift = Signal(_EXP_BITS, name=f"{name}_shift")  # min(lz, E_i - 1) (0..11)
    norm = Signal(_SIG_BITS, name=f"{name}_norm")  # |r_i| << shift
    exp_out = Signal(_EXP_BITS, name=f"{name}_exp")  # result exponent field
    m.d.comb += lz.eq(_SIG_BITS)
    for bit in range(_SIG_BITS):  # later (more significant) bits win
        with m.If(mag[bit]):
            m.d.comb += lz.eq(_SIG_BITS - 1 - bit)
    m.d.comb += [
        shift.eq(Mux(lz > e_m1, e_m1, lz)),
        norm.eq(_shift_left(mag, shift[:4], _SIG_BITS)),
        exp_out.eq(Mux(norm[_SIG_BITS - 1], e_eff - shift, 0)),
    ]
    sign_out = (sign ^ neg) & mag.any()  # an exact zero is +0.0
    return Cat(norm[:_FRAC_BITS], exp_out, sign_out)


def block_residual(
    m: Module,
    x: data.View,
    quantized: data.View,
    formatbook: Formatbook | str,
    *,
    name: str = "residual",
) -> data.View:
    """Build the combinational residual of one block in ``m``; return its B FP16 patterns.

    Parameters
    ----------
    m : Module
        The caller's module (receives one ROM submodule ``<name>_hu_rom`` and comb logic;
        call this outside any ``m.If``/``m.Switch``: the lanes use ``m.If`` internally).
    x : data.View
        ``fp16_block_layout(B)``: the block's FP16 bit patterns (B × 16 bits).
    quantized : data.View
        ``quantized_block(B, K)`` of ``x`` (codes B × 4, se 5 = SE + 16, dialect
        id_bits(K), invalid 1); see the module docstring's precondition.
    formatbook : Formatbook | str
        The K dialects ``quantized`` was made with.
    name : str
        Prefix of the ROM submodule and of the lane signals (unique within ``m``).

    Returns
    -------
    data.View
        A ``fp16_block_layout(B)`` signal: lane i = fp16(fp32(x_i) − deq_i) (the input block
        itself when ``invalid``).
    """
    book = resolve_formatbook(formatbook)
    block = x.shape().length
    codes = quantized.codes.shape().length
    if codes != block:
        raise ValueError(f"quantized: {codes} codes for a block of {block}")
    rom = _hu_rom(book)
    m.submodules[f"{name}_hu_rom"] = rom
    out = Signal(fp16_block_layout(block), name=name)
    for i in range(block):
        port = rom.read_port(domain="comb")
        m.d.comb += port.addr.eq(Cat(quantized.codes[i][:_INDEX_BITS], dialect_id(quantized)))
        lane = _lane_residual(m, f"{name}{i}", x[i], quantized.se, port.data)
        m.d.comb += out[i].eq(Mux(quantized.invalid, x[i], lane))
    return out


class BlockResidual(wiring.Component):
    """Combinational residual of one block (see the module docstring): **latency 0**.

    Parameters
    ----------
    block : int
        B: 16, 32 or 64.
    formatbook : Formatbook | str
        The K dialects.

    Members
    -------
    x : ``In(fp16_block_layout(B))``
        The block's FP16 bit patterns (B × 16).
    quantized : ``In(quantized_block(B, K))``
        Q(x): codes (B × 4), se (5, SE + 16), dialect (id_bits(K)), invalid (1).
    residual : ``Out(fp16_block_layout(B))``
        B FP16 patterns fp16(fp32(x_i) − deq_i); ``x`` itself when ``invalid``.
    """

    def __init__(self, block: int, formatbook: Formatbook | str) -> None:
        self._block = check_block(block)
        self._book = resolve_formatbook(formatbook)
        _check_magnitudes(self._book)
        super().__init__({
            "x": In(fp16_block_layout(self._block)),
            "quantized": In(quantized_block(self._block, self._book.size)),
            "residual": Out(fp16_block_layout(self._block)),
        })

    @property
    def block(self) -> int:
        return self._block

    @property
    def formatbook(self) -> Formatbook:
        return self._book

    @property
    def latency(self) -> int:
        """Combinational: 0."""
        return 0

    def elaborate(self, platform: object) -> Module:
        m = Module()
        result = block_residual(m, self.x, self.quantized, self._book, name="lane")
        m.d.comb += self.residual.eq(result)
        return m
