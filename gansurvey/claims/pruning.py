"""Notebook 01's claim on measured records. LT, :func:`winning_ticket`: GANs hold lottery tickets (Chen et al.
2021): a sparse subnetwork rewound to its initial weights trains to the dense model's quality and beats the same
mask with a random initialisation."""

from __future__ import annotations

import pandas as pd

from gansurvey.claims.common import (
    arm_of,
    check_records,
    configurations,
    decisions_frame,
    fewest_seeds,
    higher_is_better,
    profile_of,
    seed_note,
)
from gansurvey.claims.rule import RULE, all_of, decide
from gansurvey.claims.verdict import Check, Verdict, combine


def winning_ticket(records: pd.DataFrame, ticket: str = "lottery ticket", control: str = "random re-init",
                   dense: str = "dense", profile: str | None = None) -> Check:
    """LT: per benchmark, the ticket is *winning* when the rule (:mod:`gansurvey.claims.rule`) finds it *as good
    as* the dense model trained the same way (tolerance: one run's noise of the dense model) and *better* than
    the random re-initialisation of the same mask; supported when both are, contradicted when either is.

    ``records`` are Measurement rows whose ``technique`` names the three arms; quality is ``primary_value`` per
    seed in the metric's better direction.

    Args:
        records: the lottery notebook's records.
        ticket, control, dense: the ``technique`` names of the three arms.
        profile: the records' profile; ``None`` reads the ``profile`` column.

    Example:
        >>> winning_ticket(records_frame(lottery_records)).verdict  # doctest: +SKIP
    """
    rows = check_records(records)
    verdicts, table, decided = {}, [], []
    for bench, group in rows.groupby("benchmark", sort=False):
        arms = {name: arm_of(name, group[group["technique"] == name]) for name in (ticket, control, dense)}
        if any(a.n == 0 for a in arms.values()):
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        higher = higher_is_better(configurations(group), bench, str(group["primary_metric"].iloc[0]))
        matches = decide(arms[ticket], arms[dense], higher, "as good as")
        beats = decide(arms[ticket], arms[control], higher, "better", noise_reference=arms[dense])
        decided += [({"benchmark": bench}, matches), ({"benchmark": bench}, beats)]
        verdicts[bench] = all_of([matches, beats])
        table.append(dict(benchmark=bench, metric=group["primary_metric"].iloc[0], dense=arms[dense].mean,
                          ticket=arms[ticket].mean, random_reinit=arms[control].mean,
                          as_good_as_dense=matches.text(), beats_control=beats.text(), verdict=verdicts[bench]))
    seeds = fewest_seeds(decided)
    check = Check("LT", "GANs hold winning lottery tickets: rewound sparse subnetworks match the dense model "
                  "and beat random re-initialisation.", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts, seed_note(seeds, profile_of(rows, profile)) if seeds else [],
                  {}, source="measured", basis="surveyed work", seeds=seeds, decisions=decisions_frame(decided),
                  rule=RULE)
    check.summary = _lt_summary(check)
    return check


def _lt_summary(check: Check) -> str:
    parts = []
    for r in check.evidence.itertuples():
        parts.append(f"{r.benchmark} ({r.metric}): ticket {r.ticket:.4g}, dense {r.dense:.4g}, random re-init "
                     f"{r.random_reinit:.4g}; as good as dense -> {r.as_good_as_dense}; better than the control -> "
                     f"{r.beats_control} ({r.verdict}).")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)
