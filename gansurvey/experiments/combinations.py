"""The combinations notebook's experiments: pipelines across families, a budgeted search with its Pareto front,
the premise measured on this device's roofline, and the literature's generators at their real size.

Everything here measures (through :func:`gansurvey.measure`), so it sits in the study layer; the pipelines
themselves are :mod:`gansurvey.compress.pipeline`.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from gansurvey.benchmarks.base import Benchmark
from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.compress import CompressConfig, masks, to_sparse_storage
from gansurvey.compress.pipeline import Distill, Finetune, Stage, check_pipeline, describe, run_pipeline
from gansurvey.config import FAMILY_NOTEBOOKS, ProfileSettings, same_code
from gansurvey.dependencies import PackageGraph, notebook_dependencies
from gansurvey.experiments.common import budget_steps, finetune, sweep_seeds
from gansurvey.experiments.distillation import distilled_student
from gansurvey.experiments.executor import Task, run_tasks
from gansurvey.io import state_sha256
from gansurvey.measuring import measure
from gansurvey.metrics.cost import (
    activation_traffic_bytes,
    count_macs,
    count_params,
    energy_estimate,
    stored_bytes,
    weight_traffic_bytes,
)
from gansurvey.metrics.latency import measure_latency, measured_peaks, regime_report
from gansurvey.records import Measurement, records_frame

#: Cost axes a search budget or a Pareto front can use (columns of a record).
COSTS = ("stored_bytes", "macs", "latency_ms", "energy_uj")


# ------------------------------------------------------------------------------------------ running a pipeline


def trainer(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, profile: ProfileSettings, seed: int = 0,
            device: str = "auto"):
    """The ``train`` callback of :func:`~gansurvey.compress.pipeline.run_pipeline` for ``bench``: fine-tuning
    with the benchmark's recipe against a copy of the teacher's discriminator, or distillation from ``teacher``,
    for the step's ``steps`` (``None``: the profile's fine-tuning budget, as every other family)."""

    def train(model: nn.Module, step: Finetune | Distill) -> nn.Module:
        steps = budget_steps(profile, "finetune", step.steps)
        if isinstance(step, Finetune):
            return finetune(model, bench, steps, discriminator, seed=seed, device=device, teacher=teacher).model
        return distilled_student(bench, teacher, discriminator, step.variant, model, steps, seed,
                                             device)

    return train


def run_arm(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, stages: Sequence[Stage], *,
            profile: ProfileSettings, seed: int = 0, device: str = "auto") -> nn.Module:
    """The teacher put through ``stages`` (order checked first), trained where the pipeline says so.

    Arms that start the same way (``channels 50%``, then ``channels 50% -> int4``, with the same seed) share their
    trained start: the model after each training step is kept in :data:`TRAINED_PREFIXES` and the next arm starts
    from a copy of it. Training is seeded by the step itself, so this returns the weights a run from the teacher
    would, without training them again."""
    stages = check_pipeline(stages, teacher)
    train = trainer(bench, teacher, discriminator, profile, seed, device)
    example = bench.example_input(8)
    key = TRAINED_PREFIXES.key(bench, teacher, discriminator, profile, seed, device)
    cuts = [i + 1 for i, stage in enumerate(stages) if isinstance(stage, (Finetune, Distill))]
    model, done = teacher, 0
    for cut in reversed(cuts):  # the longest trained start already computed
        found = TRAINED_PREFIXES.get(key, stages[:cut])
        if found is not None:
            model, done = found, cut
            break
    for cut in [c for c in cuts if c > done] + [len(stages)]:
        if cut > done:
            model = run_pipeline(model, stages[done:cut], train=train, example_input=example)
            if cut in cuts:
                TRAINED_PREFIXES.put(key, stages[:cut], model)
        done = cut
    return model


class TrainedPrefixes:
    """The models after each training step of the arms run so far in this process, keyed by everything that
    decides them (benchmark, teacher and discriminator by value, profile, seed, device, the stages up to that
    step), the last ``capacity`` of them. Models go in and come out as copies, so a later stage never changes a
    kept one; the global random state a run leaves after the step is kept and restored with it, so what follows
    a reused start runs as it would after a trained one."""

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[tuple, tuple[nn.Module, torch.Tensor]] = OrderedDict()

    @staticmethod
    def key(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, profile: ProfileSettings, seed: int,
            device: str) -> tuple:
        nets = state_sha256({"teacher": teacher.state_dict(), "discriminator": discriminator.state_dict()})
        return bench.name, nets, repr(profile), seed, str(device)

    def get(self, key: tuple, stages: Sequence[Stage]) -> nn.Module | None:
        entry = self._kept.get((*key, repr(list(stages))))
        if entry is None:
            return None
        self._kept.move_to_end((*key, repr(list(stages))))
        model, random_state = entry
        torch.set_rng_state(random_state)
        return copy.deepcopy(model)

    def put(self, key: tuple, stages: Sequence[Stage], model: nn.Module) -> None:
        self._kept[(*key, repr(list(stages)))] = copy.deepcopy(model), torch.get_rng_state()
        while len(self._kept) > self.capacity:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)


#: This process's trained starts of pipeline arms (:func:`run_arm`).
TRAINED_PREFIXES = TrainedPrefixes()


def measure_pipelines(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module,
                      pipelines: dict[str, Sequence[Stage]], *, profile: ProfileSettings, seed: int = 0,
                      seeds: Sequence[int] | None = None, device: str = "auto", executor: str = "serial",
                      address: str | None = None, **measure_kwargs: Any) -> list[Measurement]:
    """Each labelled pipeline run on the teacher and measured, once per seed of ``seeds`` (default: ``seed``
    alone; a verdict needs 3); every order is checked before any training. Each pipeline and seed is one task of
    ``executor`` (:func:`~gansurvey.experiments.executor.run_tasks`; ``address``: a Ray cluster to join)."""
    for stages in pipelines.values():
        check_pipeline(stages, teacher)
    seeds = sweep_seeds("measure_pipelines", seed, seeds)
    tasks = [Task(label, run_seed, _pipeline_run, dict(
        bench=bench, teacher=teacher, discriminator=discriminator, label=label, stages=list(stages), profile=profile,
        seed=run_seed, device=device, measure_kwargs=measure_kwargs))
        for label, stages in pipelines.items() for run_seed in seeds]
    return run_tasks(tasks, executor, address, desc=f"{bench.name}: pipelines", device=device)


def _pipeline_run(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, label: str, stages: list[Stage],
                  profile: ProfileSettings, seed: int, device: str, measure_kwargs: dict) -> Measurement:
    model = run_arm(bench, teacher, discriminator, stages, profile=profile, seed=seed, device=device)
    if masks(model):  # masked layers are kept for training; what is stored is the sparse format
        model = to_sparse_storage(model)
    return measure(model, bench, technique=label, profile=profile, seed=seed, device=device,
                   settings={"pipeline": describe(stages), "stages": len(stages)}, **measure_kwargs)


# ------------------------------------------------------------------------------------------ budgeted search


@dataclass(frozen=True)
class Budget:
    """An upper bound on one cost of the compressed generator, e.g. ``Budget("stored_bytes", 20_000)``."""

    cost: str
    limit: float

    def __post_init__(self) -> None:
        check_choice("budget cost", self.cost, COSTS)
        check_number(f"{self.cost} budget", self.limit, minimum=0)


@dataclass
class SearchResult:
    """What :func:`search` found: every measured candidate, the Pareto front among those within the budget,
    those the budget rejected before training (with their cost), and a sentence saying how it went."""

    records: pd.DataFrame
    front: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)
    message: str = ""


def _untrained_cost(model: nn.Module, cost: str, x: torch.Tensor) -> float:
    """A cost that training cannot change, read before any training (early rejection)."""
    if cost == "stored_bytes":
        return float(stored_bytes(model))
    if cost == "macs":
        return float(count_macs(model, x))
    if cost == "energy_uj":
        return float(energy_estimate(model, x)["total_uj"])
    raise GanSurveyError(f"cost {cost!r} cannot be read before measuring; early rejection uses stored_bytes, "
                         "macs or energy_uj")


def search(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module,
           candidates: dict[str, Sequence[Stage]], budget: Budget, *, profile: ProfileSettings, seed: int = 0,
           device: str = "auto", **measure_kwargs: Any) -> SearchResult:
    """Measure the candidates that fit ``budget`` and return their Pareto front (quality against the cost).

    Each candidate's compression stages are first applied without training and its cost read; training cannot
    change stored bytes, MACs or the energy estimate, so a candidate over the budget is rejected before any
    training (latency is measured, so a latency budget is checked after). When no candidate fits, the result
    says so and names the closest ones instead of returning an empty front.
    """
    if not candidates:
        raise GanSurveyError("search needs at least one candidate pipeline, got none")
    x = bench.example_input(1)
    kept, rejected = {}, []
    for label, stages in candidates.items():
        stages = check_pipeline(stages, teacher)
        if budget.cost != "latency_ms":
            compressed = [s for s in stages if isinstance(s, CompressConfig)]
            shape_only = run_pipeline(teacher, compressed, example_input=bench.example_input(8))
            cost = _untrained_cost(shape_only, budget.cost, x)
            if cost > budget.limit:
                rejected.append({"technique": label, "pipeline": describe(stages), budget.cost: cost,
                                 "over_budget_x": cost / budget.limit})
                continue
        kept[label] = stages
    records = records_frame(measure_pipelines(bench, teacher, discriminator, kept, profile=profile, seed=seed,
                                              device=device, **measure_kwargs)) if kept else pd.DataFrame()
    within = records[records[budget.cost] <= budget.limit] if len(records) else records
    rejected_frame = pd.DataFrame(rejected)
    if len(within):
        front = pareto_front(within, budget.cost)
        message = (f"{len(within)} of {len(candidates)} candidates fit {budget.cost} <= {budget.limit:.4g}; "
                   f"{len(front)} on the Pareto front")
    else:
        front = pd.DataFrame()
        closest = (rejected_frame.sort_values("over_budget_x").head(3)["technique"].tolist()
                   if len(rejected_frame) else records.sort_values(budget.cost).head(3)["technique"].tolist())
        message = (f"no candidate fits {budget.cost} <= {budget.limit:.4g}; closest: {', '.join(closest)} "
                   "(loosen the budget or add smaller candidates)")
    return SearchResult(records=records, front=front, rejected=rejected_frame, message=message)


def pareto_front(records: pd.DataFrame, cost: str, quality: str = "primary_value") -> pd.DataFrame:
    """The records no other record beats on both ``cost`` (lower is better) and ``quality`` (the benchmark's
    direction), per benchmark, sorted by cost."""
    check_choice("cost", cost, COSTS)
    fronts = []
    for _, group in records.groupby("benchmark", sort=False):
        higher = str(group["higher_is_better"].iloc[0]).strip().lower() in ("true", "1", "1.0")
        ordered = group.sort_values([cost, quality], ascending=[True, not higher])
        best, keep = None, []
        for idx, row in ordered.iterrows():
            value = row[quality]
            if pd.isna(value):
                continue
            if best is None or (value > best if higher else value < best):
                keep.append(idx)
                best = value
        fronts.append(ordered.loc[keep])
    return pd.concat(fronts) if fronts else records.iloc[0:0]


def front_owner(records: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Which family (or combination) owns each point of the Pareto front over all ``records``."""
    front = pareto_front(records, cost)
    return front[["benchmark", "family", "method", "technique", cost, "primary_value"]].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ headline targets


