"""What one notebook depends on, computed from its code, so that ``regenerate`` re-runs a notebook only when a file
it reads changed (a full run takes about an hour per notebook on a CPU; a digest of the whole package made every
edit re-run all of them).

A notebook depends on

- itself (``notebooks/<name>.ipynb``): its cells' kinds, sources and tags (:func:`notebook_digest`), not the
  outputs it was committed with, so re-executing the committed quick notebooks leaves the full runs current;
- the package modules its code cells import, closed over the package's own imports (:func:`module_closure`):
  ``import gansurvey.x``, ``from gansurvey.x import y`` (``y`` a submodule or a name), ``from gansurvey import x``,
  relative imports, module names written as strings (``importlib.import_module`` and the lazy loaders, the way
  ``tests/test_layers.py`` counts them), and the ``__init__.py`` of every package on the way, which Python runs
  before the module. Imports inside functions count too: the analysis cannot tell which functions run, so it
  over-approximates (a spurious re-run costs time; a missed one leaves wrong numbers);
- the tracked files under ``data/`` that a module of that closure can read (:func:`data_files`);
- the records of the notebooks it reads (:data:`RECORDS_READ`), ``results/<profile>/<name>.csv``.

Keys are paths as in a checkout with the default folders: the package and ``data/`` relative to the project root,
the notebook as ``notebooks/<name>.ipynb`` and records as ``results/<profile>/<name>.csv`` even when ``regenerate``
was given other folders (tests, ``GANSURVEY_RESULTS``), so a manifest reads the same on every machine.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from gansurvey.checks import GanSurveyError, display_path, project_root
from gansurvey.config import FAMILY_NOTEBOOKS
from gansurvey.io import notebook_sha256, sha256_bytes

#: The package whose modules are followed.
PACKAGE = "gansurvey"

#: Notebooks that read other notebooks' records, which no import shows: ``06_combinations`` plots the trained arms
#: of 01-05 (``experiments.combinations.stored_family_records``), ``07_survey_tables`` shows every measuring
#: notebook's records (``ResultsStore(profile).load_all()``). A records file that does not exist yet is a
#: dependency too: when it appears, the reader is stale.
RECORDS_READ: dict[str, tuple[str, ...]] = {
    "06_combinations": FAMILY_NOTEBOOKS,
    "07_survey_tables": ("00_background", *FAMILY_NOTEBOOKS, "06_combinations"),
}

#: The function through which modules read ``data/`` (``gansurvey.config.data_dir``).
DATA_DIR_FUNCTION = "data_dir"


def file_digest(path: Path) -> str | None:
    """SHA-256 of the file's bytes, or None when there is no such file."""
    return sha256_bytes(path.read_bytes()) if path.is_file() else None


def notebook_digest(path: Path) -> str | None:
    """:func:`gansurvey.io.notebook_sha256` of the notebook's file (its cells' kinds, sources and tags, not its
    outputs), or None when there is no such file."""
    return notebook_sha256(path.read_bytes()) if path.is_file() else None


def _is_module_name(text: str) -> bool:
    return re.fullmatch(rf"{PACKAGE}(\.\w+)+", text) is not None


