"""Narrow views of the literature tables (#24: the full tables are about 17 columns wide, sources off-screen)."""

from gansurvey.survey import load_literature, tables
from gansurvey.survey.views import NARROW_COLUMNS, narrow_frame, narrow_markdown


def test_narrow_view_keeps_the_comparison_columns_and_numbers_every_source():
    lit = load_literature()
    for bench in tables.benchmarks(lit):
        full = tables.display_frame(lit, bench)
        shown, notes = narrow_frame(lit, bench)
        assert set(shown.columns) <= set(NARROW_COLUMNS) and len(shown.columns) <= 12
        assert len(shown) == len(full)
        # every row points to a note holding its source
        for method, source in zip(shown["method"], full["source"], strict=True):
            number = int(method.rsplit("[", 1)[1].rstrip("]"))
            assert notes[number - 1].startswith(f"[{number}] {source}")
        text = narrow_markdown(lit, bench)
        assert "**Sources.**" in text and all(note in text for note in notes)
