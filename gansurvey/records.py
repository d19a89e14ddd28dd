"""Measured records and the tables read off them.

- :class:`Measurement`, the one record, and :class:`ResultsStore`: one CSV per notebook and profile, written
  atomically.
- Reduction factors (what a technique promised beside what it delivered) and arms aggregated over seeds (what a
  reader compares). Reduction factors are named ``<quantity>_x`` everywhere (``params_x``, ``macs_x``,
  ``stored_bytes_x``, ``energy_x``, ``speedup_x``): baseline / compressed, so 2.0 means halved (or twice as fast).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.config import check_profile, display_path, results_dir
from gansurvey.io import atomic_write_text
from gansurvey.metrics.latency import classify_regime

QUALITY_FIELDS = (
    "fid",
    "fid_samples",
    "domain_fid",
    "kid",
    "sample_precision",
    "sample_recall",
    "classifier_score",
    "psnr",
    "ssim",
    "label_accuracy",
    "modes_covered",
    "high_quality_fraction",
)


@dataclass
class Measurement:
    """One compressed (or baseline) generator measured on one benchmark: cost and quality, side by side.

    Cost fields are per generated sample (batch of one) unless their name says otherwise. Quality fields that
    do not apply to a benchmark stay ``None``. ``primary_metric`` names the quality field that tables and
    claim checks use for this benchmark, and ``higher_is_better`` its direction.

    ``technique`` is a display label; ``family`` (``pruning``, ``pruning+distillation``...), ``method`` and
    ``settings`` are the structured columns tables group by. ``settings["compression"]`` holds the chain of
    config dicts that made the generator (``gansurvey.compress.config_from_dict`` rebuilds each).
    """

    notebook: str
    benchmark: str
    technique: str
    family: str
    method: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    profile: str = "quick"
    seed: int = 0
    device: str = "cpu"
    params: int | None = None
    macs: int | None = None
    macs_torchprofile: int | None = None
    stored_bytes: int | None = None
    weight_traffic_bytes: int | None = None
    activation_traffic_bytes: int | None = None
    energy_uj: float | None = None
    latency_ms: float | None = None
    latency_batch: int | None = None
    primary_metric: str | None = None
    primary_value: float | None = None
    higher_is_better: bool | None = None
    fid: float | None = None
    fid_samples: int | None = None
    domain_fid: float | None = None
    kid: float | None = None
    sample_precision: float | None = None  # improved precision (Kynkaenniemi et al. 2019), not the family
    sample_recall: float | None = None
    classifier_score: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    label_accuracy: float | None = None
    modes_covered: float | None = None
    high_quality_fraction: float | None = None
    #: bootstrap resamples of ``primary_value`` over the evaluation samples (its evaluation noise, read by the
    #: claims' decision rule), a JSON list in the CSV
    primary_resamples: list[float] | None = None
    #: the primary metric on a second set of evaluation samples, apart from the reported ones
    #: (``Benchmark.validation_score``): what operating points and best variants are chosen on
    validation_value: float | None = None
    #: the engines that ran the layers while the latency was timed (``;``-separated): ``torch-dense``,
    #: ``torch-factorized``, ``reference-dense`` (decoded to float), ``triton-*``, ``fbgemm-int8``...
    engine: str | None = None
    #: the code's commit (``+changes`` when the checkout differed from it)
    commit: str | None = None
    #: whether ``latency_ms`` was timed while other work of the same run computed beside it (``regenerate
    #: --executor ray`` runs notebooks 00-05 at once, and marks their records so): such a latency, and the engine
    #: chosen by it, are not speed evidence. Empty in records written before the column existed.
    timed_under_load: bool | None = None

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["settings"] = json.dumps(self.settings, sort_keys=True)
        if self.primary_resamples is not None:
            row["primary_resamples"] = json.dumps([round(float(v), 6) for v in self.primary_resamples])
        return row


COLUMNS = tuple(f.name for f in dataclasses.fields(Measurement))
#: Columns read back as text whatever they hold: a commit such as ``0958123`` or ``12e4567`` (or a label made of
#: digits) would otherwise come back from a CSV as a number, and no longer name what it named.
TEXT_COLUMNS = tuple(f.name for f in dataclasses.fields(Measurement)
                     if str(f.type).split(" |")[0] == "str" or f.name == "settings")
#: Set to ``1`` in the environment of a process whose timings run beside other work (``regenerate`` sets it for
#: the notebooks it runs at once): :func:`gansurvey.measure` then marks its records ``timed_under_load``.
UNDER_LOAD_ENV = "GANSURVEY_UNDER_LOAD"


def under_load() -> bool:
    """Whether timings taken in this process run beside other work (:data:`UNDER_LOAD_ENV` is ``1``)."""
    return os.environ.get(UNDER_LOAD_ENV, "0").strip() == "1"


_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def records_frame(records: list[Measurement]) -> pd.DataFrame:
    """The records as a table with one row per measurement and the columns of :class:`Measurement`."""
    return pd.DataFrame([r.to_row() for r in records], columns=list(COLUMNS))


#: Columns every records file must hold (older files may lack the others, which read as missing).
REQUIRED_COLUMNS = ("notebook", "benchmark", "technique", "family", "seed", "primary_metric", "primary_value")
#: The notebooks that measure and write records (``07_survey_tables`` reads them).
MEASURING_NOTEBOOKS = ("00_background", "01_pruning", "02_distillation", "03_low_rank", "04_precision",
                       "05_encoding", "06_combinations")


class MissingRecordsWarning(UserWarning):
    """Tables are being made without the records of some measuring notebooks."""


def warn_missing_records(profile: str, root: str | Path | None = None) -> list[str]:
    """Warn (:class:`MissingRecordsWarning`) naming the measuring notebooks with no records for ``profile``, so
    tables made without them say so; returns those notebooks."""
    missing = ResultsStore(profile, root).missing_notebooks()
    if missing:
        warnings.warn(f"no measured records of {', '.join(missing)} for profile {profile!r}: the tables show the "
                      f"literature without those measurements; `python -m gansurvey regenerate --profile {profile}` "
                      f"writes them", MissingRecordsWarning, stacklevel=2)
    return missing


def read_records_csv(path: Path) -> pd.DataFrame:
    """A records CSV, refused (naming the file and what is wrong) when it is not text, not a table, lacks one of
    :data:`REQUIRED_COLUMNS`, or holds a seed that is not an integer or a primary value that is not a number."""
    shown = display_path(path)
    try:
        frame = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str))
    except UnicodeDecodeError as exc:
        raise GanSurveyError(f"records file {shown} is not text (byte {exc.start} cannot be decoded as UTF-8); "
                             f"delete it or regenerate its notebook") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = " ".join(str(exc).split())
        raise GanSurveyError(f"records file {shown} is not a CSV table ({reason}); delete it or regenerate its "
                             f"notebook") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise GanSurveyError(f"records file {shown} lacks column(s) {', '.join(missing)}; a records file needs "
                             f"{', '.join(REQUIRED_COLUMNS)}")
    seeds = pd.to_numeric(frame["seed"], errors="coerce")
    bad = frame["seed"][seeds.isna() | (seeds != seeds.round())]
    if len(bad):
        raise GanSurveyError(f"records file {shown}: seed must be an integer, got {bad.iloc[0]!r} (row "
                             f"{bad.index[0] + 2})")
    values = frame["primary_value"]
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values[numeric.isna() & values.notna()]
    if len(bad):
        raise GanSurveyError(f"records file {shown}: primary_value must be a number or empty, got "
                             f"{bad.iloc[0]!r} (row {bad.index[0] + 2})")
    return frame


class ResultsStore:
    """Reads and writes ``results/<profile>/<notebook>.csv``."""

    def __init__(self, profile: str = "quick", root: str | Path | None = None) -> None:
        check_profile(profile)
        self.profile = profile
        self.root = Path(root) / profile if root is not None else results_dir(profile)

    def path(self, notebook: str) -> Path:
        if not isinstance(notebook, str) or not _NAME.match(notebook):
            raise GanSurveyError(f"notebook name {notebook!r} must be letters, digits, '_', '-' or '.'")
        return self.root / f"{notebook}.csv"

    def write(self, notebook: str, records: list[Measurement]) -> Path:
        """Replace the notebook's CSV with ``records`` in one atomic step."""
        bad = [r for r in records if not isinstance(r, Measurement)]
        if bad:
            raise GanSurveyError(f"records must be Measurement objects, got {type(bad[0]).__name__}")
        wrong = [r.profile for r in records if r.profile != self.profile]
        if wrong:
            raise GanSurveyError(f"a record of profile {wrong[0]!r} cannot go into the {self.profile!r} store")
        buffer = io.StringIO()
        records_frame(records).to_csv(buffer, index=False)
        return atomic_write_text(self.path(notebook), buffer.getvalue())

    def read(self, notebook: str) -> pd.DataFrame:
        path = self.path(notebook)
        if not path.exists():
            raise FileNotFoundError(f"no results for notebook {notebook!r} in {display_path(self.root)}")
        frame = read_records_csv(path)
        # Records written before a column existed read it as missing, so old and new records load together.
        for column in COLUMNS:
            if column not in frame.columns:
                frame[column] = None
        return frame

    def missing_notebooks(self, expected: tuple[str, ...] = MEASURING_NOTEBOOKS) -> list[str]:
        """The measuring notebooks (``expected``) that have no records file in this store."""
        have = set(self.notebooks())
        return [name for name in expected if name not in have]

    def notebooks(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.csv")) if self.root.exists() else []

    def load_all(self) -> pd.DataFrame:
        """Every notebook's records in one table (empty, with the standard columns, when there are none)."""
        frames = [self.read(name) for name in self.notebooks()]
        frames = [f for f in frames if set(COLUMNS) <= set(f.columns)]
        if not frames:
            return pd.DataFrame(columns=list(COLUMNS))
        return pd.concat(frames, ignore_index=True)


RATIO_COLUMNS = {"params": "params_x", "macs": "macs_x", "stored_bytes": "stored_bytes_x", "energy_uj": "energy_x"}
#: A baseline is *near the floor* of its metric when its distance from the metric's floor (0 for every quality
#: metric here: FID, KID, error-like scores) is under this fraction of the farthest arm's distance, i.e. when a
#: relative change would exceed about 900 %. Then a relative change says more about the baseline than about the
#: technique, so tables give the change in the metric's own units only.
NEAR_FLOOR = 0.1
NO_FINETUNE = "(no fine-tuning)"
STAGES = ("baseline", "trained", "no fine-tuning")


def _is_higher(value: Any) -> bool:
    # a CSV round trip can leave "True"/"False" strings, and bool("False") is True
    return str(value).strip().lower() in ("true", "1", "1.0")


def reduction_table(records: pd.DataFrame, baseline: str = "teacher", device: str = "auto") -> pd.DataFrame:
    """Per record: reduction factors against the benchmark's ``baseline`` technique (baseline / compressed, so
    2.0 means halved), the engine that timed it, the measured latency speed-up ``speedup_x`` (empty where either
    timing was taken under load, ``timed_under_load``), the latency regime, and the quality change.

    Theoretical factors and measured speed-ups sit side by side because compressed-but-not-faster is the most
    common outcome; the regime (launch-, memory- or compute-bound) says why.

    Args:
        records: measured records (:func:`gansurvey.records_frame` or ``ResultsStore.load_all()``).
        baseline: the ``technique`` of each benchmark's uncompressed record.
        device: the device the latencies were measured on (for the regime).

    Example:
        >>> reduction_table(frame, baseline="teacher")[["technique", "macs_x", "speedup_x"]]  # doctest: +SKIP
    """
    rows = []
    for bench, group in records.groupby("benchmark", sort=False):
        base = group[group["technique"] == baseline]
        if base.empty:
            raise GanSurveyError(f"no {baseline!r} record for benchmark {bench!r}; techniques present: "
                                 f"{', '.join(map(repr, group['technique'].unique()))}")
        base = base.iloc[0]
        for _, r in group.iterrows():
            row = {"benchmark": bench, "technique": r["technique"], "family": r["family"],
                   "method": r.get("method"), "stage": stage_of(r["technique"], r["family"], r["settings"]),
                   "settings": r["settings"]}
            for column, name in RATIO_COLUMNS.items():
                row[name] = base[column] / r[column] if r[column] else float("nan")
            row["latency_ms"] = r["latency_ms"]
            row["engine"] = r.get("engine")
            # a timing taken beside other work (a parallel regeneration) is no speed evidence: no ratio from it
            loaded = was_timed_under_load(r) or was_timed_under_load(base)
            row["speedup_x"] = float("nan") if loaded else base["latency_ms"] / r["latency_ms"]
            bytes_moved = (r["weight_traffic_bytes"] or 0) + (r["activation_traffic_bytes"] or 0)
            row["regime"] = classify_regime(int(r["macs"]), int(bytes_moved), r["latency_ms"] / 1e3, device)
            row["quality"] = r["primary_value"]
            sign = 1 if _is_higher(r["higher_is_better"]) else -1
            row["quality_change"] = sign * (r["primary_value"] - base["primary_value"])
            rows.append(row)
    return pd.DataFrame(rows)


def was_timed_under_load(record: Any) -> bool:
    """Whether a record's latency was timed under load (``timed_under_load``; missing or empty: no)."""
    value = record.get("timed_under_load")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true") or value == 1


def settings_of(value: Any) -> dict[str, Any]:
    """A record's ``settings`` as a dict, whether given as a dict or as the JSON text a CSV holds; ``{}`` when
    missing, empty or not a JSON object."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str) or not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def stage_of(technique: str, family: str, settings: Any) -> str:
    """``baseline`` (the uncompressed model), ``no fine-tuning`` (compressed and measured before any training:
    ``settings["finetuned"] is False``, or the sweep's ``(no fine-tuning)`` label on older records) or
    ``trained``.

    Example:
        >>> stage_of("channels 50% (no fine-tuning)", "pruning", "{}")
        'no fine-tuning'
    """
    if str(family).strip().lower() in ("baseline", "teacher", "none", ""):
        return "baseline"
    flag = settings_of(settings).get("finetuned")
    if flag is False or (flag is None and str(technique).endswith(NO_FINETUNE)):
        return "no fine-tuning"
    return "trained"


def with_settings(records: pd.DataFrame, keys: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """``records`` with the named settings as columns of their own (missing ones empty) and a ``stage`` column
    (:func:`stage_of`), so tables and plots group by columns instead of parsing labels.

    Example:
        >>> with_settings(frame, ["variant", "budget"]).groupby(["family", "variant", "budget"])  # doctest: +SKIP
    """
    out = records.copy()
    parsed = [settings_of(v) for v in out["settings"]]
    for key in keys:
        out[key] = [p.get(key) for p in parsed]
    out["stage"] = [stage_of(t, f, p) for t, f, p in zip(out["technique"], out["family"], parsed, strict=True)]
    return out


def arm_table(records: pd.DataFrame, baseline: str = "teacher", near_floor: float = NEAR_FLOOR) -> pd.DataFrame:
    """One row per arm (an experiment setting over seeds): mean ± sd of the primary metric over its seeds, n,
    cost, and the quality change against the benchmark's baseline.

    Arms are grouped by columns, never by parsing labels: benchmark, family, technique, ``method`` (when the
    records have it), settings and primary metric; the seed is what varies inside an arm (records of one seed
    are averaged first, so a model measured by two notebooks counts once). Per arm: ``n`` seeds, ``mean`` and
    ``sd`` (sample standard deviation over seeds, NaN for one seed) of ``primary_value``, the mean MACs,
    params and stored bytes, the training ``budget`` and ``steps`` read from the settings (0 for the no-fine-tuning
    stage), and:

    * ``quality_change``: mean minus the baseline's mean, in the metric's own units, signed so that positive is
      better whatever the metric's direction;
    * ``quality_change_pct``: the same relative to the baseline, left empty when the baseline is *near the
      floor* (:data:`NEAR_FLOOR`: its distance from 0 is under ``near_floor`` times the farthest arm's), where a
      relative change (e.g. -199716 %) would describe the baseline, not the technique.

    Rows are ordered baseline first, then trained arms, then the ``no fine-tuning`` arms apart at the end (the
    ``stage`` column says which, see :func:`stage_of`).

    Args:
        records: measured records (:func:`gansurvey.records_frame` or ``ResultsStore.load_all()``).
        baseline: the ``technique`` of each benchmark's uncompressed record (else its ``baseline`` family).
        near_floor: the fraction defining "near the floor", in (0, 1).

    Example:
        >>> arm_table(records_frame(records))[["technique", "n", "mean ± sd", "quality_change"]]  # doctest: +SKIP
    """
    check_number("near_floor", near_floor, minimum=0, below=1)
    needed = ("benchmark", "technique", "family", "seed", "primary_metric", "primary_value", "higher_is_better")
    if not isinstance(records, pd.DataFrame):
        raise GanSurveyError(f"records must be a pandas DataFrame, got {type(records).__name__}")
    missing = [c for c in needed if c not in records.columns]
    if missing:
        raise GanSurveyError(f"records lack column(s) {', '.join(missing)}; needed: {', '.join(needed)}")
    if records.empty:
        return pd.DataFrame(columns=list(ARM_COLUMNS))
    frame = records.copy()
    frame["settings"] = (frame["settings"] if "settings" in frame else pd.Series("{}", index=frame.index)) \
        .map(lambda s: json.dumps(settings_of(s), sort_keys=True))
    frame["primary_value"] = pd.to_numeric(frame["primary_value"], errors="coerce")
    for column in ("macs", "params", "stored_bytes"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else np.nan
    keys = ["benchmark", "family", "technique", *(["method"] if "method" in frame else []), "settings",
            "primary_metric"]
    frame[keys] = frame[keys].astype(object).where(frame[keys].notna(), "")
    arms = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        arm = dict(zip(keys, key, strict=True))
        settings = json.loads(arm["settings"])
        # one value per seed: the same model measured twice (e.g. the teacher in two notebooks) is one sample
        values = group.groupby("seed")["primary_value"].mean().dropna()
        stage = stage_of(arm["technique"], arm["family"], arm["settings"])
        arms.append({
            **arm,
            "stage": stage,
            "budget": settings.get("budget", ""),
            "steps": 0 if stage == "no fine-tuning" else settings.get("steps", settings.get("finetune_steps",
                                                                                             np.nan)),
            "n": int(group["seed"].nunique()),
            "seeds": ", ".join(str(s) for s in sorted(group["seed"].unique())),
            "macs": group["macs"].mean(), "params": group["params"].mean(),
            "stored_bytes": group["stored_bytes"].mean(),
            "higher_is_better": _is_higher(group["higher_is_better"].iloc[0]),
            "mean": values.mean() if len(values) else np.nan,
            "sd": values.std(ddof=1) if len(values) > 1 else np.nan,
        })
    out = pd.DataFrame(arms)
    out["mean ± sd"] = [_mean_sd(m, s) for m, s in zip(out["mean"], out["sd"], strict=True)]
    out["quality_change"], out["quality_change_pct"], out["near_floor"] = np.nan, np.nan, False
    for (_bench, _metric), idx in out.groupby(["benchmark", "primary_metric"], sort=False).groups.items():
        rows = out.loc[idx]
        base = rows[rows["technique"] == baseline]
        base = base if len(base) else rows[rows["stage"] == "baseline"]
        if base.empty or pd.isna(base["mean"].iloc[0]):
            continue
        b = float(base["mean"].iloc[0])
        sign = np.where(rows["higher_is_better"], 1.0, -1.0)
        change = sign * (rows["mean"] - b) + 0.0  # + 0.0 turns -0.0 into 0.0
        floor = abs(b) < near_floor * float(rows["mean"].abs().max())
        out.loc[idx, "quality_change"] = change
        out.loc[idx, "near_floor"] = floor
        if not floor and b != 0:
            out.loc[idx, "quality_change_pct"] = 100 * change / abs(b)
    order = out["stage"].map({s: i for i, s in enumerate(STAGES)})
    out = out.assign(_order=order).sort_values(["_order"], kind="stable").drop(columns="_order")
    return out[list(ARM_COLUMNS) + (["method"] if "method" in out else [])].reset_index(drop=True)


ARM_COLUMNS = ("benchmark", "stage", "family", "technique", "settings", "budget", "steps", "n", "seeds", "macs",
               "params", "stored_bytes", "primary_metric", "higher_is_better", "mean", "sd", "mean ± sd",
               "quality_change", "quality_change_pct", "near_floor")


def _mean_sd(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.4g}" if pd.isna(sd) else f"{mean:.4g} ± {sd:.2g}"


BUDGETS = ("equal-finetune", "equal-total")


#: The budget of a record whose settings name none (sweeps before budgets existed gave every arm equal steps).
DEFAULT_BUDGET = "equal-finetune"


def budget_of(settings: Any) -> str:
    """The training budget recorded in a record's ``settings`` (JSON text or dict); :data:`DEFAULT_BUDGET`
    when it names none.

    Example:
        >>> budget_of('{"budget": "equal-total", "steps": 900}')
        'equal-total'
    """
    budget = settings_of(settings).get("budget", DEFAULT_BUDGET)
    return check_choice("training budget", budget, BUDGETS)
