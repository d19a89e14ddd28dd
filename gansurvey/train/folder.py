"""The pix2pix and CycleGAN training recipes on image folders, built to survive long runs.

Why a second loop beside :func:`gansurvey.train.gan.train_gan`: the published recipes train for hours to days on a GPU
(pix2pix on facades: 200 epochs; CycleGAN on horse2zebra: 200 epochs of 1334 steps with four networks), and an
interruption must not cost the run. So this loop adds what the digit benchmarks never needed:

- **Checkpoints**: every ``checkpoint_every`` steps the networks, optimizers, gradient scalers, image pools, the
  loss log and every random state in play (torch, CUDA, Python, NumPy) are written atomically and checksummed
  (:func:`gansurvey.io.save_checked`), alternating between two slots, so a crash while writing one leaves the
  other. Data order needs no state: :class:`gansurvey.data.folders.StepSampler` derives each step's batch from
  ``(seed, step)``. A run started again with the same checkpoint path resumes from the newest sound slot and,
  on the CPU, ends with bit-identical weights to an uninterrupted run (tested).
- **Mixed precision** (``amp=True``): ``torch.autocast`` in float16 with one ``GradScaler`` per optimizer, on
  CUDA only (on a CPU the option is ignored, with a log line).
- **Progress**: a tqdm bar over all steps (resumed runs start where they stopped), with its ETA and the losses.

The recipes are the authors' (``pix2pix_model.py``, ``cycle_gan_model.py``): Adam(2e-4, beta1 0.5), batch 1, the
learning rate constant for the first half of the steps and then linearly decayed (per step here, per epoch
there); pix2pix: vanilla GAN loss on (input, output) pairs + 100 x L1, the discriminator loss halved; CycleGAN:
LSGAN + 10 x cycle + 0.5 x 10 x identity losses, discriminators fed from a 50-image pool of past fakes.
Discriminators are named here by the domain they judge: ``d_b`` judges B images (the authors' ``netD_A``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gansurvey.checks import GanSurveyError, check_number
from gansurvey.config import progress_bar
from gansurvey.data.folders import PairedFolder, UnpairedFolder, step_loader
from gansurvey.io import CorruptFileError, load_checked, save_checked

__all__ = [
    "FolderTask", "FolderTrainConfig", "ImagePool", "checkpoint_slots", "latest_checkpoint", "remove_checkpoints",
    "train_cyclegan", "train_pix2pix",
]

log = logging.getLogger(__name__)

#: Called after each step (with the number of steps done) and after that step's checkpoint; raising from it
#: interrupts the run (tests simulate a crash this way).
StepCallback = Callable[[int], None]


@dataclass(frozen=True)
class FolderTrainConfig:
    """One run of a published recipe. Fields that change what is computed make up :meth:`recipe`.

    Args:
        steps: optimisation steps (one batch each).
        batch_size: images per step (1 as published).
        lr: Adam learning rate of every network.
        beta1: Adam beta1.
        decay_start: fraction of the steps after which the learning rate decays linearly towards 0.
        l1_weight: pix2pix's L1 weight.
        cycle_weight: CycleGAN's cycle-consistency weight (lambda_A = lambda_B).
        identity_weight: CycleGAN's identity weight, relative to ``cycle_weight``.
        pool_size: CycleGAN's buffer of past fakes fed to the discriminators (0: none).
        seed: seeds the data order, augmentation, dropout and the image pools.
        amp: float16 autocast + gradient scaling, on CUDA only.
        checkpoint_every: steps between checkpoints (when a checkpoint path is given).
        num_workers: image-decoding worker processes.
        log_every: steps averaged into one loss-log row.
        progress: show a tqdm bar.

    Example:
        >>> FolderTrainConfig(steps=80_000).recipe()["lr"]
        0.0002
    """

    steps: int
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    decay_start: float = 0.5
    l1_weight: float = 100.0
    cycle_weight: float = 10.0
    identity_weight: float = 0.5
    pool_size: int = 50
    seed: int = 0
    amp: bool = False
    checkpoint_every: int = 1000
    num_workers: int = 0
    log_every: int = 50
    progress: bool = True

    def __post_init__(self) -> None:
        check_number("steps", self.steps, minimum=0, integer=True)
        check_number("batch_size", self.batch_size, minimum=1, integer=True)
        check_number("lr", self.lr, minimum=0)
        check_number("beta1", self.beta1, minimum=0, below=1)
        check_number("decay_start", self.decay_start, minimum=0, maximum=1)
        for name in ("l1_weight", "cycle_weight", "identity_weight"):
            check_number(name, getattr(self, name), minimum=0)
        check_number("pool_size", self.pool_size, minimum=0, integer=True)
        check_number("seed", self.seed, minimum=0, integer=True)
        check_number("checkpoint_every", self.checkpoint_every, minimum=1, integer=True)
        check_number("num_workers", self.num_workers, minimum=0, integer=True)
        check_number("log_every", self.log_every, minimum=1, integer=True)

    def recipe(self) -> dict[str, Any]:
        """The fields that decide the trained weights (not checkpointing, workers, logging or the bar)."""
        skip = {"checkpoint_every", "num_workers", "log_every", "progress"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): constant, then linear decay as the authors' schedule."""
        start = int(self.steps * self.decay_start)
        return self.lr * (1.0 - max(0, step - start) / float(self.steps - start + 1))


