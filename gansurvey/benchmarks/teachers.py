"""Training the shipped networks and writing their cards (``python -m gansurvey teachers --train``).

A teacher trains once with its benchmark's recipe (:meth:`Benchmark.teacher_recipe`) for the steps where its
quality curve had flattened, on one thread (a run is bit-identical only for a fixed thread count), with quality
checks along the way that never change the run. Its card records the recipe, the curve and the line through its
last half (:func:`~gansurvey.metrics.curves.curve_plateau`), the final quality on :data:`CARD_SAMPLES` evaluation
samples with a bootstrap interval, the torch version, the commit and the SHA-256 of the files.

A retrain is resumable: it checkpoints along the way into the artifacts folder (:func:`gansurvey.zoo.retrain_files`,
keyed by the recipe's digest), a re-run after an interrupt resumes from the last checkpoint to the same weights, and
the trained networks stay there until the shipped files are written.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gansurvey import zoo
from gansurvey.benchmarks.base import TEACHER_SEED, TEACHER_THREADS, Benchmark, monitor_interval
from gansurvey.checks import check_writable
from gansurvey.config import PROFILE_SETTINGS, code_commit, display_path, seed_everything
from gansurvey.io import CorruptFileError, load_checked, save_checked
from gansurvey.metrics.curves import curve_plateau
from gansurvey.metrics.intervals import normal_interval
from gansurvey.train.gan import train_gan

#: Evaluation samples of every check on a card (the curve and the final quality).
CARD_SAMPLES = 2000
#: Quality checks along a teacher's training.
CURVE_POINTS = 12
#: Bootstrap resamples of the final quality's interval.
RESAMPLES = 200
#: Training checkpoints along a teacher's retrain: an interrupt loses at most 1/20 of the run's steps, and writing
#: a small teacher's state this often costs far less than its quality checks.
CHECKPOINTS = 20


@contextmanager
def fixed_threads(threads: int):
    """Run the body with ``threads`` intra-op threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_teacher(bench: Benchmark, progress: bool = True, report: Callable[[str], Any] = print,
                  checkpoint_every: int | None = None) -> tuple[dict[str, dict], dict]:
    """Train ``bench``'s teacher with its shipped recipe; return the networks' states and the card body.

    The training checkpoints every ``checkpoint_every`` steps (default: :data:`CHECKPOINTS` times over the run)
    into :func:`gansurvey.zoo.retrain_files`; a call after an interrupt resumes from the last checkpoint and ends
    with the weights of an uninterrupted run. The trained networks are kept there too, until
    :func:`gansurvey.zoo.write_shipped` has written the shipped files (it removes them): a call after an interrupt
    while the card was computed does not train again. A resumed run's card says from which step
    (``resumed_from_step``); its ``seconds`` then count the resumed part only.
    """
    steps = bench.shipped_steps
    recipe = bench.teacher_recipe()
    checkpoint, trained = zoo.retrain_files(recipe)
    # before any work: a retrain that cannot keep its checkpoints would lose its training at the first interrupt
    check_writable("artifacts folder", checkpoint.parent, "set GANSURVEY_ARTIFACTS to a folder you can write")
    meta = zoo.cache_key(**recipe)
    config = bench.teacher_config(steps, TEACHER_SEED, progress)
    config = dataclasses.replace(config, monitor_every=monitor_interval(steps, CURVE_POINTS, config.log_every))
    kept = _kept_training(bench.name, trained, meta, report)
    if kept is None:
        score = partial(bench.quality, profile=PROFILE_SETTINGS["full"], seed=0, device="cpu", inception_samples=0,
                        samples=CARD_SAMPLES)
        resumed: list[int] = []

        def resuming(step: int) -> None:
            resumed.append(step)
            report(f"{bench.name}: resuming from step {step} of {steps} ({display_path(checkpoint)})")

        started = time.perf_counter()
        with fixed_threads(TEACHER_THREADS):
            seed_everything(TEACHER_SEED)
            g, d = bench.new_generator(), bench.new_discriminator()
            log = train_gan(g, d, bench.task(), config, device="cpu", monitor=score, checkpoint=checkpoint,
                            checkpoint_every=checkpoint_every or max(1, steps // CHECKPOINTS), on_resume=resuming)
        seconds = time.perf_counter() - started
        kept = {"generator": g.state_dict(), "discriminator": d.state_dict(), "log": log, "seconds": seconds,
                "resumed_from_step": resumed[0] if resumed else None}
        save_checked(trained, kept, meta=meta)
        report(f"{bench.name}: trained {steps - (resumed or [0])[0]} steps in {seconds:.0f} s"
               + (f" (resumed at step {resumed[0]} of {steps})" if resumed else ""))
    else:
        g, d = bench.new_generator(), bench.new_discriminator()
        g.load_state_dict(kept["generator"])
        d.load_state_dict(kept["discriminator"])
    card = teacher_card(bench, g.eval(), kept["log"], kept["seconds"])
    if kept["resumed_from_step"] is not None:
        card["resumed_from_step"] = kept["resumed_from_step"]
    return {"generator": g.state_dict(), "discriminator": d.state_dict()}, card


def _kept_training(name: str, trained: Path, meta: dict, report: Callable[[str], Any]) -> dict | None:
    """The trained networks and log an earlier, interrupted call kept (None: none, or a damaged one, said)."""
    if not trained.exists():
        return None
    try:
        kept = load_checked(trained, meta=meta)
    except CorruptFileError as exc:
        report(f"{name}: training again, the kept training is unusable: {exc}")
        return None
    report(f"{name}: trained by an earlier run ({display_path(trained)}); not trained again")
    return kept


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
