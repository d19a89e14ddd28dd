"""The one decision rule every measured claim goes through.

An *arm* is one setting measured over seeds: per seed a point value of the quality metric and, where the
measurement recorded them, bootstrap resamples of that value over the evaluation samples (percentile bootstrap,
Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 6 and 13). :func:`decide` compares an arm with
a reference arm and answers one of two questions:

- ``better``: is the arm better than the reference?
- ``as good as``: is the arm no worse than the reference by more than the tolerance (non-inferiority)?

The rule, in full (:data:`RULE` is the same text, printed beside every verdict):

1. *Effect*: ``d = mean(arm) - mean(reference)`` over seeds, signed so that positive means the arm is better.
2. *Noise of one arm's mean*: ``se² = s²_seeds / n + v_eval / n``, where ``s²_seeds`` is the sample variance of
   the per-seed values and ``v_eval`` the mean over seeds of the variance of each seed's bootstrap resamples
   (0 where none were recorded: the seed spread alone then carries the noise, and the rule text says so). The
   seed spread already contains some evaluation noise, so adding ``v_eval`` errs on the wide side.
3. *Interval*: ``d ± t(level, df) · sqrt(se²_arm + se²_ref)`` with the Welch-Satterthwaite degrees of freedom
   ``df = (se²_arm + se²_ref)² / (se⁴_arm / (n_arm - 1) + se⁴_ref / (n_ref - 1))`` (Welch 1947); an arm with one
   seed contributes no degrees of freedom, and the normal quantile stands in when none are left (such an arm
   never decides anyway).
4. *Tolerance*: ``tol = k · sd_run(noise reference)``, where ``sd_run = sqrt(s²_seeds + v_eval)`` is the noise
   of one run of the noise reference (the teacher fine-tuned for the same steps, where the records hold it,
   else the reference itself) and ``k`` is :data:`NOISE_MULTIPLE` (1). One tolerance for every claim, measured
   rather than chosen.
5. *Word*: ``better`` is supported when the interval lies above 0 and contradicted when it lies below ``+tol``
   (no improvement as large as the noise); ``as good as`` is supported when the interval lies above ``-tol`` and
   contradicted when it lies below ``-tol``. Anything else is *indicative*. Every arm needs at least
   :data:`MIN_SEEDS` seeds for a decisive word; with fewer the word is *indicative* whatever the interval. Two
   identical arms (the caller knows they are the same configuration, e.g. an allocation that gave every layer
   the uniform width) are *not testable*, as is an arm with no measurement. Equal numbers alone do not make two
   arms identical: a bounded metric (modes covered) can tie honestly.

Example:
    >>> a = Arm.of("kd", [10.0, 11.0, 12.0]); b = Arm.of("pruned", [20.0, 21.0, 22.0])
    >>> str(decide(a, b, higher_is_better=False).verdict)
    'supported'
    >>> str(decide(Arm.of("kd", [10.0]), Arm.of("pruned", [20.0]), higher_is_better=False).verdict)
    'indicative'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.claims.verdict import Verdict

#: The fewest seeds per arm for "supported" or "contradicted".
MIN_SEEDS = 3
#: The confidence level of every interval.
LEVEL = 0.95
#: The tolerance in units of one run's noise of the reference (k in the rule).
NOISE_MULTIPLE = 1.0
QUESTIONS = ("better", "as good as")

RULE = (f"effect = arm - reference over seeds (positive: arm better), {LEVEL:.0%} Welch interval on "
        "sqrt(seed variance/n + evaluation bootstrap variance/n) of both arms (Welch-Satterthwaite df); tolerance = "
        f"{NOISE_MULTIPLE:g} x one run's sd of the noise reference; decisive only when the interval clears the "
        f"boundary and every arm has >= {MIN_SEEDS} seeds")
SEED_SPREAD_ONLY = "no evaluation resamples recorded: the seed spread alone carries the noise"


@dataclass(frozen=True)
class Arm:
    """One setting over seeds: a point value per seed and, optionally, per seed its bootstrap resamples over
    the evaluation samples."""

    name: str
    values: tuple[float, ...]
    resamples: tuple[tuple[float, ...], ...] | None = None

    @classmethod
    def of(cls, name: str, values: Iterable[float], resamples: Iterable[Iterable[float]] | None = None) -> Arm:
        """An arm from any iterables (a pandas Series works); missing values (NaN) are dropped.

        Example:
            >>> Arm.of("teacher", [1.0, float("nan"), 3.0]).n
            2
        """
        vals = tuple(float(v) for v in values if v is not None and not math.isnan(float(v)))
        boot = None if resamples is None else tuple(tuple(float(x) for x in r) for r in resamples)
        if boot is not None and len(boot) != len(vals):
            raise GanSurveyError(f"arm {name!r} has {len(vals)} values but {len(boot)} sets of resamples; "
                                 "allowed: one set per seed")
        return cls(str(name), vals, boot)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def seed_var(self) -> float:
        return float(np.var(self.values, ddof=1)) if self.n > 1 else 0.0

    @property
    def eval_var(self) -> float:
        """Mean over seeds of the variance of the seed's bootstrap resamples (0 when none were recorded)."""
        if not self.resamples:
            return 0.0
        return float(np.mean([np.var(r, ddof=1) if len(r) > 1 else 0.0 for r in self.resamples]))

    @property
    def run_sd(self) -> float:
        """The noise of one run: seed spread and evaluation noise together."""
        return math.sqrt(self.seed_var + self.eval_var)

    @property
    def se(self) -> float:
        """The noise of the arm's mean over its seeds."""
        return math.sqrt((self.seed_var + self.eval_var) / self.n) if self.n else math.nan


