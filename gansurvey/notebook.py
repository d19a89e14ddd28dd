"""Notebook parameters, checked before any work, and where a run's records go.

Every notebook's second code cell (right after the cell tagged ``parameters``) is::

    import gansurvey as gs
    run = gs.notebook_parameters("01_pruning", globals())

:func:`notebook_parameters` checks every parameter against the notebook's spec (:data:`NOTEBOOK_PARAMETERS`):
types, allowed values and bounds, with errors that name the bad value and what is allowed. A list parameter given
as a string (``papermill -p benchmarks '["mnist-dcgan"]'``) is parsed as JSON/YAML; a single value stands for a
list of one. A parameter name that papermill injected but the notebook does not have (a misspelling, which papermill
only warns about) is refused, with the closest known name. The results folder is checked for writing before any
computation.

Records kept apart: a regeneration (``python -m gansurvey regenerate`` injects ``records_to = "tables"``) writes
``results/<profile>/<notebook>.csv``, the records the survey tables are built from. Any other run (JupyterLab's
Run All, an ad hoc ``papermill`` call) keeps the default ``records_to = "adhoc"`` and writes
``results/<profile>/adhoc/<notebook>-<digest of its parameters>.csv`` with a ``.json`` beside it holding the
parameters, so it never replaces a regeneration's records. ``07_survey_tables`` keeps no records; its
``records_to`` says where its tables and figures go the same way: ``results/<profile>/tables/`` for a regeneration,
``results/<profile>/adhoc/tables/`` for a run by hand (:func:`tables_dir`).

In Jupyter a refused parameter shows as its one line (:class:`ParameterRefused`), without the traceback through
this module, as the command line shows it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gansurvey.checks import GanSurveyError, check_choice, check_number, check_writable
from gansurvey.config import DEVICES, PROFILES, display_path, progress_bar, results_dir
from gansurvey.io import atomic_write_text

#: Where a notebook's records go: ``"adhoc"`` (the default of every parameters cell) or ``"tables"`` (what
#: ``regenerate`` injects: ``results/<profile>/<notebook>.csv``, read by the survey tables).
RECORDS_TO = ("adhoc", "tables")

#: Notebooks that keep no records but write tables and figures: their ``records_to`` picks :func:`tables_dir`.
TABLES_NOTEBOOKS = ("07_survey_tables",)


class ParameterRefused(GanSurveyError):
    """A notebook's parameter (or its data folder) refused by the checking cell.

    IPython shows an exception through its ``_render_traceback_`` when it has one: the refusal then reads as one
    line in JupyterLab, not a traceback through this module with the useful line below the fold.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class Param:
    """One notebook parameter: its type, what is allowed, and what it means.

    ``kind`` is ``"str"``, ``"int"``, ``"float"``, ``"bool"`` or ``"list"`` (of ``item``: ``"str"``, ``"int"`` or
    ``"float"``). ``choices`` restricts strings and numbers (or list items); ``minimum``/``maximum`` (inclusive)
    and ``above``/``below`` (exclusive) bound numbers (or list items). ``optional`` allows ``None``, which means the
    profile's default. ``choices`` may be a callable returning the allowed values, so heavy modules load only
    when checked.
    ``folder`` marks a string naming a data folder: it must exist and be in one of the layouts of
    :mod:`gansurvey.data.folders` (only its sub-folders are looked at here; the files are checked when the benchmark
    is built).
    """

    kind: str
    description: str
    item: str | None = None
    choices: tuple[Any, ...] | Callable[[], tuple[Any, ...]] | None = None
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None
    above: float | None = None
    optional: bool = False
    nonempty: bool = True
    folder: bool = False

    def allowed(self) -> tuple[str, ...] | None:
        return self.choices() if callable(self.choices) else self.choices


def _lazy(module: str, name: str) -> Callable[[], tuple[Any, ...]]:
    """The allowed values ``module.name``, imported when a parameter is first checked (those modules are heavy,
    and some import this one)."""
    def allowed() -> tuple[Any, ...]:
        import importlib

        return getattr(importlib.import_module(module), name)

    return allowed


_benchmarks = _lazy("gansurvey.benchmarks", "BENCHMARKS")
_criteria = _lazy("gansurvey.compress.channels", "CRITERIA")
_variants = _lazy("gansurvey.experiments.distillation", "DISTILL_VARIANTS")


def _precision(name: str) -> Callable[[], tuple[Any, ...]]:
    return _lazy("gansurvey.compress.precision", name)


