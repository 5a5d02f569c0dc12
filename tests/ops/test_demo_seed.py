"""``hearth demo seed``: deterministic, fast, and realistic enough to demo search on."""

from __future__ import annotations

import statistics
import time

import msgspec
import pytest

from api.schemas.properties import PropertyView
from models.db import db
from models.listing_rules import PUBLIC_STATUSES, TRANSITIONS
from models.properties import Property, PropertyHistory
from ops import demo, demo_cities, demo_data
from tests.ops.test_cli import database_env, hearth, query  # noqa: F401 (a fixture)

N = 20_000


def _fingerprint() -> tuple:
    """Every seeded column of every listing and history row, hashed in the database."""
    columns = ", ".join(demo_data.COLUMNS)
    listings = db.execute_sql(
        f"SELECT count(*), md5(string_agg(p::text, '|' ORDER BY p.id)) FROM (SELECT {columns} FROM properties) p"  # noqa: S608 - the seeder's own column names
    ).fetchone()
    history = db.execute_sql(
        "SELECT count(*), md5(string_agg(concat_ws(',', property_id, at, actor_id, field, old_value, new_value),"
        " '|' ORDER BY property_id, at, field, new_value)) FROM property_history"
    ).fetchone()
    return listings, history


def test_the_same_seed_gives_the_same_rows_and_another_seed_other_rows(database):
    with db.atomic() as first:
        started = time.perf_counter()
        assert demo.seed_listings(db, N, seed=7) == N
        took = time.perf_counter() - started
        once = _fingerprint()
        first.rollback()
    # A generous bound that only an accidental row-by-row path would break (COPY does ~1 s here).
    assert took < 20, f"seeding {N} listings took {took:.1f} s"
    with db.atomic() as second:
        demo.seed_listings(db, N, seed=7)
        assert _fingerprint() == once
        second.rollback()
    with db.atomic() as other:
        demo.seed_listings(db, 1000, seed=8)
        assert _fingerprint()[0][1] != once[0][1]
        other.rollback()
    assert once[0][0] == N and once[1][0] >= 2 * N


def test_seeding_twice_with_one_seed_is_refused(database):
    demo.seed_listings(db, 10, seed=3)
    with pytest.raises(demo.SeedError, match="already in this database"):
        demo.seed_listings(db.connection(), 10, seed=3)  # a bare psycopg2 connection works as well
    assert Property.select().count() == 10


def test_the_listings_are_spread_plausible_and_valid(database):
    demo.seed_listings(db, N, seed=11)
    rows = list(
        Property.select(
            Property.city,
            Property.latitude,
            Property.longitude,
            Property.property_type,
            Property.list_price,
            Property.living_area,
            Property.bedrooms_total,
            Property.standard_status,
            Property.close_price,
            Property.close_date,
            Property.on_market_timestamp,
        ).tuples()
    )
    assert len(rows) == N
    boxes = {c.name: c for c in demo_cities.CITIES}
    total_weight = sum(c.weight for c in demo_cities.CITIES)
    by_city: dict[str, list] = {}
    for row in rows:
        by_city.setdefault(row[0], []).append(row)
    # Every city is there, in about its share.
    assert set(by_city) == set(boxes)
    for name, city_rows in by_city.items():
        assert abs(len(city_rows) / N - boxes[name].weight / total_weight) < 0.015, name
        for _, lat, lon, *_ in city_rows:
            assert abs(lat - boxes[name].lat) < demo_cities.LAT_HALF_BOX
            assert abs(lon - boxes[name].lon) < demo_cities.LON_HALF_BOX
    assert all(row[4] > 0 for row in rows)
    # Sale prices: sane medians, and dearer where a square foot costs more.
    medians = {
        name: statistics.median(r[4] for r in city_rows if r[3] == "Residential") for name, city_rows in by_city.items()
    }
    assert all(150_000_00 < price < 2_000_000_00 for price in medians.values()), medians
    assert medians["San Diego"] > medians["Boston"] > medians["Seattle"] > medians["Chicago"]
    rents = [r[4] for r in rows if r[3] == "ResidentialLease"]
    assert 800_00 < statistics.median(rents) < 5_000_00
    # Bigger homes have more bedrooms.
    homes = [(r[5], r[6]) for r in rows if r[3] == "Residential"]
    assert statistics.correlation([a for a, _ in homes], [b for _, b in homes]) > 0.5
    # Statuses: mostly on the market; closing figures exactly where closed; on market once listed.
    statuses = [r[7] for r in rows]
    assert statuses.count("Active") / N > 0.4 and sum(s in PUBLIC_STATUSES for s in statuses) / N > 0.8
    for row in rows:
        assert (row[7] == "Closed") == (row[8] is not None) == (row[9] is not None)
        if row[7] in ("Incomplete", "ComingSoon"):
            assert row[10] is None
        elif row[7] != "Canceled":  # a draft can be canceled before it was ever on the market
            assert row[10] is not None


def test_history_follows_the_transition_table_and_matches_each_listing(database):
    demo.seed_listings(db, 2000, seed=5)
    moves = (
        PropertyHistory.select(PropertyHistory.old_value, PropertyHistory.new_value)
        .where((PropertyHistory.field == "standard_status") & PropertyHistory.old_value.is_null(False))
        .tuples()
    )
    assert all(new in TRANSITIONS[old] for old, new in moves)
    mismatched = db.execute_sql("""
        SELECT count(*) FROM properties p WHERE
          p.version <> (SELECT count(*) - 1 FROM property_history h WHERE h.property_id = p.id)
          OR p.list_price::text <> (SELECT new_value FROM property_history h WHERE h.property_id = p.id
                                    AND field = 'list_price' ORDER BY at DESC, id DESC LIMIT 1)
          OR p.standard_status <> (SELECT new_value FROM property_history h WHERE h.property_id = p.id
                                   AND field = 'standard_status' ORDER BY at DESC, id DESC LIMIT 1)
    """).fetchone()[0]
    assert mismatched == 0
    # What the API would show for a seeded listing passes its own response schema.
    for listing in Property.select().limit(200):
        msgspec.convert(listing.view(), PropertyView)


def test_the_command_seeds_and_queues_one_search_rebuild(database_env):
    assert hearth("db", "upgrade", env=database_env).returncode == 0
    env = dict(database_env, REDIS_URL="redis://127.0.0.1:1/0")  # no broker: the job waits for the sweep
    result = hearth("demo", "seed", "--listings", "300", "--seed", "9", env=env)
    assert result.returncode == 0, result.stderr
    assert "seeded 300 listings (seed 9)" in result.stdout
    assert query(env, "SELECT count(*) FROM properties") == [(300,)]
    assert query(env, "SELECT kind, status FROM jobs") == [("search.rebuild_index", "queued")]
    again = hearth("demo", "seed", "--listings", "300", "--seed", "9", env=env)
    assert again.returncode == 1 and "already in this database" in again.stderr
    assert query(env, "SELECT count(*) FROM properties") == [(300,)]
