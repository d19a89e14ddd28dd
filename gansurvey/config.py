"""Profiles, devices, seeds and the project's folders."""

from __future__ import annotations

import functools
import os
import random
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gansurvey.checks import GanSurveyError, check_choice, check_number, project_root
from gansurvey.checks import display_path as display_path  # re-exported: paths in messages
from gansurvey.io import notebook_sha256

#: quick: minutes per notebook on a CPU (CI runs it); full: the reproduction proper, sized to about an hour per
#: notebook on a 2-core CPU; paper: the full design where full had to be trimmed to fit (more widths, the uncapped
#: equal-total budget, the extended combinations), for a GPU or a cluster
PROFILES = ("quick", "full", "paper")
DEVICES = ("auto", "cpu", "cuda")

#: The family notebooks, one per taxonomy family: 06 joins their records, 07 shows them.
FAMILY_NOTEBOOKS = ("01_pruning", "02_distillation", "03_low_rank", "04_precision", "05_encoding")

#: Bump when a change alters what a cached teacher, classifier or statistic would contain.
CODE_VERSION = "2"


#: What a run writes into the checkout, which is not code: records, manifests, tables and executed notebooks under
#: ``results/``. The notebooks under ``notebooks/`` are code only in their cells' sources and tags.
GENERATED_FOLDERS = ("results/",)


@functools.lru_cache(maxsize=1)
def code_commit() -> str:
    """The checkout's commit (short hash), with ``+changes`` when tracked code differs from it, or ``unknown``
    outside a git checkout: what records and cards name as the code that produced them.

    What a run writes is not code: files under :data:`GENERATED_FOLDERS`, and a notebook whose cells' sources and
    tags match the commit's (a re-executed notebook differs in outputs only). Otherwise the records a regeneration
    writes for its first notebook would mark every later notebook's records ``+changes``, and 06 could join none."""
    try:
        root = project_root()
        run = functools.partial(subprocess.run, cwd=root, capture_output=True, timeout=20, check=True)
        commit = run(["git", "rev-parse", "--short", "HEAD"], text=True).stdout.strip()
        changed = run(["git", "diff", "--name-only", "-z", "HEAD", "--"], text=True).stdout.split("\0")
        edited = [path for path in changed if path and not _generated_change(root, path, run)]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if edited else "")


def _generated_change(root: Path, path: str, run: Any) -> bool:
    """Whether a tracked file that differs from HEAD holds output, not code (see :func:`code_commit`)."""
    if path.startswith(GENERATED_FOLDERS):
        return True
    if not path.endswith(".ipynb") or not (root / path).is_file():
        return False
    committed = run(["git", "show", f"HEAD:{path}"], check=False)
    here = (root / path).read_bytes()
    return committed.returncode == 0 and notebook_sha256(committed.stdout) == notebook_sha256(here)


