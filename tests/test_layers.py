"""The layer rule and the size rule, read from the code itself.

Every non-test module's imports are read with ``ast`` (imports inside functions too, relative
ones resolved) and mapped to the part of Hearth they belong to. The arrows allowed are those of
docs/architecture.md:

    api      → models, services, settings        (never tasks, never relay)
    relay    → models, services, settings        (never api, never tasks)
    tasks    → models, services, settings, celeryconfig
    services → services, settings
    models   → models, settings
    schedules → settings; celeryconfig → schedules, settings; settings → nothing of ours
    ops, bench → anything

Arrows that break the rule today are listed in ``KNOWN_VIOLATIONS``; the list may only shrink: a new
violation fails, and so does a listed one that no longer occurs (delete it from the list). The same
holds for import cycles (between packages, and between modules of one package) and for modules over
``MAX_LINES`` lines.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The parts of Hearth: packages and top-level modules. Anything else imported is a library.
PARTS = ("api", "relay", "tasks", "models", "services", "schedules", "ops", "bench", "settings", "celeryconfig")
ANYTHING = frozenset(PARTS)
ALLOWED = {
    "api": {"api", "models", "services", "settings"},
    "relay": {"relay", "models", "services", "settings"},
    "tasks": {"tasks", "models", "services", "settings", "celeryconfig"},
    "services": {"services", "settings", "celeryconfig"},
    "models": {"models", "settings"},
    "schedules": {"schedules", "settings"},
    "celeryconfig": {"schedules", "settings"},
    "settings": {"settings"},
    "ops": ANYTHING,
    "bench": ANYTHING,
}
MAX_LINES = 400

# (importing module, imported module) pairs against the rule. Fix one, then delete its line.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()
# Strongly connected groups of the package graph (edges between different parts).
KNOWN_PACKAGE_CYCLES: set[frozenset[str]] = set()
# Strongly connected groups of modules inside one package.
KNOWN_MODULE_CYCLES: set[frozenset[str]] = set()
# Modules over MAX_LINES lines (migrations excepted); split one, then delete its line.
KNOWN_LONG_MODULES: set[str] = set()


def source_files() -> list[pathlib.Path]:
    files = []
    for part in PARTS:
        if (ROOT / f"{part}.py").is_file():
            files.append(ROOT / f"{part}.py")
        if (ROOT / part).is_dir():
            files.extend(sorted((ROOT / part).rglob("*.py")))
    return files


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: pathlib.Path) -> bool:
    return path.name == "__init__.py"


def imported_modules(path: pathlib.Path, modules: set[str], *, type_only: bool = True) -> set[str]:
    """Every module of Hearth that ``path`` imports, anywhere in the file, as the most specific name that exists.

    With ``type_only=False``, imports under ``if TYPE_CHECKING:`` are left out: they never run, so they
    make no cycle (they still count for the layers: a type names what a module depends on).
    """
    return imports_in(path.read_text(), module_name(path), is_package(path), modules, type_only=type_only)


def _type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_in(source: str, name: str, package_init: bool, modules: set[str], *, type_only: bool = True) -> set[str]:
    package = name if package_init else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(source, name)
    skipped: set[int] = set()
    if not type_only:
        for block in filter(_type_checking_block, ast.walk(tree)):
            skipped |= {id(node) for statement in block.body for node in ast.walk(statement)}

    def resolve(dotted: str) -> str | None:
        # The longest prefix of ``dotted`` that is one of our modules.
        pieces = dotted.split(".")
        for end in range(len(pieces), 0, -1):
            candidate = ".".join(pieces[:end])
            if candidate in modules:
                return candidate
        return None

    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := resolve(alias.name)) is not None:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                # ``from api import errors`` imports the module api.errors when there is one.
                target = resolve(f"{origin}.{alias.name}") or resolve(origin)
                if target is not None:
                    found.add(target)
    found.discard(name)
    return found


def part_of(module: str) -> str:
    return module.partition(".")[0]


def import_graph(*, type_only: bool = True) -> dict[str, set[str]]:
    files = source_files()
    modules = {module_name(path) for path in files}
    return {module_name(path): imported_modules(path, modules, type_only=type_only) for path in files}


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm: the groups of two or more nodes that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def compare(found: set, known: set, what: str) -> list[str]:
    problems = [f"new {what}: {item}" for item in sorted(found - known, key=str)]
    problems += [
        f"gone (delete it from the known list in tests/test_layers.py): {what} {item}"
        for item in sorted(known - found, key=str)
    ]
    return problems


def test_the_scanner_resolves_relative_imports_and_sees_imports_inside_functions():
    modules = {"api", "api.errors", "api.resources", "api.resources.search", "models", "models.db", "tasks.base"}
    source = (
        "import json\n"
        "from . import search\n"
        "from ..errors import Problem\n"
        "from .. import errors\n"
        "def later():\n"
        "    import tasks.base\n"
        "    from models.db import db\n"
    )
    found = imports_in(source, "api.resources.phone", False, modules)
    assert found == {"api.resources.search", "api.errors", "tasks.base", "models.db"}
    assert imports_in("from .search import x\n", "api.resources", True, modules) == {"api.resources.search"}
    typed = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from models.db import db\n"
    assert imports_in(typed, "api.app", False, modules) == {"models.db"}
    assert imports_in(typed, "api.app", False, modules, type_only=False) == set()
    # And on the tree: ops.cli imports ops.devservices only inside functions.
    assert "ops.devservices" in import_graph()["ops.cli"]


def test_imports_follow_the_layers():
    violations = set()
    for module, targets in import_graph().items():
        allowed = ALLOWED[part_of(module)]
        violations |= {(module, target) for target in targets if part_of(target) not in allowed}
    assert compare(violations, KNOWN_VIOLATIONS, "import against the layers") == []


def test_no_import_cycles_between_packages():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph(type_only=False).items():
        packages[part_of(module)] |= {part_of(t) for t in targets if part_of(t) != part_of(module)}
    found = set(strongly_connected(packages))
    assert compare(found, KNOWN_PACKAGE_CYCLES, "import cycle between packages") == []


def test_no_import_cycles_between_modules_of_a_package():
    found = set()
    graph = import_graph(type_only=False)
    for part in PARTS:
        inside = {
            module: {t for t in targets if part_of(t) == part}
            for module, targets in graph.items()
            if part_of(module) == part
        }
        found |= set(strongly_connected(inside))
    assert compare(found, KNOWN_MODULE_CYCLES, "import cycle between modules") == []


def test_modules_stay_small():
    long = set()
    for path in source_files():
        relative = path.relative_to(ROOT).as_posix()
        if "/migrations/" in relative:
            continue
        if len(path.read_text().splitlines()) > MAX_LINES:
            long.add(relative)
    assert compare(long, KNOWN_LONG_MODULES, f"module over {MAX_LINES} lines") == []


def test_every_part_has_a_rule():
    assert set(ALLOWED) == set(PARTS)
    assert {part_of(module) for module in import_graph()} <= set(PARTS)
