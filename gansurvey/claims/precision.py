"""Notebook 04's claims on measured records: where precision collapses (PQ) and mixed vs uniform bits (MP)."""

from __future__ import annotations

import json

import pandas as pd

from gansurvey.checks import GanSurveyError, check_number
from gansurvey.claims.common import check_records, mean_sd_n, profile_of, seed_note
from gansurvey.claims.verdict import Check, Verdict, combine


def _precision_rows(records: pd.DataFrame) -> pd.DataFrame:
    rows = check_records(records)
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
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        higher = _higher(group, bench)
        sign, ref = (1.0 if higher else -1.0), float(base.mean())
        stats = {}
        for (bits, training), arm in arms.groupby(["weight_bits", "training"]):
            stats[(int(bits), training)] = mean_sd_n(arm["primary_value"])
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
                parts.append(Verdict.SUPPORTED if recovers else Verdict.MIXED if better else Verdict.CONTRADICTED)
            table.append(dict(benchmark=bench, metric=group["primary_metric"].iloc[0], weight_bits=b, teacher=ref,
                              post_training=ptq[0] if ptq else None, post_training_sd=ptq[1] if ptq else None,
                              quantization_aware=qat[0] if qat else None,
                              quantization_aware_sd=qat[1] if qat else None,
                              seeds=min(s[2] for s in (ptq, qat) if s is not None),
                              post_training_holds=holds[b], collapsed=b in collapsed,
                              qat_holds=bool(recovers), qat_better=bool(better)))
        verdicts[bench] = combine(parts) if parts else Verdict.NOT_TESTABLE
    n = min(seeds) if seeds else None
    check = Check("PQ", "Post-training quantization of a GAN collapses at low bit widths and quantization-aware "
                  "training recovers it (QGAN).", combine(verdicts.values()), "", pd.DataFrame(table), verdicts,
                  seed_note(n, profile_of(rows, profile)) if n else [],
                  {"tolerance": tolerance, "granularity": granularity}, source="measured", basis="surveyed work",
                  seeds=n)
    check.summary = _pq_summary(check)
    return check


def _pq_summary(check: Check) -> str:
    parts = []
    for bench, rows in check.evidence.groupby("benchmark", sort=False):
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
        arms = {a: mean_sd_n(g["primary_value"]) for a, g in group.groupby("allocation")}
        if set(arms) != {"uniform", "mixed"}:
            verdicts[f"{bench} w{budget}"] = Verdict.NOT_TESTABLE
            continue
        (um, usd, un), (mm, msd, mn) = arms["uniform"], arms["mixed"]
        seeds.append(min(un, mn))
        diff = sign * (mm - um) / max(abs(um), 1e-12)
        spread = max((s for s in (usd, msd) if s == s), default=0.0) / max(abs(um), 1e-12)
        margin = max(tolerance, spread)
        verdict = Verdict.SUPPORTED if diff > margin else Verdict.CONTRADICTED if diff < -margin else Verdict.MIXED
        verdicts[f"{bench} w{budget}"] = verdict
        stored = group.groupby("allocation")["stored_bytes"].mean()
        table.append(dict(benchmark=bench, budget_bits=int(budget), metric=group["primary_metric"].iloc[0],
                          uniform=um, uniform_sd=usd, mixed=mm, mixed_sd=msd, seeds=min(un, mn),
                          uniform_stored_bytes=int(stored["uniform"]), mixed_stored_bytes=int(stored["mixed"]),
                          relative_gain=diff, verdict=verdict))
    n = min(seeds) if seeds else None
    check = Check("MP", "Mixed precision (bits per layer by sensitivity) beats uniform bits at the same stored "
                  "bytes.", combine(verdicts.values()), "", pd.DataFrame(table), verdicts,
                  seed_note(n, profile_of(rows, profile)) if n else [], {"tolerance": tolerance},
                  source="measured", basis="this project's reading", seeds=n)
    parts = [f"{r.benchmark} at the bytes of {r.budget_bits}-bit weights: mixed {r.mixed:.4g} vs uniform "
             f"{r.uniform:.4g} ({r.metric}; {abs(r.relative_gain):.1%} {'better' if r.relative_gain > 0 else 'worse'}"
             f"; {r.mixed_stored_bytes} vs {r.uniform_stored_bytes} stored bytes) -> {r.verdict}."
             for r in check.evidence.itertuples()]
    parts.append(f"A difference counts beyond {tolerance:.0%} and beyond the spread over seeds.")
    check.summary = " ".join(parts + [f"Note: {x}." for x in check.notes])
    return check
