"""Channel pruning refuses models it cannot prune, naming why (#21)."""

import pytest
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.compress.channels import ChannelPruneConfig, prune_channels


@pytest.mark.parametrize("model, pattern", [
    (nn.Sequential(), r"Sequential has no Linear, Conv2d or ConvTranspose2d layer"),
    (nn.Sequential(nn.LSTM(4, 4)), r"layer '0' is an LSTM: channel pruning handles"),
    (nn.Linear(4, 4), r"Linear has no layer whose output channels can be removed.*ratio 0.5"),
])
def test_models_without_prunable_channels_are_refused(model, pattern):
    with pytest.raises(GanSurveyError, match=pattern):
        prune_channels(model, ChannelPruneConfig(ratio=0.5))


def test_a_two_layer_model_is_still_pruned():
    small = prune_channels(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), ChannelPruneConfig(ratio=0.5))
    assert small[0].out_features == 4
