"""The precision notebook's experiment steps (04_precision): quantization-aware fine-tuning with the shared
trainer, the post-training vs quantization-aware sweep, mixed precision at matched bytes, and the latency of the
quantized generators on the CPU's integer engines."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import torch
from torch import nn

from gansurvey.benchmarks import get_benchmark
from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress import (
    QuantConfig,
    QuantizedLayer,
    allocate_bits,
    convert_qat,
    layer_sensitivity,
    output_sqnr,
    prepare_qat,
    quantize,
    quantized_bytes,
    to_integer_engine,
)
from gansurvey.config import PROFILE_SETTINGS
from gansurvey.experiments.common import SAMPLE_GRID, finetune
from gansurvey.experiments.executor import Task, gathered, run_tasks
from gansurvey.measuring import measure
from gansurvey.metrics.cost import stored_bytes
from gansurvey.records import Measurement
from gansurvey.train.gan import TrainResult

TRAININGS = ("post-training", "quantization-aware")


def calibration_inputs(benchmark: str | Benchmark, n: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` generator inputs drawn from the benchmark's *training* task (never its evaluation inputs)."""
    bench = get_benchmark(benchmark)
    check_number("calibration samples", n, minimum=1, integer=True)
    return bench.task().batch(bench.new_generator(), n, torch.Generator().manual_seed(seed))[0]


def quantization_aware_finetune(model: nn.Module, benchmark: str | Benchmark, config: QuantConfig, steps: int,
                                discriminator: nn.Module | None = None, seed: int = 0,
                                example_input: Any = None, device: str = "auto",
                                teacher: nn.Module | None = None, guide: str = "teacher") -> TrainResult:
    """Quantization-aware fine-tuning: fake-quantized weights (and inputs) with straight-through gradients,
    trained by the shared trainer with the benchmark's recipe, then packed (QGAN, Wang et al. 2019, trains GANs
    quantization-aware because post-training quantization fails them at low bit widths).

    Args:
        model: the float generator (never modified).
        benchmark: its benchmark (name or object).
        config: the :class:`~gansurvey.compress.QuantConfig` trained for and packed at the end.
        steps: training steps, the same budget every family's fine-tuning gets (``experiments.budget_steps``).
        discriminator: copied and trained alongside (the teacher's); ``None``: a fresh one.
        seed: training seed.
        example_input: calibration inputs (activation ranges); ``None``: :func:`calibration_inputs`.
        device: where to train.
        teacher: the guide of ``guide="teacher"`` fine-tuning (:func:`~gansurvey.experiments.common.finetune`);
            ``None``: the float ``model`` itself, so the quantized copy learns to reproduce its float outputs.
        guide: ``"teacher"`` or ``"adversarial"`` (see ``finetune``).

    Returns:
        A :class:`~gansurvey.train.gan.TrainResult` whose ``model`` is the packed quantized generator.

    Example::

        result = quantization_aware_finetune(teacher, "mnist-dcgan", QuantConfig(weight_bits=2), steps=40)
        result.model  # QuantizedConvTranspose2d layers, trained with their quantization
    """
    bench = get_benchmark(benchmark)
    if example_input is None and config.activation_bits:
        example_input = calibration_inputs(bench, config.calibration, seed)
    prepared = prepare_qat(model, config, example_input)
    trained = finetune(prepared, bench, steps, discriminator, seed=seed, device=device,
                       teacher=model if teacher is None else teacher, guide=guide)
    return TrainResult(convert_qat(trained.model, config), trained.log)


def quantized_model(bench: Benchmark, teacher: nn.Module, config: QuantConfig, training: str, steps: int,
                    discriminator: nn.Module | None = None, seed: int = 0, device: str = "auto") -> nn.Module:
    """The teacher quantized post-training, or quantization-aware fine-tuned for ``steps``."""
    check_choice("training", training, TRAININGS)
    calibration = calibration_inputs(bench, config.calibration, seed)
    if training == "post-training":
        return quantize(teacher, config, calibration)
    return quantization_aware_finetune(teacher, bench, config, steps, discriminator, seed, calibration,
                                       device).model


