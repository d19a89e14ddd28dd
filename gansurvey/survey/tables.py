"""The literature (and our measurements) as per-benchmark tables in Markdown, LaTeX and CSV, plus the
works-by-family technique matrix."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from gansurvey.checks import check_choice
from gansurvey.compress.base import FAMILIES
from gansurvey.records import arm_table
from gansurvey.survey.literature import LITERATURE_FAMILIES, MARKS, derive, family_label, family_set

FORMATS = ("markdown", "latex", "csv")
#: Family values of measured records that mean "not compressed".
_UNCOMPRESSED = ("", "baseline", "none", "teacher", "original", "uncompressed")


def benchmarks(frame: pd.DataFrame) -> list[str]:
    """The benchmarks in the order of the reference's sections (first appearance in the file)."""
    return list(dict.fromkeys(frame["benchmark"])) if "benchmark" in frame.columns else []


def inventory(frame: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark: section, rows, rows with a number, baselines, post-survey rows, rows per mark."""
    marks = pd.crosstab(frame["benchmark"], frame["mark"])
    marks = marks[[m for m in (*MARKS, "measured") if m in marks.columns]]
    counts = frame.groupby("benchmark", sort=False).agg(
        section=("section", "first"),
        rows=("method", "size"),
        with_value=("value", "count"),
        baselines=("role", lambda r: int((r == "baseline").sum())),
        post_survey=("period", lambda p: int((p == "post-survey").sum())),
    )
    return counts.join(marks).fillna(0).astype({c: int for c in marks.columns})


def benchmark_title(frame: pd.DataFrame, benchmark: str) -> str:
    """``§3.1 cyclegan-horse2zebra: ResNet-9 (CycleGAN) on horse2zebra 256x256`` (computed from the rows)."""
    rows = frame[frame["benchmark"] == benchmark]
    section = rows["section"].iloc[0]
    if section == "measured":
        return f"This reproduction: {benchmark}"
    gens = " / ".join(dict.fromkeys(rows["generator"]))
    data = " / ".join(dict.fromkeys(rows["dataset"]))
    return (
        f"§{section} {benchmark}: {gens} on {data}"
        if len(gens) + len(data) < 90
        else f"§{section} {benchmark}"
    )


def _group_order(rows: pd.DataFrame) -> pd.Series:
    """Baselines first, controls next, then compressed rows by how many families they combine."""
    role_rank = rows["role"].map({"baseline": 0, "control": 1}).fillna(2)
    n_fam = rows["families"].map(lambda f: len(family_set(f)))
    return role_rank * 100 + n_fam


_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def _si(value: float | None, unit: str, scale: float) -> str:
    """``value`` in ``scale`` units (``G`` for MACs as the papers write them), or a smaller prefix when it
    would read 0.0x (our small benchmarks)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value / scale >= 0.1:
        return f"{value / scale:.4g}{unit}"
    base = unit.lstrip()[1:] if unit.lstrip()[:1] in ("G", "M", "k") else unit.strip()
    space = " " if unit.startswith(" ") else ""
    for size, prefix in _PREFIXES:
        if value >= size or size == 1.0:
            return f"{value / size:.4g}{space}{prefix}{base}"
    return f"{value:.4g}{unit}"


def _approx(row: pd.Series, column: str, text: str) -> str:
    return f"~{text}" if text and column in row["approx"].split(";") else text


def _factor(row: pd.Series, kind: str) -> str:
    computed, reported = row.get(f"{kind}_x_computed"), row.get(f"{kind}_x_reported")
    if computed is not None and not pd.isna(computed):
        return f"{computed:.3g}×"
    if reported is not None and not pd.isna(reported):
        mark = "~" if f"{kind}_x_reported" in row["approx"].split(";") else ""
        return f"{mark}{reported:.4g}× (reported)"
    return ""


def _change(row: pd.Series) -> str:
    change = row.get("quality_change")
    if change is None or pd.isna(change):
        return ""
    return f"{change:+.3g} ({row['quality_change_rel']:+.1%})"


def display_frame(frame: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """One benchmark's rows as readable strings, grouped by family; columns empty for all rows are dropped.

    Source, protocol and verification mark are always kept.
    """
    rows = frame[frame["benchmark"] == benchmark]
    rows = rows.assign(_order=_group_order(rows)).sort_values(["_order"], kind="stable")
    out = pd.DataFrame(
        {
            "family": [
                r["role"] if r["role"] != "compressed" else family_label(r["families"])
                for _, r in rows.iterrows()
            ],
            "method": rows["method"],
            "year": [str(y) if y else "" for y in rows["year"]],
            "venue": rows["venue"],
            "period": rows["period"],
            "generator": rows["generator"],
            "dataset": rows["dataset"],
            "MACs": [_approx(r, "macs", _si(r["macs"], "G", 1e9)) for _, r in rows.iterrows()],
            "params": [_approx(r, "params", _si(r["params"], "M", 1e6)) for _, r in rows.iterrows()],
            "memory": [_approx(r, "memory_mb", _si(r["memory_mb"], " MB", 1)) for _, r in rows.iterrows()],
            "stored bytes": [_si(r.get("stored_bytes"), " MB", 1e6) for _, r in rows.iterrows()],
            "metric": rows["metric"],
            "value": [_approx(r, "value", r["value_text"]) for _, r in rows.iterrows()],
            "baseline": [
                _approx(r, "baseline_value", r["baseline_value_text"])
                or (
                    ""
                    if pd.isna(r["baseline_value_used"])
                    else f"{r['baseline_value_used']:g} (baseline row)"
                )
                for _, r in rows.iterrows()
            ],
            "MACs ×": [_factor(r, "macs") for _, r in rows.iterrows()],
            "params ×": [_factor(r, "params") for _, r in rows.iterrows()],
            "memory ×": [_factor(r, "memory") for _, r in rows.iterrows()],
            "stored bytes ×": [_factor(r, "stored_bytes") for _, r in rows.iterrows()],
            "Δ quality (+ = better)": [_change(r) for _, r in rows.iterrows()],
            "claim": rows["claim"],
            "protocol": rows["protocol"],
            "mark": rows["mark"],
            "source": rows["source"],
        }
    ).fillna("")
    keep = [c for c in out.columns if c in ("protocol", "mark", "source") or (out[c] != "").any()]
    for column in ("generator", "dataset", "period"):
        # a column that says the same thing on every row belongs in the title, not in the table
        if column in keep and out[column].nunique() == 1:
            keep.remove(column)
    return out[keep].reset_index(drop=True)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (our own renderer: no optional dependency)."""
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"$\sim$",
    "^": r"\^{}",
    "×": r"$\times$",
    "→": r"$\rightarrow$",
    "Δ": r"$\Delta$",
    "§": r"\S{}",
    "≥": r"$\geq$",
    "≈": r"$\approx$",
    "–": "--",
    "≤": r"$\leq$",
}


def _tex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, title: str | None = None, label: str | None = None) -> str:
    """A booktabs ``table`` environment (our own renderer, so every cell is escaped the same way)."""
    body = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\scriptsize",
    ]
    if title:
        body.append(rf"\caption{{{_tex(title)}}}")
    if label:
        body.append(rf"\label{{tab:{label}}}")
    body += [
        r"\begin{tabular}{" + "l" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(_tex(c) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    body += [" & ".join(_tex(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
    body += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(body) + "\n"


def raw_frame(frame: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """One benchmark's rows with every data and derived column, numbers unformatted (for CSV)."""
    rows = frame[frame["benchmark"] == benchmark]
    rows = rows.assign(_order=_group_order(rows)).sort_values(["_order"], kind="stable")
    drop = [c for c in ("_order", "value_text", "baseline_value_text") if c in rows.columns]
    return rows.drop(columns=drop).reset_index(drop=True)


def render(frame: pd.DataFrame, benchmark: str, fmt: str = "markdown") -> str:
    """One benchmark's table as ``markdown``, ``latex`` or ``csv`` text."""
    check_choice("table format", fmt, FORMATS)
    check_choice("benchmark", benchmark, benchmarks(frame))
    if fmt == "csv":
        return raw_frame(frame, benchmark).to_csv(index=False)
    table, title = display_frame(frame, benchmark), benchmark_title(frame, benchmark)
    return to_markdown(table, title) if fmt == "markdown" else to_latex(table, title, benchmark)


def technique_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Works (rows) by family (columns), 1 where any of the work's compressed rows uses the family.

    Also gives each work's period, first year and how many of the five lossy families it combines.
    """
    rows = frame[frame["role"] == "compressed"]
    works = []
    for work, group in rows.groupby("work", sort=False):
        fams = set().union(*(family_set(f) for f in group["families"]))
        works.append(
            {
                "work": work,
                "period": group["period"].iloc[0],
                "year": int(group["year"].min()),
                **{family: int(family in fams) for family in LITERATURE_FAMILIES},
                "lossy families": sum(family in fams for family in FAMILIES),
            }
        )
    matrix = pd.DataFrame(works, columns=["work", "period", "year", *LITERATURE_FAMILIES, "lossy families"])
    order = matrix["period"].map({"pre-survey": 0, "post-survey": 1}).fillna(2)
    matrix = matrix.assign(_order=order).sort_values(["_order", "year", "work"], kind="stable")
    return matrix.drop(columns="_order").set_index("work")


def family_coverage(matrix: pd.DataFrame) -> pd.DataFrame:
    """Number of works per family and period, read off the technique matrix (0 shows an empty family)."""
    coverage = matrix.groupby("period")[list(LITERATURE_FAMILIES)].sum().T.rename_axis("family")
    return coverage[_periods(coverage.columns)]


def _periods(columns: pd.Index) -> list[str]:
    """Pre-survey before post-survey, whatever order a groupby produced."""
    return sorted(columns, key=lambda p: {"pre-survey": 0, "post-survey": 1}.get(p, 2))


def combination_counts(matrix: pd.DataFrame) -> pd.DataFrame:
    """How many works combine 0, 1, 2, ... of the five lossy families, per period."""
    counts = matrix.groupby(["lossy families", "period"]).size().unstack(fill_value=0)
    return counts.reindex(range(0, len(FAMILIES) + 1), fill_value=0)[_periods(counts.columns)]


def matrix_display(matrix: pd.DataFrame) -> pd.DataFrame:
    """The matrix with x marks (blank = not used), for Markdown and LaTeX."""
    shown = matrix.copy()
    for family in LITERATURE_FAMILIES:
        shown[family] = np.where(shown[family] == 1, "x", "")
    return shown.reset_index()


def _num(value: object, digits: str = ".3g") -> str:
    return "" if value is None or pd.isna(value) else f"{value:{digits}}"


def reproduction_table(records: pd.DataFrame, benchmark: str) -> dict[str, pd.DataFrame]:
    """This reproduction's arms on one benchmark as readable tables, one row per arm (not per seed).

    Built on :func:`gansurvey.records.arm_table`: quality is ``mean ± sd`` over the arm's ``n`` seeds; the
    change against the baseline is given in the metric's own units (positive = better), and in percent only
    when the baseline is not near the metric's floor (see :data:`gansurvey.records.NEAR_FLOOR`). Returns
    ``{"arms": ..., "no fine-tuning": ...}``; the second (compressed models measured before any training) is
    kept apart and may be empty.

    Args:
        records: measured records (``ResultsStore(profile).load_all()``).
        benchmark: one of the records' benchmarks.

    Example:
        >>> reproduction_table(ResultsStore("quick").load_all(), "mnist-dcgan")["arms"]  # doctest: +SKIP
    """
    check_choice("benchmark", benchmark, benchmarks(records))
    arms = arm_table(records[records["benchmark"] == benchmark])
    shown = pd.DataFrame({
        "stage": arms["stage"],
        "family": [family_label(f) if s != "baseline" else "baseline" for f, s in zip(arms["family"],
                                                                                     arms["stage"], strict=True)],
        "technique": arms["technique"],
        "budget": arms["budget"].fillna(""),
        "steps": [_num(v, "g") for v in arms["steps"]],
        "n seeds": arms["n"].astype(str),
        "MACs": [_si(v, "G", 1e9) for v in arms["macs"]],
        "params": [_si(v, "M", 1e6) for v in arms["params"]],
        "stored bytes": [_si(v, " MB", 1e6) for v in arms["stored_bytes"]],
        "metric": arms["primary_metric"],
        "mean ± sd": arms["mean ± sd"],
        "Δ quality (metric units, + = better)": [_num(v, "+.3g") for v in arms["quality_change"]],
        "Δ %": [_num(v, "+.1f") for v in arms["quality_change_pct"]],
    })
    keep = [c for c in shown.columns if (shown[c] != "").any()]
    # One model measured twice (a sweep point reused as a matched pair's arm) is one arm to the reader: rows alike
    # in every shown column differ only in bookkeeping settings.
    shown = shown[~shown.duplicated()]
    untuned = arms["stage"].loc[shown.index] == "no fine-tuning"
    return {"arms": shown.loc[~untuned, keep].reset_index(drop=True),
            "no fine-tuning": shown.loc[untuned, keep].reset_index(drop=True)}


def render_reproduction(records: pd.DataFrame, benchmark: str, fmt: str = "markdown") -> str:
    """:func:`reproduction_table` as ``markdown`` or ``latex`` text (the arms, then the no-fine-tuning rows
    under their own title), or ``csv`` (every column of :func:`gansurvey.records.arm_table`)."""
    check_choice("table format", fmt, FORMATS)
    if fmt == "csv":
        check_choice("benchmark", benchmark, benchmarks(records))
        return arm_table(records[records["benchmark"] == benchmark]).to_csv(index=False)
    parts = reproduction_table(records, benchmark)
    title = f"This reproduction: {benchmark} (one row per arm: mean ± sd over n seeds)"
    out = [to_markdown(parts["arms"], title) if fmt == "markdown" else to_latex(parts["arms"], title, benchmark)]
    if len(parts["no fine-tuning"]):
        sub = f"This reproduction: {benchmark}, compressed models before any fine-tuning"
        out.append(to_markdown(parts["no fine-tuning"], sub) if fmt == "markdown"
                   else to_latex(parts["no fine-tuning"], sub, f"{benchmark}-no-finetuning"))
    return "\n".join(out)


def reproduction_rows(records: pd.DataFrame) -> pd.DataFrame:
    """Measured records (``ResultsStore(profile).load_all()``) in the literature table's shape.

    Each record is compared with the uncompressed record of its benchmark and metric (family ``baseline``), so
    the derived columns mean the same thing as in the literature tables.
    """
    if records.empty:
        return pd.DataFrame()
    rows = []
    for rec in records.to_dict("records"):
        raw = str(rec.get("family") or "").strip().lower()
        uncompressed = raw in _UNCOMPRESSED
        fams = [f for f in raw.replace("+", ";").replace(",", ";").split(";") if f.strip()]
        value = rec.get("primary_value")
        has_value = value is not None and not pd.isna(value)
        settings = _settings_text(rec.get("settings"))
        rows.append(
            {
                "line": 0,
                "section": "measured",
                "benchmark": rec["benchmark"],
                "role": "baseline" if uncompressed else "compressed",
                "work": "this reproduction",
                "variant": settings,
                "method": f"{rec['technique']} {settings}".strip(),
                "families": "" if uncompressed else ";".join(f.strip() for f in fams),
                "year": 0,
                "venue": "",
                "period": "reproduction",
                "generator": "measured",
                "dataset": rec["benchmark"],
                "macs": rec.get("macs"),
                "params": rec.get("params"),
                "memory_mb": None,
                "stored_bytes": rec.get("stored_bytes"),
                "baseline_macs": None,
                "baseline_params": None,
                "macs_x_reported": None,
                "params_x_reported": None,
                "memory_x_reported": None,
                "metric": rec.get("primary_metric") if has_value else "",
                # a CSV round trip may leave "True"/"False" strings, and bool("False") is True
                "higher_is_better": str(rec.get("higher_is_better")).strip().lower() in ("true", "1", "1.0")
                if has_value
                else None,
                "value": float(value) if has_value else None,
                "baseline_value": None,
                "value_text": f"{float(value):.4g}" if has_value else "",
                "baseline_value_text": "",
                "approx": "",
                "protocol": f"gansurvey, {rec.get('profile', '')} profile" if has_value else "",
                "mark": "measured",
                "source": f"results/{rec.get('profile', '')}/{rec.get('notebook', '')}.csv",
                "claim": "",
                "note": f"seed {rec.get('seed', '')}, device {rec.get('device', '')}",
            }
        )
    frame = pd.DataFrame(rows)
    # with several baseline records of one benchmark (seeds, notebooks) the first one is the reference
    out = derive(frame)
    base_bytes = frame[frame["role"] == "baseline"].groupby("benchmark")["stored_bytes"].first()
    used = frame["benchmark"].map(base_bytes).astype(float)
    out["stored_bytes_x_computed"] = (used / frame["stored_bytes"].astype(float)).where(
        frame["role"] != "baseline"
    )
    out["stored_bytes_x_reported"] = np.nan
    out["section"] = "measured"
    return out


def _settings_text(settings: object) -> str:
    if settings is None or (isinstance(settings, float) and math.isnan(settings)):
        return ""
    try:
        parsed = json.loads(settings) if isinstance(settings, str) else settings
    except ValueError:
        return str(settings)
    if isinstance(parsed, dict):
        return ", ".join(f"{k}={v}" for k, v in parsed.items())
    return str(parsed)
