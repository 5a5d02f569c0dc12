"""The search index: ``property_search``, a denormalized copy of every listed property.

Search reads only this table (``models.search.query``), never ``properties``. One
row per listing whose status is public (``PUBLIC_STATUSES``); drafts and
off-market listings have no row at all, so no query can return them.

* ``index_listings(ids, table)`` writes the rows of some listings from their
  current state in ``properties`` (upsert, or delete when no longer public);
  the per-listing reindex job (``tasks.search``) and a full rebuild use it.
* ``SearchRebuild`` builds a complete new generation, ``property_search_g<N>_<run>``,
  beside the live table and swaps it in; see its docstring for why no change
  made during the build is lost.

The live table is always called ``property_search``; its indexes keep the
names they were built with (``property_search_g<N>_<run>_<kind>``).
``search_state`` (one row) holds the generation, the rebuild in progress, and
the last rebuild's figures.
"""

from __future__ import annotations

import re
import secrets
import time

from peewee import OperationalError

from models.db import db
from models.listing_rules import PUBLIC_STATUSES

LIVE_TABLE = "property_search"
TEXT_CONFIG = "english"
# Advisory lock keys (namespace, key): every per-listing write to the live table holds
# (SWAP, 0) shared; the swap holds it exclusively. Per listing: (LISTING, hashtext(id)).
LOCK_SWAP = (1_397_001, 0)
LOCK_LISTING = 1_397_002
SWAP_LOCK_TIMEOUT = "3s"
LOCK_NOT_AVAILABLE = "55P03"
_TABLE_NAME = re.compile(r"^property_search(_g[0-9]{1,9}(_[0-9a-f]{1,8})?)?$")

# Columns in table order. The projection below yields them in the same order.
COLUMNS = (
    "id",
    "version",
    "standard_status",
    "property_type",
    "property_sub_type",
    "currency",
    "list_price",
    "bedrooms_total",
    "bathrooms_total",
    "bathrooms_full",
    "bathrooms_half",
    "living_area",
    "living_area_units",
    "year_built",
    "address",
    "city",
    "city_key",
    "state_or_province",
    "postal_code",
    "country",
    "location",
    "features",
    "feature_keys",
    "listed_at",
    "modified_at",
    "tsv",
)

_PUBLIC = ", ".join(f"'{status}'" for status in PUBLIC_STATUSES)

# properties (alias p) → one index row. Kept as one SQL expression list so the
# bulk build and the per-listing writes can never disagree.
PROJECTION = f"""
    p.id, p.version, p.standard_status, p.property_type, p.property_sub_type, p.currency, p.list_price,
    p.bedrooms_total,
    CASE WHEN p.bathrooms_full IS NULL AND p.bathrooms_half IS NULL THEN NULL
         ELSE COALESCE(p.bathrooms_full, 0) + COALESCE(p.bathrooms_half, 0) END,
    p.bathrooms_full, p.bathrooms_half, p.living_area, p.living_area_units, p.year_built,
    p.unparsed_address, p.city, lower(btrim(p.city)), p.state_or_province, upper(btrim(p.postal_code)), p.country,
    CASE WHEN p.latitude IS NOT NULL AND p.longitude IS NOT NULL THEN point(p.longitude, p.latitude) END,
    p.features, lower(p.features::text)::text[],
    COALESCE(p.on_market_timestamp, p.created_at), p.modification_timestamp,
    setweight(to_tsvector('{TEXT_CONFIG}', concat_ws(' ', p.unparsed_address, p.street_name, p.city,
                                                 p.state_or_province, p.postal_code)), 'A')
    || setweight(to_tsvector('{TEXT_CONFIG}', array_to_string(p.features, ' ')), 'B')
    || setweight(to_tsvector('{TEXT_CONFIG}', COALESCE(p.public_remarks, '')), 'C')
"""
PUBLIC_CONDITION = f"p.standard_status IN ({_PUBLIC})"


def check_table(name: str) -> str:
    """``name`` if it is the live table or a generation table (names go into SQL text)."""
    if not _TABLE_NAME.match(name):
        raise ValueError(f"not a search index table: {name!r}")
    return name


