"""Measured latency, the machine's peaks, and which regime (launch-, memory- or compute-bound) a run is in.

Compressed-but-not-faster is the usual complaint about compression tools; the regime says why: a launch-bound
run does not speed up when its weights shrink, a memory-bound one does, a compute-bound one only when MACs
fall.
"""

from __future__ import annotations

import copy
import functools
import platform
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from gansurvey.checks import GanSurveyError, check_number
from gansurvey.config import resolve_device
from gansurvey.metrics.cost import count_macs, weight_traffic_bytes

REGIMES = ("launch-bound", "memory-bound", "compute-bound")

#: Launch-bound when the latency is within this many times (layers x per-call overhead).
LAUNCH_FACTOR = 3.0
#: ... or when neither arithmetic nor traffic reaches this fraction of its peak over the run.
FAR_BELOW_PEAK = 0.05
#: A measured speed-up (baseline latency / compressed latency) counts as "faster" only above this: repeated
#: timings of one model on a shared 2-core CPU spread by several percent, so a smaller gain is not told apart.
MIN_SPEEDUP = 1.1


def device_name(device: torch.device) -> str:
    """A readable name: the GPU's name, or the CPU model from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch_of(example_input: Any, batch: int, device: torch.device) -> tuple:
    """Positional inputs holding ``batch`` copies of the first sample of each input tensor."""
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor):
            if x.dim() == 0 or x.shape[0] == 0:
                raise GanSurveyError(f"example input of shape {tuple(x.shape)} has no first sample; "
                                     "give a tensor with a batch dimension of at least 1")
            first = x[:1]
            x = first.expand(batch, *first.shape[1:]).contiguous()
        out.append(x.to(device) if isinstance(x, torch.Tensor) else x)
    return tuple(out)


def _on_device(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` if its tensors already live on ``device``, else a moved copy (the input is never moved)."""
    tensors = list(model.parameters()) + list(model.buffers())
    if all(t.device.type == device.type for t in tensors):
        return model
    return copy.deepcopy(model).to(device)


def measure_latency(model: nn.Module, example_input: Any, batch_sizes: Iterable[int] = (1,), warmup: int = 3,
                    repeats: int = 10, device: str | torch.device = "auto") -> pd.DataFrame:
    """Median wall-clock time of one forward per batch size, after ``warmup`` untimed runs.

    The batch repeats the first sample of ``example_input``. Runs in eval mode under ``torch.no_grad``, and
    synchronizes CUDA around every timed run. Columns: batch, median_ms, p25_ms, p75_ms, per_sample_ms,
    repeats, device, threads.
    """
    batch_sizes = list(batch_sizes)
    if not batch_sizes:
        raise GanSurveyError("batch_sizes is empty; give at least one batch size >= 1")
    for b in batch_sizes:
        check_number("batch size", b, minimum=1, integer=True)
    check_number("warmup", warmup, minimum=0, integer=True)
    check_number("repeats", repeats, minimum=1, integer=True)
    dev = resolve_device(device)
    runner = _on_device(model, dev)
    modes = [(m, m.training) for m in runner.modules()]
    runner.eval()
    rows = []
    try:
        with torch.no_grad():
            for batch in batch_sizes:
                args = _batch_of(example_input, batch, dev)
                for _ in range(warmup):
                    runner(*args)
                times = []
                for _ in range(repeats):
                    _sync(dev)
                    start = time.perf_counter()
                    runner(*args)
                    _sync(dev)
                    times.append((time.perf_counter() - start) * 1e3)
                p25, median, p75 = np.percentile(times, [25, 50, 75])
                rows.append({"batch": batch, "median_ms": float(median), "p25_ms": float(p25),
                             "p75_ms": float(p75), "per_sample_ms": float(median) / batch, "repeats": repeats,
                             "device": device_name(dev), "threads": torch.get_num_threads()})
    finally:
        for module, training in modes:
            module.training = training
    return pd.DataFrame(rows)