#: Parameters shared by several notebooks (one meaning each).
COMMON: dict[str, Param] = {
    "profile": Param("str", "how much work: 'quick' (minutes on a CPU) or 'full' (the reproduction)",
                     choices=PROFILES),
    "device": Param("str", "'auto' (CUDA when a GPU is visible, else CPU), 'cpu' or 'cuda'", choices=DEVICES),
    "executor": Param("str", "'serial' (each arm after the other, in the kernel) or 'ray' (arms and seeds as Ray "
                             "tasks: a local Ray, or the cluster RAY_ADDRESS names)",
                      choices=_lazy("gansurvey.experiments.executor", "EXECUTORS")),
    "seed": Param("int", "seed of every random choice (an integer >= 0)", minimum=0),
    "benchmarks": Param("list", "benchmarks to run", item="str", choices=_benchmarks),
    "latency_batch": Param("int", "batch size of the latency measurement (>= 1)", minimum=1),
    "finetune_steps": Param("int", "training steps per model; None: the profile's budget", minimum=0,
                            optional=True),
    "records_to": Param("str", "'adhoc' (results/<profile>/adhoc/) or 'tables' (the regeneration's records)",
                        choices=RECORDS_TO),
}

_FRACTION = dict(minimum=0.0, below=1.0)

#: The parameters that add the folder benchmarks (``pix2pix-folder``, ``cyclegan-folder``) to a family notebook;
#: :func:`with_folder_parameters` puts them after ``benchmarks`` in a notebook's spec.
FOLDER_PARAMETERS: dict[str, Param] = {
    "data_root": Param("str", "a folder in the pix2pix, paired-folders or CycleGAN layout (see the README, "
                              "'Your own data on a GPU'); None: the built-in benchmarks only",
                       optional=True, folder=True),
    "folder_size": Param("int", "image side of the folder benchmarks (>= 32; 256 as published, 64 for quick "
                                "trials)", minimum=32),
}
#: The parameter lines :data:`FOLDER_PARAMETERS` stand for in a parameters cell (``tools/wire_data_root.py``
#: writes them after the ``benchmarks`` line; their comments hold no '=', which would hide them from papermill).
FOLDER_PARAMETER_LINES = (
    'data_root: Optional[str] = None  # a folder in the pix2pix or CycleGAN layout (see the README); None: digits '
    'only',
    "folder_size: int = 256  # image size of the folder benchmarks (e.g. 64 for quick trials)",
)
#: ``benchmarks`` of a notebook with folder parameters: it may be empty when ``data_root`` is given.
FOLDER_BENCHMARKS_PARAM = Param("list", "built-in benchmarks to run (may be empty when data_root is given)",
                                item="str", choices=_benchmarks, nonempty=False)


def with_folder_parameters(spec: dict[str, Param]) -> dict[str, Param]:
    """``spec`` with :data:`FOLDER_PARAMETERS` right after its ``benchmarks`` (which may then be empty when
    ``data_root`` is given: :func:`check_parameters` refuses an empty list only without a folder).

    Example:
        >>> list(with_folder_parameters({"profile": COMMON["profile"], "benchmarks": COMMON["benchmarks"],
        ...                              "seed": COMMON["seed"]}))
        ['profile', 'benchmarks', 'data_root', 'folder_size', 'seed']
    """
    if "benchmarks" not in spec:
        raise GanSurveyError(f"a spec with folder parameters needs a benchmarks parameter to follow; its "
                             f"parameters are: {', '.join(spec)}")
    out: dict[str, Param] = {}
    for name, param in spec.items():
        if name in FOLDER_PARAMETERS:
            continue
        out[name] = FOLDER_BENCHMARKS_PARAM if name == "benchmarks" else param
        if name == "benchmarks":
            out.update(FOLDER_PARAMETERS)
    return out

#: Every notebook's parameters, in the order of its parameters cell (a test keeps the two in step).
#: ``03_low_rank``'s methods and rank lists (fractions of a layer's full rank, or integer ranks in a grid).
_LOWRANK_METHODS = ("svd", "tucker2", "cp")
_RANK_FRACTIONS = dict(item="float", above=0, maximum=1.0)
_RANK_GRID = dict(item="float", above=0, optional=True, nonempty=False)

#: ``05_encoding``'s own parameters (beside those of :data:`COMMON`).
_ENCODING: dict[str, Param] = {
    "seeds": Param("list", "seeds of the controls and the trained-sharing comparison; None: the profile's",
                   item="int", minimum=0,
                   optional=True),
    "bits": Param("list", "bits per shared weight in the sweep, each 1 to 8", item="int", minimum=1, maximum=8),
    "pipeline_sparsity": Param("float", "magnitude-pruning sparsity of the pipeline, in [0, 1)", minimum=0.0,
                               below=1.0),
    "pipeline_bits": Param("int", "bits of the pipeline's codebooks, 1 to 8", minimum=1, maximum=8),
    "trained_bits": Param("list", "bits of the trained-sharing comparison, each 1 to 8", item="int", minimum=1,
                          maximum=8),
    "coder": Param("str", "entropy coder of the sweeps", choices=("huffman", "ans", "arithmetic")),
    "target_ratio": Param("float", "stored-bytes cut aimed at (>= 1)", minimum=1.0),
}

