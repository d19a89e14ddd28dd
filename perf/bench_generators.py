"""Time the published generators (CycleGAN ResNet-9, pix2pix U-Net-256) dense fp16 vs int8/int4 weight-only on
the Triton kernels (int4 also with each layer's batch norm and activation in its kernel's epilogue), and record
the engines that ran and the output SQNR (a script, never a test).

    python perf/bench_generators.py --out results/gpu/bench_generators.json      # CUDA, 256x256, batch 1 and 8
    python perf/bench_generators.py --smoke --out /tmp/gen.json                  # CPU interpreter, tiny sizes
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from gansurvey.compress import FusedEpilogue, QuantConfig, QuantizedLayer, fuse_epilogues, quantize  # noqa: E402
from gansurvey.measuring import execution_engines  # noqa: E402

try:  # noqa: SIM105 - the package moved its generators into gansurvey.models (restructure under way)
    from gansurvey.models.published import ResnetGenerator9, UnetGenerator256  # noqa: E402
except ImportError:  # pragma: no cover
    from gansurvey.published import ResnetGenerator9, UnetGenerator256  # noqa: E402


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_kernels", ROOT / "perf" / "bench_kernels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def half_except_quantized(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Float parameters and buffers of every module but the quantized layers and fused epilogues (their scales
    stay float32) in ``dtype``."""
    for module in model.modules():
        if isinstance(module, QuantizedLayer | FusedEpilogue):
            continue
        for p in module.parameters(recurse=False):
            p.data = p.data.to(dtype)
        for name, b in module.named_buffers(recurse=False):
            if b is not None and b.is_floating_point():
                module._buffers[name] = b.to(dtype)
    return model


def _sqnr(ref: torch.Tensor, out: torch.Tensor) -> float:
    noise = (ref.double() - out.double()).norm().item()
    return math.inf if noise == 0 else 20 * math.log10(ref.double().norm().item() / noise)


def run(smoke: bool, device: str, batches: tuple[int, ...], warmup: int, reps: int) -> dict:
    bench = _bench_module()
    cuda = device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    flush = bench.l2_flush_buffer(device)
    if smoke:
        nets = {"cyclegan-resnet9": (lambda: ResnetGenerator9(ngf=8, blocks=2), 16),
                "pix2pix-unet": (lambda: UnetGenerator256(ngf=8, num_downs=5), 32)}
    else:
        nets = {"cyclegan-resnet9": (ResnetGenerator9, 256), "pix2pix-unet256": (UnetGenerator256, 256)}
    rows = []
    for name, (make, size) in nets.items():
        torch.manual_seed(0)
        model = make().eval()
        for batch in batches:
            x32 = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                want = model(x32)
            variants = {f"dense {str(dtype).split('.')[-1]}": half_except_quantized(
                copy.deepcopy(model), dtype).to(device)}
            for bits in (8, 4):
                q = quantize(model, QuantConfig(bits, granularity="per-channel"))
                variants[f"int{bits} weight-only"] = half_except_quantized(q, dtype).to(device)
            fused = fuse_epilogues(q)[0]  # the int4 model, its norms and activations in the kernels' epilogue
            variants["int4 weight-only + epilogue"] = half_except_quantized(fused, dtype).to(device)
            x = x32.to(device=device, dtype=dtype)
            base = None
            for label, net in variants.items():
                with torch.no_grad():
                    stats = bench.time_fn(lambda net=net, x=x: net(x), warmup, reps, cuda, flush)
                    out = net(x)
                engines = execution_engines(net, x.device)
                base = stats["median"] if base is None else base
                row = {"generator": name, "image": size, "batch": batch, "variant": label,
                       "median_ms": stats["median"] * 1e3, "iqr_ms": stats["iqr"] * 1e3, "reps": stats["reps"],
                       "speedup_vs_dense": base / stats["median"], "sqnr_db_vs_fp32": _sqnr(want, out.float().cpu()),
                       "engines": engines}
                rows.append(row)
                print(f"{name:18s} {size:4d} b{batch:<3d} {label:20s} {row['median_ms']:9.3f} ms "
                      f"(IQR {row['iqr_ms']:.3f}) x{row['speedup_vs_dense']:.2f} SQNR {row['sqnr_db_vs_fp32']:.1f} "
                      f"{engines}")
    return {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
            "mode": "smoke" if smoke else "full", "warmup": warmup, "reps": reps, "results": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny generators on CPU (set TRITON_INTERPRET=1 and "
                                                             "GANSURVEY_KERNELS=triton to run the kernels)")
    parser.add_argument("--out", default="results/gpu/bench_generators.json")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    if args.smoke:
        report = run(True, "cpu", (1,), warmup=0, reps=1)
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device here; use --smoke for the CPU check")
        report = run(False, "cuda", tuple(int(b) for b in args.batches.split(",")), args.warmup, args.reps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
