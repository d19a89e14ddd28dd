"""A checksummed cache of trained things (teachers, evaluation classifiers, real-data statistics).

Each entry lives under ``artifacts/<kind>/`` and is keyed by a description of what produced it (benchmark,
profile, seed, code version, hyper-parameters). A damaged file, or one written for another key, is detected,
reported and rebuilt; it is never silently used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from gansurvey.config import CODE_VERSION, artifacts_dir
from gansurvey.io import CorruptFileError, load_checked, remove_checked, save_checked, sha256_bytes, state_sha256

log = logging.getLogger(__name__)
T = TypeVar("T")


def cache_key(**fields: Any) -> dict:
    """The key of an entry: the given fields plus the code version, normalised through JSON."""
    return json.loads(json.dumps({**fields, "code_version": CODE_VERSION}, sort_keys=True, default=str))


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(kind: str, key: dict, root: Path | None = None) -> Path:
    """``artifacts/<kind>/<readable prefix>-<hash>.pt`` for ``key``."""
    digest = _digest(key)
    label = "-".join(str(key[k]) for k in ("benchmark", "profile", "seed") if k in key)
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label) or kind
    return (root or artifacts_dir()) / kind / f"{label}-{digest}.pt"


def cached(kind: str, key: dict, build: Callable[[], T], root: Path | None = None,
           shipped: Path | None = None) -> T:
    """Load the entry for ``key`` if a sound one exists, otherwise ``build()`` it and store it atomically.

    ``shipped`` is a committed, read-only folder laid out like the cache (``<shipped>/<kind>/...``), looked in
    first: entries trained once and committed with the project (a damaged one is reported and rebuilt in the
    cache, never written over)."""
    if shipped is not None and (committed := cache_path(kind, key, shipped)).exists():
        try:
            return load_checked(committed, meta=key)
        except CorruptFileError as exc:
            log.warning("not using the committed %s entry: %s", kind, exc)
    path = cache_path(kind, key, root)
    if path.exists():
        try:
            return load_checked(path, meta=key)
        except CorruptFileError as exc:
            log.warning("rebuilding %s entry: %s", kind, exc)
    value = build()
    save_checked(path, value, meta=key)
    return value


def training_checkpoint(kind: str, **fields: Any) -> Path:
    """Where a resumable training run of ``kind`` (``finetune``, ``distill``) keeps its checkpoint for
    :func:`gansurvey.train.gan.train_gan`: ``artifacts/checkpoints/<kind>-<digest>.pt``, the digest taken over
    ``fields`` and the code version. Pass everything that decides the trained weights (starting networks, recipe,
    seed, data, device type): networks and tensors count by their values, dataclasses by their fields, so a run
    that differs in any of them never resumes another's checkpoint. The artifacts folder is checked first."""
    from gansurvey.checks import check_writable

    folder = check_writable("artifacts folder", artifacts_dir() / "checkpoints",
                            "set GANSURVEY_ARTIFACTS to a folder you can write")
    key = cache_key(kind=kind, **{name: _by_value(value) for name, value in fields.items()})
    return folder / f"{kind}-{_digest(key)}.pt"


def _by_value(value: Any) -> Any:
    if isinstance(value, torch.nn.Module):
        return [type(value).__qualname__, state_sha256({"module": value.state_dict()})]
    if isinstance(value, torch.Tensor):
        return state_sha256({"tensor": {"value": value}})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [type(value).__qualname__, _by_value(dataclasses.asdict(value))]
    if isinstance(value, dict):
        return {str(k): _by_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_by_value(v) for v in value]
    return value  # anything else by its JSON form (cache_key writes an unknown object as its str)


# --- Shipped networks ---------------------------------------------------------------------------------------------
# Every built-in benchmark's teacher (and the digit classifier that scores the digit benchmarks) is trained once and
# committed under ``data/teachers/``: ``<name>.pt`` (state dicts, one per network) beside ``<name>.json``, its card
# (recipe, steps, seed, threads, torch version, commit, curve, final quality with its interval, SHA-256). Every
# profile loads these files, so the same notebook starts from bit-identical weights on every machine; nothing
# trains them unless asked to (``python -m gansurvey teachers --train``).

RETRAIN_HINT = "python -m gansurvey teachers --train {name}"


def shipped_dir() -> Path:
    """The committed folder of shipped networks (``data/teachers``)."""
    from gansurvey.config import data_dir

    return data_dir() / "teachers"


def shipped_files(name: str, root: Path | None = None) -> tuple[Path, Path]:
    """The checkpoint and the card shipped for ``name`` (a benchmark's teacher, or ``digit-classifier``)."""
    folder = root or shipped_dir()
    return folder / f"{name}.pt", folder / f"{name}.json"


