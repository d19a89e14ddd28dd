"""Knowledge distillation: students, feature pairs and adapters, the loss terms, and bad configurations."""

import copy

import pytest
import torch
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.compress.distillation import (
    DistillConfig,
    auto_feature_layers,
    distill,
    distillation_losses,
    feature_pairs,
    make_student,
    remove_feature_hooks,
)
from gansurvey.metrics.classifier import DigitClassifier
from gansurvey.models import build_generator
from gansurvey.models.generators import DCGANDiscriminator, DCGANGenerator, ResNetGenerator
from gansurvey.train.gan import PairedTask, TrainConfig, UnconditionalTask, train_gan

KD_TERMS = ("kd_output", "kd_feature", "kd_perceptual")


def small_dcgan_teacher() -> DCGANGenerator:
    torch.manual_seed(0)
    return DCGANGenerator(latent_dim=16, width=0.25).eval()


def image_task(n: int = 32) -> UnconditionalTask:
    return UnconditionalTask(torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1)


def quick(steps: int, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=8, lr_g=2e-3, log_every=5, progress=False, **kw)


def kd_total(entry: dict) -> float:
    return sum(v for k, v in entry.items() if k in KD_TERMS)


def test_make_student_keeps_the_family_and_scales_the_width():
    teacher = ResNetGenerator(ngf=8, blocks=2, width=0.5)
    student = make_student(teacher, 0.5)
    assert type(student) is ResNetGenerator
    assert student.hparams == {**teacher.hparams, "width": 0.25}
    x = torch.randn(2, 1, 32, 32)
    assert student(x).shape == teacher(x).shape
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())
    with pytest.raises(GanSurveyError, match="hparams"):
        make_student(nn.Linear(2, 2), 0.5)
    with pytest.raises(GanSurveyError, match="width"):
        make_student(teacher, 1.5)


def test_output_and_feature_losses_fall_and_inputs_are_untouched():
    teacher = small_dcgan_teacher()
    student = make_student(teacher, 0.5)
    teacher_state = copy.deepcopy(teacher.state_dict())
    student_state = copy.deepcopy(student.state_dict())
    config = DistillConfig(output_loss="l1", feature_weight=1.0)
    trained, log = distill(teacher, student, image_task(), config, quick(30))
    assert {"kd_output", "kd_feature"} <= set(log[0]) and "g_adv" not in log[0] and "d" not in log[0]
    assert kd_total(log[-1]) < 0.7 * kd_total(log[0])
    # The teacher and the student passed in are not modified, and the teacher gets no gradients.
    for before, model in ((teacher_state, teacher), (student_state, student)):
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is None for p in student.parameters())
    # The returned student was trained, left in eval mode, and carries no training hooks.
    assert not all(torch.equal(student_state[k], v) for k, v in trained.state_dict().items())
    assert not trained.training
    assert not any(m._forward_hooks for m in trained.modules())
    z = teacher.sample_inputs(16, torch.Generator().manual_seed(5))
    with torch.no_grad():
        before_gap = (student.eval()(z) - teacher(z)).abs().mean()
        after_gap = (trained(z) - teacher(z)).abs().mean()
    assert after_gap < before_gap


@pytest.mark.parametrize("kind", ["mlp", "dcgan", "resnet"])
def test_auto_feature_pairs_and_adapters_map_student_to_teacher_channels(kind):
    small = {"mlp": dict(hidden=32), "dcgan": dict(latent_dim=16, base=32), "resnet": dict(ngf=8, blocks=2)}
    teacher = build_generator(kind, **small[kind])
    student = make_student(teacher, 0.5)
    x = torch.randn(2, 1, 32, 32) if kind == "resnet" else None
    pairs = feature_pairs(teacher, student, "auto", x)
    assert len(pairs) >= 2
    assert [p.teacher_layer for p in pairs] == auto_feature_layers(teacher)
    if kind == "resnet":
        assert {"blocks.0", "blocks.1"} <= {p.teacher_layer for p in pairs}
    for pair in pairs:
        t_channels, s_channels = pair.teacher_shape[0], pair.student_shape[0]
        assert s_channels < t_channels
        assert pair.teacher_shape[1:] == pair.student_shape[1:]
        features = torch.randn(3, *pair.student_shape)
        assert pair.adapter(features).shape == (3, *pair.teacher_shape)
        kernel = pair.adapter.weight.shape
        assert kernel[:2] == (t_channels, s_channels)
        assert isinstance(pair.adapter, nn.Conv2d if len(pair.teacher_shape) == 3 else nn.Linear)
        if isinstance(pair.adapter, nn.Conv2d):
            assert tuple(kernel[2:]) == (1, 1)


