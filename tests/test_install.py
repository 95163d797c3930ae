"""The package as users get it: a non-editable install holds one top-level package,
``semdialect``, with its shipped data, and runs from any folder; test tools are not runtime
dependencies."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
TEST_TOOLS = ("pytest", "hypothesis")

# Run in the installed copy: which old top-level names import, where semdialect lives, and
# whether the shipped files are found through semdialect.paths.
PROBE = r"""
import importlib, json, sys
old = {}
for name in ("golden", "rtl", "sim", "tb", "reports", "evaluation", "configs", "data"):
    try:
        importlib.import_module(name)
        old[name] = True
    except ModuleNotFoundError:
        old[name] = False
mods = {}
for name in ("semdialect", "semdialect.golden", "semdialect.rtl", "semdialect.tb",
             "semdialect.sim", "semdialect.evaluation", "semdialect.reports", "semdialect.cli"):
    mods[name] = importlib.import_module(name).__file__
from semdialect.config import resolve_config
from semdialect.paths import configs_dir, data_dir
shipped = {
    "configs": sorted(p.name for p in configs_dir().glob("*.toml")),
    "formatbooks": sorted(p.name for p in (configs_dir() / "formatbooks").glob("*.toml")),
    "workloads": sorted(p.name for p in (data_dir() / "workloads").glob("*.csv")),
    "energy": (data_dir() / "energy" / "assumptions_v1.toml").is_file(),
    "scaling": sorted(p.name for p in (data_dir() / "scaling").glob("*.toml")),
    "video": sorted(p.name for p in (data_dir() / "video").glob("*.npz")),
    "dirs": [str(configs_dir()), str(data_dir())],
    "small": resolve_config("small").rows,
}
import semdialect
print(json.dumps({"old": old, "mods": mods, "shipped": shipped,
                  "version": semdialect.__version__, "path": sys.path}))
"""


def _copy_sources(dest: Path) -> None:
    """The files a build reads: pyproject, README and the package folders (no build/, no
    caches: the build must not touch the working tree)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "out", "*.egg-info")
    for folder in sorted(set(PACKAGE_DIRS.values())):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)


@pytest.mark.slow
def test_non_editable_install_runs_from_anywhere(tmp_path) -> None:
    src, target, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    _copy_sources(src)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--no-compile", "--target", str(target),
                        str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, ("pip could not build the package (the dev extra provides "
                               f"setuptools and wheel):\n{r.stderr}")
    tops = {p.name for p in target.iterdir()}
    assert {"semdialect", "bin"} <= tops
    assert not tops - {"semdialect", "bin"} - {p for p in tops if p.endswith(".dist-info")}, tops

    elsewhere.mkdir()
    # -S: no site-packages processing, so the editable install's finder is not loaded; the
    # venv's site-packages is on the path only for the dependencies (numpy, amaranth, ...)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target),
                                                         sysconfig.get_paths()["purelib"]])}
    env.pop("PYTHONHOME", None)
    py = [sys.executable, "-S"]

    probe = subprocess.run([*py, "-c", PROBE], cwd=elsewhere, env=env, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    info = json.loads(probe.stdout)
    assert not any(info["old"].values()), info["old"]
    for name, file in info["mods"].items():
        assert Path(file).is_relative_to(target), (name, file)
    shipped = info["shipped"]
    assert {"default.toml", "small.toml", "large.toml", "blockdialect.toml"} <= set(
        shipped["configs"])
    assert shipped["formatbooks"] and shipped["energy"] and shipped["video"]
    assert shipped["scaling"]  # the technology-scaling factors (sim/scaling.py)
    assert "opensora2_256px_129f.csv" in shipped["workloads"]
    assert all(Path(d).is_relative_to(target) for d in shipped["dirs"])
    assert shipped["small"] == 2
    assert info["version"] == PYPROJECT["project"]["version"]

    script = target / "bin" / "semdialect"
    r = subprocess.run([*py, str(script), "--help"], cwd=elsewhere, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "quantize" in r.stdout, r.stderr
    np.save(elsewhere / "x.npy", np.random.default_rng(0).standard_normal((4, 64)))
    r = subprocess.run([*py, str(script), "error", "x.npy"], cwd=elsewhere, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "sd32 lut" in r.stdout and "mxint8" in r.stdout


def _requirement_name(req: str) -> str:
    for sep in "<>=!~;[ ":
        req = req.split(sep)[0]
    return req.strip().lower()


def test_test_tools_are_dev_dependencies_only() -> None:
    runtime = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    dev = {_requirement_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert not runtime & set(TEST_TOOLS), runtime
    assert set(TEST_TOOLS) | {"setuptools", "wheel", "ruff"} <= dev


def test_installed_code_does_not_import_test_tools() -> None:
    """Nothing shipped (every package folder, the CLI included) imports pytest/hypothesis."""
    offenders = []
    for folder in sorted(set(PACKAGE_DIRS.values())):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] in TEST_TOOLS for n in names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders
