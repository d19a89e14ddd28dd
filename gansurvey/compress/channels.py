"""Structured channel pruning: whole output channels are removed, so the model really gets smaller.

Torch-Pruning's dependency graph finds which tensors share a channel dimension (a conv's outputs, the next
BatchNorm, the next layer's inputs, every branch of a residual sum) and removes channels from all of them
together; ConvTranspose2d (weight laid out (in, out, k, k)) is handled there. Everything else is ours: which
layers are kept whole, how many channels go, and the importance score, so the rule is exactly the one
documented here (Torch-Pruning's own MAC counter is not used: it overcounts transposed convolutions).

Importance criteria follow Torch-Pruning's shape: each is an :class:`Importance` object that scores the channels
of one dependency group and cites the paper it comes from; :data:`IMPORTANCES` maps the names a
:class:`ChannelPruneConfig` stores (``"l1"``, ``"l2"``, ``"bn_scale"``) to them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress.base import CompressConfig
from gansurvey.compress.sparse import is_sparse_storage, mask_of
from gansurvey.models.generators import LatentGenerator

_ROOT_TYPES = (_ConvNd, nn.Linear)


class Importance:
    """A channel-importance criterion: one score per channel of a dependency group (higher = more important).

    Subclasses set ``name`` (the string a :class:`ChannelPruneConfig` stores, so records keep it) and
    ``citation`` (the paper the criterion comes from) and score the layers they read in :meth:`layer_scores`.
    Scores of every layer producing a channel are summed (a residual sum ties several producers).
    """

    name: ClassVar[str]
    citation: ClassVar[str]

    def layer_scores(self, layer: nn.Module, idxs: list[int]) -> torch.Tensor | None:
        """Scores of channels ``idxs`` of ``layer``'s output; ``None`` when this criterion does not read it."""
        raise NotImplementedError

    def unscored(self, model: nn.Module) -> str | None:
        """Why no group of ``model`` could be scored, when that is an error (``None``: leave it unpruned)."""
        return None

    def __call__(self, graph: tp.DependencyGraph, group: Any) -> torch.Tensor | None:
        """One score per channel of the group's root; ``None`` if no layer of the group is scored."""
        scores = torch.zeros(len(group[0].idxs))
        found = False
        for item in group:
            if not graph.is_out_channel_pruning_fn(item.dep.handler):
                continue
            local = self.layer_scores(item.dep.target.module, item.idxs)
            if local is None:
                continue
            scores.index_add_(0, torch.as_tensor(item.root_idxs, dtype=torch.long), local.float().cpu())
            found = True
        return scores if found else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}() ({self.citation})"


class MagnitudeImportance(Importance):
    """The L``p`` norm (``p`` = 1 or 2) of the weights producing each channel in plain (ungrouped) Linear and
    convolution layers; Li et al. 2017, "Pruning Filters for Efficient ConvNets" (ICLR) rank filters by L1."""

    citation = 'Li et al. 2017, "Pruning Filters for Efficient ConvNets" (ICLR)'

    def __init__(self, p: int = 1) -> None:
        if p not in (1, 2):  # the two norms the configs name ("l1", "l2")
            raise GanSurveyError(f"MagnitudeImportance takes p = 1 or 2, got {p!r}")
        self.p = p
        self.name = f"l{p}"

    def layer_scores(self, layer: nn.Module, idxs: list[int]) -> torch.Tensor | None:
        if not isinstance(layer, _ROOT_TYPES) or getattr(layer, "groups", 1) != 1:
            return None
        weight = layer.weight.detach()
        if getattr(layer, "transposed", False):
            weight = weight.transpose(0, 1)  # ConvTranspose weights are (in, out, k, k)
        rows = weight[idxs].flatten(1)
        return rows.abs().sum(1) if self.p == 1 else rows.pow(2).sum(1).sqrt()

    def __repr__(self) -> str:
        return f"MagnitudeImportance(p={self.p}) ({self.citation})"


