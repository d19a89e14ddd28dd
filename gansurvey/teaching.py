"""Working copies of the notebooks, and their exercise edition.

The committed ``notebooks/`` are what ``make regenerate`` executes and the web shows; a student who opens them in
JupyterLab and autosaves changes them. :func:`copy_notebooks` writes a working copy elsewhere (outputs kept, so the
copy reads as the committed one), and with ``exercises=True`` the exercise edition: every cell tagged ``solution``
removed and every output cleared, so the answers come from the student's own run (in the manner of fastbook's
``clean/`` folder). The glossary is copied beside them and the notebooks' links to it follow.

Every family notebook ends with exercises (markdown cells tagged ``exercise``), each followed by its solution
(a markdown cell tagged ``solution``, folded in JupyterLab).

Command line::

    python -m gansurvey.teaching DEST               # a working copy of every notebook
    python -m gansurvey.teaching DEST --exercises   # the exercise edition
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from gansurvey.checks import GanSurveyError
from gansurvey.config import display_path, project_root

EXERCISE_TAG = "exercise"
SOLUTION_TAG = "solution"
#: How the notebooks link the glossary (from ``notebooks/``), and how a copy beside it links it.
GLOSSARY_LINK = "../docs/glossary.md"
COPIED_GLOSSARY = "glossary.md"


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def exercise_edition(nb):
    """``nb`` (an nbformat notebook, changed in place and returned) without its solution cells, outputs and
    execution counts."""
    nb.cells = [cell for cell in nb.cells if SOLUTION_TAG not in _tags(cell)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("papermill", None)  # the record of a run this edition no longer shows
    return nb


def copy_notebooks(dest: str | Path, exercises: bool = False, names: list[str] | None = None,
                   force: bool = False) -> list[Path]:
    """Write the notebooks (all, or ``names``) and the glossary to ``dest``; returns the notebooks written.

    ``exercises`` writes the exercise edition (:func:`exercise_edition`). A run of a copy keeps its records under
    ``results/<profile>/adhoc/`` like any run by hand.

    Raises:
        GanSurveyError: ``dest`` is the committed ``notebooks/`` folder, an unknown notebook name, or a file in
            ``dest`` that would be replaced without ``force``.
    """
    import nbformat

    source = project_root() / "notebooks"
    dest = Path(dest).expanduser()
    if dest.resolve() == source.resolve():
        raise GanSurveyError(f"{display_path(dest)} is the committed notebooks folder; name another folder for "
                             "the copy")
    available = sorted(p.stem for p in source.glob("*.ipynb"))
    for name in names or []:
        if name not in available:
            raise GanSurveyError(f"unknown notebook {name!r}; allowed: {', '.join(map(repr, available))}")
    chosen = [name for name in available if not names or name in names]
    targets = [dest / f"{name}.ipynb" for name in chosen]
    existing = [t for t in targets + [dest / COPIED_GLOSSARY] if t.exists()]
    if existing and not force:
        raise GanSurveyError(f"{display_path(existing[0])} exists (and {len(existing) - 1} more); pass --force to "
                             "replace them, or name an empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    glossary = project_root() / "docs" / "glossary.md"
    if glossary.exists():
        shutil.copyfile(glossary, dest / COPIED_GLOSSARY)
    for name, target in zip(chosen, targets, strict=True):
        nb = nbformat.read(source / f"{name}.ipynb", as_version=4)
        if exercises:
            exercise_edition(nb)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = cell.source.replace(GLOSSARY_LINK, COPIED_GLOSSARY)
        nbformat.validate(nb)
        nbformat.write(nb, target)
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gansurvey.teaching",
                                     description="Write a working copy of the notebooks (or their exercise "
                                                 "edition) to a folder of your own, so notebooks/ stays as "
                                                 "committed.")
    parser.add_argument("dest", help="folder to write the notebooks and the glossary to")
    parser.add_argument("--exercises", action="store_true",
                        help="the exercise edition: solution cells removed, outputs cleared")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these notebooks only (e.g. 01_pruning)")
    parser.add_argument("--force", action="store_true", help="replace files already in DEST")
    args = parser.parse_args(argv)
    try:
        written = copy_notebooks(args.dest, exercises=args.exercises, names=args.only, force=args.force)
    except GanSurveyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    edition = "exercise edition" if args.exercises else "working copy"
    print(f"{len(written)} notebooks ({edition}) written to {display_path(Path(args.dest))}; open them with "
          f".venv/bin/jupyter lab {display_path(Path(args.dest))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
