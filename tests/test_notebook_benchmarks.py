"""The family notebooks' benchmarks: the built-in ones they name, plus the folder benchmark that fits ``data_root``
(checked before any work), one line when there is none; the notebooks' parameters and tools/wire_data_root.py.
Tiny generated folders; nothing trains except one fine-tuning step of a tiny U-Net."""

import ast
import importlib.util
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from PIL import Image

from gansurvey import notebook as params
from gansurvey.checks import GanSurveyError
from gansurvey.compress import MagnitudePruneConfig
from gansurvey.config import display_path
from gansurvey.experiments.distillation import distill_config, total_steps
from gansurvey.experiments.pruning import pruning_sweep
from tests.conftest import QUICK

ROOT = Path(__file__).resolve().parent.parent
FAMILY_NOTEBOOKS = ("01_pruning", "02_distillation")
SIZE = 64


def _png(path: Path, seed: int, width: int = SIZE, height: int = SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def make_pix2pix(root: Path, n: int = 3) -> Path:
    """train/ and test/ of A|B files side by side."""
    for k, split in enumerate(("train", "test")):
        for i in range(n):
            _png(root / split / f"{i}.png", 10 * k + i, 2 * SIZE, SIZE)
    return root


def make_paired(root: Path, n: int = 3) -> Path:
    for split in ("train", "test"):
        for i in range(n):
            _png(root / "A" / split / f"{i}.png", i)
            _png(root / "B" / split / f"{i}.png", 100 + i)
    return root


def make_cyclegan(root: Path, n: int = 3) -> Path:
    for k, name in enumerate(("trainA", "trainB", "testA", "testB")):
        for i in range(n):
            _png(root / name / f"{i}.png", 10 * k + i)
    return root


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def _parameters_cell(notebook: str) -> str:
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))


def _defaults(notebook: str) -> dict:
    namespace: dict = {}
    exec(_parameters_cell(notebook), namespace)  # plain typed assignments (a test checks the cell's form)
    return {k: v for k, v in namespace.items() if k in params.NOTEBOOK_PARAMETERS[notebook]}


# ------------------------------------------------------------------------------------------------ the helper


def test_without_data_root_the_builtins_come_back_and_one_line_says_the_folders_are_skipped(capsys):
    benches = params.notebook_benchmarks(["mnist-dcgan", "edges2digits-resnet"])
    assert [b.name for b in benches] == ["mnist-dcgan", "edges2digits-resnet"]
    out = capsys.readouterr().out
    assert out.splitlines() == [params.FOLDER_SKIP_LINE]
    assert "skipped" in out and "-p data_root /path/to/folder" in out
    params.notebook_benchmarks(["mnist-dcgan"], echo=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("make", [make_pix2pix, make_paired], ids=["pix2pix-layout", "paired-folders"])
def test_a_paired_folder_adds_pix2pix_folder_at_the_given_size(tmp_path, capsys, make):
    root = make(tmp_path / "facades")
    benches = params.notebook_benchmarks(["mnist-dcgan"], root, SIZE)
    assert [b.name for b in benches] == ["mnist-dcgan", "pix2pix-folder"]
    folder = benches[1]
    assert folder.size == SIZE and folder.data.root == root and folder.example_input(2).shape == (2, 3, SIZE, SIZE)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("pix2pix-folder on ") and f"size {SIZE}" in out[0]


def test_a_cyclegan_folder_adds_cyclegan_folder_and_builtins_may_be_left_out(tmp_path):
    benches = params.notebook_benchmarks([], make_cyclegan(tmp_path / "horse2zebra"), SIZE, echo=False)
    assert [b.name for b in benches] == ["cyclegan-folder"] and benches[0].size == SIZE


def test_bad_folders_are_refused_with_their_path(tmp_path):
    missing = tmp_path / "no-such-folder"
    shown = re.escape(display_path(missing))
    with pytest.raises(GanSurveyError, match=rf"{shown}: data folder does not exist.*pix2pix layout") as refused:
        params.notebook_benchmarks(["mnist-dcgan"], missing)
    assert str(tmp_path) not in str(refused.value)  # #21: no path of the machine
    (tmp_path / "odd" / "images").mkdir(parents=True)
    with pytest.raises(GanSurveyError, match=r"odd: neither a paired nor an unpaired layout \(found images/\)"):
        params.notebook_benchmarks([], tmp_path / "odd")
    root = make_pix2pix(tmp_path / "p")
    (root / "test" / "notes.txt").write_text("not an image")
    with pytest.raises(GanSurveyError, match=r"notes.txt: not an image file"):
        params.notebook_benchmarks([], root)  # every file is checked when the benchmark is built
    one = make_cyclegan(tmp_path / "c")
    (one / "testB" / "1.png").unlink()
    (one / "testB" / "2.png").unlink()
    with pytest.raises(GanSurveyError, match=r"has only 1 image on a side; .*at least 2"):
        params.notebook_benchmarks([], one)


def test_nothing_to_run_and_bad_sizes_are_refused(tmp_path):
    with pytest.raises(GanSurveyError, match=r"no benchmark to run.*data_root"):
        params.notebook_benchmarks([])
    with pytest.raises(GanSurveyError, match=r"unknown value 'cifar'"):
        params.notebook_benchmarks(["cifar"])
    root = make_pix2pix(tmp_path / "p")
    with pytest.raises(GanSurveyError, match=r"folder_size must be an integer >= 32, got 16"):
        params.notebook_benchmarks([], root, 16)
    with pytest.raises(GanSurveyError, match=r"power of two.*got 96"):
        params.notebook_benchmarks([], root, 96)


# ----------------------------------------------------------------------------------- the notebooks' parameters


@pytest.mark.parametrize("notebook", FAMILY_NOTEBOOKS)
def test_family_notebooks_take_the_folder_parameters_after_benchmarks(notebook):
    spec = list(params.NOTEBOOK_PARAMETERS[notebook])
    at = spec.index("benchmarks")
    assert spec[at + 1:at + 3] == ["data_root", "folder_size"]
    lines = _parameters_cell(notebook).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("benchmarks:"))
    assert tuple(lines[at + 1:at + 3]) == params.FOLDER_PARAMETER_LINES
    defaults = _defaults(notebook)
    assert (defaults["data_root"], defaults["folder_size"]) == (None, 256)


