import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

from gansurvey import cli, runner
from gansurvey.checks import GanSurveyError
from gansurvey.config import display_path
from gansurvey.dependencies import file_digest


def _only_the_notebook(monkeypatch):
    """Others may edit the package while these tests run: the notebooks here depend on themselves only."""
    monkeypatch.setattr(runner, "dependency_digests",
                        lambda source, profile, records, graph: {f"notebooks/{source.name}": file_digest(source)})


def _notebook(path, body, parameters='profile = "quick"\nseed = 0'):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
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


def test_regenerate_runs_injects_parameters_and_skips_unchanged(collection, tmp_path, capfd, monkeypatch):
    _only_the_notebook(monkeypatch)
    out = tmp_path / "results"
    lines = []
    runs = runner.regenerate("full", only=["00_first"], folder=collection, out=out, seed=7, device="cpu",
                             report=lines.append, progress=True)
    assert [(r.name, r.status) for r in runs] == [("00_first", "ran")]
    assert lines[0] == "[1/1] 00_first: running (no earlier run)"
    assert re.fullmatch(r"\[1/1\] 00_first: done in \d+\.\d s", lines[1])
    err = capfd.readouterr().err
    assert "00_first cells" in err  # papermill's per-cell progress, with the elapsed time
    assert "without encryption" not in err  # the kernel's own log stays out of the terminal
    executed = nbformat.read(out / "notebooks" / "00_first.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "profile is full seed 7" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notebooks"]["00_first"]["status"] == "ok"
    assert {"date", "commit", "device", "versions"} <= set(manifest)
    assert {"date", "commit", "device"} <= set(manifest["notebooks"]["00_first"])  # partial runs stay attributed
    # device is injected only where the parameters cell declares it (these notebooks declare profile and seed)
    assert manifest["notebooks"]["00_first"]["parameters"] == {"profile": "full", "seed": 7}
    again = runner.regenerate("full", only=["00_first"], folder=collection, out=out, seed=7, device="cpu",
                              report=lines.append)
    assert again[0].status == "skipped" and lines[-1] == "[1/1] 00_first: current, skipped"
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


# A notebook that keeps its records the way the collection's notebooks do (gansurvey.notebook).
RECORDING = """from gansurvey.notebook import notebook_parameters
from gansurvey.records import Measurement

run = notebook_parameters("05_recording", globals())
record = Measurement(notebook="05_recording", benchmark="gaussians-mlp", technique=f"seed {seed}",
                     family="baseline", profile=profile, seed=seed)
print("records written to", run.write([record]))"""
RECORDING_PARAMETERS = 'profile: str = "quick"\nseed: int = 0\nrecords_to: str = "adhoc"'


def test_adhoc_papermill_run_leaves_the_regeneration_records_alone(tmp_path, monkeypatch):
    import papermill as pm

    results = tmp_path / "results"
    monkeypatch.setenv("GANSURVEY_RESULTS", str(results))  # the kernels inherit it
    _only_the_notebook(monkeypatch)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "05_recording.ipynb", RECORDING, RECORDING_PARAMETERS)
    out = results / "quick"
    runner.regenerate("quick", folder=folder, out=out)
    records = out / "05_recording.csv"
    regenerated = records.read_text()
    assert "seed 0" in regenerated
    manifest = json.loads((out / "manifest.json").read_text())["notebooks"]["05_recording"]
    assert manifest["parameters"]["records_to"] == "tables"
    assert manifest["records_sha256"] == file_digest(records)

    # an ad hoc run with other parameters writes elsewhere and says so with a path relative to the project
    adhoc = pm.execute_notebook(str(folder / "05_recording.ipynb"), str(tmp_path / "adhoc.ipynb"),
                                parameters={"seed": 3}, progress_bar=False, cwd=str(folder),
                                extra_arguments=runner.KERNEL_ARGUMENTS)
    printed = "".join(o.get("text", "") for o in adhoc.cells[-1].outputs)
    assert records.read_text() == regenerated
    written = list((out / "adhoc").glob("05_recording-*.csv"))
    assert len(written) == 1 and "seed 3" in written[0].read_text() and written[0].name in printed
    assert runner.foreign_records(out) == []
    assert runner.regenerate("quick", folder=folder, out=out)[0].status == "skipped"

    # records replaced behind the regeneration's back (asked for, or an old-style notebook) are noticed
    records.write_text(regenerated.replace("seed 0", "seed 9"))
    assert runner.foreign_records(out) == [f"{display_path(records)} changed after the last regeneration wrote it"]
    lines = []
    assert runner.regenerate("quick", folder=folder, out=out, report=lines.append)[0].status == "ran"
    assert lines[0].startswith(f"[1/1] 05_recording: foreign records ({display_path(records)} changed after the "
                               "last regeneration wrote it); running again (about ")
    assert records.read_text() == regenerated


