"""The committed notebooks as a student opens them: no papermill-injected parameters (JupyterLab's Run All would
override the parameters cell), no path of the machine that ran them, an annotated parameters cell that papermill
reads (``--help-notebook``), and the parameters checked in the very next cell."""

import ast
import json
import re
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from gansurvey.notebook import is_registered, parameter_specs
from gansurvey.runner import strip_injected

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
#: Absolute paths of the machine that executed a notebook (Linux, macOS and Windows homes, temporary folders).
MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/tmp/|/root/|/home/|/Users/|/private/var/|[A-Z]:\\\\Users)")


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_injected_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in _tags(c)
                or (c.cell_type == "code" and c.source.startswith("# Parameters"))]
    assert not injected, f"{path.name}: cells {injected} were injected by papermill; run " \
                         f"`python -m gansurvey strip-injected` before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_output_carries_a_machine_path(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            text = json.dumps(output)
            found = MACHINE_PATH.search(text)
            assert not found, f"{path.name} cell {index} prints a machine path: ...{text[found.start():][:80]}"
    run = nb.metadata.get("papermill", {})
    assert run.get("input_path") is None and run.get("output_path") is None, \
        f"{path.name}: papermill's metadata names the machine's paths; run `python -m gansurvey strip-injected`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_annotated_and_checked_next(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in _tags(c)]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', want exactly one"
    cell = nb.cells[tagged[0]]
    body = ast.parse(cell.source).body
    # ``from typing import Optional`` may open the cell, for annotations papermill can read (it cannot read X | None)
    plain = [ast.unparse(node) for node in body if not isinstance(node, ast.AnnAssign)
             and not (isinstance(node, ast.ImportFrom) and node.module == "typing")]
    assert not plain, f"{path.name}: parameters without a type annotation (name: type = value): {plain}"
    names = [node.target.id for node in body if isinstance(node, ast.AnnAssign)]
    inspected = pm.inspect_notebook(str(path))  # what `papermill --help-notebook` shows
    assert list(inspected) == names, f"{path.name}: papermill cannot read {set(names) - set(inspected)} " \
                                     f"(a comment holding '=' hides a parameter from it)"
    assert all(p["inferred_type_name"] != "None" and p["help"] for p in inspected.values())
    if is_registered(path.stem):
        assert names == list(parameter_specs(path.stem)), f"{path.name}: gansurvey.notebook is out of step"
    check = nb.cells[tagged[0] + 1]
    assert check.cell_type == "code" and f'notebook_parameters("{path.stem}", globals())' in check.source, \
        f"{path.name}: the cell after the parameters cell must check them"


def test_strip_injected_removes_only_the_injected_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile: str = "quick"  # "quick" or "full"')
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell('# Parameters\nprofile = "full"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells = [params, injected, nbformat.v4.new_code_cell("print(profile)")]
    nb.metadata["papermill"] = {"input_path": "/home/someone/x.ipynb", "output_path": "/tmp/y.ipynb",
                                "parameters": {"profile": "full"}}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert strip_injected(path) is True
    stripped = nbformat.read(path, as_version=4)
    assert [c.source for c in stripped.cells] == [params.source, "print(profile)"]
    assert stripped.metadata["papermill"] == {"input_path": None, "output_path": None,
                                              "parameters": {"profile": "full"}}
    assert strip_injected(path) is False
