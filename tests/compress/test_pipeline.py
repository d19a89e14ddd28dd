"""check_pipeline refuses training after encoding (#21)."""

import pytest
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.compress import compress
from gansurvey.compress.encoding import EncodeConfig
from gansurvey.compress.pipeline import Distill, Finetune, check_pipeline
from gansurvey.compress.precision import QuantConfig


@pytest.mark.parametrize("step", [Finetune(), Distill()], ids=["finetune", "distill"])
def test_training_after_encoding_is_refused(step):
    with pytest.raises(GanSurveyError, match=r"stage 2 is a training step .* after encoding"):
        check_pipeline([EncodeConfig(), step])
    encoded = compress(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)), EncodeConfig())
    with pytest.raises(GanSurveyError, match=r"stage 1 is a training step .* after encoding"):
        check_pipeline([step], encoded)


def test_training_before_encoding_and_after_quantization_is_fine():
    assert len(check_pipeline([QuantConfig(weight_bits=8), Finetune(), EncodeConfig()])) == 3
