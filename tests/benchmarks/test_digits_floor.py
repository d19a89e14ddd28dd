"""edges2digits' real-vs-real floor is scored the way its generators are, so a perfect translator cannot beat it."""

import pytest
import torch
from torch import nn

import gansurvey as gs
from gansurvey.data import bundled
from tests.conftest import QUICK


class Oracle(nn.Module):
    """Returns each evaluation input's own held-out target: the best an edges-to-digits translator can do."""

    def __init__(self) -> None:
        super().__init__()
        split = bundled.edges2digits()
        self.targets = split.test_targets
        self.index = {x.numpy().tobytes(): i for i, x in enumerate(split.test_inputs)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.targets[self.index[row.numpy().tobytes()]] for row in x])


def test_a_perfect_translator_scores_the_floor_not_better():
    bench = gs.get_benchmark("edges2digits-resnet")
    floor = bench.real_floor(QUICK, 0, inception_samples=0)
    perfect = bench.quality(Oracle(), QUICK, 0, inception_samples=0)
    assert perfect["domain_fid"] == pytest.approx(floor["domain_fid"], rel=1e-6)
