"""``measure``: the one way every notebook turns a generator into a :class:`~gansurvey.records.Measurement`."""

from __future__ import annotations

import copy
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from gansurvey import kernels
from gansurvey.benchmarks import get_benchmark
from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_number
from gansurvey.compress.base import chain_family, chain_method, compression_chain
from gansurvey.compress.fusion import FusedEpilogue, fuse_epilogues
from gansurvey.compress.precision import output_sqnr, to_fused_engine, to_int4_cpu_engine, to_integer_engine
from gansurvey.compress.quantized_layers import (
    FusedEngineModel,
    Int4PackLinear,
    IntegerEngineLayer,
    QuantizedLayer,
)
from gansurvey.config import PROFILE_SETTINGS, ProfileSettings, code_commit, resolve_device
from gansurvey.layers import compressed_layers
from gansurvey.metrics.cost import (
    activation_traffic_bytes,
    count_macs,
    count_params,
    energy_estimate,
    stored_bytes,
    weight_traffic_bytes,
)
from gansurvey.metrics.latency import device_name, interleaved_latency, measure_latency, speed_word
from gansurvey.records import Measurement, under_load


def measure(
    generator: nn.Module,
    benchmark: str | Benchmark,
    *,
    technique: str = "baseline",
    family: str | None = None,
    method: str | None = None,
    settings: dict[str, Any] | None = None,
    notebook: str = "adhoc",
    profile: ProfileSettings | None = None,
    seed: int = 0,
    device: str = "auto",
    latency_batch: int = 1,
    inception_samples: int | None = 0,
) -> Measurement:
    """Cost (params, MACs, stored bytes, traffic, energy, latency) and quality of ``generator`` on ``benchmark``.

    ``profile`` is the profile's settings (:func:`gansurvey.config.profile_settings`, resolved once by the
    caller; ``None``: the quick profile's); records store its name. Costs are per generated sample (batch of
    one); latency is the median over the profile's repeats at ``latency_batch`` on ``device``. Quality metrics
    follow the benchmark (see :mod:`gansurvey.benchmarks`);
    the standard Inception FID is computed on ``inception_samples`` images: none by default, because it is slow on
    a CPU (a benchmark ranked by it, such as the folder ones, always gets it); ``None`` asks for the profile's
    sample count (quick: a few dozen, full: 1000).
    The generator is not modified.

    Args:
        generator: the model to measure (compressed or not).
        benchmark: a benchmark name or object.
        technique: a display label for tables and plots.
        family: the compression family (``pruning+distillation`` for a combination); ``None`` reads it from the
            generator's ``compression`` chain (``baseline`` when it has none).
        method: the method within the family; ``None`` reads it from the chain (config types, joined by ``+``).
        settings: structured settings of the arm (ratio, steps...); the chain is added as ``compression``.

    Example::

        record = measure(prune(teacher, MagnitudePruneConfig(0.5)), "mnist-dcgan", technique="magnitude 50%")
        record.family, record.settings["compression"]  # 'pruning', [{'type': 'MagnitudePruneConfig', ...}]
    """
    bench = get_benchmark(benchmark)
    profile = PROFILE_SETTINGS["quick"] if profile is None else profile
    check_number("seed", seed, minimum=0, integer=True)
    check_number("latency_batch", latency_batch, minimum=1, integer=True)
    dev = resolve_device(device)
    model = copy.deepcopy(generator).eval().cpu()
    check_generator_fits(model, bench)  # before any metric: a misfit generator fails here, with the shapes
    x = bench.example_input(1)
    energy = energy_estimate(model, x)
    untimed = UNTIMED.get()
    timing = latency_of(model, bench, profile, latency_batch, dev) if untimed is None else \
        {"device": device_name(dev), "latency_ms": None, "engine": None, "timed_under_load": None}
    if inception_samples == 0 and bench.primary_metric == "fid":
        inception_samples = None  # a benchmark ranked by the Inception FID (the folder ones) always gets it
    quality = bench.quality(model, profile=profile, seed=seed, device=str(dev), inception_samples=inception_samples)
    resamples = evaluation_resamples(model, bench, profile, seed)
    validation = bench.validation_score(model, profile, seed, device=str(dev))
    chain = compression_chain(generator)
    record = Measurement(
        notebook=notebook, benchmark=bench.name, technique=technique,
        family=family if family is not None else chain_family(chain),
        method=method if method is not None else chain_method(chain),
        settings={**(settings or {}), **({"compression": chain} if chain else {})},
        profile=profile.name, seed=seed, device=timing["device"],
        params=count_params(model), macs=count_macs(model, x),
        macs_torchprofile=count_macs(model, x, convention="torchprofile"),
        stored_bytes=stored_bytes(model), weight_traffic_bytes=weight_traffic_bytes(model),
        activation_traffic_bytes=activation_traffic_bytes(model, x), energy_uj=float(energy["total_uj"]),
        latency_ms=timing["latency_ms"], latency_batch=latency_batch,
        primary_metric=bench.primary_metric, primary_value=quality.get(bench.primary_metric),
        higher_is_better=bench.higher_is_better, **quality, primary_resamples=resamples,
        validation_value=None if validation is None else float(validation),
        engine=timing["engine"], commit=code_commit(), timed_under_load=timing["timed_under_load"],
    )
    if untimed is not None:
        untimed.append(Untimed(record, model, bench, profile, latency_batch, dev))
    return record