def same_code(commit: str, other: str, paths: Sequence[str]) -> bool:
    """Whether two commits of this checkout (:func:`code_commit` values) hold the same ``paths`` (files or folders,
    relative to the project; ``git diff --quiet``). False when either is not a clean commit that this repository
    knows (``+changes``, ``unknown``, a foreign hash) or git cannot answer: a match must be shown, not assumed."""
    if any("+" in c or c == "unknown" or not c for c in (commit, other)):
        return False
    if commit == other:
        return True
    try:
        diff = subprocess.run(["git", "diff", "--quiet", commit, other, "--", *paths], cwd=project_root(),
                              capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return diff.returncode == 0  # 1: they differ; 128: a commit git does not know


def artifacts_dir() -> Path:
    """Where trained teachers, classifiers and feature statistics are cached (``GANSURVEY_ARTIFACTS``)."""
    return Path(os.environ.get("GANSURVEY_ARTIFACTS", project_root() / "artifacts"))


def results_dir(profile: str) -> Path:
    """Where one profile's records, tables and executed notebooks go (``GANSURVEY_RESULTS``)."""
    check_profile(profile)
    return Path(os.environ.get("GANSURVEY_RESULTS", project_root() / "results")) / profile


def data_dir() -> Path:
    """The committed ``data/`` folder (literature table, energy table)."""
    return project_root() / "data"


#: The environment variable that turns every progress bar off (``0``) or on (``1``, the default).
PROGRESS_ENV = "GANSURVEY_PROGRESS"
_PROGRESS_VALUES = {"1": True, "true": True, "on": True, "yes": True, "0": False, "false": False, "off": False,
                    "no": False}


def progress_enabled() -> bool:
    """Whether progress bars show: ``GANSURVEY_PROGRESS`` is ``1`` (the default) or ``0``, which turns every bar
    off (the notebooks' loops and the training steps alike): for runs whose outputs are kept, such as the
    regeneration of the committed notebooks, where a bar's updates would be stored in the cells."""
    value = os.environ.get(PROGRESS_ENV, "1").strip().lower()
    if value not in _PROGRESS_VALUES:
        raise GanSurveyError(f"{PROGRESS_ENV} must be 1 (progress bars, the default) or 0 (none), got "
                             f"{os.environ[PROGRESS_ENV]!r}")
    return _PROGRESS_VALUES[value]


def progress_bar(iterable: Any = None, **kwargs: Any):
    """A tqdm bar (``kwargs`` are tqdm's) of the kind that shows where the code runs: tqdm's notebook widget in a
    Jupyter kernel driven by a person (JupyterLab) where ipywidgets is installed, the text bar otherwise (a
    terminal; papermill, whose executed file would keep a widget's state but never draw it, and whose
    ``--log-output`` shows text; a kernel without ipywidgets, where tqdm.auto would warn in every notebook).
    Disabled when ``kwargs`` say so or :func:`progress_enabled` is false."""
    if not progress_enabled():
        kwargs["disable"] = True
    if not kwargs.get("disable") and _interactive_kernel():
        try:
            import ipywidgets  # noqa: F401 - tqdm.notebook imports without it, then fails at the first bar
            from tqdm.notebook import tqdm
        except ImportError:  # the text bar, which a notebook shows too
            from tqdm import tqdm
    else:
        from tqdm import tqdm
    return tqdm(iterable, **kwargs)


def _interactive_kernel() -> bool:
    """Whether this runs in a Jupyter kernel that a person drives, not one papermill drives (papermill injects a
    cell whose first line is ``# Parameters``; it stays in the kernel's input history ``In``)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or "IPKernelApp" not in shell.config:
        return False
    history = shell.user_ns.get("In") or []
    return not any(isinstance(source, str) and source.lstrip().startswith("# Parameters") for source in history)


def check_profile(profile: str) -> str:
    return check_choice("profile", profile, PROFILES)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present; asking for CUDA on a machine without it is an error."""
    if isinstance(device, torch.device):
        device = device.type
    check_choice("device", device, DEVICES)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise GanSurveyError("device 'cuda' was asked for but no CUDA GPU is visible; allowed here: 'auto', 'cpu'")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    check_number("seed", seed, minimum=0, integer=True)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class ProfileSettings:
    """How much work a profile buys: fine-tuning steps, evaluation samples, seeds, latency repeats, the grids the
    notebooks sweep (teachers are shipped, the same for every profile). Resolved once from the profile's name at
    the notebook or CLI edge (:func:`profile_settings`) and passed down; ``name`` is what records store."""

    name: str
    finetune_steps: int
    eval_samples: int
    inception_samples: int
    latency_warmup: int
    latency_repeats: int
    seeds: int  # how many seeds the family notebooks repeat each arm over (the spread of a verdict)
    student_widths: tuple[float, ...]  # distillation students, as fractions of the teacher's width
    lottery_steps: int  # training steps per lottery-ticket round on the toy
    total_budget_widths: tuple[float, ...] | None = None  # widths of 02's equal-total-budget arm (None: all)
    #: Most steps an equal-total-budget student trains for (None: the teacher's steps plus the fine-tuning); the
    #: quick and full profiles cap it to fit their time, and 02 says the arm is capped
    total_steps_cap: int | None = None
    #: Most steps a dense-from-scratch control trains for (None: the teacher's steps plus the fine-tuning, as in
    #: full); quick's and full's controls are shipped under data/dense-controls/, keyed by these steps
    dense_steps_cap: int | None = None
    #: 03's rank grid per method (fractions of each layer's full rank). CP's full rank is kh*kw*min(in, out), the
    #: size of an exact CP, so its useful fractions are smaller: at 0.03 a DCGAN layer keeps about as many weights
    #: as Tucker-2 at 0.25. Not hashed (a dict), like every field that is not a plain value.
    rank_grids: dict[str, tuple[float, ...]] = field(default_factory=dict, hash=False)
    #: 06: batch sizes of the roofline sweep.
    roofline_batches: tuple[int, ...] = (1,)
    #: 06: also the second settings per family and the longer pipelines (minutes of training each).
    extended_arms: bool = False
    #: 06: how many of its benchmarks (the first ones) the order experiment runs on; None: all. Every order trains
    #: once or twice per seed and benchmark (a third of full's 06 on a 2-core CPU with both benchmarks) and only the
    #: headline search reads its records (as more candidates), so quick and full keep the first benchmark.
    order_benchmarks: int | None = None
    #: 06's real-size weight sharing: "uniform" codebooks stored packed, or "k-means+ans" (k-means and entropy
    #: coding of tens of millions of weights take minutes on a CPU).
    real_size_sharing: str = "uniform"
    #: 06: latency batch sizes of the real-size generators, and which of their forms are timed (None: all).
    real_size_latency_batches: tuple[int, ...] = (1,)
    real_size_latency_of: tuple[str, ...] | None = None
    #: 01's recovery curves: fine-tuning steps and the steps between quality checks (how long a compressed arm
    #: takes to recover, with and without the teacher as a guide; the budgets are read off these curves).
    recovery_steps: int = 200
    recovery_every: int = 25


PROFILE_SETTINGS = {
    "quick": ProfileSettings(
        name="quick", finetune_steps=40, eval_samples=500, inception_samples=32,
        latency_warmup=2, latency_repeats=5, seeds=1, student_widths=(0.5,), lottery_steps=500,
        total_budget_widths=(0.5,), total_steps_cap=300, dense_steps_cap=300,
        rank_grids={"svd": (0.25,), "tucker2": (0.25,), "cp": (0.03,)},
        roofline_batches=(1, 8, 64), real_size_latency_of=("uncompressed", "channels 50%"), order_benchmarks=1,
    ),
    # Sized on this machine class (2 cores): every notebook about an hour or less, every arm a verdict uses over 3
    # seeds, 2000 evaluation samples; what did not fit moved to "paper" (below).
    "full": ProfileSettings(
        name="full", finetune_steps=500, eval_samples=2000, inception_samples=1000,
        latency_warmup=10, latency_repeats=50, seeds=3, student_widths=(0.5,), lottery_steps=1000,
        total_budget_widths=(0.5,), total_steps_cap=1500,
        rank_grids={"svd": (0.5, 0.25), "tucker2": (0.5, 0.25), "cp": (0.1, 0.03)},
        roofline_batches=(1, 4, 16, 64, 256), real_size_sharing="k-means+ans",
        real_size_latency_batches=(1, 8), recovery_steps=1000, recovery_every=100, order_benchmarks=1,
    ),
    # full plus what a 2-core CPU cannot afford in an hour per notebook: 02's narrower students and equal-total
    # students trained for the whole budget (the teacher's steps plus fine-tuning: 20500 steps on mnist-dcgan),
    # and 06's second setting per family, longer pipelines and order experiment on every benchmark. Its dense
    # controls are full's (same keys).
    "paper": ProfileSettings(
        name="paper", finetune_steps=500, eval_samples=2000, inception_samples=1000,
        latency_warmup=10, latency_repeats=50, seeds=3, student_widths=(0.25, 0.5), lottery_steps=1000,
        total_budget_widths=(0.25, 0.5),
        rank_grids={"svd": (0.5, 0.25, 0.1), "tucker2": (0.5, 0.25, 0.1), "cp": (0.1, 0.03, 0.01)},
        roofline_batches=(1, 4, 16, 64, 256), extended_arms=True, real_size_sharing="k-means+ans",
        real_size_latency_batches=(1, 8), recovery_steps=1000, recovery_every=100,
    ),
}


def profile_settings(profile: str) -> ProfileSettings:
    """The settings of ``profile``: resolve a profile name once, at the notebook or CLI edge, and pass these down."""
    return PROFILE_SETTINGS[check_profile(profile)]
