"""Notebook 05's claims on measured records: the bits encoding needs, trained vs post-training sharing, and the
Deep Compression target."""

from __future__ import annotations

import pandas as pd

from gansurvey.checks import check_number
from gansurvey.claims.common import (
    arm_of,
    as_bool,
    check_records,
    configurations,
    control_family,
    control_rows,
    decisions_frame,
    fewest_seeds,
    higher_is_better,
    profile_of,
    relative_loss,
    seed_note,
)
from gansurvey.claims.rule import RULE, Arm, decide
from gansurvey.claims.selection import ON_REPORTED
from gansurvey.claims.verdict import Check, Verdict, combine
from gansurvey.records import settings_of


def _encoding_rows(records: pd.DataFrame) -> pd.DataFrame:
    rows = check_records(records)
    parsed = rows["settings"].map(settings_of)
    for key in ("bits", "quantizer", "trained", "tuned"):
        rows[key] = parsed.map(lambda s, k=key: s.get(k))
    rows["stored_bytes"] = pd.to_numeric(rows.get("stored_bytes"), errors="coerce")
    return rows


def _quality(group: pd.DataFrame, bench: str) -> tuple[bool, str]:
    metric = str(group["primary_metric"].iloc[0])
    return higher_is_better(configurations(group), bench, metric), metric


def _noise(group: pd.DataFrame, teacher: Arm) -> tuple[Arm, str | None]:
    """The arm whose noise sets the tolerance: the float fine-tuned control, else the teacher (with a note)."""
    control = control_rows(group)
    if len(control):
        return arm_of(str(control["technique"].iloc[0]), control), None
    return teacher, "no float fine-tuned control in the records: the tolerance is the teacher's noise"


