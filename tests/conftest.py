"""Shared test set-up: one torch thread count, a private artifacts folder, the tiny generators several test
modules build, the quick profile with test-sized settings, and the kernels' backends (the Triton interpreter on
CPU tensors, or the plain-torch reference)."""

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
import torch
from torch import nn

from gansurvey.config import profile_settings
from gansurvey.kernels import triton_kernels
from gansurvey.models import generators

#: The two profiles' settings, as the notebooks resolve them once and pass them down.
QUICK, FULL = profile_settings("quick"), profile_settings("full")

# Tests are small: at most two intra-op threads, and OMP_NUM_THREADS where it is set (make test runs one test file
# per core, each with one thread, so the workers do not oversubscribe the cores).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, min(2, os.cpu_count() or 1)))

#: Small members of each architecture: fast, but with every layer kind (ConvTranspose2d, BatchNorm, residual
#: sums of two blocks). The ResNet's channels are c1, c2, c3 = 4, 8, 16; the DCGAN's 32, 16, 8, then 1.
TINY: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: generators.MLPGenerator(hidden=32, depth=2),
    "dcgan": lambda: generators.DCGANGenerator(latent_dim=16, base=8),
    "resnet": lambda: generators.ResNetGenerator(ngf=4, blocks=2),
}
#: An input shape for the architectures not fed with noise (None: the generator draws its own).
TINY_INPUT_SHAPES: dict[str, tuple[int, ...] | None] = {"mlp": None, "dcgan": None, "resnet": (1, 1, 16, 16)}


def tiny_generator(kind: str, seed: int = 0) -> nn.Module:
    """A fresh :data:`TINY` generator of ``kind``, initialised under ``seed``, in eval mode."""
    torch.manual_seed(seed)
    return TINY[kind]().eval()


def kill_after_checkpoint(command: list[str], checkpoint_written: Callable[[], bool], cwd=None, env=None) -> str:
    """Run ``command`` (a training child process), SIGKILL it a few steps after ``checkpoint_written()`` turns true
    (poll a checkpoint's sidecar: it is written last, so the checkpoint is whole), and return its output; fails the
    test when no checkpoint appears within 120 s or the child finished before the kill."""
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint_written() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpoint_written(), child.communicate()[0] if child.poll() is not None else "no checkpoint in 120 s"
        time.sleep(0.3)  # a few steps past the checkpoint: their work is lost with the process
        child.send_signal(signal.SIGKILL)
        output = child.communicate(timeout=30)[0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, output  # killed, not finished
    return output


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """A private artifacts folder, so cache tests never touch (or reuse) the real one."""
    monkeypatch.setenv("GANSURVEY_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


@pytest.fixture
def quick_profile(monkeypatch, artifacts):
    """The quick profile's settings with some fields changed, for one test (in a private artifacts folder): call it
    with the fields to change and pass what it returns down as ``profile``. They also stand in for the quick
    profile where a call takes its default (``measure`` without ``profile``)."""
    from gansurvey.config import PROFILE_SETTINGS

    def patch(**changes):
        settings = dataclasses.replace(PROFILE_SETTINGS["quick"], **changes)
        monkeypatch.setitem(PROFILE_SETTINGS, "quick", settings)
        return settings

    return patch


# gansurvey.kernels defines its Triton kernels on first use, once per value of TRITON_INTERPRET, so setting the
# variable per test works even if another test imported the package earlier.
@pytest.fixture
def triton_backend(monkeypatch):
    """Force the Triton path and run it through the interpreter (CPU tensors)."""
    if not triton_kernels.HAS_TRITON:
        pytest.skip("triton is not installed")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("GANSURVEY_KERNELS", "triton")
    return "triton"


@pytest.fixture
def reference_backend(monkeypatch):
    monkeypatch.setenv("GANSURVEY_KERNELS", "reference")
    return "reference"
