"""What every benchmark is: its data, its teacher (architecture, training recipe, and the trained networks shipped
in ``data/teachers/``) and its quality measurement."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from torch import nn

from gansurvey import zoo
from gansurvey.config import ProfileSettings, check_profile, resolve_device
from gansurvey.models import build_discriminator, build_generator
from gansurvey.models.generators import Generator
from gansurvey.train.gan import PairedTask, TrainConfig, UnconditionalTask

EVAL_SEED_OFFSET = 10_000  # evaluation noise never coincides with training noise
#: Added to a record's seed to draw its validation samples: noise that no reported score is computed on (seeds of
#: records stay far below it).
VALIDATION_SEED_OFFSET = 1_000_000
#: The shipped teachers' training seed and thread count (a run is bit-identical only for the same thread count).
TEACHER_SEED = 0
TEACHER_THREADS = 1


class Benchmark:
    """A benchmark: its data, its teacher, and its quality measurement (see the subclasses)."""

    name: str
    architecture: str  # the generator's kind: mlp, dcgan or resnet (see models.GENERATORS)
    primary_metric = "domain_fid"
    higher_is_better = False
    generator_hparams: dict = {}
    discriminator_hparams: dict = {}
    #: Training steps of the shipped teacher: where its quality curve had flattened (see its card).
    shipped_steps: int = 0

    def new_generator(self, width: float = 1.0) -> Generator:
        return build_generator(self.architecture, **{**self.generator_hparams, "width": width})

    def new_discriminator(self, width: float = 1.0) -> nn.Module:
        return build_discriminator(self.architecture, **{**self.discriminator_hparams, "width": width})

    def task(self) -> UnconditionalTask | PairedTask:
        raise NotImplementedError

    def train_config(self, steps: int, seed: int = 0, progress: bool = True) -> TrainConfig:
        """The benchmark's training recipe for ``steps`` steps (teachers, fine-tuning and students alike)."""
        return TrainConfig(steps=steps, seed=seed, progress=progress)

    def teacher_config(self, steps: int, seed: int = 0, progress: bool = True) -> TrainConfig:
        """The recipe the shipped teacher trained with (the benchmark's recipe unless a benchmark says otherwise)."""
        return self.train_config(steps, seed, progress)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A fixed generator input of the given batch size (for cost and latency measurements)."""
        return self.eval_inputs(batch, seed=0)

    def eval_inputs(self, n: int, seed: int = 0) -> torch.Tensor:
        gen = torch.Generator().manual_seed(EVAL_SEED_OFFSET + seed)
        return self.new_generator().sample_inputs(n, gen)

    def eval_sample_count(self, n: int) -> int:
        """How many evaluation samples asking for ``n`` gives (a fixed test split may hold fewer)."""
        return n

    def generate(self, generator: nn.Module, n: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
        """``n`` outputs of ``generator`` on the benchmark's fixed evaluation inputs, on the CPU."""
        return self.outputs(generator, self.eval_inputs(n, seed), device)

    @torch.no_grad()
    def outputs(self, generator: nn.Module, inputs: torch.Tensor, device: str = "cpu") -> torch.Tensor:
        """``generator``'s outputs on ``inputs``, computed in chunks on ``device``, returned on the CPU."""
        generator = generator.eval().to(device)
        return torch.cat([generator(x.to(device)).cpu() for x in inputs.split(250)])

    def teacher_steps(self, profile: str = "quick") -> int:
        """Steps the teacher trained for (the same in every profile for a shipped teacher)."""
        return self.shipped_steps

    def teacher_recipe(self) -> dict:
        """Everything that decides the shipped teacher's weights: the training recipe, the networks' settings,
        the seed and the thread count. A shipped file is loaded only when its card holds this recipe."""
        config = dataclasses.asdict(self.teacher_config(self.shipped_steps, TEACHER_SEED, progress=False))
        for irrelevant in ("progress", "monitor_every"):  # neither changes the weights
            config.pop(irrelevant)
        return {"benchmark": self.name, "architecture": self.architecture, "train": config,
                "generator": self.generator_hparams, "discriminator": self.discriminator_hparams,
                "threads": TEACHER_THREADS}

    def teacher(self, profile: str = "quick", seed: int = 0, device: str = "auto",
                progress: bool = False) -> tuple[Generator, nn.Module]:
        """The shipped teacher (generator, discriminator), in eval mode on the CPU: trained once until its
        quality curve had flattened and committed with a card (``data/teachers/<name>.json``). Every profile and
        seed starts from these weights (the seed varies what is done to the teacher, not the teacher); ``device``
        is checked so a bad one is refused here. A missing or damaged file is refused with the command that
        rebuilds it (``python -m gansurvey teachers --train <name>``). Folder benchmarks train theirs instead."""
        check_profile(profile)
        resolve_device(device)
        state = zoo.load_shipped(self.name, self.teacher_recipe())
        g, d = self.new_generator(), self.new_discriminator()
        g.load_state_dict(state["generator"])
        d.load_state_dict(state["discriminator"])
        return g.eval(), d.eval()

    def teacher_card(self) -> dict:
        """The shipped teacher's card: recipe, steps, curve, final quality with its interval, SHA-256."""
        return zoo.read_card(self.name)

    def teacher_curve(self, profile: str = "quick", seed: int = 0, device: str = "auto") -> pd.DataFrame:
        """The teacher's quality curve: one row per check along its training (``step`` and every quality metric
        but the Inception FID, on the card's evaluation samples)."""
        return pd.DataFrame(self.teacher_card()["curve"])

    def quality(self, generator: nn.Module, profile: ProfileSettings, seed: int = 0, device: str = "cpu",
                inception_samples: int | None = None, samples: int | None = None) -> dict:
        """Every quality metric that applies to this benchmark, as a dict of Measurement field values, on
        ``samples`` evaluation samples (default: the ``profile``'s ``eval_samples``)."""
        raise NotImplementedError

    def validation_score(self, generator: nn.Module, profile: ProfileSettings, seed: int = 0,
                         device: str = "cpu") -> float | None:
        """The primary metric on a second set of evaluation samples, drawn apart from the reported ones (here:
        fresh noise, seed offset by :data:`VALIDATION_SEED_OFFSET`). Operating points and best variants are
        chosen on it (:func:`gansurvey.claims.selection.select_best`), so that the samples a number is reported
        on did not also choose it. ``None`` where the benchmark has no second set."""
        quality = self.quality(generator, profile=profile, seed=seed + VALIDATION_SEED_OFFSET, device=device,
                               inception_samples=0)
        return quality.get(self.primary_metric)

    def quality_bootstrap(self, generator: nn.Module, samples: int, resamples: int = 200,
                          seed: int = 0) -> np.ndarray:
        """The primary metric over bootstrap resamples of ``samples`` generated samples (its evaluation noise)."""
        raise NotImplementedError


def monitor_interval(steps: int, points: int, log_every: int) -> int:
    """Steps between ``points`` quality checks over ``steps`` training steps, a multiple of ``log_every``."""
    return max(log_every, round(steps / points / log_every) * log_every)
