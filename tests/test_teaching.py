"""The teaching material (#24): reading order and objectives in every notebook's first cell, the glossary they
link, 2-4 exercises per family notebook each with its solution, and the exercise edition without solutions."""

from pathlib import Path

import nbformat
import pytest

from gansurvey import teaching
from gansurvey.checks import GanSurveyError
from gansurvey.config import project_root

NOTEBOOKS = sorted((project_root() / "notebooks").glob("*.ipynb"))
FAMILY = [p for p in NOTEBOOKS if p.stem[:2] in {"01", "02", "03", "04", "05", "06"}]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_says_the_idea_the_order_and_what_is_learnt(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for part in ("**In plain words.**", "**Reading order**", "**Before this one:**", "**You will learn to**",
                 f"({teaching.GLOSSARY_LINK})"):
        assert part in first.source, f"{path.name}: first cell lacks {part}"
    assert (path.parent / teaching.GLOSSARY_LINK).resolve().is_file()
    # the introduction comes before the parameters cell
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged and tagged[0] > 0


@pytest.mark.parametrize("path", FAMILY, ids=lambda p: p.stem)
def test_family_notebooks_have_two_to_four_exercises_each_with_its_solution(path):
    nb = nbformat.read(path, as_version=4)
    tags = [set(c.metadata.get("tags", [])) for c in nb.cells]
    questions = [i for i, c in enumerate(nb.cells) if c.source.startswith("**Exercise")
                 and teaching.EXERCISE_TAG in tags[i]]
    assert 2 <= len(questions) <= 4, f"{path.name}: {len(questions)} exercises"
    for i in questions:
        assert teaching.SOLUTION_TAG in tags[i + 1], f"{path.name}: exercise at cell {i} has no solution after it"
        assert nb.cells[i + 1].metadata.get("jupyter", {}).get("source_hidden"), "solutions are folded"


def test_exercise_edition_has_no_solutions_and_no_outputs(tmp_path):
    written = teaching.copy_notebooks(tmp_path / "exercises", exercises=True)
    assert sorted(p.stem for p in written) == [p.stem for p in NOTEBOOKS]
    assert (tmp_path / "exercises" / teaching.COPIED_GLOSSARY).is_file()
    for path in written:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert not any(teaching.SOLUTION_TAG in c.metadata.get("tags", []) for c in nb.cells)
        assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
        assert teaching.GLOSSARY_LINK not in "".join(c.source for c in nb.cells if c.cell_type == "markdown")
        original = nbformat.read(project_root() / "notebooks" / path.name, as_version=4)
        kept = [c.source for c in original.cells if teaching.SOLUTION_TAG not in c.metadata.get("tags", [])]
        assert [c.source for c in nb.cells] == [s.replace(teaching.GLOSSARY_LINK, teaching.COPIED_GLOSSARY)
                                                for s in kept]


def test_working_copy_keeps_outputs_and_refuses_to_overwrite_or_target_notebooks(tmp_path, capsys):
    assert teaching.main([str(tmp_path / "copy"), "--only", "07_survey_tables"]) == 0
    copied = nbformat.read(tmp_path / "copy" / "07_survey_tables.ipynb", as_version=4)
    original = nbformat.read(project_root() / "notebooks" / "07_survey_tables.ipynb", as_version=4)
    assert [c.get("outputs") for c in copied.cells] == [c.get("outputs") for c in original.cells]
    assert teaching.main([str(tmp_path / "copy"), "--only", "07_survey_tables"]) == 2
    assert "--force" in capsys.readouterr().err
    with pytest.raises(GanSurveyError, match="committed notebooks folder"):
        teaching.copy_notebooks(project_root() / "notebooks")
    with pytest.raises(GanSurveyError, match="unknown notebook"):
        teaching.copy_notebooks(tmp_path / "other", names=["99_nope"])
    assert not Path(tmp_path / "other").exists()


#: The cheapest run 01_pruning allows: the 2-D toy alone, one point per sweep, a few training steps.
CHEAP_01 = {"profile": "quick", "device": "cpu", "benchmarks": ["gaussians-mlp"], "sparsities": [0.5],
            "channel_ratios": [0.5], "toy_sparsities": [0.5], "finetune_steps": 10, "lottery_rounds": 1,
            "lottery_steps": 10}


def test_the_exercise_edition_executes(tmp_path, monkeypatch):  # #24: built by its command, then run as a class would
    import papermill as pm

    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))  # the kernel inherits these
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("GANSURVEY_PROGRESS", "0")
    # one torch thread in the kernel: on a busy 2-core machine two threads spin-wait for each other (this run took
    # 150 s so, 13 s with one thread)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    edition = tmp_path / "exercises"
    assert teaching.main([str(edition), "--exercises", "--only", "01_pruning"]) == 0
    executed = pm.execute_notebook(str(edition / "01_pruning.ipynb"), str(tmp_path / "executed.ipynb"),
                                   parameters=CHEAP_01, cwd=str(edition), kernel_name="python3", progress_bar=False)
    tags = [set(c.metadata.get("tags", [])) for c in executed.cells]
    assert any(teaching.EXERCISE_TAG in t for t in tags) and not any(teaching.SOLUTION_TAG in t for t in tags)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not any("%|" in o.get("text", "") for o in outputs)  # GANSURVEY_PROGRESS=0 reached the kernel
    records = list((tmp_path / "results" / "quick" / "adhoc").glob("01_pruning-*.csv"))  # a hand run's records
    assert len(records) == 1 and "gaussians-mlp" in records[0].read_text()
