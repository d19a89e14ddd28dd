"""The claims notebooks 00-06 check on their own measurements, computed again from one profile's stored records
(``results/<profile>/<notebook>.csv``), and the quick profile's verdicts set beside the full profile's: does the
quick profile predict the full one?

Each claim is computed by the function its notebook calls (:mod:`gansurvey.claims`), on the records that notebook
passes it, with the notebook's own parameter defaults (read from its ``parameters`` cell, as a regeneration runs
it): nothing here decides a verdict. A profile without a notebook's records reads ``no records`` for that
notebook's claims.

Example:
    >>> quick_vs_full()[["id", "quick", "full", "agree"]]  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gansurvey.checks import GanSurveyError, project_root
from gansurvey.claims.verdict import Check, Verdict
from gansurvey.records import MEASURING_NOTEBOOKS, ResultsStore

#: A side of the comparison whose profile holds no records of the claim's notebook.
NO_RECORDS = "no records"
#: ``agree`` when either side has no records or is not testable.
NOT_APPLICABLE = "n/a"
#: The columns of :func:`quick_vs_full`.
COLUMNS = ("id", "notebook", "claim", "quick", "full", "agree", "quick seeds", "full seeds")
#: A verdict that cannot be compared with the other profile's.
UNCOMPARABLE = (NO_RECORDS, str(Verdict.NOT_TESTABLE))
#: 05's paired arms (``experiments.encoding.trained_vs_post``): the techniques it documents, or a ``tuned`` setting.
_PAIRED = re.compile(r"^(post-training|trained) \d+-bit")
#: The relative gap allowed between a teacher record's energy and the sum of the parts rebuilt from its MACs and
#: traffic bytes (float rounding only: a larger gap means the energy was charged otherwise, e.g. not in fp32).
_ENERGY_RTOL = 1e-6


@dataclass(frozen=True)
class ClaimSettings:
    """The notebooks' parameters the claims depend on: their defaults, which a regeneration runs with (it injects
    only the profile, device, seed and where records go).

    Attributes:
        f1_mac_tolerance: 02's ``mac_tolerance``.
        lr_mac_tolerance: 03's ``mac_tolerance``.
        pq_granularity: the first of 04's ``granularities`` (the one 04 reads PQ at).
        et_ratio, et_benchmark: 05's ``target_ratio`` and the first of its ``benchmarks``.
        headline_targets: 06's ``targets``: benchmark -> (cost, reduction factor aimed at).
    """

    f1_mac_tolerance: float
    lr_mac_tolerance: float
    pq_granularity: str
    et_ratio: float
    et_benchmark: str
    headline_targets: dict[str, tuple[str, float]] = field(default_factory=dict)

    @classmethod
    def from_notebooks(cls, folder: Path | None = None) -> ClaimSettings:
        """The values the notebooks in ``folder`` (default: the project's ``notebooks/``) assign: read from their
        source, so a changed default follows here without a copy to keep in step."""
        folder = folder or project_root() / "notebooks"
        targets = notebook_literal(folder / "06_combinations.ipynb", "targets")
        if not isinstance(targets, dict) or not all(isinstance(v, tuple | list) and len(v) == 2
                                                    for v in targets.values()):
            raise GanSurveyError(f"06_combinations' targets must be a dict of benchmark: (cost, factor), got "
                                 f"{targets!r}")
        return cls(
            f1_mac_tolerance=float(notebook_literal(folder / "02_distillation.ipynb", "mac_tolerance")),
            lr_mac_tolerance=float(notebook_literal(folder / "03_low_rank.ipynb", "mac_tolerance")),
            pq_granularity=str(notebook_literal(folder / "04_precision.ipynb", "granularities")[0]),
            et_ratio=float(notebook_literal(folder / "05_encoding.ipynb", "target_ratio")),
            et_benchmark=str(notebook_literal(folder / "05_encoding.ipynb", "benchmarks")[0]),
            headline_targets={str(b): (str(c), float(x)) for b, (c, x) in targets.items()},
        )


def notebook_literal(path: Path, name: str) -> Any:
    """The literal value a code cell of the notebook at ``path`` assigns to ``name`` at top level (the parameters
    cell first, then the others in order); refused, naming the notebook, when no cell assigns it a literal."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GanSurveyError(f"cannot read the notebook {path.name} ({type(exc).__name__}: {exc}); the claims take "
                             f"its {name!r} from it") from exc
    code = [c for c in cells if c.get("cell_type") == "code"]
    code.sort(key=lambda c: "parameters" not in c.get("metadata", {}).get("tags", []))  # stable: the rest in order
    for cell in code:
        source = "".join(cell.get("source", []))
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a cell with IPython magics (%matplotlib) assigns nothing the claims read
            continue
        for node in tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
                node.target if isinstance(node, ast.AnnAssign) and node.value is not None else None
            if isinstance(target, ast.Name) and target.id == name:
                try:
                    return ast.literal_eval(node.value)
                except ValueError as exc:
                    raise GanSurveyError(f"{path.name} assigns {name} something other than a literal "
                                         f"({ast.unparse(node.value)}); the claims need its value") from exc
    raise GanSurveyError(f"no code cell of {path.name} assigns {name!r}; the claims computed from its records "
                         "take that value from it")


