"""The kernels on CUDA tensors, compiled (not interpreted): the half-precision production branch (fp16 and bf16
on the tensor cores), every autotune config the shapes select, split-K GEMV atomics, W8A8 bit-exactness.

Skipped without a GPU, except under ``GANSURVEY_GPU_SMOKE=1`` (``perf/gpu_check.sh --smoke``), where the same
checks run on CPU tensors through the interpreter with tiny shapes. Tolerances as in ``test_triton_kernels``.
"""

from __future__ import annotations

import os

import pytest
import torch

from gansurvey.kernels import CodebookWeight, pack_codes, quantize_weight
from gansurvey.kernels import reference as ref
from gansurvey.kernels.formats import quantize_activations, quantize_activations_static
from gansurvey.kernels.triton_kernels import (
    HAS_TRITON,
    lut_matmul_triton,
    w8a8_matmul_triton,
    weight_only_matmul_triton,
)

from .conftest import sqnr

SMOKE = os.environ.get("GANSURVEY_GPU_SMOKE") == "1"
pytestmark = pytest.mark.skipif(not HAS_TRITON or not (torch.cuda.is_available() or SMOKE),
                                reason="needs a CUDA GPU (or GANSURVEY_GPU_SMOKE=1 with the interpreter)")
# (M, N, K): decode rows, awkward sizes, and (on the GPU) the 4096-wide layers the benchmark times
SHAPES = [(1, 37, 100), (3, 70, 129), (16, 64, 256), (33, 40, 96)]
if not SMOKE:
    SHAPES += [(1, 4096, 4096), (8, 4096, 4096), (16, 11008, 4096), (64, 1024, 4608)]
MIN_SQNR = {torch.float32: 100.0, torch.float16: 55.0, torch.bfloat16: 40.0}
DTYPES = [torch.float16] if SMOKE else [torch.float16, torch.bfloat16]  # the interpreter gets bf16 wrong


@pytest.fixture
def device(monkeypatch):
    if SMOKE:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        return "cpu"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    return "cuda"


def _data(m, n, k, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=g).to(device), torch.randn(n, k, generator=g).to(device) * 0.05


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [4, 8, 3])
def test_weight_only_native_half(device, shape, dtype, bits):
    m, n, k = shape
    x, weight = _data(m, k=k, n=n, device=device)
    w = quantize_weight(weight, bits, group_size=min(k, 128), symmetric=False)
    bias = torch.randn(n, device=device)
    want = x.to(dtype).float() @ w.dequantize().T + bias
    for gemv in (False, True) if m <= 16 else (False,):
        out = weight_only_matmul_triton(x.to(dtype), w, bias, out_dtype=dtype, upcast=False, gemv=gemv)
        assert out.dtype == dtype and sqnr(want, out.float()) >= MIN_SQNR[dtype], (gemv, sqnr(want, out.float()))


@pytest.mark.parametrize("shape", SHAPES)
def test_w8a8_exact(device, shape):
    m, n, k = shape
    x, weight = _data(m, n, k, device)
    w = quantize_weight(weight, 8, group_size=min(k, 128))
    q, s = quantize_activations(x)
    assert torch.equal(w8a8_matmul_triton(q, s, w), ref.w8a8_matmul_ref(q, s, w))
    q, s, off = quantize_activations_static(x, 0.03, 117)
    assert torch.equal(w8a8_matmul_triton(q, s, w, x_offset=off), ref.w8a8_matmul_ref(q, s, w, off))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("bits", "per_row"), [(4, False), (4, True), (5, False), (8, True)])
def test_lut_native_half(device, shape, dtype, bits, per_row):
    m, n, k = shape
    x, _ = _data(m, n, k, device)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 2**bits, (n, k), generator=g)
    cb = torch.randn((n, 2**bits) if per_row else (2**bits,), generator=g) * 0.05
    w = CodebookWeight(pack_codes(idx, bits).to(device), bits, (n, k), cb.to(device))
    out = lut_matmul_triton(x.to(dtype), w, out_dtype=dtype, upcast=False)
    assert sqnr(x.to(dtype).float() @ w.dequantize().T, out.float()) >= MIN_SQNR[dtype]


