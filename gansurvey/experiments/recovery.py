"""Recovery curves: how a compressed generator's quality comes back while it is fine-tuned, with and without the
teacher as a guide. They size the fine-tuning budgets (a budget is enough once the curve has flattened) and
show what the teacher signal buys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_number
from gansurvey.compress import CompressConfig, compress
from gansurvey.config import ProfileSettings
from gansurvey.experiments.common import GUIDES, finetune, recovery_curve
from gansurvey.metrics.curves import curve_plateau


def recovery_curves(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module,
                    configs: dict[str, CompressConfig], profile: ProfileSettings, *,
                    guides: tuple[str, ...] = GUIDES, seed: int = 0, device: str = "auto",
                    start: Callable[[nn.Module, CompressConfig, Any], nn.Module] = compress) -> pd.DataFrame:
    """Compress the teacher with each of ``configs`` and fine-tune it ``profile.recovery_steps`` steps with each
    of ``guides``, scoring it every ``profile.recovery_every`` steps on the profile's evaluation samples (and
    before the first step, at step 0). One row per check: ``arm`` (the config's label), ``guide``, ``step`` and
    the quality metrics.

    ``start(teacher, config, example_input)`` makes the model that is fine-tuned: :func:`compress` by default
    (pruned, factorized, distilled and encoded models train as stored: an encoded model's centroids are
    parameters); quantization-aware training passes ``compress.prepare_qat``, whose fake-quantized float copy is
    what it trains (the packed codes of the stored form cannot), so the curve follows the arm 04 trains."""
    steps, every = profile.recovery_steps, profile.recovery_every
    check_number("steps", steps, minimum=1, integer=True)
    check_number("every", every, minimum=1, maximum=steps, integer=True)
    if not configs:
        raise GanSurveyError("configs must name at least one compression to recover from, got none")
    frames = []
    for label, config in configs.items():
        compressed = start(teacher, config, bench.example_input(2))
        before = {"step": 0, **bench.quality(compressed, profile=profile, seed=seed, device="cpu",
                                             inception_samples=0)}
        for guide in guides:
            result = finetune(compressed, bench, steps, discriminator, seed=seed, device=device, teacher=teacher,
                              guide=guide, curve_every=every, profile=profile)
            curve = pd.concat([pd.DataFrame([before]), recovery_curve(result, bench)], ignore_index=True)
            frames.append(curve.assign(arm=label, guide=guide))
    return pd.concat(frames, ignore_index=True)


def recovery_table(curves: pd.DataFrame, bench: Benchmark) -> pd.DataFrame:
    """Per arm and guide: the quality before fine-tuning, at the end, and whether the curve had flattened
    (:func:`~gansurvey.metrics.curves.curve_plateau` over its last half)."""
    rows = []
    for (arm, guide), curve in curves.groupby(["arm", "guide"], sort=False):
        curve = curve.sort_values("step")
        plateau = curve_plateau(curve, bench.primary_metric, bench.higher_is_better)
        rows.append({"arm": arm, "guide": guide, "before": curve[bench.primary_metric].iloc[0],
                     "after": plateau["last"], "steps": plateau["to_step"],
                     "last_half_gain_pct": plateau["improvement_pct"], "flattened": plateau["flattened"]})
    return pd.DataFrame(rows)
