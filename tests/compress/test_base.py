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


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))


@pytest.mark.parametrize("case", ["quantize twice", "encode a quantized model", "svd at full rank",
                                  "quantize an empty model"])
def test_a_config_that_changes_nothing_says_so(case):  # #21: these returned the input silently
    model, config = {
        "quantize twice": (compress(_mlp(), QuantConfig(weight_bits=8)), QuantConfig(weight_bits=4)),
        "encode a quantized model": (compress(_mlp(), QuantConfig(weight_bits=8)), EncodeConfig(bits=4)),
        "svd at full rank": (_mlp(), LowRankConfig("svd", rank=1.0)),
        "quantize an empty model": (nn.Sequential(), QuantConfig(weight_bits=4)),
    }[case]
    kinds = {"quantize twice": "3 QuantizedLinear", "encode a quantized model": "3 QuantizedLinear",
             "svd at full rank": "3 Linear", "quantize an empty model": "none holds weights"}[case]
    name = type(config).__name__
    with pytest.warns(UncompressedWarning, match=rf"{name} changed nothing in Sequential: none of its layers "
                                                 rf"\({kinds}\) is one {name} compresses"):
        out = compress(model, config, torch.zeros(2, 8))
    assert out.compression[-1] == config.to_dict()  # still listed: the warning is what tells


def test_a_config_that_changes_the_model_does_not_say_it_changed_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncompressedWarning)
        compress(compress(_mlp(), QuantConfig(weight_bits=8, layers=("0",))), QuantConfig(weight_bits=4,
                                                                                          layers=("2", "4")))
        compress(_mlp(), LowRankConfig("svd", rank=0.25))
