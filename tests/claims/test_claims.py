"""Claim checks over measured records: the verdicts follow the numbers."""

import pandas as pd
import pytest

from gansurvey.checks import GanSurveyError
from gansurvey.claims.background import premise_memory_dominates
from gansurvey.claims.distillation import distillation_vs_pruning
from gansurvey.claims.verdict import Verdict
from gansurvey.records import Measurement, ResultsStore


def record(technique, family, seed, macs, value, benchmark="mnist-dcgan", metric="domain_fid", higher=False,
           settings="{}"):
    return dict(benchmark=benchmark, technique=technique, family=family, settings=settings, seed=seed,
                macs=macs, primary_metric=metric, primary_value=value, higher_is_better=higher)


def duel(kd_values, pruned_values, kd_macs=1.0e6, pruned_macs=1.04e6, **kw) -> pd.DataFrame:
    """Records of one distilled and one pruned configuration over seeds, plus a teacher baseline."""
    rows = [record("distill w0.5", "distillation", s, kd_macs, v, **kw) for s, v in enumerate(kd_values)]
    rows += [record("prune 50% + finetune", "pruning", s, pruned_macs, v, **kw)
             for s, v in enumerate(pruned_values)]
    rows.append(record("teacher", "baseline", 0, 4e6, 1.0, **kw))
    return pd.DataFrame(rows)


def test_f1_supported_when_distillation_is_better_beyond_the_spread():
    check = distillation_vs_pruning(duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0]))
    assert check.verdict == Verdict.SUPPORTED
    assert check.verdicts == {"equal-finetune": Verdict.SUPPORTED, "equal-finetune: mnist-dcgan": Verdict.SUPPORTED,
                              "equal-total": Verdict.NOT_TESTABLE}
    assert "no equal-total students" in check.summary
    assert check.source == "measured" and check.basis == "survey abstract" and check.seeds == 3
    row = check.evidence.iloc[0]
    assert row["distilled"] == "distill w0.5" and row["pruned"] == "prune 50% + finetune"
    assert row["distilled_mean"] == pytest.approx(11.0) and row["pruned_mean"] == pytest.approx(21.0)
    assert row["distilled_spread"] == pytest.approx(1.0) and row["distilled_seeds"] == 3
    assert row["margin"] == pytest.approx(10.0)  # lower FID is better: positive means distillation wins
    text = check.summary
    assert "supported" in text and "11" in text and "21" in text and "+10" in text


def test_f1_contradicted_when_pruning_is_better():
    check = distillation_vs_pruning(duel([20.0, 21.0, 22.0], [10.0, 11.0, 12.0]))
    assert check.verdict == Verdict.CONTRADICTED
    assert check.evidence.iloc[0]["margin"] == pytest.approx(-10.0)


def test_f1_respects_higher_is_better():
    # The same numbers as the supported case, but now higher is better: pruning wins.
    check = distillation_vs_pruning(duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0], metric="psnr", higher=True))
    assert check.verdict == Verdict.CONTRADICTED
    flipped = distillation_vs_pruning(duel([20.0, 21.0], [10.0, 11.0], metric="psnr", higher=True))
    assert flipped.verdict == Verdict.SUPPORTED


def test_f1_not_testable_when_macs_differ_by_more_than_the_tolerance():
    records = duel([10.0, 11.0], [20.0, 21.0], kd_macs=1.0e6, pruned_macs=1.15e6)
    check = distillation_vs_pruning(records)
    assert check.verdict == Verdict.NOT_TESTABLE and check.evidence.empty
    assert "no MAC budget" in check.summary
    assert distillation_vs_pruning(records, mac_tolerance=0.2).verdict == Verdict.SUPPORTED


def test_f1_inconclusive_when_spreads_overlap():
    check = distillation_vs_pruning(duel([10.0, 14.0, 18.0], [12.0, 15.0, 18.0]))
    assert check.verdict == Verdict.MIXED
    assert check.evidence.iloc[0]["outcome"] == "within seed spread"


