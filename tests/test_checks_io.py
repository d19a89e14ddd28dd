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
     (True, {}, "number"), (1.0, {"below": 1.0}, "< 1.0")],
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
