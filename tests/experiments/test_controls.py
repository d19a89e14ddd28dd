"""The two controls: the teacher fine-tuned for the arms' steps, and a dense generator trained from scratch at a
compressed model's bytes or MACs."""

import pytest
import torch

import gansurvey as gs
from gansurvey.checks import GanSurveyError
from gansurvey.experiments import controls
from gansurvey.experiments.common import run_seeds
from gansurvey.metrics.cost import stored_bytes


@pytest.fixture
def toy(quick_profile):
    quick_profile(eval_samples=200, latency_repeats=2, latency_warmup=1)
    bench = gs.get_benchmark("gaussians-mlp")
    return bench, *bench.teacher()


def test_the_teacher_control_is_the_teacher_trained_further(toy):
    bench, teacher, disc = toy
    records = controls.teacher_control(bench, teacher, disc, 5, [0, 1], device="cpu")
    assert [r.seed for r in records] == [0, 1]
    assert {r.technique for r in records} == {controls.TEACHER_CONTROL} and {r.family for r in records} == {"control"}
    assert all(r.settings["control"] == "teacher" and r.settings["steps"] == 5 for r in records)
    assert records[0].params == sum(p.numel() for p in teacher.parameters())  # same size: only more training
    again = controls.teacher_control(bench, teacher, disc, 5, [0], device="cpu")
    assert again[0].primary_value == records[0].primary_value  # seeded


def test_dense_controls_train_smaller_models_from_scratch_once(toy, quick_profile, tmp_path, monkeypatch):
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path))
    bench, teacher, _ = toy
    profile = quick_profile(eval_samples=200, latency_repeats=2, latency_warmup=1, dense_steps_cap=6)
    records = controls.dense_controls(bench, teacher, [0, 1], profile=profile, widths=(0.5, 0.25), device="cpu")
    assert [(r.technique, r.seed) for r in records] == [("dense from scratch w0.5", 0), ("dense from scratch w0.5", 1),
                                                       ("dense from scratch w0.25", 0), ("dense from scratch w0.25", 1)]
    assert {r.family for r in records} == {"control"} and all(r.settings["control"] == "dense" for r in records)
    assert all(r.settings["steps"] == 6 for r in records)  # the teacher's steps plus fine-tuning, capped
    assert records[3].stored_bytes < records[0].stored_bytes < stored_bytes(teacher)
    cached = sorted((tmp_path / "dense-controls").glob("*.pt"))
    assert len(cached) == 4  # one trained model per width and seed
    torch.manual_seed(123)  # the control's own seed decides its weights, not the global state
    again = controls.dense_controls(bench, teacher, [1], profile=profile, widths=(0.25,), device="cpu")
    assert again[0].primary_value == records[3].primary_value
    assert sorted((tmp_path / "dense-controls").glob("*.pt")) == cached  # loaded, not trained again
    files = controls.dense_control_files(["gaussians-mlp"], profile, [0, 1, 2], widths=(0.25,))
    assert [(f["seed"], f["cached"], f["committed"]) for f in files] == [(0, True, False), (1, True, False),
                                                                          (2, False, False)]
    with pytest.raises(GanSurveyError, match="dense control width"):
        controls.dense_controls(bench, teacher, [0], profile=profile, widths=(1.5,), device="cpu")


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_dense_controls_of_the_quick_and_full_profiles_ship_with_the_project(profile):
    # a clean checkout (make test, make regenerate) loads them: quick's would cost minutes of every make test,
    # full's hours of every full run
    settings = gs.profile_settings(profile)
    files = controls.dense_control_files(list(controls.SHIPPED_BENCHMARKS), settings,
                                         run_seeds(settings))
    assert len(files) == len(controls.SHIPPED_BENCHMARKS) * len(controls.DENSE_WIDTHS) * settings.seeds
    assert [f["file"] for f in files if not f["committed"]] == []
