"""The measured claims recomputed from stored records, and the quick profile's verdicts beside the full one's
(gansurvey.survey.measured), on synthetic records in a private results folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gansurvey.checks import GanSurveyError
from gansurvey.claims.pruning import winning_ticket
from gansurvey.metrics.energy import load_energy_table
from gansurvey.records import MEASURING_NOTEBOOKS, Measurement, ResultsStore
from gansurvey.survey import measured
from gansurvey.survey.measured import NO_RECORDS, NOT_APPLICABLE, ClaimSettings, notebook_literal

#: Explicit parameters, so these tests do not follow the notebooks' defaults.
SETTINGS = ClaimSettings(f1_mac_tolerance=0.1, lr_mac_tolerance=0.1, pq_granularity="per-channel", et_ratio=40.0,
                         et_benchmark="mnist-dcgan", headline_targets={"mnist-dcgan": ("stored_bytes", 60.0)})


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def _lottery(profile: str, ticket: float, control: float, dense: float, seeds: int) -> list[Measurement]:
    """01's three lottery arms on the toy; seed s shifts every arm by 0.1 s (a spread of 0.1 per arm)."""
    return [Measurement("01_pruning", "gaussians-mlp", technique, "baseline" if technique == "dense" else "pruning",
                        profile=profile, seed=s, macs=10, primary_metric="domain_fid", primary_value=value + 0.1 * s,
                        higher_is_better=False)
            for technique, value in (("lottery ticket", ticket), ("random re-init", control), ("dense", dense))
            for s in range(seeds)]


def _row(table: pd.DataFrame, id: str) -> pd.Series:
    rows = table[table["id"] == id]
    assert len(rows) == 1, f"{id} appears {len(rows)} times in {table['id'].tolist()}"
    return rows.iloc[0]


def test_quick_and_full_verdicts_side_by_side_as_the_claim_function_gives_them(results):
    ResultsStore("quick").write("01_pruning", _lottery("quick", 0.5, 2.0, 1.0, seeds=1))
    ResultsStore("full").write("01_pruning", _lottery("full", 0.5, 2.0, 1.0, seeds=3))
    table = measured.quick_vs_full(SETTINGS)
    assert list(table.columns) == list(measured.COLUMNS)
    lt = _row(table, "LT")
    # the same function 01 calls, on the same records: the table only sets its verdicts side by side
    for profile in ("quick", "full"):
        assert lt[profile] == str(winning_ticket(ResultsStore(profile).read("01_pruning"), profile=profile).verdict)
    assert (lt["quick"], lt["full"]) == ("indicative", "supported")  # one seed cannot decide, three can
    assert lt["agree"] is False
    assert lt["quick seeds"].startswith("1 seed ") and lt["full seeds"].startswith("3 seeds ")
    assert lt["notebook"] == "01_pruning" and "lottery" in lt["claim"]


def test_agree_when_both_profiles_give_the_same_word(results):
    ResultsStore("quick").write("01_pruning", _lottery("quick", 3.0, 2.0, 1.0, seeds=3))
    ResultsStore("full").write("01_pruning", _lottery("full", 3.0, 2.0, 1.0, seeds=3))
    lt = _row(measured.quick_vs_full(SETTINGS), "LT")
    assert lt["quick"] == lt["full"] == "contradicted" and lt["agree"] is True


def test_not_testable_on_one_side_gives_no_agreement_either_way(results):
    ResultsStore("quick").write("01_pruning", _lottery("quick", 0.5, 2.0, 1.0, seeds=3))
    only_ticket = [r for r in _lottery("full", 0.5, 2.0, 1.0, seeds=3) if r.technique == "lottery ticket"]
    ResultsStore("full").write("01_pruning", only_ticket)
    lt = _row(measured.quick_vs_full(SETTINGS), "LT")
    assert lt["full"] == "not testable" and lt["agree"] == NOT_APPLICABLE
    assert lt["full seeds"] == "nothing compared"


def test_a_profile_without_records_reads_no_records_never_a_crash(results):
    ResultsStore("quick").write("01_pruning", _lottery("quick", 0.5, 2.0, 1.0, seeds=1))
    assert not (results / "full").exists()
    table = measured.quick_vs_full(SETTINGS)
    assert (table["full"] == NO_RECORDS).all() and (table["full seeds"] == NO_RECORDS).all()
    assert (table["agree"] == NOT_APPLICABLE).all()
    # every measuring notebook's claims are listed, with their words, even with no records on either side
    assert set(table["notebook"]) == set(MEASURING_NOTEBOOKS)
    assert {"F4", "LT", "F1", "LR", "PQ", "MP", "EB", "ES", "ET", "F3", "F4 (measured)",
            "headline mnist-dcgan"} == set(table["id"])
    assert table["claim"].str.len().gt(10).all()
    others = table[table["notebook"] != "01_pruning"]
    assert (others["quick"] == NO_RECORDS).all()


def test_no_records_at_all_on_either_side(results):
    table = measured.quick_vs_full(SETTINGS)
    assert (table[["quick", "full"]] == NO_RECORDS).all().all() and (table["agree"] == NOT_APPLICABLE).all()


