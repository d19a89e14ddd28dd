import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gansurvey import plots  # noqa: E402


def test_sample_grids_one_figure_per_benchmark_images_or_points():
    images = torch.zeros(4, 1, 8, 8)
    samples = {("mnist-dcgan", "a"): images, ("gaussians-mlp", "a"): torch.zeros(16, 2),
               ("mnist-dcgan", "b"): images, ("edges2digits-resnet", "a"): images}
    figures = plots.sample_grids(samples, ["mnist-dcgan", "gaussians-mlp", "edges2digits-resnet"])
    try:
        assert len(figures) == 3  # the toy's 2-D points as a scatter, in their own row
        assert [ax.get_title() for ax in figures[0].axes] == ["mnist-dcgan: a", "mnist-dcgan: b"]
        assert [ax.get_title() for ax in figures[1].axes] == ["gaussians-mlp: a"]
        assert len(figures[1].axes[0].collections) == 1  # drawn as points, not an image
        assert [ax.get_title() for ax in figures[2].axes] == ["edges2digits-resnet: a"]
    finally:
        for fig in figures:
            plt.close(fig)
