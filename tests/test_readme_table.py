"""The committed README's table of notebooks is what the committed runs give: no typed-in time can drift from the
executed notebooks (quick) and results/full/manifest.json (full)."""

from __future__ import annotations

from gansurvey import readme_table as rt
from gansurvey.checks import project_root
from gansurvey.runner import STATES, available_notebooks


def test_the_committed_readme_table_is_the_rendering_of_the_committed_runs(monkeypatch):
    monkeypatch.delenv("GANSURVEY_RESULTS", raising=False)  # the committed results/, not a private folder
    monkeypatch.delenv("GANSURVEY_ROOT", raising=False)
    readme = project_root() / "README.md"
    block = rt.readme_block(readme.read_text(encoding="utf-8"))
    # The full records' state follows every edit to a file a notebook depends on, so it describes the checkout the
    # table was rendered in (`python -m gansurvey readme-table --check` compares it too); here it is taken from the
    # README and only checked to be a state, so an unrelated code change does not fail this test.
    states = rt.block_states(block)
    assert set(states) == set(available_notebooks()), "a notebook is missing from the README's table"
    assert set(states.values()) <= set(STATES)
    assert block == rt.expected_table(states=states, readme=readme), \
        "README.md's notebook table is not what the runs give: run `python -m gansurvey readme-table`"
