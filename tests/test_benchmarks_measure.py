import dataclasses

import pytest
import torch

import gansurvey as gs
from gansurvey import zoo
from gansurvey.benchmarks.base import monitor_interval
from gansurvey.checks import GanSurveyError
from gansurvey.config import PROFILE_SETTINGS
from gansurvey.experiments.common import teacher_curves


@pytest.fixture
def tiny_profile(monkeypatch, artifacts):
    """The quick profile with five-step teachers and few samples, in a private artifacts folder."""
    quick = PROFILE_SETTINGS["quick"]
    tiny = dataclasses.replace(quick, teacher_steps=dict.fromkeys(quick.teacher_steps, 5), eval_samples=200,
                               latency_repeats=2, latency_warmup=1)
    monkeypatch.setitem(PROFILE_SETTINGS, "quick", tiny)
    return tiny


def test_every_public_name_resolves():
    for name in gs.__all__:
        assert getattr(gs, name) is not None
    assert set(gs.FOLDER_BENCHMARKS) == {"pix2pix-folder", "cyclegan-folder"}


def test_unknown_benchmark_names_the_allowed_ones():
    with pytest.raises(GanSurveyError, match="'cifar-biggan'.*'gaussians-mlp', 'mnist-dcgan', 'edges2digits-resnet'"):
        gs.get_benchmark("cifar-biggan")


@pytest.mark.parametrize("name", gs.BENCHMARKS)
def test_benchmark_inputs_feed_its_generator(name):
    bench = gs.get_benchmark(name)
    g = bench.new_generator(width=0.25)
    out = g(bench.example_input(2))
    assert out.shape[0] == 2
    assert torch.equal(bench.eval_inputs(4, seed=1), bench.eval_inputs(4, seed=1))


def test_teacher_is_cached_and_a_corrupt_file_is_rebuilt(tiny_profile, artifacts):
    bench = gs.get_benchmark("gaussians-mlp")
    g1, _ = bench.teacher("quick", seed=0, progress=False)
    files = list((artifacts / "teachers").glob("*.pt"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    g2, _ = bench.teacher("quick", seed=0, progress=False)
    assert files[0].stat().st_mtime_ns == stamp
    assert all(torch.equal(a, b) for a, b in zip(g1.state_dict().values(), g2.state_dict().values(), strict=True))
    files[0].write_bytes(b"\0" * 100)
    g3, _ = bench.teacher("quick", seed=0, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(g1.state_dict().values(), g3.state_dict().values(), strict=True))
    assert zoo.cache_path("teachers", {"x": 1}).parent == artifacts / "teachers"


def test_teacher_curve_is_recorded_with_the_teacher(tiny_profile, monkeypatch):
    monkeypatch.setitem(PROFILE_SETTINGS, "quick",
                        dataclasses.replace(tiny_profile, teacher_steps={"gaussians-mlp": 220}, curve_points=5))
    bench = gs.get_benchmark("gaussians-mlp")
    curve = bench.teacher_curve("quick", seed=0)
    assert curve["step"].tolist() == [50, 100, 150, 200, 220]  # every 44 steps rounded to the 50-step log, the last
    assert {"domain_fid", "modes_covered", "recall"} <= set(curve.columns)
    teacher, _ = bench.teacher("quick", seed=0, progress=False)
    assert curve["domain_fid"].iloc[-1] == bench.quality(teacher, "quick", seed=0)["domain_fid"]
    curves, table = teacher_curves([bench], "quick")
    assert list(curves) == ["gaussians-mlp"] and table["steps"].tolist() == [220]
    assert table["flattened"].dtype == bool
    assert monitor_interval(3000, 12, 50) == 250 and monitor_interval(200, 12, 50) == 50


def test_a_digits_teacher_trains_from_an_empty_cache(tiny_profile, monkeypatch):
    # its first quality check trains the digit classifier (the case of a fresh clone), which needs gradients
    monkeypatch.setitem(PROFILE_SETTINGS, "quick",
                        dataclasses.replace(tiny_profile, classifier_steps=3, eval_samples=64))
    curve = gs.get_benchmark("mnist-dcgan").teacher_curve("quick", seed=0)
    assert curve["step"].tolist() == [5] and curve["domain_fid"].notna().all()


def test_measure_fills_cost_and_quality(tiny_profile):
    bench = gs.get_benchmark("gaussians-mlp")
    g = bench.new_generator()
    record = gs.measure(g, bench, technique="untrained", family="baseline", settings={"width": 1.0})
    assert record.params == sum(p.numel() for p in g.parameters())
    assert record.macs > 0 and record.stored_bytes > 4 * record.params
    assert record.latency_ms > 0 and record.energy_uj > 0
    assert record.primary_metric == "domain_fid" and record.primary_value == record.domain_fid
    assert 0 <= record.modes_covered <= 8 and record.higher_is_better is False
    again = gs.measure(g, bench, technique="untrained", family="baseline", settings={"width": 1.0})
    assert again.domain_fid == record.domain_fid


def test_measure_rejects_bad_arguments():
    g = gs.get_benchmark("gaussians-mlp").new_generator()
    with pytest.raises(GanSurveyError, match="'nope'"):
        gs.measure(g, "nope")
    with pytest.raises(GanSurveyError, match="latency_batch"):
        gs.measure(g, "gaussians-mlp", latency_batch=0)
    with pytest.raises(GanSurveyError, match="'gpu'"):
        gs.measure(g, "gaussians-mlp", device="gpu")
    with pytest.raises(GanSurveyError, match="'medium'"):
        gs.measure(g, "gaussians-mlp", profile="medium")
