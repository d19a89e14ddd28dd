"""Convolutions on compressed weights, built on the GEMM ops of :mod:`gansurvey.kernels.dispatch`.

Why: GAN generators are mostly convolutions, and the compressed formats are GEMM formats. On the Triton backend
both ops run as implicit GEMMs (:mod:`gansurvey.kernels.triton_conv`): the input tile of each output tile is
addressed in the NCHW input directly, so no column tensor is written; W8A8 with a static activation grid (what
calibrated layers use) too, on the input's int8 codes. The GEMM form serves the reference backend's int8 path
and dynamic per-row activations (whose rows are im2col's): ``conv2d`` as im2col (``F.unfold``) -> GEMM ->
reshape, and ``conv_transpose2d`` as GEMM on the input pixels -> col2im (``F.fold``). A transposed convolution
is *exactly* that: each input pixel ``x[b, :, i, j]`` times the weight gives a ``(Cout, kh, kw)`` patch that is
added into the output at ``(i*stride - padding, j*stride - padding)``, which is what ``F.fold`` does (it also
crops the padding). A direct convolution over the zero-upsampled input would spend ``stride**2 - 1`` of every
``stride**2`` multiplications on inserted zeros (3/4 of them at stride 2); the GEMM + col2im form does none, nor
does the implicit kernel, which splits the output by stride phase.
On the reference backend both ops dequantize the weight and call ``F.conv2d`` / ``F.conv_transpose2d``
(the plain torch reference); :func:`conv2d_gemm` and :func:`conv_transpose2d_gemm` run the GEMM form on any
backend (the tests compare the two).

Weight matrix layouts (build them with the helpers, then quantize the matrix):

- ``conv2d``: ``(Cout, Cin/groups*kh*kw)`` = ``weight.reshape(Cout, -1)`` for ``nn.Conv2d.weight`` of shape
  ``(Cout, Cin/groups, kh, kw)`` (:func:`conv2d_weight_matrix`). Rows of group ``g`` are
  ``g*Cout/groups .. (g+1)*Cout/groups``.
- ``conv_transpose2d``: ``nn.ConvTranspose2d.weight`` has shape ``(Cin, Cout/groups, kh, kw)``; group ``g``'s
  GEMM matrix is ``weight[g*Cin/groups:(g+1)*Cin/groups].reshape(Cin/groups, -1).T``, of shape
  ``(Cout/groups*kh*kw, Cin/groups)``, and the groups are stacked along rows into ``(Cout*kh*kw, Cin/groups)``
  (:func:`conv_transpose2d_weight_matrix`); for ``groups=1`` that is ``weight.reshape(Cin, -1).T``.
  Rows are ordered ``(cout, kh, kw)``, so quantization groups along ``K`` run over input channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gansurvey.checks import GanSurveyError, check_number

from . import reference as ref
from .dispatch import backend, linear
from .epilogue import Epilogue, apply_epilogue, check_epilogue
from .formats import CodebookWeight, QuantizedWeight, quantize_activations_static
from .triton_conv import (
    conv2d_implicit_triton,
    conv_transpose2d_implicit_triton,
    tap_major,
    w8a8_conv2d_implicit_triton,
    w8a8_conv_transpose2d_implicit_triton,
)

Pair = int | tuple[int, int]


def _pair(what: str, value: Pair, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2:
        raise GanSurveyError(f"{what} must be an int or a pair of ints, got {value!r}")
    for v in pair:
        check_number(what, v, minimum=minimum, integer=True)
    return int(pair[0]), int(pair[1])


def conv2d_weight_matrix(weight: Tensor) -> Tensor:
    """The ``(Cout, Cin/groups*kh*kw)`` GEMM matrix of an ``nn.Conv2d.weight`` ``(Cout, Cin/groups, kh, kw)``.

    >>> conv2d_weight_matrix(torch.zeros(8, 3, 3, 3)).shape
    torch.Size([8, 27])
    """
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise GanSurveyError(f"weight must be a 4-D (Cout, Cin/groups, kh, kw) tensor, got {got}")
    return weight.reshape(weight.shape[0], -1).contiguous()


def conv_transpose2d_weight_matrix(weight: Tensor, groups: int = 1) -> Tensor:
    """The ``(Cout*kh*kw, Cin/groups)`` GEMM matrix of an ``nn.ConvTranspose2d.weight`` ``(Cin, Cout/groups, kh, kw)``.

    >>> conv_transpose2d_weight_matrix(torch.zeros(100, 256, 4, 4)).shape
    torch.Size([4096, 100])
    """
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise GanSurveyError(f"weight must be a 4-D (Cin, Cout/groups, kh, kw) tensor, got {got}")
    check_number("groups", groups, minimum=1, integer=True)
    cin = weight.shape[0]
    if cin % groups:
        raise GanSurveyError(f"groups={groups} must divide the {cin} input channels of weight")
    cin_g = cin // groups
    per_group = weight.reshape(groups, cin_g, -1).transpose(1, 2)  # (groups, Cout/groups*kh*kw, Cin/groups)
    return per_group.reshape(-1, cin_g).contiguous()


def _check_conv_input(x: Tensor, channels: int, what: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise GanSurveyError(f"x must be a 4-D (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)!r}")
    if x.shape[1] != channels:
        raise GanSurveyError(f"x has {x.shape[1]} channels but {what} expects {channels}")


def _check_weight(w: object) -> None:
    if not isinstance(w, QuantizedWeight | CodebookWeight):
        raise GanSurveyError(f"w must be a QuantizedWeight or a CodebookWeight GEMM matrix, got {type(w).__name__}")


def _conv2d_args(x, w, stride, padding, dilation, groups, kernel_size):
    _check_weight(w)
    check_number("groups", groups, minimum=1, integer=True)
    ks = _pair("kernel_size", kernel_size, 1)
    args = (_pair("stride", stride, 1), _pair("padding", padding, 0), _pair("dilation", dilation, 1))
    cout, k = w.shape
    if cout % groups:
        raise GanSurveyError(f"groups={groups} must divide the {cout} output channels (rows of w)")
    if k % (ks[0] * ks[1]):
        raise GanSurveyError(f"w has K={k} columns, not a multiple of kh*kw={ks[0] * ks[1]} (kernel_size={ks})")
    _check_conv_input(x, groups * k // (ks[0] * ks[1]), f"w (K={k}, kernel_size={ks}, groups={groups})")
    return ks, args


def conv2d_gemm(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    bias: Tensor | None = None,
    stride: Pair = 1,
    padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
    kernel_size: Pair = 3,
    activation_bits: int | None = None,
    act_qparams: tuple[float, float] | None = None,
) -> Tensor:
    """:func:`conv2d` computed as im2col -> :func:`linear` -> reshape, on whichever backend ``linear`` takes."""
    ks, (stride, padding, dilation) = _conv2d_args(x, w, stride, padding, dilation, groups, kernel_size)
    b = x.shape[0]
    cout = w.shape[0]
    hout, wout = _conv2d_out_size(x, ks, stride, padding, dilation)
    cols = F.unfold(x, ks, dilation=dilation, padding=padding, stride=stride)  # (B, Cin*kh*kw, L), C outermost
    k, cout_g = w.shape[1], cout // groups
    outs = []
    for g in range(groups):
        wg = w if groups == 1 else w.rows(g * cout_g, (g + 1) * cout_g)
        xg = cols[:, g * k:(g + 1) * k].transpose(1, 2)  # (B, L, K)
        bg = None if bias is None else bias[g * cout_g:(g + 1) * cout_g]  # fused in the GEMM's epilogue
        outs.append(linear(xg, wg, bg, activation_bits, act_qparams))  # (B, L, Cout/groups)
    return torch.cat(outs, dim=2).transpose(1, 2).reshape(b, cout, hout, wout)


def _conv2d_out_size(x: Tensor, ks, stride, padding, dilation) -> tuple[int, int]:
    return tuple((x.shape[2 + i] + 2 * padding[i] - dilation[i] * (ks[i] - 1) - 1) // stride[i] + 1 for i in range(2))


def _conv_transpose2d_out_size(x: Tensor, ks, stride, padding, output_padding, dilation) -> tuple[int, int]:
    return tuple((x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (ks[i] - 1) + output_padding[i] + 1
                 for i in range(2))


def _per_group(w: QuantizedWeight | CodebookWeight, groups: int, taps: int | None = None) -> tuple:
    """``w``'s rows split per group (tap-major when ``taps`` is given), built once per weight and kept on it."""
    def build() -> tuple:
        rows = w.shape[0] // groups
        parts = [w if groups == 1 else w.rows(g * rows, (g + 1) * rows) for g in range(groups)]
        return tuple(parts if taps is None else (tap_major(part, taps) for part in parts))

    return w.kernel_layout(("groups", groups, taps), build)


