"""PyTorch's packed int4 weight-only CPU matmul (``aten._weight_int4pack_mm_for_cpu``, the CPU sibling of
tinygemm) for a 4-bit :class:`~gansurvey.kernels.QuantizedWeight`: the weight stays 4 bits per value in memory
and is expanded in registers, so a Linear layer reads an eighth of the float weight's bytes.

The op computes ``x @ W.T`` with ``W = (q - 8) * scale + zero`` per group of 32, 64, 128 or 256 input columns
and needs the output count ``N`` to be a multiple of 16. Our format's ``W = (code - z) * s`` is the same with
``q = code`` and ``zero = (8 - z) * s``; a weight whose scale groups are wider (per channel) is re-expressed with
its scales repeated over the largest group size that divides both its own and ``K``. The float32 result matches
the reference to float rounding.

>>> import torch
>>> from gansurvey.kernels.formats import quantize_weight
>>> w = quantize_weight(torch.randn(32, 64), bits=4, group_size=32)
>>> packed = Int4Packed.of(w)
>>> x = torch.randn(2, 64)
>>> bool(torch.allclose(packed.matmul(x), x @ w.dequantize().T, atol=1e-4))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gansurvey.checks import GanSurveyError

from .formats import QuantizedWeight

#: The group sizes the op takes.
GROUP_SIZES = (256, 128, 64, 32)
#: Output features must be a multiple of this.
N_MULTIPLE = 16


def available() -> bool:
    """Whether this PyTorch build has the packed int4 CPU matmul."""
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and hasattr(
        torch.ops.aten, "_convert_weight_to_int4pack_for_cpu")


def int4_group(w: QuantizedWeight) -> int | None:
    """The op's group size for ``w``, or ``None`` when the op cannot take it (not 4-bit, ``N`` not a multiple of
    16, or no allowed group size dividing both ``K`` and ``w``'s own group size)."""
    n, k = w.shape
    if w.bits != 4 or n % N_MULTIPLE:
        return None
    return next((g for g in GROUP_SIZES if k % g == 0 and w.group_size % g == 0), None)


@dataclass(frozen=True)
class Int4Packed:
    """A 4-bit weight in the op's layout: packed codes, group size, and ``(K / group, N, 2)`` scales and zeros."""

    packed: Tensor
    group: int
    scale_zeros: Tensor
    shape: tuple[int, int]

    @classmethod
    def of(cls, w: QuantizedWeight) -> Int4Packed:
        """``w`` in the op's layout; a clear error when the op cannot take it (see :func:`int4_group`)."""
        if not available():
            raise GanSurveyError("this PyTorch build lacks the packed int4 CPU matmul (_weight_int4pack_mm_for_cpu)")
        group = int4_group(w)
        if group is None:
            raise GanSurveyError(f"the packed int4 CPU matmul takes 4-bit weights with N a multiple of "
                                 f"{N_MULTIPLE} and groups of {', '.join(map(str, GROUP_SIZES))} dividing K; got "
                                 f"{w.bits}-bit {w.shape} in groups of {w.group_size}")
        n, k = w.shape
        repeat = w.group_size // group
        scale = w.scales.detach().float().cpu().repeat_interleave(repeat, dim=1)[:, :k // group]
        zero = w.zero_points().detach().float().cpu().repeat_interleave(repeat, dim=1)[:, :k // group]
        codes = w.codes().to(torch.int32).cpu().contiguous()
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
        scale_zeros = torch.stack([scale.T, ((8 - zero) * scale).T], dim=-1).contiguous()
        return cls(packed, group, scale_zeros, (n, k))

    def matmul(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """``x @ W.T (+ bias)`` for a float32 ``x`` of shape ``(..., K)``."""
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.shape[1]).float().contiguous()
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group, self.scale_zeros)
        if bias is not None:
            out = out + bias
        return out.reshape(*lead, self.shape[0])
