"""Records are validated where they are read (#21): damaged files are refused naming the file and the fault."""

import pytest

from gansurvey.checks import GanSurveyError
from gansurvey.records import MEASURING_NOTEBOOKS, REQUIRED_COLUMNS, Measurement, ResultsStore


def _store(tmp_path):
    store = ResultsStore("quick", root=tmp_path)
    store.write("01_pruning", [Measurement("01_pruning", "toy-mlp", "teacher", "baseline", primary_metric="fid",
                                           primary_value=1.5, seed=0)])
    return store


def test_a_sound_records_file_reads(tmp_path):
    frame = _store(tmp_path).read("01_pruning")
    assert frame["primary_value"].tolist() == [1.5]


@pytest.mark.parametrize("commit", ["0958123", "12e4567", "1234567", "0000000+changes"])
def test_text_columns_read_back_as_written_even_when_they_look_like_numbers(tmp_path, commit):
    # a commit made of digits (or digits around an "e") came back as 958123.0 or 1.2e+4571, so 06 could not
    # tell it was the commit of the family records it joins
    store = ResultsStore("quick", root=tmp_path)
    store.write("01_pruning", [Measurement("01_pruning", "toy-mlp", "2024", "baseline", method="1e3",
                                           primary_metric="fid", primary_value=1.5, seed=0, commit=commit)])
    row = store.read("01_pruning").iloc[0]
    assert (row["commit"], row["technique"], row["method"]) == (commit, "2024", "1e3")
    assert row["seed"] == 0 and row["primary_value"] == 1.5  # numeric columns stay numbers


@pytest.mark.parametrize("content, pattern", [
    (b"\xff\xfe\x00garbage\x81\x82", r"records file .*01_pruning\.csv is not text"),
    (b"", r"records file .*01_pruning\.csv is not a CSV table"),
    (b"a,b\n1,2,3,4\n5\n", r"records file .*01_pruning\.csv (is not a CSV table|lacks column)"),
    (b"benchmark,technique\ntoy,teacher\n", r"01_pruning\.csv lacks column\(s\) notebook, family, seed"),
])
def test_garbage_and_missing_columns_are_refused_with_the_path(tmp_path, content, pattern):
    store = _store(tmp_path)
    store.path("01_pruning").write_bytes(content)
    with pytest.raises(GanSurveyError, match=pattern):
        store.read("01_pruning")
    with pytest.raises(GanSurveyError, match=pattern):
        store.load_all()


@pytest.mark.parametrize("column, value, pattern", [
    ("seed", "zero", r"seed must be an integer, got 'zero' \(row 2\)"),
    ("seed", "1.5", r"seed must be an integer"),
    ("primary_value", "good", r"primary_value must be a number or empty, got 'good'"),
])
def test_wrong_types_are_refused(tmp_path, column, value, pattern):
    store = _store(tmp_path)
    path = store.path("01_pruning")
    frame = store.read("01_pruning").astype(object)
    frame[column] = value
    frame.to_csv(path, index=False)
    with pytest.raises(GanSurveyError, match=pattern):
        store.read("01_pruning")


def test_missing_notebooks_names_the_measuring_notebooks_without_records(tmp_path):
    store = _store(tmp_path)
    assert store.missing_notebooks() == [n for n in MEASURING_NOTEBOOKS if n != "01_pruning"]
    assert ResultsStore("quick", root=tmp_path / "none").missing_notebooks() == list(MEASURING_NOTEBOOKS)
    assert set(REQUIRED_COLUMNS) <= set(store.read("01_pruning").columns)


def test_warn_missing_records_names_them(tmp_path):
    from gansurvey.records import MissingRecordsWarning, warn_missing_records

    _store(tmp_path)
    with pytest.warns(MissingRecordsWarning, match=r"no measured records of 00_background, 02_distillation"):
        assert "01_pruning" not in warn_missing_records("quick", root=tmp_path)