NOTEBOOK_PARAMETERS: dict[str, dict[str, Param]] = {
    "00_background": {
        **{k: COMMON[k] for k in ("profile", "device", "seed", "benchmarks")},
        "inception_samples": Param("int", "images for the Inception FID; None: the profile's", minimum=0,
                                   optional=True),
        "latency_batch": COMMON["latency_batch"],
        "records_to": COMMON["records_to"],
    },
    "01_pruning": with_folder_parameters({
        **{k: COMMON[k] for k in ("profile", "device", "executor", "seed")},
        "seeds": Param("list", "seeds of the controls and the lottery ticket; None: the profile's", item="int",
                       minimum=0, optional=True),
        "benchmarks": COMMON["benchmarks"],
        "sparsities": Param("list", "unstructured sparsities in [0, 1)", item="float", **_FRACTION),
        "channel_ratios": Param("list", "channel ratios in [0, 1)", item="float", **_FRACTION),
        "criterion": Param("str", "channel importance", choices=_criteria),
        "finetune_steps": COMMON["finetune_steps"],
        "toy_sparsities": Param("list", "toy sparsities in [0, 1)", item="float", **_FRACTION),
        "lottery_rounds": Param("int", "lottery-ticket pruning rounds (>= 1)", minimum=1),
        "lottery_sparsity": Param("float", "lottery-ticket final sparsity in [0, 1)", **_FRACTION),
        "lottery_steps": Param("int", "training steps per lottery round; None: the profile's", minimum=1,
                               optional=True),
        "latency_batch": COMMON["latency_batch"],
        "records_to": COMMON["records_to"],
    }),
    "02_distillation": with_folder_parameters({
        **{k: COMMON[k] for k in ("profile", "device", "executor", "seed")},
        "seeds": Param("list", "seeds of every arm; None: the profile's", item="int", minimum=0, optional=True),
        "benchmarks": COMMON["benchmarks"],
        "widths": Param("list", "student widths in (0, 1]; None: the profile's", item="float", minimum=1e-3,
                        maximum=1.0, optional=True),
        "variants": Param("list", "distillation variants", item="str", choices=_variants),
        "finetune_steps": COMMON["finetune_steps"],
        "mac_tolerance": Param("float", "relative MAC mismatch allowed in (0, 1)", minimum=1e-6, below=1.0),
        "latency_batch": COMMON["latency_batch"],
        "records_to": COMMON["records_to"],
    }),
    "03_low_rank": {
        **{k: COMMON[k] for k in ("profile", "device", "executor", "seed")},
        "seeds": Param("list", "seeds of the matched comparison; None: the profile's", item="int", minimum=0,
                       optional=True),
        "benchmarks": COMMON["benchmarks"],
        "data_root": Param("str", "a pix2pix or CycleGAN folder; None: digits only", optional=True),
        "folder_size": Param("int", "image size of the folder benchmarks (>= 32)", minimum=32),
        "svd_ranks": Param("list", "SVD ranks (fractions in (0, 1] or integers); None: the profile's", **_RANK_GRID),
        "tucker2_ranks": Param("list", "Tucker-2 ranks; None: the profile's", **_RANK_GRID),
        "cp_ranks": Param("list", "CP ranks; None: the profile's", **_RANK_GRID),
        "sensitivity_method": Param("str", "method of the per-layer sensitivity", choices=_LOWRANK_METHODS),
        "sensitivity_ranks": Param("list", "sensitivity ranks, fractions in (0, 1]", **_RANK_FRACTIONS),
        "matched_method": Param("str", "low-rank method set against channel pruning", choices=_LOWRANK_METHODS),
        "matched_ranks": Param("list", "matched ranks, fractions in (0, 1]", **_RANK_FRACTIONS),
        "mac_tolerance": Param("float", "relative MAC mismatch allowed in (0, 1)", minimum=1e-6, below=1.0),
        "tt_ranks": Param("list", "tensor-train bond ranks (integers >= 1)", item="int", minimum=1),
        "tt_cores": Param("int", "tensor-train cores per Linear layer (2 to 8)", minimum=2, maximum=8),
        "finetune_steps": COMMON["finetune_steps"],
        "latency_batch": COMMON["latency_batch"],
        "records_to": COMMON["records_to"],
    },
    "04_precision": with_folder_parameters({
        **{k: COMMON[k] for k in ("profile", "device", "executor", "seed")},
        "seeds": Param("list", "seeds of every arm; None: the profile's", item="int", minimum=0, optional=True),
        "benchmarks": COMMON["benchmarks"],
        "bits": Param("list", "weight bit widths of the PTQ/QAT sweep", item="int", choices=_precision("WEIGHT_BITS")),
        "granularities": Param("list", "granularities swept by PTQ and QAT", item="str",
                               choices=_precision("GRANULARITIES")),
        "extra_granularities": Param("list", "granularities tried post-training only", item="str",
                                     choices=_precision("GRANULARITIES"), nonempty=False),
        "group_size": Param("int", "input channels per scale of 'per-group' (>= 1)", minimum=1),
        "rounding": Param("str", "rounding of the weights", choices=_precision("ROUNDINGS")),
        "fidelity_bits": Param("list", "bit widths of the SQNR table", item="int", choices=_precision("WEIGHT_BITS")),
        "mixed_budgets": Param("list", "uniform widths whose bytes mixed precision must match", item="int",
                               choices=_precision("WEIGHT_BITS"), nonempty=False),
        "mixed_choices": Param("list", "bits a layer may get in the mixed allocation", item="int",
                               choices=_precision("LAYER_BITS")),
        "finetune_steps": COMMON["finetune_steps"],
        "engine": Param("str", "integer CPU engine of the latency comparison",
                        choices=_lazy("gansurvey.compress.quantized_layers", "ENGINES")),
        "latency_batch": COMMON["latency_batch"],
        "records_to": COMMON["records_to"],
    }),
    "05_encoding": with_folder_parameters({
        **{k: COMMON[k] for k in ("profile", "device", "executor", "seed")}, "seeds": _ENCODING["seeds"],
        "benchmarks": COMMON["benchmarks"],
        **{k: _ENCODING[k] for k in ("bits", "pipeline_sparsity", "pipeline_bits", "trained_bits", "coder")},
        "finetune_steps": COMMON["finetune_steps"],
        "target_ratio": _ENCODING["target_ratio"],
        "latency_batch": COMMON["latency_batch"], "records_to": COMMON["records_to"],
    }),
    "06_combinations": {
        **{k: COMMON[k] for k in ("profile", "device", "executor", "seed")},
        "seeds": Param("list", "seeds of the controls; None: the profile's", item="int", minimum=0, optional=True),
        "benchmarks": COMMON["benchmarks"],
        "batch_sizes": Param("list", "roofline batch sizes (>= 1); None: the profile's", item="int", minimum=1,
                             optional=True),
        "real_size": Param("bool", "also cost CycleGAN ResNet-9 and pix2pix U-Net-256 at 256x256"),
        "order_benchmarks": Param("list", "benchmarks of the order experiment, among benchmarks; None: the "
                                          "profile's (quick and full the first, paper all)", item="str",
                                  choices=COMMON["benchmarks"].choices, optional=True),
        "records_to": COMMON["records_to"],
    },
    "07_survey_tables": {
        "profile": COMMON["profile"],
        "seed": COMMON["seed"],
        "save": Param("bool", "write the tables and figures (to the folder records_to names)"),
        "records_to": Param("str", "'adhoc' (tables and figures to results/<profile>/adhoc/tables/) or 'tables' "
                                   "(results/<profile>/tables/, what regenerate writes)", choices=RECORDS_TO),
    },
}

