"""An Inception FID on too few images is reported as not meaningful, never as a number beside the others."""

import math

import pandas as pd

from gansurvey.metrics.inception import MIN_FID_SAMPLES, fid_meaningful, mark_fid


def test_fid_below_the_sample_floor_is_blanked_and_explained():
    rows = pd.DataFrame({"fid": [78.0, 12.0, None], "fid_samples": [32, MIN_FID_SAMPLES, None]})
    marked = mark_fid(rows)
    assert math.isnan(marked.loc[0, "fid"]) and marked.loc[0, "fid_unreported"] == 78.0
    assert "not meaningful: 32 images" in marked.loc[0, "fid_note"]
    assert marked.loc[1, "fid"] == 12.0 and marked.loc[1, "fid_note"] == ""
    assert marked.loc[2, "fid_note"] == ""  # nothing measured, nothing to explain
    assert rows.loc[0, "fid"] == 78.0  # the input is left alone
    assert not fid_meaningful(MIN_FID_SAMPLES - 1) and fid_meaningful(MIN_FID_SAMPLES)
    assert "fid_note" not in mark_fid(pd.DataFrame({"domain_fid": [1.0]})).columns