@dataclass(frozen=True)
class ClaimResult:
    """One measured claim computed on one profile's records."""

    id: str
    notebook: str
    claim: str
    verdict: str  # a Verdict's word, or NO_RECORDS
    seeds: str  # what the verdict rests on, in a few words


def _seeds_note(check: Check) -> str:
    if check.seeds:
        return f"{check.seeds} seed{'s' if check.seeds != 1 else ''} (fewest per compared arm)"
    return "nothing compared"


def _of(check: Check, notebook: str, id: str | None = None) -> ClaimResult:
    return ClaimResult(id or check.id, notebook, check.claim, str(check.verdict), _seeds_note(check))


def premise_from_records(records: pd.DataFrame) -> Check:
    """00's premise (F4 on our generators, :func:`gansurvey.claims.background.premise_memory_dominates`) from
    00's teacher records: the energy parts are rebuilt from each record's MACs and traffic bytes with the 45 nm
    table, as :func:`gansurvey.metrics.cost.cost_breakdown` charges a float32 teacher, and kept only where they
    add up to the record's ``energy_uj`` (a benchmark whose energy was charged otherwise is left out, in a note)."""
    from gansurvey.claims.background import premise_memory_dominates
    from gansurvey.metrics.energy import load_energy_table

    table = load_energy_table()
    columns = ["macs", "weight_traffic_bytes", "activation_traffic_bytes", "energy_uj"]
    teachers = records[records["technique"].astype(str) == "teacher"]
    means = teachers.groupby("benchmark", sort=False)[columns].agg(lambda s: pd.to_numeric(s, errors="coerce").mean())
    totals, notes = {}, []
    for bench, row in means.iterrows():
        parts = {"compute_uj": row["macs"] * table.mac_pj("fp32") * 1e-6,
                 "weight_dram_uj": row["weight_traffic_bytes"] * table.dram_pj_per_byte() * 1e-6,
                 "activation_uj": row["activation_traffic_bytes"] * table.sram_pj_per_byte() * 1e-6}
        total = sum(parts.values())
        if not abs(total - row["energy_uj"]) <= _ENERGY_RTOL * abs(row["energy_uj"]):
            notes.append(f"{bench} left out: its record's energy ({row['energy_uj']:.6g} µJ) is not the float32 sum "
                         f"of its MACs and traffic ({total:.6g} µJ)")
            continue
        totals[str(bench)] = parts
    check = premise_memory_dominates(totals) if totals else Check(
        "F4", _premise_claim(), Verdict.NOT_TESTABLE, "No teacher record with its energy parts.")
    check.notes += notes
    return check


def _premise_claim() -> str:
    from gansurvey.claims.background import F4_CLAIM

    return F4_CLAIM


def _settings(rows: pd.DataFrame) -> pd.Series:
    from gansurvey.records import settings_of

    return rows["settings"].map(settings_of)


def _premise(rows: pd.DataFrame, **_: Any) -> list[ClaimResult]:
    check = premise_from_records(rows)
    teachers = rows.loc[rows["technique"].astype(str) == "teacher", "benchmark"].nunique()
    return [ClaimResult(check.id, "00_background", check.claim, str(check.verdict),
                        f"cost model of {teachers} teacher{'s' if teachers != 1 else ''}, no seed rule")]


def _lottery(rows: pd.DataFrame, profile: str, **_: Any) -> list[ClaimResult]:
    from gansurvey.claims.pruning import winning_ticket
    from gansurvey.experiments.pruning import LOTTERY_ARMS

    # 01 passes its lottery records alone (the three arms on the toy), not its sweeps
    lottery = rows[rows["technique"].astype(str).isin(LOTTERY_ARMS)]
    return [_of(winning_ticket(lottery, profile=profile), "01_pruning")]


