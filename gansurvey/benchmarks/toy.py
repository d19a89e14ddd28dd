"""``gaussians-mlp``: an MLP GAN on 8 Gaussians on a ring; mode coverage is exactly measurable."""

from __future__ import annotations

import torch

from gansurvey.benchmarks.base import Benchmark
from gansurvey.config import profile_settings
from gansurvey.data.bundled import gaussian_mixture, mixture_centers, mixture_std
from gansurvey.metrics.frechet import frechet_distance
from gansurvey.metrics.quality import (
    mode_coverage,
    precision_recall,
)
from gansurvey.train.gan import TrainConfig, UnconditionalTask


class GaussiansBenchmark(Benchmark):
    name = "gaussians-mlp"
    architecture = "mlp"
    mixture = "ring8"

    def task(self) -> UnconditionalTask:
        return UnconditionalTask(gaussian_mixture(self.mixture, 20_000, seed=1))

    def train_config(self, steps: int, seed: int = 0, progress: bool = True) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=256, lr_g=1e-3, lr_d=1e-3, seed=seed, progress=progress)

    def quality(self, generator, profile="quick", seed=0, device="cpu", inception_samples=None) -> dict:
        return self.score(self.generate(generator, profile_settings(profile).eval_samples, seed, device), profile)

    def real_floor(self, profile: str = "quick", seed: int = 0, inception_samples: int | None = None) -> dict:
        """The scores of fresh real samples: the best a generator could reach."""
        return self.score(gaussian_mixture(self.mixture, profile_settings(profile).eval_samples, 3 + seed),
                          profile)

    def score(self, fake: torch.Tensor, profile: str = "quick") -> dict:
        real = gaussian_mixture(self.mixture, profile_settings(profile).eval_samples, seed=2)
        covered, hq = mode_coverage(fake, mixture_centers(self.mixture), mixture_std(self.mixture))
        precision, recall = precision_recall(real.numpy(), fake.numpy())
        return dict(domain_fid=float(frechet_distance(real.numpy(), fake.numpy())), precision=float(precision),
                    recall=float(recall), modes_covered=float(covered), high_quality_fraction=float(hq))
