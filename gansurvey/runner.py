"""Regenerate the collection: execute the notebooks in order with papermill, write the executed copies and a
manifest under ``results/<profile>/``, and skip notebooks whose inputs and records have not changed.

The manifest keeps, per notebook, the SHA-256 of the records file the regeneration wrote, so records written by
anything else are noticed (:func:`foreign_records`, and a re-run instead of a skip)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from gansurvey.checks import GanSurveyError, check_choice, check_number, check_writable
from gansurvey.config import DEVICES, artifacts_dir, check_profile, display_path, project_root, results_dir
from gansurvey.io import atomic_write_text

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "papermill", "nbval")


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


def package_digest() -> str:
    """A digest of the gansurvey sources: a code change re-runs the notebooks that depend on it."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(notebook: Path, parameters: dict[str, Any]) -> str:
    """What decides whether a notebook must be re-run: its file, its parameters and the package."""
    digest = hashlib.sha256(notebook.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    digest.update(package_digest().encode())
    return digest.hexdigest()


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
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": commit,
            "device": cuda or f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "python": platform.python_version(), "versions": versions}


def notebook_parameter_names(notebook: Path) -> list[str]:
    """The names assigned in ``notebook``'s cell tagged ``parameters`` (as papermill reads them)."""
    import papermill as pm

    return list(pm.inspect_notebook(str(notebook)))


def records_digest(path: Path) -> str | None:
    """SHA-256 of a records file, or None when there is none."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def foreign_records(out: Path) -> list[str]:
    """Sentences naming the records under ``out`` (``results/<profile>/``) that the last regeneration did not
    write: a file whose digest differs from the one the manifest holds, or a file the manifest does not know."""
    manifest = _read_manifest(out / "manifest.json")
    if not manifest["notebooks"]:
        return []
    found = []
    for path in sorted(out.glob("*.csv")):
        entry = manifest["notebooks"].get(path.stem)
        if entry is None:
            found.append(f"{display_path(path)} was not written by a regeneration (manifest.json does not know it)")
        elif "records_sha256" in entry and entry["records_sha256"] != records_digest(path):
            found.append(f"{display_path(path)} changed after the last regeneration wrote it")
    return found


def regenerate(profile: str = "quick", only: list[str] | None = None, force: bool = False,
               device: str | None = None, seed: int | None = None, folder: Path | None = None,
               out: Path | None = None, kernel_name: str = "python3",
               report: Callable[[str], None] | None = None, progress: bool = False) -> list[NotebookRun]:
    """Execute the notebooks (all, or ``only`` these) in order with the profile's parameters injected.

    Injects ``profile`` (and ``device``/``seed`` when given, into the notebooks that declare them) and, into the
    notebooks that declare it, ``records_to = "tables"`` so that their records go to ``results/<profile>/<name>.csv``.
    A notebook is skipped when its file, its parameters, the package and its records file are as the manifest
    recorded them; records written by anything else (an ad hoc run asked to replace them) make it run again.
    ``report`` receives one line per notebook (``[i/n] name ...`` with the last run's time as the estimate);
    ``progress`` shows papermill's per-cell progress bar with the elapsed time.
    Stops at the first failing notebook with :class:`NotebookFailed` naming it and the failing cell.
    """
    import papermill as pm

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
    out = out or results_dir(profile)
    check_writable("results folder", out, "set GANSURVEY_RESULTS to a folder you can write")
    check_writable("executed-notebooks folder", out / "notebooks", "move or delete what is in its place")
    check_writable("artifacts folder", artifacts_dir(), "set GANSURVEY_ARTIFACTS to a folder you can write")
    say = report or (lambda line: None)
    manifest_path = out / "manifest.json"
    manifest = _read_manifest(manifest_path)
    run_env = environment()
    manifest.update(run_env)  # the header describes the last regeneration; each entry the run that wrote it
    selected = [name for name in names if not only or name in only]
    runs = []
    for index, name in enumerate(selected, start=1):
        source = folder / f"{name}.ipynb"
        target = out / "notebooks" / f"{name}.ipynb"
        records = out / f"{name}.csv"
        injected = _injected_parameters(source, name, params)
        stamp = fingerprint(source, injected)
        entry = manifest["notebooks"].get(name, {})
        head = f"[{index}/{len(selected)}] {name}"
        records_ok = entry.get("records_sha256", records_digest(records)) == records_digest(records)
        if not force and entry.get("fingerprint") == stamp and entry.get("status") == "ok" and target.exists():
            if records_ok:
                say(f"{head}: unchanged, skipped")
                runs.append(NotebookRun(name, "skipped", 0.0, target))
                continue
            say(f"{head}: {display_path(records)} changed after the last regeneration wrote it; running again")
        estimate = f"about {entry['seconds']:.0f} s last time" if entry.get("seconds") else "no earlier run"
        say(f"{head}: running ({estimate})")
        started = time.perf_counter()
        try:
            _execute(pm, source, target, injected, folder, kernel_name, progress, name)
        except pm.PapermillExecutionError as exc:
            manifest["notebooks"][name] = {"status": "failed", "fingerprint": None, "error": f"{exc.ename}"}
            atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
            evalue = (str(exc.evalue).strip().splitlines() or [""])[0]
            raise NotebookFailed(f"notebook {name!r} failed in cell {exc.exec_count}: {exc.ename}: {evalue}") \
                from exc
        seconds = time.perf_counter() - started
        manifest["notebooks"][name] = {"status": "ok", "fingerprint": stamp, "seconds": round(seconds, 1),
                                       "parameters": injected, "output": str(target.relative_to(out)),
                                       "records_sha256": records_digest(records), "commit": run_env["commit"],
                                       "device": run_env["device"],
                                       "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
        say(f"{head}: done in {seconds:.1f} s")
        runs.append(NotebookRun(name, "ran", seconds, target))
    return runs


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
    try:
        pm.execute_notebook(str(source), str(tmp), parameters=params, cwd=str(cwd), kernel_name=kernel_name,
                            progress_bar=bar, extra_arguments=list(KERNEL_ARGUMENTS),
                            # an interrupt kills the kernel at once instead of asking a busy kernel to stop, which
                            # made it print a ZMQ traceback (#21)
                            shutdown_kernel="immediate")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


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
    try:
        manifest = json.loads(path.read_text())
        if isinstance(manifest.get("notebooks"), dict):
            return manifest
    except (OSError, ValueError):
        pass
    return {"notebooks": {}}
