"""The survey's claims checked on the records *we* measured (:mod:`gansurvey.survey.findings` checks them on the
literature's numbers instead); both return a :class:`gansurvey.verdicts.Check`.

- F1, :func:`distillation_vs_pruning`: knowledge distillation beats pruning used alone, at matched MACs, once per
  training budget (equal fine-tuning steps, and equal total steps).
- F4, :func:`premise_memory_dominates`: memory traffic, not arithmetic, dominates a generator's energy.
- LT, :func:`winning_ticket`: GANs hold lottery tickets (Chen et al. 2021): a sparse subnetwork rewound to its
  initial weights trains to the dense model's quality and beats the same mask with a random initialisation.

Every verdict is computed from the rows given; change the numbers and it follows. Every measured verdict says
how many seeds it rests on, and a verdict from ``quick``-profile records says it is indicative only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.reports import stage_of
from gansurvey.verdicts import Check, Verdict, combine

# Compatibility names: the words of :class:`Verdict`.
SUPPORTED, CONTRADICTED, MIXED, UNTESTABLE = (Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.MIXED,
                                              Verdict.NOT_TESTABLE)
#: Older name of :class:`gansurvey.verdicts.Check` for measured claims.
ClaimCheck = Check

F1_COLUMNS = ("benchmark", "technique", "family", "seed", "macs", "primary_metric", "primary_value",
              "higher_is_better")
ENERGY_COLUMNS = ("compute_uj", "weight_dram_uj", "activation_uj")
#: Training budgets of a distillation sweep (``settings["budget"]``): students trained for the pruned models'
#: fine-tuning steps, or for as many steps in total as the pruned models (teacher training + fine-tuning).
BUDGETS = ("equal-finetune", "equal-total")
#: The budget of a record whose settings name none (sweeps before budgets existed gave every arm equal steps).
DEFAULT_BUDGET = "equal-finetune"
INDICATIVE = "quick-profile verdicts are indicative only (one seed, short training; see the full profile)"


def seed_note(seeds: int, profile: str | None = None) -> list[str]:
    """Caveats every measured verdict carries: the seed count and, for the quick profile, "indicative only".

    Args:
        seeds: the fewest seeds any compared arm has.
        profile: the records' profile (``quick``, ``full``) or ``None`` when unknown.

    Example:
        >>> seed_note(1, "quick")[0]
        'rests on 1 seed per arm'
    """
    notes = [f"rests on {seeds} seed{'s' if seeds != 1 else ''} per arm"]
    if profile == "quick":
        notes.append(INDICATIVE)
    return notes


def _profile_of(records: pd.DataFrame, profile: str | None) -> str | None:
    if profile is not None or "profile" not in records.columns:
        return profile
    found = records["profile"].dropna().astype(str).unique()
    return "quick" if "quick" in found else (found[0] if len(found) == 1 else None)


# ----------------------------------------------------------------------------------------- F1


def budget_of(settings: Any) -> str:
    """The training budget recorded in a record's ``settings`` (JSON text or dict); :data:`DEFAULT_BUDGET`
    when it names none.

    Example:
        >>> budget_of('{"budget": "equal-total", "steps": 900}')
        'equal-total'
    """
    if isinstance(settings, str):
        try:
            settings = json.loads(settings) if settings.strip() else {}
        except ValueError:
            settings = {}
    budget = settings.get("budget", DEFAULT_BUDGET) if isinstance(settings, Mapping) else DEFAULT_BUDGET
    return check_choice("training budget", budget, BUDGETS)


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
    frame = _check_records(records)
    profile = _profile_of(frame, profile)
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
        configs = _configurations(pd.concat([kd_rows, pruned_rows]))
        per_bench: dict[str, Verdict] = {}
        for (bench, metric), group in configs.groupby(["benchmark", "primary_metric"], sort=True):
            label = bench if configs[configs["benchmark"] == bench]["primary_metric"].nunique() == 1 \
                else f"{bench} ({metric})"
            higher = _direction(group, bench, metric)
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


# ----------------------------------------------------------------------------------------- F4


def premise_memory_dominates(
    breakdown_totals: Mapping[str, Mapping[str, float]] | Mapping[str, float] | pd.DataFrame,
    threshold: float = 0.5,
) -> Check:
    """F4, the survey's premise on our generators: memory (weight DRAM reads plus activation traffic) takes
    more than ``threshold`` of the estimated energy of a forward pass.

    ``breakdown_totals`` holds ``compute_uj``, ``weight_dram_uj`` and ``activation_uj`` per benchmark (or
    per model): a DataFrame indexed by, or with a ``benchmark`` column of, names; a dict of such dicts (e.g.
    ``{name: energy_estimate(...)}``); or one flat dict. A benchmark supports the premise when its memory
    share exceeds the threshold; the overall verdict is the benchmarks' common one, else mixed.

    Args:
        breakdown_totals: energy per part (µJ) per benchmark, as above.
        threshold: the memory share above which the premise holds.

    Example:
        >>> premise_memory_dominates({"m": dict(compute_uj=1.0, weight_dram_uj=3.0, activation_uj=1.0)}).verdict
        <Verdict.SUPPORTED: 'supported'>
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
    check = Check(
        "F4", "Moving data costs more energy than computing on it, so memory compression pays most.",
        combine(verdicts.values()), "", table, verdicts, notes, {"threshold": threshold},
        source="measured", basis="survey abstract",
    )
    check.summary = _f4_summary(check)
    return check


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


