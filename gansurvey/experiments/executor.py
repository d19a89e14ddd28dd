"""Where a sweep's independent work runs.

A sweep splits its work into :class:`Task` objects, one per arm and seed: a module-level function and its
arguments, which returns that unit's records (and the sample grids its sweep keeps) and depends on nothing else, so
it can run in another process. :func:`run_tasks` runs them

- ``executor="serial"`` (the default): in this process, one after another, in their order: what every sweep did
  before executors existed, with the same records;
- ``executor="ray"``: as Ray tasks, one per arm and seed, each on one CPU and one GPU where the cluster has GPUs.
  With no ``address`` (and no ``RAY_ADDRESS``) it starts a local Ray on this machine's cores; ``address`` (or
  ``RAY_ADDRESS``) joins a running cluster (``ray start --head`` on a node, or a SLURM allocation; see the README,
  "On a cluster"). Ray's usage statistics are turned off: nothing is sent anywhere.

Either way the results come back in task order, a bar shows tasks done out of the total, and a failing task stops
the sweep with :class:`TaskFailed` naming its arm, seed and error: the sweep returns nothing, so no partial records
are written.

Latency is never timed inside a task that runs beside others: there :func:`gansurvey.measure` leaves it untimed
(:data:`gansurvey.measuring.UNTIMED`), and once every task of the sweep is done this process times those models one
after another, on the device they were measured on, as a serial run would have.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gansurvey.checks import GanSurveyError, check_choice
from gansurvey.config import PROGRESS_ENV, progress_bar
from gansurvey.measuring import UNTIMED, Untimed

#: How a sweep's tasks run: in this process one after another, or as Ray tasks.
EXECUTORS = ("serial", "ray")
#: Environment variables a Ray task takes from the process that submitted it (folders, root, profile data), so a
#: worker started before a change of them reads and writes where its driver does.
FORWARDED_ENV_PREFIX = "GANSURVEY_"


class TaskFailed(GanSurveyError):
    """A task of a sweep raised: the message names the sweep, the arm, the seed and the error."""


@dataclass(frozen=True)
class Task:
    """One independent unit of a sweep: ``run(**kwargs)`` for ``arm`` at ``seed`` (``None``: an arm measured once,
    such as a compressed teacher before fine-tuning).

    ``run`` must be a module-level function (Ray pickles it by name) whose result depends on its arguments alone,
    never on state an earlier task left behind (the global random state among it): then the serial and Ray runs
    give the same records. Models and teachers are passed by value; caches it writes go through
    :func:`gansurvey.zoo.cached` (atomic, checksummed), so two workers never leave a half-written file.
    """

    arm: str
    seed: int | None
    run: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"arm {self.arm!r}" + ("" if self.seed is None else f", seed {self.seed}")


def check_executor(executor: str, address: str | None = None) -> str:
    """``executor`` if it is one of :data:`EXECUTORS`; an ``address`` needs ``"ray"``."""
    check_choice("executor", executor, EXECUTORS)
    if address is not None and executor != "ray":
        raise GanSurveyError(f"an address ({address!r}) joins a Ray cluster: pass executor='ray' with it")
    return executor


def run_tasks(tasks: Sequence[Task], executor: str = "serial", address: str | None = None, *,
              desc: str = "tasks", device: str = "auto") -> list[Any]:
    """Run ``tasks`` and return their results in task order (see the module's text).

    Args:
        tasks: the sweep's tasks, in the order a serial run computes them.
        executor: ``"serial"`` or ``"ray"`` (:data:`EXECUTORS`).
        address: a Ray cluster to join (``"auto"``, ``"host:port"``); ``None``: ``RAY_ADDRESS``, else a local Ray.
        desc: what the progress bar and a failure call the sweep.
        device: the sweep's device; a Ray task asks for a GPU when the cluster has one and this is not ``"cpu"``.

    Raises:
        TaskFailed: naming the first task that failed (the others are cancelled); nothing is returned.

    Example::

        results = run_tasks([Task("w0.5", s, train_student, {"width": 0.5, "seed": s}) for s in (0, 1, 2)], "ray")
    """
    check_executor(executor, address)
    tasks = list(tasks)
    if executor == "serial":
        results = []
        for task in progress_bar(tasks, desc=desc, unit="task", leave=False):
            try:
                results.append(task.run(**task.kwargs))
            except Exception as exc:
                raise TaskFailed(_failure(desc, task, type(exc).__name__, str(exc))) from exc
        return results
    outcomes = _run_on_ray(tasks, address, desc, device)
    for untimed in (entry for outcome in outcomes for entry in outcome.untimed):
        untimed.time()  # one after another, now that no task of the sweep computes beside them
    return [outcome.value for outcome in outcomes]


def gathered(results: Sequence[tuple[Any, dict]]) -> tuple[list, dict]:
    """The records and sample grids of a sweep from its tasks' results, in task order: each result is a record
    (or a list of them) and a dict of sample grids; a later task's grid replaces an earlier one of the same key, as
    in a loop that assigns them."""
    records, samples = [], {}
    for got, grids in results:
        records += got if isinstance(got, list) else [got]
        samples |= grids
    return records, samples


def _failure(desc: str, task: Task, kind: str, message: str) -> str:
    first = (message.strip().splitlines() or [""])[0]
    return f"{desc}: {task.describe()} failed: {kind}" + (f": {first}" if first else "")


@dataclass
class _Outcome:
    """What a Ray task sends back: the task's value and its records still to be timed (one object, so that the
    records in both stay the same objects), or the error it raised."""

    value: Any = None
    untimed: list[Untimed] = field(default_factory=list)
    error: tuple[str, str, str] | None = None  # type, message, traceback


def _in_worker(task: Task, env: dict[str, str]) -> _Outcome:
    """Run one task in a Ray worker: with its driver's gansurvey environment, no progress bars (a worker's output
    is not shown), and every latency left untimed."""
    import ray

    before = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    untimed: list[Untimed] = []
    token = UNTIMED.set(untimed)
    try:
        kwargs = {k: ray.get(v) if isinstance(v, ray.ObjectRef) else v for k, v in task.kwargs.items()}
        return _Outcome(task.run(**kwargs), untimed)
    except Exception as exc:
        return _Outcome(error=(type(exc).__name__, str(exc), traceback.format_exc()))
    finally:
        UNTIMED.reset(token)
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ray_module() -> Any:
    """The ``ray`` module, imported with its usage report off (nothing leaves the machine) and without the stack dump
    its signal handler prints when a process ends on SIGTERM, as a notebook's kernel does (both read at import)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    import ray

    return ray