def headline(records: pd.DataFrame, benchmark: str, cost: str, target_x: float, max_quality_loss: float = 0.10,
             baseline: str = "teacher") -> dict[str, Any]:
    """Whether some record of ``benchmark`` cuts ``cost`` by ``target_x`` or more with its primary metric no
    more than ``max_quality_loss`` (relative) worse than the baseline's; always names the best point found
    within the quality bound (the largest reduction) and the reduction it reached.
    """
    check_choice("cost", cost, COSTS)
    rows = records[records["benchmark"] == benchmark]
    base = rows[rows["technique"] == baseline]
    if base.empty:
        raise GanSurveyError(f"no {baseline!r} record for {benchmark!r}; techniques: {sorted(rows['technique'])}")
    base = base.iloc[0]
    higher = str(base["higher_is_better"]).strip().lower() in ("true", "1", "1.0")
    bound = base["primary_value"] * (1 - max_quality_loss if higher else 1 + max_quality_loss)
    ok = rows[(rows["technique"] != baseline) & (rows["primary_value"] >= bound if higher
                                                 else rows["primary_value"] <= bound)]
    reduction = base[cost] / ok[cost] if len(ok) else pd.Series(dtype=float)
    best = ok.loc[reduction.idxmax()] if len(ok) else None
    return {
        "benchmark": benchmark, "cost": cost, "target_x": target_x, "max_quality_loss": max_quality_loss,
        "baseline_quality": float(base["primary_value"]), "quality_bound": float(bound),
        "best_technique": None if best is None else best["technique"],
        "best_x": None if best is None else float(reduction.max()),
        "best_quality": None if best is None else float(best["primary_value"]),
        "met": bool(best is not None and reduction.max() >= target_x),
    }


