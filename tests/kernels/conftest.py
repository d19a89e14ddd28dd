"""SQNR for the kernel tests (the backend fixtures, ``triton_backend`` and ``reference_backend``, are in
``tests/conftest.py``: the compress and measuring tests use them too)."""

import math

import torch


def sqnr(ref: torch.Tensor, out: torch.Tensor) -> float:
    """20*log10(||ref|| / ||ref - out||) in dB (inf when equal)."""
    ref, out = ref.double(), out.double()
    noise = (ref - out).norm().item()
    return math.inf if noise == 0 else 20 * math.log10(ref.norm().item() / noise)
