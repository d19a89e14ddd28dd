"""Narrow views of the literature tables for reading in a notebook.

:func:`gansurvey.survey.tables.render` gives every column (about 17 for a busy benchmark), with the sources
off-screen to the right. :func:`narrow_markdown` keeps the columns a comparison is read from and moves each row's
source (and claim, where the work states one instead of a number) to numbered notes under the table. The files
``write_tables`` writes keep every column.
"""

from __future__ import annotations

import pandas as pd

from gansurvey.survey.tables import benchmark_title, display_frame, to_markdown

#: The columns a narrow view keeps (those present for the benchmark), in this order.
NARROW_COLUMNS = ("family", "method", "year", "MACs", "MACs ×", "params ×", "memory ×", "metric", "value",
                  "Δ quality (+ = better)", "protocol", "mark")


def narrow_frame(frame: pd.DataFrame, benchmark: str) -> tuple[pd.DataFrame, list[str]]:
    """One benchmark's rows with :data:`NARROW_COLUMNS` only, each method followed by its note number, and the
    notes: ``"[n] source"`` (with ``"; claim: ..."`` where the row states a claim), one per distinct note."""
    table = display_frame(frame, benchmark)
    notes: list[str] = []
    numbers = []
    for _, row in table.iterrows():
        note = str(row.get("source", "") or "no source given")
        if str(row.get("claim", "") or ""):
            note += f"; claim: {row['claim']}"
        if note not in notes:
            notes.append(note)
        numbers.append(notes.index(note) + 1)
    shown = table[[c for c in NARROW_COLUMNS if c in table.columns]].copy()
    shown["method"] = [f"{method} [{n}]" for method, n in zip(shown["method"], numbers, strict=True)]
    return shown, [f"[{i}] {note}" for i, note in enumerate(notes, start=1)]


def narrow_markdown(frame: pd.DataFrame, benchmark: str) -> str:
    """:func:`narrow_frame` as Markdown: the table, then its numbered sources."""
    shown, notes = narrow_frame(frame, benchmark)
    lines = [to_markdown(shown, benchmark_title(frame, benchmark)), "", "**Sources.**", ""]
    lines += [f"{note}  " for note in notes]  # two spaces: one note per line in Markdown
    return "\n".join(lines)
