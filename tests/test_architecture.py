"""The package's layout is its architecture: wings import only wings below them, and no module
imports itself back through others. Every import counts, at the top of a module or inside a
function (a lazy import is still an arrow), and under TYPE_CHECKING too (mypy follows those)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "flux_ci"

# From the ground up. A unit is a wing (sub-package) or a single module of the package's root. A
# module may import its own unit and any unit of a lower floor, never one of its own floor or above.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("flux_ci.errors",),
    ("flux_ci.secrets", "flux_ci.deadline"),
    ("flux_ci.tools",),
    ("flux_ci.report",),
    ("flux_ci.config",),
    ("flux_ci.context",),
    ("flux_ci.kube", "flux_ci.registry"),
    ("flux_ci.delivery",),
    ("flux_ci.commands",),
    ("flux_ci.cli",),
    ("flux_ci.__main__",),
)
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}
VERSION_MODULE = "flux_ci"  # flux_ci/__init__.py holds only __version__: anyone may read it


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The flux_ci modules a file imports (a name imported from a package counts as its module)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("flux_ci"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flux_ci"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield candidate if candidate in modules else node.module


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: set(_imports(path, modules)) - {name} for name, path in modules.items()}


def test_every_unit_has_a_floor() -> None:
    units = {_unit(module) for module in _graph()} - {VERSION_MODULE}
    assert units - set(FLOOR) == set(), "add the new wing or module to FLOORS"


def test_no_arrow_points_up_or_sideways() -> None:
    wrong = []
    for module, imported in _graph().items():
        unit = _unit(module)
        for target in imported:
            other = _unit(target)
            if other in (unit, VERSION_MODULE) or unit == VERSION_MODULE:
                continue
            if FLOOR[other] >= FLOOR[unit]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target in graph and state.get(target) is None:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if state.get(module) is None:
            visit(module, [module])
    assert cycles == []


def test_the_checks_see_lazy_imports() -> None:
    # cli.specs imports each command's module inside a function: the graph must still hold it.
    assert "flux_ci.commands.deploy" in _graph()["flux_ci.cli.specs"]


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_each_wing_says_what_it_owns() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.parent.name} has no docstring"
