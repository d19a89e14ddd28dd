"""Every benchmark a notebook accepts gets its samples shown (#24: the toy's 2-D points crashed the image grid)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from gansurvey import plots  # noqa: E402
from gansurvey.benchmarks import get_benchmark  # noqa: E402
from gansurvey.notebook import NOTEBOOK_PARAMETERS  # noqa: E402

# (notebook, benchmark) for every benchmark each notebook's parameters cell allows
ALLOWED = [(notebook, name) for notebook, spec in NOTEBOOK_PARAMETERS.items() if "benchmarks" in spec
           for name in spec["benchmarks"].allowed()]


def test_every_family_notebook_accepts_every_builtin_benchmark():
    from gansurvey.benchmarks import BENCHMARKS

    for notebook, spec in NOTEBOOK_PARAMETERS.items():
        if "benchmarks" in spec:
            assert tuple(spec["benchmarks"].allowed()) == BENCHMARKS, notebook


@pytest.mark.parametrize(("notebook", "name"), ALLOWED, ids=lambda v: v)
def test_sample_cell_shows_every_allowed_benchmark(notebook, name):
    # the samples cell's call, on what an (untrained, tiny) generator of this benchmark generates
    bench = get_benchmark(name)
    torch.manual_seed(0)
    generator = bench.new_generator()
    samples = {(name, "teacher"): bench.generate(generator, 8, seed=0),
               (name, "pruned"): bench.generate(generator, 8, seed=1)}
    figures = plots.sample_grids(samples, [name])
    try:
        assert len(figures) == 1
        assert [ax.get_title() for ax in figures[0].axes] == [f"{name}: teacher", f"{name}: pruned"]
    finally:
        for fig in figures:
            plt.close(fig)


def test_sample_grids_refuses_a_shape_it_cannot_show():
    with pytest.raises(ValueError, match="shape"):
        plots.sample_grids({("x", "a"): torch.zeros(4, 3)}, ["x"])
