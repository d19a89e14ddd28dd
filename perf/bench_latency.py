"""Latency of small conv generators across batch sizes, beside their MACs, bytes moved and regime.

Shows where memory compression can pay: at batch 1 the weights dominate the traffic and small models are
launch-bound; as the batch grows the same weights serve more samples.

    .venv/bin/python perf/bench_latency.py [--device auto|cpu|cuda] [--batches 1 8 64] [--threads N]
                                                 [--csv out.csv]

On a CPU shared with other busy processes, multi-threaded small ops wait for a descheduled worker thread at
every barrier; compare with --threads 1 before reading much into a slow batch-1 row.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch
from torch import nn

from gansurvey.config import resolve_device
from gansurvey.metrics.cost import cost_breakdown, count_macs, stored_bytes, weight_traffic_bytes
from gansurvey.metrics.latency import measure_latency, measured_peaks, regime_report


def dcgan(width: int, nz: int = 100) -> nn.Module:
    """A DCGAN-style 32x32 generator: 1x1 noise, four transposed convolutions, ``width`` base channels."""
    def up(cin: int, cout: int, stride: int, pad: int) -> list[nn.Module]:
        conv = nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False)
        return [conv, nn.BatchNorm2d(cout), nn.ReLU(True)]

    return nn.Sequential(*up(nz, 4 * width, 1, 0), *up(4 * width, 2 * width, 2, 1),
                         *up(2 * width, width, 2, 1), nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh())


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels),
                                  nn.ReLU(True), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet_i2i(width: int, blocks: int = 3) -> nn.Module:
    """A small pix2pix/CycleGAN-style 32x32 image-to-image generator (down 2x, residual blocks, up 2x)."""
    def norm_relu(c: int) -> list[nn.Module]:
        return [nn.InstanceNorm2d(c), nn.ReLU(True)]

    return nn.Sequential(
        nn.Conv2d(1, width, 7, padding=3), *norm_relu(width),
        nn.Conv2d(width, 2 * width, 3, 2, 1), *norm_relu(2 * width),
        nn.Conv2d(2 * width, 4 * width, 3, 2, 1), *norm_relu(4 * width),
        *[_Residual(4 * width) for _ in range(blocks)],
        nn.ConvTranspose2d(4 * width, 2 * width, 3, 2, 1, output_padding=1), *norm_relu(2 * width),
        nn.ConvTranspose2d(2 * width, width, 3, 2, 1, output_padding=1), *norm_relu(width),
        nn.Conv2d(width, 1, 7, padding=3), nn.Tanh(),
    )


MODELS = {
    "dcgan-w16": (lambda: dcgan(16), (100, 1, 1)),
    "dcgan-w64": (lambda: dcgan(64), (100, 1, 1)),
    "resnet-w16": (lambda: resnet_i2i(16), (1, 32, 32)),
    "resnet-w32": (lambda: resnet_i2i(32), (1, 32, 32)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    torch.manual_seed(0)
    peaks = measured_peaks(device)
    print(f"device peaks: {peaks['gflops']:.1f} GFLOP/s, {peaks['gbytes_per_s']:.1f} GB/s, "
          f"{peaks['call_overhead_s'] * 1e6:.2f} us per call")
    rows = []
    for name in args.models:
        build, shape = MODELS[name]
        model = build().eval()
        sample = torch.randn(1, *shape)
        weights = weight_traffic_bytes(model)
        timing = measure_latency(model, sample, args.batches, args.warmup, args.repeats, device)
        for record in timing.to_dict("records"):
            batch = torch.randn(record["batch"], *shape)
            layers = cost_breakdown(model, batch)
            macs = int(layers["macs"].sum())
            activations = int((layers["input_bytes"] + layers["output_bytes"]).sum())
            calls = int(layers["calls"].sum())
            report = regime_report(macs, weights + activations, record["median_ms"] / 1e3, peaks=peaks,
                                   layers=calls)
            rows.append({
                "model": name, "batch": record["batch"], "median_ms": record["median_ms"],
                "per_sample_ms": record["per_sample_ms"], "MMACs": macs / 1e6,
                "MMACs_torchprofile": count_macs(model, batch, "torchprofile") / 1e6,
                "stored_KB": stored_bytes(model) / 1e3, "weight_KB": weights / 1e3,
                "activation_KB": activations / 1e3, "GFLOP/s": report["achieved_gflops"],
                "GB/s": report["achieved_gbytes_per_s"], "regime": report["regime"],
            })
    table = pd.DataFrame(rows)
    print(f"{timing['device'].iloc[0]} ({device.type}), {timing['threads'].iloc[0]} threads")
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format",
                           "{:.3f}".format):
        print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
