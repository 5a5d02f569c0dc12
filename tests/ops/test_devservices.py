"""Embedded PostgreSQL and Redis: real servers started, used, shared and stopped."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading

import pytest
import redis as redis_lib

from models import migrate
from models.db import make_database
from ops import devservices, embedded
from ops.devservices import ServiceError
from settings import ROOT, Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dev_settings():
    """Development settings with no DATABASE_URL / REDIS_URL, data under a throwaway var dir.

    Not under ``tmp_path``: run as root, pgserver runs PostgreSQL as its own user,
    and every pytest session that starts meanwhile (an xdist worker, a second
    run) makes pytest's temporary root private again, locking that user out.
    """
    var_dir = pathlib.Path(tempfile.mkdtemp(prefix="hearth-devservices-")) / "var"
    try:
        yield Settings.from_env({"HEARTH_ENV": "development", "HEARTH_VAR_DIR": str(var_dir)})
    finally:
        devservices.stop_all()
        shutil.rmtree(var_dir.parent, ignore_errors=True)


def in_another_process(code: str) -> str:
    """Run ``code`` in a fresh interpreter (a second `hearth` command); returns its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, check=False, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_reachable_tells_a_listening_port_from_a_closed_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert devservices.reachable("127.0.0.1", port)
    assert not devservices.reachable("127.0.0.1", port)


def test_configured_urls_are_used_as_they_are(tmp_path):
    settings = Settings.from_env(
        {
            "HEARTH_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://db.example/x",
            "REDIS_URL": "redis://cache.example:6379/2",
        }
    )
    assert devservices.ensure_database(settings) == "postgresql://db.example/x"
    assert devservices.ensure_redis(settings) == "redis://cache.example:6379/2"
    assert not (tmp_path / "pg").exists() and not (tmp_path / "redis").exists()


def test_production_never_gets_an_embedded_server(tmp_path):
    settings = dataclasses.replace(Settings.from_env({"HEARTH_VAR_DIR": str(tmp_path)}), env="production")
    with pytest.raises(ServiceError, match="DATABASE_URL is required"):
        devservices.ensure_database(settings)
    with pytest.raises(ServiceError, match="REDIS_URL is required"):
        devservices.ensure_redis(settings)


def test_embedded_postgres_runs_the_migrations_is_shared_and_stops(dev_settings):
    url = devservices.ensure_database(dev_settings)
    socket_dir = dev_settings.var_dir.resolve() / "pg" / "data"
    assert url == f"postgresql://postgres@/hearth?host={socket_dir}"

    database = make_database(url, max_connections=1)
    try:
        assert migrate.upgrade(database)
        assert all(applied for _, applied in migrate.status(database))
    finally:
        database.close_all()

    # A second command while this one runs uses the same server and leaves it running.
    second = in_another_process(f"""
        import pathlib
        from ops import devservices, embedded
        from settings import Settings
        settings = Settings.from_env({{"HEARTH_VAR_DIR": {str(dev_settings.var_dir)!r}}})
        print(devservices.ensure_database(settings), [s.name for s in embedded._owned])
    """)
    assert second.split() == [url, "[]"]
    assert (socket_dir / ".s.PGSQL.5432").exists()

    devservices.stop_all()
    assert not (socket_dir / ".s.PGSQL.5432").exists()
    assert not (socket_dir / "postmaster.pid").exists()

    # Started again, the data is still there and nothing is pending.
    url = devservices.ensure_database(dev_settings)
    database = make_database(url, max_connections=1)
    try:
        assert migrate.upgrade(database) == []
    finally:
        database.close_all()


def test_a_server_left_by_a_dead_owner_is_adopted_and_stopped(dev_settings):
    var_dir = str(dev_settings.var_dir)
    # A `hearth` process that starts the server and dies without stopping it.
    in_another_process(f"""
        import os
        from ops import devservices
        from settings import Settings
        devservices.ensure_database(Settings.from_env({{"HEARTH_VAR_DIR": {var_dir!r}}}))
        os._exit(0)
    """)
    socket_file = dev_settings.var_dir.resolve() / "pg" / "data" / ".s.PGSQL.5432"
    assert socket_file.exists()
    devservices.ensure_database(dev_settings)
    assert [s.name for s in embedded._owned] == ["postgres"]
    devservices.stop_all()
    assert not socket_file.exists()


def test_embedded_redis_serves_keeps_its_data_and_stops(dev_settings):
    port = free_port()
    url = devservices.ensure_redis(dev_settings, port=port)
    assert url == f"redis://127.0.0.1:{port}/0"
    client = redis_lib.Redis.from_url(url)
    client.set("hearth:test", "kept")
    client.close()

    devservices.stop_all()
    assert not devservices.reachable("127.0.0.1", port)

    client = redis_lib.Redis.from_url(devservices.ensure_redis(dev_settings, port=port))
    assert client.get("hearth:test") == b"kept"
    client.close()
    devservices.stop_all()
    assert not devservices.reachable("127.0.0.1", port)


def test_embedded_redis_refuses_a_port_held_by_another_server(dev_settings):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        def hang_up():  # a server that speaks no Redis
            with contextlib.suppress(OSError):
                while True:
                    other.accept()[0].close()

        threading.Thread(target=hang_up, daemon=True).start()
        with pytest.raises(ServiceError, match=f"127.0.0.1:{port} is taken by another server"):
            devservices.ensure_redis(dev_settings, port=port)
