"""Compressed arms against the dense-from-scratch control of their size."""

import json

import pandas as pd

from gansurvey.claims.dense import dense_of_its_size, versus_dense
from gansurvey.claims.verdict import Verdict

DENSE = json.dumps({"control": "dense"})


def _records(arms):
    """``arms``: (technique, family, stored_bytes, quality per seed); lower quality values are better."""
    return pd.DataFrame([{"benchmark": "b", "technique": t, "family": f, "stored_bytes": size, "macs": size,
                          "primary_value": q, "higher_is_better": False, "seed": seed,
                          "settings": DENSE if f == "control" else "{}"}
                         for t, f, size, values in arms for seed, q in enumerate(values)])


def test_each_arm_meets_the_cheapest_control_that_costs_at_least_as_much():
    rows = _records([("dense w0.25", "control", 40, [10, 10.5, 11]), ("dense w0.125", "control", 10, [20, 21, 22])])
    assert dense_of_its_size(rows, "stored_bytes", 12)["technique"].unique().tolist() == ["dense w0.25"]
    assert dense_of_its_size(rows, "stored_bytes", 3)["technique"].unique().tolist() == ["dense w0.125"]
    assert dense_of_its_size(rows, "stored_bytes", 41).empty  # bigger than every control: none of its size


def test_versus_dense_decides_by_the_rule():
    rows = _records([("teacher", "baseline", 100, [5, 5, 5]),
                     ("dense w0.25", "control", 40, [10, 10.5, 11]), ("dense w0.125", "control", 10, [20, 21, 22]),
                     ("q4", "precision", 12, [6, 6.2, 6.1]),  # beats w0.25 (40 bytes) clearly
                     ("p90", "pruning", 8, [30, 31, 32]),  # loses to w0.125 (10 bytes)
                     ("p10", "pruning", 90, [5, 5, 5]),  # costs more than every control
                     ("q4 (no fine-tuning)", "precision", 12, [1, 1, 1])])  # untrained forms are not arms here
    table, decisions = versus_dense(rows, "stored_bytes")
    words = table.set_index("arm")["decision"]
    assert words["q4"] == Verdict.SUPPORTED and words["p90"] == Verdict.CONTRADICTED
    assert words["p10"].startswith("not testable") and "q4 (no fine-tuning)" not in words.index
    assert table.set_index("arm").loc["q4", "dense control"] == "dense w0.25" and len(decisions) == 2
    one_seed = versus_dense(rows[rows["seed"] == 0], "stored_bytes")[0].set_index("arm")["decision"]
    assert one_seed["q4"] == Verdict.INDICATIVE  # fewer than 3 seeds never decides


def test_the_table_shows_both_costs_and_leaves_students_from_scratch_out():
    from gansurvey.claims.dense import versus_dense_table

    rows = _records([("dense w0.25", "control", 40, [10, 10.5, 11]), ("q4", "precision", 12, [6, 6.2, 6.1]),
                     ("scratch w0.5", "from-scratch", 30, [9, 9, 9])])
    table = versus_dense_table(rows)
    assert sorted(set(table.index)) == ["macs", "stored_bytes"] and set(table["arm"]) == {"q4"}
    assert list(table.columns)[:3] == ["benchmark", "arm", "dense control"]
