"""#22: what a notebook depends on is computed from its code (gansurvey.dependencies)."""

from pathlib import Path

import nbformat
import pytest

from gansurvey.checks import GanSurveyError, project_root
from gansurvey.dependencies import (
    PackageGraph,
    dependency_digests,
    file_digest,
    notebook_dependencies,
    notebook_digest,
)

#: A small checkout: a package with every import form the analysis follows, data files read and not read, and a
#: module no notebook reaches. ``common`` is imported by every notebook's closure, ``a`` by 01 only, ``z`` by 04 only.
FAKE_PACKAGE = {
    "gansurvey/__init__.py": '_PUBLIC = {"lazy_name": "gansurvey.lazy"}\n',
    "gansurvey/lazy.py": "VALUE = 1\n",
    "gansurvey/config.py": "from pathlib import Path\n\ndef data_dir():\n    return Path('data')\n",
    "gansurvey/common.py": "from gansurvey.config import data_dir\n\nTABLE = data_dir() / 'table.csv'\n",
    "gansurvey/a/__init__.py": "from .b import thing\n",
    "gansurvey/a/b.py": "from gansurvey import common\n\ndef thing():\n    from . import c\n    return c\n",
    "gansurvey/a/c.py": "from .. import config\nimport gansurvey.deep.inner as inner\n",
    "gansurvey/deep/__init__.py": "",
    "gansurvey/deep/inner.py": "from gansurvey.config import data_dir\nWEIGHTS = data_dir() / 'weights'\n",
    "gansurvey/z.py": "import gansurvey.common\n",
    "gansurvey/unused.py": "from gansurvey.config import data_dir\nOTHER = data_dir() / 'other.csv'\n",
    "data/table.csv": "a,b\n1,2\n",
    "data/other.csv": "x\n1\n",
    "data/weights/one.pt": "weights",
    "data/weights/.one.pt.123.tmp": "half a file",
    "data/loose.txt": "named by no module",
}


