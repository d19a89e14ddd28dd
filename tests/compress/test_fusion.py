"""fuse_epilogues: a compressed layer's batch norm and activation computed in its kernel's epilogue (Triton path,
through the interpreter), and the unfused modules everywhere else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.compress import EncodeConfig, FusedEpilogue, QuantConfig, compress, fuse_epilogues, quantize
from gansurvey.kernels import conv as conv_module
from gansurvey.kernels import dispatch
from gansurvey.measuring import execution_engines

from ..conftest import tiny_generator
from ..kernels.conftest import sqnr

CONFIGS = {"w4": QuantConfig(4, granularity="per-group", group_size=8), "w8": QuantConfig(8),
           "codebook": EncodeConfig(bits=4, coder=None)}


def _with_statistics(model: nn.Module) -> nn.Module:
    """Batch norms with running statistics and affine parameters far from the identity, so a wrong fold shows."""
    g = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


def _compressed(kind: str, config: str) -> tuple[nn.Module, torch.Tensor]:
    model = _with_statistics(tiny_generator(kind))
    x = model.sample_inputs(2, torch.Generator().manual_seed(1)) if kind == "dcgan" else torch.randn(2, 1, 16, 16)
    if config == "codebook":
        out = compress(model, CONFIGS[config])
        for m in out.modules():
            if hasattr(m, "kernel_mode"):
                m.kernel_mode = "always"  # the LUT path on any backend
        return out, x
    return quantize(model, CONFIGS[config], x), x


def _spy_epilogues(monkeypatch) -> list:
    seen = []
    for module, name in ((conv_module, "conv2d_implicit_triton"), (conv_module, "conv_transpose2d_implicit_triton"),
                         (dispatch, "weight_only_matmul_triton")):
        real = getattr(module, name)

        def spy(*args, _real=real, **kwargs):
            seen.append(kwargs.get("epilogue"))
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return seen


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize(("kind", "fusable"), [("dcgan", 4), ("resnet", 3 + 2 * 2 + 2 + 1)])
def test_fused_generators_compute_the_same_images_with_epilogues_in_the_kernels(triton_backend, monkeypatch, kind,
                                                                                 fusable, config):
    model, x = _compressed(kind, config)
    with torch.no_grad():
        want = model(x)
    fused, count = fuse_epilogues(model)
    # DCGAN: 3 x (convT, BN, ReLU) + (convT, Tanh); ResNet: 3 down, 2 blocks x ((conv, BN, ReLU), (conv, BN)),
    # 2 up, the last conv's Tanh
    assert count == fusable == sum(isinstance(m, FusedEpilogue) for m in fused.modules())
    inside = {id(m) for f in fused.modules() if isinstance(f, FusedEpilogue) for m in (f.norm, f.activation)}
    assert not [m for m in fused.modules() if isinstance(m, nn.BatchNorm2d | nn.ReLU | nn.Tanh) and id(m) not in inside]
    seen = _spy_epilogues(monkeypatch)
    with torch.no_grad():
        got = fused(x)
    assert sqnr(want, got) >= 80, sqnr(want, got)  # the fold rounds differently; nothing else changes
    assert sum(ep is not None for ep in seen) == count
    if config != "codebook":
        assert all(name.endswith("+epilogue") for name in execution_engines(fused, "cpu").split(";"))


@pytest.mark.parametrize("config", ["w8", "codebook"])
def test_off_the_triton_backend_a_fused_model_runs_its_modules_as_they_were(monkeypatch, config):
    monkeypatch.setenv("GANSURVEY_KERNELS", "reference")
    model, x = _compressed("dcgan", config)
    if config == "codebook":
        for m in model.modules():
            if hasattr(m, "kernel_mode"):
                del m.kernel_mode
    fused, count = fuse_epilogues(model)
    with torch.no_grad():
        assert count == 4 and torch.equal(fused(x), model(x))
    assert "+epilogue" not in execution_engines(fused, "cpu")


def test_int8_activation_layers_fuse_too(triton_backend):
    model = _with_statistics(tiny_generator("dcgan"))
    x = model.sample_inputs(2, torch.Generator().manual_seed(1))
    q = quantize(model, QuantConfig(8, activation_bits=8), x)
    fused, count = fuse_epilogues(q)
    with torch.no_grad():
        assert count == 4 and sqnr(q(x), fused(x)) >= 60
    assert execution_engines(fused, "cpu") == "triton-w8a8+epilogue"


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_a_biased_layer_folds_its_bias_through_the_norm(triton_backend, kind):
    g = torch.Generator().manual_seed(2)
    if kind == "linear":
        body, norm, x = nn.Linear(12, 10), nn.BatchNorm1d(10), torch.randn(5, 12, generator=g)
    else:
        body, norm, x = nn.Conv2d(3, 10, 3, padding=1), nn.BatchNorm2d(10), torch.randn(2, 3, 6, 6, generator=g)
    nn.init.normal_(body.bias, std=0.5)
    norm.running_mean.normal_(0, 0.3)
    norm.running_var.uniform_(0.5, 1.5)
    nn.init.normal_(norm.weight, 1.0, 0.3)
    nn.init.normal_(norm.bias, 0.0, 0.3)
    model = quantize(nn.Sequential(body, norm.eval(), nn.LeakyReLU(0.1)), QuantConfig(4), x)
    fused, count = fuse_epilogues(model)
    with torch.no_grad():
        assert count == 1 and sqnr(model(x), fused(x)) >= 80


def test_what_does_not_fold_stays_apart():
    layer = quantize(nn.Sequential(nn.Conv2d(3, 4, 3)), QuantConfig(8), torch.randn(1, 3, 8, 8))[0]
    unfoldable = nn.Sequential(layer, nn.InstanceNorm2d(4), nn.ReLU())
    assert fuse_epilogues(unfoldable)[1] == 0  # an instance norm's statistics are its input's
    training = nn.Sequential(layer, nn.BatchNorm2d(4).train(), nn.GELU())
    fused, count = fuse_epilogues(training)  # the copy is put in eval mode: its batch norm folds
    assert count == 1 and isinstance(fused[2], nn.GELU)
    with pytest.raises(GanSurveyError, match="eval mode"):
        FusedEpilogue(layer, nn.BatchNorm2d(4).train())
    with pytest.raises(GanSurveyError, match="GELU is not one of"):
        FusedEpilogue(layer, None, nn.GELU())
    with pytest.raises(GanSurveyError, match="no kernel_forward"):
        FusedEpilogue(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4).eval())
