import os

import pytest
import torch

# Tests are small: one intra-op thread keeps them reproducible and leaves the other core to the test runner.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """A private artifacts folder, so cache tests never touch (or reuse) the real one."""
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"
