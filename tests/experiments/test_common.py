import json
import math

import pandas as pd
import pytest
import torch

import gansurvey as gs
from gansurvey.checks import GanSurveyError
from gansurvey.compress import make_student
from gansurvey.config import profile_settings
from gansurvey.experiments import common, distillation
from gansurvey.experiments.pruning import pruning_sweep
from gansurvey.metrics import count_macs
from gansurvey.metrics.curves import curve_plateau
from gansurvey.records import Measurement, arm_table, records_frame, reduction_table
from tests.conftest import FULL, QUICK


def test_match_channel_ratio_hits_the_students_macs():
    bench = gs.get_benchmark("mnist-dcgan")
    torch.manual_seed(0)
    teacher = bench.new_generator()
    x = bench.example_input(1)
    for width in (0.25, 0.5):
        target = count_macs(make_student(teacher, width), x)
        ratio, pruned = common.match_channel_ratio(teacher, target, x)
        assert 0 < ratio < 1
        assert abs(count_macs(pruned, x) - target) <= 0.10 * target
    with pytest.raises(GanSurveyError, match="within"):
        common.match_channel_ratio(teacher, 10, x)


def test_distilled_student_and_pruned_runs_are_short_and_new():
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(), bench.new_discriminator()
    before = [p.clone() for p in teacher.parameters()]
    for variant in distillation.DISTILL_VARIANTS:
        student = distillation.distilled_student(bench, teacher, disc, variant, 0.5, steps=2, seed=0, device="cpu")
        assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))
    with pytest.raises(GanSurveyError, match="'distill-all'"):
        distillation.distill_config(bench, "distill-all")


def test_pruned_and_finetuned_can_prune_the_discriminator_too(monkeypatch):
    bench = gs.get_benchmark("edges2digits-resnet")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(width=0.25), bench.new_discriminator()
    disc_params = [p.clone() for p in disc.parameters()]
    config = gs.compress.ChannelPruneConfig(0.5)
    critics, finetune = [], common.finetune

    def spy(generator, benchmark, steps, discriminator=None, **kwargs):
        critics.append(sum(p.numel() for p in discriminator.parameters()))
        return finetune(generator, benchmark, steps, discriminator, **kwargs)

    monkeypatch.setattr(common, "finetune", spy)
    x = bench.example_input(2)
    for ratio in (0.0, 0.5):
        tuned = common.pruned_and_finetuned(bench, teacher, disc, config, steps=1, device="cpu",
                                                 discriminator_ratio=ratio)
        assert tuned(x).shape == teacher(x).shape
        assert count_macs(tuned, x) < count_macs(teacher, x)
    assert critics[0] == sum(p.numel() for p in disc_params) and critics[1] < critics[0] / 2
    assert all(torch.equal(a, b) for a, b in zip(disc_params, disc.parameters(), strict=True))
    with pytest.raises(GanSurveyError, match="discriminator_ratio"):
        common.pruned_and_finetuned(bench, teacher, disc, config, steps=1, discriminator_ratio=1.0)


def test_pruning_sweep_measures_each_config_before_and_after_finetuning():
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(), bench.new_discriminator()
    configs = {"magnitude 50%": gs.compress.MagnitudePruneConfig(0.5),
               "channels 50%": gs.compress.ChannelPruneConfig(0.5)}
    records, samples = pruning_sweep(bench, teacher, disc, configs, 2, seed=3, device="cpu",
                                                 notebook="test", profile=QUICK)
    assert [r.technique for r in records] == ["magnitude 50% (no fine-tuning)", "magnitude 50%",
                                             "channels 50% (no fine-tuning)", "channels 50%"]
    assert {r.seed for r in records} == {3} and {r.notebook for r in records} == {"test"}
    assert records[1].settings["finetune_steps"] == 2 and records[3].macs < records[1].macs
    dense_bytes = gs.metrics.stored_bytes(teacher)
    assert records[0].stored_bytes < 0.8 * dense_bytes and records[1].stored_bytes < 0.8 * dense_bytes  # sparse
    assert set(samples) == set(configs) and samples["channels 50%"].shape[0] == common.SAMPLE_GRID
    # over seeds: the pruned teacher once (no chance involved), the fine-tuned model once per seed
    records, _ = pruning_sweep(bench, teacher, disc, {"channels 50%": configs["channels 50%"]}, 2, seeds=[1, 2],
                               device="cpu", notebook="test", profile=QUICK)
    assert [(r.technique, r.seed) for r in records] == [("channels 50% (no fine-tuning)", 1), ("channels 50%", 1),
                                                       ("channels 50%", 2)]
    with pytest.raises(GanSurveyError, match="at least one seed"):
        pruning_sweep(bench, teacher, disc, configs, 2, seeds=[], device="cpu", profile=QUICK)


