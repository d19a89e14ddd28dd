"""The named benchmarks, one registry: the built-in ones (:mod:`.toy`, :mod:`.digits`) and those on the user's
own image folders (:mod:`.folder`). :class:`~gansurvey.benchmarks.base.Benchmark` says what a benchmark is."""

from __future__ import annotations

import os
from typing import Any

from gansurvey.benchmarks.base import Benchmark
from gansurvey.benchmarks.digits import Edges2DigitsBenchmark, MnistBenchmark, MnistMLPBenchmark
from gansurvey.benchmarks.folder import FOLDER_REGISTRY
from gansurvey.benchmarks.toy import GaussiansBenchmark
from gansurvey.checks import GanSurveyError, check_choice

BENCHMARKS = ("gaussians-mlp", "mnist-dcgan", "edges2digits-resnet", "mnist-mlp")
#: Benchmarks on the user's own image folders (``get_benchmark(name, data_root=...)``; :mod:`.folder`).
FOLDER_BENCHMARKS = ("pix2pix-folder", "cyclegan-folder")
_REGISTRY = {cls.name: cls for cls in (GaussiansBenchmark, MnistBenchmark, Edges2DigitsBenchmark, MnistMLPBenchmark)}


def get_benchmark(name: str | Benchmark, data_root: str | os.PathLike | None = None, size: int | None = None,
                  **options: Any) -> Benchmark:
    """The benchmark called ``name``: one of :data:`BENCHMARKS`, or of :data:`FOLDER_BENCHMARKS` with a data folder.
    A :class:`Benchmark` object is returned as it is, so functions that take a benchmark or its name call this
    once.

    Args:
        name: the benchmark's name, or a benchmark (then no other argument applies).
        data_root: the image folder of a folder benchmark (see :mod:`gansurvey.data.folders` for the layouts).
        size: image side of a folder benchmark (default 256).
        **options: further options of a folder benchmark (``steps``, ``direction``, ``amp``, ``num_workers``...).

    Example:
        >>> get_benchmark("pix2pix-folder", data_root="datasets/facades", size=256)  # doctest: +SKIP
    """
    if isinstance(name, Benchmark):
        if data_root is not None or size is not None or options:
            raise GanSurveyError(f"{name.name!r} is already a benchmark object: data_root, size and other options "
                                 "apply only when building one from its name")
        return name
    check_choice("benchmark", name, BENCHMARKS + FOLDER_BENCHMARKS)
    if name in FOLDER_BENCHMARKS:
        if data_root is None:
            raise GanSurveyError(f"benchmark {name!r} trains on your own image folder: pass data_root=<folder> "
                                 "(layouts: pix2pix train/ + test/, paired A/ + B/, CycleGAN trainA/ trainB/ ...)")
        return FOLDER_REGISTRY[name](data_root, 256 if size is None else size, **options)
    if data_root is not None or size is not None or options:
        raise GanSurveyError(f"benchmark {name!r} is built in: data_root, size and other options apply only to "
                             f"{', '.join(map(repr, FOLDER_BENCHMARKS))}")
    return _REGISTRY[name]()