@dataclass(frozen=True)
class Decision:
    """What :func:`decide` found: the word and the evidence beside it."""

    verdict: Verdict
    question: str
    arm: str
    reference: str
    n: dict[str, int]
    means: dict[str, float]
    effect: float
    interval: tuple[float, float]
    tolerance: float
    reason: str
    rule: str = RULE
    notes: tuple[str, ...] = field(default_factory=tuple)

    def text(self) -> str:
        """``supported: kd vs pruned, effect +10 [8.1, 12] (95%), tolerance 1, n 3/3 (interval above 0)``."""
        if self.verdict == Verdict.NOT_TESTABLE:
            return f"not testable: {self.reason}"
        return (f"{self.verdict}: {self.arm} vs {self.reference}, effect {self.effect:+.3g} "
                f"[{self.interval[0]:+.3g}, {self.interval[1]:+.3g}] ({LEVEL:.0%}), tolerance {self.tolerance:.3g}, "
                f"n {self.n[self.arm]}/{self.n[self.reference]} ({self.reason})")

    def as_row(self) -> dict[str, Any]:
        """The evidence as flat columns, for a check's table."""
        return {"question": self.question, "n_arm": self.n.get(self.arm), "n_reference": self.n.get(self.reference),
                "effect": self.effect, "effect_low": self.interval[0], "effect_high": self.interval[1],
                "tolerance": self.tolerance, "decision": str(self.verdict), "why": self.reason}


def tolerance_of(noise_reference: Arm, multiple: float = NOISE_MULTIPLE) -> float:
    """The one tolerance: ``multiple`` times one run's noise (seed spread and evaluation noise) of the
    reference arm.

    Example:
        >>> tolerance_of(Arm.of("teacher+ft", [10.0, 12.0, 14.0]))
        2.0
    """
    check_number("noise multiple", multiple, minimum=0)
    return multiple * noise_reference.run_sd