def test_distillation_sweep_has_every_arm_at_matched_macs():
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(), bench.new_discriminator()
    records, samples = distillation.distillation_sweep(bench, teacher, disc, [0.5], [0, 1], 1,
                                                      variants=("scratch", "output"), device="cpu", profile=QUICK)
    frame = records_frame(records)
    assert len(frame) == 2 * 4 and sorted(frame["seed"].unique()) == [0, 1]
    assert set(frame["family"]) == {"from-scratch", "distillation", "pruning", "pruning+distillation"}
    student_macs = frame.loc[frame["technique"] == "output w0.5", "macs"].iloc[0]
    assert all(abs(m - student_macs) <= 0.10 * student_macs for m in frame["macs"])
    assert "scratch w0.5" in samples and any(label.startswith("channels") for label in samples)
    assert {json.loads(s)["budget"] for s in frame["settings"]} == {"equal-finetune"}
    with pytest.raises(GanSurveyError, match="'distill-all'"):
        distillation.distillation_sweep(bench, teacher, disc, [0.5], [0], 1, variants=("distill-all",))
    with pytest.raises(GanSurveyError, match="'longer'.*'equal-finetune', 'equal-total'"):
        distillation.distillation_sweep(bench, teacher, disc, [0.5], [0], 1, budget="longer")


def test_equal_total_arm_trains_students_only_and_records_its_budget():
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(), bench.new_discriminator()
    records, samples = distillation.distillation_sweep(bench, teacher, disc, [0.5], [0], 3,
                                                      variants=("scratch", "feature"), budget="equal-total",
                                                      device="cpu", profile=QUICK)
    frame = records_frame(records)
    assert set(frame["family"]) == {"from-scratch", "distillation"}  # pruned models are shared with equal-finetune
    settings = [json.loads(s) for s in frame["settings"]]
    assert {(s["budget"], s["steps"]) for s in settings} == {("equal-total", 3)}
    assert {s["variant"] for s in settings} == {"scratch", "feature"}
    assert set(samples) == {"scratch w0.5 (equal total)", "feature w0.5 (equal total)"}
    quick = profile_settings("quick")
    teacher_steps = gs.get_benchmark("mnist-dcgan").teacher_steps("full")
    full = profile_settings("full")
    # full's dense controls train the whole budget (they are shipped, keyed by it); the equal-total arm is capped
    assert full.dense_steps_cap is None
    assert distillation.total_steps(FULL, "mnist-dcgan", 7, purpose="dense") == teacher_steps + 7
    for settings in (quick, full):
        for purpose, cap in (("equal-total", settings.total_steps_cap), ("dense", settings.dense_steps_cap)):
            total = gs.get_benchmark("mnist-dcgan").teacher_steps(settings.name) + 7
            expected = total if cap is None else min(total, cap)
            assert distillation.total_steps(settings, "mnist-dcgan", 7, purpose=purpose) == expected
    assert distillation.total_steps(quick, "mnist-dcgan", 7) == min(
        gs.get_benchmark("mnist-dcgan").teacher_steps("quick") + 7, quick.total_steps_cap)  # equal-total by default
    with pytest.raises(GanSurveyError, match="total budget.*'dense'"):
        distillation.total_steps(QUICK, "mnist-dcgan", purpose="controls")
    with pytest.raises(GanSurveyError, match="unknown benchmark 'celeba'"):
        distillation.total_steps(QUICK, "celeba")


def test_best_distillation_variant_follows_the_equal_finetune_arm():
    def rec(variant, value, budget="equal-finetune"):
        return Measurement(notebook="nb", benchmark="b", technique=variant, family="distillation",
                           settings={"variant": variant, "budget": budget}, primary_metric="m",
                           primary_value=value, higher_is_better=False)

    records = [rec("output", 5.0), rec("feature", 7.0), rec("feature+adv", 1.0, "equal-total")]
    assert distillation.best_distillation_variant(records, "b") == "output"  # equal-total rows do not vote
    # with validation samples recorded, they choose, not the reported values
    for r, validation in zip(records, (9.0, 2.0, 0.0), strict=True):
        r.validation_value = validation
    assert distillation.best_distillation_variant(records, "b") == "feature"
    assert distillation.best_distillation_variant(records, "other") == "feature"  # the documented fallback


