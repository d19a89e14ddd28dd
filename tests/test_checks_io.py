import json

import pytest
import torch

from gansurvey.checks import GanSurveyError, check_choice, check_number
from gansurvey.config import resolve_device, results_dir, seed_everything
from gansurvey.io import CorruptFileError, atomic_write_text, load_checked, save_checked


def test_check_choice_names_value_and_allowed():
    assert check_choice("profile", "quick", ["quick", "full"]) == "quick"
    with pytest.raises(GanSurveyError, match=r"'fast'.*'quick', 'full'"):
        check_choice("profile", "fast", ["quick", "full"])


@pytest.mark.parametrize(
    ("value", "kwargs", "pattern"),
    [(-1, {"minimum": 0}, ">= 0, got -1"), (1.5, {"integer": True}, "integer"), ("3", {}, "number"),
     (True, {}, "number"), (1.0, {"below": 1.0}, "< 1.0"), (0, {"above": 0, "maximum": 1}, r"> 0 and <= 1, got 0$"),
     (-0.5, {"above": 0}, r"must be a number > 0, got -0.5$")],
)
def test_check_number_rejects(value, kwargs, pattern):
    with pytest.raises(GanSurveyError, match=pattern):
        check_number("x", value, **kwargs)


def test_unknown_profile_and_device():
    with pytest.raises(GanSurveyError, match="'huge'"):
        results_dir("huge")
    with pytest.raises(GanSurveyError, match="'tpu'.*'auto', 'cpu', 'cuda'"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(GanSurveyError, match="no CUDA"):
            resolve_device("cuda")


def test_seed_everything_is_reproducible():
    seed_everything(3)
    a = torch.randn(4)
    seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    with pytest.raises(GanSurveyError):
        seed_everything(-1)


def test_atomic_write_leaves_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert path.read_text() == "hello"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_checked_roundtrip_and_corruption(tmp_path):
    path = save_checked(tmp_path / "x.pt", {"w": torch.arange(5)}, meta={"k": 1})
    assert torch.equal(load_checked(path, meta={"k": 1})["w"], torch.arange(5))
    with pytest.raises(CorruptFileError, match="stale"):
        load_checked(path, meta={"k": 2})
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="SHA-256"):
        load_checked(path)
    sidecar = path.with_name("x.pt.json")
    sidecar.write_text("{not json")
    with pytest.raises(CorruptFileError, match="sidecar"):
        load_checked(path)
    sidecar.unlink()
    with pytest.raises(CorruptFileError, match="missing"):
        load_checked(path)
    assert json.loads(json.dumps({"ok": True}))


def test_atomic_writes_respect_the_umask(tmp_path):
    import os

    from gansurvey.io import atomic_write_text

    before = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(before)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others on a shared class server, not 0600


# --- #21 ------------------------------------------------------------------------------------------------------------

def test_a_folder_in_place_of_a_cache_file_is_refused_naming_it(tmp_path):
    from gansurvey import zoo

    path = zoo.cache_path("teacher", {"benchmark": "toy"}, root=tmp_path)
    path.mkdir(parents=True)
    with pytest.raises(GanSurveyError, match=r"teacher/toy-[0-9a-f]+\.pt is a folder where a file is to be read"):
        zoo.cached("teacher", {"benchmark": "toy"}, lambda: 1, root=tmp_path)
    with pytest.raises(GanSurveyError, match=r"is a folder where a file is to be written"):
        atomic_write_text(path, "x")


def test_a_failed_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import errno
    import os

    def too_large(fd):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(os, "fsync", too_large)
    with pytest.raises(OSError, match=r"cannot write .*/records\.csv \(5 bytes\): File too large") as info:
        atomic_write_text(tmp_path / "records.csv", "hello")
    assert info.value.errno == errno.EFBIG and str(tmp_path) not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_check_choice_suggests_the_closest_name():
    with pytest.raises(GanSurveyError, match=r"'01_prunnig'; allowed: .* \(did you mean '01_pruning'\?\)$"):
        check_choice("notebook", "01_prunnig", ["00_background", "01_pruning"])
    with pytest.raises(GanSurveyError, match=r"unknown notebook 'zzz'; allowed"):
        check_choice("notebook", "zzz", ["00_background", "01_pruning"])


def test_display_path_never_shows_the_machine(tmp_path, monkeypatch):
    from pathlib import Path

    from gansurvey.config import display_path, project_root

    assert display_path(project_root() / "results" / "quick") == "results/quick"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert display_path(tmp_path / "home" / "runs" / "quick") == "~/runs/quick"
    assert display_path(tmp_path / "elsewhere" / "quick") == f".../{tmp_path.name}/elsewhere/quick"
    assert display_path(Path("rel") / "x.csv").endswith("rel/x.csv")
    assert display_path(Path("/tmp")) == ".../tmp"  # a short path outside both: its parts, not the root twice


def test_check_number_above_is_an_exclusive_lower_bound():
    assert check_number("x", 1e-12, above=0) == 1e-12
    assert check_number("x", 1, above=0, maximum=1) == 1
