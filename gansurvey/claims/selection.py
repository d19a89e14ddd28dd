"""Best-of selections made apart from the numbers they are reported on.

Taking the best of several arms and reporting its score on the same samples reports the luckiest draw
(selection bias, the winner's curse). :func:`select_best` chooses on one part of the records and hands back the
other part for reporting:

1. records that carry a :data:`VALIDATION_COLUMN` (the primary metric on a second set of evaluation samples,
   ``Benchmark.validation_score``): choose on it, report ``primary_value``, so every seed stays in the report;
2. else ``selection_seeds``: choose on those seeds, report on the others;
3. else the choice is made on the reported numbers, and :attr:`Selection.honest` is false: a verdict resting on
   it is at most *indicative* (:func:`held_back`).

One candidate is no selection at all.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd

from gansurvey.claims.verdict import Verdict

#: The records' column with the primary metric on the validation samples (``Measurement.validation_value``).
VALIDATION_COLUMN = "validation_value"
VALIDATION_BASIS = "chosen on separate validation samples, reported on the evaluation samples"
ON_REPORTED = "selected on the reported samples: indicative"


@dataclass(frozen=True)
class Selection:
    """The chosen candidate, how it was chosen, and the rows to report it on."""

    choice: str
    basis: str
    honest: bool
    report: pd.DataFrame
    candidates: int


def select_best(rows: pd.DataFrame, label: str, higher_is_better: bool,
                selection_seeds: Collection[int] | None = None) -> Selection:
    """The candidate (a value of column ``label``) with the best mean ``primary_value``, chosen apart from the
    rows it is reported on where the records allow it (see the module).

    Example:
        >>> rows = pd.DataFrame({"arm": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "primary_value": [1, 5, 2, 2]})
        >>> s = select_best(rows, "arm", higher_is_better=True, selection_seeds=[0])
        >>> s.choice, s.report["seed"].tolist(), s.honest
        ('b', [1], True)
        >>> select_best(rows.assign(validation_value=[0, 0, 9, 9]), "arm", True).choice  # not 'a', the reported best
        'b'
    """
    candidates = list(dict.fromkeys(rows[label]))
    if not candidates:
        return Selection("", "no candidates", True, rows.iloc[0:0], 0)
    if len(candidates) == 1:
        return Selection(str(candidates[0]), "only candidate", True, rows, 1)
    validation = (pd.to_numeric(rows[VALIDATION_COLUMN], errors="coerce") if VALIDATION_COLUMN in rows.columns
                  else pd.Series(float("nan"), index=rows.index))
    if validation.notna().all():
        choose, report_all, basis = rows.assign(primary_value=validation), rows, VALIDATION_BASIS
    elif selection_seeds:
        chosen = rows["seed"].isin(list(selection_seeds))
        choose, report_all = rows[chosen], rows[~chosen]
        basis = f"chosen on seeds {sorted(selection_seeds)}, reported on the others"
    else:
        choose, report_all, basis = rows, rows, ON_REPORTED
    means = pd.to_numeric(choose["primary_value"], errors="coerce").groupby(choose[label]).mean().dropna()
    if means.empty:
        choose, report_all, basis = rows, rows, ON_REPORTED
        means = pd.to_numeric(rows["primary_value"], errors="coerce").groupby(rows[label]).mean().dropna()
    choice = means.idxmax() if higher_is_better else means.idxmin()
    return Selection(str(choice), basis, basis != ON_REPORTED, report_all[report_all[label] == choice],
                     len(candidates))


def held_back(verdict: Verdict, *selections: Selection) -> Verdict:
    """``verdict``, or *indicative* where it is decisive but rests on a choice made on the reported numbers."""
    if verdict in (Verdict.SUPPORTED, Verdict.CONTRADICTED) and not all(s.honest for s in selections):
        return Verdict.INDICATIVE
    return verdict