# ------------------------------------------------------------------------------------------ the premise measured


def roofline(models: dict[str, nn.Module], bench: Benchmark, batch_sizes: Sequence[int], *,
             profile: ProfileSettings, device: str = "auto") -> pd.DataFrame:
    """Latency over batch sizes for each named model beside the bytes it moves and the FLOPs it does, placed on
    this device's measured roofline (copy bandwidth and GEMM peak, measured once), with the regime each run
    falls in and the 45 nm energy estimate split into data movement and arithmetic.

    Columns: name, batch, median_ms, per_sample_ms, flops, weight_bytes, activation_bytes, intensity (FLOP per
    byte moved), machine_balance, achieved GFLOP/s and GB/s, regime, and per sample compute_uj, memory_uj.
    """
    peaks = measured_peaks(device)
    rows = []
    for name, model in models.items():
        weights = weight_traffic_bytes(model)
        timing = measure_latency(model, bench.example_input(1), batch_sizes=tuple(batch_sizes),
                                 warmup=profile.latency_warmup, repeats=profile.latency_repeats, device=device)
        for _, t in timing.iterrows():
            batch = int(t["batch"])
            x = bench.example_input(batch)
            macs = count_macs(model, x)
            acts = activation_traffic_bytes(model, x)
            energy = energy_estimate(model, x)
            report = regime_report(macs, weights + acts, t["median_ms"] / 1e3, device, peaks=peaks)
            rows.append({
                "name": name, "batch": batch, "median_ms": t["median_ms"], "per_sample_ms": t["per_sample_ms"],
                "flops": 2 * macs, "weight_bytes": weights, "activation_bytes": acts,
                "intensity": report["intensity_flop_per_byte"],
                "machine_balance": report["machine_balance_flop_per_byte"],
                "achieved_gflops": report["achieved_gflops"], "achieved_gbytes_per_s": report["achieved_gbytes_per_s"],
                "regime": report["regime"], "compute_uj": energy["compute_uj"] / batch,
                "memory_uj": (energy["weight_dram_uj"] + energy["activation_uj"]) / batch, "device": t["device"],
            })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ real-size generators