def test_equal_total_sweep_runs_scratch_and_the_chosen_variant(monkeypatch):
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    teacher, disc = bench.new_generator(), bench.new_discriminator()
    monkeypatch.setattr(distillation, "total_steps", lambda profile, name, steps=None: 2)
    earlier = records_frame([Measurement(notebook="nb", benchmark=bench.name, technique="output w0.5",
                                         family="distillation", settings={"variant": "output"},
                                         primary_metric="m", primary_value=1.0, higher_is_better=False)])
    records, _, variant = distillation.equal_total_sweep(bench, teacher, disc, earlier, QUICK, [0.5], [0],
                                                        device="cpu", notebook="test")
    assert variant == "output" and {r.profile for r in records} == {"quick"}
    assert [r.settings["variant"] for r in records] == ["scratch", "output"]
    assert {r.settings["budget"] for r in records} == {"equal-total"}


def test_profile_budgets_defaults_and_overrides():
    quick, full = profile_settings("quick"), profile_settings("full")
    assert common.budget_steps(QUICK, "finetune") == quick.finetune_steps
    assert common.budget_steps(FULL, "lottery") == full.lottery_steps
    assert common.budget_steps(FULL, "finetune", 7) == 7
    with pytest.raises(GanSurveyError, match="finetune steps"):
        common.budget_steps(QUICK, "finetune", -1)
    with pytest.raises(GanSurveyError, match="'distill'.*'finetune', 'lottery'"):
        common.budget_steps(QUICK, "distill")
    assert common.run_seeds(QUICK, 4) == [4] and common.run_seeds(FULL) == [0, 1, 2]
    assert common.run_seeds(FULL, 0, [5, 7]) == [5, 7]
    with pytest.raises(GanSurveyError, match="at least one seed"):
        common.run_seeds(QUICK, 0, [])
    with pytest.raises(GanSurveyError, match="seed must be an integer >= 0, got -1"):
        common.run_seeds(QUICK, 0, [1, -1])
    assert distillation.student_widths(FULL) == list(full.student_widths)
    assert distillation.student_widths(QUICK, [0.3]) == [0.3]
    with pytest.raises(GanSurveyError, match="student width.*got 1.5"):
        distillation.student_widths(QUICK, [0.5, 1.5])
    with pytest.raises(GanSurveyError, match="'fast'"):
        profile_settings("fast")  # the one place a profile's name is read


def test_paper_is_full_without_its_trims():
    """paper keeps what full trimmed to fit a 2-core CPU; everything else, the dense controls' keys included, is
    full's, so paper reuses full's shipped controls and teachers."""
    full, paper = profile_settings("full"), profile_settings("paper")
    assert set(full.student_widths) < set(paper.student_widths)
    assert full.total_steps_cap is not None and paper.total_steps_cap is None
    assert paper.extended_arms and not full.extended_arms
    for method, ranks in full.rank_grids.items():
        assert set(ranks) < set(paper.rank_grids[method]), method
    for name in ("finetune_steps", "eval_samples", "seeds", "dense_steps_cap", "latency_repeats"):
        assert getattr(full, name) == getattr(paper, name), name
    teacher_steps = gs.get_benchmark("mnist-dcgan").teacher_steps("paper")
    assert distillation.total_steps(paper, "mnist-dcgan") == teacher_steps + paper.finetune_steps
    assert distillation.total_steps(full, "mnist-dcgan", purpose="dense") == distillation.total_steps(
        paper, "mnist-dcgan", purpose="dense")


def _row(technique, params, macs, latency, value):
    return Measurement(notebook="nb", benchmark="b", technique=technique, family="pruning", params=params,
                       macs=macs, stored_bytes=params * 4, energy_uj=params / 10, latency_ms=latency,
                       weight_traffic_bytes=params * 4, activation_traffic_bytes=100, primary_metric="m",
                       primary_value=value, higher_is_better=False)


def test_reduction_table_ratios_and_quality_direction():
    frame = records_frame([_row("teacher", 1000, 10_000, 2.0, 10.0), _row("small", 250, 5_000, 1.0, 12.0)])
    table = reduction_table(frame).set_index("technique")
    assert table.loc["small", "params_x"] == pytest.approx(4.0)
    assert table.loc["small", "macs_x"] == pytest.approx(2.0)
    assert table.loc["small", "speedup_x"] == pytest.approx(2.0)
    assert table.loc["small", "quality_change"] == pytest.approx(-2.0)
    assert table.loc["small", "regime"] in ("launch-bound", "memory-bound", "compute-bound")
    with pytest.raises(GanSurveyError, match="'dense'"):
        reduction_table(frame, baseline="dense")
    assert isinstance(table, pd.DataFrame) and "engine" in table
    # a latency timed beside other work (a parallel regeneration) gives no speed-up
    loaded = _row("small", 250, 5_000, 1.0, 12.0)
    loaded.timed_under_load = True
    table = reduction_table(records_frame([_row("teacher", 1000, 10_000, 2.0, 10.0), loaded])).set_index("technique")
    assert math.isnan(table.loc["small", "speedup_x"]) and table.loc["small", "macs_x"] == pytest.approx(2.0)


