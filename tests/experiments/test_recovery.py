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
