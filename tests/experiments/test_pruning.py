"""Notebook 01's runs: the lottery-ticket arms over seeds."""

import torch

import gansurvey as gs
from gansurvey.experiments import pruning as xp


def test_lottery_arms_run_each_seed_from_its_own_initial_weights(quick_profile):
    profile = quick_profile(eval_samples=100, latency_repeats=1, latency_warmup=0)
    bench = gs.get_benchmark("gaussians-mlp")
    records, history = xp.lottery_arms(bench, 1, 0.5, 2, [0, 1], device="cpu", profile=profile)
    assert [(r.technique, r.seed) for r in records] == [(arm, s) for s in (0, 1) for arm in xp.LOTTERY_ARMS]
    assert [r.settings["sparsity"] for r in records[:3]] == [0.0, 0.5, 0.5]
    assert records[1].params == records[2].params  # the same masks, other weights
    assert sorted(history["seed"].unique()) == [0, 1]
    torch.manual_seed(99)  # the global state does not decide the initial weights
    again, _ = xp.lottery_arms(bench, 1, 0.5, 2, [1], device="cpu", profile=profile)
    assert [r.domain_fid for r in again] == [r.domain_fid for r in records[3:]]
    assert records[0].domain_fid != records[3].domain_fid  # another seed, another run
