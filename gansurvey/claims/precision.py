"""Notebook 04's claims on measured records: where precision collapses (PQ) and mixed vs uniform bits (MP)."""

from __future__ import annotations

import pandas as pd

from gansurvey.checks import GanSurveyError
from gansurvey.claims.common import (
    arm_of,
    check_records,
    control_rows,
    decisions_frame,
    fewest_seeds,
    noise_arm,
    profile_of,
    seed_note,
)
from gansurvey.claims.rule import RULE, Arm, Decision, decide
from gansurvey.claims.verdict import Check, Verdict, combine
from gansurvey.records import settings_of


def _precision_rows(records: pd.DataFrame) -> pd.DataFrame:
    rows = check_records(records)
    parsed = [settings_of(s) for s in rows["settings"]]
    for key in ("weight_bits", "training", "granularity", "allocation", "budget_bits", "per_layer_bits"):
        rows[key] = [p.get(key) for p in parsed]
    return rows


def _higher(group: pd.DataFrame, bench: str) -> bool:
    seen = {bool(v) for v in group["higher_is_better"].dropna()}
    if len(seen) != 1:
        raise GanSurveyError(f"records of {bench} disagree on whether higher {group['primary_metric'].iloc[0]} is "
                             f"better (higher_is_better: {sorted(seen)}); allowed: one direction per benchmark")
    return seen.pop()


NO_CONTROL = ("no float fine-tuned control (the teacher fine-tuned for the QAT steps) in the records: QAT is "
              "compared with the teacher, so at most indicative")


def precision_collapse(records: pd.DataFrame, granularity: str = "per-channel", teacher: str = "teacher",
                       profile: str | None = None) -> Check:
    """PQ: post-training quantization of a GAN collapses below some bit width, and quantization-aware training
    recovers it there (QGAN, Wang et al. 2019). Decided by the one rule (:mod:`gansurvey.claims.rule`).

    Per benchmark and bit width, post-training quantization (PTQ) *holds* when the rule finds it *as good as*
    the teacher and *collapses* when the rule contradicts that (tolerance: one run's noise of the float
    fine-tuned control, :data:`~gansurvey.claims.common.CONTROL`, else of the teacher). At every collapsed width,
    quantization-aware training (QAT) *recovers* when the rule finds it as good as the float fine-tuned control,
    which had the same fine-tuning steps in float; the width's verdict is that decision. Without a control, QAT
    is compared with the teacher and the verdict is held at indicative. Not testable when PTQ holds at every
    tested width; indicative when no width is decided to collapse but some are undecided.

    Args:
        records: the precision sweep's records with the teacher's (settings ``weight_bits``, ``training``,
            ``granularity``) and, where measured, the float fine-tuned control's.
        granularity: which granularity's arms to read.
        teacher: the ``technique`` of the teacher's records.
        profile: the records' profile; ``None`` reads the ``profile`` column.

    Example:
        >>> precision_collapse(records_frame(records)).verdict  # doctest: +SKIP
    """
    rows = _precision_rows(records)
    verdicts, table, decided, notes = {}, [], [], []
    for bench, group in rows.groupby("benchmark", sort=False):
        base = arm_of(teacher, group[group["technique"] == teacher])
        control_group = control_rows(group)
        control = arm_of(str(control_group["technique"].iloc[0]), control_group) if len(control_group) else None
        arms = group[(group["family"] == "precision") & (group["granularity"] == granularity)
                     & group["training"].notna() & group["allocation"].isna()]
        if not base.n or arms.empty:
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        higher = _higher(group, bench)
        noise = control if control is not None else base
        if control is None:
            notes.append(f"{bench}: {NO_CONTROL}")
        stats: dict[tuple[int, str], Arm] = {}
        for (bits, training), arm in arms.groupby(["weight_bits", "training"]):
            stats[(int(bits), training)] = arm_of(f"w{int(bits)} {training}", arm)
        widths = sorted({b for b, _ in stats}, reverse=True)
        parts, undecided = [], False
        for b in widths:
            ptq, qat = stats.get((b, "post-training")), stats.get((b, "quantization-aware"))
            holds = decide(ptq, base, higher, "as good as", noise_reference=noise) if ptq else None
            collapsed = holds is not None and holds.verdict == Verdict.CONTRADICTED
            undecided |= holds is not None and holds.verdict == Verdict.INDICATIVE
            recovers: Decision | None = None
            if qat is not None:
                recovers = decide(qat, control if control is not None else base, higher, "as good as",
                                  noise_reference=noise)
            keys = {"benchmark": bench, "weight_bits": b}
            decided += [(keys, d) for d in (holds, recovers) if d is not None]
            if collapsed and recovers is not None:
                word = recovers.verdict
                if control is None and word in (Verdict.SUPPORTED, Verdict.CONTRADICTED):
                    word = Verdict.INDICATIVE
                parts.append(word)
            table.append(dict(
                benchmark=bench, metric=group["primary_metric"].iloc[0], weight_bits=b, teacher=base.mean,
                control=control.mean if control is not None else None,
                post_training=ptq.mean if ptq else None, quantization_aware=qat.mean if qat else None,
                seeds=min(a.n for a in (ptq, qat) if a is not None),
                post_training_holds=bool(holds is not None and holds.verdict == Verdict.SUPPORTED),
                collapsed=collapsed, ptq_vs_teacher=holds.text() if holds else None,
                qat_vs_control=recovers.text() if recovers else None,
                qat_holds=bool(recovers is not None and recovers.verdict == Verdict.SUPPORTED)))
        if parts:
            verdicts[bench] = combine(parts)
        elif undecided:
            verdicts[bench] = Verdict.INDICATIVE
        else:
            verdicts[bench] = Verdict.NOT_TESTABLE
            notes.append(f"{bench}: post-training quantization holds at every tested width, so there is no "
                         "collapse for QAT to recover")
    n = fewest_seeds(decided)
    check = Check("PQ", "Post-training quantization of a GAN collapses at low bit widths and quantization-aware "
                  "training recovers it (QGAN).", combine(verdicts.values()), "", pd.DataFrame(table), verdicts,
                  notes + (seed_note(n, profile_of(rows, profile)) if n else []),
                  {"granularity": granularity}, source="measured", basis="surveyed work", seeds=n,
                  decisions=decisions_frame(decided), rule=RULE)
    check.summary = _pq_summary(check)
    return check