def bits_needed(records: pd.DataFrame, reference_bits: int = 4, teacher: str = "teacher",
                quantizer: str = "k-means", profile: str | None = None) -> Check:
    """EB: how many bits per weight a GAN generator's shared weights need before quality falls.

    Per benchmark and bit width of post-training ``quantizer`` sharing (records with ``settings`` ``bits``,
    ``quantizer`` and ``trained`` false), the rule (:mod:`gansurvey.claims.rule`) asks whether the shared model
    is *as good as* the teacher (tolerance: one run's noise of the float fine-tuned control, else the teacher's).
    The bits needed are the fewest from which that width and every wider one tried are supported. Deep
    Compression kept classifiers' accuracy with 4-bit (convolutions) and 2-bit (fully connected) shared weights
    (Han et al. 2016); the claim checked is that a generator needs no more than ``reference_bits``: supported
    when it does, contradicted when the widest width tried at or below ``reference_bits`` is decided worse than
    the teacher, indicative otherwise, not testable when no such width was tried.

    Args:
        records: the records of the bits sweep and the teacher (``technique == teacher``).
        reference_bits: the classifier figure compared with.
        teacher: the teacher's technique label.
        quantizer: ``k-means`` (weight sharing) or ``uniform``.
        profile: the records' profile; ``None`` reads it.

    Example:
        >>> bits_needed(records_frame(sweep_records + [teacher_record])).verdict  # doctest: +SKIP
    """
    check_number("reference_bits", reference_bits, minimum=1, maximum=8, integer=True)
    rows = _encoding_rows(records)
    verdicts, table, decided, notes = {}, [], [], []
    for bench, group in rows.groupby("benchmark", sort=False):
        base = arm_of(teacher, group[group["technique"] == teacher])
        sweep = group[(group["quantizer"] == quantizer) & (group["trained"].map(as_bool) != True)  # noqa: E712
                      & group["bits"].notna()]
        if not base.n or sweep.empty:
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        higher, metric = _quality(group, bench)
        noise, note = _noise(group, base)
        notes += [f"{bench}: {note}"] if note else []
        arms = {int(b): arm_of(f"{int(b)} bits", g) for b, g in sweep.groupby("bits")}
        holds = {b: decide(a, base, higher, "as good as", noise_reference=noise) for b, a in sorted(arms.items())}
        decided += [({"benchmark": bench, "bits": b}, d) for b, d in holds.items()]
        needed = next((b for b in sorted(holds) if all(holds[c].verdict == Verdict.SUPPORTED
                                                       for c in holds if c >= b)), None)
        at_reference = [b for b in holds if b <= reference_bits]
        if needed is not None and needed <= reference_bits:
            verdicts[bench] = Verdict.SUPPORTED
        elif not at_reference:
            verdicts[bench] = Verdict.NOT_TESTABLE
            notes.append(f"{bench}: no width at or below {reference_bits} bits was tried")
        elif holds[max(at_reference)].verdict == Verdict.CONTRADICTED:
            verdicts[bench] = Verdict.CONTRADICTED
        else:
            verdicts[bench] = Verdict.INDICATIVE
        for b, a in sorted(arms.items()):
            table.append(dict(benchmark=bench, metric=metric, bits=b, teacher=base.mean, mean=a.mean, seeds=a.n,
                              relative_loss=relative_loss(a.mean, base.mean, higher), decision=holds[b].text(),
                              holds=holds[b].verdict == Verdict.SUPPORTED, bits_needed=needed,
                              verdict=verdicts[bench]))
    seeds = fewest_seeds(decided)
    check = Check("EB", f"A GAN generator keeps its quality with {reference_bits}-bit shared weights or fewer, as "
                  "classifiers do under Deep Compression (Han et al. 2016).", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts,
                  notes + (seed_note(seeds, profile_of(rows, profile)) if seeds else []),
                  {"reference_bits": reference_bits, "quantizer": quantizer},
                  source="measured", basis="this project's reading", seeds=seeds, decisions=decisions_frame(decided),
                  rule=RULE)
    parts = []
    for bench, part in check.evidence.groupby("benchmark", sort=False) if len(check.evidence) else []:
        needed = part["bits_needed"].iloc[0]
        cells = "; ".join(f"{r.bits} bits {r.mean:.4g} ({r.decision})" for r in part.itertuples())
        parts.append(f"{bench} ({part['metric'].iloc[0]}, teacher {part['teacher'].iloc[0]:.4g}): {cells}; "
                     + (f"{int(needed)} bits are enough" if pd.notna(needed) else "no width tried is shown enough")
                     + f" ({check.verdicts[bench]}).")
    parts.append("Enough means 'as good as' the teacher by the rule, for that width and every wider one tried.")
    parts += [f"Note: {n}." for n in check.notes]
    check.summary = " ".join(parts)
    return check


