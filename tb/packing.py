"""Vectorised packing of ``data.Layout`` payloads to/from Python ints (packed Verilog ports).

A :class:`LayoutCodec` flattens a (nested) ``StructLayout``/``ArrayLayout`` into named leaf
fields — ``"block.q"`` for an array of 5-bit lanes, ``"se"`` for a scalar — and converts
between NumPy columns and the integers cocotb reads from and writes to a packed port. Offsets
come from the Amaranth layout itself (as in :func:`tb.ports.port`), never from hand-written
constants. Scalar fields wider than 62 bits (e.g. a wide drain beat's ``mask``) travel as
Python ints (NumPy ``object`` arrays).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["LayoutCodec"]


@dataclass(frozen=True)
class _Leaf:
    name: str  # dotted path; array fields are one leaf with ``count`` elements
    offset: int
    width: int
    count: int  # 0 = scalar, else elements of an array of scalars
    stride: int

    @property
    def wide(self) -> bool:
        """Too wide for an int64 column: values are Python ints."""
        return self.width > _NARROW


#: the widest field unpacked into int64 columns (wider ones become Python ints)
_NARROW = 62


def _int_bits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, count, width) uint8 bits (LSB first) of non-negative Python ints."""
    nbytes = (width + 7) // 8
    flat = [int(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    if any(v < 0 or v >> width for v in flat):
        raise ValueError(f"a value does not fit in {width} bits")
    raw = b"".join(v.to_bytes(nbytes, "little") for v in flat)
    bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(len(flat), nbytes), axis=1,
                         bitorder="little")[:, :width]
    return bits.reshape(np.asarray(values, dtype=object).shape + (width,))


def _leaves(layout: data.Layout, prefix: str, base: int) -> list[_Leaf]:
    out: list[_Leaf] = []
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        if isinstance(elem, data.Layout):
            for i in range(layout.length):
                name = f"{prefix}.{i}" if prefix else str(i)
                out += _leaves(elem, name, base + i * elem.size)
        else:
            width = Shape.cast(elem).width
            out.append(_Leaf(prefix, base, width, layout.length, width))
        return out
    for name, field in layout:
        path = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(field.shape, data.Layout):
            out += _leaves(field.shape, path, base + field.offset)
        else:
            out.append(_Leaf(path, base + field.offset, Shape.cast(field.shape).width, 0, 0))
    return out


class LayoutCodec:
    """Pack/unpack rows of field values for one layout."""

    def __init__(self, layout: data.Layout) -> None:
        self.layout = layout
        self.width = Shape.cast(layout).width
        self.nbytes = (self.width + 7) // 8
        self.leaves = {leaf.name: leaf for leaf in _leaves(layout, "", 0)}

    def pack(self, count: int, /, **fields: np.ndarray) -> list[int]:
        """``count`` packed integers; keyword names use ``__`` for dots (``block__q=...``).

        ``count`` is positional-only, so any field name is free (a GEMM command's ``n``).
        Scalars are (count,) arrays, array fields (count, elements); missing fields are 0;
        array elements of a struct array are addressed by index (``0__codes``, via ``**``).
        """
        n = count
        bits = np.zeros((n, self.nbytes * 8), np.uint8)
        for key, values in fields.items():
            leaf = self.leaves[key.replace("__", ".")]
            if leaf.wide:
                vals = np.asarray(values, dtype=object).reshape(n, max(leaf.count, 1))
                try:
                    field_bits = _int_bits(vals, leaf.width)
                except ValueError:
                    raise ValueError(f"{leaf.name}: a value does not fit in {leaf.width} "
                                     "bits") from None
            else:
                vals = np.asarray(values, dtype=np.uint64).reshape(n, max(leaf.count, 1))
                if vals.size and int(vals.max()) >> leaf.width:
                    raise ValueError(f"{leaf.name}: a value does not fit in {leaf.width} bits")
                shifts = np.arange(leaf.width, dtype=np.uint64)
                field_bits = ((vals[:, :, None] >> shifts) & np.uint64(1)).astype(np.uint8)
            for k in range(max(leaf.count, 1)):
                start = leaf.offset + k * leaf.stride
                bits[:, start : start + leaf.width] = field_bits[:, k]
        packed = np.packbits(bits, axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in packed]

    def unpack(self, values: Sequence[int]) -> dict[str, np.ndarray]:
        """Field name → (n,) or (n, count) array, for every leaf: int64, or ``object``
        (Python ints) for a field wider than 62 bits."""
        n = len(values)
        raw = b"".join(int(v).to_bytes(self.nbytes, "little") for v in values)
        bits = np.unpackbits(
            np.frombuffer(raw, np.uint8).reshape(n, self.nbytes), axis=1, bitorder="little"
        )
        out: dict[str, np.ndarray] = {}
        for leaf in self.leaves.values():
            cols = []
            for k in range(max(leaf.count, 1)):
                start = leaf.offset + k * leaf.stride
                chunk = bits[:, start : start + leaf.width]
                if leaf.wide:
                    packed = np.packbits(chunk, axis=1, bitorder="little")
                    col = np.empty(n, dtype=object)
                    col[:] = [int.from_bytes(row.tobytes(), "little") for row in packed]
                    cols.append(col)
                else:
                    weights = np.int64(1) << np.arange(leaf.width, dtype=np.int64)
                    cols.append(chunk.astype(np.int64) @ weights)
            out[leaf.name] = np.stack(cols, axis=1) if leaf.count else cols[0]
        return out

    def unpack_bits(self, values: Sequence[int], name: str) -> np.ndarray:
        """The bits of one scalar field as an (n, width) bool array (bit i of the field in
        column i), any width: e.g. a drain beat's ``mask``."""
        leaf = self.leaves[name]
        if leaf.count:
            raise ValueError(f"{name}: an array field, not a scalar")
        n = len(values)
        raw = b"".join(int(v).to_bytes(self.nbytes, "little") for v in values)
        bits = np.unpackbits(
            np.frombuffer(raw, np.uint8).reshape(n, self.nbytes), axis=1, bitorder="little"
        )
        return bits[:, leaf.offset : leaf.offset + leaf.width].astype(bool)
