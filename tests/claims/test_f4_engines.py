"""F4 measured (claims.combinations.bytes_pay_where_memory_bound) decided only from arms that ran an engine
executing the compressed format; otherwise "not testable here", with the teacher's regime per batch as the why."""

from __future__ import annotations

import pandas as pd

from gansurvey.claims.combinations import bytes_pay_where_memory_bound, compressed_engine, regime_note
from gansurvey.claims.verdict import Verdict


def _frame(arms, seeds=3):
    """Records of a teacher and bytes-only arms ``(technique, engine, latency_ms)`` over ``seeds`` seeds."""
    rows = []
    for seed in range(seeds):
        rows.append(dict(technique="teacher", family="baseline", engine="torch-dense", latency_ms=2.0 + 0.01 * seed,
                         stored_bytes=400, macs=1000))
        rows += [dict(technique=t, family="precision", engine=e, latency_ms=lat + 0.01 * seed, stored_bytes=100,
                      macs=1000) for t, e, lat in arms]
        for r in rows[-1 - len(arms):]:
            r["seed"] = seed
    return pd.DataFrame(rows).assign(benchmark="b", primary_value=1.0, higher_is_better=False, profile="full",
                                     weight_traffic_bytes=400, activation_traffic_bytes=50, method="",
                                     settings="{}")


def test_the_fused_integer_engine_counts_as_compressed_execution():
    assert compressed_engine("fbgemm-int8-fused") and compressed_engine("fbgemm-int8")
    assert not compressed_engine("fbgemm-int8;reference-dense")


def test_only_arms_on_a_compressed_engine_decide_and_integer_arithmetic_is_named():
    frame = _frame([("w8 fbgemm", "fbgemm-int8-fused", 1.0), ("shared", "reference-dense", 5.0)])
    check = bytes_pay_where_memory_bound(frame)
    assert check.verdict == Verdict.SUPPORTED  # the slower decode-to-float arm does not count
    assert list(check.evidence["technique"]) == ["w8 fbgemm"]
    assert "1 bytes-only model(s) that ran decode-to-float left out" in check.summary
    assert "fbgemm-int8-fused also computes in int8" in check.summary
    slower = bytes_pay_where_memory_bound(_frame([("w8 fbgemm", "fbgemm-int8-fused", 3.0)]))
    assert slower.verdict == Verdict.CONTRADICTED


def test_not_testable_here_says_the_regime_at_each_batch():
    frame = _frame([("w8", "reference-dense", 1.0)])
    check = bytes_pay_where_memory_bound(frame)
    assert check.verdict == Verdict.NOT_TESTABLE
    # from the records: 2 * 1000 * b FLOPs over 400 + 50 b bytes
    assert ("arithmetic intensity is 4.44 FLOP/byte at batch 1, 20 FLOP/byte at batch 8, 35.6 FLOP/byte at "
            "batch 64") in check.summary
    roof = pd.DataFrame({"benchmark": "b", "name": "teacher", "batch": [1, 8, 64], "device": "cpu X",
                         "regime": ["launch-bound", "memory-bound", "compute-bound"], "intensity": [4.4, 23.5, 36.0],
                         "machine_balance": 30.0})
    check = bytes_pay_where_memory_bound(frame, roofline=roof)
    assert ("the teacher on cpu X is launch-bound at batch 1, memory-bound at batch 8, compute-bound at batch 64 "
            "(machine balance 30 FLOP/byte") in check.summary
    other = roof.assign(benchmark="elsewhere")  # no rows for this benchmark: the records' intensity instead
    assert "arithmetic intensity" in bytes_pay_where_memory_bound(frame, roofline=other).summary
    assert "unknown here" in regime_note("b", frame.drop(columns="weight_traffic_bytes"))


def test_latencies_timed_under_load_are_no_evidence():
    frame = _frame([("w8 fbgemm", "fbgemm-int8-fused", 1.0)])
    frame["timed_under_load"] = frame["technique"] != "teacher"  # the arms ran beside other notebooks
    check = bytes_pay_where_memory_bound(frame)
    assert check.verdict == Verdict.NOT_TESTABLE and "3 record(s) timed under load left out" in check.summary
    frame["timed_under_load"] = False
    assert bytes_pay_where_memory_bound(frame).verdict == Verdict.SUPPORTED