def test_with_folder_parameters_is_one_line_per_spec():
    spec = params.with_folder_parameters({"seed": params.COMMON["seed"], "benchmarks": params.COMMON["benchmarks"],
                                          "records_to": params.COMMON["records_to"]})
    assert list(spec) == ["seed", "benchmarks", "data_root", "folder_size", "records_to"]
    assert params.with_folder_parameters(spec) == spec
    with pytest.raises(GanSurveyError, match="needs a benchmarks parameter"):
        params.with_folder_parameters({"seed": params.COMMON["seed"]})


def test_data_root_is_checked_with_the_other_parameters(tmp_path):
    root = make_cyclegan(tmp_path / "c")
    checked = params.check_parameters("01_pruning", data_root=root, benchmarks=[], folder_size=64)
    assert checked == {"data_root": str(root), "benchmarks": [], "folder_size": 64}
    assert params.check_parameters("02_distillation", data_root=None)["data_root"] is None
    with pytest.raises(GanSurveyError, match=r"benchmarks must name at least one benchmark when no data_root"):
        params.check_parameters("02_distillation", benchmarks="[]", data_root=None)
    with pytest.raises(GanSurveyError, match=r"parameter data_root: .*a-file: is a file, expected a data folder"):
        (tmp_path / "a-file").write_text("x")
        params.check_parameters("01_pruning", data_root=str(tmp_path / "a-file"))
    with pytest.raises(GanSurveyError, match=r"parameter data_root must name a data folder.*got 3"):
        params.check_parameters("01_pruning", data_root=3)
    with pytest.raises(GanSurveyError, match=r"folder_size must be an integer >= 32"):
        params.check_parameters("01_pruning", folder_size=8)


@pytest.mark.parametrize("notebook", FAMILY_NOTEBOOKS)
def test_notebook_parameters_refuses_a_missing_data_root_before_any_work(notebook, tmp_path, results):
    missing = tmp_path / "datasets" / "facades"
    namespace = _defaults(notebook) | {"data_root": str(missing), "In": ["", "# Parameters\n"]}
    with pytest.raises(GanSurveyError, match=rf"parameter data_root: {re.escape(display_path(missing))}: data folder "
                                             "does not exist"):
        params.notebook_parameters(notebook, namespace)
    assert not results.exists()  # refused before anything was written
    relative = _defaults(notebook) | {"data_root": "no/such/folder"}
    with pytest.raises(GanSurveyError, match=r"data_root \(a relative path, read from .*\): no/such/folder"):
        params.notebook_parameters(notebook, relative)


