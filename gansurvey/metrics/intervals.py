"""Evaluation-noise intervals: how much a score moves when the evaluation samples are drawn again.

A score measured on N generated samples is itself an estimate. The percentile bootstrap (Efron & Tibshirani,
*An Introduction to the Bootstrap*, 1993) resamples those N samples with replacement and recomputes the score,
so the spread of the resampled scores is the evaluation noise of that one number. Verdicts combine it with the
spread between training seeds; cards report it beside a teacher's final quality.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gansurvey.checks import check_number
from gansurvey.metrics.frechet import as_features, frechet_from_stats, gaussian_stats


def bootstrap_scores(samples: Any, score: Callable[[np.ndarray], float], resamples: int = 200,
                     seed: int = 0) -> np.ndarray:
    """``score`` of ``resamples`` bootstrap resamples of the rows of ``samples`` (seeded, so repeatable)."""
    check_number("resamples", resamples, minimum=2, integer=True)
    rows = np.asarray(samples)
    rng = np.random.default_rng(seed)
    return np.array([score(rows[rng.integers(0, len(rows), len(rows))]) for _ in range(resamples)])


def percentile_interval(values: Any, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of ``values`` (percentile method)."""
    check_number("level", level, minimum=0, below=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100 - tail])
    return float(low), float(high)


def normal_interval(estimate: float, values: Any, level: float = 0.95) -> tuple[float, float]:
    """``estimate`` ± z × the standard deviation of its bootstrap ``values`` (the normal-approximation bootstrap
    interval). Used for Fréchet distances: resampling with replacement repeats samples, which shifts the
    resampled distances upward, so their percentiles can miss the estimate while their spread still measures
    its standard error."""
    from statistics import NormalDist

    check_number("level", level, minimum=0, below=1)
    spread = NormalDist().inv_cdf(0.5 + level / 2) * float(np.std(np.asarray(values, dtype=float), ddof=1))
    return float(estimate - spread), float(estimate + spread)


def frechet_bootstrap(fake_features: Any, real_mu: Any, real_sigma: Any, resamples: int = 200,
                      seed: int = 0) -> np.ndarray:
    """Fréchet distances of bootstrap resamples of the generated features against fixed real statistics."""
    feats = as_features("generated features", fake_features)
    return bootstrap_scores(feats, lambda rows: frechet_from_stats(*gaussian_stats(rows), real_mu, real_sigma),
                            resamples, seed)
