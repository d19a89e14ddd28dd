"""What every measured claim shares: the seed and profile caveats, reading records' settings, and turning
records into the arms the decision rule (:mod:`gansurvey.claims.rule`) compares."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gansurvey.checks import GanSurveyError
from gansurvey.claims.rule import Arm, Decision

F1_COLUMNS = ("benchmark", "technique", "family", "seed", "macs", "primary_metric", "primary_value",
              "higher_is_better")


INDICATIVE = ("quick-profile records: short training and few seeds, so the rule gives 'indicative' where an arm "
              "has fewer than 3 seeds (see the full profile)")
#: The column a record may carry with its bootstrap resamples of ``primary_value`` over the evaluation samples
#: (a JSON list); the measurement layer does not record it yet, so the rule runs on the seed spread alone.
RESAMPLES_COLUMN = "primary_resamples"


def seed_note(seeds: int, profile: str | None = None) -> list[str]:
    """Caveats every measured verdict carries: the seed count and, for the quick profile, why the rule reads
    "indicative" there.

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


def profile_of(records: pd.DataFrame, profile: str | None) -> str | None:
    if profile is not None or "profile" not in records.columns:
        return profile
    found = records["profile"].dropna().astype(str).unique()
    return "quick" if "quick" in found else (found[0] if len(found) == 1 else None)


def check_records(records: pd.DataFrame) -> pd.DataFrame:
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


def configurations(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (benchmark, metric, family, technique, settings): MACs, mean, spread and seed count."""
    keys = ["benchmark", "primary_metric", "family", "technique", "settings"]
    if rows.empty:
        return pd.DataFrame(columns=keys + ["higher_is_better", "macs", "mean", "spread", "seeds", "label"])
    grouped = rows.groupby(keys, sort=True, dropna=False)
    out = grouped.agg(
        higher_is_better=("higher_is_better", lambda s: tuple(sorted({as_bool(v) for v in s}, key=str))),
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


#: The technique label of the "teacher + same steps" control every "as good as" compares with: the teacher
#: fine-tuned in float for the same steps as the compressed arms (experiments.controls.TEACHER_CONTROL). A record
#: may also say so with ``settings["control"] == "teacher"``; the other control (``"dense"``, a small generator
#: trained from scratch) is an arm to beat, not a noise reference.
CONTROL = "teacher fine-tuned"


def control_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The records of the "teacher + same steps" control among ``rows`` (empty when none was measured)."""
    if rows.empty:
        return rows
    settings = rows["settings"] if "settings" in rows.columns else pd.Series("{}", index=rows.index)
    marked = settings.astype(str).str.replace(" ", "").str.contains('"control":"teacher"', regex=False)
    return rows[rows["technique"].astype(str).str.startswith(CONTROL) | marked]


def control_family(rows: pd.DataFrame) -> pd.Series:
    """Which records are controls of any kind (family ``control``, or the teacher control): not compressed arms."""
    return (rows["family"].astype(str) == "control") | rows.index.isin(control_rows(rows).index)


def noise_arm(rows: pd.DataFrame) -> Arm | None:
    """The control's arm among one benchmark's ``rows`` (its noise sets the rule's tolerance), or ``None`` when
    the records hold no control (the rule then takes the reference's own noise)."""
    control = control_rows(rows)
    return arm_of(str(control["technique"].iloc[0]), control) if len(control) else None


def row_labels(rows: pd.DataFrame) -> pd.Series:
    """Each record's configuration label, as :func:`configurations` names it: the technique, with its settings
    where the same technique was measured under several settings on one benchmark and metric."""
    keys = ["benchmark", "primary_metric", "family", "technique"]
    distinct = rows.groupby(keys, dropna=False)["settings"].transform("nunique")
    plain = (distinct <= 1) | rows["settings"].isin(["{}", ""])
    return rows["technique"].where(plain, rows["technique"] + " " + rows["settings"]).astype(str)


def as_bool(value: Any) -> bool | None:
    # A CSV round trip can leave "True"/"False" strings, and bool("False") is True.
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return bool(value)


def higher_is_better(group: pd.DataFrame, bench: str, metric: str) -> bool:
    seen = {v for t in group["higher_is_better"] for v in t}
    if len(seen) != 1 or None in seen:
        raise GanSurveyError(
            f"records of {bench} disagree on whether higher {metric} is better (higher_is_better: "
            f"{sorted(seen)}); allowed: one direction per benchmark and metric"
        )
    return seen.pop()


def relative_loss(value: float, teacher: float, higher: bool) -> float:
    """How much worse than the teacher, relative (positive = worse)."""
    return ((teacher - value) if higher else (value - teacher)) / max(abs(teacher), 1e-12)


def mean_sd_n(values: pd.Series) -> tuple[float, float, int]:
    return float(values.mean()), float(values.std()) if len(values) > 1 else float("nan"), int(len(values))


def arm_of(name: str, rows: pd.DataFrame) -> Arm:
    """The arm of ``rows`` (one setting): one value per seed (the mean where a seed was measured twice) and,
    where the records carry :data:`RESAMPLES_COLUMN`, each seed's evaluation resamples.

    Example:
        >>> arm_of("a", pd.DataFrame({"seed": [0, 1, 1], "primary_value": [1.0, 2.0, 4.0]})).values
        (1.0, 3.0)
    """
    if rows.empty:
        return Arm.of(name, [])
    values = pd.to_numeric(rows["primary_value"], errors="coerce")
    per_seed = values.groupby(rows["seed"], sort=True).mean().dropna()
    resamples = None
    if RESAMPLES_COLUMN in rows.columns and rows[RESAMPLES_COLUMN].notna().all():
        import json

        firsts = rows.groupby("seed", sort=True)[RESAMPLES_COLUMN].first().loc[per_seed.index]
        resamples = [json.loads(r) if isinstance(r, str) else list(r) for r in firsts]
    return Arm.of(name, per_seed.tolist(), resamples)


def decisions_frame(decisions: list[tuple[dict, Decision]]) -> pd.DataFrame:
    """One row per decision: the caller's keys (benchmark, pair...) then the rule's evidence."""
    return pd.DataFrame([{**keys, "arm": d.arm, "reference": d.reference, **d.as_row()} for keys, d in decisions])


def fewest_seeds(decisions: list[tuple[dict, Decision]]) -> int | None:
    """The fewest seeds any compared arm rests on (``None`` when nothing was compared)."""
    counts = [n for _, d in decisions if d.verdict != "not testable" for n in d.n.values()]
    return min(counts) if counts else None
