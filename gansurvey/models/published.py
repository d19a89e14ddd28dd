"""The generators and discriminators of pix2pix and CycleGAN as published, for the folder benchmarks.

The compression literature the survey covers (GAN Compression, CAT, OMGD, CycleGAN/pix2pix pruning and
distillation papers) measures its savings on exactly these networks, so a researcher pointing the collection at
facades or horse2zebra needs them layer for layer, not our small digit-sized look-alikes of ``models.py``. They are
written from the definitions in the authors' code (``models/networks.py`` of junyanz/pytorch-CycleGAN-and-pix2pix:
``UnetGenerator``/``UnetSkipConnectionBlock``, ``ResnetGenerator``/``ResnetBlock``, ``NLayerDiscriminator``):

- :class:`UnetGenerator256`: pix2pix's ``unet_256``: 8 stride-2 4x4 convolutions down to 1x1 and 8 transposed
  ones back, skip connections by concatenation, BatchNorm (so convolutions before a norm carry no bias), dropout
  0.5 in the three innermost 512-channel decoder blocks. With 3 input and 3 output channels it has
  **54,413,955** parameters, which the authors' code prints rounded as "54.414 M" for ``--netG unet_256``. (A
  figure of 54,414,080 sometimes quoted is not the count of this definition: summed layer by layer, the
  published blocks give 54,413,955, and no set of biases or norm layers, which hold 3 or a multiple of 64
  parameters each, makes up the difference of 125.)
- :class:`ResnetGenerator9`: CycleGAN's ``resnet_9blocks``: reflection-padded 7x7 convolution, two stride-2
  convolutions, nine residual blocks at 256 channels, two transposed convolutions, 7x7 convolution, tanh;
  InstanceNorm without affine parameters (so every convolution carries a bias). **11,378,179** parameters,
  the "11.378 M" the authors' code prints.
- :class:`NLayerPatchGAN`: the 70x70 PatchGAN (``--netD basic``, 3 layers, 64 filters): BatchNorm for pix2pix
  (6 input channels: the input image beside the output), InstanceNorm for CycleGAN (3 channels).

Two details of the published code are kept on purpose: the U-Net's skip connections carry the *LeakyReLU-ed*
encoder features (the original applies an in-place LeakyReLU to the tensor it then concatenates; we apply the same
activation out of place, with identical numbers), and the PatchGAN's output is the raw logit map (we flatten it to
``(N, patches)`` as the other discriminators of this package do).

Every class takes a ``width`` multiplier on its base filter count (``ngf``/``ndf``), which is how distillation
students are built (GAN Compression's students are such width-scaled generators). The U-Net also takes
``num_downs`` as the original does (``unet_128`` is 7); a U-Net needs inputs of at least ``2**num_downs`` pixels,
so 64x64 trials use ``num_downs=6``.
"""

from __future__ import annotations

import torch
from torch import nn

from gansurvey.checks import check_choice, check_number
from gansurvey.models.generators import Generator, scaled

__all__ = ["NORMS", "NLayerPatchGAN", "ResnetBlock", "ResnetGenerator9", "UnetBlock", "UnetGenerator256"]

NORMS = ("batch", "instance")

#: Parameter counts of the published networks (3 input and 3 output channels, width 1), as the authors' code
#: prints them (``print_networks``) and as ``sum(p.numel() for p in model.parameters())`` gives here.
PUBLISHED_PARAMS = {"unet_256": 54_413_955, "resnet_9blocks": 11_378_179}


def _norm(kind: str, channels: int) -> nn.Module:
    """The original's ``get_norm_layer``: BatchNorm with affine parameters, InstanceNorm without (and no stats)."""
    if check_choice("norm", kind, NORMS) == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class _ImageToImage(Generator):
    """An image-to-image generator: fed with images of its benchmark, not with noise."""

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise TypeError("an image-to-image generator is fed with images from its benchmark, not with noise")


