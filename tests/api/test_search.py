"""``GET /v1/properties``: every filter and sort against known listings, pages, facets, bad input.

Listings are written through the model and indexed directly (``tests.search_listings``);
changes go through the reindex job, as the listings API's do.
"""

from __future__ import annotations

import functools

import pytest

from models.properties import Property
from tests.api.conftest import assert_problem
from tests.search_listings import index_now, make_listing, make_owner, update_listing

AUSTIN = (30.2672, -97.7431)


@pytest.fixture
def homes():
    """Known listings: eight searchable by default, two listed but not by default, four never."""
    h = {}
    owner = make_owner()
    make = functools.partial(make_listing, owner)
    h["a1"] = make(
        city="Austin",
        list_price=30_000_000,
        bedrooms_total=3,
        bathrooms_full=2,
        living_area=1500,
        year_built=1990,
        features=["Pool", "Garage"],
        public_remarks="Sunny home.",
        latitude=AUSTIN[0],
        longitude=AUSTIN[1],
        postal_code="78701",
        listed_minutes=10,
    )
    h["a2"] = make(
        city="Austin",
        list_price=45_000_000,
        bedrooms_total=4,
        bathrooms_full=2,
        bathrooms_half=1,
        living_area=2200,
        year_built=2005,
        features=["Garage", "Fireplace"],
        public_remarks="Close to a community pool.",
        latitude=30.30,
        longitude=-97.70,
        postal_code="78702",
        listed_minutes=20,
    )
    h["a3"] = make(
        city="Austin",
        property_type="ResidentialLease",
        list_price=250_000,
        bedrooms_total=1,
        bathrooms_full=1,
        living_area=700,
        year_built=2015,
        features=["Balcony"],
        public_remarks="Bright condo.",
        latitude=30.26,
        longitude=-97.75,
        postal_code="78701",
        standard_status="ComingSoon",
        listed_minutes=30,
    )
    h["d1"] = make(
        city="Dallas",
        list_price=30_000_000,
        bedrooms_total=3,
        bathrooms_full=2,
        living_area=1600,
        year_built=1985,
        features=["pool"],
        public_remarks="Quiet street.",
        latitude=32.7767,
        longitude=-96.7970,
        postal_code="75201",
        listed_minutes=40,
    )
    h["d2"] = make(
        city="Dallas",
        property_type="Land",
        list_price=15_000_000,
        bedrooms_total=None,
        bathrooms_full=None,
        bathrooms_half=None,
        living_area=None,
        year_built=None,
        features=[],
        public_remarks="Buildable lot.",
        latitude=32.90,
        longitude=-96.90,
        postal_code="75201",
        listed_minutes=10,
    )
    h["h1"] = make(
        city="Houston",
        list_price=90_000_000,
        bedrooms_total=5,
        bathrooms_full=4,
        bathrooms_half=1,
        living_area=3500,
        year_built=2020,
        features=["Pool", "Wine Cellar"],
        public_remarks="Luxury estate.",
        latitude=29.7604,
        longitude=-95.3698,
        postal_code="77002",
        listed_minutes=50,
    )
    h["p1"] = make(
        city="Austin",
        street_name="Pool Street",
        unparsed_address="12 Pool Street, Austin",
        list_price=35_000_000,
        bedrooms_total=2,
        bathrooms_full=1,
        living_area=1100,
        year_built=1970,
        features=[],
        public_remarks="Cottage.",
        latitude=30.25,
        longitude=-97.72,
        postal_code="78704",
        listed_minutes=5,
    )
    h["n1"] = make(city="Austin", list_price=40_000_000, latitude=None, longitude=None, listed_minutes=60)
    h["pending"] = make(city="Austin", standard_status="Pending", list_price=33_000_000, listed_minutes=70)
    h["closed"] = make(
        city="Austin", standard_status="Closed", list_price=31_000_000, close_price=31_000_000, listed_minutes=80
    )
    for minutes, status in enumerate(("Incomplete", "Withdrawn", "Expired", "Canceled"), start=90):
        h[status.lower()] = make(
            city="Austin",
            standard_status=status,
            features=["Pool"],
            public_remarks="A pool.",
            list_price=30_000_000,
            listed_minutes=minutes,
        )
    return h


