"""Regenerate the collection: execute the notebooks in order with papermill, write the executed copies and a
manifest under ``results/<profile>/``, and skip notebooks that are current (:func:`staleness`).

Each manifest entry names the files the notebook depends on with their SHA-256 (``depends_on``, computed by
:mod:`gansurvey.dependencies`), so a change re-runs only the notebooks that read the changed file, and a regeneration
stopped midway resumes at the first notebook that is not current. The entry also keeps the SHA-256 of the records
file the regeneration wrote, so records written by anything else are noticed (:func:`foreign_records`, and a re-run
instead of a skip)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from gansurvey.checks import GanSurveyError, check_choice, check_number, check_writable
from gansurvey.config import (
    DEVICES,
    PROGRESS_ENV,
    artifacts_dir,
    check_profile,
    display_path,
    project_root,
    results_dir,
)
from gansurvey.dependencies import RECORDS_READ, PackageGraph, dependency_digests, file_digest
from gansurvey.io import atomic_write_text
from gansurvey.records import UNDER_LOAD_ENV

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "papermill", "nbval", "ray")

#: What :func:`staleness` says of a notebook. ``current``: its entry, executed copy and records are as the last
#: regeneration left them and no file it depends on changed (``regenerate`` skips it); ``stale``: a dependency or a
#: parameter changed; ``missing``: no entry, executed copy or records; ``failed``: its last run raised;
#: ``foreign records``: its records file was not written by the regeneration that the entry describes.
STATES = ("current", "stale", "missing", "failed", "foreign records")
#: The reason given for an entry written before ``depends_on`` existed: what it depended on is unknown.
PREDATES_TRACKING = "manifest entry predates dependency tracking"
#: How many changed files a reason names before it says "and N more".
SHOWN_CHANGES = 3


class NotebookFailed(RuntimeError):
    """A notebook raised while being regenerated."""


@dataclass(frozen=True)
class NotebookRun:
    name: str
    status: str  # "ran" or "skipped"
    seconds: float
    output: Path


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def available_notebooks(folder: Path | None = None) -> list[str]:
    """Notebook names (without ``.ipynb``) in execution order."""
    return sorted(p.stem for p in (folder or notebooks_dir()).glob("*.ipynb"))


def fingerprint(parameters: dict[str, Any], depends_on: dict[str, str | None]) -> str:
    """What decides whether a notebook must be re-run, in one digest: its parameters and the SHA-256 of every file
    it depends on (the notebook among them)."""
    text = json.dumps({"parameters": parameters, "depends_on": depends_on}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def environment() -> dict[str, Any]:
    """Date, commit, device and package versions: the manifest's header."""
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=project_root()).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"date": _now(), "commit": commit,
            "device": cuda or f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "python": platform.python_version(), "versions": versions}


def notebook_parameter_names(notebook: Path) -> list[str]:
    """The names assigned in ``notebook``'s cell tagged ``parameters`` (as papermill reads them)."""
    import papermill as pm

    return list(pm.inspect_notebook(str(notebook)))


class NotebookState(NamedTuple):
    """One notebook's line of :func:`staleness`: its name, one of :data:`STATES`, and why (empty when current)."""

    notebook: str
    state: str
    reasons: tuple[str, ...]


def _records_problem(entry: dict | None, path: Path) -> tuple[str, str] | None:
    """``(state, sentence)`` when the records file at ``path`` is not the one the manifest ``entry`` recorded:
    ``foreign records`` (written by something else, or unknown to the manifest), ``missing`` (recorded, now gone)."""
    actual = file_digest(path)
    if entry is None:
        if actual is None:
            return None
        return "foreign records", f"{display_path(path)} was not written by a regeneration (manifest.json does not " \
                                  "know it)"
    if "records_sha256" not in entry or entry["records_sha256"] == actual:
        return None
    if actual is None:
        return "missing", f"{display_path(path)} is missing"
    return "foreign records", f"{display_path(path)} changed after the last regeneration wrote it"


