"""Schemas of listing search (``GET /v1/properties``) and the search index's admin endpoints.

``SearchParams`` (the filters and the sort) is shared with saved searches
(``api.schemas.saved_searches``), so a saved query and a search can never
accept different parameters. It extends ``models.search.filters.SearchParameters``:
the limits of each parameter are the search rules' own, and this module adds
the documentation and the API's text rule (a single line, no control characters).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from api.schemas import SINGLE_LINE, VISIBLE_LINE, Cursor, Request, Response
from api.schemas.properties import ListingCard
from models.search import filters
from models.search.filters import MAX_FEATURES, MAX_POLYGON_POINTS, MIN_POLYGON_POINTS, Sort

Minor = Annotated[filters.Price, msgspec.Meta(description="Integer minor units (cents)")]
Feature = Annotated[filters.Feature, msgspec.Meta(pattern=VISIBLE_LINE)]


class SearchParams(Request, filters.SearchParameters):
    """The filters and sort of a listing search: ``GET /v1/properties`` and saved searches share them.

    Every filter is optional; several filters all apply (AND). In a query string lists take repeated or
    comma-separated values; in a JSON body (a saved search's ``query``) they are arrays.
    """

    __list_fields__ = ("property_type", "status", "features")

    q: (
        Annotated[
            filters.Text,
            msgspec.Meta(
                pattern=SINGLE_LINE,
                description=(
                    'Full text over address, city, features and remarks (web-search syntax: words, "a phrase", '
                    "-excluded, or). Any text is safe."
                ),
            ),
        ]
        | None
    ) = None
    min_price: Minor | None = None
    max_price: Minor | None = None
    min_beds: filters.Rooms | None = None
    min_baths: Annotated[filters.Rooms, msgspec.Meta(description="Full plus half bathrooms")] | None = None
    property_type: filters.PropertyTypes | None = None
    status: (
        Annotated[
            filters.Statuses,
            msgspec.Meta(description=("Default: Active, ComingSoon. Only listed statuses can be searched")),
        ]
        | None
    ) = None
    city: (
        Annotated[filters.City, msgspec.Meta(pattern=VISIBLE_LINE, description="Exact city name, any case")] | None
    ) = None
    postal_code: Annotated[filters.PostalCode, msgspec.Meta(pattern=VISIBLE_LINE)] | None = None
    features: (
        Annotated[
            list[Feature],
            msgspec.Meta(max_length=MAX_FEATURES, description=("Listings having all of these features (any case)")),
        ]
        | None
    ) = None
    min_year_built: filters.Year | None = None
    max_year_built: filters.Year | None = None
    min_living_area: filters.Area | None = None
    max_living_area: filters.Area | None = None
    bbox: (
        Annotated[
            filters.Bbox,
            msgspec.Meta(
                pattern=SINGLE_LINE,
                description="minLon,minLat,maxLon,maxLat (degrees)",
                examples=["-97.80,30.20,-97.65,30.35"],
            ),
        ]
        | None
    ) = None
    near: (
        Annotated[
            filters.Near,
            msgspec.Meta(
                pattern=SINGLE_LINE, description="lat,lon: the centre of a radius search", examples=["30.2672,-97.7431"]
            ),
        ]
        | None
    ) = None
    radius_km: (
        Annotated[
            filters.RadiusKm,
            msgspec.Meta(
                description=(
                    "Only listings this close to `near` (great-circle km); needs `near`. `near` alone sets no limit"
                )
            ),
        ]
        | None
    ) = None
    polygon: (
        Annotated[
            filters.Polygon,
            msgspec.Meta(
                pattern=SINGLE_LINE,
                description=(f"{MIN_POLYGON_POINTS} to {MAX_POLYGON_POINTS} points `lat lon`, comma-separated"),
                examples=["30.30 -97.78,30.30 -97.70,30.22 -97.70"],
            ),
        ]
        | None
    ) = None
    sort: (
        Annotated[
            Sort,
            msgspec.Meta(
                description=(
                    "newest (default), price_asc, price_desc, distance (needs `near`), relevance (needs `q`; "
                    "the default with `q`)"
                )
            ),
        ]
        | None
    ) = None


class SearchQuery(SearchParams):
    """``GET /v1/properties``: the search parameters, and which page of the answer."""

    cursor: Cursor | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100, description="Page size (at most 100)")] = 20
    facets: Annotated[
        bool, msgspec.Meta(description="Also count matches per type, status, beds, baths and price band")
    ] = False


# A listing found: its card and what search adds (``distance_km`` when the search has ``near``).
class SearchHit(ListingCard):
    property_sub_type: str | None
    bathrooms_total: int | None
    year_built: int | None
    country: str
    features: list[str]
    listed_at: str
    distance_km: float | None = None


class FacetBucket(Response):
    value: str
    count: int


class PriceBand(Response):
    min: int
    max: int | None
    count: int


class SearchFacets(Response):
    """Counts under the current filter; each facet sums to ``total`` (approximately when ``estimated``)."""

    estimated: bool
    property_type: list[FacetBucket]
    status: list[FacetBucket]
    beds: list[FacetBucket]
    baths: list[FacetBucket]
    price: list[PriceBand]


class SearchPage(Response):
    items: list[SearchHit]
    next_cursor: str | None
    total: int
    total_estimated: bool
    sort: Sort
    facets: SearchFacets | None = None


class SearchLag(Response):
    dirty_listings: int
    oldest_dirty_since: str | None
    oldest_dirty_age_seconds: float | None
    queued_reindex_jobs: int
    running_reindex_jobs: int


class SearchRebuildInfo(Response):
    in_progress: bool
    job_id: str | None
    started_at: str | None
    last_rebuild_at: str | None
    last_rebuild_job_id: str | None
    last_rebuild_seconds: float | None
    last_rebuild_rows: int | None


class SearchStatus(Response):
    generation: int
    indexed_listings: int
    searchable_listings: int
    lag: SearchLag
    rebuild: SearchRebuildInfo
