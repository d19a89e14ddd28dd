"""Training the shipped networks and writing their cards (``python -m gansurvey teachers --train``).

A teacher trains once with its benchmark's recipe (:meth:`Benchmark.teacher_recipe`) for the steps where its
quality curve had flattened, on one thread (a run is bit-identical only for a fixed thread count), with quality
checks along the way that never change the run. Its card records the recipe, the curve and the line through its
last half (:func:`~gansurvey.metrics.curves.curve_plateau`), the final quality on :data:`CARD_SAMPLES` evaluation
samples with a bootstrap interval, the torch version, the commit and the SHA-256 of the files.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from typing import Any

import pandas as pd
import torch

from gansurvey.benchmarks.base import TEACHER_SEED, TEACHER_THREADS, Benchmark, monitor_interval
from gansurvey.config import PROFILE_SETTINGS, code_commit, seed_everything
from gansurvey.metrics.curves import curve_plateau
from gansurvey.metrics.intervals import normal_interval
from gansurvey.train.gan import train_gan

#: Evaluation samples of every check on a card (the curve and the final quality).
CARD_SAMPLES = 2000
#: Quality checks along a teacher's training.
CURVE_POINTS = 12
#: Bootstrap resamples of the final quality's interval.
RESAMPLES = 200


@contextmanager
def fixed_threads(threads: int):
    """Run the body with ``threads`` intra-op threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_teacher(bench: Benchmark, progress: bool = True,
                  report: Callable[[str], Any] = print) -> tuple[dict[str, dict], dict]:
    """Train ``bench``'s teacher with its shipped recipe; return the networks' states and the card body."""
    steps = bench.shipped_steps
    config = bench.teacher_config(steps, TEACHER_SEED, progress)
    config = dataclasses.replace(config, monitor_every=monitor_interval(steps, CURVE_POINTS, config.log_every))
    score = partial(bench.quality, profile=PROFILE_SETTINGS["full"], seed=0, device="cpu", inception_samples=0,
                    samples=CARD_SAMPLES)
    started = time.perf_counter()
    with fixed_threads(TEACHER_THREADS):
        seed_everything(TEACHER_SEED)
        g, d = bench.new_generator(), bench.new_discriminator()
        log = train_gan(g, d, bench.task(), config, device="cpu", monitor=score)
    seconds = time.perf_counter() - started
    report(f"{bench.name}: trained {steps} steps in {seconds:.0f} s")
    state = {"generator": g.state_dict(), "discriminator": d.state_dict()}
    return state, teacher_card(bench, g.eval(), log, seconds)


def teacher_card(bench: Benchmark, generator: torch.nn.Module, log: list[dict], seconds: float) -> dict:
    """The card of a trained teacher: recipe, curve, plateau, final quality with its interval, provenance."""
    curve = pd.DataFrame([entry for entry in log if bench.primary_metric in entry])
    plateau = curve_plateau(curve, bench.primary_metric, bench.higher_is_better)
    quality = bench.quality(generator, PROFILE_SETTINGS["full"], seed=0, device="cpu", inception_samples=0,
                            samples=CARD_SAMPLES)
    values = bench.quality_bootstrap(generator, CARD_SAMPLES, RESAMPLES)
    low, high = normal_interval(quality[bench.primary_metric], values)
    low = max(low, 0.0)  # every primary metric is a distance or a fraction: never below 0
    return {"name": bench.name, "kind": "teacher", "recipe": bench.teacher_recipe(), "steps": bench.shipped_steps,
            "seed": TEACHER_SEED, "threads": TEACHER_THREADS, **provenance(seconds),
            "evaluation": {"samples": bench.eval_sample_count(CARD_SAMPLES), "metric": bench.primary_metric,
                           "higher_is_better": bench.higher_is_better},
            "curve": curve.to_dict("records"), "plateau": plateau, "quality": quality,
            "interval": {"metric": bench.primary_metric, "level": 0.95, "low": low, "high": high,
                         "method": f"normal-approximation bootstrap over the evaluation samples ({RESAMPLES} "
                                   "resamples): the estimate ± 1.96 bootstrap standard errors"}}


def provenance(seconds: float) -> dict:
    """Who trained it, with what, when, and how long it took."""
    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "commit": code_commit(), "trained_on": datetime.date.today().isoformat(), "seconds": round(seconds, 1)}


def train_classifier(report: Callable[[str], Any] = print) -> tuple[dict[str, dict], dict]:
    """Train the shipped digit classifier; return its state and card body."""
    from gansurvey.benchmarks.digits import CLASSIFIER_NAME, CLASSIFIER_RECIPE, train_classifier_state

    started = time.perf_counter()
    with fixed_threads(CLASSIFIER_RECIPE["threads"]):
        state = train_classifier_state()
    seconds = time.perf_counter() - started
    report(f"{CLASSIFIER_NAME}: trained {CLASSIFIER_RECIPE['steps']} steps in {seconds:.0f} s")
    return state, classifier_card(state, seconds)


def classifier_card(state: dict[str, dict], seconds: float) -> dict:
    """The digit classifier's card: recipe, provenance and its accuracy on the held-out digits."""
    from gansurvey.benchmarks.digits import CLASSIFIER_NAME, CLASSIFIER_RECIPE
    from gansurvey.data import bundled
    from gansurvey.metrics import classifier as clf

    model = clf.DigitClassifier()
    model.load_state_dict(state["classifier"])
    split = bundled.mnist()
    _, probs = clf.classify(model.eval(), split.test)
    accuracy = float((probs.argmax(1) == split.test_labels).float().mean())
    return {"name": CLASSIFIER_NAME, "kind": "classifier", "recipe": CLASSIFIER_RECIPE,
            "steps": CLASSIFIER_RECIPE["steps"], "seed": CLASSIFIER_RECIPE["seed"],
            "threads": CLASSIFIER_RECIPE["threads"], **provenance(seconds),
            "quality": {"test_accuracy": accuracy, "test_images": len(split.test)}}


def card_summary(card: dict) -> dict:
    """One row of the teachers' table: steps, final quality with its interval, whether the curve was flat."""
    row = {"name": card["name"], "kind": card["kind"], "steps": card["steps"], "threads": card["threads"],
           "torch": card["torch"], "commit": card["commit"], "sha256": card["sha256"][:12]}
    if card["kind"] == "teacher":
        metric = card["evaluation"]["metric"]
        row |= {"metric": metric, "final": card["quality"][metric],
                "interval_95": f"[{card['interval']['low']:.3g}, {card['interval']['high']:.3g}]",
                "flattened": card["plateau"]["flattened"],
                "last_half_gain_pct": round(card["plateau"]["improvement_pct"], 1)}
    else:
        row |= {"metric": "test_accuracy", "final": card["quality"]["test_accuracy"]}
    return row