def table_ddl(name: str) -> str:
    """``CREATE TABLE`` of an index table (primary key only; see ``index_ddl``).

    ``toast_tuple_target`` moves the text vector out of line, so the rows that
    filters, counts and facets scan stay small (about 40 to a page).
    """
    check_table(name)
    return f"""
    CREATE TABLE {name} (
        id uuid NOT NULL,
        version integer NOT NULL,
        standard_status text NOT NULL,
        property_type text NOT NULL,
        property_sub_type text,
        currency text NOT NULL,
        list_price bigint NOT NULL,
        bedrooms_total smallint,
        bathrooms_total smallint,
        bathrooms_full smallint,
        bathrooms_half smallint,
        living_area integer,
        living_area_units text NOT NULL,
        year_built smallint,
        address text,
        city text NOT NULL,
        city_key text NOT NULL,
        state_or_province text,
        postal_code text,
        country text NOT NULL,
        location point,
        features text[] NOT NULL,
        feature_keys text[] NOT NULL,
        listed_at timestamptz NOT NULL,
        modified_at timestamptz NOT NULL,
        tsv tsvector NOT NULL,
        indexed_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT {name}_pkey PRIMARY KEY (id)
    ) WITH (toast_tuple_target = 128);
    ALTER TABLE {name} ALTER COLUMN tsv SET STORAGE EXTERNAL;
    """


# The small columns most filters, sorts and facets use. Carried in the btree and GiST
# indexes (INCLUDE), so counts, facets and the choice of a page's rows are index-only
# scans; the wide row (text vector, card fields) is read only for the rows of the page.
COVERED = (
    "standard_status",
    "property_type",
    "list_price",
    "bedrooms_total",
    "bathrooms_total",
    "living_area",
    "year_built",
    "listed_at",
    "location",
    "id",
)


def _covering(*keys: str) -> str:
    return "INCLUDE (" + ", ".join(column for column in COVERED if column not in keys) + ")"


# Secondary indexes, one per kind of query (docs/search.md): (suffix, definition).
INDEXES = (
    # Newest first and price order, alone or within a city.
    ("newest", f"(listed_at, id) {_covering('listed_at', 'id')}"),
    ("city_newest", f"(city_key, listed_at, id) {_covering('listed_at', 'id')}"),
    ("price", f"(list_price, id) {_covering('list_price', 'id')}"),
    ("city_price", f"(city_key, list_price, id) {_covering('list_price', 'id')}"),
    ("postal", "(postal_code, listed_at, id)"),
    # Map, radius and polygon searches (containment in a box or polygon).
    ("location", f"USING gist (location) {_covering('location')}"),
    # Full text: every field; address/city only; address/city and features (relevance tiers).
    ("tsv", "USING gin (tsv)"),
    ("tsv_a", "USING gin (ts_filter(tsv, '{a}'))"),
    ("tsv_ab", "USING gin (ts_filter(tsv, '{a,b}'))"),
    # Features, all of.
    ("features", "USING gin (feature_keys)"),
)


def index_ddl(name: str) -> list[str]:
    """The secondary indexes of a generation table, named after it (index names are schema-wide)."""
    check_table(name)
    statements = []
    for suffix, definition in INDEXES:
        using = "" if definition.startswith("USING") else "USING btree "
        statements.append(f"CREATE INDEX {name}_{suffix} ON {name} {using}{definition}")
    return statements


def _upsert_sql(table: str) -> str:
    check_table(table)
    columns = ", ".join(COLUMNS)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in COLUMNS[1:])
    return f"""
    WITH src AS (SELECT {PROJECTION} FROM properties p WHERE p.id = ANY(%(ids)s::uuid[]) AND {PUBLIC_CONDITION}),
         gone AS (DELETE FROM {table} t WHERE t.id = ANY(%(ids)s::uuid[])
                  AND NOT EXISTS (SELECT 1 FROM src WHERE src.id = t.id) RETURNING t.id)
    INSERT INTO {table} ({columns}) SELECT * FROM src
    ON CONFLICT (id) DO UPDATE SET {updates}, indexed_at = now()
    """  # noqa: S608 - a checked table name and this module's constant SQL; the ids are a parameter


