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


def test_pruning_sweep_measures_each_config_before_and_after_finetuning():
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(), bench.new_discriminator()
    configs = {"magnitude 50%": gs.compress.MagnitudePruneConfig(0.5),
               "channels 50%": gs.compress.ChannelPruneConfig(0.5)}
    records, samples = experiments.pruning_sweep(bench, teacher, disc, configs, 2, seed=3, device="cpu",
                                                 notebook="test", profile="quick")
    assert [r.technique for r in records] == ["magnitude 50% (no fine-tuning)", "magnitude 50%",
                                             "channels 50% (no fine-tuning)", "channels 50%"]
    assert {r.seed for r in records} == {3} and {r.notebook for r in records} == {"test"}
    assert records[1].settings["finetune_steps"] == 2 and records[3].macs < records[1].macs
    dense_bytes = gs.metrics.stored_bytes(teacher)
    assert records[0].stored_bytes < 0.8 * dense_bytes and records[1].stored_bytes < 0.8 * dense_bytes  # sparse
    assert set(samples) == set(configs) and samples["channels 50%"].shape[0] == experiments.SAMPLE_GRID


def test_distillation_sweep_has_every_arm_at_matched_macs():
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(), bench.new_discriminator()
    records, samples = experiments.distillation_sweep(bench, teacher, disc, [0.5], [0, 1], 1,
                                                      variants=("scratch", "output"), device="cpu", profile="quick")
    frame = records_frame(records)
    assert len(frame) == 2 * 4 and sorted(frame["seed"].unique()) == [0, 1]
    assert set(frame["family"]) == {"from-scratch", "distillation", "pruning", "pruning+distillation"}
    student_macs = frame.loc[frame["technique"] == "output w0.5", "macs"].iloc[0]
    assert all(abs(m - student_macs) <= 0.10 * student_macs for m in frame["macs"])
    assert "scratch w0.5" in samples and any(label.startswith("channels") for label in samples)
    with pytest.raises(GanSurveyError, match="'distill-all'"):
        experiments.distillation_sweep(bench, teacher, disc, [0.5], [0], 1, variants=("distill-all",))


def test_profile_budgets_defaults_and_overrides():
    quick, full = gs.benchmarks.profile_settings("quick"), gs.benchmarks.profile_settings("full")
    assert experiments.budget_steps("quick", "finetune") == quick.finetune_steps
    assert experiments.budget_steps("full", "lottery") == full.lottery_steps
    assert experiments.budget_steps("full", "finetune", 7) == 7
    with pytest.raises(GanSurveyError, match="finetune steps"):
        experiments.budget_steps("quick", "finetune", -1)
    with pytest.raises(GanSurveyError, match="'distill'.*'finetune', 'lottery'"):
        experiments.budget_steps("quick", "distill")
    assert experiments.run_seeds("quick", 4) == [4] and experiments.run_seeds("full") == [0, 1, 2]
    assert experiments.run_seeds("full", 0, [5, 7]) == [5, 7]
    with pytest.raises(GanSurveyError, match="at least one seed"):
        experiments.run_seeds("quick", 0, [])
    with pytest.raises(GanSurveyError, match="seed must be an integer >= 0, got -1"):
        experiments.run_seeds("quick", 0, [1, -1])
    assert experiments.student_widths("full") == [0.25, 0.5] and experiments.student_widths("quick", [0.3]) == [0.3]
    with pytest.raises(GanSurveyError, match="student width.*got 1.5"):
        experiments.student_widths("quick", [0.5, 1.5])
    with pytest.raises(GanSurveyError, match="'fast'"):
        experiments.run_seeds("fast")


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
