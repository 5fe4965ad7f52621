"""The dependency rules of ARCHITECTURE.md, checked on the source: packages of ``app/`` import
only the packages of the layers below theirs, no modules import each other in a circle, no
module grows past 400 lines, and no domain keeps a list of hooks that other modules fill when
they are imported."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
#: The layers, lowest first; the packages of one layer do not import each other.
LAYERS = [
    ["core"],
    ["jobs"],
    ["mail"],
    ["faces"],
    ["accounts"],
    ["events"],
    ["notices"],
    ["selfies"],
    ["photos"],
    ["actions"],
    ["ops"],
    ["api", "web"],
]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}
# Composition roots wire everything together; nothing imports them.
ROOTS = {"main", "worker", "__main__", "models", "migrations"}
#: A module longer than this does more than one job: split it.
MAX_MODULE_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the ``app`` modules it imports (at the top or inside functions)."""
    modules = {_module_name(p): p for p in APP.rglob("*.py") if "versions" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
                for alias in node.names:  # `from app.x import y` may import the module app.x.y
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("app.")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_packages_import_only_the_packages_before_them() -> None:
    wrong = []
    for module, imported in _imports().items():
        pkg = _package(module)
        if pkg in ROOTS or pkg == "app":
            continue
        for target in imported:
            other = _package(target)
            if other == pkg:
                continue
            if other in ROOTS or LEVEL[other] >= LEVEL[pkg]:
                wrong.append(f"{module} imports {target}")
    assert wrong == [], "\n".join(sorted(wrong))


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = _imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[frozenset[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(frozenset(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == [], [sorted(c) for c in cycles]


def test_no_module_is_longer_than_400_lines() -> None:
    long = {
        str(p.relative_to(APP.parent)): n
        for p in APP.rglob("*.py")
        if "versions" not in p.parts and (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_every_package_of_app_has_its_place_in_the_layers() -> None:
    packages = {p.name for p in APP.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - ROOTS == set(LEVEL)


def test_no_module_registers_hooks_in_another_when_imported() -> None:
    # A function decorated by another app module's registry runs only when its own module
    # happens to be imported: cross-domain steps are explicit calls (``app.actions``). Job
    # kinds are the one registry, filled by the worker's composition root (``load_job_kinds``).
    found = []
    for path in APP.rglob("*.py"):
        if "versions" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        app_names = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app")
            for alias in node.names
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                root = target
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in app_names and root.id != "kinds":
                    found.append(f"{path.relative_to(APP.parent)}: @{ast.unparse(target)} {node.name}")
    assert found == []
