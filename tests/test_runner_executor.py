"""``regenerate --executor ray`` (#23): the notebooks that read no other notebook's records run at once, each in a
process of its own and marked as timed under load, as many at a time as the cluster's CPUs allow (one at a time,
unmarked, on a small machine); 06 starts after them and 07 last, alone; ``executor`` is
injected where declared but is no parameter of the staleness judgement; a failing notebook lets the others finish.
Tiny notebooks with the real names (the dependencies are read by name) log when they ran; no Ray starts for them."""

import contextlib
import json

import nbformat
import pytest

from gansurvey import cli, runner
from gansurvey.dependencies import file_digest
from gansurvey.records import UNDER_LOAD_ENV

NAMES = ("01_pruning", "02_distillation", "06_combinations", "07_survey_tables")
BODY = """import json, os, time
started = time.time()
time.sleep(2)
{fail}
with open(os.path.join(os.environ["RUN_LOG"], "{name}.json"), "w") as handle:
    json.dump({{"start": started, "end": time.time(), "under_load": os.environ.get("{env}"),
               "executor": globals().get("executor")}}, handle)
"""


def _notebook(path, fail=False, executor=False):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"' + ('\nexecutor = "serial"' if executor else ""))
    params.metadata["tags"] = ["parameters"]
    body = BODY.format(name=path.stem, env=UNDER_LOAD_ENV, fail="raise ValueError('boom')" if fail else "")
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def collection(tmp_path, monkeypatch, artifacts):
    folder, log = tmp_path / "notebooks", tmp_path / "log"
    folder.mkdir()
    log.mkdir()
    monkeypatch.setenv("RUN_LOG", str(log))
    # others may edit the package meanwhile: each notebook depends on itself only
    monkeypatch.setattr(runner, "dependency_digests",
                        lambda source, profile, records, graph: {f"notebooks/{source.name}": file_digest(source)})
    # a cluster of 8 CPUs: two notebooks at a time
    monkeypatch.setattr(runner, "_ray_cluster", lambda plan, address: contextlib.nullcontext(8.0))
    return folder, log


def _ran(log):
    return {path.stem: json.loads(path.read_text()) for path in log.glob("*.json")}


def test_independent_notebooks_run_at_once_then_the_readers_alone(collection, tmp_path):
    folder, log = collection
    for name in NAMES:
        _notebook(folder / f"{name}.ipynb", executor=name == "02_distillation")
    out, lines = tmp_path / "out", []
    runs = runner.regenerate("quick", folder=folder, out=out, report=lines.append, executor="ray")
    assert [(r.name, r.status) for r in runs] == [(name, "ran") for name in NAMES]
    ran = _ran(log)
    first, second, combos, tables = (ran[name] for name in NAMES)
    assert first["start"] < second["end"] and second["start"] < first["end"]  # at once
    assert combos["start"] > max(first["end"], second["end"]) and tables["start"] > combos["end"]
    assert [ran[name]["under_load"] for name in NAMES] == ["1", "1", None, None]
    assert second["executor"] == "ray"  # injected where declared
    manifest = json.loads((out / "manifest.json").read_text())["notebooks"]
    assert {manifest[name]["status"] for name in NAMES} == {"ok"}
    assert {manifest[name]["executor"] for name in NAMES} == {"ray"}
    assert manifest["02_distillation"]["parameters"] == {"profile": "quick"}  # not judged by where it ran
    assert lines[0] == "[1/4] 01_pruning: running (no earlier run)" and lines[-1].startswith("[4/4] 07_survey_")
    # the same regeneration, serial: nothing changed, so nothing runs again
    again = runner.regenerate("quick", folder=folder, out=out)
    assert {r.status for r in again} == {"skipped"}


def test_a_failing_notebook_lets_the_others_finish_and_stops_the_readers(collection, tmp_path):
    folder, log = collection
    for name in NAMES:
        _notebook(folder / f"{name}.ipynb", fail=name == "01_pruning")
    out, lines = tmp_path / "out", []
    with pytest.raises(runner.NotebookFailed, match=r"'01_pruning' failed in cell \d+: ValueError: boom"):
        runner.regenerate("quick", folder=folder, out=out, report=lines.append, executor="ray")
    assert set(_ran(log)) == {"02_distillation"}
    manifest = json.loads((out / "manifest.json").read_text())["notebooks"]
    assert (manifest["01_pruning"]["status"], manifest["02_distillation"]["status"]) == ("failed", "ok")
    assert "06_combinations" not in manifest and any("01_pruning: failed" in line for line in lines)


def test_cli_takes_the_executor_and_refuses_an_address_without_ray(capsys):
    from gansurvey.experiments.executor import EXECUTORS

    assert cli.EXECUTORS == EXECUTORS
    assert cli.main(["regenerate", "--address", "auto", "--only", "00_background"]) == 2
    assert "pass executor='ray'" in capsys.readouterr().err


def test_at_most_one_notebook_per_four_cpus_at_a_time():
    assert [runner.notebooks_at_once(cpus) for cpus in (1, 2, 4, 7.5, 8, 16, 64)] == [1, 1, 1, 1, 2, 4, 16]


def _overlapping(ran, names):
    return max(sum(ran[a]["start"] < ran[b]["end"] and ran[b]["start"] < ran[a]["end"] for b in names)
               for a in names)


def test_the_next_notebook_starts_when_one_ends(collection, tmp_path):
    folder, log = collection
    names = ("00_background", "01_pruning", "02_distillation")
    for name in names:
        _notebook(folder / f"{name}.ipynb")
    runs = runner.regenerate("quick", folder=folder, out=tmp_path / "out", executor="ray")
    assert [r.status for r in runs] == ["ran"] * 3
    ran = _ran(log)
    assert _overlapping(ran, names) == 2  # itself and one other: never three at once on 8 CPUs
    assert ran["02_distillation"]["start"] >= min(ran["00_background"]["end"], ran["01_pruning"]["end"])


def test_a_small_machine_runs_them_one_at_a_time_unmarked(collection, tmp_path, monkeypatch):
    folder, log = collection
    monkeypatch.setattr(runner, "_ray_cluster", lambda plan, address: contextlib.nullcontext(2.0))
    names = ("01_pruning", "02_distillation")
    for name in names:
        _notebook(folder / f"{name}.ipynb", executor=True)
    runner.regenerate("quick", folder=folder, out=tmp_path / "out", executor="ray")
    ran = _ran(log)
    assert ran["02_distillation"]["start"] >= ran["01_pruning"]["end"]
    assert [ran[name]["under_load"] for name in names] == [None, None]
    assert [ran[name]["executor"] for name in names] == ["ray", "ray"]  # their arms still run on Ray