def cost_row(name: str, model: nn.Module, x: torch.Tensor, *, latency_batches: Sequence[int] = (1,),
             warmup: int = 1, repeats: int = 2, device: str = "auto") -> dict[str, Any]:
    """Every cost of ``model`` on input ``x`` (batch of one): params, MACs in both conventions, stored bytes,
    energy estimate, and median latency at each of ``latency_batches`` (none when empty)."""
    row = {"name": name, "params": count_params(model), "macs": count_macs(model, x),
           "macs_torchprofile": count_macs(model, x, convention="torchprofile"),
           "stored_bytes": stored_bytes(model), "energy_uj": energy_estimate(model, x)["total_uj"]}
    if latency_batches:
        timing = measure_latency(model, x, batch_sizes=tuple(latency_batches), warmup=warmup, repeats=repeats,
                                 device=device)
        for _, t in timing.iterrows():
            row[f"latency_ms_b{int(t['batch'])}"] = t["median_ms"]
        row["device"] = timing["device"].iloc[0]
    return row


def real_size_costs(generators: dict[str, tuple[nn.Module, torch.Tensor]],
                    configs: dict[str, CompressConfig | Sequence[CompressConfig]], *,
                    latency_batches: Sequence[int] = (1,), latency_of: Sequence[str] | None = None,
                    warmup: int = 1, repeats: int = 2, device: str = "auto") -> pd.DataFrame:
    """Costs of each generator (random weights: cost needs no data) and of each labelled compression of it,
    with reduction factors (``*_x``) against the uncompressed generator. Latency is measured for the labels in
    ``latency_of`` (default: all), at ``latency_batches``.
    """
    from gansurvey.compress import compress

    rows = []
    for gen_name, (model, x) in generators.items():
        variants = {"uncompressed": model}
        for label, config in configs.items():
            variant = compress(model, config, example_input=x)
            variants[label] = to_sparse_storage(variant) if masks(variant) else variant
        base = None
        for label, variant in variants.items():
            timed = latency_of is None or label in latency_of or label == "uncompressed"
            row = {"generator": gen_name, **cost_row(label, variant, x, latency_batches=latency_batches if timed
                                                     else (), warmup=warmup, repeats=repeats, device=device)}
            base = base or row
            for cost in ("params", "macs", "stored_bytes", "energy_uj"):
                row[f"{cost}_x"] = base[cost] / row[cost] if row[cost] else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ the notebook's arms


