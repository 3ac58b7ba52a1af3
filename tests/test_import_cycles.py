"""No import cycles between the top-level packages, lazy imports inside functions included."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("takt", "broker", "collector", "api", "dashboard", "models", "edge_agent", "devstack")


def _imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports, wherever the import statement stands (functions, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = path.relative_to(root).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                base = package_parts[: len(package_parts) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


@cache
def package_graph() -> dict[str, dict[str, list[str]]]:
    """For each package, the other packages it imports, with the files that do."""
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in PACKAGES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            for module in _imported_modules(path):
                target = module.split(".")[0]
                if target in graph and target != package:
                    graph[package].setdefault(target, []).append(str(path.relative_to(ROOT)))
    return graph


def find_cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_sees_a_cycle_and_a_lazy_import(tmp_path: Path) -> None:
    graph = {"a": {"b": ["a/x.py"]}, "b": {"c": ["b/y.py"]}, "c": {"a": ["c/z.py"]}, "d": {"a": ["d/w.py"]}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b": []}, "b": {}}) == []
    lazy = tmp_path / "pkg" / "lazy.py"
    lazy.parent.mkdir()
    lazy.write_text(
        "def f():\n    from api.deps import Conn\n    import dashboard.routes\n    from . import x\n"
    )
    assert _imported_modules(lazy, tmp_path) == {"api.deps", "dashboard.routes", "pkg"}


def test_no_import_cycles_between_top_level_packages() -> None:
    graph = package_graph()
    cycles = find_cycles(graph)
    details = [
        f"{a} -> {b} ({', '.join(sorted(set(graph[a][b]))[:3])})"
        for cycle in cycles
        for a in cycle
        for b in cycle
        if b in graph[a]
    ]
    assert not cycles, "import cycles between packages: " + "; ".join(details)


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "collector"])
def test_nothing_outside_the_collector_imports_it(package: str) -> None:
    assert "collector" not in package_graph()[package]
