"""Implicit-GEMM Triton convolutions on compressed weights: no im2col or col2im tensor is ever written.

Why: the GEMM form of :mod:`gansurvey.kernels.conv` materialises ``F.unfold``'s columns (``kh*kw`` times the
input: about 1.2 GB in fp16 for a 256->256, 3x3 layer at 64x64 and batch 64) and, for a transposed convolution,
a column tensor ``kh*kw/stride**2`` times its output, before ``F.fold`` adds it up. Both are HBM traffic many
times the compressed weight the kernels exist to save. Here each program computes a ``BLOCK_M x BLOCK_N`` tile
of output pixels x output channels and forms its input tile on the fly from the NCHW input (addresses computed
from the pixel and the tap, padding as masked loads), decoding the weight tile in registers exactly as the GEMM
kernels do (``decode_tile`` / ``decode_lut_tile``, weight-only codes or codebook indices of 1 to 8 bits).

- ``conv2d``: ``M = B*Hout*Wout``, ``N = Cout``, ``K = Cin*kh*kw`` ordered ``(c, r, s)`` as the weight matrix of
  :func:`~gansurvey.kernels.conv.conv2d_weight_matrix`; the input element of pixel ``(b, oh, ow)`` and column
  ``(c, r, s)`` is ``x[b, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw]`` (zero outside the image).
- ``conv_transpose2d``: output-stationary and split by stride phase. Output row ``oh`` receives tap ``r`` only
  when ``oh + ph - r*dh`` is a multiple of ``sh``, so the output pixels are grouped by ``(oh % sh, ow % sw)``
  (the grid's third axis) and each phase loops over its own taps only: no multiplication by the zeros that a
  direct convolution over the zero-upsampled input would do (3/4 of them at stride 2), and no atomics (each
  output pixel is one program's). Per tap the GEMM has ``K = Cin``; the weight matrix's rows are reordered once
  per weight from ``(cout, r, s)`` to ``(r, s, cout)`` (cached on the weight) so a tap's rows are contiguous
  along ``N``, as the K-major loads want.

Grouped convolutions call the kernel once per group on channel views of the input and output (strides are
passed, so no copy). The epilogue adds the bias and casts to the output dtype, written once into NCHW.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import torch
from torch import Tensor

from . import triton_kernels as tk
from .epilogue import Epilogue
from .formats import CodebookWeight, QuantizedWeight

triton, tl = tk.triton, tk.tl

_WEIGHT_ONLY, _LUT = 0, 1


@functools.cache
def _kernels(interpret: bool) -> SimpleNamespace:
    """Define (and cache) the conv kernels for one interpreter setting (see ``triton_kernels``)."""
    helpers = tk._kernels(interpret).helpers
    with tk.defining(interpret):
        return _define(interpret, helpers)


def _define(interpret: bool, helpers: dict) -> SimpleNamespace:
    decode_tile, lut_table, decode_lut_tile = helpers["decode_tile"], helpers["lut_table"], helpers["decode_lut_tile"]
    finish = helpers["finish"]

    # One (BLOCK_K, BLOCK_N) weight tile of either format; rows are offs_n (any row indices, stride N).
    @triton.jit
    def weight_tile(p_ptr, s_ptr, z_ptr, table, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                    FORMAT: tl.constexpr, BITS: tl.constexpr, KMAJOR: tl.constexpr, HAS_ZEROS: tl.constexpr,
                    PER_ROW: tl.constexpr, STAGED: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
        if FORMAT == 1:  # codebook: s_ptr is the codebook
            wt = decode_lut_tile(p_ptr, s_ptr, table, offs_k, offs_n, k0, mask_k, mask_n, N, KB,
                                 BITS, KMAJOR, PER_ROW, STAGED, BLOCK_K, BLOCK_N)
        elif group_size % BLOCK_K == 0:
            wt = decode_tile(p_ptr, s_ptr, z_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                             BITS, KMAJOR, HAS_ZEROS, True, BLOCK_K, BLOCK_N)
        else:
            wt = decode_tile(p_ptr, s_ptr, z_ptr, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                             BITS, KMAJOR, HAS_ZEROS, False, BLOCK_K, BLOCK_N)
        return wt

    # Addresses and validity of the (BLOCK_M, BLOCK_K) input tile of a conv2d: pixel rows, (c, r, s) columns.
    @triton.jit
    def conv2d_x_tile(x_ptr, b, ih0, iw0, mask_m, offs_k, mask_k, KW, KHW, DH, DW, H, W, sxb, sxc, sxh, sxw):
        c = offs_k // KHW
        tap = offs_k % KHW
        ih = ih0[:, None] + (tap // KW * DH)[None, :]
        iw = iw0[:, None] + (tap % KW * DW)[None, :]
        inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W) & mask_m[:, None] & mask_k[None, :]
        return x_ptr + b[:, None] * sxb + c[None, :] * sxc + ih * sxh + iw * sxw, inside

    # The signed int8 (BLOCK_K, BLOCK_N) tile of K-major 8-bit codes (code - 128; zero outside the tile).
    @triton.jit
    def int8_tile(p_ptr, offs_k, offs_n, mask_k, mask_n, N):
        byte = tl.load(p_ptr + offs_k[:, None] * N + offs_n[None, :], mask=mask_k[:, None] & mask_n[None, :],
                       other=128)
        return (byte.to(tl.int32) - 128).to(tl.int8)

    # A conv2d tile's output pixels: batch index, output row and column, and the input corner each one reads from.
    @triton.jit
    def conv2d_pixels(offs_m, HO, WO, SH, SW, PH, PW):
        b = offs_m // (HO * WO)
        pix = offs_m % (HO * WO)
        oh = pix // WO
        ow = pix % WO
        return b, oh, ow, oh * SH - PH, ow * SW - PW

    # A transposed conv tile's output pixels in stride phase (ph, pw): (b, i, j) index the phase's grid, and
    # (oh, ow) = (ph + i*SH, pw + j*SW) the output; the mask leaves out rows past M and pixels past the output.
    @triton.jit
    def phase_pixels(offs_m, M, phase, HO, WO, HQ, WQ, SH, SW):
        ph = phase // SW
        pw = phase % SW
        b = offs_m // (HQ * WQ)
        q = offs_m % (HQ * WQ)
        i = q // WQ
        j = q % WQ
        oh = ph + i * SH
        ow = pw + j * SW
        return ph, pw, b, i, j, oh, ow, (offs_m < M) & (oh < HO) & (ow < WO)

    # The one store of a tile into the NCHW output (any strides), in the output's dtype.
    @triton.jit
    def store_nchw(out_ptr, acc, b, oh, ow, offs_n, mask_m, mask_n, sob, soc, soh, sow):
        out_ptrs = out_ptr + (b * sob + oh * soh + ow * sow)[:, None] + offs_n[None, :] * soc
        tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])

    helpers = {**helpers, "weight_tile": weight_tile, "conv2d_x_tile": conv2d_x_tile, "int8_tile": int8_tile,
               "conv2d_pixels": conv2d_pixels, "phase_pixels": phase_pixels, "store_nchw": store_nchw}
    if interpret:
        tk.publish_for_interpreter(globals(), helpers)

    @triton.autotune(configs=tk._configs(interpret), key=["M", "N", "K", "BITS", "G", "FORMAT"])
    @triton.jit
    def conv2d_kernel(
        x_ptr, p_ptr, s_ptr, z_ptr, b_ptr, a_ptr, out_ptr,
        M, N, K, KB, G, group_size, slope,
        H, W, HO, WO, KW, KHW, SH, SW, PH, PW, DH, DW,
        sxb, sxc, sxh, sxw, sob, soc, soh, sow,
        FORMAT: tl.constexpr, BITS: tl.constexpr, KMAJOR: tl.constexpr, HAS_ZEROS: tl.constexpr,
        PER_ROW: tl.constexpr, STAGED: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr,
        ACT: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N
        b, oh, ow, ih0, iw0 = conv2d_pixels(offs_m, HO, WO, SH, SW, PH, PW)
        if FORMAT == 1 and STAGED:
            table = lut_table(s_ptr, offs_n, mask_n, BITS, PER_ROW, BLOCK_N)
        else:
            table = s_ptr  # unused
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask_k = offs_k < K
            x_ptrs, inside = conv2d_x_tile(x_ptr, b, ih0, iw0, mask_m, offs_k, mask_k, KW, KHW, DH, DW, H, W,
                                           sxb, sxc, sxh, sxw)
            xt = tl.load(x_ptrs, mask=inside, other=0.0)
            wt = weight_tile(p_ptr, s_ptr, z_ptr, table, offs_k, offs_n, k0, mask_k, mask_n, N, KB, group_size,
                             FORMAT, BITS, KMAJOR, HAS_ZEROS, PER_ROW, STAGED, BLOCK_K, BLOCK_N)
            if UPCAST:
                xt = xt.to(tl.float32)
            else:
                wt = wt.to(xt.dtype)
            acc = tl.dot(xt, wt, acc, input_precision=PRECISION)
        acc = finish(acc, b_ptr, a_ptr, offs_n, mask_n, slope, HAS_BIAS, HAS_SCALE, ACT)
        store_nchw(out_ptr, acc, b, oh, ow, offs_n, mask_m, mask_n, sob, soc, soh, sow)

    @triton.autotune(configs=tk._configs(interpret), key=["M", "N", "K", "BITS", "G", "FORMAT", "KHW"])
    @triton.jit
    def conv_transpose2d_kernel(
        x_ptr, p_ptr, s_ptr, z_ptr, b_ptr, a_ptr, out_ptr,
        M, N, K, KB, G, group_size, slope,
        H, W, HO, WO, HQ, WQ, KH, KW, SH, SW, PH, PW, DH, DW,
        sxb, sxc, sxh, sxw, sob, soc, soh, sow,
        FORMAT: tl.constexpr, BITS: tl.constexpr, KMAJOR: tl.constexpr, HAS_ZEROS: tl.constexpr,
        PER_ROW: tl.constexpr, STAGED: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr,
        ACT: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        # M = B*HQ*WQ pixels of one stride phase; N = Cout; K = Cin; the weight has KH*KW*N rows, tap-major.
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        ph, pw, b, i, j, oh, ow, mask_m = phase_pixels(offs_m, M, tl.program_id(2), HO, WO, HQ, WQ, SH, SW)
        rows_n = N * KH * KW
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for r in range(0, KH):
            num_h = ph + PH - r * DH  # oh + PH - r*DH = (i*SH) + num_h: a tap of this phase iff SH divides num_h
            if num_h % SH == 0:  # zero remainder reads the same under C and Python division
                ih = i + num_h // SH
                inside_h = (ih >= 0) & (ih < H) & mask_m
                for s in range(0, KW):
                    num_w = pw + PW - s * DW
                    if num_w % SW == 0:
                        iw = j + num_w // SW
                        inside = inside_h & (iw >= 0) & (iw < W)
                        rows = (r * KW + s) * N + offs_n
                        if FORMAT == 1 and STAGED:
                            table = lut_table(s_ptr, rows, mask_n, BITS, PER_ROW, BLOCK_N)
                        else:
                            table = s_ptr  # unused
                        x_pix = x_ptr + b * sxb + ih * sxh + iw * sxw
                        for k0 in range(0, K, BLOCK_K):
                            offs_k = k0 + tl.arange(0, BLOCK_K)
                            mask_k = offs_k < K
                            xt = tl.load(x_pix[:, None] + offs_k[None, :] * sxc,
                                         mask=inside[:, None] & mask_k[None, :], other=0.0)
                            wt = weight_tile(p_ptr, s_ptr, z_ptr, table, offs_k, rows, k0, mask_k, mask_n, rows_n,
                                             KB, group_size, FORMAT, BITS, KMAJOR, HAS_ZEROS, PER_ROW, STAGED,
                                             BLOCK_K, BLOCK_N)
                            if UPCAST:
                                xt = xt.to(tl.float32)
                            else:
                                wt = wt.to(xt.dtype)
                            acc = tl.dot(xt, wt, acc, input_precision=PRECISION)
        acc = finish(acc, b_ptr, a_ptr, offs_n, mask_n, slope, HAS_BIAS, HAS_SCALE, ACT)
        store_nchw(out_ptr, acc, b, oh, ow, offs_n, mask_m, mask_n, sob, soc, soh, sow)

    # W8A8 on static activations: x holds the int8 codes (q - 128) of the whole input and x_offset = 128 - zero
    # point, so a padded or missing input pixel (the float 0.0, code zero point) is the int8 value -x_offset; the
    # int32 accumulator of each scale group is rescaled once, in the reference's order.
    @triton.autotune(configs=tk._configs(interpret, int8=True), key=["M", "N", "K", "G"])
    @triton.jit
    def w8a8_conv2d_kernel(
        x_ptr, p_ptr, s_ptr, ws_ptr, b_ptr, a_ptr, out_ptr,
        M, N, K, G, group_size, x_scale, x_offset, slope,
        H, W, HO, WO, KW, KHW, SH, SW, PH, PW, DH, DW,
        sxb, sxc, sxh, sxw, sob, soc, soh, sow,
        HAS_OFFSET: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, ACT: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < N
        b, oh, ow, ih0, iw0 = conv2d_pixels(offs_m, HO, WO, SH, SW, PH, PW)
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for g in range(0, G):
            k_start = g * group_size
            k_end = tl.minimum(k_start + group_size, K)
            acc_i = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.int32)
            for k0 in range(k_start, k_end, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                mask_k = offs_k < k_end
                x_ptrs, inside = conv2d_x_tile(x_ptr, b, ih0, iw0, mask_m, offs_k, mask_k, KW, KHW, DH, DW, H, W,
                                               sxb, sxc, sxh, sxw)
                xt = tl.where(inside, tl.load(x_ptrs, mask=inside, other=0).to(tl.int32), -x_offset).to(tl.int8)
                acc_i = tl.dot(xt, int8_tile(p_ptr, offs_k, offs_n, mask_k, mask_n, N), acc_i, out_dtype=tl.int32)
            if HAS_OFFSET:
                acc_i += x_offset * tl.load(ws_ptr + g * N + offs_n, mask=mask_n, other=0)[None, :]
            w_scale = tl.load(s_ptr + g * N + offs_n, mask=mask_n, other=0.0)
            acc = acc + (acc_i.to(tl.float32) * x_scale) * w_scale[None, :]
        acc = finish(acc, b_ptr, a_ptr, offs_n, mask_n, slope, HAS_BIAS, HAS_SCALE, ACT)
        store_nchw(out_ptr, acc, b, oh, ow, offs_n, mask_m, mask_n, sob, soc, soh, sow)

    @triton.autotune(configs=tk._configs(interpret, int8=True), key=["M", "N", "K", "G", "KH", "KW"])
    @triton.jit
    def w8a8_conv_transpose2d_kernel(
        x_ptr, p_ptr, s_ptr, ws_ptr, b_ptr, a_ptr, out_ptr,
        M, N, K, G, group_size, x_scale, x_offset, slope,
        H, W, HO, WO, HQ, WQ, KH, KW, SH, SW, PH, PW, DH, DW,
        sxb, sxc, sxh, sxw, sob, soc, soh, sow,
        HAS_OFFSET: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, ACT: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        ph, pw, b, i, j, oh, ow, mask_m = phase_pixels(offs_m, M, tl.program_id(2), HO, WO, HQ, WQ, SH, SW)
        rows_n = N * KH * KW
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.float32)
        for r in range(0, KH):
            num_h = ph + PH - r * DH
            if num_h % SH == 0:
                ih = i + num_h // SH
                inside_h = (ih >= 0) & (ih < H) & mask_m
                for s in range(0, KW):
                    num_w = pw + PW - s * DW
                    if num_w % SW == 0:
                        iw = j + num_w // SW
                        inside = inside_h & (iw >= 0) & (iw < W)
                        rows = (r * KW + s) * N + offs_n
                        x_pix = x_ptr + b * sxb + ih * sxh + iw * sxw
                        for g in range(0, G):
                            k_start = g * group_size
                            k_end = tl.minimum(k_start + group_size, K)
                            acc_i = tl.full((BLOCK_M, BLOCK_N), 0, dtype=tl.int32)
                            for k0 in range(k_start, k_end, BLOCK_K):
                                offs_k = k0 + tl.arange(0, BLOCK_K)
                                mask_k = offs_k < k_end
                                valid = inside[:, None] & mask_k[None, :]
                                xt = tl.load(x_pix[:, None] + offs_k[None, :] * sxc, mask=valid, other=0)
                                xt = tl.where(valid, xt.to(tl.int32), -x_offset).to(tl.int8)
                                acc_i = tl.dot(xt, int8_tile(p_ptr, offs_k, rows, mask_k, mask_n, rows_n), acc_i,
                                               out_dtype=tl.int32)
                            if HAS_OFFSET:
                                acc_i += x_offset * tl.load(ws_ptr + g * rows_n + rows, mask=mask_n, other=0)[None, :]
                            w_scale = tl.load(s_ptr + g * rows_n + rows, mask=mask_n, other=0.0)
                            acc = acc + (acc_i.to(tl.float32) * x_scale) * w_scale[None, :]
        acc = finish(acc, b_ptr, a_ptr, offs_n, mask_n, slope, HAS_BIAS, HAS_SCALE, ACT)
        store_nchw(out_ptr, acc, b, oh, ow, offs_n, mask_m, mask_n, sob, soc, soh, sow)

    return SimpleNamespace(conv2d=conv2d_kernel, conv_transpose2d=conv_transpose2d_kernel,
                           w8a8_conv2d=w8a8_conv2d_kernel, w8a8_conv_transpose2d=w8a8_conv_transpose2d_kernel)


def _format_args(w: QuantizedWeight | CodebookWeight) -> tuple[tuple, dict]:
    """The weight's pointer arguments ``(packed, scales-or-codebook, zeros)`` and its format constexprs."""
    kmajor = tk._kmajor(w.bits)
    packed = w.packed_kmajor() if kmajor else w.packed
    if isinstance(w, CodebookWeight):
        assert w.codebook.is_contiguous() and w.codebook.shape[-1] == 2**w.bits
        return (packed, w.codebook, w.codebook), dict(
            FORMAT=_LUT, BITS=w.bits, KMAJOR=kmajor, HAS_ZEROS=False, PER_ROW=w.per_row,
            STAGED=2**w.bits <= tk.STAGED_CODEBOOK)
    scales = w.scales_kmajor()
    zeros = scales if w.zeros is None else w.zeros_kmajor()
    return (packed, scales, zeros), dict(FORMAT=_WEIGHT_ONLY, BITS=w.bits, KMAJOR=kmajor,
                                         HAS_ZEROS=w.zeros is not None, PER_ROW=False, STAGED=False)


