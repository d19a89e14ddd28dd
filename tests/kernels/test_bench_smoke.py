"""The benchmark script's smoke mode runs (CPU, reference path, tiny shapes); nothing here is timed."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "perf" / "bench_kernels.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_kernels", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_smoke_runs_and_writes_json(tmp_path, reference_backend):
    bench = _load()
    report = bench.run_benchmark(bench.smoke_cases()[:2], (1,), "cpu", torch.float32, warmup=0, reps=1,
                                 log=lambda line: None)
    methods = {r["method"] for r in report["results"]}
    assert {"dense float32", "w8", "w4g128", "w8a8", "lut4"} <= methods <= {
        "dense float32", "w8", "w4g128", "w8a8", "lut4", "torch._int_mm"}
    assert all(r["median_ms"] > 0 and r["iqr_ms"] >= 0 and r["sqnr_db_vs_fp32"] > 10 for r in report["results"])
    assert any("torchao" in note for note in report["notes"])  # present or the reason it is absent
    # graph timing off the GPU: every row says why it has no graph_* times, and the eager times stay
    graphed = bench.run_benchmark(bench.smoke_cases()[:1], (1,), "cpu", torch.float32, warmup=0, reps=1,
                                  log=lambda line: None, graphs=True)
    assert all(r["graph_error"] == "CUDA graphs need a CUDA device" and "graph_median_ms" not in r
               and r["median_ms"] > 0 for r in graphed["results"])
    assert "graph" in graphed["timing"] and "graph" not in report["timing"]
    stats = bench.time_fn(lambda: None, warmup=1, reps=5, cuda=False)
    assert stats["reps"] == 5 and stats["q1"] <= stats["median"] <= stats["q3"]
    assert bench.device_peaks("NVIDIA H100 80GB HBM3")["bandwidth"] == 3.35e12
    assert bench.device_peaks("Some GPU")["label"] == "unknown"
    out = tmp_path / "bench.json"
    bench.main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text())["device"] == "cpu"
