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
