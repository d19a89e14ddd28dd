"""GEMM-based convolutions against F.conv2d / F.conv_transpose2d.

The 4-D weights hold integers in [-8, 8), which 4-bit symmetric codes (scale 1) and a 16-entry codebook
represent exactly, so the compressed matrices stand for exactly the original weight: comparing against
``F.conv*`` on that weight checks the weight-matrix helpers, the im2col/col2im plumbing and the GEMM at once.
"""

import pytest
import torch
import torch.nn.functional as F

from gansurvey.checks import GanSurveyError
from gansurvey.kernels import (
    CodebookWeight,
    QuantizedWeight,
    conv2d,
    conv2d_weight_matrix,
    conv_transpose2d,
    conv_transpose2d_weight_matrix,
    pack_codes,
    quantize_weight,
)
from gansurvey.kernels.conv import conv2d_gemm, conv_transpose2d_gemm

from .conftest import sqnr


def _int_weight(shape, seed=0):
    return torch.randint(-8, 8, shape, generator=torch.Generator().manual_seed(seed)).float()


def _formats(matrix):
    """The same integer matrix as 4-bit codes and as 4-bit codebook indices."""
    n, k = matrix.shape
    codes = (matrix + 8).long()
    qw = QuantizedWeight(pack_codes(codes, 4), 4, (n, k), torch.ones(n, 1), None, k)
    cw = CodebookWeight(pack_codes(codes, 4), 4, (n, k), torch.arange(-8.0, 8.0))
    return {"quantized": qw, "codebook": cw}


CONV2D = [  # (Cin, Cout, kernel, stride, padding, dilation, groups, H)
    (4, 6, 3, 1, 1, 1, 1, 8),
    (4, 6, 4, 2, 1, 1, 2, 8),
    (6, 4, 3, 2, 1, 2, 2, 9),
    (3, 5, 3, 1, 0, 1, 1, 5),
]
CONV_T = [  # (Cin, Cout, kernel, stride, padding, output_padding, groups, H)
    (6, 4, 4, 2, 1, 0, 1, 4),
    (6, 4, 3, 2, 1, 1, 2, 3),
    (4, 6, 4, 2, 1, 1, 2, 3),
    (8, 6, 4, 1, 0, 0, 1, 1),  # DCGAN's first layer: a 1x1 latent to 4x4
]


