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


def duel(kd_values, pruned_values, scratch_values=None, kd_macs=1.0e6, pruned_macs=1.04e6, **kw) -> pd.DataFrame:
    """Records of one distilled, one pruned and one from-scratch configuration over seeds, plus a teacher."""
    scratch_values = [v + 100.0 * (-1 if kw.get("higher") else 1) for v in kd_values] if scratch_values is None \
        else scratch_values  # far worse than the distilled student unless told otherwise
    rows = [record("distill w0.5", "distillation", s, kd_macs, v, **kw) for s, v in enumerate(kd_values)]
    rows += [record("scratch w0.5", "from-scratch", s, kd_macs, v, **kw) for s, v in enumerate(scratch_values)]
    rows += [record("prune 50% + finetune", "pruning", s, pruned_macs, v, **kw)
             for s, v in enumerate(pruned_values)]
    rows.append(record("teacher", "baseline", 0, 4e6, 1.0, **kw))
    return pd.DataFrame(rows)


def test_f1_supported_when_distillation_beats_pruning_and_scratch_beyond_the_interval():
    check = distillation_vs_pruning(duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0]))
    assert check.verdict == Verdict.SUPPORTED
    assert check.verdicts == {"equal-finetune": Verdict.SUPPORTED, "equal-finetune: mnist-dcgan": Verdict.SUPPORTED,
                              "equal-total": Verdict.NOT_TESTABLE}
    assert "no equal-total students" in check.summary
    assert check.source == "measured" and check.basis == "survey abstract" and check.seeds == 3
    row = check.evidence.iloc[0]
    assert row["distilled"] == "distill w0.5" and row["pruned"] == "prune 50% + finetune"
    assert row["distilled_mean"] == pytest.approx(11.0) and row["pruned_mean"] == pytest.approx(21.0)
    assert row["distilled_seeds"] == 3 and row["selection"] == "no best-of taken"
    vs_pruning = check.decisions.iloc[0]  # lower FID is better: positive means distillation wins
    assert vs_pruning["effect"] == pytest.approx(10.0) and vs_pruning["effect_low"] > 0
    assert vs_pruning["n_arm"] == 3 and vs_pruning["n_reference"] == 3 and check.rule
    text = check.summary
    assert "supported" in text and "11" in text and "21" in text and "+10" in text


def test_f1_tolerance_is_the_noise_of_the_teacher_fine_tuned_for_the_same_steps():
    frame = duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0])
    control = pd.DataFrame([record("teacher fine-tuned", "control", s, 4e6, v) for s, v in enumerate([5.0, 9.0, 13.0])])
    check = distillation_vs_pruning(pd.concat([frame, control], ignore_index=True))
    assert check.decisions["tolerance"].tolist() == pytest.approx([4.0, 4.0])  # the control's sd over seeds
    assert distillation_vs_pruning(frame).decisions["tolerance"].tolist() == pytest.approx([1.0, 1.0])
    # The other control, a dense generator trained from scratch, is an arm to beat, not the noise reference.
    dense = control.assign(technique="dense from scratch @ macs", settings='{"control": "dense"}')
    assert distillation_vs_pruning(pd.concat([frame, dense], ignore_index=True)).decisions["tolerance"].tolist() \
        == pytest.approx([1.0, 1.0])


def test_f1_needs_distillation_to_beat_the_from_scratch_student_too():
    # Distillation beats pruning, but a student trained from scratch for the same steps is better still.
    check = distillation_vs_pruning(duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0], scratch_values=[5.0, 5.5, 6.0]))
    assert check.verdict == Verdict.CONTRADICTED
    assert check.decisions["decision"].tolist() == ["supported", "contradicted"]
    no_scratch = duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0])
    no_scratch = no_scratch[no_scratch["family"] != "from-scratch"]
    check = distillation_vs_pruning(no_scratch)
    assert check.verdict == Verdict.NOT_TESTABLE and "no from-scratch student" in check.summary


def test_f1_contradicted_when_pruning_is_better():
    check = distillation_vs_pruning(duel([20.0, 21.0, 22.0], [10.0, 11.0, 12.0]))
    assert check.verdict == Verdict.CONTRADICTED
    assert check.decisions.iloc[0]["effect"] == pytest.approx(-10.0)


def test_f1_respects_higher_is_better():
    # The same numbers as the supported case, but now higher is better: pruning wins.
    check = distillation_vs_pruning(duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0], metric="psnr", higher=True))
    assert check.verdict == Verdict.CONTRADICTED
    flipped = distillation_vs_pruning(duel([20.0, 21.0, 22.0], [10.0, 11.0, 12.0], metric="psnr", higher=True))
    assert flipped.verdict == Verdict.SUPPORTED


