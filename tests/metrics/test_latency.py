"""Interleaved timing: every model timed in turn in one run, speed-ups as ratios of medians with an interval.
(Behaviour only: no test asserts a speed.)"""

import pytest
import torch
from torch import nn

from gansurvey.checks import GanSurveyError
from gansurvey.metrics.latency import interleaved_latency


def test_interleaved_latency_times_every_model_in_turn_with_fixed_threads():
    calls = []

    class Counting(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name, self.layer = name, nn.Linear(8, 8)

        def forward(self, x):
            calls.append(self.name)
            return self.layer(x)

    before = torch.get_num_threads()
    table = interleaved_latency({"a": Counting("a"), "b": Counting("b")}, torch.randn(1, 8), warmup=2, repeats=5,
                                threads=1, device="cpu")
    assert calls == ["a", "b"] * 7  # A, B, A, B...: warm-ups and repeats alternate
    assert torch.get_num_threads() == before and set(table["threads"]) == {1}
    first = table.iloc[0]
    assert first["model"] == "a" and first["speedup_x"] == 1.0 and first["speedup_low"] <= 1.0 <= first["speedup_high"]
    assert (table["p25_ms"] <= table["median_ms"]).all() and (table["median_ms"] <= table["p75_ms"]).all()
    row = table.iloc[1]
    assert row["speedup_low"] <= row["speedup_x"] * 1.0001 and row["speedup_x"] <= row["speedup_high"] * 1.0001


def test_interleaved_latency_refuses_bad_arguments():
    with pytest.raises(GanSurveyError, match="at least one model"):
        interleaved_latency({}, torch.randn(1, 8))
    with pytest.raises(GanSurveyError, match="repeats"):
        interleaved_latency({"a": nn.Linear(8, 8)}, torch.randn(1, 8), repeats=1)


def test_a_speed_difference_is_named_only_when_its_interval_excludes_one():
    from gansurvey.metrics.latency import speed_word

    assert speed_word(1.05, 1.4) == "faster"
    assert speed_word(0.6, 0.95) == "slower"
    assert speed_word(0.9, 1.3) == speed_word(1.0, 1.2) == "not told apart"
