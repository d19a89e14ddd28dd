import pandas as pd
import pytest
import torch

import gansurvey as gs
from gansurvey import experiments, reports
from gansurvey.checks import GanSurveyError
from gansurvey.compress import make_student
from gansurvey.metrics import count_macs
from gansurvey.results import Measurement, records_frame


def test_match_channel_ratio_hits_the_students_macs():
    bench = gs.get_benchmark("mnist-dcgan")
    torch.manual_seed(0)
    teacher = bench.new_generator()
    x = bench.example_input(1)
    for width in (0.25, 0.5):
        target = count_macs(make_student(teacher, width), x)
        ratio, pruned = experiments.match_channel_ratio(teacher, target, x)
        assert 0 < ratio < 1
        assert abs(count_macs(pruned, x) - target) <= 0.10 * target
    with pytest.raises(GanSurveyError, match="within"):
        experiments.match_channel_ratio(teacher, 10, x)


def test_distilled_student_and_pruned_runs_are_short_and_new():
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(), bench.new_discriminator()
    before = [p.clone() for p in teacher.parameters()]
    for variant in experiments.DISTILL_VARIANTS:
        student = experiments.distilled_student(bench, teacher, disc, variant, 0.5, steps=2, seed=0, device="cpu")
        assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))
    with pytest.raises(GanSurveyError, match="'distill-all'"):
        experiments.distill_config(bench, "distill-all")


def test_pruned_and_finetuned_can_prune_the_discriminator_too(monkeypatch):
    bench = gs.get_benchmark("edges2digits-resnet")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(width=0.25), bench.new_discriminator()
    disc_params = [p.clone() for p in disc.parameters()]
    config = gs.compress.ChannelPruneConfig(0.5)
    critics, finetune = [], experiments.finetune

    def spy(generator, benchmark, steps, discriminator=None, **kwargs):
        critics.append(sum(p.numel() for p in discriminator.parameters()))
        return finetune(generator, benchmark, steps, discriminator, **kwargs)

    monkeypatch.setattr(experiments, "finetune", spy)
    x = bench.example_input(2)
    for ratio in (0.0, 0.5):
        tuned = experiments.pruned_and_finetuned(bench, teacher, disc, config, steps=1, device="cpu",
                                                 discriminator_ratio=ratio)
        assert tuned(x).shape == teacher(x).shape
        assert count_macs(tuned, x) < count_macs(teacher, x)
    assert critics[0] == sum(p.numel() for p in disc_params) and critics[1] < critics[0] / 2
    assert all(torch.equal(a, b) for a, b in zip(disc_params, disc.parameters(), strict=True))
    with pytest.raises(GanSurveyError, match="discriminator_ratio"):
        experiments.pruned_and_finetuned(bench, teacher, disc, config, steps=1, discriminator_ratio=1.0)


def test_finetune_steps_default_and_override():
    assert experiments.finetune_steps("quick") == gs.benchmarks.profile_settings("quick").finetune_steps
    assert experiments.finetune_steps("full", 7) == 7
    with pytest.raises(GanSurveyError, match="fine-tuning steps"):
        experiments.finetune_steps("quick", -1)


def _row(technique, params, macs, latency, value):
    return Measurement(notebook="nb", benchmark="b", technique=technique, family="pruning", params=params,
                       macs=macs, stored_bytes=params * 4, energy_uj=params / 10, latency_ms=latency,
                       weight_traffic_bytes=params * 4, activation_traffic_bytes=100, primary_metric="m",
                       primary_value=value, higher_is_better=False)


def test_reduction_table_ratios_and_quality_direction():
    frame = records_frame([_row("teacher", 1000, 10_000, 2.0, 10.0), _row("small", 250, 5_000, 1.0, 12.0)])
    table = reports.reduction_table(frame).set_index("technique")
    assert table.loc["small", "params_x"] == pytest.approx(4.0)
    assert table.loc["small", "macs_x"] == pytest.approx(2.0)
    assert table.loc["small", "speedup_measured"] == pytest.approx(2.0)
    assert table.loc["small", "quality_change"] == pytest.approx(-2.0)
    assert table.loc["small", "regime"] in ("launch-bound", "memory-bound", "compute-bound")
    with pytest.raises(GanSurveyError, match="'dense'"):
        reports.reduction_table(frame, baseline="dense")
    assert isinstance(table, pd.DataFrame)