def test_f1_takes_the_best_of_each_family_per_budget_and_combines_benchmarks():
    rows = duel([10.0, 11.0], [20.0, 21.0]).to_dict("records")
    # A better pruned configuration in the same budget overturns the win on this benchmark...
    rows += [record("prune 50% + longer finetune", "pruning", s, 0.98e6, v) for s, v in enumerate([5.0, 5.5])]
    # ...while a second benchmark still supports the claim, so the overall verdict is mixed.
    toy = duel([0.9, 0.91], [0.5, 0.52], metric="modes", higher=True, benchmark="gaussians-mlp")
    rows += toy.to_dict("records")
    check = distillation_vs_pruning(pd.DataFrame(rows))
    assert check.verdicts == {"equal-finetune": Verdict.MIXED, "equal-finetune: mnist-dcgan": Verdict.CONTRADICTED,
                              "equal-finetune: gaussians-mlp": Verdict.SUPPORTED, "equal-total": Verdict.NOT_TESTABLE}
    assert check.verdict == Verdict.MIXED
    assert set(check.evidence["pruned"]) == {"prune 50% + longer finetune", "prune 50% + finetune"}


def test_f1_reads_records_written_by_the_results_store(tmp_path):
    def measured(technique, family, seed, macs, value, settings):
        return Measurement(notebook="02_distillation", benchmark="edges2digits-resnet", technique=technique,
                           family=family, settings=settings, seed=seed, macs=macs, primary_metric="psnr",
                           primary_value=value, higher_is_better=True)

    records = [measured("distill", "distillation", s, 1000, 20.0 + 0.1 * s, {"width": 0.5}) for s in range(2)]
    records += [measured("prune", "pruning", s, 1050, v, {"ratio": 0.5, "finetune": True})
                for s, v in enumerate([15.0, 15.2])]
    records += [measured("prune", "pruning", s, 1050, v, {"ratio": 0.5, "finetune": False})
                for s, v in enumerate([9.0, 9.5])]
    records.append(Measurement(notebook="02_distillation", benchmark="edges2digits-resnet",
                               technique="teacher", family="baseline"))
    store = ResultsStore("quick", root=tmp_path)
    store.write("02_distillation", records)
    check = distillation_vs_pruning(store.load_all())
    assert check.verdict == Verdict.SUPPORTED
    row = check.evidence.iloc[0]
    # The fine-tuned pruned model is the one distillation must beat, told apart by its settings.
    assert "true" in row["pruned"] and row["pruned_mean"] == pytest.approx(15.1)
    assert row["margin"] == pytest.approx(20.05 - 15.1)


def test_f1_bad_records_are_named():
    with pytest.raises(GanSurveyError, match="macs"):
        distillation_vs_pruning(duel([1.0], [2.0]).drop(columns="macs"))
    mixed = duel([1.0, 2.0], [3.0, 4.0])
    mixed.loc[0, "higher_is_better"] = True
    with pytest.raises(GanSurveyError, match="higher_is_better"):
        distillation_vs_pruning(mixed)
    with pytest.raises(GanSurveyError, match="mac_tolerance"):
        distillation_vs_pruning(duel([1.0], [2.0]), mac_tolerance=-0.1)


def test_f4_flips_with_the_memory_share():
    memory_heavy = {"mnist-dcgan": dict(compute_uj=1.0, weight_dram_uj=3.0, activation_uj=1.0)}
    check = premise_memory_dominates(memory_heavy)
    assert check.verdict == Verdict.SUPPORTED
    assert check.evidence.iloc[0]["memory_share"] == pytest.approx(0.8)
    assert "80%" in check.summary
    compute_heavy = pd.DataFrame([dict(benchmark="mnist-dcgan", compute_uj=5.0, weight_dram_uj=1.0,
                                       activation_uj=1.0)])
    assert premise_memory_dominates(compute_heavy).verdict == Verdict.CONTRADICTED
    both = {**memory_heavy, "gaussians-mlp": dict(compute_uj=5.0, weight_dram_uj=1.0, activation_uj=0.0)}
    assert premise_memory_dominates(both).verdict == Verdict.MIXED
    assert premise_memory_dominates(memory_heavy, threshold=0.9).verdict == Verdict.CONTRADICTED


def test_f4_bad_totals_are_named():
    with pytest.raises(GanSurveyError, match="activation_uj"):
        premise_memory_dominates({"m": dict(compute_uj=1.0, weight_dram_uj=1.0)})
    with pytest.raises(GanSurveyError, match="-2"):
        premise_memory_dominates({"m": dict(compute_uj=1.0, weight_dram_uj=-2.0, activation_uj=0.0)})
    zero = premise_memory_dominates({"m": dict(compute_uj=0.0, weight_dram_uj=0.0, activation_uj=0.0)})
    assert zero.verdict == Verdict.NOT_TESTABLE