DEFAULT = {"a1", "a2", "a3", "d1", "d2", "h1", "p1", "n1"}
NEVER = {"incomplete", "withdrawn", "expired", "canceled"}


def search(client, **params) -> dict:
    resp = client.simulate_get("/v1/properties", params={k: str(v) for k, v in params.items()})
    assert resp.status_code == 200, resp.text
    return resp.json


def names(homes, body) -> list[str]:
    by_id = {str(listing.id): name for name, listing in homes.items()}
    return [by_id.get(item["id"], item["id"]) for item in body["items"]]


def tie(homes, *keys, reverse=True) -> list[str]:
    """Listings with equal sort keys come in id order (the sort's direction)."""
    return sorted(keys, key=lambda key: str(homes[key].id), reverse=reverse)


def test_default_search_is_active_and_coming_soon_newest_first(client, homes):
    body = search(client)
    assert names(homes, body) == ["n1", "h1", "d1", "a3", "a2", *tie(homes, "a1", "d2"), "p1"]
    assert (body["total"], body["total_estimated"], body["sort"], body["next_cursor"]) == (8, False, "newest", None)
    first = body["items"][-1]
    assert first["unparsed_address"] == "12 Pool Street, Austin"
    assert (first["latitude"], first["longitude"], first["bathrooms_total"]) == (30.25, -97.72, 1)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"min_price": 30_000_000}, {"a1", "a2", "d1", "h1", "p1", "n1"}),
        ({"max_price": 30_000_000}, {"a1", "a3", "d1", "d2"}),
        ({"min_price": 30_000_000, "max_price": 40_000_000}, {"a1", "d1", "p1", "n1"}),
        ({"min_beds": 4}, {"a2", "h1"}),
        ({"min_baths": 3}, {"a2", "h1"}),
        ({"property_type": "Land,ResidentialLease"}, {"a3", "d2"}),
        ({"status": "Pending"}, {"pending"}),
        ({"status": "Active,Closed"}, DEFAULT - {"a3"} | {"closed"}),
        ({"city": "  AUSTIN "}, {"a1", "a2", "a3", "p1", "n1"}),
        ({"postal_code": "75201"}, {"d1", "d2"}),
        ({"features": "pool,GARAGE"}, {"a1"}),
        ({"features": "POOL"}, {"a1", "d1", "h1"}),
        ({"min_year_built": 2000}, {"a2", "a3", "h1"}),
        ({"max_year_built": 1980}, {"p1"}),
        ({"min_living_area": 2000}, {"a2", "h1"}),
        ({"max_living_area": 1000}, {"a3"}),
        ({"bbox": "-97.8,30.2,-97.6,30.35"}, {"a1", "a2", "a3", "p1"}),
        ({"near": f"{AUSTIN[0]},{AUSTIN[1]}", "radius_km": 5}, {"a1", "a3", "p1"}),
        ({"polygon": "30.2 -97.8,30.35 -97.8,30.35 -97.6,30.2 -97.6"}, {"a1", "a2", "a3", "p1"}),
        ({"polygon": "30.2 -97.8, 30.35 -97.8, 30.2 -97.6, 30.2 -97.8"}, {"a1", "a3", "p1"}),  # a triangle, closed
        ({"q": "wine cellar"}, {"h1"}),
        ({"q": "pool", "sort": "newest"}, {"a1", "a2", "d1", "h1", "p1"}),
        ({"q": "estate -cottage"}, {"h1"}),
        ({"city": "austin", "min_beds": 2, "max_price": 40_000_000}, {"a1", "p1", "n1"}),
    ],
)
def test_each_filter_finds_exactly_its_listings(client, homes, params, expected):
    body = search(client, **params)
    assert set(names(homes, body)) == expected
    assert body["total"] == len(expected) and not body["total_estimated"]


