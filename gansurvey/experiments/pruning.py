"""The sweep of notebook 01 (pruning): every pruning configuration, fine-tuned and measured."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.compress import (
    MagnitudePruneConfig,
    PruneConfig,
    prune,
    to_sparse_storage,
)
from gansurvey.experiments.common import SAMPLE_GRID, pruned_and_finetuned
from gansurvey.measuring import measure
from gansurvey.records import Measurement


def pruning_sweep(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, configs: dict[str, PruneConfig],
                  steps: int, *, seed: int = 0, device: str = "auto", **measure_kwargs: Any,
                  ) -> tuple[list[Measurement], dict[str, torch.Tensor]]:
    """Each labelled config applied to the teacher and measured twice: as pruned (technique ``"<label> (no
    fine-tuning)"``) and after :func:`pruned_and_finetuned` with the same ``steps`` for every config.

    ``measure_kwargs`` go to :func:`gansurvey.measure` (notebook, profile, latency_batch...). Returns the records
    and, per label, a grid of samples from the fine-tuned model.
    """
    records, samples = [], {}
    grid = bench.eval_sample_count(SAMPLE_GRID)
    for label, config in configs.items():
        settings = {**config.__dict__, "finetune_steps": steps}
        raw = prune(teacher, config, bench.example_input(2))
        raw = to_sparse_storage(raw) if isinstance(config, MagnitudePruneConfig) else raw
        records.append(measure(raw, bench, technique=f"{label} (no fine-tuning)", family="pruning",
                               settings={**settings, "finetuned": False}, seed=seed, device=device,
                               **measure_kwargs))
        tuned = pruned_and_finetuned(bench, teacher, discriminator, config, steps, seed, device)
        records.append(measure(tuned, bench, technique=label, family="pruning",
                               settings={**settings, "finetuned": True}, seed=seed, device=device,
                               **measure_kwargs))
        samples[label] = bench.generate(tuned, grid, seed)
    return records, samples
