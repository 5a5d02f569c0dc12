"""Real Hearth processes for integration tests: gunicorn, a Celery worker, the relay.

Each runs with a committed database of its own (built by the migrations) and
its own Redis database/prefix, and is stopped (and reaped) by the fixture that
started it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


class Proc:
    """A child process with its output captured to a log file for failure reports."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: pathlib.Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        # The child writes to its own copy of the descriptor; this process only reads the file back.
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group (a worker and its pool children), as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
            except ProcessLookupError:
                pass


def environment(settings_env: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HEARTH_", "DATABASE_", "REDIS_"))}
    env.update(settings_env)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_gunicorn(
    env: dict, log_dir: pathlib.Path, workers: int = 1, config: bool = False, threads: int | None = None
) -> tuple[Proc, str]:
    """gunicorn serving the API; ``config``: with ops/gunicorn.conf.py (its limits, threads), as deployed;
    ``threads``: gthread workers with that many threads (a browser's spare preconnects would hold a
    single-threaded sync worker until its timeout)."""
    port = free_port()
    if config:
        settings = ["--config", str(ROOT / "ops" / "gunicorn.conf.py")]
    elif threads:
        settings = ["--worker-class", "gthread", "--threads", str(threads)]
    else:
        settings = ["--worker-class", "sync"]
    proc = Proc(
        "gunicorn",
        [
            str(BIN / "gunicorn"),
            *settings,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "30",
            "api.wsgi:app",
        ],
        environment(env),
        log_dir,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: httpx.get(base + "/healthz", timeout=1).status_code == 200 or not proc.alive(),
        what="gunicorn to answer /healthz",
    )
    assert proc.alive(), proc.output()
    return proc, base


def start_worker(
    env: dict,
    log_dir: pathlib.Path,
    queues: str | None = None,
    concurrency: int = 1,
    name: str = "worker",
    as_procfile: bool = False,
) -> Proc:
    """A Celery worker; ``as_procfile`` keeps gossip, mingle and heartbeats on, as the Procfile runs it."""
    import celeryconfig

    quiet = [] if as_procfile else ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    argv = [
        str(BIN / "celery"),
        "-A",
        "tasks",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "-Q",
        queues or ",".join(celeryconfig.QUEUES),
        *quiet,
        "-n",
        f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
        "-l",
        "info",
    ]
    proc = Proc(name, argv, environment(env), log_dir)
    wait_for(lambda: "ready." in proc.output() or not proc.alive(), timeout=30, what="celery worker ready")
    assert proc.alive(), proc.output()
    return proc