class PackageGraph:
    """The package's modules under ``root`` and the package modules each one imports, read once.

    Reading costs a parse of every module (well under a second); build one per decision, not one per run, so a file
    edited during an hour-long regeneration is seen by the notebooks that start after the edit.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else project_root()
        package_dir = self.root / PACKAGE
        if not (package_dir / "__init__.py").is_file():
            raise GanSurveyError(f"{display_path(package_dir)} is not the {PACKAGE} package (no __init__.py); set "
                                 f"GANSURVEY_ROOT to the checkout that holds it")
        self.paths: dict[str, Path] = {}
        for path in sorted(package_dir.rglob("*.py")):
            parts = path.relative_to(self.root).with_suffix("").parts
            self.paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
        self._trees: dict[str, ast.Module] = {}

    def tree(self, module: str) -> ast.Module:
        if module not in self._trees:
            path = self.paths[module]
            try:
                self._trees[module] = ast.parse(path.read_text(), filename=str(path))
            except (SyntaxError, UnicodeDecodeError) as exc:
                raise GanSurveyError(f"{display_path(path)} cannot be parsed ({exc}), so the notebooks that import "
                                     f"it cannot be told apart from those that do not") from exc
        return self._trees[module]

    def is_package(self, module: str) -> bool:
        return self.paths[module].name == "__init__.py"

    def imports(self, tree: ast.AST, module: str | None = None) -> set[str]:
        """The package modules ``tree`` imports, each with the packages above it (their ``__init__`` runs first).

        ``module`` is the importing module's name, for relative imports; None for a notebook's cells.
        """
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(node, module)
                if base is None:
                    continue
                found.add(base)
                # ``from a import b``: b is a submodule or a name defined in a; a is imported either way
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_module_name(node.value):
                found.add(node.value)
        closed = set()
        for name in found:
            parts = name.split(".")
            closed.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
        return {name for name in closed if name in self.paths}

    def _absolute(self, node: ast.ImportFrom, module: str | None) -> str | None:
        if node.level == 0:
            return node.module
        if module is None:
            return None  # a relative import in a notebook cell imports nothing of the package
        parts = module.split(".") if self.is_package(module) else module.split(".")[:-1]
        if node.level - 1 >= len(parts):
            return None
        parts = parts[:len(parts) - (node.level - 1)]
        return ".".join(parts + ([node.module] if node.module else []))

    def closure(self, modules: Iterable[str]) -> set[str]:
        """``modules`` and every package module they import, directly or not."""
        seen: set[str] = set()
        todo = [m for m in modules if m in self.paths]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            todo.extend(self.imports(self.tree(module), module) - seen)
        return seen

    def data_references(self, module: str) -> set[str]:
        """The names a module that calls ``data_dir`` joins to it (every string constant of the module; the entries
        of ``data/`` among them are what :func:`data_files` keeps). Empty for a module that never names
        ``data_dir``."""
        tree = self.tree(module)
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        if DATA_DIR_FUNCTION not in names:
            return set()
        return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def notebook_modules(notebook: Path, graph: PackageGraph) -> set[str]:
    """The package modules ``notebook``'s code cells import (not closed; see :meth:`PackageGraph.closure`).

    IPython lines (``%magic``, ``!shell``) are dropped before parsing; a cell that still is not Python is refused,
    naming it, since what it imports cannot be known.
    """
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise GanSurveyError(f"{display_path(notebook)} cannot be read as a Jupyter notebook ({exc}), so what it "
                             f"imports is unknown") from exc
    found: set[str] = set()
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise GanSurveyError(f"{display_path(notebook)}: cell {index} is not Python ({exc.msg}, line "
                                 f"{exc.lineno}), so what it imports is unknown") from exc
        found |= graph.imports(tree)
    return found


def tracked_data_files(root: Path) -> list[Path]:
    """The files under ``root/data`` that git tracks; every file there but hidden ones outside a git checkout
    (an unpacked release, a test's folder)."""
    folder = root / "data"
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", "data"], cwd=root, capture_output=True, timeout=20,
                                check=True).stdout.decode().split("\0")
        return sorted(root / name for name in listed if name)
    except (OSError, subprocess.SubprocessError):
        pass
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def data_files(modules: Iterable[str], graph: PackageGraph) -> list[Path]:
    """The tracked files under ``data/`` that ``modules`` can read.

    Modules read ``data/`` through ``data_dir()`` joined with a literal name: ``data_dir() / "literature.csv"``,
    ``data_dir() / "teachers"``. A top-level entry of ``data/`` (file or folder) belongs to the modules that name
    ``data_dir`` and hold that entry's name as a string; a folder brings every tracked file in it (which teacher a
    module loads is decided at run time). A module that built a ``data/`` path some other way would be missed: the
    package has none (``tests/test_dependencies.py`` checks the three readers it has).
    """
    files = tracked_data_files(graph.root)
    folder = graph.root / "data"
    referenced: set[str] = set()
    for module in modules:
        referenced |= graph.data_references(module)
    return [path for path in files if path.relative_to(folder).parts[0] in referenced]


def notebook_dependencies(notebook: Path, profile: str, records: Path | None = None,
                          graph: PackageGraph | None = None) -> dict[str, Path]:
    """Every file ``notebook`` depends on: its key (see the module's docstring) and where it lies now.

    ``records`` is the folder of the profile's records (default ``results/<profile>/``), where the records of
    :data:`RECORDS_READ` are read.
    """
    from gansurvey.config import results_dir

    graph = graph or PackageGraph()
    records = records if records is not None else results_dir(profile)
    modules = graph.closure(notebook_modules(notebook, graph))
    found = {f"notebooks/{notebook.name}": notebook}
    for path in [graph.paths[m] for m in modules] + data_files(modules, graph):
        found[path.relative_to(graph.root).as_posix()] = path
    for name in RECORDS_READ.get(notebook.stem, ()):
        found[f"results/{profile}/{name}.csv"] = records / f"{name}.csv"
    return dict(sorted(found.items()))


def dependency_digests(notebook: Path, profile: str, records: Path | None = None,
                       graph: PackageGraph | None = None) -> dict[str, str | None]:
    """:func:`notebook_dependencies` with the SHA-256 of each file's bytes, a notebook's by :func:`notebook_digest`
    (None: a records file not written yet)."""
    return {key: notebook_digest(path) if key.endswith(".ipynb") else file_digest(path)
            for key, path in notebook_dependencies(notebook, profile, records, graph).items()}
