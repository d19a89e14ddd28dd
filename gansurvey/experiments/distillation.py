"""The sweeps of notebook 02 (distillation): distilled students of each variant and width, under both training
budgets (equal fine-tuning steps, equal total steps)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.claims.common import as_bool
from gansurvey.claims.selection import select_best
from gansurvey.compress import (
    ChannelPruneConfig,
    DistillConfig,
    distill,
    make_student,
)
from gansurvey.config import ProfileSettings, resolve_device
from gansurvey.experiments.common import (
    SAMPLE_GRID,
    finetune,
    match_channel_ratio,
    output_weight,
    pruned_and_finetuned,
    total_steps,
)
from gansurvey.experiments.executor import Task, gathered, run_tasks
from gansurvey.measuring import measure
from gansurvey.metrics.cost import count_macs
from gansurvey.records import BUDGETS, Measurement, budget_of, records_frame, settings_of

DISTILL_VARIANTS = ("scratch", "output", "feature", "feature+adv")






#: Distillation variants of the equal-total arm when the profile names none: the baseline student and the
#: distillation variant that did best in the equal-fine-tuning arm (see :func:`best_distillation_variant`).
TOTAL_BUDGET_FALLBACK = "feature"


def total_budget_widths(profile: ProfileSettings, widths: list[float]) -> list[float]:
    """The student widths the equal-total arm runs: the profile's ``total_budget_widths`` when it sets them
    (kept to those in ``widths``), else every width of the sweep (quick has one)."""
    chosen = profile.total_budget_widths
    return [w for w in widths if chosen is None or w in chosen] or list(widths[:1])


def best_distillation_variant(records: Any, benchmark: str, default: str = TOTAL_BUDGET_FALLBACK) -> str:
    """The distillation variant (not ``scratch``) with the best mean quality over widths and seeds in the
    equal-fine-tuning arm of ``benchmark``, chosen by :func:`gansurvey.claims.selection.select_best` (on the
    records' validation samples, so the reported numbers do not pick it); ``default`` when that arm has no
    distilled records.

    The equal-total arm trains only this variant beside ``scratch``: it is distillation's best measured recipe on
    the benchmark, so the longer budget gives distillation its best chance, at a quarter of the cost of all four.

    Args:
        records: measured records (a DataFrame or a list of :class:`Measurement`).
        benchmark: which benchmark's records to read.
        default: the variant when nothing can be read.

    Example:
        >>> best_distillation_variant(records, "mnist-dcgan")  # doctest: +SKIP
        'feature'
    """
    check_choice("distillation variant", default, DISTILL_VARIANTS)
    frame = records if isinstance(records, pd.DataFrame) else records_frame(list(records))
    rows = frame[(frame["benchmark"] == benchmark) & (frame["family"] == "distillation")]
    rows = rows[rows["settings"].map(lambda s: budget_of(s) == "equal-finetune").astype(bool)]
    rows = rows.assign(variant=rows["settings"].map(lambda s: settings_of(s).get("variant")))
    rows = rows[rows["variant"].isin(DISTILL_VARIANTS) & rows["primary_value"].notna()]
    if rows.empty:
        return default
    return select_best(rows, "variant", as_bool(rows["higher_is_better"].iloc[0])).choice


def student_widths(profile: ProfileSettings, widths: list[float] | None = None) -> list[float]:
    """``widths`` if given, else the profile's student widths (fractions of the teacher's width)."""
    if widths is None:
        return list(profile.student_widths)
    if not widths:
        raise GanSurveyError("widths must name at least one student width, got an empty list")
    # The same bounds make_student applies, checked before any training starts.
    return [check_number("student width (a fraction of the teacher's)", w, minimum=1e-3, maximum=1.0)
            for w in widths]


def distill_config(bench: Benchmark, variant: str) -> DistillConfig | None:
    """The :data:`DISTILL_VARIANTS`: ``scratch`` (no teacher: ``None``), output L1, output + intermediate
    features through 1x1 adapters, and the latter plus the adversarial term (the teacher's discriminator)."""
    check_choice("distillation variant", variant, DISTILL_VARIANTS)
    weight = output_weight(bench)
    return {
        "scratch": None,
        "output": DistillConfig(output_loss="l1", output_weight=weight),
        "feature": DistillConfig(output_loss="l1", output_weight=weight, feature_weight=1.0),
        "feature+adv": DistillConfig(output_loss="l1", output_weight=weight, feature_weight=1.0,
                                     adversarial_weight=1.0),
    }[variant]


def distilled_student(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, variant: str,
                      student: nn.Module | float, steps: int, seed: int = 0, device: str = "auto") -> nn.Module:
    """Train a student (a width fraction of the teacher, or a given module) with one distillation variant.

    ``scratch`` trains the student alone with the benchmark's adversarial recipe and a fresh discriminator.
    The seed decides every random choice (a width's student and its feature adapters, a given student's adapters),
    whatever ran before.
    """
    config = distill_config(bench, variant)
    given = isinstance(student, nn.Module)
    if not given:
        torch.manual_seed(seed)
        student = make_student(teacher, student)
    if config is None:
        return finetune(student, bench, steps, None, seed=seed, device=device, guide="adversarial").model
    with torch.random.fork_rng(devices=[], enabled=given):
        if given:  # its feature adapters start from the seed, not from the global state the work before it left
            torch.manual_seed(seed)
        return distill(teacher, student, bench.task(), config, bench.train_config(steps, seed, progress=False),
                       discriminator=discriminator, device=resolve_device(device)).model


def distillation_sweep(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, widths: list[float],
                       seeds: list[int], steps: int, *, variants: tuple[str, ...] = DISTILL_VARIANTS,
                       budget: str = "equal-finetune", pruned: bool | None = None, mac_tolerance: float = 0.10,
                       device: str = "auto", executor: str = "serial", address: str | None = None,
                       **measure_kwargs: Any) -> tuple[list[Measurement], dict[str, torch.Tensor]]:
    """Students of each width and seed trained with each distillation variant for ``steps`` steps, beside the
    teacher pruned by channels to the student's MACs (within ``mac_tolerance``) and fine-tuned for ``steps``, and
    that pruned teacher used as the start of a feature-distilled student (pruning + distillation).

    ``budget`` says which comparison the students belong to (:data:`BUDGETS`) and is stored in every record's
    settings with ``steps`` and the ``variant``: ``equal-finetune`` (students get the pruned models' fine-tuning
    steps) or ``equal-total`` (pass :func:`total_steps` as ``steps``: students train as long as the teacher plus
    fine-tuning). The pruned arms run only when ``pruned`` is true, by default only for ``equal-finetune``: a
    pruned-and-fine-tuned model is the reference of both budgets, so an equal-total call adds students only.

    Techniques are labelled ``"<variant> w<width>"`` (``"... (equal total)"`` for that budget),
    ``"channels <ratio> (matches w<width>)"`` and ``"pruned+feature (matches w<width>)"``; samples (from the last
    seed) are keyed the same way. Group records by ``family`` and ``settings``, not by these labels.

    Args:
        bench, teacher, discriminator: the benchmark and its trained teacher pair (never modified).
        widths: student widths (fractions of the teacher's width).
        seeds: seeds; each arm is trained once per seed.
        steps: training steps of every student (and of the pruned models' fine-tuning).
        variants: distillation variants (:data:`DISTILL_VARIANTS`).
        budget: ``equal-finetune`` or ``equal-total``.
        pruned: run the pruned and pruned+distilled arms (default: only for ``equal-finetune``).
        mac_tolerance: how close (relative) the pruned teacher's MACs must come to the student's.
        device: where to train.
        executor: ``"serial"`` or ``"ray"``: each student, pruned model and pruned student of a width and seed is
            one task (:func:`~gansurvey.experiments.executor.run_tasks`).
        address: a Ray cluster to join (``None``: ``RAY_ADDRESS``, else a local Ray).
        measure_kwargs: passed to :func:`gansurvey.measure` (notebook, profile, latency_batch...).

    Example:
        >>> records, grids = distillation_sweep(bench, g, d, [0.5], [0], total_steps("quick", bench.name),
        ...                                     variants=("scratch", "feature"), budget="equal-total")  # doctest: +SKIP
    """
    for variant in variants:
        check_choice("distillation variant", variant, DISTILL_VARIANTS)
    check_choice("training budget", budget, BUDGETS)
    check_number("steps", steps, minimum=0, integer=True)
    pruned = budget == "equal-finetune" if pruned is None else pruned
    suffix = " (equal total)" if budget == "equal-total" else ""
    x = bench.example_input(1)
    common = dict(bench=bench, teacher=teacher, discriminator=discriminator, steps=steps, device=device,
                  measure_kwargs=measure_kwargs)
    tasks = []
    for width in widths:
        # The matched pruned teacher is also the (copied, never modified) start of every pruned+feature student.
        ratio, pruned_start = match_channel_ratio(teacher, count_macs(make_student(teacher, width), x), x,
                                                  mac_tolerance) if pruned else (None, None)
        settings = {"width": width, "steps": steps, "budget": budget}
        for seed in seeds:
            for variant in variants:
                label = f"{variant} w{width}{suffix}"
                family = "from-scratch" if variant == "scratch" else "distillation"
                tasks.append(Task(label, seed, _student_run, dict(
                    common, variant=variant, student=width, label=label, family=family,
                    settings={**settings, "variant": variant}, seed=seed)))
            if not pruned:
                continue
            label = f"channels {ratio:.2f} (matches w{width})"
            tasks.append(Task(label, seed, _matched_pruning_run, dict(
                common, ratio=ratio, label=label, settings={**settings, "ratio": ratio, "finetuned": True},
                seed=seed)))
            label = f"pruned+feature (matches w{width})"
            tasks.append(Task(label, seed, _student_run, dict(
                common, variant="feature", student=pruned_start, label=label, family="pruning+distillation",
                settings={**settings, "ratio": ratio, "finetuned": True, "variant": "feature"}, seed=seed)))
    return gathered(run_tasks(tasks, executor, address, desc=f"{bench.name}: distillation", device=device))


def _student_run(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, variant: str,
                 student: nn.Module | float, steps: int, label: str, family: str, settings: dict, seed: int,
                 device: str, measure_kwargs: dict) -> tuple[Measurement, dict[str, torch.Tensor]]:
    model = distilled_student(bench, teacher, discriminator, variant, student, steps, seed, device)
    record = measure(model, bench, technique=label, family=family, settings=settings, seed=seed, device=device,
                     **measure_kwargs)
    return record, {label: bench.generate(model, bench.eval_sample_count(SAMPLE_GRID), seed)}


def _matched_pruning_run(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, ratio: float, steps: int,
                         label: str, settings: dict, seed: int, device: str,
                         measure_kwargs: dict) -> tuple[Measurement, dict[str, torch.Tensor]]:
    tuned = pruned_and_finetuned(bench, teacher, discriminator, ChannelPruneConfig(ratio=ratio), steps, seed, device)
    record = measure(tuned, bench, technique=label, family="pruning", settings=settings, seed=seed, device=device,
                     **measure_kwargs)
    return record, {label: bench.generate(tuned, bench.eval_sample_count(SAMPLE_GRID), seed)}


def equal_total_sweep(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, records: Any,
                      profile: ProfileSettings, widths: list[float], seeds: list[int],
                      finetune_steps: int | None = None,
                      *, mac_tolerance: float = 0.10, device: str = "auto", executor: str = "serial",
                      address: str | None = None, **measure_kwargs: Any,
                      ) -> tuple[list[Measurement], dict[str, torch.Tensor], str]:
    """The equal-total-budget arm of ``bench``: ``scratch`` and the best distillation variant of the
    equal-fine-tuning arm in ``records`` (:func:`best_distillation_variant`), each trained for
    :func:`total_steps` steps at :func:`total_budget_widths`, for every seed. Pruned models are not re-run:
    those of the equal-fine-tuning arm are the reference of both budgets.

    Args:
        bench, teacher, discriminator: the benchmark and its trained teacher pair.
        records: the equal-fine-tuning arm's records (they choose the distillation variant).
        profile: the profile's settings (teacher steps, widths; also recorded by :func:`gansurvey.measure`).
        widths, seeds: the sweep's widths and seeds.
        finetune_steps: the fine-tuning budget (``None``: the profile's).
        mac_tolerance, device, executor, address, measure_kwargs: as :func:`distillation_sweep`.

    Returns:
        The records, the sample grids, and the chosen distillation variant.

    Example:
        >>> more, grids, variant = equal_total_sweep(bench, g, d, records, quick, [0.5], [0])  # doctest: +SKIP
    """
    variant = best_distillation_variant(records, bench.name)
    steps = total_steps(profile, bench, finetune_steps)
    swept, grids = distillation_sweep(bench, teacher, discriminator, total_budget_widths(profile, widths), seeds,
                                      steps, variants=("scratch", variant), budget="equal-total",
                                      mac_tolerance=mac_tolerance, device=device, executor=executor,
                                      address=address, profile=profile, **measure_kwargs)
    return swept, grids, variant
