"""Listing search over the index table ``property_search`` (``models.search_index``).

``ListingSearch(filters, sort, limit).run(after, facets)`` answers one search:

* the total: exact up to ``COUNT_BOUND`` (a ``LIMIT``-ed count), above it the
  planner's estimate, flagged as estimated (a text query: exact up to
  ``TEXT_COUNT_BOUND``, see ``_run_text``); with ``facets``, counts per
  property type, status, beds, baths and price band under the same filter
  (exact when the total is, else from a page sample scaled to the estimate);
* one page in the sort order, keyset-paginated on ``(sort key, id)``: ``after``
  is the last row's key from the previous page, so listings added or removed
  meanwhile never shift a page, and a listing whose sort key does not change
  is returned exactly once however the others change.

The total comes first because it tells how broad the filter is, and the page
query is shaped by that (``_page_rows``): a map filter matching more than the
bound is not read through the GiST index (sorting every match would cost more
than walking the sort order), and a distance sort over many matches widens a
ring around the centre until it holds a page.

Only public statuses are in the index at all, and ``statuses`` may only name
those, so drafts and off-market listings never appear, to anyone.
"""
from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass

from models.db import db
from models.search_facets import PRICE_BANDS, Facets, facet_groups, facet_select
from models.search_filters import (DEFAULT_STATUSES, EARTH_RADIUS_KM, SearchFilters, box_literal, city_key,
                                   feature_key, postal_key, radius_boxes)
from models.search_index import LIVE_TABLE, TEXT_CONFIG

SORTS = ("newest", "price_asc", "price_desc", "distance", "relevance")
COUNT_BOUND = 10_000
# A text match cannot be counted from an index (GIN has no index-only scans): every
# candidate row is read. So a text query is counted exactly only up to TEXT_COUNT_BOUND,
# and not at all when its matches are expected at three times that or more.
TEXT_COUNT_BOUND = 1_000
# An estimated facet is computed from a sample expected to hold about this many matches,
# reading at most this share of the table.
FACET_SAMPLE_ROWS = 2_000
FACET_SAMPLE_MAX_PERCENT = 2.0
FACET_SAMPLE_MIN_PAGES = 200

_TSQUERY = f"websearch_to_tsquery('{TEXT_CONFIG}', %(q)s)"
_DISTANCE = (f"(2 * {EARTH_RADIUS_KM} * asin(LEAST(1.0, sqrt("
             "power(sin(radians(location[1] - %(near_lat)s) / 2), 2) + cos(radians(%(near_lat)s)) "
             "* cos(radians(location[1])) * power(sin(radians(location[0] - %(near_lon)s) / 2), 2)))))")
# sort → (key expression, direction, SQL type of the key in a cursor). Relevance is
# (tier, listed_at): see ``RELEVANCE_TIERS``.
_SORT_KEYS = {
    "newest": ("listed_at", "DESC", "timestamptz"),
    "price_asc": ("list_price", "ASC", "bigint"),
    "price_desc": ("list_price", "DESC", "bigint"),
    "distance": (_DISTANCE, "ASC", "float8"),
    "relevance": ("listed_at", "DESC", "timestamptz"),
}
# Relevance: the best group of fields that matches the whole query by itself, by the weights
# of the text vector: address and city (A), then with the features (A+B), then anywhere
# (remarks, C); newest first within a tier. Each tier is an indexed condition (expression
# GIN indexes on ts_filter), so a page costs a few index probes however many listings
# match, where ordering by ts_rank would rank every match (150 ms for a common word).
_IN_A = f"ts_filter(tsv, '{{a}}') @@ {_TSQUERY}"
_IN_AB = f"ts_filter(tsv, '{{a,b}}') @@ {_TSQUERY}"
RELEVANCE_TIERS = ((3, _IN_A), (2, f"{_IN_AB} AND NOT {_IN_A}"), (1, f"NOT {_IN_AB}"))
CARD_COLUMNS = ("id", "standard_status", "property_type", "property_sub_type", "currency", "list_price",
                "bedrooms_total", "bathrooms_total", "bathrooms_full", "bathrooms_half", "living_area",
                "living_area_units", "year_built", "address", "city", "state_or_province", "postal_code",
                "country", "location[1]", "location[0]", "features", "listed_at", "modified_at")
