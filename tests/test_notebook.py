"""Parameters and inputs checked before any work: notebook parameters, the results folder, ``measure``'s generator
and ``teacher``'s device; and ad hoc records kept apart from a regeneration's."""

import json

import pytest
import torch
from torch import nn

import gansurvey as gs
from gansurvey import notebook as params
from gansurvey.checks import GanSurveyError, check_writable
from gansurvey.config import display_path, project_root
from gansurvey.records import Measurement


def _defaults(notebook: str) -> dict:
    """A notebook's parameters cell as a namespace (its default values), read from the committed notebook."""
    import ast

    import nbformat

    nb = nbformat.read(project_root() / "notebooks" / f"{notebook}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {node.target.id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body
            if isinstance(node, ast.AnnAssign)}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


# --- list parameters given as strings -------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    ('["mnist-dcgan"]', ["mnist-dcgan"]),                                   # -p benchmarks '["mnist-dcgan"]'
    ("[mnist-dcgan, edges2digits-resnet]", ["mnist-dcgan", "edges2digits-resnet"]),  # YAML flow list
    ("mnist-dcgan, gaussians-mlp", ["mnist-dcgan", "gaussians-mlp"]),       # comma-separated
    ("mnist-dcgan", ["mnist-dcgan"]),                                       # one name stands for a list of one
    (("mnist-dcgan",), ["mnist-dcgan"]),
])
def test_list_parameter_given_as_a_string_is_parsed(given, expected):
    assert params.check_parameters("01_pruning", benchmarks=given)["benchmarks"] == expected


def test_numeric_list_given_as_a_string_is_parsed():
    checked = params.check_parameters("01_pruning", sparsities="[0.3, 0.7]", toy_sparsities=0.5)
    assert checked == {"sparsities": [0.3, 0.7], "toy_sparsities": [0.5]}


def test_unknown_benchmark_in_a_string_is_named_with_the_allowed_ones_and_how_to_pass_a_list():
    with pytest.raises(GanSurveyError) as info:
        params.check_parameters("01_pruning", benchmarks='["cifar"]')
    message = str(info.value)
    assert "'cifar'" in message and "'mnist-dcgan'" in message and "unknown value '['" not in message
    assert "-y 'benchmarks: [a, b]'" in message


def test_a_string_that_is_no_list_says_how_to_pass_one():
    with pytest.raises(GanSurveyError, match=r"sparsities.*'0.3 0.7'.*-y 'sparsities: \[a, b\]'"):
        params.check_parameters("01_pruning", sparsities="0.3 0.7")


@pytest.mark.parametrize("name, value, pattern", [
    ("profile", "medium", r"profile.*'medium'.*'quick', 'full'"),
    ("device", "gpu", r"device.*'gpu'.*'auto', 'cpu', 'cuda'"),
    ("criterion", "l3", r"criterion.*'l3'.*'l1', 'l2', 'bn_scale'"),
    ("sparsities", [0.5, 1.0], r"sparsities.*< 1.0, got 1.0"),
    ("lottery_rounds", 0, r"lottery_rounds.*>= 1, got 0"),
    ("seed", True, r"seed must be an integer"),
    ("benchmarks", [], r"benchmarks must name at least one"),
    ("profile", None, r"profile cannot be None"),
])
def test_bad_values_are_refused_naming_value_and_allowed(name, value, pattern):
    with pytest.raises(GanSurveyError, match=pattern):
        params.check_parameters("01_pruning", **{name: value})


@pytest.mark.parametrize("name, value, pattern", [
    ("bits", [8, 5], r"bits: unknown value 5; allowed: 8, 6, 4, 3, 2, 1"),
    ("fidelity_bits", "[8, 7]", r"fidelity_bits: unknown value 7"),
    ("mixed_choices", [2, 33], r"mixed_choices: unknown value 33; allowed: .*32"),
    ("granularities", ["per-row"], r"granularities: unknown value 'per-row'( \(did you mean '[a-z-]+'\?\))?; "
                                   r"allowed: 'per-tensor'"),
    ("granularities", ["per-chanel"], r"unknown value 'per-chanel' \(did you mean 'per-channel'\?\); allowed"),
    ("rounding", "stochastic", r"rounding.*'stochastic'.*'nearest', 'mse', 'gptq'"),
    ("engine", "x86", r"engine.*'x86'.*'fbgemm', 'qnnpack'"),
    ("group_size", 0, r"group_size.*>= 1, got 0"),
])
def test_precision_notebook_parameters_are_checked(name, value, pattern):
    assert params.check_parameters("04_precision", **_defaults("04_precision"))["bits"] == [8, 4, 2]
    with pytest.raises(GanSurveyError, match=pattern):
        params.check_parameters("04_precision", **{name: value})
    with pytest.raises(GanSurveyError, match=r"unknown parameter 'bit'.*did you mean 'bits'"):
        params.check_parameters("04_precision", bit=[8])


@pytest.mark.parametrize("name", ["sensitivity_ranks", "matched_ranks", "svd_ranks", "cp_ranks"])
def test_a_rank_must_be_greater_than_zero_and_the_error_says_so_plainly(name):  # #21: it printed ">= 1e-09"
    with pytest.raises(GanSurveyError, match=rf"parameter {name} must be a number > 0( and <= 1.0)?, got 0$"):
        params.check_parameters("03_low_rank", **{name: [0]})
    assert params.check_parameters("03_low_rank", **{name: [1e-12]}) == {name: [1e-12]}  # any positive fraction


