"""A quantized generator run by PyTorch's integer CPU engine as one static-quantized graph
(:func:`gansurvey.compress.precision.to_fused_engine`): faithful to the stored model, batch norms folded, int8
activations from the input to the output, float layers left float, and clear refusals."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.compress import EncodeConfig, LowRankConfig, QuantConfig, encode, factorize, quantize, sqnr_db
from gansurvey.compress.precision import _fold_for_engine, to_fused_engine
from gansurvey.compress.quantized_layers import FusedEngineModel
from gansurvey.models.generators import DCGANGenerator, ResNetGenerator

pytestmark = pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines,
                                reason="this PyTorch build has no fbgemm engine")


def _trained_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` (eval mode) with batch-norm statistics and affine terms far from their initial 0/1, so that a
    fold that skipped or misapplied them shows in the output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            with torch.no_grad():
                m.weight.copy_(1 + 0.3 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
    return model.eval()


def _cases():
    torch.manual_seed(0)
    dcgan = _trained_norms(DCGANGenerator(base=16))
    resnet = _trained_norms(ResNetGenerator(ngf=8, blocks=2))
    return {"dcgan": (dcgan, dcgan.sample_inputs(32, torch.Generator().manual_seed(1))),
            "resnet": (resnet, torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1)}


def test_folding_batch_norms_and_reflection_pads_is_exact_in_float():
    for name, (model, x) in _cases().items():
        folded = copy.deepcopy(model)
        _fold_for_engine(folded)
        kinds = {type(m) for m in folded.modules()}
        assert nn.BatchNorm2d not in kinds and nn.ReflectionPad2d not in kinds, name
        with torch.no_grad():
            assert sqnr_db(model(x), folded(x)) >= 100.0, name


@pytest.mark.parametrize("name", ["dcgan", "resnet"])
@pytest.mark.parametrize("config", [QuantConfig(8), QuantConfig(4), QuantConfig(8, activation_bits=8)],
                         ids=["w8", "w4", "w8a8"])
def test_the_fused_graph_is_faithful_and_int8_from_input_to_output(name, config):
    model, x = _cases()[name]
    q = quantize(model, config, x)
    fused = to_fused_engine(q, x)
    assert isinstance(fused, FusedEngineModel) and fused.engine_name == "fbgemm-int8-fused"
    held_out = x.flip(0)[:8] * 0.9
    with torch.no_grad():
        assert sqnr_db(q(held_out), fused(held_out)) >= 25.0  # measure's floor (MIN_ENGINE_SQNR_DB)
    graph = fused.graph
    kinds = {type(m).__module__ + "." + type(m).__name__ for m in graph.modules()}
    assert not any("batchnorm" in k.lower() for k in kinds), kinds  # folded, not run as a layer
    assert not {nn.Conv2d, nn.ConvTranspose2d, nn.Linear} & {type(m) for m in graph.modules()}  # none left float
    calls = [n.target for n in graph.graph.nodes if n.op in ("call_function", "call_method")]
    assert calls.count(torch.quantize_per_tensor) == 1 and calls.count("dequantize") == 1, calls
    if name == "resnet":  # the residual additions run in int8, and a conv fuses with its ReLU
        assert torch.ops.quantized.add in calls
        assert any(type(m).__name__ == "ConvReLU2d" for m in graph.modules())


def test_layers_kept_in_float_stay_float():
    model, x = _cases()["dcgan"]
    q = quantize(model, QuantConfig(8, per_layer_bits=(("net.0", 32),)), x)
    graph = to_fused_engine(q, x).graph
    assert type(graph.get_submodule("net.0")) is nn.ConvTranspose2d  # (batch norm folded into it, in float)
    assert isinstance(graph.get_submodule("net.3"), nn.Module) and type(graph.get_submodule("net.3")).__module__ \
        .startswith("torch.ao.nn.quantized")


def test_refusals_say_why():
    model, x = _cases()["dcgan"]
    with pytest.raises(GanSurveyError, match="needs a quantized model"):
        to_fused_engine(model, x)
    with pytest.raises(GanSurveyError, match="needs calibration data"):
        to_fused_engine(quantize(model, QuantConfig(8)), None)
    with pytest.raises(GanSurveyError, match="computes ConvTranspose2d wrongly"):
        to_fused_engine(quantize(model, QuantConfig(8)), x, engine="x86")
    mixed = quantize(factorize(model, LowRankConfig("svd", 0.5)), QuantConfig(8))
    with pytest.raises(GanSurveyError, match=r"all quantized layers; .*SVD.* is not one"):
        to_fused_engine(mixed, x)
    shared = encode(model, EncodeConfig(bits=4))
    with pytest.raises(GanSurveyError, match="needs a quantized model"):
        to_fused_engine(shared, x)
