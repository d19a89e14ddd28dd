"""Plain-torch references for every kernel: dequantize (or accumulate integers exactly), then ``torch.matmul``.

Why: they define what each Triton kernel must compute, they are the path taken on CPU, and the tests compare
the kernels against them. They favour clarity over speed (they materialise the full float weight).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gansurvey.checks import GanSurveyError

from .formats import CodebookWeight, QuantizedWeight


def weight_only_matmul_ref(x: Tensor, w: QuantizedWeight) -> Tensor:
    """``x @ w.dequantize().T`` computed in float32, returned in ``x.dtype``; ``x`` is ``(M, K)``.

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> weight_only_matmul_ref(torch.ones(2, 3), quantize_weight(torch.eye(3), 8)).shape
    torch.Size([2, 3])
    """
    return (x.to(torch.float32) @ w.dequantize().T).to(x.dtype)


def check_w8a8_weight(w: QuantizedWeight) -> None:
    """Raise unless ``w`` is what the W8A8 path accepts: 8 bits, symmetric."""
    if not isinstance(w, QuantizedWeight):
        raise GanSurveyError(f"W8A8 needs a QuantizedWeight, got {type(w).__name__}")
    if w.bits != 8 or not w.symmetric:
        raise GanSurveyError(
            f"W8A8 needs an 8-bit symmetric QuantizedWeight (bits=8, zeros=None), got bits={w.bits}, "
            f"zeros={'None' if w.zeros is None else 'given'}"
        )


def w8a8_int_codes(w: QuantizedWeight) -> Tensor:
    """The signed int8 weight values ``code - 128`` of an 8-bit symmetric weight, shape ``(N, K)``."""
    check_w8a8_weight(w)
    return (w.packed.to(torch.int16) - 128).to(torch.int8)


def w8a8_matmul_ref(x_int8: Tensor, x_scale: Tensor, w: QuantizedWeight, x_offset: int = 0) -> Tensor:
    """Int8 x int8 GEMM with exact integer accumulation, then rescaling; returns float32 ``(M, N)``.

    For each scale group ``g`` (one group when per-channel), the int32 accumulator
    ``acc_g = (x_int8 + x_offset)[:, g] @ (code - 128)[:, g].T`` is exact (``x_offset``: see
    :func:`~gansurvey.kernels.formats.quantize_activations_static`); the output is
    ``out = sum_g acc_g.float() * x_scale[:, None] * scale[None, :, g]``, summed in increasing ``g``
    (the Triton kernel rounds in exactly this order, so the two agree bit for bit).

    >>> from gansurvey.kernels.formats import quantize_activations, quantize_weight
    >>> q, s = quantize_activations(torch.ones(1, 4))
    >>> w8a8_matmul_ref(q, s, quantize_weight(torch.ones(2, 4), 8)).tolist()
    [[4.0, 4.0]]
    """
    if x_int8.dtype != torch.int8 or x_int8.dim() != 2:
        raise GanSurveyError(f"x_int8 must be an (M, K) int8 tensor, got {x_int8.dtype} {tuple(x_int8.shape)}")
    if x_scale.dtype != torch.float32 or tuple(x_scale.shape) != (x_int8.shape[0],):
        raise GanSurveyError(f"x_scale must be float32 of shape (M,) = ({x_int8.shape[0]},), got {x_scale.dtype} "
                             f"{tuple(x_scale.shape)}")
    # float64 holds every partial sum exactly (|products| <= 2**14, so any K < 2**39) and, unlike int64,
    # has a matmul on CUDA too.
    wq = w8a8_int_codes(w).to(torch.float64)
    xq = x_int8.to(torch.float64) + x_offset
    n, k = w.shape
    out = torch.zeros(x_int8.shape[0], n, dtype=torch.float32, device=x_int8.device)
    for g in range(w.num_groups):
        lo, hi = g * w.group_size, min(k, (g + 1) * w.group_size)
        acc = (xq[:, lo:hi] @ wq[:, lo:hi].T).to(torch.int32)
        out = out + acc.to(torch.float32) * x_scale[:, None] * w.scales[None, :, g]
    return out


def lut_matmul_ref(x: Tensor, w: CodebookWeight) -> Tensor:
    """``x @ w.dequantize().T`` (codebook lookup, then matmul) in float32, returned in ``x.dtype``.

    >>> from gansurvey.kernels.formats import pack_codes
    >>> w = CodebookWeight(pack_codes(torch.tensor([[0, 1]]), 1), 1, (1, 2), torch.tensor([1.0, 2.0]))
    >>> lut_matmul_ref(torch.ones(1, 2), w).tolist()
    [[3.0]]
    """
    return (x.to(torch.float32) @ w.dequantize().T).to(x.dtype)


def conv2d_ref(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    kernel_size: tuple[int, int],
) -> Tensor:
    """``F.conv2d`` on the dequantized weight; ``w`` is the ``(Cout, Cin/groups*kh*kw)`` matrix."""
    weight = w.dequantize().reshape(w.shape[0], -1, *kernel_size)
    out = F.conv2d(x.to(torch.float32), weight, None if bias is None else bias.to(torch.float32),
                   stride, padding, dilation, groups)
    return out.to(x.dtype)


def conv_transpose2d_ref(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    output_padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    kernel_size: tuple[int, int],
    out_channels: int,
) -> Tensor:
    """``F.conv_transpose2d`` on the dequantized weight; ``w`` is the ``(Cout*kh*kw, Cin/groups)`` GEMM matrix."""
    kh, kw = kernel_size
    cin_g = w.shape[1]
    cout_g = out_channels // groups
    mat = w.dequantize().reshape(groups, cout_g * kh * kw, cin_g)
    weight = mat.transpose(1, 2).reshape(groups * cin_g, cout_g, kh, kw)
    out = F.conv_transpose2d(x.to(torch.float32), weight, None if bias is None else bias.to(torch.float32),
                             stride, padding, output_padding, groups, dilation)
    return out.to(x.dtype)
