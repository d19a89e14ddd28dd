"""Notebook 05's claims on measured records: the bits encoding needs, trained vs post-training sharing, and the
Deep Compression target."""

from __future__ import annotations

import pandas as pd

from gansurvey.checks import check_number
from gansurvey.claims.common import (
    as_bool,
    check_records,
    configurations,
    higher_is_better,
    profile_of,
    relative_loss,
    seed_note,
)
from gansurvey.claims.verdict import Check, Verdict, combine
from gansurvey.records import settings_of


def _encoding_rows(records: pd.DataFrame) -> pd.DataFrame:
    rows = check_records(records)
    parsed = rows["settings"].map(settings_of)
    for key in ("bits", "quantizer", "trained"):
        rows[key] = parsed.map(lambda s, k=key: s.get(k))
    rows["stored_bytes"] = pd.to_numeric(rows.get("stored_bytes"), errors="coerce")
    return rows


def _quality(group: pd.DataFrame, bench: str) -> tuple[bool, str]:
    metric = str(group["primary_metric"].iloc[0])
    return higher_is_better(configurations(group), bench, metric), metric


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
        sweep = group[(group["quantizer"] == quantizer) & (group["trained"].map(as_bool) != True)  # noqa: E712
                      & group["bits"].notna()]
        if base.empty or sweep.empty:
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        higher, metric = _quality(group, bench)
        per_bits = sweep.groupby("bits")["primary_value"].agg(["mean", "std", "count"]).sort_index()
        losses = {int(b): relative_loss(r["mean"], float(base.mean()), higher) for b, r in per_bits.iterrows()}
        # the fewest bits from which every larger width tried also stays within tolerance
        needed = next((b for b in sorted(losses) if all(losses[c] <= tolerance for c in losses if c >= b)), None)
        verdicts[bench] = Verdict.SUPPORTED if needed is not None and needed <= reference_bits else Verdict.CONTRADICTED
        for b, r in per_bits.iterrows():
            table.append(dict(benchmark=bench, metric=metric, bits=int(b), teacher=float(base.mean()),
                              mean=float(r["mean"]), spread=float(r["std"]) if r["count"] > 1 else 0.0,
                              seeds=int(r["count"]), relative_loss=losses[int(b)],
                              within_tolerance=losses[int(b)] <= tolerance, bits_needed=needed,
                              verdict=verdicts[bench]))
    seeds = int(min((r["seeds"] for r in table), default=0))
    check = Check("EB", f"A GAN generator keeps its quality with {reference_bits}-bit shared weights or fewer, as "
                  "classifiers do under Deep Compression (Han et al. 2016).", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts, seed_note(seeds, profile_of(rows, profile)) if seeds else [],
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
        arms = {flag: group[group["trained"].map(as_bool) == flag]["primary_value"] for flag in (True, False)}
        if arms[True].empty or arms[False].empty:
            continue
        stats = {flag: (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v))
                 for flag, v in arms.items()}
        gain = (stats[True][0] - stats[False][0]) * (1 if higher else -1)
        spread = max(stats[True][1], stats[False][1])
        outcome = "trained" if gain > spread else "post-training" if -gain > spread else "tie"
        key = f"{bench} {int(bits)}-bit"
        verdicts[key] = Verdict.SUPPORTED if outcome == "trained" else Verdict.CONTRADICTED
        table.append(dict(benchmark=bench, bits=int(bits), metric=metric, trained=stats[True][0],
                          trained_spread=stats[True][1], post_training=stats[False][0],
                          post_spread=stats[False][1], seeds=min(stats[True][2], stats[False][2]),
                          gain=gain, outcome=outcome, verdict=verdicts[key]))
    seeds = int(min((r["seeds"] for r in table), default=0))
    check = Check("ES", "Trained weight sharing (fine-tuned centroids) beats post-training sharing at the same "
                  "bits (Han et al. 2016, on GAN generators).", combine(verdicts.values()), "",
                  pd.DataFrame(table), verdicts, seed_note(seeds, profile_of(rows, profile)) if seeds else [],
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
                              relative_loss=relative_loss(q, teacher_q, higher), seeds=int(group["seed"].nunique()),
                              teacher=teacher_q))
        frame = pd.DataFrame(table)
        frame["within_tolerance"] = frame["relative_loss"] <= tolerance
        best = frame[frame["within_tolerance"]]["stored_bytes_x"].max() if frame["within_tolerance"].any() else 0.0
        verdicts[benchmark] = Verdict.SUPPORTED if best >= ratio else Verdict.CONTRADICTED
        table = frame.sort_values("stored_bytes_x").to_dict("records")
    else:
        verdicts[benchmark] = Verdict.NOT_TESTABLE
    evidence = pd.DataFrame(table)
    seeds = int(evidence["seeds"].min()) if len(evidence) else 0
    check = Check("ET", f"Encoding (with pruning) cuts {benchmark}'s stored bytes {ratio:g}x or more at no more than "
                  f"{tolerance:.0%} worse quality, as Deep Compression did for classifiers (35-49x).",
                  combine(verdicts.values()), "", evidence, verdicts,
                  seed_note(seeds, profile_of(rows, profile)) if seeds else [],
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
