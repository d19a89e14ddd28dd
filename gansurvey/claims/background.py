"""Notebook 00's claim on measured records. F4, :func:`premise_memory_dominates`: the survey abstract's premise
that data transfer is the main consumer of energy, under the conditions of the energy estimate (45 nm constants,
batch 1, every weight read from DRAM), with the batch at which it flips."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from gansurvey.checks import GanSurveyError, check_number
from gansurvey.claims.verdict import Check, Verdict, combine

ENERGY_COLUMNS = ("compute_uj", "weight_dram_uj", "activation_uj")
#: The conditions the energy estimate (:func:`gansurvey.metrics.cost.cost_breakdown`) holds under.
CONDITIONS = ("45 nm energy constants (Horowitz 2014, as in Han et al. 2015); every weight read once from DRAM per "
              "forward pass, no reuse; activations read and written once (SRAM unless told otherwise)")
F4_CLAIM = ("Data transfer is the main consumer of energy, so memory compression is a very effective way to "
            "accelerate GANs.")


def flip_batch(compute_uj: float, weight_dram_uj: float, activation_uj: float, threshold: float = 0.5,
               batch: int = 1) -> float:
    """The batch size from which the memory share falls to ``threshold`` or below, when the weights are read
    once per batch (so their energy per sample shrinks as 1/batch) while arithmetic and activation energy per
    sample stay; ``inf`` when memory keeps the larger share at any batch; the energies are per sample at
    ``batch``.

    Example:
        >>> flip_batch(compute_uj=1.0, weight_dram_uj=3.0, activation_uj=0.5)
        6.0
    """
    weights_once = weight_dram_uj * batch  # the weights' energy for one whole pass
    ratio = threshold / (1 - threshold)
    room = ratio * compute_uj - activation_uj  # what the weights per sample may still add before the flip
    if room <= 0:
        return math.inf
    return max(1.0, float(math.ceil(weights_once / room)))


def premise_memory_dominates(
    breakdown_totals: Mapping[str, Mapping[str, float]] | Mapping[str, float] | pd.DataFrame,
    threshold: float = 0.5,
    batch: int = 1,
) -> Check:
    """F4, the survey abstract's premise on our generators: memory (weight DRAM reads plus activation traffic)
    takes more than ``threshold`` of the estimated energy of a forward pass, under :data:`CONDITIONS` at
    ``batch``. The evidence also gives each generator's :func:`flip_batch`, from which the premise no longer
    holds because the weights' DRAM reads are shared by the whole batch.

    The verdict is a computation on a cost model, not a measurement with noise, so the seed rule does not apply:
    it holds for these conditions only, and the summary says which.

    ``breakdown_totals`` holds ``compute_uj``, ``weight_dram_uj`` and ``activation_uj`` per benchmark (or
    per model): a DataFrame indexed by, or with a ``benchmark`` column of, names; a dict of such dicts (e.g.
    ``{name: energy_estimate(...)}``); or one flat dict. A benchmark supports the premise when its memory
    share exceeds the threshold; the overall verdict is the benchmarks' common one, else mixed.

    Args:
        breakdown_totals: energy per part (µJ) per benchmark, as above.
        threshold: the memory share above which the premise holds.
        batch: the batch the totals were estimated at (per sample).

    Example:
        >>> premise_memory_dominates({"m": dict(compute_uj=1.0, weight_dram_uj=3.0, activation_uj=1.0)}).verdict
        <Verdict.SUPPORTED: 'supported'>
    """
    check_number("threshold", threshold, minimum=0, below=1)
    frame = _energy_frame(breakdown_totals)
    notes: list[str] = []
    total = frame[list(ENERGY_COLUMNS)].sum(axis=1)
    frame["total_uj"] = total
    frame["memory_uj"] = frame["weight_dram_uj"] + frame["activation_uj"]
    frame["memory_share"] = (frame["memory_uj"] / total.where(total > 0)).astype(float)
    frame["flips_at_batch"] = [flip_batch(r.compute_uj, r.weight_dram_uj, r.activation_uj, threshold, batch)
                               for r in frame.itertuples()]
    verdicts = {}
    for name, row in frame.iterrows():
        if not np.isfinite(row["memory_share"]):
            verdicts[name] = Verdict.NOT_TESTABLE
            notes.append(f"{name}: the estimated energy is zero")
        else:
            verdicts[name] = Verdict.SUPPORTED if row["memory_share"] > threshold else Verdict.CONTRADICTED
    frame["verdict"] = [verdicts[n] for n in frame.index]
    table = frame.reset_index(names="benchmark")
    check = Check(
        "F4", F4_CLAIM, combine(verdicts.values()), "", table, verdicts, notes,
        {"threshold": threshold, "batch": batch, "conditions": CONDITIONS},
        source="measured", basis="survey abstract",
    )
    check.summary = _f4_summary(check)
    return check


def _energy_frame(totals) -> pd.DataFrame:
    if isinstance(totals, pd.DataFrame):
        frame = totals.set_index("benchmark") if "benchmark" in totals.columns else totals.copy()
    elif isinstance(totals, Mapping):
        if all(c in totals for c in ENERGY_COLUMNS):
            totals = {"(model)": totals}
        bad = [k for k, v in totals.items() if not isinstance(v, Mapping)]
        if bad:
            raise GanSurveyError(
                f"energy totals for {bad[0]!r} must be a dict with {', '.join(ENERGY_COLUMNS)}, "
                f"got {type(totals[bad[0]]).__name__}"
            )
        frame = pd.DataFrame.from_dict({k: dict(v) for k, v in totals.items()}, orient="index")
    else:
        raise GanSurveyError(f"energy totals must be a DataFrame or a dict, got {type(totals).__name__}")
    missing = [c for c in ENERGY_COLUMNS if c not in frame.columns]
    if missing:
        raise GanSurveyError(f"energy totals lack {', '.join(missing)}; needed: {', '.join(ENERGY_COLUMNS)}")
    frame = frame[list(ENERGY_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    for column in ENERGY_COLUMNS:
        bad = frame[~(frame[column] >= 0)]
        if len(bad):
            raise GanSurveyError(
                f"{column} of {bad.index[0]!r} is {bad[column].iloc[0]!r}; allowed: a number >= 0"
            )
    frame.index = frame.index.map(str)
    return frame


def _f4_summary(check: Check) -> str:
    parts = []
    for r in check.evidence.itertuples():
        parts.append(
            f"{r.benchmark}: memory {r.memory_uj:.3g} µJ (weights {r.weight_dram_uj:.3g}, activations "
            f"{r.activation_uj:.3g}) vs arithmetic {r.compute_uj:.3g} µJ, a memory share of "
            f"{r.memory_share:.0%} ({r.verdict}); "
            + ("memory keeps the larger share at any batch." if not math.isfinite(r.flips_at_batch) else
               f"from batch {int(r.flips_at_batch)} on, the weights' reads shared by the batch, it no longer does.")
        )
    parts.append(f"The premise needs a share above {check.parameters['threshold']:.0%}; these numbers hold at batch "
                 f"{check.parameters['batch']} under: {CONDITIONS}.")
    parts += [f"Note: {n}." for n in check.notes]
    return " ".join(parts)
