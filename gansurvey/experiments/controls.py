"""The two controls every compression result must beat.

- **Teacher + same steps**: the teacher fine-tuned for the arms' steps with the same losses. A compressed arm's
  "within X of the teacher" is measured against it, so more training is never mistaken for a compression gain.
- **Dense from scratch**: a generator of the teacher's architecture, narrowed until it stores as many bytes (or
  runs as many MACs) as a compressed operating point, trained from scratch with the same guidance for the steps
  the compressed model saw in all (the teacher's plus its fine-tuning). Compression pays only where it beats
  simply training that smaller model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import check_choice, check_number
from gansurvey.compress import make_student
from gansurvey.experiments.common import finetune
from gansurvey.measuring import measure
from gansurvey.metrics.cost import count_macs, stored_bytes
from gansurvey.records import Measurement

#: The technique label of the "teacher + same steps" control (claims.common.CONTROL reads it).
TEACHER_CONTROL = "teacher fine-tuned"
MATCHES = ("stored_bytes", "macs")


def teacher_control(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, steps: int,
                    seeds: list[int], *, device: str = "auto", **measure_kwargs: Any) -> list[Measurement]:
    """The teacher fine-tuned ``steps`` steps (guided by itself, against its discriminator), one record per seed:
    family ``control``, technique :data:`TEACHER_CONTROL`. ``measure_kwargs`` go to :func:`measure` (a ``seed``
    among them is ignored: each record takes its seed from ``seeds``)."""
    check_number("steps", steps, minimum=0, integer=True)
    measure_kwargs.pop("seed", None)
    records = []
    for seed in seeds:
        tuned = finetune(teacher, bench, steps, discriminator, seed=seed, device=device, teacher=teacher).model
        records.append(measure(tuned, bench, technique=TEACHER_CONTROL, family="control",
                               settings={"control": "teacher", "steps": steps}, seed=seed, device=device,
                               **measure_kwargs))
    return records


def matched_width(teacher: nn.Module, target: float, match: str, example_input: torch.Tensor) -> float:
    """The width fraction whose dense student of ``teacher`` has ``match`` (stored bytes or MACs) closest to
    ``target`` (bisection over the width; both grow with it)."""
    check_choice("control match", match, MATCHES)
    check_number(f"target {match}", target, minimum=1)

    def cost(width: float) -> float:
        student = make_student(teacher, width)
        return stored_bytes(student) if match == "stored_bytes" else count_macs(student, example_input)

    low, high = 0.02, 1.0
    for _ in range(12):
        middle = (low + high) / 2
        low, high = (middle, high) if cost(middle) < target else (low, middle)
    return round(min((low, high), key=lambda w: abs(cost(w) - target)), 4)


def dense_control(bench: Benchmark, teacher: nn.Module, target: float, match: str, steps: int,
                  seeds: list[int], *, label: str = "", device: str = "auto",
                  **measure_kwargs: Any) -> list[Measurement]:
    """A dense generator narrowed to ``target`` stored bytes or MACs (``match``), trained from scratch for
    ``steps`` steps with the teacher as a guide (output L1 toward it beside the adversarial term against a fresh
    discriminator: a fresh generator would not survive the trained teacher's), one record per seed: family
    ``control``, technique ``dense from scratch @ <label or match>`` (a ``seed`` in ``measure_kwargs`` is ignored,
    as for :func:`teacher_control`)."""
    measure_kwargs.pop("seed", None)
    x = bench.example_input(1)
    width = matched_width(teacher, target, match, x)
    records = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            student = make_student(teacher, width)
        trained = finetune(student, bench, steps, None, seed=seed, device=device, teacher=teacher).model
        records.append(measure(trained, bench, technique=f"dense from scratch @ {label or match}", family="control",
                               settings={"control": "dense", "match": match, "target": float(target),
                                         "width": width, "steps": steps}, seed=seed, device=device,
                               **measure_kwargs))
    return records
