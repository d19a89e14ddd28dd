"""Fusing a compressed layer with the batch norm and activation after it into the kernels' epilogue.

Why: in the generators of this project a convolution is followed by a BatchNorm and a ReLU (DCGAN, the CycleGAN
ResNet, the U-Net's decoder), and the last one by a Tanh. On a GPU each is a launch and a pass over the feature
map; at the small batches generators serve, that traffic and those launches outweigh what the compressed weight
saves. :func:`fuse_epilogues` returns an inference copy of a model in which each such run of modules is one
:class:`FusedEpilogue`: on the Triton path its layer's kernel applies ``act(conv * scale + shift)`` before it
stores (:class:`~gansurvey.kernels.Epilogue`), with the batch norm's running statistics folded into ``scale`` and
``shift``; off that path it runs the three modules as they were. The fold is exact in real arithmetic; in float
it rounds differently (``engine_forms`` keeps the form only when its output stays close to the model's).

Only a batch norm in eval mode with running statistics folds (an instance norm's statistics are the input's own).
The copy is frozen at the statistics it was built from: build it from the model you time, after any training.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from gansurvey import kernels
from gansurvey.checks import GanSurveyError

#: Activation modules the epilogue computes, by the epilogue's name for them.
FUSABLE_ACTIVATIONS: dict[type, str] = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh",
                                        nn.Sigmoid: "sigmoid"}
#: Suffix of the engine name of a layer whose epilogue runs fused.
FUSED_SUFFIX = "+epilogue"


def _fusable_layer(module: nn.Module) -> bool:
    return callable(getattr(module, "kernel_forward", None))


def _foldable_norm(module: nn.Module) -> bool:
    return (isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and module.track_running_stats
            and module.running_mean is not None and not module.training)


class FusedEpilogue(nn.Module):
    """A compressed layer, the batch norm after it (or None) and the activation after that (or None), computed as
    one kernel with the norm and activation in its epilogue on the Triton path, and one after the other
    elsewhere. ``layer`` must offer ``kernel_forward(x, bias, epilogue)`` (quantized and codebook layers do)."""

    def __init__(self, layer: nn.Module, norm: nn.Module | None = None, activation: nn.Module | None = None) -> None:
        super().__init__()
        if not _fusable_layer(layer):
            raise GanSurveyError(f"{type(layer).__name__} has no kernel_forward: only quantized and codebook layers "
                                "fuse an epilogue")
        if norm is not None and not _foldable_norm(norm):
            raise GanSurveyError(f"{norm!r} cannot fold: a BatchNorm in eval mode with running statistics can")
        if activation is not None and type(activation) not in FUSABLE_ACTIVATIONS:
            raise GanSurveyError(f"{type(activation).__name__} is not one of the epilogue's activations "
                                f"({', '.join(t.__name__ for t in FUSABLE_ACTIVATIONS)})")
        self.layer, self.norm, self.activation = layer, norm, activation
        bias = getattr(layer, "bias", None)
        with torch.no_grad():
            if norm is None:
                scale, shift = None, None if bias is None else bias.detach().float().clone()
            else:
                weight = norm.weight if norm.affine else torch.ones_like(norm.running_var)
                offset = norm.bias if norm.affine else torch.zeros_like(norm.running_mean)
                scale = (weight / torch.sqrt(norm.running_var + norm.eps)).detach().float()
                shift = (offset - norm.running_mean * scale).detach().float()
                if bias is not None:
                    shift = shift + bias.detach().float() * scale
        self.register_buffer("scale", None if scale is None else scale.contiguous())
        self.register_buffer("shift", None if shift is None else shift.contiguous())
        name = "none" if activation is None else FUSABLE_ACTIVATIONS[type(activation)]
        self.activation_name = name
        self.slope = float(activation.negative_slope) if isinstance(activation, nn.LeakyReLU) else 0.0

    def epilogue(self) -> kernels.Epilogue:
        """What the layer's kernel does before it stores: the folded norm's scale and the activation."""
        return kernels.Epilogue(self.scale, self.activation_name, self.slope)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer.kernel_forward(x, self.shift, self.epilogue())
        if out is not None:
            return out
        out = self.layer(x)
        if self.norm is not None:
            out = self.norm(out)
        return out if self.activation is None else self.activation(out)

    def engine(self, x: Tensor | torch.device | str | None = None) -> str:
        """The layer's engine, with :data:`FUSED_SUFFIX` when the epilogue runs inside its kernel."""
        name = self.layer.engine(x)
        return name + FUSED_SUFFIX if name.startswith("triton-") else name


def fuse_epilogues(model: nn.Module) -> tuple[nn.Module, int]:
    """An inference copy of ``model`` (eval mode) in which every compressed layer that an ``nn.Sequential``
    follows with a foldable batch norm and/or an epilogue activation is a :class:`FusedEpilogue` (the norm's and
    activation's places hold ``nn.Identity``, so module names and indices survive); and how many were fused."""
    fused_model = copy.deepcopy(model).eval()
    count = 0
    for container in [m for m in fused_model.modules() if isinstance(m, nn.Sequential)]:
        names = list(container._modules)
        i = 0
        while i < len(names):
            layer = container._modules[names[i]]
            norm = activation = None
            j = i + 1
            if _fusable_layer(layer):
                if j < len(names) and _foldable_norm(container._modules[names[j]]):
                    norm, j = container._modules[names[j]], j + 1
                if j < len(names) and type(container._modules[names[j]]) in FUSABLE_ACTIVATIONS:
                    activation, j = container._modules[names[j]], j + 1
            if norm is None and activation is None:
                i += 1
                continue
            container._modules[names[i]] = FusedEpilogue(layer, norm, activation)
            for k in range(i + 1, j):
                container._modules[names[k]] = nn.Identity()
            count += 1
            i = j
    return fused_model, count
