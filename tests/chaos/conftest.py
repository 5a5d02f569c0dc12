"""Fixtures of the chaos suite: servers of the test's own that it may kill, stop and restart.

Never the machine's PostgreSQL (5432) or Redis (6379): a private PostgreSQL
cluster (Debian's binaries) and a private redis-server, on free ports.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

from models import migrate
from models.db import db, make_database
from tests.integration.conftest import live_db, live_env, logs, procs  # noqa: F401  (shared fixtures)
from tests.integration.processes import free_port, wait_for
from tests.tasks.live import BrokerServer, LiveBroker

PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl), restartable at will."""

    def __init__(self, home: pathlib.Path):
        self.home = home
        self.data = home / "data"
        self.sockets = home / "sock"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/hearth"

    def _as_postgres(self, *argv, check=True):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *map(str, argv)], capture_output=True, check=False, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}")
        return done

    def init(self) -> PrivatePostgres:
        self.home.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres")
            shutil.chown(self.sockets, "postgres")
            self.home.chmod(0o755)
        self._as_postgres(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "utf8")
        self.start()
        self._as_postgres(PG_BIN / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "hearth")
        return self

    def _ctl(self, action: str, *extra):
        return self._as_postgres(
            PG_BIN / "pg_ctl",
            "-D",
            self.data,
            "-w",
            "-t",
            "30",
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.sockets}",
            "-l",
            self.home / "postgres.log",
            action,
            *extra,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def destroy(self) -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "stop", "-m", "immediate", check=False)


@pytest.fixture
def private_postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    # Not under pytest's tmp_path: that is private to the test's user, and the server runs as postgres.
    home = pathlib.Path(tempfile.mkdtemp(prefix="hearth-chaos-pg-"))
    home.chmod(0o755)
    server = PrivatePostgres(home / "pg").init()
    yield server
    server.destroy()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def private_db(private_postgres):
    """The models bound to the private cluster's migrated database."""
    previous = db.obj
    database = make_database(private_postgres.url, max_connections=4)
    with database.connection_context():
        migrate.upgrade(database)
    db.initialize(database)
    yield database
    database.close_all()
    db.initialize(previous)


@pytest.fixture
def private_redis(tmp_path):
    server = BrokerServer(tmp_path).start()
    yield server
    server.stop()


class Sweeper:
    """What beat sends every 15 seconds, sent every ``interval`` instead; a send while the broker
    is away is simply lost, as beat's would be."""

    def __init__(self, env: dict, interval: float = 1.0):
        self.broker = LiveBroker(env)
        self.interval = interval
        self._last = 0.0

    def tick(self) -> None:
        if time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        with contextlib.suppress(Exception):  # the broker is away: the next tick tries again
            self.broker.sweep()

    def close(self) -> None:
        self.broker.close()


def wait_all(predicate, sweeper: Sweeper, *, timeout: float, what: str):
    """Poll ``predicate`` (sweeping meanwhile) until it holds; returns its value."""

    def check():
        sweeper.tick()
        return predicate()

    return wait_for(check, timeout=timeout, interval=0.2, what=what)