def _record(model: nn.Module, teacher: nn.Module, bench: Benchmark, label: str, settings: dict, seed: int,
            device: str, measure_kwargs: dict) -> Measurement:
    z = bench.example_input(16)
    return measure(model, bench, technique=label, family="precision",
                   settings={**settings, "sqnr_db": round(output_sqnr(teacher, model, z), 3)}, seed=seed,
                   device=device, **measure_kwargs)


def precision_sweep(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, configs: list[QuantConfig],
                    steps: int, *, seeds: list[int], trainings: tuple[str, ...] = TRAININGS, device: str = "auto",
                    executor: str = "serial", address: str | None = None,
                    **measure_kwargs: Any) -> tuple[list[Measurement], dict[str, torch.Tensor]]:
    """Each config applied post-training and quantization-aware (``steps`` steps, the family-wide budget),
    for each seed, measured with :func:`gansurvey.measure`.

    Records carry ``settings``: ``weight_bits``, ``granularity``, ``rounding``, ``training``, ``steps`` and the
    output ``sqnr_db`` against the teacher; techniques are labelled ``"<config label> (<training>)"``. Returns
    the records and, per label, a grid of samples (last seed). Each config, training and seed is one task of
    ``executor`` (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster to join).
    """
    tasks = []
    for config in configs:
        for training in trainings:
            label = f"{config.label} ({training})"
            settings = dict(weight_bits=config.weight_bits, granularity=config.granularity, rounding=config.rounding,
                            training=training, steps=steps if training != "post-training" else 0)
            tasks += [Task(label, seed, _quantized_run, dict(
                bench=bench, teacher=teacher, discriminator=discriminator, config=config, training=training,
                steps=steps, label=label, settings=settings, seed=seed, grid=seed == seeds[-1], device=device,
                measure_kwargs=measure_kwargs)) for seed in seeds]
    return gathered(run_tasks(tasks, executor, address, desc=f"{bench.name}: precision", device=device))


def _quantized_run(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, config: QuantConfig,
                   training: str, steps: int, label: str, settings: dict, seed: int, grid: bool, device: str,
                   measure_kwargs: dict) -> tuple[Measurement, dict[str, torch.Tensor]]:
    model = quantized_model(bench, teacher, config, training, steps, discriminator, seed, device)
    record = _record(model, teacher, bench, label, settings, seed, device, measure_kwargs)
    return record, {label: bench.generate(model, SAMPLE_GRID, seed)} if grid else {}


