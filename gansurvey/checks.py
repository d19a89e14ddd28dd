"""Argument checks whose errors are sentences: the bad value, and what is allowed."""

from __future__ import annotations

import difflib
import numbers
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class GanSurveyError(ValueError):
    """A value given to gansurvey is not one it accepts."""


def check_choice(what: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise naming both."""
    allowed = list(allowed)
    if not isinstance(value, str) or value not in allowed:
        close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.6) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise GanSurveyError(f"unknown {what} {value!r}; allowed: {', '.join(map(repr, allowed))}{hint}")
    return value


def check_number(
    what: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    integer: bool = False,
    above: float | None = None,
) -> Any:
    """Return ``value`` if it is a real number (an int when ``integer``) within the given bounds.

    ``minimum`` and ``maximum`` are inclusive, ``above`` and ``below`` are exclusive lower and upper bounds (a
    fraction in (0, 1] is ``above=0, maximum=1``, which the error states as "> 0", not as a tiny minimum).
    """
    kind = "an integer" if integer else "a number"
    wanted = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise GanSurveyError(f"{what} must be {kind}, got {value!r} ({type(value).__name__})")
    bounds = []
    if above is not None:
        bounds.append(f"> {above}")
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    if below is not None:
        bounds.append(f"< {below}")
    if (
        (above is not None and value <= above)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
        or (below is not None and value >= below)
    ):
        raise GanSurveyError(f"{what} must be {kind} {' and '.join(bounds)}, got {value!r}")
    return value


def check_writable(what: str, folder: str | os.PathLike, hint: str = "") -> Path:
    """Return ``folder`` once it exists and a file can be written and deleted in it; otherwise raise naming it
    (and ``hint``, what to do about it).

    Meant to run before any computation, so an unwritable folder (``GANSURVEY_RESULTS`` pointing below a file,
    a read-only mount) is refused at once rather than after minutes of work.
    """
    folder = Path(folder)
    probe = folder / f".gansurvey-write-probe-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise GanSurveyError(f"the {what} {display_path(folder)} cannot be written ({reason})"
                             f"{'; ' + hint if hint else ''}") from exc
    return folder


def project_root() -> Path:
    """The checkout's root (the folder holding ``pyproject.toml``); overridable with ``GANSURVEY_ROOT``."""
    env = os.environ.get("GANSURVEY_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def given_path(path: str | os.PathLike) -> str:
    """A path the user gave (a data folder, a file in it), as a message shows it: as given when relative (it names
    no machine), else through :func:`display_path` (relative to the project, ``~/...`` or ``.../last/parts``)."""
    return Path(path).as_posix() if not Path(path).is_absolute() else display_path(path)


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printed in notebooks and messages: relative to the project when inside it (``results/quick/
    01_pruning.csv``), else relative to the home folder (``~/runs/quick``), so committed outputs and messages never
    carry the path of the machine that ran them. A path outside both is shown as given when relative, else
    under its last three parts (``.../runs/quick/01_pruning.csv``)."""
    path = Path(path)
    resolved = path.resolve()
    try:
        return resolved.relative_to(project_root().resolve()).as_posix()
    except ValueError:
        pass
    try:
        return "~/" + resolved.relative_to(Path.home().resolve()).as_posix()
    except (ValueError, RuntimeError):
        pass
    if not path.is_absolute():
        return path.as_posix()
    return ".../" + "/".join(resolved.parts[1:][-3:])  # never the root itself: /tmp is .../tmp, not ...///tmp
