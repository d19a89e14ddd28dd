"""The surveyed works' numbers as data: load ``data/literature.csv``, validate every cell, derive comparisons.

One row is one reported number (or one reported claim) of one method on one benchmark, with its source and
verification mark. Validation errors name the file, the line, the column and what is wrong, so a bad edit to
the data file is found at load time and never reaches a table.

Columns of the data file:

* ``section`` (of ``shared/reference/literature.md``), ``benchmark`` (a task such as ``cyclegan-horse2zebra``,
  or a group of works reported by ratio, such as ``precision-works``), ``generator``, ``dataset``;
* ``role``: ``baseline`` (the uncompressed model), ``compressed``, or ``control`` (a small network without the
  compression method, as some papers plot it); only compressed rows have ``families``, a ``;``-list of
  pruning, distillation, low-rank, precision, encoding, nas;
* ``work`` (the publication), ``variant`` (which model of that work: the same work and variant is the same
  network, whatever protocol scored it), ``method`` (the row's label), ``year``, ``venue``, ``period``
  (``pre-survey`` or ``post-survey``; the survey appeared in 2021);
* costs as plain numbers: ``macs`` and ``params`` (counts), ``memory_mb``; ``baseline_macs`` and
  ``baseline_params`` when the row's own starting point differs from the benchmark's baseline row;
  ``*_x_reported`` for a reduction factor the source states (``macs_x_reported``: baseline MACs / compressed
  MACs, so 2 means halved; checked against the computed one within 5 %);
* quality: ``metric``, ``higher_is_better``, ``value``, ``baseline_value``, ``protocol``. A row either reports
  a number (value, metric, direction and protocol all set) or it does not (all four and the baseline value
  empty, and ``claim`` says in words what the source reports). A baseline row must report a number;
* ``approx``: a ``;``-list of the number columns that are approximate (``~`` in the source, or off a plot);
* ``mark`` (V, V-fig, D, I, UNVERIFIED), ``source`` (paper and table, or repository file at a commit),
  ``note``.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from gansurvey.checks import GanSurveyError
from gansurvey.compress.base import FAMILIES
from gansurvey.config import data_dir
from gansurvey.metrics.energy import load_energy_table

#: Families that are not compression at all but may tag a work beside the lossy ones (KD works search students).
AUXILIARY_FAMILIES = ("nas",)
#: The families a surveyed work may be tagged with: the survey's five lossy ones (compress.FAMILIES, the same
#: names the measured records use), then the auxiliary ones.
LITERATURE_FAMILIES = (*FAMILIES, *AUXILIARY_FAMILIES)
ROLES = ("baseline", "compressed", "control")
MARKS = ("V", "V-fig", "D", "I", "UNVERIFIED")
PERIODS = ("pre-survey", "post-survey")
#: arXiv v1 of the survey appeared in August 2021: nothing later can be in it, nothing earlier is "after" it.
SURVEY_YEAR = 2021

NUMBER_COLUMNS = (
    "macs",
    "params",
    "memory_mb",
    "baseline_macs",
    "baseline_params",
    "macs_x_reported",
    "params_x_reported",
    "memory_x_reported",
    "value",
    "baseline_value",
)
TEXT_COLUMNS = (
    "section",
    "benchmark",
    "role",
    "work",
    "variant",
    "method",
    "families",
    "venue",
    "period",
    "generator",
    "dataset",
    "metric",
    "higher_is_better",
    "approx",
    "protocol",
    "mark",
    "source",
    "claim",
    "note",
)
COLUMNS = (*TEXT_COLUMNS[:7], "year", *TEXT_COLUMNS[7:], *NUMBER_COLUMNS)
REQUIRED = (
    "section",
    "benchmark",
    "role",
    "work",
    "method",
    "year",
    "venue",
    "period",
    "generator",
    "dataset",
    "mark",
    "source",
)
#: Rows are unique on these: the same number may not be entered twice.
KEY = ("benchmark", "method", "dataset", "metric", "protocol")
#: A reported reduction may differ this much (relative) from the one computed from the row's numbers.
RATIO_TOLERANCE = 0.05


class LiteratureDataError(GanSurveyError):
    """A row of the literature table is malformed."""


def default_path() -> Path:
    return data_dir() / "literature.csv"


def load_literature(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read, validate and derive the literature table; raises :class:`LiteratureDataError` on a bad row."""
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        raise LiteratureDataError(f"literature table {path} does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_header(path, reader.fieldnames or [])
        records = []
        for raw in reader:
            records.append(_parse_row(path, reader.line_num, raw))
    if not records:
        raise LiteratureDataError(f"{path}: the literature table has no rows")
    frame = pd.DataFrame(records)
    _check_across_rows(path, frame)
    return derive(frame)


def _check_header(path: Path, header: list[str]) -> None:
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing:
        raise LiteratureDataError(f"{path}, line 1: column(s) {', '.join(map(repr, missing))} are missing")
    if unknown:
        raise LiteratureDataError(
            f"{path}, line 1: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(COLUMNS)}"
        )


def _fail(path: Path, line: int, column: str, what: str) -> LiteratureDataError:
    return LiteratureDataError(f"{path}, line {line}, column {column!r}: {what}")


def _parse_row(path: Path, line: int, raw: dict) -> dict:
    """One CSV row as typed values, with every per-row rule checked."""
    if None in raw:  # csv puts surplus cells under the key None
        raise _fail(path, line, "(end of row)", f"{len(raw[None])} more cell(s) than the header has columns")
    cell = {k: (v or "").strip() for k, v in raw.items()}
    for column in REQUIRED:
        if not cell[column]:
            raise _fail(path, line, column, "is empty; every row needs it")

    def choice(column: str, allowed: tuple[str, ...]) -> str:
        if cell[column] not in allowed:
            raise _fail(
                path, line, column, f"{cell[column]!r} is not allowed; use one of {', '.join(allowed)}"
            )
        return cell[column]

    row: dict = {"line": line, **{c: cell[c] for c in TEXT_COLUMNS}}
    role = choice("role", ROLES)
    choice("mark", MARKS)
    period = choice("period", PERIODS)
    try:
        row["year"] = int(cell["year"])
    except ValueError:
        raise _fail(path, line, "year", f"{cell['year']!r} is not a whole year such as 2020") from None
    if not 1990 <= row["year"] <= 2100:
        raise _fail(path, line, "year", f"{row['year']} is not a plausible publication year")
    if period == "post-survey" and row["year"] < SURVEY_YEAR:
        raise _fail(path, line, "period", f"a {row['year']} work cannot come after the {SURVEY_YEAR} survey")
    if period == "pre-survey" and row["year"] > SURVEY_YEAR:
        raise _fail(path, line, "period", f"a {row['year']} work cannot be in the {SURVEY_YEAR} survey")

    for column in NUMBER_COLUMNS:
        row[column] = _number(path, line, column, cell[column])
    # tables print quality numbers as the source wrote them ("83.00", not 83.0)
    row["value_text"], row["baseline_value_text"] = cell["value"], cell["baseline_value"]

    families = [f.strip() for f in cell["families"].split(";")] if cell["families"] else []
    for family in families:
        if family not in LITERATURE_FAMILIES:
            raise _fail(path, line, "families",
                        f"unknown family {family!r}; allowed: {', '.join(LITERATURE_FAMILIES)}")
    if len(set(families)) != len(families):
        raise _fail(path, line, "families", f"{cell['families']!r} names a family twice")
    if role == "compressed" and not families:
        raise _fail(path, line, "families", "a compressed row needs at least one family")
    if role != "compressed" and families:
        raise _fail(path, line, "families", f"a {role} row has no compression families; leave it empty")
    row["families"] = ";".join(families)

    _check_quality(path, line, role, cell, row)
    approx = [a.strip() for a in cell["approx"].split(";")] if cell["approx"] else []
    for column in approx:
        if column not in NUMBER_COLUMNS:
            raise _fail(
                path, line, "approx", f"{column!r} is not a number column; use some of {NUMBER_COLUMNS}"
            )
        if row[column] is None:
            raise _fail(path, line, "approx", f"marks {column!r} as approximate but that cell is empty")
    row["approx"] = ";".join(approx)
    return row


def _number(path: Path, line: int, column: str, text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _fail(
            path, line, column, f"{text!r} is not a number (write plain numbers such as 2.67e9)"
        ) from None
    if not math.isfinite(value):
        raise _fail(path, line, column, f"{text!r} is not a finite number")
    if column != "value" and column != "baseline_value" and value <= 0:
        raise _fail(path, line, column, f"{text!r} must be positive")
    return value


def _check_quality(path: Path, line: int, role: str, cell: dict, row: dict) -> None:
    """A row reports a quality number (value, metric, direction, protocol) or none of them and says why."""
    if row["value"] is not None:
        for column in ("metric", "higher_is_better", "protocol"):
            if not cell[column]:
                raise _fail(path, line, column, "is empty but the row has a value; a number needs it")
        if cell["higher_is_better"] not in ("true", "false"):
            raise _fail(path, line, "higher_is_better", f"{cell['higher_is_better']!r} must be true or false")
        row["higher_is_better"] = cell["higher_is_better"] == "true"
    else:
        for column in ("metric", "higher_is_better", "protocol", "baseline_value"):
            if cell[column]:
                raise _fail(
                    path,
                    line,
                    column,
                    "is set but the row has no value; a row without a number "
                    "leaves metric, direction, protocol and baseline value empty",
                )
        if not cell["claim"]:
            raise _fail(
                path, line, "claim", "is empty; a row without a value must say in words what was reported"
            )
        row["higher_is_better"] = None
    if role == "baseline":
        if not cell["metric"]:
            raise _fail(path, line, "metric", "is empty; a baseline row must report a metric and a value")
        for column in (
            "baseline_value",
            "baseline_macs",
            "baseline_params",
            "macs_x_reported",
            "params_x_reported",
            "memory_x_reported",
        ):
            if cell[column]:
                raise _fail(
                    path, line, column, "is set on a baseline row; a baseline is not compared to itself"
                )


def _check_across_rows(path: Path, frame: pd.DataFrame) -> None:
    """Rules that need several rows: unique keys, one direction per metric, agreeing baselines."""
    seen: dict[tuple, int] = {}
    for row in frame.itertuples():
        key = tuple(getattr(row, k) for k in KEY)
        if key in seen:
            raise _fail(
                path, row.line, "method", f"duplicates line {seen[key]} (same {', '.join(KEY)}: {key})"
            )
        seen[key] = row.line
    direction: dict[str, tuple[bool, int]] = {}
    for row in frame[frame["value"].notna()].itertuples():
        first = direction.setdefault(row.metric, (row.higher_is_better, row.line))
        if first[0] != row.higher_is_better:
            raise _fail(
                path,
                row.line,
                "higher_is_better",
                f"metric {row.metric!r} was {'higher' if first[0] else 'lower'}-is-better on line "
                f"{first[1]}; one metric has one direction",
            )
    baselines = frame[frame["role"] == "baseline"]
    for column in ("macs", "params", "memory_mb"):
        for (bench, gen), group in baselines.groupby(["benchmark", "generator"]):
            known = group[group[column].notna()]
            if known[column].nunique() > 1:
                row = known.iloc[-1]
                raise _fail(
                    path,
                    int(row["line"]),
                    column,
                    f"baseline rows of {bench} / {gen} disagree on {column} ({sorted(known[column])})",
                )
    derived = derive(frame)
    for kind in ("macs", "params", "memory"):
        computed = derived[f"{kind}_x_computed"]
        reported = derived[f"{kind}_x_reported"]
        both = computed.notna() & reported.notna()
        off = both & ((computed - reported).abs() > RATIO_TOLERANCE * reported)
        if off.any():
            row = derived[off].iloc[0]
            raise _fail(
                path,
                int(row["line"]),
                f"{kind}_x_reported",
                f"{row[f'{kind}_x_reported']:g}x disagrees with "
                f"{row[f'{kind}_x_computed']:.3g}x "
                f"computed from the row's numbers (tolerance {RATIO_TOLERANCE:.0%})",
            )


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Add reduction factors (``macs_x``, ``params_x``, ``memory_x``: baseline / compressed, with
    ``*_x_computed`` from the numbers and ``*_x_reported`` from the source) and the quality change versus the
    baseline (positive = better).

    A row's own baseline fields win; otherwise the baseline rows of its benchmark with the same generator
    give the cost, and those with the same metric and protocol give the quality. A reported reduction fills
    in where nothing can be computed.
    """
    out = frame.copy()
    base = out[out["role"] == "baseline"]
    notbase = out["role"] != "baseline"
    for column, own in (("macs", "baseline_macs"), ("params", "baseline_params"), ("memory_mb", None)):
        lookup = base[base[column].notna()].groupby(["benchmark", "generator"])[column].first()
        keys = list(zip(out["benchmark"], out["generator"], strict=True))
        found = pd.Series([lookup.get(k, np.nan) for k in keys], index=out.index, dtype=float)
        used = out[own].astype(float).fillna(found) if own else found
        kind = column.removesuffix("_mb")
        out[f"{kind}_x_computed"] = (used / out[column].astype(float)).where(notbase)
        out[f"{kind}_x"] = out[f"{kind}_x_computed"].fillna(out[f"{kind}_x_reported"].astype(float))
    quality = (
        base[base["value"].notna()].groupby(["benchmark", "generator", "metric", "protocol"])["value"].first()
    )
    keys = list(zip(out["benchmark"], out["generator"], out["metric"], out["protocol"], strict=True))
    found = pd.Series([quality.get(k, np.nan) for k in keys], index=out.index, dtype=float)
    out["baseline_value_used"] = out["baseline_value"].astype(float).fillna(found).where(notbase)
    sign = out["higher_is_better"].map({True: 1.0, False: -1.0}).astype(float)
    value = out["value"].astype(float)
    out["quality_change"] = sign * (value - out["baseline_value_used"])
    out["quality_change_rel"] = out["quality_change"] / out["baseline_value_used"].abs()
    out["approx_any"] = out["approx"] != ""
    return out


def family_set(families: str) -> frozenset[str]:
    """The families of a row as a set (empty for baselines and controls)."""
    return frozenset(f for f in families.split(";") if f)


def family_label(families: str) -> str:
    """The one spelling of a family combination, for display and grouping: ``pruning+distillation``.

    Accepts the data file's ``;``-lists and ``+``-joined labels alike; families follow the survey's order
    (unknown names after them); an empty list reads ``none``.

    Example:
        >>> family_label("distillation;pruning")
        'pruning+distillation'
    """
    present = family_set(str(families).replace("+", ";"))
    # unknown names (from measured records) follow the known families rather than vanish
    ordered = [f for f in LITERATURE_FAMILIES if f in present] + sorted(present - set(LITERATURE_FAMILIES))
    return "+".join(ordered) if ordered else "none"


def load_energy(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The 45 nm energy-per-operation table as a frame (operation, bits, energy_pj, mark, source).

    One loader: this reads :func:`gansurvey.metrics.energy.load_energy_table` (default
    ``data/energy_45nm.csv``), which validates the file and raises naming the bad line.

    Example:
        >>> float(load_energy().set_index(["operation", "bits"]).loc[("dram_access", 32), "energy_pj"])
        640.0
    """
    return load_energy_table(path).to_frame()
