"""The GEMM core's exact cycle counts without stalls (pure Python; the cycle model imports it).

:class:`rtl.gemm_core.GemmCore` runs Y (M×N) = X (M×K) · W (K×N) on a ``rows × cols`` array;
KB = K / B. Tiles: T_m = ⌈M/rows⌉ row tiles (rows R_t = min(rows, M − t·rows)), T_n =
⌈N/cols⌉ column tiles (columns C_j = min(cols, N − j·cols)). The frontend has L = ``lanes``
quantizer lanes fed one beat (one k-block of L consecutive rows) every C_sel cycles (C_sel =
K_book / formats per cycle for ``lut``, 1 for ``two-stage``), so row tile t takes
Q_t = ⌈R_t/L⌉ · KB · C_sel cycles to enter. The drain emits D = ``drain_width`` outputs per
beat: a beat covers g = max(1, D/cols) tile rows × c = min(D, cols) tile columns, so tile
(t, j) leaves in b_{t,j} = ⌈R_t/g⌉ · ⌈C_j/c⌉ beats.

**Pipeline** (``[pipeline]`` of the configuration, :class:`rtl.timing.Pipeline`): with
d = ``acc_stages`` every PE interleaves d accumulations (C-slow), so a *tile* is rows × T
outputs, T = cols·d (in everything above and below, "cols" of a tile means T: T_n = ⌈N/T⌉,
C_j ≤ T, g = max(1, D/T), c = min(D, T)), and the array spends S = KB·d cycles on it (one
k-step of one virtual column group per cycle). L = ``array_latency`` = decoder + product +
scale + accumulator stages (3 unpipelined), E_q = ``quantizer_extra`` = 2 +
``selector_stages`` and E_y = ``output_latency`` = ``addend_stages`` (the output adder).
``Pipeline()`` (d = 1, L = 3, E_q = 2, E_y = 0) is the design before pipelining, with exactly
its cycle counts. "Without stalls" means every input always
valid and every output always ready. Cycle 0 is the cycle the command is accepted; ``cycles``
counts the cycles from it through the cycle the last output is accepted, both included (a
back-to-back command is accepted in cycle ``cycles``: it is also the command period).

Events of a GEMM command (cycle numbers), derived from the RTL's handshakes in
``rtl/gemm_core.py``:

* **A_t** — first activation beat of row tile t accepted by the frontend. Bank t mod 2 must be
  free and the previous row tile fully accepted:
  A_0 = 1, A_1 = A_0 + Q_0, A_t = max(A_{t−1} + Q_{t−1}, X_{t−2} + 1) for t ≥ 2, where X_t is
  the capture cycle of row tile t's last column tile (its bank is released then).
* **F_t** = A_t + Q_t + E_q + 1 — bank t is full: last beat accepted at A_t + Q_t − C_sel,
  leaves the quantizers C_sel + E_q cycles later, is written, and the full flag is a register.
* **I_t** — first k-step of row tile t issued to the array: I_0 = F_0,
  I_t = max(F_t, X_{t−1} + 1) (a row tile starts only after the previous one's last capture).
* **Captures** (tile results copied from the PE accumulators into the drain):
  first column tile  X_{t,0} = max(I_t + S + L − 1, X_{t−1} + b_{t−1,T_n−1}) (the array
  latency L after the tile's last beat at I_t + S − 1; the drain takes a new tile in the
  cycle its previous tile's last beat leaves; for t = 0 only the first term), and then,
  issuing one beat per cycle without a gap, X_{t,j} = X_{t,j−1} + max(S, b_{t,j−1})
  (compute-bound: S cycles per tile; drain-bound: b beats per tile, the whole array
  stalled meanwhile). So X_t = X_{t,T_n−1} = X_{t,0} + (T_n − 1) · max(S, b(R_t, T)).
* The drain emits tile (t, j) in cycles X_{t,j} + 1 … X_{t,j} + b_{t,j}.
* Every drain beat passes the output adder (``addend_stages`` = E_y registers, with or
  without ``add``) and is on ``y`` E_y cycles after it left the drain.

**cycles = X_{T_m−1} + b_{T_m−1,T_n−1} + E_y + 1.** A GEMM with an addend (decomposition's
second pass: each output beat is added to a beat read back) takes the same cycles.

A **quantize command** (M rows of KB blocks through the frontend, the quantized blocks out:
a run-time second operand's Wᵀ, M = N) accepts ⌈M/L⌉·KB beats, one every C_sel cycles from
cycle 1, each leaving C_sel + E_q cycles after it was accepted:
**cycles = ⌈M/L⌉ · KB · C_sel + E_q + 2** (+ 4 unpipelined).

Example (steady state, large N): per column tile max(KB·d, b) cycles; the frontend's
⌈rows/L⌉·KB·C_sel cycles per row tile overlap the previous row tile's compute.
"""

