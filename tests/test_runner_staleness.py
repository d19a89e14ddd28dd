"""#22: staleness is computed from each notebook's dependencies, `regenerate` resumes at the first notebook that is
not current, and `regenerate --status` says where each notebook stands without changing anything.

The notebooks run in a fake checkout (tests/test_dependencies.py:fake_checkout, found through GANSURVEY_ROOT) with
papermill's execution replaced by a copy that writes the notebook's records: what is tested is the decision, and no
real file is touched."""

import json
import shutil
from pathlib import Path

import pytest

from gansurvey import cli, runner
from gansurvey.dependencies import file_digest
from tests.test_dependencies import fake_checkout

NAMES = ["01_pruning", "04_precision", "06_combinations"]


@pytest.fixture
def checkout(tmp_path, monkeypatch, artifacts):
    root = fake_checkout(tmp_path / "checkout")
    monkeypatch.setenv("GANSURVEY_ROOT", str(root))
    monkeypatch.setenv("GANSURVEY_RESULTS", str(root / "results"))
    return root


class FakeExecution:
    """Stands in for papermill: copies the notebook to its target and writes its records, which differ on every run
    (as a re-run's measurements would); ``stop_at`` interrupts that notebook the way Ctrl-C would."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.stop_at: str | None = None

    def __call__(self, pm, source: Path, target: Path, params, cwd, kernel_name, progress=False, name="") -> None:
        if name == self.stop_at:
            raise KeyboardInterrupt
        self.ran.append(name)
        records = target.parent.parent / f"{name}.csv"
        records.write_text(f"run {len(self.ran)} of {name} with {json.dumps(params, sort_keys=True)}\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


@pytest.fixture
def execution(monkeypatch):
    fake = FakeExecution()
    monkeypatch.setattr(runner, "_execute", fake)
    return fake


def states(**kwargs):
    return {name: (state, reasons) for name, state, reasons in runner.staleness("quick", **kwargs)}


def edit(path: Path, text: str = "\n# edited\n") -> None:
    path.write_text(path.read_text() + text)


def test_a_change_makes_stale_only_the_notebooks_that_depend_on_it(checkout, execution):
    assert {name: state for name, (state, _) in states().items()} == dict.fromkeys(NAMES, "missing")
    runner.regenerate("quick")
    assert execution.ran == NAMES
    assert states() == dict.fromkeys(NAMES, ("current", ()))
    manifest = json.loads((checkout / "results" / "quick" / "manifest.json").read_text())["notebooks"]
    entry = manifest["01_pruning"]
    assert entry["depends_on"]["gansurvey/a/b.py"] == file_digest(checkout / "gansurvey" / "a" / "b.py")
    assert "gansurvey/z.py" not in entry["depends_on"] and "notebooks/01_pruning.ipynb" in entry["depends_on"]
    assert manifest["06_combinations"]["depends_on"]["results/quick/04_precision.csv"] == \
        file_digest(checkout / "results" / "quick" / "04_precision.csv")
    assert {"commit", "device", "seconds", "date", "status", "parameters", "records_sha256",
            "fingerprint"} <= set(entry)

    # outside every closure: a module no notebook imports, a data file no module reads
    edit(checkout / "gansurvey" / "unused.py")
    edit(checkout / "data" / "other.csv", "2\n")
    assert states() == dict.fromkeys(NAMES, ("current", ()))
    assert runner.regenerate("quick")[0].status == "skipped" and len(execution.ran) == 3

    # inside 04's closure only; its new records make 06, which reads them, stale within the same regeneration
    edit(checkout / "gansurvey" / "z.py")
    now = states()
    assert now["01_pruning"] == ("current", ()) and now["06_combinations"] == ("current", ())
    assert now["04_precision"] == ("stale", ("changed: gansurvey/z.py",))
    lines = []
    runs = runner.regenerate("quick", report=lines.append)
    assert [(r.name, r.status) for r in runs] == [("01_pruning", "skipped"), ("04_precision", "ran"),
                                                  ("06_combinations", "ran")]
    assert lines[0] == "[1/3] 01_pruning: current, skipped"
    assert lines[1] == "[2/3] 04_precision: stale (changed: gansurvey/z.py); running again (about 0 s last time)"
    assert lines[3].startswith("[3/3] 06_combinations: stale (changed: results/quick/04_precision.csv); running")

    # a data file a module of 01's closure reads, and a parameter
    edit(checkout / "data" / "weights" / "one.pt")
    assert states()["01_pruning"] == ("stale", ("changed: data/weights/one.pt",))
    assert states(seed=3)["04_precision"] == ("stale", ("parameters changed: seed (the notebook's own) -> 3",))


def test_many_changes_are_named_a_few_at_a_time(checkout, execution):
    runner.regenerate("quick")
    for name in ("a/__init__.py", "a/b.py", "a/c.py", "common.py", "config.py"):
        edit(checkout / "gansurvey" / name)
    (checkout / "gansurvey" / "deep" / "extra.py").write_text("")
    edit(checkout / "gansurvey" / "a" / "c.py", "import gansurvey.deep.extra\n")
    state, reasons = states()["01_pruning"]
    assert state == "stale"
    assert reasons == ("changed: gansurvey/a/__init__.py, gansurvey/a/b.py, gansurvey/a/c.py and 2 more",
                       "new dependencies: gansurvey/deep/extra.py")


def test_a_killed_regeneration_resumes_at_the_first_notebook_that_is_not_current(checkout, execution):
    runner.regenerate("quick")
    edit(checkout / "gansurvey" / "common.py")  # in 01's and 04's closures
    execution.stop_at = "04_precision"
    with pytest.raises(KeyboardInterrupt):
        runner.regenerate("quick")
    assert execution.ran == NAMES + ["01_pruning"]
    now = states()
    assert now["01_pruning"] == ("current", ())
    assert now["04_precision"] == ("stale", ("changed: gansurvey/common.py",))
    assert now["06_combinations"] == ("stale", ("changed: results/quick/01_pruning.csv",))
    execution.stop_at = None
    runs = runner.regenerate("quick")
    assert [r.status for r in runs] == ["skipped", "ran", "ran"]
    assert states() == dict.fromkeys(NAMES, ("current", ()))


def test_old_manifest_missing_failed_and_foreign_records(checkout, execution):
    runner.regenerate("quick")
    out = checkout / "results" / "quick"
    manifest = json.loads((out / "manifest.json").read_text())
    # an entry written before depends_on existed (results/full/ of commit 8a0d8c8 has such entries)
    for key in ("depends_on", "records_sha256", "date", "commit", "device"):
        del manifest["notebooks"]["01_pruning"][key]
    manifest["notebooks"]["04_precision"] = {"status": "failed", "fingerprint": None, "error": "ValueError"}
    del manifest["notebooks"]["06_combinations"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert states() == {
        "01_pruning": ("stale", (runner.PREDATES_TRACKING,)),
        "04_precision": ("failed", ("its last run failed (ValueError)",)),
        "06_combinations": ("missing", ("no manifest entry", "results/quick/06_combinations.csv was not written by "
                                                             "a regeneration (manifest.json does not know it)")),
    }
    assert runner.PREDATES_TRACKING == "manifest entry predates dependency tracking"
    assert [r.status for r in runner.regenerate("quick")] == ["ran", "ran", "ran"]
    assert states() == dict.fromkeys(NAMES, ("current", ()))

    (out / "notebooks" / "04_precision.ipynb").unlink()
    (out / "06_combinations.csv").write_text("edited by hand\n")
    now = states()
    assert now["04_precision"] == ("missing", ("no executed copy at results/quick/notebooks/04_precision.ipynb",))
    assert now["06_combinations"] == ("foreign records", ("results/quick/06_combinations.csv changed after the last "
                                                          "regeneration wrote it",))
    (out / "01_pruning.csv").unlink()
    assert states()["01_pruning"] == ("missing", ("results/quick/01_pruning.csv is missing",))


def test_status_prints_one_line_per_notebook_and_changes_nothing(checkout, execution, capsys):
    runner.regenerate("quick")
    edit(checkout / "gansurvey" / "z.py")
    (checkout / "results" / "quick" / "notebooks" / "06_combinations.ipynb").unlink()
    before = {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()}
    assert cli.main(["regenerate", "--status"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{'01_pruning':24s} {'current':15s} nothing it depends on changed",
        f"{'04_precision':24s} {'stale':15s} changed: gansurvey/z.py",
        f"{'06_combinations':24s} {'missing':15s} no executed copy at results/quick/notebooks/06_combinations.ipynb",
    ]
    assert cli.main(["regenerate", "--status", "--only", "04_precision", "--seed", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{'04_precision':24s} {'stale':15s} changed: gansurvey/z.py; parameters changed: seed (the notebook's own) "
        f"-> 2"]
    assert {p: p.read_bytes() for p in checkout.rglob("*") if p.is_file()} == before
    assert len(execution.ran) == 3
    with pytest.raises(SystemExit):
        cli.main(["regenerate", "--status", "--force"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_damaged_manifest_is_said_not_read_silently_as_empty(checkout, execution, capsys):
    runner.regenerate("quick")
    capsys.readouterr()
    manifest = checkout / "results" / "quick" / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])  # truncated
    assert cli.main(["regenerate", "--status"]) == 0
    out = capsys.readouterr()
    assert "manifest.json is damaged (JSONDecodeError" in out.err and "every notebook counts as not run" in out.err
    assert str(checkout) not in out.err  # no machine path
    assert all(" missing " in line for line in out.out.splitlines())
    manifest.unlink()  # no manifest yet is not damage: no warning
    assert cli.main(["regenerate", "--status"]) == 0
    assert "damaged" not in capsys.readouterr().err