def test_f1_never_decides_on_fewer_than_three_seeds():
    check = distillation_vs_pruning(duel([10.0], [20.0]).assign(profile="quick"))
    assert check.verdict == Verdict.INDICATIVE and check.seeds == 1
    assert "1 seed < 3, leans supported" in check.summary and "rests on 1 seed" in check.summary


def test_f1_not_testable_when_macs_differ_by_more_than_the_tolerance():
    records = duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0], kd_macs=1.0e6, pruned_macs=1.15e6)
    check = distillation_vs_pruning(records)
    assert check.verdict == Verdict.NOT_TESTABLE and check.evidence.empty
    assert "no MAC budget" in check.summary
    assert distillation_vs_pruning(records, mac_tolerance=0.2).verdict == Verdict.SUPPORTED


def test_f1_indicative_when_intervals_overlap():
    check = distillation_vs_pruning(duel([10.0, 14.0, 18.0], [12.0, 15.0, 18.0]))
    assert check.verdict == Verdict.INDICATIVE
    assert check.evidence.iloc[0]["vs_pruning"].startswith("indicative")


def test_f1_best_of_is_chosen_apart_from_the_reported_seeds():
    rows = duel([10.0, 11.0, 12.0, 11.0, 10.0, 12.0], [20.0, 21.0, 22.0, 21.0, 20.0, 22.0]).to_dict("records")
    # A second distilled recipe at the same MACs: choosing between the two is a best-of.
    rows += [record("distill w0.5 output", "distillation", s, 1.0e6, v)
             for s, v in enumerate([15.0, 15.5, 16.0, 15.0, 15.5, 16.0])]
    frame = pd.DataFrame(rows)
    on_reported = distillation_vs_pruning(frame)
    assert on_reported.verdict == Verdict.INDICATIVE
    assert "selected on the reported samples" in on_reported.evidence.iloc[0]["selection"]
    held_out = distillation_vs_pruning(frame, selection_seeds=[0, 1, 2])
    assert held_out.verdict == Verdict.SUPPORTED
    row = held_out.evidence.iloc[0]
    assert row["distilled"] == "distill w0.5" and row["distilled_seeds"] == 3  # reported on seeds 3-5 only


def test_f1_reads_only_its_own_notebook_by_default():
    frame = duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0]).assign(notebook="02_distillation")
    # An arm from another notebook (06's shorter fine-tuning) must not change F1.
    other = pd.DataFrame([record("prune 50% + 80 steps", "pruning", s, 1.02e6, 1.0) for s in range(3)])
    both = pd.concat([frame, other.assign(notebook="06_combinations")], ignore_index=True)
    assert distillation_vs_pruning(both).verdict == distillation_vs_pruning(frame).verdict == Verdict.SUPPORTED
    assert "left out" in distillation_vs_pruning(both).summary
    pooled = distillation_vs_pruning(both, notebook=None)
    assert pooled.evidence.iloc[0]["pruned"] == "prune 50% + 80 steps" and pooled.verdict != Verdict.SUPPORTED


def test_f1_reads_records_written_by_the_results_store(tmp_path):
    def measured(technique, family, seed, macs, value, settings):
        return Measurement(notebook="02_distillation", benchmark="edges2digits-resnet", technique=technique,
                           family=family, settings=settings, seed=seed, macs=macs, primary_metric="psnr",
                           primary_value=value, higher_is_better=True)

    records = [measured("distill", "distillation", s, 1000, 20.0 + 0.1 * s, {"width": 0.5}) for s in range(3)]
    records += [measured("scratch", "from-scratch", s, 1000, 10.0 + 0.1 * s, {"width": 0.5}) for s in range(3)]
    records += [measured("prune", "pruning", s, 1050, v, {"ratio": 0.5, "finetune": True})
                for s, v in enumerate([15.0, 15.2, 15.1])]
    records += [measured("prune", "pruning", s, 1050, v, {"ratio": 0.5, "finetune": False})
                for s, v in enumerate([9.0, 9.5, 9.2])]
    records.append(Measurement(notebook="02_distillation", benchmark="edges2digits-resnet",
                               technique="teacher", family="baseline"))
    store = ResultsStore("quick", root=tmp_path)
    store.write("02_distillation", records)
    check = distillation_vs_pruning(store.load_all())
    row = check.evidence.iloc[0]
    # The fine-tuned pruned model is the one distillation must beat, told apart by its settings; choosing it
    # over the untuned one is a best-of on the reported seeds, so the word is held back.
    assert "true" in row["pruned"] and row["pruned_mean"] == pytest.approx(15.1)
    assert check.decisions.iloc[0]["effect"] == pytest.approx(20.1 - 15.1)
    assert check.verdict == Verdict.INDICATIVE


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
    # The conditions are stated, and the batch where shared weight reads tip the balance is computed:
    # weights 3/B + activations 1 against arithmetic 1 flips once 3/B + 1 <= 1, i.e. never...
    assert "batch 1" in check.summary and "every weight read once from DRAM" in check.summary
    assert check.evidence.iloc[0]["flips_at_batch"] == float("inf")
    # ...while with activations 0.5 it flips at batch 6 (3/6 + 0.5 = 1).
    tipping = premise_memory_dominates({"m": dict(compute_uj=1.0, weight_dram_uj=3.0, activation_uj=0.5)})
    assert tipping.evidence.iloc[0]["flips_at_batch"] == 6 and "from batch 6 on" in tipping.summary


