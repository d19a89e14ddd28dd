"""Public GEMM ops on compressed weights, dispatched to the Triton kernels or the plain-torch references.

Why a dispatcher: callers (``gansurvey.compress``) write one call, ``linear(x, w)``, and get the fused kernel
on a GPU and the reference on CPU. The environment variable ``GANSURVEY_KERNELS`` overrides the choice:
``auto`` (default: Triton for CUDA tensors when Triton imports, else the reference), ``reference``, or
``triton`` (on CPU tensors this needs ``TRITON_INTERPRET=1``, the Triton interpreter).

Formats the kernels do not decode (weight-only or LUT codes of 3, 5, 6 or 7 bits) take the reference path
on every backend.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from gansurvey.checks import GanSurveyError, check_choice

from . import reference as ref
from .formats import CodebookWeight, QuantizedWeight, quantize_activations
from .triton_kernels import (
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


def backend(x: Tensor) -> str:
    """The backend an op on ``x`` takes: ``"triton"`` or ``"reference"`` (see the module docstring).

    >>> backend(torch.zeros(1))  # a CPU tensor, GANSURVEY_KERNELS unset
    'reference'
    """
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


def weight_only_matmul(x: Tensor, w: QuantizedWeight) -> Tensor:
    """``x @ w.dequantize().T`` for ``x`` of shape ``(M, K)``; float32 accumulation, result in ``x.dtype``.

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> weight_only_matmul(torch.ones(2, 8), quantize_weight(torch.ones(3, 8), bits=4)).shape
    torch.Size([2, 3])
    """
    _check_weight(w, QuantizedWeight, "weight_only_matmul")
    _check_x(x, w.shape[1])
    _check_device(x, w)
    if backend(x) == "triton" and w.bits in KERNEL_BITS:
        return weight_only_matmul_triton(x, w).to(x.dtype)
    return ref.weight_only_matmul_ref(x, w)


def w8a8_matmul(x: Tensor, w: QuantizedWeight) -> Tensor:
    """Quantize ``x`` per row to int8 (dynamically), multiply by an 8-bit symmetric weight with exact int32
    accumulation, rescale; result in ``x.dtype``, shape ``(M, N)``.

    >>> from gansurvey.kernels.formats import quantize_weight
    >>> w8a8_matmul(torch.ones(1, 4), quantize_weight(torch.ones(2, 4), bits=8)).tolist()
    [[4.0, 4.0]]
    """
    _check_weight(w, QuantizedWeight, "w8a8_matmul")
    ref.check_w8a8_weight(w)
    _check_x(x, w.shape[1])
    _check_device(x, w)
    x_int8, x_scale = quantize_activations(x)
    if backend(x) == "triton":
        out = w8a8_matmul_triton(x_int8, x_scale, w)
    else:
        out = ref.w8a8_matmul_ref(x_int8, x_scale, w)
    return out.to(x.dtype)


def lut_matmul(x: Tensor, w: CodebookWeight) -> Tensor:
    """``x @ w.dequantize().T`` with the codebook looked up inside the GEMM; result in ``x.dtype``.

    >>> from gansurvey.kernels.formats import pack_codes
    >>> w = CodebookWeight(pack_codes(torch.tensor([[0, 1]]), 1), 1, (1, 2), torch.tensor([1.0, 2.0]))
    >>> lut_matmul(torch.ones(1, 2), w).tolist()
    [[3.0]]
    """
    _check_weight(w, CodebookWeight, "lut_matmul")
    _check_x(x, w.shape[1])
    _check_device(x, w)
    if backend(x) == "triton" and w.bits in KERNEL_BITS:
        return lut_matmul_triton(x, w).to(x.dtype)
    return ref.lut_matmul_ref(x, w)


def linear(
    x: Tensor,
    w: QuantizedWeight | CodebookWeight | Tensor,
    bias: Tensor | None = None,
    activation_bits: int | None = None,
) -> Tensor:
    """``x @ W.T + bias`` for ``x`` of shape ``(..., K)`` and a compressed ``(N, K)`` weight; returns ``(..., N)``.

    Dispatch on the weight: :class:`QuantizedWeight` -> :func:`weight_only_matmul`, or :func:`w8a8_matmul`
    with ``activation_bits=8``; :class:`CodebookWeight` -> :func:`lut_matmul`; a plain float ``(N, K)`` tensor
    -> ``F.linear`` (handy as a baseline). A non-contiguous ``x`` is copied; ``bias`` has shape ``(N,)``.

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
    if isinstance(w, Tensor):
        out = torch.nn.functional.linear(x2, w.to(x2.dtype))
    elif isinstance(w, CodebookWeight):
        if activation_bits is not None:
            raise GanSurveyError("activation_bits=8 needs a QuantizedWeight; a CodebookWeight takes float activations")
        out = lut_matmul(x2, w)
    elif activation_bits == 8:
        out = w8a8_matmul(x2, w)
    else:
        out = weight_only_matmul(x2, w)
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out.reshape(*lead, n)
