"""Pipelines: compression configs of any families chained with declared training steps between them.

A pipeline is a list of *stages*: :class:`~gansurvey.compress.CompressConfig` objects (applied with
:func:`~gansurvey.compress.compress`) and training steps (:class:`Finetune`, :class:`Distill`) that train the
model built so far with the shared trainer. ``run_pipeline`` checks the whole order before any work, then runs
the stages and records every one in the model's ``compression`` chain, training steps included (as
``{"type": "Finetune", "steps": ...}``), so a measured record says exactly how its model was made.

Order rules (:func:`check_pipeline`, :func:`gansurvey.compress.check_order`): each compression stage changes
what the next one is given, and not every family can work on every other's layers. A config's ``stage_rank``
says where it may come: a student is built first, channels are removed before any per-weight change, weights are
pruned or factorized before they are quantized, and encoding (entropy-coded bitstreams) comes last. A stage
whose rank is below one already applied is refused, with the rule it breaks, before any work. Training steps may
come anywhere after the first stage.

This module measures nothing: the search over pipelines lives in the study layer, beside the other sweeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress.base import CompressConfig, check_order, compress, compression_chain

__all__ = ["Distill", "Finetune", "Stage", "check_pipeline", "describe", "run_pipeline"]

@dataclass(frozen=True)
class Finetune:
    """A training step: fine-tune the model built so far with the benchmark's recipe for ``steps`` steps
    (``None``: the profile's fine-tuning budget, the same for every arm)."""

    steps: int | None = None

    def __post_init__(self) -> None:
        if self.steps is not None:
            check_number("fine-tuning steps", self.steps, minimum=0, integer=True)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "Finetune", "family": "", **dataclasses.asdict(self)}


DISTILL_VARIANTS = ("output", "feature", "feature+adv")


@dataclass(frozen=True)
class Distill:
    """A training step: distil the teacher into the model built so far (one of the distillation variants of
    :func:`gansurvey.experiments.distillation.distill_config`) for ``steps`` steps (``None``: the profile's budget)."""

    variant: str = "output"
    steps: int | None = None

    def __post_init__(self) -> None:
        check_choice("distillation variant", self.variant, DISTILL_VARIANTS)
        if self.steps is not None:
            check_number("distillation steps", self.steps, minimum=0, integer=True)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "Distill", "family": "distillation", "method": "distillation",
                **dataclasses.asdict(self)}


TrainStep = Finetune | Distill
Stage = CompressConfig | TrainStep


def check_pipeline(stages: Sequence[Stage], model: nn.Module | None = None) -> list[Stage]:
    """The stages as a list, once their order is known to work; a clear error otherwise (before any work).

    Configs follow :func:`gansurvey.compress.check_order` (``model``'s own chain counts as applied before);
    training steps may stand anywhere after a compression stage.
    """
    if isinstance(stages, (CompressConfig, Finetune, Distill)):
        stages = [stages]
    if not isinstance(stages, (list, tuple)) or not stages:
        raise GanSurveyError(f"a pipeline is a non-empty list of configs and training steps, got {stages!r}")
    for i, stage in enumerate(stages):
        if not isinstance(stage, (CompressConfig, Finetune, Distill)):
            raise GanSurveyError(f"stage {i + 1} is {stage!r}; allowed: compression configs, Finetune, Distill")
    compressed_before = model is not None and bool(compression_chain(model))
    if isinstance(stages[0], (Finetune, Distill)) and not compressed_before:
        raise GanSurveyError(f"stage 1 is a training step ({stages[0]}); a pipeline starts with a compression "
                             "config (train the teacher itself with the benchmark)")
    configs = [(i + 1, s) for i, s in enumerate(stages) if isinstance(s, CompressConfig)]
    check_order([s for _, s in configs], model, positions=[i for i, _ in configs])
    encoded = model is not None and any(e.get("family") == "encoding" and not e.get("baked")
                                        for e in compression_chain(model))
    for i, stage in enumerate(stages):
        if isinstance(stage, CompressConfig) and stage.family == "encoding":
            encoded = True
        elif isinstance(stage, (Finetune, Distill)) and encoded:
            raise GanSurveyError(f"stage {i + 1} is a training step ({stage}) after encoding: encoded weights are "
                                 "fixed bitstreams that training cannot change; fine-tune before the encoding "
                                 "stage")
    return list(stages)


def describe(stages: Sequence[Stage]) -> str:
    """A short display label: ``channel 0.5 -> finetune -> QuantConfig w4`` style, for tables and plots."""
    parts = []
    for stage in stages:
        if isinstance(stage, Finetune):
            parts.append("finetune")
        elif isinstance(stage, Distill):
            parts.append(f"distill ({stage.variant})")
        else:
            fields = {f.name: getattr(stage, f.name) for f in dataclasses.fields(stage)}
            main = next((f"{k} {v}" for k, v in fields.items() if isinstance(v, (int, float))
                         and not isinstance(v, bool)), "")
            parts.append(f"{stage.method or type(stage).__name__.removesuffix('Config')} {main}".strip())
    return " -> ".join(parts)


def run_pipeline(model: nn.Module, stages: Sequence[Stage], *, train: Any = None,
                 example_input: Any = None) -> nn.Module:
    """Apply ``stages`` to a copy of ``model``: configs through :func:`compress`, training steps through
    ``train(model, step) -> trained model`` (the study layer passes the benchmark's trainer). The order is
    checked first; ``model`` is never modified.

    Args:
        model: the starting model (usually the teacher).
        stages: configs and training steps, in order.
        train: called for each training step; required when the pipeline has one.
        example_input: passed to ``compress`` (channel pruning traces it, calibration uses it).

    Example::

        small = run_pipeline(teacher, [ChannelPruneConfig(0.5), Finetune(), QuantConfig(weight_bits=4)],
                             train=lambda m, step: experiments.finetune(m, bench, step.steps or 40).model)
    """
    stages = check_pipeline(stages, model)
    if any(isinstance(s, (Finetune, Distill)) for s in stages) and not callable(train):
        raise GanSurveyError("this pipeline has training steps; pass train=(model, step) -> trained model")
    out = model
    for stage in stages:
        if isinstance(stage, (Finetune, Distill)):
            chain = compression_chain(out)
            trained = train(out, stage)
            if not isinstance(trained, nn.Module):
                raise GanSurveyError(f"train returned {type(trained).__name__}, not the trained module")
            trained.compression = chain + [stage.to_dict()]
            out = trained
        else:
            out = compress(out, stage, example_input)
    return out
