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


# -- implicit GEMM on the Triton path (interpreter): no column tensor, every format and awkward geometry

IMPLICIT_CONV2D = CONV2D + [  # awkward sizes: none a multiple of the 16 x 32 x 32 interpreter block
    (5, 7, 3, 3, 2, 1, 1, 11),  # stride 3, padding 2
    (3, 33, 1, 1, 0, 1, 1, 6),  # 1x1, Cout one past a block
    (40, 3, 3, 1, 1, 1, 1, 7),  # K = 360: many K steps, the last one partial
]
IMPLICIT_CONV_T = CONV_T + [
    (5, 3, 1, 2, 0, 1, 1, 3),  # kernel smaller than the stride: phases with no tap get the bias only
    (3, 5, 3, 3, 2, 2, 1, 4),  # stride 3 with output padding
    (40, 33, 4, 2, 1, 0, 1, 5),  # K = Cin = 40 over a block, N = 33
]
#: Weight formats beyond the exact 4-bit ones: odd widths read from the row bitstream, groups that a K block
#: straddles, asymmetric zero points, per-row codebooks.
QUANTIZED = [(3, None, True), (4, 5, False), (8, 16, True), (6, 7, True)]


def _no_columns(monkeypatch):
    """Make im2col / col2im fail: the implicit path must never call them."""
    def refuse(*args, **kwargs):
        raise AssertionError("a column tensor was built")

    monkeypatch.setattr(F, "unfold", refuse)
    monkeypatch.setattr(F, "fold", refuse)


