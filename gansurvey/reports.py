"""Reduction tables: what a technique promised (fewer params, MACs, bytes, joules) beside what it delivered
(measured latency), with the regime the latency was measured in."""

from __future__ import annotations

import pandas as pd

from gansurvey.checks import GanSurveyError
from gansurvey.metrics.latency import classify_regime

RATIO_COLUMNS = {"params": "params_x", "macs": "macs_x", "stored_bytes": "stored_bytes_x", "energy_uj": "energy_x"}


def reduction_table(records: pd.DataFrame, baseline: str = "teacher", device: str = "auto") -> pd.DataFrame:
    """Per record: reduction factors against the benchmark's ``baseline`` technique (baseline / compressed, so
    2.0 means halved), the measured latency speed-up, the latency regime, and the quality change.

    Theoretical factors and measured speed-ups sit side by side because compressed-but-not-faster is the most
    common outcome; the regime (launch-, memory- or compute-bound) says why.
    """
    rows = []
    for bench, group in records.groupby("benchmark", sort=False):
        base = group[group["technique"] == baseline]
        if base.empty:
            raise GanSurveyError(f"no {baseline!r} record for benchmark {bench!r}; techniques present: "
                                 f"{', '.join(map(repr, group['technique'].unique()))}")
        base = base.iloc[0]
        for _, r in group.iterrows():
            row = {"benchmark": bench, "technique": r["technique"], "settings": r["settings"]}
            for column, name in RATIO_COLUMNS.items():
                row[name] = base[column] / r[column] if r[column] else float("nan")
            row["latency_ms"] = r["latency_ms"]
            row["speedup_measured"] = base["latency_ms"] / r["latency_ms"]
            bytes_moved = (r["weight_traffic_bytes"] or 0) + (r["activation_traffic_bytes"] or 0)
            row["regime"] = classify_regime(int(r["macs"]), int(bytes_moved), r["latency_ms"] / 1e3, device)
            row["quality"] = r["primary_value"]
            sign = 1 if str(r["higher_is_better"]) == "True" else -1
            row["quality_change"] = sign * (r["primary_value"] - base["primary_value"])
            rows.append(row)
    return pd.DataFrame(rows)