from __future__ import annotations

from math import ceil

from semdialect.config import Config, check_drain_width, check_lanes, drain_beat_shape
from semdialect.rtl.timing import Pipeline

__all__ = ["Pipeline", "drain_beats", "gemm_cycles", "gemm_cycles_raw", "quantize_cycles",
           "quantize_cycles_raw"]

#: max-plus "minus infinity" (no path) in the row-tile transition matrix
_NONE = None

_Matrix = tuple[tuple[int | None, ...], ...]


def _mp_mul(a: _Matrix, b: _Matrix) -> _Matrix:
    """Max-plus product: (a ⊗ b)[i][j] = max_k a[i][k] + b[k][j] (None = −∞)."""
    out = []
    for row in a:
        new = []
        for j in range(len(b[0])):
            terms = [x + b[k][j] for k, x in enumerate(row)
                     if x is not _NONE and b[k][j] is not _NONE]
            new.append(max(terms) if terms else _NONE)
        out.append(tuple(new))
    return tuple(out)


def _mp_power_apply(a: _Matrix, steps: int, vec: tuple[int, ...]) -> tuple[int, ...]:
    """a^steps ⊗ vec in max-plus algebra by repeated squaring (O(log steps) products)."""
    col: _Matrix = tuple((v,) for v in vec)
    while steps:
        if steps & 1:
            col = _mp_mul(a, col)
        steps >>= 1
        if steps:
            a = _mp_mul(a, a)
    return tuple(int(c[0]) for c in col)  # every entry reachable: never −∞


def _check_positive(*pairs: tuple[str, object]) -> None:
    for name, val in pairs:
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name}: must be a positive integer, got {val!r}")


def _check_array(rows: int, cols: int, lanes: int, drain_width: int, d: int = 1) -> None:
    _check_positive(("rows", rows), ("cols", cols))
    check_lanes(lanes, rows)
    check_drain_width(drain_width, rows, cols, d)


def _pipeline(pipeline: Pipeline | None) -> Pipeline:
    if pipeline is None:
        return Pipeline()
    if not isinstance(pipeline, Pipeline):
        raise ValueError(f"pipeline: expected a Pipeline, got {pipeline!r}")
    return pipeline


