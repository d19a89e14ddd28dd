"""Experiment steps shared by the family notebooks: fine-tuning with the shared trainer, the profile's step budgets
and seeds, teacher curves, pruned-and-fine-tuned models and MAC-matched pruning for cost-matched comparisons."""

from __future__ import annotations

import copy

import pandas as pd
import torch
from torch import nn

from gansurvey.benchmarks import get_benchmark
from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress import (
    ChannelPruneConfig,
    MagnitudePruneConfig,
    PruneConfig,
    prune,
    to_sparse_storage,
)
from gansurvey.config import profile_settings, resolve_device
from gansurvey.metrics.cost import count_macs
from gansurvey.records import curve_plateau
from gansurvey.train.gan import ExtraLoss, TrainResult, train_gan


def finetune(
    generator: nn.Module,
    benchmark: str | Benchmark,
    steps: int,
    discriminator: nn.Module | None = None,
    seed: int = 0,
    extra_losses: dict[str, ExtraLoss] | None = None,
    parameters: list[nn.Parameter] | None = None,
    adversarial_weight: float | None = None,
    device: str = "auto",
    progress: bool = False,
) -> TrainResult:
    """Train a copy of ``generator`` for ``steps`` steps with the benchmark's recipe; return it with its log.

    ``discriminator`` (copied, e.g. the teacher's) keeps the adversarial loss; ``None`` trains a fresh one of the
    benchmark's default size. ``adversarial_weight`` overrides the recipe's (0 gives pure supervised training).
    The input generator and discriminator are never modified.
    """
    bench = benchmark if isinstance(benchmark, Benchmark) else get_benchmark(benchmark)
    check_number("steps", steps, minimum=0, integer=True)
    model = copy.deepcopy(generator)
    disc = copy.deepcopy(discriminator) if discriminator is not None else bench.new_discriminator()
    config = bench.train_config(steps, seed, progress)
    if adversarial_weight is not None:
        config = type(config)(**{**config.__dict__, "adversarial_weight": adversarial_weight})
    log = train_gan(model, disc, bench.task(), config, extra_losses=extra_losses, parameters=parameters,
                    device=resolve_device(device))
    return TrainResult(model.cpu().eval(), log)


STEP_BUDGETS = ("finetune", "lottery")


def teacher_curves(benches: list[Benchmark], profile: str, seed: int = 0,
                   device: str = "auto") -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Each teacher's quality curve (``Benchmark.teacher_curve``) and a table saying whether it had flattened
    by the end of training (``reports.curve_plateau`` on the primary metric). Teachers trained without quality
    checks (the folder benchmarks' published recipe) have no curve and are left out."""
    curves = {b.name: b.teacher_curve(profile, seed, device) for b in benches}
    rows = [{"benchmark": b.name, "steps": int(curves[b.name]["step"].max()),
             **curve_plateau(curves[b.name], b.primary_metric, b.higher_is_better)}
            for b in benches if len(curves[b.name])]
    return {name: curve for name, curve in curves.items() if len(curve)}, pd.DataFrame(rows)


def budget_steps(profile: str, purpose: str, steps: int | None = None) -> int:
    """``steps`` if given, else the profile's budget for ``purpose``: ``finetune`` (every pruned model and
    student, the same for all techniques) or ``lottery`` (each lottery-ticket round on the toy)."""
    check_choice("step budget", purpose, STEP_BUDGETS)
    if steps is not None:
        return check_number(f"{purpose} steps", steps, minimum=0, integer=True)
    return getattr(profile_settings(profile), f"{purpose}_steps")


def run_seeds(profile: str, seed: int = 0, seeds: list[int] | None = None) -> list[int]:
    """``seeds`` if given, else the profile's number of seeds counted up from ``seed`` (quick: one, full: three)."""
    if seeds is None:
        check_number("seed", seed, minimum=0, integer=True)
        return [seed + i for i in range(profile_settings(profile).seeds)]
    if not seeds:
        raise GanSurveyError("seeds must name at least one seed, got an empty list")
    return [check_number("seed", s, minimum=0, integer=True) for s in seeds]


def match_channel_ratio(model: nn.Module, target_macs: int, example_input: torch.Tensor,
                        tolerance: float = 0.10) -> tuple[float, nn.Module]:
    """The channel-pruning ratio whose pruned ``model`` has MACs closest to ``target_macs`` (bisection).

    Raises when no ratio gets within ``tolerance`` (relative), so matched-cost comparisons stay honest.
    """
    check_number("target_macs", target_macs, minimum=1)
    low, high, best = 0.0, 0.95, None
    for _ in range(12):
        ratio = round((low + high) / 2, 4)
        pruned = prune(model, ChannelPruneConfig(ratio=ratio), example_input)
        macs = count_macs(pruned, example_input)
        if best is None or abs(macs - target_macs) < abs(best[2] - target_macs):
            best = (ratio, pruned, macs)
        if macs > target_macs:
            low = ratio
        else:
            high = ratio
    ratio, pruned, macs = best
    if abs(macs - target_macs) > tolerance * target_macs:
        raise GanSurveyError(f"no channel ratio reaches {target_macs} MACs within {tolerance:.0%} (closest: "
                             f"{macs} at ratio {ratio})")
    return ratio, pruned


def pruned_and_finetuned(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, config: PruneConfig,
                         steps: int, seed: int = 0, device: str = "auto",
                         discriminator_ratio: float = 0.0) -> nn.Module:
    """Prune the teacher, fine-tune it against a copy of its discriminator, and store sparse layers packed.

    ``discriminator_ratio`` > 0 also removes that fraction of the discriminator's channels (L1 criterion)
    before fine-tuning, so that a weakened generator is not fine-tuned against an overpowering critic.
    """
    check_number("discriminator_ratio", discriminator_ratio, minimum=0.0, below=1.0)
    pruned = prune(teacher, config, bench.example_input(2))
    if discriminator_ratio > 0:
        discriminator = prune(discriminator, ChannelPruneConfig(ratio=discriminator_ratio))
    tuned = finetune(pruned, bench, steps, discriminator, seed=seed, device=device).model
    return to_sparse_storage(tuned) if isinstance(config, MagnitudePruneConfig) else tuned


SAMPLE_GRID = 16  # images kept per arm for the notebooks' sample grids
