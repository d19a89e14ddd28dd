"""The literature table as data: validation, derived columns, findings that follow the data, and outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from gansurvey.checks import GanSurveyError
from gansurvey.claims.verdict import Verdict
from gansurvey.records import Measurement, ResultsStore
from gansurvey.survey import findings as F
from gansurvey.survey import literature, output, tables
from gansurvey.survey.literature import COLUMNS, LiteratureDataError, load_literature

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "literature.csv"


def _row(**fields: str) -> dict[str, str]:
    """A valid compressed row; keyword arguments replace cells."""
    row = {c: "" for c in COLUMNS}
    row.update(
        section="9.9",
        benchmark="toy",
        role="compressed",
        work="Work A",
        method="A",
        families="pruning",
        year="2020",
        venue="Nowhere",
        period="pre-survey",
        generator="G",
        dataset="D",
        macs="10e9",
        metric="FID",
        higher_is_better="false",
        value="60",
        baseline_value="50",
        protocol="P",
        mark="V",
        source="made up for a test",
    )
    row.update(fields)
    return row


def _baseline(**fields: str) -> dict[str, str]:
    base = dict(
        role="baseline",
        work="Original",
        method="Original",
        families="",
        macs="100e9",
        params="10e6",
        value="50",
        baseline_value="",
    )
    return _row(**{**base, **fields})


def _write(tmp_path: Path, rows: list[dict[str, str]], name: str = "lit.csv") -> Path:
    path = tmp_path / name
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _load(tmp_path: Path, rows: list[dict[str, str]]) -> pd.DataFrame:
    return load_literature(_write(tmp_path, rows))


# ---- the committed data


def test_committed_table_loads_and_covers_every_reference_section() -> None:
    lit = load_literature(DATA)
    assert {"3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9", "3.11"} <= set(lit["section"])
    assert (lit["source"] != "").all()
    assert set(lit["mark"]) <= set(literature.MARKS)
    assert "UNVERIFIED" in set(lit["mark"])  # unverified rows are kept and marked, not dropped
    assert (lit["role"] == "baseline").sum() >= 10


def test_technique_matrix_shows_the_empty_encoding_family() -> None:
    matrix = tables.technique_matrix(load_literature(DATA))
    assert matrix["encoding"].sum() == 0
    assert matrix.loc["GAN Slimming (Wang et al.)", "lossy families"] == 3
    assert matrix.loc["ThiNet (Luo et al.)", ["pruning", "distillation"]].tolist() == [1, 0]


# ---- validation: each malformed row names file, line and column

BAD_ROWS = [
    ({"source": ""}, "source", "empty"),
    ({"families": "pruning;hashing"}, "families", "unknown family 'hashing'"),
    ({"value": "sixty"}, "value", "not a number"),
    ({"mark": "maybe"}, "mark", "'maybe' is not allowed"),
    ({"protocol": ""}, "protocol", "has a value"),
    ({"value": "", "baseline_value": ""}, "metric", "no value"),
    ({"period": "post-survey", "year": "2019"}, "period", "cannot come after"),
    ({"approx": "params"}, "approx", "cell is empty"),
    ({"higher_is_better": "yes"}, "higher_is_better", "true or false"),
    ({"families": ""}, "families", "at least one family"),
    ({"macs_x_reported": "3"}, "macs_x_reported", "disagrees"),
]


@pytest.mark.parametrize(("change", "column", "what"), BAD_ROWS)
def test_malformed_row_names_file_line_and_column(
    tmp_path: Path, change: dict, column: str, what: str
) -> None:
    path = _write(tmp_path, [_baseline(), _row(method="ok"), _row(**change)])
    with pytest.raises(LiteratureDataError) as err:
        load_literature(path)
    message = str(err.value)
    assert str(path) in message and "line 4" in message and f"column {column!r}" in message
    assert what in message


def test_baseline_without_metric_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, [_baseline(metric="", value="", higher_is_better="", protocol="", claim="x")])
    with pytest.raises(LiteratureDataError, match=r"line 2, column 'metric': .*baseline row must report"):
        load_literature(path)


def test_duplicate_row_names_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, [_baseline(), _row(), _row(value="70")])
    with pytest.raises(LiteratureDataError, match=r"lit.csv, line 4, column 'method': duplicates line 3"):
        load_literature(path)


def test_one_metric_has_one_direction(tmp_path: Path) -> None:
    path = _write(tmp_path, [_baseline(), _row(method="B", higher_is_better="true")])
    with pytest.raises(
        LiteratureDataError, match=r"line 3, column 'higher_is_better'.*lower-is-better on line 2"
    ):
        load_literature(path)


def test_unknown_header_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(",".join([*COLUMNS, "colour"]) + "\n")
    with pytest.raises(LiteratureDataError, match=r"bad.csv, line 1: unknown column\(s\) 'colour'"):
        load_literature(path)


# ---- derived columns on known rows


def _one(lit: pd.DataFrame, benchmark: str, method: str, metric: str | None = None) -> pd.Series:
    rows = lit[(lit["benchmark"] == benchmark) & (lit["method"] == method)]
    if metric:
        rows = rows[rows["metric"] == metric]
    assert len(rows) == 1
    return rows.iloc[0]


def test_derived_columns_on_known_rows() -> None:
    lit = load_literature(DATA)
    gc = _one(lit, "cyclegan-horse2zebra", "GAN Compression, paper model under the new protocol")
    assert gc["macs_x"] == pytest.approx(56.8 / 2.67)
    assert gc["params_x"] == pytest.approx(11.4 / 0.342)
    assert gc["quality_change"] == pytest.approx(65.75 - 65.33)  # FID fell: positive = better
    cat = _one(lit, "pix2pix-cityscapes", "CAT")
    assert cat["quality_change"] == pytest.approx(42.65 - 42.06)  # mIoU rose: positive too
    thinet = _one(
        lit, "cyclegan-cityscapes-fcn", "ThiNet (classifier pruning) on the generator", "mean pixel accuracy"
    )
    assert thinet["baseline_value_used"] == 0.538  # taken from the benchmark's baseline row
    assert thinet["quality_change_rel"] == pytest.approx((0.218 - 0.538) / 0.538)
    assert thinet["memory_x"] == pytest.approx(43.42 / 10.88)
    dmad = _one(lit, "pix2pix-edges2shoes", "DMAD (U-Net)")  # own U-Net baseline fields, not the ResNet row
    assert dmad["macs_x"] == pytest.approx(18.6 / 2.99)
    assert pd.isna(dmad["quality_change"])
    dcd = _one(lit, "cyclegan-horse2zebra", "DCD")  # no MACs: the reported ratio fills in
    assert dcd["macs_x"] == 40 and pd.isna(dcd["macs_x_computed"])


def test_render_formats_and_rejects_bad_names() -> None:
    lit = load_literature(DATA)
    md = tables.render(lit, "cyclegan-horse2zebra", "markdown")
    assert "| protocol | mark | source |" in md and "~83.00" in md and "UNVERIFIED" in md
    tex = tables.render(lit, "cyclegan-horse2zebra", "latex")
    assert r"\toprule" in tex and r"GAN\_CAT" in tex
    assert tables.render(lit, "pix2pix-map2aerial", "csv").count("\n") == 7
    with pytest.raises(GanSurveyError, match="unknown table format 'html'"):
        tables.render(lit, "cyclegan-horse2zebra", "html")
    with pytest.raises(GanSurveyError, match="unknown benchmark 'celeba'"):
        tables.render(lit, "celeba", "markdown")


# ---- findings follow the data


def _kd_vs_pruning(kd_fid: str) -> list[dict[str, str]]:
    return [
        _baseline(benchmark="cyclegan-horse2zebra"),
        _row(benchmark="cyclegan-horse2zebra", method="prune", work="P", macs="20e9", value="80"),
        _row(
            benchmark="cyclegan-horse2zebra",
            method="kd",
            work="K",
            families="distillation",
            macs="5e9",
            value=kd_fid,
        ),
    ]


def test_f1_and_f6_flip_when_kd_gets_worse(tmp_path: Path) -> None:
    good = _load(tmp_path, _kd_vs_pruning("60"))
    bad = load_literature(_write(tmp_path, _kd_vs_pruning("90"), "bad.csv"))
    assert F.check_f1(good).verdict == Verdict.SUPPORTED
    assert F.check_f1(bad).verdict == Verdict.CONTRADICTED
    assert F.check_f6(good).verdict == Verdict.SUPPORTED
    assert F.check_f6(bad).verdict == Verdict.CONTRADICTED
    assert F.check_f1(good).evidence.loc[0, "basis"] == "fallback: KD at over 2x lower MACs"
    assert F.check_f1(good, macs_factor=4.0).evidence.loc[0, "basis"] == "comparable MACs (within 4x)"


def test_f1_without_pruning_rows_is_not_testable(tmp_path: Path) -> None:
    lit = _load(tmp_path, _kd_vs_pruning("60")[::2])
    assert F.check_f1(lit).verdict == Verdict.NOT_TESTABLE


def test_f2_and_f5_flip_with_an_encoding_or_lossless_row(tmp_path: Path) -> None:
    base = [_baseline(), _row()]
    assert F.check_f2(_load(tmp_path, base)).verdict == Verdict.SUPPORTED
    enc = load_literature(_write(tmp_path, [*base, _row(method="E", work="E", families="encoding")], "e.csv"))
    assert F.check_f2(enc).verdict == Verdict.CONTRADICTED
    lit = _load(tmp_path, base)
    assert F.check_f5(lit).verdict == Verdict.SUPPORTED
    lossless = lit.assign(families="pruning;lossless-coding")
    assert F.check_f5(lossless).verdict == Verdict.CONTRADICTED


def test_f3_flips_when_combinations_become_common(tmp_path: Path) -> None:
    rows = [_baseline()] + [_row(method=f"m{i}", work=f"w{i}") for i in range(4)]
    rows[1]["families"] = "pruning;distillation"
    assert F.check_f3(_load(tmp_path, rows)).verdict == Verdict.SUPPORTED  # 1 of 4
    rows[2]["families"] = "precision;low-rank"
    lit = load_literature(_write(tmp_path, rows, "two.csv"))
    assert F.check_f3(lit).verdict == Verdict.CONTRADICTED  # 2 of 4 > 1/3
    assert F.check_f3(lit, max_share=0.5).verdict == Verdict.SUPPORTED


def test_f4_follows_the_energy_table() -> None:
    table = pd.DataFrame(
        {
            "operation": ["float_mult", "dram_access", "dram_access"],
            "bits": [32, 32, 8],
            "energy_pj": [3.7, 640.0, 1.0],
            "mark": ["V", "V", "V"],
        }
    )
    assert F.check_f4(table).verdict == Verdict.SUPPORTED
    assert F.check_f4(table.assign(energy_pj=[3.7, 200.0, 1.0])).verdict == Verdict.CONTRADICTED
    assert F.check_f4(table.assign(mark=["V", "UNVERIFIED", "V"])).verdict == Verdict.NOT_TESTABLE
    assert F.check_f4(None).verdict == Verdict.NOT_TESTABLE


def test_f7_flips_when_thinet_keeps_its_quality(tmp_path: Path) -> None:
    def rows(thinet: str) -> list[dict[str, str]]:
        common = dict(metric="pixel accuracy", higher_is_better="true", baseline_value="")
        return [
            _baseline(**common, value="0.5"),
            _row(**common, method="ThiNet on G", work="ThiNet (Luo et al.)", value=thinet),
        ]

    assert F.check_f7(_load(tmp_path, rows("0.2"))).verdict == Verdict.SUPPORTED
    assert F.check_f7(load_literature(_write(tmp_path, rows("0.45"), "b.csv"))).verdict == Verdict.CONTRADICTED


def test_f8_flips_when_protocols_agree(tmp_path: Path) -> None:
    rows = [
        _baseline(variant="orig"),
        _baseline(variant="orig", method="Original, other protocol", protocol="Q"),
    ]
    assert F.check_f8(_load(tmp_path, rows)).verdict == Verdict.CONTRADICTED  # same value under both protocols
    rows[1]["value"] = "54"
    assert F.check_f8(load_literature(_write(tmp_path, rows, "b.csv"))).verdict == Verdict.SUPPORTED


def test_findings_on_committed_data_have_verdicts_and_evidence() -> None:
    results = F.check_all(load_literature(DATA), literature.load_energy(ROOT / "data" / "energy_45nm.csv"))
    assert [f.id for f in results] == [f"F{i}" for i in range(1, 9)]
    for f in results:
        assert f.verdict in F.VERDICTS
        assert isinstance(f.evidence, pd.DataFrame) and f.summary


# ---- outputs


def test_write_tables_writes_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gansurvey.survey import write_tables

    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    records = [
        Measurement(
            notebook="01_pruning",
            benchmark="mnist-dcgan",
            technique="baseline",
            family="baseline",
            params=1000,
            macs=10_000,
            stored_bytes=4000,
            primary_metric="domain_fid",
            primary_value=5.0,
            higher_is_better=False,
        ),
        Measurement(
            notebook="01_pruning",
            benchmark="mnist-dcgan",
            technique="prune",
            family="pruning",
            settings={"ratio": 0.5},
            params=500,
            macs=4000,
            stored_bytes=2000,
            primary_metric="domain_fid",
            primary_value=7.5,
            higher_is_better=False,
        ),
    ]
    ResultsStore("quick").write("01_pruning", records)
    out = tmp_path / "tables"
    from gansurvey.records import MissingRecordsWarning

    with pytest.warns(MissingRecordsWarning, match=r"no measured records of 00_background, 02_distillation"):
        paths = write_tables("quick", out)  # #21: tables made without some notebooks' records say which
    names = {p.name for p in paths}
    lit = load_literature(DATA)
    for bench in tables.benchmarks(lit):
        assert {f"{bench}.md", f"{bench}.tex", f"{bench}.csv"} <= names
    assert {
        "technique_matrix.md",
        "technique_matrix.csv",
        "technique_matrix.png",
        "findings.md",
        "findings.csv",
        "tradeoff_cyclegan-horse2zebra.png",
        "reproduction_mnist-dcgan.md",
    } <= names
    assert all(p.parent == out and p.exists() for p in paths)
    assert (out / "technique_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    repro = pd.read_csv(out / "reproduction_mnist-dcgan.csv").set_index("technique")
    assert repro.loc["prune", "quality_change"] == pytest.approx(-2.5)  # domain FID 5.0 -> 7.5: -2.5
    assert repro.loc["prune", "n"] == 1 and '"ratio": 0.5' in repro.loc["prune", "settings"]
    shown = (out / "reproduction_mnist-dcgan.md").read_text()
    assert "mean ± sd" in shown and "-2.5" in shown and "-50.0" in shown
    assert "rebuilt from their primary sources" in (out / "all_tables.md").read_text()
    checks = (out / "reproduction_checks.md").read_text()
    assert "equal total budget" in checks and "not testable" in checks and "indicative only" not in checks
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(GanSurveyError, match="unknown profile 'slow'"):
        write_tables("slow", out)


def test_write_tables_refuses_an_unwritable_folder_or_damaged_records_before_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # #21
    from gansurvey.survey import write_tables

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GANSURVEY_RESULTS", str(blocker / "results"))
    with pytest.raises(GanSurveyError, match=r"the tables folder .*/results/quick/tables cannot be written "
                                             r"\(Not a directory\); set GANSURVEY_RESULTS") as refused:
        write_tables("quick")
    assert str(tmp_path) not in str(refused.value)
    monkeypatch.setenv("GANSURVEY_RESULTS", str(tmp_path / "results"))
    (tmp_path / "results" / "quick").mkdir(parents=True)
    (tmp_path / "results" / "quick" / "01_pruning.csv").write_bytes(b"\xff\xfe garbage")
    out = tmp_path / "tables"
    with pytest.raises(GanSurveyError, match=r"records file .*01_pruning.csv is not text"):
        write_tables("quick", out)
    assert not out.exists()  # refused before the literature's tables were written beside no records


def test_findings_say_where_the_claim_comes_from_and_show_every_reading() -> None:
    results = {f.id: f for f in F.check_all(load_literature(DATA), literature.load_energy())}
    assert all(f.source == "literature" for f in results.values())
    assert {f.basis for i, f in results.items() if i in ("F1", "F2", "F3", "F4", "F5")} == {"survey abstract"}
    assert {f.basis for i, f in results.items() if i in ("F6", "F7", "F8")} == {"this project's reading"}
    # CAT's own table and OMGD's plot of CAT disagree on horse2zebra: F1 and F6 show both readings.
    for fid in ("F1", "F6"):
        assert "CAT also reads ~60 (OMGD plot (read off), V-fig)" in results[fid].summary
    text = output.findings_markdown(list(results.values()))
    assert "this project's reading" in text and "survey abstract" in text


def test_one_energy_loader_and_one_family_spelling() -> None:
    from gansurvey.metrics.energy import load_energy_table

    assert literature.load_energy().equals(load_energy_table().to_frame())
    assert literature.family_label("distillation;pruning") == "pruning+distillation"
    assert literature.family_label("pruning+distillation") == "pruning+distillation"
    shown = tables.display_frame(load_literature(DATA), "cyclegan-horse2zebra")
    assert "pruning+distillation" in set(shown["family"]) and "MACs ×" in shown.columns


def test_one_model_measured_twice_is_one_arm_of_the_reproduction_table():
    from gansurvey.records import Measurement, records_frame
    from gansurvey.survey.tables import reproduction_table

    def rec(technique, family, value, settings):
        return Measurement(notebook="03_low_rank", benchmark="mnist-dcgan", technique=technique, family=family,
                           settings=settings, macs=100, primary_metric="domain_fid", primary_value=value,
                           higher_is_better=False)

    records = records_frame([
        rec("teacher", "baseline", 10.0, {}),
        rec("tucker2 r=0.25", "low-rank", 20.0, {"method": "tucker2", "rank": 0.25}),
        # the same sweep point reused as a matched pair's low-rank arm: only bookkeeping settings differ
        rec("tucker2 r=0.25", "low-rank", 20.0, {"method": "tucker2", "rank": 0.25, "arm": "low-rank"}),
        rec("tucker2 r=0.5", "low-rank", 15.0, {"method": "tucker2", "rank": 0.5}),
    ])
    arms = reproduction_table(records, "mnist-dcgan")["arms"]
    assert arms["technique"].tolist().count("tucker2 r=0.25") == 1 and "tucker2 r=0.5" in set(arms["technique"])
