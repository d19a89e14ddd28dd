"""Notebook 02's claim on measured records. F1, :func:`distillation_vs_pruning`: knowledge distillation beats
pruning used alone, at matched MACs, and it is distillation that wins: the distilled student must also beat a
student of the same size trained from scratch for the same steps. Decided by the one rule
(:mod:`gansurvey.claims.rule`), once per training budget."""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from gansurvey.checks import check_number
from gansurvey.claims.common import (
    check_records,
    configurations,
    decisions_frame,
    fewest_seeds,
    higher_is_better,
    noise_arm,
    profile_of,
    row_labels,
    seed_note,
)
from gansurvey.claims.rule import RULE, Arm, Decision, all_of, decide
from gansurvey.claims.selection import held_back, select_best
from gansurvey.claims.verdict import Check, Verdict, combine
from gansurvey.records import BUDGETS, DEFAULT_BUDGET, budget_of, stage_of

#: The notebook whose records F1 reads, so that 02 and 07 decide it from the same records.
F1_NOTEBOOK = "02_distillation"
#: The budget at which every arm has had the same steps after the teacher (the one F1's verdict is read at).
DECIDING_BUDGET = DEFAULT_BUDGET
F1_CLAIM = "Knowledge distillation beats pruning used alone (at the same MAC budget)."


