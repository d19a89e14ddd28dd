"""Triton GEMM kernels that read compressed weights directly: weight-only, W8A8 and codebook (LUT).

Why fused kernels: at small batch a GAN generator layer is memory bound, so reading 4-bit codes instead of
16-bit weights is where the speed-up comes from; it only materialises if the codes are decoded inside the GEMM's
inner loop (in registers) rather than dequantized to a float matrix in memory first.

All three kernels tile the output ``(M, N)`` in ``BLOCK_M x BLOCK_N`` blocks and walk ``K`` in ``BLOCK_K``
steps. The ``K`` loop is nested in a loop over scale groups, so each group's scale/zero is read once per block
of columns and the W8A8 integer accumulator is rescaled exactly once per group. A ``BLOCK_K`` that does not
divide the group size is allowed (the last block of a group is masked), so any ``group_size`` works.
Codes of ``bits`` in 1, 2, 4, 8 are read as ``8 // bits`` codes per byte, lowest bits first (see ``formats``).

Triton is imported under a guard (this module imports on machines without it) and the kernels are defined
lazily, once per value of ``TRITON_INTERPRET``: Triton decides at decoration time whether a ``@triton.jit``
function is compiled or interpreted, so defining them on first use lets tests switch on the interpreter (CPU
tensors) even after another test imported ``gansurvey.kernels``. Interpreter notes: it computes bf16 wrongly,
so inputs are upcast to float32 right after loading; it checks no bounds, so the wrappers assert shapes,
dtypes and contiguity; it gets a single autotune config. The kernels call only core builtins (``tl.full``,
not the ``@triton.jit`` helpers of ``triton.language.standard`` such as ``tl.zeros`` or ``tl.cdiv``): those
helpers are compiled-or-interpreted when triton is imported, so they fail in the interpreter if triton was
imported before ``TRITON_INTERPRET=1`` was set.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace

import torch
from torch import Tensor

from .formats import CodebookWeight, QuantizedWeight, bytes_per_row

try:  # pragma: no cover - depends on the installation
    import triton
    import triton.language as tl

    HAS_TRITON = True
except Exception:  # noqa: BLE001 - any import failure means "no triton"
    triton = None
    tl = None
    HAS_TRITON = False

#: Bit widths the weight-only and LUT kernels decode in the inner loop (others fall back to the reference).
KERNEL_BITS = (1, 2, 4, 8)


def interpret_mode() -> bool:
    """True when ``TRITON_INTERPRET=1`` (kernels run on CPU tensors through the Triton interpreter)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _configs(interpret: bool, int8: bool = False) -> list:
    if interpret:
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4, num_stages=1)]
    bk_small = 64 if int8 else 32
    shapes = [  # (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages): decode-sized first, then larger batches
        (16, 64, 128, 4, 4),
        (16, 128, 64, 4, 4),
        (32, 64, 128, 4, 3),
        (64, 64, 64, 4, 3),
        (64, 128, 64, 4, 3),
        (128, 128, bk_small, 8, 3),
        (128, 256, 64, 8, 3),
    ]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bm, bn, bk, w, s in shapes
    ]


@functools.cache
def _kernels(interpret: bool) -> SimpleNamespace:
    """Define (and cache) the jitted kernels for one interpreter setting; see the module docstring."""
    if not HAS_TRITON:
        raise RuntimeError("triton is not installed")
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        return _define(interpret)
    finally:
        if previous is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous


