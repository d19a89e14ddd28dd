"""Does compression beat simply training a smaller model? Each compressed arm against the dense-from-scratch
control of its size (:func:`gansurvey.experiments.controls.dense_controls`), by the one rule.

"Of its size" is conservative toward the control: the narrowest dense control whose mean cost (stored bytes or
MACs) is at least the arm's. A compressed model that beats it beats every dense model it could have been traded
for at that cost (quality grows with width); an arm cheaper than every control meets the narrowest one, which
then costs more than the arm (the table says how much).
"""

from __future__ import annotations

import pandas as pd

from gansurvey.checks import check_choice
from gansurvey.claims.common import arm_of, control_family, noise_arm
from gansurvey.claims.rule import Decision, decide
from gansurvey.records import settings_of

COSTS = ("stored_bytes", "macs")
#: Families that are not compressed models: the teacher, and students trained without it (02's ``scratch``).
NOT_COMPRESSED = ("baseline", "from-scratch")
TABLE_COLUMNS = ["benchmark", "arm", "dense control", "arm mean", "control mean", "decision", "evidence"]


def dense_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The dense-from-scratch control's records among ``rows`` (``settings["control"] == "dense"``)."""
    if rows.empty or "settings" not in rows.columns:
        return rows.iloc[0:0]
    return rows[[settings_of(s).get("control") == "dense" for s in rows["settings"]]]


def dense_of_its_size(rows: pd.DataFrame, cost: str, value: float) -> pd.DataFrame:
    """The records of the cheapest dense control among one benchmark's ``rows`` whose mean ``cost`` is at least
    ``value`` (so an arm cheaper than every control meets the narrowest); empty when the arm costs more than every
    control (none of its size was trained).

    Example:
        >>> rows = pd.DataFrame({"technique": ["d1", "d2"], "settings": ['{"control": "dense"}'] * 2,
        ...                      "stored_bytes": [100, 400]})
        >>> dense_of_its_size(rows, "stored_bytes", 150)["technique"].tolist()
        ['d2']
    """
    check_choice("cost", cost, COSTS)
    dense = dense_rows(rows)
    if dense.empty:
        return dense
    sizes = pd.to_numeric(dense[cost], errors="coerce").groupby(dense["technique"]).mean()
    big_enough = sizes[sizes >= value]
    if big_enough.empty:
        return dense.iloc[0:0]
    return dense[dense["technique"] == big_enough.idxmin()]


def versus_dense(records: pd.DataFrame, cost: str) -> tuple[pd.DataFrame, list[tuple[dict, Decision]]]:
    """Every compressed arm (not a control, not :data:`NOT_COMPRESSED`, not an untrained "(no fine-tuning)"
    form) of every benchmark against the dense control of its size on ``cost``, by the rule's ``better`` (tolerance: the
    teacher control's noise where the records hold it). Returns the table (benchmark, arm, its cost, the
    control, the control's cost, both means, the rule's word and evidence) and the decisions.
    """
    check_choice("cost", cost, COSTS)
    table, decisions = [], []
    for bench, rows in records.groupby("benchmark", sort=False):
        arms = rows[~control_family(rows) & ~rows["family"].astype(str).isin(NOT_COMPRESSED)
                    & ~rows["technique"].astype(str).str.endswith("(no fine-tuning)")]
        if arms.empty or dense_rows(rows).empty:
            continue
        higher = str(rows["higher_is_better"].iloc[0]).strip().lower() in ("true", "1", "1.0")
        noise = noise_arm(rows)
        for technique, group in arms.groupby("technique", sort=False):
            value = float(pd.to_numeric(group[cost], errors="coerce").mean())
            dense = dense_of_its_size(rows, cost, value)
            row = {"benchmark": bench, "arm": technique, cost: value}
            if dense.empty:
                table.append(row | {"dense control": None, "decision": "not testable: costs more than every "
                                    "dense control"})
                continue
            label = str(dense["technique"].iloc[0])
            d = decide(arm_of(str(technique), group), arm_of(label, dense), higher, "better", noise_reference=noise)
            decisions.append(({"benchmark": bench, "cost": cost}, d))
            table.append(row | {"dense control": label, f"control {cost}": float(dense[cost].mean()),
                                "arm mean": d.means[d.arm], "control mean": d.means[d.reference],
                                "decision": str(d.verdict), "evidence": d.text()})
    return pd.DataFrame(table), decisions


def versus_dense_table(records: pd.DataFrame) -> pd.DataFrame:
    """:func:`versus_dense` on stored bytes and on MACs in one table (index: the cost matched on), with the
    columns a reader compares: the arm, the control it met, both means, the rule's word and its evidence."""
    tables = {cost: versus_dense(records, cost)[0].reindex(columns=TABLE_COLUMNS) for cost in COSTS}
    return pd.concat(tables, names=["matched on", None]).droplevel(1)
