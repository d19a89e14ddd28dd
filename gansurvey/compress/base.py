"""The compression contract: one config type, one registry, one verb.

Every family follows the same shape (after torchao's ``quantize_(model, Config())``):

- a **config**: a frozen dataclass deriving from :class:`CompressConfig`, validated when it is built, with a
  ``family``, a ``VERSION`` and a ``to_dict()`` / :meth:`CompressConfig.from_dict` round-trip;
- a **handler** attached with ``@register(ConfigType)``: ``handler(model, config, example_input) -> module``,
  given a private copy of the model that it may change in place;
- the verb :func:`compress` ``(model, config_or_list)``, which copies the model, applies one config or a list in
  order and returns the new module with its provenance in ``compression`` (the config dicts applied, oldest
  first). The input is never modified. ``prune``, ``factorize``, ``quantize`` and ``encode`` are the family
  names over it.

Adding a family adds a module with its config and ``@register``; nothing here changes.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from torch import nn

from gansurvey.checks import GanSurveyError

__all__ = [
    "FAMILIES", "CompressConfig", "chain_method", "check_family_configs", "check_order", "compress",
    "compression_chain", "config_from_dict", "chain_family", "register", "registered_configs",
]

#: The survey's five lossy families, in its order. Combinations are written ``pruning+distillation``.
FAMILIES = ("pruning", "distillation", "low-rank", "precision", "encoding")

Handler = Callable[[nn.Module, "CompressConfig", Any], nn.Module]
C = TypeVar("C", bound=type)

_HANDLERS: dict[type, Handler] = {}
_CONFIGS: dict[str, type] = {}


@dataclasses.dataclass(frozen=True)
class CompressConfig:
    """Base of every compression config: frozen, validated on construction, serializable and versioned.

    Subclasses are frozen dataclasses that set ``family`` (one of :data:`FAMILIES`) and ``VERSION`` (bump it
    when a field's meaning changes) and validate their fields in ``__post_init__``.
    """

    family: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    #: The method within the family (``magnitude``, ``channel``...); a config with a ``method`` field uses that.
    method: ClassVar[str] = ""
    #: Where the config may stand in a chain, lower first (see :func:`check_order`), and the reason.
    stage_rank: ClassVar[int] = 2
    stage_rule: ClassVar[str] = "it works on float weights, so it comes before quantization and encoding"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CONFIGS[cls.__name__] = cls  # every config can be rebuilt from its dict, registered or not

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready data: ``type``, ``version``, ``family``, ``method`` and every field."""
        fields = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"type": type(self).__name__, "version": self.VERSION, "family": self.family,
                "method": self.method, **fields}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressConfig:
        """Rebuild a config written by :meth:`to_dict` (on the base class: whichever type ``data`` names)."""
        return config_from_dict(data, expected=None if cls is CompressConfig else cls)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, CompressConfig):
        return value.to_dict()
    return value


def register(config_type: C) -> Callable[[Handler], Handler]:
    """Attach a handler to ``config_type`` (a :class:`CompressConfig` subclass).

    Example::

        @register(MyConfig)
        def _apply(model, config, example_input):
            ...  # change the private copy ``model`` and return it
            return model
    """
    if not (isinstance(config_type, type) and issubclass(config_type, CompressConfig)):
        raise GanSurveyError(f"register needs a CompressConfig subclass, got {config_type!r}")
    if config_type.family not in FAMILIES:
        raise GanSurveyError(f"{config_type.__name__}.family is {config_type.family!r}; allowed: {FAMILIES}")

    def attach(handler: Handler) -> Handler:
        _HANDLERS[config_type] = handler
        return handler

    return attach


def registered_configs() -> dict[str, type]:
    """Every config type with a handler, by name (the contract test runs each through the same checks).

    Training configs (``DistillConfig``, ...) are configs too (versioned, serializable) but have no handler:
    they parameterise training verbs, not :func:`compress`.
    """
    return {cls.__name__: cls for cls in _HANDLERS}


