"""Experiment steps shared by the family notebooks: fine-tuning with the shared trainer, the profile's step budgets
and seeds, teacher curves, pruned-and-fine-tuned models and MAC-matched pruning for cost-matched comparisons."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from functools import partial

import pandas as pd
import torch
from torch import nn

from gansurvey import zoo
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
from gansurvey.compress.distillation import DistillConfig, distillation_losses
from gansurvey.config import ProfileSettings, progress_enabled, resolve_device
from gansurvey.metrics.cost import count_macs
from gansurvey.metrics.curves import curve_plateau
from gansurvey.train.gan import CHECKPOINT_SECONDS, ExtraLoss, TrainResult, train_gan

#: How a compressed model is fine-tuned: with the teacher as a guide (an L1 pull toward the teacher's outputs beside
#: the adversarial term against the teacher's discriminator, as GAN Compression (Li et al. 2020) and CAT (Jin et
#: al. 2021) train their compressed generators), or with the adversarial recipe alone (the named variant that
#: shows what the teacher signal buys).
GUIDES = ("teacher", "adversarial")
#: Which recipe trains: the benchmark's fine-tuning recipe, or the teacher's (for models trained from scratch).
RECIPES = ("finetune", "teacher")
#: Output-distillation weight per benchmark: the L1 between student and teacher images is ~0.1-0.5 per pixel,
#: so it is scaled to weigh like the benchmark's other terms (pix2pix uses 100 for its L1 to the target; the
#: CycleGAN recipe weighs its L1 cycle terms 10).
OUTPUT_WEIGHTS = {"gaussians-mlp": 10.0, "mnist-dcgan": 10.0, "edges2digits-resnet": 100.0, "mnist-mlp": 10.0,
                  "pix2pix-folder": 100.0, "cyclegan-folder": 10.0}


def output_weight(bench: Benchmark) -> float:
    """The benchmark's output-distillation weight (:data:`OUTPUT_WEIGHTS`), or a clear error."""
    if bench.name not in OUTPUT_WEIGHTS:
        raise GanSurveyError(f"no output-distillation weight for benchmark {bench.name!r}; known: "
                             f"{', '.join(map(repr, OUTPUT_WEIGHTS))} (add it to experiments.common.OUTPUT_WEIGHTS)")
    return OUTPUT_WEIGHTS[bench.name]


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
    progress: bool | None = None,
    teacher: nn.Module | None = None,
    guide: str = "teacher",
    curve_every: int | None = None,
    profile: ProfileSettings | None = None,
    recipe: str = "finetune",
    resumable: bool = True,
) -> TrainResult:
    """Train a copy of ``generator`` for ``steps`` steps with the benchmark's recipe; return it with its log.

    ``guide="teacher"`` (the default of every compressed arm) adds an output-distillation term toward ``teacher``
    (required then), weighted by :data:`OUTPUT_WEIGHTS`; ``guide="adversarial"`` is plain adversarial fine-tuning.
    ``discriminator`` (copied, e.g. the teacher's) keeps the adversarial loss; ``None`` trains a fresh one of the
    benchmark's default size. ``adversarial_weight`` overrides the recipe's (0 gives pure supervised training).
    ``recipe="teacher"`` trains with the teacher's own recipe (``Benchmark.teacher_config``: a model trained from
    scratch learns as the teacher did) instead of the fine-tuning one. ``curve_every`` scores the model every that
    many steps (on the ``profile`` settings' evaluation samples; required then) without changing the run: its
    recovery curve, in the log. The input generator, teacher and discriminator are never modified.
    ``progress`` shows the training bar (None: unless ``GANSURVEY_PROGRESS=0``, see
    :func:`~gansurvey.config.progress_enabled`).

    ``resumable`` checkpoints the run into ``artifacts/checkpoints/`` every
    :data:`~gansurvey.train.gan.CHECKPOINT_SECONDS` of training (a shorter run writes none), so that the same call
    after a kill resumes there and returns the weights of an uninterrupted run; the file is named by a digest of
    everything that decides the run (:func:`gansurvey.zoo.training_checkpoint`) and removed when the run completes.
    A run with the caller's own ``extra_losses`` is not checkpointed: no digest tells such terms apart.
    """
    bench = get_benchmark(benchmark)
    check_number("steps", steps, minimum=0, integer=True)
    check_choice("fine-tuning guide", guide, GUIDES)
    if guide == "teacher" and teacher is None:
        raise GanSurveyError("fine-tuning with guide='teacher' needs the teacher generator (teacher=...); "
                             "guide='adversarial' fine-tunes without it")
    model = copy.deepcopy(generator)
    if discriminator is not None:
        disc = copy.deepcopy(discriminator)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # a fresh critic's weights follow the run's seed, not the global state
            disc = bench.new_discriminator()
    check_choice("training recipe", recipe, RECIPES)
    progress = progress_enabled() if progress is None else progress
    config = (bench.teacher_config if recipe == "teacher" else bench.train_config)(steps, seed, progress)
    if adversarial_weight is not None:
        config = dataclasses.replace(config, adversarial_weight=adversarial_weight)
    extra, params = dict(extra_losses or {}), list(parameters or [])
    if guide == "teacher":
        terms, adapters = distillation_losses(teacher, model, DistillConfig(output_weight=output_weight(bench)))
        extra, params = {**terms, **extra}, params + adapters
    monitor = None
    if curve_every:
        if profile is None:
            raise GanSurveyError("curve_every scores the model on the profile's evaluation samples: pass "
                                 "profile=profile_settings(...)")
        config = dataclasses.replace(config, log_every=math.gcd(config.log_every, curve_every),
                                     monitor_every=curve_every)
        monitor = partial(bench.quality, profile=profile, seed=seed, device="cpu", inception_samples=0)
    task, device = bench.task(), resolve_device(device)
    checkpoint = None
    if resumable and not extra_losses:
        checkpoint = zoo.training_checkpoint(
            "finetune", benchmark=bench.name, task=task.fingerprint(), generator=model, discriminator=disc,
            teacher=teacher if guide == "teacher" else None, parameters=params, losses=sorted(extra),
            config=dataclasses.replace(config, progress=False), curve_profile=profile if curve_every else None,
            device=device.type)
    log = train_gan(model, disc, task, config, extra_losses=extra, parameters=params, device=device,
                    monitor=monitor, checkpoint=checkpoint, checkpoint_every=None,
                    checkpoint_seconds=CHECKPOINT_SECONDS)
    return TrainResult(model.cpu().eval(), log)