def _lottery_rows(ticket, control, dense, higher=False):
    return pd.DataFrame([
        dict(benchmark="toy", technique=t, family="pruning", seed=0, macs=10, primary_metric="m",
             primary_value=v, higher_is_better=higher)
        for t, v in (("lottery ticket", ticket), ("random re-init", control), ("dense", dense))
    ])


def test_winning_ticket_verdict_follows_the_numbers():
    from gansurvey.claims.pruning import winning_ticket

    assert winning_ticket(_lottery_rows(1.0, 2.0, 1.0)).verdict == "supported"
    assert winning_ticket(_lottery_rows(3.0, 2.0, 1.0)).verdict == "contradicted"
    assert winning_ticket(_lottery_rows(1.5, 2.0, 1.0)).verdict == "mixed"
    assert winning_ticket(_lottery_rows(3.0, 2.0, 3.0, higher=True)).verdict == "supported"
    assert winning_ticket(_lottery_rows(1.0, 2.0, 1.0).iloc[:2]).verdict == "not testable"


def test_f1_gives_one_verdict_per_budget_and_says_how_many_seeds():
    rows = duel([20.0, 21.0], [10.0, 11.0]).to_dict("records")  # equal fine-tuning: pruning wins
    rows += [record("distill w0.5 long", "distillation", s, 1.0e6, v,
                    settings='{"budget": "equal-total", "steps": 900}') for s, v in enumerate([5.0, 5.5])]
    frame = pd.DataFrame(rows).assign(profile="quick")
    check = distillation_vs_pruning(frame)
    assert check.verdicts["equal-finetune"] == Verdict.CONTRADICTED
    assert check.verdicts["equal-total"] == Verdict.SUPPORTED
    assert check.verdict == Verdict.MIXED  # the budgets disagree: read the per-budget verdicts
    assert set(check.evidence["budget"]) == {"equal-finetune", "equal-total"}
    text = check.summary
    assert "equal total budget" in text and "equal fine-tuning budget" in text
    assert "rests on 2 seeds" in text and "indicative only" in text and check.seeds == 2
    assert "indicative only" not in distillation_vs_pruning(frame, profile="full").summary
    with pytest.raises(GanSurveyError, match="'longer'.*'equal-finetune', 'equal-total'"):
        distillation_vs_pruning(pd.DataFrame(rows[:2] + [{**rows[0], "settings": '{"budget": "longer"}'}]))


def test_checks_share_one_vocabulary():
    from gansurvey.claims.verdict import Check, Verdict, checks_frame, combine

    assert str(Verdict.NOT_TESTABLE) == "not testable" and f"{Verdict.MIXED}" == "mixed"
    assert combine([Verdict.SUPPORTED, Verdict.NOT_TESTABLE]) == Verdict.SUPPORTED
    assert combine([Verdict.SUPPORTED, Verdict.CONTRADICTED]) == Verdict.MIXED
    check = premise_memory_dominates({"m": dict(compute_uj=1.0, weight_dram_uj=3.0, activation_uj=1.0)})
    assert isinstance(check, Check) and isinstance(check.summary, str)
    assert checks_frame([check]).loc[0, "verdict"] == "supported"
    with pytest.raises(GanSurveyError, match="unknown verdict 'maybe'"):
        Verdict.of("maybe")
    with pytest.raises(GanSurveyError, match="unknown check source 'rumour'"):
        Check("X", "c", "supported", "s", source="rumour")


def test_f1_leaves_out_models_measured_before_fine_tuning():
    rows = duel([10.0, 11.0], [20.0, 21.0]).to_dict("records")
    rows += [record("prune 50% (no fine-tuning)", "pruning", s, 1.0e6, 1.0, settings='{"finetuned": false}')
             for s in range(2)]
    check = distillation_vs_pruning(pd.DataFrame(rows))
    assert check.verdicts["equal-finetune"] == Verdict.SUPPORTED
    assert "2 record(s) measured before fine-tuning" in check.summary
