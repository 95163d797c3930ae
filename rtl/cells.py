"""Replicated cells: one Verilog module, instantiated many times.

A GEMM core repeats a few components many times: rows·cols PE cores, rows + cols block
decoders, one block quantizer per frontend lane, one output adder per drain lane. Amaranth
elaborates and converts every instance on its own and emits each as a module of its own (a
32×32 core: 1024 copies of the PE), so Verilog generation and the Verilator build grew with
the array's gates. A *cell* is built once instead: a component that creates a replicated part
through :func:`cell` gets

* the component itself (``factory(*args, **kwargs)``) when it is elaborated for simulation
  (Amaranth's simulator, ``platform`` None): nothing changes there;
* when it is converted to Verilog by :func:`rtl.emit.generate_verilog` (``platform`` a
  :class:`CellLibrary`): a stand-in with the same signature whose fragment is an Amaranth
  ``Instance`` of ONE module ``<name>_<16 hex digits>``, generated once per design through the
  Verilog cache (:func:`rtl.emit.cached_verilog`) and appended to the design's text by
  :meth:`CellLibrary.link`. The digits are the first 16 of the SHA-256 of the module's text
  (with the name itself left out): a cell is named by its logic, so an unrelated source edit
  leaves the design's text, and the simulator builds keyed on it, unchanged.

Same circuit: the module is the factory's own component converted by the same Amaranth
flow; the stand-in connects every signature member to the module's port of the same name
(``path`` joined with ``__``, :func:`rtl.emit.port_map`) and ``clk``/``rst`` to the parent's
``sync`` domain when the module has them (its reset is the same synchronous ``rst``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib import wiring

__all__ = ["HIER_BLOCK", "CellLibrary", "cell", "prototype"]

_C = TypeVar("_C", bound=wiring.Component)

#: a module of Yosys's Verilog output: its attribute lines, ``module <name>(`` … ``endmodule``
_MODULE = re.compile(r"(?ms)^(?:\(\*[^\n]*\*\)\n)*module (\S+) ?\(.*?^endmodule\n")
#: the attribute Amaranth puts on the top module of a conversion
_TOP_ATTRIBUTE = "(* top =  1  *)\n"
#: the end of a module header (``module name(ports);``)
_HEADER_END = re.compile(r"(?m)^module \S+ ?\([^;]*\);")
#: the Verilator metacomment each cell module carries: with ``--hierarchical`` Verilator
#: compiles the module once for all its instances (tb.runner.FAST_BUILD_ARGS); other tools
#: read a comment
HIER_BLOCK = "/*verilator hier_block*/"


def cell(platform: object, name: str, factory: Callable[..., wiring.Component],
         *args: Any, **kwargs: Any) -> wiring.Component:
    """The replicated part ``factory(*args, **kwargs)`` for a parent elaborated on
    ``platform``: the component itself, or (``platform`` a :class:`CellLibrary`) a stand-in
    instantiating the shared module ``<name>_<digest>`` (module docstring). Add it to the
    parent as a submodule and connect its members as those of the component. ``factory`` and
    the arguments must be keyable by :func:`rtl.emit.verilog_key` (a module-level class or
    function; plain values, dataclasses, enums)."""
    if isinstance(platform, CellLibrary):
        return platform.instance(name, factory, args, kwargs)
    return factory(*args, **kwargs)


def prototype(component: _C) -> _C:
    """``component``, marked as one that is never elaborated: only its signature and
    properties are read (the signature of a cell's stand-ins, a GEMM core's lane
    parameters), so Amaranth does not warn that it was created but never used."""
    component._MustUse__used = True  # Amaranth's own flag (amaranth._unused.MustUse)
    return component


class _CellInstance(wiring.Component):
    """A stand-in for one instance of a shared module: the prototype's signature, elaborated
    to an ``Instance`` of ``module`` whose ports are the members (and ``clk``/``rst``)."""

    def __init__(self, module: str, signature: wiring.Signature, clocked: tuple[str, ...]):
        self._module = module
        self._clocked = clocked
        super().__init__(signature)

    def elaborate(self, platform: object) -> Instance:
        ports: list[tuple[str, str, Value]] = []
        for path, member, value in self.signature.flatten(self):
            direction = "i" if member.flow == wiring.In else "o"
            ports.append((direction, "__".join(str(p) for p in path), Value.cast(value)))
        if "clk" in self._clocked:
            ports.append(("i", "clk", ClockSignal("sync")))
        if "rst" in self._clocked:
            ports.append(("i", "rst", ResetSignal("sync")))
        return Instance(self._module, *ports)


class CellLibrary:
    """The cells of one Verilog conversion (the ``platform`` :func:`rtl.emit.generate_verilog`
    elaborates with): each distinct cell is generated (or read from the Verilog cache in
    ``cache_dir``, default ``<build>/verilog-cache``) once, whatever the number of
    instances; :meth:`link` appends their modules to the design's text.

    ``emitter`` is :mod:`rtl.emit`'s (``cached_verilog``, ``call_description``,
    ``verilog_key``), passed in by :func:`rtl.emit.generate_verilog` so that this module does
    not import :mod:`rtl.emit` (which imports this one: no import cycle)."""

    def __init__(self, cache_dir: str | Path | None = None, *, emit_src: bool = False,
                 emitter: tuple[Callable[..., Any], Callable[..., Any], Callable[..., str]]
                 ) -> None:
        self._cache_dir = cache_dir
        self._emit_src = emit_src
        self._emitter = emitter
        #: (name, factory, canonical arguments) → (module, prototype signature, clk/rst ports)
        self._cells: dict[str, tuple[str, wiring.Signature, tuple[str, ...]]] = {}
        #: module → its Verilog text (the module and its submodules)
        self._texts: dict[str, str] = {}

    def instance(self, name: str, factory: Callable[..., wiring.Component],
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
                 ) -> wiring.Component:
        """A stand-in for one more instance of the cell ``factory(*args, **kwargs)``, whose
        module ``<name>_<digest>`` is generated on the first request (module docstring)."""
        cached_verilog, call_description, verilog_key = self._emitter
        kwargs = dict(kwargs or {})
        ident = json.dumps([name, call_description(factory, args, kwargs)], sort_keys=True)
        if ident not in self._cells:
            proto = prototype(factory(*args, **kwargs))
            # generated under a name unique to the key, then named by its content, so an
            # unrelated source edit leaves the design's text (and simulator builds) unchanged
            provisional = f"{name}_{verilog_key(name, factory, args, kwargs)[:16]}"
            made = cached_verilog(provisional, factory, args, kwargs, emit_src=self._emit_src,
                                  cache_dir=self._cache_dir)
            text = made.text
            digest = hashlib.sha256(text.replace(provisional, name).encode()).hexdigest()
            module = f"{name}_{digest[:16]}"
            text = text.replace(provisional, module)
            header = re.search(rf"(?m)^module {re.escape(module)}\(([^)]*)\);", text)
            if header is None:
                raise ValueError(f"cell {module}: no module header in its Verilog")
            ports = {p.strip() for p in header.group(1).split(",") if p.strip()}
            clocked = tuple(p for p in ("clk", "rst") if p in ports)
            expected = set(made.info["ports"]) | set(clocked)
            if ports != expected:
                raise ValueError(f"cell {module}: ports {sorted(ports)} differ from its "
                                 f"signature's {sorted(expected)}")
            self._cells[ident] = (module, proto.signature, clocked)
            self._texts[module] = text
        module, signature, clocked = self._cells[ident]
        return _CellInstance(module, signature, clocked)

    def link(self, text: str) -> str:
        """``text`` (the design's Verilog) followed by every module of the cells it
        instantiates, each once (a module a cell shares with another, e.g. a cell inside a
        cell, is not repeated), without their ``top`` attribute."""
        if not self._texts:
            return text
        seen = set(_MODULE.findall(text))
        parts = [text]
        for module in sorted(self._texts):
            for match in _MODULE.finditer(self._texts[module]):
                if match.group(1) not in seen:
                    seen.add(match.group(1))
                    body = match.group(0).replace(_TOP_ATTRIBUTE, "", 1)
                    if match.group(1) == module:
                        body = _HEADER_END.sub(f"\\g<0>\n  {HIER_BLOCK}", body, count=1)
                    parts.append(body)
        return "\n".join(parts)