# A text query reads at most this many rows in sort order before it asks the GIN index.
WALK_BUDGET = 2000
# What added to a sort key leaves it unchanged but hides it from the index (see _text_rows).
_ZERO = {"newest": "interval '0 s'", "relevance": "interval '0 s'", "price_asc": "0", "price_desc": "0"}
WORK_MEM = "32MB"
STATEMENT_TIMEOUT = "10s"


@dataclass
class Page:
    rows: list[dict]
    next_key: list | None  # the last row's sort key values and id, when there may be more


@dataclass
class SearchResult:
    page: Page
    total: int
    estimated: bool
    facets: Facets | None = None


class ListingSearch:
    def __init__(self, filters: SearchFilters, sort: str = "newest", limit: int = 20, table: str = LIVE_TABLE, *,
                 count_bound: int = COUNT_BOUND, text_count_bound: int = TEXT_COUNT_BOUND,
                 walk_budget: int = WALK_BUDGET):
        """``count_bound``, ``text_count_bound`` and ``walk_budget`` are tuning knobs (tests shrink them)."""
        if sort not in SORTS:
            raise ValueError(f"unknown sort {sort!r}")
        if sort == "distance" and filters.near is None:
            raise ValueError("distance sort needs near")
        if sort == "relevance" and not filters.q:
            raise ValueError("relevance sort needs q")
        self.filters = filters
        self.sort = sort
        self.limit = limit
        self.table = table
        self.count_bound, self.text_count_bound, self.walk_budget = count_bound, text_count_bound, walk_budget
        self.matches: int | None = None  # the exact count, when known (see page)
        self.density: float | None = None  # share of the rows a text query's first walk read that matched
        self.params: dict = {}
        self.text = None
        if filters.q:
            self.params["q"] = filters.q
            # A query of stop words only matches everything rather than nothing.
            self.text = f"(numnode({_TSQUERY}) = 0 OR tsv @@ {_TSQUERY})"
        # Every condition but the text one (a text query walks these in sort order, see _text_rows).
        self.base = self._where(indexed_geo=True)
        self.where = self.base + (f" AND {self.text}" if self.text else "")
        # The same filter with its map conditions hidden from the GiST index (broad filters).
        self.where_unindexed_geo = self._where(indexed_geo=False) + (f" AND {self.text}" if self.text else "")

    # --- SQL ---------------------------------------------------------------------------------

    def _where(self, indexed_geo: bool, radius_km: float | None = None) -> str:
        f, params = self.filters, self.params
        # ``location + point '(0,0)'`` is the same point, but not the indexed column.
        location = "location" if indexed_geo else "(location + point '(0,0)')"
        clauses = ["standard_status = ANY(%(statuses)s)"]
        params["statuses"] = list(f.statuses)
        for name, column, op in (("min_price", "list_price", ">="), ("max_price", "list_price", "<="),
                                 ("min_beds", "bedrooms_total", ">="), ("min_baths", "bathrooms_total", ">="),
                                 ("min_year_built", "year_built", ">="), ("max_year_built", "year_built", "<="),
                                 ("min_living_area", "living_area", ">="),
                                 ("max_living_area", "living_area", "<=")):
            value = getattr(f, name)
            if value is not None:
                params[name] = value
                clauses.append(f"{column} {op} %({name})s")
        if f.property_types:
            params["types"] = list(f.property_types)
            clauses.append("property_type = ANY(%(types)s)")
        if f.city:
            params["city"] = city_key(f.city)
            clauses.append("city_key = %(city)s")
        if f.postal_code:
            params["postal"] = postal_key(f.postal_code)
            clauses.append("postal_code = %(postal)s")
        if f.features:
            params["features"] = sorted({feature_key(x) for x in f.features})
            clauses.append("feature_keys @> %(features)s::text[]")
        if f.bbox:
            params["bbox"] = box_literal(f.bbox)
            clauses.append(f"{location} <@ %(bbox)s::box")
        if f.polygon:
            params["polygon"] = "(" + ",".join(f"({lon!r},{lat!r})" for lat, lon in f.polygon) + ")"
            clauses.append(f"{location} <@ %(polygon)s::polygon")
        if f.near is not None:
            params["near_lat"], params["near_lon"] = f.near
            radius = radius_km if radius_km is not None else f.radius_km
            if radius is not None:
                name = "radius_km" if radius_km is None else "ring_km"
                params[name] = radius
                within = []
                for index, box in enumerate(radius_boxes(f.near[0], f.near[1], radius)):
                    params[f"{name}_box{index}"] = box_literal(box)
                    within.append(f"{location} <@ %({name}_box{index})s::box")
                clauses.append("(" + " OR ".join(within) + ")")
                clauses.append(f"{_DISTANCE} <= %({name})s")
            else:
                clauses.append("location IS NOT NULL")
        return " AND ".join(clauses)

    def _distance(self) -> str:
        return _DISTANCE if self.filters.near is not None else "NULL::float8"

    def _keyset(self, after: list | None, params: dict) -> str:
        if after is None:
            return ""
        key, direction, kind = _SORT_KEYS[self.sort]
        params["after_key"], params["after_id"] = after[-2], after[-1]
        compare = "<" if direction == "DESC" else ">"
        return f" AND ({key}, id) {compare} (%(after_key)s::{kind}, %(after_id)s::uuid)"

    def page_sql(self, after: list | None = None, *, where: str | None = None, direct: bool = False,
                 tier: int | None = None) -> tuple[str, dict]:
        """One page under ``where`` (default: the whole filter), after ``after``.

        Rows: the card columns, ``distance_km``, then the sort key values (the
        tier first for relevance). By default the page's ids and keys are
        chosen first (an index-only scan where the covering indexes allow) and
        only those rows are read whole; ``direct`` reads whole rows at once
        (text queries read them anyway). ``tier`` adds that relevance tier's
        condition.
        """
        key, direction, _ = _SORT_KEYS[self.sort]
        params = dict(self.params, limit=self.limit + 1)
        where = (where or self.where) + self._keyset(after, params)
        order = f"ORDER BY {key} {direction}, id {direction} LIMIT %(limit)s"
        if direct or tier is not None:
            keys = f"{tier}, {key}" if tier is not None else key
            condition = f" AND {dict(RELEVANCE_TIERS)[tier]}" if tier is not None else ""
            return (f"SELECT {', '.join(CARD_COLUMNS)}, {self._distance()}, {keys} FROM {self.table} "
                    f"WHERE {where}{condition} {order}", params)
        columns = ", ".join(f"p.{column}" for column in CARD_COLUMNS)
        return (f"SELECT {columns}, h.distance, h.key FROM ("
                f"SELECT id, {key} AS key, {self._distance()} AS distance FROM {self.table} "
                f"WHERE {where} {order}) h JOIN {self.table} p ON p.id = h.id "
                f"ORDER BY h.key {direction}, h.id {direction}", params)

    def count_sql(self, bound: int = COUNT_BOUND) -> tuple[str, dict]:
        return (f"SELECT count(*) FROM (SELECT 1 FROM {self.table} WHERE {self.where} LIMIT %(bound)s) s",
                dict(self.params, bound=bound + 1))

    def facet_sql(self, bound: int | None = COUNT_BOUND, sample_percent: float | None = None) -> tuple[str, dict]:
        params = dict(self.params, bands=list(PRICE_BANDS))
        source = self.table
        if sample_percent is not None:
            source += " TABLESAMPLE SYSTEM (%(sample)s) REPEATABLE (7)"
            params["sample"] = sample_percent
        limit = ""
        if bound is not None:
            limit = " LIMIT %(bound)s"
            params["bound"] = bound + 1
        return facet_select(source, self.where, limit), params

    def _walk_sql(self, after: list | None, tier: int | None, needed: int) -> tuple[str, dict]:
        """Read at most ``walk_budget`` rows of the non-text filter in sort order, keep the text matches.

        Rows: each match (card columns, distance, sort key values, then
        ``hit``, ``examined``, the raw key and the id), and the last row read
        even when it does not match (``hit`` false), so the caller knows how far
        the walk got and whether it reached the end; ``text_hits`` counts the
        rows read that match the text at all (the density of the matches).
        """
        key, direction, _ = _SORT_KEYS[self.sort]
        params = dict(self.params, budget=self.walk_budget, needed=needed)
        where = self.base + self._keyset(after, params)
        hit = self.text + (f" AND {dict(RELEVANCE_TIERS)[tier]}" if tier is not None else "")
        cards = ", ".join(f"c{i}" for i in range(len(CARD_COLUMNS)))
        named = ", ".join(f"{column} AS c{i}" for i, column in enumerate(CARD_COLUMNS))
        keys = f"{tier}, k" if tier is not None else "k"
        order = f"ORDER BY k {direction}, c0 {direction}"
        sql = (f"SELECT {cards}, distance, {keys}, hit, examined, k, c0, text_hits FROM ("
               f"SELECT *, row_number() OVER ({order}) AS rn, count(*) OVER () AS examined, "
               f"count(*) FILTER (WHERE hit) OVER ({order}) AS hit_no, "
               "count(*) FILTER (WHERE text_hit) OVER () AS text_hits FROM ("
               f"SELECT {named}, {self._distance()} AS distance, {key} AS k, ({hit}) AS hit, "
               f"({self.text}) AS text_hit FROM {self.table} WHERE {where} "
               f"ORDER BY {key} {direction}, id {direction} LIMIT %(budget)s) r) w "
               "WHERE (hit AND hit_no <= %(needed)s) OR rn = examined ORDER BY rn")
        return sql, params

    def _text_rows(self, after: list | None, needed: int, tier: int | None = None) -> list:
        """Text matches (of one relevance tier) in sort order after ``after``: at most ``needed`` rows.

        The planner cannot tell how many listings a text query matches (words
        like "wine cellar" come together far more often than chance), so
        neither of its plans is safe: walking the sort order reads the whole
        table when matches are rare, collecting every match from the GIN index
        and sorting them costs ~7 ms per 1,000 matches. So: walk first, reading
        at most ``walk_budget`` rows; if that did not fill the page, matches
        are rare among them, and the rest comes from the GIN index, sorted.
        """
        width = len(CARD_COLUMNS) + (3 if tier is not None else 2)
        hits, start = [], after
        if self.matches is None or self.matches > self.walk_budget:
            rows = db.execute_sql(*self._walk_sql(after, tier, needed)).fetchall()
            hits = [row[:width] for row in rows if row[width]][:needed]
            examined = rows[-1][width + 1] if rows else 0
            if self.density is None and examined:
                self.density = rows[-1][width + 4] / examined
            if len(hits) >= needed or examined < self.walk_budget:
                return hits
            start = [rows[-1][width + 2], str(rows[-1][width + 3])]
        # Few matches (counted, or found in the walk): collect them through the GIN index.
        sql, params = self.page_sql(start, direct=True, tier=tier)
        key, direction, _ = _SORT_KEYS[self.sort]
        # An ORDER BY the sort index cannot serve: the planner collects the matches through GIN.
        sql = sql.replace(f"ORDER BY {key} {direction}", f"ORDER BY ({key}) + {_ZERO[self.sort]} {direction}")
        params["limit"] = needed - len(hits)
        return hits + db.execute_sql(sql, params).fetchall()

    # --- running it ----------------------------------------------------------------------------

    def run(self, after: list | None = None, facets: bool = False) -> SearchResult:
        """Total (or facets) and one page, in one read-only transaction (one snapshot for both)."""
        with _search_transaction():
            if self.text and self.sort != "distance":
                return self._run_text(after, facets)
            result = self._counted(facets)
            result.page = self.page(after, result.total, result.estimated)
        return result

    def _counted(self, facets: bool, bound: int | None = None, total: int | None = None) -> SearchResult:
        """The total (and facets), exact up to ``bound``; ``total``: a known estimate above it."""
        bound = self.count_bound if bound is None else bound
        if facets:
            counted = self.facets(bound, known_total=total)
            return SearchResult(Page([], None), counted.total, counted.estimated, counted)
        if total is not None:
            return SearchResult(Page([], None), max(bound + 1, total), True)
        return SearchResult(Page([], None), *self.count(bound))

    def _run_text(self, after: list | None, facets: bool) -> SearchResult:
        """A text query: counting its matches is the costly part, so count only what needs counting.

        GIN cannot count without reading every matching row, and the planner
        cannot tell how many rows a query matches (it takes words as
        independent; "wine cellar" is ten times commoner than that). So: when
        the planner expects few matches, count them first (up to
        ``TEXT_COUNT_BOUND``); if they are few, the page comes straight from the
        GIN index. Otherwise fetch the page first, walking the sort order, and
        measure the share of the rows read that match: that share of the
        filtered listings is the estimate. Only a query expected near the bound
        is counted exactly.
        """
        expected = self.estimate()
        counted = None
        bound = self.text_count_bound
        if expected <= self.walk_budget:
            counted = self._counted(facets, bound)
            if not counted.estimated:
                counted.page = self.page(after, counted.total, False)
                return counted
        page = self.page(after, None, True)
        if self.density is not None:
            expected = round(self.density * self.estimate(self.base))
        if counted is None:
            counted = self._counted(facets, bound, expected if expected > 3 * bound else None)
        elif counted.estimated:
            counted = self._counted(facets, bound, max(expected, bound + 1))
        counted.page = page
        return counted

    def page(self, after: list | None = None, total: int | None = None, estimated: bool = True) -> Page:
        """Up to ``limit`` rows after ``after`` (the ``next_key`` of the previous page).

        ``total``/``estimated``: the count, when the caller has it (it shapes the queries).
        """
        self.matches = total if total is not None and not estimated else None
        rows = self._page_rows(after, total if estimated else None)
        more = len(rows) > self.limit
        rows = rows[:self.limit]
        next_key = None
        if more and rows:
            keys = [value.isoformat() if hasattr(value, "isoformat") else value
                    for value in rows[-1][len(CARD_COLUMNS) + 1:]]
            next_key = [*keys, str(rows[-1][0])]
        return Page([_card(row) for row in rows], next_key)

    def _page_rows(self, after: list | None, total: int | None) -> list:
        f = self.filters
        if self.sort == "relevance":
            return self._relevance_rows(after)
        if self.sort == "distance" and total is not None:
            return self._ring_rows(after, total)
        if self.text and self.sort != "distance":
            return self._text_rows(after, self.limit + 1)
        mapped = f.bbox or f.polygon or (f.near is not None and f.radius_km is not None)
        # Broad map filters: walking the sort order beats sorting every match found in GiST.
        where = self.where_unindexed_geo if total is not None and mapped else None
        return db.execute_sql(*self.page_sql(after, where=where)).fetchall()

    def _relevance_rows(self, after: list | None) -> list:
        """Tier by tier, best first, until the page (plus one row) is full."""
        rows: list = []
        for tier, _condition in RELEVANCE_TIERS:
            if after is not None and tier > after[0]:
                continue
            rows += self._text_rows(after if after is not None and tier == after[0] else None,
                                    self.limit + 1 - len(rows), tier)
            if len(rows) > self.limit:
                break
        return rows

    def _ring_rows(self, after: list | None, total: int) -> list:
        """Distance order over many matches: the page from the smallest ring around ``near`` that holds it.

        Everything outside a ring of radius r is farther than everything inside,
        so a ring holding ``limit + 1`` rows past the cursor holds exactly the
        page. The ring starts where about two pages are expected and doubles.
        """
        f = self.filters
        start = after[0] if after is not None else 0.0
        limit_km = f.radius_km if f.radius_km is not None else math.pi * EARTH_RADIUS_KM
        ring = 1.0
        if f.radius_km is not None:
            density = total / (math.pi * f.radius_km ** 2)
            ring = math.sqrt(2 * (self.limit + 1) / (math.pi * density))
        ring = max(0.05, ring)
        while True:
            reach = min(limit_km, start + ring)
            where = self._where(indexed_geo=True, radius_km=reach) + (f" AND {self.text}" if self.text else "")
            rows = db.execute_sql(*self.page_sql(after, where=where)).fetchall()
            if len(rows) > self.limit or reach >= limit_km:
                return rows
            ring *= 2

    def count(self, bound: int | None = None) -> tuple[int, bool]:
        """(matches, estimated): exact up to ``bound``, the planner's estimate above it."""
        bound = self.count_bound if bound is None else bound
        exact = db.execute_sql(*self.count_sql(bound)).fetchone()[0]
        if exact <= bound:
            return exact, False
        return max(bound + 1, self.estimate()), True

    def estimate(self, where: str | None = None) -> int:
        plan = db.execute_sql(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {self.table} WHERE {where or self.where}",
                              self.params).fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    def facets(self, bound: int | None = None, known_total: int | None = None) -> Facets:
        """Counts per facet; exact (and summing to the total) up to ``bound`` matches.

        Above the bound (or given ``known_total``, an estimate above it): the
        planner's estimate of the total, and each facet from a sample of the
        table's pages (at most ``FACET_SAMPLE_MAX_PERCENT``) expected to hold
        about ``FACET_SAMPLE_ROWS`` matches, scaled to that total.
        """
        bound = self.count_bound if bound is None else bound
        if known_total is None:
            total, groups = facet_groups(db.execute_sql(*self.facet_sql(bound)).fetchall())
            if total <= bound:
                return Facets(total, False, groups)
        estimate = max(bound + 1, known_total or self.estimate())
        percent = min(FACET_SAMPLE_MAX_PERCENT, 100.0 * FACET_SAMPLE_ROWS / estimate)
        # Never fewer than FACET_SAMPLE_MIN_PAGES pages (all of a small table).
        pages = db.execute_sql("SELECT relpages FROM pg_class WHERE oid = %s::regclass", (self.table,)).fetchone()[0]
        percent = min(100.0, max(percent, 100.0 * FACET_SAMPLE_MIN_PAGES / max(1, pages)))
        sampled, sample_groups = facet_groups(db.execute_sql(*self.facet_sql(None, percent)).fetchall())
        scale = estimate / sampled if sampled else 0.0
        scaled = {name: [dict(bucket, count=round(bucket["count"] * scale)) for bucket in buckets]
                  for name, buckets in sample_groups.items()}
        return Facets(estimate, True, scaled)


