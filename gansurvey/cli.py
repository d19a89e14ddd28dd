"""``python -m gansurvey regenerate | tables | bench``."""

from __future__ import annotations

import argparse
import sys

from gansurvey.checks import GanSurveyError
from gansurvey.config import DEVICES, PROFILES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gansurvey", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    regen = sub.add_parser("regenerate", help="execute the notebooks with papermill and write results/<profile>/")
    regen.add_argument("--profile", choices=PROFILES, default="quick")
    regen.add_argument("--only", nargs="+", metavar="NAME", help="notebook names (e.g. 00_background)")
    regen.add_argument("--device", choices=DEVICES)
    regen.add_argument("--seed", type=int)
    regen.add_argument("--force", action="store_true", help="re-run notebooks even when nothing changed")
    tables = sub.add_parser("tables", help="write the survey's tables and figures to results/<profile>/tables/")
    tables.add_argument("--profile", choices=PROFILES, default="quick")
    bench = sub.add_parser("bench", help="latency of every benchmark's teacher over batch sizes")
    bench.add_argument("--profile", choices=PROFILES, default="quick")
    bench.add_argument("--device", choices=DEVICES, default="auto")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 64])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "regenerate":
            from gansurvey.runner import regenerate

            for run in regenerate(args.profile, only=args.only, force=args.force, device=args.device, seed=args.seed):
                print(f"{run.name:24s} {run.status:8s} {run.seconds:7.1f} s  {run.output}")
        elif args.command == "tables":
            from gansurvey.survey import write_tables

            for path in write_tables(args.profile):
                print(path)
        elif args.command == "bench":
            from gansurvey.bench import teacher_latency

            print(teacher_latency(args.profile, args.device, args.batch_sizes).to_string(index=False))
    except (GanSurveyError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