def drain_beats(rows_t: int, cols_t: int, cols: int, drain_width: int) -> int:
    """Drain beats b of a rows_t × cols_t tile on an array of ``cols`` columns with
    ``drain_width`` outputs per beat: ⌈rows_t/g⌉·⌈cols_t/c⌉, g = max(1, D/cols) tile rows and
    c = min(D, cols) tile columns per beat."""
    g, c = drain_beat_shape(drain_width, cols)
    return -(-rows_t // g) * -(-cols_t // c)


def quantize_cycles_raw(rows: int, sel_cycles: int, m: int, kb: int, *, lanes: int = 1,
                        pipeline: Pipeline | None = None) -> int:
    """Exact cycles of a quantize command of ``m`` rows × ``kb`` blocks (module docstring):
    ⌈m/lanes⌉·kb·C_sel + E_q + 2 (E_q = 2 + selector_stages; ``pipeline`` None: the
    unpipelined design). ``rows`` is checked against ``lanes`` only."""
    _check_positive(("rows", rows), ("sel_cycles", sel_cycles), ("M", m), ("KB", kb))
    check_lanes(lanes, rows)
    extra = _pipeline(pipeline).quantizer_extra
    # last beat accepted at 1 + (beats − 1)·C_sel, out C_sel + E_q cycles later
    return -(-m // lanes) * kb * sel_cycles + extra + 2


def gemm_cycles_raw(rows: int, cols: int, sel_cycles: int, m: int, n: int, kb: int, *,
                    lanes: int = 1, drain_width: int = 1,
                    pipeline: Pipeline | None = None) -> int:
    """:func:`gemm_cycles` for a ``rows × cols`` array, C_sel = ``sel_cycles``, KB k-blocks,
    ``lanes`` frontend lanes, ``drain_width`` outputs per drain beat and the register stages
    of ``pipeline`` (None: the unpipelined design, ``Pipeline()``).

    Evaluated in O(log T_m) time and O(1) memory: row tiles 0, 1 and the last one follow the
    recurrence of the module docstring directly; the full row tiles in between all apply the
    same max-plus linear map to (A_t, X_{t−1}, X_t), so their effect is one matrix power."""
    _check_positive(("sel_cycles", sel_cycles), ("M", m), ("N", n), ("KB", kb))
    pipe = _pipeline(pipeline)
    d = pipe.acc_stages
    _check_array(rows, cols, lanes, drain_width, d)
    QUANTIZER_EXTRA = pipe.quantizer_extra  # noqa: N806 (the docstring's E_q)
    ARRAY_LATENCY = pipe.array_latency  # noqa: N806 (the docstring's L)
    steps = kb * d  # array cycles of one tile: KB k-steps × d virtual column groups
    cols = cols * d  # tile columns
    t_m = ceil(m / rows)
    t_n = ceil(n / cols)
    c_last = n - (t_n - 1) * cols
    # after row tile t: A_t, Q_t, b_{t,T_n-1}, X_{t-1}, X_t (read only once they exist)
    accept_prev = quant_prev = n_prev = cap_prev2 = cap_prev = 0

    def tile(t: int) -> None:
        nonlocal accept_prev, quant_prev, n_prev, cap_prev2, cap_prev
        r_t = min(rows, m - t * rows)
        q_t = -(-r_t // lanes) * kb * sel_cycles
        if t == 0:
            accept = 1
        elif t == 1:
            accept = accept_prev + quant_prev
        else:
            accept = max(accept_prev + quant_prev, cap_prev2 + 1)
        full = accept + q_t + QUANTIZER_EXTRA + 1
        if t == 0:
            issue = full
            first = issue + steps + ARRAY_LATENCY - 1
        else:
            issue = max(full, cap_prev + 1)
            first = max(issue + steps + ARRAY_LATENCY - 1, cap_prev + n_prev)
        cap_prev2, cap_prev = cap_prev, first + (t_n - 1) * max(
            steps, drain_beats(r_t, cols, cols, drain_width))
        n_prev = drain_beats(r_t, c_last, cols, drain_width)
        accept_prev, quant_prev = accept, q_t

    # tiles 2 .. T_m − 2 are full (R_t = rows) after a full tile: with q = ⌈rows/L⌉·KB·C_sel,
    # P = (T_n − 1)·max(KB, b(rows, cols)) and b = b(rows, C_last), the recurrence reads
    #   A_t = max(A_{t−1} + q, X_{t−2} + 1)
    #   X_t = max(A_t + q + E_q + S + L + P, X_{t−1} + P + max(S + L, b))
    # (S = KB·d array cycles per tile, L the array latency, E_q the quantizer's extra)
    middle = max(0, t_m - 3)
    for t in range(min(t_m, 2)):
        tile(t)
    if middle:
        q = (rows // lanes) * kb * sel_cycles
        period = (t_n - 1) * max(steps, drain_beats(rows, cols, cols, drain_width))
        b_last = drain_beats(rows, c_last, cols, drain_width)
        via_accept = q + QUANTIZER_EXTRA + steps + ARRAY_LATENCY + period
        via_capture = period + max(steps + ARRAY_LATENCY, b_last)
        step: _Matrix = ((q, 1, _NONE),  # A_t from (A_{t-1}, X_{t-2}, X_{t-1})
                         (_NONE, _NONE, 0),  # X_{t-1}
                         (q + via_accept, 1 + via_accept, via_capture))  # X_t
        accept_prev, cap_prev2, cap_prev = _mp_power_apply(
            step, middle, (accept_prev, cap_prev2, cap_prev))
        quant_prev, n_prev = q, b_last
    for t in range(2 + middle, t_m):
        tile(t)
    return cap_prev + n_prev + 1 + pipe.output_latency


def _kb(cfg: Config, k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % cfg.block:
        raise ValueError(f"K: must be a positive multiple of B={cfg.block}, got {k!r}")
    return k // cfg.block


def gemm_cycles(cfg: Config, m: int, n: int, k: int) -> int:
    """Exact GemmCore cycles for Y (M×N) = X (M×K)·W (K×N) under ``cfg`` without stalls (see
    the module docstring); K must be a positive multiple of B."""
    return gemm_cycles_raw(cfg.rows, cfg.cols, cfg.selector_cycles, m, n, _kb(cfg, k),
                           lanes=cfg.lanes, drain_width=cfg.drain_width,
                           pipeline=Pipeline.of(cfg))


def quantize_cycles(cfg: Config, m: int, k: int) -> int:
    """Exact GemmCore cycles of a quantize command of ``m`` rows × K elements under ``cfg``."""
    return quantize_cycles_raw(cfg.rows, cfg.selector_cycles, m, _kb(cfg, k), lanes=cfg.lanes,
                               pipeline=Pipeline.of(cfg))