def single_family_arms(profile: ProfileSettings) -> dict[str, list[Stage]]:
    """One representative setting per family (two with the profile's ``extended_arms``), each fine-tuned (or
    distilled) with the common budget before any quantization or encoding (post-training for those two, as their
    notebooks' baselines)."""
    from gansurvey.compress import (
        ChannelPruneConfig,
        EncodeConfig,
        LowRankConfig,
        MagnitudePruneConfig,
        QuantConfig,
        StudentConfig,
    )

    arms: dict[str, list[Stage]] = {
        "channels 50%": [ChannelPruneConfig(0.5), Finetune()],
        "magnitude 90%": [MagnitudePruneConfig(0.9), Finetune()],
        "student w0.5 (output KD)": [StudentConfig(0.5), Distill("output")],
        "svd rank 50%": [LowRankConfig("svd", rank=0.5), Finetune()],
        "int4 per-channel": [QuantConfig(weight_bits=4)],
        "shared 4-bit + huffman": [EncodeConfig(bits=4, coder="huffman")],
    }
    if profile.extended_arms:
        arms |= {
            "channels 75%": [ChannelPruneConfig(0.75), Finetune()],
            "tucker2 rank 25%": [LowRankConfig("tucker2", rank=0.25), Finetune()],
            "int8 per-channel": [QuantConfig(weight_bits=8)],
            "shared 2-bit + ans": [EncodeConfig(bits=2, coder="ans")],
        }
    return arms


def pipeline_arms(profile: ProfileSettings) -> dict[str, list[Stage]]:
    """The combinations: Deep Compression's three stages, channel pruning with quantization or sharing, a
    distilled student quantized (GAN Slimming's families), and longer chains with the profile's
    ``extended_arms``."""
    from gansurvey.compress import ChannelPruneConfig, EncodeConfig, MagnitudePruneConfig, QuantConfig, StudentConfig

    arms: dict[str, list[Stage]] = {
        "magnitude 90% -> shared 4-bit + huffman": [MagnitudePruneConfig(0.9), Finetune(),
                                                    EncodeConfig(bits=4, coder="huffman")],
        "channels 50% -> magnitude 80% -> shared 3-bit + ans": [ChannelPruneConfig(0.5), Finetune(),
                                                                MagnitudePruneConfig(0.8), Finetune(),
                                                                EncodeConfig(bits=3, coder="ans")],
        "channels 50% -> int4": [ChannelPruneConfig(0.5), Finetune(), QuantConfig(weight_bits=4)],
        "student w0.5 -> int8": [StudentConfig(0.5), Distill("output"), QuantConfig(weight_bits=8)],
    }
    if profile.extended_arms:
        arms |= {
            "channels 75% -> magnitude 80% -> shared 2-bit + ans": [ChannelPruneConfig(0.75), Finetune(),
                                                                    MagnitudePruneConfig(0.8), Finetune(),
                                                                    EncodeConfig(bits=2, coder="ans")],
            "student w0.5 -> magnitude 80% -> shared 4-bit + huffman": [
                StudentConfig(0.5), Distill("output"), MagnitudePruneConfig(0.8), Finetune(),
                EncodeConfig(bits=4, coder="huffman")],
        }
    return arms