class BNScaleImportance(Importance):
    """|gamma| of the affine BatchNorm(s) normalizing each channel; Liu et al. 2017, "Learning Efficient
    Convolutional Networks through Network Slimming" (ICCV). Channels with no BatchNorm are kept whole."""

    name = "bn_scale"
    citation = 'Liu et al. 2017, "Learning Efficient Convolutional Networks through Network Slimming" (ICCV)'

    def layer_scores(self, layer: nn.Module, idxs: list[int]) -> torch.Tensor | None:
        if not (isinstance(layer, _BatchNorm) and layer.affine):
            return None
        return layer.weight.detach()[idxs].abs()

    def unscored(self, model: nn.Module) -> str | None:
        return (f"criterion 'bn_scale' needs BatchNorm layers after the pruned layers, and {type(model).__name__} "
                "has none; allowed here: 'l1', 'l2'")


#: The channel-importance criteria by the name a config stores.
IMPORTANCES: dict[str, Importance] = {
    imp.name: imp for imp in (MagnitudeImportance(p=1), MagnitudeImportance(p=2), BNScaleImportance())
}
CRITERIA = tuple(IMPORTANCES)


@dataclass(frozen=True)
class ChannelPruneConfig(CompressConfig):
    """Remove ``ratio`` of the output channels of every prunable layer (structured pruning).

    - ``ratio``: fraction of channels removed per layer, in [0, 1); a layer of C channels keeps
      ``max(1, round(C * (1 - ratio)))``, rounded up to a multiple of ``round_to`` (at most C).
    - ``criterion``: channel importance, by its name in :data:`IMPORTANCES` (or an :class:`Importance` of it,
      stored by name): ``"l1"`` / ``"l2"``: :class:`MagnitudeImportance` with ``p`` = 1 / 2, the norm of the
      channel's weights in the layer(s) producing it (summed over producers when a residual sum ties several);
      ``"bn_scale"``: :class:`BNScaleImportance`, |gamma| of the BatchNorm(s) normalizing it (network
      slimming); channels with no BatchNorm are then kept whole.
    - ``ignore``: module names whose outputs keep all channels (with everything tied to them). The model's
      output layer is always kept whole, so output shapes never change.
    """

    ratio: float
    criterion: str = "l1"
    ignore: tuple[str, ...] = ()
    round_to: int = 1

    family: ClassVar[str] = "pruning"
    method: ClassVar[str] = "channel"
    stage_rank: ClassVar[int] = 1
    stage_rule: ClassVar[str] = "channel pruning needs plain layers: it comes before masks, factors, codes, codebooks"

    def __post_init__(self) -> None:
        check_number("channel pruning ratio", self.ratio, minimum=0, below=1)
        if isinstance(self.criterion, Importance):  # stored by name: configs serialize to plain values
            object.__setattr__(self, "criterion", self.criterion.name)
        check_choice("channel importance criterion", self.criterion, CRITERIA)
        check_number("round_to", self.round_to, minimum=1, integer=True)
        if isinstance(self.ignore, str) or not all(isinstance(n, str) for n in self.ignore):
            raise GanSurveyError(f"ignore must be a tuple of module names, got {self.ignore!r}")
        object.__setattr__(self, "ignore", tuple(self.ignore))

    @property
    def importance(self) -> Importance:
        """The :class:`Importance` object ``criterion`` names."""
        return IMPORTANCES[self.criterion]


def kept_channels(channels: int, config: ChannelPruneConfig) -> int:
    """How many of ``channels`` output channels a layer keeps under ``config``."""
    kept = max(1, int(round(channels * (1 - config.ratio))))
    kept = -(-kept // config.round_to) * config.round_to
    return min(kept, channels)


def default_example_input(model: nn.Module) -> torch.Tensor:
    """A small input for tracing ``model``: noise for latent generators, else shaped after its first layer."""
    if isinstance(model, LatentGenerator):
        return model.sample_inputs(2, torch.Generator().manual_seed(0))
    first = next((m for m in model.modules() if isinstance(m, _ROOT_TYPES)), None)
    if isinstance(first, nn.Linear):
        return torch.zeros(2, first.in_features)
    if isinstance(first, nn.Conv2d):
        return torch.zeros(2, first.in_channels, 32, 32)
    raise GanSurveyError(f"cannot guess an input for {type(model).__name__}; pass example_input")


def _execution_order(model: nn.Module, example_input: Any) -> list[nn.Module]:
    """Prunable layers in the order the forward runs them."""
    order: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
               for m in model.modules() if isinstance(m, _ROOT_TYPES)]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    return order