def test_repeated_keys_work_like_commas(client, homes):
    resp = client.simulate_get("/v1/properties", query_string="property_type=Land&property_type=ResidentialLease")
    assert set(names(homes, resp.json)) == {"a3", "d2"}


def test_price_sorts_break_ties_by_id(client, homes):
    ascending = names(homes, search(client, sort="price_asc"))
    assert ascending == ["a3", "d2", *tie(homes, "a1", "d1", reverse=False), "p1", "n1", "a2", "h1"]
    descending = names(homes, search(client, sort="price_desc"))
    assert descending == ["h1", "a2", "n1", "p1", *tie(homes, "a1", "d1"), "d2", "a3"]


def test_distance_sort_is_nearest_first_with_distances(client, homes):
    body = search(client, near=f"{AUSTIN[0]},{AUSTIN[1]}", sort="distance")
    assert names(homes, body) == ["a1", "a3", "p1", "a2", "h1", "d1", "d2"]  # n1 has no location
    distances = [item["distance_km"] for item in body["items"]]
    assert distances == sorted(distances) and distances[0] == 0.0
    assert 230 < distances[4] < 240  # Houston is ~235 km from Austin


def test_relevance_puts_address_matches_first_then_features_then_remarks(client, homes):
    body = search(client, q="pool")
    assert body["sort"] == "relevance"
    assert names(homes, body) == ["p1", "h1", "d1", "a1", "a2"]


@pytest.mark.parametrize(
    "q",
    ["'", "\\", "&|!():*", "a <-> b", '"unclosed', "-", "or or or", "'; DROP TABLE x; --", "ünïcödé", "the", "x" * 200],
)
def test_any_text_is_safe(client, homes, q):
    body = search(client, q=q)
    assert set(names(homes, body)) <= DEFAULT


@pytest.mark.parametrize(
    ("params", "sort"),
    [
        ({}, "newest"),
        ({}, "price_asc"),
        ({}, "price_desc"),
        ({"near": f"{AUSTIN[0]},{AUSTIN[1]}"}, "distance"),
        ({"q": "pool"}, "relevance"),
    ],
)
def test_pages_follow_the_single_page_order(client, homes, params, sort):
    whole = names(homes, search(client, sort=sort, limit=100, **params))
    seen, cursor = [], None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = search(client, sort=sort, limit=2, **params, **extra)
        seen += names(homes, body)
        assert len(body["items"]) <= 2
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == whole


def _walk_pages(client, sort, between, **params) -> list[str]:
    seen, cursor, turn = [], None, 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = search(client, sort=sort, limit=3, **params, **extra)
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        between(turn)
        turn += 1


