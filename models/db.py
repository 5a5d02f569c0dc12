"""The database handle.

One ``DatabaseProxy`` for the whole process. ``init_database(settings)`` binds it
to a pooled PostgreSQL database; nothing connects at import time, so forked
workers never share a socket.

Transactions and savepoints (``db.atomic()``, nested or not) are counted per
thread, so work can wait for a commit: ``after_commit_to(depth, callback)``
calls back once every block opened above ``depth`` has committed, and never
when one of them rolls back. peewee's own ``after_commit`` cannot do that: it
ignores savepoints, and a test's transaction, rolled back at its end, would
hold every callback for ever.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from urllib.parse import unquote, urlparse

from peewee import DatabaseProxy, InterfaceError, OperationalError, _savepoint, _transaction
from playhouse.pool import PooledPostgresqlDatabase

log = logging.getLogger("hearth.db")

# Errors that mean "the database is (momentarily) unreachable", never a bug.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


class _OpenBlocks(threading.local):
    """This thread's open transaction and savepoints, innermost last, each with what waits on its commit."""

    def __init__(self):
        self.waiting: list[list[tuple[int, object]]] = []


_blocks = _OpenBlocks()


def open_blocks() -> int:
    """How many transactions and savepoints this thread has open (nested ``db.atomic()`` blocks)."""
    return len(_blocks.waiting)


def after_commit_to(depth: int, callback) -> None:
    """Call ``callback()`` once the blocks open above ``depth`` have committed; never if one rolls back.

    ``depth`` is an ``open_blocks()`` count read earlier. With no block open
    above it, the work is already as committed as it will be: ``callback``
    runs now. A callback that raises is logged; the others still run.
    """
    if open_blocks() <= depth:
        _run([callback])
    else:
        _blocks.waiting[-1].append((depth, callback))


def _run(callbacks) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("a callback waiting on a commit failed")


class _Block:
    """A transaction or savepoint that is one level of ``_blocks`` from its enter to its exit."""

    def __enter__(self):
        result = super().__enter__()
        _blocks.waiting.append([])
        self._ready = []
        return result

    def commit(self, begin=True):
        super().commit(begin)
        self._released()
        if begin:  # committed in the middle of the block (``txn.commit()``): what waited is done now
            _run(self._take_ready())

    def rollback(self, begin=True):
        super().rollback(begin)
        _blocks.waiting[-1] = []

    def _released(self) -> None:
        """The block's work became its parent's: what waits for a lower depth moves down a level."""
        waiting = _blocks.waiting
        level = len(waiting) - 1
        pending, waiting[level] = waiting[level], []
        self._ready += [callback for depth, callback in pending if depth >= level]
        if level:
            waiting[level - 1] += [entry for entry in pending if entry[0] < level]

    def _take_ready(self) -> list:
        ready, self._ready = self._ready, []
        return ready

    def __exit__(self, exc_type, exc_val, exc_tb):
        # peewee neither commits nor rolls back a transaction nested in another: its work is the parent's.
        nested = isinstance(self, _transaction) and self.db.transaction_depth() > 1
        try:
            super().__exit__(exc_type, exc_val, exc_tb)
            if nested:
                self._released()
        finally:
            _blocks.waiting.pop()
        # Called back only now, outside peewee's commit: a failing callback cannot roll anything back.
        _run(self._take_ready())


class TrackedTransaction(_Block, _transaction):
    """peewee's transaction, counted in ``open_blocks()``."""


class TrackedSavepoint(_Block, _savepoint):
    """peewee's savepoint, counted in ``open_blocks()``."""


class HearthDatabaseProxy(DatabaseProxy):
    """The process's database proxy; its transactions and savepoints are counted (``open_blocks()``)."""

    def transaction(self, *args, **kwargs):
        return TrackedTransaction(self, *args, **kwargs)

    def savepoint(self):
        return TrackedSavepoint(self)


db = HearthDatabaseProxy()


class HearthDatabase(PooledPostgresqlDatabase):
    """Pooled PostgreSQL that trusts libpq's own view of an idle connection.

    peewee's pool sends ``SELECT 1`` on every checkout of an idle connection;
    that is a full round trip per request. libpq already tracks whether the
    socket broke, and a connection that died silently fails its next query,
    which the request turns into a 503 and the pool then discards.
    """

    # Whether ``models.prepared`` may keep statements in the server's session (``make_database``).
    prepared_statements = True

    def _is_closed(self, conn):
        return bool(conn.closed) or self._adapter.txn_status(conn) == self._adapter.txn_unknown

    # Blocks opened on the database itself rather than through ``db`` are counted too.
    def transaction(self, *args, **kwargs):
        return TrackedTransaction(self, *args, **kwargs)

    def savepoint(self):
        return TrackedSavepoint(self)


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


def make_database(url: str, max_connections: int = 20, *, prepared_statements: bool = True) -> HearthDatabase:
    args = connect_args(url)
    name = args.pop("database")
    database = HearthDatabase(
        name,
        max_connections=max_connections,
        stale_timeout=300,
        timeout=10,
        connect_timeout=5,
        application_name="hearth",
        **args,
    )
    database.prepared_statements = prepared_statements
    return database


def init_database(settings) -> HearthDatabase:
    """Bind the proxy to the database named in ``settings``; returns the database."""
    database = make_database(
        settings.database_url,
        settings.database_max_connections,
        prepared_statements=settings.database_prepared_statements,
    )
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
