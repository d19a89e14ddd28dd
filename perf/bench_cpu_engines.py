"""The shipped teachers at batch 1 on this CPU: fp32 against their 8-bit form on two execution paths, timed
interleaved (A, B, C, A, B, C... in one process, fixed threads) so that a change of load hits every path alike.

- ``fp32``: the teacher as shipped.
- ``int8 reference-dense``: 8-bit per-channel weights decoded to float (what a quantized layer does without an
  engine): as many bytes moved as fp32, plus the decode.
- ``int8 fbgemm``: the same quantized model on PyTorch's fbgemm integer engine layer by layer (uint8 activations,
  int8 weights, int32 accumulation; each layer quantizes its input and dequantizes its output), activation ranges
  calibrated on 64 inputs.
- ``int8 fbgemm fused``: the same on fbgemm as one static-quantized graph (batch norms folded, conv+ReLU fused,
  uint8 activations from the input to the output): what ``measure`` times when it is the fastest faithful form.

Prints one table per benchmark (median, quartiles, speed-up over fp32 with a bootstrap 95 % interval, output
SQNR against fp32) and writes them to ``--json``. Run it on an idle machine:

    .venv/bin/python perf/bench_cpu_engines.py [--threads 2] [--repeats 50] [--json results/perf/cpu_engines.json]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import pandas as pd
import torch

import gansurvey as gs
from gansurvey.compress import QuantConfig, quantize
from gansurvey.compress.precision import output_sqnr, to_fused_engine, to_integer_engine
from gansurvey.config import code_commit
from gansurvey.io import atomic_write_text
from gansurvey.metrics.latency import interleaved_latency


def engines(bench_name: str) -> tuple[dict[str, torch.nn.Module], torch.Tensor]:
    bench = gs.get_benchmark(bench_name)
    teacher, _ = bench.teacher()
    calibration = bench.eval_inputs(64, seed=1)
    quantized = quantize(teacher, QuantConfig(weight_bits=8, granularity="per-channel"), calibration)
    return {"fp32": teacher, "int8 reference-dense": quantized,
            "int8 fbgemm": to_integer_engine(quantized, calibration, "fbgemm"),
            "int8 fbgemm fused": to_fused_engine(quantized, calibration, "fbgemm")}, bench.example_input(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", nargs="+", default=["mnist-dcgan", "edges2digits-resnet"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tables = []
    for name in args.benchmarks:
        models, x = engines(name)
        table = interleaved_latency(models, x, batch=1, warmup=args.warmup, repeats=args.repeats,
                                    threads=args.threads, device="cpu")
        with torch.no_grad():
            table["sqnr_db"] = [output_sqnr(models["fp32"], m, x) if label != "fp32" else float("inf")
                                for label, m in models.items()]
        tables.append(table.assign(benchmark=name))
        print(f"\n{name} (batch 1, {args.threads} threads, {args.repeats} interleaved repeats)")
        print(table[["model", "median_ms", "p25_ms", "p75_ms", "speedup_x", "speedup_low", "speedup_high",
                     "sqnr_db"]].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.json:
        frame = pd.concat(tables, ignore_index=True)
        payload = {"machine": platform.machine(), "processor": platform.processor() or "unknown",
                   "torch": torch.__version__, "commit": code_commit(), "threads": args.threads,
                   "rows": json.loads(frame.replace({float("inf"): None}).to_json(orient="records"))}
        atomic_write_text(args.json, json.dumps(payload, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