def latency_of(model: nn.Module, bench: Benchmark, profile: ProfileSettings, batch: int,
               device: torch.device) -> dict[str, Any]:
    """A record's timing fields: ``model`` timed on its fastest faithful form (:func:`fastest_form`) at ``batch``
    with the profile's warm-ups and repeats (``latency_ms``, the median), the ``engine`` that ran it, the
    ``device`` by name, and whether other work ran beside it (``timed_under_load``,
    :func:`gansurvey.records.under_load`)."""
    timed, engine = fastest_form(model, bench, profile, batch, device)
    latency = measure_latency(timed, bench.example_input(batch), batch_sizes=(batch,), warmup=profile.latency_warmup,
                              repeats=profile.latency_repeats, device=str(device))
    return {"device": str(latency["device"].iloc[0]), "latency_ms": float(latency["median_ms"].iloc[0]),
            "engine": engine, "timed_under_load": under_load()}


@dataclass
class Untimed:
    """A record :func:`measure` left untimed, with what timing it takes (see :data:`UNTIMED`)."""

    record: Measurement
    model: nn.Module
    bench: Benchmark
    profile: ProfileSettings
    batch: int
    device: torch.device

    def time(self) -> Measurement:
        """Time the model now, in this process, and fill in the record's timing fields; return the record."""
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise GanSurveyError(f"the {self.record.technique!r} record was measured on CUDA but this process sees no "
                                 "GPU to time it on; run the sweep from a machine with one")
        for name, value in latency_of(self.model, self.bench, self.profile, self.batch, self.device).items():
            setattr(self.record, name, value)
        return self.record


#: Set to a list by a task that runs beside other tasks (:func:`gansurvey.experiments.executor.run_tasks` on Ray):
#: :func:`measure` then times nothing, so that no latency is taken under their load; it leaves ``latency_ms`` and
#: ``engine`` empty and appends an :class:`Untimed` entry here, which the executor times once the tasks are done.
UNTIMED: ContextVar[list[Untimed] | None] = ContextVar("gansurvey_untimed", default=None)


#: An integer engine's output must stay this close to the stored model's own (output SQNR, dB) to be timed in
#: its place: 8-bit activations cost about 6 dB per bit below the weights' own error, far above this floor.
MIN_ENGINE_SQNR_DB = 25.0
#: Samples on which a form's output is compared with the model's before the form is timed.
FORM_CHECK_BATCH = 8
#: The integer CPU engine the quantized models are tried on (``qnnpack`` is for ARM; ``x86``/``onednn`` compute
#: ConvTranspose2d wrongly here).
CPU_ENGINE = "fbgemm"


