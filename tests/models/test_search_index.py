"""The search index table and the query planner's alternatives: every path gives the same answer."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from models.db import db
from models.search import EARTH_RADIUS_KM, ListingSearch, SearchFilters, radius_boxes
from models.search.index import LIVE_TABLE
from models.search.rebuild import SearchRebuild
from tests.search_listings import make_listing, make_owner


def _shape(table: str) -> tuple[list, list]:
    columns = db.execute_sql(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull, attstorage FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    ).fetchall()
    indexes = db.execute_sql("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,)).fetchall()
    # Index names carry the generation; the definitions must agree.
    normalised = sorted(definition.split(" ON ", 1)[1].replace(table, "T") for (definition,) in indexes)
    options = db.execute_sql("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()
    return [*columns, options], normalised


def test_a_rebuilt_table_has_the_shape_the_migration_created(database):
    migrated = _shape(LIVE_TABLE)
    rebuild = SearchRebuild()
    table = rebuild.start()
    rebuild.build_indexes()
    assert _shape(table) == migrated
    assert len(migrated[1]) == 12  # primary key and eleven secondary indexes


@hsettings(max_examples=300, deadline=None)
@given(
    lat=st.floats(-89.5, 89.5),
    lon=st.floats(-180, 180),
    radius=st.floats(0.01, 500),
    bearing=st.floats(0, 2 * math.pi),
    fraction=st.floats(0, 1),
)
def test_radius_boxes_hold_every_point_within_the_radius(lat, lon, radius, bearing, fraction):
    # A point at great-circle distance <= radius, in any direction.
    d = radius * fraction / EARTH_RADIUS_KM
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    plat, plon = math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180
    eps = 1e-9
    assert any(
        b[0] - eps <= plon <= b[2] + eps and b[1] - eps <= plat <= b[3] + eps for b in radius_boxes(lat, lon, radius)
    )


def test_radius_boxes_split_at_the_antimeridian():
    boxes = radius_boxes(0.0, 179.99, 50)
    assert len(boxes) == 2 and {boxes[0][2], boxes[1][0]} == {180.0, -180.0}


@pytest.fixture
def street(database):
    """Thirty listings along a street, newest to the east; some mention a pool, in different fields."""
    owner = make_owner()
    listings = []
    for i in range(30):
        kind = i % 5
        listings.append(
            make_listing(
                owner,
                listed_minutes=i // 2,
                list_price=(i % 7) * 1_000_000,
                latitude=30.0,
                longitude=-97.0 + i * 0.001,
                street_name="Pool Lane" if kind == 0 else "Main Street",
                unparsed_address=f"{i} {'Pool Lane' if kind == 0 else 'Main Street'}, Austin",
                features=["Pool"] if kind == 1 else ["Garage"],
                public_remarks="Walk to the pool." if kind == 2 else "Quiet.",
            )
        )
    return listings


def _all_pages(search: ListingSearch, broad_total: int | None = None) -> list[str]:
    ids, after = [], None
    while True:
        page = search.page(after, broad_total, broad_total is not None)
        ids += [row["id"] for row in page.rows]
        if page.next_key is None:
            return ids
        after = page.next_key


@pytest.mark.parametrize("sort", ["relevance", "newest", "price_asc", "price_desc"])
def test_text_pages_are_the_same_whether_walked_or_read_from_gin(street, sort):
    filters = SearchFilters(q="pool")
    from_gin = _all_pages(ListingSearch(filters, sort, limit=4))
    for budget in (1, 3, 7, 1000):
        search = ListingSearch(filters, sort, limit=4, walk_budget=budget)
        assert _all_pages(search, broad_total=10**6) == from_gin, budget
    assert len(from_gin) == 18
    if sort == "relevance":  # address matches, then features, then remarks
        kinds = [next(i for i, x in enumerate(street) if str(x.id) == id_) % 5 for id_ in from_gin]
        assert kinds == [0] * 6 + [1] * 6 + [2] * 6


def test_broad_map_and_distance_queries_take_other_plans_and_the_same_rows(street):
    box = SearchFilters(bbox=(-97.0005, 29.9, -96.985, 30.1))
    assert _all_pages(ListingSearch(box, "newest", limit=4), broad_total=10**6) == _all_pages(
        ListingSearch(box, "newest", limit=4)
    )
    near = SearchFilters(near=(30.0, -97.0), radius_km=2.0)
    rings = _all_pages(ListingSearch(near, "distance", limit=4), broad_total=10**6)
    assert rings == _all_pages(ListingSearch(near, "distance", limit=4))
    assert len(rings) == 21  # 0.001 degrees of longitude is about 96 m here: 20 steps fit in 2 km
    unbounded = SearchFilters(near=(30.0, -97.0))
    assert _all_pages(ListingSearch(unbounded, "distance", limit=7), broad_total=10**6) == _all_pages(
        ListingSearch(unbounded, "distance", limit=7)
    )


def test_broad_newest_first_map_pages_read_from_grid_cells_are_the_same_rows(database):
    """Listings spread over cells (both signs of latitude and longitude, on cell edges): the cell path, the walk
    and GiST agree page by page, for a box, a polygon and a radius, with other filters too."""
    owner = make_owner()
    for i in range(60):
        make_listing(
            owner,
            listed_minutes=i % 17,  # ties on listed_at: the id decides
            list_price=(i % 4) * 1_000_000,
            latitude=round(-0.02 + (i % 5) * 0.01, 2),  # on the cell edges, both sides of the equator
            longitude=round(-0.025 + (i // 5) * 0.005, 3),
        )
    box = SearchFilters(bbox=(-0.021, -0.015, 0.02, 0.01))
    polygon = SearchFilters(polygon=((-0.015, -0.021), (0.01, -0.021), (0.01, 0.02)))
    near = SearchFilters(near=(0.0, 0.0), radius_km=2.5, min_price=1_000_000)
    for filters in (box, polygon, near):
        search = ListingSearch(filters, "newest", limit=4)
        assert search._cells() is not None and len(search._cells()) <= 64
        through_gist = _all_pages(ListingSearch(filters, "newest", limit=4))
        assert len(through_gist) > 8
        assert _all_pages(search, broad_total=10**6) == through_gist
    big = SearchFilters(bbox=(-1.0, -1.0, 1.0, 1.0))  # 40,000 cells: walks the newest-first index
    assert ListingSearch(big, "newest")._cells() is None
    assert _all_pages(ListingSearch(big, "newest", limit=7), broad_total=10**6) == _all_pages(
        ListingSearch(big, "newest", limit=7)
    )


def test_totals_are_exact_up_to_the_bound_then_estimated(street):
    exact = ListingSearch(SearchFilters(), count_bound=30).count()
    assert exact == (30, False)
    total, estimated = ListingSearch(SearchFilters(), count_bound=10).count()
    assert estimated and total >= 11
    facets = ListingSearch(SearchFilters(), count_bound=10).facets()
    assert facets.estimated and facets.total >= 11
    for name, buckets in facets.groups.items():  # scaled to the estimate (within rounding)
        assert abs(sum(bucket["count"] for bucket in buckets) - facets.total) <= len(buckets), name
    result = ListingSearch(SearchFilters(q="pool"), text_count_bound=5, walk_budget=4).run()
    assert result.estimated and result.total >= 6 and len(result.page.rows) == 18