RESULTS_HINT = "set GANSURVEY_RESULTS to a folder you can write (it defaults to results/ in the project)"
LIST_HINT = "pass a list with -y '{name}: [a, b]' or -p {name} '[a, b]'"


def is_registered(notebook: str) -> bool:
    """Whether ``notebook`` has a spec of its own (then unknown parameter names are refused)."""
    return notebook in NOTEBOOK_PARAMETERS


def parameter_specs(notebook: str) -> dict[str, Param]:
    """The spec of ``notebook``'s parameters; a notebook not registered here gets :data:`COMMON`."""
    return NOTEBOOK_PARAMETERS.get(notebook, COMMON)


def check_parameters(notebook: str, **params: Any) -> dict[str, Any]:
    """Check ``params`` against ``notebook``'s spec and return them normalized (lists parsed from strings).

    Raises :class:`GanSurveyError` naming the parameter, the bad value and what is allowed. For a registered
    notebook an unknown name is refused (with the closest known name); for others, unknown names pass unchecked.
    """
    specs = parameter_specs(notebook)
    registered = is_registered(notebook)
    out = {}
    for name, value in params.items():
        if name not in specs:
            if registered:
                raise GanSurveyError(_unknown_name(notebook, name, specs))
            out[name] = value
            continue
        out[name] = check_value(name, value, specs[name])
    if "data_root" in specs and "benchmarks" in out and not out["benchmarks"] and out.get("data_root") is None:
        raise GanSurveyError(f"parameter benchmarks must name at least one benchmark when no data_root is given, "
                             f"got an empty list; name some ({', '.join(map(repr, _benchmarks()))}) or pass a data "
                             "folder with -p data_root /path/to/folder")
    return out


