"""``python -m bench search``: listing search on 1,000,000 listings, and the full rebuild of its index.

The database ``hearth_bench_search`` (on the server of BENCH_DATABASE_URL) is
kept between runs: it is seeded with ``ops.demo.seed_listings`` (ten real US
cities, deterministic) only when its listing count differs from
BENCH_SEARCH_LISTINGS. Every run then rebuilds the search index in full
(``models.search.rebuild.SearchRebuild``, as the ``search.rebuild_index`` job
does) and times it; BENCH_SEARCH_REBUILD=0 skips that when an index exists.

Five kinds of query, BENCH_SEARCH_QUERIES (60) each, parameters drawn from a
fixed seed around the seeded cities:

* ``city``: city + price range + minimum beds, newest first;
* ``map``: a bounding box of about 4 x 3 km, newest first, 100 pins;
* ``text``: a full-text query (features, remark phrases, street names), by relevance;
* ``radius``: 2 km around a point, nearest first;
* ``facets``: a city (some with a property type) with ``facets=true``.

Each query is measured three ways, taking turns:

* ``api``: ``GET /v1/properties`` through the real app in this process
  (``falcon.testing``), result cache off: middleware, rate limiter (one Redis
  call), validation, the index generation (one Redis call), SQL, JSON;
* ``sql``: the statements that request sent to PostgreSQL (captured with a
  peewee query hook), replayed in one transaction over a bare psycopg2
  connection: what the API adds on top is the ratio of the two;
* ``listings table``: the same filters and sort on ``properties``, which has
  no search indexes (the first BENCH_SEARCH_BASELINE_QUERIES (3) of each kind
  only: these take seconds).

``api (cached)`` repeats each query with the Redis page cache on.
Targets: p95 <= 50 ms for every kind through the API; the API at most 1.5x its
own SQL (a throughput ratio >= 0.67); the full rebuild <= 120 s at 1,000,000 listings,
and proportionate at other sizes: <= 120 s x (n log n of the listings, relative to 1,000,000),
which allows for the index builds' sorts (600 s x log(5M)/log(1M) = 670 s at 5,000,000).
"""

from __future__ import annotations

import math
import os
import random
import statistics
import tempfile
import time
import uuid

import psycopg2

from bench import Row, Run, Target, benchmark, stack

DB_NAME = os.environ.get("BENCH_SEARCH_DB", "hearth_bench_search")
KINDS = ("city", "map", "text", "radius", "facets")
P95_TARGET_MS = 50.0
REBUILD_TARGET_S = 120.0
TEXT_QUERIES = (
    "pool",
    "fireplace",
    "hardwood floors",
    "water view",
    "wine cellar",
    "rooftop terrace",
    "guest suite",
    "charming condo",
    "quiet cul-de-sac",
    "walkable neighborhood",
    "near transit",
    "ev charger",
    "congress avenue",
    "colfax",
    "garden patio",
    "mountain view",
    "home office",
    "bright apartment",
    "finished basement",
    "fenced yard dog park",
)


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@benchmark(
    "search",
    "listing search on 1,000,000 listings: API vs its own SQL vs the listings table; full index rebuild",
    targets=tuple(Target(f"{kind}: api", f"{kind}: sql", 0.67) for kind in KINDS),
)
def search(run: Run) -> list[Row]:
    listings = _int("BENCH_SEARCH_LISTINGS", 1_000_000)
    per_kind = _int("BENCH_SEARCH_QUERIES", 60)
    baseline_runs = _int("BENCH_SEARCH_BASELINE_QUERIES", 3)
    url = _prepare_database(run, listings)
    rows = []
    rebuild = _rebuild(run, url, force=os.environ.get("BENCH_SEARCH_REBUILD", "1") != "0", listings=listings)
    if rebuild is not None:
        rows.append(rebuild)
    with tempfile.TemporaryDirectory(prefix="hearth-bench-search-") as var:
        rows += _queries(run, url, var, per_kind, baseline_runs)
    return rows


# --- the database ------------------------------------------------------------------------------