def _group_epilogue(epilogue: Epilogue | None, g: int, channels: int) -> Epilogue | None:
    """The part of ``epilogue`` that applies to group ``g``'s ``channels`` output channels."""
    if epilogue is None or epilogue.scale is None:
        return epilogue
    return Epilogue(epilogue.scale[g * channels:(g + 1) * channels].contiguous(), epilogue.activation, epilogue.slope)


def _after(out: Tensor, bias: Tensor | None, epilogue: Epilogue | None) -> Tensor:
    """The epilogue in torch, on an NCHW output computed without its bias (the GEMM form and the reference)."""
    return apply_epilogue(out, bias, epilogue, channel_dim=1)


def _implicit_w8a8(x: Tensor, w: object, activation_bits: int | None, act_qparams) -> bool:
    """True when the int8 activations take the implicit Triton kernels: a static grid on the Triton backend."""
    if activation_bits != 8 or act_qparams is None or not isinstance(w, QuantizedWeight) or backend(x) != "triton":
        return False
    ref.check_w8a8_weight(w)
    return True


def _static_codes(x: Tensor, act_qparams: tuple[float, float]) -> tuple[Tensor, float, int]:
    """The input's int8 codes on the static grid (no padding: padded pixels are the kernels' ``-offset``)."""
    values, scale, offset = quantize_activations_static(x.reshape(x.shape[0], -1), *act_qparams)
    return values.reshape(x.shape), float(scale[0]), offset