def _groups_of(w: QuantizedWeight | CodebookWeight) -> tuple[int, int]:
    """``(G, group_size)`` of a weight (a codebook weight has one group)."""
    if isinstance(w, CodebookWeight):
        return 1, w.shape[1]
    return w.num_groups, w.group_size


def _check_views(x: Tensor, out: Tensor, w: QuantizedWeight | CodebookWeight, bias: Tensor | None) -> None:
    # The interpreter checks no bounds: what the kernel addresses must be what the wrapper was given.
    assert w.bits in tk.KERNEL_BITS, f"the conv kernels read bits {tk.KERNEL_BITS}, got {w.bits}"
    assert x.dim() == 4 and out.dim() == 4 and x.shape[0] == out.shape[0], (tuple(x.shape), tuple(out.shape))
    assert x.device == w.device == out.device, f"x on {x.device}, weight on {w.device}, out on {out.device}"
    assert bias is None or (bias.is_contiguous() and tuple(bias.shape) == (out.shape[1],))


def conv2d_implicit_triton(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    out: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    kernel_size: tuple[int, int],
    upcast: bool | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """Write ``F.conv2d(x, W, bias)`` into ``out`` (``(B, Cout, Hout, Wout)``, any strides) for one group:
    ``x`` is ``(B, Cin, H, W)`` (any strides) and ``w`` the ``(Cout, Cin*kh*kw)`` matrix."""
    _check_views(x, out, w, bias)
    (n, k), (kh, kw) = w.shape, kernel_size
    bsz, cin, h, wd = x.shape
    assert k == cin * kh * kw and out.shape[1] == n, f"w {w.shape} vs x {tuple(x.shape)}, out {tuple(out.shape)}"
    ho, wo = out.shape[2:]
    m = bsz * ho * wo
    upcast, precision = tk._float_options(x, upcast)
    pointers, formats = _format_args(w)
    groups, group_size = _groups_of(w)
    (a_arg, slope), flags = tk.epilogue_args(epilogue, n, pointers[1])
    _kernels(tk.interpret_mode()).conv2d[tk._grid(m, n)](
        x, *pointers, pointers[1] if bias is None else bias, a_arg, out,
        m, n, k, w.packed.shape[1], groups, group_size, slope,
        h, wd, ho, wo, kw, kh * kw, *stride, *padding, *dilation,
        *x.stride(), *out.stride(),
        HAS_BIAS=bias is not None, UPCAST=upcast, PRECISION=precision, **formats, **flags,
    )
    return out


def conv_transpose2d_implicit_triton(
    x: Tensor,
    w_tap_major: QuantizedWeight | CodebookWeight,
    out: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    kernel_size: tuple[int, int],
    upcast: bool | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """Write ``F.conv_transpose2d(x, W, bias)`` into ``out`` (``(B, Cout, Hout, Wout)``, any strides; its size
    carries the output padding) for one group: ``x`` is ``(B, Cin, H, W)`` and ``w_tap_major`` the
    ``(kh*kw*Cout, Cin)`` matrix with rows ordered ``(r, s, cout)`` (see :func:`tap_major`)."""
    _check_views(x, out, w_tap_major, bias)
    (rows, k), (kh, kw) = w_tap_major.shape, kernel_size
    bsz, cin, h, wd = x.shape
    n = out.shape[1]
    assert k == cin and rows == kh * kw * n, f"w {w_tap_major.shape} vs x {tuple(x.shape)}, out {tuple(out.shape)}"
    ho, wo = out.shape[2:]
    hq, wq = -(-ho // stride[0]), -(-wo // stride[1])
    m = bsz * hq * wq
    upcast, precision = tk._float_options(x, upcast)
    pointers, formats = _format_args(w_tap_major)
    groups, group_size = _groups_of(w_tap_major)
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]), stride[0] * stride[1])  # noqa: E731
    (a_arg, slope), flags = tk.epilogue_args(epilogue, n, pointers[1])
    _kernels(tk.interpret_mode()).conv_transpose2d[grid](
        x, *pointers, pointers[1] if bias is None else bias, a_arg, out,
        m, n, k, w_tap_major.packed.shape[1], groups, group_size, slope,
        h, wd, ho, wo, hq, wq, kh, kw, *stride, *padding, *dilation,
        *x.stride(), *out.stride(),
        HAS_BIAS=bias is not None, UPCAST=upcast, PRECISION=precision, **formats, **flags,
    )
    return out


