"""quantize, encode and factorize name the weights they leave uncompressed (#21)."""

import warnings

import pytest
import torch
from torch import nn

from gansurvey.compress import compress
from gansurvey.compress.base import UncompressedWarning, uncompressed_layers
from gansurvey.compress.encoding import EncodeConfig
from gansurvey.compress.lowrank import LowRankConfig
from gansurvey.compress.precision import QuantConfig


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32)
        self.head = nn.Linear(32, 16)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


@pytest.mark.parametrize("config", [QuantConfig(weight_bits=8), EncodeConfig(), LowRankConfig("svd", rank=0.5)],
                         ids=["quantize", "encode", "svd"])
def test_weights_left_uncompressed_are_named(config):
    with pytest.warns(UncompressedWarning, match=r"left 6144 of \d+ weights uncompressed.*'lstm' \(LSTM, 6144"):
        compress(_Recurrent(), config, torch.zeros(2, 3, 16))


def test_a_plain_network_gives_no_warning():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3))
    assert uncompressed_layers(model) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncompressedWarning)
        compress(model, QuantConfig(weight_bits=8), torch.zeros(1, 1, 16, 16))
