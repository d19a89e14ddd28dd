"""Triton GEMM kernels that read compressed weights directly: weight-only, W8A8, codebook (LUT), and a split-K
GEMV for batch rows of 1 to 4.

Why fused kernels: at small batch a GAN generator layer is memory bound, so reading 4-bit codes instead of
16-bit weights is where the speed-up comes from; it only materialises if the codes are decoded inside the GEMM's
inner loop (in registers) rather than dequantized to a float matrix in memory first.

Layouts the wrappers hand the kernels (built once per weight and cached on it, see ``formats``):

- codes of 1, 2, 4 or 8 bits: the packed bytes *K-major*, ``(ceil(K*bits/8), N)``, so a tile's bytes are one
  contiguous, coalesced load along ``N`` and each byte is loaded once and split into its ``8 // bits`` codes in
  registers (shift, mask, reshape); codes of 3, 5, 6 or 7 bits: the row bitstream ``(N, ceil(K*bits/8))``, each
  code read from the two bytes it may straddle;
- scales and zero points *along K*, ``(G, N)``: a group's values for a block of columns are one contiguous load.

The GEMM kernels tile the output ``(M, N)`` in ``BLOCK_M x BLOCK_N`` blocks and walk ``K`` in ``BLOCK_K`` steps
in one flat loop (so ``num_stages`` pipelines across scale groups too); when ``BLOCK_K`` divides the group size
a tile reads one scale per column, otherwise one per element. W8A8 keeps a loop per scale group, because its
int32 accumulator must be rescaled once per group. The epilogue adds the bias and casts to the output dtype
(fused: the output is written once, in ``x.dtype``).

The GEMV kernel (``M <= GEMV_MAX_M``) does not use ``tl.dot``: a 16-row MMA would waste 15/16 of its work on one
row. It multiplies and sums in registers and splits ``K`` across programs (``SPLIT_K``), adding the partial sums
atomically, so a 4096-wide layer spreads over every SM instead of ``N / BLOCK_N`` programs.

The LUT kernel stages a codebook of at most 16 entries in registers (``tl.gather``) instead of reading global
memory for every weight; larger codebooks are gathered from global memory (L1/L2 resident).

Triton is imported under a guard (this module imports on machines without it) and the kernels are defined
lazily, once per value of ``TRITON_INTERPRET``: Triton decides at decoration time whether a ``@triton.jit``
function is compiled or interpreted, so defining them on first use lets tests switch on the interpreter (CPU
tensors) even after another test imported ``gansurvey.kernels``. Interpreter notes: it computes bf16 wrongly,
so inputs are upcast to float32 right after loading (``upcast=False`` forces the production half-precision
branch, for fp16 tests); it checks no bounds, so the wrappers assert shapes, dtypes and contiguity; it gets a
single autotune config. The kernels call only core builtins (``tl.full``, not the ``@triton.jit`` helpers of
``triton.language.standard`` such as ``tl.zeros`` or ``tl.cdiv``): those helpers are compiled-or-interpreted
when triton is imported, so they fail in the interpreter if triton was imported before ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from types import SimpleNamespace

import torch
from torch import Tensor

from .epilogue import Epilogue, apply_epilogue
from .formats import CodebookWeight, QuantizedWeight, bytes_per_row

try:  # pragma: no cover - depends on the installation
    import triton
    import triton.language as tl

    HAS_TRITON = True
except Exception:  # noqa: BLE001 - any import failure means "no triton"
    triton = None
    tl = None
    HAS_TRITON = False

#: Bit widths the weight-only and LUT kernels decode in the inner loop (every width of the formats).
KERNEL_BITS = (1, 2, 3, 4, 5, 6, 7, 8)
#: Bit widths read from the K-major byte layout (whole codes per byte); the others from the row bitstream.
ALIGNED_BITS = (1, 2, 4, 8)
#: Batch rows up to which the weight-only op takes the split-K GEMV kernel.
GEMV_MAX_M = 4
#: Largest codebook the LUT kernel keeps in registers.
STAGED_CODEBOOK = 16


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
        (16, 32, 128, 4, 4),
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


def _gemv_configs(interpret: bool) -> list:
    if interpret:  # SPLIT_K=2 so the interpreter exercises the atomic split path
        return [triton.Config({"BLOCK_N": 32, "BLOCK_K": 32, "SPLIT_K": 2}, num_warps=4, num_stages=1)]
    shapes = [  # (BLOCK_N, BLOCK_K, SPLIT_K, warps, stages)
        (64, 128, 4, 4, 3), (64, 128, 8, 4, 3), (128, 64, 4, 4, 3), (128, 128, 2, 8, 3),
        (32, 256, 8, 4, 3), (64, 64, 16, 4, 2), (256, 64, 2, 8, 3), (128, 128, 1, 4, 3),
    ]
    return [triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": sk}, num_warps=w, num_stages=s)
            for bn, bk, sk, w, s in shapes]


@contextlib.contextmanager
def defining(interpret: bool):
    """``TRITON_INTERPRET`` set to ``interpret`` while jitted functions are defined (see the module docstring)."""
    if not HAS_TRITON:
        raise RuntimeError("triton is not installed")
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous


@functools.cache
def _kernels(interpret: bool) -> SimpleNamespace:
    """Define (and cache) the jitted kernels for one interpreter setting; see the module docstring."""
    with defining(interpret):
        return _define(interpret)


def _define(interpret: bool) -> SimpleNamespace:  # noqa: C901 - one place for every jitted function
    # The (BLOCK_K, BLOCK_N) tile of integer codes (or codebook indices) of rows offs_n, columns offs_k; inlined by
    # the jit (helpers called from kernels are jit functions themselves, defined here so they follow the
    # interpreter setting too).
    @triton.jit
    def unpack_tile(p_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB,
                    BITS: tl.constexpr, KMAJOR: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
        if KMAJOR:
            # Whole codes per byte: load each byte of the tile once (contiguous along N), split it in registers.
            PER: tl.constexpr = 8 // BITS
            offs_kb = k0 // PER + tl.arange(0, BLOCK_K // PER)
            byte = tl.load(p_ptr + offs_kb[:, None] * N + offs_n[None, :],
                           mask=(offs_kb[:, None] < KB) & mask_n[None, :], other=0).to(tl.int32)
            if PER == 1:
                code = byte
            else:
                shifts = tl.arange(0, PER) * BITS
                code = (byte[:, None, :] >> shifts[None, :, None]) & ((1 << BITS) - 1)
                code = tl.reshape(code, (BLOCK_K, BLOCK_N))
        else:
            # Row bitstream: code k holds bits k*BITS.. of its row and may straddle two bytes.
            mask_kn = mask_k[:, None] & mask_n[None, :]
            bit = offs_k[:, None] * BITS
            b0 = tl.load(p_ptr + offs_n[None, :] * KB + bit // 8, mask=mask_kn, other=0).to(tl.int32)
            b1 = tl.load(p_ptr + offs_n[None, :] * KB + bit // 8 + 1, mask=mask_kn & (bit // 8 + 1 < KB),
                         other=0).to(tl.int32)
            code = ((b0 | (b1 << 8)) >> (bit % 8)) & ((1 << BITS) - 1)
        return code

    # Shared decode of a (BLOCK_K, BLOCK_N) weight tile: codes to (code - zero) * scale.
    @triton.jit
    def decode_tile(p_ptr, s_ptr, z_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                    BITS: tl.constexpr, KMAJOR: tl.constexpr, HAS_ZEROS: tl.constexpr, ONE_GROUP: tl.constexpr,
                    BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
        mask_kn = mask_k[:, None] & mask_n[None, :]
        code = unpack_tile(p_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, BITS, KMAJOR, BLOCK_K, BLOCK_N)
        if ONE_GROUP:  # BLOCK_K divides the group size: one scale (and zero) per column of the tile
            g = k0 // group_size
            scale = tl.load(s_ptr + g * N + offs_n, mask=mask_n, other=0.0)[None, :]
            if HAS_ZEROS:
                zero = tl.load(z_ptr + g * N + offs_n, mask=mask_n, other=0.0)[None, :]
            else:
                zero = tl.full((1, BLOCK_N), 1 << (BITS - 1), dtype=tl.float32)
        else:
            goffs = (offs_k // group_size)[:, None] * N + offs_n[None, :]
            scale = tl.load(s_ptr + goffs, mask=mask_kn, other=0.0)
            if HAS_ZEROS:
                zero = tl.load(z_ptr + goffs, mask=mask_kn, other=0.0)
            else:
                zero = tl.full((BLOCK_K, BLOCK_N), 1 << (BITS - 1), dtype=tl.float32)
        return (code.to(tl.float32) - zero) * scale

    # The codebook (or this block's rows of it) as an (ENTRIES, BLOCK_N) register table, for decode_lut_tile.
    @triton.jit
    def lut_table(cb_ptr, offs_n, mask_n, BITS: tl.constexpr, PER_ROW: tl.constexpr, BLOCK_N: tl.constexpr):
        ENTRIES: tl.constexpr = 1 << BITS
        offs_e = tl.arange(0, ENTRIES)
        if PER_ROW:
            table = tl.load(cb_ptr + offs_n[None, :] * ENTRIES + offs_e[:, None], mask=mask_n[None, :], other=0.0)
        else:
            table = tl.broadcast_to(tl.load(cb_ptr + offs_e)[:, None], (ENTRIES, BLOCK_N))
        return table

    # Shared decode of a (BLOCK_K, BLOCK_N) codebook tile: indices unpacked as in decode_tile, then looked up in
    # the staged table (STAGED) or in global memory; entries outside the tile are zero.
    @triton.jit
    def decode_lut_tile(p_ptr, cb_ptr, table, offs_k, offs_n, k0, mask_k, mask_n, N, KB,
                        BITS: tl.constexpr, KMAJOR: tl.constexpr, PER_ROW: tl.constexpr, STAGED: tl.constexpr,
                        BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
        ENTRIES: tl.constexpr = 1 << BITS
        mask_kn = mask_k[:, None] & mask_n[None, :]
        idx = unpack_tile(p_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, BITS, KMAJOR, BLOCK_K, BLOCK_N)
        if STAGED:
            wt = tl.gather(table, idx, 0)
        elif PER_ROW:
            wt = tl.load(cb_ptr + offs_n[None, :] * ENTRIES + idx, mask=mask_kn, other=0.0)
        else:
            wt = tl.load(cb_ptr + idx, mask=mask_kn, other=0.0)
        return tl.where(mask_kn, wt, 0.0)

    @triton.jit
    def add(a, b):  # tl.sum is a triton.language.standard helper (see the module docstring): reduce by hand
        return a + b

    # The epilogue (kernels.epilogue): act(acc * scale[n] + bias[n]) in float32, before the one cast and store.
    @triton.jit
    def finish(acc, b_ptr, a_ptr, offs_n, mask_n, slope,
               HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, ACT: tl.constexpr):
        if HAS_SCALE:
            acc = acc * tl.load(a_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        if HAS_BIAS:
            acc = acc + tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        if ACT == 1:
            acc = tl.maximum(acc, 0.0)
        elif ACT == 2:
            acc = tl.where(acc >= 0.0, acc, acc * slope)
        elif ACT == 3:  # tanh from exp, a core builtin (see the module docstring); saturates to +-1
            acc = 1.0 - 2.0 / (tl.exp(2.0 * acc) + 1.0)
        elif ACT == 4:
            acc = 1.0 / (1.0 + tl.exp(-acc))
        return acc

    helpers = dict(unpack_tile=unpack_tile, decode_tile=decode_tile, lut_table=lut_table,
                   decode_lut_tile=decode_lut_tile, add=add, finish=finish)
    if interpret:
        # The compiler resolves a kernel's closure variables, the interpreter only its module globals.
        publish_for_interpreter(globals(), helpers)

    @triton.autotune(configs=_configs(interpret), key=["M", "N", "K", "BITS", "G"])
    @triton.jit
    def weight_only_kernel(
        x_ptr, p_ptr, s_ptr, z_ptr, b_ptr, a_ptr, out_ptr,
        M, N, K, KB, G, group_size, slope,
        BITS: tl.constexpr, KMAJOR: tl.constexpr, HAS_ZEROS: tl.constexpr, HAS_BIAS: tl.constexpr,
        HAS_SCALE: tl.constexpr, ACT: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N
        one_group = group_size % BLOCK_K == 0
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask_k = offs_k < K
            xt = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                         mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            if one_group:
                wt = decode_tile(p_ptr, s_ptr, z_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                                 BITS, KMAJOR, HAS_ZEROS, True, BLOCK_K, BLOCK_N)
            else:
                wt = decode_tile(p_ptr, s_ptr, z_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                                 BITS, KMAJOR, HAS_ZEROS, False, BLOCK_K, BLOCK_N)
            if UPCAST:
                xt = xt.to(tl.float32)
            else:
                wt = wt.to(xt.dtype)
            acc = tl.dot(xt, wt, acc, input_precision=PRECISION)
        acc = finish(acc, b_ptr, a_ptr, offs_n, mask_n, slope, HAS_BIAS, HAS_SCALE, ACT)
        out_ptrs = out_ptr + offs_m[:, None] * N + offs_n[None, :]
        tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])

    @triton.autotune(configs=_gemv_configs(interpret), key=["M", "N", "K", "BITS", "G"], reset_to_zero=["out_ptr"])
    @triton.jit
    def gemv_kernel(
        x_ptr, p_ptr, s_ptr, z_ptr, b_ptr, out_ptr,
        M, N, K, KB, G, group_size,
        BITS: tl.constexpr, KMAJOR: tl.constexpr, HAS_ZEROS: tl.constexpr, HAS_BIAS: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
    ):
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        offs_m = tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N
        # This program's slice of K, a whole number of BLOCK_K (so K-major tiles start on a byte).
        chunk = ((K + SPLIT_K * BLOCK_K - 1) // (SPLIT_K * BLOCK_K)) * BLOCK_K
        k_lo = pid_k * chunk
        k_hi = tl.minimum(k_lo + chunk, K)
        one_group = group_size % BLOCK_K == 0
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask_k = offs_k < k_hi
            xt = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                         mask=mask_m[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
            if one_group:
                wt = decode_tile(p_ptr, s_ptr, z_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                                 BITS, KMAJOR, HAS_ZEROS, True, BLOCK_K, BLOCK_N)
            else:
                wt = decode_tile(p_ptr, s_ptr, z_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                                 BITS, KMAJOR, HAS_ZEROS, False, BLOCK_K, BLOCK_N)
            wt = tl.where(mask_k[:, None], wt, 0.0)
            acc += tl.reduce(xt[:, :, None] * wt[None, :, :], 1, add)
        if HAS_BIAS:
            bias = tl.load(b_ptr + offs_n, mask=mask_n & (pid_k == 0), other=0.0).to(tl.float32)
            acc = acc + bias[None, :]
        out_ptrs = out_ptr + offs_m[:, None] * N + offs_n[None, :]
        if SPLIT_K == 1:
            tl.store(out_ptrs, acc, mask=mask_m[:, None] & mask_n[None, :])
        else:
            tl.atomic_add(out_ptrs, acc, mask=mask_m[:, None] & mask_n[None, :])

    @triton.autotune(configs=_configs(interpret, int8=True), key=["M", "N", "K", "G"])
    @triton.jit
    def w8a8_kernel(
        x_ptr, xs_ptr, p_ptr, s_ptr, ws_ptr, b_ptr, a_ptr, out_ptr,
        M, N, K, G, group_size, x_offset, slope,
        HAS_OFFSET: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, ACT: tl.constexpr,
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
            w_scale = tl.load(s_ptr + g * N + offs_n, mask=mask_n, other=0.0)
            k_start = g * group_size
            k_end = tl.minimum(k_start + group_size, K)
            acc_i = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.int32)
            for k0 in range(k_start, k_end, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                mask_k = offs_k < k_end
                xt = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                             mask=mask_m[:, None] & mask_k[None, :], other=0)
                # K-major int8 codes: contiguous along N
                byte = tl.load(p_ptr + offs_k[:, None] * N + offs_n[None, :],
                               mask=mask_k[:, None] & mask_n[None, :], other=128)
                wt = (byte.to(tl.int32) - 128).to(tl.int8)
                acc_i = tl.dot(xt, wt, acc_i, out_dtype=tl.int32)
            if HAS_OFFSET:
                # Static asymmetric activations: sum_k (x_int8 + offset) * w = acc + offset * sum_k w, exactly.
                acc_i += x_offset * tl.load(ws_ptr + g * N + offs_n, mask=mask_n, other=0)[None, :]
            # Same rounding order as the reference: ((acc * x_scale) * w_scale), then added to the running sum.
            acc = acc + (acc_i.to(tl.float32) * x_scale[:, None]) * w_scale[None, :]
        acc = finish(acc, b_ptr, a_ptr, offs_n, mask_n, slope, HAS_BIAS, HAS_SCALE, ACT)
        out_ptrs = out_ptr + offs_m[:, None] * N + offs_n[None, :]
        tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])

    @triton.autotune(configs=_configs(interpret), key=["M", "N", "K", "BITS"])
    @triton.jit
    def lut_kernel(
        x_ptr, p_ptr, cb_ptr, b_ptr, a_ptr, out_ptr,
        M, N, K, KB, slope,
        BITS: tl.constexpr, KMAJOR: tl.constexpr, PER_ROW: tl.constexpr, STAGED: tl.constexpr,
        HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, ACT: tl.constexpr, UPCAST: tl.constexpr,
        PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N
        if STAGED:  # the codebook (or this block's rows of it) in registers, (ENTRIES, BLOCK_N)
            table = lut_table(cb_ptr, offs_n, mask_n, BITS, PER_ROW, BLOCK_N)
        else:
            table = cb_ptr  # unused: entries are read from global memory
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask_k = offs_k < K
            xt = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                         mask=mask_m[:, None] & mask_k[None, :], other=0.0)
            wt = decode_lut_tile(p_ptr, cb_ptr, table, offs_k, offs_n, k0, mask_k, mask_n, N, KB,
                                 BITS, KMAJOR, PER_ROW, STAGED, BLOCK_K, BLOCK_N)
            if UPCAST:
                xt = xt.to(tl.float32)
            else:
                wt = wt.to(xt.dtype)
            acc = tl.dot(xt, wt, acc, input_precision=PRECISION)
        acc = finish(acc, b_ptr, a_ptr, offs_n, mask_n, slope, HAS_BIAS, HAS_SCALE, ACT)
        out_ptrs = out_ptr + offs_m[:, None] * N + offs_n[None, :]
        tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])

    return SimpleNamespace(weight_only=weight_only_kernel, gemv=gemv_kernel, w8a8=w8a8_kernel, lut=lut_kernel,
                           helpers=helpers)


#: The module namespaces holding the interpreter's jitted helpers, and the names published in each.
_PUBLISHED: dict[int, tuple[dict, set[str]]] = {}


def publish_for_interpreter(namespace: dict, helpers: dict) -> None:
    """Put jitted helpers in a module's globals, where the interpreter looks a kernel's callees up (the compiler
    finds them as closure variables); :func:`compiler_scope` hides them again."""
    namespace.update(helpers)
    _PUBLISHED.setdefault(id(namespace), (namespace, set()))[1].update(helpers)


@contextlib.contextmanager
def compiler_scope():
    """Hide the interpreter's helpers from the modules' globals while compiling for a GPU in a process that also
    ran the interpreter: the compiler resolves a global before a closure variable and refuses interpreted ones.
    Only a test session mixes the two (ahead-of-time compile tests beside interpreter tests)."""
    saved = [(home, {name: home.pop(name) for name in names if name in home}) for home, names in _PUBLISHED.values()]
    try:
        yield
    finally:
        for home, values in saved:
            home.update(values)


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


def _check_bias(bias: Tensor | None, n: int, device: torch.device) -> Tensor | None:
    if bias is None:
        return None
    assert tuple(bias.shape) == (n,) and bias.device == device, f"bias must be ({n},) on {device}"
    return bias.contiguous()


def _float_options(x: Tensor, upcast: bool | None) -> tuple[bool, str]:
    assert x.dtype in (torch.float16, torch.bfloat16, torch.float32), f"x has dtype {x.dtype}"
    if upcast is None:
        upcast = interpret_mode() or x.dtype == torch.float32
    assert upcast or x.dtype != torch.float32, "upcast=False needs a float16 or bfloat16 x"
    return upcast, "ieee" if upcast else "tf32"


def epilogue_args(epilogue: Epilogue | None, n: int, unused: Tensor) -> tuple[tuple[Tensor, float], dict]:
    """The kernels' epilogue arguments ``(a_ptr, slope)`` and constexprs ``HAS_SCALE``, ``ACT`` (``unused``: a
    pointer to pass when there is no scale)."""
    if epilogue is None:
        return (unused, 0.0), dict(HAS_SCALE=False, ACT=0)
    scale = epilogue.scale
    assert scale is None or (scale.dtype == torch.float32 and tuple(scale.shape) == (n,)
                             and scale.device == unused.device), f"epilogue scale must be ({n},) float32"
    return ((unused if scale is None else scale.contiguous()), float(epilogue.slope)), dict(
        HAS_SCALE=scale is not None, ACT=epilogue.code)


def _kmajor(bits: int) -> bool:
    return bits in ALIGNED_BITS


def _packed_for_kernel(w: QuantizedWeight | CodebookWeight) -> Tensor:
    return w.packed_kmajor() if _kmajor(w.bits) else w.packed


def weight_only_matmul_triton(
    x: Tensor,
    w: QuantizedWeight,
    bias: Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    upcast: bool | None = None,
    gemv: bool | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """Fused dequantize + GEMM ``x @ w.dequantize().T (+ bias)`` for ``bits`` 1 to 8; ``(M, N)`` in ``out_dtype``
    (float32 by default).

    ``gemv``: ``None`` takes the split-K GEMV kernel for ``M <= GEMV_MAX_M``; ``True``/``False`` force it or the
    tiled GEMM (tests use both). ``upcast``: ``None`` computes in float32 under the interpreter and for float32
    ``x``, else in ``x.dtype`` on the tensor cores; ``False`` forces the half-precision branch (fp16 only is
    right in the interpreter). ``epilogue``: ``act(acc * scale + bias)`` in the tiled GEMM's epilogue; the GEMV
    sums its K slices atomically, so there it follows the sum, in torch.
    """
    assert w.bits in KERNEL_BITS, f"the weight-only kernel reads bits {KERNEL_BITS}, got {w.bits}"
    _check_common(x, w.packed, w.shape, w.bits)
    m, (n, k) = x.shape[0], w.shape
    bias = _check_bias(bias, n, x.device)
    out_dtype = out_dtype or torch.float32
    scales = w.scales_kmajor()
    zeros = scales if w.zeros is None else w.zeros_kmajor()  # an unused pointer when symmetric
    packed = _packed_for_kernel(w)
    kernels = _kernels(interpret_mode())
    common = dict(BITS=w.bits, KMAJOR=_kmajor(w.bits), HAS_ZEROS=w.zeros is not None, HAS_BIAS=bias is not None)
    b_arg = scales if bias is None else bias
    kb = w.packed.shape[1]
    if gemv if gemv is not None else m <= GEMV_MAX_M:
        assert m <= 16, f"the GEMV kernel takes at most 16 rows, got {m}"
        acc = torch.zeros(m, n, dtype=torch.float32, device=x.device)
        block_m = max(1, triton.next_power_of_2(m))
        in_kernel = bias if epilogue is None else None  # a scale must apply before the bias: after the sum
        kernels.gemv[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), meta["SPLIT_K"])](
            x, packed, scales, zeros, scales if in_kernel is None else in_kernel, acc, m, n, k, kb, w.num_groups,
            w.group_size, BLOCK_M=block_m, **{**common, "HAS_BIAS": in_kernel is not None},
        )
        if epilogue is not None:
            acc = apply_epilogue(acc, bias, epilogue)
        return acc if out_dtype == torch.float32 else acc.to(out_dtype)
    use_upcast, precision = _float_options(x, upcast)
    out = torch.empty(m, n, dtype=out_dtype, device=x.device)
    (a_arg, slope), flags = epilogue_args(epilogue, n, scales)
    kernels.weight_only[_grid(m, n)](
        x, packed, scales, zeros, b_arg, a_arg, out, m, n, k, kb, w.num_groups, w.group_size, slope,
        UPCAST=use_upcast, PRECISION=precision, **common, **flags,
    )
    return out


def w8a8_matmul_triton(
    x_int8: Tensor,
    x_scale: Tensor,
    w: QuantizedWeight,
    bias: Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    x_offset: int = 0,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """Int8 x int8 GEMM with int32 accumulation per scale group and fused rescale (+ bias, + ``epilogue``);
    ``(M, N)`` out.

    ``x_offset``: an integer added to every activation code (static asymmetric activations stored as
    ``code - 128`` in int8 use ``128 - zero_point``), folded in exactly through per-group weight sums.
    """
    assert w.bits == 8 and w.zeros is None, "W8A8 needs an 8-bit symmetric weight"
    assert x_int8.dtype == torch.int8, f"x_int8 has dtype {x_int8.dtype}"
    _check_common(x_int8, w.packed, w.shape, 8)
    assert x_scale.dtype == torch.float32 and x_scale.is_contiguous() and tuple(x_scale.shape) == (x_int8.shape[0],)
    assert isinstance(x_offset, int) and abs(x_offset) <= 255, f"x_offset must be an int in [-255, 255], got {x_offset}"
    m, (n, k) = x_int8.shape[0], w.shape
    bias = _check_bias(bias, n, x_int8.device)
    out = torch.empty(m, n, dtype=out_dtype or torch.float32, device=x_int8.device)
    scales = w.scales_kmajor()
    wsum = w.int8_group_sums() if x_offset else scales
    (a_arg, slope), flags = epilogue_args(epilogue, n, scales)
    _kernels(interpret_mode()).w8a8[_grid(m, n)](
        x_int8, x_scale, w.packed_kmajor(), scales, wsum, scales if bias is None else bias, a_arg, out,
        m, n, k, w.num_groups, w.group_size, x_offset, slope,
        HAS_OFFSET=x_offset != 0, HAS_BIAS=bias is not None, **flags,
        enable_fp_fusion=False,  # keep the rescale's rounding identical to the reference
    )
    return out


def lut_matmul_triton(
    x: Tensor,
    w: CodebookWeight,
    bias: Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    upcast: bool | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """Codebook lookup fused in the GEMM inner loop (+ bias, + ``epilogue``), for ``bits`` 1 to 8; ``(M, N)`` in
    ``out_dtype``."""
    assert w.bits in KERNEL_BITS, f"the LUT kernel reads bits {KERNEL_BITS}, got {w.bits}"
    _check_common(x, w.packed, w.shape, w.bits)
    assert w.codebook.is_contiguous() and w.codebook.shape[-1] == 2**w.bits
    use_upcast, precision = _float_options(x, upcast)
    m, (n, k) = x.shape[0], w.shape
    bias = _check_bias(bias, n, x.device)
    out = torch.empty(m, n, dtype=out_dtype or torch.float32, device=x.device)
    (a_arg, slope), flags = epilogue_args(epilogue, n, w.codebook)
    _kernels(interpret_mode()).lut[_grid(m, n)](
        x, _packed_for_kernel(w), w.codebook, w.codebook if bias is None else bias, a_arg, out,
        m, n, k, w.packed.shape[1], slope,
        BITS=w.bits, KMAJOR=_kmajor(w.bits), PER_ROW=w.per_row, STAGED=2**w.bits <= STAGED_CODEBOOK,
        HAS_BIAS=bias is not None, UPCAST=use_upcast, PRECISION=precision, **flags,
    )
    return out
