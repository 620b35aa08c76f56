"""The package's layers, read from the source: no import cycle anywhere in src/, the domain
never imports the stages (orchestration), and ``mlci-gen`` imports its own modules at the top.

Imports inside functions count too (an import moved into a function to dodge a cycle is
still a cycle); imports under ``if TYPE_CHECKING:`` do not, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
# Orchestration: may import the stages. Everything else is the domain, which must not.
ORCHESTRATION = ("mlcicd.stages", "mlcicd.runner", "mlcicd.cli", "mlcicd.demo")


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, name: str, known: set[str]) -> list[tuple[str, bool]]:
    """(imported package module, at top level?) for every runtime import of ``mlcicd`` in a file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                # `from pkg import mod` imports the module pkg.mod.
                found.extend((f"{base}.{a.name}" if f"{base}.{a.name}" in known else base, top) for a in child.names)
            else:
                inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                visit(child, top and not inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return [(m, top) for m, top in found if m in known and m != name]


def import_graph(src: Path) -> tuple[dict[str, list[tuple[str, bool]]], dict[str, Path]]:
    files = {module_name(p, src): p for p in src.rglob("*.py")}
    known = set(files)
    return {name: imports(path, name, known) for name, path in files.items()}, files


def cycles(graph: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w, _ in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


GRAPH, FILES = import_graph(SRC)


def test_the_graph_sees_the_package():
    assert {"mlcicd.catalog", "mlcicd.gen.commands", "mlcicd.stages.deploy_session"} <= set(GRAPH)
    assert ("mlcicd.catalog", True) in GRAPH["mlcicd.gen.surfaces"]
    assert ("mlcicd.stages", True) in GRAPH["mlcicd.stages.deploy_session"]  # package __init__ imports count


def test_no_import_cycle_in_src():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "mlcicd"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from mlcicd import b\n")
    (pkg / "b.py").write_text("def f():\n    from mlcicd.a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mlcicd import a\n")
    graph, _ = import_graph(tmp_path)
    assert cycles(graph) == [["mlcicd.a", "mlcicd.b"]]
    assert ("mlcicd.a", False) in graph["mlcicd.b"] and graph["mlcicd.c"] == []


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith(ORCHESTRATION)))
def test_the_domain_never_imports_the_stages(module):
    assert not [m for m, _ in GRAPH[module] if m.startswith("mlcicd.stages")], f"{module} imports a stage module"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("mlcicd.gen")))
def test_gen_imports_its_dependencies_at_the_top(module):
    assert [m for m, top in GRAPH[module] if not top] == []