def trained_beats_post_sharing(records: pd.DataFrame, profile: str | None = None,
                               control: pd.DataFrame | None = None) -> Check:
    """ES: fine-tuning the shared centroids (trained sharing) beats sharing whose centroids stay as the
    post-training k-means left them, at the same bits.

    Records carry ``settings`` ``bits``, ``trained`` (true/false) and, from this version on, ``tuned``: the
    reference of the trained arm is the same fine-tuning with the centroids frozen (``tuned == "rest"``: the same
    biases and normalization parameters, steps and losses), so the gain measured is the centroids'; older
    records without it compare with the untouched post-training arm, and then the gain may be fine-tuning's.
    Per benchmark and bits, the rule (:mod:`gansurvey.claims.rule`) asks whether the trained arm is *better*.
    Without the float fine-tuned control (the teacher fine-tuned for the same steps) in the records either,
    the verdict is held at indicative.

    Args:
        records: the paired records (settings ``bits``, ``trained`` and ``tuned``).
        profile: the records' profile; ``None`` reads it.
        control: other records that hold the float fine-tuned control, when ``records`` do not.

    Example:
        >>> trained_beats_post_sharing(records_frame(paired), control=all_records).verdict  # doctest: +SKIP
    """
    rows = _encoding_rows(records)
    control = control_rows(pd.concat([rows, check_records(control)]) if control is not None else rows)
    # k-means sharing only: a sweep's uniform-grid rows (settings quantizer "uniform") are another quantizer
    rows = rows[rows["trained"].notna() & rows["bits"].notna() & (rows["quantizer"].fillna("k-means") == "k-means")]
    verdicts, table, decided, notes = {}, [], [], []
    if control.empty:
        notes.append("no float fine-tuned control in the records: trained sharing's gain may be fine-tuning's, "
                     "so the verdict is at most indicative")
    for (bench, bits), group in rows.groupby(["benchmark", "bits"], sort=False):
        higher, metric = _quality(group, bench)
        flags = group["trained"].map(as_bool)
        frozen = group[(flags == False) & (group["tuned"] == "rest")]  # noqa: E712
        reference_rows = frozen if len(frozen) else group[(flags == False) & (group["tuned"] != "rest")]  # noqa: E712
        reference = "centroids frozen" if len(frozen) else "post-training"
        trained, post = arm_of("trained", group[flags == True]), arm_of(reference, reference_rows)  # noqa: E712
        if not trained.n or not post.n:
            continue
        decision = decide(trained, post, higher, "better")
        key = f"{bench} {int(bits)}-bit"
        word = decision.verdict
        if (control.empty or not len(frozen)) and word in (Verdict.SUPPORTED, Verdict.CONTRADICTED):
            word = Verdict.INDICATIVE
        verdicts[key] = word
        decided.append(({"benchmark": bench, "bits": int(bits)}, decision))
        untouched = arm_of("post-training", group[(flags == False) & (group["tuned"] != "rest")])  # noqa: E712
        table.append(dict(benchmark=bench, bits=int(bits), metric=metric, trained=trained.mean, reference=reference,
                          reference_value=post.mean, post_training=untouched.mean, seeds=min(trained.n, post.n),
                          decision=decision.text(), verdict=word))
    if len(rows) and not (rows["tuned"] == "rest").any():
        notes.append("no arm with the centroids frozen: the trained arm is compared with untouched post-training "
                     "sharing, so its gain may be fine-tuning's, and the verdict is at most indicative")
    seeds = fewest_seeds(decided)
    check = Check("ES", "Trained weight sharing (fine-tuned centroids) beats sharing with the post-training "
                  "centroids at the same bits (Han et al. 2016, on GAN generators).", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts, notes + (seed_note(seeds, profile_of(rows, profile)) if seeds else []),
                  {}, source="measured", basis="this project's reading", seeds=seeds,
                  decisions=decisions_frame(decided), rule=RULE)
    parts = [f"{r.benchmark} at {r.bits} bits: trained {r.trained:.4g}, {r.reference} {r.reference_value:.4g} "
             f"({r.metric}): {r.decision}." for r in check.evidence.itertuples()] if len(check.evidence) \
        else ["No paired arms to compare."]
    parts += [f"Note: {n}." for n in check.notes]
    check.summary = " ".join(parts)
    return check


