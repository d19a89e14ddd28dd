"""What every benchmark is: its data, its teacher (architecture and training recipe, trained on first use and
cached) and its quality measurement."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pandas as pd
import torch
from torch import nn

from gansurvey import zoo
from gansurvey.config import profile_settings, resolve_device, seed_everything
from gansurvey.models import build_discriminator, build_generator
from gansurvey.models.generators import Generator
from gansurvey.train.gan import PairedTask, TrainConfig, UnconditionalTask, train_gan

EVAL_SEED_OFFSET = 10_000  # evaluation noise never coincides with training noise


class Benchmark:
    """A benchmark: its data, its teacher, and its quality measurement (see the subclasses)."""

    name: str
    architecture: str  # the generator's kind: mlp, dcgan or resnet (see models.GENERATORS)
    primary_metric = "domain_fid"
    higher_is_better = False
    generator_hparams: dict = {}
    discriminator_hparams: dict = {}

    def new_generator(self, width: float = 1.0) -> Generator:
        return build_generator(self.architecture, **{**self.generator_hparams, "width": width})

    def new_discriminator(self, width: float = 1.0) -> nn.Module:
        return build_discriminator(self.architecture, **{**self.discriminator_hparams, "width": width})

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
                progress: bool = True) -> tuple[Generator, nn.Module]:
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
