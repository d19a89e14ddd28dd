"""Write every table, the technique matrix, the findings and the figures to ``results/<profile>/tables/``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gansurvey.checks import check_writable
from gansurvey.claims.distillation import distillation_vs_pruning
from gansurvey.claims.verdict import Check
from gansurvey.config import check_profile, results_dir
from gansurvey.io import atomic_write_bytes, atomic_write_text
from gansurvey.records import ResultsStore, warn_missing_records
from gansurvey.survey import figures, tables
from gansurvey.survey.findings import check_all, findings_frame
from gansurvey.survey.literature import load_energy, load_literature

#: What to do about an unwritable tables folder under the results folder.
TABLES_HINT = "set GANSURVEY_RESULTS to a folder you can write (it defaults to results/ in the project)"

TABLES_TITLE = (
    "# Comparison tables of the surveyed works, rebuilt from their primary sources (data/literature.csv)\n\n"
    "The survey's full text, and so its own tables, could not be consulted; these tables are rebuilt from the "
    "papers and repositories the survey cites (or would cite), with the source, protocol and verification mark "
    "of every number.\n\n"
)


def findings_markdown(findings: list[Check]) -> str:
    """Every finding with its verdict, where the claim comes from (survey abstract or this project's reading),
    summary, parameters and evidence table.

    Args:
        findings: :func:`gansurvey.survey.check_all`'s checks.

    Example:
        >>> text = findings_markdown(check_all(load_literature(), load_energy()))  # doctest: +SKIP
    """
    parts = [
        "# Findings checked against the literature's numbers",
        "",
        "F1-F5 are claims of the survey's abstracts, worded as the abstracts state them; F6-F8 are this project's "
        "reading of the literature (the survey's full text could not be consulted). The *basis* column says which.",
        "",
    ]
    parts.append(tables.to_markdown(findings_frame(findings)[["id", "claim", "verdict", "basis"]].astype(str)))
    for f in findings:
        parts.append(f.to_markdown())
        if not f.evidence.empty:
            parts.append(tables.to_markdown(_strings(f.evidence)))
    return "\n".join(parts)


def _strings(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame.astype(object).where(frame.notna(), "").map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
    )


def write_tables(profile: str, out_dir: Path | None = None) -> list[Path]:
    """Write ``<benchmark>.md/.tex/.csv`` for the literature (and for our measured records, when any), the
    technique matrix, the findings and the PNG figures, each file atomically; returns the paths.

    Before anything is written, the records are read (a damaged records file is refused, naming it) and the tables
    folder is checked for writing (one under a file, or read-only, is refused naming the folder and what to set),
    so a failure never leaves half the tables rewritten."""
    check_profile(profile)
    out = Path(out_dir) if out_dir is not None else results_dir(profile) / "tables"
    measured = ResultsStore(profile).load_all()
    check_writable("tables folder", out, TABLES_HINT if out_dir is None else "")
    lit = load_literature()
    written: list[Path] = []

    def text(name: str, content: str) -> None:
        written.append(atomic_write_text(out / name, content))

    text("literature.csv", lit.drop(columns=["value_text", "baseline_value_text"]).to_csv(index=False))
    combined = []
    for bench in tables.benchmarks(lit):
        for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
            text(f"{bench}.{ext}", content := tables.render(lit, bench, fmt))
            if fmt == "markdown":
                combined.append(content)
    text(
        "all_tables.md",
        TABLES_TITLE + "\n".join(combined),
    )

    matrix = tables.technique_matrix(lit)
    shown = tables.matrix_display(matrix)
    text("technique_matrix.csv", matrix.to_csv())
    text(
        "technique_matrix.tex",
        tables.to_latex(shown.astype(str), "Works by compression family", "technique-matrix"),
    )
    coverage = tables.family_coverage(matrix).reset_index()
    combos = tables.combination_counts(matrix).reset_index()
    text(
        "technique_matrix.md",
        "\n".join(
            [
                tables.to_markdown(shown.astype(str), "Works by compression family"),
                tables.to_markdown(coverage.astype(str), "Works per family"),
                tables.to_markdown(combos.astype(str), "Works by number of lossy families combined"),
            ]
        ),
    )

    findings = check_all(lit, load_energy())
    text("findings.md", findings_markdown(findings))
    text("findings.csv", findings_frame(findings).to_csv(index=False))

    warn_missing_records(profile)  # #21: tables made without some notebooks' measurements say which
    for bench in tables.benchmarks(measured) if not measured.empty else []:
        for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
            text(f"reproduction_{bench}.{ext}", tables.render_reproduction(measured, bench, fmt))
    if not measured.empty:
        # F1 on our own records: one verdict per training budget, with its seed count
        f1 = distillation_vs_pruning(measured, profile=profile)
        evidence = tables.to_markdown(_strings(f1.evidence)) if len(f1.evidence) else ""
        text("reproduction_checks.md",
             "# Claims checked on this reproduction's measurements\n\n" + f1.to_markdown() + "\n" + evidence)

    for bench in figures.plotted_benchmarks(lit):
        written.append(
            atomic_write_bytes(
                out / f"tradeoff_{bench}.png", figures.png_bytes(figures.tradeoff_figure(lit, bench))
            )
        )
    written.append(
        atomic_write_bytes(out / "technique_matrix.png", figures.png_bytes(figures.matrix_heatmap(matrix)))
    )
    return written
