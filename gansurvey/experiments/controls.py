"""The two controls every compression result must beat.

- **Teacher + same steps**: the teacher fine-tuned for the arms' steps with the same losses. A compressed arm's
  "within X of the teacher" is measured against it, so more training is never mistaken for a compression gain.
- **Dense from scratch**: generators of the teacher's architecture at a few narrower widths, trained from scratch
  with the same guidance for the steps a compressed model saw in all (the teacher's plus its fine-tuning). A
  compressed model is compared with the narrowest one that stores at least as many bytes (or runs at least as
  many MACs): compression pays only where it beats simply training a model that size.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gansurvey import zoo
from gansurvey.benchmarks import get_benchmark
from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import check_number
from gansurvey.compress import make_student
from gansurvey.config import ProfileSettings, data_dir
from gansurvey.experiments.common import finetune, output_weight, total_steps
from gansurvey.experiments.executor import Task, run_tasks
from gansurvey.measuring import measure
from gansurvey.records import Measurement

#: The technique label of the "teacher + same steps" control (claims.common.CONTROL reads it).
TEACHER_CONTROL = "teacher fine-tuned"


def teacher_control(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, steps: int,
                    seeds: list[int], *, device: str = "auto", executor: str = "serial", address: str | None = None,
                    **measure_kwargs: Any) -> list[Measurement]:
    """The teacher fine-tuned ``steps`` steps (guided by itself, against its discriminator), one record per seed:
    family ``control``, technique :data:`TEACHER_CONTROL`. ``measure_kwargs`` go to :func:`measure` (a ``seed``
    among them is ignored: each record takes its seed from ``seeds``). Each seed is one task of ``executor``
    (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster to join)."""
    check_number("steps", steps, minimum=0, integer=True)
    measure_kwargs.pop("seed", None)
    tasks = [Task(TEACHER_CONTROL, seed, _teacher_control_run, dict(
        bench=bench, teacher=teacher, discriminator=discriminator, steps=steps, seed=seed, device=device,
        measure_kwargs=measure_kwargs)) for seed in seeds]
    return run_tasks(tasks, executor, address, desc=f"{bench.name}: teacher control", device=device)


def _teacher_control_run(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, steps: int, seed: int,
                         device: str, measure_kwargs: dict) -> Measurement:
    tuned = finetune(teacher, bench, steps, discriminator, seed=seed, device=device, teacher=teacher).model
    return measure(tuned, bench, technique=TEACHER_CONTROL, family="control",
                   settings={"control": "teacher", "steps": steps}, seed=seed, device=device, **measure_kwargs)


#: Widths of the dense-from-scratch controls, as fractions of the teacher's. Stored bytes and MACs fall about as
#: the width squared, so these sit near 4x, 16x and 64x below the teacher: the single families' main cuts and the
#: headline targets (60x bytes, 20x MACs). A compressed model is compared with the narrowest one that costs at
#: least as much as it does (:func:`gansurvey.claims.dense.dense_of_its_size`), so a win is never bought by a
#: smaller rival; a model cut less than about 4x has no control of its size.
DENSE_WIDTHS = (0.5, 0.25, 0.125)
DENSE_LABEL = "dense from scratch w{width:g}"
DENSE_KIND = "dense-controls"  # the cache's (and data/'s) folder of trained dense controls


def dense_controls(bench: Benchmark, teacher: nn.Module, seeds: list[int], *, profile: ProfileSettings,
                   widths: tuple[float, ...] = DENSE_WIDTHS, finetune_steps: int | None = None,
                   device: str = "auto", executor: str = "serial", address: str | None = None,
                   **measure_kwargs: Any) -> list[Measurement]:
    """Dense generators of the teacher's architecture at ``widths``, trained from scratch with the teacher's recipe for
    as many steps as a compressed model saw in all (the teacher's plus the fine-tuning budget, capped at the profile's
    ``dense_steps_cap``: :func:`total_steps` with ``purpose="dense"``) with the same guidance as the compressed
    arms (an output L1 toward the teacher beside the adversarial term; the discriminator starts fresh, as a fresh
    generator would not survive the trained one's), one record per width and seed: family ``control``, technique
    :data:`DENSE_LABEL`, ``settings["control"] == "dense"``.

    Each trained control is cached in the artifacts folder under its benchmark, width, steps, seed, recipe and
    teacher, so the notebooks that compare with the same control train it once (a ``seed`` in ``measure_kwargs`` is
    ignored: each record takes its seed from ``seeds``). Each width and seed is one task of ``executor``
    (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster to join); two tasks never
    share a cache entry, and two runs that build the same one write the same checksummed file atomically."""
    measure_kwargs.pop("seed", None)
    steps = total_steps(profile, bench, finetune_steps, purpose="dense")
    for width in widths:
        check_number("dense control width", width, minimum=1e-3, maximum=1.0)
    tasks = [Task(DENSE_LABEL.format(width=width), seed, _dense_control_run, dict(
        bench=bench, teacher=teacher, width=width, steps=steps, seed=seed, device=device,
        measure_kwargs=dict(profile=profile, **measure_kwargs))) for width in widths for seed in seeds]
    return run_tasks(tasks, executor, address, desc=f"{bench.name}: dense controls", device=device)


def _dense_control_run(bench: Benchmark, teacher: nn.Module, width: float, steps: int, seed: int, device: str,
                       measure_kwargs: dict) -> Measurement:
    model = trained_dense(bench, teacher, width, steps, seed, device)
    return measure(model, bench, technique=DENSE_LABEL.format(width=width), family="control",
                   settings={"control": "dense", "width": width, "steps": steps}, seed=seed, device=device,
                   **measure_kwargs)


def dense_key(bench: Benchmark, teacher: nn.Module, width: float, steps: int, seed: int) -> dict:
    """What decides a dense control's weights: benchmark, width, steps, seed, recipe, guidance and teacher."""
    recipe = dataclasses.asdict(bench.teacher_config(steps, seed, progress=False))
    return zoo.cache_key(benchmark=bench.name, width=width, steps=steps, seed=seed, guide="teacher",
                         output_weight=output_weight(bench), recipe=recipe,
                         teacher=zoo.state_sha256({"generator": teacher.state_dict()}))


def trained_dense(bench: Benchmark, teacher: nn.Module, width: float, steps: int, seed: int,
                  device: str = "auto") -> nn.Module:
    """One dense control (see :func:`dense_controls`): loaded from the artifacts cache when a sound entry exists,
    else trained and cached atomically."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the control's own seed decides its initial weights, not the global state
        student = make_student(teacher, width)
    key = dense_key(bench, teacher, width, steps, seed)

    def build() -> dict:
        return finetune(student, bench, steps, None, seed=seed, device=device, teacher=teacher,
                        recipe="teacher").model.state_dict()

    student.load_state_dict(zoo.cached(DENSE_KIND, key, build, shipped=data_dir()))
    return student.eval()


#: The benchmarks whose dense controls the quick and full profiles commit: the family notebooks' default ones.
SHIPPED_BENCHMARKS = ("mnist-dcgan", "edges2digits-resnet")


def _entries(benchmarks: list[str], profile: ProfileSettings, seeds: list[int],
             widths: tuple[float, ...]) -> Iterator[tuple[Benchmark, nn.Module, float, int, int, dict]]:
    """Each dense control of ``benchmarks`` x ``widths`` x ``seeds`` for ``profile``: benchmark, teacher, width,
    steps, seed and cache key."""
    for name in benchmarks:
        bench = get_benchmark(name)
        teacher, _ = bench.teacher(profile.name)
        steps = total_steps(profile, bench, purpose="dense")
        for width in widths:
            for seed in seeds:
                yield bench, teacher, width, steps, seed, dense_key(bench, teacher, width, steps, seed)


def dense_control_files(benchmarks: list[str], profile: ProfileSettings, seeds: list[int],
                        widths: tuple[float, ...] = DENSE_WIDTHS) -> list[dict]:
    """One row per dense control of ``benchmarks`` x ``widths`` x ``seeds`` for ``profile``: its steps, the
    committed file (``data/dense-controls/``) and whether it is there, and whether the artifacts cache holds it."""
    rows = []
    for bench, _, width, steps, seed, key in _entries(benchmarks, profile, seeds, widths):
        committed = zoo.cache_path(DENSE_KIND, key, data_dir())
        rows.append({"benchmark": bench.name, "width": width, "seed": seed, "steps": steps, "file": committed.name,
                     "committed": committed.exists(), "cached": zoo.cache_path(DENSE_KIND, key).exists()})
    return rows


def ship_dense_controls(benchmarks: list[str], profile: ProfileSettings, seeds: list[int],
                        widths: tuple[float, ...] = DENSE_WIDTHS, device: str = "cpu") -> list[Path]:
    """Train (or take from the cache) the dense controls of ``benchmarks`` for ``profile`` and ``seeds`` and copy
    them into ``data/dense-controls/``, where every checkout finds them: the full profile's controls train for as
    long as a teacher, so they are trained once and committed, like the teachers. Returns the files written."""
    written = []
    for bench, teacher, width, steps, seed, key in _entries(benchmarks, profile, seeds, widths):
        trained_dense(bench, teacher, width, steps, seed, device)
        source, target = zoo.cache_path(DENSE_KIND, key), zoo.cache_path(DENSE_KIND, key, data_dir())
        if source.exists():  # absent when the entry was already committed
            target.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", ".json"):
                shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
        written.append(target)
    return written
