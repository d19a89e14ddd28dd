"""The benchmarks ``pix2pix-folder`` and ``cyclegan-folder``: the surveyed works' own tasks on the user's data.

Why: the collection's built-in benchmarks run on 32x32 digits so that CI finishes in minutes; the surveyed works
report on facades, edges2shoes, cityscapes, horse2zebra... at 256x256 with the published generators. Given a data
folder (see :mod:`gansurvey.data.folders` for the layouts) these benchmarks train the published networks
(:mod:`gansurvey.models.published`) with the published recipes (:mod:`gansurvey.train.folder`), cache the teachers per
folder, and measure quality the way those papers do: the standard Inception FID of the outputs on the test split
against the real test images of the target domain, plus PSNR/SSIM to the targets when the data are paired.

They follow the :class:`gansurvey.benchmarks.base.Benchmark` interface, so ``measure``, the compression families and
the sweeps take them like the digit benchmarks::

    bench = get_benchmark("pix2pix-folder", data_root="datasets/facades", size=256, direction="BtoA")
    teacher, disc = bench.teacher("full", device="cuda")
    record = measure(teacher, bench, profile=profile_settings("full"), inception_samples=None)

Steps: ``quick`` trains 200 steps (a smoke run: does the folder work, what does compression cost); ``full`` trains
the published 200 epochs (100 at the initial learning rate, 100 decaying), i.e. 200 x |train| steps for pix2pix
and 200 x max(|trainA|, |trainB|) for CycleGAN, at batch 1. ``steps=`` overrides both.

Teachers and real-image Inception statistics are cached under ``artifacts/`` by a key holding the folder's
file-list digest and the image size, so another dataset, an added file or another size never reuses them.
A teacher's training writes checkpoints under ``artifacts/checkpoints/`` and resumes from them when started
again after an interruption; they are deleted once the teacher is cached.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from gansurvey import zoo
from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_choice, check_number, given_path
from gansurvey.config import ProfileSettings, check_profile, display_path, resolve_device, seed_everything
from gansurvey.data.folders import PairedFolder, UnpairedFolder, scan_folder
from gansurvey.metrics.frechet import frechet_from_stats, gaussian_stats
from gansurvey.metrics.quality import psnr, ssim
from gansurvey.models import build_discriminator, build_generator
from gansurvey.models.generators import Generator
from gansurvey.train.folder import FolderTask, FolderTrainConfig, remove_checkpoints, train_cyclegan, train_pix2pix
from gansurvey.train.gan import TrainConfig

__all__ = ["FOLDER_REGISTRY", "QUICK_STEPS", "PUBLISHED_EPOCHS", "CycleGANFolderBenchmark", "FolderBenchmark",
           "Pix2PixFolderBenchmark"]

#: Steps of a quick-profile teacher on a folder (a smoke run, not a usable translation model).
QUICK_STEPS = 200
#: The published schedules: 100 epochs at the initial learning rate, then 100 decaying to zero.
PUBLISHED_EPOCHS = 200
#: Images generated per forward pass when measuring (bounds memory at 256x256 on a GPU).
GENERATE_CHUNK = 16


class FolderBenchmark(Benchmark):
    """What both folder benchmarks share: the checked folder, sizes, steps, evaluation images, FID.

    Args:
        data_root: the dataset folder, checked at once (every error names the path and what was expected).
        size: side of the square training and evaluation images (256 as published; 64 or 128 for quick trials).
        steps: teacher training steps for every profile (default: :data:`QUICK_STEPS` for quick, the published
            200 epochs for full).
        batch_size: images per training step (1 as published).
        num_workers: image-decoding worker processes during training.
        amp: mixed precision (float16) when training on CUDA.
        checkpoint_every: training steps between checkpoints.
        width: the teacher's width multiplier (1.0: the published networks; smaller for quick CPU trials).
            Students' widths (``new_generator(width)``) are fractions of it.
    """

    primary_metric = "fid"
    higher_is_better = False

    def __init__(self, data_root: str | os.PathLike, size: int = 256, *, steps: int | None = None,
                 batch_size: int = 1, num_workers: int | None = None, amp: bool = False,
                 checkpoint_every: int = 1000, width: float = 1.0) -> None:
        check_number("size", size, minimum=32, integer=True)
        check_number("width", width, minimum=1e-3, maximum=16)
        if steps is not None:
            check_number("steps", steps, minimum=0, integer=True)
        check_number("batch_size", batch_size, minimum=1, integer=True)
        check_number("checkpoint_every", checkpoint_every, minimum=1, integer=True)
        if num_workers is None:
            num_workers = min(4, os.cpu_count() or 1)
        check_number("num_workers", num_workers, minimum=0, integer=True)
        self.size, self.steps, self.batch_size = size, steps, batch_size
        self.num_workers, self.amp, self.checkpoint_every = num_workers, bool(amp), checkpoint_every
        self.width = float(width)
        self.data = scan_folder(data_root)
        self._eval_cache: dict[str, torch.Tensor] = {}

    def new_generator(self, width: float = 1.0) -> Generator:
        """A fresh generator at ``width`` times the teacher's width (1.0: the teacher's architecture)."""
        return build_generator(self.architecture, **{**self.generator_hparams, "width": self.width * width})

    def new_discriminator(self, width: float = 1.0) -> nn.Module:
        """A fresh discriminator at ``width`` times the teacher's discriminator width."""
        return build_discriminator(self.architecture,
                                          **{**self.discriminator_hparams, "width": self.width * width})

    # ---------------------------------------------------------------------------------------- data

    def train_dataset(self) -> PairedFolder | UnpairedFolder:
        """The augmented training split, as the trainer reads it."""
        raise NotImplementedError

    def test_dataset(self) -> PairedFolder | UnpairedFolder:
        """The test split (plain resize), as (input, target-domain image) items."""
        raise NotImplementedError

    def _test_count(self, side: int) -> int:
        ds = self.test_dataset()
        return ds.sizes[side] if isinstance(ds, UnpairedFolder) else len(ds)

    def _test_images(self, side: int, n: int) -> torch.Tensor:
        """The first ``n`` test images of one side (0: generator inputs, 1: target domain), loaded once."""
        key = str(side)
        have = self._eval_cache.get(key)
        if have is None or len(have) < n:
            ds = self.test_dataset()
            have = torch.stack([ds[i][side] for i in range(n)])
            self._eval_cache[key] = have
        return have[:n]

    def eval_sample_count(self, n: int) -> int:
        return min(n, len(self.data.test_a))  # the fixed test inputs (A images) bound every evaluation

    def eval_inputs(self, n: int, seed: int = 0) -> torch.Tensor:
        """The first ``n`` test inputs (A images, resized to ``size``); the test set fixes them, not ``seed``."""
        check_number("number of evaluation inputs", n, minimum=1, maximum=self._test_count(0), integer=True)
        return self._test_images(0, n)

    def eval_targets(self, n: int) -> torch.Tensor:
        """The first ``n`` test images of the target domain (the B of each pair for paired data)."""
        check_number("number of evaluation targets", n, minimum=1, maximum=self._test_count(1), integer=True)
        return self._test_images(1, n)

    def validation_score(self, generator: nn.Module, profile: ProfileSettings, seed: int = 0,
                         device: str = "cpu") -> float | None:
        """None: the test split is the only held-out set, and a second Inception FID would double the slowest
        measurement; choices on these benchmarks fall back to seeds (see claims.selection)."""
        return None

    @torch.no_grad()
    def generate(self, generator: nn.Module, n: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
        """``n`` outputs of ``generator`` on the first ``n`` test inputs, computed in chunks, on the CPU."""
        generator = generator.eval().to(device)
        chunks = self.eval_inputs(n, seed).split(GENERATE_CHUNK)
        return torch.cat([generator(x.to(device)).float().cpu() for x in chunks])

    # ---------------------------------------------------------------------------------------- teacher

    def teacher_steps(self, profile: str = "quick") -> int:
        """Training steps of a teacher under ``profile`` (see the module docstring)."""
        check_profile(profile)
        if self.steps is not None:
            return self.steps
        if profile == "quick":
            return QUICK_STEPS
        return math.ceil(PUBLISHED_EPOCHS * len(self.train_dataset()) / self.batch_size)

    def folder_config(self, steps: int, seed: int = 0, progress: bool = True) -> FolderTrainConfig:
        """The published recipe for ``steps`` steps, with this benchmark's batch, workers, AMP and checkpoints."""
        return FolderTrainConfig(steps=steps, batch_size=self.batch_size, seed=seed, amp=self.amp,
                                 checkpoint_every=self.checkpoint_every, num_workers=self.num_workers,
                                 progress=progress)

    def _key(self, profile: str, seed: int) -> dict:
        config = self.folder_config(self.teacher_steps(profile), seed)
        trained_as = "quick" if profile == "quick" else "full"  # paper trains full's teacher: one file for both
        return zoo.cache_key(kind="teacher", benchmark=self.name, profile=trained_as, seed=seed, size=self.size,
                             layout=self.data.layout, data_digest=self.data.digest, recipe=config.recipe(),
                             width=self.width,
                             generator=self.generator_hparams, discriminator=self.discriminator_hparams,
                             **self._extra_key())

    def _extra_key(self) -> dict:
        return {}

    def teacher_state(self, profile: str = "quick", seed: int = 0, device: str = "auto",
                      progress: bool = True) -> dict:
        """Every trained network's state dict and the loss log, trained on first use and cached.

        An interrupted training resumes from its last checkpoint when this is called again.
        """
        check_number("seed", seed, minimum=0, integer=True)
        key = self._key(profile, seed)
        ckpt = zoo.cache_path("checkpoints", key)

        def build() -> dict:
            seed_everything(seed)
            return self._train(self.folder_config(self.teacher_steps(profile), seed, progress),
                               resolve_device(device), ckpt, key)

        state = zoo.cached("teachers", key, build)
        remove_checkpoints(ckpt)
        return state

    def _train(self, config: FolderTrainConfig, device: torch.device, checkpoint: Path, key: dict) -> dict:
        raise NotImplementedError

    def teacher(self, profile: str = "quick", seed: int = 0, device: str = "auto",
                progress: bool = True) -> tuple[Generator, nn.Module]:
        """The trained teacher (generator, its discriminator), on the CPU in eval mode."""
        state = self.teacher_state(profile, seed, device, progress)
        g, d = self.new_generator(), self.new_discriminator()
        g.load_state_dict(state["generator"])
        d.load_state_dict(state["discriminator"])
        return g.eval(), d.eval()

    def teacher_curve(self, profile: str = "quick", seed: int = 0, device: str = "auto") -> pd.DataFrame:
        """The quality checks along this folder teacher's training (trained on first use like ``teacher``)."""
        log = self.teacher_state(profile, seed, device, progress=False)["log"]
        return pd.DataFrame([entry for entry in log if self.primary_metric in entry])

    # ---------------------------------------------------------------------------------------- compression

    def task(self) -> FolderTask:
        """The training split as a task of :func:`gansurvey.train.gan.train_gan` (fine-tuning, distillation)."""
        return FolderTask(self.train_dataset())

    # ---------------------------------------------------------------------------------------- quality

    def real_inception_statistics(self, samples: int, device: str = "auto") -> tuple:
        """Inception mean and covariance of the first ``samples`` real test images of the target domain.

        Cached under ``artifacts/stats/`` by folder digest, layout, size, side and sample count.
        """
        key = zoo.cache_key(kind="folder-inception-stats", benchmark=self.name, data_digest=self.data.digest,
                            layout=self.data.layout, size=self.size, samples=samples, **self._extra_key())

        def build() -> tuple:
            from gansurvey.metrics.inception import inception_features

            return gaussian_stats(inception_features(self.eval_targets(samples), device=device))

        return zoo.cached("stats", key, build)

    def quality(self, generator: nn.Module, profile: ProfileSettings, seed: int = 0, device: str = "cpu",
                inception_samples: int | None = None) -> dict:
        """Standard Inception FID on the test split (and PSNR/SSIM to the targets for paired data).

        Args:
            generator: maps A images to B images at ``size``.
            profile: the profile's settings: caps the test images used at ``eval_samples`` and, by default, the FID's at
                its ``inception_samples`` (quick: 32, full: 1000), never more than the test split holds.
            seed: unused by the (fixed) test inputs; kept for the interface.
            device: where the generator and the Inception network run.
            inception_samples: images for the FID (0: no FID; at least 2 otherwise).

        Returns:
            ``fid`` and ``fid_samples`` (when measured), ``psnr`` and ``ssim`` (paired data).

        Example:
            >>> bench.quality(teacher, profile_settings("full"), device="cuda")  # doctest: +SKIP
            {'psnr': 13.1, 'ssim': 0.28, 'fid': 104.2, 'fid_samples': 106}
        """
        n = min(profile.eval_samples, self._test_count(0))
        fake = self.generate(generator, n, seed, device)
        out: dict = {}
        if self.data.paired:
            target = self.eval_targets(n)
            out.update(psnr=psnr(fake, target, data_range=2.0), ssim=ssim(fake, target, data_range=2.0))
        k = profile.inception_samples if inception_samples is None else inception_samples
        check_number("inception_samples", k, minimum=0, integer=True)
        k = min(k, n, self._test_count(1))
        if k == 1:
            raise GanSurveyError("inception_samples must be 0 or at least 2 (a covariance needs two images)")
        if k:
            from gansurvey.metrics.inception import inception_features

            fake_stats = gaussian_stats(inception_features(fake[:k], device=device))
            out["fid"] = float(frechet_from_stats(*fake_stats, *self.real_inception_statistics(k, device)))
            out["fid_samples"] = k
        return {key: float(v) if key != "fid_samples" else v for key, v in out.items()}


def _unet_downs(size: int) -> int:
    """U-Net levels for ``size``: 8 (``unet_256``) from 256 up, else log2(size) so the bottleneck is 1x1."""
    downs = 8 if size >= 256 else int(math.log2(size))
    if size % 2**downs:
        raise GanSurveyError(f"size must be a power of two below 256, or a multiple of 256, for the pix2pix U-Net; "
                             f"got {size}")
    return downs


class Pix2PixFolderBenchmark(FolderBenchmark):
    """pix2pix on a paired folder: U-Net-256 generator, 70x70 conditional PatchGAN, adversarial + 100 x L1.

    Args:
        data_root: a folder in the pix2pix layout or paired folders.
        size: image side (a power of two; 256 as published, where the U-Net has 8 levels).
        direction: ``"AtoB"`` or ``"BtoA"`` (the authors train facades labels -> photos with BtoA).
        **options: see :class:`FolderBenchmark`.

    Example:
        >>> bench = Pix2PixFolderBenchmark("datasets/facades", size=256, direction="BtoA")  # doctest: +SKIP
    """

    name = "pix2pix-folder"
    architecture = "unet256"

    def __init__(self, data_root: str | os.PathLike, size: int = 256, *, direction: str = "AtoB",
                 **options) -> None:
        super().__init__(data_root, size, **options)
        if not self.data.paired:
            raise GanSurveyError(f"{given_path(self.data.root)}: unpaired CycleGAN layout (trainA/, trainB/, ...); "
                                 "pix2pix-folder needs paired data: the pix2pix layout (train/, test/ with A|B files) "
                                 "or paired folders (A/train/, B/train/, ...); use cyclegan-folder for unpaired data")
        self.direction = check_choice("direction", direction, ("AtoB", "BtoA"))
        self.generator_hparams = {"num_downs": _unet_downs(size)}
        self.discriminator_hparams = {"in_channels": 6, "norm": "batch"}

    def _extra_key(self) -> dict:
        return {"direction": self.direction}

    def train_dataset(self) -> PairedFolder:
        return PairedFolder(self.data, "train", self.size, augment=True, direction=self.direction)

    def test_dataset(self) -> PairedFolder:
        return PairedFolder(self.data, "test", self.size, augment=False, direction=self.direction)

    def train_config(self, steps: int, seed: int = 0, progress: bool = True) -> TrainConfig:
        """The recipe for :func:`~gansurvey.train.gan.train_gan` (fine-tuning, students): batch 1, BCE + 100 x L1."""
        return TrainConfig(steps=steps, batch_size=self.batch_size, l1_weight=100.0, seed=seed, progress=progress)

    def _train(self, config, device, checkpoint, key) -> dict:
        g, d = self.new_generator(), self.new_discriminator()
        history = train_pix2pix(g, d, self.train_dataset(), config, device, checkpoint, meta={"key": key})
        return {"generator": g.cpu().state_dict(), "discriminator": d.cpu().state_dict(), "log": history}


class CycleGANFolderBenchmark(FolderBenchmark):
    """CycleGAN on an unpaired (or paired) folder: two ResNet-9 generators, two PatchGANs, LSGAN + cycle + identity.

    The teacher is the A -> B generator with the discriminator of domain B; :meth:`teacher_state` also holds the
    B -> A generator and the domain-A discriminator (``generator_ba``, ``discriminator_a``). Paired folders (A/, B/)
    are read unpaired for training (as in the CycleGAN paper's cityscapes experiments) and add PSNR/SSIM to the
    quality. The pix2pix layout is refused: its A|B files are pix2pix-folder's input, and CycleGAN reads A and B
    images apart.

    Args:
        data_root: a folder in the CycleGAN layout (or paired folders).
        size: image side (a multiple of 4; 256 as published).
        **options: see :class:`FolderBenchmark`.

    Example:
        >>> bench = CycleGANFolderBenchmark("datasets/horse2zebra", amp=True)  # doctest: +SKIP
    """

    name = "cyclegan-folder"
    architecture = "resnet9"

    def __init__(self, data_root: str | os.PathLike, size: int = 256, **options) -> None:
        if isinstance(size, int) and size % 4:
            raise GanSurveyError(f"size must be a multiple of 4 for the CycleGAN ResNet generator, got {size}")
        super().__init__(data_root, size, **options)
        if self.data.layout == "pix2pix":
            raise GanSurveyError(
                f"{display_path(self.data.root)}: pix2pix layout (train/, test/ with A|B images side by side); "
                "cyclegan-folder needs the CycleGAN layout (trainA/, trainB/, testA/, testB/) or paired folders "
                "(A/train/, B/train/, ...): use pix2pix-folder for this folder, or split its images into those folders")
        self.generator_hparams = {}
        self.discriminator_hparams = {"in_channels": 3, "norm": "instance"}

    def train_dataset(self) -> UnpairedFolder:
        return UnpairedFolder(self.data, "train", self.size, augment=True)

    def test_dataset(self) -> UnpairedFolder:
        return UnpairedFolder(self.data, "test", self.size, augment=False)

    def train_config(self, steps: int, seed: int = 0, progress: bool = True) -> TrainConfig:
        """The recipe for :func:`~gansurvey.train.gan.train_gan` on G_AB alone: adversarial against real B images
        only (the targets are unpaired, so no L1); the cycle terms need G_BA and are not part of it."""
        return TrainConfig(steps=steps, batch_size=self.batch_size, l1_weight=0.0, seed=seed, progress=progress)

    def _train(self, config, device, checkpoint, key) -> dict:
        g_ab, g_ba = self.new_generator(), self.new_generator()
        d_a, d_b = self.new_discriminator(), self.new_discriminator()
        history = train_cyclegan(g_ab, g_ba, d_a, d_b, self.train_dataset(), config, device, checkpoint,
                                 meta={"key": key})
        return {"generator": g_ab.cpu().state_dict(), "discriminator": d_b.cpu().state_dict(),
                "generator_ba": g_ba.cpu().state_dict(), "discriminator_a": d_a.cpu().state_dict(), "log": history}


FOLDER_REGISTRY: dict[str, type[FolderBenchmark]] = {
    cls.name: cls for cls in (Pix2PixFolderBenchmark, CycleGANFolderBenchmark)
}
