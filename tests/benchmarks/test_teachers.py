"""Shipped teachers: they load bit-identically, their cards say how they were made, bad files are refused, and
nothing trains a teacher unless asked to."""

import json
import re
import shutil
import sys

import pandas as pd
import pytest
import torch

import gansurvey as gs
from gansurvey import zoo
from gansurvey.benchmarks import teachers as teaching
from gansurvey.benchmarks.digits import CLASSIFIER_NAME, CLASSIFIER_RECIPE
from gansurvey.checks import GanSurveyError
from gansurvey.cli import main
from gansurvey.config import project_root
from gansurvey.metrics.curves import curve_plateau
from tests.conftest import kill_after_checkpoint

SHIPPED = (CLASSIFIER_NAME, *gs.BENCHMARKS)


def _recipe(name: str) -> dict:
    return CLASSIFIER_RECIPE if name == CLASSIFIER_NAME else gs.get_benchmark(name).teacher_recipe()


@pytest.mark.parametrize("name", gs.BENCHMARKS)
def test_a_shipped_teacher_loads_the_tensors_its_card_names(name):
    bench = gs.get_benchmark(name)
    g, d = bench.teacher("quick")
    assert not g.training and not d.training
    loaded = {"generator": g.state_dict(), "discriminator": d.state_dict()}
    card = bench.teacher_card()
    assert zoo.state_sha256(loaded) == card["state_sha256"]
    assert card["recipe"] == json.loads(json.dumps(bench.teacher_recipe()))
    assert card["steps"] == bench.teacher_steps("quick") == bench.teacher_steps("full")
    # every profile and seed starts from the same weights
    g_full, _ = bench.teacher("full", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), g_full.state_dict().values(), strict=True))


