"""The package's shape: layers that import only downward, no import cycle, no reads of another
module's private names, imports inside functions only for optional dependencies.

The import graph is built with ``ast`` from every module under src/mixedfx, imports inside
functions included (docs/architecture.md shows the layers).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "mixedfx"

# lower number = lower layer; a module may import only its own layer's modules and lower ones
LAYERS = {
    "errors": 0,
    "_lazy": 0,
    "_threads": 0,
    "_version": 0,
    "datasets": 0,
    "frame": 1,
    "linalg": 2,
    "glm": 3,
    "engines": 4,
    "inference": 5,
    "report": 6,
    "models": 7,
    "families": 7,  # the public name of glm.families
    "plots": 7,  # the public name of report.plots
    "workflows": 8,
    "cli": 9,
    "__main__": 9,
    "__init__": 10,
}

# third-party modules that may be imported inside a function: optional dependencies only
OPTIONAL = {"matplotlib", "tqdm", "dask", "distributed", "pyarrow"}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        name = ".".join(parts)
        out[name] = path
    return out


def _resolve(module: str, level: int, target: str | None, is_pkg: bool) -> str:
    """The absolute (package-relative) name of a relative import in ``module``."""
    parts = module.split(".")
    base = parts if is_pkg else parts[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    name = ".".join([*base, *(target.split(".") if target else [])])
    return name


def _imports(modules: dict[str, pathlib.Path]):
    """(importer, imported mixedfx module, line, inside a function) and third-party imports
    inside functions."""
    edges = []
    lazy_third = []
    names = set(modules)
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_pkg = path.name == "__init__.py"
        mod_name = mod[: -len(".__init__")] if mod.endswith(".__init__") else mod
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node

        def in_function(node: ast.AST, parents: dict = parents) -> bool:
            while node in parents:
                node = parents[node]
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    return True
            return False

        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _resolve(mod_name, node.level, node.module, is_pkg)
                elif node.module and node.module.split(".")[0] == "mixedfx":
                    base = node.module.partition(".")[2]
                else:
                    if in_function(node) and node.module:
                        lazy_third.append((mod, node.module, node.lineno))
                    continue
                for alias in node.names:
                    cand = f"{base}.{alias.name}" if base else alias.name
                    target = cand if (cand in names or f"{cand}.__init__" in names) else base
                    edges.append((mod, target, node.lineno, in_function(node), alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    if top == "mixedfx":
                        edges.append((mod, "__init__", node.lineno, in_function(node), ""))
                    elif in_function(node):
                        lazy_third.append((mod, alias.name, node.lineno))
    return edges, lazy_third


def _layer(module: str) -> int:
    top = module.split(".")[0] if module else "__init__"
    return LAYERS[top]


MODULES = _modules()
EDGES, LAZY_THIRD = _imports(MODULES)


def test_every_module_has_a_layer():
    for mod in MODULES:
        assert mod.split(".")[0] in LAYERS, f"{mod} is in no layer: add it to docs and LAYERS"


def test_no_upward_import():
    bad = [
        f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)}) at line {line}"
        for a, b, line, _, _ in EDGES
        if _layer(b) > _layer(a)
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for a, b, *_ in EDGES:
        b_mod = b if b in MODULES else f"{b}.__init__" if f"{b}.__init__" in MODULES else b
        if b_mod in graph and b_mod != a:
            graph[a].add(b_mod)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                cycle = [*stack[stack.index(n) :], n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def test_no_mixedfx_import_inside_functions():
    bad = [f"{a} line {line} imports {b}" for a, b, line, inside, _ in EDGES if inside]
    assert not bad, "\n".join(bad)


def test_imports_inside_functions_only_for_optional_dependencies():
    bad = [f"{m} line {line}: {name}" for m, name, line in LAZY_THIRD]
    bad = [b for b in bad if b.split(": ")[1].split(".")[0] not in OPTIONAL]
    assert not bad, "\n".join(bad)


def test_no_module_reads_another_modules_private_names():
    bad = []
    for a, b, line, _, name in EDGES:
        if name.startswith("_") and not name.startswith("__") and b != a:
            bad.append(f"{a} line {line} imports private {b}.{name}")
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text())
        imported_modules = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level
            for alias in node.names
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported_modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{mod} line {node.lineno} reads {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_the_check_finds_an_upward_import(tmp_path):
    """The graph builder resolves relative imports: a made-up upward import is caught."""
    assert _resolve("frame.design", 2, "models.base", False) == "models.base"
    assert _layer("models.base") > _layer("frame.design")
    assert _resolve("engines.base", 1, "linear", False) == "engines.linear"
    assert _resolve("datasets", 2, "errors", True) == "errors"