def test_f4_bad_totals_are_named():
    with pytest.raises(GanSurveyError, match="activation_uj"):
        premise_memory_dominates({"m": dict(compute_uj=1.0, weight_dram_uj=1.0)})
    with pytest.raises(GanSurveyError, match="-2"):
        premise_memory_dominates({"m": dict(compute_uj=1.0, weight_dram_uj=-2.0, activation_uj=0.0)})
    zero = premise_memory_dominates({"m": dict(compute_uj=0.0, weight_dram_uj=0.0, activation_uj=0.0)})
    assert zero.verdict == Verdict.NOT_TESTABLE


def _lottery_rows(ticket, control, dense, higher=False, seeds=3):
    # Seed s shifts every arm by 0.1 s, so each arm has a spread of 0.1.
    return pd.DataFrame([
        dict(benchmark="toy", technique=t, family="pruning", seed=s, macs=10, primary_metric="m",
             primary_value=v + 0.1 * s, higher_is_better=higher)
        for t, v in (("lottery ticket", ticket), ("random re-init", control), ("dense", dense))
        for s in range(seeds)
    ])


def test_winning_ticket_verdict_follows_the_numbers():
    from gansurvey.claims.pruning import winning_ticket

    assert winning_ticket(_lottery_rows(0.5, 2.0, 1.0)).verdict == "supported"
    assert winning_ticket(_lottery_rows(3.0, 2.0, 1.0)).verdict == "contradicted"
    assert winning_ticket(_lottery_rows(1.5, 2.0, 1.0)).verdict == "contradicted"  # beats the control only
    assert winning_ticket(_lottery_rows(3.5, 2.0, 3.0, higher=True)).verdict == "supported"
    assert winning_ticket(_lottery_rows(0.5, 2.0, 1.0, seeds=1)).verdict == "indicative"
    assert winning_ticket(_lottery_rows(1.0, 2.0, 1.0).iloc[:6]).verdict == "not testable"


def test_f1_gives_one_verdict_per_budget_and_equal_finetune_decides():
    rows = duel([20.0, 21.0, 22.0], [10.0, 11.0, 12.0]).to_dict("records")  # equal fine-tuning: pruning wins
    rows += [record("distill w0.5 long", "distillation", s, 1.0e6, v,
                    settings='{"budget": "equal-total", "steps": 900}') for s, v in enumerate([5.0, 5.5, 5.2])]
    rows += [record("scratch w0.5 long", "from-scratch", s, 1.0e6, v,
                    settings='{"budget": "equal-total", "steps": 900}') for s, v in enumerate([30.0, 31.0, 32.0])]
    frame = pd.DataFrame(rows).assign(profile="quick")
    check = distillation_vs_pruning(frame)
    assert check.verdicts["equal-finetune"] == Verdict.CONTRADICTED
    assert check.verdicts["equal-total"] == Verdict.SUPPORTED
    assert check.verdict == Verdict.CONTRADICTED  # equal steps after the teacher decide
    assert set(check.evidence["budget"]) == {"equal-finetune", "equal-total"}
    text = check.summary
    assert "equal total budget" in text and "equal fine-tuning budget" in text and "this budget decides" in text
    assert "rests on 3 seeds" in text and check.seeds == 3
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
    rows = duel([10.0, 11.0, 12.0], [20.0, 21.0, 22.0]).to_dict("records")
    rows += [record("prune 50% (no fine-tuning)", "pruning", s, 1.0e6, 1.0, settings='{"finetuned": false}')
             for s in range(3)]
    check = distillation_vs_pruning(pd.DataFrame(rows))
    assert check.verdicts["equal-finetune"] == Verdict.SUPPORTED
    assert "3 record(s) measured before fine-tuning" in check.summary
