"""The GANs of the three benchmarks. Every generator takes a ``width`` multiplier on its channel counts, which
is how distillation students and slimmed models are built.

- ``MLPGenerator`` / ``MLPDiscriminator``: 2-D toy mixtures.
- ``DCGANGenerator`` / ``DCGANDiscriminator``: 32x32 images, ConvTranspose2d upsampling (Radford et al. 2016).
- ``ResNetGenerator`` / ``PatchDiscriminator``: image-to-image translation in the pix2pix/CycleGAN style:
  strided convolutions down, residual blocks, ConvTranspose2d up; a PatchGAN judges (input, output) pairs.
"""

from __future__ import annotations

import torch
from torch import nn

from gansurvey.checks import check_number


def scaled(channels: int, width: float) -> int:
    """``channels`` scaled by the width multiplier, never below one."""
    check_number("width", width, minimum=1e-3, maximum=16)
    return max(1, int(round(channels * width)))


def activation_layers(module: nn.Module) -> list[str]:
    """Names of every ReLU or LeakyReLU module of ``module``, in registration (forward) order."""
    return [name for name, m in module.named_modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]


def _relus(stage: nn.Sequential, prefix: str) -> list[str]:
    return [f"{prefix}.{i}" for i, m in enumerate(stage) if isinstance(m, nn.ReLU)]


class Generator(nn.Module):
    """Common face of the generators: ``hparams`` rebuilds the architecture, ``sample_inputs`` draws inputs,
    ``feature_layers`` names the layers feature distillation imitates."""

    hparams: dict

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def feature_layers(self) -> list[str]:
        """The layers whose outputs feature distillation imitates (``feature_layers="auto"``), in forward order:
        by default every ReLU or LeakyReLU. Module names survive channel pruning, so a pruned copy of a teacher
        gives the teacher's list."""
        return activation_layers(self)


class LatentGenerator(Generator):
    """A generator fed with Gaussian noise of size ``latent_dim``."""

    latent_dim: int

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        shape = (n, self.latent_dim, 1, 1) if self._spatial_latent else (n, self.latent_dim)
        return torch.randn(shape, generator=generator)

    _spatial_latent = False


class MLPGenerator(LatentGenerator):
    def __init__(self, latent_dim: int = 8, hidden: int = 128, depth: int = 3, width: float = 1.0,
                 out_dim: int = 2) -> None:
        super().__init__()
        check_number("depth", depth, minimum=1, integer=True)
        self.hparams = dict(latent_dim=latent_dim, hidden=hidden, depth=depth, width=width, out_dim=out_dim)
        self.latent_dim = latent_dim
        h = scaled(hidden, width)
        layers: list[nn.Module] = []
        size = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        layers.append(nn.Linear(size, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def feature_layers(self) -> list[str]:
        """Every hidden layer's ReLU."""
        return _relus(self.net, "net")


class MLPDiscriminator(nn.Module):
    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3, width: float = 1.0) -> None:
        super().__init__()
        h = scaled(hidden, width)
        layers: list[nn.Module] = []
        size = in_dim
        for _ in range(depth):
            layers += [nn.Linear(size, h), nn.LeakyReLU(0.2)]
            size = h
        layers.append(nn.Linear(size, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class DCGANGenerator(LatentGenerator):
    """z (latent_dim x 1 x 1) -> 4x4 -> 8x8 -> 16x16 -> 32x32 through ConvTranspose2d, BatchNorm, ReLU, Tanh."""

    _spatial_latent = True

    def __init__(self, latent_dim: int = 100, base: int = 64, width: float = 1.0, channels: int = 1) -> None:
        super().__init__()
        self.hparams = dict(latent_dim=latent_dim, base=base, width=width, channels=channels)
        self.latent_dim = latent_dim
        c1, c2, c3 = (scaled(base * m, width) for m in (4, 2, 1))

        def up(cin: int, cout: int, stride: int, padding: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.net = nn.Sequential(
            *up(latent_dim, c1, 1, 0),
            *up(c1, c2, 2, 1),
            *up(c2, c3, 2, 1),
            nn.ConvTranspose2d(c3, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def feature_layers(self) -> list[str]:
        """The ReLU after each up-sampling stage: the 4x4, 8x8 and 16x16 feature maps."""
        return _relus(self.net, "net")


class DCGANDiscriminator(nn.Module):
    """32x32 image -> one logit. Half the generator's base width: a full-width critic overpowers the generator
    within a few hundred steps on 4000 digits (measured: domain FID 1685 against 418 after 300 steps)."""

    def __init__(self, base: int = 32, width: float = 1.0, channels: int = 1) -> None:
        super().__init__()
        c1, c2, c3 = (scaled(base * m, width) for m in (1, 2, 4))
        self.net = nn.Sequential(
            nn.Conv2d(channels, c1, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(c1, c2, 4, 2, 1, bias=False), nn.BatchNorm2d(c2), nn.LeakyReLU(0.2),
            nn.Conv2d(c2, c3, 4, 2, 1, bias=False), nn.BatchNorm2d(c3), nn.LeakyReLU(0.2),
            nn.Conv2d(c3, 1, 4, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(Generator):
    """Image-to-image generator: 7x7 conv, two stride-2 convs down, residual blocks, two ConvTranspose2d up."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 16, blocks: int = 3,
                 width: float = 1.0) -> None:
        super().__init__()
        check_number("blocks", blocks, minimum=0, integer=True)
        self.hparams = dict(in_channels=in_channels, out_channels=out_channels, ngf=ngf, blocks=blocks, width=width)
        self.in_channels = in_channels
        c1, c2, c3 = (scaled(ngf * m, width) for m in (1, 2, 4))
        self.down = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, c1, 7, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, 2, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, 2, 1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(),
        )
        self.blocks = nn.Sequential(*(ResidualBlock(c3) for _ in range(blocks)))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 3, 2, 1, output_padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 3, 2, 1, output_padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.ReflectionPad2d(3), nn.Conv2d(c1, out_channels, 7), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.blocks(self.down(x)))

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise TypeError("an image-to-image generator is fed with images from its benchmark, not with noise")

    def feature_layers(self) -> list[str]:
        """The ReLU after each stride-2 down-sampling stage, every residual block's output and the ReLU after each
        up-sampling stage (GAN Compression distils the same kind of points); not the full-resolution stem."""
        names, stride = [], 1
        for i, m in enumerate(self.down):
            if isinstance(m, nn.Conv2d):
                stride = m.stride[0]
            elif isinstance(m, nn.ReLU) and stride > 1:
                names.append(f"down.{i}")
        return names + [f"blocks.{i}" for i in range(len(self.blocks))] + _relus(self.up, "up")


class PatchDiscriminator(nn.Module):
    """PatchGAN: judges overlapping patches of the (input, output) pair; returns one logit per patch."""

    def __init__(self, in_channels: int = 2, ndf: int = 32, layers: int = 2, width: float = 1.0) -> None:
        super().__init__()
        chans = [scaled(ndf * 2**i, width) for i in range(layers + 1)]
        mods: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for cin, cout in zip(chans, chans[1:], strict=False):
            mods += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
        mods.append(nn.Conv2d(chans[-1], 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.net(pair).flatten(1)
