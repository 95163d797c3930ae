"""The content-keyed Verilog cache (:func:`semdialect.rtl.emit.cached_verilog`).

A second generation of the same component is a cache hit (no Amaranth elaboration, no
conversion); changing a parameter, a formatbook file or the generator's source misses; an
interrupted or corrupted entry is never reused. The reference Verilog is Amaranth's own
``verilog.convert`` of the component.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from amaranth.back import verilog

from semdialect.config import Config
from semdialect.rtl import emit
from semdialect.rtl.emit import cached_verilog, verilog_key
from semdialect.rtl.fp32_add import FP32Add
from semdialect.rtl.preprocess import BlockPreprocessor


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private build folder: the cache lives in ``<build>/verilog-cache``."""
    monkeypatch.setenv("SEMDIALECT_BUILD_DIR", str(tmp_path / "build"))
    return tmp_path / "build" / emit.CACHE_FOLDER


def _forbid_elaboration(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the cache hit elaborated or converted the component")

    monkeypatch.setattr(BlockPreprocessor, "elaborate", refuse)
    monkeypatch.setattr(BlockPreprocessor, "__init__", refuse)
    monkeypatch.setattr(verilog, "convert", refuse)


def test_second_generation_is_a_cache_hit(cache: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    want = verilog.convert(BlockPreprocessor(16), name="pre16", emit_src=False)
    first = cached_verilog("pre16", BlockPreprocessor, (16,), out_dir=tmp_path / "out")
    assert not first.hit
    assert first.text == want
    assert first.path.parent == cache and first.path.name.startswith("pre16-")
    assert first.copy == tmp_path / "out" / "pre16.v" and first.copy.read_text() == want
    assert first.info["class"].endswith("BlockPreprocessor")
    assert set(first.info["ports"]) == {"i__valid", "i__ready", "i__payload", "o__valid",
                                        "o__ready", "o__payload"}

    _forbid_elaboration(monkeypatch)
    first.copy.unlink()
    second = cached_verilog("pre16", BlockPreprocessor, (16,), out_dir=tmp_path / "out")
    assert second.hit
    assert (second.key, second.path, second.sha256) == (first.key, first.path, first.sha256)
    assert second.text == want and second.copy is not None and second.copy.read_text() == want
    assert second.info == first.info


def test_changing_a_parameter_misses(cache: Path) -> None:
    a = cached_verilog("pre", BlockPreprocessor, (16,))
    b = cached_verilog("pre", BlockPreprocessor, (32,))
    assert not b.hit and b.key != a.key and b.path != a.path
    assert b.text == verilog.convert(BlockPreprocessor(32), name="pre", emit_src=False)
    c = cached_verilog("fp32_add", FP32Add, kwargs={"latency": 0})
    d = cached_verilog("fp32_add", FP32Add, kwargs={"latency": 1})
    assert not c.hit and not d.hit and c.key != d.key and c.text != d.text
    assert cached_verilog("fp32_add", FP32Add, kwargs={"latency": 1}).hit
    # the module name and emit_src are part of the key too
    assert not cached_verilog("pre_b", BlockPreprocessor, (16,)).hit
    assert not cached_verilog("pre", BlockPreprocessor, (16,), emit_src=True).hit
    assert cached_verilog("pre", BlockPreprocessor, (16,)).hit


def test_formatbook_file_and_sources_are_part_of_the_key(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    book = tmp_path / "book.toml"
    table = "dialects = [[0, 1, 2, 3, 4, 6, 8, 12], [0, 1, 2, 3, 4, 5, 6, {top}]]\n"
    book.write_text('name = "b"\n' + table.format(top=8))
    cfg = Config(name="t", rows=2, cols=2, block=16, formatbook=str(book), formats_per_cycle=1,
                 lanes=1, drain_width=1)
    key = verilog_key("bq", BlockPreprocessor, (cfg,))
    assert verilog_key("bq", BlockPreprocessor, (cfg,)) == key
    book.write_text('name = "b"\n' + table.format(top=9))
    assert verilog_key("bq", BlockPreprocessor, (cfg,)) != key

    # a factory's own source file (e.g. a test top outside rtl/) is hashed
    module = tmp_path / "emit_cache_factory.py"
    module.write_text("from semdialect.rtl.preprocess import BlockPreprocessor\n\n\n"
                      "def make(block):\n    return BlockPreprocessor(block)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = importlib.import_module("emit_cache_factory").make
    before = verilog_key("pre", factory, (16,))
    module.write_text(module.read_text() + "# an edit\n")
    assert verilog_key("pre", factory, (16,)) != before
    sys.modules.pop("emit_cache_factory", None)

    with pytest.raises(TypeError, match="lambda"):
        verilog_key("pre", lambda: BlockPreprocessor(16))
    with pytest.raises(TypeError, match="cannot key"):
        verilog_key("pre", BlockPreprocessor, (object(),))


def test_interrupted_generation_is_not_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = emit.os.replace

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the text was written, before the rename

    monkeypatch.setattr(emit.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cached_verilog("pre16", BlockPreprocessor, (16,))
    monkeypatch.setattr(emit.os, "replace", real_replace)
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]

    made = cached_verilog("pre16", BlockPreprocessor, (16,))
    assert not made.hit
    # a truncated cache file (e.g. a disk full) is detected and regenerated, not reused
    whole = made.path.read_text()
    made.path.write_text(whole[: len(whole) // 2])
    again = cached_verilog("pre16", BlockPreprocessor, (16,))
    assert not again.hit and again.path.read_text() == whole
    # a key entry pointing at a missing file is a miss as well
    again.path.unlink()
    entry = json.loads(next((cache / "keys").glob("pre16-*.json")).read_text())
    assert entry["verilog"] == again.path.name
    assert not cached_verilog("pre16", BlockPreprocessor, (16,)).hit
    assert cached_verilog("pre16", BlockPreprocessor, (16,)).hit
