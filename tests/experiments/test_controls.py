"""The two controls: the teacher fine-tuned for the arms' steps, and a dense generator trained from scratch at a
compressed model's bytes or MACs."""

import pytest
import torch

import gansurvey as gs
from gansurvey.checks import GanSurveyError
from gansurvey.compress import make_student
from gansurvey.experiments import controls
from gansurvey.metrics.cost import count_macs, stored_bytes


@pytest.fixture
def toy(quick_profile):
    quick_profile(eval_samples=200, latency_repeats=2, latency_warmup=1)
    bench = gs.get_benchmark("gaussians-mlp")
    return bench, *bench.teacher()


def test_the_teacher_control_is_the_teacher_trained_further(toy):
    bench, teacher, disc = toy
    records = controls.teacher_control(bench, teacher, disc, 5, [0, 1], device="cpu")
    assert [r.seed for r in records] == [0, 1]
    assert {r.technique for r in records} == {controls.TEACHER_CONTROL} and {r.family for r in records} == {"control"}
    assert all(r.settings["control"] == "teacher" and r.settings["steps"] == 5 for r in records)
    assert records[0].params == sum(p.numel() for p in teacher.parameters())  # same size: only more training
    again = controls.teacher_control(bench, teacher, disc, 5, [0], device="cpu")
    assert again[0].primary_value == records[0].primary_value  # seeded


@pytest.mark.parametrize("match", controls.MATCHES)
def test_matched_width_hits_the_target_cost(toy, match):
    bench, teacher, _ = toy
    x = bench.example_input(1)
    cost = (lambda m: stored_bytes(m)) if match == "stored_bytes" else (lambda m: count_macs(m, x))
    target = cost(teacher) / 4
    width = controls.matched_width(teacher, target, match, x)
    got = cost(make_student(teacher, width))
    assert 0 < width < 1 and abs(got - target) / target < 0.15
    with pytest.raises(GanSurveyError, match="unknown control match 'params'"):
        controls.matched_width(teacher, target, "params", x)


def test_the_dense_control_trains_a_smaller_model_from_scratch(toy):
    bench, teacher, _ = toy
    target = stored_bytes(teacher) / 4
    records = controls.dense_control(bench, teacher, target, "stored_bytes", 5, [0], label="4x bytes",
                                     device="cpu")
    (record,) = records
    assert record.technique == "dense from scratch @ 4x bytes" and record.family == "control"
    assert record.stored_bytes < stored_bytes(teacher) / 2 and record.settings["width"] < 1
    assert record.settings["steps"] == 5 and record.settings["match"] == "stored_bytes"
    torch.manual_seed(123)  # the control's own seed decides its initial weights, not the global state
    assert controls.dense_control(bench, teacher, target, "stored_bytes", 5, [0], label="4x bytes",
                                  device="cpu")[0].primary_value == record.primary_value