def distillation_vs_pruning(
    records: pd.DataFrame,
    mac_tolerance: float = 0.10,
    distilled_family: str = "distillation",
    pruned_family: str = "pruning",
    profile: str | None = None,
    *,
    scratch_family: str = "from-scratch",
    notebook: str | None = F1_NOTEBOOK,
    selection_seeds: Collection[int] | None = None,
) -> Check:
    """F1 on measured records: does a distilled student beat both a pruned (fine-tuned) generator and a student
    trained from scratch, at equal MACs and equal training after the teacher? Decided once per training budget.

    A distilled or from-scratch record's budget is ``settings["budget"]`` (:data:`BUDGETS`; none given means
    ``equal-finetune``). At ``equal-finetune`` every arm trains for the same steps after the teacher (the pruned
    model's fine-tuning, the students' training): that budget decides the overall verdict. At ``equal-total``
    the students train for the teacher's steps and the fine-tuning (at most the profile's ``total_steps_cap``:
    the records' ``steps`` say how many); the pruned models of ``equal-finetune`` are
    its reference; its verdict is reported beside, not combined.

    Per budget, benchmark and primary metric, configurations of the three families are grouped into MAC
    budgets (every configuration within ``mac_tolerance`` above the cheapest member). In a MAC budget holding a
    distilled and a pruned configuration, the best configuration of each family is chosen
    (:func:`gansurvey.claims.selection.select_best`: on ``selection_seeds`` or a validation split where the
    records allow it, else on the reported numbers, which caps the verdict at *indicative*), and the rule asks
    whether the distilled arm is *better* than the pruned one and than the from-scratch one. The MAC budget
    supports F1 when both are supported, contradicts it when either is contradicted; it is not testable without
    a from-scratch student. Combined techniques (other families) are not "pruning used alone" and are left out.

    Args:
        records: measured records (``ResultsStore(profile).load_all()`` or :func:`records_frame`).
        mac_tolerance: relative MAC difference still counted as the same cost.
        distilled_family: the family set against pruning (``pruning+distillation`` for the combined arm).
        pruned_family: the pruning family.
        profile: the records' profile; ``None`` reads the ``profile`` column.
        scratch_family: the family of students trained without a teacher.
        notebook: only records of this notebook are read (when the records have a ``notebook`` column), so
            every caller decides F1 from the same records; ``None`` reads all.
        selection_seeds: seeds on which best-of choices are made (and not reported).

    Returns:
        A :class:`Check` whose ``verdicts`` hold one verdict per budget of :data:`BUDGETS` and per budget and
        benchmark (``"equal-total: mnist-dcgan"``); ``decisions`` holds the rule's evidence per comparison.

    Example:
        >>> check = distillation_vs_pruning(store.load_all())  # doctest: +SKIP
        >>> check.verdicts["equal-finetune"]  # doctest: +SKIP
    """
    check_number("mac_tolerance", mac_tolerance, minimum=0, below=1)
    frame = check_records(records)
    notes: list[str] = []
    if notebook is not None and "notebook" in frame.columns:
        others = frame["notebook"].astype(str) != notebook
        if others.any():
            notes.append(f"{int(others.sum())} record(s) of other notebooks were left out (F1 reads {notebook}'s)")
        frame = frame[~others]
    profile = profile_of(frame, profile)
    rows = frame[frame["family"].isin([distilled_family, pruned_family, scratch_family])]
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
    rows = rows.assign(budget=[budget_of(s) for s in rows["settings"]], config=row_labels(rows))
    pruned_rows = rows[rows["family"] == pruned_family]
    kd_budgets = [b for b in BUDGETS if (rows.loc[rows["family"] == distilled_family, "budget"] == b).any()]
    table_rows: list[dict] = []
    decided: list[tuple[dict, Decision]] = []
    verdicts: dict[str, Verdict] = {}
    for budget in kd_budgets or [DEFAULT_BUDGET]:
        students = rows[rows["family"].isin([distilled_family, scratch_family]) & (rows["budget"] == budget)]
        pool = pd.concat([students, pruned_rows])
        configs = configurations(pool)
        per_bench: dict[str, Verdict] = {}
        for (bench, metric), group in configs.groupby(["benchmark", "primary_metric"], sort=True):
            label = bench if configs[configs["benchmark"] == bench]["primary_metric"].nunique() == 1 \
                else f"{bench} ({metric})"
            higher = higher_is_better(group, bench, metric)
            bench_rows = pool[(pool["benchmark"] == bench) & (pool["primary_metric"] == metric)]
            matched = []
            for cluster in _budgets(group, mac_tolerance):
                if not {distilled_family, pruned_family} <= set(cluster["family"]):
                    continue
                members = bench_rows[bench_rows["config"].isin(cluster["label"])]
                row, pair = _duel(members, higher, distilled_family, pruned_family, scratch_family,
                                  selection_seeds, noise_arm(frame[frame["benchmark"] == bench]))
                keys = {"budget": budget, "benchmark": bench, "budget_macs": float(cluster["macs"].min())}
                decided += [(keys, d) for d in pair]
                matched.append({**keys, "primary_metric": metric, "higher_is_better": higher, **row})
            if not matched:
                have = sorted(set(group["family"]))
                notes.append(f"{budget}, {label}: no MAC budget holds both a distilled and a pruned generator "
                             f"(within {mac_tolerance:.0%}; families measured: {', '.join(have)})")
                per_bench[label] = Verdict.NOT_TESTABLE
                continue
            per_bench[label] = combine(row["verdict"] for row in matched)
            table_rows += [{**row, "benchmark_verdict": per_bench[label]} for row in matched]
        verdicts[budget] = combine(per_bench.values())
        verdicts |= {f"{budget}: {label}": v for label, v in per_bench.items()}
    for budget in BUDGETS:
        if budget not in verdicts:
            verdicts[budget] = Verdict.NOT_TESTABLE
            notes.append(f"no {budget} students in these records, so the {budget} verdict is not testable here")
    table = pd.DataFrame(table_rows, columns=list(_F1_TABLE))
    seeds = fewest_seeds(decided)
    if seeds is not None:
        notes += seed_note(seeds, profile)
    check = Check(
        "F1", F1_CLAIM, verdicts[DECIDING_BUDGET], "", table, verdicts, notes,
        {"mac_tolerance": mac_tolerance, "distilled_family": distilled_family, "pruned_family": pruned_family,
         "scratch_family": scratch_family, "budgets": kd_budgets, "deciding_budget": DECIDING_BUDGET,
         "notebook": notebook, "profile": profile},
        source="measured", basis="survey abstract", seeds=seeds, decisions=decisions_frame(decided), rule=RULE,
    )
    check.summary = _f1_summary(check)
    return check


