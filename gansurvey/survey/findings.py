"""Findings F1-F8 (reference §4.1), each checked by a function over the literature's numbers: F1-F5 are claims of
the survey's abstracts, worded as the abstracts state them (the only text of the survey that could be read;
reference §1.1 paraphrases them); F6-F8 are this project's reading of the literature, not statements of the
survey. The ``basis`` of each check says which. Every check returns a
:class:`gansurvey.claims.verdict.Check` (``source="literature"``, ``basis`` saying which of the two) whose verdict is
computed from the rows it is given, with those rows (or the comparison built from them) as evidence. Change the
data and the verdict follows; no verdict is written here.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from gansurvey.checks import check_number
from gansurvey.claims.verdict import VERDICTS, Check, Verdict, checks_frame
from gansurvey.compress.base import FAMILIES
from gansurvey.survey.literature import AUXILIARY_FAMILIES, LITERATURE_FAMILIES, family_label, family_set
from gansurvey.survey.tables import family_coverage, technique_matrix

# Compatibility names: the words of :class:`Verdict`, and the old name of the check type.
__all__ = ["VERDICTS", "Check", "check_all", "findings_frame"]
#: Findings use numbers read in a source, read off a figure, or derived from those; not inferred or recalled.
DEFAULT_MARKS = ("V", "V-fig", "D")
#: Where each finding comes from: the survey's abstracts, or this project's reading of the literature.
BASIS = {**{f"F{i}": "survey abstract" for i in range(1, 6)},
         **{f"F{i}": "this project's reading" for i in range(6, 9)}}


def _finding(id: str, claim: str, verdict: Verdict, summary: str, evidence: pd.DataFrame,
             parameters: dict[str, Any]) -> Check:
    return Check(id, claim, verdict, summary, evidence, parameters=parameters, source="literature",
                 basis=BASIS[id])


def usable(
    lit: pd.DataFrame, include_post: bool = False, marks: tuple[str, ...] = DEFAULT_MARKS
) -> pd.DataFrame:
    """The rows a finding may use: pre-survey only unless ``include_post``, and only the given marks."""
    rows = lit[lit["mark"].isin(marks)]
    return rows if include_post else rows[rows["period"] == "pre-survey"]


def _score(rows: pd.DataFrame) -> pd.Series:
    """Quality oriented so that larger is better (FID negated)."""
    return (
        rows["value"].astype(float).where(rows["higher_is_better"].astype(bool), -rows["value"].astype(float))
    )


def _is_pruning_only(families: str) -> bool:
    return family_set(families) == {"pruning"}


def _uses_kd(families: str) -> bool:
    return "distillation" in family_set(families)


def _priced(lit: pd.DataFrame) -> pd.DataFrame:
    return lit[(lit["role"] == "compressed") & lit["value"].notna() & lit["macs"].notna()]


def _other_readings(lit: pd.DataFrame, row: pd.Series) -> str:
    """Other values of the same model (benchmark, work, variant, metric) under other protocols, e.g. CAT's own
    table against OMGD's plot of CAT: ``"60 (OMGD plot (read off), V-fig)"``; empty when there are none or
    they agree."""
    same = lit[(lit["benchmark"] == row["benchmark"]) & (lit["work"] == row["work"])
               & (lit["variant"] == row["variant"]) & (lit["metric"] == row["metric"])
               & (lit["protocol"] != row["protocol"]) & lit["value"].notna()]
    same = same[same["value"].astype(float) != float(row["value"])]
    return "; ".join(f"{'~' if 'value' in r['approx'].split(';') else ''}{r['value']:g} ({r['protocol']}, "
                     f"{r['mark']})" for _, r in same.iterrows())


def _outcome(kd: pd.Series, prune: pd.Series, tolerance: float) -> str:
    """Which of two same-protocol rows is better; values read off a plot tie within ``tolerance``."""
    diff = float(_score(kd.to_frame().T).iloc[0] - _score(prune.to_frame().T).iloc[0])
    approx = "value" in kd["approx"].split(";") or "value" in prune["approx"].split(";")
    if approx and abs(diff) <= tolerance * abs(float(prune["value"])):
        return "tie within reading error"
    return "KD better" if diff > 0 else "pruning better"


def check_f1(
    lit: pd.DataFrame,
    macs_factor: float = 2.0,
    approx_tolerance: float = 0.02,
    include_post: bool = False,
    marks: tuple[str, ...] = DEFAULT_MARKS,
) -> Check:
    """F1: distillation-based methods beat pruning used alone.

    Compared within each (benchmark, metric, protocol), never across protocols. The best pruning-only row is
    set against the best distillation-based row whose MACs are at most ``macs_factor`` times its MACs: the KD
    row is "comparable" when it is also within that factor from below, and otherwise cheaper (the fallback
    "better quality at lower MACs"). KD rows costlier than the factor are not compared. Approximate values
    (read off plots) that differ by at most ``approx_tolerance`` (relative) tie.
    """
    check_number("macs_factor", macs_factor, minimum=1.0)
    check_number("approx_tolerance", approx_tolerance, minimum=0.0)
    rows = _priced(usable(lit, include_post, marks))
    pairs = []
    for (bench, metric, protocol), group in rows.groupby(["benchmark", "metric", "protocol"], sort=False):
        prune = group[group["families"].map(_is_pruning_only)]
        kd = group[group["families"].map(_uses_kd)]
        if prune.empty or kd.empty:
            continue
        best_p = prune.loc[_score(prune).idxmax()]
        within = kd[kd["macs"] <= best_p["macs"] * macs_factor]
        comparable = within[within["macs"] >= best_p["macs"] / macs_factor]
        entry = {
            "benchmark": bench,
            "metric": metric,
            "protocol": protocol,
            "pruning-only": best_p["method"],
            "pruning MACs": best_p["macs"],
            "pruning value": best_p["value"],
        }
        if within.empty:
            pairs.append({**entry, "basis": f"no KD row within {macs_factor:g}x of its MACs", "outcome": ""})
            continue
        best_k = within.loc[_score(within).idxmax()]
        best_c = comparable.loc[_score(comparable).idxmax()] if not comparable.empty else None
        entry |= {
            "pruning other readings": _other_readings(lit, best_p),
            "KD-based": best_k["method"],
            "KD families": family_label(best_k["families"]),
            "KD MACs": best_k["macs"],
            "KD value": best_k["value"],
            "KD other readings": _other_readings(lit, best_k),
            "MACs ratio (pruning/KD)": best_p["macs"] / best_k["macs"],
            "basis": f"comparable MACs (within {macs_factor:g}x)"
            if best_c is not None and best_c.name == best_k.name
            else f"fallback: KD at over {macs_factor:g}x lower MACs",
            "outcome": _outcome(best_k, best_p, approx_tolerance),
            "best comparable KD": "" if best_c is None else best_c["method"],
            "comparable outcome": "" if best_c is None else _outcome(best_c, best_p, approx_tolerance),
        }
        pairs.append(entry)
    evidence = pd.DataFrame(pairs)
    decisive = evidence[evidence["outcome"].isin(["KD better", "pruning better"])] if pairs else evidence
    claim = "Knowledge distillation beats pruning used alone."
    params = {
        "macs_factor": macs_factor,
        "approx_tolerance": approx_tolerance,
        "include_post": include_post,
        "marks": list(marks),
    }
    if decisive.empty:
        return _finding(
            "F1",
            claim,
            Verdict.NOT_TESTABLE,
            "No benchmark has pruning-only and KD rows priced under one protocol with a decisive difference.",
            evidence,
            params,
        )
    wins = int((decisive["outcome"] == "KD better").sum())
    verdict = Verdict.SUPPORTED if wins == len(decisive) else Verdict.CONTRADICTED
    lines = [
        f"KD is better in {wins} of {len(decisive)} decisive same-protocol comparisons "
        f"({len(evidence) - len(decisive)} tie or cannot be compared)."
    ]
    for row in evidence.to_dict("records"):
        if not row["outcome"]:
            continue
        lines.append(
            f"{row['benchmark']} ({row['protocol']}): {row['KD-based']} {row['KD value']:g} at "
            f"{row['KD MACs'] / 1e9:.4g}G vs {row['pruning-only']} {row['pruning value']:g} at "
            f"{row['pruning MACs'] / 1e9:.4g}G, {row['basis']}: {row['outcome']}"
            + (
                f"; within the window, {row['best comparable KD']}: {row['comparable outcome']}"
                if row["best comparable KD"] and row["best comparable KD"] != row["KD-based"]
                else ""
            )
            + "".join(
                f"; {row[who]} also reads {row[f'{side} other readings']}"
                for who, side in (("KD-based", "KD"), ("pruning-only", "pruning"))
                if row.get(f"{side} other readings")
            )
            + "."
        )
    return _finding("F1", claim, verdict, " ".join(lines), evidence, params)


def check_f2(lit: pd.DataFrame, marks: tuple[str, ...] = DEFAULT_MARKS + ("I", "UNVERIFIED")) -> Check:
    """F2: no pre-survey work uses encoding. Any mark counts: one claimed encoding work refutes it."""
    rows = usable(lit, include_post=False, marks=marks)
    rows = rows[rows["role"] == "compressed"]
    claim = "Encoding is unexplored for GANs (before the survey)."
    params = {"marks": list(marks)}
    if rows.empty:
        return _finding(
            "F2", claim, Verdict.NOT_TESTABLE, "There are no pre-survey compressed rows.", pd.DataFrame(), params
        )
    encoding = rows[rows["families"].map(lambda f: "encoding" in family_set(f))]
    coverage = family_coverage(technique_matrix(rows)).reset_index().rename_axis(columns=None)
    n_works = rows["work"].nunique()
    if encoding.empty:
        return _finding(
            "F2",
            claim,
            Verdict.SUPPORTED,
            f"None of the {n_works} pre-survey works uses encoding; works per family are shown.",
            coverage,
            params,
        )
    return _finding(
        "F2",
        claim,
        Verdict.CONTRADICTED,
        f"{encoding['work'].nunique()} pre-survey work(s) use encoding.",
        encoding[["benchmark", "work", "method", "families", "year", "mark", "source"]],
        params,
    )


def check_f3(
    lit: pd.DataFrame,
    min_families: int = 2,
    max_share: float = 1 / 3,
    include_post: bool = False,
    marks: tuple[str, ...] = DEFAULT_MARKS + ("I", "UNVERIFIED"),
) -> Check:
    """F3: few works combine families: the share of works using ``min_families`` or more of the five lossy
    families is at most ``max_share`` (architecture search does not count as a compression family)."""
    check_number("min_families", min_families, minimum=2, maximum=len(FAMILIES), integer=True)
    check_number("max_share", max_share, minimum=0.0, maximum=1.0)
    rows = usable(lit, include_post, marks)
    matrix = technique_matrix(rows)
    claim = "Combinations of compression techniques are under-explored for GANs: few works combine families."
    params = {"min_families": min_families, "max_share": max_share, "include_post": include_post}
    if matrix.empty:
        return _finding("F3", claim, Verdict.NOT_TESTABLE, "There are no compressed rows.", pd.DataFrame(), params)
    combined = matrix[matrix["lossy families"] >= min_families]
    share = len(combined) / len(matrix)
    evidence = matrix.reset_index().sort_values(["lossy families", "work"], ascending=[False, True])
    three = int((matrix["lossy families"] >= 3).sum())
    verdict = Verdict.SUPPORTED if share <= max_share else Verdict.CONTRADICTED
    summary = (
        f"{len(combined)} of {len(matrix)} works ({share:.0%}) combine {min_families} or more lossy families "
        f"(threshold for 'few': {max_share:.0%}); works combining three or more: {three}"
        + (f" ({', '.join(matrix.index[matrix['lossy families'] >= 3])})" if three else "")
        + "."
    )
    return _finding("F3", claim, verdict, summary, evidence, params)


def _energy_row(energy: pd.DataFrame, pattern: str, bits: int | None) -> pd.DataFrame:
    hit = energy[energy["operation"].astype(str).str.contains(pattern, case=False, regex=True)]
    if bits is not None:
        hit = hit[pd.to_numeric(hit["bits"], errors="coerce") == bits]
    return hit


def check_f4(
    energy: pd.DataFrame | None,
    min_ratio: float = 100.0,
    dram_pattern: str = r"dram",
    mult_pattern: str = r"(?:float|fp).*mult|mult.*(?:float|fp)",
    marks: tuple[str, ...] = DEFAULT_MARKS,
) -> Check:
    """F4: data transfer dominates energy: a 32-bit DRAM access costs at least ``min_ratio`` times a 32-bit
    float multiply (45 nm energy table with columns operation, bits, energy_pj and, optionally, mark: rows
    with another mark than ``marks`` are not used)."""
    check_number("min_ratio", min_ratio, minimum=1.0)
    claim = ("Data transfer is the main consumer of energy, so memory compression is a very effective way to "
             "accelerate GANs (checked on the 45 nm table: a 32-bit DRAM access against a 32-bit float multiply).")
    params = {
        "min_ratio": min_ratio,
        "dram_pattern": dram_pattern,
        "mult_pattern": mult_pattern,
        "marks": list(marks),
    }
    if energy is None or energy.empty:
        return _finding("F4", claim, Verdict.NOT_TESTABLE, "No energy table was given.", pd.DataFrame(), params)
    trusted = energy[energy["mark"].isin(marks)] if "mark" in energy.columns else energy
    dram, mult = _energy_row(trusted, dram_pattern, 32), _energy_row(trusted, mult_pattern, 32)
    if dram.empty or mult.empty:
        missing = "a 32-bit DRAM access" if dram.empty else "a 32-bit float multiply"
        return _finding("F4", claim, Verdict.NOT_TESTABLE, f"The energy table has no row for {missing}.", energy,
                        params)
    dram_pj, mult_pj = float(dram["energy_pj"].iloc[0]), float(mult["energy_pj"].iloc[0])
    ratio = dram_pj / mult_pj
    evidence = energy.assign(
        **{"relative to 32-bit float mult": pd.to_numeric(energy["energy_pj"], errors="coerce") / mult_pj}
    )
    verdict = Verdict.SUPPORTED if ratio >= min_ratio else Verdict.CONTRADICTED
    summary = (
        f"A 32-bit DRAM access takes {dram_pj:g} pJ, a 32-bit float multiply {mult_pj:g} pJ: "
        f"{ratio:.0f}x (threshold {min_ratio:g}x)."
    )
    return _finding("F4", claim, verdict, summary, evidence, params)


def check_f5(lit: pd.DataFrame, lossy: tuple[str, ...] = FAMILIES) -> Check:
    """F5: the survey covers lossy techniques only: every family in the data is lossy (or auxiliary)."""
    rows = lit[lit["role"] == "compressed"]
    claim = "The surveyed techniques are all lossy (lossless ones are model-agnostic and left out)."
    params = {"lossy": list(lossy), "auxiliary": list(AUXILIARY_FAMILIES)}
    if rows.empty:
        return _finding("F5", claim, Verdict.NOT_TESTABLE, "There are no compressed rows.", pd.DataFrame(), params)
    counts: dict[str, int] = {}
    for families in rows["families"]:
        for family in family_set(families):
            counts[family] = counts.get(family, 0) + 1
    evidence = pd.DataFrame(
        [
            {"family": f, "rows": n, "lossy": f in lossy, "auxiliary": f in AUXILIARY_FAMILIES}
            for f, n in sorted(counts.items(), key=lambda kv: (kv[0] not in LITERATURE_FAMILIES, kv[0]))
        ]
    )
    other = evidence[~evidence["lossy"] & ~evidence["auxiliary"]]
    unchanged = rows[rows["quality_change"] == 0] if "quality_change" in rows else rows.iloc[:0]
    note = (
        f" {len(unchanged)} compressed row(s) report exactly the baseline quality."
        if len(unchanged)
        else " No compressed row reports exactly its baseline's quality, as lossy compression predicts."
    )
    if other.empty:
        return _finding(
            "F5",
            claim,
            Verdict.SUPPORTED,
            f"All {len(evidence)} families in the data are lossy or "
            f"auxiliary ({', '.join(evidence['family'])}).{note}",
            evidence,
            params,
        )
    return _finding(
        "F5",
        claim,
        Verdict.CONTRADICTED,
        f"Families that are not lossy: {', '.join(other['family'])}.{note}",
        evidence,
        params,
    )


def check_f6(
    lit: pd.DataFrame,
    benchmark: str = "cyclegan-horse2zebra",
    approx_tolerance: float = 0.02,
    include_post: bool = False,
    marks: tuple[str, ...] = DEFAULT_MARKS,
) -> Check:
    """F6: on ``benchmark``, every pure-pruning row is beaten by a KD-based row at lower MACs (same protocol);
    plot-read values within ``approx_tolerance`` (relative) tie and beat nothing."""
    rows = _priced(usable(lit, include_post, marks))
    rows = rows[rows["benchmark"] == benchmark]
    claim = f"On {benchmark}, KD-based methods reach better quality at lower MACs than pure pruning."
    params = {
        "benchmark": benchmark,
        "approx_tolerance": approx_tolerance,
        "include_post": include_post,
        "marks": list(marks),
    }
    pairs = []
    for protocol, group in rows.groupby("protocol", sort=False):
        prune = group[group["families"].map(_is_pruning_only)]
        kd = group[group["families"].map(_uses_kd)]
        for p in prune.index:
            for k in kd.index:
                pairs.append(
                    {
                        "protocol": protocol,
                        "pruning-only": group.at[p, "method"],
                        "pruning MACs": group.at[p, "macs"],
                        "pruning value": group.at[p, "value"],
                        "KD-based": group.at[k, "method"],
                        "KD MACs": group.at[k, "macs"],
                        "KD value": group.at[k, "value"],
                        "KD other readings": _other_readings(lit, group.loc[k]),
                        "MACs ratio (pruning/KD)": group.at[p, "macs"] / group.at[k, "macs"],
                        "lower MACs": bool(group.at[k, "macs"] < group.at[p, "macs"]),
                        "quality": _outcome(group.loc[k], group.loc[p], approx_tolerance),
                    }
                )
    evidence = pd.DataFrame(pairs)
    if evidence.empty:
        return _finding(
            "F6",
            claim,
            Verdict.NOT_TESTABLE,
            f"{benchmark} has no pure-pruning and KD rows priced under one protocol.",
            evidence,
            params,
        )
    evidence["dominates"] = evidence["lower MACs"] & (evidence["quality"] == "KD better")
    beaten = evidence.groupby(["protocol", "pruning-only"])["dominates"].any()
    verdict = Verdict.SUPPORTED if beaten.all() else Verdict.CONTRADICTED
    dom = evidence[evidence["dominates"]]
    ratios = (
        f" at {dom['MACs ratio (pruning/KD)'].min():.1f}-{dom['MACs ratio (pruning/KD)'].max():.1f}x "
        "lower MACs"
        if not dom.empty
        else ""
    )
    losers = evidence[~evidence["dominates"]]
    summary = (
        f"{int(beaten.sum())} of {len(beaten)} pure-pruning rows are beaten by a KD-based row{ratios}; "
        f"{len(dom)} of {len(evidence)} pairs show KD better and cheaper."
        + (
            " Pairs where KD does not dominate: "
            + "; ".join(f"{r['KD-based']} vs {r['pruning-only']}" for r in losers.to_dict("records"))
            + "."
            if not losers.empty
            else ""
        )
        + "".join(
            sorted({f" {r['KD-based']} also reads {r['KD other readings']}." for r in evidence.to_dict("records")
                    if r["KD other readings"]})
        )
    )
    return _finding("F6", claim, verdict, summary, evidence, params)


def check_f7(
    lit: pd.DataFrame,
    classifier_methods: tuple[str, ...] = ("ThiNet",),
    min_loss: float = 0.5,
    marks: tuple[str, ...] = DEFAULT_MARKS,
) -> Check:
    """F7: a classifier compression recipe applied to a GAN loses most of its quality: its mean relative
    quality change over the reported metrics is ``-min_loss`` or worse."""
    check_number("min_loss", min_loss, minimum=0.0, maximum=1.0)
    pattern = "|".join(re.escape(m) for m in classifier_methods)
    rows = usable(lit, include_post=True, marks=marks)
    recipe = rows[
        rows["work"].str.contains(pattern, case=False, regex=True) & rows["quality_change_rel"].notna()
    ]
    claim = "Classifier compression recipes transfer badly to GANs (ThiNet on CycleGAN loses most quality)."
    params = {"classifier_methods": list(classifier_methods), "min_loss": min_loss}
    if recipe.empty:
        return _finding(
            "F7",
            claim,
            Verdict.NOT_TESTABLE,
            "No classifier-recipe row with a quality change vs its baseline.",
            recipe,
            params,
        )
    benches = recipe["benchmark"].unique()
    context = rows[rows["benchmark"].isin(benches) & rows["role"].isin(["baseline", "compressed"])]
    cols = [
        "benchmark",
        "role",
        "method",
        "families",
        "metric",
        "value",
        "baseline_value_used",
        "quality_change_rel",
        "memory_x",
        "macs_x",
        "mark",
    ]
    evidence = context[[c for c in cols if c in context.columns]].reset_index(drop=True)
    mean_change = float(recipe["quality_change_rel"].mean())
    others = context[(context["role"] == "compressed") & ~context.index.isin(recipe.index)]
    verdict = Verdict.SUPPORTED if mean_change <= -min_loss else Verdict.CONTRADICTED
    summary = (
        f"{', '.join(recipe['method'].unique())}: mean relative quality change {mean_change:+.0%} over "
        f"{len(recipe)} metric(s) (threshold -{min_loss:.0%})."
        + (
            f" Other compressed rows of that benchmark average {others['quality_change_rel'].mean():+.0%}."
            if others["quality_change_rel"].notna().any()
            else ""
        )
    )
    return _finding("F7", claim, verdict, summary, evidence, params)


def check_f8(
    lit: pd.DataFrame, marks: tuple[str, ...] = DEFAULT_MARKS, approx_tolerance: float = 0.02
) -> Check:
    """F8: numbers are hard to compare: one model (benchmark, work, variant, metric) is reported with
    different values under different protocols.

    A difference that involves a value read off a plot counts only beyond ``approx_tolerance`` (relative), so
    reading error is not taken for a protocol effect.
    """
    check_number("approx_tolerance", approx_tolerance, minimum=0.0)
    rows = lit[lit["mark"].isin(marks) & lit["value"].notna()]
    claim = "Reported numbers are hard to compare: evaluation protocols differ and change the scores."
    params = {"marks": list(marks), "approx_tolerance": approx_tolerance}
    keys = ["benchmark", "work", "variant", "metric"]
    spread = {}
    for key, group in rows.groupby(keys):
        if group["protocol"].nunique() < 2:
            continue
        exact = group[~group["approx"].str.split(";").map(lambda a: "value" in a)]
        gap = group["value"].max() - group["value"].min()
        exact_differs = exact["protocol"].nunique() > 1 and exact["value"].nunique() > 1
        if exact_differs or gap > approx_tolerance * group["value"].abs().mean():
            spread[key] = gap
    per_bench = rows.groupby("benchmark")["protocol"].nunique()
    if not spread:
        verdict, summary = (
            Verdict.CONTRADICTED,
            "No model is reported with different values under different protocols.",
        )
        evidence = per_bench.rename("protocols").reset_index()
    else:
        evidence = rows.set_index(keys).loc[list(spread)].reset_index()
        evidence = evidence[
            ["benchmark", "method", "variant", "metric", "protocol", "value", "mark", "source"]
        ]
        gaps = pd.Series(spread)
        verdict = Verdict.SUPPORTED
        summary = (
            f"{len(spread)} model(s) get different values under different protocols (spread "
            f"{gaps.min():.2g} to {gaps.max():.3g}); {int((per_bench > 1).sum())} of {len(per_bench)} "
            "benchmarks with numbers mix protocols."
        )
    return _finding("F8", claim, verdict, summary, evidence, params)


def check_all(lit: pd.DataFrame, energy: pd.DataFrame | None) -> list[Check]:
    """F1-F8 with their default parameters.

    Args:
        lit: :func:`gansurvey.survey.load_literature`'s table.
        energy: :func:`gansurvey.survey.load_energy`'s table (``None``: F4 is not testable).

    Example:
        >>> [str(c.verdict) for c in check_all(load_literature(), load_energy())]  # doctest: +SKIP
    """
    return [
        check_f1(lit),
        check_f2(lit),
        check_f3(lit),
        check_f4(energy),
        check_f5(lit),
        check_f6(lit),
        check_f7(lit),
        check_f8(lit),
    ]


def findings_frame(findings: list[Check]) -> pd.DataFrame:
    """One line per finding: id, claim, verdict, basis (survey abstract or this project's reading), summary."""
    return checks_frame(findings)[["id", "claim", "verdict", "basis", "summary"]]
