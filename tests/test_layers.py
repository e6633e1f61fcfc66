"""The package's shape, read from its source: no import cycle, applications on public names only,
no module reaching into another's underscore names, every module under 300 lines."""

from __future__ import annotations

import ast
import pathlib

import pytest

JGD = pathlib.Path(__file__).resolve().parent.parent / "jgd"
APPS = ("jgd.tour", "jgd.bench", "jgd.cli", "jgd.apps")


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(JGD.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(JGD.rglob("*.py"))}


def _imported(path: pathlib.Path) -> list[tuple[str, str | None, str]]:
    """``(module, name or None, alias)`` for every import of the file, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, None, a.asname or a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, a.name, a.asname or a.name) for a in node.names]
    return found


def _edges(path: pathlib.Path) -> set[str]:
    """The jgd modules a file imports (``from jgd import _x`` imports ``jgd._x``)."""
    out = set()
    for module, name, _ in _imported(path):
        if not module.startswith("jgd"):
            continue
        target = f"{module}.{name}" if name and f"{module}.{name}" in MODULES else module
        if target in MODULES:
            out.add(target)
    return out


def test_no_import_cycle_anywhere_in_jgd():
    graph = {m: _edges(p) - {m} for m, p in MODULES.items()}
    for m in graph:  # a package's __init__ importing its own modules is how it re-exports
        graph[m] = {t for t in graph[m] if not (m != "jgd" and t.startswith(m + "."))}
    graph["jgd"] = {t for t in graph["jgd"] if t.count(".") == 1}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                cycle = [*trail[trail.index(t) :], t] if t in trail else [m, t]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if state.get(t) is None:
                visit(t, [*trail, t])
        state[m] = 2

    for m in sorted(graph):
        if m != "jgd" and state.get(m) is None:
            visit(m, [m])


def _app_of(module: str) -> str | None:
    return next((a for a in APPS if module == a or module.startswith(a + ".")), None)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _app_of(m)))
def test_the_applications_use_only_public_names_of_the_library(module):
    own = _app_of(module)
    for target, name, _ in _imported(MODULES[module]):
        if not target.startswith("jgd") or _app_of(target) == own:
            continue
        full = f"{target}.{name}" if name else target
        private = [p for p in full.split(".") if p.startswith("_")]
        assert not private, f"{module} imports {full}, a private name of the library"
    text = MODULES[module].read_text()
    assert "jgd._" not in text, f"{module} names a private module of jgd"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_uses_another_modules_underscore_names(module):
    tree = ast.parse(MODULES[module].read_text())
    aliases = {}
    for target, name, alias in _imported(MODULES[module]):
        if not target.startswith("jgd"):
            continue
        if name is not None and name.startswith("_") and f"{target}.{name}" not in MODULES:
            pytest.fail(f"{module} imports {name} from {target}: an underscore name")
        aliases[alias] = target if name is None else f"{target}.{name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and f"{aliases[node.value.id]}.{node.attr}" not in MODULES
        ):
            pytest.fail(f"{module} uses {node.value.id}.{node.attr} (line {node.lineno})")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_is_under_300_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 300, f"{module} has {lines} lines"