@pytest.mark.parametrize("fmt", ["quantized", "codebook"])
@pytest.mark.parametrize("case", CONV2D)
def test_conv2d_gemm_matches_f_conv2d(reference_backend, fmt, case):
    cin, cout, ks, stride, pad, dil, groups, h = case
    weight = _int_weight((cout, cin // groups, ks, ks))
    w = _formats(conv2d_weight_matrix(weight))[fmt]
    x, bias = torch.randn(2, cin, h, h), torch.randn(cout)
    want = F.conv2d(x, weight, bias, stride, pad, dil, groups)
    got = conv2d_gemm(x, w, bias, stride, pad, dil, groups, ks)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4)
    assert torch.allclose(conv2d(x, w, bias, stride, pad, dil, groups, ks), want, atol=1e-4)


@pytest.mark.parametrize("fmt", ["quantized", "codebook"])
@pytest.mark.parametrize("case", CONV_T)
def test_conv_transpose2d_gemm_matches_f_conv_transpose2d(reference_backend, fmt, case):
    cin, cout, ks, stride, pad, opad, groups, h = case
    weight = _int_weight((cin, cout // groups, ks, ks))
    w = _formats(conv_transpose2d_weight_matrix(weight, groups))[fmt]
    x, bias = torch.randn(2, cin, h, h), torch.randn(cout)
    want = F.conv_transpose2d(x, weight, bias, stride, pad, opad, groups)
    got = conv_transpose2d_gemm(x, w, bias, stride, pad, opad, 1, groups, ks, cout)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4)
    ref_path = conv_transpose2d(x, w, bias, stride, pad, opad, 1, groups, ks, cout)
    assert torch.allclose(ref_path, want, atol=1e-4)


@pytest.mark.parametrize("case", [CONV2D[1], CONV2D[2]])
def test_conv2d_triton(triton_backend, case):
    cin, cout, ks, stride, pad, dil, groups, h = case
    weight = _int_weight((cout, cin // groups, ks, ks))
    x = torch.randn(1, cin, h, h)
    for w in _formats(conv2d_weight_matrix(weight)).values():
        got = conv2d(x, w, None, stride, pad, dil, groups, ks)
        assert sqnr(F.conv2d(x, weight, None, stride, pad, dil, groups), got) >= 100


@pytest.mark.parametrize("case", [CONV_T[1], CONV_T[2], CONV_T[3]])
def test_conv_transpose2d_triton(triton_backend, case):
    cin, cout, ks, stride, pad, opad, groups, h = case
    weight = _int_weight((cin, cout // groups, ks, ks))
    x = torch.randn(1, cin, h, h)
    for w in _formats(conv_transpose2d_weight_matrix(weight, groups)).values():
        got = conv_transpose2d(x, w, None, stride, pad, opad, 1, groups, ks, cout)
        assert sqnr(F.conv_transpose2d(x, weight, None, stride, pad, opad, groups), got) >= 100


def test_conv_with_int8_activations(reference_backend):
    weight = torch.randn(8, 6, 4, 4)
    w = quantize_weight(conv_transpose2d_weight_matrix(weight), 8)
    x = torch.randn(2, 8, 4, 4)
    got = conv_transpose2d(x, w, None, 2, 1, 0, 1, 1, 4, 6, activation_bits=8)
    assert sqnr(F.conv_transpose2d(x, weight, None, 2, 1), got) >= 30
    w2 = quantize_weight(conv2d_weight_matrix(torch.randn(6, 8, 3, 3)), 8)
    assert conv2d(x, w2, padding=1, kernel_size=3, activation_bits=8).shape == (2, 6, 4, 4)


def test_weight_matrix_helpers_layout():
    weight = torch.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2)  # ConvTranspose2d: (Cin=2, Cout=3, 2, 2)
    assert torch.equal(conv_transpose2d_weight_matrix(weight), weight.reshape(2, -1).T)
    grouped = conv_transpose2d_weight_matrix(weight, groups=2)  # Cout/groups = 3 per group, Cin/groups = 1
    assert grouped.shape == (2 * 3 * 4, 1)
    assert torch.equal(grouped[:12, 0], weight[0].flatten()) and torch.equal(grouped[12:, 0], weight[1].flatten())
    assert torch.equal(conv2d_weight_matrix(weight), weight.reshape(2, 12))


def test_conv_validation_errors(reference_backend):
    w = _formats(conv2d_weight_matrix(_int_weight((6, 4, 3, 3))))["quantized"]
    with pytest.raises(GanSurveyError, match="x has 3 channels but w .* expects 4"):
        conv2d(torch.randn(1, 3, 8, 8), w, kernel_size=3)
    with pytest.raises(GanSurveyError, match="not a multiple of kh\\*kw=16"):
        conv2d(torch.randn(1, 4, 8, 8), w, kernel_size=4)
    with pytest.raises(GanSurveyError, match="groups=4 must divide the 6 output channels"):
        conv2d(torch.randn(1, 16, 8, 8), w, groups=4, kernel_size=3)
    with pytest.raises(GanSurveyError, match="stride must be an integer >= 1, got 0"):
        conv2d(torch.randn(1, 4, 8, 8), w, stride=0, kernel_size=3)
    wt = _formats(conv_transpose2d_weight_matrix(_int_weight((4, 6, 4, 4))))["codebook"]
    with pytest.raises(GanSurveyError, match="out_channels\\*kh\\*kw = 80 rows"):
        conv_transpose2d(torch.randn(1, 4, 3, 3), wt, kernel_size=4, out_channels=5)
    with pytest.raises(GanSurveyError, match="output_padding=\\(2, 2\\) must be smaller"):
        conv_transpose2d(torch.randn(1, 4, 3, 3), wt, stride=2, output_padding=2, kernel_size=4, out_channels=6)
    with pytest.raises(GanSurveyError, match="4-D"):
        conv_transpose2d_weight_matrix(torch.zeros(4, 4))
    with pytest.raises(GanSurveyError, match="QuantizedWeight or a CodebookWeight"):
        conv2d(torch.randn(1, 4, 8, 8), torch.zeros(6, 36), kernel_size=3)
