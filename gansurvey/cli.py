"""``python -m gansurvey regenerate | tables | latency | strip-injected``.

Every expected failure (a bad argument, a failing notebook, a folder that cannot be written, a papermill error)
ends as one line on stderr, ``error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gansurvey.checks import GanSurveyError
from gansurvey.config import DEVICES, PROFILES, display_path, results_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gansurvey", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    regen = sub.add_parser("regenerate", help="execute the notebooks with papermill and write results/<profile>/")
    regen.add_argument("--profile", choices=PROFILES, default="quick")
    regen.add_argument("--only", nargs="+", metavar="NAME", help="notebook names (e.g. 00_background)")
    regen.add_argument("--device", choices=DEVICES)
    regen.add_argument("--seed", type=int)
    regen.add_argument("--force", action="store_true", help="re-run notebooks even when nothing changed")
    tables = sub.add_parser("tables", help="write the comparison tables (rebuilt from the surveyed works' primary "
                                           "sources) and figures to results/<profile>/tables/")
    tables.add_argument("--profile", choices=PROFILES, default="quick")
    latency = sub.add_parser("latency", help="latency of every benchmark's teacher over batch sizes")
    latency.add_argument("--profile", choices=PROFILES, default="quick")
    latency.add_argument("--device", choices=DEVICES, default="auto")
    latency.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 64])
    teachers = sub.add_parser("teachers", help="the shipped teachers and digit classifier (data/teachers/): list "
                                               "their cards and check their files, or retrain them")
    teachers.add_argument("--train", nargs="*", metavar="NAME",
                          help="retrain these (default: all) with their recipes and rewrite their files and cards")
    strip = sub.add_parser("strip-injected", help="remove papermill's injected-parameters cells from notebooks "
                                                  "(run it on executed notebooks before committing them)")
    strip.add_argument("paths", nargs="*", type=Path, metavar="NOTEBOOK",
                       help="notebook files (default: every notebook in notebooks/)")
    return parser


def _expected(exc: BaseException) -> bool:
    """Failures a user can cause and fix, reported as one line rather than a traceback."""
    if isinstance(exc, GanSurveyError | RuntimeError | OSError):
        return True
    return type(exc).__module__.split(".")[0] in ("papermill", "nbclient", "jupyter_client")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, GanSurveyError | RuntimeError) else f"{type(exc).__name__}: {text}"


def _teachers(train: list[str] | None) -> None:
    """List the shipped networks (each loaded and checked against its card), or retrain the named ones."""
    import pandas as pd

    from gansurvey import zoo
    from gansurvey.benchmarks import BENCHMARKS, get_benchmark
    from gansurvey.benchmarks.digits import CLASSIFIER_NAME, CLASSIFIER_RECIPE
    from gansurvey.benchmarks.teachers import card_summary, train_classifier, train_teacher
    from gansurvey.checks import check_choice

    names = (CLASSIFIER_NAME, *BENCHMARKS)
    if train is not None:
        for name in train:
            check_choice("network to train", name, names)
        for name in [n for n in names if n in (train or names)]:  # the classifier first: teachers are scored by it
            state, card = train_classifier() if name == CLASSIFIER_NAME else train_teacher(get_benchmark(name))
            for path in zoo.write_shipped(name, state, card):
                print(f"wrote {display_path(path)}")
    rows = []
    for name in names:
        recipe = CLASSIFIER_RECIPE if name == CLASSIFIER_NAME else get_benchmark(name).teacher_recipe()
        zoo.load_shipped(name, recipe)  # refuses a missing, damaged or stale file, naming the rebuild command
        rows.append(card_summary(zoo.read_card(name)))
    print(pd.DataFrame(rows).to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "regenerate":
            from gansurvey.runner import regenerate

            runs = regenerate(args.profile, only=args.only, force=args.force, device=args.device, seed=args.seed,
                              report=print, progress=True)
            for run in runs:
                print(f"{run.name:24s} {run.status:8s} {run.seconds:7.1f} s  {display_path(run.output)}")
        elif args.command == "tables":
            from gansurvey.runner import foreign_records
            from gansurvey.survey import write_tables

            for line in foreign_records(results_dir(args.profile)):
                print(f"warning: {line}; `python -m gansurvey regenerate --profile {args.profile}` restores it",
                      file=sys.stderr)
            for path in write_tables(args.profile):
                print(display_path(path))
        elif args.command == "latency":
            from gansurvey.benchmarks import BENCHMARKS, get_benchmark
            from gansurvey.config import profile_settings
            from gansurvey.metrics.latency import latency_table

            settings, teachers = profile_settings(args.profile), {}
            for name in BENCHMARKS:
                bench = get_benchmark(name)
                teachers[name] = (bench.teacher(args.profile, device=args.device, progress=False)[0],
                                  bench.example_input(1))
            print(latency_table(teachers, args.batch_sizes, settings.latency_warmup, settings.latency_repeats,
                                args.device).to_string(index=False))
        elif args.command == "teachers":
            _teachers(args.train)
        elif args.command == "strip-injected":
            from gansurvey.runner import notebooks_dir, strip_injected

            paths = args.paths or sorted(notebooks_dir().glob("*.ipynb"))
            for path in paths:
                if strip_injected(path):
                    print(f"stripped papermill's injected parameters and run paths from {display_path(path)}")
    except Exception as exc:
        if not _expected(exc):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0
