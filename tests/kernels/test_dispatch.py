import pytest
import torch

from gansurvey.checks import GanSurveyError
from gansurvey.kernels import (
    CodebookWeight,
    backend,
    linear,
    lut_matmul,
    pack_codes,
    quantize_weight,
    w8a8_matmul,
    weight_only_matmul,
)
from gansurvey.kernels import reference as ref

from .conftest import sqnr


def test_backend_defaults_to_reference_on_cpu(monkeypatch):
    monkeypatch.delenv("GANSURVEY_KERNELS", raising=False)
    assert backend(torch.zeros(2)) == "reference"
    monkeypatch.setenv("GANSURVEY_KERNELS", "auto")
    assert backend(torch.zeros(2)) == "reference"


def test_backend_honors_environment(monkeypatch):
    monkeypatch.setenv("GANSURVEY_KERNELS", "reference")
    assert backend(torch.zeros(2)) == "reference"
    monkeypatch.setenv("GANSURVEY_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert backend(torch.zeros(2)) == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(GanSurveyError, match="TRITON_INTERPRET=1"):
        backend(torch.zeros(2))
    monkeypatch.setenv("GANSURVEY_KERNELS", "cuda")
    with pytest.raises(GanSurveyError, match="unknown environment variable GANSURVEY_KERNELS 'cuda'"):
        backend(torch.zeros(2))


def _weights():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 12, generator=g)
    idx = torch.randint(0, 4, (6, 12), generator=g)
    cw = CodebookWeight(pack_codes(idx, 2), 2, (6, 12), torch.randn(4, generator=g))
    return quantize_weight(w, 4, group_size=4, symmetric=False), quantize_weight(w, 8), cw


def test_reference_ops_match_dequantized_matmul(reference_backend):
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(2))
    qw, q8, cw = _weights()
    assert torch.allclose(weight_only_matmul(x, qw), x @ qw.dequantize().T, atol=1e-5)
    assert torch.allclose(lut_matmul(x, cw), x @ cw.dequantize().T, atol=1e-5)
    assert sqnr(x @ q8.dequantize().T, w8a8_matmul(x, q8)) > 30


def test_w8a8_reference_accumulates_integers_exactly():
    g = torch.Generator().manual_seed(3)
    xq = torch.randint(-127, 128, (4, 300), generator=g, dtype=torch.int8)
    w = quantize_weight(torch.randn(5, 300, generator=g), 8)
    out = ref.w8a8_matmul_ref(xq, torch.ones(4), w)
    exact = xq.long() @ ref.w8a8_int_codes(w).long().T
    assert torch.equal(out, exact.float() * w.scales[:, 0])


def test_linear_handles_leading_dims_bias_and_dispatch(reference_backend):
    qw, q8, cw = _weights()
    x = torch.randn(2, 3, 12, generator=torch.Generator().manual_seed(4))
    bias = torch.randn(6)
    for w in (qw, cw, qw.dequantize()):
        out = linear(x, w, bias)
        dense = w if isinstance(w, torch.Tensor) else w.dequantize()
        assert out.shape == (2, 3, 6)
        assert torch.allclose(out, x @ dense.T + bias, atol=1e-5)
    assert linear(x, q8, activation_bits=8).shape == (2, 3, 6)
    assert linear(x.transpose(0, 1), qw).shape == (3, 2, 6)  # non-contiguous x is copied
    assert linear(x.half(), qw).dtype == torch.float16


def test_validation_errors_name_the_value():
    qw, q8, cw = _weights()
    with pytest.raises(GanSurveyError, match="K=10 columns but the weight has K=12"):
        weight_only_matmul(torch.ones(2, 10), qw)
    with pytest.raises(GanSurveyError, match="float32, float16 or bfloat16, got torch.int32"):
        weight_only_matmul(torch.ones(2, 12, dtype=torch.int32), qw)
    with pytest.raises(GanSurveyError, match="contiguous"):
        weight_only_matmul(torch.ones(12, 2).T, qw)
    with pytest.raises(GanSurveyError, match=r"shape \(M, K\)"):
        lut_matmul(torch.ones(12), cw)
    with pytest.raises(GanSurveyError, match="needs a CodebookWeight weight, got QuantizedWeight"):
        lut_matmul(torch.ones(2, 12), qw)
    with pytest.raises(GanSurveyError, match="bits=8, zeros=None.*got bits=4"):
        w8a8_matmul(torch.ones(2, 12), qw)
    with pytest.raises(GanSurveyError, match="activation_bits must be None .* or 8, got 4"):
        linear(torch.ones(2, 12), q8, activation_bits=4)
    with pytest.raises(GanSurveyError, match="activation_bits=8 needs a QuantizedWeight"):
        linear(torch.ones(2, 12), cw, activation_bits=8)
    with pytest.raises(GanSurveyError, match=r"bias must be a tensor of shape \(N,\) = \(6,\)"):
        linear(torch.ones(2, 12), qw, torch.ones(5))
    with pytest.raises(GanSurveyError, match=r"\(\.\.\., K\) with K=12"):
        linear(torch.ones(2, 11), qw)
    with pytest.raises(GanSurveyError, match="w must be a QuantizedWeight, a CodebookWeight"):
        linear(torch.ones(2, 12), "weights")
