"""Experiment steps of ``05_encoding``: trained weight sharing, the Deep Compression stages, the bits sweep
(k-means codebooks against uniform quantization at equal bits), per-layer entropy, and encode/decode timing.

Every trained arm uses the shared trainer (:func:`gansurvey.experiments.common.finetune`) with the same step budget as
the other families' fine-tuning (:func:`gansurvey.experiments.common.budget_steps`).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_number
from gansurvey.compress import EncodeConfig, MagnitudePruneConfig, compress, encode
from gansurvey.compress.encoding import codebook_layers, decode_stream, recode
from gansurvey.experiments.common import SAMPLE_GRID, finetune, pruned_and_finetuned
from gansurvey.experiments.executor import Task, run_tasks
from gansurvey.measuring import measure
from gansurvey.records import Measurement
from gansurvey.train.gan import TrainResult

#: Quantizers of the bits sweep: k-means weight sharing (Deep Compression's linear initialisation, 20 Lloyd
#: iterations) and uniform min/max quantization stored the same way (no iterations).
QUANTIZERS = {"k-means": dict(init="linear", iterations=20), "uniform": dict(init="linear", iterations=0)}


def trained_sharing(model: nn.Module, benchmark: str | Benchmark, steps: int, discriminator: nn.Module | None = None,
                    seed: int = 0, device: str = "auto", teacher: nn.Module | None = None,
                    guide: str = "teacher") -> TrainResult:
    """Fine-tune the centroids of an encoded ``model`` with the shared trainer (Han et al. 2016, section 3.3).

    Each encoded layer's forward is ``codebook[indices]`` while training, so the gradient of every weight that
    shares a centroid is summed into it; indices, zeros and streams stay as they are. Biases and normalization
    parameters train too, as in any fine-tuning. The input is not modified.

    Args:
        model: a model with encoded layers (from :func:`gansurvey.compress.encode`).
        benchmark: the benchmark whose recipe trains it.
        steps: training steps (the family's budget: :func:`gansurvey.experiments.common.budget_steps`).
        discriminator: the discriminator to train against (copied), e.g. the teacher's.
        seed, device, teacher, guide: as for :func:`gansurvey.experiments.common.finetune` (the teacher guides
            the centroids toward its outputs; ``guide="adversarial"`` trains them on the adversarial recipe alone).

    Returns:
        A :class:`~gansurvey.train.gan.TrainResult` whose model still holds at most ``2**bits`` distinct values
        per encoded layer.

    Example::

        shared = encode(teacher, EncodeConfig(bits=3, coder=None))
        tuned = trained_sharing(shared, "mnist-dcgan", steps=40, discriminator=disc, teacher=teacher).model
    """
    result = _codebook_finetune(model, benchmark, steps, discriminator, train_centroids=True, seed=seed,
                                device=device, teacher=teacher, guide=guide)
    for name, layer in codebook_layers(result.model).items():
        limit = 2**layer.bits + (1 if layer.has_positions else 0)
        if layer.distinct_weights() > limit:  # pragma: no cover - guarded by construction
            raise GanSurveyError(f"trained sharing broke the sharing of {name!r}: {layer.distinct_weights()} "
                                 f"distinct weights, at most {limit} allowed")
    return result


def frozen_centroids_finetune(model: nn.Module, benchmark: str | Benchmark, steps: int,
                              discriminator: nn.Module | None = None, seed: int = 0, device: str = "auto",
                              teacher: nn.Module | None = None, guide: str = "teacher") -> TrainResult:
    """:func:`trained_sharing`'s control: the same fine-tuning of an encoded ``model`` with every codebook frozen,
    so only biases and normalization parameters train. A codebook is a parameter that trains by default, so a
    plain :func:`~gansurvey.experiments.common.finetune` would train the centroids too and the control would be
    the treatment. The input is not modified; arguments as for :func:`trained_sharing`."""
    return _codebook_finetune(model, benchmark, steps, discriminator, train_centroids=False, seed=seed,
                              device=device, teacher=teacher, guide=guide)


def _codebook_finetune(model: nn.Module, benchmark: str | Benchmark, steps: int, discriminator: nn.Module | None,
                       *, train_centroids: bool, seed: int, device: str, teacher: nn.Module | None,
                       guide: str) -> TrainResult:
    """Fine-tune a copy of an encoded ``model`` with its codebooks trainable or frozen (the one difference between
    trained sharing and its control)."""
    if not codebook_layers(model):
        raise GanSurveyError(f"{type(model).__name__} has no encoded layers; encode it before "
                             f"{'trained sharing' if train_centroids else 'freezing its codebooks'}")
    check_number("steps", steps, minimum=0, integer=True)
    start = copy.deepcopy(model)
    for layer in codebook_layers(start).values():
        layer.codebook.requires_grad_(train_centroids)
    return finetune(start, benchmark, steps, discriminator, seed=seed, device=device, teacher=teacher, guide=guide)


def encode_decode_times(model: nn.Module, config: EncodeConfig, repeats: int = 3) -> dict[str, float]:
    """Median wall-clock milliseconds (over ``repeats``) to encode ``model`` with ``config`` and to decode every
    stream of the result from its bytes, on this machine's CPU (a benchmark, not a test)."""
    check_number("repeats", repeats, minimum=1, integer=True)
    encode_ms, decode_ms = [], []
    encoded = None
    for _ in range(repeats):
        start = time.perf_counter()
        encoded = encode(model, config)
        encode_ms.append(1000 * (time.perf_counter() - start))
        streams = [layer.stream for layer in codebook_layers(encoded).values()]
        start = time.perf_counter()
        for stream in streams:
            decode_stream(stream)
        decode_ms.append(1000 * (time.perf_counter() - start))
    weights = sum(layer._indices.numel() for layer in codebook_layers(encoded).values())
    return dict(bits=config.bits, coder=config.coder or "packed", coded_weights=weights,
                encode_ms=statistics.median(encode_ms), decode_ms=statistics.median(decode_ms))


def _grid(bench: Benchmark, model: nn.Module, seed: int) -> torch.Tensor:
    return bench.generate(model, SAMPLE_GRID, seed)


def deep_compression_stages(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, sparsity: float,
                            bits: int, steps: int, *, coders: tuple[str, ...] = ("huffman", "ans"),
                            seeds: Sequence[int] = (0,), device: str = "auto", executor: str = "serial",
                            address: str | None = None, **measure_kwargs: Any,
                            ) -> tuple[list[Measurement], dict[str, torch.Tensor], dict[str, nn.Module]]:
    """Deep Compression's pipeline on a generator, measured after each stage (Han et al. 2016, figure 1), once per
    seed of ``seeds`` (both fine-tunings follow it):

    1. ``pruned``: magnitude pruning to ``sparsity``, fine-tuned ``steps`` steps, sparse storage;
    2. ``+ sharing``: ``bits``-bit k-means codebooks on the surviving weights, indices packed (post-training);
    3. ``+ trained sharing``: the centroids fine-tuned ``steps`` steps;
    4. ``+ <coder>``: the same indices and positions entropy-coded (lossless: quality as in stage 3).

    Returns the records of every seed (technique = stage label; settings hold sparsity, bits, coder, steps), and
    the sample grids and models by stage of the first seed. Each seed's pipeline is one task of ``executor``
    (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster to join).
    """
    if not seeds:
        raise GanSurveyError("deep_compression_stages needs at least one seed, got an empty list")
    tasks = [Task("Deep Compression stages", seed, _stages_run, dict(
        bench=bench, teacher=teacher, discriminator=discriminator, sparsity=sparsity, bits=bits, steps=steps,
        coders=coders, seed=seed, first=seed == seeds[0], device=device, measure_kwargs=measure_kwargs))
        for seed in seeds]
    results = run_tasks(tasks, executor, address, desc=f"{bench.name}: Deep Compression", device=device)
    records = [record for got, _, _ in results for record in got]
    return records, results[0][1], results[0][2]


def _stages_run(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, sparsity: float, bits: int,
                steps: int, coders: tuple[str, ...], seed: int, first: bool, device: str, measure_kwargs: dict,
                ) -> tuple[list[Measurement], dict[str, torch.Tensor], dict[str, nn.Module]]:
    """One seed of :func:`deep_compression_stages`: its records, and (``first``) its sample grids and models."""
    settings = dict(sparsity=sparsity, bits=bits, finetune_steps=steps)
    pruned = pruned_and_finetuned(bench, teacher, discriminator, MagnitudePruneConfig(sparsity=sparsity),
                                  steps, seed, device)
    shared = compress(pruned, EncodeConfig(bits=bits, coder=None))  # linear init: the seed is in the pruning
    trained = trained_sharing(shared, bench, steps, discriminator, seed=seed, device=device, teacher=teacher).model
    stages = {"pruned": pruned, "+ sharing": shared, "+ trained sharing": trained}
    stages |= {f"+ {coder}": recode(trained, coder) for coder in coders}
    records, samples = [], {}
    for label, model in stages.items():
        coder = label.removeprefix("+ ") if label.removeprefix("+ ") in coders else None
        records.append(measure(model, bench, technique=label, family=None, settings={
            **settings, "stage": label, "coder": coder or "packed"}, seed=seed, device=device, **measure_kwargs))
        if first:
            samples[label] = _grid(bench, model, seed)
    return records, samples, stages if first else {}


def bits_sweep(bench: Benchmark, teacher: nn.Module, bits: list[int], *, coder: str = "ans", seed: int = 0,
               device: str = "auto", quantizers: tuple[str, ...] = tuple(QUANTIZERS), executor: str = "serial",
               address: str | None = None, **measure_kwargs: Any) -> list[Measurement]:
    """Post-training weight sharing of the teacher at each of ``bits``, with each quantizer of
    :data:`QUANTIZERS` (k-means codebooks, uniform grids), indices coded with ``coder``. Technique
    ``"<quantizer> <b>-bit"``; settings hold bits, quantizer, coder. Each quantizer and width is one task of
    ``executor`` (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster to join)."""
    tasks = [Task(f"{quantizer} {b}-bit", None, _shared_run, dict(
        bench=bench, teacher=teacher, bits=b, quantizer=quantizer, coder=coder, seed=seed, device=device,
        measure_kwargs=measure_kwargs)) for quantizer in quantizers for b in bits]
    return run_tasks(tasks, executor, address, desc=f"{bench.name}: bits sweep", device=device)


def _shared_run(bench: Benchmark, teacher: nn.Module, bits: int, quantizer: str, coder: str, seed: int, device: str,
                measure_kwargs: dict) -> Measurement:
    model = encode(teacher, EncodeConfig(bits=bits, coder=coder, **QUANTIZERS[quantizer]))
    return measure(model, bench, technique=f"{quantizer} {bits}-bit", family=None, settings=dict(
        bits=bits, quantizer=quantizer, coder=coder, trained=False), seed=seed, device=device, **measure_kwargs)


def trained_vs_post(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, bits: list[int],
                    seeds: list[int], steps: int, *, coder: str = "ans", device: str = "auto",
                    executor: str = "serial", address: str | None = None, **measure_kwargs: Any) -> list[Measurement]:
    """Trained sharing (``steps`` steps of centroid fine-tuning) against its control at each of ``bits``, over
    ``seeds``: the same fine-tuning with the centroids frozen, so both arms train the same biases and
    normalization parameters for the same steps with the same losses and only the centroids differ (Han et al.
    2016's claim is about the centroids). The post-training codebooks, untouched, are measured too. The seed of
    the k-means encoding is fixed; the seed drives fine-tuning and measurement.

    Techniques ``"post-training <b>-bit"`` (settings ``tuned="none"``), ``"post-training <b>-bit, rest tuned"``
    (``tuned="rest"``) and ``"trained <b>-bit"`` (``tuned="centroids+rest"``, ``trained`` true). Each width and
    seed is one task of ``executor`` (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster
    to join); the teacher is encoded once per width, here."""
    tasks = []
    for b in bits:
        post = encode(teacher, EncodeConfig(bits=b, coder=coder))
        tasks += [Task(f"{b}-bit sharing", seed, _trained_vs_post_run, dict(
            bench=bench, teacher=teacher, discriminator=discriminator, post=post, bits=b, steps=steps, coder=coder,
            seed=seed, device=device, measure_kwargs=measure_kwargs)) for seed in seeds]
    results = run_tasks(tasks, executor, address, desc=f"{bench.name}: trained sharing", device=device)
    return [record for got in results for record in got]


def _trained_vs_post_run(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, post: nn.Module, bits: int,
                         steps: int, coder: str, seed: int, device: str, measure_kwargs: dict) -> list[Measurement]:
    tuning = dict(seed=seed, device=device, teacher=teacher)
    trained = recode(trained_sharing(post, bench, steps, discriminator, **tuning).model, coder)
    rest = recode(frozen_centroids_finetune(post, bench, steps, discriminator, **tuning).model, coder)
    return [measure(model, bench, technique=label, family=None, settings=dict(
        bits=bits, coder=coder, trained=tuned == "centroids+rest", tuned=tuned,
        finetune_steps=0 if tuned == "none" else steps), seed=seed, device=device, **measure_kwargs)
        for label, model, tuned in ((f"post-training {bits}-bit", post, "none"),
                                    (f"post-training {bits}-bit, rest tuned", rest, "rest"),
                                    (f"trained {bits}-bit", trained, "centroids+rest"))]
