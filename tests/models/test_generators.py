import pytest
import torch

from gansurvey.checks import GanSurveyError
from gansurvey.models import build_discriminator, build_generator, generators


@pytest.mark.parametrize("width", [0.25, 0.5, 1.0, 1.5])
@pytest.mark.parametrize("kind", ["mlp", "dcgan", "resnet"])
def test_generator_shapes_for_every_width(kind, width):
    g = build_generator(kind, width=width)
    x = torch.randn(3, 1, 32, 32) if kind == "resnet" else g.sample_inputs(3)
    y = g(x)
    assert y.shape == ((3, 2) if kind == "mlp" else (3, 1, 32, 32))
    if kind != "mlp":
        assert y.abs().max() <= 1
    rebuilt = build_generator(kind, **g.hparams)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in g.parameters())


def test_width_scales_parameters():
    sizes = [sum(p.numel() for p in generators.DCGANGenerator(width=w).parameters()) for w in (0.25, 0.5, 1.0)]
    assert sizes[0] < sizes[1] < sizes[2]


@pytest.mark.parametrize(
    ("kind", "shape", "out"),
    [("dcgan", (2, 1, 32, 32), (2,)), ("resnet", (2, 2, 32, 32), (2, 16)), ("mlp", (2, 2), (2,))],
)
def test_discriminator_shapes(kind, shape, out):
    d = build_discriminator(kind, **({"in_channels": 2} if kind == "resnet" else {}))
    assert d(torch.randn(shape)).shape == out


def test_bad_model_arguments():
    with pytest.raises(GanSurveyError, match="'unet'"):
        build_generator("unet")
    with pytest.raises(GanSurveyError, match="width"):
        generators.DCGANGenerator(width=-1)
    with pytest.raises(TypeError):
        generators.ResNetGenerator().sample_inputs(2)
