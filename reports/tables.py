"""Markdown tables printed by the command line and written into reports."""

from __future__ import annotations

from collections.abc import Sequence

from semdialect.evaluation.compare import ErrorRow

__all__ = ["format_error_table"]


def format_error_table(rows: Sequence[ErrorRow], title: str) -> str:
    """Markdown table of :class:`~semdialect.evaluation.compare.ErrorRow`."""
    lines = [
        f"{title}",
        "",
        "| format | B | bits/element | SQNR (dB) | MSE |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.block} | {r.bits_per_element:.3f} | {r.sqnr_db:.2f} | "
            f"{r.mse:.4g} |"
        )
    return "\n".join(lines)