def config_from_dict(data: dict[str, Any], expected: type | None = None) -> CompressConfig:
    """The config ``data`` describes (as written by ``to_dict``); ``expected`` restricts its type."""
    if not isinstance(data, dict) or "type" not in data:
        raise GanSurveyError(f"a config dict needs a 'type' key naming the config, got {data!r}")
    kind = data["type"]
    if kind not in _CONFIGS:
        raise GanSurveyError(f"unknown config type {kind!r}; registered: {', '.join(sorted(_CONFIGS))}")
    cls = _CONFIGS[kind]
    if expected is not None and cls is not expected:
        raise GanSurveyError(f"{expected.__name__}.from_dict got a {kind} dict")
    version = data.get("version", cls.VERSION)
    if version != cls.VERSION:
        raise GanSurveyError(f"{kind} dict has version {version!r}; this code reads version {cls.VERSION}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names - {"type", "version", "family", "method", "baked"}
    if unknown:
        raise GanSurveyError(f"{kind} has no field(s) {sorted(unknown)}; fields: {sorted(names)}")
    return cls(**{k: _revive(v) for k, v in data.items() if k in names})


def _revive(value: Any) -> Any:
    # JSON turns tuples into lists; the configs take tuples (and normalise them in __post_init__).
    if isinstance(value, dict) and "type" in value and value["type"] in _CONFIGS:
        return config_from_dict(value)
    if isinstance(value, list):
        return tuple(_revive(v) for v in value)
    return value


def _as_list(config: CompressConfig | Sequence[CompressConfig]) -> list[CompressConfig]:
    configs = [config] if isinstance(config, CompressConfig) else list(config) if isinstance(
        config, (list, tuple)) else None
    if not configs:
        raise GanSurveyError(f"compress needs a config or a non-empty list of configs, got {config!r}")
    for c in configs:
        if type(c) not in _HANDLERS:
            raise GanSurveyError(f"no compression is registered for {c!r} ({type(c).__name__}); registered: "
                                 f"{', '.join(sorted(registered_configs()))}")
    return configs


def check_family_configs(verb: str, model: Any, config: Any, allowed: tuple[type, ...]) -> None:
    """What a family verb (``prune``, ``factorize``...) checks before :func:`compress`: a module, and configs of
    its family only (a combination across families goes through ``compress`` itself)."""
    if not isinstance(model, nn.Module):
        raise GanSurveyError(f"{verb} needs a torch module, got {type(model).__name__}")
    for c in config if isinstance(config, (list, tuple)) else [config]:
        if not isinstance(c, allowed):
            raise GanSurveyError(f"{verb} needs a {verb} config, got {c!r} ({type(c).__name__}); allowed: "
                                 f"{', '.join(t.__name__ for t in allowed)}")


def check_order(configs: Sequence[CompressConfig], model: nn.Module | None = None,
                positions: Sequence[int] | None = None) -> None:
    """Refuse, before any work, a chain whose order cannot work: each config's ``stage_rank`` must be at least
    that of every config applied before it (``model``'s own chain included).

    Ranks: a distillation student (0) first; channel pruning (1) needs plain layers; magnitude pruning and
    factorization (2) work on float weights; quantization (3) on float weights; encoding (4) turns weights
    into bitstreams, so nothing that changes weights follows it. ``positions`` numbers the configs in
    messages (their stage numbers in a longer pipeline); default 1, 2, ...
    """
    highest, applied = -1, None
    for entry in compression_chain(model) if model is not None else []:
        kind = _CONFIGS.get(entry.get("type"))
        if entry.get("baked"):  # its layers were turned back into plain ones (e.g. bake_masks): no constraint left
            continue
        if kind is not None and kind.stage_rank > highest:
            highest, applied = kind.stage_rank, kind.__name__
    order = " -> ".join(f"{c.__name__} ({c.stage_rank})" for c in sorted(
        {registered for registered in _HANDLERS}, key=lambda c: (c.stage_rank, c.__name__)))
    positions = list(positions) if positions is not None else list(range(1, len(configs) + 1))
    for position, config in zip(positions, configs, strict=True):
        rank = type(config).stage_rank
        if rank < highest or (rank == 0 and highest >= 0):
            raise GanSurveyError(f"stage {position} ({type(config).__name__}) cannot follow {applied}: "
                                 f"{type(config).stage_rule}; allowed order (rank): {order}")
        highest, applied = rank, type(config).__name__


def compress(model: nn.Module, config: CompressConfig | Sequence[CompressConfig],
             example_input: Any = None) -> nn.Module:
    """A compressed copy of ``model``: each config applied in order; ``model`` itself is never modified.

    Args:
        model: any ``nn.Module`` (a generator or a discriminator, built here or not).
        config: one registered config, or a list of them applied in order.
        example_input: an input for tracing, needed by some families (channel pruning, activation
            calibration); ``None`` lets them guess one for the package's generators.

    Returns:
        The new module; its ``compression`` attribute lists the applied configs' ``to_dict()``, oldest first,
        after any that ``model`` already carried.

    Example::

        from gansurvey.compress import compress, MagnitudePruneConfig, LowRankConfig
        small = compress(generator, [MagnitudePruneConfig(sparsity=0.5), LowRankConfig("svd", rank=0.5)])
        small.compression  # [{'type': 'MagnitudePruneConfig', ...}, {'type': 'LowRankConfig', ...}]
    """
    if not isinstance(model, nn.Module):
        raise GanSurveyError(f"compress needs a torch module, got {type(model).__name__}")
    configs = _as_list(config)
    check_order(configs, model)
    chain = compression_chain(model)
    out = copy.deepcopy(model)
    for c in configs:
        total = sum(p.numel() for p in out.parameters())
        before = _content(out) if c.family in _CHANGING_FAMILIES else None
        result = _HANDLERS[type(c)](out, c, example_input)
        if not isinstance(result, nn.Module):
            raise GanSurveyError(f"the handler of {type(c).__name__} returned {type(result).__name__}, "
                                 "not a module")
        chain = chain + [c.to_dict()]
        result.compression = chain
        if before is not None and _content(result) == before:
            _warn_unchanged(result, c)
        else:
            _warn_uncompressed(result, c, total)
        out = result
    return out


class UncompressedWarning(UserWarning):
    """A compression left some of a model's weights as they were (layers of a kind it does not handle), or changed
    nothing at all (no layer it compresses, or none that would gain)."""


#: The families that rewrite every weight layer they know (Linear, Conv2d, ConvTranspose2d) and so must say which
#: weights they left alone (magnitude pruning too: its sparsity counts the layers it masked only).
_WEIGHT_FAMILIES = ("pruning", "precision", "encoding", "low-rank")


#: torch layers with weight matrices that no weight family rewrites.
_UNHANDLED = (nn.RNNBase, nn.RNNCellBase, nn.Embedding, nn.EmbeddingBag, nn.MultiheadAttention, nn.Bilinear)


def uncompressed_layers(model: nn.Module) -> dict[str, int]:
    """Layers of torch's own kinds other than Linear and convolutions (LSTM, GRU, Embedding, attention...) that
    hold matrices of weights, with their weight counts: what quantize, encode and factorize leave in float."""
    found = {}
    for name, module in model.named_modules():
        if not isinstance(module, _UNHANDLED):
            continue
        count = sum(p.numel() for p in module.parameters(recurse=False) if p.dim() >= 2)
        if count:
            found[name or type(module).__name__] = count
    return found


def _warn_uncompressed(model: nn.Module, config: CompressConfig, total: int) -> None:
    if getattr(config, "family", None) not in _WEIGHT_FAMILIES:
        return
    skipped = uncompressed_layers(model)
    if skipped:
        named = ", ".join(f"{n!r} ({type(dict(model.named_modules()).get(n, model)).__name__}, {c} weights)"
                          for n, c in skipped.items())
        warnings.warn(f"{type(config).__name__} left {sum(skipped.values())} of {total} weights uncompressed, in "
                      f"layers of a kind it does not handle: {named}", UncompressedWarning, stacklevel=3)


#: The families whose configs rewrite the weight layers they are given, so that a result equal to its input means
#: the config found nothing to do (pruning again at a sparsity the masks already hold is a true no-op, and a model
#: with nothing to prune is refused by the pruning functions themselves).
_CHANGING_FAMILIES = ("low-rank", "precision", "encoding")


def _content(model: nn.Module) -> tuple[tuple[tuple[str, str], ...], str]:
    """The model's layers (names and types) and a digest of its state: equal before and after a config exactly
    when the config changed nothing."""
    from gansurvey.io import state_sha256

    layers = tuple((name, type(module).__qualname__) for name, module in model.named_modules())
    return layers, state_sha256({"model": model.state_dict()})


def _warn_unchanged(model: nn.Module, config: CompressConfig) -> None:
    kinds = Counter(type(m).__name__ for m in model.modules()
                    if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)))
    found = ", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "none holds weights"
    warnings.warn(f"{type(config).__name__} changed nothing in {type(model).__name__}: none of its layers ({found}) "
                  f"is one {type(config).__name__} compresses, or would gain from compressing (an already "
                  f"compressed layer, a rank that saves nothing), so the result stores and computes what the input "
                  f"did, although its compression chain lists {type(config).__name__}", UncompressedWarning,
                  stacklevel=3)


def compression_chain(model: nn.Module) -> list[dict[str, Any]]:
    """The configs (as dicts) that made ``model``, oldest first; empty for an uncompressed model."""
    return [dict(c) for c in getattr(model, "compression", None) or []]


def chain_family(chain: list[dict[str, Any]]) -> str:
    """The family combination of a chain, written the one way used everywhere: ``pruning+distillation``.

    Families appear in the order first applied, each once; an empty chain is ``baseline``.
    """
    families: list[str] = []
    for entry in chain:
        if entry.get("family") and entry["family"] not in families:  # plain fine-tuning has no family
            families.append(entry["family"])
    return "+".join(families) or "baseline"


def chain_method(chain: list[dict[str, Any]]) -> str:
    """The methods of a chain for display and grouping: each entry's ``method`` field, or its config type
    without ``Config`` (``channel+svd``); plain fine-tuning steps are left out; an empty chain is ``""``."""
    return "+".join(str(e.get("method") or e["type"].removesuffix("Config")) for e in chain if e.get("family"))
