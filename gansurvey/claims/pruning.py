"""Notebook 01's claim on measured records. LT, :func:`winning_ticket`: GANs hold lottery tickets (Chen et al.
2021): a sparse subnetwork rewound to its initial weights trains to the dense model's quality and beats the same
mask with a random initialisation."""

from __future__ import annotations

import pandas as pd

from gansurvey.checks import check_number
from gansurvey.claims.common import check_records, configurations, higher_is_better, profile_of, seed_note
from gansurvey.claims.verdict import Check, Verdict, combine


def winning_ticket(records: pd.DataFrame, ticket: str = "lottery ticket", control: str = "random re-init",
                   dense: str = "dense", tolerance: float = 0.10, profile: str | None = None) -> Check:
    """LT: per benchmark, the ticket is *winning* when its quality is within ``tolerance`` (relative) of the
    dense model trained the same way, or better, and better than the random re-initialisation control.

    ``records`` are Measurement rows whose ``technique`` names the three arms; quality is ``primary_value``
    (mean over seeds) in the metric's better direction. Contradicted when the ticket is neither close to the
    dense model nor better than the control; mixed when only one of the two holds.

    Args:
        records: the lottery notebook's records.
        ticket, control, dense: the ``technique`` names of the three arms.
        tolerance: how far (relative) below the dense model a ticket may stay and still match it.
        profile: the records' profile; ``None`` reads the ``profile`` column.

    Example:
        >>> winning_ticket(records_frame(lottery_records)).verdict  # doctest: +SKIP
    """
    check_number("tolerance", tolerance, minimum=0)
    rows = check_records(records)
    verdicts, table = {}, []
    for bench, group in rows.groupby("benchmark", sort=False):
        means = group.groupby("technique")["primary_value"].mean()
        if not {ticket, control, dense} <= set(means.index):
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        higher = higher_is_better(configurations(group), bench, str(group["primary_metric"].iloc[0]))
        sign = 1.0 if higher else -1.0
        gap_dense = sign * (means[ticket] - means[dense]) / max(abs(means[dense]), 1e-12)
        beats_control = sign * (means[ticket] - means[control]) > 0
        matches = gap_dense >= -tolerance
        verdicts[bench] = Verdict.SUPPORTED if matches and beats_control else (
            Verdict.CONTRADICTED if not (matches or beats_control) else Verdict.MIXED)
        table.append(dict(benchmark=bench, metric=group["primary_metric"].iloc[0], dense=means[dense],
                          ticket=means[ticket], random_reinit=means[control], relative_gap_to_dense=gap_dense,
                          ticket_beats_control=bool(beats_control), verdict=verdicts[bench]))
    seeds = int(rows["seed"].nunique()) if len(rows) else None
    check = Check("LT", "GANs hold winning lottery tickets: rewound sparse subnetworks match the dense model "
                  "and beat random re-initialisation.", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts, seed_note(seeds, profile_of(rows, profile)) if seeds else [],
                  {"tolerance": tolerance}, source="measured", basis="surveyed work", seeds=seeds)
    check.summary = _lt_summary(check)
    return check


def _lt_summary(check: Check) -> str:
    parts = []
    for r in check.evidence.itertuples():
        parts.append(f"{r.benchmark}: ticket {r.ticket:.4g}, dense {r.dense:.4g}, random re-init "
                     f"{r.random_reinit:.4g} ({r.metric}); the ticket is {abs(r.relative_gap_to_dense):.0%} "
                     f"{'worse' if r.relative_gap_to_dense < 0 else 'better'} than dense and "
                     f"{'beats' if r.ticket_beats_control else 'does not beat'} the control ({r.verdict}).")
    parts.append(f"Matching means within {check.parameters['tolerance']:.0%} of the dense model.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)
