"""Pruning, the survey's first family: unstructured magnitude pruning, structured channel pruning and the
lottery ticket procedure.

One verb: ``prune(model, config)`` (the pruning name of :func:`gansurvey.compress.compress`) returns a pruned
copy and never touches its input; the copy's ``compression`` lists the configs applied.

- ``prune(model, MagnitudePruneConfig(sparsity=0.8))`` zeroes the smallest-magnitude weights through masks
  that stay applied while the copy is fine-tuned with the shared trainer (``experiments.finetune`` or
  ``train.train_gan``); ``to_sparse_storage`` then keeps only the survivors, so stored bytes fall.
- ``prune(model, ChannelPruneConfig(ratio=0.5))`` removes whole channels (see :mod:`.channels`): fewer
  parameters, MACs and bytes, and usually lower latency.
- ``lottery_ticket(model, train, rounds, final_sparsity)`` runs iterative magnitude pruning with rewinding
  (Frankle & Carbin 2019; Frankle et al. 2020); ``random_reinit`` builds its random-initialisation control.

A discriminator is pruned the same way: ``prune(discriminator, config)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress.base import CompressConfig, check_family_configs, compress, compression_chain, register
from gansurvey.compress.channels import ChannelPruneConfig, prune_channels
from gansurvey.compress.sparse import (
    mask_of,
    masks,
    prunable_layers,
    select_layers,
    set_mask,
    sparsity,
    unmask,
)
from gansurvey.train.gan import TrainResult

SCOPES = ("layer", "global")
PATTERNS = ("unstructured", "2:4")
_MASK_SUFFIX = ".parametrizations.weight.0.mask"
_ORIGINAL_SUFFIX = ".parametrizations.weight.original"


@dataclass(frozen=True)
class MagnitudePruneConfig(CompressConfig):
    """Zero the ``sparsity`` fraction of smallest-magnitude weights (unstructured pruning).

    - ``sparsity`` in [0, 1): exactly ``round(sparsity * n)`` weights are zeroed, over all n selected weights
      ranked together (``scope="global"``, the default) or over each layer's n weights (``scope="layer"``). Ties
      in magnitude fall to the earlier weight (layer order, then flat position), so the result is deterministic.
      Global is the default because a uniform per-layer share destroys a generator's small layers: at 90 % a
      DCGAN's output layer keeps a tenth of its 1024 weights, and 2000 steps of guided fine-tuning left it at a
      domain FID above 1000 where the global threshold, which keeps most of that layer, recovered to 67 in 100
      (Han et al. 2015 set each layer's threshold by its sensitivity; one global threshold is the usual stand-in,
      Blalock et al. 2020). ``None`` resolves to ``"layer"`` for the 2:4 pattern, which is per layer.
    - ``layers``: module names to prune; ``None`` = every Linear, Conv2d and ConvTranspose2d weight.
    - ``pattern``: ``"unstructured"`` (any weights), or ``"2:4"`` semi-structured sparsity (Mishra et al. 2021,
      NVIDIA Ampere's sparse tensor cores): of every four consecutive weights along a layer's reduction
      dimension (a Linear's or Conv2d's fan-in; a ConvTranspose2d's input channels) the two largest are kept,
      so it needs ``sparsity=0.5`` and ``scope="layer"``. A trailing group of fewer than four keeps two.

    Pruning an already-masked model ranks its current (masked) weights, and masks only grow.
    """

    family: ClassVar[str] = "pruning"
    method: ClassVar[str] = "magnitude"
    stage_rank: ClassVar[int] = 2
    stage_rule: ClassVar[str] = "magnitude pruning works on float weights, so it comes before quantization and encoding"

    sparsity: float
    scope: str | None = None
    layers: tuple[str, ...] | None = None
    pattern: str = "unstructured"

    def __post_init__(self) -> None:
        check_number("sparsity", self.sparsity, minimum=0, below=1)
        if self.scope is None:
            object.__setattr__(self, "scope", "layer" if self.pattern == "2:4" else "global")
        check_choice("pruning scope", self.scope, SCOPES)
        check_choice("sparsity pattern", self.pattern, PATTERNS)
        if self.pattern == "2:4" and (self.sparsity != 0.5 or self.scope != "layer"):
            raise GanSurveyError(f"pattern '2:4' keeps two of every four weights in each layer: it needs "
                                 f"sparsity=0.5 and scope='layer', got sparsity={self.sparsity!r}, "
                                 f"scope={self.scope!r}")
        if self.layers is not None:
            if isinstance(self.layers, str) or not all(isinstance(n, str) for n in self.layers):
                raise GanSurveyError(f"layers must be a tuple of module names or None, got {self.layers!r}")
            object.__setattr__(self, "layers", tuple(self.layers))


PruneConfig = MagnitudePruneConfig | ChannelPruneConfig


def prune(model: nn.Module, config: PruneConfig | Sequence[PruneConfig], example_input: Any = None) -> nn.Module:
    """A pruned copy of ``model`` (generator or discriminator); the input is never modified.

    Args:
        model: the module to prune.
        config: a :class:`MagnitudePruneConfig` (unstructured, masked) or a :class:`ChannelPruneConfig`
            (structured, really smaller), or a list of them applied in order.
        example_input: used by channel pruning to trace the layer dependencies (guessed when ``None``).

    Example::

        sparse = prune(generator, MagnitudePruneConfig(sparsity=0.8))
        slim = prune(generator, ChannelPruneConfig(ratio=0.5), bench.example_input(2))
    """
    check_family_configs("prune", model, config, (MagnitudePruneConfig, ChannelPruneConfig))
    return compress(model, config, example_input)


@register(MagnitudePruneConfig)
def _magnitude_handler(model: nn.Module, config: MagnitudePruneConfig, example_input: Any) -> nn.Module:
    return magnitude_prune(model, config)


@register(ChannelPruneConfig)
def _channel_handler(model: nn.Module, config: ChannelPruneConfig, example_input: Any) -> nn.Module:
    return prune_channels(model, config, example_input)


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean keep-mask that drops the ``k`` lowest scores (ties: earlier position first)."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[torch.argsort(scores.flatten(), stable=True)[:k]] = False
    return keep


def magnitude_prune(model: nn.Module, config: MagnitudePruneConfig) -> nn.Module:
    """A masked copy of ``model`` with exactly the requested fraction of smallest weights zeroed."""
    out = copy.deepcopy(model)
    layers = select_layers(out, config.layers)
    if not layers and config.layers is None:
        raise GanSurveyError(f"{type(model).__name__} has no Linear, Conv2d or ConvTranspose2d layer, so it has no "
                             "weights that magnitude pruning can mask")
    if not layers:
        raise GanSurveyError(f"layers=() names no layer to prune; allowed: None (every prunable layer) or names "
                             f"among {', '.join(map(repr, prunable_layers(out))) or 'none'}")
    scores, already = {}, {}
    with torch.no_grad():
        for name, module in layers.items():
            weight = module.weight.detach()
            old = mask_of(module)
            # Weights pruned earlier score -1, below every live weight, so masks only grow.
            scores[name] = weight.abs().masked_fill(~old.mask, -1.0) if old is not None else weight.abs()
            already[name] = int((~old.mask).sum()) if old is not None else 0
    if config.pattern == "2:4":
        keeps = {name: _two_of_four(score, isinstance(layers[name], nn.ConvTranspose2d))
                 for name, score in scores.items()}
        for name, keep in keeps.items():
            _check_growth(name, int((~keep).sum()), already[name], config.sparsity)
    elif config.scope == "layer":
        keeps = {}
        for name, score in scores.items():
            k = round(config.sparsity * score.numel())
            _check_growth(name, k, already[name], config.sparsity)
            keeps[name] = _lowest(score, k).view_as(score)
    else:
        flat = torch.cat([s.flatten().float() for s in scores.values()]) if scores else torch.zeros(0)
        k = round(config.sparsity * flat.numel())
        _check_growth("the selected layers", k, sum(already.values()), config.sparsity)
        kept = _lowest(flat, k).split([s.numel() for s in scores.values()])
        keeps = {name: keep.view_as(scores[name]) for name, keep in zip(scores, kept, strict=True)}
    for name, keep in keeps.items():
        set_mask(layers[name], keep)
    return out


def _two_of_four(score: torch.Tensor, transposed: bool) -> torch.Tensor:
    """Keep-mask with the two highest scores of every four along the reduction dimension (ties: earlier)."""
    # Rows of the GEMM view: a transposed conv's weight is (in, out, kh, kw) and reduces over ``in``.
    rows = score.permute(1, 2, 3, 0).reshape(-1, score.shape[0]) if transposed else score.reshape(score.shape[0], -1)
    length = rows.shape[1]
    groups = torch.nn.functional.pad(rows, (0, -length % 4), value=-2.0).view(rows.shape[0], -1, 4)
    order = torch.argsort(-groups, dim=-1, stable=True)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order[..., :2], True)
    keep = keep.view(rows.shape[0], -1)[:, :length]
    if transposed:
        return keep.view(score.shape[1], score.shape[2], score.shape[3], score.shape[0]).permute(3, 0, 1, 2)
    return keep.view_as(score)


def _check_growth(where: str, k: int, already: int, target: float) -> None:
    if k < already:
        raise GanSurveyError(f"{where} already has {already} pruned weights, more than the {k} that sparsity "
                             f"{target} asks for; masks only grow, so ask for at least the current sparsity")


# ---------------------------------------------------------------- lottery tickets


@dataclass
class LotteryResult(TrainResult):
    """What :func:`lottery_ticket` found: a :class:`~gansurvey.train.gan.TrainResult` whose ``model`` is the final
    trained sparse model (masked, also ``ticket``) and whose ``log`` has one row per round (round,
    target_sparsity, sparsity measured after training; also ``history``), plus ``initial``: the same mask on the
    rewound weights before the last training (the "winning ticket") and ``mask``: keep-masks by layer name.
    """

    initial: nn.Module | None = None
    mask: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def ticket(self) -> nn.Module:
        return self.model

    @property
    def history(self) -> list[dict[str, float]]:
        return self.log


def _plain_key(key: str) -> str:
    return key.removesuffix(_ORIGINAL_SUFFIX) + ".weight" if key.endswith(_ORIGINAL_SUFFIX) else key


def dense_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with mask parametrizations folded back to plain keys (``x.weight``), masks dropped."""
    return {_plain_key(key): value for key, value in state.items() if not key.endswith(_MASK_SUFFIX)}


def rewind(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of masked ``model`` holding the weights (and buffers) of ``state``, its masks kept."""
    out = copy.deepcopy(model)
    state = dense_state(state)
    target = out.state_dict()
    for key, tensor in target.items():
        if key.endswith(_MASK_SUFFIX):
            continue
        name = _plain_key(key)
        if name not in state:
            raise GanSurveyError(f"rewind_state lacks {name!r}; it must be a state_dict of the same "
                                 f"architecture as the {type(model).__name__} being pruned")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise GanSurveyError(f"rewind_state[{name!r}] has shape {tuple(state[name].shape)}, the model "
                                 f"needs {tuple(tensor.shape)}")
        with torch.no_grad():
            tensor.copy_(state[name])
    for module in prunable_layers(out).values():
        if mask_of(module) is not None:
            set_mask(module, mask_of(module).mask)  # zero the rewound weights that the mask removes
    return out


def lottery_ticket(
    model: nn.Module,
    train: Callable[[nn.Module], nn.Module],
    rounds: int,
    final_sparsity: float,
    rewind_state: dict[str, torch.Tensor] | None = None,
    scope: str = "global",
    layers: tuple[str, ...] | None = None,
    train_first: bool = True,
) -> LotteryResult:
    """Iterative magnitude pruning with weight rewinding.

    ``model`` is trained (``train(model) -> trained model``; skipped when ``train_first`` is False, e.g. for a
    teacher that is already trained), then each of ``rounds`` rounds prunes the same fraction of the remaining
    weights by trained magnitude, so round r reaches sparsity ``1 - (1 - final_sparsity) ** (r / rounds)``
    (exactly ``final_sparsity`` at the end), rewinds the surviving weights to ``rewind_state`` (the weights
    at initialisation or an early step; default: ``model``'s own weights) and retrains. ``train`` is called
    ``rounds + 1`` times (``rounds`` without the first training) and must keep the masks, as the shared
    trainer does (e.g. ``lambda g: experiments.finetune(g, bench, steps).model``).

    Args:
        model: the dense model to search a ticket in.
        train: ``model -> trained model`` keeping masks (the shared trainer does).
        rounds: pruning rounds; final_sparsity: the sparsity after the last one, in [0, 1).
        rewind_state: the weights to rewind to (default: ``model``'s); scope: ``"layer"`` or ``"global"``.
        layers: module names to prune (``None``: all prunable); train_first: train ``model`` before round 1.

    Example::

        train = lambda g: experiments.finetune(g, bench, 500).model
        result = lottery_ticket(generator, train, rounds=3, final_sparsity=0.8)
        result.ticket, result.initial, result.history
    """
    check_number("rounds", rounds, minimum=1, integer=True)
    check_number("final_sparsity", final_sparsity, minimum=0, below=1)
    check_choice("pruning scope", scope, SCOPES)
    if not callable(train):
        raise GanSurveyError(f"train must be a callable (model -> trained model), got {train!r}")
    if not isinstance(model, nn.Module):
        raise GanSurveyError(f"lottery_ticket needs a torch module, got {type(model).__name__}")
    start = copy.deepcopy(model)
    rewind_to = dense_state(rewind_state if rewind_state is not None else start.state_dict())
    trained = _train(train, start) if train_first else start
    history: list[dict[str, float]] = []
    for r in range(1, rounds + 1):
        target = final_sparsity if r == rounds else 1 - (1 - final_sparsity) ** (r / rounds)
        pruned = magnitude_prune(trained, MagnitudePruneConfig(target, scope, layers))
        initial = rewind(pruned, rewind_to)
        trained = _train(train, initial)
        before, after = masks(initial), masks(trained)
        if before.keys() != after.keys() or not all(torch.equal(before[k], after[k]) for k in before):
            raise GanSurveyError("train returned a model whose pruning masks differ from those it was given; "
                                 "train with the shared trainer (experiments.finetune / train.train_gan)")
        history.append(dict(round=r, target_sparsity=target, sparsity=sparsity(trained, layers)))
    trained.compression = compression_chain(model) + [
        MagnitudePruneConfig(final_sparsity, scope, layers).to_dict()]
    return LotteryResult(model=trained, log=history, initial=initial, mask=masks(trained))


def _train(train: Callable[[nn.Module], nn.Module], model: nn.Module) -> nn.Module:
    # The copy protects LotteryResult.initial from trainers that work in place.
    result = train(copy.deepcopy(model))
    if not isinstance(result, nn.Module):
        raise GanSurveyError(f"train must return the trained module, got {type(result).__name__} "
                             "(experiments.finetune returns a TrainResult: take .model)")
    return result


def random_reinit(ticket: nn.Module, seed: int = 0) -> nn.Module:
    """The lottery-ticket control: a copy of ``ticket`` with the same masks but fresh random weights.

    Every module with ``reset_parameters`` is re-initialised with PyTorch's default initialisation under
    ``seed`` (the global random state is left untouched), then the masks are applied again.
    """
    check_number("seed", seed, minimum=0, integer=True)
    keep = masks(ticket)
    if not keep:
        raise GanSurveyError(f"{type(ticket).__name__} has no pruning masks; random_reinit needs a masked "
                             "model (from prune or lottery_ticket)")
    out = copy.deepcopy(ticket)
    layers = prunable_layers(out)
    for name in keep:
        if mask_of(layers[name]) is None:
            raise GanSurveyError(f"layer {name!r} is stored sparsely; random_reinit needs the masked model")
        # Without the parametrization, reset_parameters writes into the real weight, not a masked view.
        unmask(layers[name], keep_zeros=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in out.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    for name, mask in keep.items():
        set_mask(layers[name], mask)
    return out
