"""Benchmark the compressed-weight kernels against dense fp16/bf16 torch, ``torch._int_mm`` and torchao (a script,
never a timed test).

Why: the survey's claim that low-bit weights speed up small-batch generator layers is a memory-bandwidth claim;
this prints, per layer and batch, the median time and its interquartile range, the achieved bandwidth (weight +
activation bytes / time) and FLOP/s beside the device's peaks, and the speed-up over dense fp16, and writes it
all to JSON. On CUDA every repeat is timed with CUDA events (device time, not Python dispatch) after the L2
cache was flushed (a 2x-L2 buffer is overwritten), so a 4096^2 weight cannot be served from the H200's L2.
Baselines: dense fp16 and bf16 (``torch.matmul`` / cuDNN), ``torch._int_mm`` (int8 x int8 -> int32 cuBLAS, on
dynamically quantized rows; it needs more than 16 rows on CUDA, so smaller batches are padded to 17 and say so)
and torchao's int4 weight-only (``Int4WeightOnlyConfig``) when torchao imports (optional: it is not in the
pinned environment; the JSON records why it is absent).

    python perf/bench_kernels.py                  # CUDA: full sweep, JSON to results/gpu/bench_kernels.json
    python perf/bench_kernels.py --smoke --out /tmp/smoke.json   # CPU check: reference path, tiny shapes
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from gansurvey.kernels import (  # noqa: E402
    CodebookWeight,
    backend,
    conv2d,
    conv2d_weight_matrix,
    conv_transpose2d,
    conv_transpose2d_weight_matrix,
    linear,
    pack_codes,
    quantize_weight,
)

# (substring of torch.cuda.get_device_name, label, HBM bytes/s, dense fp16 FLOP/s, dense int8 OP/s)
DEVICE_PEAKS = [
    ("H200", "H200", 4.8e12, 989e12, 1979e12),
    ("H100 80GB HBM3", "H100 SXM", 3.35e12, 989e12, 1979e12),
    ("H100 NVL", "H100 NVL", 3.9e12, 835e12, 1671e12),
    ("H100 PCIe", "H100 PCIe", 2.0e12, 756e12, 1513e12),
    ("A100-SXM4-80GB", "A100 SXM 80GB", 2.039e12, 312e12, 624e12),
    ("A100", "A100 40GB", 1.555e12, 312e12, 624e12),
]


@dataclass(frozen=True)
class Case:
    """One layer: a GEMM ``(N=cout, K=cin)`` on ``batch`` rows, or a conv on ``batch x cin x hw x hw``."""

    name: str
    kind: str  # "gemm" | "conv2d" | "conv_transpose2d"
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    hw: int = 1


def default_cases() -> list[Case]:
    return [
        Case("gemm 4096x4096", "gemm", 4096, 4096),
        Case("dcgan convT 100->256 k4 1x1", "conv_transpose2d", 100, 256, 4, 1, 0, 0, 1),
        Case("dcgan convT 256->128 k4 s2 4x4", "conv_transpose2d", 256, 128, 4, 2, 1, 0, 4),
        Case("dcgan convT 128->64 k4 s2 8x8", "conv_transpose2d", 128, 64, 4, 2, 1, 0, 8),
        Case("cyclegan conv 256->256 k3 64x64", "conv2d", 256, 256, 3, 1, 1, 0, 64),
        Case("cyclegan convT 256->128 k3 s2 64x64", "conv_transpose2d", 256, 128, 3, 2, 1, 1, 64),
    ]


def smoke_cases() -> list[Case]:
    return [
        Case("gemm 64x48", "gemm", 48, 64),
        Case("convT 16->8 k4 s2 4x4", "conv_transpose2d", 16, 8, 4, 2, 1, 0, 4),
        Case("conv 8->8 k3 8x8", "conv2d", 8, 8, 3, 1, 1, 0, 8),
    ]


def device_peaks(name: str) -> dict:
    for key, label, bw, flops, iops in DEVICE_PEAKS:
        if key in name:
            return {"label": label, "bandwidth": bw, "fp16_flops": flops, "int8_ops": iops}
    return {"label": "unknown", "bandwidth": None, "fp16_flops": None, "int8_ops": None}


def _codebook(matrix: torch.Tensor, bits: int) -> CodebookWeight:
    """Uniform per-layer codebook between min and max (enough to time the LUT kernel)."""
    lo, hi = matrix.min(), matrix.max()
    levels = 2**bits - 1
    idx = torch.round((matrix - lo) / (hi - lo) * levels).long()
    cb = (lo + torch.arange(levels + 1, device=matrix.device) * (hi - lo) / levels).float()
    return CodebookWeight(pack_codes(idx, bits), bits, tuple(matrix.shape), cb.contiguous())


def _layer(case: Case, device: str, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    if case.kind == "gemm":
        weight = torch.randn(case.cout, case.cin, generator=g) * 0.05
        matrix = weight
    elif case.kind == "conv2d":
        weight = torch.randn(case.cout, case.cin, case.kernel, case.kernel, generator=g) * 0.05
        matrix = conv2d_weight_matrix(weight)
    else:
        weight = torch.randn(case.cin, case.cout, case.kernel, case.kernel, generator=g) * 0.05
        matrix = conv_transpose2d_weight_matrix(weight)
    return weight.to(device), matrix.to(device).contiguous()


def _input(case: Case, batch: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(1)
    shape = (batch, case.cin) if case.kind == "gemm" else (batch, case.cin, case.hw, case.hw)
    return torch.randn(shape, generator=g).to(device=device, dtype=dtype)


def _dense(case: Case, weight: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    if case.kind == "gemm":
        return lambda x: torch.matmul(x, weight.T)
    if case.kind == "conv2d":
        return lambda x: F.conv2d(x, weight, None, case.stride, case.padding)
    return lambda x: F.conv_transpose2d(x, weight, None, case.stride, case.padding, case.output_padding)


def _compressed(case: Case, w, activation_bits: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if case.kind == "gemm":
        return lambda x: linear(x, w, activation_bits=activation_bits)
    if case.kind == "conv2d":
        return lambda x: conv2d(x, w, None, case.stride, case.padding, 1, 1, case.kernel, activation_bits)
    return lambda x: conv_transpose2d(x, w, None, case.stride, case.padding, case.output_padding, 1, 1,
                                      case.kernel, case.cout, activation_bits)


def _flops(case: Case, batch: int) -> float:
    if case.kind == "gemm":
        return 2.0 * batch * case.cin * case.cout
    if case.kind == "conv2d":
        out = (case.hw + 2 * case.padding - case.kernel) // case.stride + 1
        return 2.0 * batch * out * out * case.cout * case.cin * case.kernel**2
    return 2.0 * batch * case.hw**2 * case.cin * case.cout * case.kernel**2  # GEMM + col2im: no zero insertion


def l2_flush_buffer(device: str) -> torch.Tensor | None:
    """A buffer twice the device's L2 cache (``None`` on CPU); writing it evicts the weights between repeats."""
    if not device.startswith("cuda"):
        return None
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 64 * 2**20
    return torch.empty(2 * l2 // 4, dtype=torch.float32, device=device)


def time_fn(fn: Callable[[], object], warmup: int, reps: int, cuda: bool,
            flush: torch.Tensor | None = None) -> dict:
    """Seconds of ``fn()`` over ``reps`` timed calls after ``warmup`` calls: median, quartiles, IQR.

    CUDA: one pair of CUDA events around each call (device time), the L2 flushed before each; CPU: wall clock.
    """
    for _ in range(warmup):
        fn()
    times = []
    if cuda:
        torch.cuda.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for start, end in events:
            if flush is not None:
                flush.zero_()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        times = [start.elapsed_time(end) / 1e3 for start, end in events]
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    q1, med, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return {"median": med, "q1": q1, "q3": q3, "iqr": q3 - q1, "reps": len(times), "warmup": warmup}


def time_graph(fn: Callable[[], object], reps: int, cuda: bool,
               flush: torch.Tensor | None = None) -> tuple[dict | None, str | None]:
    """Device time of ``fn()`` replayed from a CUDA graph, or ``None`` and why it could not be captured.

    Why: an event pair around one eager call also holds the host's dispatch whenever that outlasts the GPU work
    queued before it (the 2026-12-04 H200 run, ``results/gpu/README.md``). A replayed graph launches its kernels
    without Python in between, so this interval is the kernels' own time (plus one graph launch). ``fn`` must have
    been called before (Triton autotunes eagerly, not during capture).
    """
    if not cuda:
        return None, "CUDA graphs need a CUDA device"
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as graph capture requires
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        torch.cuda.synchronize()
    except Exception as err:  # noqa: BLE001 - record why, keep benchmarking
        return None, f"{type(err).__name__}: {err}"
    return time_fn(graph.replay, 2, reps, True, flush), None


def median_time(fn: Callable[[], object], warmup: int, reps: int, cuda: bool) -> float:
    """Median seconds of ``fn()`` (see :func:`time_fn`)."""
    return time_fn(fn, warmup, reps, cuda)["median"]


def int_mm_baseline(matrix: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``torch._int_mm`` on int8 rows quantized per call (as W8A8 does) against a per-channel int8 weight."""
    if not hasattr(torch, "_int_mm"):
        return None
    from gansurvey.kernels import quantize_activations

    amax = matrix.abs().amax(dim=1).clamp_min(1e-8)
    w_scale = (amax / 127).float()
    w_t = torch.round(matrix / w_scale[:, None]).clamp(-127, 127).to(torch.int8).T.contiguous()

    def run(x: torch.Tensor) -> torch.Tensor:
        m = x.shape[0]
        pad = 17 - m if x.is_cuda and m <= 16 else 0  # cuBLAS int8 GEMM needs M > 16
        xp = torch.nn.functional.pad(x, (0, 0, 0, pad)) if pad else x
        q, s = quantize_activations(xp)
        out = torch._int_mm(q, w_t).float() * s[:, None] * w_scale[None, :]
        return out[:m].to(x.dtype)

    return run


def torchao_baseline(matrix: torch.Tensor) -> tuple[Callable | None, str]:
    """torchao int4 weight-only on an ``nn.Linear`` (bf16), or ``None`` and the reason it is absent."""
    try:
        import torchao
        from torchao.quantization import Int4WeightOnlyConfig, quantize_
    except Exception as err:  # noqa: BLE001 - optional dependency
        return None, f"torchao not importable: {type(err).__name__}: {err}"
    if not matrix.is_cuda:
        return None, "torchao int4 weight-only needs CUDA"
    # tile_packed_to_4d is torchao's tinygemm layout (torch's own _weight_int4pack_mm); the default "plain" layout
    # needs fbgemm-gpu-genai, which a bare image lacks. Older torchao has no such keyword: its default is tinygemm.
    failures = []
    for kwargs in ({"int4_packing_format": "tile_packed_to_4d"}, {}):
        try:
            lin = torch.nn.Linear(matrix.shape[1], matrix.shape[0], bias=False, device=matrix.device,
                                  dtype=torch.bfloat16)
            with torch.no_grad():
                lin.weight.copy_(matrix)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_(lin, Int4WeightOnlyConfig(group_size=128, **kwargs))
            lin(torch.zeros(1, matrix.shape[1], device=matrix.device, dtype=torch.bfloat16))  # fails here if unusable
            layout = kwargs.get("int4_packing_format", "default layout")
            return (lambda x, lin=lin: lin(x.to(torch.bfloat16))), f"torchao {torchao.__version__} ({layout})"
        except Exception as err:  # noqa: BLE001 - record why, keep benchmarking
            failures.append(f"{kwargs or 'default'}: {type(err).__name__}: {err}")
    return None, "torchao int4 failed: " + "; ".join(failures)


def _sqnr(ref: torch.Tensor, out: torch.Tensor) -> float:
    noise = (ref.double() - out.double()).norm().item()
    return math.inf if noise == 0 else 20 * math.log10(ref.double().norm().item() / noise)


def run_benchmark(
    cases: list[Case],
    batches: tuple[int, ...],
    device: str,
    dtype: torch.dtype,
    warmup: int = 5,
    reps: int = 20,
    log: Callable[[str], None] = print,
    graphs: bool = False,
) -> dict:
    """Time dense fp16/bf16 (``dtype`` only on CPU) and the compressed formats on every case and batch.

    ``graphs``: also time each method replayed from a CUDA graph (``graph_*`` fields: device time without the
    host's dispatch), or say in ``graph_error`` why it could not be captured.
    """
    cuda = device.startswith("cuda")
    flush = l2_flush_buffer(device)
    notes = []
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peaks = device_peaks(name) if cuda else device_peaks("")
    dense_dtypes = (torch.float16, torch.bfloat16) if cuda else (dtype,)
    rows = []
    log(f"device: {name} (peaks: {peaks['label']}), backend: {backend(torch.zeros(1, device=device))}")
    header = ("case", "batch", "method", "ms", "IQR ms", "GB/s", "TFLOP/s", "speedup", "SQNR")
    log("{:38s} {:>5s} {:14s} {:>9s} {:>8s} {:>8s} {:>8s} {:>7s} {:>6s}".format(*header))
    for case in cases:
        weight, matrix = _layer(case, device)
        formats = {
            "w8": (quantize_weight(matrix, 8), None),
            "w4g128": (quantize_weight(matrix, 4, group_size=min(128, matrix.shape[1])), None),
            "w8a8": (quantize_weight(matrix, 8), 8),
            "lut4": (_codebook(matrix, 4), None),
        }
        for batch in batches:
            x32 = _input(case, batch, device, torch.float32)
            want = _dense(case, weight)(x32)
            base = None
            methods = {}
            for dt in dense_dtypes:
                label = f"dense {str(dt).split('.')[-1]}"
                methods[label] = (_dense(case, weight.to(dt)), x32.to(dt), weight.numel() * dt.itemsize)
            xc = x32.to(dense_dtypes[0])
            for fmt, (w, abits) in formats.items():
                methods[fmt] = (_compressed(case, w, abits), xc, w.nbytes())
            if case.kind == "gemm":
                int_mm = int_mm_baseline(matrix)
                if int_mm is not None:
                    methods["torch._int_mm"] = (int_mm, xc, matrix.numel())
                    if cuda and batch <= 16:
                        notes.append(f"torch._int_mm at batch {batch} runs on 17 rows (cuBLAS needs M > 16)")
                ao, why = torchao_baseline(matrix)
                if ao is not None:
                    methods["torchao int4"] = (ao, x32.to(torch.bfloat16), matrix.numel() // 2)
                if why not in notes:
                    notes.append(why)
            graph_base = None
            for method, (fn, x, wbytes) in methods.items():
                stats = time_fn(lambda fn=fn, x=x: fn(x), warmup, reps, cuda, flush)
                seconds = stats["median"]
                out = fn(x)
                nbytes = wbytes + x.numel() * x.element_size() + out.numel() * out.element_size()
                base = seconds if base is None else base
                row = {
                    "case": case.name, "batch": batch, "method": method, "median_ms": seconds * 1e3,
                    "iqr_ms": stats["iqr"] * 1e3, "q1_ms": stats["q1"] * 1e3, "q3_ms": stats["q3"] * 1e3,
                    "reps": stats["reps"],
                    "bandwidth_GBps": nbytes / seconds / 1e9, "tflops": _flops(case, batch) / seconds / 1e12,
                    "speedup_vs_dense": base / seconds, "sqnr_db_vs_fp32": _sqnr(want, out.float()), "bytes": nbytes,
                }
                if peaks["bandwidth"]:
                    row["bandwidth_fraction_of_peak"] = row["bandwidth_GBps"] * 1e9 / peaks["bandwidth"]
                graph_text = ""
                if graphs:
                    gstats, why = time_graph(lambda fn=fn, x=x: fn(x), reps, cuda, flush)
                    if gstats is None:
                        row["graph_error"] = why
                        graph_text = "  graph: not captured"
                    else:
                        if method == next(iter(methods)):  # the dense baseline, timed first
                            graph_base = gstats["median"]
                        row.update(graph_median_ms=gstats["median"] * 1e3, graph_q1_ms=gstats["q1"] * 1e3,
                                   graph_q3_ms=gstats["q3"] * 1e3, graph_bandwidth_GBps=nbytes / gstats["median"] / 1e9)
                        graph_text = f"  graph {row['graph_median_ms']:.4f} ms"
                        if graph_base is not None:  # None when the dense baseline could not be captured
                            row["graph_speedup_vs_dense"] = graph_base / gstats["median"]
                            graph_text += f" x{row['graph_speedup_vs_dense']:.2f}"
                rows.append(row)
                log(f"{case.name:38s} {batch:5d} {method:14s} {row['median_ms']:9.4f} {row['iqr_ms']:8.4f} "
                    f"{row['bandwidth_GBps']:8.1f} "
                    f"{row['tflops']:8.2f} {row['speedup_vs_dense']:7.2f} {row['sqnr_db_vs_fp32']:6.1f}{graph_text}")
    if peaks["bandwidth"]:
        log(f"peaks of {peaks['label']}: {peaks['bandwidth'] / 1e9:.0f} GB/s, {peaks['fp16_flops'] / 1e12:.0f} "
            f"dense fp16 TFLOP/s, {peaks['int8_ops'] / 1e12:.0f} dense int8 TOP/s")
    else:
        log(f"peaks of {name}: unknown")
    return {
        "device": name, "peaks": peaks, "torch": torch.__version__, "cases": [asdict(c) for c in cases],
        "batches": list(batches), "warmup": warmup, "reps": reps, "results": rows,
        "timing": ("CUDA events per repeat, L2 flushed before each" if cuda else "perf_counter per repeat")
        + ("; graph_* fields: the same, around a CUDA graph's replay" if graphs else ""),
        "l2_flush_bytes": 0 if flush is None else flush.numel() * 4, "notes": notes,
        "triton": _triton_version(),
    }


def _triton_version() -> str | None:
    try:
        import triton
    except Exception:  # noqa: BLE001
        return None
    return triton.__version__


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (reference path), to check the script")
    parser.add_argument("--out", default="results/gpu/bench_kernels.json", help="where to write the JSON")
    parser.add_argument("--batches", default="1,4,16,64", help="comma-separated batch sizes")
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--graphs", action="store_true",
                        help="also time each method replayed from a CUDA graph (device time without host dispatch)")
    args = parser.parse_args(argv)
    if args.smoke:
        report = run_benchmark(smoke_cases(), (1, 2), "cpu", torch.float32, warmup=1, reps=2, graphs=args.graphs)
        report["mode"] = "smoke"
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device here; use --smoke for the CPU check")
        batches = tuple(int(b) for b in args.batches.split(","))
        report = run_benchmark(default_cases(), batches, "cuda", torch.float16, args.warmup, args.reps,
                               graphs=args.graphs)
        report["mode"] = "full"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
