"""``measure``: the one way every notebook turns a generator into a :class:`~gansurvey.results.Measurement`."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from gansurvey.benchmarks import Benchmark, get_benchmark, profile_settings
from gansurvey.checks import check_number
from gansurvey.config import check_profile, resolve_device
from gansurvey.metrics.cost import (
    activation_traffic_bytes,
    count_macs,
    count_params,
    energy_estimate,
    stored_bytes,
    weight_traffic_bytes,
)
from gansurvey.metrics.latency import measure_latency
from gansurvey.results import Measurement


def measure(
    generator: nn.Module,
    benchmark: str | Benchmark,
    *,
    technique: str = "baseline",
    family: str = "baseline",
    settings: dict[str, Any] | None = None,
    notebook: str = "adhoc",
    profile: str = "quick",
    seed: int = 0,
    device: str = "auto",
    latency_batch: int = 1,
    inception_samples: int | None = 0,
) -> Measurement:
    """Cost (params, MACs, stored bytes, traffic, energy, latency) and quality of ``generator`` on ``benchmark``.

    Costs are per generated sample (batch of one); latency is the median over the profile's repeats at
    ``latency_batch`` on ``device``. Quality metrics follow the benchmark (see :mod:`gansurvey.benchmarks`);
    the standard Inception FID is computed on ``inception_samples`` images: none by default, because it is slow on
    a CPU; ``None`` asks for the profile's sample count (quick: a few dozen, full: 1000).
    The generator is not modified.
    """
    bench = benchmark if isinstance(benchmark, Benchmark) else get_benchmark(benchmark)
    check_profile(profile)
    check_number("seed", seed, minimum=0, integer=True)
    check_number("latency_batch", latency_batch, minimum=1, integer=True)
    dev = resolve_device(device)
    settings_ = profile_settings(profile)
    model = copy.deepcopy(generator).eval().cpu()
    x = bench.example_input(1)
    energy = energy_estimate(model, x)
    latency = measure_latency(model, bench.example_input(latency_batch), batch_sizes=(latency_batch,),
                              warmup=settings_.latency_warmup, repeats=settings_.latency_repeats, device=str(dev))
    quality = bench.quality(model, profile=profile, seed=seed, device=str(dev), inception_samples=inception_samples)
    return Measurement(
        notebook=notebook, benchmark=bench.name, technique=technique, family=family, settings=dict(settings or {}),
        profile=profile, seed=seed, device=str(latency["device"].iloc[0]),
        params=count_params(model), macs=count_macs(model, x),
        macs_torchprofile=count_macs(model, x, convention="torchprofile"),
        stored_bytes=stored_bytes(model), weight_traffic_bytes=weight_traffic_bytes(model),
        activation_traffic_bytes=activation_traffic_bytes(model, x), energy_uj=float(energy["total_uj"]),
        latency_ms=float(latency["median_ms"].iloc[0]), latency_batch=latency_batch,
        primary_metric=bench.primary_metric, primary_value=quality.get(bench.primary_metric),
        higher_is_better=bench.higher_is_better, **quality,
    )
