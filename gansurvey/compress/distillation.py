"""Knowledge distillation for GAN generators: a small student learns to imitate a trained teacher.

The survey's distillation family (Aguinaldo et al. 2019; Chen et al. 2020; Li et al. 2020, *GAN Compression*)
trains a narrow student on some mix of four terms, all available here and weighted by :class:`DistillConfig`:

- **output**: L1 or L2 between the student's and the teacher's outputs on the same inputs;
- **feature**: MSE between intermediate activations of matching layers, the student's first mapped to the
  teacher's channel count by a learnable 1x1 adapter (a 1x1 ``Conv2d`` for feature maps, a ``Linear`` for
  vectors), the GAN Compression recipe. The adapters exist only for training and are thrown away;
- **adversarial**: the usual GAN loss against a discriminator the caller passes (the teacher's or a new one);
- **perceptual**: MSE between the features a frozen domain network (e.g. the digit classifier) sees in the
  student's and the teacher's outputs.

The verb is :func:`distill`; it returns a trained *copy* of the student and never touches the teacher.
Students come from :func:`make_student` (same architecture, narrower) or from any other module, e.g. a
channel-pruned copy of the teacher. :func:`distillation_losses` gives the same terms as ``extra_losses`` for
the shared trainer, so ``experiments.finetune`` can distil too.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gansurvey import zoo
from gansurvey.checks import GanSurveyError, check_number
from gansurvey.compress.base import CompressConfig, register
from gansurvey.config import resolve_device
from gansurvey.models import GENERATORS, generators
from gansurvey.train.gan import (
    CHECKPOINT_SECONDS,
    ExtraLoss,
    PairedTask,
    TrainConfig,
    TrainResult,
    UnconditionalTask,
    train_gan,
)

__all__ = [
    "OUTPUT_LOSSES", "DistillConfig", "StudentConfig", "FeaturePair", "auto_feature_layers", "distill",
    "distillation_losses", "feature_pairs", "make_student", "remove_feature_hooks",
]

OUTPUT_LOSSES = ("l1", "l2")
FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class StudentConfig(CompressConfig):
    """The structural step of distillation: a fresh student of the teacher's architecture with ``width`` times
    its channels, initialised under ``seed``. ``compress(teacher, StudentConfig(0.5))`` returns it untrained;
    :func:`distill` then trains it (``gansurvey.experiments.distillation.distilled_student`` does both).
    """

    width: float
    seed: int = 0

    family: ClassVar[str] = "distillation"
    method: ClassVar[str] = "student"
    stage_rank: ClassVar[int] = 0
    stage_rule: ClassVar[str] = "a distillation student is built from the teacher's architecture, so it comes first"

    def __post_init__(self) -> None:
        check_number("student width (a fraction of the teacher's)", self.width, minimum=1e-3, maximum=1.0)
        check_number("seed", self.seed, minimum=0, integer=True)


@register(StudentConfig)
def _student_handler(model: nn.Module, config: StudentConfig, example_input: object) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return make_student(model, config.width)


@dataclass(frozen=True)
class DistillConfig(CompressConfig):
    """Which distillation terms to use and their weights (all >= 0): the training config of :func:`distill`.

    ``feature_layers`` is ``"auto"`` (see :func:`auto_feature_layers`) or pairs ``(teacher layer, student
    layer)`` of module names as ``named_modules`` spells them.
    """

    family: ClassVar[str] = "distillation"
    method: ClassVar[str] = "distillation"

    output_loss: str | None = "l1"
    output_weight: float = 1.0
    feature_weight: float = 0.0
    feature_layers: tuple[tuple[str, str], ...] | str = "auto"
    adversarial_weight: float = 0.0
    perceptual_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.output_loss is not None:
            if not isinstance(self.output_loss, str) or self.output_loss not in OUTPUT_LOSSES:
                raise GanSurveyError(
                    f"unknown output_loss {self.output_loss!r}; allowed: 'l1', 'l2', None (no output term)"
                )
        for name in ("output_weight", "feature_weight", "adversarial_weight", "perceptual_weight"):
            check_number(name, getattr(self, name), minimum=0)
        object.__setattr__(self, "feature_layers", _check_layer_pairs(self.feature_layers))
        if not (self.uses_output or self.feature_weight or self.adversarial_weight or self.perceptual_weight):
            raise GanSurveyError(
                "this DistillConfig turns every term off; set output_loss ('l1' or 'l2') with "
                "output_weight > 0, or feature_weight, adversarial_weight or perceptual_weight > 0"
            )

    @property
    def uses_output(self) -> bool:
        return self.output_loss is not None and self.output_weight > 0


def _check_layer_pairs(layers) -> tuple[tuple[str, str], ...] | str:
    if layers == "auto":
        return layers
    if isinstance(layers, str) or not isinstance(layers, (tuple, list)) or not layers:
        raise GanSurveyError(
            f"feature_layers must be 'auto' or a non-empty sequence of (teacher layer, student layer) name "
            f"pairs, got {layers!r}"
        )
    pairs = []
    for pair in layers:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(n, str) for n in pair)):
            raise GanSurveyError(
                f"feature layer pair {pair!r} must be two module names (teacher layer, student layer)"
            )
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


# ----------------------------------------------------------------------------------------- students


def make_student(teacher: nn.Module, width: float) -> generators.Generator:
    """A fresh, randomly initialised generator of the teacher's architecture with ``width`` times its channels.

    Every other hyperparameter (latent size, depth, blocks, ...) is the teacher's: inputs and outputs match.
    """
    check_number("student width (a fraction of the teacher's)", width, minimum=1e-3, maximum=1.0)
    hparams = getattr(teacher, "hparams", None)
    if not isinstance(hparams, dict) or "width" not in hparams:
        allowed = ", ".join(cls.__name__ for cls in GENERATORS.values())
        raise GanSurveyError(
            f"make_student needs a generator with a width multiplier in its hparams ({allowed}), got "
            f"{type(teacher).__name__}; pass any other student (e.g. a pruned copy) to distill() directly"
        )
    return type(teacher)(**{**hparams, "width": hparams["width"] * width})


# ------------------------------------------------------------------------------------------ feature pairs


def auto_feature_layers(generator: nn.Module) -> list[str]:
    """The layers whose outputs ``feature_layers="auto"`` distils, in forward order: those a
    :class:`~gansurvey.models.generators.Generator` declares (``feature_layers()``), every ReLU or LeakyReLU of
    any other module."""
    if isinstance(generator, generators.Generator):
        return generator.feature_layers()
    return generators.activation_layers(generator)


@dataclass
class FeaturePair:
    """A teacher layer, the student layer imitating it, and the adapter from student to teacher channels."""

    teacher_layer: str
    student_layer: str
    adapter: nn.Module
    teacher_shape: tuple[int, ...]
    student_shape: tuple[int, ...]


def feature_pairs(teacher: nn.Module, student: nn.Module, layers="auto",
                  example_input: torch.Tensor | None = None) -> list[FeaturePair]:
    """Match teacher and student layers and build a fresh adapter for each pair.

    ``layers`` is ``"auto"`` (pairs :func:`auto_feature_layers` of both by position) or explicit name pairs.
    One forward of ``example_input`` (default: two of the student's own inputs) on copies of both models, in
    eval mode, reads the feature shapes; the inputs are not modified. Feature maps must have equal spatial
    sizes (width-scaled and channel-pruned students do).
    """
    layers = _check_layer_pairs(layers)
    if layers == "auto":
        t_names, s_names = auto_feature_layers(teacher), auto_feature_layers(student)
        if len(t_names) != len(s_names) or not t_names:
            raise GanSurveyError(
                f"feature_layers='auto' found {len(t_names)} teacher layer(s) ({', '.join(t_names)}) and "
                f"{len(s_names)} student layer(s) ({', '.join(s_names)}); they must match one to one: "
                "pass explicit (teacher layer, student layer) pairs"
            )
        layers = tuple(zip(t_names, s_names, strict=True))
    for model, role, names in ((teacher, "teacher", [t for t, _ in layers]),
                               (student, "student", [s for _, s in layers])):
        for name in names:
            _layer(model, name, role)
    x = _example_input(student, example_input)
    t_feats = _probe(teacher, [t for t, _ in layers], x)
    s_feats = _probe(student, [s for _, s in layers], x)
    pairs = []
    for (t_name, s_name), t, s in zip(layers, t_feats, s_feats, strict=True):
        if t.dim() not in (2, 4) or s.dim() != t.dim() or t.shape[2:] != s.shape[2:]:
            raise GanSurveyError(
                f"teacher layer {t_name!r} gives features of shape {tuple(t.shape)} and student layer "
                f"{s_name!r} {tuple(s.shape)}; allowed: both (batch, channels) or both "
                "(batch, channels, H, W) with the same H and W"
            )
        adapter = nn.Conv2d(s.shape[1], t.shape[1], 1) if t.dim() == 4 else nn.Linear(s.shape[1], t.shape[1])
        pairs.append(FeaturePair(t_name, s_name, adapter, tuple(t.shape[1:]), tuple(s.shape[1:])))
    return pairs


def _layer(model: nn.Module, name: str, role: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or not name:
        shown = ", ".join(repr(n) for n in modules if n)
        raise GanSurveyError(f"{role} has no layer {name!r}; its layers: {shown}")
    return modules[name]


def _example_input(student: nn.Module, example_input: torch.Tensor | None) -> torch.Tensor:
    if example_input is not None:
        return example_input
    try:
        return student.sample_inputs(2, torch.Generator().manual_seed(0))
    except (AttributeError, TypeError, NotImplementedError):
        raise GanSurveyError(
            f"feature distillation needs an example input to read feature shapes, and a "
            f"{type(student).__name__} cannot draw its own: pass example_input "
            "(e.g. benchmark.example_input(2))"
        ) from None


@torch.no_grad()
def _probe(model: nn.Module, names: list[str], x: torch.Tensor) -> list[torch.Tensor]:
    # A copy in eval mode: the caller's model keeps its mode, hooks and BatchNorm statistics.
    model = copy.deepcopy(model).cpu().eval()
    captures = [_attach(model.get_submodule(n), training_only=False) for n in names]
    model(x.cpu())
    return [c.output for c in captures]


class _Capture:
    """Forward hook keeping a layer's latest output for the feature loss.

    Student hooks capture only in training mode, so a distilled model used for inference stores nothing.
    A copy starts empty (a captured output is part of an autograd graph and cannot be deep-copied).
    """

    def __init__(self, training_only: bool) -> None:
        self.training_only = training_only
        self.output: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs, output) -> None:
        if module.training or not self.training_only:
            self.output = output

    def __deepcopy__(self, memo) -> _Capture:
        return _Capture(self.training_only)


def _attach(module: nn.Module, training_only: bool = True) -> _Capture:
    """The module's capture hook, registered on first use."""
    # _forward_hooks is private, but it is how a hook survives copy.deepcopy (experiments.finetune copies the
    # student before training), so the loss finds the copy's own hook.
    for hook in module._forward_hooks.values():
        if isinstance(hook, _Capture):
            return hook
    capture = _Capture(training_only)
    module.register_forward_hook(capture)
    return capture


def remove_feature_hooks(model: nn.Module) -> int:
    """Remove the capture hooks the feature loss left on ``model``; return how many there were.

    :func:`distill` does this itself; call it on a model trained with :func:`distillation_losses` through
    another loop (the hooks are inert outside training mode, but keep the model tidy).
    """
    removed = 0
    for module in model.modules():
        for key in [k for k, h in module._forward_hooks.items() if isinstance(h, _Capture)]:
            del module._forward_hooks[key]
            removed += 1
    return removed


# ----------------------------------------------------------------------------------------- losses


class _Teacher:
    """A frozen copy of the teacher, run once per batch of inputs and shared by every loss term."""

    def __init__(self, teacher: nn.Module, layers: list[str]) -> None:
        self.model = copy.deepcopy(teacher).cpu().eval().requires_grad_(False)
        self.captures = [_attach(self.model.get_submodule(n), training_only=False) for n in layers]
        self._inputs: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.features: list[torch.Tensor] = []

    @torch.no_grad()
    def run(self, inputs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if inputs is not self._inputs:  # train_gan calls every extra loss with the same inputs tensor
            self._inputs, self.output = inputs, self.model(inputs)
            self.features = [c.output for c in self.captures]
        return self.output, self.features


def distillation_losses(
    teacher: nn.Module,
    student: nn.Module,
    config: DistillConfig,
    feature_extractor: FeatureExtractor | None = None,
    example_input: torch.Tensor | None = None,
) -> tuple[dict[str, ExtraLoss], list[nn.Parameter]]:
    """The output, feature and perceptual terms of ``config`` as ``extra_losses`` for ``train_gan``.

    Returns ``(extra_losses, adapter parameters)``: pass both to ``train_gan`` (or ``experiments.finetune``)
    with ``adversarial_weight=config.adversarial_weight``. Terms are logged as ``kd_output``, ``kd_feature``
    and ``kd_perceptual``, already weighted. ``student`` only fixes the feature pairs; the losses work on
    whatever copy of it is trained. The teacher and the feature extractor are frozen copies: the originals get
    no gradients. ``example_input`` reads feature shapes (needed for feature terms of image-to-image
    students).
    """
    if not isinstance(config, DistillConfig):
        raise GanSurveyError(f"config must be a DistillConfig, got {type(config).__name__}")
    if config.perceptual_weight > 0 and feature_extractor is None:
        raise GanSurveyError(
            "perceptual_weight > 0 needs a feature_extractor (e.g. the digit classifier's features); "
            "it only applies to image benchmarks"
        )
    pairs = (feature_pairs(teacher, student, config.feature_layers, example_input)
             if config.feature_weight else [])
    frozen = _Teacher(teacher, [p.teacher_layer for p in pairs])
    adapters = nn.ModuleList(p.adapter for p in pairs)
    extractor = _frozen(feature_extractor) if config.perceptual_weight else None
    losses: dict[str, ExtraLoss] = {}
    current = torch.device("cpu")  # where the frozen parts and adapters are (built on the CPU)

    def follow(device: torch.device) -> None:
        # The trainer moves the student; the frozen parts and adapters follow it (in place, so the optimizer's
        # references to the adapter parameters stay valid).
        nonlocal current
        if device != current:
            for part in (frozen.model, adapters, getattr(extractor, "__self__", extractor)):
                if isinstance(part, nn.Module):
                    part.to(device)
            current = device

    if config.uses_output:
        distance = F.l1_loss if config.output_loss == "l1" else F.mse_loss

        def output_term(generator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
            follow(inputs.device)
            target, _ = frozen.run(inputs)
            return config.output_weight * distance(fake, target)

        losses["kd_output"] = output_term

    if pairs:
        def feature_term(generator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
            follow(inputs.device)
            _, targets = frozen.run(inputs)
            captures = [_attach(generator.get_submodule(p.student_layer)) for p in pairs]
            if any(c.output is None for c in captures):
                # Hooks attached after this step's forward (first step of a copied student): run it again.
                generator(inputs)
            feats = [c.output for c in captures]
            for c in captures:
                c.output = None  # never read a stale activation next step
            terms = [F.mse_loss(a(s), t) for a, s, t in zip(adapters, feats, targets, strict=True)]
            return config.feature_weight * torch.stack(terms).mean()

        losses["kd_feature"] = feature_term

    if extractor is not None:
        def perceptual_term(generator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
            follow(inputs.device)
            target, _ = frozen.run(inputs)
            with torch.no_grad():
                wanted = extractor(target)
            return config.perceptual_weight * F.mse_loss(extractor(fake), wanted)

        losses["kd_perceptual"] = perceptual_term

    return losses, list(adapters.parameters())


def _frozen(extractor: FeatureExtractor) -> FeatureExtractor:
    """A frozen copy of a module (or of the module behind a bound method such as ``classifier.features``)."""
    owner = getattr(extractor, "__self__", None)
    if isinstance(extractor, nn.Module):
        return copy.deepcopy(extractor).cpu().eval().requires_grad_(False)
    if isinstance(owner, nn.Module):
        return getattr(copy.deepcopy(owner).cpu().eval().requires_grad_(False), extractor.__name__)
    if not callable(extractor):
        raise GanSurveyError(
            f"feature_extractor must be a module or a callable, got {type(extractor).__name__}"
        )
    return extractor


# ----------------------------------------------------------------------------------------- the verb


def distill(
    teacher: nn.Module,
    student: nn.Module,
    task: UnconditionalTask | PairedTask,
    config: DistillConfig,
    train_config: TrainConfig,
    discriminator: nn.Module | None = None,
    feature_extractor: FeatureExtractor | None = None,
    device: torch.device | str = "cpu",
    resumable: bool = True,
) -> TrainResult:
    """Train a copy of ``student`` to imitate ``teacher`` on ``task``; return it (on the CPU, eval mode) with
    the loss log, as a :class:`~gansurvey.train.gan.TrainResult`.

    ``train_config`` gives steps, batch size, learning rates and seed; its adversarial weight is replaced by
    ``config.adversarial_weight`` (0: no discriminator and no discriminator updates). Its ``l1_weight`` (the
    paired task's L1 to the ground truth) is kept. ``discriminator`` is copied before training. The teacher,
    student, discriminator and feature extractor passed in are never modified; the adapters are discarded.
    ``resumable`` checkpoints the run as :func:`gansurvey.experiments.common.finetune` does (every
    :data:`~gansurvey.train.gan.CHECKPOINT_SECONDS`, under ``artifacts/checkpoints/``), so the same call after a
    kill resumes to the weights of an uninterrupted run; not with a feature extractor that is no network's method, nor
    with a task of your own that has no ``fingerprint()`` (a digest of its data).

    Args:
        teacher: the trained generator to imitate (frozen).
        student: the module to train (e.g. ``compress(teacher, StudentConfig(0.5))`` or a pruned teacher).
        task: where inputs and real data come from (``benchmark.task()``).
        config: which distillation terms, and their weights.
        train_config: steps, batch size, learning rates, seed (``benchmark.train_config(steps, seed)``).
        discriminator: needed when ``config.adversarial_weight > 0``.
        feature_extractor: a frozen network for the perceptual term.
        device: where to train.
        resumable: checkpoint the run so that a re-run after a kill resumes (see above).

    Example::

        student = compress(teacher, StudentConfig(width=0.5))
        result = distill(teacher, student, bench.task(), DistillConfig(output_loss="l1"), bench.train_config(500))
        result.model, result.log
    """
    if not isinstance(config, DistillConfig):
        raise GanSurveyError(f"config must be a DistillConfig, got {type(config).__name__}")
    if not isinstance(train_config, TrainConfig):
        raise GanSurveyError(f"train_config must be a TrainConfig, got {type(train_config).__name__}")
    if config.adversarial_weight > 0 and discriminator is None:
        raise GanSurveyError(
            "adversarial_weight > 0 needs a discriminator (the teacher's, or benchmark.new_discriminator())"
        )
    model = copy.deepcopy(student)
    example = task.batch(model, 2, torch.Generator().manual_seed(train_config.seed))[0]
    losses, adapters = distillation_losses(teacher, model, config, feature_extractor, example)
    for name in (_student_layers(config, model) if config.feature_weight else []):
        _attach(model.get_submodule(name))  # before the first forward, so no step runs the student twice
    disc = copy.deepcopy(discriminator) if config.adversarial_weight > 0 else None
    train = dataclasses.replace(train_config, adversarial_weight=config.adversarial_weight)
    device = resolve_device(device)
    extractor = getattr(feature_extractor, "__self__", feature_extractor)  # a network's method counts by the network
    checkpoint = None
    if resumable and hasattr(task, "fingerprint") and (feature_extractor is None or isinstance(extractor, nn.Module)):
        checkpoint = zoo.training_checkpoint(
            "distill", task=task.fingerprint(), teacher=teacher, student=model, adapters=adapters,
            discriminator=disc, config=config, train=dataclasses.replace(train, progress=False),
            extractor=[extractor, getattr(feature_extractor, "__name__", None)], device=device.type)
    try:
        log = train_gan(model, disc, task, train, extra_losses=losses, parameters=adapters, device=device,
                        checkpoint=checkpoint, checkpoint_every=None, checkpoint_seconds=CHECKPOINT_SECONDS)
    finally:
        remove_feature_hooks(model)
    return TrainResult(model.cpu().eval(), log)


def _student_layers(config: DistillConfig, student: nn.Module) -> list[str]:
    if config.feature_layers == "auto":
        return auto_feature_layers(student)
    return [s for _, s in config.feature_layers]