def check_value(name: str, value: Any, spec: Param) -> Any:
    """One parameter checked against its spec; returns the normalized value."""
    if value is None:
        if spec.optional:
            return None
        raise GanSurveyError(f"parameter {name} cannot be None ({spec.description})")
    if spec.kind == "list":
        return _check_list(name, value, spec)
    if spec.folder:
        return _check_folder(name, value)
    return _check_scalar(name, value, spec.kind, spec)


def _check_folder(name: str, value: Any) -> str:
    """A data folder parameter: an existing folder in a known layout (:func:`gansurvey.data.folders.detect_layout`),
    returned as a string; a relative path is read from the working directory, which the error names as
    :func:`~gansurvey.checks.display_path` shows it (never the machine's absolute path)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise GanSurveyError(f"parameter {name} must name a data folder (a path as a string) or be None, got "
                             f"{value!r}")
    from gansurvey.data.folders import detect_layout

    path = Path(value).expanduser()
    try:
        detect_layout(path)
    except GanSurveyError as exc:
        cwd = display_path(Path.cwd())
        folder = "the project folder" if cwd == "." else f"the working directory {cwd}"
        where = "" if path.is_absolute() else f" (a relative path, read from {folder})"
        raise GanSurveyError(f"parameter {name}{where}: {exc}") from None
    return str(path)


def _check_scalar(name: str, value: Any, kind: str, spec: Param) -> Any:
    if kind == "str":
        allowed = spec.allowed()
        if allowed is not None:
            if not isinstance(value, str) or value not in allowed:
                raise _unknown_value(name, value, allowed)
            return value
        if not isinstance(value, str):
            raise GanSurveyError(f"parameter {name} must be a string, got {value!r} ({type(value).__name__})")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise GanSurveyError(f"parameter {name} must be True or False, got {value!r}")
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool) and not \
            math.isfinite(value):
        raise GanSurveyError(f"parameter {name} must be a finite number, got {value!r}")
    value = check_number(f"parameter {name}", value, minimum=spec.minimum, maximum=spec.maximum, below=spec.below,
                         above=spec.above, integer=kind == "int")
    allowed = spec.allowed()
    if allowed is not None and value not in allowed:
        raise _unknown_value(name, value, allowed)
    return value


def _unknown_value(name: str, value: Any, allowed: tuple) -> GanSurveyError:
    """The refusal of a value outside ``allowed``, with the closest allowed value for a mistyped string."""
    close = difflib.get_close_matches(value, [a for a in allowed if isinstance(a, str)], n=1) \
        if isinstance(value, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return GanSurveyError(f"parameter {name}: unknown value {value!r}{hint}; allowed: {', '.join(map(repr, allowed))}")


def _check_list(name: str, value: Any, spec: Param) -> list:
    original, given_as_string = value, isinstance(value, str)
    if given_as_string:
        value = _parse_list_string(name, value)
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        value = [value]  # one value stands for a list of one
    if spec.nonempty and not value:
        raise GanSurveyError(f"parameter {name} must name at least one value, got an empty list")
    item = Param(spec.item or "str", spec.description, choices=spec.choices, minimum=spec.minimum,
                 maximum=spec.maximum, below=spec.below, above=spec.above)
    checked = []
    for element in value:
        if isinstance(element, list | dict):
            raise GanSurveyError(f"parameter {name} must be a flat list, got {value!r}; "
                                 + LIST_HINT.format(name=name))
        try:
            checked.append(_check_scalar(name, element, item.kind, item))
        except GanSurveyError as exc:
            if given_as_string:
                raise GanSurveyError(f"{exc} (from the string {original!r}; {LIST_HINT.format(name=name)})") \
                    from None
            raise
    return checked


def _parse_list_string(name: str, text: str) -> Any:
    """A list given as a string (``'["mnist-dcgan"]'``, ``'[0.3, 0.7]'``, ``'a, b'``) parsed as JSON/YAML."""
    import yaml

    stripped = text.strip()
    if stripped.startswith("[") or "," in stripped:
        source = stripped if stripped.startswith("[") else f"[{stripped}]"
        try:
            parsed = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise GanSurveyError(f"parameter {name} got the string {text!r}, which is not a list; "
                                 + LIST_HINT.format(name=name)) from exc
        if not isinstance(parsed, list):
            raise GanSurveyError(f"parameter {name} got the string {text!r}, which is not a list; "
                                 + LIST_HINT.format(name=name))
        return parsed
    try:
        return yaml.safe_load(stripped) if stripped else []
    except yaml.YAMLError:
        return stripped


def _unknown_name(notebook: str, name: str, specs: Mapping[str, Param]) -> str:
    close = difflib.get_close_matches(name, list(specs), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown parameter {name!r} for notebook {notebook}{hint}; its parameters are: "
            f"{', '.join(specs)}")


def _assigned_names(source: str) -> list[str] | None:
    """The names a cell assigns at its top level, in order; None when it is not Python (a magic, a syntax error)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return [t.id for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)]


