"""Notebook 01's runs (pruning): every pruning configuration fine-tuned and measured, and the lottery-ticket arms
over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.compress import (
    MagnitudePruneConfig,
    PruneConfig,
    lottery_ticket,
    prune,
    random_reinit,
    to_sparse_storage,
)
from gansurvey.experiments.common import SAMPLE_GRID, finetune, pruned_and_finetuned, sweep_seeds
from gansurvey.experiments.executor import Task, gathered, run_tasks
from gansurvey.measuring import measure
from gansurvey.records import Measurement


def pruning_sweep(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, configs: dict[str, PruneConfig],
                  steps: int, *, seed: int = 0, seeds: Sequence[int] | None = None, device: str = "auto",
                  executor: str = "serial", address: str | None = None,
                  **measure_kwargs: Any) -> tuple[list[Measurement], dict[str, torch.Tensor]]:
    """Each labelled config applied to the teacher and measured as pruned (technique ``"<label> (no
    fine-tuning)"``, once: pruning the teacher involves no chance) and after :func:`pruned_and_finetuned` with the
    same ``steps`` for every config, once per seed of ``seeds`` (default: ``seed`` alone).

    ``measure_kwargs`` go to :func:`gansurvey.measure` (notebook, profile, latency_batch...). Returns the records
    and, per label, a grid of samples from the fine-tuned model of the first seed. Each pruned teacher and each
    fine-tuning seed is one task of ``executor`` (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``:
    a Ray cluster to join).
    """
    seeds = sweep_seeds("pruning_sweep", seed, seeds)
    common = dict(bench=bench, teacher=teacher, device=device, measure_kwargs=measure_kwargs)
    tasks = []
    for label, config in configs.items():
        settings = {**config.__dict__, "finetune_steps": steps}
        tasks.append(Task(f"{label} (no fine-tuning)", None, _pruned_run, dict(
            common, config=config, label=label, settings=settings, seed=seeds[0])))
        tasks += [Task(label, run_seed, _pruned_tuned_run, dict(
            common, discriminator=discriminator, config=config, steps=steps, label=label, settings=settings,
            seed=run_seed, grid=run_seed == seeds[0])) for run_seed in seeds]
    return gathered(run_tasks(tasks, executor, address, desc=f"{bench.name}: pruning", device=device))


def _pruned_run(bench: Benchmark, teacher: nn.Module, config: PruneConfig, label: str, settings: dict, seed: int,
                device: str, measure_kwargs: dict) -> tuple[Measurement, dict[str, torch.Tensor]]:
    raw = prune(teacher, config, bench.example_input(2))
    raw = to_sparse_storage(raw) if isinstance(config, MagnitudePruneConfig) else raw
    return measure(raw, bench, technique=f"{label} (no fine-tuning)", family="pruning",
                   settings={**settings, "finetuned": False}, seed=seed, device=device, **measure_kwargs), {}


def _pruned_tuned_run(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, config: PruneConfig,
                      steps: int, label: str, settings: dict, seed: int, grid: bool, device: str,
                      measure_kwargs: dict) -> tuple[Measurement, dict[str, torch.Tensor]]:
    tuned = pruned_and_finetuned(bench, teacher, discriminator, config, steps, seed, device)
    record = measure(tuned, bench, technique=label, family="pruning", settings={**settings, "finetuned": True},
                     seed=seed, device=device, **measure_kwargs)
    return record, {label: bench.generate(tuned, bench.eval_sample_count(SAMPLE_GRID), seed)} if grid else {}


LOTTERY_ARMS = ("dense", "lottery ticket", "random re-init")


def lottery_arms(bench: Benchmark, rounds: int, sparsity: float, steps: int, seeds: list[int], *,
                 device: str = "auto", executor: str = "serial", address: str | None = None,
                 **measure_kwargs: Any) -> tuple[list[Measurement], pd.DataFrame]:
    """The lottery-ticket experiment (Frankle & Carbin 2019; Chen et al. 2021 for GANs), once per seed: a fresh
    generator trained ``steps`` steps (plain adversarial training: no teacher to follow from initial weights),
    the ticket found by ``rounds`` rounds of magnitude pruning to ``sparsity`` with the survivors rewound to the
    fresh weights and retrained, and the same masks from a random re-initialisation trained the same way. Each is
    measured: techniques :data:`LOTTERY_ARMS`. Returns the records and every seed's pruning history. Each seed is
    one task of ``executor`` (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster)."""
    measure_kwargs.pop("seed", None)  # each record takes its seed from ``seeds``
    tasks = [Task("lottery ticket", seed, _lottery_run, dict(
        bench=bench, rounds=rounds, sparsity=sparsity, steps=steps, seed=seed, device=device,
        measure_kwargs=measure_kwargs)) for seed in seeds]
    results = run_tasks(tasks, executor, address, desc=f"{bench.name}: lottery ticket", device=device)
    records = [record for arms, _ in results for record in arms]
    return records, pd.concat([history for _, history in results], ignore_index=True)


def _lottery_run(bench: Benchmark, rounds: int, sparsity: float, steps: int, seed: int, device: str,
                 measure_kwargs: dict) -> tuple[list[Measurement], pd.DataFrame]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the seed decides the initial weights, not the global state
        fresh = bench.new_generator()

    def train(g: nn.Module) -> nn.Module:
        return finetune(g, bench, steps, None, seed=seed, device=device, guide="adversarial").model

    dense = train(fresh)
    ticket = lottery_ticket(dense, train, rounds=rounds, final_sparsity=sparsity, rewind_state=fresh.state_dict(),
                            train_first=False)
    control = train(random_reinit(ticket.initial, seed=seed + 1))
    models = dict(zip(LOTTERY_ARMS, (dense, to_sparse_storage(ticket.ticket), to_sparse_storage(control)),
                      strict=True))
    records = [measure(model, bench, technique=arm, family="baseline" if arm == "dense" else "pruning",
                       settings={"sparsity": 0.0 if arm == "dense" else sparsity, "rounds": rounds, "steps": steps},
                       seed=seed, device=device, **measure_kwargs) for arm, model in models.items()]
    return records, pd.DataFrame(ticket.history).assign(seed=seed)