def foreign_records(out: Path) -> list[str]:
    """Sentences naming the records under ``out`` (``results/<profile>/``) that the last regeneration did not
    write: a file whose digest differs from the one the manifest holds, or a file the manifest does not know."""
    manifest = _read_manifest(out / "manifest.json")
    if not manifest["notebooks"]:
        return []
    found = []
    for path in sorted(out.glob("*.csv")):
        problem = _records_problem(_entry(manifest, path.stem), path)
        if problem is not None and problem[0] == "foreign records":
            found.append(problem[1])
    return found


def _listed(paths: list[str]) -> str:
    shown = ", ".join(paths[:SHOWN_CHANGES])
    return shown + (f" and {len(paths) - SHOWN_CHANGES} more" if len(paths) > SHOWN_CHANGES else "")


def _changes(recorded: dict[str, str | None], now: dict[str, str | None]) -> list[str]:
    """Sentences naming the dependencies that changed between the manifest and now (at most a few files each)."""
    changed = sorted(key for key in recorded.keys() & now.keys() if recorded[key] != now[key])
    added = sorted(now.keys() - recorded.keys())
    dropped = sorted(recorded.keys() - now.keys())
    reasons = []
    if changed:
        reasons.append(f"changed: {_listed(changed)}")
    if added:
        reasons.append(f"new dependencies: {_listed(added)}")
    if dropped:
        reasons.append(f"no longer dependencies: {_listed(dropped)}")
    return reasons


def _parameter_changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    def shown(values: dict[str, Any], key: str) -> str:
        return repr(values[key]) if key in values else "(the notebook's own)"

    keys = sorted(key for key in recorded.keys() | now.keys() if recorded.get(key, ...) != now.get(key, ...))
    return [f"parameters changed: {', '.join(f'{k} {shown(recorded, k)} -> {shown(now, k)}' for k in keys)}"] \
        if keys else []


def _judge(name: str, entry: dict | None, target: Path, records: Path, parameters: dict[str, Any],
           depends_on: dict[str, str | None]) -> NotebookState:
    """The state of one notebook: what its manifest ``entry`` recorded against the files as they are now."""
    problem = _records_problem(entry, records)
    if entry is None:
        return NotebookState(name, "missing", ("no manifest entry",) + ((problem[1],) if problem else ()))
    if entry.get("status") == "failed":
        return NotebookState(name, "failed", (f"its last run failed ({entry.get('error') or 'no error recorded'})",))
    if entry.get("status") != "ok":
        return NotebookState(name, "missing", (f"manifest entry has status {entry.get('status')!r}, not 'ok'",))
    if not target.exists():
        return NotebookState(name, "missing", (f"no executed copy at {display_path(target)}",))
    if problem is not None:
        return NotebookState(name, problem[0], (problem[1],))
    if not isinstance(entry.get("depends_on"), dict):
        return NotebookState(name, "stale", (PREDATES_TRACKING,))
    reasons = _changes(entry["depends_on"], depends_on) + _parameter_changes(entry.get("parameters", {}), parameters)
    return NotebookState(name, "stale" if reasons else "current", tuple(reasons))


@dataclass(frozen=True)
class _Plan:
    """What a regeneration (or its status) covers: the notebooks, their folder, the parameters given."""

    folder: Path
    names: list[str]
    params: dict[str, Any]


def _plan(profile: str, only: list[str] | None, device: str | None, seed: int | None,
          folder: Path | None) -> _Plan:
    check_profile(profile)
    folder = folder or notebooks_dir()
    names = available_notebooks(folder)
    if not names:
        raise GanSurveyError(f"no notebooks found in {display_path(folder)}")
    for name in only or []:
        check_choice("notebook", name, names)
    params: dict[str, Any] = {"profile": profile}
    if device is not None:
        params["device"] = check_choice("device", device, DEVICES)
    if seed is not None:
        params["seed"] = check_number("seed", seed, minimum=0, integer=True)
    return _Plan(folder, [name for name in names if not only or name in only], params)


