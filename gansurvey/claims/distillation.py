"""Notebook 02's claim on measured records. F1, :func:`distillation_vs_pruning`: knowledge distillation beats
pruning used alone, at matched MACs, once per training budget (equal fine-tuning steps, and equal total steps)."""

from __future__ import annotations

import pandas as pd

from gansurvey.checks import check_number
from gansurvey.claims.common import check_records, configurations, higher_is_better, profile_of, seed_note
from gansurvey.claims.verdict import Check, Verdict, combine
from gansurvey.records import BUDGETS, DEFAULT_BUDGET, budget_of, stage_of


def distillation_vs_pruning(
    records: pd.DataFrame,
    mac_tolerance: float = 0.10,
    distilled_family: str = "distillation",
    pruned_family: str = "pruning",
    profile: str | None = None,
) -> Check:
    """F1 on measured records: does a distilled student beat a pruned (fine-tuned) generator of equal MACs?
    Decided once per training budget.

    A distilled record's budget is ``settings["budget"]`` (:data:`BUDGETS`; none given means
    ``equal-finetune``). Pruned records are the reference of every budget: a pruned model was trained for the
    teacher's steps and then fine-tuned, so it has both the fine-tuning steps of an ``equal-finetune`` student
    and the total steps of an ``equal-total`` one.

    Per budget, benchmark and primary metric: a *configuration* is a (family, technique, settings) triple; its
    quality is the mean of ``primary_value`` over seeds and its spread the standard deviation over seeds (0
    with one seed). Configurations of both families are grouped into MAC budgets, from the cheapest up: a
    budget holds every configuration within ``mac_tolerance`` (relative) above its cheapest member. In a
    budget holding both families the best distilled configuration meets the best pruned one; the margin is
    their quality difference in the metric's better direction (positive: distillation better), decisive when
    it exceeds the sum of the two spreads. A benchmark *supports* the claim when distillation wins decisively at
    every matched budget, *contradicts* it when pruning wins decisively somewhere and distillation nowhere, is
    *mixed* otherwise and *not testable* without a matched budget. Combined techniques (other families) are
    not "pruning used alone" and are left out.

    Args:
        records: measured records (``ResultsStore(profile).load_all()`` or :func:`records_frame`).
        mac_tolerance: relative MAC difference still counted as the same cost.
        distilled_family: the family set against pruning (``pruning+distillation`` for the combined arm).
        pruned_family: the pruning family.
        profile: the records' profile; ``None`` reads the ``profile`` column (quick verdicts are indicative).

    Returns:
        A :class:`Check` whose ``verdicts`` hold one verdict per budget of :data:`BUDGETS` (``"equal-total"``;
        not testable when the records have no such students) and per budget and benchmark
        (``"equal-total: mnist-dcgan"``); its overall verdict combines the budgets (mixed when they disagree), so
        read the per-budget ones.

    Example:
        >>> check = distillation_vs_pruning(store.load_all())  # doctest: +SKIP
        >>> check.verdicts["equal-total"]  # doctest: +SKIP
    """
    check_number("mac_tolerance", mac_tolerance, minimum=0, below=1)
    frame = check_records(records)
    profile = profile_of(frame, profile)
    notes: list[str] = []
    rows = frame[frame["family"].isin([distilled_family, pruned_family])]
    unpriced = rows["macs"].isna() | rows["primary_value"].isna()
    if unpriced.any():
        notes.append(f"{int(unpriced.sum())} record(s) without MACs or a primary value were left out")
    rows = rows[~unpriced]
    untuned = pd.Series([stage_of(t, f, s) == "no fine-tuning" for t, f, s in
                         zip(rows["technique"], rows["family"], rows["settings"], strict=True)], index=rows.index,
                        dtype=bool)
    if untuned.any():
        notes.append(f"{int(untuned.sum())} record(s) measured before fine-tuning were left out")
    rows = rows[~untuned]
    rows = rows.assign(budget=[budget_of(s) for s in rows["settings"]])
    pruned_rows = rows[rows["family"] == pruned_family]
    kd_budgets = [b for b in BUDGETS if (rows.loc[rows["family"] == distilled_family, "budget"] == b).any()]
    table_rows: list[dict] = []
    verdicts: dict[str, Verdict] = {}
    for budget in kd_budgets or [DEFAULT_BUDGET]:
        kd_rows = rows[(rows["family"] == distilled_family) & (rows["budget"] == budget)]
        configs = configurations(pd.concat([kd_rows, pruned_rows]))
        per_bench: dict[str, Verdict] = {}
        for (bench, metric), group in configs.groupby(["benchmark", "primary_metric"], sort=True):
            label = bench if configs[configs["benchmark"] == bench]["primary_metric"].nunique() == 1 \
                else f"{bench} ({metric})"
            higher = higher_is_better(group, bench, metric)
            matched = []
            for cluster in _budgets(group, mac_tolerance):
                kd = cluster[cluster["family"] == distilled_family]
                pr = cluster[cluster["family"] == pruned_family]
                if kd.empty or pr.empty:
                    continue
                matched.append({"budget": budget, **_duel(bench, metric, higher, cluster["macs"].min(),
                                                          _best(kd, higher), _best(pr, higher))})
            if not matched:
                have = sorted(set(group["family"]))
                notes.append(f"{budget}, {label}: no MAC budget holds both families (within "
                             f"{mac_tolerance:.0%}; families measured: {', '.join(have)})")
                per_bench[label] = Verdict.NOT_TESTABLE
                continue
            outcomes = {row["outcome"] for row in matched}
            if outcomes == {"distillation better"}:
                per_bench[label] = Verdict.SUPPORTED
            elif "pruning better" in outcomes and "distillation better" not in outcomes:
                per_bench[label] = Verdict.CONTRADICTED
            else:
                per_bench[label] = Verdict.MIXED
            table_rows += [{**row, "benchmark_verdict": per_bench[label]} for row in matched]
        verdicts[budget] = combine(per_bench.values())
        verdicts |= {f"{budget}: {label}": v for label, v in per_bench.items()}
    for budget in BUDGETS:
        if budget not in verdicts:
            verdicts[budget] = Verdict.NOT_TESTABLE
            notes.append(f"no {budget} students in these records, so the {budget} verdict is not testable here")
    table = pd.DataFrame(table_rows, columns=list(_F1_TABLE))
    seeds = int(table[["distilled_seeds", "pruned_seeds"]].min().min()) if len(table) else None
    if seeds is not None:
        notes += seed_note(seeds, profile)
    check = Check(
        "F1", "Knowledge distillation beats pruning used alone (at the same MAC budget).",
        combine(verdicts[b] for b in kd_budgets or [DEFAULT_BUDGET]), "", table, verdicts, notes,
        {"mac_tolerance": mac_tolerance, "distilled_family": distilled_family, "pruned_family": pruned_family,
         "budgets": kd_budgets, "profile": profile},
        source="measured", basis="survey abstract", seeds=seeds,
    )
    check.summary = _f1_summary(check)
    return check


