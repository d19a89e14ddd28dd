"""The combinations notebook's claims, checked on the records measured here.

- F3, :func:`combinations_beat_single`: combining techniques beats any single family at the same cost (the
  survey's abstract names combinations as the open gap).
- F4 measured, :func:`bytes_pay_where_memory_bound`: cutting bytes (and not MACs) speeds a generator up where
  the run is memory-bound; the survey's premise that data movement dominates, tested by timing rather than by
  the energy table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gansurvey.checks import check_choice, check_number
from gansurvey.claims.common import seed_note
from gansurvey.claims.verdict import Check, Verdict, combine
from gansurvey.compress import FAMILIES


def _higher(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def _profile(records: pd.DataFrame) -> str | None:
    profiles = set(records["profile"].dropna()) if "profile" in records else set()
    return profiles.pop() if len(profiles) == 1 else None


def combinations_beat_single(records: pd.DataFrame, costs: tuple[str, ...] = ("stored_bytes", "macs"),
                             tolerance: float = 0.10, margin: float = 0.05) -> Check:
    """F3: each combination record against the best single-family record that costs no more (within
    ``tolerance``) on each cost axis; better or worse when the quality differs by more than ``margin``
    (relative to the single family's), a tie otherwise. A combination cheaper than every single-family record
    *reaches* a cost no single family reached: that counts for the claim, and the table says so.

    Per (benchmark, cost): supported when combinations win or reach and never lose, contradicted when they
    never win or reach, mixed otherwise. Records are grouped by their ``family`` column: a single family is one
    of the survey's five, a combination is several joined by ``+``.

    Args:
        records: measured records (single-family and pipeline rows, with the teacher).
        costs: the cost columns compared on.
        tolerance: how much more a single-family record may cost and still be "at the same cost".
        margin: the relative quality difference that counts as a win or a loss.

    Example:
        >>> combinations_beat_single(frame).verdict  # doctest: +SKIP
    """
    for cost in costs:
        check_choice("cost", cost, ("stored_bytes", "macs", "latency_ms", "energy_uj"))
    check_number("tolerance", tolerance, minimum=0)
    check_number("margin", margin, minimum=0)
    single = records[records["family"].isin(FAMILIES)]
    combined = records[records["family"].astype(str).str.contains("+", regex=False)]
    table, verdicts = [], {}
    pairs = [(bench, cost) for bench in records["benchmark"].unique() for cost in costs]
    for bench, cost in pairs:
        s, c = single[single["benchmark"] == bench], combined[combined["benchmark"] == bench]
        if s.empty or c.empty:
            verdicts[f"{bench} / {cost}"] = Verdict.NOT_TESTABLE
            continue
        higher = _higher(c["higher_is_better"].iloc[0])
        outcomes = []
        for _, row in c.iterrows():
            rivals = s[s[cost] <= row[cost] * (1 + tolerance)]
            if rivals.empty:
                outcome, rival = "reach", None
            else:
                rival = rivals.loc[rivals["primary_value"].idxmax() if higher else rivals["primary_value"].idxmin()]
                diff = (row["primary_value"] - rival["primary_value"]) * (1 if higher else -1)
                rel = diff / max(abs(rival["primary_value"]), 1e-12)
                outcome = "better" if rel > margin else "worse" if rel < -margin else "tie"
            outcomes.append(outcome)
            table.append({"benchmark": bench, "cost": cost, "combination": row["technique"],
                          "combination cost": row[cost], "combination quality": row["primary_value"],
                          "best single family": None if rival is None else rival["technique"],
                          "its family": None if rival is None else rival["family"],
                          "its cost": None if rival is None else rival[cost],
                          "its quality": None if rival is None else rival["primary_value"], "outcome": outcome})
        wins = any(o in ("better", "reach") for o in outcomes)
        losses = "worse" in outcomes
        verdicts[f"{bench} / {cost}"] = (Verdict.SUPPORTED if wins and not losses else
                                         Verdict.CONTRADICTED if not wins else Verdict.MIXED)
    seeds = int(records["seed"].nunique()) if len(records) else 0
    evidence = pd.DataFrame(table)
    check = Check("F3", "Combining compression techniques beats any single family at the same cost.",
                  combine(verdicts.values()), "", evidence, verdicts,
                  seed_note(seeds, _profile(records)) if seeds else [],
                  {"tolerance": tolerance, "margin": margin, "costs": list(costs)}, source="measured",
                  basis="survey abstract", seeds=seeds or None)
    counts = evidence["outcome"].value_counts().to_dict() if len(evidence) else {}
    check.summary = (f"{len(evidence)} combination-versus-single comparisons: "
                     + (", ".join(f"{n} {k}" for k, n in counts.items()) or "none")
                     + f" (at a cost no more than {tolerance:.0%} above the combination's; quality differences "
                     f"under {margin:.0%} are ties). Per benchmark and cost: "
                     + "; ".join(f"{k}: {v}" for k, v in verdicts.items()) + ".")
    return check


def bytes_pay_where_memory_bound(records: pd.DataFrame, baseline: str = "teacher", mac_tolerance: float = 0.10,
                                 min_bytes_x: float = 2.0, speedup: float = 1.10) -> Check:
    """F4 measured: models that cut stored bytes by ``min_bytes_x`` or more while keeping the teacher's MACs
    (within ``mac_tolerance``) — the pure memory-compression arms, precision and encoding — against the
    teacher's measured latency in the same run.

    Per benchmark: supported when their median speed-up is at least ``speedup``, contradicted when it is at most
    ``1 / speedup`` (slower), mixed in between; the regime column of the roofline says why.

    Args:
        records: measured records with the teacher (``technique == baseline``).
        baseline: the teacher's technique label.
        mac_tolerance: how far MACs may differ from the teacher's for a model to count as bytes-only.
        min_bytes_x: the stored-bytes reduction a model needs to count.
        speedup: the speed-up that counts as faster.
    """
    check_number("speedup", speedup, minimum=1)
    table, verdicts = [], {}
    for bench, group in records.groupby("benchmark", sort=False):
        base = group[group["technique"] == baseline]
        if base.empty:
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        base = base.iloc[0]
        arms = group[(group["technique"] != baseline)
                     & ((group["macs"] - base["macs"]).abs() <= mac_tolerance * base["macs"])
                     & (base["stored_bytes"] / group["stored_bytes"] >= min_bytes_x)]
        if arms.empty:
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        speedups = base["latency_ms"] / arms["latency_ms"]
        median = float(np.median(speedups))
        verdicts[bench] = (Verdict.SUPPORTED if median >= speedup else
                           Verdict.CONTRADICTED if median <= 1 / speedup else Verdict.MIXED)
        for (_, arm), s in zip(arms.iterrows(), speedups, strict=True):
            table.append({"benchmark": bench, "technique": arm["technique"], "family": arm["family"],
                          "stored_bytes_x": base["stored_bytes"] / arm["stored_bytes"],
                          "macs_x": base["macs"] / arm["macs"], "speedup_x": float(s),
                          "device": arm.get("device")})
    seeds = int(records["seed"].nunique()) if len(records) else 0
    evidence = pd.DataFrame(table)
    check = Check("F4 (measured)", "Cutting the bytes a generator stores (not its MACs) makes it faster: memory "
                  "traffic is what costs.", combine(verdicts.values()), "", evidence, verdicts,
                  seed_note(seeds, _profile(records)) if seeds else [],
                  {"mac_tolerance": mac_tolerance, "min_bytes_x": min_bytes_x, "speedup": speedup},
                  source="measured", basis="survey abstract", seeds=seeds or None)
    parts = [f"{b}: median speed-up {np.median(evidence[evidence['benchmark'] == b]['speedup_x']):.2f}x over "
             f"{int((evidence['benchmark'] == b).sum())} bytes-only models ({v})"
             for b, v in verdicts.items() if v != Verdict.NOT_TESTABLE]
    check.summary = ("; ".join(parts) or "no bytes-only model was measured") + (
        f". Bytes-only: stored bytes cut {min_bytes_x:g}x or more with MACs within {mac_tolerance:.0%} of the "
        f"teacher's; faster means {speedup:g}x or more, at batch 1 on the device that measured them.")
    return check
