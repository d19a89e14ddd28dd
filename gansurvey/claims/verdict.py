"""One vocabulary for every checked claim: on this project's measurements (:mod:`gansurvey.claims`) and on
the literature's numbers (:mod:`gansurvey.survey.findings`).

A :class:`Check` holds the claim, its :class:`Verdict`, the evidence table the verdict was computed from, the
per-part verdicts (per benchmark, per budget...), and where it comes from: ``source`` says whether the numbers
were *measured* here or read in the *literature*; ``basis`` says where the claim itself comes from (the
survey's abstract, or this project's reading of the literature); ``seeds`` says how many seeds a measured
verdict rests on. This module is a low layer: it imports only pandas and :mod:`gansurvey.checks`.

Example:
    >>> combine([Verdict.SUPPORTED, Verdict.NOT_TESTABLE, Verdict.SUPPORTED])
    <Verdict.SUPPORTED: 'supported'>
    >>> str(Verdict.MIXED)
    'mixed'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

from gansurvey.checks import GanSurveyError, check_choice


class Verdict(StrEnum):
    """What the numbers say about a claim; prints as its readable word (``str(Verdict.MIXED) == "mixed"``)."""

    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    #: decisive parts disagree (some supported, some contradicted)
    MIXED = "mixed"
    #: the numbers lean one way but the rule (:mod:`gansurvey.claims.rule`) cannot decide: too few seeds or
    #: overlapping intervals
    INDICATIVE = "indicative"
    NOT_TESTABLE = "not testable"

    @classmethod
    def of(cls, value: Verdict | str) -> Verdict:
        """A verdict from itself or its word.

        Args:
            value: a :class:`Verdict` or one of ``supported``, ``contradicted``, ``mixed``, ``indicative``,
                ``not testable``.

        Example:
            >>> Verdict.of("not testable") is Verdict.NOT_TESTABLE
            True
        """
        if isinstance(value, cls):
            return value
        check_choice("verdict", value, [v.value for v in cls])
        return cls(value)


#: Every verdict word, in a fixed order (for tables and tests).
VERDICTS = tuple(Verdict)
SOURCES = ("measured", "literature")
#: Where a claim comes from: the survey's abstract (verbatim or nearly, the only text of it that could be read),
#: this project's reading (of the survey, the literature or a surveyed work's result), or a surveyed work.
BASES = ("survey abstract", "this project's reading", "surveyed work")


def combine(verdicts: Iterable[Verdict | str]) -> Verdict:
    """The overall verdict of several parts: their common verdict among the testable ones; mixed when decisive
    parts disagree; indicative when some part could not be decided and the decided ones agree.

    Args:
        verdicts: per-part verdicts (:class:`Verdict` or their words); not-testable parts are ignored.

    Example:
        >>> combine(["supported", "contradicted"])
        <Verdict.MIXED: 'mixed'>
        >>> combine(["supported", "indicative"])
        <Verdict.INDICATIVE: 'indicative'>
        >>> combine([])
        <Verdict.NOT_TESTABLE: 'not testable'>
    """
    testable = {Verdict.of(v) for v in verdicts} - {Verdict.NOT_TESTABLE}
    if not testable:
        return Verdict.NOT_TESTABLE
    if len(testable) == 1:
        return testable.pop()
    if {Verdict.SUPPORTED, Verdict.CONTRADICTED} <= testable or Verdict.MIXED in testable:
        return Verdict.MIXED
    return Verdict.INDICATIVE


@dataclass
class Check:
    """A claim checked against numbers: the verdict, why, and the table behind it.

    Attributes:
        id: short name (``F1``, ``F4``, ``LT``...).
        claim: the claim in words.
        verdict: the overall :class:`Verdict` (words are converted).
        summary: one paragraph with the numbers the verdict rests on.
        evidence: the table the verdict was computed from.
        verdicts: per-part verdicts, e.g. per benchmark or per training budget.
        notes: caveats (rows left out, seed counts, how the noise was measured).
        parameters: the thresholds used, so they can be argued with.
        decisions: the rule's evidence per comparison (:class:`gansurvey.claims.rule.Decision` rows: n per arm,
            effect and its interval, tolerance, why); empty for literature checks.
        rule: the decision rule that produced the verdict, in words.
        source: ``measured`` (this project's records) or ``literature`` (published numbers).
        basis: where the claim comes from: ``survey abstract``, ``this project's reading`` or ``surveyed work``.
        seeds: how many seeds the verdict rests on (measured checks; ``None`` for the literature).
    """

    id: str
    claim: str
    verdict: Verdict
    summary: str
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    source: str = "measured"
    basis: str = "survey abstract"
    seeds: int | None = None
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    rule: str = ""

    def __post_init__(self) -> None:
        self.verdict = Verdict.of(self.verdict)
        self.verdicts = {str(k): Verdict.of(v) for k, v in self.verdicts.items()}
        check_choice("check source", self.source, SOURCES)
        check_choice("claim basis", self.basis, BASES)
        if not isinstance(self.evidence, pd.DataFrame):
            raise GanSurveyError(f"evidence of {self.id} must be a pandas DataFrame, got "
                                 f"{type(self.evidence).__name__}")

    def provenance(self) -> str:
        """``literature; claim from the survey abstract`` or ``measured on 3 seeds; claim from ...``."""
        where = self.source if self.seeds is None else (
            f"{self.source} on {self.seeds} seed{'s' if self.seeds != 1 else ''}")
        return f"{where}; claim from {self.basis}"

    def as_row(self) -> dict[str, Any]:
        """One line for :func:`checks_frame`."""
        return {"id": self.id, "claim": self.claim, "verdict": str(self.verdict), "source": self.source,
                "basis": self.basis, "seeds": self.seeds, "summary": self.summary,
                "parts": "; ".join(f"{k}: {v}" for k, v in self.verdicts.items())}

    def _repr_markdown_(self) -> str:
        shown = self.evidence.to_markdown(index=False) if len(self.evidence) and _has_tabulate() \
            else self.evidence.to_string() if len(self.evidence) else "(no rows)"
        notes = "".join(f"\n- {n}" for n in self.notes)
        rule = f"\n\nRule: {self.rule}" if self.rule else ""
        return (f"**{self.id}: {self.claim}** ({self.provenance()})\n\nVerdict: **{self.verdict}**. "
                f"{self.summary}\n{notes}{rule}\n\n{shown}\n")

    def to_markdown(self) -> str:
        """Heading, verdict, provenance, summary, notes, parameters and the evidence table as Markdown."""
        parts = [f"## {self.id}: {self.claim}", "", f"*{self.provenance()}*", "",
                 f"**Verdict: {self.verdict}.** {self.summary}", ""]
        parts += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        parts += [f"Parameters: `{json.dumps(self.parameters, default=str)}`", ""]
        if self.rule:
            parts += [f"Rule: {self.rule}", ""]
        return "\n".join(parts)


def checks_frame(checks: Iterable[Check]) -> pd.DataFrame:
    """One line per check: id, claim, verdict, source, basis, seeds, summary and per-part verdicts.

    Example:
        >>> checks_frame([Check("X", "a claim", "supported", "because")])["verdict"].tolist()
        ['supported']
    """
    return pd.DataFrame([c.as_row() for c in checks],
                        columns=["id", "claim", "verdict", "source", "basis", "seeds", "summary", "parts"])


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
