"""The GEMM core's exact cycle count without stalls (pure Python; the cycle model imports it).

:class:`rtl.gemm_core.GemmCore` runs Y (M×N) = X (M×K) · W (K×N) on a ``rows × cols`` array;
KB = K / B. Tiles: T_m = ⌈M/rows⌉ row tiles (rows R_t = min(rows, M − t·rows)), T_n =
⌈N/cols⌉ column tiles (columns C_j = min(cols, N − j·cols)); the drain of tile (t, j) emits
n_{t,j} = R_t · C_j outputs. C_sel = the selector's cycles per block (K_book / formats per
cycle for ``lut``, 1 for ``two-stage``). "Without stalls" means ``x`` and ``w`` always valid
and ``y`` always ready. Cycle 0 is the cycle the command is accepted; ``cycles`` counts the
cycles from it through the cycle the last output is accepted, both included (a back-to-back
command is accepted in cycle ``cycles``, so it is also the command-to-command period).

Events (cycle numbers), derived from the RTL's handshakes in ``rtl/gemm_core.py``:

* **A_t** — first activation block of row tile t accepted by the quantizer. Bank t mod 2 must
  be free and the previous row tile fully accepted:
  A_0 = 1, A_1 = A_0 + Q_0, A_t = max(A_{t−1} + Q_{t−1}, X_{t−2} + 1) for t ≥ 2, where
  Q_t = R_t · KB · C_sel (the quantizer takes one block every C_sel cycles) and X_t is the
  capture cycle of row tile t's last column tile (its bank is released then).
* **F_t** = A_t + Q_t + 3 — bank t is full: last block accepted at A_t + Q_t − C_sel, leaves
  the quantizer C_sel + 2 cycles later, is written, and the full flag is a register.
* **I_t** — first k-step of row tile t issued to the array: I_0 = F_0,
  I_t = max(F_t, X_{t−1} + 1) (a row tile starts only after the previous one's last capture).
* **Captures** (tile results copied from the PE accumulators into the drain):
  first column tile  X_{t,0} = max(I_t + KB + 2, X_{t−1} + n_{t−1,T_n−1} + 1) (the PE latency
  is 3 after the last k-step at I_t + KB − 1; the drain must have emitted the previous tile;
  for t = 0 only the first term), and then, issuing one k-step per cycle without a gap,
  X_{t,j} = X_{t,j−1} + max(KB, n_{t,j−1} + 1) (compute-bound: KB cycles per tile;
  drain-bound: the drain needs n + 1 cycles per tile, and the PEs hold their finished results
  meanwhile). So X_t = X_{t,T_n−1} = X_{t,0} + (T_n − 1) · max(KB, R_t · cols + 1).
* The drain emits tile (t, j) in cycles X_{t,j} + 1 … X_{t,j} + n_{t,j}.

**cycles = X_{T_m−1} + R_{T_m−1} · C_{T_n−1} + 1.**

Example (steady state, large N): per column tile max(KB, rows·cols + 1) cycles; the
quantizer's R_t·KB·C_sel cycles per row tile overlap the previous row tile's compute.
"""

from __future__ import annotations

from math import ceil

from semdialect.config import Config
from semdialect.rtl.timing import PE_LATENCY, QUANTIZER_EXTRA

__all__ = ["PE_LATENCY", "gemm_cycles", "gemm_cycles_raw"]

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


def gemm_cycles_raw(rows: int, cols: int, sel_cycles: int, m: int, n: int, kb: int) -> int:
    """:func:`gemm_cycles` for a ``rows × cols`` array, C_sel = ``sel_cycles``, KB k-blocks.

    Evaluated in O(log T_m) time and O(1) memory: row tiles 0, 1 and the last one follow the
    recurrence of the module docstring directly; the full row tiles in between all apply the
    same max-plus linear map to (A_t, X_{t−1}, X_t), so their effect is one matrix power."""
    for name, val in (("rows", rows), ("cols", cols), ("sel_cycles", sel_cycles), ("M", m),
                      ("N", n), ("KB", kb)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name}: must be a positive integer, got {val!r}")
    t_m = ceil(m / rows)
    t_n = ceil(n / cols)
    c_last = n - (t_n - 1) * cols
    # after row tile t: A_t, Q_t, n_{t,T_n-1}, X_{t-1}, X_t (read only once they exist)
    accept_prev = quant_prev = n_prev = cap_prev2 = cap_prev = 0

    def tile(t: int) -> None:
        nonlocal accept_prev, quant_prev, n_prev, cap_prev2, cap_prev
        r_t = min(rows, m - t * rows)
        q_t = r_t * kb * sel_cycles
        if t == 0:
            accept = 1
        elif t == 1:
            accept = accept_prev + quant_prev
        else:
            accept = max(accept_prev + quant_prev, cap_prev2 + 1)
        full = accept + q_t + QUANTIZER_EXTRA + 1
        if t == 0:
            issue = full
            first = issue + kb + PE_LATENCY - 1
        else:
            issue = max(full, cap_prev + 1)
            first = max(issue + kb + PE_LATENCY - 1, cap_prev + n_prev + 1)
        cap_prev2, cap_prev = cap_prev, first + (t_n - 1) * max(kb, r_t * cols + 1)
        n_prev = r_t * c_last
        accept_prev, quant_prev = accept, q_t

    # tiles 2 .. T_m − 2 are full (R_t = rows) after a full tile: with q = rows·KB·C_sel,
    # P = (T_n − 1)·max(KB, rows·cols + 1) and n = rows·C_last, the recurrence reads
    #   A_t = max(A_{t−1} + q, X_{t−2} + 1)
    #   X_t = max(A_t + q + QUANTIZER_EXTRA + KB + PE_LATENCY + P,
    #             X_{t−1} + P + max(KB + PE_LATENCY, n + 1))
    middle = max(0, t_m - 3)
    for t in range(min(t_m, 2)):
        tile(t)
    if middle:
        q = rows * kb * sel_cycles
        period = (t_n - 1) * max(kb, rows * cols + 1)
        via_accept = q + QUANTIZER_EXTRA + kb + PE_LATENCY + period
        via_capture = period + max(kb + PE_LATENCY, rows * c_last + 1)
        step: _Matrix = ((q, 1, _NONE),  # A_t from (A_{t-1}, X_{t-2}, X_{t-1})
                         (_NONE, _NONE, 0),  # X_{t-1}
                         (q + via_accept, 1 + via_accept, via_capture))  # X_t
        accept_prev, cap_prev2, cap_prev = _mp_power_apply(
            step, middle, (accept_prev, cap_prev2, cap_prev))
        quant_prev, n_prev = q, rows * c_last
    for t in range(2 + middle, t_m):
        tile(t)
    return cap_prev + n_prev + 1


def gemm_cycles(cfg: Config, m: int, n: int, k: int) -> int:
    """Exact GemmCore cycles for Y (M×N) = X (M×K)·W (K×N) under ``cfg`` without stalls (see
    the module docstring); K must be a positive multiple of B."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % cfg.block:
        raise ValueError(f"K: must be a positive multiple of B={cfg.block}, got {k!r}")
    return gemm_cycles_raw(cfg.rows, cfg.cols, cfg.selector_cycles, m, n, k // cfg.block)