def injected_names(namespace: Mapping[str, Any]) -> list[str]:
    """The names papermill injected into this kernel (its ``# Parameters`` cell, read back from IPython's
    input history ``In``); empty outside papermill."""
    for source in reversed(list(namespace.get("In") or [])):
        if isinstance(source, str) and source.lstrip().startswith("# Parameters"):
            return _assigned_names(source) or []
    return []


def parameters_cell_names(namespace: Mapping[str, Any]) -> list[str] | None:
    """The names the notebook's own parameters cell assigned, read back from IPython's input history ``In``: the
    latest cell before the checking cell that assigns ``profile`` and nothing but plain assignments (papermill's
    injected ``# Parameters`` cell is not it). None when the history holds no such cell (outside a kernel, or the
    parameters cell was never run), and then only the namespace is checked.

    This is what catches, in JupyterLab, a misspelt extra assignment (``sparsity = [0.3]`` beside ``sparsities``,
    which would otherwise run with the default) and a removed one (its old value may still be in the kernel).
    """
    import ast

    for source in reversed(list(namespace.get("In") or [])):
        if not isinstance(source, str) or "notebook_parameters(" in source \
                or source.lstrip().startswith("# Parameters"):
            continue
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        plain = all(isinstance(node, ast.Assign | ast.AnnAssign | ast.Import | ast.ImportFrom) for node in body)
        names = _assigned_names(source) or []
        if plain and "profile" in names:
            return names
    return None


