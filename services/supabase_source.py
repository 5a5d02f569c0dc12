"""The source database of a Supabase import: read-only, one snapshot for the whole run, rows streamed.

``SupabaseSource.connect(url)`` opens one connection and one ``REPEATABLE READ, READ ONLY``
transaction: every table the run reads is read as it was at the same instant (``snapshot_at``,
the source's ``now()`` in that snapshot, is what the next run's ``--since last`` starts from).
Rows are streamed through server-side (named) cursors fetched ``itersize`` rows at a time, so a
table of any size is never held in memory. Another connection may join the same snapshot with
``snapshot_id`` (``pg_export_snapshot()``), e.g. to read files in parallel.

The URL and its password never appear in a log line or an error message: errors are raised as
``SourceError`` with the URL's credentials redacted.
"""

from __future__ import annotations

import datetime
import itertools
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg2
from psycopg2 import sql

ITERSIZE = 2000
# ``copy_rows`` hands its rows over in blocks of about this many bytes, at most COPY_BLOCKS blocks ahead:
# 8 MB, more than a staged chunk, so the source writes the next chunk while Hearth applies this one.
COPY_BLOCK_BYTES = 256 * 1024
COPY_BLOCKS = 32
# PostgreSQL's binary COPY format: the signature, the flags and the header extension's length (0) begin the
# data; a field count of -1 ends it.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
COPY_TRAILER = b"\xff\xff"
APPLICATION_NAME = "hearth-import"
_cursor_names = itertools.count(1)


class SourceError(Exception):
    """The source cannot be read (unreachable, refused, not Supabase-shaped). The message is safe to show.

    ``connection_lost``: the connection went away mid-read (trying again later may work).
    """

    def __init__(self, message: str, *, connection_lost: bool = False):
        super().__init__(message)
        self.connection_lost = connection_lost


def redact_url(url: str) -> str:
    """``url`` without its user's password (``postgresql://user:***@host/db``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "[unparseable URL]"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# The source connection went away mid-run: the run stops and may be resumed.
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


def redact_message(message: str, url: str) -> str:
    """An error text safe to store and show: the source URL's credentials taken out."""
    return _safe(message, url) if url else re.sub(r"password=\S+", "password=***", message)


def _safe(message: str, url: str) -> str:
    """An error text with the URL and its password taken out, whatever the driver put in it."""
    message = message.replace(url, redact_url(url))
    password = urlsplit(url).password if "://" in url else None
    if password:
        message = message.replace(password, "***")
    return re.sub(r"password=\S+", "password=***", message)


def _one(cur: psycopg2.extensions.cursor) -> Any:
    """The single value of a one-row, one-column result."""
    row = cur.fetchone()
    if row is None:
        raise SourceError("the source answered no row where one was expected")
    return row[0]


def _table(name: str) -> sql.Composed:
    schema, _, table = name.rpartition(".")
    return sql.SQL(".").join([sql.Identifier(schema or "public"), sql.Identifier(table)])


