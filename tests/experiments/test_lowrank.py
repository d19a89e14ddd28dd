"""03's study steps on an MLP benchmark (#24): Tucker-2 and CP factorize convolutions only, so on ``gaussians-mlp``
and ``mnist-mlp`` they are skipped with one printed line naming the benchmark, the method and why, and the rest
runs."""

import pytest
import torch

import gansurvey as gs
from gansurvey.checks import GanSurveyError
from gansurvey.compress import LowRankConfig, factorize
from gansurvey.experiments import lowrank as xl
from gansurvey.records import records_frame, with_settings
from tests.conftest import tiny_generator

SKIP_LINE = ("gaussians-mlp: {method} skipped: MLPGenerator has no Conv2d or ConvTranspose2d layer ({method} "
             "factorizes convolutions only)")


@pytest.fixture
def toy():
    bench = gs.get_benchmark("gaussians-mlp")
    torch.manual_seed(0)
    return bench, bench.new_generator().eval(), bench.new_discriminator()


def test_skip_reason_says_which_layers_a_method_needs():
    mlp, dcgan = tiny_generator("mlp"), tiny_generator("dcgan")
    assert xl.skip_reason(mlp, "svd") is None and xl.skip_reason(mlp, "tt") is None
    assert xl.skip_reason(mlp, "cp") == ("MLPGenerator has no Conv2d or ConvTranspose2d layer (cp factorizes "
                                         "convolutions only)")
    assert xl.skip_reason(dcgan, "tucker2") is None
    assert xl.skip_reason(dcgan, "tt") == "DCGANGenerator has no Linear layer (tt factorizes Linear layers only)"
    done = factorize(mlp, LowRankConfig("svd", rank=1))  # every Linear factorized: nothing left for tt
    assert xl.skip_reason(done, "tt") == ("every Linear layer of MLPGenerator is grouped or already compressed (tt "
                                          "factorizes Linear layers only, with groups=1 and not compressed yet)")


def test_applicable_configs_keeps_the_methods_that_fit_and_prints_one_line_per_method_left_out(toy, capsys):
    bench, g, _ = toy
    configs = xl.lowrank_configs({"svd": [0.25], "tucker2": [0.5, 0.25], "cp": [0.03]})
    assert list(xl.applicable_configs(bench, g, configs)) == ["svd r=0.25"]
    assert capsys.readouterr().out.splitlines() == [SKIP_LINE.format(method="tucker2"),
                                                    SKIP_LINE.format(method="cp")]
    assert xl.applicable_configs(bench, g, configs, echo=False) == {"svd r=0.25": configs["svd r=0.25"]}
    assert capsys.readouterr().out == ""


def test_sweep_sensitivity_and_matched_runs_skip_tucker2_and_cp_on_the_toy(toy, quick_profile, capsys):
    tiny = quick_profile(eval_samples=64, latency_repeats=1, latency_warmup=0)
    bench, g, d = toy
    configs = xl.lowrank_configs(xl.rank_grids(tiny))  # the profile's default grid: svd, tucker2, cp
    assert {c.method for c in configs.values()} == {"svd", "tucker2", "cp"}
    records, samples = xl.lowrank_sweep(bench, g, d, configs, steps=1, notebook="03_low_rank", profile=tiny)
    frame = with_settings(records_frame(records), ["method", "finetuned"])
    assert set(frame["method"]) == {"svd"} and len(frame) == 2 and list(samples) == ["svd r=0.25"]
    assert capsys.readouterr().out.splitlines() == [SKIP_LINE.format(method="tucker2"),
                                                    SKIP_LINE.format(method="cp")]

    table = xl.lowrank_sensitivity(bench, g, "tucker2", [0.1], profile=tiny)
    assert table.empty and {"layer", "output_error", "quality_loss", bench.primary_metric} <= set(table.columns)
    assert capsys.readouterr().out.splitlines() == [SKIP_LINE.format(method="tucker2")]

    matched = xl.lowrank_configs({"tucker2": [0.25]})
    assert xl.lowrank_vs_pruning_runs(bench, g, d, matched, seeds=[0], steps=1, profile=tiny) == []
    assert capsys.readouterr().out.splitlines() == [SKIP_LINE.format(method="tucker2")]
    from gansurvey.claims.lowrank import lowrank_vs_pruning

    assert str(lowrank_vs_pruning(records_frame([]), profile="quick").verdict) == "not testable"


def test_first_applicable_falls_back_to_the_sweep_and_refuses_when_nothing_fits(toy, capsys):
    bench, g, _ = toy
    matched = xl.lowrank_configs({"tucker2": [0.25]})
    sweep = xl.lowrank_configs({"cp": [0.03], "svd": [0.25]})
    assert xl.first_applicable(bench, g, matched, sweep) == {"svd r=0.25": sweep["svd r=0.25"]}
    assert capsys.readouterr().out.splitlines() == [SKIP_LINE.format(method="tucker2"),
                                                    SKIP_LINE.format(method="cp")]
    dcgan = gs.get_benchmark("mnist-dcgan")
    assert list(xl.first_applicable(dcgan, tiny_generator("dcgan"), matched, sweep)) == ["tucker2 r=0.25"]
    assert capsys.readouterr().out == ""
    with pytest.raises(GanSurveyError, match=r"no low-rank method of 'tucker2' can factorize a layer of "
                                             r"gaussians-mlp's generator \(MLPGenerator\); add 'svd'"):
        xl.first_applicable(bench, g, matched, echo=False)
