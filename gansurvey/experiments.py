"""Glue shared by the family notebooks: fine-tune a compressed generator on its benchmark with the shared trainer."""

from __future__ import annotations

import copy

from torch import nn

from gansurvey.benchmarks import Benchmark, get_benchmark
from gansurvey.checks import check_number
from gansurvey.config import resolve_device
from gansurvey.train import ExtraLoss, train_gan


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
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train a copy of ``generator`` for ``steps`` steps with the benchmark's recipe; return it and its log.

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
    return model.cpu().eval(), log