class SupabaseSource:
    """One read-only snapshot of the source database (implements ``models.imports.steps.Source``)."""

    def __init__(self, connection: psycopg2.extensions.connection, url: str, itersize: int = ITERSIZE):
        self._conn = connection
        self._url = url
        self.itersize = itersize
        self.server_version: int = connection.server_version
        with self._conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Times as text do not depend on the server (nor, before PostgreSQL 14, a staged step's checksum: the md5
            # of its row's text).
            cur.execute("SET LOCAL TIME ZONE 'UTC'")
            # Every read is one pass over a table: compiling its expressions (JIT, which the cost of a whole
            # table's scan triggers) costs the source more than it saves.
            cur.execute("SET LOCAL jit = off")
            cur.execute("SELECT now()")
            self.snapshot_at: datetime.datetime = _one(cur)
        self._columns: dict[str, list[str]] | None = None

    @classmethod
    def connect(cls, url: str, *, itersize: int = ITERSIZE, connect_timeout: int = 10) -> SupabaseSource:
        if not url:
            raise SourceError("no source database URL was given (--source-db or SUPABASE_SOURCE_DB_URL)")
        try:
            # The connection is named "hearth-import" on the source, unless the URL names it itself.
            named: dict[str, Any] = {} if "application_name=" in url else {"application_name": APPLICATION_NAME}
            conn = psycopg2.connect(url, connect_timeout=connect_timeout, **named)
            conn.autocommit = False
            return cls(conn, url, itersize)
        except psycopg2.Error as exc:
            raise SourceError(f"cannot read the source database {redact_url(url)}: {_safe(str(exc), url)}") from None

    def snapshot_id(self) -> str:
        """The exported snapshot a second connection can join with ``SET TRANSACTION SNAPSHOT``."""
        with self._conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            return str(_one(cur))

    def close(self) -> None:
        """Ends the snapshot; a connection the server already dropped is simply let go."""
        if self._conn.closed:
            return
        try:
            self._conn.rollback()
        except CONNECTION_ERRORS:
            pass  # lost meanwhile: the error that lost it is what the caller reports
        finally:
            self._conn.close()

    def __enter__(self) -> SupabaseSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _all_columns(self) -> dict[str, list[str]]:
        if self._columns is None:
            columns: dict[str, list[str]] = {}
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT table_schema, table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                    " ORDER BY table_schema, table_name, ordinal_position"
                )
                for schema, table, column in cur:
                    columns.setdefault(f"{schema}.{table}", []).append(column)
            self._columns = columns
        return self._columns

    def tables(self) -> set[str]:
        return set(self._all_columns())

    def columns(self, table: str) -> list[str]:
        if "." not in table:
            table = f"public.{table}"
        return list(self._all_columns().get(table, []))

    def _query(self, table: str, columns: Sequence[str] | None, where: str, order_by: Sequence[str]) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns) if columns else sql.SQL("*")
        query = sql.SQL("SELECT {} FROM {}").format(cols, _table(table))
        if where:
            query += sql.SQL(" WHERE ") + sql.SQL(where)  # the steps' own SQL text; values go as parameters
        if order_by:
            query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(sql.SQL(o) for o in order_by)
        return query

    def count(self, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
        query = sql.SQL("SELECT count(*) FROM {}").format(_table(table))
        if where:
            query += sql.SQL(" WHERE ") + sql.SQL(where)
        try:
            with self._conn.cursor() as cur:
                cur.execute(query, tuple(params))
                return int(_one(cur))
        except psycopg2.Error as exc:
            lost = isinstance(exc, CONNECTION_ERRORS)
            raise SourceError(f"cannot count {table}: {_safe(str(exc), self._url)}", connection_lost=lost) from None

    def copy_rows(self, select: str, params: Sequence[Any] = ()) -> Iterator[bytes]:
        """The rows of ``select`` as ``COPY ... TO STDOUT (FORMAT binary)`` tuples, one ``bytes`` each.

        Each is a row of PostgreSQL's binary COPY format (its field count, then each field's length and
        bytes; ``COPY_HEADER`` and ``COPY_TRAILER`` left out), so no value is typecast in Python nor
        written out as text and parsed again: the rows go as they are into a binary ``COPY ... FROM
        STDIN`` on the Hearth side, whose columns have the select's types. A thread runs the COPY and
        hands whole rows over in blocks, a few blocks ahead, so memory stays bounded. ``select`` is the
        steps' own SQL text; values go as parameters. Leaving the iteration early cancels the COPY: the
        snapshot is then unusable (the run stops).
        """
        with self._conn.cursor() as cur:
            query = b"COPY (" + cur.mogrify(select, tuple(params)) + b") TO STDOUT (FORMAT binary)"
        ready: queue.Queue = queue.Queue(maxsize=COPY_BLOCKS)
        stop = threading.Event()
        sink = _BlockSink(ready, stop)
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                with self._conn.cursor() as cur:
                    cur.copy_expert(query, sink, size=COPY_BLOCK_BYTES)
                sink.flush()
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                failure.append(exc)
            finally:
                sink.offer(None)

        thread = threading.Thread(target=produce, name="import-source-copy", daemon=True)
        thread.start()
        finished = False
        try:
            while (block := ready.get()) is not None:
                yield from block
            finished = True
        finally:
            if not finished:
                stop.set()
                self._conn.cancel()
            thread.join()
        if failure and not stop.is_set():
            exc = failure[0]
            if isinstance(exc, psycopg2.Error):
                lost = isinstance(exc, CONNECTION_ERRORS)
                raise SourceError(
                    f"cannot read the source: {_safe(str(exc), self._url)}", connection_lost=lost
                ) from None
            raise exc

    def stream(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        order_by: Sequence[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """Rows as dicts through a named cursor; ``order_by`` items are the steps' own SQL expressions."""
        query = self._query(table, columns, where, order_by)
        cur = self._conn.cursor(name=f"hearth_import_{next(_cursor_names)}")
        cur.itersize = self.itersize
        try:
            cur.execute(query, tuple(params))
            names: list[str] | None = None
            for row in cur:
                if names is None:  # a named cursor knows its columns once the first batch is fetched
                    names = [column.name for column in cur.description or ()]
                yield dict(zip(names, row, strict=True))
        except psycopg2.Error as exc:
            lost = isinstance(exc, CONNECTION_ERRORS)
            raise SourceError(f"cannot read {table}: {_safe(str(exc), self._url)}", connection_lost=lost) from None
        finally:
            if not cur.closed:
                cur.close()


class _BlockSink:
    """The file ``copy_expert`` writes to: one row per write (the header comes with the first, the trailer alone).

    The rows are queued in blocks (lists of rows), without the header and the trailer.
    """

    def __init__(self, ready: queue.Queue, stop: threading.Event):
        self.ready, self.stop = ready, stop
        self.rows: list[bytes] = []
        self.size = 0
        self.header = True

    def write(self, data: bytes) -> int:
        if self.stop.is_set():
            raise _Stopped()
        row = bytes(data)
        if self.header:
            if not row.startswith(COPY_HEADER):
                raise ValueError("the source's COPY did not begin with the binary COPY header")
            row, self.header = row[len(COPY_HEADER) :], False
        if row and row != COPY_TRAILER:  # a row begins with its field count, never -1
            self.rows.append(row)
            self.size += len(row)
            if self.size >= COPY_BLOCK_BYTES:
                self.flush()
        return len(data)

    def flush(self) -> None:
        if self.rows:
            self.offer(self.rows)
            self.rows, self.size = [], 0

    def offer(self, block: list[bytes] | None) -> None:
        while not self.stop.is_set():
            try:
                self.ready.put(block, timeout=0.1)
                return
            except queue.Full:
                continue


class _Stopped(Exception):
    """The reader left: the COPY is abandoned."""


__all__ = [
    "APPLICATION_NAME",
    "CONNECTION_ERRORS",
    "COPY_HEADER",
    "COPY_TRAILER",
    "ITERSIZE",
    "SourceError",
    "SupabaseSource",
    "redact_message",
    "redact_url",
]
