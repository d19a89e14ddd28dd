"""The survey's claims checked on the records *we* measured (``gansurvey.survey.findings`` checks them on the
literature's numbers instead).

- F1, :func:`distillation_vs_pruning`: knowledge distillation beats pruning used alone, at matched MACs.
- F4, :func:`premise_memory_dominates`: memory traffic, not arithmetic, dominates a generator's energy.
- LT, :func:`winning_ticket`: GANs hold lottery tickets (Chen et al. 2021): a sparse subnetwork rewound to its
  initial weights trains to the dense model's quality and beats the same mask with a random initialisation.

Every verdict is computed from the rows given; change the numbers and it follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gansurvey.checks import GanSurveyError, check_number

SUPPORTED, CONTRADICTED, MIXED, UNTESTABLE = "supported", "contradicted", "mixed/inconclusive", "not testable"
VERDICTS = (SUPPORTED, CONTRADICTED, MIXED, UNTESTABLE)

F1_COLUMNS = ("benchmark", "technique", "family", "seed", "macs", "primary_metric", "primary_value",
              "higher_is_better")
ENERGY_COLUMNS = ("compute_uj", "weight_dram_uj", "activation_uj")


@dataclass
class ClaimCheck:
    """A claim, the verdict our measurements give it (overall and per benchmark), and the table behind it."""

    id: str
    claim: str
    verdict: str
    table: pd.DataFrame = field(repr=False)
    verdicts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph: the verdict and the numbers it rests on."""
        return _SUMMARIES[self.id](self)

    def _repr_markdown_(self) -> str:
        return (f"**{self.id}: {self.claim}** (**{self.verdict}**)\n\n{self.summary()}\n\n"
                f"{self.table.to_markdown(index=False) if len(self.table) else '(no rows)'}\n")


def _combine(verdicts: list[str]) -> str:
    """Overall verdict from per-part ones: unanimous among the testable parts, otherwise mixed."""
    testable = [v for v in verdicts if v != UNTESTABLE]
    if not testable:
        return UNTESTABLE
    return testable[0] if len(set(testable)) == 1 else MIXED


# ----------------------------------------------------------------------------------------- F1


def distillation_vs_pruning(
    records: pd.DataFrame,
    mac_tolerance: float = 0.10,
    distilled_family: str = "distillation",
    pruned_family: str = "pruning",
) -> ClaimCheck:
    """F1 on measured records: does a distilled student beat a pruned (fine-tuned) generator of equal MACs?

    Per benchmark and primary metric: a *configuration* is a (family, technique, settings) triple; its quality
    is the mean of ``primary_value`` over seeds and its spread the standard deviation over seeds (0 with one
    seed). Configurations of both families are grouped into MAC budgets, from the cheapest up: a budget holds
    every configuration within ``mac_tolerance`` (relative) above its cheapest member. In a budget holding
    both families the best distilled configuration meets the best pruned one (the best, so a pruned model
    measured before fine-tuning never stands in for its fine-tuned version); the margin is their quality
    difference in the metric's better direction (positive: distillation better), decisive when it exceeds the
    sum of the two spreads. A benchmark *supports* the claim when distillation wins decisively at every
    matched budget, *contradicts* it when pruning wins decisively somewhere and distillation nowhere, is
    *mixed/inconclusive* otherwise and *not testable* without a matched budget. The overall verdict is the
    benchmarks' common one, else mixed. Combined techniques (other families) are not "pruning used alone" and
    are left out.
    """
    check_number("mac_tolerance", mac_tolerance, minimum=0, below=1)
    frame = _check_records(records)
    notes: list[str] = []
    rows = frame[frame["family"].isin([distilled_family, pruned_family])]
    unpriced = rows["macs"].isna() | rows["primary_value"].isna()
    if unpriced.any():
        notes.append(f"{int(unpriced.sum())} record(s) without MACs or a primary value were left out")
    configs = _configurations(rows[~unpriced])
    table_rows, verdicts = [], {}
    for (bench, metric), group in configs.groupby(["benchmark", "primary_metric"], sort=True):
        label = bench if configs[configs["benchmark"] == bench]["primary_metric"].nunique() == 1 \
            else f"{bench} ({metric})"
        higher = _direction(group, bench, metric)
        matched = []
        for budget in _budgets(group, mac_tolerance):
            kd = budget[budget["family"] == distilled_family]
            pr = budget[budget["family"] == pruned_family]
            if kd.empty or pr.empty:
                continue
            matched.append(_duel(bench, metric, higher, budget["macs"].min(), _best(kd, higher),
                                 _best(pr, higher)))
        if not matched:
            have = sorted(set(group["family"]))
            notes.append(f"{label}: no MAC budget holds both families (within {mac_tolerance:.0%}; "
                         f"families measured: {', '.join(have)})")
            verdicts[label] = UNTESTABLE
            continue
        table_rows += matched
        outcomes = {row["outcome"] for row in matched}
        if outcomes == {"distillation better"}:
            verdicts[label] = SUPPORTED
        elif "pruning better" in outcomes and "distillation better" not in outcomes:
            verdicts[label] = CONTRADICTED
        else:
            verdicts[label] = MIXED
    table = pd.DataFrame(table_rows, columns=list(_F1_TABLE))
    return ClaimCheck(
        "F1", "Knowledge distillation beats pruning used alone (at the same MAC budget).",
        _combine(list(verdicts.values())), table, verdicts, notes,
        {"mac_tolerance": mac_tolerance, "distilled_family": distilled_family,
         "pruned_family": pruned_family},
    )


