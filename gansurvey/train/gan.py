"""One GAN training loop for every benchmark, teachers and compressed students alike.

A *task* says where real data come from and what the discriminator sees; the loop does the rest: the
non-saturating adversarial loss, an optional L1 term for paired tasks, optional extra terms (distillation plugs in
here), an optional exponential moving average of the generator, seeded batches and a tqdm progress bar.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gansurvey.checks import GanSurveyError, check_number, check_writable
from gansurvey.config import display_path, progress_bar
from gansurvey.io import CorruptFileError, load_checked, remove_checked, save_checked, state_sha256

_log = logging.getLogger(__name__)
#: Seconds of training between checkpoints of a fine-tuning arm or a student (``checkpoint_seconds``): a kill loses at
#: most this much, and writing the state once a minute costs well under 1 % of the run; a run shorter than this
#: never writes one.
CHECKPOINT_SECONDS = 60.0


@dataclass
class TrainResult:
    """What every training verb returns (``finetune``, ``distill``, ``lottery_ticket``, quantization-aware
    training): the trained ``model`` (a new module, eval mode, on the CPU) and its loss ``log`` (one dict per
    logging interval). Subclasses add what their procedure finds. Unpacks as ``model, log = result``.
    """

    model: nn.Module
    log: list[dict[str, float]] = field(default_factory=list)

    def __iter__(self) -> Iterator:
        return iter((self.model, self.log))


class UnconditionalTask:
    """Noise in, samples out; the discriminator judges samples alone."""

    paired = False

    def __init__(self, real: torch.Tensor) -> None:
        self.real = real

    def fingerprint(self) -> str:
        """A digest of the task's data (what keys a resumable run's checkpoint)."""
        return state_sha256({"unconditional": {"real": self.real}})

    def batch(self, generator: nn.Module, size: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.real), (size,), generator=rng)
        return generator.sample_inputs(size, rng), self.real[idx]

    @staticmethod
    def judge(discriminator: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        return discriminator(outputs)


class PairedTask:
    """Image in, image out; the discriminator judges the (input, output) pair, as in pix2pix."""

    paired = True

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"paired task needs as many inputs as targets, got {len(inputs)} and {len(targets)}")
        self.inputs, self.real = inputs, targets

    def fingerprint(self) -> str:
        """A digest of the task's data (what keys a resumable run's checkpoint)."""
        return state_sha256({"paired": {"inputs": self.inputs, "real": self.real}})

    def batch(self, generator: nn.Module, size: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.real), (size,), generator=rng)
        return self.inputs[idx], self.real[idx]

    @staticmethod
    def judge(discriminator: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        return discriminator(torch.cat([inputs, outputs], 1))


#: An extra generator loss: (generator, generator inputs, generated batch) -> scalar. Distillation plugs in here.
ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
#: Scores a generator during training (``{"domain_fid": 53.1, ...}``); see ``train_gan``'s ``monitor``.
Monitor = Callable[[nn.Module], dict[str, float]]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    adversarial_weight: float = 1.0
    l1_weight: float = 0.0
    ema_decay: float | None = None
    log_every: int = 50
    seed: int = 0
    progress: bool = True
    monitor_every: int | None = None  # steps between quality checks (a multiple of log_every; see train_gan)

    def __post_init__(self) -> None:
        check_number("steps", self.steps, minimum=0, integer=True)
        check_number("batch_size", self.batch_size, minimum=1, integer=True)
        check_number("lr_g", self.lr_g, minimum=0)
        check_number("lr_d", self.lr_d, minimum=0)
        check_number("adversarial_weight", self.adversarial_weight, minimum=0)
        check_number("l1_weight", self.l1_weight, minimum=0)
        check_number("log_every", self.log_every, minimum=1, integer=True)
        check_number("seed", self.seed, minimum=0, integer=True)
        if self.monitor_every is not None:
            check_number("monitor_every", self.monitor_every, minimum=self.log_every, integer=True)
            if self.monitor_every % self.log_every:
                raise GanSurveyError(f"monitor_every must be a multiple of log_every ({self.log_every}), "
                                     f"got {self.monitor_every}")
        if self.ema_decay is not None:
            check_number("ema_decay", self.ema_decay, minimum=0, below=1)


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module | None,
    task: UnconditionalTask | PairedTask,
    config: TrainConfig,
    extra_losses: dict[str, ExtraLoss] | None = None,
    parameters: list[nn.Parameter] | None = None,
    device: torch.device | str = "cpu",
    monitor: Monitor | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = 100,
    on_resume: Callable[[int], Any] | None = None,
    checkpoint_seconds: float | None = None,
) -> list[dict[str, float]]:
    """Train ``generator`` (and ``discriminator``) in place for ``config.steps`` steps; return the loss log.

    ``extra_losses`` are added to the generator loss with weight one (scale them yourself). ``parameters``
    are extra trainable tensors optimised with the generator (distillation adapters). With
    ``adversarial_weight=0`` or no discriminator the loop is plain supervised training. With ``ema_decay`` the
    generator ends holding the moving average of its weights (warmed up: :func:`ema_decay_at`).

    ``monitor`` (with ``config.monitor_every``) scores the generator every that many steps and at the last step;
    its numbers join that step's log entry, which is how a teacher's quality curve is recorded. It sees the
    generator as evaluated (the moving average when there is one, eval mode) and cannot change the run: random
    states are restored after it, so a monitored run trains exactly the weights of an unmonitored one.

    ``checkpoint`` (a file path) makes the run resumable: every ``checkpoint_every`` steps, and after every
    ``checkpoint_seconds`` of training (either may be None), the whole state (networks, optimisers, moving average,
    random states, log) is written there atomically with a SHA-256 sidecar; a later call with the same arguments
    resumes from it and ends with the weights an uninterrupted run would have. The file is removed when the run
    completes; a damaged or stale one is ignored with a warning. The sidecar holds the recipe, not the networks'
    starting values: name the file after everything else that decides the run
    (:func:`gansurvey.zoo.training_checkpoint` does).
    ``on_resume`` is called with the step a run resumes from (so a caller can say so), never on a fresh start.
    """
    device = torch.device(device)
    if checkpoint is not None:
        if checkpoint_every is not None:
            check_number("checkpoint_every", checkpoint_every, minimum=1, integer=True)
        if checkpoint_seconds is not None:
            check_number("checkpoint_seconds", checkpoint_seconds, minimum=0)
        checkpoint = Path(checkpoint)
        check_writable("checkpoint folder", checkpoint.parent, "pass a checkpoint path in a folder you can write")
    adversarial = discriminator is not None and config.adversarial_weight > 0
    rng = torch.Generator().manual_seed(config.seed)
    generator.to(device).train()
    g_params = list(generator.parameters()) + list(parameters or [])
    opt_g = torch.optim.Adam(g_params, lr=config.lr_g, betas=(config.beta1, 0.999))
    if adversarial:
        discriminator.to(device).train()
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
    ema = copy.deepcopy(generator).eval() if config.ema_decay is not None else None
    log: list[dict[str, float]] = []
    running: dict[str, float] = {}
    g_extra = list(parameters or [])
    meta = json.loads(json.dumps({"config": {k: v for k, v in dataclasses.asdict(config).items() if k != "progress"},
                                  "generator": type(generator).__name__, "adversarial": adversarial,
                                  "extra_losses": sorted(extra_losses or {})}, default=str))

    def networks() -> dict[str, Any]:
        found = {"generator": generator, "opt_g": opt_g}
        if adversarial:
            found.update(discriminator=discriminator, opt_d=opt_d)
        if ema is not None:
            found["ema"] = ema
        return found

    start = 0
    if checkpoint is not None and checkpoint.exists():
        try:
            saved = load_checked(checkpoint, meta=meta)
        except CorruptFileError as exc:
            warnings.warn(f"ignoring the training checkpoint: {exc}", stacklevel=2)
        else:
            for key, obj in networks().items():
                obj.load_state_dict(saved[key])
            with torch.no_grad():
                for p, value in zip(g_extra, saved["extra"], strict=True):
                    p.copy_(value)
            rng.set_state(saved["rng"])
            torch.set_rng_state(saved["torch_rng"])
            if saved.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(saved["cuda_rng"], device)
            random.setstate(saved["random"])
            np.random.set_state(saved["numpy"])
            log, running, start = saved["log"], saved["running"], saved["step"]
            _log.info("resuming training from step %d of %d (%s)", start, config.steps, display_path(checkpoint))
            if on_resume is not None:
                on_resume(start)
    saved_at = time.monotonic()
    bar = progress_bar(range(start, config.steps), initial=start, total=config.steps, disable=not config.progress,
                       leave=False, mininterval=2.0, desc="train")
    for step in bar:
        inputs, real = (t.to(device) for t in task.batch(generator, config.batch_size, rng))
        fake = generator(inputs)
        losses: dict[str, torch.Tensor] = {}
        if adversarial:
            losses["d"] = _discriminator_step(discriminator, opt_d, task, inputs, real, fake.detach())
            logits = task.judge(discriminator, inputs, fake)
            losses["g_adv"] = config.adversarial_weight * F.binary_cross_entropy_with_logits(
                logits, torch.ones_like(logits)
            )
        if config.l1_weight > 0:
            losses["g_l1"] = config.l1_weight * F.l1_loss(fake, real)
        for name, term in (extra_losses or {}).items():
            losses[name] = term(generator, inputs, fake)
        g_loss = sum(v for k, v in losses.items() if k != "d")
        if isinstance(g_loss, torch.Tensor) and g_loss.requires_grad:
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
        if ema is not None:
            _ema_update(ema, generator, ema_decay_at(config.ema_decay, step))
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            count = (step % config.log_every) + 1
            log.append({"step": step + 1, **{k: v / count for k, v in running.items()}})
            running = {}
            if monitor is not None and config.monitor_every and (
                    (step + 1) % config.monitor_every == 0 or step + 1 == config.steps):
                log[-1].update(_monitored(monitor, ema if ema is not None else generator))
            bar.set_postfix({k: f"{v:.3f}" for k, v in log[-1].items() if k != "step"})
        if checkpoint is not None and step + 1 < config.steps and (
                (checkpoint_every is not None and (step + 1) % checkpoint_every == 0)
                or (checkpoint_seconds is not None and time.monotonic() - saved_at >= checkpoint_seconds)):
            state = {key: obj.state_dict() for key, obj in networks().items()}
            state.update(extra=[p.detach().clone() for p in g_extra], rng=rng.get_state(),
                         torch_rng=torch.get_rng_state(), random=random.getstate(), numpy=np.random.get_state(),
                         cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                         log=log, running=running, step=step + 1)
            save_checked(checkpoint, state, meta=meta)
            saved_at = time.monotonic()
    if checkpoint is not None:
        remove_checked(checkpoint)
    if ema is not None:
        generator.load_state_dict(ema.state_dict())
    generator.eval()
    return log


def _monitored(monitor: Monitor, generator: nn.Module) -> dict[str, float]:
    was_training = generator.training
    state = random.getstate(), np.random.get_state()
    # no torch.no_grad() here: a first score may train what it measures with (the digit classifier); the
    # benchmarks' generate() already runs the generator without gradients
    with torch.random.fork_rng(devices=[]):
        scores = monitor(generator.eval())
    random.setstate(state[0])
    np.random.set_state(state[1])
    generator.train(was_training)
    return {k: float(v) for k, v in scores.items()}


def _discriminator_step(discriminator, opt, task, inputs, real, fake) -> torch.Tensor:
    real_logits = task.judge(discriminator, inputs, real)
    fake_logits = task.judge(discriminator, inputs, fake)
    loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def ema_decay_at(decay: float, step: int) -> float:
    """The moving average's decay at update ``step`` (0-based): ``decay``, but no more than ``(1 + step) / (10 +
    step)``, the warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``. Without it the average of a
    run shorter than its horizon (1 / (1 - decay) steps) would still hold mostly the initial weights: 0.999 keeps
    74 % of them after 300 steps; with the warm-up the full decay applies from step 8991 on (for 0.999)."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
        if e.dtype.is_floating_point:
            e.mul_(decay).add_(p, alpha=1 - decay)
        else:
            e.copy_(p)
