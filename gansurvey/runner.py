"""Regenerate the collection: execute the notebooks in order with papermill, write the executed copies and a
manifest under ``results/<profile>/``, and skip notebooks whose inputs have not changed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.config import DEVICES, check_profile, project_root, results_dir
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


def regenerate(profile: str = "quick", only: list[str] | None = None, force: bool = False,
               device: str | None = None, seed: int | None = None, folder: Path | None = None,
               out: Path | None = None, kernel_name: str = "python3") -> list[NotebookRun]:
    """Execute the notebooks (all, or ``only`` these) in order with the profile's parameters injected.

    Stops at the first failing notebook with :class:`NotebookFailed` naming it and the failing cell.
    """
    import papermill as pm

    check_profile(profile)
    folder = folder or notebooks_dir()
    names = available_notebooks(folder)
    if not names:
        raise GanSurveyError(f"no notebooks found in {folder}")
    for name in only or []:
        check_choice("notebook", name, names)
    params: dict[str, Any] = {"profile": profile}
    if device is not None:
        params["device"] = check_choice("device", device, DEVICES)
    if seed is not None:
        params["seed"] = check_number("seed", seed, minimum=0, integer=True)
    out = out or results_dir(profile)
    manifest_path = out / "manifest.json"
    manifest = _read_manifest(manifest_path)
    manifest.update(environment())
    runs = []
    for name in names:
        if only and name not in only:
            continue
        source = folder / f"{name}.ipynb"
        target = out / "notebooks" / f"{name}.ipynb"
        stamp = fingerprint(source, params)
        entry = manifest["notebooks"].get(name, {})
        if not force and entry.get("fingerprint") == stamp and entry.get("status") == "ok" and target.exists():
            runs.append(NotebookRun(name, "skipped", 0.0, target))
            continue
        started = time.perf_counter()
        try:
            _execute(pm, source, target, params, folder, kernel_name)
        except pm.PapermillExecutionError as exc:
            manifest["notebooks"][name] = {"status": "failed", "fingerprint": None, "error": f"{exc.ename}"}
            atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
            raise NotebookFailed(f"notebook {name!r} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}") \
                from exc
        seconds = time.perf_counter() - started
        manifest["notebooks"][name] = {"status": "ok", "fingerprint": stamp, "seconds": round(seconds, 1),
                                       "parameters": params, "output": str(target.relative_to(out))}
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
        runs.append(NotebookRun(name, "ran", seconds, target))
    return runs


def _execute(pm, source: Path, target: Path, params: dict, cwd: Path, kernel_name: str) -> None:
    """Run papermill into a temporary file and move it into place, so no half-executed copy is left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp.ipynb")
    try:
        pm.execute_notebook(str(source), str(tmp), parameters=params, cwd=str(cwd), kernel_name=kernel_name,
                            progress_bar=False)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
        if isinstance(manifest.get("notebooks"), dict):
            return manifest
    except (OSError, ValueError):
        pass
    return {"notebooks": {}}