def _distillation(rows: pd.DataFrame, profile: str, settings: ClaimSettings, everything: pd.DataFrame,
                  **_: Any) -> list[ClaimResult]:
    from gansurvey.claims.distillation import distillation_vs_pruning

    # F1 filters 02's records itself (and counts the arms of other notebooks it leaves out), as 07 calls it
    return [_of(distillation_vs_pruning(everything, mac_tolerance=settings.f1_mac_tolerance, profile=profile),
                "02_distillation")]


def _lowrank(rows: pd.DataFrame, profile: str, settings: ClaimSettings, **_: Any) -> list[ClaimResult]:
    from gansurvey.claims.lowrank import lowrank_vs_pruning

    # 03 passes its matched comparison alone: another arm's control would change the rule's noise reference
    parsed = _settings(rows)
    # astype(bool): an empty object mask would select columns, not rows
    matched = rows[parsed.map(lambda s: s.get("arm") in ("low-rank", "pruning") and s.get("match") is not None)
                   .astype(bool)]
    return [_of(lowrank_vs_pruning(matched, mac_tolerance=settings.lr_mac_tolerance, profile=profile),
                "03_low_rank")]


def _precision(rows: pd.DataFrame, profile: str, settings: ClaimSettings, **_: Any) -> list[ClaimResult]:
    from gansurvey.claims.precision import mixed_vs_uniform, precision_collapse

    return [_of(precision_collapse(rows, granularity=settings.pq_granularity, profile=profile), "04_precision"),
            _of(mixed_vs_uniform(rows, profile=profile), "04_precision")]


def _encoding(rows: pd.DataFrame, profile: str, settings: ClaimSettings, **_: Any) -> list[ClaimResult]:
    from gansurvey.claims.encoding import bits_needed, encoding_target, trained_beats_post_sharing

    # astype(bool): on no records both masks are empty object series
    paired = rows[rows["technique"].astype(str).str.match(_PAIRED).astype(bool)
                  | _settings(rows).map(lambda s: "tuned" in s).astype(bool)]
    return [_of(bits_needed(rows, profile=profile), "05_encoding"),
            _of(trained_beats_post_sharing(paired, profile=profile, control=rows), "05_encoding"),
            _of(encoding_target(rows, ratio=settings.et_ratio, benchmark=settings.et_benchmark, profile=profile),
                "05_encoding")]


def headline_claim(benchmark: str, cost: str, target_x: float) -> str:
    """A headline target in words (its numbers are 06's targets, not measurements)."""
    return (f"{benchmark}: {cost} cut {target_x:g}x or more, as good as the teacher fine-tuned for the same steps "
            "and better than the dense-from-scratch model of its size.")


def _combinations(rows: pd.DataFrame, profile: str, settings: ClaimSettings, **_: Any) -> list[ClaimResult]:
    from gansurvey.claims.combinations import bytes_pay_where_memory_bound, combinations_beat_single, headline_target
    from gansurvey.experiments import combinations as ex

    # 06 writes its arms and its order experiment together; F3 and F4 read the arms, the headlines both
    orders = rows["technique"].astype(str).isin(list(ex.order_arms()))
    frame = rows[~orders]
    # 06 joins 01-05's trained records written by its own code (its commit, or one that agrees with it on the
    # package, data and the notebook that wrote them); 06's records of several commits, or of a checkout with
    # changes, join none
    commits = frame["commit"].dropna().astype(str).unique() if "commit" in frame.columns else []
    stored = pd.DataFrame()
    if len(commits) == 1:
        stored, _ = ex.stored_family_records(profile, list(dict.fromkeys(frame["benchmark"])), commit=commits[0])
    everything = pd.concat([frame, stored], ignore_index=True) if len(stored) else frame.reset_index(drop=True)
    all_records = pd.concat([everything, rows[orders]], ignore_index=True)
    out = [_of(combinations_beat_single(everything), "06_combinations"),
           _of(bytes_pay_where_memory_bound(everything), "06_combinations")]
    for bench, (cost, target_x) in settings.headline_targets.items():
        head = headline_target(all_records, bench, cost, target_x)
        out.append(ClaimResult(f"headline {bench}", "06_combinations", headline_claim(bench, cost, target_x),
                               str(Verdict.of(head["verdict"])), _headline_seeds(all_records, bench, head)))
    return out


