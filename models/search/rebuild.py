"""A full rebuild of the search index: a new generation built beside the live table, then swapped in.

The table, its projection and indexes are defined in ``models.search.index``;
``SearchRebuild`` (the ``search.rebuild_index`` job, ``tasks.search``) builds
one generation of them and swaps it in without losing a change made meanwhile.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

from peewee import IntegrityError, OperationalError

from models.db import db
from models.search.index import (
    COLUMNS,
    LIVE_TABLE,
    LOCK_SWAP,
    PROJECTION,
    PUBLIC_CONDITION,
    check_table,
    index_ddl,
    index_listings,
    next_change_seq,
    primary_key_ddl,
    read_state,
    table_ddl,
)

# How long the swap waits for a lock before it gives up and tries again (``SearchRebuild.swap``).
SWAP_LOCK_TIMEOUT = "3s"
# Index builds sort (btree) or collect (GIN) in this much memory; with less, each of
# the ten builds over millions of rows spills to disk in many runs.
MAINTENANCE_WORK_MEM = "1GB"
# PostgreSQL's SQLSTATE for a lock not granted within lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"
# Connections that load chunks and build indexes at the same time. Each step is CPU in one
# backend (text vectors, GIN builds); two sessions keep both cores of a small server busy.
SESSIONS = 2
# The text GIN indexes take longest: started first, they overlap the btree builds.
_SLOWEST_FIRST = ("_tsv ", "_tsv_ab ", "_tsv_a ", "_features ")


class RebuildError(Exception):
    pass


class _Pages:
    """Heap page ranges handed out to the loading sessions, one chunk at a time, in order."""

    def __init__(self, per_chunk: int, count):
        self.per_chunk = per_chunk
        self.count = count  # reads the heap's current page count
        self.total = count()
        self.next = 0
        self.done = 0
        self.failed = False
        self.lock = threading.Lock()

    def take(self) -> tuple[int, int] | None:
        with self.lock:
            if self.failed:
                return None
            if self.next >= self.total:
                # Pages added while loading (new listings) are read too; their reindex jobs would catch them anyway.
                self.total = max(self.total, self.count())
                if self.next >= self.total:
                    return None
            first = self.next
            self.next += self.per_chunk
            return first, self.next

    def stop(self) -> None:
        self.failed = True

    def finished(self, first: int, last: int) -> None:
        with self.lock:
            self.done += min(last, self.total) - first


class SearchRebuild:
    """Build a new generation of the index beside the live one and swap it in.

    Steps (the ``search.rebuild_index`` job calls them in order; tests interleave changes):

    1. ``start``: create ``property_search_g<N+1>_<run>`` (no index yet), record
       it as the table being built, and draw ``start_seq`` from the change
       sequence.
    2. ``load``: copy every public listing in chunks of heap pages (``ctid``
       ranges, so the read is sequential) into the table, which has no index
       yet; each chunk is its own transaction with its own snapshot, and
       ``sessions`` connections load chunks at once.
    3. ``build_indexes``: drop the loaded rows of listings changed since
       ``start_seq`` (step 4 copies them again; a listing updated during the
       load may have been copied twice), ``VACUUM``, the primary key, then the
       secondary indexes in ``sessions`` connections at once (the text GIN
       indexes first), ``ANALYZE``.
    4. ``catch_up``: draw ``catch_seq``, then re-copy every listing that is
       dirty now or that a per-listing reindex wrote after ``start_seq``.
    5. ``swap``: in one transaction holding the swap lock exclusively (no
       per-listing reindex is mid-write, none can start): re-copy what became
       dirty or was reindexed after ``catch_seq``, drop the old table, rename
       the new one to ``property_search``, bump the generation.

    Why nothing is lost: a change committed before ``start_seq`` was drawn is
    in every chunk's snapshot. A change committed later is marked dirty in the
    same transaction; until its reindex job finishes the listing is dirty
    (caught by 4 or 5), and when the job finishes it stamps ``done_seq`` from
    the same sequence, which is then above ``start_seq`` (caught by 4) or
    above ``catch_seq`` (caught by 5). A job that starts after the swap writes
    the new table. Searches never wait except for the drop and rename at the
    end, and never see a half-built table.
    """

    def __init__(
        self,
        job_id=None,
        pages_per_chunk: int = 2000,
        log=None,
        lock_timeout: str = SWAP_LOCK_TIMEOUT,
        sessions: int = SESSIONS,
        maintenance_work_mem: str = MAINTENANCE_WORK_MEM,
    ):
        if not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB)", maintenance_work_mem):
            raise ValueError(f"maintenance_work_mem {maintenance_work_mem!r} is not a size like 512MB or 1GB")
        self.job_id = job_id
        self.sessions = sessions
        self.maintenance_work_mem = maintenance_work_mem
        self.lock_timeout = lock_timeout
        self.pages_per_chunk = pages_per_chunk
        self.log = log or (lambda message: None)
        self.table: str | None = None
        self.generation: int | None = None
        self.start_seq: int | None = None
        self.catch_seq: int | None = None
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    # --- 1 ----------------------------------------------------------------------------------
    def start(self) -> str:
        with db.atomic():
            state = read_state(lock=True)
            if state["building_table"]:
                # A rebuild that died half way: its table is useless now.
                db.execute_sql(f"DROP TABLE IF EXISTS {check_table(state['building_table'])}")
            self.generation = state["generation"] + 1
            # Unique per run: a run that lost its job to another must not touch the other's table.
            self.table = f"{LIVE_TABLE}_g{self.generation}_{secrets.token_hex(3)}"
            db.execute_sql(table_ddl(self.table))
            self.start_seq = next_change_seq()
            db.execute_sql(
                "UPDATE search_state SET building_table = %s, rebuild_job_id = %s, rebuild_started_at = now(), "
                "rebuild_start_seq = %s, updated_at = now()",
                (self.table, str(self.job_id) if self.job_id else None, self.start_seq),
            )
        self._mark("start")
        return self.table

    # --- 2 ----------------------------------------------------------------------------------
    def heap_pages(self) -> int:
        return db.execute_sql("SELECT pg_relation_size('properties') / current_setting('block_size')::int").fetchone()[
            0
        ]

    def load(self, progress=None) -> int:
        """Copy every public listing; returns the rows inserted. ``progress(done, total)`` in pages.

        Chunks of heap pages go to ``sessions`` connections in turn, each chunk its
        own transaction with its own snapshot, all taken after ``start_seq`` was
        drawn. The table has no index yet (``build_indexes``), so a listing updated
        while the load runs may be copied twice, from two chunks; ``build_indexes``
        keeps one.
        """
        columns = ", ".join(COLUMNS)
        sql = (
            f"INSERT INTO {self.table} ({columns}) SELECT {PROJECTION} FROM properties p "  # noqa: S608 - a generated table name and constant SQL; page bounds are params
            f"WHERE p.ctid >= %s::tid AND p.ctid < %s::tid AND {PUBLIC_CONDITION}"
        )
        pages = _Pages(self.pages_per_chunk, self.heap_pages)

        def copy(report) -> int:
            inserted = 0
            while (chunk := pages.take()) is not None:
                with db.atomic():
                    inserted += db.execute_sql(sql, (f"({chunk[0]},0)", f"({chunk[1]},0)")).rowcount
                pages.finished(*chunk)
                if report and progress is not None:
                    progress(min(pages.done, pages.total), pages.total)
            return inserted

        inserted: int = sum(self._in_sessions(copy, stop=pages.stop))
        self._mark("load")
        return inserted

    def _in_sessions(self, work, stop) -> list:
        """``work(report)`` in this connection and, outside a transaction, in ``sessions - 1`` more at once.

        Only this thread's call gets ``report=True`` (progress goes to the job row
        from the job's own connection). When one call fails, ``stop()`` makes the
        others return after their current statement. Inside a transaction (the
        tests') other connections could not see its rows: the work runs here alone.
        """
        extra = self.sessions - 1 if not db.in_transaction() else 0
        results: list = [None] * extra
        errors: list[BaseException] = []

        def run(slot: int) -> None:
            try:
                with db.connection_context():
                    results[slot] = work(False)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                errors.append(exc)
                stop()

        threads = [threading.Thread(target=run, args=(slot,), daemon=True) for slot in range(extra)]
        for thread in threads:
            thread.start()
        try:
            mine = work(True)
        except BaseException:
            stop()
            raise
        finally:
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return [mine, *results]

    # --- 3 ----------------------------------------------------------------------------------
    def build_indexes(self, progress=None) -> None:
        """Drop the second copies the load may have made, then the primary key and the secondary indexes.

        The heap is vacuumed before any index exists (hint bits and the visibility
        map the index-only scans need, without a pass over every index; GIN's
        cleanup reads a whole index) and analyzed at the end (the statistics of
        the expression indexes come from ``ANALYZE`` after they exist).
        """
        table = check_table(str(self.table))
        self._drop_changed_copies()
        if not db.in_transaction():
            db.execute_sql(f"VACUUM {table}")
        started = time.monotonic()
        self._add_primary_key(primary_key_ddl(table))
        self.log(f"search rebuild: primary key in {time.monotonic() - started:.1f} s")
        statements = sorted(index_ddl(table), key=self._build_order)
        lock = threading.Lock()
        built = [1]
        if progress is not None:
            progress(1, len(statements) + 1)

        def build(report) -> None:
            while True:
                with lock:
                    if not statements:
                        return
                    statement = statements.pop(0)
                started = time.monotonic()
                with db.atomic():
                    db.execute_sql(f"SET LOCAL maintenance_work_mem = '{self.maintenance_work_mem}'")
                    db.execute_sql(statement)
                self.log(f"search rebuild: {statement.split(' ON ')[0]} in {time.monotonic() - started:.1f} s")
                with lock:
                    built[0] += 1
                if report and progress is not None:
                    progress(built[0], built[0] + len(statements))

        self._in_sessions(build, stop=statements.clear)
        if progress is not None:
            progress(built[0], built[0])
        db.execute_sql(f"ANALYZE {self.table}")
        self._mark("indexes")

    def _build_order(self, statement: str) -> int:
        name = statement.split(" ON ")[0].removeprefix(f"CREATE INDEX {self.table}") + " "
        return _SLOWEST_FIRST.index(name) if name in _SLOWEST_FIRST else len(_SLOWEST_FIRST)

    def _drop_changed_copies(self) -> None:
        # Every listing changed since start_seq is copied again by catch_up (step 4): its rows
        # from the load, one or two, are not needed.
        changed = self._changed_since(self.start_seq) if self.start_seq is not None else []
        if changed:
            with db.atomic():
                db.execute_sql(f"DELETE FROM {self.table} WHERE id = ANY(%s::uuid[])", (changed,))  # noqa: S608 - a generated table name

    def _add_primary_key(self, statement: str) -> None:
        try:
            with db.atomic():
                db.execute_sql(f"SET LOCAL maintenance_work_mem = '{self.maintenance_work_mem}'")
                db.execute_sql(statement)
            return
        except IntegrityError:
            self.log("search rebuild: a listing was copied twice (changed while loading, not marked); keeping one")
        # Not marked as changed (so not in catch_up): keep the copy from the later snapshot. Chunks
        # load in two sessions at once, so the later copy is the one whose transaction began last.
        with db.atomic():
            db.execute_sql(
                f"DELETE FROM {self.table} WHERE ctid IN (SELECT ctid FROM (SELECT ctid, row_number() "  # noqa: S608 - a generated table name
                "OVER (PARTITION BY id ORDER BY indexed_at DESC, ctid DESC) AS copy FROM "
                f"{self.table}) c WHERE copy > 1)"
            )
            db.execute_sql(f"SET LOCAL maintenance_work_mem = '{self.maintenance_work_mem}'")
            db.execute_sql(statement)

    # --- 4 ----------------------------------------------------------------------------------
    def _changed_since(self, seq: int) -> list[str]:
        rows = db.execute_sql(
            "SELECT property_id FROM search_dirty WHERE seq > indexed_seq OR done_seq > %s", (seq,)
        ).fetchall()
        return [str(row[0]) for row in rows]

    def catch_up(self) -> int:
        self.catch_seq = next_change_seq()
        ids = self._changed_since(self.start_seq)
        for start in range(0, len(ids), 1000):
            with db.atomic():
                index_listings(ids[start : start + 1000], self.table)
        self._mark("catch_up")
        return len(ids)

    # --- 5 ----------------------------------------------------------------------------------
    def swap(self, attempts: int = 5) -> dict:
        """Step 5, retried when a lock is not granted in time (see ``_swap_once``)."""
        for attempt in range(1, attempts + 1):
            try:
                return self._swap_once()
            except OperationalError as exc:
                # peewee re-raises the driver's error; the original is the context.
                if getattr(exc.__context__, "pgcode", None) != LOCK_NOT_AVAILABLE or attempt == attempts:
                    raise
                self.log(f"search rebuild: swap waited too long for a lock (attempt {attempt}); trying again")
        raise AssertionError("unreachable")

    def _swap_once(self) -> dict:
        # Dropping the live table waits for the searches reading it, and every search that
        # arrives meanwhile waits behind the drop: give up after SWAP_LOCK_TIMEOUT rather than
        # stall search behind one slow query, and try again.
        with db.atomic():
            db.execute_sql("SELECT set_config('lock_timeout', %s, true)", (self.lock_timeout,))
            db.execute_sql("SELECT pg_advisory_xact_lock(%s, %s)", LOCK_SWAP)
            state = read_state(lock=True)
            if state["building_table"] != self.table:
                raise RebuildError("another rebuild took over; this one stops")
            late = self._changed_since(self.catch_seq)
            index_listings(late, self.table)
            rows = db.execute_sql(f"SELECT count(*) FROM {self.table}").fetchone()[0]  # noqa: S608 - a generated table name
            db.execute_sql(f"DROP TABLE {LIVE_TABLE}")
            db.execute_sql(f"ALTER TABLE {self.table} RENAME TO {LIVE_TABLE}")
            seconds = round(time.monotonic() - self.started, 3)
            db.execute_sql(
                "UPDATE search_state SET generation = %s, building_table = NULL, rebuild_job_id = NULL, "
                "rebuild_started_at = NULL, rebuild_start_seq = NULL, last_rebuild_at = now(), "
                "last_rebuild_job_id = %s, last_rebuild_seconds = %s, last_rebuild_rows = %s, updated_at = now()",
                (self.generation, str(self.job_id) if self.job_id else None, seconds, rows),
            )
        self._mark("swap")
        return {
            "generation": self.generation,
            "rows": rows,
            "late_listings": len(late),
            "seconds": seconds,
            "timings": self.timings,
        }

    def abandon(self) -> None:
        """Drop the half-built table (after a failure or a cancellation)."""
        if self.table is None:
            return
        with db.atomic():
            state = read_state(lock=True)
            if state["building_table"] == self.table:
                db.execute_sql(f"DROP TABLE IF EXISTS {self.table}")
                db.execute_sql(
                    "UPDATE search_state SET building_table = NULL, rebuild_job_id = NULL, "
                    "rebuild_started_at = NULL, rebuild_start_seq = NULL, updated_at = now()"
                )

    def _mark(self, step: str) -> None:
        self.timings[step] = round(time.monotonic() - self.started, 3)
        self.log(f"search rebuild: {step} done at {self.timings[step]} s")


__all__ = ["RebuildError", "SearchRebuild"]
