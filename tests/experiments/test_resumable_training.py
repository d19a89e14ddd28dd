"""Fine-tuning arms and students are resumable (#21): a run killed mid-training and started again resumes from its
checkpoint to the weights of an uninterrupted run, a changed run never resumes another's checkpoint, and the
fine-tuning bar follows GANSURVEY_PROGRESS."""

import logging
import os
import sys

import pytest
import torch

import gansurvey as gs
from gansurvey import zoo
from gansurvey.compress import distillation
from gansurvey.config import project_root
from gansurvey.experiments import common
from gansurvey.train import gan
from tests.conftest import kill_after_checkpoint


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread here and in the child: small steps, where a second thread only adds waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy():
    bench = gs.get_benchmark("gaussians-mlp")
    return bench, *bench.teacher("quick")


#: A fine-tuning in a child process that checkpoints every 0.3 s of training, then slows down once its checkpoint
#: is written so that the test can kill it mid-training (sleeping before a batch changes no number). Later
#: checkpoints are skipped, so the kill never lands inside one (a half-written one is ignored: test_gan covers it).
FINETUNE_CHILD = """
import sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
import gansurvey as gs
import gansurvey.train.gan as gan
from gansurvey.experiments import common

common.CHECKPOINT_SECONDS = 0.3
saved = []
save, batch = gan.save_checked, gan.UnconditionalTask.batch


def save_once(*args, **kwargs):
    if not saved:
        saved.append(save(*args, **kwargs))


def slow_batch(self, *args, **kwargs):
    time.sleep(0.1 if saved else 0.005)
    return batch(self, *args, **kwargs)


gan.save_checked, gan.UnconditionalTask.batch = save_once, slow_batch
bench = gs.get_benchmark("gaussians-mlp")
teacher, disc = bench.teacher("quick")
common.finetune(teacher, bench, int(sys.argv[1]), disc, seed=3, teacher=teacher, device="cpu", progress=False)
"""


def test_a_killed_finetune_resumes_to_the_weights_of_an_uninterrupted_one(toy, tmp_path, monkeypatch, caplog):
    bench, teacher, disc = toy
    steps = 80
    run = dict(seed=3, teacher=teacher, device="cpu", progress=False)
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "uninterrupted"))
    plain = common.finetune(teacher, bench, steps, disc, resumable=False, **run)

    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "killed"))
    folder = tmp_path / "killed" / "checkpoints"
    kill_after_checkpoint([sys.executable, "-c", FINETUNE_CHILD, str(steps), str(torch.get_num_threads())],
                          lambda: bool(list(folder.glob("finetune-*.pt.json"))), cwd=project_root(),
                          env=dict(os.environ))

    with caplog.at_level(logging.INFO, logger="gansurvey.train.gan"):
        resumed = common.finetune(teacher, bench, steps, disc, **run)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming training from step")]
    assert len(said) == 1 and f"of {steps} (" in said[0], said
    assert 0 < int(said[0].split()[4]) < steps
    assert _same_weights(resumed.model, plain.model)  # bit-identical
    assert resumed.log == plain.log
    assert not any(folder.iterdir())  # the finished run removed its checkpoint


def test_the_checkpoint_is_named_by_what_decides_the_run(toy, artifacts):
    bench, teacher, disc = toy
    config = bench.train_config(100, seed=0, progress=False)
    path = zoo.training_checkpoint("finetune", generator=teacher, discriminator=disc, config=config, device="cpu")
    assert path.parent == artifacts / "checkpoints" and path.name.startswith("finetune-")
    assert path == zoo.training_checkpoint("finetune", generator=teacher, discriminator=disc, config=config,
                                           device="cpu")
    nudged = bench.new_generator()  # another starting state, by one weight
    nudged.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        next(nudged.parameters()).view(-1)[0] += 1e-6
    for fields in (dict(generator=nudged, discriminator=disc, config=config, device="cpu"),
                   dict(generator=teacher, discriminator=disc, config=bench.train_config(100, 1, False), device="cpu"),
                   dict(generator=teacher, discriminator=disc, config=bench.train_config(101, 0, False), device="cpu"),
                   dict(generator=teacher, discriminator=None, config=config, device="cpu"),
                   dict(generator=teacher, discriminator=disc, config=config, device="cuda")):
        assert zoo.training_checkpoint("finetune", **fields) != path, fields


def test_an_interrupted_student_resumes_to_the_weights_of_an_uninterrupted_one(toy, artifacts, monkeypatch):
    bench, teacher, disc = toy
    student = distillation.make_student(teacher, 0.5)
    config = distillation.DistillConfig(output_loss="l1", feature_weight=1.0, adversarial_weight=1.0)
    train = bench.train_config(30, seed=1, progress=False)

    def run(**kwargs):
        torch.manual_seed(0)  # the feature adapters' initial weights
        return distillation.distill(teacher, student, bench.task(), config, train, disc, **kwargs)

    plain = run(resumable=False)
    monkeypatch.setattr(distillation, "CHECKPOINT_SECONDS", 0.0)  # a checkpoint after every step
    batch, calls = gan.UnconditionalTask.batch, []

    def stopping_batch(self, *args, **kwargs):  # stands in for a kill at the 21st training step
        calls.append(1)
        if len(calls) > 21:  # distill draws one batch before training (the adapters' shapes)
            raise KeyboardInterrupt
        return batch(self, *args, **kwargs)

    monkeypatch.setattr(gan.UnconditionalTask, "batch", stopping_batch)
    with pytest.raises(KeyboardInterrupt):
        run()
    assert len(list((artifacts / "checkpoints").glob("distill-*.pt"))) == 1
    monkeypatch.setattr(gan.UnconditionalTask, "batch", batch)
    resumed_from = []
    real_train = distillation.train_gan
    monkeypatch.setattr(distillation, "train_gan",
                        lambda *a, **k: real_train(*a, **k, on_resume=resumed_from.append))
    resumed = run()
    assert resumed_from == [20]
    assert _same_weights(resumed.model, plain.model) and resumed.log == plain.log
    assert not any((artifacts / "checkpoints").iterdir())


@pytest.mark.parametrize(("setting", "drawn"), [("0", False), ("1", True)])
def test_finetune_draws_its_training_bar_unless_progress_is_off(toy, artifacts, monkeypatch, capsys, setting, drawn):
    bench, teacher, disc = toy
    monkeypatch.setenv("GANSURVEY_PROGRESS", setting)
    common.finetune(teacher, bench, 3, disc, teacher=teacher, device="cpu")
    err = capsys.readouterr().err
    assert ("train:" in err) == drawn, err
