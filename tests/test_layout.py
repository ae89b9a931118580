"""The package's shape, read with ast: no import circles, io/ imports at module top, one name per class."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "streamsnn"

#: Known circles of modules (sorted names) not owned by this layout: streamsnn/snn/ is being rebuilt
#: into one class per layer kind (issue 18, item 1), where limits.py imports arch.py inside a function.
#: Drop the entry when that circle is gone.
KNOWN_CIRCLES: set = set()  # none left


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(tree: ast.Module, *, functions: bool):
    """Import statements run when the module is imported (with `functions`, also those inside functions);
    never those under `if TYPE_CHECKING:`."""
    def walk(nodes):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not functions:
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from walk(node.orelse)
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node
            yield from walk(ast.iter_child_nodes(node))
    yield from walk(tree.body)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The streamsnn modules an import statement in `module` loads (a name from a package is the package)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.split(".")[0] == "streamsnn"}
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "streamsnn":
        return set()
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names}


def _graph(*, functions: bool) -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = {t for node in _imports(tree, functions=functions) for t in _targets(module, node)
                         if t in MODULES and t != module}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan), each as sorted names."""
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
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(tuple(sorted(part)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_real_imports():
    graph = _graph(functions=False)
    assert "streamsnn.io.read" in graph["streamsnn.io"] and "streamsnn.errors" in graph["streamsnn.io.probe"]
    assert "streamsnn.io.samples" in graph["streamsnn.io.dataset"]


def test_no_import_circles_at_module_top():
    assert _circles(_graph(functions=False)) == []


def test_no_import_circles_even_inside_functions():
    """A circle hidden by imports inside functions is still a circle: modules that need each other."""
    assert [c for c in _circles(_graph(functions=True)) if c not in KNOWN_CIRCLES] == []


def test_io_imports_streamsnn_modules_at_module_top_only():
    late = []
    for module, path in MODULES.items():
        if not module.startswith("streamsnn.io"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                late += [f"{path.name}:{node.lineno}" for node in ast.walk(fn)
                         if isinstance(node, (ast.Import, ast.ImportFrom)) and _targets(module, node)]
    assert late == []


def test_no_class_name_is_used_twice():
    """Two classes of one name in different modules read as one thing (e.g. the Source protocol and a base class)."""
    where: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(module)
    assert {name: mods for name, mods in where.items() if len(mods) > 1} == {}


#: What may sit at the top of the package: what every part uses, and the service's entry points.
#: Everything else lives in the sub-package of its concern (see docs/development.md, Layout).
TOP_LEVEL_MODULES = {
    "__init__", "__main__", "cli", "daemon", "systemd",  # the command line and the service's lifecycle
    "config", "defaults",  # the pipeline file's schema; every default value (issue 18, item 4)
    "events", "errors", "classnames", "textsafe",  # what every part uses
}
SUB_PACKAGES = {"commands", "io", "learn", "mqtt", "pipeline", "sinks", "snn", "sources", "synth", "web"}


def test_the_top_level_holds_only_cross_cutting_modules():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules - TOP_LEVEL_MODULES == set()
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages - SUB_PACKAGES == set()