def order_arms() -> dict[str, list[Stage]]:
    """Orders compared at the same final settings: prune -> share against share -> prune (refused: shared
    weights are bitstreams), channels before magnitude against after (refused), and distillation before or after
    channel pruning at about the same final width."""
    from gansurvey.compress import ChannelPruneConfig, EncodeConfig, MagnitudePruneConfig, StudentConfig

    return {
        "prune -> share": [MagnitudePruneConfig(0.8), Finetune(), EncodeConfig(bits=4, coder="ans")],
        "share -> prune": [EncodeConfig(bits=4, coder="ans"), MagnitudePruneConfig(0.8), Finetune()],
        "channels -> magnitude": [ChannelPruneConfig(0.5), Finetune(), MagnitudePruneConfig(0.5), Finetune()],
        "magnitude -> channels": [MagnitudePruneConfig(0.5), Finetune(), ChannelPruneConfig(0.5), Finetune()],
        "prune -> distill": [ChannelPruneConfig(0.5), Distill("output")],
        "distill -> prune": [StudentConfig(0.75), Distill("output"), ChannelPruneConfig(1 / 3), Finetune()],
    }


def order_benchmark_names(profile: ProfileSettings, benchmarks: Sequence[str],
                          chosen: Sequence[str] | None = None) -> list[str]:
    """The benchmarks the order experiment runs on: ``chosen``, each of which must be one of ``benchmarks`` (the
    notebook's), or else the first ``profile.order_benchmarks`` of ``benchmarks`` (all of them when that is None)."""
    if chosen is None:
        return list(benchmarks)[:profile.order_benchmarks]
    stray = [name for name in chosen if name not in benchmarks]
    if stray:
        raise GanSurveyError(f"order benchmark {stray[0]!r} is not among the notebook's benchmarks "
                             f"{list(benchmarks)}; the order experiment starts from their teachers")
    return list(dict.fromkeys(chosen))


def order_experiment(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module,
                     orders: dict[str, Sequence[Stage]], **kwargs: Any) -> tuple[list[Measurement], pd.DataFrame]:
    """Measure every order that can run; the others are listed with the reason the order check gives, found
    before any training (so a refused order costs nothing)."""
    runnable, refused = {}, []
    for label, stages in orders.items():
        try:
            check_pipeline(stages, teacher)
        except GanSurveyError as err:
            refused.append({"order": label, "pipeline": describe(stages), "refused because": str(err)})
            continue
        runnable[label] = stages
    return measure_pipelines(bench, teacher, discriminator, runnable, **kwargs), pd.DataFrame(refused)


def family_code(notebook: str, graph: PackageGraph | None = None) -> tuple[str, ...]:
    """What decides the records of one family notebook: the files its manifest entry depends on (the notebook, the
    package modules it imports, closed over theirs, and the data they read; :mod:`gansurvey.dependencies`). Its
    records written by a commit that agrees with the running one on these are the records the running code would
    write, so editing 04 re-runs 04 (and 06) while 01's records still join."""
    graph = graph or PackageGraph()
    found = notebook_dependencies(graph.root / "notebooks" / f"{notebook}.ipynb", "full", graph=graph)
    return tuple(key for key in found if not key.startswith("results/"))


