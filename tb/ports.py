"""Map Amaranth signature paths to cocotb handles of the generated Verilog top.

``amaranth.back.verilog.convert`` (see :func:`rtl.emit.generate_verilog`) flattens a
component's signature into ports named by the member path joined with ``__``::

    i.payload  -> i__payload      (a StructLayout payload is ONE packed port)
    i.valid    -> i__valid
    o.ready    -> o__ready

A field of a ``data.Layout``-shaped member (``i.payload.a``) is therefore not a port of its
own but a bit slice of the packed port. :func:`port` resolves a dotted path to either the
real handle or, for such a field, a :class:`PackedField` proxy that reads and writes the slice
(offsets come from the layout in the Amaranth signature, which must then be passed).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Shape
from amaranth.lib import data, wiring
from cocotb.simtime import get_sim_time

__all__ = ["PackedField", "port"]


class PackedField:
    """A ``width``-bit field at bit ``offset`` of a packed cocotb port handle.

    ``value`` reads the field as an ``int`` (it raises if any of its bits is X/Z) and writes it
    with a read-modify-write of the parent. cocotb applies writes later in the time step, so
    reading the port back would lose an earlier field write of the same step; writes therefore
    merge into a per-parent shadow of the value last written *in the current time step*. Do not
    mix direct writes of the parent and field writes within one time step.
    """

    # id(parent handle) -> (sim time in steps, packed value written at that time)
    _shadows: dict[int, tuple[int, int]] = {}

    def __init__(self, parent: Any, offset: int, width: int, path: str) -> None:
        self._parent = parent
        self._offset = offset
        self._width = width
        self._mask = (1 << width) - 1
        self._path = path

    def __repr__(self) -> str:
        return f"PackedField({self._path}: {self._parent._name}[{self._offset}+:{self._width}])"

    @property
    def value(self) -> int:
        packed = self._parent.value.to_unsigned()
        return (packed >> self._offset) & self._mask

    @value.setter
    def value(self, new: int) -> None:
        new = int(new)
        if not 0 <= new <= self._mask:
            raise ValueError(f"{self._path}: {new} does not fit in {self._width} bits")
        key = id(self._parent)
        now = get_sim_time("step")
        shadow = self._shadows.get(key)
        if shadow is not None and shadow[0] == now:
            old = shadow[1]
        else:
            old = self._parent.value.to_unsigned()
        packed = (old & ~(self._mask << self._offset)) | (new << self._offset)
        self._shadows[key] = (now, packed)
        self._parent.value = packed


def _handle(dut: Any, name: str) -> Any | None:
    return dut._get(name)


def port(
    dut: Any,
    path: str,
    signature: wiring.Signature | wiring.Component | None = None,
) -> Any:
    """Return the cocotb handle (or :class:`PackedField`) for the dotted Amaranth ``path``.

    ``port(dut, "i.valid")`` is ``dut.i__valid``; ``port(dut, "i.payload")`` is the packed
    ``dut.i__payload``. For a field inside a packed port, ``port(dut, "i.payload.a", sig)``
    first tries a port literally named ``i__payload__a`` (hand-written wrappers that split
    structs), else returns a :class:`PackedField` slice of ``i__payload`` located with
    ``signature`` (the component or its ``wiring.Signature``). ``KeyError`` if nothing matches.
    """
    parts = path.split(".")
    if not all(parts):
        raise ValueError(f"Bad port path {path!r}")
    exact = _handle(dut, "__".join(parts))
    if exact is not None:
        return exact

    if signature is None:
        raise KeyError(
            f"{dut._name} has no port {'__'.join(parts)!r} for {path!r}; to address a field "
            "of a packed port pass the component's signature"
        )
    if isinstance(signature, wiring.Component):
        signature = signature.signature

    # Walk the signature to the port member, then the layout down to the field.
    sig: wiring.Signature = signature
    for depth, name in enumerate(parts):
        if name not in sig.members:
            raise KeyError(f"{path!r}: signature has no member {'.'.join(parts[: depth + 1])!r}")
        member = sig.members[name]
        if member.is_signature:
            sig = member.signature
            continue
        port_name = "__".join(parts[: depth + 1])
        parent = _handle(dut, port_name)
        if parent is None:
            raise KeyError(f"{path!r}: {dut._name} has no port {port_name!r}")
        shape = member.shape
        offset = 0
        for field in parts[depth + 1 :]:
            if not isinstance(shape, data.Layout):
                raise KeyError(f"{path!r}: {field!r} is below a non-layout shape {shape!r}")
            try:
                layout_field = shape[int(field) if field.isdigit() else field]
            except (KeyError, TypeError) as exc:
                raise KeyError(f"{path!r}: layout {shape!r} has no field {field!r}") from exc
            offset += layout_field.offset
            shape = layout_field.shape
        return PackedField(parent, offset, Shape.cast(shape).width, path)
    raise KeyError(f"{path!r} names an interface, not a port")
