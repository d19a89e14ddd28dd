import pytest
import torch
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.models import generators
from gansurvey.train.gan import PairedTask, TrainConfig, UnconditionalTask, ema_decay_at, train_gan


def test_training_is_seeded_and_learns_the_toy():
    real = torch.randn(512, 2) * 0.1 + torch.tensor([3.0, -2.0])

    def run():
        torch.manual_seed(0)
        g, d = generators.MLPGenerator(hidden=32, depth=2), generators.MLPDiscriminator(hidden=32, depth=2)
        log = train_gan(g, d, UnconditionalTask(real), TrainConfig(steps=300, batch_size=64, lr_g=2e-3,
                                                                    lr_d=2e-3, progress=False))
        return g, log

    g1, log1 = run()
    g2, log2 = run()
    assert log1 == log2
    with torch.no_grad():
        mean = g1(g1.sample_inputs(500, torch.Generator().manual_seed(1))).mean(0)
    assert torch.allclose(mean, torch.tensor([3.0, -2.0]), atol=0.5)


def test_monitor_records_a_curve_without_changing_the_run():
    real = torch.randn(512, 2) * 0.1 + torch.tensor([3.0, -2.0])
    seen = []

    def score(g):  # draws random numbers, trains a little model of its own, sees eval mode: nothing leaks
        seen.append(g.training)
        probe = nn.Linear(2, 1)
        probe(torch.randn(8, 2)).pow(2).mean().backward()  # as a first quality check training its classifier
        torch.optim.SGD(probe.parameters(), lr=0.1).step()
        with torch.no_grad():
            return {"distance": float((g(g.sample_inputs(64)).mean(0) - real.mean(0)).norm())}

    def run(monitor):
        torch.manual_seed(0)
        g, d = generators.MLPGenerator(hidden=32, depth=2), generators.MLPDiscriminator(hidden=32, depth=2)
        config = TrainConfig(steps=230, batch_size=64, lr_g=2e-3, lr_d=2e-3, log_every=10, monitor_every=50,
                             ema_decay=0.9, progress=False)
        return g, train_gan(g, d, UnconditionalTask(real), config, monitor=monitor)

    g1, log1 = run(score)
    g2, log2 = run(None)
    assert all(torch.equal(a, b) for a, b in zip(g1.state_dict().values(), g2.state_dict().values(), strict=True))
    curve = [(e["step"], e["distance"]) for e in log1 if "distance" in e]
    assert [s for s, _ in curve] == [50, 100, 150, 200, 230]  # every monitor_every steps and the last one
    assert seen == [False] * 5
    assert curve[-1][1] < curve[0][1]  # the toy learns: the curve falls
    assert [{k: v for k, v in e.items() if k != "distance"} for e in log1] == log2


def test_paired_training_with_l1_reduces_error_and_ema():
    inputs = torch.rand(64, 1, 32, 32) * 2 - 1
    task = PairedTask(inputs, -inputs)
    torch.manual_seed(0)
    g = generators.ResNetGenerator(ngf=4, blocks=1)
    log = train_gan(g, None, task, TrainConfig(steps=40, batch_size=16, lr_g=3e-3, l1_weight=1.0,
                                                ema_decay=0.5, log_every=10, progress=False))
    assert log[-1]["g_l1"] < log[0]["g_l1"]
    assert not g.training


def test_moving_average_warms_up_in_a_run_shorter_than_its_horizon():
    # decay 0.999 averages over about 1000 steps; without the warm-up, 40 steps would leave 96 % of the initial
    # weights in the average and the "trained" generator would be close to its initialisation
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1) and ema_decay_at(0.999, 20000) == 0.999
    assert ema_decay_at(0.5, 0) == pytest.approx(0.1) and ema_decay_at(0.5, 100) == 0.5
    inputs = torch.rand(64, 1, 32, 32) * 2 - 1

    def run(ema_decay):
        torch.manual_seed(0)
        g = generators.ResNetGenerator(ngf=4, blocks=1)
        start = torch.nn.utils.parameters_to_vector(g.parameters()).detach().clone()
        train_gan(g, None, PairedTask(inputs, -inputs), TrainConfig(
            steps=40, batch_size=16, lr_g=3e-3, l1_weight=1.0, ema_decay=ema_decay, log_every=10, progress=False))
        return start, torch.nn.utils.parameters_to_vector(g.parameters()).detach()

    start, raw = run(None)
    _, averaged = run(0.999)
    assert (averaged - raw).norm() < 0.5 * (averaged - start).norm()


def test_bad_train_config():
    with pytest.raises(GanSurveyError, match="steps"):
        TrainConfig(steps=-5)
    with pytest.raises(GanSurveyError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(GanSurveyError, match="multiple of log_every"):
        TrainConfig(log_every=50, monitor_every=75)
    with pytest.raises(ValueError, match="as many"):
        PairedTask(torch.zeros(3, 1), torch.zeros(2, 1))


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):  # #21
    real = torch.randn(512, 2) * 0.1 + torch.tensor([3.0, -2.0])
    config = TrainConfig(steps=60, batch_size=32, lr_g=2e-3, lr_d=2e-3, log_every=10, ema_decay=0.9,
                         progress=False)

    def run(checkpoint=None, stop_at=None):
        torch.manual_seed(0)
        g, d = generators.MLPGenerator(hidden=16, depth=2), generators.MLPDiscriminator(hidden=16, depth=2)
        calls = []

        def extra(generator, inputs, fake):  # stands in for a kill: interrupts the run at a chosen step
            calls.append(1)
            if stop_at is not None and len(calls) == stop_at:
                raise KeyboardInterrupt
            return 0.01 * fake.pow(2).mean() + 0 * torch.rand(()).sum()  # draws from the global generator too

        log = train_gan(g, d, UnconditionalTask(real), config, extra_losses={"extra": extra},
                        checkpoint=checkpoint, checkpoint_every=20)
        return g, log

    g_plain, log_plain = run()
    path = tmp_path / "ckpt" / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        run(path, stop_at=47)  # killed after the checkpoint of step 40
    assert path.exists() and path.with_name("run.pt.json").exists()
    assert not list(path.parent.glob(".*.tmp"))
    g_resumed, log_resumed = run(path)
    assert all(torch.equal(a, b) for a, b in zip(g_plain.state_dict().values(), g_resumed.state_dict().values(),
                                                 strict=True))
    assert log_resumed == log_plain
    assert not path.exists()  # a finished run removes its checkpoint


def test_a_damaged_checkpoint_is_ignored_with_a_warning(tmp_path):
    real = torch.randn(64, 2)
    path = tmp_path / "run.pt"
    path.write_bytes(b"damaged")
    path.with_name("run.pt.json").write_text('{"sha256": "0"}')
    g, d = generators.MLPGenerator(hidden=8, depth=1), generators.MLPDiscriminator(hidden=8, depth=1)
    with pytest.warns(UserWarning, match=r"ignoring the training checkpoint: .*run\.pt: SHA-256 does not match"):
        train_gan(g, d, UnconditionalTask(real), TrainConfig(steps=3, batch_size=8, progress=False), checkpoint=path)
    assert not path.exists()
