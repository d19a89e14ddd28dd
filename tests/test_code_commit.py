"""``code_commit``: what records name as the code that wrote them. Output a run writes into the checkout (records
under results/, a re-executed notebook's outputs) is not a code change; an edited module or cell is."""

import subprocess

import nbformat
import pytest

from gansurvey import config


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    root = tmp_path / "checkout"
    (root / "gansurvey").mkdir(parents=True)
    (root / "gansurvey" / "a.py").write_text("X = 1\n")
    (root / "results" / "full").mkdir(parents=True)
    (root / "results" / "full" / "01_pruning.csv").write_text("a\n1\n")
    (root / "notebooks").mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]),
                   root / "notebooks" / "01_pruning.ipynb")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    monkeypatch.setattr(config, "project_root", lambda: root)
    config.code_commit.cache_clear()
    yield root, _git(root, "rev-parse", "--short", "HEAD")
    config.code_commit.cache_clear()


def _commit_now() -> str:
    config.code_commit.cache_clear()
    return config.code_commit()


def test_records_and_executed_outputs_are_not_code_changes(checkout):
    root, head = checkout
    assert _commit_now() == head
    (root / "results" / "full" / "01_pruning.csv").write_text("a\n2\n")  # an earlier notebook of the same run
    (root / "results" / "full" / "manifest.json").write_text("{}")  # untracked: never counted
    notebook = nbformat.read(root / "notebooks" / "01_pruning.ipynb", as_version=4)
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    notebook.cells[0].execution_count = 1
    nbformat.write(notebook, root / "notebooks" / "01_pruning.ipynb")
    _git(root, "add", "results")  # staged or not, output stays output
    assert _commit_now() == head


@pytest.mark.parametrize("edit", ["module", "cell", "tag", "new notebook", "deleted module"])
def test_code_edits_are_changes(checkout, edit):
    root, head = checkout
    path = root / "notebooks" / "01_pruning.ipynb"
    notebook = nbformat.read(path, as_version=4)
    if edit == "module":
        (root / "gansurvey" / "a.py").write_text("X = 2\n")
    elif edit == "cell":
        notebook.cells[0].source = "print(2)"
        nbformat.write(notebook, path)
    elif edit == "tag":
        notebook.cells[0].metadata["tags"] = ["parameters"]
        nbformat.write(notebook, path)
    elif edit == "new notebook":  # staged, so tracked, but not in HEAD
        nbformat.write(notebook, root / "notebooks" / "02_distillation.ipynb")
        _git(root, "add", "notebooks")
    else:
        (root / "gansurvey" / "a.py").unlink()
    assert _commit_now() == f"{head}+changes"


def test_outside_a_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    try:
        assert _commit_now() == "unknown"
    finally:
        config.code_commit.cache_clear()