def test_a_damaged_records_file_is_refused_by_name(results):
    (results / "full").mkdir(parents=True)
    (results / "full" / "01_pruning.csv").write_text("notebook,benchmark\n01_pruning,toy\n")
    with pytest.raises(GanSurveyError, match="01_pruning.csv lacks column"):
        measured.quick_vs_full(SETTINGS)


def _teacher(profile: str, bench: str, macs: int, weights: int, activations: int,
             energy: float | None = None) -> Measurement:
    table = load_energy_table()
    parts = (macs * table.mac_pj("fp32") + weights * table.dram_pj_per_byte()
             + activations * table.sram_pj_per_byte()) * 1e-6
    return Measurement("00_background", bench, "teacher", "baseline", profile=profile, macs=macs,
                       weight_traffic_bytes=weights, activation_traffic_bytes=activations,
                       energy_uj=parts if energy is None else energy, primary_metric="domain_fid",
                       primary_value=1.0, higher_is_better=False)


def test_premise_is_rebuilt_from_the_teachers_energy_parts(results):
    from gansurvey.claims.background import premise_memory_dominates

    ResultsStore("quick").write("00_background", [_teacher("quick", "memory-bound", 1_000, 10**6, 10**4)])
    ResultsStore("full").write("00_background", [_teacher("full", "compute-bound", 10**9, 10**3, 10**3)])
    table = measured.quick_vs_full(SETTINGS)
    premise = _row(table, "F4")
    table_45nm = load_energy_table()
    expected = {profile: premise_memory_dominates({"m": dict(
        compute_uj=macs * table_45nm.mac_pj("fp32") * 1e-6,
        weight_dram_uj=weights * table_45nm.dram_pj_per_byte() * 1e-6,
        activation_uj=acts * table_45nm.sram_pj_per_byte() * 1e-6)}).verdict
        for profile, macs, weights, acts in (("quick", 1_000, 10**6, 10**4), ("full", 10**9, 10**3, 10**3))}
    assert premise["quick"] == str(expected["quick"]) == "supported"
    assert premise["full"] == str(expected["full"]) == "contradicted"
    assert premise["agree"] is False and premise["quick seeds"] == "cost model of 1 teacher, no seed rule"


def test_premise_leaves_out_a_record_whose_energy_is_not_its_float32_parts():
    frame = pd.DataFrame([_teacher("quick", "odd", 1_000, 10**6, 10**4, energy=1.0).to_row()])
    check = measured.premise_from_records(frame)
    assert str(check.verdict) == "not testable"
    assert any("odd left out" in note for note in check.notes)


def test_full_records_line_names_the_missing_notebooks(results):
    ResultsStore("full").write("01_pruning", _lottery("full", 0.5, 2.0, 1.0, seeds=1))
    line = measured.full_records_line()
    assert f"1 of the {len(MEASURING_NOTEBOOKS)} measuring notebooks" in line
    assert "00_background" in line and "01_pruning" not in line.split("missing:")[1]
    assert "regenerate --status --profile full" in line and "\n" not in line


def _notebook(path: Path, *cells: tuple[str, str, list[str]]) -> Path:
    path.write_text(json.dumps({"cells": [{"cell_type": kind, "metadata": {"tags": tags}, "source": source}
                                          for kind, source, tags in cells]}))
    return path


def test_notebook_literal_reads_the_parameters_cell_first_and_skips_magics(tmp_path):
    path = _notebook(tmp_path / "n.ipynb",
                     ("code", "%matplotlib inline\nx = 1", []),
                     ("code", "x: float = 0.5  # the parameter\nnames: list[str] = ['a', 'b']", ["parameters"]),
                     ("markdown", "targets = {'no': 1}", []),
                     ("code", "targets = {'b': ('macs', 20.0)}\ny = len(names)", []))
    assert notebook_literal(path, "x") == 0.5
    assert notebook_literal(path, "names") == ["a", "b"]
    assert notebook_literal(path, "targets") == {"b": ("macs", 20.0)}
    with pytest.raises(GanSurveyError, match="something other than a literal"):
        notebook_literal(path, "y")
    with pytest.raises(GanSurveyError, match="no code cell of n.ipynb assigns 'z'"):
        notebook_literal(path, "z")
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(GanSurveyError, match="cannot read the notebook bad.ipynb"):
        notebook_literal(tmp_path / "bad.ipynb", "x")


def test_claim_settings_come_from_the_project_notebooks():
    from gansurvey.runner import notebooks_dir

    settings = ClaimSettings.from_notebooks()
    combinations = notebooks_dir() / "06_combinations.ipynb"
    assert set(settings.headline_targets) <= set(notebook_literal(combinations, "benchmarks"))
    assert settings.headline_targets and all(cost in ("stored_bytes", "macs", "latency_ms", "energy_uj") and x >= 1
                                             for cost, x in settings.headline_targets.values())
    assert settings.et_benchmark in notebook_literal(notebooks_dir() / "05_encoding.ipynb", "benchmarks")
    assert 0 < settings.f1_mac_tolerance < 1 and 0 < settings.lr_mac_tolerance < 1