def _inputs(plan: _Plan, name: str, profile: str, out: Path,
            graph: PackageGraph) -> tuple[dict[str, Any], dict[str, str | None]]:
    """One notebook's injected parameters and dependency digests, as they are now."""
    source = plan.folder / f"{name}.ipynb"
    return _injected_parameters(source, name, plan.params), dependency_digests(source, profile, out, graph)


def staleness(profile: str = "quick", only: list[str] | None = None, device: str | None = None,
              seed: int | None = None, folder: Path | None = None, out: Path | None = None) -> list[NotebookState]:
    """Each notebook's state (:data:`STATES`) for ``regenerate`` with the same arguments, in execution order, and
    why; changes nothing. ``regenerate`` without ``force`` skips exactly the ``current`` ones."""
    plan = _plan(profile, only, device, seed, folder)
    out = out or results_dir(profile)
    manifest = _read_manifest(out / "manifest.json")
    graph = PackageGraph()
    states = []
    for name in plan.names:
        parameters, depends_on = _inputs(plan, name, profile, out, graph)
        states.append(_judge(name, _entry(manifest, name), out / "notebooks" / f"{name}.ipynb",
                             out / f"{name}.csv", parameters, depends_on))
    return states


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into a ``KeyboardInterrupt`` while the decorated function runs, so that Ctrl-C's clean-up
    runs for it too: by default SIGTERM ends the process at once, leaving the running notebook's temporary copy
    behind (#21). Left as it is where the caller handles SIGTERM itself (the CLI does), and off the main thread
    (where no handler can be set)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@_sigterm_interrupts()
def regenerate(profile: str = "quick", only: list[str] | None = None, force: bool = False,
               device: str | None = None, seed: int | None = None, folder: Path | None = None,
               out: Path | None = None, kernel_name: str = "python3",
               report: Callable[[str], None] | None = None, progress: bool = False,
               executor: str = "serial", address: str | None = None) -> list[NotebookRun]:
    """Execute the notebooks (all, or ``only`` these) in order with the profile's parameters injected.

    Injects ``profile`` (and ``device``/``seed`` when given, into the notebooks that declare them) and, into the
    notebooks that declare it, ``records_to = "tables"`` so that their records go to ``results/<profile>/<name>.csv``.
    A ``current`` notebook (:func:`staleness`) is skipped unless ``force``: a regeneration stopped midway resumes at
    the first notebook that is not current, since a notebook's executed copy, records and manifest entry are each
    written whole or not at all. Records written by anything else make a notebook run again.
    ``report`` receives one line per notebook (``[i/n] name ...`` with why it runs and the last run's time as the
    estimate); ``progress`` shows papermill's per-cell progress bar with the elapsed time.
    Stops at the first failing notebook with :class:`NotebookFailed` naming it and the failing cell. SIGTERM
    stops it as Ctrl-C does, with a ``KeyboardInterrupt``: the running notebook's temporary copy is removed, the
    notebooks finished before it are kept.

    ``executor="ray"`` injects ``executor = "ray"`` where a notebook declares it, so each notebook's arms and seeds
    run as tasks on one Ray cluster (``address``, else ``RAY_ADDRESS``, else a local Ray started here and stopped
    at the end), and runs the notebooks that read no other notebook's records (00-05) side by side, each in a
    process of its own, as many at a time as :func:`notebooks_at_once` allows for the cluster's CPUs; their timings
    then run beside other work, so their records are marked ``timed_under_load`` (one at a time, on a small
    machine, they run here, unmarked). The
    notebooks that read others' records (:data:`~gansurvey.dependencies.RECORDS_READ`: 06, then 07) run after
    them, one at a time. A notebook that fails there lets the others finish, then the first failure is raised.
    The executor decides where the work runs, not what it gives, so it is no parameter of the staleness judgement.
    """
    import papermill as pm

    from gansurvey.experiments.executor import check_executor

    check_executor(executor, address)
    plan = _plan(profile, only, device, seed, folder)
    out = out or results_dir(profile)
    check_writable("results folder", out, "set GANSURVEY_RESULTS to a folder you can write")
    check_writable("executed-notebooks folder", out / "notebooks", "move or delete what is in its place")
    check_writable("artifacts folder", artifacts_dir(), "set GANSURVEY_ARTIFACTS to a folder you can write")
    run = _Regeneration(plan, profile, out, force, kernel_name, report or (lambda line: None), progress, executor)
    if executor == "serial":
        return [run.here(pm, name) for name in plan.names]
    together = [name for name in plan.names if name not in RECORDS_READ]
    with _ray_cluster(plan, address) as cpus:
        runs = run.together(pm, together, notebooks_at_once(cpus))
        return runs + [run.here(pm, name) for name in plan.names if name not in together]


#: CPUs one notebook keeps busy when notebooks run side by side under ``--executor ray``: its kernel (quality,
#: latency, the serial parts) and the Ray tasks of its sweeps. Six notebooks at once on two cores left each a third
#: of a core and none finished in 12 minutes (#23), so a small machine runs them one at a time.
CPUS_PER_NOTEBOOK = 4


def notebooks_at_once(cpus: float) -> int:
    """How many notebooks :func:`regenerate` runs side by side on a Ray cluster of ``cpus`` CPUs: one per
    :data:`CPUS_PER_NOTEBOOK`, at least one."""
    return max(1, int(cpus // CPUS_PER_NOTEBOOK))


class _Regeneration:
    """One call of :func:`regenerate`: its plan, the manifest it keeps, and how one notebook is judged, run and
    entered in the manifest (here, or in a process of its own beside others)."""

    def __init__(self, plan: _Plan, profile: str, out: Path, force: bool, kernel_name: str,
                 say: Callable[[str], None], progress: bool, executor: str) -> None:
        self.plan, self.profile, self.out, self.force = plan, profile, out, force
        self.kernel_name, self.say, self.progress, self.executor = kernel_name, say, progress, executor
        self.manifest_path = out / "manifest.json"
        self.manifest = _read_manifest(self.manifest_path)
        self.env = environment()
        self.manifest.update(self.env)  # the header describes the last regeneration; each entry the run that wrote it

    def head(self, name: str) -> str:
        return f"[{self.plan.names.index(name) + 1}/{len(self.plan.names)}] {name}"

    def judge(self, name: str) -> tuple[bool, dict[str, Any], dict[str, str | None]]:
        """Whether ``name`` runs (saying so, or that it is skipped), with its parameters and dependency digests."""
        target = self.out / "notebooks" / f"{name}.ipynb"
        # read now, not once per regeneration: an earlier notebook of this run may have rewritten records this one
        # reads, and a file edited while an earlier notebook ran must count. Digests are taken before the run, so
        # a file edited while this notebook runs leaves it stale rather than wrongly current.
        injected, depends_on = _inputs(self.plan, name, self.profile, self.out, PackageGraph())
        entry = _entry(self.manifest, name)
        state = _judge(name, entry, target, self.out / f"{name}.csv", injected, depends_on)
        if state.state == "current" and not self.force:
            self.say(f"{self.head(name)}: current, skipped")
            return False, injected, depends_on
        last = (entry or {}).get("seconds")
        estimate = f"about {last:.0f} s last time" if isinstance(last, int | float) else "no earlier run"
        why = "forced" if state.state == "current" else f"{state.state} ({'; '.join(state.reasons)})"
        self.say(f"{self.head(name)}: running ({estimate})" if entry is None
                 else f"{self.head(name)}: {why}; running again ({estimate})")
        return True, injected, depends_on

    def parameters(self, name: str, injected: dict[str, Any]) -> dict[str, Any]:
        """What papermill injects: the judged parameters, and the executor where the notebook declares one."""
        if self.executor == "serial" or "executor" not in notebook_parameter_names(self.source(name)):
            return injected
        return {**injected, "executor": self.executor}

    def source(self, name: str) -> Path:
        return self.plan.folder / f"{name}.ipynb"

    def enter(self, name: str, entry: dict[str, Any]) -> None:
        attribution = {"commit": self.env["commit"], "device": self.env["device"], "executor": self.executor}
        self.manifest["notebooks"][name] = {**entry, **attribution, "date": _now()}
        atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=2, sort_keys=True))

    def done(self, name: str, injected: dict[str, Any], depends_on: dict[str, str | None],
             seconds: float) -> NotebookRun:
        target = self.out / "notebooks" / f"{name}.ipynb"
        self.enter(name, {"status": "ok", "fingerprint": fingerprint(injected, depends_on), "depends_on": depends_on,
                          "seconds": round(seconds, 1), "parameters": injected,
                          "output": str(target.relative_to(self.out)),
                          "records_sha256": file_digest(self.out / f"{name}.csv")})
        self.say(f"{self.head(name)}: done in {seconds:.1f} s")
        return NotebookRun(name, "ran", seconds, target)

    def failed(self, name: str, injected: dict[str, Any], ename: str, evalue: str, cell: Any) -> NotebookFailed:
        self.enter(name, {"status": "failed", "fingerprint": None, "error": f"{ename}", "parameters": injected})
        evalue = (str(evalue).strip().splitlines() or [""])[0]
        where = f"in cell {cell}" if cell is not None else "before its cells ran"
        return NotebookFailed(f"notebook {name!r} failed {where}: {ename}: {evalue}")

    def here(self, pm: Any, name: str) -> NotebookRun:
        """Run ``name`` in this process (unless it is current)."""
        target = self.out / "notebooks" / f"{name}.ipynb"
        runs, injected, depends_on = self.judge(name)
        if not runs:
            return NotebookRun(name, "skipped", 0.0, target)
        started = time.perf_counter()
        try:
            _execute(pm, self.source(name), target, self.parameters(name, injected), self.plan.folder,
                     self.kernel_name, self.progress, name)
        except pm.PapermillExecutionError as exc:
            raise self.failed(name, injected, exc.ename, exc.evalue, exc.exec_count) from exc
        return self.done(name, injected, depends_on, time.perf_counter() - started)

    def together(self, pm: Any, names: list[str], at_once: int) -> list[NotebookRun]:
        """Run ``names`` side by side, at most ``at_once`` at a time, each in a process of its own, their timings
        marked as taken under load (the next starts when one ends); with one to run, or one at a time, they run
        here, one after another, unmarked. Returns their runs in plan order once all have ended."""
        judged = {name: self.judge(name) for name in names}
        running = [name for name in names if judged[name][0]]
        if len(running) < 2 or at_once < 2:
            return [self.here(pm, name) if judged[name][0] else
                    NotebookRun(name, "skipped", 0.0, self.out / "notebooks" / f"{name}.ipynb") for name in names]
        self.say(f"  {len(running)} notebooks, at most {at_once} at a time")
        runs = {name: NotebookRun(name, "skipped", 0.0, self.out / "notebooks" / f"{name}.ipynb")
                for name in names if not judged[name][0]}
        env = {**os.environ, UNDER_LOAD_ENV: "1", PROGRESS_ENV: "0"}
        failures: dict[str, NotebookFailed] = {}
        children: dict[str, tuple[subprocess.Popen, Path, float]] = {}
        waiting = list(running)
        with tempfile.TemporaryDirectory(prefix="gansurvey-regenerate-") as work:
            try:
                while waiting or children:
                    while waiting and len(children) < at_once:
                        name = waiting.pop(0)
                        children[name] = self._start(name, judged[name][1], Path(work), env)
                    self._reap(children, judged, runs, failures)
            except BaseException:  # an interrupt: each child stops its notebook and removes its temporary copy
                for child, _, _ in children.values():
                    child.terminate()
                deadline = time.monotonic() + 30
                for child, _, _ in children.values():
                    try:
                        child.wait(timeout=max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        child.kill()
                raise
        if failures:
            raise failures[next(name for name in names if name in failures)]
        return [runs[name] for name in names]

    def _start(self, name: str, injected: dict[str, Any], work: Path,
               env: dict[str, str]) -> tuple[subprocess.Popen, Path, float]:
        """Start ``name`` in a child process (:func:`_execute_apart`); its job file and outcome go to ``work``."""
        job = work / f"{name}.json"
        job.write_text(json.dumps({
            "source": str(self.source(name)), "target": str(self.out / "notebooks" / f"{name}.ipynb"),
            "params": self.parameters(name, injected), "cwd": str(self.plan.folder),
            "kernel_name": self.kernel_name, "name": name, "outcome": str(job.with_suffix(".out"))}))
        child = subprocess.Popen([sys.executable, "-c", "from gansurvey.runner import _execute_apart; "
                                  "_execute_apart()", str(job)], env=env)
        return child, job.with_suffix(".out"), time.perf_counter()

    def _reap(self, children: dict[str, tuple[subprocess.Popen, Path, float]],
              judged: dict[str, tuple[bool, dict[str, Any], dict[str, str | None]]],
              runs: dict[str, NotebookRun], failures: dict[str, NotebookFailed]) -> None:
        """Wait a moment, then enter every child that has ended (its run, or its failure) and forget it."""
        time.sleep(0.2)
        for name, (child, outcome_path, started) in list(children.items()):
            if child.poll() is None:
                continue
            del children[name]
            outcome = json.loads(outcome_path.read_text()) if outcome_path.exists() else \
                ["failed", "ProcessEnded", f"its process ended with status {child.returncode}", None]
            _, injected, depends_on = judged[name]
            if outcome[0] == "ok":
                runs[name] = self.done(name, injected, depends_on, time.perf_counter() - started)
            else:
                failures[name] = self.failed(name, injected, *outcome[1:])
                self.say(f"{self.head(name)}: failed: {failures[name]}")


def _execute_apart() -> None:
    """Run one notebook in a child process of :meth:`_Regeneration.together`: the job is the JSON file named on the
    command line; how it ended goes to the job's ``outcome`` file, ``["ok"]`` or ``["failed", error name, error
    value, cell]``. SIGTERM stops it as Ctrl-C does (papermill removes the temporary copy)."""
    job = json.loads(Path(sys.argv[1]).read_text())

    def interrupt(signum, frame) -> None:
        # this process only runs the notebook being stopped: what its clean-up logs as the kernel is killed
        # ("Kernel died while waiting for execute reply", asyncio's unretrieved DeadKernelError) is noise; the
        # parent says in one line what stopped
        logging.disable(logging.CRITICAL)
        raise KeyboardInterrupt(f"stopped ({signal.Signals(signum).name})")

    signal.signal(signal.SIGTERM, interrupt)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # Ctrl-C in a terminal reaches the whole group
        signal.signal(signal.SIGINT, interrupt)
    import papermill as pm

    try:
        _execute(pm, Path(job["source"]), Path(job["target"]), job["params"], Path(job["cwd"]), job["kernel_name"],
                 False, job["name"])
        outcome = ["ok"]
    except pm.PapermillExecutionError as exc:
        outcome = ["failed", exc.ename, str(exc.evalue), exc.exec_count]
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        outcome = ["failed", type(exc).__name__, str(exc), None]
    atomic_write_text(job["outcome"], json.dumps(outcome))


@contextmanager
def _ray_cluster(plan: _Plan, address: str | None) -> Iterator[float]:
    """The Ray cluster the notebooks' kernels join (through ``RAY_ADDRESS``): ``address``, ``RAY_ADDRESS``, or a
    local Ray started here for the regeneration and stopped after it; yields its CPUs. Nothing starts when no
    notebook of the plan declares an executor (the CPUs are then this machine's)."""
    if not any("executor" in notebook_parameter_names(plan.folder / f"{name}.ipynb") for name in plan.names):
        from gansurvey.experiments.executor import local_cores

        yield float(local_cores())
        return
    from gansurvey.experiments.executor import connect, ray_module

    ray = ray_module()
    started = not ray.is_initialized() and not (address or os.environ.get("RAY_ADDRESS"))
    before = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = connect(address)
    try:
        yield float(ray.cluster_resources().get("CPU", 1))
    finally:
        if before is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = before
        if started:
            ray.shutdown()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _injected_parameters(source: Path, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters to inject into one notebook, checked against the names its parameters cell declares.

    ``profile`` must be declared; ``device`` and ``seed`` go only where declared (``07_survey_tables`` has no
    device); ``records_to = "tables"`` goes wherever the notebook declares it.
    """
    declared = notebook_parameter_names(source)
    if "profile" not in declared:
        raise GanSurveyError(f"notebook {name} has no 'profile' in its parameters cell (it declares: "
                             f"{', '.join(declared) or 'nothing'}), so regenerate cannot set its profile")
    injected = {key: value for key, value in params.items() if key in declared}
    if "records_to" in declared:
        injected["records_to"] = "tables"
    return injected


#: Kernel options for regeneration: the kernel's own log (e.g. "Kernel is running over TCP without encryption")
#: stays out of the terminal; errors still show.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def _execute(pm, source: Path, target: Path, params: dict, cwd: Path, kernel_name: str,
             progress: bool = False, name: str = "") -> None:
    """Run papermill into a temporary file and move it into place, so no half-executed copy is left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp.ipynb")
    bar: bool | dict = {"desc": f"  {name} cells", "unit": "cell", "leave": False} if progress else False
    # The kernel inherits the environment: no progress bar inside the notebook, whose outputs are committed
    # (the terminal keeps papermill's own cell bar).
    before = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "0"
    try:
        pm.execute_notebook(str(source), str(tmp), parameters=params, cwd=str(cwd), kernel_name=kernel_name,
                            progress_bar=bar, extra_arguments=list(KERNEL_ARGUMENTS),
                            # an interrupt kills the kernel at once instead of asking a busy kernel to stop, which
                            # made it print a ZMQ traceback (#21)
                            shutdown_kernel="immediate")
        tmp.replace(target)
    except KeyboardInterrupt:
        # the kernel is killed mid-cell: nbclient's pending task then fails with DeadKernelError, which asyncio
        # prints as "Task exception was never retrieved" at exit, a traceback for an ordinary Ctrl-C (#23)
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        raise
    finally:
        tmp.unlink(missing_ok=True)
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before


def strip_injected(path: Path) -> bool:
    """Remove papermill's ``injected-parameters`` cells, and the run's input and output paths from the notebook's
    metadata, from the notebook at ``path``; True when it changed.

    An executed copy under ``results/`` keeps both (papermill's record of the run); a notebook committed under
    ``notebooks/`` must not: JupyterLab's Run All would override the parameters cell with the injected one, and the
    paths name the machine that ran it.
    """
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except (nbformat.ValidationError, UnicodeDecodeError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise GanSurveyError(f"{display_path(path)} is not a Jupyter notebook (.ipynb JSON), so it has no injected "
                             f"parameters to strip") from exc
    kept = [cell for cell in nb.cells if "injected-parameters" not in cell.get("metadata", {}).get("tags", [])]
    run = nb.metadata.get("papermill", {})
    paths = [key for key in ("input_path", "output_path") if run.get(key) is not None]
    if len(kept) == len(nb.cells) and not paths:
        return False
    nb.cells = kept
    for key in paths:
        run[key] = None
    nbformat.write(nb, path)
    return True


def _read_manifest(path: Path) -> dict:
    """The manifest at ``path``; an empty one when there is none yet, or when it is damaged, which one line on
    stderr says (every notebook then counts as not run, and the next run rewrites the file)."""
    if not path.exists():
        return {"notebooks": {}}
    try:
        manifest = json.loads(path.read_text())
        if isinstance(manifest, dict) and isinstance(manifest.get("notebooks"), dict):
            return manifest
        problem = "no 'notebooks' object"
    except (OSError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    print(f"warning: {display_path(path)} is damaged ({problem}); it is read as empty, so every notebook counts as "
          "not run, and the next run rewrites it", file=sys.stderr)
    return {"notebooks": {}}


def _entry(manifest: dict, name: str) -> dict | None:
    """The manifest's entry for ``name``; None when there is none, or something other than a JSON object stands in
    its place (a hand-edited manifest), which a run then replaces."""
    entry = manifest["notebooks"].get(name)
    return entry if isinstance(entry, dict) else None
