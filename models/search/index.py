"""The search index: ``property_search``, a denormalized copy of every listed property.

Search reads only this table (``models.search.query``), never ``properties``. One
row per listing whose status is public (``PUBLIC_STATUSES``); drafts and
off-market listings have no row at all, so no query can return them.

* ``index_listings(ids, table)`` writes the rows of some listings from their
  current state in ``properties`` (upsert, or delete when no longer public);
  the per-listing reindex job (``tasks.search``) and a full rebuild use it.
* ``models.search.rebuild.SearchRebuild`` builds a complete new generation,
  ``property_search_g<N>_<run>``, from the statements here, beside the live
  table and swaps it in; see its docstring for why no change made during the
  build is lost.

The live table is always called ``property_search``; its indexes keep the
names they were built with (``property_search_g<N>_<run>_<kind>``).
``search_state`` (one row) holds the generation, the rebuild in progress, and
the last rebuild's figures.
"""

from __future__ import annotations

import math
import re

from models.db import db
from models.listing_rules import PUBLIC_STATUSES

LIVE_TABLE = "property_search"
TEXT_CONFIG = "english"
# Advisory lock keys (namespace, key): every per-listing write to the live table holds
# (SWAP, 0) shared; the swap holds it exclusively. Per listing: (LISTING, hashtext(id)).
LOCK_SWAP = (1_397_001, 0)
LOCK_LISTING = 1_397_002
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
    """``CREATE TABLE`` of an index table, with no index at all (``primary_key_ddl``, then ``index_ddl``).

    A full rebuild loads the table first and indexes it after: inserting millions of
    random uuids into a primary key that outgrows shared buffers made the load 13x
    slower for 5x the rows. ``toast_tuple_target`` moves the text vector out of line,
    so the rows that filters, counts and facets scan stay small (about 40 to a page).
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
        indexed_at timestamptz NOT NULL DEFAULT now()
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


# Map searches sorted newest first, over many matches: a grid of 0.01 x 0.01 degree cells
# (about 1.1 km north-south). A box covers few cells, and the newest rows of each cell come
# straight from the cell index in order (ListingQuery.page_sql), so a page costs a few index
# probes per cell however many listings the box holds. ``grid_cells`` must agree with CELL.
CELLS_PER_DEGREE = 100
CELL = (
    f"((floor(location[1] * {CELLS_PER_DEGREE})::integer + {90 * CELLS_PER_DEGREE}) * {360 * CELLS_PER_DEGREE + 1}"
    f" + floor(location[0] * {CELLS_PER_DEGREE})::integer + {180 * CELLS_PER_DEGREE})"
)


def grid_cells(boxes, most: int) -> list[int] | None:
    """The cells (``CELL``) holding every point of the boxes (min_lon, min_lat, max_lon, max_lat).

    None when they are more than ``most``.
    """
    cells: set[int] = set()
    for min_lon, min_lat, max_lon, max_lat in boxes:
        rows = range(math.floor(min_lat * CELLS_PER_DEGREE), math.floor(max_lat * CELLS_PER_DEGREE) + 1)
        columns = range(math.floor(min_lon * CELLS_PER_DEGREE), math.floor(max_lon * CELLS_PER_DEGREE) + 1)
        if len(cells) + len(rows) * len(columns) > most:
            return None
        for row in rows:
            base = (row + 90 * CELLS_PER_DEGREE) * (360 * CELLS_PER_DEGREE + 1) + 180 * CELLS_PER_DEGREE
            cells.update(base + column for column in columns)
    return sorted(cells)


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
    ("cell_newest", f"(({CELL}), listed_at, id) {_covering('listed_at', 'id')}"),
    # Full text: every field; address/city only; address/city and features (relevance tiers).
    ("tsv", "USING gin (tsv)"),
    ("tsv_a", "USING gin (ts_filter(tsv, '{a}'))"),
    ("tsv_ab", "USING gin (ts_filter(tsv, '{a,b}'))"),
    # Features, all of.
    ("features", "USING gin (feature_keys)"),
)


def primary_key_ddl(name: str) -> str:
    check_table(name)
    return f"ALTER TABLE {name} ADD CONSTRAINT {name}_pkey PRIMARY KEY (id)"


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


__all__ = [
    "CELL",
    "COLUMNS",
    "LIVE_TABLE",
    "LOCK_SWAP",
    "PROJECTION",
    "PUBLIC_CONDITION",
    "check_table",
    "current_generation",
    "grid_cells",
    "hold_swap_shared",
    "index_ddl",
    "index_listings",
    "lock_listing",
    "next_change_seq",
    "primary_key_ddl",
    "read_state",
    "table_ddl",
]