def engine_forms(model: nn.Module, bench: Benchmark, device: torch.device) -> dict[str, nn.Module]:
    """The faithful forms ``model`` can be timed in on ``device``, by the engines they run on: the model itself,
    and for a quantized model on a CPU its forms on PyTorch's integer engine (:data:`CPU_ENGINE`): layer by layer
    (:func:`~gansurvey.compress.precision.to_integer_engine`) and as one static-quantized graph with batch norms
    folded and int8 activations between layers (:func:`~gansurvey.compress.precision.to_fused_engine`), each
    calibrated on 64 evaluation inputs and kept only when its output stays within :data:`MIN_ENGINE_SQNR_DB` of
    the model's own; and its 4-bit Linear layers on PyTorch's packed int4 weight-only CPU matmul
    (:func:`~gansurvey.compress.precision.to_int4_cpu_engine`). Where the Triton kernels run (a GPU), also the
    model with its batch norms and activations in the kernels' epilogue
    (:func:`~gansurvey.compress.fusion.fuse_epilogues`), checked on that device. A form an engine cannot build is
    left out."""
    forms = {execution_engines(model, device): model}
    if kernels.backend(device) == "triton":
        fused, count = fuse_epilogues(model)
        if count:
            on_device = [copy.deepcopy(m).to(device) for m in (model, fused)]
            check = bench.example_input(bench.eval_sample_count(FORM_CHECK_BATCH)).to(device)
            if output_sqnr(*on_device, check) >= MIN_ENGINE_SQNR_DB:
                forms.setdefault(execution_engines(fused, device), fused)
    if device.type != "cpu" or not any(isinstance(m, QuantizedLayer) for m in model.modules()):
        return forms
    calibration = bench.eval_inputs(bench.eval_sample_count(64), seed=1)
    check = bench.example_input(bench.eval_sample_count(FORM_CHECK_BATCH))
    builds = (lambda: to_integer_engine(model, calibration, CPU_ENGINE),
              lambda: to_fused_engine(model, calibration, CPU_ENGINE), lambda: to_int4_cpu_engine(model))
    for build in builds:
        try:
            form = build()
        except (GanSurveyError, RuntimeError):  # a layer or a graph the engine cannot take
            continue
        if output_sqnr(model, form, check) >= MIN_ENGINE_SQNR_DB:
            forms.setdefault(execution_engines(form, device), form)
    return forms


def fastest_form(model: nn.Module, bench: Benchmark, profile: ProfileSettings, batch: int,
                 device: torch.device) -> tuple[nn.Module, str]:
    """The form of ``model`` its latency is timed on, and the engines it runs on: the fastest of its faithful
    forms (:func:`engine_forms`), timed interleaved in one run at ``batch`` with the profile's warm-ups and
    repeats; the model itself when it has no other (quality is always measured on the stored model)."""
    forms = engine_forms(model, bench, device)
    if len(forms) == 1:
        return model, next(iter(forms))
    table = interleaved_latency(forms, bench.example_input(batch), batch=batch, warmup=profile.latency_warmup,
                                repeats=max(profile.latency_repeats, 2), device=device)
    fastest = str(table.loc[table["median_ms"].idxmin(), "model"])
    return forms[fastest], fastest


def speedups(reference: nn.Module, arms: dict[str, nn.Module], benchmark: str | Benchmark, *,
             profile: ProfileSettings | None = None, batch: int = 1, device: str = "auto",
             threads: int | None = None, reference_label: str = "teacher") -> pd.DataFrame:
    """Each arm's speed-up over ``reference`` (the teacher), every model timed on its fastest faithful engine
    (:func:`fastest_form`) and all of them interleaved in one run (teacher, arm 1, arm 2, ..., teacher, ...)
    with the profile's warm-ups and repeats and a fixed thread count, so a change of load hits them alike.

    One row per model, the reference first: ``model``, ``engine`` (what timed it), median and quartiles (ms),
    ``speedup_x`` (the reference's median over this one's) with its bootstrap 95 % interval over the repeats
    (``speedup_low``, ``speedup_high``), ``speed`` (:func:`~gansurvey.metrics.latency.speed_word`: *faster* or
    *slower* only when the interval excludes 1), batch, repeats, threads and device.

    Args:
        reference: the model every arm is compared with (not modified).
        arms: label -> model (compressed or not; not modified).
        benchmark: a benchmark name or object (its inputs, and its evaluation inputs for calibrating engines).
        profile: the profile's settings (``None``: quick's).
        threads: torch threads for the run (``None``: the current count), fixed and recorded.

    Example::

        table = speedups(teacher, {"w8": quantize(teacher, QuantConfig(8))}, "mnist-dcgan", profile=settings)
        table[["model", "engine", "speedup_x", "speedup_low", "speedup_high", "speed"]]
    """
    bench = get_benchmark(benchmark)
    profile = PROFILE_SETTINGS["quick"] if profile is None else profile
    check_number("batch", batch, minimum=1, integer=True)
    if not arms:
        raise GanSurveyError("speedups needs at least one arm to compare with the reference")
    if reference_label in arms:
        raise GanSurveyError(f"an arm is labelled {reference_label!r}, the reference's label; rename it or pass "
                             "another reference_label")
    dev = resolve_device(device)
    models = {reference_label: reference, **arms}
    forms, engines = {}, {}
    for label, model in models.items():
        forms[label], engines[label] = fastest_form(copy.deepcopy(model).eval().cpu(), bench, profile, batch, dev)
    table = interleaved_latency(forms, bench.example_input(batch), batch=batch, warmup=profile.latency_warmup,
                                repeats=max(profile.latency_repeats, 2),
                                threads=threads if threads is not None else torch.get_num_threads(), device=dev)
    table.insert(1, "engine", [engines[m] for m in table["model"]])
    table["speed"] = [speed_word(lo, hi) for lo, hi in zip(table["speedup_low"], table["speedup_high"], strict=True)]
    table.loc[table["model"] == reference_label, "speed"] = "reference"
    return table


