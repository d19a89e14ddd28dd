"""A notebook run by hand (#24): its parameters cell's own assignments checked, refusals as one line, and 07's
tables kept apart from the regeneration's."""

import pytest

from gansurvey import notebook as params
from gansurvey.checks import GanSurveyError
from gansurvey.config import display_path
from tests.test_notebook import _defaults

PARAMETERS_01 = 'from typing import Optional\nprofile: str = "quick"\nsparsities: list[float] = [0.5]\n'


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def _cell(notebook: str, extra: str = "", drop: str | None = None) -> str:
    """The notebook's parameters cell as JupyterLab would have run it: its default lines, one dropped, one added."""
    values = _defaults(notebook)
    lines = [f"{name} = {value!r}" for name, value in values.items() if name != drop]
    return "\n".join(lines) + "\n" + extra


def test_parameters_cell_names_reads_the_latest_parameters_cell_not_papermills():
    history = ["", PARAMETERS_01, '# Parameters\nprofile = "full"\n', 'run = notebook_parameters("01", globals())']
    assert params.parameters_cell_names({"In": history}) == ["profile", "sparsities"]
    assert params.parameters_cell_names({"In": ["", "x = 1"]}) is None
    assert params.parameters_cell_names({}) is None


def test_a_misspelt_extra_assignment_in_the_cell_is_refused_with_the_closest_name(results):
    # JupyterLab: no papermill injection, the typo sits beside the real name, which keeps its default
    namespace = _defaults("01_pruning") | {"sparsity": [0.3]}
    namespace["In"] = ["", _cell("01_pruning", "sparsity = [0.3]\n"), 'run = notebook_parameters(...)']
    with pytest.raises(params.ParameterRefused, match=r"parameters cell assigns unknown parameter 'sparsity'.*"
                                                      r"did you mean 'sparsities'"):
        params.notebook_parameters("01_pruning", namespace)
    assert not results.exists()


def test_a_removed_name_is_refused_with_what_it_means_even_if_the_kernel_still_holds_it(results):
    namespace = _defaults("01_pruning")  # an earlier run left every value in the kernel
    namespace["In"] = ["", _cell("01_pruning", drop="sparsities"), 'run = notebook_parameters(...)']
    with pytest.raises(params.ParameterRefused, match=r"lacks sparsities \(unstructured sparsities.*put the line "
                                                      r"back"):
        params.notebook_parameters("01_pruning", namespace)