def test_a_relative_data_root_error_names_the_working_directory_without_the_machine(tmp_path, monkeypatch):  # #21
    from gansurvey.config import project_root

    outside = tmp_path / "class" / "week1"
    outside.mkdir(parents=True)
    monkeypatch.chdir(outside)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # outside the home folder too, wherever tmp_path lies
    with pytest.raises(GanSurveyError) as refused:
        params.check_parameters("01_pruning", data_root="no/such/folder")
    message = str(refused.value)
    assert str(tmp_path) not in message and "//" not in message
    assert message.startswith("parameter data_root (a relative path, read from the working directory "
                              f".../{tmp_path.name}/class/week1): no/such/folder")
    monkeypatch.chdir(project_root() / "notebooks")  # where JupyterLab runs a notebook
    with pytest.raises(GanSurveyError, match=r"read from the working directory notebooks\): no/such/folder"):
        params.check_parameters("01_pruning", data_root="no/such/folder")
    monkeypatch.chdir(project_root())
    with pytest.raises(GanSurveyError, match=r"read from the project folder\): no/such/folder"):
        params.check_parameters("01_pruning", data_root="no/such/folder")


# ------------------------------------------------------------------------- package functions on folder benchmarks


def test_experiments_take_folder_benchmarks(tmp_path):
    bench = params.notebook_benchmarks([], make_paired(tmp_path / "q"), 32, echo=False, width=0.125, steps=1,
                                       num_workers=0)[0]
    assert params.measure_options(bench) == {"inception_samples": None}
    assert params.measure_options(params.notebook_benchmarks(["mnist-dcgan"], echo=False)[0]) == {}
    assert distill_config(bench, "output").output_weight == 100.0
    assert total_steps(QUICK, bench, 5) == 1 + 5  # the folder teacher's own steps
    assert total_steps(QUICK, "mnist-dcgan", 5) == total_steps(
        QUICK, params.notebook_benchmarks(["mnist-dcgan"], echo=False)[0], 5)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g, d = bench.new_generator().eval(), bench.new_discriminator()
        records, grids = pruning_sweep(bench, g, d, {"m50": MagnitudePruneConfig(sparsity=0.5)}, 1,
                                                   device="cpu", profile=QUICK, inception_samples=0)
    finally:
        torch.set_num_threads(before)
    assert [r.benchmark for r in records] == ["pix2pix-folder"] * 2
    assert grids["m50"].shape == (3, 3, 32, 32)  # the sample grid holds the 3 test inputs there are


# ---------------------------------------------------------------------------------------- tools/wire_data_root


def _wire_module():
    spec = importlib.util.spec_from_file_location("wire_data_root", ROOT / "tools" / "wire_data_root.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wire_data_root_adds_the_same_lines_once(tmp_path, capsys):
    wire = _wire_module()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('profile: str = "quick"  # "quick" or "full"\n'
                                     'benchmarks: list[str] = ["mnist-dcgan"]  # built-in benchmarks\n'
                                     "seed: int = 0  # a seed")
    cell.metadata["tags"] = ["parameters"]
    check = nbformat.v4.new_code_cell('from gansurvey.notebook import notebook_parameters\n\n'
                                      'run = notebook_parameters("03_low_rank", globals())')
    nb.cells = [cell, check, nbformat.v4.new_code_cell("print(benches)")]
    path = tmp_path / "03_low_rank.ipynb"
    nbformat.write(nb, path)
    assert wire.main([str(path)]) == 0
    wired = nbformat.read(path, as_version=4).cells
    lines = wired[0].source.splitlines()
    assert lines[0] == wire.OPTIONAL_IMPORT
    names = [n.target.id for n in ast.parse(wired[0].source).body if isinstance(n, ast.AnnAssign)]
    assert names == ["profile", "benchmarks", "data_root", "folder_size", "seed"]
    assert wired[1].source.splitlines()[-1] == wire.BUILD_LINE and "notebook_benchmarks," in wired[1].source
    assert wire.main([str(path)]) == 0  # idempotent
    assert nbformat.read(path, as_version=4).cells[0].source == wired[0].source
    assert "already wired" in capsys.readouterr().out
    assert wire.main([str(tmp_path / "missing.ipynb")]) == 1
    assert "missing.ipynb: no such notebook file" in capsys.readouterr().err