def mixed_precision_sweep(bench: Benchmark, teacher: nn.Module, uniform_bits: list[int], choices: list[int],
                          *, seeds: list[int], base: QuantConfig | None = None, score: str = "sqnr",
                          device: str = "auto", executor: str = "serial", address: str | None = None,
                          **measure_kwargs: Any) -> tuple[list[Measurement], list[QuantConfig]]:
    """Mixed precision against uniform bits at matched bytes, post-training.

    For each of ``uniform_bits``: the uniform model, and bits per layer from ``choices`` allocated by
    :func:`~gansurvey.compress.allocate_bits` under the uniform model's quantized-layer bytes, with sensitivities
    from the output-noise proxy (``score="sqnr"``) or the benchmark's primary quality metric (``"quality"``,
    slower). Records carry ``allocation`` (``uniform``/``mixed``), ``budget_bits`` and ``per_layer_bits``. Each
    model and seed is one task of ``executor`` (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a
    Ray cluster to join); the sensitivities and allocations are found here first.
    """
    check_choice("sensitivity score", score, ("sqnr", "quality"))
    base = base or QuantConfig()
    z = calibration_inputs(bench, 32, 0)
    scorer = None
    if score == "quality":
        profile = measure_kwargs.get("profile", PROFILE_SETTINGS["quick"])  # measure's default too
        sign = -1.0 if bench.higher_is_better else 1.0

        def scorer(m: nn.Module) -> float:
            return sign * float(bench.quality(m, profile)[bench.primary_metric])

    sens = layer_sensitivity(teacher, z, bits=tuple(choices), base=base, score=scorer)
    tasks, configs = [], []
    for bits in uniform_bits:
        uniform = dataclasses.replace(base, weight_bits=bits)
        budget = quantized_bytes(quantize(teacher, uniform))
        mixed = allocate_bits(sens, budget, base)
        configs.append(mixed)
        for allocation, config in (("uniform", uniform), ("mixed", mixed)):
            label = f"{allocation} at w{bits} bytes"
            settings = dict(allocation=allocation, budget_bits=bits, budget_bytes=budget, training="post-training",
                            granularity=config.granularity, rounding=config.rounding,
                            per_layer_bits=dict(config.per_layer_bits or ()), sensitivity_score=score)
            tasks += [Task(label, seed, _allocated_run, dict(
                bench=bench, teacher=teacher, config=config, label=label, settings=settings, seed=seed,
                device=device, measure_kwargs=measure_kwargs)) for seed in seeds]
    records = run_tasks(tasks, executor, address, desc=f"{bench.name}: mixed precision", device=device)
    return records, configs


def _allocated_run(bench: Benchmark, teacher: nn.Module, config: QuantConfig, label: str, settings: dict, seed: int,
                   device: str, measure_kwargs: dict) -> Measurement:
    model = quantize(teacher, config, calibration_inputs(bench, config.calibration, seed))
    settings = {**settings, "quantized_bytes": quantized_bytes(model)}
    return _record(model, teacher, bench, label, settings, seed, device, measure_kwargs)


def integer_engine_models(quantized: dict[str, nn.Module], example_input: torch.Tensor,
                          engine: str = "fbgemm") -> dict[str, nn.Module]:
    """Each quantized model also run by an integer CPU engine (``"<label> int8 <engine>"``), for latency."""
    out = {}
    for label, model in quantized.items():
        # the packed layers themselves: other compressed layers have nothing an integer engine can run
        if not any(isinstance(m, QuantizedLayer) for m in model.modules()):
            raise GanSurveyError(f"{label!r} is not a quantized model")
        out[f"{label} int8 {engine}"] = to_integer_engine(model, example_input, engine)
    return out


def fidelity_table(teachers: dict[str, tuple[nn.Module, Any]], bits: list[int], granularities: list[str],
                   roundings: list[str], samples: int = 64, group_size: int = 4, seed: int = 0) -> pd.DataFrame:
    """Output SQNR (dB) of each teacher quantized post-training, per bit width, granularity and rounding.

    ``teachers`` maps benchmark names to ``(generator, discriminator)`` pairs (as ``Benchmark.teacher`` returns
    them); SQNR is measured on ``samples`` fixed evaluation inputs; ``gptq`` calibrates on training inputs.
    Columns: ``benchmark``, ``weight_bits``, ``granularity``, ``rounding``, ``sqnr_db``, ``stored_bytes``.
    """
    rows = []
    for name, (teacher, _) in teachers.items():
        bench = get_benchmark(name)
        z = bench.example_input(samples)
        calibration = calibration_inputs(bench, samples, seed)
        for b in bits:
            for g in granularities:
                for r in roundings:
                    config = QuantConfig(weight_bits=b, granularity=g, rounding=r,
                                         group_size=group_size if g == "per-group" else None)
                    model = quantize(teacher, config, calibration)
                    rows.append(dict(benchmark=name, weight_bits=b, granularity=g, rounding=r,
                                     sqnr_db=output_sqnr(teacher, model, z), stored_bytes=stored_bytes(model)))
    return pd.DataFrame(rows)
