"""Public GEMM ops on compressed weights, dispatched to the Triton kernels or the plain-torch references.

Why a dispatcher: callers (``gansurvey.compress``) write one call, ``linear(x, w)``, and get the fused kernel
on a GPU and the reference on CPU. The environment variable ``GANSURVEY_KERNELS`` overrides the choice:
``auto`` (default: Triton for CUDA tensors when Triton imports, else the reference), ``reference``, or
``triton`` (on CPU tensors this needs ``TRITON_INTERPRET=1``, the Triton interpreter).

The kernels decode every code width of the formats (1 to 8 bits), add the bias (after an optional per-channel
scale, before an optional activation: :class:`~gansurvey.kernels.epilogue.Epilogue`) and cast to ``x.dtype`` in
their epilogue. :func:`engine` names what an op runs on (``triton-weight-only``, ``triton-gemv-splitk``,
``triton-w8a8``, ``triton-lut`` or ``reference``), for records that must say which engine executed a format.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from gansurvey.checks import GanSurveyError, check_choice

from . import reference as ref
from .epilogue import Epilogue, apply_epilogue, check_epilogue
from .formats import CodebookWeight, QuantizedWeight, quantize_activations, quantize_activations_static
from .triton_kernels import (
    GEMV_MAX_M,
    HAS_TRITON,
    KERNEL_BITS,
    interpret_mode,
    lut_matmul_triton,
    w8a8_matmul_triton,
    weight_only_matmul_triton,
)

ENV_VAR = "GANSURVEY_KERNELS"
BACKEND_CHOICES = ("auto", "reference", "triton")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def backend(x: Tensor | torch.device | str) -> str:
    """The backend an op on ``x`` (a tensor, or the device it would be on) takes: ``"triton"`` or
    ``"reference"`` (see the module docstring).

    >>> backend(torch.zeros(1))  # a CPU tensor, GANSURVEY_KERNELS unset
    'reference'
    """
    if isinstance(x, str | torch.device):
        x = torch.empty(0, device=x)
    choice = check_choice(f"environment variable {ENV_VAR}", os.environ.get(ENV_VAR, "auto"), BACKEND_CHOICES)
    if choice == "reference":
        return "reference"
    if choice == "triton":
        if not HAS_TRITON:
            raise GanSurveyError(f"{ENV_VAR}=triton but triton does not import; use 'auto' or 'reference'")
        if not x.is_cuda and not interpret_mode():
            raise GanSurveyError(
                f"{ENV_VAR}=triton with a tensor on {x.device} needs TRITON_INTERPRET=1 (the Triton interpreter) "
                "set before gansurvey.kernels is used; or use a CUDA tensor, or 'auto'/'reference'"
            )
        return "triton"
    return "triton" if (x.is_cuda and HAS_TRITON) else "reference"


def _check_x(x: Tensor, k: int, what: str = "x") -> None:
    if not isinstance(x, Tensor):
        raise GanSurveyError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise GanSurveyError(f"{what} must have dtype float32, float16 or bfloat16, got {x.dtype}")
    if x.dim() != 2:
        raise GanSurveyError(f"{what} must have shape (M, K) with K={k}, got {tuple(x.shape)}")
    if x.shape[1] != k:
        raise GanSurveyError(f"{what} has K={x.shape[1]} columns but the weight has K={k} (shape (N, K))")
    if not x.is_contiguous():
        raise GanSurveyError(f"{what} must be contiguous (call .contiguous()), got strides {x.stride()}")


def _check_weight(w: object, kind: type, op: str) -> None:
    if not isinstance(w, kind):
        raise GanSurveyError(f"{op} needs a {kind.__name__} weight, got {type(w).__name__}")


def _check_device(x: Tensor, w: QuantizedWeight | CodebookWeight) -> None:
    if x.device != w.device:
        raise GanSurveyError(f"x is on {x.device} but the weight is on {w.device}; move one of them")


def engine(w: QuantizedWeight | CodebookWeight, x: Tensor | torch.device | str, activation_bits: int | None = None,
           rows: int | None = None) -> str:
    """The engine that computes :func:`linear` of ``w`` on ``x`` (or on a device): ``triton-w8a8``,
    ``triton-weight-only``, ``triton-gemv-splitk`` (weight-only with ``rows <= GEMV_MAX_M``), ``triton-lut`` or
    ``reference`` (dequantize, then a torch matmul).

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> engine(quantize_weight(torch.ones(2, 8), 4), "cpu")
    'reference'
    """
    if backend(x) != "triton":
        return "reference"
    if isinstance(w, CodebookWeight):
        return "triton-lut"
    if activation_bits == 8:
        return "triton-w8a8"
    return "triton-gemv-splitk" if rows is not None and rows <= GEMV_MAX_M else "triton-weight-only"


def weight_only_matmul(x: Tensor, w: QuantizedWeight, bias: Tensor | None = None,
                       epilogue: Epilogue | None = None) -> Tensor:
    """``x @ w.dequantize().T (+ bias)`` for ``x`` of shape ``(M, K)``; float32 accumulation, result in
    ``x.dtype``; ``epilogue``: see :func:`linear`.

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> weight_only_matmul(torch.ones(2, 8), quantize_weight(torch.ones(3, 8), bits=4)).shape
    torch.Size([2, 3])
    """
    _check_weight(w, QuantizedWeight, "weight_only_matmul")
    _check_x(x, w.shape[1])
    _check_device(x, w)
    epilogue = check_epilogue(epilogue, w.shape[0], x.device)
    if backend(x) == "triton" and w.bits in KERNEL_BITS:
        return weight_only_matmul_triton(x, w, bias, out_dtype=x.dtype, epilogue=epilogue)
    return apply_epilogue(ref.weight_only_matmul_ref(x, w), bias, epilogue)


def w8a8_matmul(
    x: Tensor, w: QuantizedWeight, bias: Tensor | None = None, act_qparams: tuple[float, float] | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """Quantize ``x`` to int8, multiply by an 8-bit symmetric weight with exact int32 accumulation, rescale
    (+ bias); result in ``x.dtype``, shape ``(M, N)``.

    ``act_qparams=None``: dynamic per-row symmetric quantization (:func:`quantize_activations`);
    ``(scale, zero_point)``: the static asymmetric uint8 grid of a calibrated layer
    (:func:`quantize_activations_static`), whose zero point the kernel folds in exactly. ``epilogue``: see
    :func:`linear`.

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> w8a8_matmul(torch.ones(1, 4), quantize_weight(torch.ones(2, 4), bits=8)).tolist()
    [[4.0, 4.0]]
    """
    _check_weight(w, QuantizedWeight, "w8a8_matmul")
    ref.check_w8a8_weight(w)
    _check_x(x, w.shape[1])
    _check_device(x, w)
    if act_qparams is None:
        (x_int8, x_scale), offset = quantize_activations(x), 0
    else:
        x_int8, x_scale, offset = quantize_activations_static(x, *act_qparams)
    epilogue = check_epilogue(epilogue, w.shape[0], x.device)
    if backend(x) == "triton":
        return w8a8_matmul_triton(x_int8, x_scale, w, bias, out_dtype=x.dtype, x_offset=offset, epilogue=epilogue)
    return apply_epilogue(ref.w8a8_matmul_ref(x_int8, x_scale, w, offset), bias, epilogue).to(x.dtype)


def lut_matmul(x: Tensor, w: CodebookWeight, bias: Tensor | None = None, epilogue: Epilogue | None = None) -> Tensor:
    """``x @ w.dequantize().T (+ bias)`` with the codebook looked up inside the GEMM; result in ``x.dtype``;
    ``epilogue``: see :func:`linear`.

    >>> from gansurvey.kernels.formats import pack_codes
    >>> w = CodebookWeight(pack_codes(torch.tensor([[0, 1]]), 1), 1, (1, 2), torch.tensor([1.0, 2.0]))
    >>> lut_matmul(torch.ones(1, 2), w).tolist()
    [[3.0]]
    """
    _check_weight(w, CodebookWeight, "lut_matmul")
    _check_x(x, w.shape[1])
    _check_device(x, w)
    epilogue = check_epilogue(epilogue, w.shape[0], x.device)
    if backend(x) == "triton" and w.bits in KERNEL_BITS:
        return lut_matmul_triton(x, w, bias, out_dtype=x.dtype, epilogue=epilogue)
    return apply_epilogue(ref.lut_matmul_ref(x, w), bias, epilogue)


def linear(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight | Tensor,
    bias: Tensor | None = None,
    activation_bits: int | None = None,
    act_qparams: tuple[float, float] | None = None,
    epilogue: Epilogue | None = None,
) -> Tensor:
    """``x @ W.T + bias`` for ``x`` of shape ``(..., K)`` and a compressed ``(N, K)`` weight; returns ``(..., N)``.
    ``epilogue``: ``act(x @ W.T * scale + bias)`` instead (a folded batch norm and the activation after it), in
    the kernels' epilogue on the Triton backend.

    Dispatch on the weight: :class:`QuantizedWeight` -> :func:`weight_only_matmul`, or :func:`w8a8_matmul`
    with ``activation_bits=8`` (``act_qparams``: a static activation grid, see there); :class:`CodebookWeight`
    -> :func:`lut_matmul`; a plain float ``(N, K)`` tensor -> ``F.linear`` (handy as a baseline). A
    non-contiguous ``x`` is copied; ``bias`` has shape ``(N,)`` and is added in the kernels' epilogue.

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> linear(torch.ones(2, 5, 8), quantize_weight(torch.ones(3, 8), bits=8), torch.zeros(3)).shape
    torch.Size([2, 5, 3])
    """
    if activation_bits is not None and (isinstance(activation_bits, bool) or activation_bits != 8):
        raise GanSurveyError(f"activation_bits must be None (float activations) or 8, got {activation_bits!r}")
    if not isinstance(x, Tensor):
        raise GanSurveyError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if isinstance(w, Tensor):
        n, k = (w.shape[0], w.shape[1]) if w.dim() == 2 else (None, None)
        if n is None:
            raise GanSurveyError(f"a plain weight must be a 2-D (N, K) tensor, got shape {tuple(w.shape)}")
    elif isinstance(w, QuantizedWeight | CodebookWeight):
        n, k = w.shape
    else:
        raise GanSurveyError(
            f"w must be a QuantizedWeight, a CodebookWeight or a float (N, K) tensor, got {type(w).__name__}"
        )
    if x.dim() < 1 or x.shape[-1] != k:
        raise GanSurveyError(f"x must have shape (..., K) with K={k} (the weight is (N, K)), got {tuple(x.shape)}")
    if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (n,)):
        got = tuple(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
        raise GanSurveyError(f"bias must be a tensor of shape (N,) = ({n},), got {got}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k).contiguous()
    if act_qparams is not None and activation_bits != 8:
        raise GanSurveyError(f"act_qparams applies to activation_bits=8 only, got activation_bits={activation_bits!r}")
    if isinstance(w, Tensor):
        dense = torch.nn.functional.linear(x2, w.to(x2.dtype))
        out = apply_epilogue(dense, bias, check_epilogue(epilogue, n, x.device))
    elif isinstance(w, CodebookWeight):
        if activation_bits is not None:
            raise GanSurveyError("activation_bits=8 needs a QuantizedWeight; a CodebookWeight takes float activations")
        out = lut_matmul(x2, w, bias, epilogue)
    elif activation_bits == 8:
        out = w8a8_matmul(x2, w, bias, act_qparams, epilogue)
    else:
        out = weight_only_matmul(x2, w, bias, epilogue)
    return out.reshape(*lead, n)
