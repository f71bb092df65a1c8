"""No import cycle among the product's modules (media_worker/, kemi/, storage/): every
import counts, at module level, inside functions and under TYPE_CHECKING, since each is
a dependency a reader has to follow. Read from the source (AST), nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("media_worker", "kemi", "storage")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported_modules(module: str, path: Path, files: dict[str, Path]) -> set[str]:
    """The modules of the packages that ``module`` imports: ``from X import y`` is X.y
    when that is a module, else X (the package whose __init__ y comes from)."""
    is_package = path.name == "__init__.py"
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, *([source] if source else [])])
            names += (
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in files else source
                for alias in node.names
            )
    return {name for name in names if name in files and name != module}


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the packages it imports."""
    files = module_files()
    return {module: imported_modules(module, path, files) for module, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, for the message."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "media_worker.provisioning.provision" in graph["media_worker.provisioning.kamdb"]
    assert "kemi.workers" in graph["kemi.proxy"]  # after a sys.path change in the script


def test_imports_in_functions_under_type_checking_and_relative_ones_count(
    tmp_path: Path,
) -> None:
    source = tmp_path / "a.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.b import B\n"
        "def f() -> None:\n    import pkg.c\n"
        "from . import d\nfrom .e import thing\nimport json\n"
    )
    files = {name: tmp_path / "x.py" for name in ("pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.e")}
    found = imported_modules("pkg.a", source, files)
    assert found == {"pkg.b", "pkg.c", "pkg.d", "pkg.e"}


def test_cycles_are_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "a"}}
    assert cycles(graph) == [["a", "b", "c"]]  # a module importing itself is no cycle
    assert shortest_cycle(graph, {"a", "b", "c"}) == ["a", "b", "c", "a"]


def test_no_import_cycle() -> None:
    graph = import_graph()
    found = [
        f"{', '.join(component)}: {' -> '.join(shortest_cycle(graph, set(component)))}"
        for component in cycles(graph)
    ]
    assert not found, "import cycles (modules: one cycle among them):\n" + "\n".join(found)