def _f4_summary(check: Check) -> str:
    parts = []
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
    seeds = int(rows["seed"].nunique()) if len(rows) else None
    check = Check("LT", "GANs hold winning lottery tickets: rewound sparse subnetworks match the dense model "
                  "and beat random re-initialisation.", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts, seed_note(seeds, _profile_of(rows, profile)) if seeds else [],
                  {"tolerance": tolerance}, source="measured", basis="surveyed work", seeds=seeds)
    check.summary = _lt_summary(check)
    return check


def _lt_summary(check: Check) -> str:
    parts = []
    for r in check.table.itertuples():
        parts.append(f"{r.benchmark}: ticket {r.ticket:.4g}, dense {r.dense:.4g}, random re-init "
                     f"{r.random_reinit:.4g} ({r.metric}); the ticket is {abs(r.relative_gap_to_dense):.0%} "
                     f"{'worse' if r.relative_gap_to_dense < 0 else 'better'} than dense and "
                     f"{'beats' if r.ticket_beats_control else 'does not beat'} the control ({r.verdict}).")
    parts.append(f"Matching means within {check.parameters['tolerance']:.0%} of the dense model.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)



# ----------------------------------------------------------------------------------------- encoding (05_encoding)


def _settings_of(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(value) if isinstance(value, str) and value.strip() else {}
    except ValueError:
        parsed = {}
    return parsed if isinstance(parsed, dict) else {}


def _encoding_rows(records: pd.DataFrame) -> pd.DataFrame:
    rows = _check_records(records)
    parsed = rows["settings"].map(_settings_of)
    for key in ("bits", "quantizer", "trained"):
        rows[key] = parsed.map(lambda s, k=key: s.get(k))
    rows["stored_bytes"] = pd.to_numeric(rows.get("stored_bytes"), errors="coerce")
    return rows


def _quality(group: pd.DataFrame, bench: str) -> tuple[bool, str]:
    metric = str(group["primary_metric"].iloc[0])
    return _direction(_configurations(group), bench, metric), metric


def _relative_loss(value: float, teacher: float, higher: bool) -> float:
    """How much worse than the teacher, relative (positive = worse)."""
    return ((teacher - value) if higher else (value - teacher)) / max(abs(teacher), 1e-12)


def bits_needed(records: pd.DataFrame, tolerance: float = 0.10, reference_bits: int = 4, teacher: str = "teacher",
                quantizer: str = "k-means", profile: str | None = None) -> Check:
    """EB: how many bits per weight a GAN generator's shared weights need before quality falls.

    Per benchmark, the fewest ``bits`` whose post-training ``quantizer`` sharing (records with ``settings``
    ``bits``, ``quantizer`` and ``trained`` false) keeps the mean quality (over seeds) within ``tolerance``
    (relative) of the teacher's. Deep Compression kept classifiers' accuracy with 4-bit (convolutions) and 2-bit
    (fully connected) shared weights (Han et al. 2016); the claim checked is that a generator needs no more
    than ``reference_bits``: supported when it holds, contradicted when more bits (or none tried) are needed.

    Args:
        records: the records of the bits sweep and the teacher (``technique == teacher``).
        tolerance: relative quality loss allowed (0.10 = 10% worse FID).
        reference_bits: the classifier figure compared with.
        teacher: the teacher's technique label.
        quantizer: ``k-means`` (weight sharing) or ``uniform``.
        profile: the records' profile; ``None`` reads it.

    Example:
        >>> bits_needed(records_frame(sweep_records + [teacher_record])).verdict  # doctest: +SKIP
    """
    check_number("tolerance", tolerance, minimum=0)
    check_number("reference_bits", reference_bits, minimum=1, maximum=8, integer=True)
    rows = _encoding_rows(records)
    verdicts, table = {}, []
    for bench, group in rows.groupby("benchmark", sort=False):
        base = group[group["technique"] == teacher]["primary_value"]
        sweep = group[(group["quantizer"] == quantizer) & (group["trained"].map(_as_bool) != True)  # noqa: E712
                      & group["bits"].notna()]
        if base.empty or sweep.empty:
            verdicts[bench] = UNTESTABLE
            continue
        higher, metric = _quality(group, bench)
        per_bits = sweep.groupby("bits")["primary_value"].agg(["mean", "std", "count"]).sort_index()
        losses = {int(b): _relative_loss(r["mean"], float(base.mean()), higher) for b, r in per_bits.iterrows()}
        # the fewest bits from which every larger width tried also stays within tolerance
        needed = next((b for b in sorted(losses) if all(losses[c] <= tolerance for c in losses if c >= b)), None)
        verdicts[bench] = SUPPORTED if needed is not None and needed <= reference_bits else CONTRADICTED
        for b, r in per_bits.iterrows():
            table.append(dict(benchmark=bench, metric=metric, bits=int(b), teacher=float(base.mean()),
                              mean=float(r["mean"]), spread=float(r["std"]) if r["count"] > 1 else 0.0,
                              seeds=int(r["count"]), relative_loss=losses[int(b)],
                              within_tolerance=losses[int(b)] <= tolerance, bits_needed=needed,
                              verdict=verdicts[bench]))
    seeds = int(min((r["seeds"] for r in table), default=0))
    check = Check("EB", f"A GAN generator keeps its quality with {reference_bits}-bit shared weights or fewer, as "
                  "classifiers do under Deep Compression (Han et al. 2016).", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts, seed_note(seeds, _profile_of(rows, profile)) if seeds else [],
                  {"tolerance": tolerance, "reference_bits": reference_bits, "quantizer": quantizer},
                  source="measured", basis="this project's reading", seeds=seeds or None)
    parts = []
    for bench, part in check.evidence.groupby("benchmark", sort=False) if len(check.evidence) else []:
        needed = part["bits_needed"].iloc[0]
        cells = ", ".join(f"{r.bits} bits {r.mean:.4g}" + (f" ± {r.spread:.2g}" if r.seeds > 1 else "")
                          for r in part.itertuples())
        parts.append(f"{bench} ({part['metric'].iloc[0]}, teacher {part['teacher'].iloc[0]:.4g}): {cells}; "
                     + (f"{int(needed)} bits are enough" if pd.notna(needed) else "no width tried is enough")
                     + f" ({check.verdicts[bench]}).")
    parts.append(f"Enough means within {tolerance:.0%} of the teacher, for that width and every wider one tried.")
    parts += [f"Note: {n}." for n in check.notes]
    check.summary = " ".join(parts)
    return check


def trained_beats_post_sharing(records: pd.DataFrame, profile: str | None = None) -> Check:
    """ES: fine-tuning the shared centroids (trained sharing) beats post-training sharing at the same bits.

    Records carry ``settings`` ``bits`` and ``trained`` (true/false). Per benchmark and bits, the mean quality
    over seeds of each arm; an arm wins when its mean is better by more than the larger of the two spreads
    (sample standard deviations; 0 with one seed). Supported when trained sharing wins everywhere, contradicted
    when post-training sharing wins everywhere or the two tie everywhere, mixed otherwise.

    Example:
        >>> trained_beats_post_sharing(records_frame(records)).verdict  # doctest: +SKIP
    """
    rows = _encoding_rows(records)
    # k-means sharing only: a sweep's uniform-grid rows (settings quantizer "uniform") are another quantizer
    rows = rows[rows["trained"].notna() & rows["bits"].notna() & (rows["quantizer"].fillna("k-means") == "k-means")]
    verdicts, table = {}, []
    for (bench, bits), group in rows.groupby(["benchmark", "bits"], sort=False):
        higher, metric = _quality(group, bench)
        arms = {flag: group[group["trained"].map(_as_bool) == flag]["primary_value"] for flag in (True, False)}
        if arms[True].empty or arms[False].empty:
            continue
        stats = {flag: (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v))
                 for flag, v in arms.items()}
        gain = (stats[True][0] - stats[False][0]) * (1 if higher else -1)
        spread = max(stats[True][1], stats[False][1])
        outcome = "trained" if gain > spread else "post-training" if -gain > spread else "tie"
        key = f"{bench} {int(bits)}-bit"
        verdicts[key] = SUPPORTED if outcome == "trained" else CONTRADICTED
        table.append(dict(benchmark=bench, bits=int(bits), metric=metric, trained=stats[True][0],
                          trained_spread=stats[True][1], post_training=stats[False][0],
                          post_spread=stats[False][1], seeds=min(stats[True][2], stats[False][2]),
                          gain=gain, outcome=outcome, verdict=verdicts[key]))
    seeds = int(min((r["seeds"] for r in table), default=0))
    check = Check("ES", "Trained weight sharing (fine-tuned centroids) beats post-training sharing at the same "
                  "bits (Han et al. 2016, on GAN generators).", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts, seed_note(seeds, _profile_of(rows, profile)) if seeds else [],
                  {"win": "mean better by more than the larger spread"}, source="measured",
                  basis="this project's reading", seeds=seeds or None)
    parts = [f"{r.benchmark} at {r.bits} bits: trained {r.trained:.4g} ± {r.trained_spread:.2g}, post-training "
             f"{r.post_training:.4g} ± {r.post_spread:.2g} ({r.metric}, {r.seeds} seed(s)): {r.outcome}."
             for r in check.evidence.itertuples()] if len(check.evidence) else ["No paired arms to compare."]
    parts += [f"Note: {n}." for n in check.notes]
    check.summary = " ".join(parts)
    return check


def encoding_target(records: pd.DataFrame, ratio: float = 40.0, tolerance: float = 0.10,
                    benchmark: str = "mnist-dcgan", teacher: str = "teacher", profile: str | None = None) -> Check:
    """ET: encoding cuts the generator's stored bytes ``ratio`` times or more at no more than ``tolerance``
    worse quality than the teacher (Deep Compression reached 35-49x on classifiers, Han et al. 2016).

    Among ``benchmark``'s records (means over seeds per technique), the largest stored-bytes reduction whose
    quality stays within tolerance is the frontier; supported when it reaches ``ratio``, contradicted otherwise
    (the summary says where the frontier is and what the largest cut costs).

    Example:
        >>> encoding_target(records_frame(records)).verdict  # doctest: +SKIP
    """
    check_number("ratio", ratio, minimum=1)
    check_number("tolerance", tolerance, minimum=0)
    rows = _encoding_rows(records)
    rows = rows[rows["benchmark"] == benchmark]
    base = rows[rows["technique"] == teacher]
    verdicts, table = {}, []
    if not base.empty and len(rows) > len(base):
        higher, metric = _quality(rows, benchmark)
        teacher_q, teacher_b = float(base["primary_value"].mean()), float(base["stored_bytes"].mean())
        for technique, group in rows[rows["technique"] != teacher].groupby("technique", sort=False):
            q = float(group["primary_value"].mean())
            table.append(dict(benchmark=benchmark, technique=technique, metric=metric, quality=q,
                              stored_bytes=float(group["stored_bytes"].mean()),
                              stored_bytes_x=teacher_b / float(group["stored_bytes"].mean()),
                              relative_loss=_relative_loss(q, teacher_q, higher), seeds=int(group["seed"].nunique()),
                              teacher=teacher_q))
        frame = pd.DataFrame(table)
        frame["within_tolerance"] = frame["relative_loss"] <= tolerance
        best = frame[frame["within_tolerance"]]["stored_bytes_x"].max() if frame["within_tolerance"].any() else 0.0
        verdicts[benchmark] = SUPPORTED if best >= ratio else CONTRADICTED
        table = frame.sort_values("stored_bytes_x").to_dict("records")
    else:
        verdicts[benchmark] = UNTESTABLE
    evidence = pd.DataFrame(table)
    seeds = int(evidence["seeds"].min()) if len(evidence) else 0
    check = Check("ET", f"Encoding (with pruning) cuts {benchmark}'s stored bytes {ratio:g}x or more at no more than "
                  f"{tolerance:.0%} worse quality, as Deep Compression did for classifiers (35-49x).",
                  combine(verdicts.values()), "", evidence, verdicts,
                  seed_note(seeds, _profile_of(rows, profile)) if seeds else [],
                  {"ratio": ratio, "tolerance": tolerance}, source="measured", basis="surveyed work",
                  seeds=seeds or None)
    if len(evidence):
        ok = evidence[evidence["within_tolerance"]]
        top = evidence.loc[evidence["stored_bytes_x"].idxmax()]
        frontier = (f"the largest cut within {tolerance:.0%} is {ok['stored_bytes_x'].max():.1f}x "
                    f"({ok.loc[ok['stored_bytes_x'].idxmax(), 'technique']})" if len(ok) else
                    f"no encoded model stays within {tolerance:.0%}")
        check.summary = (f"{benchmark}: teacher {evidence['teacher'].iloc[0]:.4g} ({evidence['metric'].iloc[0]}); "
                         f"{frontier}; the largest cut measured, {top['stored_bytes_x']:.1f}x ({top['technique']}), "
                         f"is {top['relative_loss']:+.0%} in quality ({verdicts[benchmark]}). "
                         + " ".join(f"Note: {n}." for n in check.notes))
    else:
        check.summary = f"{benchmark}: no teacher and encoded records to compare (not testable)."
    return check


# ----------------------------------------------------------------------------------------- precision (04)


def _precision_rows(records: pd.DataFrame) -> pd.DataFrame:
    rows = _check_records(records)
    parsed = [json.loads(s) if s else {} for s in rows["settings"]]
    for key in ("weight_bits", "training", "granularity", "allocation", "budget_bits"):
        rows[key] = [p.get(key) for p in parsed]
    return rows


def _higher(group: pd.DataFrame, bench: str) -> bool:
    seen = {bool(v) for v in group["higher_is_better"].dropna()}
    if len(seen) != 1:
        raise GanSurveyError(f"records of {bench} disagree on whether higher {group['primary_metric'].iloc[0]} is "
                             f"better (higher_is_better: {sorted(seen)}); allowed: one direction per benchmark")
    return seen.pop()


def _stats(values: pd.Series) -> tuple[float, float, int]:
    return float(values.mean()), float(values.std()) if len(values) > 1 else float("nan"), int(len(values))


def precision_collapse(records: pd.DataFrame, tolerance: float = 0.5, granularity: str = "per-channel",
                       teacher: str = "teacher", profile: str | None = None) -> Check:
    """PQ: post-training quantization of a GAN collapses below some bit width, and quantization-aware training
    recovers it there (QGAN, Wang et al. 2019).

    Per benchmark, the quality (``primary_value``, mean over seeds) of each bit width is compared with the
    teacher's: a width *holds* when it is at most ``tolerance`` (relative) worse. The collapse width is the
    lowest width at and above which post-training quantization holds; every tested width below it collapsed.
    At those widths: supported when quantization-aware training holds, mixed when it is better than post-training
    by more than the spread over seeds (or at all, with one seed) without holding, contradicted otherwise;
    not testable when post-training quantization holds at every tested width.

    Args:
        records: the precision sweep's records with the teacher's (settings ``weight_bits``, ``training``,
            ``granularity``).
        tolerance: how much worse than the teacher (relative) still counts as holding.
        granularity: which granularity's arms to read.
        teacher: the ``technique`` of the teacher's records.
        profile: the records' profile; ``None`` reads the ``profile`` column.

    Example:
        >>> precision_collapse(records_frame(records)).verdict  # doctest: +SKIP
    """
    check_number("tolerance", tolerance, minimum=0)
    rows = _precision_rows(records)
    verdicts, table, seeds = {}, [], []
    for bench, group in rows.groupby("benchmark", sort=False):
        base = group[group["technique"] == teacher]["primary_value"]
        arms = group[(group["family"] == "precision") & (group["granularity"] == granularity)
                     & group["training"].notna() & group["allocation"].isna()]
        if not len(base) or not len(arms):
            verdicts[bench] = UNTESTABLE
            continue
        higher = _higher(group, bench)
        sign, ref = (1.0 if higher else -1.0), float(base.mean())
        stats = {}
        for (bits, training), arm in arms.groupby(["weight_bits", "training"]):
            stats[(int(bits), training)] = _stats(arm["primary_value"])
            seeds.append(len(arm))
        widths = sorted({b for b, _ in stats}, reverse=True)

        def gap(key, stats=stats, sign=sign, ref=ref):
            return sign * (stats[key][0] - ref) / max(abs(ref), 1e-12)

        holds = {b: (b, "post-training") in stats and gap((b, "post-training")) >= -tolerance for b in widths}
        threshold = None
        for b in widths:
            if not holds[b]:
                break
            threshold = b
        collapsed = [b for b in widths if threshold is None or b < threshold]
        parts = []
        for b in widths:
            ptq, qat = stats.get((b, "post-training")), stats.get((b, "quantization-aware"))
            recovers = qat is not None and gap((b, "quantization-aware")) >= -tolerance
            spread = max((s[1] for s in (ptq, qat) if s is not None and s[1] == s[1]), default=0.0)
            better = qat is not None and ptq is not None and sign * (qat[0] - ptq[0]) > spread
            if b in collapsed and qat is not None:
                parts.append(SUPPORTED if recovers else MIXED if better else CONTRADICTED)
            table.append(dict(benchmark=bench, metric=group["primary_metric"].iloc[0], weight_bits=b, teacher=ref,
                              post_training=ptq[0] if ptq else None, post_training_sd=ptq[1] if ptq else None,
                              quantization_aware=qat[0] if qat else None,
                              quantization_aware_sd=qat[1] if qat else None,
                              seeds=min(s[2] for s in (ptq, qat) if s is not None),
                              post_training_holds=holds[b], collapsed=b in collapsed,
                              qat_holds=bool(recovers), qat_better=bool(better)))
        verdicts[bench] = combine(parts) if parts else UNTESTABLE
    n = min(seeds) if seeds else None
    check = Check("PQ", "Post-training quantization of a GAN collapses at low bit widths and quantization-aware "
                  "training recovers it (QGAN).", combine(verdicts.values()), "", pd.DataFrame(table), verdicts,
                  seed_note(n, _profile_of(rows, profile)) if n else [],
                  {"tolerance": tolerance, "granularity": granularity}, source="measured", basis="surveyed work",
                  seeds=n)
    check.summary = _pq_summary(check)
    return check


def _pq_summary(check: Check) -> str:
    parts = []
    for bench, rows in check.table.groupby("benchmark", sort=False):
        holding = rows[rows["post_training_holds"] & ~rows["collapsed"]]["weight_bits"]
        collapsed = rows[rows["collapsed"]]
        metric = rows["metric"].iloc[0]
        if collapsed.empty:
            parts.append(f"{bench}: post-training quantization holds down to {int(holding.min())} bits "
                         f"({metric} within {check.parameters['tolerance']:.0%} of the teacher), so no collapse "
                         f"is seen in the tested widths ({check.verdicts[bench]}).")
            continue
        where = (f"holds down to {int(holding.min())} bits and collapses below" if len(holding)
                 else "collapses at every tested width, down from")
        widths = ", ".join(f"{int(r.weight_bits)} bits: PTQ {r.post_training:.4g} vs QAT {r.quantization_aware:.4g}"
                           if r.quantization_aware is not None and r.quantization_aware == r.quantization_aware
                           else f"{int(r.weight_bits)} bits: PTQ {r.post_training:.4g}" for r in collapsed.itertuples())
        parts.append(f"{bench} ({metric}, teacher {rows['teacher'].iloc[0]:.4g}): post-training quantization "
                     f"{where} {int(holding.min()) if len(holding) else int(collapsed['weight_bits'].max())} bits "
                     f"({widths}); {check.verdicts[bench]}.")
    parts.append(f"A width holds when its quality is within {check.parameters['tolerance']:.0%} of the teacher's.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)


def mixed_vs_uniform(records: pd.DataFrame, tolerance: float = 0.01, profile: str | None = None) -> Check:
    """MP: bits chosen per layer (mixed precision) give better quality than uniform bits at the same stored bytes.

    Per benchmark and byte budget (``settings["budget_bits"]``, the uniform width whose bytes the mixed model
    matches): supported when the mixed model's mean quality is better by more than ``tolerance`` (relative) and
    than the spread over seeds, contradicted when it is worse by as much, mixed in between.

    Args:
        records: the mixed-precision records (settings ``allocation`` = ``uniform``/``mixed``, ``budget_bits``).
        tolerance: the smallest relative difference that counts.
        profile: the records' profile; ``None`` reads the ``profile`` column.

    Example:
        >>> mixed_vs_uniform(records_frame(records)).verdict  # doctest: +SKIP
    """
    check_number("tolerance", tolerance, minimum=0)
    rows = _precision_rows(records)
    rows = rows[rows["allocation"].isin(["uniform", "mixed"])]
    verdicts, table, seeds = {}, [], []
    for (bench, budget), group in rows.groupby(["benchmark", "budget_bits"], sort=False):
        higher = _higher(group, bench)
        sign = 1.0 if higher else -1.0
        arms = {a: _stats(g["primary_value"]) for a, g in group.groupby("allocation")}
        if set(arms) != {"uniform", "mixed"}:
            verdicts[f"{bench} w{budget}"] = UNTESTABLE
            continue
        (um, usd, un), (mm, msd, mn) = arms["uniform"], arms["mixed"]
        seeds.append(min(un, mn))
        diff = sign * (mm - um) / max(abs(um), 1e-12)
        spread = max((s for s in (usd, msd) if s == s), default=0.0) / max(abs(um), 1e-12)
        margin = max(tolerance, spread)
        verdict = SUPPORTED if diff > margin else CONTRADICTED if diff < -margin else MIXED
        verdicts[f"{bench} w{budget}"] = verdict
        stored = group.groupby("allocation")["stored_bytes"].mean()
        table.append(dict(benchmark=bench, budget_bits=int(budget), metric=group["primary_metric"].iloc[0],
                          uniform=um, uniform_sd=usd, mixed=mm, mixed_sd=msd, seeds=min(un, mn),
                          uniform_stored_bytes=int(stored["uniform"]), mixed_stored_bytes=int(stored["mixed"]),
                          relative_gain=diff, verdict=verdict))
    n = min(seeds) if seeds else None
    check = Check("MP", "Mixed precision (bits per layer by sensitivity) beats uniform bits at the same stored "
                  "bytes.", combine(verdicts.values()), "", pd.DataFrame(table), verdicts,
                  seed_note(n, _profile_of(rows, profile)) if n else [], {"tolerance": tolerance},
                  source="measured", basis="this project's reading", seeds=n)
    parts = [f"{r.benchmark} at the bytes of {r.budget_bits}-bit weights: mixed {r.mixed:.4g} vs uniform "
             f"{r.uniform:.4g} ({r.metric}; {abs(r.relative_gain):.1%} {'better' if r.relative_gain > 0 else 'worse'}"
             f"; {r.mixed_stored_bytes} vs {r.uniform_stored_bytes} stored bytes) -> {r.verdict}."
             for r in check.table.itertuples()]
    parts.append(f"A difference counts beyond {tolerance:.0%} and beyond the spread over seeds.")
    check.summary = " ".join(parts + [f"Note: {x}." for x in check.notes])
    return check


# ----------------------------------------------------------------------------------------- LR (low-rank)

LR_CLAIM = ("low-rank factorization cuts a GAN generator's MACs at less quality cost than channel pruning "
            "(matched MACs, equal fine-tuning)")
_LR_TABLE = (
    "benchmark", "match", "primary_metric", "higher_is_better", "target_macs", "lowrank_macs", "pruned_macs",
    "lowrank_mean", "lowrank_sd", "lowrank_seeds", "pruned", "pruned_mean", "pruned_sd", "pruned_seeds", "margin",
    "outcome", "benchmark_verdict",
)


def lowrank_vs_pruning(records: pd.DataFrame, mac_tolerance: float = 0.10, profile: str | None = None) -> Check:
    """LR on measured records: at matched MACs and equal fine-tuning, does a low-rank generator keep more quality
    than a channel-pruned one? (The survey finds low-rank barely tried on GANs; this is this project's question.)

    Reads the records of :func:`gansurvey.experiments_lowrank.lowrank_vs_pruning_runs`: ``settings["arm"]`` is
    ``low-rank`` or ``pruning`` and ``settings["match"]`` names the matched pair. Per benchmark, metric and pair:
    each arm's mean ``primary_value`` over seeds and its spread (sample standard deviation, 0 with one seed); the
    margin is the quality difference in the metric's better direction (positive: low-rank better), decisive when
    it exceeds the sum of the two spreads. A benchmark *supports* the claim when low-rank wins decisively in every
    pair, *contradicts* it when pruning wins decisively in some pair and low-rank in none, is *mixed* otherwise
    and *not testable* without a pair holding both arms. The overall verdict combines the benchmarks. A pair whose
    arms' mean MACs differ by more than ``mac_tolerance`` (relative) is not matched: it is left out, with a note.

    Args:
        records: measured records (``records_frame(...)`` or ``ResultsStore(profile).read("03_low_rank")``).
        mac_tolerance: relative MAC difference still counted as the same cost.
        profile: the records' profile; ``None`` reads the ``profile`` column (quick verdicts are indicative).

    Returns:
        A :class:`~gansurvey.verdicts.Check` with id ``LR``; the evidence has one row per matched pair.

    Example::

        check = lowrank_vs_pruning(records_frame(runs))
        check.verdict, check.verdicts  # overall, and per benchmark
    """
    rows = _check_records(records)
    parsed = rows["settings"].map(_settings_of)
    rows["arm"], rows["match"] = parsed.map(lambda s: s.get("arm")), parsed.map(lambda s: s.get("match"))
    rows = rows[rows["arm"].isin(["low-rank", "pruning"]) & rows["match"].notna()]
    check_number("mac_tolerance", mac_tolerance, minimum=0, below=1)
    profile = _profile_of(records, profile)
    table, verdicts, fewest, unmatched = [], {}, None, []
    for (bench, metric), group in rows.groupby(["benchmark", "primary_metric"], sort=True):
        higher = _direction(_configurations(group), bench, metric)
        outcomes = []
        for match, pair in group.groupby("match", sort=True):
            arms = {arm: pair[pair["arm"] == arm] for arm in ("low-rank", "pruning")}
            if any(a.empty for a in arms.values()):
                continue
            stats = {arm: (float(a["primary_value"].mean()),
                           float(a["primary_value"].std(ddof=1)) if a["seed"].nunique() > 1 else 0.0,
                           int(a["seed"].nunique()), float(a["macs"].mean())) for arm, a in arms.items()}
            (lr_mean, lr_sd, lr_n, lr_macs), (pr_mean, pr_sd, pr_n, pr_macs) = stats["low-rank"], stats["pruning"]
            if abs(pr_macs - lr_macs) > mac_tolerance * lr_macs:
                unmatched.append(f"{bench} {match}: pruned {pr_macs:.4g} MACs vs low-rank {lr_macs:.4g}")
                continue
            margin = (lr_mean - pr_mean) if higher else (pr_mean - lr_mean)
            outcome = ("low-rank better" if margin > lr_sd + pr_sd else "pruning better"
                       if -margin > lr_sd + pr_sd else "within seed spread")
            outcomes.append(outcome)
            fewest = min(lr_n, pr_n) if fewest is None else min(fewest, lr_n, pr_n)
            target = parsed.loc[pair.index].map(lambda s: s.get("target_macs")).dropna()
            table.append({
                "benchmark": bench, "match": match, "primary_metric": metric, "higher_is_better": higher,
                "target_macs": float(target.iloc[0]) if len(target) else lr_macs, "lowrank_macs": lr_macs,
                "pruned_macs": pr_macs, "lowrank_mean": lr_mean, "lowrank_sd": lr_sd, "lowrank_seeds": lr_n,
                "pruned": str(arms["pruning"]["technique"].iloc[0]), "pruned_mean": pr_mean, "pruned_sd": pr_sd,
                "pruned_seeds": pr_n, "margin": margin, "outcome": outcome,
            })
        if not outcomes:
            verdicts[bench] = Verdict.NOT_TESTABLE
        elif all(o == "low-rank better" for o in outcomes):
            verdicts[bench] = SUPPORTED
        elif "pruning better" in outcomes and "low-rank better" not in outcomes:
            verdicts[bench] = CONTRADICTED
        else:
            verdicts[bench] = MIXED
        for row in table:
            if row["benchmark"] == bench:
                row["benchmark_verdict"] = str(verdicts[bench])
    evidence = pd.DataFrame(table, columns=list(_LR_TABLE))
    notes = seed_note(fewest or 0, profile) if fewest is not None else ["no matched pair holds both arms"]
    notes += [f"left out, MACs not within {mac_tolerance:.0%}: {u}" for u in unmatched]
    check = Check(id="LR", claim=LR_CLAIM, verdict=combine(verdicts.values()), summary="", evidence=evidence,
                  verdicts=verdicts, notes=notes, parameters={"profile": profile, "mac_tolerance": mac_tolerance},
                  source="measured", basis="this project's reading", seeds=fewest)
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
            f"{'higher' if r.higher_is_better else 'lower'} is better; margin {r.margin:+.3g}: {r.outcome})"
            for r in rows.itertuples())
        parts.append(f"{bench} ({check.verdicts[bench]}): {pairs}.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)