def _prepare_database(run: Run, listings: int) -> str:
    from models import migrate
    from models.db import db, make_database
    from ops.demo import seed_listings

    url = stack._database_url(DB_NAME)
    admin = stack._admin_connection()
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
        exists = cur.fetchone() is not None
    count = -1
    if exists:
        database = make_database(url, max_connections=2)
        db.initialize(database)
        with database.connection_context():
            migrate.upgrade(database)
            count = database.execute_sql("SELECT count(*) FROM properties").fetchone()[0]
        database.close_all()
    if count != listings:
        run.log(f"{DB_NAME}: {count if count >= 0 else 'no database'} listings, want {listings}: seeding afresh")
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{DB_NAME}"')
        database = make_database(url, max_connections=2)
        db.initialize(database)
        with database.connection_context():
            migrate.upgrade(database)
        database.close_all()
        started = time.monotonic()
        seed_listings(url, listings, seed=42)
        run.note(
            f"seeded {listings:,} listings with ops.demo.seed_listings in {time.monotonic() - started:.0f} s "
            f"(database {DB_NAME} is kept for the next run)"
        )
    else:
        run.log(f"{DB_NAME}: reusing {count:,} seeded listings")
    admin.close()
    run.settings["search"] = f"database {DB_NAME}, {listings:,} listings (ops.demo seed 42)"
    return url


def rebuild_target(listings: int) -> float:
    """The rebuild's target for ``listings``: REBUILD_TARGET_S at 1,000,000, scaled by n log n."""
    n, base = max(listings, 2), 1_000_000
    return REBUILD_TARGET_S * (n * math.log(n)) / (base * math.log(base))


def _rebuild(run: Run, url: str, force: bool, listings: int) -> Row | None:
    from models.db import db, make_database
    from models.search.rebuild import SearchRebuild

    database = make_database(url, max_connections=2)
    db.initialize(database)
    try:
        with database.connection_context():
            indexed = database.execute_sql("SELECT count(*) FROM property_search").fetchone()[0]
            if not force and indexed:
                run.log(f"search index holds {indexed:,} rows; BENCH_SEARCH_REBUILD=0: not rebuilt")
                return None
            run.log("rebuilding the search index in full")
            rebuild = SearchRebuild(pages_per_chunk=5000, log=run.log)
            rebuild.start()
            rebuild.load()
            rebuild.build_indexes()
            rebuild.catch_up()
            result = rebuild.swap()
    finally:
        database.close_all()
    seconds = result["seconds"]
    target = rebuild_target(listings)
    verdict = "met" if seconds <= target else "MISSED"
    run.note(
        f"full rebuild of the search index: {result['rows']:,} rows in {seconds:.1f} s "
        f"(target <= {target:.0f} s for {listings:,} listings: {verdict}); steps at {result['timings']}"
    )
    return Row(
        "rebuild (rows/s)",
        result["rows"] / seconds,
        seconds * 1000,
        seconds * 1000,
        requests=1,
        detail={"seconds": seconds, "rows": result["rows"], "timings": result["timings"]},
    )


# --- the queries ------------------------------------------------------------------------------


def _params(kind: str, rng: random.Random) -> dict:
    from ops.demo_cities import CITIES, LAT_HALF_BOX, LON_HALF_BOX

    city = rng.choice(CITIES)
    lat = city.lat + rng.uniform(-LAT_HALF_BOX, LAT_HALF_BOX) / 3
    lon = city.lon + rng.uniform(-LON_HALF_BOX, LON_HALF_BOX) / 3
    if kind == "city":
        low = rng.choice((150_000, 250_000, 350_000, 500_000, 750_000)) * 100
        return {"city": city.name, "min_price": low, "max_price": low * 2, "min_beds": rng.choice((2, 3, 4))}
    if kind == "map":
        return {"bbox": f"{lon - 0.023:.5f},{lat - 0.0135:.5f},{lon + 0.023:.5f},{lat + 0.0135:.5f}", "limit": 100}
    if kind == "text":
        return {"q": rng.choice(TEXT_QUERIES)}
    if kind == "radius":
        return {"near": f"{lat:.5f},{lon:.5f}", "radius_km": 2, "sort": "distance"}
    params = {"city": city.name, "facets": "true"}
    if rng.random() < 0.5:
        params["property_type"] = rng.choice(("Residential", "ResidentialLease", "Land"))
    return params


