"""Notebook 01's runs (pruning): every pruning configuration fine-tuned and measured, and the lottery-ticket arms
over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError
from gansurvey.compress import (
    MagnitudePruneConfig,
    PruneConfig,
    lottery_ticket,
    prune,
    random_reinit,
    to_sparse_storage,
)
from gansurvey.experiments.common import SAMPLE_GRID, finetune, pruned_and_finetuned
from gansurvey.measuring import measure
from gansurvey.records import Measurement


def pruning_sweep(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, configs: dict[str, PruneConfig],
                  steps: int, *, seed: int = 0, seeds: Sequence[int] | None = None, device: str = "auto",
                  **measure_kwargs: Any) -> tuple[list[Measurement], dict[str, torch.Tensor]]:
    """Each labelled config applied to the teacher and measured as pruned (technique ``"<label> (no
    fine-tuning)"``, once: pruning the teacher involves no chance) and after :func:`pruned_and_finetuned` with the
    same ``steps`` for every config, once per seed of ``seeds`` (default: ``seed`` alone).

    ``measure_kwargs`` go to :func:`gansurvey.measure` (notebook, profile, latency_batch...). Returns the records
    and, per label, a grid of samples from the fine-tuned model of the first seed.
    """
    seeds = [seed] if seeds is None else list(seeds)
    if not seeds:
        raise GanSurveyError("pruning_sweep needs at least one seed, got an empty list")
    records, samples = [], {}
    grid = bench.eval_sample_count(SAMPLE_GRID)
    for label, config in configs.items():
        settings = {**config.__dict__, "finetune_steps": steps}
        raw = prune(teacher, config, bench.example_input(2))
        raw = to_sparse_storage(raw) if isinstance(config, MagnitudePruneConfig) else raw
        records.append(measure(raw, bench, technique=f"{label} (no fine-tuning)", family="pruning",
                               settings={**settings, "finetuned": False}, seed=seeds[0], device=device,
                               **measure_kwargs))
        for run_seed in seeds:
            tuned = pruned_and_finetuned(bench, teacher, discriminator, config, steps, run_seed, device)
            records.append(measure(tuned, bench, technique=label, family="pruning",
                                   settings={**settings, "finetuned": True}, seed=run_seed, device=device,
                                   **measure_kwargs))
            if run_seed == seeds[0]:
                samples[label] = bench.generate(tuned, grid, run_seed)
    return records, samples


LOTTERY_ARMS = ("dense", "lottery ticket", "random re-init")


def lottery_arms(bench: Benchmark, rounds: int, sparsity: float, steps: int, seeds: list[int], *,
                 device: str = "auto", **measure_kwargs: Any) -> tuple[list[Measurement], pd.DataFrame]:
    """The lottery-ticket experiment (Frankle & Carbin 2019; Chen et al. 2021 for GANs), once per seed: a fresh
    generator trained ``steps`` steps (plain adversarial training: no teacher to follow from initial weights),
    the ticket found by ``rounds`` rounds of magnitude pruning to ``sparsity`` with the survivors rewound to the
    fresh weights and retrained, and the same masks from a random re-initialisation trained the same way. Each is
    measured: techniques :data:`LOTTERY_ARMS`. Returns the records and every seed's pruning history."""
    measure_kwargs.pop("seed", None)  # each record takes its seed from ``seeds``
    records, histories = [], []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the seed decides the initial weights, not the global state
            fresh = bench.new_generator()

        def train(g: nn.Module, seed: int = seed) -> nn.Module:
            return finetune(g, bench, steps, None, seed=seed, device=device, guide="adversarial").model

        dense = train(fresh)
        ticket = lottery_ticket(dense, train, rounds=rounds, final_sparsity=sparsity,
                                rewind_state=fresh.state_dict(), train_first=False)
        control = train(random_reinit(ticket.initial, seed=seed + 1))
        models = dict(zip(LOTTERY_ARMS, (dense, to_sparse_storage(ticket.ticket), to_sparse_storage(control)),
                          strict=True))
        for arm, model in models.items():
            records.append(measure(model, bench, technique=arm, family="baseline" if arm == "dense" else "pruning",
                                   settings={"sparsity": 0.0 if arm == "dense" else sparsity, "rounds": rounds,
                                             "steps": steps}, seed=seed, device=device, **measure_kwargs))
        histories.append(pd.DataFrame(ticket.history).assign(seed=seed))
    return records, pd.concat(histories, ignore_index=True)
