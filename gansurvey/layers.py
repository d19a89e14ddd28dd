"""The protocol every compressed layer follows, so the cost metrics read one interface instead of guessing.

A compressed layer (sparse values + index, low-rank factors, packed integer codes + scales, codebook indices +
centroids...) is an ``nn.Module`` that also derives from :class:`CompressedLayer` and says four things:

- **what is serialized**: its ``state_dict``, nothing else. ``stored_bytes`` is the length of
  ``torch.save(model.state_dict())``, so a layer that stores 4-bit codes must register them packed (uint8
  buffers), not as a float weight;
- **how many weights it stores** (:meth:`CompressedLayer.stored_params`): the count ``count_params`` reports for
  the whole subtree, e.g. the surviving values of a sparse layer, the elements of all factors, or one per code
  for packed codes. Scales, zero points, codebooks and indices are overhead: they show in stored bytes, not here;
- **the arithmetic it is charged at** (``compute_dtype``): the precision the energy model prices its MACs at
  (``None``: the dtype of its largest tensor, as for a plain layer);
- **a dense reference weight** (:meth:`CompressedLayer.dense_weight`): the weight a plain layer of the same type
  would hold to compute the same function, used by tests, by chained compression and for decoding.

A compressed layer is costed as one unit: its subtree is one row of the cost breakdown.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

__all__ = ["CompressedLayer", "is_compressed", "compressed_layers"]


class CompressedLayer:
    """Mixin for compressed layers; see the module docstring for the contract.

    Subclasses override :meth:`stored_params` and :meth:`dense_weight` and may set ``compute_dtype``.
    """

    compute_dtype: ClassVar[torch.dtype | None] = None

    def stored_params(self) -> int:
        """Weight elements this layer stores (its whole subtree), the figure ``count_params`` reports."""
        raise NotImplementedError(f"{type(self).__name__} must say how many weights it stores")

    def dense_weight(self) -> torch.Tensor:
        """The dense weight of the plain layer this one stands for (same shape and layout)."""
        raise NotImplementedError(f"{type(self).__name__} must give its dense reference weight")

    def engine(self, x: torch.Tensor | torch.device | str | None = None) -> str:
        """The engine that runs this layer's forward on ``x`` (or on a device), recorded beside every timing.
        By default ``reference-dense``: the weight decoded to a dense float tensor and a plain torch op, which
        moves as many bytes as the uncompressed layer. Layers that compute on their compressed form say which
        engine does (quantized and codebook layers: the Triton kernels on a GPU; factorized layers: their
        smaller dense factors)."""
        return "reference-dense"


def is_compressed(module: nn.Module) -> bool:
    """Whether ``module`` follows the compressed-layer protocol."""
    return isinstance(module, CompressedLayer)


def compressed_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The compressed layers of ``model`` by name (outermost ones only: a compressed layer is one unit)."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if is_compressed(module) and not any(name.startswith(f"{outer}.") for outer in found):
            found[name] = module
    return found
