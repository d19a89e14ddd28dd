"""The package's import graph: no cycles, and no module imports from a higher layer (DESIGN.md: lower layers never
import higher ones). Edges come from every import statement, lazy ones inside functions included, and from module
names written as strings (``importlib.import_module("gansurvey....")``), which a plain import graph would miss."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import gansurvey

PACKAGE = Path(gansurvey.__file__).parent

#: Layers from the bottom up; a module may import its own layer and those below. The first matching prefix wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # dependencies: what a notebook reads, from its code (the project's files, like config; imports only base)
    ("base", ("gansurvey.checks", "gansurvey.io", "gansurvey.config", "gansurvey.dependencies")),
    ("data", ("gansurvey.data",)),
    ("models", ("gansurvey.models",)),
    ("kernels", ("gansurvey.kernels",)),
    ("layers", ("gansurvey.layers",)),
    ("train", ("gansurvey.train",)),
    ("zoo", ("gansurvey.zoo",)),
    ("metrics", ("gansurvey.metrics",)),
    ("compress", ("gansurvey.compress",)),
    ("benchmarks", ("gansurvey.benchmarks",)),
    ("records", ("gansurvey.records",)),
    ("study", ("gansurvey.measuring", "gansurvey.experiments", "gansurvey.claims")),
    ("survey", ("gansurvey.survey", "gansurvey.plots")),
    ("face", ("gansurvey.notebook", "gansurvey.runner", "gansurvey.readme_table", "gansurvey.cli", "gansurvey.__main__",
              "gansurvey")),
)
MODULE_STRING = re.compile(r"^gansurvey(\.\w+)+$")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports (``from a import b`` counts ``a.b`` when ``b`` is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= submodules
            if len(submodules) < len(node.names):  # some names are the module's own
                found.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            found.add(node.value)  # a module named in a string: importlib, a lazy loader
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, set(mods)) - {name} for name, path in mods.items()}


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS: add it")


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in graph().items() for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_cycles():
    # A package imports its submodules, so an edge from a submodule to its own package (its __init__) is only
    # a cycle when that package's __init__ imports the submodule back; it is counted like any other edge.
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node}->{nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