def prune_channels(model: nn.Module, config: ChannelPruneConfig, example_input: Any = None) -> nn.Module:
    """A smaller copy of ``model`` with ``config.ratio`` of each layer's output channels removed.

    Works on generators and discriminators alike (any network of Linear / Conv2d / ConvTranspose2d /
    BatchNorm2d and elementwise ops). ``example_input`` is traced to find channel dependencies (default:
    :func:`default_example_input`). The copy has the same input and output shapes. A generator's ``hparams``
    get ``width = width * (1 - ratio)`` when that rebuilds exactly the pruned architecture (uniform ratio,
    ``round_to=1``, nothing ignored); otherwise they stay the original's and no longer rebuild the copy.
    """
    for name, module in model.named_modules():
        if mask_of(module) is not None or is_sparse_storage(module):
            raise GanSurveyError(f"layer {name!r} is masked or sparse; channel pruning needs plain layers "
                                 "(bake_masks first, or prune channels before unstructured pruning)")
    rnn = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    if rnn:
        raise GanSurveyError(f"layer {rnn[0][0]!r} is an {type(rnn[0][1]).__name__}: channel pruning handles "
                             "networks of Linear, Conv2d, ConvTranspose2d, BatchNorm and elementwise ops only "
                             "(prune the recurrent model with unstructured pruning instead)")
    if not any(isinstance(m, _ROOT_TYPES) for m in model.modules()):
        raise GanSurveyError(f"{type(model).__name__} has no Linear, Conv2d or ConvTranspose2d layer, so it has no "
                             "channels to prune")
    out = copy.deepcopy(model)
    named = dict(out.named_modules())
    for name in config.ignore:
        if name not in named:
            raise GanSurveyError(f"ignore names {name!r}, which is not a module of {type(model).__name__}; "
                                 f"allowed: {', '.join(repr(n) for n in named if n)}")
    device = next(out.parameters()).device
    x = default_example_input(out) if example_input is None else example_input
    x = x.to(device)
    modes = {m: m.training for m in out.modules()}
    out.eval()  # batch statistics of a tiny tracing batch would be meaningless (and fail at batch 1)
    try:
        order = _execution_order(out, x)
        with torch.no_grad():
            output_shape = tuple(out(x).shape)
        ignored = [named[n] for n in config.ignore] + order[-1:]
        if config.ratio > 0 and not [m for m in order if not any(m is i for i in ignored)]:
            raise GanSurveyError(f"{type(model).__name__} has no layer whose output channels can be removed: its "
                                 f"last layer makes the output (kept whole) and the others are ignored or absent; "
                                 f"ratio {config.ratio} would leave it unchanged")
        if config.ratio > 0:
            _prune_groups(out, x, ignored, config)
        with torch.no_grad():
            new_shape = tuple(out(x).shape)
        if new_shape != output_shape:  # a dependency the graph missed would show here
            raise GanSurveyError(f"channel pruning changed the output shape from {output_shape} to "
                                 f"{new_shape}")
    finally:
        for m, training in modes.items():
            m.train(training)
    _update_hparams(model, out, config)
    return out


def _prune_groups(model: nn.Module, x: torch.Tensor, ignored: list[nn.Module],
                  config: ChannelPruneConfig) -> None:
    with torch.enable_grad():  # the graph is traced through autograd
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    scored, importance = 0, config.importance
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=_ROOT_TYPES):
        scores = importance(graph, group)
        if scores is None:
            continue
        scored += 1
        channels = len(scores)
        n_removed = channels - kept_channels(channels, config)
        if n_removed <= 0:
            continue
        # Stable sort: equal scores fall to the lower channel index, so pruning is deterministic.
        removed = torch.argsort(scores, stable=True)[:n_removed].sort().values.tolist()
        root = group[0].dep.target.module
        graph.get_pruning_group(root, group[0].dep.handler, removed).prune()
    if scored == 0 and (reason := importance.unscored(model)):
        raise GanSurveyError(reason)


def _update_hparams(original: nn.Module, pruned: nn.Module, config: ChannelPruneConfig) -> None:
    """Give the copy ``hparams`` that rebuild it, when the original's width multiplier can."""
    hparams = getattr(original, "hparams", None)
    if isinstance(hparams, dict) and "width" in hparams:
        slim = {**hparams, "width": hparams["width"] * (1 - config.ratio)}
        try:
            candidate = type(original)(**slim)
        except (TypeError, ValueError):
            candidate = None
        if candidate is not None and _same_shapes(candidate, pruned):
            pruned.hparams = slim


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)