#: Bootstrap resamples of the primary metric stored with each record (its evaluation noise, for the claims' rule).
RESAMPLES = 50


def evaluation_resamples(model: nn.Module, bench: Benchmark, profile: ProfileSettings,
                         seed: int) -> list[float] | None:
    """The primary metric over :data:`RESAMPLES` bootstrap resamples of the profile's evaluation samples, or
    ``None`` for a benchmark that does not resample its score (the folder benchmarks' Inception FID)."""
    try:
        values = bench.quality_bootstrap(model, bench.eval_sample_count(profile.eval_samples), RESAMPLES, seed)
    except NotImplementedError:
        return None
    return [float(v) for v in values]


def execution_engines(model: nn.Module, device: torch.device | str) -> str:
    """The engines that run ``model``'s layers on ``device``, ``;``-separated: each compressed layer's own
    (:meth:`~gansurvey.layers.CompressedLayer.engine`), ``<engine>-int8`` for layers handed to PyTorch's integer
    engines one by one, ``<engine>-int8-fused`` for a model run by one as a static-quantized graph,
    ``torch-int4pack`` for Linear layers on the packed int4 CPU matmul, ``<engine>+epilogue`` for a layer that
    runs its batch norm and activation inside its Triton kernel (:func:`~gansurvey.compress.fusion.fuse_epilogues`),
    and ``torch-dense`` when every layer is a plain one (a really smaller model: channel-pruned, a student)."""
    fused = {id(m.layer): m for m in model.modules() if isinstance(m, FusedEpilogue)}
    names = {(fused[id(layer)] if id(layer) in fused else layer).engine(device)
             for layer in compressed_layers(model).values()}
    names |= {f"{m.engine}-int8" for m in model.modules() if isinstance(m, IntegerEngineLayer)}
    names |= {m.engine_name for m in model.modules() if isinstance(m, (FusedEngineModel, Int4PackLinear))}
    return ";".join(sorted(names)) or "torch-dense"


_EXPECTED_SHAPES: dict[tuple[str, str], tuple[int, ...]] = {}


def check_generator_fits(generator: nn.Module, bench: Benchmark) -> None:
    """Raise :class:`GanSurveyError` unless ``generator`` (on the CPU) maps the benchmark's input (batch of one)
    to the shape its teacher's architecture returns, naming the input, the expected and the actual shapes."""
    x = bench.example_input(1)
    key = (type(bench).__qualname__, bench.name)
    if key not in _EXPECTED_SHAPES:
        with torch.no_grad():
            _EXPECTED_SHAPES[key] = tuple(bench.new_generator().eval()(x).shape)
    expected = _EXPECTED_SHAPES[key]
    try:
        with torch.no_grad():
            got = tuple(generator(x).shape)
    except RuntimeError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GanSurveyError(f"the generator cannot run on {bench.name}'s input of shape {tuple(x.shape)} "
                             f"(expected output {expected}): {reason}") from exc
    if got != expected:
        raise GanSurveyError(f"the generator returns shape {got} for {bench.name}'s input of shape "
                             f"{tuple(x.shape)}; the benchmark expects {expected}")