def _headline_seeds(records: pd.DataFrame, bench: str, head: dict[str, Any]) -> str:
    """The seeds of the cut a headline reports, or of the control it was held against when no cut qualified."""
    from gansurvey.claims.common import control_rows

    rows = records[records["benchmark"] == bench]
    if head["best_technique"] is not None:
        n = rows.loc[rows["technique"].astype(str) == str(head["best_technique"]), "seed"].nunique()
        return f"best cut on {n} seed{'s' if n != 1 else ''}"
    n = control_rows(rows)["seed"].nunique() if len(rows) else 0
    return f"no cut qualified; control on {n} seed{'s' if n != 1 else ''}" if n else "nothing compared"


#: What computes each measuring notebook's claims from its records (on no records: their ids and words).
_CLAIMS: dict[str, Callable[..., list[ClaimResult]]] = {
    "00_background": _premise,
    "01_pruning": _lottery,
    "02_distillation": _distillation,
    "03_low_rank": _lowrank,
    "04_precision": _precision,
    "05_encoding": _encoding,
    "06_combinations": _combinations,
}


def measured_claims(profile: str, settings: ClaimSettings | None = None) -> list[ClaimResult]:
    """Every claim notebooks 00-06 check on their measurements, computed from ``profile``'s stored records (the
    regeneration's, ``results/<profile>/``; hand runs under ``adhoc/`` are not read), in notebook order.

    A notebook without records gives its claims with the verdict :data:`NO_RECORDS`; the claims' words are then
    those the claim functions give on no records.

    Args:
        profile: ``quick`` or ``full``.
        settings: the notebooks' parameters; default :meth:`ClaimSettings.from_notebooks`.
    """
    settings = settings or ClaimSettings.from_notebooks()
    everything = ResultsStore(profile).load_all()  # refuses a damaged records file, naming it
    out: list[ClaimResult] = []
    for notebook in MEASURING_NOTEBOOKS:
        rows = everything[everything["notebook"].astype(str) == notebook].reset_index(drop=True)
        # the claims' own words on no records name them; the verdict then says why there is none
        results = _CLAIMS[notebook](rows, profile=profile, settings=settings,
                          everything=everything if len(rows) else rows)
        if rows.empty:
            results = [ClaimResult(r.id, r.notebook, r.claim, NO_RECORDS, "") for r in results]
        out += results
    return out


def _agree(quick: str, full: str) -> bool | str:
    return NOT_APPLICABLE if quick in UNCOMPARABLE or full in UNCOMPARABLE else quick == full


def quick_vs_full(settings: ClaimSettings | None = None) -> pd.DataFrame:
    """Per measured claim, the quick profile's verdict beside the full profile's, computed from ``results/quick/``
    and ``results/full/`` by the same functions: does the quick profile predict the full one?

    ``agree`` is whether the two verdicts are the same word (an *indicative* quick verdict does not agree with a
    decided full one), or :data:`NOT_APPLICABLE` when either side has no records or is not testable. The seeds
    columns say what each side's verdict rests on.

    Returns:
        A DataFrame with :data:`COLUMNS`, one row per claim, in notebook order.
    """
    settings = settings or ClaimSettings.from_notebooks()
    quick, full = measured_claims("quick", settings), measured_claims("full", settings)
    if [q.id for q in quick] != [f.id for f in full]:  # both lists come from the same specs; say so if not
        raise GanSurveyError(f"the quick and full claims differ: {[q.id for q in quick]} vs {[f.id for f in full]}")
    rows = []
    for q, f in zip(quick, full, strict=True):
        rows.append({"id": q.id, "notebook": q.notebook, "claim": q.claim if q.verdict != NO_RECORDS else f.claim,
                     "quick": q.verdict, "full": f.verdict, "agree": _agree(q.verdict, f.verdict),
                     "quick seeds": q.seeds or NO_RECORDS, "full seeds": f.seeds or NO_RECORDS})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def full_records_line(root: Path | None = None) -> str:
    """One line for a quick run of 07: the comparison needs the full records, which may be missing or stale."""
    store = ResultsStore("full", root)
    missing = store.missing_notebooks()
    have = len(MEASURING_NOTEBOOKS) - len(missing)
    return (f"Quick vs full is shown when this notebook runs with profile='full'. results/full/ holds the records of "
            f"{have} of the {len(MEASURING_NOTEBOOKS)} measuring notebooks"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + "; they may also be stale: `python -m gansurvey regenerate --status --profile full` says which.")
