"""Image folders in the layouts of pix2pix and CycleGAN, checked before any training starts.

Why: the surveyed works measure their compressed generators on facades, edges2shoes, cityscapes, horse2zebra...
which a researcher has on disk in the authors' folder layouts. This module reads those layouts with the
authors' augmentation recipe, and refuses a bad folder with a sentence naming the path and what was expected, at
once, rather than after an hour of training.

Layouts (detected by :func:`detect_layout`):

- ``"pix2pix"``: ``train/``, ``test/`` (or ``val/`` when there is no ``test/``, as in edges2shoes) and
  optionally ``val/``; each file holds A and B side by side (A left), all files of one size with an even width.
- ``"paired-folders"``: ``A/train/``, ``B/train/``, ``A/test/`` (or ``val/``), ``B/test/``: the input of the
  authors' ``combine_A_and_B.py``; A and B files of the same split have the same names, and each pair one size.
- ``"cyclegan"``: ``trainA/``, ``trainB/``, ``testA/``, ``testB/``; unpaired, any sizes.

Every file in a split folder must be an image Pillow can read (hidden files such as ``.DS_Store`` are skipped).
Training items follow the authors' ``resize_and_crop`` preprocessing: resize to ``load_size = size * 286 / 256``
(bicubic), a random ``size`` crop and a random horizontal flip, the same for A and B of a pair; evaluation items
are a plain resize to ``size`` (the authors' test script keeps the random crop; a fixed resize makes every
evaluation the same). Pixels are float32 in [-1, 1], RGB.

Randomness never comes from global state: :class:`StepSampler` derives each step's items (indices and an
augmentation seed per item) from ``(seed, step)`` alone, so batches are the same with any number of worker
processes, and a run resumed at step ``s`` sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import InterpolationMode

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.checks import given_path as _shown

__all__ = [
    "IMAGE_EXTENSIONS", "LAYOUTS", "FolderData", "PairedFolder", "StepSampler", "UnpairedFolder", "detect_layout",
    "load_size", "scan_folder", "step_loader",
]

LAYOUTS = ("pix2pix", "paired-folders", "cyclegan")
#: The extensions the authors' ``image_folder.py`` accepts.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_PIX2PIX_HELP = "the pix2pix layout (train/ and test/ or val/, each file A|B side by side)"
_PAIRED_HELP = "paired folders (A/train/, B/train/, A/test/, B/test/ with matching file names)"
_CYCLEGAN_HELP = "the CycleGAN layout (trainA/, trainB/, testA/, testB/)"


def load_size(size: int) -> int:
    """The resize before the random crop: ``size * 286 / 256`` rounded (286 for 256, as the authors' recipe).

    Example:
        >>> load_size(256), load_size(64)
        (286, 72)
    """
    check_number("size", size, minimum=1, integer=True)
    return int(size * 286 / 256 + 0.5)


# ------------------------------------------------------------------------------------------ layout and checks


def detect_layout(root: str | os.PathLike) -> str:
    """Which layout the folder ``root`` is in: ``"pix2pix"``, ``"paired-folders"`` or ``"cyclegan"``.

    Only the folder structure is looked at; :func:`scan_folder` checks the files too.

    Args:
        root: the dataset folder (e.g. ``datasets/facades``).

    Raises:
        GanSurveyError: the folder is missing, or its sub-folders match none of the layouts.

    Example:
        >>> detect_layout("datasets/horse2zebra")  # doctest: +SKIP
        'cyclegan'
    """
    root = Path(root)
    if not root.exists():
        raise GanSurveyError(f"{_shown(root)}: data folder does not exist; expected a folder in {_PIX2PIX_HELP}, "
                             f"{_PAIRED_HELP} or {_CYCLEGAN_HELP}")
    if not root.is_dir():
        raise GanSurveyError(f"{_shown(root)}: is a file, expected a data folder")
    subdirs = {p.name for p in root.iterdir() if p.is_dir()}
    if {"trainA", "trainB"} & subdirs or {"testA", "testB"} & subdirs:
        return "cyclegan"
    if {"A", "B"} & subdirs:
        return "paired-folders"
    if "train" in subdirs:
        return "pix2pix"
    found = ", ".join(sorted(f"{name}/" for name in subdirs)) or "no sub-folders"
    raise GanSurveyError(f"{_shown(root)}: neither a paired nor an unpaired layout (found {found}); expected "
                         f"{_PIX2PIX_HELP}, {_PAIRED_HELP}, or {_CYCLEGAN_HELP}")


@dataclass(frozen=True)
class FolderData:
    """A checked dataset folder: its layout, the image files of each split, and a digest of the file list.

    ``train_a``/``test_a`` hold the A images (the whole A|B files for the pix2pix layout, where ``*_b`` is
    empty); ``train_b``/``test_b`` the B images: for paired folders the file of the same name, for CycleGAN
    the unpaired B domain. ``test_split`` says which folder serves as test (``test`` or ``val``).
    """

    root: Path
    layout: str
    train_a: tuple[Path, ...]
    train_b: tuple[Path, ...]
    test_a: tuple[Path, ...]
    test_b: tuple[Path, ...]
    test_split: str
    digest: str

    @property
    def paired(self) -> bool:
        """True when every A image has a known B target (pix2pix layout and paired folders)."""
        return self.layout != "cyclegan"


def _split_dir(path: Path, layout_help: str) -> Path:
    if not path.is_dir():
        raise GanSurveyError(f"{_shown(path)}: missing folder; {layout_help} needs it")
    return path


def _list_images(folder: Path) -> list[Path]:
    """The image files of a split folder, sorted by name; any other visible file is an error."""
    files, bad = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        (files if path.suffix.lower() in IMAGE_EXTENSIONS else bad).append(path)
    if bad:
        raise GanSurveyError(f"{_shown(bad[0])}: not an image file ({len(bad)} such in {_shown(folder)}); expected "
                             f"only images ({', '.join(IMAGE_EXTENSIONS)})")
    if not files:
        raise GanSurveyError(f"{_shown(folder)}: empty split; expected at least one image "
                             f"({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _reason(exc: BaseException, path: Path) -> str:
    """Pillow's message, with the file's path (Pillow names it in full) shown as :func:`given_path` shows it."""
    return str(exc).replace(str(path), _shown(path))


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, after checking Pillow can decode it."""
    try:
        with Image.open(path) as img:
            size = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise GanSurveyError(f"{_shown(path)}: unreadable image ({_reason(exc, path)}); expected an image file "
                             "Pillow can open") from exc
    return size


def _sizes(files: Sequence[Path]) -> dict[Path, tuple[int, int]]:
    return {path: _image_size(path) for path in files}


def _check_one_size(sizes: dict[Path, tuple[int, int]], what: str) -> None:
    distinct = sorted(set(sizes.values()))
    if len(distinct) > 1:
        first = next(iter(sizes.values()))
        odd = next(p for p, s in sizes.items() if s != first)
        raise GanSurveyError(f"{_shown(odd)}: image of {sizes[odd][0]}x{sizes[odd][1]} pixels among images of "
                             f"{first[0]}x{first[1]}; {what} needs all images of one size "
                             f"(found sizes {', '.join(f'{w}x{h}' for w, h in distinct)})")


def _test_name(root: Path) -> str:
    return "test" if (root / "test").is_dir() else "val"


def _digest(root: Path, layout: str, files: Sequence[Path]) -> str:
    """SHA-256 over the layout and each file's path relative to ``root`` and byte size (not its mtime)."""
    h = hashlib.sha256(layout.encode())
    for path in files:
        h.update(f"\n{path.relative_to(root).as_posix()}\t{path.stat().st_size}".encode())
    return h.hexdigest()


def scan_folder(root: str | os.PathLike) -> FolderData:
    """Detect the layout of ``root``, list its splits and check every file; raise on the first problem.

    Checks: the layout's folders exist, no split is empty, every visible file is a readable image, pix2pix
    files share one size with an even width, paired folders have the same names in A and B and each pair one
    size. Each error names the path and what was expected.

    Args:
        root: the dataset folder.

    Returns:
        A :class:`FolderData` with the sorted file lists and their digest.

    Example:
        >>> data = scan_folder("datasets/facades")  # doctest: +SKIP
        >>> data.layout, len(data.train_a), data.test_split  # doctest: +SKIP
        ('pix2pix', 400, 'test')
    """
    root = Path(root)
    layout = detect_layout(root)
    if layout == "cyclegan":
        lists = [_list_images(_split_dir(root / name, _CYCLEGAN_HELP)) for name in ("trainA", "trainB", "testA",
                                                                                    "testB")]
        for files in lists:
            _sizes(files)
        train_a, train_b, test_a, test_b = lists
        test = "test"
    elif layout == "pix2pix":
        _split_dir(root / "train", _PIX2PIX_HELP)
        test = _test_name(root)
        if not (root / test).is_dir():
            raise GanSurveyError(f"{_shown(root / 'test')}: missing folder; the pix2pix layout needs test/ (or val/) "
                                 "beside train/ (each file A|B side by side)")
        train_a, test_a = _list_images(root / "train"), _list_images(root / test)
        sizes = _sizes(train_a + test_a)
        _check_one_size(sizes, "the pix2pix layout (A|B side by side)")
        width, height = next(iter(sizes.values()))
        if width % 2:
            raise GanSurveyError(f"{_shown(train_a[0])}: {width}x{height} pixels; the pix2pix layout needs an even "
                                 "width (A and B side by side, A on the left)")
        train_b, test_b = [], []
    else:
        for side in ("A", "B"):
            _split_dir(root / side, _PAIRED_HELP)
        test = "test" if (root / "A" / "test").is_dir() or (root / "B" / "test").is_dir() else "val"
        pairs = []
        for split in ("train", test):
            a = _list_images(_split_dir(root / "A" / split, _PAIRED_HELP))
            b = _list_images(_split_dir(root / "B" / split, _PAIRED_HELP))
            names_a, names_b = [p.name for p in a], [p.name for p in b]
            if names_a != names_b:
                only_a = sorted(set(names_a) - set(names_b))
                only_b = sorted(set(names_b) - set(names_a))
                raise GanSurveyError(
                    f"{_shown(root / 'A' / split)} and {_shown(root / 'B' / split)}: file names do not match; paired "
                    f"folders need the same names on both sides (only in A: {only_a[:5] or 'none'}, only in B: "
                    f"{only_b[:5] or 'none'})")
            for pa, pb in zip(a, b, strict=True):
                sa, sb = _image_size(pa), _image_size(pb)
                if sa != sb:
                    raise GanSurveyError(f"{_shown(pb)}: {sb[0]}x{sb[1]} pixels but its pair {_shown(pa)} has "
                                         f"{sa[0]}x{sa[1]}; paired folders need both images of a pair of one size")
            pairs.append((a, b))
        (train_a, train_b), (test_a, test_b) = pairs
    everything = [*train_a, *train_b, *test_a, *test_b]
    return FolderData(root=root, layout=layout, train_a=tuple(train_a), train_b=tuple(train_b),
                      test_a=tuple(test_a), test_b=tuple(test_b), test_split=test,
                      digest=_digest(root, layout, everything))


# ------------------------------------------------------------------------------------------------- datasets


def _mix(*numbers: int) -> int:
    """A 63-bit seed derived from integers (stable across processes, unlike ``hash``)."""
    data = ",".join(str(int(n)) for n in numbers).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little") >> 1


def _load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise GanSurveyError(f"{_shown(path)}: unreadable image ({_reason(exc, path)}); expected an image file "
                             "Pillow can open") from exc


class _Transform:
    """The authors' ``resize_and_crop`` + flip with parameters drawn from a seed, or a plain resize."""

    def __init__(self, size: int, augment: bool) -> None:
        self.size, self.augment, self.load = size, augment, load_size(size)

    def params(self, seed: int | None) -> tuple[int, int, bool] | None:
        if not self.augment or seed is None:
            return None
        gen = torch.Generator().manual_seed(seed)
        x, y = (int(v) for v in torch.randint(self.load - self.size + 1, (2,), generator=gen))
        flip = bool(torch.rand((), generator=gen) < 0.5)
        return x, y, flip

    def __call__(self, img: Image.Image, params: tuple[int, int, bool] | None) -> torch.Tensor:
        if params is None:
            img = TF.resize(img, [self.size, self.size], InterpolationMode.BICUBIC)
        else:
            x, y, flip = params
            img = TF.resize(img, [self.load, self.load], InterpolationMode.BICUBIC)
            img = TF.crop(img, y, x, self.size, self.size)
            if flip:
                img = TF.hflip(img)
        return TF.to_tensor(img).mul(2.0).sub(1.0)


def _as_data(data: FolderData | str | os.PathLike) -> FolderData:
    return data if isinstance(data, FolderData) else scan_folder(data)


class PairedFolder(Dataset):
    """(A, B) pairs of a paired layout, augmented as pix2pix for training, resized for evaluation.

    Items are indexed by an int (no augmentation) or by ``(index, seed)`` (augmentation drawn from ``seed``, the
    same for A and B), which is what :class:`StepSampler` yields.

    Args:
        data: a :class:`FolderData` or a folder to scan.
        split: ``"train"`` or ``"test"``.
        size: side of the square images returned.
        augment: resize to ``load_size(size)``, random crop, random flip (training); else plain resize.
        direction: ``"AtoB"`` returns (A, B); ``"BtoA"`` swaps them, as the authors' ``--direction``.

    Example:
        >>> ds = PairedFolder("datasets/facades", "train", size=256, augment=True)  # doctest: +SKIP
        >>> a, b = ds[(0, 123)]  # doctest: +SKIP
    """

    def __init__(self, data: FolderData | str | os.PathLike, split: str = "train", size: int = 256,
                 augment: bool = False, direction: str = "AtoB") -> None:
        self.data = _as_data(data)
        if not self.data.paired:
            raise GanSurveyError(f"{_shown(self.data.root)}: is in {_CYCLEGAN_HELP}, which is unpaired; a paired "
                                 f"dataset needs {_PIX2PIX_HELP} or {_PAIRED_HELP}")
        check_choice("split", split, ("train", "test"))
        check_choice("direction", direction, ("AtoB", "BtoA"))
        self.a = self.data.train_a if split == "train" else self.data.test_a
        self.b = self.data.train_b if split == "train" else self.data.test_b
        self.direction = direction
        self.transform = _Transform(check_number("size", size, minimum=8, integer=True), augment)

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if self.data.layout == "pix2pix":
            ab = _load_rgb(self.a[index])
            w, h = ab.size
            img_a, img_b = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
        else:
            img_a, img_b = _load_rgb(self.a[index]), _load_rgb(self.b[index])
        params = self.transform.params(seed)
        a, b = self.transform(img_a, params), self.transform(img_b, params)
        return (a, b) if self.direction == "AtoB" else (b, a)


class UnpairedFolder(Dataset):
    """(A, B) images of two domains, drawn independently, augmented as CycleGAN for training.

    Items are indexed by an int ``i`` (A[i mod |A|], B[i mod |B|], no augmentation) or by
    ``(i, j, seed)``: A[i mod |A|] and B[j mod |B|], each with its own crop and flip drawn from ``seed``.
    A paired layout can be read unpaired too (CycleGAN was evaluated on paired data such as cityscapes).

    Args:
        data: a :class:`FolderData` or a folder to scan.
        split: ``"train"`` or ``"test"``.
        size: side of the square images returned.
        augment: resize to ``load_size(size)``, random crop, random flip (training); else plain resize.

    Example:
        >>> ds = UnpairedFolder("datasets/horse2zebra", "train", size=256, augment=True)  # doctest: +SKIP
        >>> a, b = ds[(0, 17, 123)]  # doctest: +SKIP
    """

    def __init__(self, data: FolderData | str | os.PathLike, split: str = "train", size: int = 256,
                 augment: bool = False) -> None:
        self.data = _as_data(data)
        check_choice("split", split, ("train", "test"))
        self.split = split
        self.paired = PairedFolder(self.data, split, size, augment) if self.data.layout == "pix2pix" else None
        self.a = self.data.train_a if split == "train" else self.data.test_a
        self.b = self.data.train_b if split == "train" else self.data.test_b
        self.transform = _Transform(check_number("size", size, minimum=8, integer=True), augment)

    @property
    def sizes(self) -> tuple[int, int]:
        """Number of A and of B images."""
        return len(self.a), len(self.a) if self.paired is not None else len(self.b)

    def __len__(self) -> int:
        return max(self.sizes)

    def _side(self, which: int, index: int, seed: int | None) -> torch.Tensor:
        if self.paired is not None:  # A|B files: take the half asked for
            key = (index, seed) if seed is not None else index
            return self.paired[key][which]
        files = self.a if which == 0 else self.b
        img = _load_rgb(files[index % len(files)])
        return self.transform(img, self.transform.params(seed))

    def __getitem__(self, key: int | tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(key, tuple):
            i, j, seed = key
            return self._side(0, i % self.sizes[0], _mix(seed, 0)), self._side(1, j % self.sizes[1], _mix(seed, 1))
        return self._side(0, key % self.sizes[0], None), self._side(1, key % self.sizes[1], None)


# ------------------------------------------------------------------------------------------------- sampling


class StepSampler(Sampler):
    """Batches for steps ``start..steps-1``, each a function of ``(seed, step)`` only.

    Every epoch visits the items in a permutation drawn from ``(seed, epoch)``; each item gets an augmentation
    seed from ``(seed, position)``. For unpaired data (``unpaired_b`` = number of B images) each item also gets
    a random B index, as the authors' unaligned loader does. Resuming at ``start`` gives the same batches as
    an uninterrupted run, whatever the number of worker processes.

    Args:
        length: items per epoch.
        batch_size: items per step.
        steps: the step to stop before.
        seed: the run's seed.
        start: the first step to yield.
        unpaired_b: number of B images for unpaired data (None for paired).

    Example:
        >>> list(StepSampler(4, 2, steps=1, seed=0))[0]  # doctest: +SKIP
        [(2, 1234...), (0, 5678...)]
    """

    def __init__(self, length: int, batch_size: int, steps: int, seed: int = 0, start: int = 0,
                 unpaired_b: int | None = None) -> None:
        check_number("dataset length", length, minimum=1, integer=True)
        check_number("batch_size", batch_size, minimum=1, integer=True)
        check_number("steps", steps, minimum=0, integer=True)
        check_number("start", start, minimum=0, integer=True)
        self.length, self.batch_size, self.steps, self.seed, self.start = length, batch_size, steps, seed, start
        self.unpaired_b = unpaired_b
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def _key(self, position: int) -> tuple[int, ...]:
        epoch, offset = divmod(position, self.length)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(_mix(self.seed, epoch, 1))
            self._epoch, self._perm = epoch, torch.randperm(self.length, generator=gen)
        index, aug = int(self._perm[offset]), _mix(self.seed, position, 2)
        if self.unpaired_b is None:
            return index, aug
        return index, _mix(self.seed, position, 3) % self.unpaired_b, aug

    def __iter__(self) -> Iterator[list[tuple[int, ...]]]:
        for step in range(self.start, self.steps):
            yield [self._key(step * self.batch_size + k) for k in range(self.batch_size)]


def step_loader(dataset: PairedFolder | UnpairedFolder, batch_size: int, steps: int, seed: int = 0,
                start: int = 0, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding the batches of steps ``start..steps-1`` (see :class:`StepSampler`).

    Args:
        dataset: a training :class:`PairedFolder` or :class:`UnpairedFolder` (with ``augment=True``).
        batch_size: items per step.
        steps: the step to stop before.
        seed: the run's seed.
        start: the first step (a resumed run's checkpoint step).
        num_workers: decoding worker processes (0 decodes in the calling process).
        pin_memory: pin batches for faster copies to a GPU.

    Example:
        >>> for a, b in step_loader(ds, batch_size=1, steps=10):  # doctest: +SKIP
        ...     pass
    """
    check_number("num_workers", num_workers, minimum=0, integer=True)
    unpaired = dataset.sizes[1] if isinstance(dataset, UnpairedFolder) else None
    sampler = StepSampler(len(dataset), batch_size, steps, seed, start, unpaired)
    # The loader's own generator: otherwise creating its iterator draws from torch's global generator, which
    # would shift dropout after a resume (the global state is restored before the loader is made).
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                      persistent_workers=False, generator=torch.Generator().manual_seed(seed))
