"""Listing search: what a search asks for, how it runs, and the index it reads.

* ``filters``: the parameters of a search, their rules, and ``SearchFilters``
  (what ``GET /v1/properties`` and saved searches both check a query with);
* ``query``: ``ListingSearch``, one search run (count, page, facets), over
  the statements of ``sql``; ``facets``: the facet counts;
* ``index``: the index table ``property_search``; ``rebuild``: its full rebuild;
* ``queue``: which listings the index must catch up with, and their reindex jobs.

Callers that search import from here; the index's upkeep is imported from
``models.search.index``, ``models.search.rebuild`` and ``models.search.queue``.
"""

from __future__ import annotations

from models.search.facets import PRICE_BANDS, Facets
from models.search.filters import (
    DEFAULT_STATUSES,
    EARTH_RADIUS_KM,
    SORTS,
    InvalidSearch,
    SearchFilters,
    SearchParameters,
    city_key,
    feature_key,
    filters_of,
    parse_query,
    postal_key,
    radius_boxes,
)
from models.search.query import COUNT_BOUND, ListingSearch, Page, SearchResult

__all__ = [
    "COUNT_BOUND",
    "DEFAULT_STATUSES",
    "EARTH_RADIUS_KM",
    "PRICE_BANDS",
    "SORTS",
    "Facets",
    "InvalidSearch",
    "ListingSearch",
    "Page",
    "SearchFilters",
    "SearchParameters",
    "SearchResult",
    "city_key",
    "feature_key",
    "filters_of",
    "parse_query",
    "postal_key",
    "radius_boxes",
]