def parameters_digest(notebook: str, values: Mapping[str, Any]) -> str:
    """A short digest of a notebook's parameter values (``records_to`` and ``executor``, which decide where the
    records go and where they are computed, not what they hold, left out): names an ad hoc run's records."""
    kept = {k: v for k, v in values.items() if k not in ("records_to", "executor")}
    text = json.dumps({"notebook": notebook, "parameters": kept}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def records_path(notebook: str, profile: str, records_to: str, values: Mapping[str, Any]) -> Path:
    """Where a run's records go: ``results/<profile>/<notebook>.csv`` for ``records_to="tables"`` (a
    regeneration), else ``results/<profile>/adhoc/<notebook>-<parameters digest>.csv``."""
    check_choice("records_to", records_to, RECORDS_TO)
    root = results_dir(profile)
    if records_to == "tables":
        return root / f"{notebook}.csv"
    return root / "adhoc" / f"{notebook}-{parameters_digest(notebook, values)}.csv"


def tables_dir(profile: str, records_to: str) -> Path:
    """Where ``07_survey_tables`` writes its tables and figures: ``results/<profile>/tables/`` for
    ``records_to="tables"`` (a regeneration, or ``python -m gansurvey tables``), else
    ``results/<profile>/adhoc/tables/``, so a run by hand never rewrites the committed tables."""
    check_choice("records_to", records_to, RECORDS_TO)
    root = results_dir(profile)
    return root / "tables" if records_to == "tables" else root / "adhoc" / "tables"


@dataclass(frozen=True)
class NotebookRun:
    """A notebook's checked parameters and where its output goes: ``records_path`` (None when it keeps no records)
    and ``tables_dir`` (the tables and figures of a notebook in :data:`TABLES_NOTEBOOKS`, else None)."""

    notebook: str
    values: dict[str, Any]
    records_path: Path | None
    tables_dir: Path | None = None

    def write(self, records: list) -> str:
        """Write ``records`` (Measurements) to :attr:`records_path`; return that path relative to the project.

        An ad hoc run also leaves its parameters beside the records (same name, ``.json``).
        """
        from gansurvey.records import ResultsStore

        if self.records_path is None:
            raise GanSurveyError(f"notebook {self.notebook} keeps no records (it has no records_to parameter)")
        store = ResultsStore(self.values["profile"])
        store.root = self.records_path.parent  # the same checks and atomic write, in the chosen folder
        path = store.write(self.records_path.stem, records)
        if self.values.get("records_to") == "adhoc":
            atomic_write_text(path.with_suffix(".json"), json.dumps(
                {"notebook": self.notebook, "parameters": self.values}, indent=2, sort_keys=True, default=str))
        return display_path(path)


def notebook_parameters(notebook: str, namespace: dict[str, Any], echo: bool = True) -> NotebookRun:
    """Check the parameters of ``notebook`` found in ``namespace`` (a notebook's ``globals()``) before any work.

    Lists given as strings are parsed and written back into ``namespace``; a name papermill injected, or the
    parameters cell assigns, that the notebook does not have is refused with the closest known name, and a name
    the parameters cell lost is refused with what it means; the results folder is checked for writing. Prints
    what the run will do (``echo``): where its records go and what a regeneration would write instead (for
    ``07_survey_tables``: its parameters and where its tables go). Returns a :class:`NotebookRun` whose ``write``
    stores the records.

    Raises:
        ParameterRefused: a refused parameter (one line in Jupyter, no traceback).
    """
    try:
        run = _notebook_parameters(notebook, namespace)
    except ParameterRefused:
        raise
    except GanSurveyError as exc:
        raise ParameterRefused(str(exc)) from None
    if echo:
        print(run_summary(run))
    return run


def _notebook_parameters(notebook: str, namespace: dict[str, Any]) -> NotebookRun:
    specs = parameter_specs(notebook)
    if is_registered(notebook):
        for name in injected_names(namespace):
            if name not in specs:
                raise GanSurveyError(_unknown_name(notebook, name, specs))
        own = parameters_cell_names(namespace)
        for name in own or []:
            if name not in specs:
                raise GanSurveyError(f"the parameters cell assigns {_unknown_name(notebook, name, specs)}")
        missing = [name for name in specs if name not in (namespace if own is None else own)]
        if missing:
            lines = "; ".join(f"{name} ({specs[name].description})" for name in missing)
            raise GanSurveyError(
                f"notebook {notebook}'s parameters cell lacks {lines}: put the line back (the committed "
                f"notebooks/{notebook}.ipynb holds it; papermill --help-notebook lists every parameter), or, if "
                "it is there, run the parameters cell again right before this one")
    present = {name: namespace[name] for name in specs if name in namespace
               and not isinstance(namespace[name], types.ModuleType)}
    values = check_parameters(notebook, **present)
    namespace.update(values)
    profile = values.get("profile", "quick")
    check_writable("results folder", results_dir(profile), RESULTS_HINT)
    target = tables = None
    if notebook in TABLES_NOTEBOOKS and "records_to" in values:
        tables = tables_dir(profile, values["records_to"])
        check_writable("tables folder", tables, RESULTS_HINT)
    elif "records_to" in values:
        target = records_path(notebook, profile, values["records_to"], values)
        check_writable("records folder", target.parent, RESULTS_HINT)
    return NotebookRun(notebook, values, target, tables)


def run_summary(run: NotebookRun) -> str:
    """What the checking cell prints: what this run will write, worded for a reader of the committed (regenerated)
    copy as much as for the one running it by hand."""
    values, notebook = run.values, run.notebook
    profile = values.get("profile", "quick")
    if run.tables_dir is not None:
        shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
        if not values.get("save", True):
            where = "save=False: no file is written"
        elif values["records_to"] == "tables":
            where = (f"records_to='tables' (as a regeneration runs it): tables and figures go to "
                     f"{display_path(run.tables_dir)}; run by hand, with records_to='adhoc', they would go to "
                     f"{display_path(tables_dir(profile, 'adhoc'))}")
        else:
            where = (f"records_to='adhoc' (a run by hand): tables and figures go to {display_path(run.tables_dir)}; "
                     f"the regeneration's {display_path(tables_dir(profile, 'tables'))} is left as it is")
        return f"parameters checked: {shown}\n{where}"
    if run.records_path is None:
        return "parameters checked; no records kept"
    if values["records_to"] == "tables":
        return (f"parameters checked; records_to='tables' (as a regeneration runs it): records go to "
                f"{display_path(run.records_path)}, which the survey tables read. Run by hand, with "
                f"records_to='adhoc', this notebook writes results/{profile}/adhoc/{notebook}-<digest>.csv instead")
    canonical = display_path(records_path(notebook, profile, "tables", values))
    return (f"parameters checked; records_to='adhoc' (a run by hand): records go to "
            f"{display_path(run.records_path)}; the regeneration's {canonical}, which the survey tables read, is "
            "left as it is")


# ----------------------------------------------------------------------------- the benchmarks a notebook runs

#: The one line a family notebook prints when it runs without a data folder.
FOLDER_SKIP_LINE = ("folder benchmarks (pix2pix-folder, cyclegan-folder) skipped: no data_root given; add one with "
                    "-p data_root /path/to/folder (see the README, 'Your own data on a GPU')")


def notebook_benchmarks(names: list[str] | tuple[str, ...], data_root: str | os.PathLike | None = None,
                        size: int = 256, *, echo: bool = True, **options: Any) -> list:
    """The benchmarks a family notebook runs: the built-in ones in ``names``, plus the folder benchmark that fits
    ``data_root`` when it is given, all built (and the folder fully checked) before any work.

    The folder's layout picks the benchmark (:func:`gansurvey.data.folders.detect_layout`): the pix2pix layout and
    paired folders give ``pix2pix-folder``, the CycleGAN layout ``cyclegan-folder``. Without ``data_root`` one
    line (:data:`FOLDER_SKIP_LINE`) says the folder benchmarks are skipped and how to add them; with it, one line
    names the folder benchmark, its layout and its image counts (``echo=False`` prints neither).

    Args:
        names: built-in benchmark names (:data:`gansurvey.benchmarks.BENCHMARKS`); may be empty with a folder.
        data_root: a data folder in one of the layouts of :mod:`gansurvey.data.folders`, or None.
        size: image side of the folder benchmark (>= 32; 256 as published).
        echo: print the line described above.
        **options: further options of the folder benchmark (``direction``, ``steps``, ``width``, ``amp``...).

    Returns:
        :class:`gansurvey.benchmarks.base.Benchmark` objects, the built-in ones first, in the order of ``names``.

    Raises:
        ParameterRefused: an unknown name, nothing to run, or a bad folder (the folder module's error, naming the
            path and what was expected), or a test split of fewer than 2 images.

    Example:
        >>> benches = notebook_benchmarks(["mnist-dcgan"], "datasets/facades", 256)  # doctest: +SKIP
        pix2pix-folder on datasets/facades: pix2pix layout, 400 training and 106 test images, size 256
        >>> [b.name for b in benches]  # doctest: +SKIP
        ['mnist-dcgan', 'pix2pix-folder']
    """
    try:
        return _notebook_benchmarks(names, data_root, size, echo=echo, **options)
    except ParameterRefused:
        raise
    except GanSurveyError as exc:
        raise ParameterRefused(str(exc)) from None


def _notebook_benchmarks(names: list[str] | tuple[str, ...], data_root: str | os.PathLike | None, size: int, *,
                         echo: bool, **options: Any) -> list:
    from gansurvey.benchmarks import get_benchmark

    names = _check_list("benchmarks", list(names), FOLDER_BENCHMARKS_PARAM)
    if not names and data_root is None:
        raise GanSurveyError("no benchmark to run: name at least one built-in benchmark "
                             f"({', '.join(map(repr, _benchmarks()))}) or give a data folder (data_root)")
    benches = [get_benchmark(name) for name in names]
    if data_root is None:
        if options:
            raise GanSurveyError(f"options {', '.join(sorted(options))} apply only to a folder benchmark, and no "
                                 "data_root was given")
        if echo:
            print(FOLDER_SKIP_LINE)
        return benches
    check_number("folder_size", size, minimum=32, integer=True)
    from gansurvey.data.folders import detect_layout

    name = "cyclegan-folder" if detect_layout(data_root) == "cyclegan" else "pix2pix-folder"
    bench = get_benchmark(name, data_root=data_root, size=size, **options)  # checks every file
    folder = bench.data
    test_counts = [len(folder.test_a)] + ([] if folder.paired else [len(folder.test_b)])
    if min(test_counts) < 2:
        raise GanSurveyError(f"{folder.root}: its test split ({folder.test_split}) has only {min(test_counts)} "
                             "image on a side; the notebooks need at least 2 per side (example batches, the FID)")
    if echo:
        train = len(folder.train_a) + (0 if folder.paired else len(folder.train_b))
        test = len(folder.test_a) + (0 if folder.paired else len(folder.test_b))
        print(f"{name} on {data_root}: {folder.layout} layout, {train} training and {test} test images, "
              f"size {size}")
    return [*benches, bench]


def measure_options(bench: Any) -> dict[str, Any]:
    """Extra :func:`gansurvey.measure` arguments a notebook passes for ``bench``.

    The folder benchmarks rank by the standard Inception FID (their ``primary_metric``), which ``measure`` skips
    by default; for them this asks for the profile's sample count (``inception_samples=None``: quick 32, full
    1000, never more than the test split holds). The built-in benchmarks rank by their fast domain metrics: ``{}``.

    Example:
        >>> measure_options(get_benchmark("mnist-dcgan"))  # doctest: +SKIP
        {}
    """
    return {"inception_samples": None} if getattr(bench, "primary_metric", None) == "fid" else {}


def progress(iterable: Any, desc: str, total: int | None = None):
    """``iterable`` with a progress bar for a notebook's long loop: steps done, elapsed and remaining time.

    tqdm's notebook bar (a widget) in JupyterLab, its text bar under papermill or without ipywidgets, none with
    ``GANSURVEY_PROGRESS=0`` (:func:`gansurvey.config.progress_bar`).

    Example:
        >>> for bench in progress(benches, "pruning sweeps"):  # doctest: +SKIP
        ...     ...
    """
    return progress_bar(iterable, desc=desc, total=total, mininterval=1.0, leave=True)