def test_regenerate_refuses_a_notebook_without_profile_and_an_unwritable_folder(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_plain.ipynb", "print(1)", parameters="size = 3")
    with pytest.raises(GanSurveyError, match=r"00_plain has no 'profile' in its parameters cell.*size"):
        runner.regenerate("quick", folder=folder, out=tmp_path / "out")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(GanSurveyError, match=r"results folder .*a-file/out cannot be written"):
        runner.regenerate("quick", folder=folder, out=blocker / "out")


def test_cli_turns_an_expected_failure_into_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GANSURVEY_RESULTS", str(blocker / "results"))
    assert cli.main(["regenerate", "--only", "07_survey_tables"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the results folder") and "Traceback" not in err
    assert cli.main(["strip-injected", str(tmp_path / "missing.ipynb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.ipynb" in err


def test_cli_strip_injected(tmp_path):
    path = tmp_path / "x.ipynb"
    _notebook(path, "print(profile)")
    nb = nbformat.read(path, as_version=4)
    injected = nbformat.v4.new_code_cell('# Parameters\nprofile = "full"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(1, injected)
    nbformat.write(nb, path)
    done = subprocess.run([sys.executable, "-m", "gansurvey", "strip-injected", str(path)], capture_output=True,
                          text=True, check=True)
    assert "stripped" in done.stdout
    assert len(nbformat.read(path, as_version=4).cells) == 2


# --- #21: faults and damaged records --------------------------------------------------------------------------------

def _fake_write_tables(monkeypatch):
    import gansurvey.survey

    monkeypatch.setattr(gansurvey.survey, "write_tables", lambda profile: [])


def test_tables_warns_about_missing_records_and_strict_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    _fake_write_tables(monkeypatch)
    assert cli.main(["tables"]) == 0
    err = capsys.readouterr().err
    assert "warning: no measured records of 00_background, 01_pruning" in err and "06_combinations" in err
    assert cli.main(["tables", "--strict"]) == 2
    assert "error: --strict" in capsys.readouterr().err


def test_tables_refuses_a_garbage_records_file_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    (tmp_path / "results" / "quick").mkdir(parents=True)
    (tmp_path / "results" / "quick" / "01_pruning.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    monkeypatch.setattr("gansurvey.survey.write_tables", lambda profile: pytest.fail("tables written"))
    assert cli.main(["tables"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: records file") and "01_pruning.csv is not text" in err
    assert err.count("\n") == 1 and str(tmp_path) not in err
    (tmp_path / "results" / "quick" / "01_pruning.csv").write_text("benchmark,technique\nteacher,x\n")
    assert cli.main(["tables"]) == 2
    assert "lacks column(s) notebook" in capsys.readouterr().err


def test_latency_checks_batch_sizes_before_loading_any_teacher(monkeypatch, capsys):
    import gansurvey.benchmarks

    def boom(name):
        raise AssertionError("a teacher was loaded before the batch sizes were checked")

    monkeypatch.setattr(gansurvey.benchmarks, "get_benchmark", boom)
    assert cli.main(["latency", "--batch-sizes", "8", "0"]) == 2
    assert "error: --batch-sizes must be an integer >= 1, got 0" in capsys.readouterr().err


def test_argument_errors_come_before_heavy_imports_and_help_describes_every_option():
    code = ("import sys\nfrom gansurvey import cli\n"
            "try:\n    cli.main(['regenerate', '--profile', 'fulll'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'papermill', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]" and "invalid choice: 'fulll'" in done.stderr
    helped = subprocess.run([sys.executable, "-m", "gansurvey", "regenerate", "--help"], capture_output=True,
                            text=True, timeout=120).stdout
    text = " ".join(helped.split())
    for option, words in (("--profile", "the reproduction proper"), ("--device", "where the notebooks compute"),
                          ("--seed", "base seed"), ("--strict", "07_survey_tables ran without")):
        assert re.search(re.escape(option) + r".*" + re.escape(words), text), option


def test_cli_profiles_and_devices_match_config():
    from gansurvey import config

    assert (cli.PROFILES, cli.DEVICES) == (config.PROFILES, config.DEVICES)


def test_only_typo_gets_did_you_mean(collection, tmp_path):
    with pytest.raises(GanSurveyError, match=r"notebook '00_frist'; allowed: .*\(did you mean '00_first'\?\)"):
        runner.regenerate("quick", only=["00_frist"], folder=collection, out=tmp_path / "out")


def test_strip_injected_refuses_a_non_notebook(tmp_path, capsys):
    path = tmp_path / "notes.ipynb"
    path.write_text("just some text")
    with pytest.raises(GanSurveyError, match=r"notes\.ipynb is not a Jupyter notebook"):
        runner.strip_injected(path)
    assert cli.main(["strip-injected", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a Jupyter notebook" in err and str(tmp_path) not in err


def test_every_written_folder_is_checked_before_any_work(collection, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(runner, "_execute", lambda *a, **k: pytest.fail("work started before the checks"))
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(blocker / "artifacts"))
    with pytest.raises(GanSurveyError, match=r"artifacts folder .*a-file/artifacts cannot be written.*"
                                             r"GANSURVEY_ARTIFACTS"):
        runner.regenerate("quick", folder=collection, out=tmp_path / "out")
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "artifacts"))
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "notebooks").write_text("a file where the executed notebooks go")
    with pytest.raises(GanSurveyError, match=r"executed-notebooks folder .*out2/notebooks cannot be written"):
        runner.regenerate("quick", folder=collection, out=tmp_path / "out2")


_INTERRUPTED_RUN = """
import signal
import sys
from pathlib import Path
# a shell that starts the test run in the background hands its children Ctrl-C ignored; a user's terminal does not
signal.signal(signal.SIGINT, signal.default_int_handler)
from gansurvey import cli, runner
runner.notebooks_dir = lambda: Path(sys.argv[1])
runner.notebooks_at_once = lambda cpus: 2  # --executor ray: both notebooks side by side, as on a cluster
raise SystemExit(cli.main(["regenerate", "--profile", "quick", "--executor", sys.argv[2]]))
"""


@pytest.mark.parametrize("sig,executor", [("SIGTERM", "serial"), ("SIGINT", "serial"), ("SIGTERM", "ray"),
                                          ("SIGINT", "ray")])
def test_an_interrupted_regeneration_ends_in_one_line_and_leaves_no_temporary(tmp_path, sig, executor):
    """Serial: the notebook runs in this process; ray: two notebooks run side by side in child processes, which
    stop too (#23: asyncio printed a DeadKernelError traceback for each)."""
    import os
    import signal
    import time

    folder = tmp_path / "notebooks"
    folder.mkdir()
    names = ["00_slow"] if executor == "serial" else ["00_slow", "01_slow"]
    for name in names:
        started = tmp_path / f"started-{name}"
        _notebook(folder / f"{name}.ipynb", f"import pathlib, time\npathlib.Path({str(started)!r}).write_text('')\n"
                                            "time.sleep(60)")
    env = {**os.environ, "GANSURVEY_RESULTS": str(tmp_path / "results"),
           "GANSURVEY_ARTIFACTS": str(tmp_path / "artifacts")}
    # a session of its own: SIGINT goes to the whole group, kernels and child processes too, as Ctrl-C does
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_RUN, str(folder), executor], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    started = [tmp_path / f"started-{name}" for name in names]
    while not all(path.exists() for path in started) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert all(path.exists() for path in started), proc.communicate()
    time.sleep(0.5)
    if sig == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=45)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip() and "cells" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(("terminated (SIGTERM): `regenerate` stopped", "interrupted (Ctrl-C): `regenerate`"))
    assert "notebooks finished before it are kept" in lines[0]
    assert not list((tmp_path / "results").rglob("*.tmp*"))


def test_no_error_path_prints_a_machine_path(tmp_path, monkeypatch, capsys):
    """#21: messages show paths relative to the project, ~, or .../last/parts; never the machine's absolute path."""
    from gansurvey.io import CorruptFileError, load_checked, save_checked

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    junk = tmp_path / "junk.ipynb"
    junk.write_text("not json")
    monkeypatch.setenv("GANSURVEY_RESULTS", str(blocker / "results"))
    messages = []
    for argv in (["regenerate", "--only", "07_survey_tables"], ["strip-injected", str(junk)],
                 ["strip-injected", str(tmp_path / "missing.ipynb")]):
        assert cli.main(argv) == 2
        messages.append(capsys.readouterr().err)
    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    (tmp_path / "results" / "quick").mkdir(parents=True)
    (tmp_path / "results" / "quick" / "01_pruning.csv").write_bytes(b"\xff\xfe")
    assert cli.main(["tables"]) == 2
    messages.append(capsys.readouterr().err)
    cached = save_checked(tmp_path / "cache" / "entry.pt", {"x": 1})
    cached.write_bytes(b"damaged")
    with pytest.raises(CorruptFileError) as info:
        load_checked(cached)
    messages.append(str(info.value))
    for message in messages:
        assert str(tmp_path) not in message and "/tmp/" not in message, message


def test_regenerated_notebooks_hold_no_progress_bars(tmp_path, monkeypatch):
    _only_the_notebook(monkeypatch)
    monkeypatch.setenv("GANSURVEY_PROGRESS", "1")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_bars.ipynb", "import os\nfrom gansurvey.notebook import progress\n"
                                        "print('inside:', os.environ.get('GANSURVEY_PROGRESS'))\n"
                                        "total = sum(progress(range(50), 'counting'))")
    out = tmp_path / "results"
    runner.regenerate("quick", folder=folder, out=out)
    executed = nbformat.read(out / "notebooks" / "00_bars.ipynb", as_version=4)
    texts = [o.get("text", "") for c in executed.cells for o in c.get("outputs", [])]
    assert "inside: 0\n" in texts and not any("%|" in t for t in texts)  # no bar in the committed outputs
    assert os.environ["GANSURVEY_PROGRESS"] == "1"  # the caller's setting is back


def test_tables_refuses_an_unwritable_folder_before_any_warning(tmp_path, monkeypatch, capsys):  # #21 re-count
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GANSURVEY_RESULTS", str(blocker / "results"))
    assert cli.main(["tables"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "tables folder" in err and "warning" not in err
