"""Recovery curves: a compressed generator scored along its fine-tuning, with and without the teacher."""

import gansurvey as gs
from gansurvey.compress import MagnitudePruneConfig
from gansurvey.experiments import recovery


def test_recovery_curves_score_every_arm_and_guide_from_step_zero(quick_profile):
    settings = quick_profile(eval_samples=200, recovery_steps=80, recovery_every=20)
    bench = gs.get_benchmark("gaussians-mlp")
    teacher, disc = bench.teacher()
    configs = {"magnitude 90%": MagnitudePruneConfig(sparsity=0.9)}
    curves = recovery.recovery_curves(bench, teacher, disc, configs, settings, seed=0, device="cpu")
    assert set(curves["guide"]) == {"teacher", "adversarial"} and set(curves["arm"]) == {"magnitude 90%"}
    for _, curve in curves.groupby("guide"):
        assert curve["step"].tolist() == [0, 20, 40, 60, 80]
        assert curve[bench.primary_metric].iloc[0] == curves[bench.primary_metric].iloc[0]  # the same start
    # the two guides train differently (the teacher's pull changes the run)
    last = curves[curves["step"] == 80].set_index("guide")[bench.primary_metric]
    assert last["teacher"] != last["adversarial"]
    table = recovery.recovery_table(curves, bench)
    assert list(table["guide"]) == ["teacher", "adversarial"] and table["flattened"].dtype == bool


def test_recovery_curves_follow_the_form_a_family_trains(quick_profile):
    """QAT fine-tunes a fake-quantized float copy: with ``start=prepare_qat`` the curve trains that copy, which
    computes what the stored quantized model computes; an encoded model trains as stored (its centroids are
    parameters)."""
    import torch

    from gansurvey.compress import EncodeConfig, QuantConfig, compress, prepare_qat
    from gansurvey.compress.encoding import codebook_layers

    settings = quick_profile(eval_samples=200, recovery_steps=20, recovery_every=10)
    bench = gs.get_benchmark("gaussians-mlp")
    teacher, disc = bench.teacher()
    started = []

    def spy(start):
        def wrapped(model, config, example_input):
            started.append(start(model, config, example_input))
            return started[-1]
        return wrapped

    qat = {"int2 (QAT)": QuantConfig(weight_bits=2), "int4 (QAT)": QuantConfig(weight_bits=4)}
    curves = recovery.recovery_curves(bench, teacher, disc, qat, settings, guides=("teacher",), device="cpu",
                                      start=spy(prepare_qat))
    stored = compress(teacher, QuantConfig(weight_bits=2))
    z = bench.example_input(64)
    with torch.no_grad():  # the fake-quantized copy computes what the stored quantized model computes
        assert torch.allclose(started[0](z), stored(z), atol=1e-5)
    assert curves["step"].tolist() == [0, 10, 20] * 2 and len(started) == 2  # every config starts the same way
    shared = compress(teacher, EncodeConfig(bits=2, coder=None))
    assert all(layer.codebook.requires_grad for layer in codebook_layers(shared).values())
