"""The database handle.

One ``DatabaseProxy`` for the whole process. ``init_database(settings)`` binds it
to a pooled PostgreSQL database; nothing connects at import time, so forked
workers never share a socket.
"""
from __future__ import annotations

import contextlib
from urllib.parse import unquote, urlparse

from peewee import DatabaseProxy, InterfaceError, OperationalError
from playhouse.pool import PooledPostgresqlDatabase

db = DatabaseProxy()

# Errors that mean "the database is (momentarily) unreachable", never a bug.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


class HearthDatabase(PooledPostgresqlDatabase):
    """Pooled PostgreSQL that trusts libpq's own view of an idle connection.

    peewee's pool sends ``SELECT 1`` on every checkout of an idle connection;
    that is a full round trip per request. libpq already tracks whether the
    socket broke, and a connection that died silently fails its next query,
    which the request turns into a 503 and the pool then discards.
    """

    def _is_closed(self, conn):
        return bool(conn.closed) or self._adapter.txn_status(conn) == self._adapter.txn_unknown


def connect_args(url: str) -> dict:
    """Translate a ``postgresql://user:pass@host:port/name?host=/sock`` URL to psycopg2 kwargs."""
    parsed = urlparse(url)
    args: dict = {"database": unquote(parsed.path.lstrip("/")) or "postgres"}
    if parsed.username:
        args["user"] = unquote(parsed.username)
    if parsed.password:
        args["password"] = unquote(parsed.password)
    if parsed.hostname:
        args["host"] = parsed.hostname
    if parsed.port:
        args["port"] = parsed.port
    for pair in filter(None, parsed.query.split("&")):
        key, _, value = pair.partition("=")
        args[key] = unquote(value)
    return args


def make_database(url: str, max_connections: int = 20) -> HearthDatabase:
    args = connect_args(url)
    name = args.pop("database")
    return HearthDatabase(
        name,
        max_connections=max_connections,
        stale_timeout=300,
        timeout=10,
        connect_timeout=5,
        application_name="hearth",
        **args,
    )


def init_database(settings) -> HearthDatabase:
    """Bind the proxy to the database named in ``settings``; returns the database."""
    database = make_database(settings.database_url, settings.database_max_connections)
    db.initialize(database)
    return database


@contextlib.contextmanager
def connection():
    """Hold one pooled connection for a unit of work outside a request, then return it."""
    opened = db.connect(reuse_if_open=True)
    try:
        yield db
    finally:
        if opened and not db.in_transaction():
            db.close()
