"""The package's import graph: layers that must not import each other, and no cycles.

Every ``import`` in every module is read with ``ast``, including those inside functions (a lazy
import hides a cycle but does not remove it) and relative ones. ``if TYPE_CHECKING:`` imports
count for the layer rules but not for cycles (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "dspy_flywheel"
SERVICES = Path(__file__).resolve().parents[2] / "services"
NO_IO_IN_COMPILE = ("!aiokafka", "!faust", "!asyncpg")  # Kafka and PostgreSQL clients

# (importing modules, forbidden targets): a prefix matches the module and everything below it;
# names are ours (relative to the package) unless they start with "!" (third-party).
LAYER_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("sdk", ("optimizer",)),
    ("optimizer", ("sdk",)),
    ("sdk.agent", ("optimizer", "store")),
    (
        "compile",
        ("bus", "store", "collector", "trigger", "optimizer", "sdk", "manager", *NO_IO_IN_COMPILE),
    ),
]
CONTRACTS_RULE = ("contracts", ("bus",))


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    runs: bool  # False for ``if TYPE_CHECKING:`` imports


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/package``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _walk(node: ast.AST, runs: bool = True) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        child_runs = runs and not _type_checking(child)
        yield child, child_runs
        yield from _walk(child, child_runs)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Edge]:
    """Every import in the module (any depth), as edges to module names.

    ``from a.b import c`` points at ``a.b.c`` when that is a module of ours, else at ``a.b``.
    """
    is_package = path.name == "__init__.py"
    edges = []
    for node, runs in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            edges += [Edge(name, alias.name, node.lineno, runs) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                edges.append(Edge(name, sub if sub in known else base, node.lineno, runs))
    return edges


def import_graph(root: Path, package: str) -> list[Edge]:
    known = module_names(root, package)
    return [edge for name, path in known.items() for edge in imports_of(name, path, known)]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(
    edges: list[Edge], package: str, rules: list[tuple[str, tuple[str, ...]]]
) -> list[str]:
    """Edges a rule forbids (see ``LAYER_RULES`` for how rules are written)."""
    found = []
    for source, targets in rules:
        for edge in edges:
            if not _under(edge.source, f"{package}.{source}"):
                continue
            for target in targets:
                name = target[1:] if target.startswith("!") else f"{package}.{target}"
                if _under(edge.target, name):
                    found.append(f"{edge.source}:{edge.line} imports {edge.target}")
    return list(dict.fromkeys(found))


def cycles(edges: list[Edge], package: str) -> list[list[str]]:
    """Strongly connected groups of our modules (size > 1, or a module importing itself)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.runs and _under(edge.target, package):
            graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_graph(SERVICES, PACKAGE)


def test_the_graph_sees_lazy_and_relative_imports(edges: list[Edge]) -> None:
    # A real lazy import (inside a function) must be in the graph, or the checks prove nothing.
    job = {e.target for e in edges if e.source == f"{PACKAGE}.optimizer.job"}
    assert f"{PACKAGE}.compile.compiler" in job
    assert len(edges) > 500


@pytest.mark.parametrize(("source", "targets"), LAYER_RULES, ids=[r[0] for r in LAYER_RULES])
def test_layers(edges: list[Edge], source: str, targets: tuple[str, ...]) -> None:
    assert violations(edges, PACKAGE, [(source, targets)]) == []


def test_contracts_do_not_import_bus(edges: list[Edge]) -> None:
    assert violations(edges, PACKAGE, [CONTRACTS_RULE]) == []


def test_no_import_cycles(edges: list[Edge]) -> None:
    assert cycles(edges, PACKAGE) == []


# -- the checks themselves, on a small package written for the purpose -----------------------


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_a_function_body_and_a_relative_import_is_found(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def f():\n    from .sub import c\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from .. import a\n",
            "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.e\n",
            "pkg/e.py": "import pkg.d\n",
        },
    )
    found = cycles(import_graph(tmp_path, "pkg"), "pkg")
    assert found == [["pkg.a", "pkg.b", "pkg.sub.c"]]  # d <-> e is type-only: not a cycle


def test_a_layer_violation_inside_a_function_is_found(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/compile/__init__.py": "",
            "pkg/compile/x.py": "def f():\n    import aiokafka\n    from ..store import db\n",
            "pkg/store/__init__.py": "",
            "pkg/store/db.py": "",
            "pkg/sdk/__init__.py": "from pkg.compile import x\n",
        },
    )
    edges = import_graph(tmp_path, "pkg")
    rules = [("compile", ("store", "!aiokafka")), ("sdk", ("store",))]
    assert sorted(violations(edges, "pkg", rules)) == [
        "pkg.compile.x:2 imports aiokafka",
        "pkg.compile.x:3 imports pkg.store.db",
    ]
