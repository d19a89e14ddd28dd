"""Compressed-weight GEMM and convolution kernels: Triton on GPU, plain torch everywhere else.

Weight formats (:class:`QuantizedWeight`, :class:`CodebookWeight`) hold packed integer codes of an ``(N, K)``
matrix; the ops compute ``x @ W.T``. ``GANSURVEY_KERNELS`` = ``auto`` | ``reference`` | ``triton`` picks the
backend (see :mod:`gansurvey.kernels.dispatch`). This package imports only torch, triton (optionally) and
``gansurvey.checks``.

>>> import torch
>>> from gansurvey.kernels import linear
>>> from gansurvey.kernels.formats import quantize_weight
>>> linear(torch.ones(2, 8), quantize_weight(torch.ones(4, 8), bits=4)).shape
torch.Size([2, 4])
"""

from .conv import conv2d, conv2d_weight_matrix, conv_transpose2d, conv_transpose2d_weight_matrix
from .dispatch import backend, engine, linear, lut_matmul, w8a8_matmul, weight_only_matmul
from .epilogue import Epilogue
from .formats import (
    CodebookWeight,
    Int8Activation,
    QuantizedWeight,
    pack_codes,
    quantize_activations,
    quantize_activations_static,
    quantize_weight,
    unpack_codes,
)

__all__ = [
    "CodebookWeight",
    "Epilogue",
    "Int8Activation",
    "QuantizedWeight",
    "backend",
    "conv2d",
    "conv2d_weight_matrix",
    "conv_transpose2d",
    "conv_transpose2d_weight_matrix",
    "engine",
    "linear",
    "lut_matmul",
    "pack_codes",
    "quantize_activations",
    "quantize_activations_static",
    "quantize_weight",
    "unpack_codes",
    "w8a8_matmul",
    "weight_only_matmul",
]