def _changing_catalogue(jobs, count=18):
    """Listings with many equal sort keys (three per key), and a function that changes them between pages.

    Every sort runs in the order of ``i`` (or its reverse), so after the first
    two pages of three the listings in the middle are still unseen.
    """
    owner = make_owner()
    listings = [
        make_listing(
            owner,
            city="Austin",
            list_price=(10 + i // 3) * 1_000_000,
            listed_minutes=100 + i // 3,
            latitude=30.2 + (i // 3) * 0.01,
            longitude=-97.7,
            features=["Pool"],
        )
        for i in range(count)
    ]
    changes = {"withdrawn": set(), "edited": set()}

    def apply(turn):
        if turn > 3:
            return
        # New listings: one with the same keys as listings already shown, one before everything, one after.
        for minutes, price, lat in (
            (100 + turn, (10 + turn) * 1_000_000, 30.2 + turn * 0.01),
            (10, 1_000_000, 30.1),
            (500, 90_000_000, 31.0),
        ):
            make_listing(
                owner,
                city="Austin",
                list_price=price,
                listed_minutes=minutes,
                latitude=lat,
                longitude=-97.7,
                features=["Pool"],
            )
        if turn > 1:
            return
        # An unseen listing is withdrawn; another changes something other than its sort key.
        gone = listings[8 + turn]
        jobs.submit(update_listing(gone, standard_status="Withdrawn"))
        changes["withdrawn"].add(str(gone.id))
        touched = listings[7 + 3 * turn]
        jobs.submit(update_listing(touched, year_built=2000 + turn, public_remarks=f"Pool house, edit {turn}"))
        changes["edited"].add(str(touched.id))
        assert jobs.run_pending() == 2

    return listings, changes, apply


@pytest.mark.parametrize(
    ("sort", "params"),
    [
        ("newest", {}),
        ("price_asc", {}),
        ("price_desc", {}),
        ("distance", {"near": "30.2,-97.7"}),
        ("relevance", {"q": "pool"}),
    ],
)
def test_pages_never_skip_or_repeat_a_listing_while_listings_change(client, jobs, sort, params):
    listings, changes, apply = _changing_catalogue(jobs)
    seen = _walk_pages(client, sort, apply, **params)
    assert len(seen) == len(set(seen)), "a listing came twice"
    kept = {str(listing.id) for listing in listings} - changes["withdrawn"]
    assert kept <= set(seen), "a listing that stayed was skipped"
    assert not changes["withdrawn"] & set(seen), "a listing withdrawn before its page came"
    assert changes["edited"] <= set(seen)


def test_facets_count_the_current_filter_and_agree_with_the_total(client, homes):
    body = search(client, facets="true")
    facets = body["facets"]
    assert not facets["estimated"] and body["total"] == 8
    for name in ("property_type", "status", "beds", "baths", "price"):
        assert sum(bucket["count"] for bucket in facets[name]) == body["total"], name
    assert facets["property_type"] == [
        {"value": "Residential", "count": 6},
        {"value": "Land", "count": 1},
        {"value": "ResidentialLease", "count": 1},
    ]
    assert facets["status"] == [{"value": "Active", "count": 7}, {"value": "ComingSoon", "count": 1}]
    assert facets["beds"] == [
        {"value": "1", "count": 1},
        {"value": "2", "count": 1},
        {"value": "3", "count": 3},
        {"value": "4", "count": 1},
        {"value": "5+", "count": 1},
        {"value": "unknown", "count": 1},
    ]
    assert [b["count"] for b in facets["baths"]] == [2, 3, 1, 1, 1]  # 1, 2, 3, 4+, unknown
    assert facets["price"][0] == {"min": 0, "max": 9_999_999, "count": 1}
    # Each bucket is what filtering on it finds.
    for bucket in facets["property_type"]:
        assert search(client, property_type=bucket["value"])["total"] == bucket["count"]
    narrowed = search(client, facets="true", city="Austin", min_beds=2)
    assert narrowed["total"] == 4
    assert narrowed["facets"]["beds"] == [
        {"value": "2", "count": 1},
        {"value": "3", "count": 2},
        {"value": "4", "count": 1},
    ]


def test_a_change_shows_in_search_after_its_reindex_job_and_not_before(client, homes, jobs):
    before = search(client, city="Houston")
    assert before["items"][0]["list_price"] == 90_000_000
    job = update_listing(homes["h1"], list_price=80_000_000)
    jobs.submit(job)
    assert search(client, city="Houston")["items"][0]["list_price"] == 90_000_000  # cached or not: not yet
    assert search(client, city="Houston", max_price=85_000_000)["total"] == 0
    assert jobs.run_pending() == 1
    assert search(client, city="Houston")["items"][0]["list_price"] == 80_000_000
    assert search(client, city="Houston", max_price=85_000_000)["total"] == 1


def test_drafts_and_off_market_listings_never_appear_even_to_their_owners(client, homes, jobs, auth_headers):
    owner = homes["incomplete"].owner
    for headers in ({}, auth_headers(owner)):
        for params in (
            {},
            {"q": "pool"},
            {"city": "Austin", "limit": 100},
            {"features": "Pool"},
            {"status": ",".join(("ComingSoon", "Active", "ActiveUnderContract", "Pending", "Closed"))},
        ):
            resp = client.simulate_get("/v1/properties", params=params, headers=headers)
            assert not NEVER & set(names(homes, resp.json)), params
    assert_problem(client.simulate_get("/v1/properties", params={"status": "Incomplete"}), 422, field="query.status[0]")
    # A listing taken off the market leaves the index with its reindex.
    jobs.submit(update_listing(homes["a1"], standard_status="Withdrawn"))
    jobs.run_pending()
    assert "a1" not in names(homes, search(client, limit=100))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bbox": "-181,30,-97,31"}, "query.bbox"),
        ({"bbox": "-98,91,-97,92"}, "query.bbox"),
        ({"bbox": "-97,30,-98,31"}, "query.bbox"),
        ({"bbox": "1,2,3"}, "query.bbox"),
        ({"bbox": "a,b,c,d"}, "query.bbox"),
        ({"bbox": "nan,0,1,1"}, "query.bbox"),
        ({"polygon": "30 -97,31 -97"}, "query.polygon"),
        ({"polygon": ",".join(f"{30 + i / 1000} -97" for i in range(101))}, "query.polygon"),
        ({"polygon": "30 -97,31,32 -96"}, "query.polygon"),
        ({"polygon": "30 -97,31 -200,32 -96"}, "query.polygon"),
        ({"near": "95,0"}, "query.near"),
        ({"near": "30"}, "query.near"),
        ({"radius_km": "5"}, "query.radius_km"),
        ({"near": "30,-97", "radius_km": "0"}, "query.radius_km"),
        ({"near": "30,-97", "radius_km": "501"}, "query.radius_km"),
        ({"min_price": "5", "max_price": "4"}, "query.min_price"),
        ({"min_year_built": "2000", "max_year_built": "1990"}, "query.min_year_built"),
        ({"min_living_area": "20", "max_living_area": "10"}, "query.min_living_area"),
        ({"min_price": "-1"}, "query.min_price"),
        ({"sort": "cheapest"}, "query.sort"),
        ({"sort": "distance"}, "query.sort"),
        ({"sort": "relevance"}, "query.sort"),
        ({"limit": "101"}, "query.limit"),
        ({"limit": "0"}, "query.limit"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "query.cursor"),
        ({"property_type": "Castle"}, "query.property_type[0]"),
        ({"features": ",".join(f"f{i}" for i in range(21))}, "query.features"),
        ({"q": "x" * 201}, "query.q"),
        ({"owner_id": "me"}, "query.owner_id"),
    ],
)
def test_bad_input_is_422_naming_the_parameter(client, params, field):
    assert_problem(client.simulate_get("/v1/properties", params=params), 422, field=field)


