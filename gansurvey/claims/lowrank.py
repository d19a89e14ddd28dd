"""Notebook 03's claim on measured records: low-rank factorization against channel pruning at matched MACs."""

from __future__ import annotations

import math

import pandas as pd

from gansurvey.checks import check_number
from gansurvey.claims.common import (
    arm_of,
    check_records,
    configurations,
    decisions_frame,
    higher_is_better,
    noise_arm,
    profile_of,
    seed_note,
)
from gansurvey.claims.rule import RULE, decide
from gansurvey.claims.verdict import Check, Verdict, combine
from gansurvey.records import settings_of

LR_CLAIM = ("low-rank factorization cuts a GAN generator's MACs at less quality cost than channel pruning "
            "(matched MACs, equal fine-tuning)")


_LR_TABLE = (
    "benchmark", "match", "primary_metric", "higher_is_better", "target_macs", "lowrank_macs", "pruned_macs",
    "lowrank_mean", "lowrank_sd", "lowrank_seeds", "pruned", "pruned_mean", "pruned_sd", "pruned_seeds", "margin",
    "interval", "tolerance", "outcome", "benchmark_verdict",
)


def lowrank_vs_pruning(records: pd.DataFrame, mac_tolerance: float = 0.10, profile: str | None = None) -> Check:
    """LR on measured records: at matched MACs and equal fine-tuning, does a low-rank generator keep more quality
    than a channel-pruned one? (The survey finds low-rank barely tried on GANs; this is this project's question.)

    Reads the records of :func:`gansurvey.experiments.lowrank.lowrank_vs_pruning_runs`: ``settings["arm"]`` is
    ``low-rank`` or ``pruning`` and ``settings["match"]`` names the matched pair. Per benchmark, metric and pair the
    rule (:mod:`gansurvey.claims.rule`) asks whether the low-rank arm is *better* than the pruned one (the margin
    is their difference in the metric's better direction, positive: low-rank better, with its interval). A
    benchmark's verdict combines its pairs (:func:`~gansurvey.claims.verdict.combine`: mixed when decided pairs
    disagree, indicative when some are undecided); *not testable* without a pair holding both arms. The overall
    verdict combines the benchmarks. A pair whose arms' mean MACs differ by more than ``mac_tolerance``
    (relative) is not matched: it is left out, with a note.

    Args:
        records: measured records (``records_frame(...)`` or ``ResultsStore(profile).read("03_low_rank")``).
        mac_tolerance: relative MAC difference still counted as the same cost.
        profile: the records' profile; ``None`` reads the ``profile`` column (quick verdicts are indicative).

    Returns:
        A :class:`~gansurvey.claims.verdict.Check` with id ``LR``; the evidence has one row per matched pair.

    Example::

        check = lowrank_vs_pruning(records_frame(runs))
        check.verdict, check.verdicts  # overall, and per benchmark
    """
    rows = check_records(records)
    everything = rows
    parsed = rows["settings"].map(settings_of)
    rows["arm"], rows["match"] = parsed.map(lambda s: s.get("arm")), parsed.map(lambda s: s.get("match"))
    rows = rows[rows["arm"].isin(["low-rank", "pruning"]) & rows["match"].notna()]
    check_number("mac_tolerance", mac_tolerance, minimum=0, below=1)
    profile = profile_of(records, profile)
    table, verdicts, fewest, unmatched, decided = [], {}, None, [], []
    for (bench, metric), group in rows.groupby(["benchmark", "primary_metric"], sort=True):
        higher = higher_is_better(configurations(group), bench, metric)
        outcomes = []
        for match, pair in group.groupby("match", sort=True):
            arms = {arm: pair[pair["arm"] == arm] for arm in ("low-rank", "pruning")}
            if any(a.empty for a in arms.values()):
                continue
            lr_arm, pr_arm = arm_of("low-rank", arms["low-rank"]), arm_of("pruning", arms["pruning"])
            lr_macs, pr_macs = float(arms["low-rank"]["macs"].mean()), float(arms["pruning"]["macs"].mean())
            if abs(pr_macs - lr_macs) > mac_tolerance * lr_macs:
                unmatched.append(f"{bench} {match}: pruned {pr_macs:.4g} MACs vs low-rank {lr_macs:.4g}")
                continue
            decision = decide(lr_arm, pr_arm, higher, "better",
                              noise_reference=noise_arm(everything[everything["benchmark"] == bench]))
            decided.append(({"benchmark": bench, "match": match}, decision))
            outcomes.append(decision.verdict)
            fewest = min(lr_arm.n, pr_arm.n) if fewest is None else min(fewest, lr_arm.n, pr_arm.n)
            target = parsed.loc[pair.index].map(lambda s: s.get("target_macs")).dropna()
            table.append({
                "benchmark": bench, "match": match, "primary_metric": metric, "higher_is_better": higher,
                "target_macs": float(target.iloc[0]) if len(target) else lr_macs, "lowrank_macs": lr_macs,
                "pruned_macs": pr_macs, "lowrank_mean": lr_arm.mean, "lowrank_sd": math.sqrt(lr_arm.seed_var),
                "lowrank_seeds": lr_arm.n, "pruned": str(arms["pruning"]["technique"].iloc[0]),
                "pruned_mean": pr_arm.mean, "pruned_sd": math.sqrt(pr_arm.seed_var), "pruned_seeds": pr_arm.n,
                "margin": decision.effect, "interval": decision.interval, "tolerance": decision.tolerance,
                "outcome": decision.text(),
            })
        verdicts[bench] = combine(outcomes) if outcomes else Verdict.NOT_TESTABLE
        for row in table:
            if row["benchmark"] == bench:
                row["benchmark_verdict"] = str(verdicts[bench])
    evidence = pd.DataFrame(table, columns=list(_LR_TABLE))
    notes = seed_note(fewest or 0, profile) if fewest is not None else ["no matched pair holds both arms"]
    notes += [f"left out, MACs not within {mac_tolerance:.0%}: {u}" for u in unmatched]
    check = Check(id="LR", claim=LR_CLAIM, verdict=combine(verdicts.values()), summary="", evidence=evidence,
                  verdicts=verdicts, notes=notes, parameters={"profile": profile, "mac_tolerance": mac_tolerance},
                  source="measured", basis="this project's reading", seeds=fewest, decisions=decisions_frame(decided),
                  rule=RULE)
    check.summary = _lr_summary(check)
    return check


def _lr_summary(check: Check) -> str:
    if check.evidence.empty:
        return ("Not testable: no benchmark has a low-rank and a channel-pruned generator matched in MACs "
                "(run experiments_lowrank.lowrank_vs_pruning_runs).")
    parts = [f"Overall: {check.verdict}."]
    for bench, rows in check.evidence.groupby("benchmark", sort=True):
        pairs = "; ".join(
            f"{r.match} {r.lowrank_mean:.4g} ± {r.lowrank_sd:.2g} vs {r.pruned} {r.pruned_mean:.4g} ± "
            f"{r.pruned_sd:.2g} at {r.target_macs / 1e6:.3g}M MACs ({r.primary_metric}, "
            f"{'higher' if r.higher_is_better else 'lower'} is better): {r.outcome}"
            for r in rows.itertuples())
        parts.append(f"{bench} ({check.verdicts[bench]}): {pairs}.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)