@contextlib.contextmanager
def _search_transaction():
    """A read-only snapshot shared by the count and the page, with settings for short queries.

    JIT compilation is off: it would spend 50-70 ms compiling any plan whose
    estimated cost crosses ``jit_above_cost`` (a bounded count over a broad
    filter does), more than the query itself takes. ``work_mem`` is raised so
    that bitmaps of text matches stay exact (a lossy bitmap re-checks every row
    of its pages). A runaway query is stopped after ``STATEMENT_TIMEOUT``.
    Inside an enclosing transaction (tests) it runs in a savepoint and keeps
    that transaction's isolation.
    """
    top = not db.in_transaction()
    with db.atomic():
        settings = (f"SET LOCAL jit = off; SET LOCAL work_mem = '{WORK_MEM}'; "
                    f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        if top:
            settings = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; " + settings
        db.execute_sql(settings)
        yield


def _card(row) -> dict:
    (id_, status, ptype, subtype, currency, price, beds, baths, full, half, area, units, year, address, city,
     region, postal, country, lat, lon, features, listed_at, modified_at) = row[:len(CARD_COLUMNS)]
    distance = row[len(CARD_COLUMNS)]
    return {
        "id": str(id_), "standard_status": status, "property_type": ptype, "property_sub_type": subtype,
        "currency": currency, "list_price": price, "bedrooms_total": beds, "bathrooms_total": baths,
        "bathrooms_full": full, "bathrooms_half": half, "living_area": area, "living_area_units": units,
        "year_built": year, "unparsed_address": address, "city": city, "state_or_province": region,
        "postal_code": postal, "country": country, "latitude": lat, "longitude": lon,
        "features": list(features or ()), "listed_at": listed_at.isoformat(),
        "modification_timestamp": modified_at.isoformat(),
        "distance_km": round(distance, 3) if distance is not None else None,
    }


__all__ = ["ListingSearch", "SearchFilters", "SearchResult", "Page", "Facets", "SORTS", "DEFAULT_STATUSES",
           "COUNT_BOUND", "PRICE_BANDS", "radius_boxes", "city_key", "postal_key", "feature_key"]
