"""Atomic writes and checksummed files: a reader never sees half a file, and a damaged one is detected."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CorruptFileError(RuntimeError):
    """A cached or stored file does not match its checksum or cannot be read."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename.

    A folder in the file's place, or a failed write (disk full, ``ulimit -f``), is refused naming the file; the
    temporary file is removed either way."""
    path = Path(path)
    _refuse_folder(path, "written")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {_shown(path)}: {exc.strerror or exc}") from exc
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are shared like any file the user writes
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write {_shown(path)} ({len(data)} bytes): {exc.strerror or exc}") \
            from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _shown(path: Path) -> str:
    from gansurvey.checks import display_path

    return display_path(path)


def _refuse_folder(path: Path, verb: str) -> None:
    if path.is_dir():
        from gansurvey.checks import GanSurveyError

        raise GanSurveyError(f"{_shown(path)} is a folder where a file is to be {verb}; move or delete that folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_sha256(data: bytes) -> str:
    """SHA-256 of what a run of a notebook (its bytes) executes: each cell's kind, source and tags (papermill finds
    the ``parameters`` cell by its tag), without outputs, execution counts or other metadata. Bytes that are not a
    notebook are digested as bytes (a run of them fails and says why)."""
    try:
        cells = json.loads(data.decode("utf-8"))["cells"]
        text = json.dumps([[cell["cell_type"], _joined(cell["source"]),
                            sorted(cell.get("metadata", {}).get("tags", []))] for cell in cells])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return sha256_bytes(data)
    return sha256_bytes(text.encode())


def _joined(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)  # nbformat stores either


def state_sha256(state: dict[str, dict[str, Any]]) -> str:
    """A digest of the networks' tensors themselves (names, dtypes, shapes, values), independent of how the file
    serialises them: what a loaded teacher is checked against."""
    digest = hashlib.sha256()
    for net in sorted(state):
        for key, tensor in sorted(state[net].items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{net}/{key}/{tensor.dtype}/{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_checked(path: str | os.PathLike, obj: Any, meta: dict | None = None) -> Path:
    """``torch.save`` ``obj`` atomically, with a ``.json`` sidecar holding its SHA-256 and ``meta``.

    The sidecar is written last, so a file without a matching sidecar is never trusted.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    sidecar = {"sha256": sha256_bytes(data), "bytes": len(data), "meta": meta or {}}
    atomic_write_text(_sidecar(path), json.dumps(sidecar, indent=2, sort_keys=True))
    return path


def load_checked(path: str | os.PathLike, meta: dict | None = None) -> Any:
    """Load a file written by :func:`save_checked`.

    Raises :class:`CorruptFileError` if the file or its sidecar is missing, damaged, or was written with
    different ``meta`` (a stale cache entry).
    """
    path = Path(path)
    side = _sidecar(path)
    _refuse_folder(path, "read")
    _refuse_folder(side, "read")
    if not path.exists() or not side.exists():
        raise CorruptFileError(f"{_shown(path)}: file or checksum sidecar {side.name} is missing")
    try:
        sidecar = json.loads(side.read_text())
        expected = sidecar["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"{_shown(side)}: unreadable checksum sidecar ({exc})") from exc
    data = path.read_bytes()
    if sha256_bytes(data) != expected:
        raise CorruptFileError(f"{_shown(path)}: SHA-256 does not match {side.name} (file damaged or replaced)")
    if meta is not None and sidecar.get("meta") != json.loads(json.dumps(meta)):
        raise CorruptFileError(f"{_shown(path)}: written for {sidecar.get('meta')}, not for {meta} (stale)")
    return torch.load(io.BytesIO(data), weights_only=False)


def remove_checked(path: str | os.PathLike) -> None:
    """Remove a file written by :func:`save_checked` and its sidecar (either may be missing)."""
    path = Path(path)
    # the sidecar goes first: a file left without its sidecar is never trusted, the reverse would look sound
    _sidecar(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")
