"""The combinations notebook's claims, checked on the records measured here.

- F3, :func:`combinations_beat_single`: combining techniques beats any single family at the same cost (this
  project's reading of the survey's abstract, which names combinations of techniques as an open gap).
- F4 measured, :func:`bytes_pay_where_memory_bound`: cutting bytes (and not MACs) speeds a generator up where
  the run is memory-bound; this project's test, by timing, of the premise the survey's abstract states. It needs
  an engine that executes the compressed format: decode-to-float layers move as many bytes as the float model.
- The headline targets, :func:`headline_target`: the largest cost reduction whose quality is as good as the
  teacher fine-tuned for the same steps and better than the dense-from-scratch model of its size, chosen apart
  from the numbers it is reported on where the records allow it.

Every comparison goes through the one rule (:mod:`gansurvey.claims.rule`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from gansurvey.checks import check_choice, check_number
from gansurvey.claims.common import (
    arm_of,
    control_family,
    control_rows,
    decisions_frame,
    fewest_seeds,
    noise_arm,
    seed_note,
)
from gansurvey.claims.dense import COSTS as DENSE_COSTS
from gansurvey.claims.dense import dense_of_its_size, dense_rows
from gansurvey.claims.rule import RULE, Arm, Decision, all_of, decide
from gansurvey.claims.selection import (
    ON_REPORTED,
    VALIDATION_BASIS,
    VALIDATION_COLUMN,
    Selection,
    held_back,
    select_best,
)
from gansurvey.claims.verdict import Check, Verdict, combine
from gansurvey.compress import FAMILIES
from gansurvey.records import settings_of, was_timed_under_load

#: Settings that tell the stages of one pipeline apart (the same pipeline measured after each stage).
STAGE_KEYS = ("stage", "coder")
#: Engines that decode a compressed layer to float before computing: they time the float model's traffic.
DECODE_ENGINES = ("", "reference", "reference-dense", "decode", "float", "dense", "none", "nan")
#: A model at least this many times worse than the teacher (a lower-is-better metric multiplied, a
#: higher-is-better one divided) has collapsed; comparisons between two collapsed models count for nothing.
COLLAPSE_FACTOR = 2.0


def _higher(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def _profile(records: pd.DataFrame) -> str | None:
    profiles = set(records["profile"].dropna()) if "profile" in records else set()
    return profiles.pop() if len(profiles) == 1 else None


def records_note(records: pd.DataFrame, own: str = "06_combinations") -> str:
    """Where a verdict's records come from: this notebook's own runs, or also stored records of other
    notebooks, and of which commit(s) where the records say."""
    if "notebook" not in records.columns or records.empty:
        return "records of unknown origin"
    books = sorted({str(b) for b in records["notebook"].dropna()})
    others = [b for b in books if b != own]
    if not others:
        return f"computed from {own}'s own runs"
    commits = sorted({str(c) for c in records["commit"].dropna()}) if "commit" in records.columns else []
    which = (f"of commit {commits[0]}" if len(commits) == 1 else
             f"of {len(commits)} different commits ({', '.join(commits)})" if commits else
             "whose commit is not recorded, so they may come from another version of the code")
    mine = f"{own}'s runs and " if own in books else ""
    return f"computed from {mine}stored records of {', '.join(others)} {which}"


def _mixed_commits(records: pd.DataFrame) -> bool:
    return "commit" in records.columns and records["commit"].dropna().nunique() > 1


def _collapsed(value: float, teacher: float | None, higher: bool, factor: float) -> bool:
    if teacher is None or not np.isfinite(teacher) or teacher == 0:
        return False
    return value <= teacher / factor if higher else value >= teacher * factor


def _pipelines(combined: pd.DataFrame) -> pd.DataFrame:
    """Each record's pipeline: stage-by-stage records of one pipeline (settings with a ``stage``) share one key;
    every other record is its own pipeline (its technique)."""
    def key(row: pd.Series) -> str:
        settings = settings_of(row.get("settings", "{}"))
        if "stage" not in settings:
            return str(row["technique"])
        rest = {k: v for k, v in settings.items() if k not in STAGE_KEYS}
        return f"{row.get('notebook', '')} {row['family']} {sorted(rest.items())}"
    return combined.assign(pipeline=[key(r) for _, r in combined.iterrows()])


def combinations_beat_single(records: pd.DataFrame, costs: tuple[str, ...] = ("stored_bytes", "macs"),
                             tolerance: float = 0.10, teacher: str = "teacher",
                             collapse_factor: float = COLLAPSE_FACTOR,
                             selection_seeds: Collection[int] | None = None) -> Check:
    """F3: each combination *pipeline* against the best single-family configuration that costs no more (within
    ``tolerance``, a cost match, not a quality margin) on each cost axis, by the rule (``better``).

    A pipeline measured after each of its stages counts once, by its final stage (the fewest stored bytes: the
    end of the chain, chosen on cost, not on quality). A combination cheaper than every single-family
    configuration *reaches* a cost no single family reached: that counts for the claim unless the combination
    has collapsed. A model at least ``collapse_factor`` times worse than the teacher has collapsed; a pair where
    both have collapsed is left out (one useless model beating another says nothing). The best single family at
    a cost is a best-of, chosen on ``selection_seeds`` where given, else on the reported numbers (held at
    indicative). Per (benchmark, cost) the pipelines' words are combined (mixed when decided ones disagree).

    Args:
        records: measured records (single-family and pipeline rows, with the teacher).
        costs: the cost columns compared on.
        tolerance: how much more a single-family record may cost and still be "at the same cost".
        teacher: the teacher's technique label (for the collapse test).
        collapse_factor: how many times worse than the teacher counts as collapsed.
        selection_seeds: seeds on which the best single family is chosen (and not reported).

    Example:
        >>> combinations_beat_single(frame).verdict  # doctest: +SKIP
    """
    for cost in costs:
        check_choice("cost", cost, ("stored_bytes", "macs", "latency_ms", "energy_uj"))
    check_number("tolerance", tolerance, minimum=0)
    check_number("collapse_factor", collapse_factor, minimum=1)
    records = records.assign(settings=records["settings"] if "settings" in records else "{}")
    everything, records = records, records[~control_family(records)]
    single = records[records["family"].isin(FAMILIES)]
    combined = _pipelines(records[records["family"].astype(str).str.contains("+", regex=False)])
    table, verdicts, decided, notes = [], {}, [], [records_note(records)]
    pairs = [(bench, cost) for bench in records["benchmark"].unique() for cost in costs]
    for bench, cost in pairs:
        s, c = single[single["benchmark"] == bench], combined[combined["benchmark"] == bench]
        if s.empty or c.empty:
            verdicts[f"{bench} / {cost}"] = Verdict.NOT_TESTABLE
            continue
        higher = _higher(c["higher_is_better"].iloc[0])
        base = records[(records["benchmark"] == bench) & (records["technique"] == teacher)]
        teacher_q = float(pd.to_numeric(base["primary_value"]).mean()) if len(base) else None
        words = []
        for pipeline, rows in c.groupby("pipeline", sort=False):
            final = rows.loc[rows.groupby("technique")["stored_bytes"].transform("mean").idxmin(), "technique"]
            rows = rows[rows["technique"] == final]
            arm = arm_of(str(final), rows)
            spend = float(rows[cost].mean())
            rivals = s[s[cost] <= spend * (1 + tolerance)].assign(config=lambda f: f["technique"])
            gone = _collapsed(arm.mean, teacher_q, higher, collapse_factor)
            entry: dict[str, Any] = {"benchmark": bench, "cost": cost, "pipeline": pipeline, "combination": final,
                                     "combination cost": spend, "combination quality": arm.mean,
                                     "combination collapsed": gone}
            if rivals.empty:
                outcome = "reach (collapsed: not counted)" if gone else "reach"
                words.append(Verdict.NOT_TESTABLE if gone else Verdict.SUPPORTED)
                table.append({**entry, "outcome": outcome})
                continue
            pick: Selection = select_best(rivals, "config", higher, selection_seeds)
            rival = arm_of(pick.choice, pick.report)
            rival_gone = _collapsed(rival.mean, teacher_q, higher, collapse_factor)
            entry |= {"best single family": pick.choice,
                      "its family": str(rivals.loc[rivals["technique"] == pick.choice, "family"].iloc[0]),
                      "its cost": float(rivals.loc[rivals["technique"] == pick.choice, cost].mean()),
                      "its quality": rival.mean, "selection": pick.basis}
            if gone and rival_gone:
                words.append(Verdict.NOT_TESTABLE)
                table.append({**entry, "outcome": "both collapsed: not counted"})
                continue
            decision = decide(arm, rival, higher, "better",
                              noise_reference=noise_arm(everything[everything["benchmark"] == bench]))
            decided.append(({"benchmark": bench, "cost": cost, "pipeline": pipeline}, decision))
            word = held_back(decision.verdict, pick)
            words.append(word)
            table.append({**entry, "outcome": f"{word}: {decision.text()}"})
        verdicts[f"{bench} / {cost}"] = combine(words)
    seeds = fewest_seeds(decided)
    overall = combine(verdicts.values())
    if _mixed_commits(records) and overall in (Verdict.SUPPORTED, Verdict.CONTRADICTED):
        overall = Verdict.INDICATIVE
        notes.append("the records come from different commits, so the verdict is held at indicative")
    evidence = pd.DataFrame(table)
    check = Check("F3", "Combining compression techniques beats any single family at the same cost.",
                  overall, "", evidence, verdicts,
                  notes + (seed_note(seeds, _profile(records)) if seeds else []),
                  {"tolerance": tolerance, "collapse_factor": collapse_factor, "costs": list(costs)},
                  source="measured", basis="this project's reading", seeds=seeds,
                  decisions=decisions_frame(decided), rule=RULE)
    counted = evidence["pipeline"].nunique() if len(evidence) else 0
    check.summary = (f"{counted} combination pipeline(s) (a pipeline measured after each stage counts once), "
                     f"{len(evidence)} pipeline-versus-single comparisons over {len(costs)} cost(s) (a single "
                     f"family at a cost no more than {tolerance:.0%} above the pipeline's). Per benchmark and cost: "
                     + "; ".join(f"{k}: {v}" for k, v in verdicts.items()) + ". "
                     + " ".join(f"Note: {n}." for n in check.notes))
    return check


def compressed_engine(value: object) -> bool:
    """Whether an ``engine`` entry names engines that execute the compressed format (every one listed, separated
    by ``;`` or ``,``), not a decode-to-float path.

    Example:
        >>> compressed_engine("triton-weight-only"), compressed_engine("reference"), compressed_engine(None)
        (True, False, False)
    """
    names = [n.strip().lower() for n in str(value).replace(",", ";").split(";")] if value is not None else [""]
    return bool(names) and all(n not in DECODE_ENGINES and not n.startswith("reference") for n in names)


def bytes_pay_where_memory_bound(records: pd.DataFrame, baseline: str = "teacher", mac_tolerance: float = 0.10,
                                 min_bytes_x: float = 2.0, roofline: pd.DataFrame | None = None,
                                 batches: tuple[int, ...] = (1, 8, 64)) -> Check:
    """F4 measured: models that cut stored bytes by ``min_bytes_x`` or more while keeping the teacher's MACs
    (within ``mac_tolerance``), the pure memory-compression arms (precision, encoding), each record timed on its
    fastest faithful engine (:func:`gansurvey.measuring.fastest_form`), by the rule: is their latency *better*
    (lower) than the teacher's?

    Only arms whose ``engine`` column names an engine that executes the compressed format count
    (:func:`compressed_engine`); a record without an ``engine`` column has none. Without such an arm the claim is
    *not testable here*: a decode-to-float layer moves the float model's bytes, so its timing says nothing about
    what fewer bytes buy; the note then says which regime the teacher is in at each batch size (the roofline:
    from ``roofline``, 06's measured table, else its arithmetic intensity per batch from the records, to set
    against the device's machine balance). Per benchmark the arms' words are combined. An integer engine
    (``*-int8*``) also computes in int8, so what it gains is not the bytes' alone: the summary says so.

    Args:
        records: measured records with the teacher (``technique == baseline``).
        baseline: the teacher's technique label.
        mac_tolerance: how far MACs may differ from the teacher's for a model to count as bytes-only.
        min_bytes_x: the stored-bytes reduction a model needs to count.
        roofline: :func:`gansurvey.experiments.combinations.roofline`'s table (columns benchmark, name, batch,
            regime, intensity, machine_balance), whose ``baseline`` rows give the teacher's measured regimes.
        batches: batch sizes of the intensity note when ``roofline`` has no rows for a benchmark.
    """
    check_number("min_bytes_x", min_bytes_x, minimum=1)
    table, verdicts, decided, notes = [], {}, [], [records_note(records)]
    loaded = records.apply(was_timed_under_load, axis=1) if len(records) else pd.Series(dtype=bool)
    if loaded.any():  # timed beside other work (a parallel regeneration): no speed evidence
        notes.append(f"{int(loaded.sum())} record(s) timed under load left out")
        records = records[~loaded]
    engines = records["engine"] if "engine" in records.columns else pd.Series(None, index=records.index)
    for bench, group in records.groupby("benchmark", sort=False):
        base_rows = group[group["technique"] == baseline]
        if base_rows.empty:
            verdicts[bench] = Verdict.NOT_TESTABLE
            continue
        base_macs, base_bytes = float(base_rows["macs"].mean()), float(base_rows["stored_bytes"].mean())
        arms = group[(group["technique"] != baseline)
                     & ((group["macs"] - base_macs).abs() <= mac_tolerance * base_macs)
                     & (base_bytes / group["stored_bytes"] >= min_bytes_x)]
        if arms.empty:
            verdicts[bench] = Verdict.NOT_TESTABLE
            notes.append(f"{bench}: no bytes-only model")
            continue
        executed = arms[[compressed_engine(engines.get(i)) for i in arms.index]]
        if executed.empty:
            verdicts[bench] = Verdict.NOT_TESTABLE
            notes.append(f"{bench}: not testable here: no record names an engine that executes the compressed "
                         f"format ({arms['technique'].nunique()} bytes-only model(s) ran decode-to-float); "
                         + regime_note(bench, base_rows, baseline, roofline, batches))
            continue
        if len(executed) < len(arms):
            left = arms.drop(executed.index)["technique"].nunique()
            notes.append(f"{bench}: {left} bytes-only model(s) that ran decode-to-float left out")
        base_arm = Arm.of(baseline, base_rows.groupby("seed")["latency_ms"].mean())
        words = []
        for technique, rows in executed.groupby("technique", sort=False):
            arm = Arm.of(str(technique), rows.groupby("seed")["latency_ms"].mean())
            decision = decide(arm, base_arm, higher_is_better=False, question="better")
            decided.append(({"benchmark": bench, "technique": technique}, decision))
            words.append(decision.verdict)
            table.append({"benchmark": bench, "technique": technique, "family": rows["family"].iloc[0],
                          "engine": str(engines.get(rows.index[0])),
                          "stored_bytes_x": base_bytes / float(rows["stored_bytes"].mean()),
                          "macs_x": base_macs / float(rows["macs"].mean()),
                          "speedup_x": base_arm.mean / arm.mean, "decision": decision.text()})
        verdicts[bench] = combine(words)
    seeds = fewest_seeds(decided)
    evidence = pd.DataFrame(table)
    integer = sorted({e for e in evidence.get("engine", pd.Series(dtype=str)) if "int8" in str(e)})
    if integer:
        notes.append(f"{', '.join(integer)} also compute{'s' if len(integer) == 1 else ''} in int8 (uint8 "
                     "activations, int32 accumulation): the speed-up is fewer bytes and cheaper arithmetic "
                     "together, not the bytes' alone")
    check = Check("F4 (measured)", "Cutting the bytes a generator stores (not its MACs) makes it faster: memory "
                  "traffic is what costs.", combine(verdicts.values()), "", evidence, verdicts,
                  notes + (seed_note(seeds, _profile(records)) if seeds else []),
                  {"mac_tolerance": mac_tolerance, "min_bytes_x": min_bytes_x}, source="measured",
                  basis="this project's reading", seeds=seeds, decisions=decisions_frame(decided), rule=RULE)
    parts = [f"{r.benchmark}: {r.technique} on {r.engine}, {r.speedup_x:.2f}x ({r.decision})"
             for r in evidence.itertuples()] if len(evidence) else []
    check.summary = ("; ".join(parts) or "No bytes-only model was timed on a compressed-execution engine") + (
        f". Bytes-only: stored bytes cut {min_bytes_x:g}x or more with MACs within {mac_tolerance:.0%} of the "
        f"teacher's; timed at the records' batch on the device that measured them. "
        + " ".join(f"Note: {n}." for n in notes))
    return check


def regime_note(benchmark: str, teacher_rows: pd.DataFrame, baseline: str = "teacher",
                roofline: pd.DataFrame | None = None, batches: tuple[int, ...] = (1, 8, 64)) -> str:
    """Which regime the teacher of ``benchmark`` is in at each batch size: from ``roofline`` (06's measured table:
    its ``baseline`` rows for the benchmark) when it has them, else its arithmetic intensity per batch computed
    from the records (FLOPs over weight bytes read once plus activation bytes per sample), to set against the
    device's machine balance: below it a run is memory-bound, where fewer bytes could pay."""
    if roofline is not None and len(roofline) and {"benchmark", "name", "batch", "regime"} <= set(roofline.columns):
        rows = roofline[(roofline["benchmark"] == benchmark) & (roofline["name"] == baseline)].sort_values("batch")
        if len(rows):
            balance = (f" (machine balance {float(rows['machine_balance'].iloc[0]):.3g} FLOP/byte, intensity "
                       + ", ".join(f"{float(v):.3g}" for v in rows["intensity"]) + ")"
                       if {"machine_balance", "intensity"} <= set(rows.columns) else "")
            where = str(rows["device"].iloc[0]) if "device" in rows.columns else "the device that measured it"
            return (f"the teacher on {where} is " + ", ".join(f"{r} at batch {int(b)}" for b, r in
                                                           zip(rows["batch"], rows["regime"], strict=True))
                    + balance + " (06's roofline)")
    need = ("macs", "weight_traffic_bytes", "activation_traffic_bytes")
    if not set(need) <= set(teacher_rows.columns) or teacher_rows[list(need)].isna().any().any():
        return "the teacher's regime per batch is unknown here (no roofline, and the records lack its traffic)"
    macs, weights, acts = (float(teacher_rows[c].mean()) for c in need)
    intensity = [2 * macs * b / (weights + acts * b) for b in batches]
    return ("the teacher's arithmetic intensity is " + ", ".join(f"{i:.3g} FLOP/byte at batch {b}" for b, i in
                                                               zip(batches, intensity, strict=True))
            + ": memory-bound (where fewer bytes could pay) at the batches below the device's machine balance, "
              "compute-bound above it (06's roofline measures the balance)")