def _w8a8_args(x_codes: Tensor, w: QuantizedWeight, x_offset: int) -> tuple:
    assert isinstance(w, QuantizedWeight) and w.bits == 8 and w.zeros is None, "W8A8 needs an 8-bit symmetric weight"
    assert x_codes.dtype == torch.int8, f"x_codes has dtype {x_codes.dtype}"
    assert isinstance(x_offset, int) and abs(x_offset) <= 255, f"x_offset must be an int in [-255, 255], got {x_offset}"
    scales = w.scales_kmajor()
    return w.packed_kmajor(), scales, w.int8_group_sums() if x_offset else scales


def w8a8_conv2d_implicit_triton(
    x_codes: Tensor,
    x_scale: float,
    x_offset: int,
    w: QuantizedWeight,
    out: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    kernel_size: tuple[int, int],
    epilogue: Epilogue | None = None,
) -> Tensor:
    """Write the W8A8 ``conv2d`` of static int8 activation codes into ``out`` for one group: ``x_codes`` holds
    ``q - 128`` of the input's uint8 grid ``(B, Cin, H, W)`` (any strides), ``x_offset = 128 - zero_point``
    (see :func:`~gansurvey.kernels.formats.quantize_activations_static`); ``w`` is 8-bit symmetric."""
    _check_views(x_codes, out, w, bias)
    (n, k), (kh, kw) = w.shape, kernel_size
    bsz, cin, h, wd = x_codes.shape
    assert k == cin * kh * kw and out.shape[1] == n, f"w {w.shape} vs x {tuple(x_codes.shape)}, out {tuple(out.shape)}"
    ho, wo = out.shape[2:]
    m = bsz * ho * wo
    packed, scales, sums = _w8a8_args(x_codes, w, x_offset)
    (a_arg, slope), flags = tk.epilogue_args(epilogue, n, scales)
    _kernels(tk.interpret_mode()).w8a8_conv2d[tk._grid(m, n)](
        x_codes, packed, scales, sums, scales if bias is None else bias, a_arg, out,
        m, n, k, w.num_groups, w.group_size, float(x_scale), x_offset, slope,
        h, wd, ho, wo, kw, kh * kw, *stride, *padding, *dilation,
        *x_codes.stride(), *out.stride(),
        HAS_OFFSET=x_offset != 0, HAS_BIAS=bias is not None, **flags,
        enable_fp_fusion=False,  # the rescale rounds as the reference does
    )
    return out


