"""Teacher latency over batch sizes beside their theoretical cost (`python -m gansurvey bench`)."""

from __future__ import annotations

import pandas as pd

from gansurvey.benchmarks import BENCHMARKS, get_benchmark, profile_settings
from gansurvey.checks import check_number
from gansurvey.metrics.cost import count_macs, weight_traffic_bytes
from gansurvey.metrics.latency import classify_regime, measure_latency


def teacher_latency(profile: str = "quick", device: str = "auto", batch_sizes: list[int] | None = None) -> pd.DataFrame:
    """One row per (benchmark, batch size): median latency, per-sample latency, MACs, weight bytes, regime."""
    batch_sizes = batch_sizes or [1, 8, 64]
    for b in batch_sizes:
        check_number("batch size", b, minimum=1, integer=True)
    settings = profile_settings(profile)
    rows = []
    for name in BENCHMARKS:
        bench = get_benchmark(name)
        generator, _ = bench.teacher(profile, progress=False)
        timing = measure_latency(generator, bench.example_input(1), batch_sizes=tuple(batch_sizes),
                                 warmup=settings.latency_warmup, repeats=settings.latency_repeats, device=device)
        macs = count_macs(generator, bench.example_input(1))
        weights = weight_traffic_bytes(generator)
        for _, row in timing.iterrows():
            batch = int(row["batch"])
            regime = classify_regime(macs * batch, weights, row["median_ms"] / 1e3, device)
            rows.append({"benchmark": name, "batch": batch, "median_ms": row["median_ms"],
                         "per_sample_ms": row["per_sample_ms"], "macs_per_sample": macs, "weight_bytes": weights,
                         "regime": regime, "device": row["device"]})
    return pd.DataFrame(rows)