def test_a_refusal_renders_as_one_line_in_ipython(results, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell("from gansurvey.notebook import check_parameters, ParameterRefused\n"
                       "raise ParameterRefused('parameter profile: unknown value')")
    finally:
        # the shell is a process-wide singleton: left alive, tqdm.auto would draw every later test's bars
        # (papermill's among them) as notebook widgets instead of text
        InteractiveShell.clear_instance()
    out = capsys.readouterr()
    shown = (out.out + out.err).strip().splitlines()
    assert shown == ["ParameterRefused: parameter profile: unknown value"]
    namespace = _defaults("01_pruning") | {"benchmarks": ["nope"]}
    with pytest.raises(params.ParameterRefused) as caught:
        params.notebook_parameters("01_pruning", namespace)
    assert isinstance(caught.value, GanSurveyError) and caught.value.__cause__ is None
    assert caught.value._render_traceback_() == [f"ParameterRefused: {caught.value}"]


def test_records_lines_say_what_a_hand_run_does(results, capsys):
    run = params.notebook_parameters("01_pruning", _defaults("01_pruning"))
    out = capsys.readouterr().out
    assert "records_to='adhoc' (a run by hand)" in out and f"records go to {display_path(run.records_path)}" in out
    assert "results/quick/01_pruning.csv" in out and "left as it is" in out
    params.notebook_parameters("01_pruning", _defaults("01_pruning") | {"records_to": "tables"})
    out = capsys.readouterr().out
    assert "as a regeneration runs it" in out and "Run by hand" in out and "adhoc" in out


def test_07_writes_its_tables_apart_unless_regenerating(results, capsys):
    hand = params.notebook_parameters("07_survey_tables", _defaults("07_survey_tables"))
    assert _defaults("07_survey_tables")["records_to"] == "adhoc"  # the committed default keeps them apart
    assert hand.tables_dir == results / "quick" / "adhoc" / "tables" and hand.records_path is None
    out = capsys.readouterr().out
    assert "parameters checked: profile='quick', seed=0, save=True, records_to='adhoc'" in out  # echoed
    regenerating = params.notebook_parameters("07_survey_tables", _defaults("07_survey_tables")
                                              | {"records_to": "tables"})
    assert regenerating.tables_dir == results / "quick" / "tables"


def test_07_source_writes_to_the_checked_folder():
    # the notebook passes the checked folder to write_tables (a hand run never writes results/<profile>/tables/)
    import nbformat

    from gansurvey.config import project_root

    nb = nbformat.read(project_root() / "notebooks" / "07_survey_tables.ipynb", as_version=4)
    calls = [c.source for c in nb.cells if c.cell_type == "code" and "write_tables(" in c.source]
    assert calls and all("write_tables(profile, run.tables_dir)" in source for source in calls)


def test_regenerate_injects_records_to_into_07(tmp_path):
    from gansurvey.config import project_root
    from gansurvey.runner import _injected_parameters

    source = project_root() / "notebooks" / "07_survey_tables.ipynb"
    assert _injected_parameters(source, "07_survey_tables", {"profile": "quick"})["records_to"] == "tables"


def test_progress_bar_shows_elapsed_and_remaining_time(capsys):
    assert list(params.progress(iter(range(3)), "sweeps", total=3)) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "sweeps" in err and "3/3" in err and "<00:00" in err  # elapsed<remaining


def test_family_notebooks_show_progress_over_their_long_loops():
    import nbformat

    from gansurvey.config import project_root

    for name in ("01_pruning", "02_distillation", "03_low_rank", "04_precision", "05_encoding", "06_combinations"):
        nb = nbformat.read(project_root() / "notebooks" / f"{name}.ipynb", as_version=4)
        assert any(" in progress(" in c.source for c in nb.cells if c.cell_type == "code"), name


class _Kernel:
    """What progress_bar reads of an IPython kernel: its config and its input history."""

    def __init__(self, history: list[str]) -> None:
        self.config = {"IPKernelApp": {}}
        self.user_ns = {"In": history}


@pytest.mark.parametrize(("history", "widget"), [
    (["", 'profile = "quick"'], True),  # JupyterLab: tqdm's notebook widget (ipywidgets is pinned)
    (["", '# Parameters\nprofile = "full"\n', 'profile = "quick"'], False),  # papermill: text, which its log shows
])
def test_the_bar_is_the_widget_in_jupyterlab_and_text_under_papermill(monkeypatch, history, widget):
    import IPython
    from tqdm.notebook import tqdm_notebook

    from gansurvey.config import progress_bar

    monkeypatch.setattr(IPython, "get_ipython", lambda: _Kernel(history))
    bar = progress_bar(range(2), desc="sweeps")
    try:
        assert isinstance(bar, tqdm_notebook) == widget
        assert list(bar) == [0, 1]
    finally:
        bar.close()


def test_gansurvey_progress_0_turns_every_bar_off(monkeypatch, capsys):
    import torch

    from gansurvey.models import generators
    from gansurvey.train.gan import TrainConfig, UnconditionalTask, train_gan

    def train():
        g, d = generators.MLPGenerator(hidden=8, depth=1), generators.MLPDiscriminator(hidden=8, depth=1)
        train_gan(g, d, UnconditionalTask(torch.randn(32, 2)), TrainConfig(steps=2, batch_size=8, progress=True))

    train()
    assert "train" in capsys.readouterr().err  # the training bar, asked for and allowed
    monkeypatch.setenv("GANSURVEY_PROGRESS", "0")
    assert list(params.progress(iter(range(3)), "sweeps", total=3)) == [0, 1, 2]
    train()
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("GANSURVEY_PROGRESS", "maybe")
    with pytest.raises(GanSurveyError, match=r"GANSURVEY_PROGRESS must be 1 \(progress bars, the default\) or 0 "
                                             r"\(none\), got 'maybe'"):
        params.progress(range(3), "sweeps")
