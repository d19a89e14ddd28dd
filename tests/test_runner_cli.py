import json

import nbformat
import pytest

from gansurvey import cli, runner
from gansurvey.checks import GanSurveyError


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def collection(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_first.ipynb", "print('profile is', profile, 'seed', seed)")
    _notebook(folder / "01_second.ipynb", "x = 1\nraise ValueError('boom at seed %d' % seed)")
    return folder


def test_regenerate_runs_injects_parameters_and_skips_unchanged(collection, tmp_path):
    out = tmp_path / "results"
    runs = runner.regenerate("full", only=["00_first"], folder=collection, out=out, seed=7)
    assert [(r.name, r.status) for r in runs] == [("00_first", "ran")]
    executed = nbformat.read(out / "notebooks" / "00_first.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "profile is full seed 7" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notebooks"]["00_first"]["status"] == "ok"
    assert {"date", "commit", "device", "versions"} <= set(manifest)
    again = runner.regenerate("full", only=["00_first"], folder=collection, out=out, seed=7)
    assert again[0].status == "skipped"
    changed = runner.regenerate("full", only=["00_first"], folder=collection, out=out, seed=8)
    assert changed[0].status == "ran"


def test_failing_notebook_is_named_with_its_cell(collection, tmp_path):
    out = tmp_path / "results"
    with pytest.raises(runner.NotebookFailed, match=r"'01_second'.*cell.*ValueError.*boom"):
        runner.regenerate("quick", folder=collection, out=out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notebooks"]["00_first"]["status"] == "ok"
    assert manifest["notebooks"]["01_second"]["status"] == "failed"
    assert not list((out / "notebooks").glob(".*tmp*"))
    assert not (out / "notebooks" / "01_second.ipynb").exists()


def test_bad_regenerate_arguments(collection, tmp_path):
    with pytest.raises(GanSurveyError, match="'03_nothing'.*'00_first', '01_second'"):
        runner.regenerate("quick", only=["03_nothing"], folder=collection, out=tmp_path)
    with pytest.raises(GanSurveyError, match="'medium'"):
        runner.regenerate("medium", folder=collection, out=tmp_path)
    with pytest.raises(GanSurveyError, match="seed"):
        runner.regenerate("quick", seed=-2, folder=collection, out=tmp_path)


def test_cli_rejects_unknown_profile_and_notebook(capsys):
    with pytest.raises(SystemExit):
        cli.main(["regenerate", "--profile", "medium"])
    assert "invalid choice: 'medium'" in capsys.readouterr().err
    assert cli.main(["regenerate", "--only", "99_nothing"]) == 2
    assert "'99_nothing'" in capsys.readouterr().err
