"""Fixtures for the kernel tests: the Triton interpreter on CPU tensors, and SQNR.

``gansurvey.kernels`` defines its Triton kernels on first use, once per value of ``TRITON_INTERPRET``, so
setting the variable here (per test) works even if another test imported the package earlier.
"""

import math

import pytest
import torch

from gansurvey.kernels import triton_kernels


@pytest.fixture
def triton_backend(monkeypatch):
    """Force the Triton path and run it through the interpreter (CPU tensors)."""
    if not triton_kernels.HAS_TRITON:
        pytest.skip("triton is not installed")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("GANSURVEY_KERNELS", "triton")
    return "triton"


@pytest.fixture
def reference_backend(monkeypatch):
    monkeypatch.setenv("GANSURVEY_KERNELS", "reference")
    return "reference"


def sqnr(ref: torch.Tensor, out: torch.Tensor) -> float:
    """20*log10(||ref|| / ||ref - out||) in dB (inf when equal)."""
    ref, out = ref.double(), out.double()
    noise = (ref - out).norm().item()
    return math.inf if noise == 0 else 20 * math.log10(ref.norm().item() / noise)
