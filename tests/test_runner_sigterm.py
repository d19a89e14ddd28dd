"""regenerate called from Python (not the CLI) ends like Ctrl-C on SIGTERM (#21): a KeyboardInterrupt, and no
temporary or partial notebook left where the executed copies go."""

import os
import signal
import subprocess
import sys
import time

import pytest

from gansurvey import runner
from tests.test_runner_cli import _notebook

_REGENERATE = """
import sys
from pathlib import Path
from gansurvey import runner
try:
    runner.regenerate("quick", folder=Path(sys.argv[1]), out=Path(sys.argv[2]))
except KeyboardInterrupt as exc:
    print("stopped:", exc)
    raise SystemExit(3)
"""


def test_sigterm_stops_regenerate_like_ctrl_c_and_leaves_no_temporary(tmp_path):
    folder, out = tmp_path / "notebooks", tmp_path / "results"
    folder.mkdir()
    started = tmp_path / "started"
    _notebook(folder / "00_slow.ipynb", f"import pathlib, time\npathlib.Path({str(started)!r}).write_text('')\n"
                                        "time.sleep(60)")
    env = {**os.environ, "GANSURVEY_ARTIFACTS": str(tmp_path / "artifacts")}
    proc = subprocess.Popen([sys.executable, "-c", _REGENERATE, str(folder), str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert started.exists(), proc.communicate()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, stderr  # without a handler SIGTERM kills the process at once (-15)
    assert stdout.strip() == "stopped: terminated (SIGTERM)"
    assert not list(out.rglob("*.ipynb"))  # neither the temporary copy nor a partial notebook


def test_regenerate_sets_its_handler_only_in_place_of_the_default_and_restores_it(monkeypatch):
    seen = []

    def plan(*args, **kwargs):  # the first step inside regenerate: note the handler, then stop
        seen.append(signal.getsignal(signal.SIGTERM))
        raise RuntimeError("stop here")

    monkeypatch.setattr(runner, "_plan", plan)
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(RuntimeError, match="stop here"):
            runner.regenerate("quick")
        assert callable(seen[-1]) and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

        def callers(signum, frame):  # a caller's own handler (the CLI's) is left in place
            raise SystemExit(1)

        signal.signal(signal.SIGTERM, callers)
        with pytest.raises(RuntimeError, match="stop here"):
            runner.regenerate("quick")
        assert seen[-1] is callers and signal.getsignal(signal.SIGTERM) is callers
    finally:
        signal.signal(signal.SIGTERM, before)
