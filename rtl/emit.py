"""Verilog emission for :class:`amaranth.lib.wiring.Component` designs."""

from __future__ import annotations

import os
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = ["generate_verilog"]


def generate_verilog(
    component: wiring.Component,
    name: str,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    emit_src: bool = False,
) -> str:
    """Convert ``component`` to Verilog with top module ``name`` and return the text.

    The ports are the component's signature members: ``amaranth.back.verilog.convert`` (called
    without ``ports=``) makes each flattened member one port named by its path joined with
    ``__`` (``i.payload`` -> ``i__payload``; a ``data.Layout``-shaped member such as a struct
    payload stays ONE packed port, see :func:`tb.ports.port`), plus ``clk``/``rst`` when the
    design uses the ``sync`` domain. If ``out_dir`` is given the text is also written to
    ``<out_dir>/<name>.v`` (only when the content changed, so the file's mtime is stable).

    ``emit_src=False`` (default) omits ``src`` attributes: the output then depends on the logic
    only, not on Python line numbers, which keeps simulator build caches keyed on the source
    hash valid across unrelated edits.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"generate_verilog() needs a wiring.Component, not {component!r}")
    if not name.isidentifier():
        raise ValueError(f"Verilog module name must be an identifier, not {name!r}")
    text = verilog.convert(component, name=name, emit_src=emit_src)
    if out_dir is not None:
        path = Path(out_dir) / f"{name}.v"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    return text