def interleaved_latency(models: dict[str, nn.Module], example_input: Any, batch: int = 1, warmup: int = 10,
                        repeats: int = 50, threads: int | None = None, device: str | torch.device = "auto",
                        resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Latency of several models timed in turn (A, B, A, B... in one process, fixed threads), so that a change
    of machine load hits every model alike; a speed-up is a ratio of medians measured in the same run.

    One row per model: median and quartiles (ms), and ``speedup_x`` against the first model (its median over
    this one's) with a bootstrap 95 % interval over the repeats (``speedup_low``, ``speedup_high``). A speed
    difference is real only when that interval excludes 1. ``threads`` fixes ``torch.set_num_threads`` for the
    run (restored afterwards) and is recorded.
    """
    if len(models) < 1:
        raise GanSurveyError("interleaved_latency needs at least one model")
    check_number("batch", batch, minimum=1, integer=True)
    check_number("warmup", warmup, minimum=0, integer=True)
    check_number("repeats", repeats, minimum=2, integer=True)
    dev = resolve_device(device)
    before = torch.get_num_threads()
    if threads is not None:
        check_number("threads", threads, minimum=1, integer=True)
        torch.set_num_threads(threads)
    try:
        runners = {name: _on_device(model, dev).eval() for name, model in models.items()}
        args = _batch_of(example_input, batch, dev)
        times: dict[str, list[float]] = {name: [] for name in runners}
        with torch.no_grad():
            for _ in range(warmup):
                for runner in runners.values():
                    runner(*args)
            for _ in range(repeats):
                for name, runner in runners.items():
                    _sync(dev)
                    start = time.perf_counter()
                    runner(*args)
                    _sync(dev)
                    times[name].append((time.perf_counter() - start) * 1e3)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    rng = np.random.default_rng(seed)
    base = np.asarray(times[next(iter(times))])
    rows = []
    for name, values in times.items():
        values = np.asarray(values)
        p25, median, p75 = np.percentile(values, [25, 50, 75])
        picks = rng.integers(0, repeats, (resamples, 2, repeats))
        ratios = np.median(base[picks[:, 0]], axis=1) / np.median(values[picks[:, 1]], axis=1)
        low, high = np.percentile(ratios, [2.5, 97.5])
        rows.append({"model": name, "batch": batch, "median_ms": float(median), "p25_ms": float(p25),
                     "p75_ms": float(p75), "speedup_x": float(np.median(base) / median),
                     "speedup_low": float(low), "speedup_high": float(high), "repeats": repeats,
                     "threads": used, "device": device_name(dev)})
    return pd.DataFrame(rows)


def speed_word(low: float, high: float) -> str:
    """What a speed-up interval (``speedup_low``, ``speedup_high`` of :func:`interleaved_latency`) allows one to
    say: *faster* when it lies above 1, *slower* when below, else *not told apart* (a difference is real only when
    the interval excludes no change)."""
    if low > 1.0:
        return "faster"
    if high < 1.0:
        return "slower"
    return "not told apart"


# ---------------------------------------------------------------- machine peaks and regimes


def _best_time(fn, device: torch.device, runs: int) -> float:
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


@functools.lru_cache(maxsize=8)
def _peaks(device_str: str, threads: int) -> dict[str, float]:
    device = torch.device(device_str)
    cuda = device.type == "cuda"
    # Sizes keep the whole probe well under a second on a 2-core CPU while leaving the caches behind.
    n = 4096 if cuda else 768
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    gflops = 2 * n**3 / _best_time(lambda: torch.mm(a, b), device, 3) / 1e9
    elements = (64 if cuda else 8) * 2**20
    src = torch.empty(elements, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    gbytes = 2 * src.numel() * src.element_size() / _best_time(lambda: dst.copy_(src), device, 3) / 1e9
    tiny = torch.ones(1, device=device)
    calls = 200

    def many():
        for _ in range(calls):
            torch.relu(tiny)

    overhead = _best_time(many, device, 3) / calls
    return {"gflops": gflops, "gbytes_per_s": gbytes, "call_overhead_s": overhead}


def measured_peaks(device: str | torch.device = "auto") -> dict[str, float]:
    """Measured peaks of this machine: matmul GFLOP/s, copy GB/s (read + write), seconds per tiny op call.

    From short microbenchmarks (under a second on CPU), cached per process, device and thread count.
    """
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dict(_peaks(str(dev), torch.get_num_threads()))


def regime_report(macs: int, bytes_moved: int, latency_s: float, device: str | torch.device = "auto", *,
                  peaks: dict[str, float] | None = None, layers: int = 1) -> dict[str, Any]:
    """Achieved rates of a run against the machine's peaks, and the regime they put it in.

    ``bytes_moved`` is the run's memory traffic (weights + activations), ``layers`` the number of layer calls
    (each pays the per-call overhead). ``peaks`` (keys gflops, gbytes_per_s, call_overhead_s) defaults to
    :func:`measured_peaks` of ``device``. Launch-bound: the latency is within ``LAUNCH_FACTOR`` x layers x
    overhead, or both the arithmetic and the traffic run below ``FAR_BELOW_PEAK`` of their peaks. Otherwise
    the larger of the two ideal times (MACs at peak FLOP/s, bytes at peak bandwidth) names the bound: the
    roofline's comparison of arithmetic intensity with the machine balance.
    """
    check_number("MACs", macs, minimum=0)
    check_number("bytes moved", bytes_moved, minimum=0)
    check_number("latency (s)", latency_s, minimum=0)
    if latency_s == 0:
        raise GanSurveyError("latency (s) must be > 0, got 0")
    check_number("layers", layers, minimum=1, integer=True)
    peaks = peaks if peaks is not None else measured_peaks(device)
    missing = {"gflops", "gbytes_per_s", "call_overhead_s"} - set(peaks)
    if missing:
        raise GanSurveyError(f"peaks lack {', '.join(sorted(missing))}; "
                             "need gflops, gbytes_per_s and call_overhead_s")
    t_compute = 2 * macs / (peaks["gflops"] * 1e9)
    t_memory = bytes_moved / (peaks["gbytes_per_s"] * 1e9)
    t_launch = layers * peaks["call_overhead_s"]
    compute_share, memory_share = t_compute / latency_s, t_memory / latency_s
    if latency_s <= LAUNCH_FACTOR * t_launch or max(compute_share, memory_share) < FAR_BELOW_PEAK:
        regime = "launch-bound"
    else:
        regime = "compute-bound" if t_compute >= t_memory else "memory-bound"
    return {
        "regime": regime,
        "achieved_gflops": 2 * macs / latency_s / 1e9,
        "achieved_gbytes_per_s": bytes_moved / latency_s / 1e9,
        "compute_share_of_peak": compute_share,
        "memory_share_of_peak": memory_share,
        "intensity_flop_per_byte": 2 * macs / bytes_moved if bytes_moved else float("inf"),
        "machine_balance_flop_per_byte": peaks["gflops"] / peaks["gbytes_per_s"],
        "launch_floor_s": t_launch,
    }


def classify_regime(macs: int, bytes_moved: int, latency_s: float, device: str | torch.device = "auto", *,
                    peaks: dict[str, float] | None = None, layers: int = 1) -> str:
    """One of ``REGIMES`` for a run; see :func:`regime_report` for the rule."""
    return regime_report(macs, bytes_moved, latency_s, device, peaks=peaks, layers=layers)["regime"]


def latency_table(models: dict[str, tuple[nn.Module, Any]], batch_sizes: Iterable[int] = (1, 8, 64),
                  warmup: int = 3, repeats: int = 10, device: str | torch.device = "auto") -> pd.DataFrame:
    """Latency of each named ``(model, example_input)`` over batch sizes, beside its cost and regime.

    One row per (name, batch): median and per-sample latency, MACs per sample, weight bytes, the regime
    (:func:`classify_regime`) and the device. ``python -m gansurvey latency`` runs it on the teachers.
    """
    rows = []
    for name, (model, example_input) in models.items():
        timing = measure_latency(model, example_input, batch_sizes=tuple(batch_sizes), warmup=warmup,
                                 repeats=repeats, device=device)
        macs, weights = count_macs(model, example_input), weight_traffic_bytes(model)
        for _, row in timing.iterrows():
            batch = int(row["batch"])
            rows.append({"name": name, "batch": batch, "median_ms": row["median_ms"],
                         "per_sample_ms": row["per_sample_ms"], "macs_per_sample": macs, "weight_bytes": weights,
                         "regime": classify_regime(macs * batch, weights, row["median_ms"] / 1e3, device),
                         "device": row["device"]})
    return pd.DataFrame(rows)