def index_listings(ids, table: str = LIVE_TABLE) -> None:
    """Make ``table``'s rows of ``ids`` match the listings' current state.

    A public listing is upserted; a draft, an off-market or a deleted listing
    loses its row. Callers hold whatever locks their protocol needs.
    """
    ids = [str(value) for value in ids]
    if ids:
        db.execute_sql(_upsert_sql(table), {"ids": ids})


def lock_listing(property_id) -> None:
    """Serialise writers of one listing's index row until the transaction ends."""
    db.execute_sql("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_LISTING, str(property_id)))


def hold_swap_shared() -> None:
    """Keep a full rebuild from swapping tables until the transaction ends."""
    db.execute_sql("SELECT pg_advisory_xact_lock_shared(%s, %s)", LOCK_SWAP)


# --- search_state ------------------------------------------------------------------------

STATE_FIELDS = (
    "generation",
    "building_table",
    "rebuild_job_id",
    "rebuild_started_at",
    "rebuild_start_seq",
    "last_rebuild_at",
    "last_rebuild_job_id",
    "last_rebuild_seconds",
    "last_rebuild_rows",
)


def read_state(lock: bool = False) -> dict:
    sql = f"SELECT {', '.join(STATE_FIELDS)} FROM search_state" + (" FOR UPDATE" if lock else "")  # noqa: S608 - constant column names
    row = db.execute_sql(sql).fetchone()
    return dict(zip(STATE_FIELDS, row, strict=True))


def current_generation() -> int:
    return db.execute_sql("SELECT generation FROM search_state").fetchone()[0]


def next_change_seq() -> int:
    return db.execute_sql("SELECT nextval('search_change_seq')").fetchone()[0]


class RebuildError(Exception):
    pass


class SearchRebuild:
    """Build a new generation of the index beside the live one and swap it in.

    Steps (the ``search.rebuild_index`` job calls them in order; tests interleave changes):

    1. ``start``: create ``property_search_g<N+1>_<run>`` (primary key only), record
       it as the table being built, and draw ``start_seq`` from the change
       sequence.
    2. ``load``: copy every public listing in chunks of heap pages (``ctid``
       ranges, so the read is sequential); each chunk is its own transaction
       with its own snapshot, and skips rows already present.
    3. ``build_indexes``: the secondary indexes, then ``VACUUM (ANALYZE)``.
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
        """Copy every public listing; returns the rows inserted. ``progress(done, total)`` per chunk."""
        columns = ", ".join(COLUMNS)
        sql = (
            f"INSERT INTO {self.table} ({columns}) SELECT {PROJECTION} FROM properties p "  # noqa: S608 - a generated table name and constant SQL; page bounds are params
            f"WHERE p.ctid >= %s::tid AND p.ctid < %s::tid AND {PUBLIC_CONDITION} "
            f"ON CONFLICT (id) DO NOTHING"
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
        statements = index_ddl(self.table)
        for index, statement in enumerate(statements):
            with db.atomic():
                db.execute_sql("SET LOCAL maintenance_work_mem = '256MB'")
                db.execute_sql(statement)
            if progress is not None:
                progress(index + 1, len(statements))
        if db.in_transaction():
            db.execute_sql(f"ANALYZE {self.table}")
        else:
            # Sets hint bits and the visibility map now (index-only scans need it), instead of
            # leaving the first searches to write every page.
            db.execute_sql(f"VACUUM (ANALYZE) {self.table}")
        self._mark("indexes")

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


__all__ = [
    "COLUMNS",
    "LIVE_TABLE",
    "PROJECTION",
    "RebuildError",
    "SearchRebuild",
    "current_generation",
    "hold_swap_shared",
    "index_ddl",
    "index_listings",
    "lock_listing",
    "read_state",
    "table_ddl",
]