class UnetBlock(nn.Module):
    """One level of the U-Net (``UnetSkipConnectionBlock``): down, the inner levels, up, then the skip concat.

    Args:
        outer: channels entering (and, after the up-convolution, leaving) this level.
        inner: channels after this level's down-convolution.
        submodule: the inner levels, or None for the innermost level.
        in_channels: image channels, for the outermost level only.
        position: ``"outermost"``, ``"innermost"`` or ``"middle"``.
        norm: ``"batch"`` or ``"instance"``; convolutions followed by a norm have a bias only with instance norm.
        dropout: add Dropout(0.5) after this level's up path (pix2pix's inner 512-channel levels).
    """

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None = None, in_channels: int | None = None,
                 position: str = "middle", norm: str = "batch", dropout: bool = False) -> None:
        super().__init__()
        check_choice("U-Net level", position, ("outermost", "innermost", "middle"))
        self.position = position
        bias = norm == "instance"
        in_channels = outer if in_channels is None else in_channels
        downconv = nn.Conv2d(in_channels, inner, 4, 2, 1, bias=bias)
        if position == "outermost":
            self.act = nn.Identity()
            down: list[nn.Module] = [downconv]
            up: list[nn.Module] = [nn.ReLU(), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif position == "innermost":
            self.act = nn.LeakyReLU(0.2)
            down = [downconv]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), _norm(norm, outer)]
        else:
            self.act = nn.LeakyReLU(0.2)
            down = [downconv, _norm(norm, inner)]
            up = [nn.ReLU(), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias), _norm(norm, outer)]
            if dropout:
                up.append(nn.Dropout(0.5))
        inner_path = [submodule] if submodule is not None else []
        self.model = nn.Sequential(*down, *inner_path, *up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.position == "outermost":
            return self.model(x)
        x = self.act(x)  # the original's in-place LeakyReLU also changes the skip tensor
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator256(_ImageToImage):
    """pix2pix's U-Net generator (``--netG unet_256``; ``num_downs=7`` is ``unet_128``).

    Args:
        in_channels: input image channels (3 for RGB).
        out_channels: output image channels.
        num_downs: stride-2 levels; inputs must be at least ``2**num_downs`` pixels wide (8 for 256x256).
        ngf: filters of the outermost level (64 as published); inner levels have 2x, 4x and 8x that.
        norm: ``"batch"`` as published for pix2pix, or ``"instance"``.
        dropout: Dropout(0.5) in the ``num_downs - 5`` inner 8*ngf decoder levels (pix2pix's noise source).
        width: multiplier on ``ngf`` (students).

    Example:
        >>> g = UnetGenerator256(num_downs=6, width=0.125)
        >>> g(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: bool = True, width: float = 1.0) -> None:
        super().__init__()
        check_number("num_downs", num_downs, minimum=5, maximum=12, integer=True)
        check_number("in_channels", in_channels, minimum=1, integer=True)
        check_number("out_channels", out_channels, minimum=1, integer=True)
        self.hparams = dict(in_channels=in_channels, out_channels=out_channels, num_downs=num_downs, ngf=ngf,
                            norm=norm, dropout=dropout, width=width)
        self.in_channels = in_channels
        g = scaled(ngf, width)
        block = UnetBlock(g * 8, g * 8, position="innermost", norm=norm)
        for _ in range(num_downs - 5):
            block = UnetBlock(g * 8, g * 8, block, norm=norm, dropout=dropout)
        block = UnetBlock(g * 4, g * 8, block, norm=norm)
        block = UnetBlock(g * 2, g * 4, block, norm=norm)
        block = UnetBlock(g, g * 2, block, norm=norm)
        self.model = UnetBlock(out_channels, g, block, in_channels=in_channels, position="outermost", norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResnetBlock(nn.Module):
    """CycleGAN's residual block: (reflection pad, 3x3 conv, norm, ReLU) twice without the last ReLU, plus x."""

    def __init__(self, channels: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
                                   _norm(norm, channels), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator9(_ImageToImage):
    """CycleGAN's ResNet generator (``--netG resnet_9blocks``; ``blocks=6`` is ``resnet_6blocks``).

    Args:
        in_channels: input image channels.
        out_channels: output image channels.
        ngf: filters after the first convolution (64 as published); 2x and 4x after the downsamplings.
        blocks: residual blocks at 4*ngf channels (9 as published for 256x256 images).
        norm: ``"instance"`` as published for CycleGAN, or ``"batch"``.
        dropout: Dropout(0.5) inside the residual blocks (off in CycleGAN).
        width: multiplier on ``ngf`` (students).

    Example:
        >>> g = ResnetGenerator9(width=0.125)
        >>> g(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, blocks: int = 9,
                 norm: str = "instance", dropout: bool = False, width: float = 1.0) -> None:
        super().__init__()
        check_number("blocks", blocks, minimum=0, integer=True)
        self.hparams = dict(in_channels=in_channels, out_channels=out_channels, ngf=ngf, blocks=blocks, norm=norm,
                            dropout=dropout, width=width)
        self.in_channels = in_channels
        bias = check_choice("norm", norm, NORMS) == "instance"
        c1, c2, c4 = (scaled(ngf, width) * m for m in (1, 2, 4))
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, c1, 7, bias=bias),
                                   _norm(norm, c1), nn.ReLU()]
        for cin, cout in ((c1, c2), (c2, c4)):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=bias), _norm(norm, cout), nn.ReLU()]
        layers += [ResnetBlock(c4, norm, dropout) for _ in range(blocks)]
        for cin, cout in ((c4, c2), (c2, c1)):
            layers += [nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1, bias=bias), _norm(norm, cout),
                       nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c1, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerPatchGAN(nn.Module):
    """The PatchGAN discriminator (``--netD basic`` is ``n_layers=3``: 70x70 receptive field per output logit).

    Args:
        in_channels: 6 for pix2pix (input and output images side by side in channels), 3 for CycleGAN.
        ndf: filters of the first layer (64 as published); then 2x, 4x, 8x (capped at 8x).
        n_layers: stride-2 layers after the first (3 gives the 70x70 patch).
        norm: ``"batch"`` (pix2pix) or ``"instance"`` (CycleGAN).
        width: multiplier on ``ndf``.

    Returns (from ``forward``) the patch logits flattened to ``(N, patches)``.

    Example:
        >>> d = NLayerPatchGAN(in_channels=3, norm="instance", width=0.125)
        >>> d(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 36])
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 width: float = 1.0) -> None:
        super().__init__()
        check_number("n_layers", n_layers, minimum=1, integer=True)
        self.hparams = dict(in_channels=in_channels, ndf=ndf, n_layers=n_layers, norm=norm, width=width)
        bias = check_choice("norm", norm, NORMS) == "instance"
        d = scaled(ndf, width)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, d, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(d * prev, d * mult, 4, stride, 1, bias=bias), _norm(norm, d * mult),
                       nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(d * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).flatten(1)


# Registered beside the small networks, so Benchmark.new_generator / new_discriminator build them by architecture.
