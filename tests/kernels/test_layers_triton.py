"""Compressed layers on the Triton path (interpreter): which kernel each layer runs, named by ``engine()``, and
that it computes what the CPU reference path computes.

Spies count the kernel entry points (``gansurvey.kernels.dispatch``'s GEMMs, ``gansurvey.kernels.conv``'s implicit
convolutions), so a layer that silently took another path (fake-quantized input + weight-only kernel, a dense
weight rebuilt per forward, an im2col GEMM) fails here.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from gansurvey.compress import EncodeConfig, MagnitudePruneConfig, QuantConfig, codebook_layers, compress, quantize
from gansurvey.kernels import conv, dispatch
from gansurvey.kernels.formats import CodebookWeight, QuantizedWeight

from .conftest import sqnr

LAYERS = {
    "linear": (lambda: nn.Linear(40, 24), (6, 40)),
    "conv2d": (lambda: nn.Conv2d(6, 10, 3, padding=1), (2, 6, 7, 7)),
    "conv2d-reflect-groups": (lambda: nn.Conv2d(8, 10, 3, padding=1, padding_mode="reflect", groups=2), (2, 8, 5, 5)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(12, 6, 4, 2, 1), (2, 12, 4, 4)),
}


#: The float-activation kernel entry point each layer kind reaches (the weight's format is the spy's record).
FLOAT_ENTRY = {"linear": (dispatch, None), "conv2d": (conv, "conv2d_implicit_triton"),
               "conv2d-reflect-groups": (conv, "conv2d_implicit_triton"),
               "conv_transpose2d": (conv, "conv_transpose2d_implicit_triton")}
#: The W8A8 kernel entry point each layer kind reaches.
W8A8_ENTRY = {"linear": (dispatch, "w8a8_matmul_triton"), "conv2d": (conv, "w8a8_conv2d_implicit_triton"),
              "conv2d-reflect-groups": (conv, "w8a8_conv2d_implicit_triton"),
              "conv_transpose2d": (conv, "w8a8_conv_transpose2d_implicit_triton")}


def _spy(monkeypatch, name: str, module=dispatch) -> list:
    """Record each call of ``module.name`` as the type of its weight argument."""
    calls = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(type(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def _spy_float_kernel(monkeypatch, kind: str, fmt: type) -> list:
    module, name = FLOAT_ENTRY[kind]
    if name is None:
        name = "lut_matmul_triton" if fmt is CodebookWeight else "weight_only_matmul_triton"
    return _spy(monkeypatch, name, module)


def _layer_and_input(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    make, shape = LAYERS[kind]
    return make().eval(), torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 1)) * 2


def _reference_output(module: nn.Module, x: torch.Tensor, monkeypatch) -> torch.Tensor:
    with monkeypatch.context() as m:
        m.setenv("GANSURVEY_KERNELS", "reference")
        with torch.no_grad():
            return module(x)


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("config", [QuantConfig(8, activation_bits=8), QuantConfig(4, activation_bits=8),
                                    QuantConfig(2, ternary=True, activation_bits=8),
                                    QuantConfig(1, activation_bits=8),
                                    QuantConfig(4, symmetric=False, granularity="per-group", group_size=2,
                                                activation_bits=8)],
                         ids=["w8", "w4", "ternary", "binary", "w4-asym-group"])
def test_activation_bits_8_layers_run_the_w8a8_kernel(triton_backend, monkeypatch, kind, config):
    layer, x = _layer_and_input(kind)
    q = quantize(layer, config, x)
    want = _reference_output(q, x, monkeypatch)  # fake-quantized input, dequantized weight, float ops
    module, name = W8A8_ENTRY[kind]
    w8a8, weight_only = _spy(monkeypatch, name, module), _spy_float_kernel(monkeypatch, kind, QuantizedWeight)
    gemm_w8a8 = _spy(monkeypatch, "w8a8_matmul_triton") if kind != "linear" else []
    assert q.engine() == q.engine(x) == "triton-w8a8"
    with monkeypatch.context() as m:
        m.setenv("GANSURVEY_KERNELS", "reference")
        assert q.engine(x) == "reference-dense-fakequant"
    with torch.no_grad():
        out = q(x)
    assert w8a8 and not weight_only and not gemm_w8a8  # convolutions: implicit, not im2col + GEMM
    assert out.shape == want.shape and sqnr(want, out) >= 90.0  # same integers; float rounding only


def test_eight_bit_asymmetric_w8a8_falls_back_and_says_so(triton_backend, monkeypatch, caplog):
    layer, x = _layer_and_input("linear")
    with torch.no_grad():
        layer.weight.add_(0.3)  # one-sided weights: codes - zero points span more than int8
    q = quantize(layer, QuantConfig(8, symmetric=False, activation_bits=8), x)
    assert q.int8_weight() is None and q.engine(x) == "triton-weight-only-fakequant"
    weight_only = _spy(monkeypatch, "weight_only_matmul_triton")
    with caplog.at_level(logging.WARNING), torch.no_grad():
        out = q(x)
    assert weight_only and "triton-weight-only-fakequant" in caplog.text
    assert sqnr(_reference_output(q, x, monkeypatch), out) >= 90.0


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("bits", [3, 6])
def test_three_and_six_bit_layers_decode_in_the_kernel(triton_backend, monkeypatch, kind, bits):
    layer, x = _layer_and_input(kind)
    q = quantize(layer, QuantConfig(bits, granularity="per-group", group_size=2), x)
    want = _reference_output(q, x, monkeypatch)
    weight_only = _spy_float_kernel(monkeypatch, kind, QuantizedWeight)
    assert q.engine(x) == "triton-weight-only"
    with torch.no_grad():
        out = q(x)
    assert weight_only and set(weight_only) == {QuantizedWeight} and sqnr(want, out) >= 90.0


@pytest.mark.parametrize("bits", [4, 8])
def test_pruned_shared_layers_use_the_lut_kernel_up_to_8_bits_and_name_the_9_bit_fallback(
        triton_backend, monkeypatch, caplog, bits):
    layer, x = _layer_and_input("conv_transpose2d")
    enc = compress(nn.Sequential(layer), [MagnitudePruneConfig(0.5), EncodeConfig(bits=bits, coder=None)])
    shared = codebook_layers(enc)["0"]
    want = _reference_output(enc, x, monkeypatch)
    lut = _spy_float_kernel(monkeypatch, "conv_transpose2d", CodebookWeight)
    with caplog.at_level(logging.WARNING), torch.no_grad():
        out = enc(x)
        engine = shared.engine(x)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    if bits == 4:  # 5-bit indices (the zero is entry 16): the LUT kernel reads them
        assert shared.kernel_bits == 5 and engine == "triton-lut" and set(lut) == {CodebookWeight}
    else:  # 9-bit indices: no kernel; named and logged
        assert shared.kernel_bits is None and engine == "reference-dense" and not lut
        assert "reference-dense" in caplog.text
