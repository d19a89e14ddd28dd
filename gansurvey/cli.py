"""``python -m gansurvey regenerate [--status] | tables | latency | teachers | controls | strip-injected``
``| readme-table [--check]``.

Every expected failure (a bad argument, a failing notebook, a folder that cannot be written, a papermill error,
a damaged records file) ends as one line on stderr, ``error: ...``, and exit status 2. Arguments are parsed before
any heavy module (torch, papermill) is imported, so a mistyped command answers at once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from gansurvey.checks import GanSurveyError, check_number

# gansurvey.config imports torch: these copies keep argument parsing fast (a test keeps them equal to config's)
PROFILES = ("quick", "full", "paper")
DEVICES = ("auto", "cpu", "cuda")
EXECUTORS = ("serial", "ray")  # gansurvey.experiments.executor.EXECUTORS
PROFILE_HELP = ("quick: minutes per notebook, verdicts marked indicative; full: the reproduction proper, about an hour "
                "per notebook on a 2-core CPU; paper: full without its trims, for a GPU (default: quick)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gansurvey", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    regen = sub.add_parser("regenerate", help="execute the notebooks with papermill and write results/<profile>/")
    regen.add_argument("--profile", choices=PROFILES, default="quick", help=PROFILE_HELP)
    regen.add_argument("--only", nargs="+", metavar="NAME", help="notebook names (e.g. 00_background)")
    regen.add_argument("--device", choices=DEVICES,
                       help="where the notebooks compute (default: each notebook's own, 'auto': CUDA when present)")
    regen.add_argument("--seed", type=int, help="the base seed injected into every notebook (an integer >= 0; "
                                                "default: each notebook's own)")
    regen.add_argument("--executor", choices=EXECUTORS, default="serial",
                       help="serial: the notebooks one after another, each arm after the other (default); ray: each "
                            "notebook's arms and seeds as Ray tasks, and notebooks 00-05 side by side, one per 4 "
                            "CPUs of the cluster (06 after them, 07 last); records of notebooks run side by side are "
                            "marked timed_under_load")
    regen.add_argument("--address", metavar="HOST:PORT",
                       help="with --executor ray: the Ray cluster to join ('auto': the one `ray start` began on this "
                            "node; default: RAY_ADDRESS, else a local Ray on this machine's cores)")
    what = regen.add_mutually_exclusive_group()
    what.add_argument("--force", action="store_true", help="re-run notebooks even when nothing changed")
    what.add_argument("--status", action="store_true",
                      help="print each notebook's state (current, stale, missing, failed, foreign records) and why, "
                           "and run nothing; without --force, regenerate runs every notebook that is not current")
    regen.add_argument("--strict", action="store_true",
                       help="exit with status 2 when 07_survey_tables ran without the records of notebooks 00-06")
    tables = sub.add_parser("tables", help="write the comparison tables (rebuilt from the surveyed works' primary "
                                           "sources) and figures to results/<profile>/tables/")
    tables.add_argument("--profile", choices=PROFILES, default="quick", help=PROFILE_HELP)
    tables.add_argument("--strict", action="store_true",
                        help="exit with status 2 when a measuring notebook's records are missing")
    latency = sub.add_parser("latency", help="latency of every benchmark's teacher over batch sizes")
    latency.add_argument("--profile", choices=PROFILES, default="quick", help=PROFILE_HELP)
    latency.add_argument("--device", choices=DEVICES, default="auto", help="where to time (default: auto)")
    latency.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 64],
                         help="batch sizes to time, integers >= 1 (default: 1 8 64)")
    teachers = sub.add_parser("teachers", help="the shipped teachers and digit classifier (data/teachers/): list "
                                               "their cards and check their files, or retrain them")
    teachers.add_argument("--train", nargs="*", metavar="NAME",
                          help="retrain these (default: all) with their recipes and rewrite their files and cards")
    controls = sub.add_parser("controls", help="the dense-from-scratch controls of a profile (the quick and full "
                                               "profiles' are committed under data/dense-controls/): list them, or "
                                               "train them")
    controls.add_argument("--profile", choices=PROFILES, default="full", help=PROFILE_HELP)
    controls.add_argument("--train", action="store_true",
                          help="train the missing ones (each as long as a teacher) and copy them into "
                               "data/dense-controls/")
    strip = sub.add_parser("strip-injected", help="remove papermill's injected-parameters cells from notebooks "
                                                  "(run it on executed notebooks before committing them)")
    strip.add_argument("paths", nargs="*", type=Path, metavar="NOTEBOOK",
                       help="notebook files (default: every notebook in notebooks/)")
    readme = sub.add_parser("readme-table", help="rewrite README.md's table of notebooks from the executed notebooks "
                                                 "(quick times) and results/full/manifest.json (full times, records)")
    readme.add_argument("--check", action="store_true",
                        help="write nothing; exit with status 1 when README.md's table differs from what the executed "
                             "notebooks and results/full/manifest.json give")
    return parser


def _expected(exc: BaseException) -> bool:
    """Failures a user can cause and fix, reported as one line rather than a traceback."""
    if isinstance(exc, GanSurveyError | RuntimeError | OSError):
        return True
    return type(exc).__module__.split(".")[0] in ("papermill", "nbclient", "jupyter_client")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:  # its path, shown without the machine
        from gansurvey.config import display_path

        return f"{type(exc).__name__}: {exc.strerror}: {display_path(exc.filename)}"
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
    from gansurvey.config import display_path

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


def _missing_records(profile: str) -> list[str]:
    """Warn (one line on stderr) about the measuring notebooks whose records are missing for ``profile``; return
    them."""
    import warnings

    from gansurvey.records import warn_missing_records

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        missing = warn_missing_records(profile)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return missing


def _controls(profile: str, train: bool) -> None:
    """List the dense controls of ``profile`` (committed, cached), training and committing the missing first."""
    import pandas as pd

    from gansurvey.config import display_path, profile_settings
    from gansurvey.experiments.common import run_seeds
    from gansurvey.experiments.controls import SHIPPED_BENCHMARKS, dense_control_files, ship_dense_controls

    settings = profile_settings(profile)
    seeds = run_seeds(settings)
    if train:
        for path in ship_dense_controls(list(SHIPPED_BENCHMARKS), settings, seeds):
            print(f"committed {display_path(path)}")
    print(pd.DataFrame(dense_control_files(list(SHIPPED_BENCHMARKS), settings, seeds)).to_string(index=False))


def _readme_table(check: bool) -> int:
    """Rewrite README.md's table of notebooks, or with ``check`` say whether it differs (status 1) from what the
    executed notebooks and the full manifest give."""
    import difflib

    from gansurvey import readme_table as rt
    from gansurvey.config import display_path, project_root, results_dir

    readme = project_root() / "README.md"
    written = rt.readme_block(readme.read_text(encoding="utf-8"), readme.name)  # no markers: refused before any work
    table = rt.expected_table(readme=readme)
    for note in rt.quick_manifest_notes(rt.quick_runs(), rt.read_manifest(results_dir("quick") / "manifest.json")):
        print(f"warning: {note}", file=sys.stderr)
    if not check:
        changed = rt.write_readme(table, readme)
        print(f"{display_path(readme)}: notebook table {'rewritten' if changed else 'already as the runs give it'}")
        return 0
    if written == table:
        print(f"{display_path(readme)}: notebook table is as the runs give it")
        return 0
    diff = difflib.unified_diff(written.splitlines(), table.splitlines(), "README.md (as written)",
                                "as the runs give it", lineterm="", n=0)
    print("\n".join(diff), file=sys.stderr)
    print(f"{display_path(readme)}: notebook table differs from the runs; `python -m gansurvey readme-table` "
          "rewrites it", file=sys.stderr)
    return 1


class _Strict(GanSurveyError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that the same clean-up runs as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated()


#: What an interrupt keeps, per command.
KEPT = {
    "regenerate": "notebooks finished before it are kept (results/<profile>/manifest.json); the running one's "
                  "temporary copy was removed and the next `regenerate` resumes at it",
    "tables": "tables already written are complete files; re-run to write the rest",
    "latency": "nothing was written",
    "teachers": "files already written are complete (each write is atomic); the network being trained was lost",
    "controls": "controls already written are complete (each write is atomic); the one being trained was lost",
    "strip-injected": "each notebook is rewritten whole or not at all",
    "readme-table": "README.md is rewritten whole or not at all",
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return _run(args)
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
        print(f"{what}: `{args.command}` stopped; {KEPT[args.command]}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "latency":  # checked before any teacher is loaded
            for size in args.batch_sizes:
                check_number("--batch-sizes", size, minimum=1, integer=True)
        from gansurvey.config import display_path, results_dir

        if args.command == "regenerate" and args.status:
            from gansurvey.runner import staleness

            for name, state, reasons in staleness(args.profile, only=args.only, device=args.device, seed=args.seed):
                print(f"{name:24s} {state:15s} {'; '.join(reasons) or 'nothing it depends on changed'}")
        elif args.command == "regenerate":
            from gansurvey.runner import regenerate

            runs = regenerate(args.profile, only=args.only, force=args.force, device=args.device, seed=args.seed,
                              report=print, progress=True, executor=args.executor, address=args.address)
            for run in runs:
                print(f"{run.name:24s} {run.status:8s} {run.seconds:7.1f} s  {display_path(run.output)}")
            if any(run.name == "07_survey_tables" for run in runs) and _missing_records(args.profile) and args.strict:
                raise _Strict("--strict: 07_survey_tables ran without every measuring notebook's records")
        elif args.command == "tables":
            import warnings

            from gansurvey.checks import check_writable
            from gansurvey.records import MissingRecordsWarning, ResultsStore
            from gansurvey.runner import foreign_records
            from gansurvey.survey import write_tables
            from gansurvey.survey.output import TABLES_HINT

            # an unwritable tables folder is refused first, before warnings about records it could never show
            check_writable("tables folder", results_dir(args.profile) / "tables", TABLES_HINT)
            for line in foreign_records(results_dir(args.profile)):
                print(f"warning: {line}; `python -m gansurvey regenerate --profile {args.profile}` restores it",
                      file=sys.stderr)
            ResultsStore(args.profile).load_all()  # a damaged records file is refused before any table is written
            missing = _missing_records(args.profile)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MissingRecordsWarning)  # said once above
                written = write_tables(args.profile)
            for path in written:
                print(display_path(path))
            if missing and args.strict:
                raise _Strict("--strict: tables were written without every measuring notebook's records")
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
        elif args.command == "controls":
            _controls(args.profile, args.train)
        elif args.command == "strip-injected":
            from gansurvey.runner import notebooks_dir, strip_injected

            paths = args.paths or sorted(notebooks_dir().glob("*.ipynb"))
            for path in paths:
                if strip_injected(path):
                    print(f"stripped papermill's injected parameters and run paths from {display_path(path)}")
        elif args.command == "readme-table":
            return _readme_table(args.check)
    except Exception as exc:
        if not _expected(exc):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0