def _conv_t_weight(matrix, cin, groups, ks):
    """Invert :func:`conv_transpose2d_weight_matrix`: ``(Cout*kh*kw, Cin/groups)`` -> ``(Cin, Cout/groups, kh, kw)``."""
    per_group = matrix.reshape(groups, -1, cin // groups).transpose(1, 2)
    return per_group.reshape(cin, -1, *ks)


def _codebook_weight(matrix, bits, per_row):
    n, k = matrix.shape
    codes = torch.randint(0, 2**bits, (n, k), generator=torch.Generator().manual_seed(bits))
    book = torch.randn(n, 2**bits) if per_row else torch.randn(2**bits)
    return CodebookWeight(pack_codes(codes, bits), bits, (n, k), book)


def _weights(matrix):
    yield from _formats(matrix).values()
    for bits, group, sym in QUANTIZED:
        yield quantize_weight(matrix, bits, min(group or matrix.shape[1], matrix.shape[1]), symmetric=sym)
    yield _codebook_weight(matrix, 3, per_row=True)
    yield _codebook_weight(matrix, 5, per_row=False)


@pytest.mark.parametrize("case", IMPLICIT_CONV2D)
def test_conv2d_implicit_matches_f_conv2d_for_every_format(triton_backend, monkeypatch, case):
    cin, cout, ks, stride, pad, dil, groups, h = case
    matrix = conv2d_weight_matrix(torch.randn(cout, cin // groups, ks, ks))
    x, bias = torch.randn(2, cin, h, h + 1), torch.randn(cout)
    _no_columns(monkeypatch)
    for w in _weights(matrix):
        want = F.conv2d(x, w.dequantize().reshape(cout, cin // groups, ks, ks), bias, stride, pad, dil, groups)
        got = conv2d(x, w, bias, stride, pad, dil, groups, ks)
        assert got.shape == want.shape and sqnr(want, got) >= 100, (w.bits, type(w).__name__)


@pytest.mark.parametrize("case", IMPLICIT_CONV_T)
def test_conv_transpose2d_implicit_matches_f_conv_transpose2d_for_every_format(triton_backend, monkeypatch, case):
    cin, cout, ks, stride, pad, opad, groups, h = case
    matrix = conv_transpose2d_weight_matrix(torch.randn(cin, cout // groups, ks, ks), groups)
    x, bias = torch.randn(2, cin, h, h + 2), torch.randn(cout)
    _no_columns(monkeypatch)
    for w in _weights(matrix):
        weight = _conv_t_weight(w.dequantize(), cin, groups, (ks, ks))
        want = F.conv_transpose2d(x, weight, bias, stride, pad, opad, groups)
        got = conv_transpose2d(x, w, bias, stride, pad, opad, 1, groups, ks, cout)
        assert got.shape == want.shape and sqnr(want, got) >= 100, (w.bits, type(w).__name__)


def test_implicit_convs_take_rectangular_dilated_geometry_and_strided_inputs(triton_backend, monkeypatch):
    _no_columns(monkeypatch)
    x = torch.randn(3, 6, 7, 5).to(memory_format=torch.channels_last)  # strides the kernels must follow
    weight = torch.randn(4, 6, 3, 2)
    w = quantize_weight(conv2d_weight_matrix(weight), 4, group_size=6, symmetric=False)
    dense = w.dequantize().reshape(weight.shape)
    want = F.conv2d(x, dense, None, (2, 1), (1, 0), (2, 3))
    assert sqnr(want, conv2d(x, w, None, (2, 1), (1, 0), (2, 3), 1, (3, 2))) >= 100
    weight_t = torch.randn(6, 4, 3, 2)
    wt = quantize_weight(conv_transpose2d_weight_matrix(weight_t), 5, group_size=4)
    dense_t = _conv_t_weight(wt.dequantize(), 6, 1, (3, 2))
    want_t = F.conv_transpose2d(x, dense_t, None, (2, 3), (1, 0), (1, 2), 1, (2, 1))
    got_t = conv_transpose2d(x, wt, None, (2, 3), (1, 0), (1, 2), (2, 1), 1, (3, 2), 4)
    assert got_t.shape == want_t.shape and sqnr(want_t, got_t) >= 100


def test_transposed_conv_reorders_a_weight_once(triton_backend, monkeypatch):
    from gansurvey.kernels import conv as conv_module

    weight = torch.randn(6, 4, 4, 4)
    w = quantize_weight(conv_transpose2d_weight_matrix(weight, 2), 4)
    x = torch.randn(1, 6, 3, 3)
    first = conv_transpose2d(x, w, None, 2, 1, 0, 1, 2, 4, 8)

    def refuse(*args, **kwargs):
        raise AssertionError("the tap-major weight was rebuilt")

    monkeypatch.setattr(conv_module, "tap_major", refuse)
    assert torch.equal(conv_transpose2d(x, w, None, 2, 1, 0, 1, 2, 4, 8), first)


@pytest.mark.parametrize("fmt", ["quantized", "codebook"])
def test_implicit_convs_half_precision_branch(triton_backend, fmt):
    """The production fp16 branch (weights cast to the input's dtype before the MMA), not the interpreter's
    float32 upcast: fp16 rounding of inputs and output only."""
    from gansurvey.kernels.triton_conv import conv2d_implicit_triton, conv_transpose2d_implicit_triton

    weight = _int_weight((6, 4, 3, 3))
    w = _formats(conv2d_weight_matrix(weight))[fmt]
    x = torch.randn(2, 4, 9, 9).half()
    out = torch.empty(2, 6, 5, 5, dtype=torch.float16)
    conv2d_implicit_triton(x, w, out, None, (2, 2), (1, 1), (1, 1), (3, 3), upcast=False)
    assert sqnr(F.conv2d(x.float(), weight, None, 2, 1), out.float()) >= 50
    weight_t = _int_weight((4, 6, 4, 4))
    from gansurvey.kernels.triton_conv import tap_major

    wt = tap_major(_formats(conv_transpose2d_weight_matrix(weight_t))[fmt], 16)
    out_t = torch.empty(2, 6, 18, 18, dtype=torch.float16)
    conv_transpose2d_implicit_triton(x, wt, out_t, None, (2, 2), (1, 1), (1, 1), (4, 4), upcast=False)
    assert sqnr(F.conv_transpose2d(x.float(), weight_t, None, 2, 1), out_t.float()) >= 50


@pytest.mark.parametrize("case", IMPLICIT_CONV2D)
def test_w8a8_conv2d_implicit_is_bit_exact_with_the_reference_gemm_form(triton_backend, monkeypatch, case):
    """Static int8 activations: the padded pixels (float 0, the zero point's code) enter as -offset, so the
    implicit kernel's integers and rescaling equal the im2col GEMM's on the reference backend, bit for bit."""
    cin, cout, ks, stride, pad, dil, groups, h = case
    w = quantize_weight(conv2d_weight_matrix(torch.randn(cout, cin // groups, ks, ks)), 8, group_size=16
                        if cin // groups * ks * ks > 16 else None)
    x, bias, grid = torch.randn(2, cin, h, h + 1), torch.randn(cout), (0.02, 117)
    with monkeypatch.context() as m:
        m.setenv("GANSURVEY_KERNELS", "reference")
        want = conv2d_gemm(x, w, bias, stride, pad, dil, groups, ks, 8, grid)
    _no_columns(monkeypatch)
    assert torch.equal(conv2d(x, w, bias, stride, pad, dil, groups, ks, 8, grid), want)


@pytest.mark.parametrize("case", IMPLICIT_CONV_T)
def test_w8a8_conv_transpose2d_implicit_matches_the_reference_gemm_form(triton_backend, monkeypatch, case):
    """The same integers per tap; only the order in which the float taps are summed may differ from col2im's."""
    cin, cout, ks, stride, pad, opad, groups, h = case
    matrix = conv_transpose2d_weight_matrix(torch.randn(cin, cout // groups, ks, ks), groups)
    w = quantize_weight(matrix, 8, group_size=16 if cin // groups > 16 else None)
    x, bias, grid = torch.randn(2, cin, h, h + 2), torch.randn(cout), (0.03, 90)
    with monkeypatch.context() as m:
        m.setenv("GANSURVEY_KERNELS", "reference")
        want = conv_transpose2d_gemm(x, w, bias, stride, pad, opad, 1, groups, ks, cout, 8, grid)
    _no_columns(monkeypatch)
    got = conv_transpose2d(x, w, bias, stride, pad, opad, 1, groups, ks, cout, 8, grid)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)


def test_w8a8_implicit_refuses_what_the_gemm_form_refuses(triton_backend):
    w4 = quantize_weight(conv2d_weight_matrix(torch.randn(6, 4, 3, 3)), 4)
    with pytest.raises(GanSurveyError, match="8-bit symmetric"):
        conv2d(torch.randn(1, 4, 8, 8), w4, None, 1, 1, 1, 1, 3, 8, (0.02, 117))