def notebook(path: Path, *cells: str) -> Path:
    """A notebook with a ``parameters`` cell (profile and seed) and ``cells`` as its code cells."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(cell) for cell in cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def fake_checkout(root: Path) -> Path:
    """:data:`FAKE_PACKAGE` and three notebooks under ``root``: ``01_pruning`` (imports ``a``, through IPython
    lines), ``04_precision`` (imports ``z``) and ``06_combinations`` (imports nothing of the package; reads the
    records of 01-05)."""
    for name, text in FAKE_PACKAGE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    notebook(root / "notebooks" / "01_pruning.ipynb", "%matplotlib inline\n!ls\nimport gansurvey.a as a",
             "  %time x = 1\nprint(a)")
    notebook(root / "notebooks" / "04_precision.ipynb", "from gansurvey import z")
    notebook(root / "notebooks" / "06_combinations.ipynb", "import json")
    return root


def test_closure_follows_every_import_form_and_only_the_data_its_modules_read(tmp_path):
    root = fake_checkout(tmp_path)
    graph = PackageGraph(root)
    deps = notebook_dependencies(root / "notebooks" / "01_pruning.ipynb", "quick", root / "results", graph)
    assert list(deps) == [
        "data/table.csv",  # common.py: data_dir() / "table.csv"
        "data/weights/one.pt",  # deep/inner.py: data_dir() / "weights", the folder's tracked files, no temporary
        "gansurvey/__init__.py",
        "gansurvey/a/__init__.py",
        "gansurvey/a/b.py",  # a/__init__: from .b import thing
        "gansurvey/a/c.py",  # b.py: from . import c, inside a function
        "gansurvey/common.py",  # b.py: from gansurvey import common
        "gansurvey/config.py",  # c.py: from .. import config
        "gansurvey/deep/__init__.py",  # c.py: import gansurvey.deep.inner (its package's __init__ runs first)
        "gansurvey/deep/inner.py",
        "gansurvey/lazy.py",  # named as a string in __init__ (a lazy loader)
        "notebooks/01_pruning.ipynb",
    ]
    assert deps["data/table.csv"] == root / "data" / "table.csv"
    other = notebook_dependencies(root / "notebooks" / "04_precision.ipynb", "quick", root / "results", graph)
    assert "gansurvey/z.py" in other and "gansurvey/a/b.py" not in other and "data/weights/one.pt" not in other
    assert "gansurvey/z.py" not in deps and "gansurvey/unused.py" not in deps and "data/other.csv" not in deps


def test_readers_of_other_notebooks_records_depend_on_those_records(tmp_path):
    root = fake_checkout(tmp_path)
    digests = dependency_digests(root / "notebooks" / "06_combinations.ipynb", "full", root / "out",
                                 PackageGraph(root))
    # keyed as in a default checkout, read from the folder given; a records file not written yet has no digest
    assert digests == {"notebooks/06_combinations.ipynb": notebook_digest(root / "notebooks" / "06_combinations.ipynb"),
                       **{f"results/full/{name}.csv": None for name in ("01_pruning", "02_distillation",
                                                                        "03_low_rank", "04_precision",
                                                                        "05_encoding")}}
    (root / "out").mkdir()
    (root / "out" / "03_low_rank.csv").write_text("records")
    again = dependency_digests(root / "notebooks" / "06_combinations.ipynb", "full", root / "out",
                               PackageGraph(root))
    assert again["results/full/03_low_rank.csv"] == file_digest(root / "out" / "03_low_rank.csv") is not None


def test_a_notebook_digest_follows_what_runs_not_the_outputs_it_was_committed_with(tmp_path):
    path = notebook(tmp_path / "01_pruning.ipynb", "x = 1\nprint(x)")
    before = notebook_digest(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[1].execution_count = 7
    nb.metadata["papermill"] = {"duration": 12.5}
    nbformat.write(nb, path)
    assert notebook_digest(path) == before != file_digest(path)  # re-executed: the same code
    for change in ("source", "tags"):
        edited = nbformat.read(path, as_version=4)
        if change == "source":
            edited.cells[1].source = "x = 2\nprint(x)"
        else:
            edited.cells[0].metadata["tags"] = []  # papermill would no longer find the parameters cell
        nbformat.write(edited, tmp_path / f"{change}.ipynb")
        assert notebook_digest(tmp_path / f"{change}.ipynb") != before, change
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert notebook_digest(tmp_path / "broken.ipynb") == file_digest(tmp_path / "broken.ipynb")
    assert notebook_digest(tmp_path / "absent.ipynb") is None


def test_a_cell_that_is_not_python_and_a_folder_without_the_package_are_refused(tmp_path):
    root = fake_checkout(tmp_path)
    bad = notebook(root / "notebooks" / "09_bad.ipynb", "import gansurvey.a", "def broken(:\n    pass")
    with pytest.raises(GanSurveyError, match=r"notebooks/09_bad\.ipynb: cell 3 is not Python"):
        notebook_dependencies(bad, "quick", root / "results", PackageGraph(root))
    with pytest.raises(GanSurveyError, match=r"is not the gansurvey package \(no __init__\.py\).*GANSURVEY_ROOT"):
        PackageGraph(tmp_path / "elsewhere")


def test_real_notebooks_depend_on_their_own_technique_only():
    graph = PackageGraph(project_root())
    folder = project_root() / "notebooks"

    def deps(name):
        return notebook_dependencies(folder / f"{name}.ipynb", "full", project_root() / "results" / "full", graph)

    pruning, precision = deps("01_pruning"), deps("04_precision")
    assert "gansurvey/experiments/pruning.py" in pruning and "gansurvey/experiments/precision.py" not in pruning
    assert "gansurvey/experiments/precision.py" in precision and "gansurvey/experiments/pruning.py" not in precision
    for found in (pruning, precision):  # every notebook loads the shipped teachers and prices energy
        assert {"data/teachers/mnist-dcgan.pt", "data/teachers/mnist-dcgan.json", "data/energy_45nm.csv",
                "gansurvey/__init__.py", "gansurvey/experiments/__init__.py"} <= set(found)
        assert "gansurvey/runner.py" not in found and not any(k.startswith("results/") for k in found)
    assert "data/literature.csv" in deps("03_low_rank") and "data/literature.csv" not in pruning
    assert [k for k in deps("06_combinations") if k.startswith("results/")] == [
        f"results/full/{n}.csv" for n in ("01_pruning", "02_distillation", "03_low_rank", "04_precision",
                                          "05_encoding")]
    assert len([k for k in deps("07_survey_tables") if k.startswith("results/full/")]) == 7


def test_the_package_reads_data_only_where_the_attribution_sees_it():
    """The modules that read data/ today (through config.data_dir) are the ones the analysis attributes its entries
    to, each with the entry it reads."""
    graph = PackageGraph(project_root())
    readers = {module: refs & {"energy_45nm.csv", "literature.csv", "teachers"}
               for module in graph.paths if (refs := graph.data_references(module))}
    readers = {module: refs for module, refs in readers.items() if refs}
    assert readers == {"gansurvey.metrics.energy": {"energy_45nm.csv"}, "gansurvey.zoo": {"teachers"},
                       "gansurvey.survey.literature": {"literature.csv"}}