class ImagePool:
    """The authors' buffer of past generated images (Shrivastava et al. 2017), with its own seeded generator.

    Until full, each image passes through and is stored; then, with probability 1/2, a random stored image is
    returned in its place (and replaced by it).

    Args:
        size: images kept (50 as published; 0 passes everything through).
        seed: seeds the pool's choices.

    Example:
        >>> pool = ImagePool(2, seed=0)
        >>> pool.query(torch.zeros(3, 3, 8, 8)).shape
        torch.Size([3, 3, 8, 8])
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        self.size = check_number("pool size", size, minimum=0, integer=True)
        self.images: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif float(torch.rand((), generator=self.gen)) > 0.5:
                index = int(torch.randint(self.size, (), generator=self.gen))
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": [t.cpu() for t in self.images], "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.images = [t.to(device) for t in state["images"]]
        self.gen.set_state(state["gen"])


class FolderTask:
    """A folder dataset as a task of :func:`gansurvey.train.gan.train_gan` (fine-tuning and distilling students).

    Batches are drawn with the loop's generator and augmented as for training. For paired data the
    discriminator judges (input, output) pairs, as pix2pix; for unpaired data it judges outputs alone against
    real B images (CycleGAN's D_B), and the targets are unpaired, so use no L1 term with it.

    Args:
        dataset: a training :class:`~gansurvey.data.folders.PairedFolder` or
            :class:`~gansurvey.data.folders.UnpairedFolder`.

    Example:
        >>> task = FolderTask(PairedFolder("datasets/facades", "train", 256, augment=True))  # doctest: +SKIP
    """

    def __init__(self, dataset: PairedFolder | UnpairedFolder) -> None:
        self.dataset = dataset
        self.paired = isinstance(dataset, PairedFolder)

    def fingerprint(self) -> str:
        """What the task reads (what keys a resumable run's checkpoint): the folder's file-list digest, the split,
        the image size and augmentation, and the direction of paired data."""
        ds = self.dataset
        split = "train" if ds.a == ds.data.train_a else "test"
        return json.dumps([type(ds).__name__, ds.data.digest, split, ds.transform.size, ds.transform.augment,
                           getattr(ds, "direction", None)])

    def batch(self, generator: nn.Module, size: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.dataset), (size,), generator=rng).tolist()
        seeds = torch.randint(2**62, (size,), generator=rng).tolist()
        if self.paired:
            items = [self.dataset[(i, s)] for i, s in zip(idx, seeds, strict=True)]
        else:
            other = torch.randint(self.dataset.sizes[1], (size,), generator=rng).tolist()
            items = [self.dataset[(i, j, s)] for i, j, s in zip(idx, other, seeds, strict=True)]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    def judge(self, discriminator: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        return discriminator(torch.cat([inputs, outputs], 1) if self.paired else outputs)


# --------------------------------------------------------------------------------------------- checkpoints


def checkpoint_slots(path: str | os.PathLike) -> tuple[Path, Path]:
    """The two files a checkpoint alternates between (``<path>.0`` and ``<path>.1``)."""
    path = Path(path)
    return path.with_name(path.name + ".0"), path.with_name(path.name + ".1")


def remove_checkpoints(path: str | os.PathLike) -> None:
    """Delete both slots of a checkpoint and their checksum sidecars (after the result is stored elsewhere)."""
    for slot in checkpoint_slots(path):
        slot.unlink(missing_ok=True)
        slot.with_name(slot.name + ".json").unlink(missing_ok=True)


def _normal(meta: dict) -> dict:
    return json.loads(json.dumps(meta, sort_keys=True, default=str))


def latest_checkpoint(path: str | os.PathLike, meta: dict) -> dict | None:
    """The newest sound checkpoint at ``path`` written for ``meta``, or None when there is none.

    A damaged slot is skipped with a warning. A sound one written for another run (other recipe, networks or
    data) is an error: resuming it would silently mix two experiments.

    Args:
        path: the checkpoint path given to the trainer.
        meta: what the run is (recipe, network hyper-parameters, data digest).
    """
    best = None
    for slot in checkpoint_slots(path):
        if not slot.exists():
            continue
        try:
            state = load_checked(slot)
        except CorruptFileError as exc:
            log.warning("skipping damaged checkpoint: %s", exc)
            continue
        if state.get("meta") != _normal(meta):
            raise GanSurveyError(f"{slot}: checkpoint of another run ({state.get('meta')}), not of {_normal(meta)}; "
                                 "delete it or pass another checkpoint path")
        if best is None or state["step"] > best["step"]:
            best = state
    return best


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: _cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cpu(v) for v in tree)
    return tree


# ------------------------------------------------------------------------------------------------- the loop


@dataclass
class _Run:
    nets: dict[str, nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    pools: dict[str, ImagePool]
    dataset: PairedFolder | UnpairedFolder
    config: FolderTrainConfig
    device: torch.device
    meta: dict
    desc: str


def _loop(run: _Run, step_fn: Callable[..., dict[str, torch.Tensor]], checkpoint: str | os.PathLike | None,
          callback: StepCallback | None) -> list[dict[str, float]]:
    config, device = run.config, run.device
    amp = bool(config.amp and device.type == "cuda")
    if config.amp and not amp:
        log.info("amp=True ignored: mixed precision is used on CUDA only, this run is on %s", device)
    scalers = {name: torch.amp.GradScaler("cuda", enabled=amp) for name in run.opts}
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp else contextlib.nullcontext
    for net in run.nets.values():
        net.to(device).train()
    meta = {**run.meta, "recipe": config.recipe()}
    start, history, running = 0, [], {}
    state = latest_checkpoint(checkpoint, meta) if checkpoint is not None else None
    if state is not None:
        for name, net in run.nets.items():
            net.load_state_dict(state["nets"][name])
        for name, opt in run.opts.items():
            opt.load_state_dict(state["opts"][name])
        for name, scaler in scalers.items():
            if state["scalers"][name]:  # empty when saved by a disabled scaler (a CPU run)
                scaler.load_state_dict(state["scalers"][name])
        for name, pool in run.pools.items():
            pool.load_state_dict(state["pools"][name], device)
        _set_rng_state(state["rng"])
        start, history, running = state["step"], state["log"], state["running"]
        log.info("resuming %s from step %d of %d (%s)", run.desc, start, config.steps, checkpoint)
    loader = step_loader(run.dataset, config.batch_size, config.steps, config.seed, start, config.num_workers,
                         pin_memory=device.type == "cuda")
    bar = progress_bar(total=config.steps, initial=start, disable=not config.progress, desc=run.desc,
                       mininterval=2.0, leave=False)
    slot = 0
    try:
        for step, (real_a, real_b) in enumerate(loader, start):
            for opt in run.opts.values():
                for group in opt.param_groups:
                    group["lr"] = config.lr_at(step)
            losses = step_fn(real_a.to(device, non_blocking=True), real_b.to(device, non_blocking=True), scalers,
                             autocast)
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v)
            done = step + 1
            bar.update(1)
            if done % config.log_every == 0 or done == config.steps:
                count = done - (history[-1]["step"] if history else 0)
                history.append({"step": done, **{k: v / count for k, v in running.items()}})
                running = {}
                bar.set_postfix({k: f"{v:.3f}" for k, v in history[-1].items() if k != "step"})
            if checkpoint is not None and (done % config.checkpoint_every == 0 or done == config.steps):
                slot = (done // config.checkpoint_every) % 2
                payload = {"meta": _normal(meta), "step": done, "log": history, "running": running,
                           "nets": {n: _cpu(m.state_dict()) for n, m in run.nets.items()},
                           "opts": {n: _cpu(o.state_dict()) for n, o in run.opts.items()},
                           "scalers": {n: s.state_dict() for n, s in scalers.items()},
                           "pools": {n: p.state_dict() for n, p in run.pools.items()}, "rng": _rng_state()}
                save_checked(checkpoint_slots(checkpoint)[slot], payload, meta={"step": done})
            if callback is not None:
                callback(done)
    finally:
        bar.close()
    for net in run.nets.values():
        net.eval()
    return history


def _step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def _adam(params, config: FolderTrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, 0.999))


def _device(device: torch.device | str) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def train_pix2pix(generator: nn.Module, discriminator: nn.Module, dataset: PairedFolder, config: FolderTrainConfig,
                  device: torch.device | str = "cpu", checkpoint: str | os.PathLike | None = None,
                  meta: dict | None = None, callback: StepCallback | None = None) -> list[dict[str, float]]:
    """Train a pix2pix generator and its conditional PatchGAN in place with the authors' recipe.

    Per step: the discriminator learns to tell (A, B) from (A, G(A)) (BCE, halved), then the generator minimises
    the BCE of fooling it plus ``l1_weight`` x L1(G(A), B).

    Args:
        generator: maps A images to B images (e.g. :class:`~gansurvey.models.published.UnetGenerator256`).
        discriminator: judges A and B concatenated in channels (e.g. a 6-channel ``NLayerPatchGAN``).
        dataset: a training :class:`~gansurvey.data.folders.PairedFolder` (``augment=True`` for the recipe).
        config: the run.
        device: where to train.
        checkpoint: path of the run's checkpoint; an existing sound one for the same run is resumed.
        meta: what else identifies the run in the checkpoint (network hyper-parameters, data digest).
        callback: called with the number of steps done after each step.

    Returns:
        The loss log: one dict per ``log_every`` steps (``step``, ``d``, ``g_gan``, ``g_l1``).

    Example:
        >>> ds = PairedFolder("datasets/facades", "train", size=256, augment=True)  # doctest: +SKIP
        >>> train_pix2pix(UnetGenerator256(), NLayerPatchGAN(6), ds, FolderTrainConfig(steps=80_000),
        ...               device="cuda", checkpoint="runs/facades.ckpt")  # doctest: +SKIP
    """
    opt_g, opt_d = _adam(generator.parameters(), config), _adam(discriminator.parameters(), config)

    def step_fn(real_a, real_b, scalers, autocast) -> dict[str, torch.Tensor]:
        with autocast():
            fake_b = generator(real_a)
        discriminator.requires_grad_(True)
        with autocast():
            pred_fake = discriminator(torch.cat([real_a, fake_b.detach()], 1))
            pred_real = discriminator(torch.cat([real_a, real_b], 1))
            loss_d = 0.5 * (F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
                            + F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real)))
        _step(loss_d, opt_d, scalers["d"])
        discriminator.requires_grad_(False)
        with autocast():
            pred = discriminator(torch.cat([real_a, fake_b], 1))
            loss_gan = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
            loss_l1 = config.l1_weight * F.l1_loss(fake_b.float(), real_b)
        _step(loss_gan + loss_l1, opt_g, scalers["g"])
        discriminator.requires_grad_(True)
        return {"d": loss_d.detach(), "g_gan": loss_gan.detach(), "g_l1": loss_l1.detach()}

    run = _Run({"g": generator, "d": discriminator}, {"g": opt_g, "d": opt_d}, {}, dataset, config,
               _device(device), {"kind": "pix2pix", **(meta or {})}, "pix2pix")
    return _loop(run, step_fn, checkpoint, callback)


def train_cyclegan(g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module, dataset: UnpairedFolder,
                   config: FolderTrainConfig, device: torch.device | str = "cpu",
                   checkpoint: str | os.PathLike | None = None, meta: dict | None = None,
                   callback: StepCallback | None = None) -> list[dict[str, float]]:
    """Train CycleGAN's two generators and two discriminators in place with the authors' recipe.

    Per step: both generators minimise the LSGAN loss of fooling the discriminator of their output domain, plus
    ``cycle_weight`` x L1 of each round trip, plus ``identity_weight`` x ``cycle_weight`` x L1(G_AB(B), B) and
    L1(G_BA(A), A); then each discriminator minimises the halved LSGAN loss on real images and on a fake drawn
    from its image pool.

    Args:
        g_ab: A -> B generator (the one compressed afterwards).
        g_ba: B -> A generator.
        d_a: judges A images (the authors' ``netD_B``).
        d_b: judges B images (the authors' ``netD_A``).
        dataset: a training :class:`~gansurvey.data.folders.UnpairedFolder` (``augment=True`` for the recipe).
        config: the run.
        device: where to train.
        checkpoint: path of the run's checkpoint; an existing sound one for the same run is resumed.
        meta: what else identifies the run in the checkpoint.
        callback: called with the number of steps done after each step.

    Returns:
        The loss log (``d_a``, ``d_b``, ``g_gan``, ``cycle``, ``idt`` per ``log_every`` steps).

    Example:
        >>> ds = UnpairedFolder("datasets/horse2zebra", "train", size=256, augment=True)  # doctest: +SKIP
        >>> train_cyclegan(ResnetGenerator9(), ResnetGenerator9(), NLayerPatchGAN(3, norm="instance"),
        ...                NLayerPatchGAN(3, norm="instance"), ds, FolderTrainConfig(steps=266_800, amp=True),
        ...                device="cuda", checkpoint="runs/h2z.ckpt")  # doctest: +SKIP
    """
    opt_g = _adam([*g_ab.parameters(), *g_ba.parameters()], config)
    opt_d = _adam([*d_a.parameters(), *d_b.parameters()], config)
    pools = {"a": ImagePool(config.pool_size, config.seed * 2 + 1), "b": ImagePool(config.pool_size, config.seed * 2)}
    lam, idt = config.cycle_weight, config.identity_weight * config.cycle_weight

    def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))

    def step_fn(real_a, real_b, scalers, autocast) -> dict[str, torch.Tensor]:
        with autocast():
            fake_b = g_ab(real_a)
            rec_a = g_ba(fake_b)
            fake_a = g_ba(real_b)
            rec_b = g_ab(fake_a)
        d_a.requires_grad_(False)
        d_b.requires_grad_(False)
        with autocast():
            loss_idt = ((F.l1_loss(g_ab(real_b).float(), real_b) + F.l1_loss(g_ba(real_a).float(), real_a)) * idt
                        if idt > 0 else real_a.new_zeros(()))
            loss_gan = lsgan(d_b(fake_b), True) + lsgan(d_a(fake_a), True)
            loss_cycle = (F.l1_loss(rec_a.float(), real_a) + F.l1_loss(rec_b.float(), real_b)) * lam
        _step(loss_gan + loss_cycle + loss_idt, opt_g, scalers["g"])
        d_a.requires_grad_(True)
        d_b.requires_grad_(True)
        pooled_b, pooled_a = pools["b"].query(fake_b), pools["a"].query(fake_a)
        with autocast():
            loss_db = 0.5 * (lsgan(d_b(real_b), True) + lsgan(d_b(pooled_b.detach()), False))
            loss_da = 0.5 * (lsgan(d_a(real_a), True) + lsgan(d_a(pooled_a.detach()), False))
        _step(loss_da + loss_db, opt_d, scalers["d"])
        return {"d_a": loss_da.detach(), "d_b": loss_db.detach(), "g_gan": loss_gan.detach(),
                "cycle": loss_cycle.detach(), "idt": loss_idt.detach()}

    run = _Run({"g_ab": g_ab, "g_ba": g_ba, "d_a": d_a, "d_b": d_b}, {"g": opt_g, "d": opt_d}, pools, dataset,
               config, _device(device), {"kind": "cyclegan", **(meta or {})}, "cyclegan")
    return _loop(run, step_fn, checkpoint, callback)