def conv2d_implicit(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    bias: Tensor | None = None,
    stride: Pair = 1,
    padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
    kernel_size: Pair = 3,
    act_qparams: tuple[float, float] | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """:func:`conv2d` as an implicit GEMM on the Triton backend (no im2col tensor); the output is in ``x.dtype``.
    ``act_qparams``: W8A8 on that static activation grid (an 8-bit symmetric ``w``); ``epilogue``: see
    :func:`conv2d`."""
    ks, (stride, padding, dilation) = _conv2d_args(x, w, stride, padding, dilation, groups, kernel_size)
    cout = w.shape[0]
    out = torch.empty(x.shape[0], cout, *_conv2d_out_size(x, ks, stride, padding, dilation), dtype=x.dtype,
                      device=x.device)
    cin_g, cout_g = x.shape[1] // groups, cout // groups
    if act_qparams is not None:
        codes, scale, offset = _static_codes(x, act_qparams)
    epilogue = check_epilogue(epilogue, cout, x.device)
    for g, wg in enumerate(_per_group(w, groups)):
        bg = None if bias is None else bias[g * cout_g:(g + 1) * cout_g].contiguous()
        geometry = (bg, stride, padding, dilation, ks)
        finish = _group_epilogue(epilogue, g, cout_g)
        if act_qparams is None:
            conv2d_implicit_triton(x[:, g * cin_g:(g + 1) * cin_g], wg, out[:, g * cout_g:(g + 1) * cout_g], *geometry,
                                   epilogue=finish)
        else:
            w8a8_conv2d_implicit_triton(codes[:, g * cin_g:(g + 1) * cin_g], scale, offset, wg,
                                        out[:, g * cout_g:(g + 1) * cout_g], *geometry, epilogue=finish)
    return out


def conv2d(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    bias: Tensor | None = None,
    stride: Pair = 1,
    padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
    kernel_size: Pair = 3,
    activation_bits: int | None = None,
    act_qparams: tuple[float, float] | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """``F.conv2d`` with a compressed ``(Cout, Cin/groups*kh*kw)`` weight matrix (see :func:`conv2d_weight_matrix`).
    ``epilogue``: ``act(conv * scale + bias)`` per output channel instead (a folded batch norm and the activation
    after it), in the kernels' epilogue on the Triton backend and in torch otherwise.

    Triton backend: implicit GEMM (:func:`conv2d_implicit`), W8A8 included when ``act_qparams`` gives a static
    activation grid (see :func:`~gansurvey.kernels.dispatch.w8a8_matmul`); reference backend: dequantize +
    ``F.conv2d``. Other ``activation_bits=8`` calls take the im2col GEMM form :func:`conv2d_gemm`, whose int8
    activations the float reference cannot mimic.

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> w = quantize_weight(conv2d_weight_matrix(torch.randn(8, 3, 3, 3)), bits=8)
    >>> conv2d(torch.randn(1, 3, 16, 16), w, padding=1, kernel_size=3).shape
    torch.Size([1, 8, 16, 16])
    """
    ks, args = _conv2d_args(x, w, stride, padding, dilation, groups, kernel_size)
    if _implicit_w8a8(x, w, activation_bits, act_qparams):
        return conv2d_implicit(x, w, bias, *args, groups, ks, act_qparams, epilogue)
    if backend(x) == "triton" and activation_bits is None:
        return conv2d_implicit(x, w, bias, *args, groups, ks, epilogue=epilogue)
    epilogue = check_epilogue(epilogue, w.shape[0], x.device)
    if epilogue is not None:  # the bias joins the epilogue, after the scale
        return _after(conv2d(x, w, None, *args, groups, ks, activation_bits, act_qparams), bias, epilogue)
    if activation_bits is not None:
        return conv2d_gemm(x, w, bias, *args, groups, ks, activation_bits, act_qparams)
    return ref.conv2d_ref(x, w, bias, *args, groups, ks)


def _conv_transpose2d_args(x, w, stride, padding, output_padding, dilation, groups, kernel_size, out_channels):
    _check_weight(w)
    check_number("groups", groups, minimum=1, integer=True)
    check_number("out_channels", out_channels, minimum=1, integer=True)
    ks = _pair("kernel_size", kernel_size, 1)
    stride, padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
    output_padding, dilation = _pair("output_padding", output_padding, 0), _pair("dilation", dilation, 1)
    for i in range(2):
        if output_padding[i] >= max(stride[i], dilation[i]):
            raise GanSurveyError(
                f"output_padding={output_padding} must be smaller than stride={stride} or dilation={dilation}"
            )
    if out_channels % groups:
        raise GanSurveyError(f"groups={groups} must divide out_channels={out_channels}")
    want = out_channels * ks[0] * ks[1]
    if w.shape[0] != want:
        raise GanSurveyError(
            f"w must have out_channels*kh*kw = {want} rows (out_channels={out_channels}, kernel_size={ks}), "
            f"got {w.shape[0]}"
        )
    _check_conv_input(x, groups * w.shape[1], f"w (K={w.shape[1]} = Cin/groups, groups={groups})")
    return ks, (stride, padding, output_padding, dilation)


def conv_transpose2d_gemm(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    bias: Tensor | None = None,
    stride: Pair = 1,
    padding: Pair = 0,
    output_padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
    kernel_size: Pair = 4,
    out_channels: int = 1,
    activation_bits: int | None = None,
    act_qparams: tuple[float, float] | None = None,
) -> Tensor:
    """:func:`conv_transpose2d` computed as :func:`linear` on the input pixels -> col2im (``F.fold``)."""
    ks, (stride, padding, output_padding, dilation) = _conv_transpose2d_args(
        x, w, stride, padding, output_padding, dilation, groups, kernel_size, out_channels
    )
    b, _, h, wd = x.shape
    hout, wout = _conv_transpose2d_out_size(x, ks, stride, padding, output_padding, dilation)
    cin_g = w.shape[1]
    rows_g = w.shape[0] // groups
    pixels = x.permute(0, 2, 3, 1).reshape(b, h * wd, groups * cin_g)  # (B, L, Cin)
    outs = []
    for g in range(groups):
        wg = w if groups == 1 else w.rows(g * rows_g, (g + 1) * rows_g)
        outs.append(linear(pixels[..., g * cin_g:(g + 1) * cin_g], wg, activation_bits=activation_bits,
                           act_qparams=act_qparams))
    cols = torch.cat(outs, dim=2).transpose(1, 2)  # (B, Cout*kh*kw, L), rows ordered (cout, kh, kw)
    out = F.fold(cols, (hout, wout), ks, dilation=dilation, padding=padding, stride=stride)
    if bias is not None:
        out = out + bias.to(out.dtype).reshape(1, -1, 1, 1)
    return out


def conv_transpose2d_implicit(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    bias: Tensor | None = None,
    stride: Pair = 1,
    padding: Pair = 0,
    output_padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
    kernel_size: Pair = 4,
    out_channels: int = 1,
    act_qparams: tuple[float, float] | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """:func:`conv_transpose2d` as an implicit GEMM per stride phase on the Triton backend (no column tensor, no
    multiplication by inserted zeros); the output is in ``x.dtype``. ``act_qparams``: W8A8 on that static
    activation grid (an 8-bit symmetric ``w``); ``epilogue``: see :func:`conv2d`."""
    ks, (stride, padding, output_padding, dilation) = _conv_transpose2d_args(
        x, w, stride, padding, output_padding, dilation, groups, kernel_size, out_channels
    )
    size = _conv_transpose2d_out_size(x, ks, stride, padding, output_padding, dilation)
    out = torch.empty(x.shape[0], out_channels, *size, dtype=x.dtype, device=x.device)
    cin_g, cout_g = w.shape[1], out_channels // groups
    if act_qparams is not None:
        codes, scale, offset = _static_codes(x, act_qparams)
    epilogue = check_epilogue(epilogue, out_channels, x.device)
    for g, wg in enumerate(_per_group(w, groups, taps=ks[0] * ks[1])):
        bg = None if bias is None else bias[g * cout_g:(g + 1) * cout_g].contiguous()
        geometry = (bg, stride, padding, dilation, ks)
        finish = _group_epilogue(epilogue, g, cout_g)
        if act_qparams is None:
            conv_transpose2d_implicit_triton(x[:, g * cin_g:(g + 1) * cin_g], wg,
                                             out[:, g * cout_g:(g + 1) * cout_g], *geometry, epilogue=finish)
        else:
            w8a8_conv_transpose2d_implicit_triton(codes[:, g * cin_g:(g + 1) * cin_g], scale, offset, wg,
                                                  out[:, g * cout_g:(g + 1) * cout_g], *geometry, epilogue=finish)
    return out


def conv_transpose2d(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight,
    bias: Tensor | None = None,
    stride: Pair = 1,
    padding: Pair = 0,
    output_padding: Pair = 0,
    dilation: Pair = 1,
    groups: int = 1,
    kernel_size: Pair = 4,
    out_channels: int = 1,
    activation_bits: int | None = None,
    act_qparams: tuple[float, float] | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """``F.conv_transpose2d`` with a compressed ``(Cout*kh*kw, Cin/groups)`` weight matrix
    (see :func:`conv_transpose2d_weight_matrix`); ``epilogue``: see :func:`conv2d`.

    Triton backend: implicit GEMM per stride phase (:func:`conv_transpose2d_implicit`), W8A8 included with a
    static ``act_qparams`` grid; reference backend: dequantize + ``F.conv_transpose2d``. Other
    ``activation_bits=8`` calls take the GEMM + col2im form, :func:`conv_transpose2d_gemm`.

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> w = quantize_weight(conv_transpose2d_weight_matrix(torch.randn(16, 8, 4, 4)), bits=4)
    >>> conv_transpose2d(torch.randn(1, 16, 4, 4), w, stride=2, padding=1, kernel_size=4, out_channels=8).shape
    torch.Size([1, 8, 8, 8])
    """
    ks, args = _conv_transpose2d_args(x, w, stride, padding, output_padding, dilation, groups, kernel_size,
                                      out_channels)
    if _implicit_w8a8(x, w, activation_bits, act_qparams):
        return conv_transpose2d_implicit(x, w, bias, *args, groups, ks, out_channels, act_qparams, epilogue)
    if backend(x) == "triton" and activation_bits is None:
        return conv_transpose2d_implicit(x, w, bias, *args, groups, ks, out_channels, epilogue=epilogue)
    epilogue = check_epilogue(epilogue, out_channels, x.device)
    if epilogue is not None:  # the bias joins the epilogue, after the scale
        return _after(conv_transpose2d(x, w, None, *args, groups, ks, out_channels, activation_bits, act_qparams),
                      bias, epilogue)
    if activation_bits is not None:
        return conv_transpose2d_gemm(x, w, bias, *args, groups, ks, out_channels, activation_bits, act_qparams)
    stride, padding, output_padding, dilation = args
    return ref.conv_transpose2d_ref(x, w, bias, stride, padding, output_padding, dilation, groups, ks, out_channels)
