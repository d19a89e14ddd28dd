"""What the GEMM and convolution kernels do to their accumulator before the one store: ``act(acc * scale + bias)``
per output channel, in float32.

Why: a generator's layer is mostly followed by a batch norm and an activation (DCGAN and CycleGAN: convolution,
BatchNorm, ReLU; the last layer: Tanh). Run apart, each is a kernel launch and a full pass over the activations;
at small batch a GPU is launch- and memory-bound, so the compressed layer's saving drowns in them. An inference
batch norm is a per-channel affine map, so it folds into ``scale`` and ``bias`` exactly (in real arithmetic), and
the activation follows in registers. :class:`Epilogue` carries the ``scale`` and the activation (the bias stays the
ops' own argument); :func:`apply_epilogue` is the plain-torch reference every kernel is checked against, and what
the reference backend runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gansurvey.checks import GanSurveyError, check_choice

#: Activations the epilogue applies, by the code the kernels' ``ACT`` constexpr takes.
ACTIVATIONS = {"none": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4}


@dataclass(frozen=True, eq=False)
class Epilogue:
    """``act(acc * scale + bias)``: ``scale`` a float32 ``(N,)`` tensor per output channel (or None), ``activation``
    one of :data:`ACTIVATIONS`, ``slope`` the negative slope of ``leaky_relu``.

    >>> Epilogue(activation="relu").code
    1
    """

    scale: Tensor | None = None
    activation: str = "none"
    slope: float = 0.0

    def __post_init__(self) -> None:
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if self.scale is not None and (not isinstance(self.scale, Tensor) or self.scale.dim() != 1
                                       or self.scale.dtype != torch.float32):
            got = f"{self.scale.dtype} {tuple(self.scale.shape)}" if isinstance(self.scale, Tensor) else self.scale
            raise GanSurveyError(f"scale must be a 1-D float32 tensor (one value per output channel), got {got}")

    @property
    def code(self) -> int:
        """The kernels' ``ACT`` constexpr."""
        return ACTIVATIONS[self.activation]

    @property
    def trivial(self) -> bool:
        """True when it leaves the accumulator (plus bias) as it is."""
        return self.scale is None and self.activation == "none"


def check_epilogue(epilogue: Epilogue | None, channels: int, device: torch.device) -> Epilogue | None:
    """``epilogue`` checked against the op's output channels and device; None for a trivial one."""
    if epilogue is None:
        return None
    if not isinstance(epilogue, Epilogue):
        raise GanSurveyError(f"epilogue must be an Epilogue or None, got {type(epilogue).__name__}")
    if epilogue.scale is not None:
        if epilogue.scale.numel() != channels:
            raise GanSurveyError(f"epilogue.scale has {epilogue.scale.numel()} values for {channels} output channels")
        if epilogue.scale.device != device:
            raise GanSurveyError(f"epilogue.scale is on {epilogue.scale.device}, the op on {device}")
    return None if epilogue.trivial else epilogue


def apply_epilogue(out: Tensor, bias: Tensor | None, epilogue: Epilogue | None, channel_dim: int = -1) -> Tensor:
    """The reference: ``act(out * scale + bias)`` with ``scale`` and ``bias`` along ``channel_dim``, in float32,
    returned in ``out.dtype``."""
    if epilogue is None:
        return out if bias is None else out + bias.to(out.dtype).reshape(_along(out, channel_dim))
    y = out.to(torch.float32)
    if epilogue.scale is not None:
        y = y * epilogue.scale.reshape(_along(out, channel_dim))
    if bias is not None:
        y = y + bias.to(torch.float32).reshape(_along(out, channel_dim))
    if epilogue.activation == "relu":
        y = F.relu(y)
    elif epilogue.activation == "leaky_relu":
        y = F.leaky_relu(y, epilogue.slope)
    elif epilogue.activation == "tanh":
        y = torch.tanh(y)
    elif epilogue.activation == "sigmoid":
        y = torch.sigmoid(y)
    return y.to(out.dtype)


def _along(out: Tensor, dim: int) -> tuple[int, ...]:
    shape = [1] * out.dim()
    shape[dim] = -1
    return tuple(shape)