def _app(url: str, var: str, cache_ttl: int):
    from falcon import testing

    from api.app import create_app
    from services.tokens import generate_private_pem
    from settings import Settings

    environ = {
        "HEARTH_ENV": "development",
        "HEARTH_VAR_DIR": var,
        "DATABASE_URL": url,
        "REDIS_URL": stack.REDIS_URL,
        "REDIS_PREFIX": f"bench:search:{uuid.uuid4().hex[:8]}:",
        "JWT_PRIVATE_KEYS": generate_private_pem(),
        "SEARCH_CACHE_TTL": str(cache_ttl),
        **stack.OVERRIDES,
    }
    settings = Settings.from_env(environ)
    return testing.TestClient(create_app(settings)), settings


def _replay(conn, statements) -> float:
    """Run the captured statements in one transaction; milliseconds."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        for sql, params in statements:
            cur.execute(sql, params or None)
            if cur.description is not None:
                cur.fetchall()
    conn.rollback()
    return (time.perf_counter() - started) * 1000


def _queries(run: Run, url: str, var: str, per_kind: int, baseline_runs: int) -> list[Row]:
    from models.db import connect_args, db

    client, _ = _app(url, var, cache_ttl=0)
    cached_client, _ = _app(url, var, cache_ttl=300)
    raw = psycopg2.connect(**{("dbname" if k == "database" else k): v for k, v in connect_args(url).items()})
    captured: list = []
    hook = lambda event: captured.append((event.sql, event.params))  # noqa: E731
    rng = random.Random(20261126)
    queries = {kind: [_params(kind, rng) for _ in range(per_kind)] for kind in KINDS}
    run.log(f"warming up: every query once ({per_kind * len(KINDS)} requests)")
    for kind in KINDS:
        for params in queries[kind]:
            _get(client, params)

    rows: list[Row] = []
    summary = []
    for kind in KINDS:
        api_ms, sql_ms, cached_ms, totals = [], [], [], []
        for params in queries[kind]:
            captured.clear()
            db.obj.query_hooks.append(hook)
            try:
                started = time.perf_counter()
                body = _get(client, params)
                api_ms.append((time.perf_counter() - started) * 1000)
            finally:
                db.obj.query_hooks.remove(hook)
            totals.append(body["total"])
            sql_ms.append(_replay(raw, list(captured)))
            _get(cached_client, params)
            started = time.perf_counter()
            _get(cached_client, params)
            cached_ms.append((time.perf_counter() - started) * 1000)
        table_ms = [_listings_table(raw, kind, params) for params in queries[kind][:baseline_runs]]
        for label, values, baseline in (
            (f"{kind}: api", api_ms, f"{kind}: sql"),
            (f"{kind}: sql", sql_ms, None),
            (f"{kind}: api (cached)", cached_ms, f"{kind}: api"),
            (f"{kind}: listings table", table_ms, f"{kind}: api"),
        ):
            rows.append(
                Row(
                    label,
                    1000 / statistics.mean(values),
                    percentile(values, 50),
                    percentile(values, 99),
                    baseline=baseline,
                    requests=len(values),
                    detail={"p95_ms": round(percentile(values, 95), 3), "mean_ms": round(statistics.mean(values), 3)},
                )
            )
        p95 = percentile(api_ms, 95)
        summary.append(
            f"{kind:<7} api p50 {percentile(api_ms, 50):6.1f} p95 {p95:6.1f} ms | sql p50 "
            f"{percentile(sql_ms, 50):6.1f} p95 {percentile(sql_ms, 95):6.1f} ms | api/sql "
            f"{statistics.mean(api_ms) / statistics.mean(sql_ms):4.2f}x | cached p50 "
            f"{percentile(cached_ms, 50):5.2f} ms | listings table p50 {percentile(table_ms, 50):8.0f} ms "
            f"({percentile(table_ms, 50) / percentile(api_ms, 50):,.0f}x slower) | p95 <= "
            f"{P95_TARGET_MS:.0f} ms: {'met' if p95 <= P95_TARGET_MS else 'MISSED'} | median total "
            f"{statistics.median(totals):,.0f}"
        )
    raw.close()
    for line in summary:
        run.note(line)
    return rows


def _get(client, params: dict) -> dict:
    resp = client.simulate_get("/v1/properties", params={k: str(v) for k, v in params.items()})
    if resp.status_code != 200:
        raise RuntimeError(f"search failed: {resp.status_code} {resp.text}")
    return resp.json


# --- the same filters on the listings table ----------------------------------------------------------

_PUBLIC = "p.standard_status IN ('Active', 'ComingSoon')"
_LISTED = "COALESCE(p.on_market_timestamp, p.created_at)"
_TSV = (
    "setweight(to_tsvector('english', concat_ws(' ', p.unparsed_address, p.street_name, p.city, "
    "p.state_or_province, p.postal_code)), 'A') || setweight(to_tsvector('english', "
    "array_to_string(p.features, ' ')), 'B') || setweight(to_tsvector('english', "
    "COALESCE(p.public_remarks, '')), 'C')"
)
_HAVERSINE = (
    "2 * 6371.0088 * asin(LEAST(1.0, sqrt(power(sin(radians(p.latitude - %(lat)s) / 2), 2) + "
    "cos(radians(%(lat)s)) * cos(radians(p.latitude)) * power(sin(radians(p.longitude - %(lon)s) / 2), 2))))"
)


def _listings_table(conn, kind: str, params: dict) -> float:
    """The same filter, sort, page and count on ``properties`` (no search indexes); milliseconds."""
    args: dict = {"limit": int(params.get("limit", 20)) + 1}
    order = f"{_LISTED} DESC, p.id DESC"
    if kind in ("city", "facets"):
        where = f"{_PUBLIC} AND lower(btrim(p.city)) = lower(%(city)s)"
        args["city"] = params["city"]
        if kind == "city":
            where += " AND p.list_price BETWEEN %(low)s AND %(high)s AND p.bedrooms_total >= %(beds)s"
            args.update(low=params["min_price"], high=params["max_price"], beds=params["min_beds"])
        if "property_type" in params:
            where += " AND p.property_type = %(type)s"
            args["type"] = params["property_type"]
    elif kind == "map":
        west, south, east, north = (float(x) for x in params["bbox"].split(","))
        where = f"{_PUBLIC} AND p.longitude BETWEEN %(w)s AND %(e)s AND p.latitude BETWEEN %(s)s AND %(n)s"
        args.update(w=west, e=east, s=south, n=north)
    elif kind == "text":
        where = f"{_PUBLIC} AND ({_TSV}) @@ websearch_to_tsquery('english', %(q)s)"
        # The API's relevance: address/city match, then with features, then anywhere; newest first.
        order = (
            f"CASE WHEN ts_filter({_TSV}, '{{a}}') @@ websearch_to_tsquery('english', %(q)s) THEN 3 "
            f"WHEN ts_filter({_TSV}, '{{a,b}}') @@ websearch_to_tsquery('english', %(q)s) THEN 2 ELSE 1 END "
            f"DESC, {_LISTED} DESC, p.id DESC"
        )
        args["q"] = params["q"]
    else:
        lat, lon = (float(x) for x in params["near"].split(","))
        where = f"{_PUBLIC} AND p.latitude IS NOT NULL AND {_HAVERSINE} <= %(radius)s"
        order = f"{_HAVERSINE}, p.id"
        args.update(lat=lat, lon=lon, radius=float(params["radius_km"]))
    # ``where`` and ``order`` are put together from this module's constant fragments; every value
    # in them, and the limit, is a query parameter.
    columns = "p.id, p.list_price, p.city, p.unparsed_address"
    page = f"SELECT {columns} FROM properties p WHERE {where} ORDER BY {order} LIMIT %(limit)s"  # noqa: S608 - constant fragments
    count = f"SELECT count(*) FROM (SELECT 1 FROM properties p WHERE {where} LIMIT 10001) s"  # noqa: S608 - constant fragments
    statements = [(page, args), (count, args)]
    if kind == "facets":
        counted = "property_type, standard_status, bedrooms_total, count(*)"
        groups = "GROUPING SETS ((property_type), (standard_status), (bedrooms_total), ())"
        facets = f"SELECT {counted} FROM properties p WHERE {where} GROUP BY {groups}"  # noqa: S608 - constant fragments
        statements.append((facets, args))
    with conn.cursor() as cur:
        cur.execute("SET jit = off")
    return _replay(conn, statements)