def w8a8_conv_transpose2d_implicit_triton(
    x_codes: Tensor,
    x_scale: float,
    x_offset: int,
    w_tap_major: QuantizedWeight,
    out: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    kernel_size: tuple[int, int],
    epilogue: Epilogue | None = None,
) -> Tensor:
    """Write the W8A8 ``conv_transpose2d`` of static int8 activation codes into ``out`` for one group (see
    :func:`w8a8_conv2d_implicit_triton` for the codes, :func:`conv_transpose2d_implicit_triton` for the rest)."""
    _check_views(x_codes, out, w_tap_major, bias)
    (rows, k), (kh, kw) = w_tap_major.shape, kernel_size
    bsz, cin, h, wd = x_codes.shape
    n = out.shape[1]
    assert k == cin and rows == kh * kw * n, (w_tap_major.shape, tuple(x_codes.shape), tuple(out.shape))
    ho, wo = out.shape[2:]
    hq, wq = -(-ho // stride[0]), -(-wo // stride[1])
    m = bsz * hq * wq
    packed, scales, sums = _w8a8_args(x_codes, w_tap_major, x_offset)
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]), stride[0] * stride[1])  # noqa: E731
    (a_arg, slope), flags = tk.epilogue_args(epilogue, n, scales)
    _kernels(tk.interpret_mode()).w8a8_conv_transpose2d[grid](
        x_codes, packed, scales, sums, scales if bias is None else bias, a_arg, out,
        m, n, k, w_tap_major.num_groups, w_tap_major.group_size, float(x_scale), x_offset, slope,
        h, wd, ho, wo, hq, wq, kh, kw, *stride, *padding, *dilation,
        *x_codes.stride(), *out.stride(),
        HAS_OFFSET=x_offset != 0, HAS_BIAS=bias is not None, **flags, enable_fp_fusion=False,
    )
    return out


def tap_major(w: QuantizedWeight | CodebookWeight, taps: int) -> QuantizedWeight | CodebookWeight:
    """A ``(cout*taps, K)`` weight matrix with rows ``(cout, tap)`` reordered to ``(tap, cout)``."""
    n = w.shape[0] // taps
    order = torch.arange(w.shape[0], device=w.device).reshape(n, taps).T.reshape(-1)
    return w.take_rows(order)
