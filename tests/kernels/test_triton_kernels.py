"""Every Triton kernel against its plain-torch reference, through the Triton interpreter on CPU.

Tolerances (SQNR = 20*log10(||ref|| / ||ref - out||)): float32 >= 100 dB (only summation order differs),
float16 >= 55 dB and bfloat16 >= 40 dB against the float32 product of the same rounded inputs (the output's
own rounding dominates). W8A8 is compared for exact equality (int32 accumulation, same rescale order), and so
are LUT outputs with values whose products and sums are exact in float32.
"""

import pytest
import torch

from gansurvey.kernels import CodebookWeight, lut_matmul, pack_codes, quantize_weight, w8a8_matmul, weight_only_matmul
from gansurvey.kernels import reference as ref
from gansurvey.kernels.formats import quantize_activations
from gansurvey.kernels.triton_kernels import w8a8_matmul_triton, weight_only_matmul_triton

from .conftest import sqnr

# (M, N, K): M=1 decode rows, sizes that are not multiples of the blocks (16 x 32 x 32 in the interpreter).
SHAPES = [
    (1, 16, 32), (1, 37, 100), (3, 37, 100), (2, 64, 64), (5, 33, 48), (17, 20, 40), (1, 1, 16), (4, 100, 24),
    (16, 32, 128), (7, 9, 17), (1, 48, 200), (33, 40, 64), (2, 96, 96), (8, 24, 33), (1, 70, 64), (3, 5, 7),
    (20, 16, 16), (6, 50, 90), (1, 32, 256), (9, 31, 129),
]
MIN_SQNR = {torch.float32: 100.0, torch.float16: 55.0, torch.bfloat16: 40.0}


def _x(m, k, dtype=torch.float32, seed=0):
    return torch.randn(m, k, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _w(n, k, seed=1):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


def _check_float(x, w, out):
    want = x.float() @ w.dequantize().T
    assert out.dtype == x.dtype and out.shape == want.shape
    assert sqnr(want, out.float()) >= MIN_SQNR[x.dtype]


@pytest.mark.parametrize("case", range(len(SHAPES)))
def test_weight_only_shapes(triton_backend, case):
    m, n, k = SHAPES[case]
    bits = (8, 4, 2, 1)[case % 4]
    group_size = (k, 16, max(1, k // 3))[case % 3]
    dtype = (torch.float32, torch.float16)[case % 2]
    w = quantize_weight(_w(n, k), bits, group_size, symmetric=case % 5 < 3)
    _check_float(_x(m, k, dtype), w, weight_only_matmul(_x(m, k, dtype), w))


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("group_size", [None, 32, 20])
@pytest.mark.parametrize("symmetric", [True, False])
def test_weight_only_formats(triton_backend, bits, group_size, symmetric):
    w = quantize_weight(_w(37, 100), bits, group_size, symmetric)
    out = weight_only_matmul_triton(_x(3, 100), w)
    assert sqnr(ref.weight_only_matmul_ref(_x(3, 100), w), out) >= MIN_SQNR[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("m", "n", "k"), [(1, 37, 100), (18, 40, 64)])
def test_weight_only_half_precision(triton_backend, dtype, m, n, k):
    w = quantize_weight(_w(n, k), 4, 32, symmetric=False)
    _check_float(_x(m, k, dtype), w, weight_only_matmul(_x(m, k, dtype), w))


def test_weight_only_falls_back_to_reference_for_three_bits(triton_backend):
    w = quantize_weight(_w(9, 20), 3, 8)
    assert torch.allclose(weight_only_matmul(_x(2, 20), w), ref.weight_only_matmul_ref(_x(2, 20), w))


@pytest.mark.parametrize("case", range(0, len(SHAPES), 2))
@pytest.mark.parametrize("per_group", [False, True])
def test_w8a8_is_exact(triton_backend, case, per_group):
    m, n, k = SHAPES[case]
    w = quantize_weight(_w(n, k), 8, group_size=16 if per_group else None)
    x = _x(m, k) * 3
    q, s = quantize_activations(x)
    assert torch.equal(w8a8_matmul_triton(q, s, w), ref.w8a8_matmul_ref(q, s, w))
    assert torch.equal(w8a8_matmul(x, w), ref.w8a8_matmul_ref(q, s, w))


def test_w8a8_integer_accumulator_is_exact_at_the_extremes(triton_backend):
    # all -127 activations against all -128 weights: |acc| = 127*128*K, far beyond float16 and exact in int32
    k = 96
    w = quantize_weight(-torch.ones(20, k), 8)
    packed = torch.zeros_like(w.packed)  # code 0 = -128
    w = type(w)(packed, 8, w.shape, torch.ones(20, 1), None, k)
    q = torch.full((3, k), -127, dtype=torch.int8)
    out = w8a8_matmul_triton(q, torch.ones(3), w)
    assert torch.equal(out, torch.full((3, 20), 127.0 * 128 * k))
    assert w8a8_matmul(_x(2, k, torch.float16), w).dtype == torch.float16


def _codebook_weight(n, k, bits, per_row, exact, seed=2):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 2**bits, (n, k), generator=g)
    shape = (n, 2**bits) if per_row else (2**bits,)
    if exact:  # quarter steps: every product and partial sum below is exact in float32
        cb = torch.randint(-8, 8, shape, generator=g).float() / 4
    else:
        cb = torch.randn(shape, generator=g)
    return CodebookWeight(pack_codes(idx, bits), bits, (n, k), cb)


@pytest.mark.parametrize("case", range(len(SHAPES)))
def test_lut_exact_against_dequantized_reference(triton_backend, case):
    m, n, k = SHAPES[case]
    bits = (1, 2, 4, 8)[case % 4]
    w = _codebook_weight(n, k, bits, per_row=case % 2 == 1, exact=True)
    x = torch.randint(-4, 5, (m, k), generator=torch.Generator().manual_seed(case)).float()
    assert torch.equal(lut_matmul(x, w), x @ w.dequantize().T)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_lut_random_values(triton_backend, bits, dtype):
    w = _codebook_weight(37, 100, bits, per_row=bits == 4, exact=False)
    _check_float(_x(3, 100, dtype), w, lut_matmul(_x(3, 100, dtype), w))


def test_lut_falls_back_to_reference_for_five_bits(triton_backend):
    w = _codebook_weight(6, 10, 5, per_row=False, exact=False)
    assert torch.allclose(lut_matmul(_x(2, 10), w), ref.lut_matmul_ref(_x(2, 10), w))