def stored_family_records(profile: str, benchmarks: Sequence[str],
                          commit: str | None = None) -> tuple[pd.DataFrame, int]:
    """The records a regeneration of the family notebooks (01-05) wrote for ``profile``, trained arms only, and
    how many were left out for their commit; empty when none were written (e.g. before the first
    ``make regenerate``).

    With ``commit`` (the running code's, :func:`gansurvey.config.code_commit`), only records written by the same
    code are kept: by that commit, or by one that holds the same :func:`family_code` of the notebook that wrote
    them (so editing 06 itself, another family notebook, the README or the tests does not orphan them). Verdicts
    computed over them then describe one version of each notebook's code, and a fresh checkout whose committed
    records came from other code computes from this notebook's runs alone. A checkout with uncommitted changes
    (``+changes``) or outside git (``unknown``) keeps none."""
    from gansurvey.records import ResultsStore, with_settings

    frame = ResultsStore(profile).load_all()
    if frame.empty:
        return frame, 0
    frame = frame[frame["notebook"].astype(str).str[:2].isin([name[:2] for name in FAMILY_NOTEBOOKS])
                  & frame["benchmark"].isin(list(benchmarks))]
    if frame.empty:
        return frame, 0
    frame = with_settings(frame, [])
    frame = frame[frame["stage"] == "trained"].drop(columns=["stage"])
    if commit is None:
        return frame, 0
    written_by = frame["commit"].astype(str) if "commit" in frame.columns else pd.Series("", index=frame.index)
    by_prefix = {name[:2]: name for name in FAMILY_NOTEBOOKS}
    notebooks = frame["notebook"].astype(str).str[:2].map(by_prefix)
    graph = PackageGraph()
    code = {notebook: family_code(notebook, graph) for notebook in set(notebooks)}
    agrees = {(other, notebook): same_code(other, commit, code[notebook])
              for other, notebook in set(zip(written_by, notebooks, strict=True))}
    same = pd.Series([agrees[pair] for pair in zip(written_by, notebooks, strict=True)], index=frame.index,
                     dtype=bool)
    return frame[same], int((~same).sum())


def all_arms(profile: ProfileSettings) -> dict[str, list[Stage]]:
    """Every labelled arm of the notebook (single families, pipelines, orders), to rebuild a record's model."""
    return single_family_arms(profile) | pipeline_arms(profile) | order_arms()


def best_forms(bench: Benchmark, teacher: nn.Module, discriminator: nn.Module, records: pd.DataFrame, *,
               max_quality_loss: float = 0.10, profile: ProfileSettings, seed: int = 0,
               device: str = "auto") -> dict[str, nn.Module]:
    """The teacher and, among ``bench``'s arms within ``max_quality_loss`` of its quality, the one with the
    fewest stored bytes and the one with the fewest MACs, rebuilt (same stages and seed) for timing."""
    arms = all_arms(profile)
    forms = {"teacher": teacher}
    for cost in ("stored_bytes", "macs"):
        best = headline(records, bench.name, cost, target_x=1.0, max_quality_loss=max_quality_loss)
        label = best["best_technique"]
        if label is not None and label in arms and label not in forms:
            forms[label] = run_arm(bench, teacher, discriminator, arms[label], profile=profile, seed=seed,
                                   device=device)
    return forms


def literature_generators(size: int = 256) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """CycleGAN's ResNet-9 and pix2pix's U-Net-256 generators (published definitions, random weights, eval
    mode) with a ``size`` x ``size`` RGB input: what the surveyed works compress, at their real size."""
    from gansurvey.models.published import ResnetGenerator9, UnetGenerator256

    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    return {"CycleGAN ResNet-9": (ResnetGenerator9().eval(), x), "pix2pix U-Net-256": (UnetGenerator256().eval(), x)}


def real_size_configs(profile: ProfileSettings) -> dict[str, CompressConfig | list[CompressConfig]]:
    """One setting per family for the real-size generators (no training: costs only), and one pipeline.

    Weights are shared as the profile's ``real_size_sharing`` says: ``uniform`` codebooks stored packed (quick:
    k-means and entropy coding of tens of millions of weights take minutes on a CPU) or ``k-means+ans`` (full).
    """
    from gansurvey.compress import ChannelPruneConfig, EncodeConfig, LowRankConfig, MagnitudePruneConfig, QuantConfig

    share = {"uniform": EncodeConfig(bits=4, coder=None, iterations=0),
             "k-means+ans": EncodeConfig(bits=4, coder="ans")}[profile.real_size_sharing]
    return {
        "channels 50%": ChannelPruneConfig(0.5),
        "magnitude 90%": MagnitudePruneConfig(0.9),
        "svd rank 25%": LowRankConfig("svd", rank=0.25),
        "int8 per-channel": QuantConfig(weight_bits=8),
        "int4 per-channel": QuantConfig(weight_bits=4),
        "shared 4-bit": share,
        "channels 50% -> int4": [ChannelPruneConfig(0.5), QuantConfig(weight_bits=4)],
    }
