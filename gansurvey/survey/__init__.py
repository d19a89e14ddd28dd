"""The comparison tables of the surveyed works, rebuilt from their primary sources as data (the survey's own
tables could not be consulted): load and validate the literature, render tables, draw figures, and check the
findings against the numbers (F1-F5 from the survey's abstracts, F6-F8 this project's reading).

Submodules: ``literature`` (load, validate, derive), ``tables`` (Markdown/LaTeX/CSV and the technique matrix),
``findings`` (F1-F8), ``figures`` (trade-off plots and the coverage heat map), ``output`` (``write_tables``),
``measured`` (the claims of notebooks 00-06 recomputed from stored records: quick verdicts beside full ones).
"""

from gansurvey.survey.findings import VERDICTS, Check, check_all, findings_frame
from gansurvey.survey.literature import (
    LITERATURE_FAMILIES,
    LiteratureDataError,
    load_energy,
    load_literature,
)
from gansurvey.survey.output import write_tables
from gansurvey.survey.tables import (
    benchmarks,
    display_frame,
    render,
    reproduction_rows,
    technique_matrix,
)

__all__ = [
    "LITERATURE_FAMILIES",
    "VERDICTS",
    "Check",
    "LiteratureDataError",
    "benchmarks",
    "check_all",
    "display_frame",
    "findings_frame",
    "load_energy",
    "load_literature",
    "render",
    "reproduction_rows",
    "technique_matrix",
    "write_tables",
]
