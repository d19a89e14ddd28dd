"""The ``Measurement`` record and the results store: one CSV per notebook and profile, written atomically."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gansurvey.checks import GanSurveyError
from gansurvey.config import check_profile, results_dir
from gansurvey.io import atomic_write_text

QUALITY_FIELDS = (
    "fid",
    "fid_samples",
    "domain_fid",
    "kid",
    "precision",
    "recall",
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
    precision: float | None = None
    recall: float | None = None
    classifier_score: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    label_accuracy: float | None = None
    modes_covered: float | None = None
    high_quality_fraction: float | None = None

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["settings"] = json.dumps(self.settings, sort_keys=True)
        return row


COLUMNS = tuple(f.name for f in dataclasses.fields(Measurement))
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def records_frame(records: list[Measurement]) -> pd.DataFrame:
    """The records as a table with one row per measurement and the columns of :class:`Measurement`."""
    return pd.DataFrame([r.to_row() for r in records], columns=list(COLUMNS))


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
            raise FileNotFoundError(f"no results for notebook {notebook!r} in {self.root}")
        frame = pd.read_csv(path)
        # Records written before a column existed read it as missing, so old and new records load together.
        for column in COLUMNS:
            if column not in frame.columns:
                frame[column] = None
        return frame

    def notebooks(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.csv")) if self.root.exists() else []

    def load_all(self) -> pd.DataFrame:
        """Every notebook's records in one table (empty, with the standard columns, when there are none)."""
        frames = [self.read(name) for name in self.notebooks()]
        frames = [f for f in frames if set(COLUMNS) <= set(f.columns)]
        if not frames:
            return pd.DataFrame(columns=list(COLUMNS))
        return pd.concat(frames, ignore_index=True)