def recovery_curve(result: TrainResult, bench: Benchmark) -> pd.DataFrame:
    """The quality checks in a fine-tuning log (``finetune(..., curve_every=...)``): step and every metric."""
    return pd.DataFrame([entry for entry in result.log if bench.primary_metric in entry])


STEP_BUDGETS = ("finetune", "lottery")


def teacher_curves(benches: list[Benchmark], profile: str, seed: int = 0,
                   device: str = "auto") -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Each teacher's quality curve (``Benchmark.teacher_curve``) and a table saying whether it had flattened
    by the end of training (``metrics.curves.curve_plateau`` on the primary metric). Teachers trained without quality
    checks (the folder benchmarks' published recipe) have no curve and are left out."""
    curves = {b.name: b.teacher_curve(profile, seed, device) for b in benches}
    rows = [{"benchmark": b.name, "steps": int(curves[b.name]["step"].max()),
             **curve_plateau(curves[b.name], b.primary_metric, b.higher_is_better)}
            for b in benches if len(curves[b.name])]
    return {name: curve for name, curve in curves.items() if len(curve)}, pd.DataFrame(rows)


def budget_steps(profile: ProfileSettings, purpose: str, steps: int | None = None) -> int:
    """``steps`` if given, else the profile's budget for ``purpose``: ``finetune`` (every pruned model and
    student, the same for all techniques) or ``lottery`` (each lottery-ticket round on the toy)."""
    check_choice("step budget", purpose, STEP_BUDGETS)
    if steps is not None:
        return check_number(f"{purpose} steps", steps, minimum=0, integer=True)
    return getattr(profile, f"{purpose}_steps")


#: What a "teacher's steps plus the fine-tuning" budget trains: 02's equal-total students, or the dense controls.
TOTAL_BUDGETS = ("equal-total", "dense")


def total_steps(profile: ProfileSettings, benchmark: str | Benchmark, finetune_steps: int | None = None,
                purpose: str = "equal-total") -> int:
    """Steps a model trained from scratch for the whole budget trains for: the teacher's steps plus the fine-tuning
    budget (``finetune_steps`` or the profile's), i.e. everything a pruned-and-fine-tuned model was trained for,
    capped by the profile for that ``purpose`` (:data:`TOTAL_BUDGETS`): ``equal-total`` students at
    ``total_steps_cap``, dense controls at ``dense_steps_cap``. The two caps are apart because dense controls are
    shipped, keyed by their steps, while the equal-total arm is sized to the profile's time.

    Example:
        >>> total_steps(profile_settings("full"), "mnist-dcgan", 500, purpose="dense")  # doctest: +SKIP
        20500
    """
    check_choice("total budget", purpose, TOTAL_BUDGETS)
    bench = get_benchmark(benchmark)
    total = bench.teacher_steps(profile.name) + budget_steps(profile, "finetune", finetune_steps)
    cap = profile.total_steps_cap if purpose == "equal-total" else profile.dense_steps_cap
    return total if cap is None else min(total, cap)


def sweep_seeds(what: str, seed: int = 0, seeds: Sequence[int] | None = None) -> list[int]:
    """The seeds a sweep runs: ``seeds`` when given (at least one), else ``seed`` alone."""
    chosen = [seed] if seeds is None else list(seeds)
    if not chosen:
        raise GanSurveyError(f"{what} needs at least one seed, got an empty list")
    return chosen


def run_seeds(profile: ProfileSettings, seed: int = 0, seeds: list[int] | None = None) -> list[int]:
    """``seeds`` if given, else the profile's number of seeds counted up from ``seed`` (quick: one, full: three)."""
    if seeds is None:
        check_number("seed", seed, minimum=0, integer=True)
        return [seed + i for i in range(profile.seeds)]
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
    """Prune the teacher, fine-tune it against a copy of its discriminator with the teacher as a guide
    (:func:`finetune`), and store sparse layers packed.

    ``discriminator_ratio`` > 0 also removes that fraction of the discriminator's channels (L1 criterion)
    before fine-tuning, so that a weakened generator is not fine-tuned against an overpowering critic.
    """
    check_number("discriminator_ratio", discriminator_ratio, minimum=0.0, below=1.0)
    pruned = prune(teacher, config, bench.example_input(2))
    if discriminator_ratio > 0:
        discriminator = prune(discriminator, ChannelPruneConfig(ratio=discriminator_ratio))
    tuned = finetune(pruned, bench, steps, discriminator, seed=seed, device=device, teacher=teacher).model
    return to_sparse_storage(tuned) if isinstance(config, MagnitudePruneConfig) else tuned


SAMPLE_GRID = 16  # images kept per arm for the notebooks' sample grids