def _seeded(technique, family, seed, value, settings=None, benchmark="b"):
    return Measurement(notebook="nb", benchmark=benchmark, technique=technique, family=family, seed=seed,
                       settings=settings or {}, params=100, macs=1000, stored_bytes=400, primary_metric="m",
                       primary_value=value, higher_is_better=False)


def test_arm_table_aggregates_seeds_and_keeps_untuned_rows_apart():
    records = [_seeded("teacher", "baseline", 0, 10.0)]
    records += [_seeded("channels 50%", "pruning", s, v, {"ratio": 0.5, "finetuned": True})
                for s, v in enumerate([12.0, 14.0, 16.0])]
    records += [_seeded("channels 50% (no fine-tuning)", "pruning", s, 40.0, {"ratio": 0.5}) for s in range(3)]
    records += [_seeded("scratch w0.5", "from-scratch", s, v, {"budget": "equal-total", "steps": 900})
                for s, v in enumerate([11.0, 13.0])]
    table = arm_table(records_frame(records))
    assert list(table["stage"]) == ["baseline", "trained", "trained", "no fine-tuning"]  # untuned rows last
    pruned = table.set_index("technique").loc["channels 50%"]
    assert pruned["n"] == 3 and pruned["mean"] == pytest.approx(14.0) and pruned["sd"] == pytest.approx(2.0)
    assert pruned["mean ± sd"] == "14 ± 2" and pruned["seeds"] == "0, 1, 2"
    assert pruned["quality_change"] == pytest.approx(-4.0)  # FID-like: higher is worse
    assert pruned["quality_change_pct"] == pytest.approx(-40.0)
    scratch = table.set_index("technique").loc["scratch w0.5"]
    assert scratch["budget"] == "equal-total" and scratch["steps"] == 900 and scratch["n"] == 2


def test_arm_table_gives_units_not_percent_near_the_metrics_floor():
    records = [_seeded("teacher", "baseline", 0, 0.01), _seeded("prune", "pruning", 0, 20.0)]
    table = arm_table(records_frame(records)).set_index("technique")
    assert table.loc["prune", "quality_change"] == pytest.approx(-19.99)
    assert table.loc["prune", "near_floor"] and pd.isna(table.loc["prune", "quality_change_pct"])
    far = arm_table(records_frame(records), near_floor=1e-4).set_index("technique")
    assert far.loc["prune", "quality_change_pct"] == pytest.approx(-199_900.0)
    with pytest.raises(GanSurveyError, match="near_floor must be a number >= 0 and < 1, got 2"):
        arm_table(records_frame(records), near_floor=2)
    with pytest.raises(GanSurveyError, match="lack column.*seed"):
        arm_table(records_frame(records).drop(columns="seed"))


def test_curve_plateau_tells_a_falling_curve_from_a_flat_one():
    steps = list(range(100, 1300, 100))
    falling = pd.DataFrame({"step": steps, "domain_fid": [1000.0 / (1 + s / 1200) for s in steps]})
    flat = pd.DataFrame({"step": steps, "domain_fid": [50.0 + (3 if i % 2 else -3) for i in range(len(steps))]})
    still = curve_plateau(falling, "domain_fid")
    assert not still["flattened"] and still["improvement_pct"] > 10 and still["trend_change"] < 0
    assert still["from_step"] == 600 and still["to_step"] == 1200
    assert curve_plateau(flat, "domain_fid")["flattened"]
    # a trend far inside the checkpoints' scatter is noise, not improvement
    noisy = pd.DataFrame({"step": steps, "domain_fid": [50.0 - 0.01 * s + (40 if i % 2 else -40)
                                                        for i, s in enumerate(steps)]})
    judged = curve_plateau(noisy, "domain_fid", tolerance=0.0)
    assert judged["flattened"] and judged["noise_sd"] > 10 and judged["trend_change"] < 0
    # a score that rises is an improvement when higher is better
    assert not curve_plateau(falling.assign(domain_fid=-falling["domain_fid"]), "domain_fid",
                                     higher_is_better=True)["flattened"]
    assert curve_plateau(falling, "domain_fid", tolerance=10.0)["flattened"]
    with pytest.raises(GanSurveyError, match="'recall'"):
        curve_plateau(flat, "recall")
    with pytest.raises(GanSurveyError, match="at least 3"):
        curve_plateau(flat.head(3), "domain_fid")