def test_a_cursor_only_works_with_the_query_that_issued_it(client, homes):
    cursor = search(client, limit=2)["next_cursor"]
    assert search(client, limit=2, cursor=cursor)["items"]
    for other in ({"sort": "price_asc"}, {"city": "Austin"}):
        assert_problem(
            client.simulate_get("/v1/properties", params={"cursor": cursor, "limit": "2", **other}),
            422,
            field="query.cursor",
        )
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert_problem(client.simulate_get("/v1/properties", params={"cursor": tampered}), 422, field="query.cursor")


def test_pages_are_cached_until_the_index_changes(client, homes, redis, settings):
    first = search(client, city="Dallas")
    keys = list(redis.scan_iter(match=f"{settings.redis_prefix}search:page:*"))
    assert len(keys) == 1 and 0 < redis.ttl(keys[0]) <= settings.search_cache_ttl
    # Written into the index without telling the cache: the cached page is still served...
    Property.update(list_price=1_000).where(Property.id == homes["d2"].id).execute()
    index_now(homes["d2"])
    assert search(client, city="Dallas") == first
    # ...until the data version moves, which every reindex job does after it commits.
    redis.incr(f"{settings.redis_prefix}search:data_version")
    assert 1_000 in [item["list_price"] for item in search(client, city="Dallas")["items"]]
