"""Wall-clock time of executing notebooks with papermill in a profile, teachers cached.

A warm-up execution fills the caches (teachers, classifier, statistics); the timed executions follow, and the
median is reported. Usage: ``python perf/bench_notebooks.py [--only 00_background] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import papermill as pm

from gansurvey.runner import available_notebooks, notebooks_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick", choices=["quick", "full"])
    parser.add_argument("--only", nargs="+", default=["00_background"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    folder = notebooks_dir()
    unknown = sorted(set(args.only) - set(available_notebooks(folder)))
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; allowed: {available_notebooks(folder)}")
    with tempfile.TemporaryDirectory() as out:
        for name in args.only:
            source, target = folder / f"{name}.ipynb", Path(out) / f"{name}.ipynb"
            times = []
            for attempt in range(args.repeats + 1):  # the first is the warm-up: it trains or loads the teachers
                started = time.perf_counter()
                pm.execute_notebook(str(source), str(target), parameters={"profile": args.profile},
                                    cwd=str(folder), progress_bar=False)
                if attempt:
                    times.append(time.perf_counter() - started)
            print(f"{name}: median {statistics.median(times):.1f} s over {len(times)} run(s) "
                  f"(min {min(times):.1f}, max {max(times):.1f}), profile {args.profile}")


if __name__ == "__main__":
    main()
