import pandas as pd
import pytest

from gansurvey import zoo
from gansurvey.checks import GanSurveyError
from gansurvey.records import COLUMNS, Measurement, ResultsStore


def test_cache_builds_once_and_rebuilds_corrupt_or_stale(artifacts):
    calls = []

    def build():
        calls.append(1)
        return {"value": len(calls)}

    key = zoo.cache_key(benchmark="b", profile="quick", seed=0)
    assert zoo.cached("things", key, build) == {"value": 1}
    assert zoo.cached("things", key, build) == {"value": 1}
    assert len(calls) == 1
    path = zoo.cache_path("things", key)
    assert path.parent == artifacts / "things" and path.name.startswith("b-quick-0-")
    path.write_bytes(b"garbage")
    assert zoo.cached("things", key, build) == {"value": 2}
    other = zoo.cache_key(benchmark="b", profile="quick", seed=1)
    assert zoo.cache_path("things", other) != path
    assert zoo.cached("things", other, build) == {"value": 3}


def _record(**kw):
    return Measurement(notebook="nb", benchmark="mnist-dcgan", technique="t", family="pruning",
                       settings={"sparsity": 0.5}, **kw)


def test_store_roundtrip(tmp_path):
    store = ResultsStore("quick", root=tmp_path)
    store.write("01_pruning", [_record(params=10, domain_fid=1.5), _record(params=5)])
    frame = store.read("01_pruning")
    assert list(frame.columns) == list(COLUMNS)
    assert frame["params"].tolist() == [10, 5]
    assert frame["settings"][0] == '{"sparsity": 0.5}'
    assert store.notebooks() == ["01_pruning"]
    assert len(store.load_all()) == 2
    assert ResultsStore("full", root=tmp_path).load_all().empty


def test_store_rejects_bad_input_and_leaves_nothing(tmp_path):
    store = ResultsStore("quick", root=tmp_path)
    with pytest.raises(GanSurveyError, match="'full'"):
        store.write("nb", [_record(profile="full")])
    with pytest.raises(GanSurveyError, match="Measurement"):
        store.write("nb", [{"params": 1}])
    with pytest.raises(GanSurveyError, match="notebook name"):
        store.write("../evil", [_record()])
    with pytest.raises(GanSurveyError, match="'slow'"):
        ResultsStore("slow", root=tmp_path)
    assert not any(tmp_path.rglob("*.csv"))
    assert isinstance(store.load_all(), pd.DataFrame)
