"""Listing search over the index table ``property_search`` (``models.search.index``).

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
from models.search.facets import Facets, facet_groups
from models.search.filters import EARTH_RADIUS_KM, SearchFilters, radius_boxes
from models.search.index import LIVE_TABLE, grid_cells
from models.search.sql import CARD_COLUMNS, RELEVANCE_TIERS, ListingQuery, card

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
# Reading a page costs the same however large the table: a sample of 2 % of 5,000,000 listings
# (10,000 pages) took 50-100 ms. Narrow filters over a large table get fewer sampled matches.
FACET_SAMPLE_MAX_PAGES = 4_000
# Facets are counted exactly only when the planner expects at most this many times the bound: counting
# up to the bound reads every index entry of the filter until then (a city's land: 130,000 entries).
FACET_EXACT_FACTOR = 1.0

# A counted total up to this many is read by collecting the matches and sorting them.
FEW_MATCHES = 2_000
# A broad map search sorted newest first reads the first rows of each grid cell when its
# boxes cover at most this many cells (a box of about 7 x 7 km; more cells hold so many
# listings that walking the newest-first index finds a page sooner).
GRID_MAX_CELLS = 64
# A text query reads at most this many rows in sort order before it asks the GIN index.
WALK_BUDGET = 2000
# When that walk found matches but too few, it walks on (once) as far as their density says fills the
# page, if that is at most this many rows and fewer than the GIN index would hand over.
WALK_MAX = 20_000
# A text query the planner expects to match few listings is counted first (through GIN), unless this
# many rows in sort order show it matches far more: GIN then reads every candidate's posting, which
# for common words in a phrase ("quiet cul-de-sac") costs hundreds of milliseconds.
PROBE_ROWS = 200
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


class ListingSearch(ListingQuery):
    """One search run: the count first, then the page, each shaped by what the count found (``run``)."""

    def __init__(
        self,
        filters: SearchFilters,
        sort: str = "newest",
        limit: int = 20,
        table: str = LIVE_TABLE,
        *,
        count_bound: int = COUNT_BOUND,
        text_count_bound: int = TEXT_COUNT_BOUND,
        walk_budget: int = WALK_BUDGET,
    ):
        """``count_bound``, ``text_count_bound`` and ``walk_budget`` are tuning knobs (tests shrink them)."""
        super().__init__(filters, sort, limit, table)
        self.count_bound, self.text_count_bound, self.walk_budget = count_bound, text_count_bound, walk_budget
        self.matches: int | None = None  # the exact count, when known (see page)
        self.density: float | None = None  # share of the rows a text query's first walk read that matched

    def _text_rows(self, after: list | None, needed: int, tier: int | None = None) -> list:
        """Text matches (of one relevance tier) in sort order after ``after``: at most ``needed`` rows.

        The planner cannot tell how many listings a text query matches (words
        like "wine cellar" come together far more often than chance), so
        neither of its plans is safe: walking the sort order reads the whole
        table when matches are rare, collecting every match from the GIN index
        and sorting them costs ~7 ms per 1,000 matches. So: walk first, reading
        at most ``walk_budget`` rows; if that did not fill the page, walk on
        once as far as the density of the matches found says fills it, when
        that is fewer rows than the matches the GIN index would give
        (``WALK_MAX`` at most); otherwise matches are rare, and the rest comes
        from the GIN index, sorted.
        """
        width = len(CARD_COLUMNS) + (3 if tier is not None else 2)
        hits: list = []
        start = after
        if self.matches is None or self.matches > self.walk_budget:
            budget = self.walk_budget
            for walk in (1, 2):
                rows = db.execute_sql(*self._walk_sql(start, tier, needed - len(hits), budget)).fetchall()
                found = [row[:width] for row in rows if row[width]][: needed - len(hits)]
                examined = rows[-1][width + 1] if rows else 0
                if self.density is None and examined:
                    self.density = rows[-1][width + 4] / examined
                hits += found
                if len(hits) >= needed or examined < budget:
                    return hits
                start = [rows[-1][width + 2], str(rows[-1][width + 3])]
                if walk == 2 or not found:
                    break
                # Matches found at this density: walking on until the page is full reads fewer rows than
                # the GIN index would hand over (each match is a row read, then sorted).
                density = len(found) / examined
                budget = math.ceil(2 * (needed - len(hits)) / density)
                if budget > min(WALK_MAX, density * self.estimate(self.base)):
                    break
        # Few matches (counted, or found in the walk): collect them through the GIN index.
        return hits + db.execute_sql(*self._gin_page_sql(start, tier, needed - len(hits))).fetchall()

    def _dense(self) -> bool:
        """Whether the first ``PROBE_ROWS`` rows in sort order say the text matches too many to count."""
        hits = int(db.execute_sql(*self._probe_sql(PROBE_ROWS)).fetchone()[0])
        return hits * self.estimate(self.base) > 3 * self.text_count_bound * PROBE_ROWS

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
        the planner expects few matches and the first ``PROBE_ROWS`` rows in
        sort order do not contradict it, count them first (up to
        ``TEXT_COUNT_BOUND``); if they are few, the page comes straight from the
        GIN index. Otherwise fetch the page first, walking the sort order, and
        measure the share of the rows read that match: that share of the
        filtered listings is the estimate. Only a query expected near the bound
        is counted exactly.
        """
        expected = self.estimate()
        counted = None
        bound = self.text_count_bound
        if expected <= self.walk_budget and not self._dense():
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
        rows = rows[: self.limit]
        next_key = None
        if more and rows:
            keys = [
                value.isoformat() if hasattr(value, "isoformat") else value
                for value in rows[-1][len(CARD_COLUMNS) + 1 :]
            ]
            next_key = [*keys, str(rows[-1][0])]
        return Page([card(row) for row in rows], next_key)

    def _page_rows(self, after: list | None, total: int | None) -> list:
        f = self.filters
        if self.sort == "relevance":
            return self._relevance_rows(after)
        if self.sort == "distance" and total is not None:
            return self._ring_rows(after, total)
        if self.text and self.sort != "distance":
            return self._text_rows(after, self.limit + 1)
        mapped = f.bbox or f.polygon or (f.near is not None and f.radius_km is not None)
        if total is None or not mapped:
            # Few matches, counted: collect them as the count did and sort them, rather than walk the
            # sort order past every listing that does not match (all of a city, for three matches).
            few = self.matches is not None and self.matches <= FEW_MATCHES
            return db.execute_sql(*self.page_sql(after, collect=few)).fetchall()
        # Broad map filters: not through GiST (sorting every match costs more than the page).
        # Newest first over a few grid cells: the first rows of each cell, merged; else walk the sort order.
        cells = self._cells() if self.sort == "newest" else None
        return db.execute_sql(*self.page_sql(after, where=self.where_unindexed_geo, cells=cells)).fetchall()

    def _cells(self) -> list[int] | None:
        """The fewest grid cells holding every match of the map filters, if at most ``GRID_MAX_CELLS``."""
        f = self.filters
        candidates = []
        if f.bbox:
            candidates.append([f.bbox])
        if f.polygon:
            lats, lons = [lat for lat, _ in f.polygon], [lon for _, lon in f.polygon]
            candidates.append([(min(lons), min(lats), max(lons), max(lats))])
        if f.near is not None and f.radius_km is not None:
            candidates.append(radius_boxes(f.near[0], f.near[1], f.radius_km))
        found = [cells for boxes in candidates if (cells := grid_cells(boxes, GRID_MAX_CELLS)) is not None]
        return min(found, key=len) if found else None

    def _relevance_rows(self, after: list | None) -> list:
        """Tier by tier, best first, until the page (plus one row) is full."""
        rows: list = []
        for tier, _condition in RELEVANCE_TIERS:
            if after is not None and tier > after[0]:
                continue
            rows += self._text_rows(
                after if after is not None and tier == after[0] else None, self.limit + 1 - len(rows), tier
            )
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
            density = total / (math.pi * f.radius_km**2)
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
        plan = db.execute_sql(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {self.table} WHERE {where or self.where}",  # noqa: S608 - checked table, constant SQL, values as params (see ListingQuery)
            self.params,
        ).fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    def facets(self, bound: int | None = None, known_total: int | None = None) -> Facets:
        """Counts per facet; exact (and summing to the total) up to ``bound`` matches.

        Above the bound (or given ``known_total``, an estimate above it): the
        planner's estimate of the total, and each facet from a sample of the
        table's pages (at most ``FACET_SAMPLE_MAX_PERCENT`` and
        ``FACET_SAMPLE_MAX_PAGES``) expected to hold about ``FACET_SAMPLE_ROWS``
        matches, scaled to that total. When the planner expects more than
        ``FACET_EXACT_FACTOR`` times the bound, the exact count is not tried
        (it would read ``bound`` matches for nothing).
        """
        bound = self.count_bound if bound is None else bound
        if known_total is None:
            known_total = self.estimate()
            if known_total <= FACET_EXACT_FACTOR * bound:
                total, groups = facet_groups(db.execute_sql(*self.facet_sql(bound)).fetchall())
                if total <= bound:
                    return Facets(total, False, groups)
        estimate = max(bound + 1, known_total)
        percent = min(FACET_SAMPLE_MAX_PERCENT, 100.0 * FACET_SAMPLE_ROWS / estimate)
        # At most FACET_SAMPLE_MAX_PAGES pages, never fewer than FACET_SAMPLE_MIN_PAGES (all of a small table).
        pages = db.execute_sql("SELECT relpages FROM pg_class WHERE oid = %s::regclass", (self.table,)).fetchone()[0]
        percent = min(percent, 100.0 * FACET_SAMPLE_MAX_PAGES / max(1, pages))
        percent = min(100.0, max(percent, 100.0 * FACET_SAMPLE_MIN_PAGES / max(1, pages)))
        sampled, sample_groups = facet_groups(db.execute_sql(*self.facet_sql(None, percent)).fetchall())
        scale = estimate / sampled if sampled else 0.0
        scaled = {
            name: [dict(bucket, count=round(bucket["count"] * scale)) for bucket in buckets]
            for name, buckets in sample_groups.items()
        }
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
        settings = (
            f"SET LOCAL jit = off; SET LOCAL work_mem = '{WORK_MEM}'; "
            f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"
        )
        if top:
            settings = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; " + settings
        db.execute_sql(settings)
        yield


__all__ = ["COUNT_BOUND", "TEXT_COUNT_BOUND", "WALK_BUDGET", "ListingSearch", "Page", "SearchResult"]
