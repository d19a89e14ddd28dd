"""A checksummed cache of trained things (teachers, evaluation classifiers, real-data statistics).

Each entry lives under ``artifacts/<kind>/`` and is keyed by a description of what produced it (benchmark,
profile, seed, code version, hyper-parameters). A damaged file, or one written for another key, is detected,
reported and rebuilt; it is never silently used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gansurvey.config import CODE_VERSION, artifacts_dir
from gansurvey.io import CorruptFileError, load_checked, save_checked

log = logging.getLogger(__name__)
T = TypeVar("T")


def cache_key(**fields: Any) -> dict:
    """The key of an entry: the given fields plus the code version, normalised through JSON."""
    return json.loads(json.dumps({**fields, "code_version": CODE_VERSION}, sort_keys=True, default=str))


def cache_path(kind: str, key: dict, root: Path | None = None) -> Path:
    """``artifacts/<kind>/<readable prefix>-<hash>.pt`` for ``key``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    label = "-".join(str(key[k]) for k in ("benchmark", "profile", "seed") if k in key)
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label) or kind
    return (root or artifacts_dir()) / kind / f"{label}-{digest}.pt"


def cached(kind: str, key: dict, build: Callable[[], T], root: Path | None = None) -> T:
    """Load the entry for ``key`` if a sound one exists, otherwise ``build()`` it and store it atomically."""
    path = cache_path(kind, key, root)
    if path.exists():
        try:
            return load_checked(path, meta=key)
        except CorruptFileError as exc:
            log.warning("rebuilding %s entry: %s", kind, exc)
    value = build()
    save_checked(path, value, meta=key)
    return value
