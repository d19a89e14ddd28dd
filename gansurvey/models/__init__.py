"""The generators and discriminators, one registry by architecture: the small digit-sized ones
(:mod:`.generators`) and the published pix2pix U-Net-256 and CycleGAN ResNet-9 (:mod:`.published`)."""

from __future__ import annotations

from torch import nn

from gansurvey.checks import check_choice
from gansurvey.models.generators import (
    DCGANDiscriminator,
    DCGANGenerator,
    Generator,
    MLPDiscriminator,
    MLPGenerator,
    PatchDiscriminator,
    ResNetGenerator,
)
from gansurvey.models.published import NLayerPatchGAN, ResnetGenerator9, UnetGenerator256

GENERATORS = {"mlp": MLPGenerator, "dcgan": DCGANGenerator, "resnet": ResNetGenerator,
              "unet256": UnetGenerator256, "resnet9": ResnetGenerator9}
DISCRIMINATORS = {"mlp": MLPDiscriminator, "dcgan": DCGANDiscriminator, "resnet": PatchDiscriminator,
                  "unet256": NLayerPatchGAN, "resnet9": NLayerPatchGAN}


def build_generator(kind: str, **hparams) -> Generator:
    """A fresh generator of the named architecture (``mlp``, ``dcgan`` or ``resnet``)."""
    return GENERATORS[check_choice("generator architecture", kind, GENERATORS)](**hparams)


def build_discriminator(kind: str, **hparams) -> nn.Module:
    return DISCRIMINATORS[check_choice("discriminator architecture", kind, DISCRIMINATORS)](**hparams)