def encoding_target(records: pd.DataFrame, ratio: float = 40.0, benchmark: str = "mnist-dcgan",
                    teacher: str = "teacher", profile: str | None = None) -> Check:
    """ET: encoding cuts the generator's stored bytes ``ratio`` times or more with quality *as good as* the
    teacher's by the rule (Deep Compression reached 35-49x on classifiers, Han et al. 2016).

    Per technique of ``benchmark``, the rule (:mod:`gansurvey.claims.rule`) asks whether it is as good as the
    teacher (tolerance: one run's noise of the float fine-tuned control, else the teacher's). Supported when a
    technique that holds reaches ``ratio`` (a best-of over the techniques, chosen on the numbers it is reported
    on, so held at indicative when more than one technique was tried); contradicted when every technique that
    reaches ``ratio`` is decided worse; not testable when none reaches it; indicative otherwise. The summary
    says where the frontier is and what the largest cut costs.

    Example:
        >>> encoding_target(records_frame(records)).verdict  # doctest: +SKIP
    """
    check_number("ratio", ratio, minimum=1)
    rows = _encoding_rows(records)
    rows = rows[rows["benchmark"] == benchmark]
    base_rows = rows[rows["technique"] == teacher]
    verdicts, table, decided, notes = {}, [], [], []
    if not base_rows.empty and len(rows) > len(base_rows):
        higher, metric = _quality(rows, benchmark)
        base = arm_of(teacher, base_rows)
        noise, note = _noise(rows, base)
        notes += [note] if note else []
        teacher_b = float(base_rows["stored_bytes"].mean())
        candidates = rows[(rows["technique"] != teacher) & ~control_family(rows)]
        for technique, group in candidates.groupby("technique", sort=False):
            decision = decide(arm_of(technique, group), base, higher, "as good as", noise_reference=noise)
            decided.append(({"benchmark": benchmark, "technique": technique}, decision))
            q = float(group.groupby("seed")["primary_value"].mean().mean())
            table.append(dict(benchmark=benchmark, technique=technique, metric=metric, quality=q,
                              stored_bytes=float(group["stored_bytes"].mean()),
                              stored_bytes_x=teacher_b / float(group["stored_bytes"].mean()),
                              relative_loss=relative_loss(q, base.mean, higher), seeds=decision.n[technique],
                              teacher=base.mean, holds=decision.verdict == Verdict.SUPPORTED,
                              decision=decision.text()))
        frame = pd.DataFrame(table)
        reaching = frame[frame["stored_bytes_x"] >= ratio]
        words = {d.verdict for k, d in decided if k["technique"] in set(reaching["technique"])}
        if reaching.empty:
            verdicts[benchmark] = Verdict.NOT_TESTABLE
            notes.append(f"no encoded model reaches {ratio:g}x")
        elif Verdict.SUPPORTED in words:
            verdicts[benchmark] = Verdict.SUPPORTED if len(frame) == 1 else Verdict.INDICATIVE
            if len(frame) > 1:
                notes.append(f"the frontier is a best-of over {len(frame)} techniques, {ON_REPORTED}")
        elif words == {Verdict.CONTRADICTED}:
            verdicts[benchmark] = Verdict.CONTRADICTED
        else:
            verdicts[benchmark] = Verdict.INDICATIVE
        table = frame.sort_values("stored_bytes_x").to_dict("records")
    else:
        verdicts[benchmark] = Verdict.NOT_TESTABLE
    evidence = pd.DataFrame(table)
    seeds = fewest_seeds(decided)
    check = Check("ET", f"Encoding (with pruning) cuts {benchmark}'s stored bytes {ratio:g}x or more with quality "
                  "as good as the teacher's, as Deep Compression did for classifiers (35-49x).",
                  combine(verdicts.values()), "", evidence, verdicts,
                  notes + (seed_note(seeds, profile_of(rows, profile)) if seeds else []),
                  {"ratio": ratio}, source="measured", basis="surveyed work", seeds=seeds,
                  decisions=decisions_frame(decided), rule=RULE)
    if len(evidence):
        ok = evidence[evidence["holds"]]
        top = evidence.loc[evidence["stored_bytes_x"].idxmax()]
        frontier = (f"the largest cut as good as the teacher is {ok['stored_bytes_x'].max():.1f}x "
                    f"({ok.loc[ok['stored_bytes_x'].idxmax(), 'technique']})" if len(ok) else
                    "no encoded model is shown as good as the teacher")
        loss = float(top["relative_loss"])
        cost = f"{abs(loss):.0%} {'worse' if loss > 0 else 'better'} quality than the teacher"
        check.summary = (f"{benchmark}: teacher {evidence['teacher'].iloc[0]:.4g} ({evidence['metric'].iloc[0]}); "
                         f"{frontier}; the largest cut measured, {top['stored_bytes_x']:.1f}x ({top['technique']}), "
                         f"comes at {cost} ({top['decision']}); {verdicts[benchmark]}. "
                         + " ".join(f"Note: {n}." for n in check.notes))
    else:
        check.summary = f"{benchmark}: no teacher and encoded records to compare (not testable)."
    return check
