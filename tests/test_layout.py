"""The library's shape, read from its source (AST only, nothing imported): small modules, short
functions, no import cycles, and data flowing one way between packages.

Imports under `if TYPE_CHECKING:` do not count (they never run); imports inside functions do.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "smf"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# A module may import from its own package and from packages earlier in this list only.
LAYERS = [
    "artifacts",
    "data",
    "method",
    "demo",
    "tasks",
    "training",
    "api",
    "probes",
    "report",
    "pipeline",
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, except those in the body of an `if TYPE_CHECKING:`."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imported_modules(name: str) -> set[str]:
    """The smf modules `name` imports at run time (`from pkg import mod` names the module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in runtime_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            targets.add(sub if sub in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: imported_modules(name) for name in MODULES}


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None  # the top-level smf package has none


def test_every_module_is_in_a_layer():
    unknown = {name for name in MODULES if layer(name) not in (None, *LAYERS)}
    assert not unknown, f"modules outside the layers {LAYERS}: {sorted(unknown)}"


def test_no_module_is_too_long():
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}; split them by concern"


def test_no_function_is_too_long():
    long = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (each is an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert strongly_connected(GRAPH) == []


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_packages_import_only_earlier_packages():
    rank = {pkg: i for i, pkg in enumerate(LAYERS)}
    upward = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if layer(name) is not None
        for target in sorted(targets)
        if layer(target) is not None and rank[layer(target)] > rank[layer(name)]
    ]
    assert not upward, f"imports against the order {LAYERS}:\n" + "\n".join(upward)


def test_type_checking_imports_do_not_count():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import smf.pipeline\n"
        "else:\n    import smf.data\ndef f():\n    import smf.method\n"
    )
    names = {alias.name for node in runtime_imports(tree) for alias in node.names}
    assert names == {"TYPE_CHECKING", "smf.data", "smf.method"}


def test_every_subpackage_says_what_it_holds_in_two_lines():
    """Each package below smf opens with a two-line docstring (the top-level one with one)."""
    wrong = {}
    for name, path in MODULES.items():
        if path.name == "__init__.py" and name != "smf":
            doc = ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""
            if len(doc.strip().splitlines()) != 2:
                wrong[name] = doc
    assert not wrong, f"package docstrings that are not two lines: {wrong}"