def _pq_summary(check: Check) -> str:
    parts = [] if len(check.evidence) else ["No teacher and precision records to compare (not testable)."]
    for bench, rows in check.evidence.groupby("benchmark", sort=False) if len(check.evidence) else []:
        holding = rows[rows["post_training_holds"]]["weight_bits"]
        collapsed = rows[rows["collapsed"]]
        metric = rows["metric"].iloc[0]
        if collapsed.empty:
            held = f"holds down to {int(holding.min())} bits" if len(holding) else "is not decided to hold"
            parts.append(f"{bench} ({metric}): post-training quantization {held} and is not decided to collapse "
                         f"at any tested width ({check.verdicts[bench]}).")
            continue
        where = (f"holds down to {int(holding.min())} bits and collapses below" if len(holding)
                 else "collapses at every tested width, down from")
        widths = "; ".join(f"{int(r.weight_bits)} bits: PTQ {r.ptq_vs_teacher}; QAT {r.qat_vs_control}"
                           for r in collapsed.itertuples())
        parts.append(f"{bench} ({metric}, teacher {rows['teacher'].iloc[0]:.4g}): post-training quantization "
                     f"{where} {int(holding.min()) if len(holding) else int(collapsed['weight_bits'].max())} bits "
                     f"({widths}); {check.verdicts[bench]}.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)


def _identical_allocation(group: pd.DataFrame, budget: int) -> bool:
    """The mixed arm's bits are the uniform width in every layer: the two arms are the same model."""
    mixed = group[group["allocation"] == "mixed"]["per_layer_bits"]
    seen = {int(b) for bits in mixed if isinstance(bits, dict) for b in bits.values()}
    return bool(len(mixed)) and seen <= {int(budget)} and all(isinstance(b, dict) for b in mixed)


def mixed_vs_uniform(records: pd.DataFrame, profile: str | None = None) -> Check:
    """MP: bits chosen per layer (mixed precision) give better quality than uniform bits at the same stored bytes.

    Per benchmark and byte budget (``settings["budget_bits"]``, the uniform width whose bytes the mixed model
    matches), the rule (:mod:`gansurvey.claims.rule`) asks whether the mixed arm is *better* than the uniform
    one. Where the allocation gave every layer the uniform width (``settings["per_layer_bits"]``), the two arms
    are the same model: *not testable*.

    Args:
        records: the mixed-precision records (settings ``allocation`` = ``uniform``/``mixed``, ``budget_bits``).
        profile: the records' profile; ``None`` reads the ``profile`` column.

    Example:
        >>> mixed_vs_uniform(records_frame(records)).verdict  # doctest: +SKIP
    """
    all_rows = _precision_rows(records)
    rows = all_rows[all_rows["allocation"].isin(["uniform", "mixed"])]
    verdicts, table, decided = {}, [], []
    for (bench, budget), group in rows.groupby(["benchmark", "budget_bits"], sort=False):
        higher = _higher(group, bench)
        key = f"{bench} w{budget}"
        if set(group["allocation"]) != {"uniform", "mixed"}:
            verdicts[key] = Verdict.NOT_TESTABLE
            continue
        uniform = arm_of("uniform", group[group["allocation"] == "uniform"])
        mixed = arm_of("mixed", group[group["allocation"] == "mixed"])
        decision = decide(mixed, uniform, higher, "better", identical=_identical_allocation(group, int(budget)),
                          noise_reference=noise_arm(all_rows[all_rows["benchmark"] == bench]))
        decided.append(({"benchmark": bench, "budget_bits": int(budget)}, decision))
        verdicts[key] = decision.verdict
        stored = group.groupby("allocation")["stored_bytes"].mean()
        table.append(dict(benchmark=bench, budget_bits=int(budget), metric=group["primary_metric"].iloc[0],
                          uniform=uniform.mean, mixed=mixed.mean, seeds=min(uniform.n, mixed.n),
                          uniform_stored_bytes=int(stored["uniform"]), mixed_stored_bytes=int(stored["mixed"]),
                          decision=decision.text(), verdict=decision.verdict))
    n = fewest_seeds(decided)
    check = Check("MP", "Mixed precision (bits per layer by sensitivity) beats uniform bits at the same stored "
                  "bytes.", combine(verdicts.values()), "", pd.DataFrame(table), verdicts,
                  seed_note(n, profile_of(rows, profile)) if n else [], {},
                  source="measured", basis="this project's reading", seeds=n, decisions=decisions_frame(decided),
                  rule=RULE)
    parts = [f"{r.benchmark} at the bytes of {r.budget_bits}-bit weights: mixed {r.mixed:.4g} vs uniform "
             f"{r.uniform:.4g} ({r.metric}; {r.mixed_stored_bytes} vs {r.uniform_stored_bytes} stored bytes) -> "
             f"{r.decision}." for r in check.evidence.itertuples()]
    check.summary = " ".join(parts + [f"Note: {x}." for x in check.notes])
    return check
