"""The README's table of notebooks rendered from executed notebooks and a full manifest (synthetic ones here), and
``python -m gansurvey readme-table [--check]`` on a private project folder."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from gansurvey import cli, runner
from gansurvey import readme_table as rt
from gansurvey.checks import GanSurveyError
from gansurvey.dependencies import file_digest


def test_format_seconds_picks_the_unit_and_refuses_what_is_not_a_time():
    assert [rt.format_seconds(s) for s in (0, 37.7, 89.4, 90, 152.7, 5399, 5400, 5950.3)] == \
        ["0 s", "38 s", "89 s", "1.5 min", "2.5 min", "90.0 min", "1.5 h", "1.7 h"]
    for bad in (-1, float("nan"), "38", True, None):
        with pytest.raises(GanSurveyError, match="seconds must be a number >= 0"):
            rt.format_seconds(bad)


def _executed(path: Path, papermill: dict | None) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if papermill is not None:
        nb.metadata["papermill"] = papermill
    nbformat.write(nb, path)
    return path


def _ran(seconds: float, profile: str = "quick", exception: bool | None = None) -> dict:
    return {"duration": seconds, "exception": exception, "parameters": {"profile": profile, "records_to": "tables"}}


def test_quick_run_reads_papermills_metadata(tmp_path):
    assert rt.quick_run(_executed(tmp_path / "a.ipynb", _ran(152.7))) == rt.QuickRun("ok", 152.7, "quick")
    assert rt.quick_run(_executed(tmp_path / "b.ipynb", _ran(3.0, exception=True))).status == rt.FAILED
    assert rt.quick_run(_executed(tmp_path / "c.ipynb", None)).status == rt.NOT_RUN  # never executed
    assert rt.quick_run(_executed(tmp_path / "d.ipynb", _ran(9.0, profile="full"))).status == rt.NOT_RUN
    assert rt.quick_run(_executed(tmp_path / "e.ipynb", {**_ran(1.0), "duration": None})).status == rt.NOT_RUN
    (tmp_path / "f.ipynb").write_text("{not json")
    with pytest.raises(GanSurveyError, match="cannot read the notebook f.ipynb"):
        rt.quick_run(tmp_path / "f.ipynb")


def _rows(table: str) -> dict[str, list[str]]:
    rows = {}
    for line in table.splitlines()[len(rt.HEADER):]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells
    return rows


NAMES = ["00_background", "01_pruning", "02_distillation", "03_low_rank", "07_survey_tables"]


@pytest.fixture
def full_dir(tmp_path):
    """A full results folder: 00 ran (records written, attributed), 01 ran before entries named their run, 02
    failed, 03 has no entry, 07 ran and wrote no records (only its executed copy)."""
    out = tmp_path / "results" / "full"
    (out / "notebooks").mkdir(parents=True)
    for name in ("00_background", "01_pruning"):
        (out / f"{name}.csv").write_text("notebook\n")
    (out / "notebooks" / "07_survey_tables.ipynb").write_text("{}")
    manifest = {"notebooks": {
        "00_background": {"status": "ok", "seconds": 5950.3, "device": "CPU (x86_64, 2 threads)",
                          "commit": "0123456789abcdef", "output": "notebooks/00_background.ipynb"},
        "01_pruning": {"status": "ok", "seconds": 778.5},
        "02_distillation": {"status": "failed", "error": "ValueError", "commit": "0123456789abcdef"},
        "07_survey_tables": {"status": "ok", "seconds": 21.1, "output": "notebooks/07_survey_tables.ipynb"},
    }}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_render_table_shows_the_runs_as_measured(tmp_path, full_dir):
    quick = {"00_background": rt.QuickRun("ok", 37.7), "01_pruning": rt.QuickRun(rt.FAILED),
             "07_survey_tables": rt.QuickRun("ok", 8.2)}
    states = {"00_background": "current", "01_pruning": "stale", "02_distillation": "failed"}
    manifest = rt.read_manifest(full_dir / "manifest.json")
    table = rt.render_table(NAMES, quick, manifest, full_dir, states, base=tmp_path)
    lines = table.splitlines()
    assert tuple(lines[:2]) == rt.HEADER and len(lines) == 2 + len(NAMES)
    rows = _rows(table)
    assert list(rows) == NAMES
    entries = manifest["notebooks"]
    assert rows["00_background"][1:] == [
        rt.TOPICS["00_background"], rt.format_seconds(37.7),
        f"[{rt.format_seconds(entries['00_background']['seconds'])}](results/full/00_background.csv), "
        "CPU (x86_64, 2 threads), 0123456", "current"]
    assert rows["01_pruning"][2:] == [rt.FAILED, f"[{rt.format_seconds(778.5)}](results/full/01_pruning.csv), "
                                                 "device and commit not recorded", "stale"]
    assert rows["02_distillation"][2:] == [rt.NOT_RUN, rt.FAILED, "failed"]  # a failed run shows no time
    assert rows["03_low_rank"][2:] == [rt.NOT_RUN, rt.NOT_RUN, "missing"]
    # 07 writes no records: its time links the executed copy
    assert rows["07_survey_tables"][3].startswith("[21 s](results/full/notebooks/07_survey_tables.ipynb)")
    assert rt.block_states(table) == {**{n: "missing" for n in NAMES}, **states}


def test_render_table_refuses_a_notebook_without_a_topic(tmp_path, full_dir):
    with pytest.raises(GanSurveyError, match="no README topic for 99_new: add it to TOPICS"):
        rt.render_table(["00_background", "99_new"], {}, {"notebooks": {}}, full_dir, {}, base=tmp_path)


def test_a_damaged_manifest_is_refused_and_a_missing_one_is_empty(tmp_path):
    assert rt.read_manifest(tmp_path / "none.json") == {"notebooks": {}}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(GanSurveyError, match="bad.json is not readable JSON"):
        rt.read_manifest(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text('{"notebooks": []}')
    with pytest.raises(GanSurveyError, match="has no 'notebooks' object"):
        rt.read_manifest(tmp_path / "list.json")


def test_the_block_between_the_markers_is_replaced_and_nothing_else(tmp_path):
    readme = tmp_path / "README.md"
    text = f"# Title\n\nBefore.\n\n{rt.BEGIN}\n| old | table |\n{rt.END}\n\nAfter.\n"
    readme.write_text(text)
    assert rt.readme_block(text) == "| old | table |"
    assert rt.write_readme("| new |\n|---|", readme) is True
    assert readme.read_text() == f"# Title\n\nBefore.\n\n{rt.BEGIN}\n| new |\n|---|\n{rt.END}\n\nAfter.\n"
    assert rt.write_readme("| new |\n|---|", readme) is False
    assert not [p.name for p in tmp_path.iterdir() if p.name != "README.md"]  # no temporary file left behind


@pytest.mark.parametrize("text, found", [("no markers\n", "found 0 and 0"),
                                         (f"{rt.BEGIN}\n{rt.BEGIN}\n{rt.END}\n", "found 2 and 1")])
def test_missing_or_repeated_markers_are_refused(text, found):
    with pytest.raises(GanSurveyError, match=f"marker lines .* once each \\({found}\\)"):
        rt.readme_block(text)
    with pytest.raises(GanSurveyError, match="the end marker comes before the begin marker"):
        rt.readme_block(f"{rt.END}\n{rt.BEGIN}\n")


def test_quick_manifest_notes_name_a_copy_that_is_not_the_last_quick_run():
    runs = {"00_background": rt.QuickRun("ok", 37.7), "01_pruning": rt.QuickRun("ok", 152.7),
            "02_distillation": rt.QuickRun(rt.NOT_RUN)}
    manifest = {"notebooks": {"00_background": {"status": "ok", "seconds": 37.8},
                              "01_pruning": {"status": "ok", "seconds": 300.0},
                              "02_distillation": {"status": "failed"}}}
    notes = rt.quick_manifest_notes(runs, manifest)
    assert len(notes) == 1 and notes[0].startswith("01_pruning: results/quick/manifest.json says 5.0 min")
    assert rt.quick_manifest_notes(runs, {"notebooks": {}}) == []


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A private project: two executed notebooks, a README with the markers, a full run of one of them."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    _executed(root / "notebooks" / "00_background.ipynb", _ran(37.7))
    _executed(root / "notebooks" / "07_survey_tables.ipynb", _ran(8.2))
    (root / "README.md").write_text(f"# P\n\n{rt.BEGIN}\n| typed | in |\n{rt.END}\n")
    results = tmp_path / "results"
    (results / "full" / "notebooks").mkdir(parents=True)
    (results / "full" / "00_background.csv").write_text("notebook\n")
    _executed(results / "full" / "notebooks" / "00_background.ipynb", _ran(700.0, profile="full"))
    (results / "full" / "manifest.json").write_text(json.dumps(
        {"notebooks": {"00_background": {"status": "ok", "seconds": 700.0, "device": "CPU", "commit": "abcdef1"}}}))
    monkeypatch.setenv("GANSURVEY_ROOT", str(root))
    monkeypatch.setenv("GANSURVEY_RESULTS", str(results))
    # the private project holds no package, and others may edit ours while this runs: each notebook depends on
    # itself only
    monkeypatch.setattr(runner, "PackageGraph", lambda: None)
    monkeypatch.setattr(runner, "dependency_digests",
                        lambda source, profile, records, graph: {f"notebooks/{source.name}": file_digest(source)})
    return root


def test_cli_check_fails_on_a_typed_table_and_passes_once_rewritten(project, capsys):
    assert cli.main(["readme-table", "--check"]) == 1
    err = capsys.readouterr().err
    assert "-| typed | in |" in err and "readme-table` rewrites it" in err
    assert cli.main(["readme-table"]) == 0
    assert "notebook table rewritten" in capsys.readouterr().out
    rows = _rows(rt.readme_block((project / "README.md").read_text()))
    assert rows["00_background"][2:] == [rt.format_seconds(37.7), f"[{rt.format_seconds(700.0)}](../results/full/"
                                         "00_background.csv), CPU, abcdef1", "stale"]  # entry has no depends_on
    assert rows["07_survey_tables"][2:] == [rt.format_seconds(8.2), rt.NOT_RUN, "missing"]
    assert cli.main(["readme-table", "--check"]) == 0
    assert cli.main(["readme-table"]) == 0
    assert "already as the runs give it" in capsys.readouterr().out


def test_cli_without_markers_is_one_error_line(project, capsys):
    (project / "README.md").write_text("# P\n")
    assert cli.main(["readme-table"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: README.md must hold the marker lines") and err.count("\n") == 1
