"""gansurvey: the executable companion to "A survey on GAN acceleration using memory compression techniques"
(Tantawy, Zahran, Wassal, 2021). Benchmarks, compression techniques, and one way to measure them.

The public names are imported lazily, so ``import gansurvey.data.bundled`` does not pull in every layer.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "BENCHMARKS": "gansurvey.benchmarks",
    "FOLDER_BENCHMARKS": "gansurvey.benchmarks",
    "get_benchmark": "gansurvey.benchmarks",
    "GanSurveyError": "gansurvey.checks",
    "PROFILES": "gansurvey.config",
    "code_commit": "gansurvey.config",
    "ProfileSettings": "gansurvey.config",
    "profile_settings": "gansurvey.config",
    "resolve_device": "gansurvey.config",
    "seed_everything": "gansurvey.config",
    "measure": "gansurvey.measuring",
    "Measurement": "gansurvey.records",
    "ResultsStore": "gansurvey.records",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'gansurvey' has no attribute {name!r}")