@pytest.mark.parametrize("name", gs.BENCHMARKS)
def test_a_teacher_card_holds_its_curve_plateau_quality_and_interval(name):
    card = gs.get_benchmark(name).teacher_card()
    for field in ("recipe", "seed", "threads", "torch", "commit", "trained_on", "seconds", "sha256", "curve"):
        assert field in card, field
    curve = gs.get_benchmark(name).teacher_curve()
    metric = card["evaluation"]["metric"]
    assert curve["step"].is_monotonic_increasing and curve["step"].iloc[-1] == card["steps"]
    # the card was written on the machine that trained the teacher: the plateau's fitted numbers may differ in the
    # last bits on another CPU (summation order), its decision and every other field not at all
    plateau = curve_plateau(curve, metric, card["evaluation"]["higher_is_better"])
    assert plateau.keys() == card["plateau"].keys()
    for key, value in card["plateau"].items():
        if isinstance(value, float):
            assert plateau[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert plateau[key] == value, key
    estimate = card["quality"][metric]
    assert card["interval"]["low"] <= estimate <= card["interval"]["high"]
    assert card["evaluation"]["samples"] >= 1000


def test_the_classifier_card_and_every_file_check_out():
    for name in SHIPPED:
        state = zoo.load_shipped(name, _recipe(name))
        assert zoo.state_sha256(state) == zoo.read_card(name)["state_sha256"]
    assert zoo.read_card(CLASSIFIER_NAME)["quality"]["test_accuracy"] > 0.9


@pytest.fixture
def copied(tmp_path):
    """The toy teacher's files, copied into a folder a test may damage."""
    for path in zoo.shipped_files("gaussians-mlp"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_a_missing_truncated_or_foreign_checkpoint_is_refused_with_the_rebuild_command(copied):
    recipe = _recipe("gaussians-mlp")
    path, card_path = zoo.shipped_files("gaussians-mlp", copied)
    assert zoo.load_shipped("gaussians-mlp", recipe, root=copied)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(GanSurveyError, match=r"does not match the SHA-256.*teachers --train gaussians-mlp"):
        zoo.load_shipped("gaussians-mlp", recipe, root=copied)
    shutil.copy(zoo.shipped_files("mnist-mlp")[0], path)  # another teacher's checkpoint under this name
    with pytest.raises(GanSurveyError, match="does not match the SHA-256"):
        zoo.load_shipped("gaussians-mlp", recipe, root=copied)
    path.unlink()
    with pytest.raises(GanSurveyError, match=r"gaussians-mlp.pt.*teachers --train gaussians-mlp"):
        zoo.load_shipped("gaussians-mlp", recipe, root=copied)


def test_a_card_that_does_not_match_is_refused(copied):
    recipe = _recipe("gaussians-mlp")
    _, card_path = zoo.shipped_files("gaussians-mlp", copied)
    card = json.loads(card_path.read_text())
    changed = {**recipe, "train": {**recipe["train"], "lr_g": 0.5}}
    with pytest.raises(GanSurveyError, match=r"another recipe.*differs in: train"):
        zoo.load_shipped("gaussians-mlp", changed, root=copied)
    card["state_sha256"] = "0" * 64  # the file is intact but its tensors are not the card's
    card_path.write_text(json.dumps(card))
    with pytest.raises(GanSurveyError, match="do not match its card's state digest"):
        zoo.load_shipped("gaussians-mlp", recipe, root=copied)
    card_path.write_text("{not json")
    with pytest.raises(GanSurveyError, match="is damaged.*teachers --train gaussians-mlp"):
        zoo.load_shipped("gaussians-mlp", recipe, root=copied)
    card_path.unlink()
    with pytest.raises(GanSurveyError, match="no shipped card"):
        zoo.load_shipped("gaussians-mlp", recipe, root=copied)


def test_loading_teachers_never_trains(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a teacher was trained while it should have been loaded")

    monkeypatch.setattr(teaching, "train_gan", refuse)
    monkeypatch.setattr("gansurvey.train.gan.train_gan", refuse)
    for name in gs.BENCHMARKS:
        gs.get_benchmark(name).teacher()


def test_training_a_teacher_is_deterministic_and_its_files_round_trip(tmp_path, monkeypatch, artifacts):
    bench = gs.get_benchmark("gaussians-mlp")
    monkeypatch.setattr(type(bench), "shipped_steps", 250)
    monkeypatch.setattr(teaching, "CARD_SAMPLES", 300)
    monkeypatch.setattr(teaching, "RESAMPLES", 20)
    first, card = teaching.train_teacher(bench, progress=False, report=lambda line: None)
    checkpoint, trained = zoo.retrain_files(bench.teacher_recipe())
    assert trained.exists() and not checkpoint.exists()  # trained: kept until the shipped files are written
    assert card["steps"] == 250 and card["recipe"]["train"]["steps"] == 250
    assert [row["step"] for row in card["curve"]] == [50, 100, 150, 200, 250]
    assert "resumed_from_step" not in card
    zoo.write_shipped("gaussians-mlp", first, card, root=tmp_path)
    assert not trained.exists() and not trained.with_name(trained.name + ".json").exists()
    loaded = zoo.load_shipped("gaussians-mlp", bench.teacher_recipe(), root=tmp_path)
    assert zoo.state_sha256(loaded) == zoo.state_sha256(first)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind
    second, _ = teaching.train_teacher(bench, progress=False, report=lambda line: None)  # trains afresh
    assert zoo.state_sha256(first) == zoo.state_sha256(second)


#: A teacher retrain in a child process, slowed down once its first checkpoint is written so that the test can
#: kill it mid-training (the slowing changes no number: it only sleeps before drawing a batch).
RETRAIN_CHILD = """
import sys, time
import gansurvey.train.gan as gan
from gansurvey.benchmarks import get_benchmark, teachers

bench = get_benchmark("gaussians-mlp")
type(bench).shipped_steps = int(sys.argv[1])
teachers.CARD_SAMPLES, teachers.RESAMPLES = 300, 20
saved = []
save, batch = gan.save_checked, gan.UnconditionalTask.batch


def save_and_count(*args, **kwargs):
    saved.append(save(*args, **kwargs))
    return saved[-1]


def slow_batch(self, *args, **kwargs):
    if saved:
        time.sleep(0.1)
    return batch(self, *args, **kwargs)


gan.save_checked, gan.UnconditionalTask.batch = save_and_count, slow_batch
teachers.train_teacher(bench, progress=False)
"""


def test_a_killed_teacher_retrain_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):  # #21
    steps = 200
    bench = gs.get_benchmark("gaussians-mlp")
    monkeypatch.setattr(type(bench), "shipped_steps", steps)
    monkeypatch.setattr(teaching, "CARD_SAMPLES", 300)
    monkeypatch.setattr(teaching, "RESAMPLES", 20)
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "uninterrupted"))
    plain, plain_card = teaching.train_teacher(bench, progress=False, report=lambda line: None)

    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "killed"))
    checkpoint, trained = zoo.retrain_files(bench.teacher_recipe())
    assert checkpoint.is_relative_to(tmp_path / "killed" / "retrain") and checkpoint.name.startswith("gaussians-mlp-")
    sidecar = checkpoint.with_name(checkpoint.name + ".json")  # written last: the checkpoint is whole
    kill_after_checkpoint([sys.executable, "-c", RETRAIN_CHILD, str(steps)], sidecar.exists, cwd=project_root())
    assert checkpoint.exists() and not trained.exists()

    lines = []
    resumed, card = teaching.train_teacher(bench, progress=False, report=lines.append)
    assert any(re.fullmatch(rf"gaussians-mlp: resuming from step \d+ of {steps} \(\S+\)", line) for line in lines), \
        lines
    assert 0 < card["resumed_from_step"] < steps and card["resumed_from_step"] % (steps // teaching.CHECKPOINTS) == 0
    assert zoo.state_sha256(resumed) == zoo.state_sha256(plain)  # bit-identical weights
    assert card["curve"] == plain_card["curve"] and card["quality"] == plain_card["quality"]
    assert not checkpoint.exists() and trained.exists()

    # killed after training, before the files were written: the trained networks are reused, not trained again
    monkeypatch.setattr(teaching, "train_gan", lambda *args, **kwargs: pytest.fail("trained again"))
    lines.clear()
    again, _ = teaching.train_teacher(bench, progress=False, report=lines.append)
    assert zoo.state_sha256(again) == zoo.state_sha256(plain)
    assert any("trained by an earlier run" in line for line in lines), lines
    zoo.write_shipped("gaussians-mlp", again, card, root=tmp_path / "shipped")
    assert not any(checkpoint.parent.iterdir())  # nothing left behind once the shipped files are written


def test_a_retrain_refuses_an_unwritable_artifacts_folder_before_training(tmp_path, monkeypatch):  # #21
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "a-file" / "artifacts"))
    monkeypatch.setattr(teaching, "train_gan", lambda *args, **kwargs: pytest.fail("trained first"))
    with pytest.raises(GanSurveyError, match=r"artifacts folder .*a-file/artifacts/retrain cannot be written "
                                             r"\(Not a directory\); set GANSURVEY_ARTIFACTS"):
        teaching.train_teacher(gs.get_benchmark("gaussians-mlp"), progress=False, report=lambda line: None)


def test_retrain_files_are_keyed_by_the_recipe(artifacts):
    recipe = gs.get_benchmark("gaussians-mlp").teacher_recipe()
    changed = {**recipe, "train": {**recipe["train"], "lr_g": 0.5}}
    assert zoo.retrain_files(recipe) == zoo.retrain_files(json.loads(json.dumps(recipe)))
    assert zoo.retrain_files(recipe)[0] != zoo.retrain_files(changed)[0]  # another recipe never resumes this one
    assert all(path.parent == artifacts / "retrain" for path in zoo.retrain_files(recipe))


def test_the_teachers_command_lists_every_shipped_network(capsys):
    assert main(["teachers"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert name in out
    assert main(["teachers", "--train", "celeba"]) == 2
    assert "unknown network to train 'celeba'" in capsys.readouterr().err


def test_card_summary_reads_every_card():
    rows = pd.DataFrame([teaching.card_summary(zoo.read_card(name)) for name in SHIPPED])
    assert set(rows["name"]) == set(SHIPPED) and rows["sha256"].str.len().eq(12).all()
