"""Every built-in benchmark runs in every notebook that accepts it (#24), on a tiny budget given as papermill
parameters. ``make test``'s nbval pass executes each notebook with its default benchmarks (mnist-dcgan and
edges2digits-resnet; 00 also the 2-D toy); this runs each notebook once with the other built-in benchmarks its
parameters cell allows (the MLP ones: the 2-D toy, whose samples are points shown as a scatter, and mnist-mlp), all
of them in one run, so a kernel starts once per notebook (07 takes no benchmarks). A few minutes on two cores; 06
takes longest, as its arms train for the profile's budget (it has no finetune_steps). The folder benchmarks need a
data folder: test_notebook_benchmarks.py covers them. Results and artifacts go to a temporary folder shared by the
runs (the dense controls trained by the first run are reused by the next), so nothing in the repository is written."""

from __future__ import annotations

import pytest

from gansurvey.benchmarks import BENCHMARKS
from gansurvey.config import project_root
from gansurvey.notebook import NOTEBOOK_PARAMETERS
from tests.test_notebook_benchmarks import _defaults

#: Per notebook, the parameters that make a run tiny: one seed, one point per sweep, one training step.
TINY: dict[str, dict] = {
    "00_background": {"inception_samples": 0},
    "01_pruning": {"seeds": [0], "sparsities": [0.5], "channel_ratios": [0.5], "toy_sparsities": [0.5],
                   "finetune_steps": 1, "lottery_rounds": 1, "lottery_steps": 1},
    "02_distillation": {"seeds": [0], "widths": [0.5], "variants": ["output"], "finetune_steps": 1},
    "03_low_rank": {"seeds": [0], "tt_ranks": [4], "finetune_steps": 1},
    "04_precision": {"seeds": [0], "bits": [4], "extra_granularities": [], "fidelity_bits": [8],
                     "mixed_budgets": [], "finetune_steps": 1},
    "05_encoding": {"seeds": [0], "bits": [2], "trained_bits": [2], "finetune_steps": 1},
    "06_combinations": {"seeds": [0], "batch_sizes": [1], "real_size": False},
}
def _others(notebook: str) -> list[str]:
    """The built-in benchmarks a notebook allows beyond its defaults (which nbval runs), the 2-D toy first."""
    allowed = NOTEBOOK_PARAMETERS[notebook]["benchmarks"].allowed()
    defaults = _defaults(notebook)["benchmarks"]
    return [b for b in allowed if b in BENCHMARKS and b not in defaults]


NOTEBOOKS = [n for n, spec in NOTEBOOK_PARAMETERS.items() if "benchmarks" in spec and _others(n)]


def test_every_notebook_with_benchmarks_has_a_tiny_budget():
    assert set(NOTEBOOKS) == set(TINY), "give each notebook that takes benchmarks a tiny budget in TINY"
    for notebook, tiny in TINY.items():
        assert set(tiny) <= set(NOTEBOOK_PARAMETERS[notebook]), notebook


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One results and artifacts folder for the module's runs; the kernels inherit the environment."""
    root = tmp_path_factory.mktemp("every-benchmark")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANSURVEY_RESULTS", str(root / "results"))
        mp.setenv("GANSURVEY_ARTIFACTS", str(root / "artifacts"))
        mp.setenv("GANSURVEY_PROGRESS", "0")
        mp.setenv("OMP_NUM_THREADS", "1")  # on a busy 2-core machine two torch threads spin-wait for each other
        yield root


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs_every_other_builtin_benchmark(notebook, shared):
    import papermill as pm

    benchmarks = _others(notebook)  # 00: mnist-mlp alone, so a single benchmark's figures are covered too
    parameters = {"profile": "quick", "device": "cpu", "benchmarks": benchmarks, **TINY[notebook]}
    executed = pm.execute_notebook(str(project_root() / "notebooks" / f"{notebook}.ipynb"),
                                   str(shared / f"{notebook}.ipynb"), parameters=parameters,
                                   cwd=str(project_root() / "notebooks"), kernel_name="python3", progress_bar=False)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    records = list((shared / "results" / "quick" / "adhoc").glob(f"{notebook}-*.csv"))
    assert len(records) == 1, f"{notebook} wrote no records (or more than one run's)"
    written = records[0].read_text()
    assert all(name in written for name in _others(notebook)), f"{notebook}: a benchmark has no records"
    for cell in executed.cells:  # the samples cell: one figure per benchmark, the toy's 2-D points as a scatter (#24)
        if cell.cell_type == "code" and "plots.sample_grids(" in cell.source:
            shown = sum("image/png" in o.get("data", {}) for o in cell.outputs)
            assert shown == len(benchmarks), f"{notebook}: {shown} sample figures for {len(benchmarks)} benchmarks"