def local_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def connect(address: str | None = None) -> str:
    """Start or join Ray once per process and return the cluster's address (what other processes join with):
    ``address`` or ``RAY_ADDRESS`` joins that cluster; otherwise a local Ray starts with one CPU per core of this
    machine (and its GPUs)."""
    ray = ray_module()
    if not ray.is_initialized():
        options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is None:
            ray.init(num_cpus=local_cores(), **options)
        else:
            ray.init(address=address, **options)
    return ray.get_runtime_context().gcs_address


def _run_on_ray(tasks: list[Task], address: str | None, desc: str, device: str) -> list[_Outcome]:
    ray = ray_module()
    connect(address)
    gpus = 1 if device != "cpu" and ray.cluster_resources().get("GPU", 0) >= 1 else 0
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)} | {PROGRESS_ENV: "0"}
    remote = ray.remote(_in_worker).options(num_cpus=1, num_gpus=gpus, max_retries=0)
    shared: dict[int, Any] = {}  # arguments several tasks share (teacher, discriminator...) are stored once

    def stored(task: Task) -> Task:
        kwargs = {}
        for name, value in task.kwargs.items():
            if isinstance(value, torch.nn.Module):
                if id(value) not in shared:
                    shared[id(value)] = ray.put(value)
                value = shared[id(value)]
            kwargs[name] = value
        return Task(task.arm, task.seed, task.run, kwargs)

    refs = [remote.remote(stored(task), env) for task in tasks]
    index = {ref: i for i, ref in enumerate(refs)}
    outcomes: list[_Outcome | None] = [None] * len(tasks)
    pending = list(refs)
    try:
        with progress_bar(total=len(tasks), desc=desc, unit="task", leave=False) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    task = tasks[index[ref]]
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died (killed, out of memory...)
                        raise TaskFailed(_failure(desc, task, type(exc).__name__, str(exc))) from exc
                    if outcome.error is not None:
                        kind, message, trace = outcome.error
                        failed = TaskFailed(_failure(desc, task, kind, message))
                        failed.add_note(f"the task's traceback:\n{trace}")
                        raise failed
                    outcomes[index[ref]] = outcome
                    bar.update(1)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return outcomes