_F1_TABLE = (
    "budget", "benchmark", "primary_metric", "higher_is_better", "budget_macs",
    "distilled", "distilled_macs", "distilled_mean", "distilled_spread", "distilled_seeds",
    "pruned", "pruned_macs", "pruned_mean", "pruned_spread", "pruned_seeds",
    "margin", "outcome", "benchmark_verdict",
)


def _budgets(group: pd.DataFrame, tolerance: float) -> list[pd.DataFrame]:
    """Configurations clustered by MACs: each budget spans its cheapest member's MACs to ``1 + tolerance``
    times them, so any two members are within ``tolerance`` of each other."""
    ordered = group.sort_values("macs", kind="stable")
    budgets, start = [], 0
    macs = ordered["macs"].to_numpy()
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or macs[i] > macs[start] * (1 + tolerance):
            budgets.append(ordered.iloc[start:i])
            start = i
    return budgets


def _best(configs: pd.DataFrame, higher: bool) -> pd.Series:
    return configs.loc[configs["mean"].idxmax() if higher else configs["mean"].idxmin()]


def _duel(bench: str, metric: str, higher: bool, budget: float, kd: pd.Series, pr: pd.Series) -> dict:
    margin = (kd["mean"] - pr["mean"]) if higher else (pr["mean"] - kd["mean"])
    noise = kd["spread"] + pr["spread"]
    outcome = ("distillation better" if margin > noise else "pruning better" if -margin > noise
               else "within seed spread")
    return {
        "benchmark": bench, "primary_metric": metric, "higher_is_better": higher, "budget_macs": budget,
        "distilled": kd["label"], "distilled_macs": kd["macs"], "distilled_mean": kd["mean"],
        "distilled_spread": kd["spread"], "distilled_seeds": int(kd["seeds"]),
        "pruned": pr["label"], "pruned_macs": pr["macs"], "pruned_mean": pr["mean"],
        "pruned_spread": pr["spread"], "pruned_seeds": int(pr["seeds"]),
        "margin": float(margin), "outcome": outcome,
    }


BUDGET_WORDS = {
    "equal-finetune": "equal fine-tuning budget (students trained for the pruned models' fine-tuning steps)",
    "equal-total": "equal total budget (students trained for as many steps as the teacher plus fine-tuning)",
}


def _f1_summary(check: Check) -> str:
    parts = []
    if check.evidence.empty:
        parts.append("No benchmark has a distilled and a pruned generator within "
                     f"{check.parameters['mac_tolerance']:.0%} of each other's MACs.")
    for budget in BUDGETS:
        parts.append(f"At the {BUDGET_WORDS[budget]}: {check.verdicts[budget]}.")
        rows_b = check.evidence[check.evidence["budget"] == budget]
        for (bench, _metric), rows in rows_b.groupby(["benchmark", "primary_metric"], sort=True):
            duels = "; ".join(
                f"at {r.budget_macs / 1e6:.3g}M MACs {r.distilled} {r.distilled_mean:.4g} "
                f"± {r.distilled_spread:.2g} "
                f"vs {r.pruned} {r.pruned_mean:.4g} ± {r.pruned_spread:.2g} "
                f"({r.primary_metric}, {'higher' if r.higher_is_better else 'lower'} is better; "
                f"seeds {r.distilled_seeds} and {r.pruned_seeds}; margin {r.margin:+.3g}: {r.outcome})"
                for r in rows.itertuples()
            )
            parts.append(f"{bench} ({rows['benchmark_verdict'].iloc[0]}): {duels}.")
    parts += [f"Note: {n}." for n in check.notes]
    parts.append("Spreads are standard deviations over seeds; a margin counts only beyond their sum.")
    return " ".join(parts)
