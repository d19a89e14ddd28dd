"""Opening a committed notebook in JupyterLab leaves git clean (#24): the metadata it would write on opening
(the kernelspec's display name, ipykernel's language_info) and the way it serializes a notebook are committed."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_kernelspec_is_the_one_jupyterlab_writes(path):
    from jupyter_client.kernelspec import KernelSpecManager

    nb = nbformat.read(path, as_version=4)
    spec = KernelSpecManager().get_kernel_spec("python3")  # what the kernel picker shows, and writes back
    assert nb.metadata["kernelspec"] == {"display_name": spec.display_name, "language": spec.language,
                                         "name": "python3"}


@pytest.fixture(scope="module")
def kernel_language_info():
    """ipykernel's language_info, read in a child process: importing ipykernel here would put ipykernel.zmqshell
    in this process's modules, and tqdm.auto, imported after it (papermill imports it when it executes), would
    then draw every later test's progress bars as notebook widgets."""
    code = "import json; from ipykernel.ipkernel import IPythonKernel; print(json.dumps(IPythonKernel.language_info))"
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     timeout=120).stdout)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_language_info_is_ipykernels(path, kernel_language_info):
    written = dict(nbformat.read(path, as_version=4).metadata["language_info"])
    expected = dict(kernel_language_info)
    # the version is the interpreter's: the one that executed the committed copy
    assert written.pop("version") and expected.pop("version")
    assert written == expected


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_file_is_serialized_as_jupyter_saves_it(path):
    # JupyterLab saves with nbformat's writer (indent 1, a final newline, cell ids): a file in another layout is
    # rewritten on its first autosave
    nb = nbformat.read(path, as_version=4)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5) and all("id" in cell for cell in nb.cells)
    assert path.read_text(encoding="utf-8") == nbformat.writes(nb) + "\n"