def decide(arm: Arm, reference: Arm, higher_is_better: bool, question: str = "better", *,
           noise_reference: Arm | None = None, tolerance: float | None = None, identical: bool = False,
           min_seeds: int = MIN_SEEDS, level: float = LEVEL) -> Decision:
    """The rule of this module applied to ``arm`` against ``reference``.

    Args:
        arm, reference: the two arms.
        higher_is_better: the metric's better direction.
        question: ``better`` or ``as good as``.
        noise_reference: the arm whose noise sets the tolerance (the teacher fine-tuned for the same steps);
            ``None`` takes ``reference``.
        tolerance: a tolerance in the metric's units, overriding the measured one (for tests and what-ifs).
        identical: the caller knows the two arms are the same configuration.
        min_seeds: the fewest seeds per arm for a decisive word.
        level: the interval's confidence level.

    Example:
        >>> decide(Arm.of("a", [1, 2, 3]), Arm.of("a'", [1, 2, 3]), True, identical=True).text()
        'not testable: the two arms are identical (same configuration)'
    """
    check_choice("question", question, QUESTIONS)
    check_number("min_seeds", min_seeds, minimum=1, integer=True)
    check_number("level", level, minimum=0, below=1)
    names = (arm.name, reference.name) if arm.name != reference.name else (arm.name, reference.name + " (ref)")
    n = {names[0]: arm.n, names[1]: reference.n}
    means = {names[0]: arm.mean, names[1]: reference.mean}
    notes = () if (arm.resamples and reference.resamples) else (SEED_SPREAD_ONLY,)
    noise_ref = noise_reference if noise_reference is not None else reference
    tol = tolerance_of(noise_ref) if tolerance is None else float(tolerance)

    def result(verdict: Verdict, reason: str, effect: float = math.nan,
               interval: tuple[float, float] = (math.nan, math.nan)) -> Decision:
        return Decision(verdict, question, names[0], names[1], n, means, effect, interval, tol, reason,
                        notes=notes)

    if arm.n == 0 or reference.n == 0:
        missing = arm.name if arm.n == 0 else reference.name
        return result(Verdict.NOT_TESTABLE, f"no measurement of {missing}")
    if identical:
        return result(Verdict.NOT_TESTABLE, "the two arms are identical (same configuration)")
    sign = 1.0 if higher_is_better else -1.0
    effect = sign * (arm.mean - reference.mean)
    interval = _interval(effect, arm, reference, level)
    low, high = interval
    if question == "better":
        word = (Verdict.SUPPORTED if low > 0 else Verdict.CONTRADICTED if high < tol else None)
        where = ("interval above 0" if word == Verdict.SUPPORTED else
                 f"interval below the tolerance {tol:.3g}" if word == Verdict.CONTRADICTED else
                 f"interval spans 0 to {tol:.3g}")
    else:
        word = (Verdict.SUPPORTED if low > -tol else Verdict.CONTRADICTED if high < -tol else None)
        where = (f"interval above -{tol:.3g}" if word == Verdict.SUPPORTED else
                 f"interval below -{tol:.3g}" if word == Verdict.CONTRADICTED else f"interval spans -{tol:.3g}")
    fewest = min(arm.n, reference.n)
    if fewest < min_seeds:
        leans = f", leans {word}" if word is not None else ""
        return result(Verdict.INDICATIVE, f"{fewest} seed{'s' if fewest != 1 else ''} < {min_seeds}{leans}",
                      effect, interval)
    if word is None:
        return result(Verdict.INDICATIVE, where, effect, interval)
    return result(word, where, effect, interval)


def _interval(effect: float, arm: Arm, reference: Arm, level: float) -> tuple[float, float]:
    from scipy.stats import norm, t

    parts = [(a.se ** 2, a.n - 1) for a in (arm, reference)]
    se = math.sqrt(sum(v for v, _ in parts))
    denominator = sum(v ** 2 / dof for v, dof in parts if dof >= 1)
    usable = all(dof >= 1 for _, dof in parts) and denominator > 0
    df = se ** 4 / denominator if usable else 0.0
    quantile = float(t.ppf(0.5 + level / 2, df)) if df >= 1 else float(norm.ppf(0.5 + level / 2))
    return effect - quantile * se, effect + quantile * se


def all_of(decisions: Sequence[Decision]) -> Verdict:
    """A claim that needs every comparison to hold (e.g. distillation beats pruning *and* the from-scratch
    student): supported when all are, contradicted when one is, not testable when one is, else indicative.

    Example:
        >>> d = decide(Arm.of("a", [1, 2, 3]), Arm.of("b", [7, 8, 9]), True)
        >>> str(all_of([d, d]))
        'contradicted'
    """
    words = [d.verdict for d in decisions]
    if not words or Verdict.NOT_TESTABLE in words:
        return Verdict.NOT_TESTABLE
    if Verdict.CONTRADICTED in words:
        return Verdict.CONTRADICTED
    return Verdict.SUPPORTED if all(w == Verdict.SUPPORTED for w in words) else Verdict.INDICATIVE