def headline_target(records: pd.DataFrame, benchmark: str, cost: str, target_x: float, baseline: str = "teacher",
                    selection_seeds: Collection[int] | None = None) -> dict[str, Any]:
    """A headline target: the largest cut of ``cost`` (baseline / arm) among ``benchmark``'s compressed arms
    whose quality is *as good as* the reference's by the rule and, where dense-from-scratch controls were
    measured, *better* than the control of its size (:mod:`gansurvey.claims.dense`); does it reach ``target_x``?

    The reference is the teacher fine-tuned for the same steps (the records' control) where the records hold
    it, else ``baseline``. Taking the largest cut is a best-of, so it is chosen on other numbers than those it
    is reported on: the records' validation samples where every record has one, else ``selection_seeds`` (chosen
    on those seeds, reported on the others), else the reported numbers themselves, and then a met target reads
    *indicative*. Records without any dense control cannot show that compression beats a smaller model: a met
    target then reads *indicative* too.

    Returns a dict: benchmark, cost, target_x, baseline_quality, reference, best_technique, best_x,
    best_quality, dense_control, verdict (supported / contradicted / indicative / not testable), decision (the
    rule's evidence against the reference), versus_dense (against the dense control) and selection.
    """
    check_choice("cost", cost, ("stored_bytes", "macs", "latency_ms", "energy_uj"))
    check_number("target_x", target_x, minimum=1)
    rows = records[records["benchmark"] == benchmark]
    base_rows = rows[rows["technique"] == baseline]
    out: dict[str, Any] = {"benchmark": benchmark, "cost": cost, "target_x": target_x, "baseline_quality": None,
                           "reference": None, "best_technique": None, "best_x": None, "best_quality": None,
                           "dense_control": None, "verdict": Verdict.NOT_TESTABLE, "decision": "",
                           "versus_dense": "", "selection": ""}
    if base_rows.empty:
        out["decision"] = f"not testable: no {baseline!r} record for {benchmark!r}"
        return out
    higher = _higher(base_rows["higher_is_better"].iloc[0])
    control = control_rows(rows)
    ref_rows = control if len(control) else base_rows
    ref_label = str(ref_rows["technique"].iloc[0])
    out["baseline_quality"], out["reference"] = arm_of(baseline, base_rows).mean, ref_label
    candidates = rows[(rows["technique"] != baseline) & ~control_family(rows)]
    with_dense = cost in DENSE_COSTS and not dense_rows(rows).empty
    split = _HeadlineSplit(rows, selection_seeds)
    base_cost = float(base_rows[cost].mean())

    def dense_for(group: pd.DataFrame) -> pd.DataFrame:
        return dense_of_its_size(rows, cost, float(group[cost].mean())) if with_dense else rows.iloc[0:0]

    def tests_of(technique: str, part: str) -> list[Decision]:
        """As good as the reference, and better than the dense control of its size where there is one; when
        choosing, one seed may decide (the seed rule applies to the reported decision)."""
        group = candidates[candidates["technique"] == technique]
        arm, reference = split.arm(technique, group, part), split.arm(ref_label, ref_rows, part)
        least = {"min_seeds": 1} if part == "choose" else {}
        found = [decide(arm, reference, higher, "as good as", **least)]
        dense = dense_for(group)
        if len(dense):
            found.append(decide(arm, split.arm(str(dense["technique"].iloc[0]), dense, part), higher, "better",
                                noise_reference=reference, **least))
        return found

    cuts = {str(t): base_cost / float(g[cost].mean()) for t, g in candidates.groupby("technique", sort=False)}
    holding = [(x, t) for t, x in cuts.items() if all_of(tests_of(t, "choose")) == Verdict.SUPPORTED]
    reaching = [t for t, x in cuts.items() if x >= target_x]

    def reaching_word() -> Verdict:
        words = {all_of(tests_of(t, "report")) for t in reaching}
        return Verdict.CONTRADICTED if words == {Verdict.CONTRADICTED} else Verdict.INDICATIVE

    if not reaching:
        out["decision"] = f"not testable: no technique cuts {cost} {target_x:g}x"
    if not holding:
        out["decision"] = out["decision"] or (f"no technique is shown as good as {ref_label!r}"
                                              + (" and better than the dense control of its size"
                                                 if with_dense else ""))
        if reaching:
            out["verdict"] = reaching_word()
        return out
    best_x, best = max(holding)
    best_rows = candidates[candidates["technique"] == best]
    decisions = tests_of(best, "report")
    dense = dense_for(best_rows)
    if len(dense):
        out["dense_control"], out["versus_dense"] = str(dense["technique"].iloc[0]), decisions[1].text()
    else:
        out["versus_dense"] = ("not testable: no dense-from-scratch control in these records" if not with_dense
                               else "not testable: it costs more than every dense control")
    if best_x >= target_x:
        verdict = all_of(decisions)
        if not split.honest or not len(dense):
            verdict = held_back(verdict, Selection(best, ON_REPORTED, False, best_rows, 2))
    else:
        verdict = reaching_word() if reaching else Verdict.NOT_TESTABLE
    out |= {"best_technique": best, "best_x": best_x,
            "best_quality": split.arm(best, best_rows, "report").mean, "verdict": verdict,
            "decision": decisions[0].text(), "selection": split.basis if candidates["technique"].nunique() > 1
            else "only candidate"}
    return out


