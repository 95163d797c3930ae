# amaranth: UnusedElaboratable=no
"""The dialect-id width ceil(log2 K) (0 bits at K = 1) has one definition, and every user of it
(golden formats, RTL layouts and ports, cycle and energy models) agrees at K = 1, 2, 16, 32."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.hdl import Shape

from semdialect.config import Config
from semdialect.designs import configured_design
from semdialect.golden import Formatbook, dfp4, sd32
from semdialect.golden.formats import DialectFormat
from semdialect.rtl import layouts
from semdialect.rtl.block_quantizer import BlockQuantizer
from semdialect.rtl.decoder import DialectDecoder
from semdialect.sim import energy, model

#: K -> expected dialect-id bits (written out, not computed)
EXPECTED = {1: 0, 2: 1, 16: 4, 32: 5}


def _book(k: int) -> Formatbook:
    if k == 16:
        return dfp4()
    if k == 32:
        return sd32()
    rows = [[0, *c] for c in itertools.islice(itertools.combinations(range(1, 16), 7), k)]
    return Formatbook(f"k{k}", np.array(rows))


@pytest.fixture(params=sorted(EXPECTED))
def book_file(request, tmp_path) -> tuple[int, str]:
    k = request.param
    book = _book(k)
    path = tmp_path / f"k{k}.toml"
    path.write_text("dialects = [\n" + ",\n".join(str(r.tolist()) for r in book.hu) + "\n]\n")
    return k, str(path)


def test_every_user_agrees_on_the_dialect_id_width(book_file) -> None:
    k, path = book_file
    bits = EXPECTED[k]
    book = Config(formatbook=path, formats_per_cycle=1).book()
    assert book.size == k
    # golden: the definition and the format's metadata accounting
    assert book.id_bits == bits
    fmt = DialectFormat(book)
    assert fmt.id_bits() == bits
    assert fmt.bits_per_element(32) == 4 + (5 + bits) / 32
    # RTL: the layout helper, the stream payloads and the decoder port
    assert layouts.id_bits(k) == bits
    for layout in (layouts.quantized_block(32, k), layouts.dialect_block(32, k),
                   layouts.selected_block(32, k, 13)):
        member = layout.members.get("dialect", 0)  # a 0-bit field may be omitted
        width = Shape.cast(member).width
        assert width == bits
    assert BlockQuantizer(32, book).o.payload.shape().size == 32 * 4 + 5 + bits + 1
    ports = DialectDecoder(book).signature.members
    assert (Shape.cast(ports["dialect"].shape).width if "dialect" in ports else 0) == bits
    # cycle model and energy model
    cfg = Config(formatbook=path, formats_per_cycle=1)
    assert model.Design.of(configured_design(), cfg).id_bits == bits
    moved = energy.min_bytes_moved(cfg, 8, 8, 64)
    assert moved["dram"]["W"] == 8 * 2 * (32 * 4 + 5 + bits) / 8
