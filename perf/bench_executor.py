"""Serial against Ray on one quick sweep: mnist-dcgan pruned three ways, each fine-tuned 40 steps at two seeds
(9 tasks), the two executors alternated in one process so a change of load hits both.

    .venv/bin/python perf/bench_executor.py [--repeats 2] [--threads 2] [--address HOST:PORT]

The first Ray run includes starting a local Ray (or joining ``--address``/``RAY_ADDRESS``); later runs reuse it.
Serial runs use ``--threads`` torch threads; each Ray task uses one. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import gansurvey as gs
from gansurvey.compress import ChannelPruneConfig, MagnitudePruneConfig
from gansurvey.experiments.pruning import pruning_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per executor (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the serial runs (default 2)")
    parser.add_argument("--address", help="a Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench = gs.get_benchmark("mnist-dcgan")
    teacher, disc = bench.teacher("quick")
    configs = {"magnitude 50%": MagnitudePruneConfig(0.5), "magnitude 90%": MagnitudePruneConfig(0.9),
               "channels 50%": ChannelPruneConfig(0.5)}
    seconds: dict[str, list[float]] = {"serial": [], "ray": []}
    for _ in range(args.repeats):
        for executor in seconds:
            start = time.perf_counter()
            pruning_sweep(bench, teacher, disc, configs, 40, seeds=[0, 1], executor=executor,
                          address=args.address if executor == "ray" else None, device="cpu",
                          profile=gs.profile_settings("quick"), notebook="bench_executor")
            seconds[executor].append(round(time.perf_counter() - start, 1))
    print(json.dumps({"seconds": seconds, "serial_threads": args.threads,
                      "speedup_of_medians": round(statistics.median(seconds["serial"])
                                                  / statistics.median(seconds["ray"]), 2)}))


if __name__ == "__main__":
    main()
