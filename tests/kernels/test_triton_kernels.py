"""Every Triton kernel against its plain-torch reference, through the Triton interpreter on CPU.

Tolerances (SQNR = 20*log10(||ref|| / ||ref - out||)): float32 >= 100 dB (only summation order differs),
float16 >= 55 dB and bfloat16 >= 40 dB against the float32 product of the same rounded inputs (the output's
own rounding dominates). W8A8 is compared for exact equality (int32 accumulation, same rescale order), and so
are LUT outputs with values whose products and sums are exact in float32. Both the tiled GEMM and the split-K
GEMV run over every shape (not multiples of the 16 x 32 x 32 interpreter blocks), with fused bias and output cast.
"""

import pytest
import torch

from gansurvey.kernels import CodebookWeight, lut_matmul, pack_codes, quantize_weight, w8a8_matmul, weight_only_matmul
from gansurvey.kernels import reference as ref
from gansurvey.kernels.formats import quantize_activations, quantize_activations_static
from gansurvey.kernels.triton_kernels import lut_matmul_triton, w8a8_matmul_triton, weight_only_matmul_triton

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


@pytest.mark.parametrize("case", range(0, len(SHAPES), 3))
@pytest.mark.parametrize("bits", [3, 5, 6, 7])
def test_weight_only_odd_bits_decode_in_the_kernel(triton_backend, case, bits):
    # codes that straddle two bytes of the row bitstream; the kernel itself, no reference fallback
    m, n, k = SHAPES[case]
    w = quantize_weight(_w(n, k), bits, (k, 16, max(1, k // 3))[case % 3], symmetric=case % 2 == 0)
    for gemv in (False, True):
        out = weight_only_matmul_triton(_x(m, k), w, gemv=gemv)
        assert sqnr(ref.weight_only_matmul_ref(_x(m, k), w), out) >= MIN_SQNR[torch.float32], (gemv, bits)


@pytest.mark.parametrize("case", range(len(SHAPES)))
def test_gemv_split_k_with_fused_bias_and_cast(triton_backend, case):
    # M <= 16 through the split-K GEMV (the interpreter's config splits K in two, so partial sums add atomically)
    m, n, k = SHAPES[case]
    m = min(m, 16)
    bits = (4, 8, 2, 1, 3)[case % 5]
    w = quantize_weight(_w(n, k), bits, (k, min(k, 32), max(1, k // 3))[case % 3], symmetric=case % 2 == 0)
    bias = torch.randn(n, generator=torch.Generator().manual_seed(case))
    dtype = (torch.float32, torch.float16, torch.bfloat16)[case % 3]
    x = _x(m, k, dtype)
    out = weight_only_matmul_triton(x, w, bias, out_dtype=dtype, gemv=True)
    want = x.float() @ w.dequantize().T + bias
    assert out.dtype == dtype and sqnr(want, out.float()) >= MIN_SQNR[dtype]


@pytest.mark.parametrize(("m", "n", "k"), [(1, 37, 100), (5, 33, 48), (17, 20, 40), (9, 31, 129)])
def test_tiled_gemm_fuses_bias_and_output_cast(triton_backend, m, n, k):
    w = quantize_weight(_w(n, k), 4, 16, symmetric=False)
    bias = torch.randn(n, generator=torch.Generator().manual_seed(3))
    for dtype in (torch.float32, torch.float16):
        x = _x(m, k, dtype)
        out = weight_only_matmul_triton(x, w, bias, out_dtype=dtype, gemv=False)
        assert out.dtype == dtype
        assert sqnr(x.float() @ w.dequantize().T + bias, out.float()) >= MIN_SQNR[dtype]
    assert torch.equal(weight_only_matmul(_x(m, k), w, bias), weight_only_matmul_triton(_x(m, k), w, bias))


@pytest.mark.parametrize(("m", "n", "k"), [(1, 37, 100), (18, 40, 64), (5, 33, 48), (9, 31, 129)])
@pytest.mark.parametrize("bits", [4, 8, 3])
def test_production_half_precision_branch(triton_backend, m, n, k, bits):
    # upcast=False runs the GPU's branch (weights cast to x.dtype, tensor-core dot) in the interpreter, where
    # float16 is computed right (bfloat16 is not: the GPU script checks it, perf/gpu_check.sh)
    w = quantize_weight(_w(n, k), bits, 32, symmetric=False)
    x = _x(m, k, torch.float16)
    out = weight_only_matmul_triton(x, w, out_dtype=torch.float16, upcast=False, gemv=False)
    assert sqnr(x.float() @ w.dequantize().T, out.float()) >= MIN_SQNR[torch.float16]
    cw = _codebook_weight(n, k, min(bits, 4), per_row=bits == 8, exact=False)
    out = lut_matmul_triton(x, cw, out_dtype=torch.float16, upcast=False)
    assert sqnr(x.float() @ cw.dequantize().T, out.float()) >= MIN_SQNR[torch.float16]


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


@pytest.mark.parametrize("bits", [3, 5, 6])
@pytest.mark.parametrize("per_row", [False, True])
def test_lut_odd_bits_in_the_kernel(triton_backend, bits, per_row):
    # 5-bit indices are what a pruned 4-bit shared layer needs (its zero is one more codebook entry)
    for m, n, k in ((2, 10, 10), (3, 37, 100), (17, 9, 33)):
        w = _codebook_weight(n, k, bits, per_row=per_row, exact=True)
        x = torch.randint(-4, 5, (m, k), generator=torch.Generator().manual_seed(m)).float()
        assert torch.equal(lut_matmul_triton(x, w), x @ w.dequantize().T)


def test_lut_fused_bias_and_cast(triton_backend):
    w = _codebook_weight(37, 100, 4, per_row=False, exact=False)
    bias = torch.randn(37)
    out = lut_matmul(_x(3, 100, torch.float16), w, bias)
    assert out.dtype == torch.float16
    assert sqnr(_x(3, 100, torch.float16).float() @ w.dequantize().T + bias, out.float()) >= 55.0


@pytest.mark.parametrize("case", range(1, len(SHAPES), 3))
@pytest.mark.parametrize("zero", [0, 37, 128, 255])
def test_w8a8_static_activations_are_exact(triton_backend, case, zero):
    # a calibrated uint8 grid (scale, zero point) as QuantizedLayer stores it: the zero point is folded in
    # through per-group weight sums, and the integer result equals the reference bit for bit
    m, n, k = SHAPES[case]
    w = quantize_weight(_w(n, k), 8, group_size=16 if case % 2 else None)
    x = _x(m, k) * 2
    q, s, offset = quantize_activations_static(x, 0.02, zero)
    bias = torch.randn(n)
    want = ref.w8a8_matmul_ref(q, s, w, offset)
    assert torch.equal(w8a8_matmul_triton(q, s, w, x_offset=offset), want)
    assert torch.equal(w8a8_matmul(x, w, bias, act_qparams=(0.02, zero)), want + bias)
    grid = (torch.clamp(torch.round(x / 0.02) + zero, 0, 255) - zero) * 0.02  # what the float path computes
    assert sqnr(grid @ w.dequantize().T, want) >= 100.0