def retrain_files(recipe: dict, root: Path | None = None) -> tuple[Path, Path]:
    """Where a retrain with ``recipe`` keeps its work until the shipped files are written
    (``artifacts/retrain/<benchmark>-<digest of the recipe>.pt``): the training checkpoint, which a re-run resumes,
    and beside it (``.trained.pt``) the trained networks with their log, so that a run stopped while its card is
    computed does not train again. The name holds the recipe's digest (and the code version): a changed recipe
    never resumes another's work. :func:`write_shipped` removes both."""
    path = cache_path("retrain", cache_key(**recipe), root)
    return path, path.with_name(f"{path.stem}.trained.pt")


def read_card(name: str, root: Path | None = None) -> dict:
    """The card shipped for ``name``; a missing or unreadable card is refused with the rebuild command."""
    from gansurvey.checks import GanSurveyError
    from gansurvey.config import display_path

    _, card_path = shipped_files(name, root)
    if not card_path.is_file():
        raise GanSurveyError(f"no shipped card for {name!r} at {display_path(card_path)}; "
                             f"rebuild it with `{RETRAIN_HINT.format(name=name)}`")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card["sha256"], card["state_sha256"], card["recipe"]  # noqa: B018 - the fields a load relies on
    except (ValueError, KeyError, TypeError) as exc:
        raise GanSurveyError(f"the card {display_path(card_path)} is damaged ({exc}); "
                             f"rebuild it with `{RETRAIN_HINT.format(name=name)}`") from exc
    return card


def load_shipped(name: str, recipe: dict, root: Path | None = None) -> dict[str, dict]:
    """The shipped networks of ``name`` (``{"generator": state, "discriminator": state}`` for a teacher), after
    checking that the file matches its card byte for byte, that the tensors match the card's digest, and that the
    card's recipe is ``recipe`` (what the code would train today). Any mismatch is refused with the file and the
    rebuild command; nothing is retrained or overwritten silently."""
    from gansurvey.checks import GanSurveyError
    from gansurvey.config import display_path

    card = read_card(name, root)
    path, card_path = shipped_files(name, root)
    hint = f"rebuild it with `{RETRAIN_HINT.format(name=name)}`"
    if not path.is_file():
        raise GanSurveyError(f"the shipped file of {name!r} is missing: {display_path(path)}; {hint}")
    data = path.read_bytes()
    if sha256_bytes(data) != card["sha256"]:
        raise GanSurveyError(f"{display_path(path)} does not match the SHA-256 of its card "
                             f"{display_path(card_path)} (damaged, truncated or replaced); {hint}")
    wanted = json.loads(json.dumps(recipe, sort_keys=True, default=str))
    if card["recipe"] != wanted:
        changed = sorted(k for k in set(card["recipe"]) | set(wanted) if card["recipe"].get(k) != wanted.get(k))
        raise GanSurveyError(f"the shipped {name!r} was trained with another recipe than the code's "
                             f"(differs in: {', '.join(changed)}); {hint}")
    try:
        state = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:  # a file that passed the checksum but is not a checkpoint (a card copied from another)
        raise GanSurveyError(f"{display_path(path)} is not a shipped checkpoint ({exc}); {hint}") from exc
    if not isinstance(state, dict) or sorted(state) != sorted(card.get("networks", ())) or \
            state_sha256(state) != card["state_sha256"]:
        raise GanSurveyError(f"the tensors in {display_path(path)} do not match its card's state digest; {hint}")
    return state


def write_shipped(name: str, state: dict[str, dict], card: dict, root: Path | None = None) -> tuple[Path, Path]:
    """Store shipped networks and their card atomically (checkpoint first, card last: a checkpoint without a
    matching card is never loaded). ``card`` gets the networks' names and the file's and tensors' SHA-256.
    Then the retrain's files for the card's recipe (:func:`retrain_files`) are removed: only now is their work
    kept elsewhere."""
    from gansurvey.io import atomic_write_bytes, atomic_write_text

    path, card_path = shipped_files(name, root)
    buffer = io.BytesIO()
    torch.save({net: {k: v.detach().cpu().clone() for k, v in sd.items()} for net, sd in state.items()}, buffer)
    data = buffer.getvalue()
    card = {**card, "networks": sorted(state), "file": path.name, "bytes": len(data), "sha256": sha256_bytes(data),
            "state_sha256": state_sha256(state)}
    atomic_write_bytes(path, data)
    atomic_write_text(card_path, json.dumps(card, indent=1, sort_keys=True, default=str) + "\n")
    if "recipe" in card:
        for kept in retrain_files(card["recipe"]):
            remove_checked(kept)
    return path, card_path
