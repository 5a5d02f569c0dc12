"""The servers under test: gunicorn (the project's settings, a private port, its CPU time, a clean stop)
and the websocket relay under uvicorn."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from ops.relay_command import relay_argv

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
CONF = ROOT / "ops" / "gunicorn.conf.py"
# What the project runs when ops/gunicorn.conf.py does not say otherwise.
DEFAULT_ARGS = ("--workers", "2", "--worker-class", "gthread", "--threads", "4")
_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(Exception):
    """Gunicorn did not come up; the message carries the end of its log."""


@dataclass(frozen=True)
class GunicornSettings:
    """The gunicorn command-line options shared by every app in one comparison."""

    label: str
    args: tuple[str, ...]
    source: str  # where the settings come from, for the report

    def describe(self) -> str:
        return f"{self.label}: {' '.join(self.args)}  ({self.source})"


def project_settings() -> GunicornSettings:
    """``-c ops/gunicorn.conf.py`` when that file exists, else ``DEFAULT_ARGS``."""
    if CONF.exists():
        summary = _conf_summary()
        return GunicornSettings("project", ("-c", str(CONF.relative_to(ROOT))), summary)
    return GunicornSettings("project", DEFAULT_ARGS, "default: ops/gunicorn.conf.py does not exist")


def variant(label: str, *args: str) -> GunicornSettings:
    """The project's settings with ``args`` overriding them (command-line options win over the file)."""
    base = project_settings()
    return GunicornSettings(
        label,
        base.args + tuple(args) if base.args[0] == "-c" else tuple(args),
        f"{base.source}; overridden: {' '.join(args)}",
    )


def _conf_summary() -> str:
    """Read the worker settings the config file ends up with (it is Python, as gunicorn runs it)."""
    try:
        values = runpy.run_path(str(CONF))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the summary is informative only
        return f"unreadable ({type(exc).__name__}: {exc})"
    keys = (
        "workers",
        "worker_class",
        "threads",
        "keepalive",
        "max_requests",
        "max_requests_jitter",
        "preload_app",
        "timeout",
        "accesslog",
    )
    return ", ".join(f"{k}={values[k]!r}" for k in keys if k in values) or "no worker settings"


def machine_cpu_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (not idle, not waiting on I/O)."""
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / _TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(extra: dict) -> dict:
    """This process's environment without Hearth's own variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEARTH_", "DATABASE_", "REDIS_", "RATE_LIMIT_", "LOGIN_", "JWT_"))
    }
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Gunicorn:
    """One gunicorn master and its workers, started by ``start()`` and stopped by ``stop()``."""

    def __init__(self, app: str, settings: GunicornSettings, env: dict, log_path: pathlib.Path, ready_path: str = "/"):
        self.app = app
        self.settings = settings
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.ready_path = ready_path
        self.env = environment(env)
        self.popen: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Gunicorn:
        argv = [str(BIN / "gunicorn"), *self.settings.args, "--bind", f"127.0.0.1:{self.port}", self.app]
        # Gunicorn writes to its own copy of the descriptor; this process only reads the file back.
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ServerError(f"gunicorn exited with {self.popen.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"gunicorn did not answer {self.ready_path} within {timeout:.0f}s:\n{self.tail()}")

    def worker_class(self) -> str | None:
        """The worker class gunicorn says it runs (it may differ from the one asked for)."""
        found = re.search(r"Using worker: (\S+)", self.log_path.read_text(errors="replace"))
        return found.group(1) if found else None

    def worker_boots(self) -> int:
        """How many workers gunicorn has booted so far (``max_requests`` replaces workers as it goes)."""
        return self.log_path.read_text(errors="replace").count("Booting worker with pid")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def processes(self) -> list[int]:
        """The master and its workers."""
        if self.popen is None:
            return []
        pids = [self.popen.pid]
        try:
            children = pathlib.Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text()
            pids += [int(pid) for pid in children.split()]
        except OSError:
            pass
        return pids

    def workers(self) -> list[int]:
        return self.processes()[1:]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the master and of every worker it has had so far.

        Workers that exited (``max_requests`` recycles them) count through the
        master's ``cutime``/``cstime`` once it has reaped them.
        """
        total = 0
        for index, pid in enumerate(self.processes()):
            try:
                fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if index == 0:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped workers
        return total / _TICKS

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def relay_server(env: dict, log_path: pathlib.Path):
    """``uvicorn relay.app:app`` with the flags production and the tests use, on a free port; yields its
    websocket URL once ``/healthz`` answers, and stops it afterwards."""
    port = free_port()
    argv = relay_argv(
        str(BIN / "uvicorn"),
        "127.0.0.1",
        port,
        "--timeout-graceful-shutdown",
        "5",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    )
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=environment(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the relay did not start:\n" + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