def _define(interpret: bool) -> SimpleNamespace:
    @triton.autotune(configs=_configs(interpret), key=["M", "N", "K", "BITS", "G"])
    @triton.jit
    def weight_only_kernel(
        x_ptr, p_ptr, s_ptr, z_ptr, out_ptr,
        M, N, K, KB, G, group_size,
        BITS: tl.constexpr, HAS_ZEROS: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for g in range(0, G):
            scale = tl.load(s_ptr + offs_n * G + g, mask=mask_n, other=0.0)
            if HAS_ZEROS:
                zero = tl.load(z_ptr + offs_n * G + g, mask=mask_n, other=0.0)
            else:
                zero = tl.full((BLOCK_N,), 1 << (BITS - 1), dtype=tl.float32)
            k_start = g * group_size
            k_end = tl.minimum(k_start + group_size, K)
            for k0 in range(k_start, k_end, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                mask_k = offs_k < k_end
                xt = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                             mask=mask_m[:, None] & mask_k[None, :], other=0.0)
                # 8 // BITS codes per byte, lowest bits first (kept inline: jit closures are not resolved)
                byte = tl.load(p_ptr + offs_n[None, :] * KB + offs_k[:, None] // (8 // BITS),
                               mask=mask_k[:, None] & mask_n[None, :], other=0)
                code = (byte.to(tl.int32) >> ((offs_k[:, None] % (8 // BITS)) * BITS)) & ((1 << BITS) - 1)
                wt = (code.to(tl.float32) - zero[None, :]) * scale[None, :]
                if UPCAST:
                    xt = xt.to(tl.float32)
                else:
                    wt = wt.to(xt.dtype)
                acc = tl.dot(xt, wt, acc, input_precision=PRECISION)
        out_ptrs = out_ptr + offs_m[:, None] * N + offs_n[None, :]
        tl.store(out_ptrs, acc, mask=mask_m[:, None] & mask_n[None, :])

    @triton.autotune(configs=_configs(interpret, int8=True), key=["M", "N", "K", "G"])
    @triton.jit
    def w8a8_kernel(
        x_ptr, xs_ptr, p_ptr, s_ptr, out_ptr,
        M, N, K, G, group_size,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N
        x_scale = tl.load(xs_ptr + offs_m, mask=mask_m, other=0.0)
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for g in range(0, G):
            w_scale = tl.load(s_ptr + offs_n * G + g, mask=mask_n, other=0.0)
            k_start = g * group_size
            k_end = tl.minimum(k_start + group_size, K)
            acc_i = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.int32)
            for k0 in range(k_start, k_end, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                mask_k = offs_k < k_end
                xt = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                             mask=mask_m[:, None] & mask_k[None, :], other=0)
                byte = tl.load(p_ptr + offs_n[None, :] * K + offs_k[:, None],
                               mask=mask_k[:, None] & mask_n[None, :], other=128)
                wt = (byte.to(tl.int32) - 128).to(tl.int8)
                acc_i = tl.dot(xt, wt, acc_i, out_dtype=tl.int32)
            # Same rounding order as the reference: ((acc * x_scale) * w_scale), then added to the running sum.
            acc = acc + (acc_i.to(tl.float32) * x_scale[:, None]) * w_scale[None, :]
        out_ptrs = out_ptr + offs_m[:, None] * N + offs_n[None, :]
        tl.store(out_ptrs, acc, mask=mask_m[:, None] & mask_n[None, :])

    @triton.autotune(configs=_configs(interpret), key=["M", "N", "K", "BITS"])
    @triton.jit
    def lut_kernel(
        x_ptr, p_ptr, cb_ptr, out_ptr,
        M, N, K, KB,
        BITS: tl.constexpr, PER_ROW: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask_k = offs_k < K
            mask_kn = mask_k[:, None] & mask_n[None, :]
            xt = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                         mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            byte = tl.load(p_ptr + offs_n[None, :] * KB + offs_k[:, None] // (8 // BITS), mask=mask_kn, other=0)
            idx = (byte.to(tl.int32) >> ((offs_k[:, None] % (8 // BITS)) * BITS)) & ((1 << BITS) - 1)
            if PER_ROW:
                wt = tl.load(cb_ptr + offs_n[None, :] * (1 << BITS) + idx, mask=mask_kn, other=0.0)
            else:
                wt = tl.load(cb_ptr + idx, mask=mask_kn, other=0.0)
            if UPCAST:
                xt = xt.to(tl.float32)
            else:
                wt = wt.to(xt.dtype)
            acc = tl.dot(xt, wt, acc, input_precision=PRECISION)
        out_ptrs = out_ptr + offs_m[:, None] * N + offs_n[None, :]
        tl.store(out_ptrs, acc, mask=mask_m[:, None] & mask_n[None, :])

    return SimpleNamespace(weight_only=weight_only_kernel, w8a8=w8a8_kernel, lut=lut_kernel)


def _grid(m: int, n: int):
    return lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))


def _check_common(x: Tensor, packed: Tensor, shape: tuple[int, int], bits: int) -> None:
    # The interpreter checks no bounds: every pointer the kernels form must stay inside these tensors.
    n, k = shape
    assert x.dim() == 2 and x.shape[1] == k, f"x must be (M, {k}), got {tuple(x.shape)}"
    assert x.is_contiguous(), "x must be contiguous"
    assert packed.dtype == torch.uint8 and packed.is_contiguous(), "packed must be contiguous uint8"
    assert tuple(packed.shape) == (n, bytes_per_row(k, bits)), f"packed has shape {tuple(packed.shape)}"
    assert x.device == packed.device, f"x is on {x.device}, the weight on {packed.device}"


def _float_options(x: Tensor) -> tuple[bool, str]:
    assert x.dtype in (torch.float16, torch.bfloat16, torch.float32), f"x has dtype {x.dtype}"
    interpret = interpret_mode()
    upcast = interpret or x.dtype == torch.float32
    return upcast, "ieee" if upcast else "tf32"


def weight_only_matmul_triton(x: Tensor, w: QuantizedWeight) -> Tensor:
    """Fused dequantize + GEMM ``x @ w.dequantize().T`` for ``bits`` in 1, 2, 4, 8; float32 ``(M, N)`` out."""
    assert w.bits in KERNEL_BITS, f"the weight-only kernel reads bits {KERNEL_BITS}, got {w.bits}"
    _check_common(x, w.packed, w.shape, w.bits)
    assert w.scales.is_contiguous() and (w.zeros is None or w.zeros.is_contiguous())
    upcast, precision = _float_options(x)
    m, (n, k) = x.shape[0], w.shape
    out = torch.empty(m, n, dtype=torch.float32, device=x.device)
    zeros = w.scales if w.zeros is None else w.zeros  # an unused pointer when symmetric
    _kernels(interpret_mode()).weight_only[_grid(m, n)](
        x, w.packed, w.scales, zeros, out,
        m, n, k, w.packed.shape[1], w.num_groups, w.group_size,
        BITS=w.bits, HAS_ZEROS=w.zeros is not None, UPCAST=upcast, PRECISION=precision,
    )
    return out


def w8a8_matmul_triton(x_int8: Tensor, x_scale: Tensor, w: QuantizedWeight) -> Tensor:
    """Int8 x int8 GEMM with int32 accumulation per scale group and fused rescale; float32 ``(M, N)`` out."""
    assert w.bits == 8 and w.zeros is None, "W8A8 needs an 8-bit symmetric weight"
    assert x_int8.dtype == torch.int8, f"x_int8 has dtype {x_int8.dtype}"
    _check_common(x_int8, w.packed, w.shape, 8)
    assert x_scale.dtype == torch.float32 and x_scale.is_contiguous() and tuple(x_scale.shape) == (x_int8.shape[0],)
    assert w.scales.is_contiguous()
    m, (n, k) = x_int8.shape[0], w.shape
    out = torch.empty(m, n, dtype=torch.float32, device=x_int8.device)
    _kernels(interpret_mode()).w8a8[_grid(m, n)](
        x_int8, x_scale, w.packed, w.scales, out,
        m, n, k, w.num_groups, w.group_size,
        enable_fp_fusion=False,  # keep the rescale's rounding identical to the reference
    )
    return out


def lut_matmul_triton(x: Tensor, w: CodebookWeight) -> Tensor:
    """Codebook lookup fused in the GEMM inner loop, for ``bits`` in 1, 2, 4, 8; float32 ``(M, N)`` out."""
    assert w.bits in KERNEL_BITS, f"the LUT kernel reads bits {KERNEL_BITS}, got {w.bits}"
    _check_common(x, w.packed, w.shape, w.bits)
    assert w.codebook.is_contiguous() and w.codebook.shape[-1] == 2**w.bits
    upcast, precision = _float_options(x)
    m, (n, k) = x.shape[0], w.shape
    out = torch.empty(m, n, dtype=torch.float32, device=x.device)
    _kernels(interpret_mode()).lut[_grid(m, n)](
        x, w.packed, w.codebook, out,
        m, n, k, w.packed.shape[1],
        BITS=w.bits, PER_ROW=w.per_row, UPCAST=upcast, PRECISION=precision,
    )
    return out