#: The columns of :func:`headline_by_family`.
BY_FAMILY_COLUMNS = ["benchmark", "cost", "family", "deepest_x", "deepest_technique", "deepest_quality",
                     "reference_quality", "holding_x", "holding_technique", "verdict", "decision"]


def headline_by_family(records: pd.DataFrame, benchmark: str, cost: str, target_x: float,
                       baseline: str = "teacher", selection_seeds: Collection[int] | None = None) -> pd.DataFrame:
    """Where the quality goes on the way to a headline target: per family (or combination) of ``benchmark``'s
    compressed arms, the deepest cut of ``cost`` any of its arms reaches (``deepest_x``) and that arm's quality
    (``deepest_quality``, mean over seeds, beside the reference's), and the largest cut that holds by
    :func:`headline_target`'s tests run over that family's arms alone (``holding_x``; against the same teacher,
    control and dense controls), with that search's verdict and evidence. One row per family, in record order."""
    check_choice("cost", cost, ("stored_bytes", "macs", "latency_ms", "energy_uj"))
    rows = records[records["benchmark"] == benchmark]
    base_rows = rows[rows["technique"] == baseline]
    if base_rows.empty:
        return pd.DataFrame(columns=BY_FAMILY_COLUMNS)
    fixed = rows[(rows["technique"] == baseline) | control_family(rows)]
    control = control_rows(rows)
    reference_quality = float((control if len(control) else base_rows)["primary_value"].mean())
    base_cost = float(base_rows[cost].mean())
    out = []
    for family, arms in rows.drop(fixed.index).groupby("family", sort=False):
        cuts = base_cost / arms.groupby("technique", sort=False)[cost].mean()
        deepest = str(cuts.idxmax())
        found = headline_target(pd.concat([fixed, arms]), benchmark, cost, target_x, baseline, selection_seeds)
        out.append({"benchmark": benchmark, "cost": cost, "family": family, "deepest_x": float(cuts.max()),
                    "deepest_technique": deepest,
                    "deepest_quality": float(arms.loc[arms["technique"].astype(str) == deepest, "primary_value"]
                                             .mean()),
                    "reference_quality": reference_quality, "holding_x": found["best_x"],
                    "holding_technique": found["best_technique"], "verdict": str(Verdict.of(found["verdict"])),
                    "decision": found["decision"]})
    return pd.DataFrame(out, columns=BY_FAMILY_COLUMNS)


