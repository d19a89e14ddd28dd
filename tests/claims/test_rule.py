"""The one decision rule: separated intervals decide, overlapping ones and too few seeds never do, identical arms
are not testable."""

import math

import pytest

from gansurvey.checks import GanSurveyError
from gansurvey.claims.rule import MIN_SEEDS, Arm, all_of, decide, tolerance_of
from gansurvey.claims.verdict import Verdict, combine


def test_separated_intervals_decide_both_ways():
    low, high = Arm.of("low", [10.0, 11.0, 12.0]), Arm.of("high", [20.0, 21.0, 22.0])
    win = decide(low, high, higher_is_better=False)
    assert win.verdict == Verdict.SUPPORTED and win.effect == pytest.approx(10.0)
    assert win.interval[0] > 0 and win.n == {"low": 3, "high": 3}
    assert decide(high, low, higher_is_better=False).verdict == Verdict.CONTRADICTED
    # The direction of the metric flips the word.
    assert decide(low, high, higher_is_better=True).verdict == Verdict.CONTRADICTED


def test_overlapping_intervals_are_indicative():
    a, b = Arm.of("a", [10.0, 14.0, 18.0]), Arm.of("b", [12.0, 15.0, 18.0])
    d = decide(a, b, higher_is_better=False)
    assert d.verdict == Verdict.INDICATIVE and d.interval[0] < 0 < d.interval[1]
    assert "indicative" in d.text() and "[" in d.text()


def test_fewer_than_three_seeds_never_decide():
    for n in range(1, MIN_SEEDS):
        a = Arm.of("a", [10.0 + 0.01 * i for i in range(n)])
        b = Arm.of("b", [100.0 + 0.01 * i for i in range(n)])
        d = decide(a, b, higher_is_better=False)
        assert d.verdict == Verdict.INDICATIVE and "leans supported" in d.reason
    # One arm short is enough to withhold the word.
    d = decide(Arm.of("a", [10.0, 11.0, 12.0]), Arm.of("b", [100.0, 101.0]), higher_is_better=False)
    assert d.verdict == Verdict.INDICATIVE


def test_identical_arms_are_not_testable():
    a = Arm.of("uniform", [1.0, 2.0, 3.0])
    assert decide(a, Arm.of("mixed", [5.0, 6.0, 7.0]), True, identical=True).verdict == Verdict.NOT_TESTABLE
    # Equal numbers alone are a tie, not identical arms.
    assert decide(a, Arm.of("mixed", [1.0, 2.0, 3.0]), True).verdict == Verdict.INDICATIVE
    assert decide(Arm.of("a", []), a, True).verdict == Verdict.NOT_TESTABLE


def test_as_good_as_uses_the_reference_noise_as_tolerance():
    assert tolerance_of(Arm.of("teacher+ft", [10.0, 12.0, 14.0])) == pytest.approx(2.0)  # one run's sd
    # Six seeds: with three, t(4) = 2.8 makes the interval wider than one sd, so "as good as" needs a better arm.
    control = Arm.of("teacher+ft", [10.0, 12.0, 14.0] * 2)
    close = Arm.of("q8", [10.5, 11.0, 11.5] * 2)
    far = Arm.of("q2", [40.0, 41.0, 42.0])
    assert decide(close, control, False, "as good as").verdict == Verdict.SUPPORTED
    assert decide(close, control, False, "as good as", min_seeds=7).verdict == Verdict.INDICATIVE
    assert decide(far, control, False, "as good as").verdict == Verdict.CONTRADICTED
    # A quieter noise reference tightens the tolerance: the same comparison is no longer decided.
    quiet = Arm.of("quiet", [12.0, 12.01, 12.02])
    d = decide(Arm.of("q4", [13.0, 14.0, 15.0]), control, False, "as good as", noise_reference=quiet)
    assert d.tolerance == pytest.approx(0.01) and d.verdict != Verdict.SUPPORTED


def test_evaluation_resamples_widen_the_interval():
    a, b = [10.0, 10.2, 10.4], [11.0, 11.2, 11.4]
    plain = decide(Arm.of("a", a), Arm.of("b", b), False)
    noisy = decide(Arm.of("a", a, [[v - 3, v, v + 3] for v in a]), Arm.of("b", b, [[v - 3, v, v + 3] for v in b]),
                   False)
    assert plain.verdict == Verdict.SUPPORTED and noisy.verdict == Verdict.INDICATIVE
    assert noisy.interval[1] - noisy.interval[0] > plain.interval[1] - plain.interval[0]
    assert "seed spread alone" in plain.notes[0] and not noisy.notes
    with pytest.raises(GanSurveyError, match="one set per seed"):
        Arm.of("a", a, [[1.0]])


def test_better_is_contradicted_only_below_the_tolerance():
    ref = Arm.of("ref", [10.0, 11.0, 12.0])  # tolerance 1
    tie = decide(Arm.of("same", [10.0, 11.0, 12.0 + 1e-9]), ref, True)
    assert tie.verdict == Verdict.INDICATIVE  # no improvement shown, but one of 1 not excluded
    worse = decide(Arm.of("worse", [2.0, 3.0, 4.0]), ref, True)
    assert worse.verdict == Verdict.CONTRADICTED and math.isclose(worse.tolerance, 1.0)


def test_combining_parts():
    d_yes = decide(Arm.of("a", [1, 2, 3]), Arm.of("b", [7, 8, 9]), False)
    d_no = decide(Arm.of("a", [7, 8, 9]), Arm.of("b", [1, 2, 3]), False)
    d_maybe = decide(Arm.of("a", [1]), Arm.of("b", [7]), False)
    assert all_of([d_yes, d_yes]) == Verdict.SUPPORTED
    assert all_of([d_yes, d_no]) == Verdict.CONTRADICTED
    assert all_of([d_yes, d_maybe]) == Verdict.INDICATIVE
    assert combine([Verdict.SUPPORTED, Verdict.INDICATIVE]) == Verdict.INDICATIVE
    assert combine([Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.INDICATIVE]) == Verdict.MIXED


def test_best_of_is_chosen_on_validation_and_reported_on_test():
    import pandas as pd

    from gansurvey.claims.selection import ON_REPORTED, VALIDATION_BASIS, held_back, select_best

    # on the reported values "b" is best (mean 5 > 3.5); on the validation samples "a" is
    rows = pd.DataFrame({"arm": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "primary_value": [6.0, 1.0, 5.0, 5.0],
                         "validation_value": [8.0, 7.0, 2.0, 3.0]})
    split = select_best(rows, "arm", higher_is_better=True)
    assert split.choice == "a" and split.basis == VALIDATION_BASIS and split.honest
    assert split.report["primary_value"].tolist() == [6.0, 1.0]  # every seed reported, on its reported value
    on_reported = select_best(rows.drop(columns="validation_value"), "arm", higher_is_better=True)
    assert on_reported.choice == "b"
    assert on_reported.basis == ON_REPORTED and not on_reported.honest and len(on_reported.report) == 2
    partly = select_best(rows.assign(validation_value=[8.0, None, 2.0, 3.0]), "arm", higher_is_better=True)
    assert partly.basis == ON_REPORTED  # a record without a validation value: no half-validated choice
    assert held_back(Verdict.SUPPORTED, on_reported) == Verdict.INDICATIVE
    assert held_back(Verdict.SUPPORTED, split) == Verdict.SUPPORTED
    assert select_best(rows[rows["arm"] == "a"], "arm", True).basis == "only candidate"
