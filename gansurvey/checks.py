"""Argument checks whose errors are sentences: the bad value, and what is allowed."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any


class GanSurveyError(ValueError):
    """A value given to gansurvey is not one it accepts."""


def check_choice(what: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise naming both."""
    allowed = list(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise GanSurveyError(f"unknown {what} {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def check_number(
    what: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    integer: bool = False,
) -> Any:
    """Return ``value`` if it is a real number (an int when ``integer``) within the given bounds.

    ``minimum`` and ``maximum`` are inclusive, ``below`` is an exclusive upper bound.
    """
    kind = "an integer" if integer else "a number"
    wanted = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise GanSurveyError(f"{what} must be {kind}, got {value!r} ({type(value).__name__})")
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    if below is not None:
        bounds.append(f"< {below}")
    if (
        (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
        or (below is not None and value >= below)
    ):
        raise GanSurveyError(f"{what} must be {kind} {' and '.join(bounds)}, got {value!r}")
    return value