# (kind, Cin, Cout, kernel, stride, padding, H, batch): the generators' shapes on the GPU, tiny ones in the smoke run
CONVS = [("conv2d", 6, 10, 3, 1, 1, 9, 2), ("conv_transpose2d", 12, 6, 4, 2, 1, 5, 2)]
if not SMOKE:
    CONVS += [("conv2d", 256, 256, 3, 1, 1, 64, 1), ("conv_transpose2d", 256, 128, 4, 2, 1, 4, 16),
              ("conv_transpose2d", 256, 128, 3, 2, 1, 64, 1)]


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", ["weight-only", "lut"])
def test_implicit_convs_native_half(device, case, dtype, fmt):
    import torch.nn.functional as F

    from gansurvey.kernels import conv2d, conv2d_weight_matrix, conv_transpose2d, conv_transpose2d_weight_matrix

    kind, cin, cout, ks, stride, pad, h, batch = case
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, cin, h, h, generator=g).to(device, dtype)
    shape = (cout, cin, ks, ks) if kind == "conv2d" else (cin, cout, ks, ks)
    weight = torch.randn(shape, generator=g) * 0.05
    matrix = conv2d_weight_matrix(weight) if kind == "conv2d" else conv_transpose2d_weight_matrix(weight)
    if fmt == "lut":
        idx = torch.randint(0, 16, matrix.shape, generator=g)
        w = CodebookWeight(pack_codes(idx, 4).to(device), 4, tuple(matrix.shape), torch.randn(16, generator=g) * 0.05)
    else:
        w = quantize_weight(matrix.to(device), 4, group_size=min(matrix.shape[1], 128), symmetric=False)
    dense = w.dequantize().cpu()
    bias = torch.randn(cout, generator=g).to(device)
    if kind == "conv2d":
        want = F.conv2d(x.float(), dense.reshape(shape).to(device), bias, stride, pad)
        got = conv2d(x, w, bias, stride, pad, 1, 1, ks)
    else:
        dense = dense.T.reshape(shape).to(device)  # (Cout*k*k, Cin) -> (Cin, Cout, k, k), one group
        want = F.conv_transpose2d(x.float(), dense, bias, stride, pad, stride - 1 if ks == 3 else 0)
        got = conv_transpose2d(x, w, bias, stride, pad, stride - 1 if ks == 3 else 0, 1, 1, ks, cout)
    assert got.dtype == dtype and sqnr(want, got.float()) >= MIN_SQNR[dtype]


@pytest.mark.parametrize("case", CONVS)
def test_implicit_w8a8_convs_match_the_reference(device, monkeypatch, case):
    from gansurvey.kernels import conv2d_weight_matrix, conv_transpose2d_weight_matrix
    from gansurvey.kernels.conv import conv2d, conv2d_gemm, conv_transpose2d, conv_transpose2d_gemm

    kind, cin, cout, ks, stride, pad, h, batch = case
    g = torch.Generator().manual_seed(3)
    x = torch.randn(batch, cin, h, h, generator=g)
    shape = (cout, cin, ks, ks) if kind == "conv2d" else (cin, cout, ks, ks)
    matrix = conv2d_weight_matrix(torch.randn(shape, generator=g)) if kind == "conv2d" else \
        conv_transpose2d_weight_matrix(torch.randn(shape, generator=g))
    w = quantize_weight(matrix, 8, group_size=min(matrix.shape[1], 128))
    grid, opad = (0.02, 117), (stride - 1 if ks == 3 else 0)
    with monkeypatch.context() as m:  # the reference: im2col/col2im + the integer GEMM in torch, on the CPU
        m.setenv("GANSURVEY_KERNELS", "reference")
        want = conv2d_gemm(x, w, None, stride, pad, 1, 1, ks, 8, grid) if kind == "conv2d" else \
            conv_transpose2d_gemm(x, w, None, stride, pad, opad, 1, 1, ks, cout, 8, grid)
    wd = quantize_weight(matrix.to(device), 8, group_size=min(matrix.shape[1], 128))
    got = conv2d(x.to(device), wd, None, stride, pad, 1, 1, ks, 8, grid) if kind == "conv2d" else \
        conv_transpose2d(x.to(device), wd, None, stride, pad, opad, 1, 1, ks, cout, 8, grid)
    torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh"])
def test_epilogue_native_half(device, activation):
    from gansurvey.kernels import Epilogue, conv_transpose2d, conv_transpose2d_weight_matrix, linear
    from gansurvey.kernels.epilogue import apply_epilogue

    g = torch.Generator().manual_seed(4)
    ep = Epilogue((torch.rand(64, generator=g) + 0.5).to(device), activation, 0.2)
    bias = torch.randn(64, generator=g).to(device)
    x, weight = _data(33, 64, 96, device)
    w = quantize_weight(weight, 4, group_size=32)
    dtype = DTYPES[-1]
    want = apply_epilogue(x.to(dtype).float() @ w.dequantize().T, bias, ep)
    assert sqnr(want, linear(x.to(dtype), w, bias, epilogue=ep).float()) >= MIN_SQNR[dtype]
    xt = torch.randn(2, 12, 5, 5, generator=g).to(device, dtype)
    wt = torch.randn(12, 64, 4, 4, generator=g) * 0.05
    qt = quantize_weight(conv_transpose2d_weight_matrix(wt).to(device), 8)
    dense = qt.dequantize().T.reshape(12, 64, 4, 4)
    want_t = apply_epilogue(torch.nn.functional.conv_transpose2d(xt.float(), dense, None, 2, 1), bias, ep, 1)
    got_t = conv_transpose2d(xt, qt, bias, 2, 1, 0, 1, 1, 4, 64, epilogue=ep)
    assert sqnr(want_t, got_t.float()) >= MIN_SQNR[dtype]
