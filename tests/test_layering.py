"""Imports point down only, and no module imports itself back through others.

Layers, lowest first (docs/ARCHITECTURE.md)::

    golden ← config, designs, paths ← rtl ← tb ← sim ← evaluation ← reports ← cli

Every ``import`` of the installed package — module level and inside functions — is read from
the source with :mod:`ast` (nothing is imported), so a lazy upward import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: subpackage → (source folder, layer rank); modules of ``semdialect/`` itself are rank 1
PACKAGES = {
    "semdialect.golden": ("golden", 0),
    "semdialect.rtl": ("rtl", 2),
    "semdialect.tb": ("tb", 3),
    "semdialect.sim": ("sim", 4),
    "semdialect.evaluation": ("evaluation", 5),
    "semdialect.reports": ("reports", 6),
    "semdialect.cli": ("semdialect/cli", 7),
    "semdialect.torch": ("semdialect/torch", 8),
}
CORE_RANK = 1  # semdialect.config, semdialect.designs, semdialect.paths, semdialect/__init__


def _modules() -> dict[str, Path]:
    """Every module of the installed package: dotted name → source file."""
    mods: dict[str, Path] = {}
    for pkg, (folder, _) in PACKAGES.items():
        for path in sorted((REPO / folder).glob("*.py")):
            mods[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    for path in sorted((REPO / "semdialect").glob("*.py")):
        if path.stem != "__main__":
            mods["semdialect" if path.stem == "__init__" else f"semdialect.{path.stem}"] = path
    return mods


def _rank(module: str) -> int:
    for pkg, (_, rank) in PACKAGES.items():
        if module == pkg or module.startswith(pkg + "."):
            return rank
    return CORE_RANK


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (relative imports resolved)."""
    is_pkg = path.stem == "__init__"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            if t in known:
                found.add(t)
            elif t.split(".")[0] in {"golden", "rtl", "tb", "sim", "evaluation", "reports"}:
                found.add(t)  # a bare top-level import: reported by its own test below
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path, set(_modules())) for name, path in _modules().items()}


def test_the_scan_sees_the_package() -> None:
    """The scan finds the modules and the imports (a broken scan would pass everything)."""
    assert {"semdialect.golden.gemm", "semdialect.rtl.pe", "semdialect.cli.mainjob",
            "semdialect.designs"} <= set(GRAPH)
    assert "semdialect.golden.quantize" in GRAPH["semdialect.golden.gemm"]
    assert "semdialect.config" in GRAPH["semdialect.rtl.gemm_core"]


def test_no_bare_top_level_imports() -> None:
    """Only ``semdialect.…`` is installed: ``import golden`` would fail outside the repo."""
    bare = {m: sorted(t for t in deps if not t.startswith("semdialect"))
            for m, deps in GRAPH.items()}
    assert not {m: d for m, d in bare.items() if d}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module: str) -> None:
    up = sorted(t for t in GRAPH[module] if t.startswith("semdialect") and _rank(t) > _rank(module))
    assert not up, f"{module} (layer {_rank(module)}) imports upward: {up}"


def test_no_import_cycles() -> None:
    """No strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_a_cycle_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cycle check can fail: inject golden.gemm → cli.mainjob → golden.gemm."""
    fake = {k: set(v) for k, v in GRAPH.items()}
    fake["semdialect.golden.gemm"].add("semdialect.cli.mainjob")
    fake["semdialect.cli.mainjob"].add("semdialect.golden.gemm")
    monkeypatch.setitem(globals(), "GRAPH", fake)
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles()
    with pytest.raises(AssertionError, match="imports upward"):
        test_imports_point_down("semdialect.golden.gemm")