_F1_TABLE = (
    "budget", "benchmark", "primary_metric", "higher_is_better", "budget_macs",
    "distilled", "distilled_macs", "distilled_mean", "distilled_seeds",
    "pruned", "pruned_macs", "pruned_mean", "pruned_seeds",
    "scratch", "scratch_mean", "scratch_seeds",
    "vs_pruning", "vs_scratch", "selection", "verdict", "benchmark_verdict",
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


def _duel(members: pd.DataFrame, higher: bool, kd_family: str, pr_family: str, sc_family: str,
          selection_seeds: Collection[int] | None, noise: Arm | None) -> tuple[dict, list[Decision]]:
    """The best of each family in one MAC budget and the two comparisons F1 needs."""
    picks = {f: select_best(members[members["family"] == f], "config", higher, selection_seeds)
             for f in (kd_family, pr_family, sc_family)}
    arms = {f: Arm.of(p.choice or f, p.report.groupby("seed")["primary_value"].mean()) for f, p in picks.items()}
    vs_pruning = decide(arms[kd_family], arms[pr_family], higher, "better", noise_reference=noise)
    vs_scratch = decide(arms[kd_family], arms[sc_family], higher, "better", noise_reference=noise) \
        if picks[sc_family].candidates else \
        Decision(Verdict.NOT_TESTABLE, "better", arms[kd_family].name, "from scratch", {}, {}, float("nan"),
                 (float("nan"), float("nan")), float("nan"), "no from-scratch student at this MAC budget")
    chosen = [p for p in picks.values() if p.candidates]
    verdict = held_back(all_of([vs_pruning, vs_scratch]), *chosen)
    selection = "; ".join(f"{f}: {p.basis}" for f, p in picks.items() if p.candidates > 1) or "no best-of taken"

    def macs(f: str) -> float:
        return float(members.loc[members["config"] == picks[f].choice, "macs"].mean())

    return {
        "distilled": picks[kd_family].choice, "distilled_macs": macs(kd_family),
        "distilled_mean": arms[kd_family].mean, "distilled_seeds": arms[kd_family].n,
        "pruned": picks[pr_family].choice, "pruned_macs": macs(pr_family), "pruned_mean": arms[pr_family].mean,
        "pruned_seeds": arms[pr_family].n,
        "scratch": picks[sc_family].choice or None, "scratch_mean": arms[sc_family].mean if arms[sc_family].n
        else None, "scratch_seeds": arms[sc_family].n,
        "vs_pruning": vs_pruning.text(), "vs_scratch": vs_scratch.text(), "selection": selection,
        "verdict": verdict,
    }, [vs_pruning, vs_scratch]


BUDGET_WORDS = {
    "equal-finetune": "equal fine-tuning budget (students trained for the pruned models' fine-tuning steps)",
    "equal-total": "equal total budget (students trained from scratch for the teacher's steps plus fine-tuning, "
                   "at most the profile's cap; each record's settings hold its steps)",
}


def _f1_summary(check: Check) -> str:
    parts = []
    if check.evidence.empty:
        parts.append("No benchmark has a distilled and a pruned generator within "
                     f"{check.parameters['mac_tolerance']:.0%} of each other's MACs.")
    for budget in BUDGETS:
        deciding = " (equal steps after the teacher: this budget decides F1)" if budget == DECIDING_BUDGET else \
            " (shown beside, not deciding: the students had more steps after the teacher)"
        parts.append(f"At the {BUDGET_WORDS[budget]}{deciding}: {check.verdicts[budget]}.")
        rows_b = check.evidence[check.evidence["budget"] == budget]
        for (bench, _metric), rows in rows_b.groupby(["benchmark", "primary_metric"], sort=True):
            duels = "; ".join(
                f"at {r.budget_macs / 1e6:.3g}M MACs ({r.primary_metric}, "
                f"{'higher' if r.higher_is_better else 'lower'} is better) {r.distilled} {r.distilled_mean:.4g} "
                f"vs pruned {r.pruned} {r.pruned_mean:.4g} -> {r.vs_pruning}; vs from scratch -> {r.vs_scratch}; "
                f"best-of: {r.selection}; {r.verdict}"
                for r in rows.itertuples()
            )
            parts.append(f"{bench} ({rows['benchmark_verdict'].iloc[0]}): {duels}.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)
