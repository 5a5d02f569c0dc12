"""A full rebuild of the search index: a new generation built beside the live table, then swapped in.

The table, its projection and indexes are defined in ``models.search.index``;
``SearchRebuild`` (the ``search.rebuild_index`` job, ``tasks.search``) builds
one generation of them and swaps it in without losing a change made meanwhile.
"""

from __future__ import annotations

import secrets
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


class RebuildError(Exception):
    pass


class SearchRebuild:
    """Build a new generation of the index beside the live one and swap it in.

    Steps (the ``search.rebuild_index`` job calls them in order; tests interleave changes):

    1. ``start``: create ``property_search_g<N+1>_<run>`` (primary key only), record
       it as the table being built, and draw ``start_seq`` from the change
       sequence.
    2. ``load``: copy every public listing in chunks of heap pages (``ctid``
       ranges, so the read is sequential) into the table, which has no index
       yet; each chunk is its own transaction with its own snapshot.
    3. ``build_indexes``: drop the loaded rows of listings changed since
       ``start_seq`` (step 4 copies them again; a listing updated during the
       load may have been copied twice), ``VACUUM``, the primary key and the
       secondary indexes, ``ANALYZE``.
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

    def __init__(self, job_id=None, pages_per_chunk: int = 2000, log=None, lock_timeout: str = SWAP_LOCK_TIMEOUT):
        self.job_id = job_id
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
        """Copy every public listing; returns the rows inserted. ``progress(done, total)`` per chunk.

        The table has no index yet (``build_indexes``), so a listing updated while
        the load runs may be copied twice, from two chunks; ``build_indexes`` keeps one.
        """
        columns = ", ".join(COLUMNS)
        sql = (
            f"INSERT INTO {self.table} ({columns}) SELECT {PROJECTION} FROM properties p "  # noqa: S608 - a generated table name and constant SQL; page bounds are params
            f"WHERE p.ctid >= %s::tid AND p.ctid < %s::tid AND {PUBLIC_CONDITION}"
        )
        inserted, first = 0, 0
        total = self.heap_pages()
        # Pages added while loading (new listings) are read too; their reindex jobs would catch them anyway.
        while first < total:
            last = first + self.pages_per_chunk
            with db.atomic():
                cursor = db.execute_sql(sql, (f"({first},0)", f"({last},0)"))
                inserted += cursor.rowcount
            first = last
            if progress is not None:
                progress(min(first, total), total)
            if first >= total:
                total = max(total, self.heap_pages())
        self._mark("load")
        return inserted

    # --- 3 ----------------------------------------------------------------------------------
    def build_indexes(self, progress=None) -> None:
        """Drop the second copies the load may have made, then the primary key and the secondary indexes.

        The heap is vacuumed before any index exists (hint bits and the visibility
        map the index-only scans need, without a pass over every index; GIN's
        cleanup reads a whole index) and analyzed at the end (the statistics of
        the expression indexes come from ``ANALYZE`` after they exist).
        """
        self._drop_changed_copies()
        if not db.in_transaction():
            db.execute_sql(f"VACUUM {self.table}")
        statements = [primary_key_ddl(self.table), *index_ddl(self.table)]
        for index, statement in enumerate(statements):
            started = time.monotonic()
            if index == 0:
                self._add_primary_key(statement)
            else:
                with db.atomic():
                    db.execute_sql(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
                    db.execute_sql(statement)
            self.log(f"search rebuild: {statement.split(' ON ')[0]} in {time.monotonic() - started:.1f} s")
            if progress is not None:
                progress(index + 1, len(statements))
        db.execute_sql(f"ANALYZE {self.table}")
        self._mark("indexes")

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
                db.execute_sql(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
                db.execute_sql(statement)
            return
        except IntegrityError:
            self.log("search rebuild: a listing was copied twice (changed while loading, not marked); keeping one")
        # Not marked as changed (so not in catch_up): keep the copy read last, from the later snapshot.
        with db.atomic():
            db.execute_sql(
                f"DELETE FROM {self.table} WHERE ctid IN (SELECT ctid FROM (SELECT ctid, row_number() "  # noqa: S608 - a generated table name
                "OVER (PARTITION BY id ORDER BY ctid DESC) AS copy FROM "
                f"{self.table}) c WHERE copy > 1)"
            )
            db.execute_sql(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
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