def test_optional_parameters_accept_none_and_save_is_a_bool():
    assert params.check_parameters("02_distillation", widths=None, seeds="[0, 1]") == {"widths": None,
                                                                                       "seeds": [0, 1]}
    with pytest.raises(GanSurveyError, match="save must be True or False"):
        params.check_parameters("07_survey_tables", save="yes")


def test_misspelt_parameter_name_is_refused_with_the_closest_one():
    with pytest.raises(GanSurveyError, match=r"unknown parameter 'sparsity'.*did you mean 'sparsities'"):
        params.check_parameters("01_pruning", sparsity=[0.3])


def test_notebook_parameters_refuses_a_name_papermill_injected_but_the_notebook_lacks(results):
    namespace = _defaults("01_pruning") | {"In": ["", '# Parameters\nprofile = "quick"\nsparsity = [0.3]\n']}
    with pytest.raises(GanSurveyError, match=r"'sparsity'.*'sparsities'"):
        params.notebook_parameters("01_pruning", namespace)
    assert not results.exists()  # refused before anything was written


def test_notebook_parameters_normalizes_the_namespace_and_says_where_records_go(results, capsys):
    namespace = _defaults("01_pruning") | {"benchmarks": '["mnist-dcgan"]', "In": ["", "# Parameters\n"]}
    run = params.notebook_parameters("01_pruning", namespace)
    assert namespace["benchmarks"] == ["mnist-dcgan"]
    assert run.records_path.parent == results / "quick" / "adhoc"
    assert f"records go to {display_path(run.records_path)}" in capsys.readouterr().out


# --- the results folder -----------------------------------------------------------------------------------------

def test_unwritable_results_folder_is_refused_at_once(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GANSURVEY_RESULTS", str(blocker / "results"))
    with pytest.raises(GanSurveyError, match=r"results folder .*a-file/results/quick cannot be written.*"
                                             r"GANSURVEY_RESULTS"):
        params.notebook_parameters("07_survey_tables", _defaults("07_survey_tables"))


def test_check_writable_creates_the_folder_and_leaves_no_probe(tmp_path):
    folder = check_writable("results folder", tmp_path / "a" / "b")
    assert folder.is_dir() and not list(folder.iterdir())


# --- records kept apart -------------------------------------------------------------------------------------------

def _record(profile="quick"):
    return Measurement(notebook="01_pruning", benchmark="mnist-dcgan", technique="teacher", family="baseline",
                       profile=profile)


def test_adhoc_records_never_replace_the_regeneration_records(results):
    defaults = params.check_parameters("01_pruning", **_defaults("01_pruning"))
    tables = params.records_path("01_pruning", "quick", "tables", defaults)
    assert tables == results / "quick" / "01_pruning.csv"
    tables.parent.mkdir(parents=True)
    tables.write_text("the regeneration's records\n")

    other = defaults | {"sparsities": [0.3, 0.7]}
    adhoc = [params.records_path("01_pruning", "quick", "adhoc", values) for values in (defaults, other)]
    assert adhoc[0] != adhoc[1] and all(p.parent == results / "quick" / "adhoc" for p in adhoc)
    written = params.NotebookRun("01_pruning", other | {"records_to": "adhoc"}, adhoc[1]).write([_record()])
    assert tables.read_text() == "the regeneration's records\n"
    assert written == display_path(adhoc[1])
    assert json.loads(adhoc[1].with_suffix(".json").read_text())["parameters"]["sparsities"] == [0.3, 0.7]
    assert gs.ResultsStore("quick").notebooks() == ["01_pruning"]  # the tables never read ad hoc records


def test_paths_are_printed_relative_to_the_project(tmp_path):
    assert display_path(project_root() / "results" / "quick" / "01_pruning.csv") == "results/quick/01_pruning.csv"
    shown = display_path(tmp_path / "x.csv")  # outside the project: no machine path (#21)
    assert shown.endswith(f"{tmp_path.name}/x.csv") and str(tmp_path) not in shown


# --- measure and teacher check their inputs first ------------------------------------------------------------

def test_measure_refuses_a_generator_that_does_not_fit_the_benchmark():
    with pytest.raises(GanSurveyError, match=r"cannot run on mnist-dcgan's input of shape \(1, 100, 1, 1\) "
                                             r"\(expected output \(1, 1, 32, 32\)\)"):
        gs.measure(nn.Linear(10, 4), "mnist-dcgan")
    with pytest.raises(GanSurveyError, match=r"returns shape \(1, 3, 32, 32\) for edges2digits-resnet's input "
                                             r"of shape \(1, 1, 32, 32\); the benchmark expects \(1, 1, 32, 32\)"):
        gs.measure(nn.Conv2d(1, 3, 3, padding=1), "edges2digits-resnet")


def test_teacher_checks_the_device_before_the_cache(artifacts):
    with pytest.raises(GanSurveyError, match=r"unknown device 'gpu'; allowed: 'auto', 'cpu', 'cuda'"):
        gs.get_benchmark("gaussians-mlp").teacher("quick", device="gpu")
    assert not artifacts.exists() or not any(artifacts.rglob("*"))
    if not torch.cuda.is_available():
        with pytest.raises(GanSurveyError, match="no CUDA GPU"):
            gs.get_benchmark("gaussians-mlp").teacher("quick", device="cuda")
