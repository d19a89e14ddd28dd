"""Masks for unstructured pruning, and a sparse storage format that makes the zeros cost nothing to store.

Two representations of an unstructured-pruned layer:

* **masked** (for fine-tuning): the layer keeps its dense weight and gains a :class:`WeightMask`
  parametrization (``torch.nn.utils.parametrize``) whose boolean ``mask`` buffer multiplies the weight on
  every access. Any optimizer, the shared trainer and ``copy.deepcopy`` see an ordinary layer whose pruned
  weights stay exactly zero. Its ``state_dict`` holds the dense weight *and* the mask: it stores more, not
  less.
* **sparse storage** (for keeping): :func:`to_sparse_storage` swaps each masked layer for a
  ``SparseLinear`` / ``SparseConv2d`` / ``SparseConvTranspose2d`` whose state is only the non-zero ``values``
  (a trainable parameter) and an ``index`` buffer, plus the bias. The index is whichever is smallest for that
  layer, and its dtype says which it is:

  - ``uint8``: a bitmap, one bit per weight (little-endian within each byte);
  - ``int16``: gaps between consecutive non-zero positions (the first counted from -1), when all fit;
  - ``int32``: the flat positions of the non-zeros.

  A bitmap costs n/8 bytes, gaps 2 bytes and positions 4 bytes per survivor, so the bitmap wins up to about
  94% sparsity and the gaps beyond. ``weight`` is rebuilt densely on every access, so the forward runs the
  same dense kernel as before: stored bytes fall with sparsity, latency does not. At inference the dense weight
  is decoded once and cached (not serialized), so a sparse-stored model is never slower than the dense one.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize

from gansurvey.checks import GanSurveyError
from gansurvey.layers import CompressedLayer

#: Layer types whose weights unstructured pruning selects by default.
PRUNABLE_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)

INDEX_FORMATS = {torch.uint8: "bitmap", torch.int16: "int16-gaps", torch.int32: "int32-indices"}
_BIT_SHIFTS = torch.arange(8, dtype=torch.uint8)


class WeightMask(nn.Module):
    """Parametrization that multiplies a weight by a fixed boolean mask (``True`` = kept)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


# ---------------------------------------------------------------- selecting layers and reading masks


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Linear, Conv2d and ConvTranspose2d of ``model`` (sparse-storage ones too), by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}


def select_layers(model: nn.Module, names: tuple[str, ...] | None) -> dict[str, nn.Module]:
    """The named prunable layers (all of them for ``None``); an unknown or unprunable name is an error."""
    layers = prunable_layers(model)
    if names is None:
        return layers
    for name in names:
        if name not in layers:
            raise GanSurveyError(
                f"layer {name!r} is not a prunable layer (Linear, Conv2d, ConvTranspose2d) of "
                f"{type(model).__name__}; allowed: {', '.join(map(repr, layers))}")
    return {name: layers[name] for name in names}


def mask_of(module: nn.Module) -> WeightMask | None:
    """The :class:`WeightMask` parametrizing ``module.weight``, or ``None``."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    return next((p for p in module.parametrizations.weight if isinstance(p, WeightMask)), None)


def is_sparse_storage(module: nn.Module) -> bool:
    return isinstance(module, SparseWeightMixin)


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Boolean keep-masks of every masked or sparse-storage layer, by module name (copies)."""
    out = {}
    for name, module in prunable_layers(model).items():
        if mask_of(module) is not None:
            out[name] = mask_of(module).mask.clone()
        elif is_sparse_storage(module):
            out[name] = module.keep_mask()
    return out


def set_mask(module: nn.Module, keep: torch.Tensor) -> None:
    """Mask ``module.weight`` in place with ``keep`` (replacing an existing mask); zero the pruned weights."""
    if is_sparse_storage(module):
        raise GanSurveyError(f"{type(module).__name__} already stores its weights sparsely; prune the masked "
                             "model before calling to_sparse_storage")
    if tuple(keep.shape) != tuple(module.weight.shape):
        raise GanSurveyError(f"mask of shape {tuple(keep.shape)} does not fit a weight of shape "
                             f"{tuple(module.weight.shape)}")
    existing = mask_of(module)
    keep = keep.to(device=module.weight.device, dtype=torch.bool)
    if existing is None:
        parametrize.register_parametrization(module, "weight", WeightMask(keep))
    else:
        existing.mask.copy_(keep)
    # Zeroing the stored original too keeps rewinding, baking and Adam's state free of dead values.
    with torch.no_grad():
        module.parametrizations.weight.original.mul_(keep)


