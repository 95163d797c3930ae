"""Balanced reduction trees and the log-depth left shifter (combinational helpers, not
components).

A reduction of n operands is ``ceil(log2 n)`` levels deep. Operands are paired left to right
at every level (an odd one out moves up unchanged), so a *left-biased* operator — one that
keeps its left operand on a tie — returns the leftmost best operand, exactly like a
left-to-right scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

__all__ = ["shift_left", "tree_max", "tree_reduce", "tree_sum"]

T = TypeVar("T")


def tree_reduce(operands: Sequence[T], op: Callable[[T, T], T]) -> T:
    """Reduce ``operands`` with the binary ``op`` in a balanced tree (left operand first)."""
    level = list(operands)
    if not level:
        raise ValueError("operands: a reduction needs at least one operand")
    while len(level) > 1:
        paired = [op(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def tree_sum(operands: Sequence[Value]) -> Value:
    """Sum of unsigned ``operands``; each adder is one bit wider than its widest input."""
    return tree_reduce(operands, lambda a, b: a + b)


def tree_max(operands: Sequence[Value]) -> Value:
    """Maximum of unsigned ``operands`` (comparator + multiplexer per node)."""
    return tree_reduce(operands, lambda a, b: Mux(b > a, b, a))


def shift_left(m: Module, value: Value, amount: Value, name: str) -> Signal:
    """``value << amount`` truncated to ``len(value)`` bits, as a log-depth mux chain (one
    named signal ``<name><level>`` per bit of ``amount``, so each level is built once)."""
    width = len(value)
    for index, bit in enumerate(amount):
        step = 1 << index
        shifted = Cat(Const(0, step), value)[:width] if step < width else Const(0, width)
        level = Signal(width, name=f"{name}{index}")
        m.d.comb += level.eq(Mux(bit, shifted, value))
        value = level
    return value