def test_channel_pruned_student_pairs_by_name():
    # A pruned copy of the teacher keeps its module names but has fewer channels in the middle.
    teacher = DCGANGenerator(latent_dim=16, base=32)
    pruned = copy.deepcopy(teacher)
    pruned.net[3] = nn.ConvTranspose2d(128, 40, 4, 2, 1, bias=False)
    pruned.net[4] = nn.BatchNorm2d(40)
    pruned.net[6] = nn.ConvTranspose2d(40, 32, 4, 2, 1, bias=False)
    pairs = feature_pairs(teacher, pruned)
    assert [(p.teacher_shape[0], p.student_shape[0]) for p in pairs] == [(128, 128), (64, 40), (32, 32)]


def test_adversarial_term_only_when_weighted():
    teacher = small_dcgan_teacher()
    student = make_student(teacher, 0.5)
    disc = DCGANDiscriminator(base=8)
    disc_state = copy.deepcopy(disc.state_dict())
    _, without = distill(teacher, student, image_task(), DistillConfig(), quick(5), discriminator=disc)
    assert "g_adv" not in without[-1] and "d" not in without[-1]
    _, with_adv = distill(teacher, student, image_task(), DistillConfig(adversarial_weight=0.5), quick(5),
                          discriminator=disc)
    assert "g_adv" in with_adv[-1] and "d" in with_adv[-1] and "kd_output" in with_adv[-1]
    assert all(torch.equal(disc_state[k], v) for k, v in disc.state_dict().items())
    with pytest.raises(GanSurveyError, match="discriminator"):
        distill(teacher, student, image_task(), DistillConfig(adversarial_weight=0.5), quick(1))


def test_perceptual_term_uses_a_frozen_copy_of_the_extractor():
    teacher = small_dcgan_teacher()
    student = make_student(teacher, 0.5)
    classifier = DigitClassifier()  # the domain classifier's features, passed as a bound method
    config = DistillConfig(output_loss=None, perceptual_weight=1.0)
    _, log = distill(teacher, student, image_task(), config, quick(10), feature_extractor=classifier.features)
    assert set(log[-1]) == {"step", "kd_perceptual"}
    assert log[-1]["kd_perceptual"] < log[0]["kd_perceptual"]
    assert all(p.grad is None for p in classifier.parameters())
    with pytest.raises(GanSurveyError, match="feature_extractor"):
        distill(teacher, student, image_task(), config, quick(1))


def test_losses_plug_into_the_shared_trainer_on_a_copied_paired_student():
    # experiments.finetune copies the generator before training: the feature term must find the copy's layers.
    torch.manual_seed(0)
    teacher = ResNetGenerator(ngf=4, blocks=1).eval()
    student = make_student(teacher, 0.5)
    inputs = torch.rand(16, 1, 32, 32) * 2 - 1
    config = DistillConfig(output_loss="l2", feature_weight=2.0)
    losses, adapters = distillation_losses(teacher, student, config, example_input=inputs[:2])
    assert set(losses) == {"kd_output", "kd_feature"} and adapters
    trained = copy.deepcopy(student)
    log = train_gan(trained, None, PairedTask(inputs, inputs), quick(10, adversarial_weight=0.0),
                    extra_losses=losses, parameters=adapters)
    assert kd_total(log[-1]) < kd_total(log[0])
    assert not any(m._forward_hooks for m in student.modules())
    assert remove_feature_hooks(trained) == len(auto_feature_layers(trained))
    assert not any(m._forward_hooks for m in trained.modules())
    with pytest.raises(GanSurveyError, match="example_input"):
        distillation_losses(teacher, student, DistillConfig(feature_weight=1.0))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(output_weight=-1.0), ["output_weight", "-1.0", ">= 0"]),
        (dict(feature_weight=-0.5), ["feature_weight", "-0.5"]),
        (dict(perceptual_weight="big"), ["perceptual_weight", "'big'"]),
        (dict(output_loss="huber"), ["'huber'", "'l1'", "'l2'", "None"]),
        (dict(output_loss=None), ["every term off"]),
        (dict(feature_layers="all"), ["'all'", "'auto'"]),
        (dict(feature_layers=(("net.2",),)), ["('net.2',)", "two module names"]),
    ],
)
def test_bad_configs_name_the_value_and_the_allowed_ones(kwargs, words):
    with pytest.raises(GanSurveyError) as info:
        DistillConfig(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_bad_layers_name_the_value_and_the_allowed_ones():
    teacher = small_dcgan_teacher()
    student = make_student(teacher, 0.5)
    with pytest.raises(GanSurveyError) as info:
        feature_pairs(teacher, student, (("net.2", "net.99"),))
    assert "student has no layer 'net.99'" in str(info.value) and "'net.5'" in str(info.value)
    with pytest.raises(GanSurveyError) as info:
        feature_pairs(teacher, student, (("net.2", "net.5"),))  # 4x4 against 8x8 features
    message = str(info.value)
    assert "'net.2'" in message and "(2, 16, 8, 8)" in message and "same H and W" in message
    with pytest.raises(GanSurveyError, match="1 student layer"):
        feature_pairs(teacher, nn.Sequential(nn.Linear(16, 4), nn.ReLU()), "auto", torch.randn(2, 16))
