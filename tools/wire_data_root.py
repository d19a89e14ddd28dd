"""Give family notebooks the folder-benchmark parameters ``data_root`` and ``folder_size`` (idempotent).

Usage::

    .venv/bin/python tools/wire_data_root.py notebooks/03_low_rank.ipynb notebooks/04_precision.ipynb ...

For each notebook it:

1. adds :data:`gansurvey.notebook.FOLDER_PARAMETER_LINES` to the cell tagged ``parameters``, right after its
   ``benchmarks`` line (and ``from typing import Optional`` at the cell's top when it is missing);
2. builds the benchmarks in the checking cell, after ``run = notebook_parameters(...)``::

       benches = notebook_benchmarks(benchmarks, data_root, folder_size)

   so a bad folder is refused before any work, and a run without a folder prints the one line saying so.

A notebook that already has them is left as it is. What stays to be done by hand (the script prints it): wrap the
notebook's spec in ``gansurvey/notebook.py`` with ``with_folder_parameters({...})`` (a test keeps the spec and the
cell in step), and make its benchmark loops iterate over ``benches`` (Benchmark objects; ``bench.name`` where a
name is needed) passing ``**measure_options(bench)`` to ``gs.measure`` and the sweeps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from gansurvey.notebook import FOLDER_PARAMETER_LINES, NOTEBOOK_PARAMETERS

OPTIONAL_IMPORT = "from typing import Optional  # papermill reads Optional[...] annotations, not X | None"
BUILD_LINE = "benches = notebook_benchmarks(benchmarks, data_root, folder_size)"
PARAMS_IMPORT = "from gansurvey.notebook import notebook_parameters"


class WireError(Exception):
    """A notebook this script cannot wire, with the reason."""


def wire_parameters(source: str, notebook: str) -> str:
    """The parameters cell ``source`` with the folder parameter lines after its ``benchmarks`` line."""
    lines = source.split("\n")
    if any(line.startswith("data_root:") for line in lines):
        return source
    at = [i for i, line in enumerate(lines) if line.startswith("benchmarks:")]
    if len(at) != 1:
        raise WireError(f"{notebook}: its parameters cell has {len(at)} lines starting 'benchmarks:', expected "
                        "exactly one (the folder parameters go right after it)")
    lines[at[0] + 1:at[0] + 1] = FOLDER_PARAMETER_LINES
    if not any(line.startswith("from typing import") and "Optional" in line for line in lines):
        lines[:0] = [OPTIONAL_IMPORT, ""]
    return "\n".join(lines)


def wire_check(source: str, notebook: str) -> str:
    """The checking cell ``source`` that also builds ``benches`` right after checking the parameters."""
    if "notebook_benchmarks(" in source:
        return source
    if PARAMS_IMPORT not in source:
        raise WireError(f"{notebook}: its checking cell does not import notebook_parameters with "
                        f"{PARAMS_IMPORT!r}; add {BUILD_LINE!r} after its notebook_parameters call by hand")
    lines = source.replace(PARAMS_IMPORT, "from gansurvey.notebook import notebook_benchmarks, notebook_parameters",
                           1).split("\n")
    at = [i for i, line in enumerate(lines) if "notebook_parameters(" in line and "import" not in line]
    if len(at) != 1:
        raise WireError(f"{notebook}: its checking cell calls notebook_parameters {len(at)} times, expected once")
    lines.insert(at[0] + 1, BUILD_LINE)
    return "\n".join(lines)


def wire(path: Path) -> bool:
    """Wire one notebook file in place; True when it changed."""
    if not path.is_file():
        raise WireError(f"{path}: no such notebook file")
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise WireError(f"{path}: {len(tagged)} cells tagged 'parameters', expected exactly one")
    params_cell = nb.cells[tagged[0]]
    if tagged[0] + 1 >= len(nb.cells) or nb.cells[tagged[0] + 1].cell_type != "code":
        raise WireError(f"{path}: no code cell after the parameters cell (the checking cell)")
    check_cell = nb.cells[tagged[0] + 1]
    new_params = wire_parameters(params_cell.source, path.name)
    new_check = wire_check(check_cell.source, path.name)
    if (new_params, new_check) == (params_cell.source, check_cell.source):
        return False
    params_cell.source, check_cell.source = new_params, new_check
    nbformat.write(nb, path)
    return True


def main(argv: list[str] | None = None) -> int:
    """Wire every notebook named on the command line; print what changed and what is left to do by hand."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="family notebooks (.ipynb) to wire")
    args = parser.parse_args(argv)
    failed = False
    for path in args.notebooks:
        try:
            changed = wire(path)
        except WireError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        print(f"{path}: {'wired' if changed else 'already wired, left as it is'}")
        spec = NOTEBOOK_PARAMETERS.get(path.stem)
        if spec is None or "data_root" not in spec:
            print(f"  to do: wrap the spec of {path.stem!r} in gansurvey/notebook.py: with_folder_parameters({{...}})")
        if changed:
            print("  to do: loop over `benches` (bench.name for names); pass **measure_options(bench) to measure")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