def unmask(module: nn.Module, keep_zeros: bool = True) -> None:
    """Remove ``module``'s weight parametrization in place; the weight keeps its zeros unless ``keep_zeros``
    is False (then it is the stored original, for re-initialisation)."""
    cls = module.__class__
    # A deepcopy of a parametrized module shares its injected class with the original, and torch's
    # remove_parametrizations deletes the weight property from that class, breaking the original model.
    # Removing it from a private copy of the class leaves every other model intact.
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, namespace)
    parametrize.remove_parametrizations(module, "weight", leave_parametrized=keep_zeros)


def apply_masks(model: nn.Module, keep: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with the given keep-masks applied (e.g. a lottery ticket's mask on new weights)."""
    out = copy.deepcopy(model)
    layers = select_layers(out, tuple(keep))
    for name, mask in keep.items():
        set_mask(layers[name], mask)
    return out


def bake_masks(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose masked layers are plain layers again, with the zeros written into the weight.

    Use it to hand a pruned model to code that expects ordinary layers (another compression step, export).
    """
    out = copy.deepcopy(model)
    for module in prunable_layers(out).values():
        if mask_of(module) is not None:
            unmask(module)
    chain = getattr(out, "compression", None)
    if chain:  # the pruning stays in the history; its masks no longer constrain what may follow
        out.compression = [dict(e, baked=True) if e.get("type") == "MagnitudePruneConfig" else e for e in chain]
    return out


def sparsity(model: nn.Module, layers: tuple[str, ...] | None = None) -> float:
    """Fraction of zero weights among the prunable weights (all Linear/Conv/ConvTranspose by default)."""
    zeros = total = 0
    with torch.no_grad():
        for module in select_layers(model, layers).values():
            weight = module.weight
            zeros += int((weight == 0).sum())
            total += weight.numel()
    return zeros / total if total else 0.0


def sparsity_report(model: nn.Module) -> pd.DataFrame:
    """One row per prunable layer: weights, non-zeros, sparsity, storage (dense/masked/index), bytes."""
    rows = []
    with torch.no_grad():
        for name, module in prunable_layers(model).items():
            weight = module.weight
            nonzero = int((weight != 0).sum())
            if is_sparse_storage(module):
                storage, index_bytes = module.index_format, module.index.numel() * module.index.element_size()
                value_bytes = module.values.numel() * module.values.element_size()
            else:
                storage = "masked" if mask_of(module) is not None else "dense"
                index_bytes, value_bytes = 0, weight.numel() * weight.element_size()
            rows.append(dict(layer=name, type=type(module).__name__.removeprefix("Parametrized"),
                             weights=weight.numel(), nonzero=nonzero, sparsity=1 - nonzero / weight.numel(),
                             storage=storage, value_bytes=value_bytes, index_bytes=index_bytes))
    return pd.DataFrame(rows, columns=["layer", "type", "weights", "nonzero", "sparsity", "storage",
                                       "value_bytes", "index_bytes"])


# ---------------------------------------------------------------- the sparse storage format


def encode_index(keep: torch.Tensor) -> torch.Tensor:
    """The smallest index of the ``True`` positions of a flat boolean tensor (see the module docstring)."""
    n = keep.numel()
    positions = keep.nonzero().squeeze(1)
    gaps = torch.diff(positions, prepend=positions.new_tensor([-1]))
    # Candidates in order of preference on equal size; min() keeps the first of equals.
    candidates = {"bitmap": math.ceil(n / 8)}
    if len(gaps) == 0 or int(gaps.max()) <= torch.iinfo(torch.int16).max:
        candidates["int16-gaps"] = 2 * len(positions)
    candidates["int32-indices"] = 4 * len(positions)
    best = min(candidates, key=candidates.get)
    if best == "bitmap":
        padded = torch.zeros(math.ceil(n / 8) * 8, dtype=torch.uint8, device=keep.device)
        padded[:n] = keep.to(torch.uint8)
        return (padded.view(-1, 8) << _BIT_SHIFTS.to(keep.device)).sum(1, dtype=torch.uint8)
    return gaps.to(torch.int16) if best == "int16-gaps" else positions.to(torch.int32)


def decode_positions(index: torch.Tensor, n: int) -> torch.Tensor:
    """Flat positions (int64) of the stored values of a layer with ``n`` weights."""
    if index.dtype == torch.uint8:
        bits = (index.unsqueeze(1) >> _BIT_SHIFTS.to(index.device)) & 1
        return bits.flatten()[:n].nonzero().squeeze(1)
    if index.dtype == torch.int16:
        return index.long().cumsum(0) - 1
    if index.dtype == torch.int32:
        return index.long()
    raise GanSurveyError(f"sparse index of dtype {index.dtype} is not a known format; allowed: "
                         f"{', '.join(f'{d} ({f})' for d, f in INDEX_FORMATS.items())}")


class SparseWeightMixin(CompressedLayer):
    """Stores ``weight`` as non-zero ``values`` plus an ``index``; ``weight`` is rebuilt densely on access.

    Mixed into subclasses of Linear / Conv2d / ConvTranspose2d so their forward, repr and hyperparameters
    are reused unchanged; only where the weight comes from differs.
    """

    weight_shape: tuple[int, ...]

    def _store(self, weight: torch.Tensor) -> None:
        flat = weight.detach().flatten()
        keep = flat != 0
        self.weight_shape = tuple(weight.shape)
        self.values = nn.Parameter(flat[keep].clone(), requires_grad=weight.requires_grad)
        self.register_buffer("index", encode_index(keep))

    @property
    def weight(self) -> torch.Tensor:
        if torch.is_grad_enabled() and self.values.requires_grad:
            return self._rebuild()  # training: differentiable in ``values``
        # Inference decodes once: the dense weight is cached (never serialized) until values or index change,
        # so a sparse-stored model runs as fast as the dense one instead of rebuilding at every forward.
        key = (self.values.data_ptr(), self.values._version, self.index.data_ptr(), self.index._version,
               self.values.device, self.values.dtype)
        cache = self.__dict__.get("_dense_cache")
        if cache is None or cache[0] != key:
            with torch.no_grad():
                cache = (key, self._rebuild())
            self.__dict__["_dense_cache"] = cache
        return cache[1]

    def _rebuild(self) -> torch.Tensor:
        n = math.prod(self.weight_shape)
        positions = decode_positions(self.index, n)
        # Out-of-place index_put keeps the rebuild differentiable in ``values`` (sparse fine-tuning works).
        dense = self.values.new_zeros(n).index_put((positions,), self.values)
        return dense.view(self.weight_shape)

    def __getstate__(self) -> dict:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state.pop("_dense_cache", None)  # a cache, not state: deep copies and pickles rebuild it
        return state

    @property
    def index_format(self) -> str:
        return INDEX_FORMATS[self.index.dtype]

    def keep_mask(self) -> torch.Tensor:
        n = math.prod(self.weight_shape)
        keep = torch.zeros(n, dtype=torch.bool, device=self.index.device)
        keep[decode_positions(self.index, n)] = True
        return keep.view(self.weight_shape)

    def stored_params(self) -> int:
        # Stored weights are the survivors (plus the bias); the index is overhead, visible in stored bytes.
        return self.values.numel() + (self.bias.numel() if self.bias is not None else 0)

    def dense_weight(self) -> torch.Tensor:
        return self.weight.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # Another checkpoint may keep a different number of values or a different index format:
        # take its sizes and dtype first, so any sparse state of this architecture loads.
        values, index = state_dict.get(prefix + "values"), state_dict.get(prefix + "index")
        if values is not None:
            self.values = nn.Parameter(torch.empty_like(values, device=self.values.device),
                                       requires_grad=self.values.requires_grad)
        if index is not None:
            self.index = torch.empty_like(index, device=self.index.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self._check_format(prefix)

    def _check_format(self, prefix: str = "") -> None:
        n = math.prod(self.weight_shape)
        try:
            positions = decode_positions(self.index, n)
        except GanSurveyError as err:
            raise GanSurveyError(f"{prefix}index: {err}") from None
        if (self.index.dtype == torch.uint8 and self.index.numel() != math.ceil(n / 8)) or \
                len(positions) != self.values.numel() or \
                (len(positions) and (int(positions.min()) < 0 or int(positions.max()) >= n)):
            raise GanSurveyError(
                f"corrupted sparse weight {prefix!r}: a {self.index_format} index of {self.index.numel()} "
                f"entries does not address {self.values.numel()} values inside a weight of shape "
                f"{self.weight_shape}")


class SparseLinear(SparseWeightMixin, nn.Linear):
    """A Linear layer stored as non-zero values plus an index (built by :func:`to_sparse_storage`)."""


class SparseConv2d(SparseWeightMixin, nn.Conv2d):
    """A Conv2d layer stored as non-zero values plus an index (built by :func:`to_sparse_storage`)."""


class SparseConvTranspose2d(SparseWeightMixin, nn.ConvTranspose2d):
    """A ConvTranspose2d stored as non-zero values plus an index (built by :func:`to_sparse_storage`)."""


_SPARSE_CLASSES = {nn.Linear: SparseLinear, nn.Conv2d: SparseConv2d,
                   nn.ConvTranspose2d: SparseConvTranspose2d}


def _make_sparse(module: nn.Module) -> None:
    """Turn a plain (or masked) layer into its sparse-storage class in place."""
    if mask_of(module) is not None:
        unmask(module)
    if type(module) not in _SPARSE_CLASSES:
        raise GanSurveyError(f"cannot store a {type(module).__name__} sparsely; allowed: "
                             f"{', '.join(c.__name__ for c in _SPARSE_CLASSES)}")
    weight = module._parameters.pop("weight")
    # Swapping the class keeps every hyperparameter and the inherited forward; only ``weight`` changes source.
    module.__class__ = _SPARSE_CLASSES[type(module)]
    module._store(weight)


def to_sparse_storage(model: nn.Module, layers: tuple[str, ...] | None = None) -> nn.Module:
    """A copy of ``model`` whose masked layers (or the named ``layers``) store only their non-zero weights.

    The copy computes the same outputs as the masked model and its ``state_dict`` shrinks with sparsity.
    To load a saved sparse ``state_dict``, build the same architecture, convert the same layers
    (``to_sparse_storage(fresh_model, layers=...)``) and call ``load_state_dict``: each sparse layer adopts
    the stored number of values and index format.
    """
    out = copy.deepcopy(model)
    if layers is None:
        targets = {n: m for n, m in prunable_layers(out).items() if mask_of(m) is not None}
        if not targets:
            raise GanSurveyError(f"{type(model).__name__} has no masked layers to store sparsely; prune it "
                                 "first or name the layers to convert")
    else:
        targets = select_layers(out, tuple(layers))
    for module in targets.values():
        if not is_sparse_storage(module):
            _make_sparse(module)
    return out


# ---------------------------------------------------------------- 2:4 semi-structured kernels


def semi_structured_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The Linear layers of ``model`` whose weights hold at most two non-zeros in every group of four inputs."""
    found = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if type(module) is nn.Linear or (isinstance(module, nn.Linear) and mask_of(module) is not None):
                w = module.weight
                if w.shape[1] % 4 == 0 and int(((w != 0).view(w.shape[0], -1, 4).sum(-1) > 2).sum()) == 0:
                    found[name] = module
    return found


def to_semi_structured(model: nn.Module, dtype: torch.dtype = torch.float16) -> nn.Module:
    """A copy of ``model`` for inference whose 2:4-sparse Linear layers run PyTorch's semi-structured sparse
    kernels (``torch.sparse.to_sparse_semi_structured``: sparse tensor cores of Ampere and later GPUs).

    The copy is cast to ``dtype`` (the kernels take fp16/bf16) and moved to CUDA. Without CUDA, or for a layer
    whose shape the kernels refuse, the layer stays dense (with its zeros): the reference path, same outputs.
    Prune with ``MagnitudePruneConfig(0.5, pattern="2:4")`` first.

    Example::

        fast = to_semi_structured(prune(g, MagnitudePruneConfig(0.5, pattern="2:4")))
    """
    out = bake_masks(model)
    if not torch.cuda.is_available():
        return out
    out = out.to(device="cuda", dtype=dtype).eval()
    for module in semi_structured_layers(out).values():
        try:
            sparse_weight = torch.sparse.to_sparse_semi_structured(module.weight.detach())
        except (RuntimeError, ValueError):  # shapes the kernels do not take stay dense
            continue
        module.weight = nn.Parameter(sparse_weight, requires_grad=False)
    return out