_F1_TABLE = (
    "benchmark", "primary_metric", "higher_is_better", "budget_macs",
    "distilled", "distilled_macs", "distilled_mean", "distilled_spread", "distilled_seeds",
    "pruned", "pruned_macs", "pruned_mean", "pruned_spread", "pruned_seeds",
    "margin", "outcome",
)


def _check_records(records: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(records, pd.DataFrame):
        raise GanSurveyError(f"records must be a pandas DataFrame, got {type(records).__name__}")
    missing = [c for c in F1_COLUMNS if c not in records.columns]
    if missing:
        raise GanSurveyError(f"records lack column(s) {', '.join(missing)}; needed: {', '.join(F1_COLUMNS)}")
    frame = records.copy()
    if "settings" not in frame.columns:
        frame["settings"] = "{}"
    frame["settings"] = frame["settings"].fillna("{}").astype(str)
    frame["macs"] = pd.to_numeric(frame["macs"], errors="coerce")
    frame["primary_value"] = pd.to_numeric(frame["primary_value"], errors="coerce")
    return frame


def _configurations(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (benchmark, metric, family, technique, settings): MACs, mean, spread and seed count."""
    keys = ["benchmark", "primary_metric", "family", "technique", "settings"]
    if rows.empty:
        return pd.DataFrame(columns=keys + ["higher_is_better", "macs", "mean", "spread", "seeds", "label"])
    grouped = rows.groupby(keys, sort=True, dropna=False)
    out = grouped.agg(
        higher_is_better=("higher_is_better", lambda s: tuple(sorted({_as_bool(v) for v in s}, key=str))),
        macs=("macs", "mean"),
        mean=("primary_value", "mean"),
        spread=("primary_value", lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0),
        seeds=("seed", "nunique"),
    ).reset_index()
    # Techniques measured under several settings are told apart by their settings.
    repeated = out.duplicated(["benchmark", "primary_metric", "family", "technique"], keep=False)
    out["label"] = out["technique"].where(~repeated | out["settings"].isin(["{}", ""]),
                                          out["technique"] + " " + out["settings"])
    return out


def _as_bool(value: Any) -> bool | None:
    # A CSV round trip can leave "True"/"False" strings, and bool("False") is True.
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return bool(value)


def _direction(group: pd.DataFrame, bench: str, metric: str) -> bool:
    seen = {v for t in group["higher_is_better"] for v in t}
    if len(seen) != 1 or None in seen:
        raise GanSurveyError(
            f"records of {bench} disagree on whether higher {metric} is better (higher_is_better: "
            f"{sorted(seen)}); allowed: one direction per benchmark and metric"
        )
    return seen.pop()


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


def _f1_summary(check: ClaimCheck) -> str:
    parts = [f"Verdict: {check.verdict}."]
    if check.table.empty:
        parts.append("No benchmark has a distilled and a pruned generator within "
                     f"{check.parameters['mac_tolerance']:.0%} of each other's MACs.")
    for (bench, metric), rows in check.table.groupby(["benchmark", "primary_metric"], sort=True):
        label = f"{bench} ({metric})" if f"{bench} ({metric})" in check.verdicts else bench
        duels = "; ".join(
            f"at {r.budget_macs / 1e6:.3g}M MACs {r.distilled} {r.distilled_mean:.4g} "
            f"± {r.distilled_spread:.2g} "
            f"vs {r.pruned} {r.pruned_mean:.4g} ± {r.pruned_spread:.2g} "
            f"({r.primary_metric}, {'higher' if r.higher_is_better else 'lower'} is better; "
            f"seeds {r.distilled_seeds} and {r.pruned_seeds}; margin {r.margin:+.3g}: {r.outcome})"
            for r in rows.itertuples()
        )
        parts.append(f"{label} ({check.verdicts[label]}): {duels}.")
    parts += [f"Note: {n}." for n in check.notes]
    parts.append("Spreads are standard deviations over seeds; a margin counts only beyond their sum.")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------- F4


def premise_memory_dominates(
    breakdown_totals: Mapping[str, Mapping[str, float]] | Mapping[str, float] | pd.DataFrame,
    threshold: float = 0.5,
) -> ClaimCheck:
    """F4, the survey's premise on our generators: memory (weight DRAM reads plus activation traffic) takes
    more than ``threshold`` of the estimated energy of a forward pass.

    ``breakdown_totals`` holds ``compute_uj``, ``weight_dram_uj`` and ``activation_uj`` per benchmark (or
    per model): a DataFrame indexed by, or with a ``benchmark`` column of, names; a dict of such dicts (e.g.
    ``{name: energy_estimate(...)}``); or one flat dict. A benchmark supports the premise when its memory
    share exceeds the threshold; the overall verdict is the benchmarks' common one, else mixed.
    """
    check_number("threshold", threshold, minimum=0, below=1)
    frame = _energy_frame(breakdown_totals)
    notes: list[str] = []
    total = frame[list(ENERGY_COLUMNS)].sum(axis=1)
    frame["total_uj"] = total
    frame["memory_uj"] = frame["weight_dram_uj"] + frame["activation_uj"]
    frame["memory_share"] = (frame["memory_uj"] / total.where(total > 0)).astype(float)
    verdicts = {}
    for name, row in frame.iterrows():
        if not np.isfinite(row["memory_share"]):
            verdicts[name] = UNTESTABLE
            notes.append(f"{name}: the estimated energy is zero")
        else:
            verdicts[name] = SUPPORTED if row["memory_share"] > threshold else CONTRADICTED
    frame["verdict"] = [verdicts[n] for n in frame.index]
    table = frame.reset_index(names="benchmark")
    return ClaimCheck(
        "F4", "Moving data costs more energy than computing on it, so memory compression pays most.",
        _combine(list(verdicts.values())), table, verdicts, notes, {"threshold": threshold},
    )


def _energy_frame(totals) -> pd.DataFrame:
    if isinstance(totals, pd.DataFrame):
        frame = totals.set_index("benchmark") if "benchmark" in totals.columns else totals.copy()
    elif isinstance(totals, Mapping):
        if all(c in totals for c in ENERGY_COLUMNS):
            totals = {"(model)": totals}
        bad = [k for k, v in totals.items() if not isinstance(v, Mapping)]
        if bad:
            raise GanSurveyError(
                f"energy totals for {bad[0]!r} must be a dict with {', '.join(ENERGY_COLUMNS)}, "
                f"got {type(totals[bad[0]]).__name__}"
            )
        frame = pd.DataFrame.from_dict({k: dict(v) for k, v in totals.items()}, orient="index")
    else:
        raise GanSurveyError(f"energy totals must be a DataFrame or a dict, got {type(totals).__name__}")
    missing = [c for c in ENERGY_COLUMNS if c not in frame.columns]
    if missing:
        raise GanSurveyError(f"energy totals lack {', '.join(missing)}; needed: {', '.join(ENERGY_COLUMNS)}")
    frame = frame[list(ENERGY_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    for column in ENERGY_COLUMNS:
        bad = frame[~(frame[column] >= 0)]
        if len(bad):
            raise GanSurveyError(
                f"{column} of {bad.index[0]!r} is {bad[column].iloc[0]!r}; allowed: a number >= 0"
            )
    frame.index = frame.index.map(str)
    return frame


def _f4_summary(check: ClaimCheck) -> str:
    parts = [f"Verdict: {check.verdict}."]
    for r in check.table.itertuples():
        parts.append(
            f"{r.benchmark}: memory {r.memory_uj:.3g} µJ (weights {r.weight_dram_uj:.3g}, activations "
            f"{r.activation_uj:.3g}) vs arithmetic {r.compute_uj:.3g} µJ, a memory share of "
            f"{r.memory_share:.0%} ({r.verdict})."
        )
    parts.append(f"The premise needs a share above {check.parameters['threshold']:.0%}.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)


# ----------------------------------------------------------------------------------------- lottery ticket


def winning_ticket(records: pd.DataFrame, ticket: str = "lottery ticket", control: str = "random re-init",
                   dense: str = "dense", tolerance: float = 0.10) -> ClaimCheck:
    """LT: per benchmark, the ticket is *winning* when its quality is within ``tolerance`` (relative) of the
    dense model trained the same way, or better, and better than the random re-initialisation control.

    ``records`` are Measurement rows whose ``technique`` names the three arms; quality is ``primary_value``
    (mean over seeds) in the metric's better direction. Contradicted when the ticket is neither close to the
    dense model nor better than the control; mixed when only one of the two holds.
    """
    check_number("tolerance", tolerance, minimum=0)
    rows = _check_records(records)
    verdicts, table = {}, []
    for bench, group in rows.groupby("benchmark", sort=False):
        means = group.groupby("technique")["primary_value"].mean()
        if not {ticket, control, dense} <= set(means.index):
            verdicts[bench] = UNTESTABLE
            continue
        higher = _direction(_configurations(group), bench, str(group["primary_metric"].iloc[0]))
        sign = 1.0 if higher else -1.0
        gap_dense = sign * (means[ticket] - means[dense]) / max(abs(means[dense]), 1e-12)
        beats_control = sign * (means[ticket] - means[control]) > 0
        matches = gap_dense >= -tolerance
        verdicts[bench] = SUPPORTED if matches and beats_control else (
            CONTRADICTED if not (matches or beats_control) else MIXED)
        table.append(dict(benchmark=bench, metric=group["primary_metric"].iloc[0], dense=means[dense],
                          ticket=means[ticket], random_reinit=means[control], relative_gap_to_dense=gap_dense,
                          ticket_beats_control=bool(beats_control), verdict=verdicts[bench]))
    return ClaimCheck("LT", "GANs hold winning lottery tickets: rewound sparse subnetworks match the dense model "
                      "and beat random re-initialisation.", _combine(list(verdicts.values())),
                      pd.DataFrame(table), verdicts, [], {"tolerance": tolerance})


def _lt_summary(check: ClaimCheck) -> str:
    parts = [f"Verdict: {check.verdict}."]
    for r in check.table.itertuples():
        parts.append(f"{r.benchmark}: ticket {r.ticket:.4g}, dense {r.dense:.4g}, random re-init "
                     f"{r.random_reinit:.4g} ({r.metric}); the ticket is {abs(r.relative_gap_to_dense):.0%} "
                     f"{'worse' if r.relative_gap_to_dense < 0 else 'better'} than dense and "
                     f"{'beats' if r.ticket_beats_control else 'does not beat'} the control ({r.verdict}).")
    parts.append(f"Matching means within {check.parameters['tolerance']:.0%} of the dense model.")
    return " ".join(parts)


_SUMMARIES = {"F1": _f1_summary, "F4": _f4_summary, "LT": _lt_summary}
