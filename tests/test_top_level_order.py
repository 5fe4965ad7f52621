"""The order of the repository's top-level code, checked on the source: the service (``app``)
imports none of what tests, measures or loads it; ``tools`` (servers, SeaweedFS, PgBouncer,
fixture photos, scoring) imports only ``app``; ``loadtest`` imports ``app`` and ``tools``;
``benchmarks`` and ``tests`` import those three and never each other; the root scripts are
entry points nobody imports, except ``main`` (the ASGI app) that tests drive in process. No
module edits ``sys.path``: every entry point runs from the repository root (``python -m``,
pytest's rootdir, ``locust -f``, Gunicorn). A module of ``tools``, ``loadtest``,
``benchmarks`` or a root script stays under 400 lines and says what it owns in a docstring;
a test module stays under 400 lines too (a long fake service or scenario is split into
cohesive modules)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOT_SCRIPTS = ["main", "locustfile", "add_performance_indexes", "gunicorn_config"]
#: Which top-level names each top-level package or root script may import.
ALLOWED: dict[str, set[str]] = {
    "app": {"app"},
    "tools": {"app", "tools"},
    "loadtest": {"app", "tools", "loadtest"},
    "benchmarks": {"app", "tools", "loadtest", "benchmarks"},
    # `main`: tests run the ASGI app in process (TestClient), as Gunicorn does in ``main:app``.
    "tests": {"app", "tools", "loadtest", "tests", "main"},
    "main": {"app"},
    "gunicorn_config": {"app"},
    "add_performance_indexes": {"app"},
    "locustfile": {"app", "tools", "loadtest"},
}
LIMITED = ["tools", "loadtest", "benchmarks"]
MAX_MODULE_LINES = 400


def _files(top: str) -> Iterator[Path]:
    if top in ROOT_SCRIPTS:
        yield ROOT / f"{top}.py"
    else:
        yield from sorted((ROOT / top).rglob("*.py"))


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, module name) of every import, at the top or inside functions; relative imports
    resolved against ``module``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _sys_path_edits(tree: ast.AST) -> Iterator[int]:
    """Lines that change ``sys.path`` (a call on it, an assignment to it) or add a site dir."""

    def is_sys_path(node: ast.expr) -> bool:
        if isinstance(node, ast.Subscript):
            node = node.value
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if is_sys_path(node.func.value) or node.func.attr == "addsitedir":
                yield node.lineno
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            if any(is_sys_path(t) for t in targets):
                yield node.lineno


def _sources() -> Iterator[tuple[str, Path, ast.AST]]:
    for top in ALLOWED:
        for path in _files(top):
            yield top, path, ast.parse(path.read_text(), filename=str(path))


def test_each_part_imports_only_the_parts_it_may() -> None:
    wrong = []
    for top, path, tree in _sources():
        module = _module(path)
        for line, name in _imported(tree, module, path.name == "__init__.py"):
            target = name.split(".")[0]
            if target in ALLOWED and target not in ALLOWED[top]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert wrong == [], "\n".join(wrong)


def test_no_module_edits_sys_path() -> None:
    edits = [f"{p.relative_to(ROOT)}:{n}" for _top, p, tree in _sources() for n in _sys_path_edits(tree)]
    assert edits == [], "run from the repository root instead: " + ", ".join(edits)


def test_tools_loadtest_benchmarks_and_root_scripts_are_short_and_say_what_they_own() -> None:
    long, silent = {}, []
    for top in [*LIMITED, *ROOT_SCRIPTS]:
        for path in _files(top):
            text = path.read_text()
            if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
                long[str(path.relative_to(ROOT))] = lines
            if top in LIMITED and not ast.get_docstring(ast.parse(text)):
                silent.append(str(path.relative_to(ROOT)))
    assert long == {}
    assert silent == [], "a module docstring says what the module owns"


def test_no_test_module_is_longer_than_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _files("tests")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, "split a long test module (or fake) into cohesive modules"


def test_the_parts_around_the_service_are_packages_run_from_the_root() -> None:
    """``python -m benchmarks.x``, pytest and Locust find them from the repository root; a
    folder without ``__init__.py`` would be a namespace package that any other path could
    shadow."""
    missing = [
        str(folder.relative_to(ROOT))
        for top in [*LIMITED, "tests"]
        for folder in [ROOT / top, *(p.parent for p in (ROOT / top).rglob("*.py"))]
        if not (folder / "__init__.py").exists()
    ]
    assert sorted(set(missing)) == []


def test_the_rules_see_real_imports() -> None:
    """The checks above parse what they should: a known import of each kind is found."""
    tree = ast.parse("from . import x\nfrom ..core import y\nimport tools.harness\n")
    found = [name for _line, name in _imported(tree, "app.faces.engine", is_package=False)]
    assert found == ["app.faces", "app.core", "tools.harness"]
    edits = ast.parse("import sys\nsys.path.insert(0, 'x')\nsys.path[:0] = ['y']\nsite.addsitedir('z')")
    assert sorted(_sys_path_edits(edits)) == [2, 3, 4]
