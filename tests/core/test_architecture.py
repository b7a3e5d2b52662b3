"""The shape of ``core``: no import cycles (imports inside functions included), small modules,
and a package face that says what each folder owns.

``lint-imports`` (pyproject.toml) checks that the layers only import downwards; this checks the
modules one by one, which a layers contract cannot see inside one package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(CORE.rglob("*.py")) if "migrations" not in p.parts}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every core module that ``path`` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # "from core.x import y" imports the module core.x.y when there is one, else core.x.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def import_graph() -> dict[str, set[str]]:
    modules = core_modules()
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def test_no_import_cycles_in_core_counting_imports_inside_functions() -> None:
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles in core (imports inside functions count too):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function() -> None:
    # The same reading as above, on two made-up modules: one imports the other inside a function.
    graph = {"core.a": {"core.b"}, "core.b": {"core.a"}, "core.c": {"core.a"}}
    assert find_cycles(graph) == [["core.a", "core.b"]]


def test_function_level_imports_are_read(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from core.common import fileio\n    import core.imaging.decode\n")
    found = imports_of(source, "core.x.mod", {"core.common.fileio", "core.imaging.decode", "core.common"})
    assert found == {"core.common.fileio", "core.imaging.decode"}


@pytest.mark.parametrize("name", sorted(core_modules()))
def test_no_module_in_core_is_over_600_lines(name: str) -> None:
    lines = core_modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by concern (at most {MAX_LINES})"


@pytest.mark.parametrize(
    "package", sorted(p.parent.name for p in CORE.glob("*/__init__.py") if p.parent.name != "migrations")
)
def test_each_package_says_what_it_owns(package: str) -> None:
    tree = ast.parse((CORE / package / "__init__.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc and len(doc.split()) >= 8, f"core/{package}/__init__.py must say what the package owns"
