"""``python -m ops.clamd``: whatever signal stops it, its clamd goes too."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from ops.clamd import _ping
from settings import ROOT


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie waiting for its parent counts as gone
            if pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_every_stop_signal_stops_clamd(signum):
    # Short path: a unix socket path may not exceed 107 bytes.
    home = pathlib.Path(tempfile.mkdtemp(prefix="hearth-clamd-"))
    runner = subprocess.Popen(
        [sys.executable, "-m", "ops.clamd", "--home", str(home)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    clamd_pid = None
    try:
        line = runner.stdout.readline()
        assert "clamd ready at" in line, line + runner.stdout.read()
        clamd_pid = int((home / "clamd.pid").read_text().strip())
        assert _ping(home / "clamd.sock")

        runner.send_signal(signum)
        assert runner.wait(timeout=20) == 0
        assert _gone(clamd_pid), f"clamd (pid {clamd_pid}) still runs after {signum.name}"
        assert not _ping(home / "clamd.sock")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if clamd_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(clamd_pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)
