"""The kernels' epilogue, ``act(acc * scale + bias)``: every Triton op (interpreter) against the reference backend
with the same epilogue, and the reference against the op followed by the affine map and activation in torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gansurvey.checks import GanSurveyError
from gansurvey.kernels import (
    CodebookWeight,
    conv2d,
    conv2d_weight_matrix,
    conv_transpose2d,
    conv_transpose2d_weight_matrix,
    linear,
    pack_codes,
    quantize_weight,
)
from gansurvey.kernels.epilogue import ACTIVATIONS, Epilogue
from gansurvey.kernels.triton_kernels import weight_only_matmul_triton

from .conftest import sqnr

TORCH_ACT = {"none": lambda y: y, "relu": F.relu, "leaky_relu": lambda y: F.leaky_relu(y, 0.2), "tanh": torch.tanh,
             "sigmoid": torch.sigmoid}


def _epilogue(activation: str, n: int, scaled: bool = True) -> Epilogue:
    scale = torch.rand(n, generator=torch.Generator().manual_seed(n)) + 0.5 if scaled else None
    return Epilogue(scale, activation, 0.2 if activation == "leaky_relu" else 0.0)


def _by_hand(plain: torch.Tensor, bias: torch.Tensor, ep: Epilogue, dim: int) -> torch.Tensor:
    shape = [1] * plain.dim()
    shape[dim] = -1
    y = plain if ep.scale is None else plain * ep.scale.reshape(shape)
    return TORCH_ACT[ep.activation](y + bias.reshape(shape))


def _ops(kind: str):
    """(call(x, w, bias, epilogue), x, weight, channel dim) for one kind of op."""
    g = torch.Generator().manual_seed(0)
    if kind in ("weight-only", "gemv", "w8a8", "lut"):
        x, matrix = torch.randn(20 if kind != "gemv" else 3, 70, generator=g), torch.randn(37, 70, generator=g)
        if kind == "lut":
            w = CodebookWeight(pack_codes(torch.randint(0, 8, (37, 70), generator=g), 3), 3, (37, 70),
                               torch.randn(8, generator=g))
        else:
            w = quantize_weight(matrix, 8 if kind == "w8a8" else 4, group_size=32 if kind != "w8a8" else None,
                                symmetric=kind == "w8a8")
        bits, grid = (8, (0.03, 120)) if kind == "w8a8" else (None, None)
        return (lambda x, w, b, ep: linear(x, w, b, bits, grid, ep)), x, w, -1
    if kind in ("conv2d", "w8a8-conv2d"):
        x = torch.randn(2, 5, 7, 6, generator=g)
        w = quantize_weight(conv2d_weight_matrix(torch.randn(9, 5, 3, 3, generator=g)), 8 if "w8a8" in kind else 5,
                            group_size=None if "w8a8" in kind else 9, symmetric="w8a8" in kind)
        bits, grid = (8, (0.03, 120)) if "w8a8" in kind else (None, None)
        return (lambda x, w, b, ep: conv2d(x, w, b, 2, 1, 1, 1, 3, bits, grid, ep)), x, w, 1
    x = torch.randn(2, 6, 3, 4, generator=g)
    w = quantize_weight(conv_transpose2d_weight_matrix(torch.randn(6, 9, 4, 4, generator=g)),
                        8 if "w8a8" in kind else 4, symmetric="w8a8" in kind)
    bits, grid = (8, (0.03, 120)) if "w8a8" in kind else (None, None)
    return (lambda x, w, b, ep: conv_transpose2d(x, w, b, 2, 1, 0, 1, 1, 4, 9, bits, grid, ep)), x, w, 1


KINDS = ["weight-only", "gemv", "w8a8", "lut", "conv2d", "w8a8-conv2d", "conv_transpose2d", "w8a8-conv_transpose2d"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_triton_epilogue_matches_the_reference(triton_backend, monkeypatch, kind, activation):
    call, x, w, dim = _ops(kind)
    n = 9 if dim == 1 else w.shape[0]  # both convolutions have 9 output channels
    ep, bias = _epilogue(activation, n), torch.randn(n)
    with monkeypatch.context() as m:
        m.setenv("GANSURVEY_KERNELS", "reference")
        want = call(x, w, bias, ep)
        plain = call(x, w, None, None)
    assert sqnr(_by_hand(plain, bias, ep, dim), want) >= 100  # the reference is the op, then act(y * s + b)
    got = call(x, w, bias, ep)
    assert got.shape == want.shape and sqnr(want, got) >= 100, sqnr(want, got)


def test_gemv_applies_the_scale_before_the_bias(triton_backend):
    x, w = torch.randn(2, 64), quantize_weight(torch.randn(40, 64), 4)
    ep, bias = Epilogue(torch.full((40,), 2.0)), torch.ones(40)
    out = weight_only_matmul_triton(x, w, bias, gemv=True, epilogue=ep)
    assert torch.allclose(out, (x @ w.dequantize().T) * 2 + 1, atol=1e-4)


def test_epilogue_is_checked():
    with pytest.raises(GanSurveyError, match="activation"):
        Epilogue(activation="gelu")
    with pytest.raises(GanSurveyError, match="1-D float32"):
        Epilogue(torch.ones(3, dtype=torch.float64))
    w = quantize_weight(torch.randn(5, 8), 4)
    with pytest.raises(GanSurveyError, match="has 4 values for 5 output channels"):
        linear(torch.randn(2, 8), w, epilogue=Epilogue(torch.ones(4)))