class _HeadlineSplit:
    """Which numbers a headline's best-of is chosen on and which it is reported on (see :func:`headline_target`):
    the records' validation values, else ``selection_seeds`` against the other seeds, else the reported values
    for both (not honest)."""

    def __init__(self, rows: pd.DataFrame, selection_seeds: Collection[int] | None) -> None:
        validation = (pd.to_numeric(rows[VALIDATION_COLUMN], errors="coerce") if VALIDATION_COLUMN in rows.columns
                      else pd.Series(float("nan"), index=rows.index))
        self.mode = "validation" if len(rows) and validation.notna().all() else \
            "seeds" if selection_seeds else "reported"
        self.seeds = list(selection_seeds or [])
        self.honest = self.mode != "reported"
        self.basis = {"validation": VALIDATION_BASIS, "reported": ON_REPORTED,
                      "seeds": f"chosen on seeds {sorted(self.seeds)}, reported on the others"}[self.mode]

    def arm(self, name: str, rows: pd.DataFrame, part: str) -> Arm:
        if self.mode == "validation" and part == "choose":
            values = pd.to_numeric(rows[VALIDATION_COLUMN], errors="coerce").groupby(rows["seed"]).mean()
            return Arm.of(name, values)
        if self.mode == "seeds":
            chosen = rows["seed"].isin(self.seeds)
            rows = rows[chosen] if part == "choose" else rows[~chosen]
        return arm_of(name, rows)
