"""``GET /v1/properties`` (listing search) and ``/v1/admin/search/*`` (the index's status and rebuild).

Falcon serves one resource per route, and ``/v1/properties`` also takes
``POST`` (create a listing, ``api.resources.properties``): that collection
class inherits ``SearchMixin`` for its ``GET``.

The parameters' rules are the models' (``models.search.filters``; a refused
one is a 422 naming it). Search reads the index (``models.search``), never the
listings table, and caches whole pages in Redis (``services.search_cache``).
The answer is the same for everyone, signed in or not: drafts and off-market
listings are not in the index at all.
"""

from __future__ import annotations

import datetime
import uuid

import msgspec

from api.cursor import CursorCodec
from api.errors import invalid_search, validation_error
from api.operation import operation
from api.resources.jobs import JobViews
from api.schemas.jobs import JobView
from api.schemas.search import SearchPage, SearchQuery, SearchStatus
from models.db import db
from models.listing_rules import PUBLIC_STATUSES
from models.search import InvalidSearch, ListingSearch, filters_of
from models.search import queue as search_queue
from models.search.index import current_generation, read_state
from services.search_cache import SearchCache

SEARCH_DESCRIPTION = """\
Listed properties matching every given filter, from the search index. Drafts and off-market listings \
never appear, to anyone (their owners included); `status` may name only listed statuses.

**Map filters**: `bbox=minLon,minLat,maxLon,maxLat`; `near=lat,lon` with `radius_km`; \
`polygon=lat lon,lat lon,...` (3 to 100 points). **Sorts**: `newest` (default), `price_asc`, \
`price_desc`, `distance` (needs `near`; each hit then has `distance_km`), `relevance` (needs `q`; the \
default when `q` is given): listings whose address or city match the whole query first, then those \
matching in address, city and features, then the rest (remarks), newest first within each group.

**Pages** follow `next_cursor` (keyset on the sort key and the id): a listing whose sort key does not \
change is returned exactly once while you page, however other listings change meanwhile. A cursor only \
works with the query that issued it. **`total`** is exact up to 10,000 (up to 1,000 with `q`: a text \
match cannot be counted from an index); above that it is an estimate and `total_estimated` is true. \
**`facets=true`** adds counts per property type, status, beds, baths and price band under the current \
filter (exact when `total` is; estimated together with `total` when the planner expects more than \
10,000 matches).

The index follows listing changes within seconds (a background job per change); results may be cached \
for up to 30 seconds, and a change to the index makes every cached page obsolete at once."""


def _problem(field: str, message: str):
    return validation_error([{"field": f"query.{field}", "message": message}])


# The sort key values a cursor carries before the id, by sort.
_KEY_TYPES: dict[str, tuple[type | tuple[type, ...], ...]] = {
    "newest": (str,),
    "price_asc": (int,),
    "price_desc": (int,),
    "distance": ((int, float),),
    "relevance": (int, str),
}


def _after(codec: CursorCodec, cursor: str, sort: str, fingerprint: str) -> list:
    values = codec.decode(cursor)
    if len(values) < 3 or values[0] != sort or values[1] != fingerprint:
        raise _problem("cursor", "this cursor belongs to another query")
    after = values[2:]
    kinds = _KEY_TYPES[sort]
    valid = len(after) == len(kinds) + 1
    try:
        if valid:
            keys, last = after[:-1], after[-1]  # the sort keys, then the listing's id
            valid = all(
                isinstance(value, kind) and not isinstance(value, bool) for value, kind in zip(keys, kinds, strict=True)
            ) and bool(uuid.UUID(last))
        if valid and str in kinds:
            datetime.datetime.fromisoformat(after[kinds.index(str)])
    except (TypeError, ValueError, AttributeError):
        valid = False
    if not valid:
        raise _problem("cursor", "not a cursor this API issued")
    return after


def run_search(req, resp) -> None:
    q: SearchQuery = req.context.query
    services = req.context.services
    settings = services.settings
    try:
        filters, sort = filters_of(q)
    except InvalidSearch as exc:
        raise invalid_search(exc, "query") from None
    normalised = filters.normalised()
    cache = services.search_cache
    codec = CursorCodec(settings.secret_key, "search")
    fingerprint = SearchCache.digest([sort, normalised])[:16]
    after = _after(codec, q.cursor, sort, fingerprint) if q.cursor else None

    generation, version = cache.versions()
    if generation is None:
        generation = current_generation()
        cache.remember_generation(generation)
    key = cache.page_key(generation, version, SearchCache.digest([fingerprint, after, q.limit, q.facets]))
    body = cache.get(key)
    if body is None:
        found = ListingSearch(filters, sort, q.limit).run(after, q.facets)
        page = found.page
        result = {
            "items": page.rows,
            "sort": sort,
            "total": found.total,
            "total_estimated": found.estimated,
            "next_cursor": codec.encode([sort, fingerprint, *page.next_key]) if page.next_key else None,
        }
        if found.facets is not None:
            result["facets"] = dict(found.facets.groups, estimated=found.facets.estimated)
        body = msgspec.json.encode(result)
        cache.put(key, body)
    resp.content_type = "application/json"
    resp.data = body


class SearchMixin:
    """``GET`` of ``/v1/properties``: mix into the collection resource routed there."""

    @operation(
        "Search listings",
        query=SearchQuery,
        response=SearchPage,
        auth="optional",
        errors=(422,),
        tags=("properties",),
        description=SEARCH_DESCRIPTION,
    )
    def on_get(self, req, resp):
        run_search(req, resp)


class SearchAdmin:
    """``/v1/admin/search/status`` and ``/v1/admin/search/reindex``."""

    def __init__(self, views: JobViews):
        self.views = views

    @operation(
        "The search index's state and lag",
        response=SearchStatus,
        permission="admin:search",
        tags=("admin",),
        description=(
            "Generation of the live index, its row count beside the number of listed properties, "
            "how far it is behind (listings changed but not yet reindexed, the oldest one's age, "
            "reindex jobs queued and running) and the rebuild in progress or the last one."
        ),
    )
    def on_get_status(self, req, resp):
        state = read_state()
        indexed = db.execute_sql("SELECT count(*) FROM property_search").fetchone()[0]
        listed = db.execute_sql(
            "SELECT count(*) FROM properties WHERE standard_status IN %s", (PUBLIC_STATUSES,)
        ).fetchone()[0]
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        resp.media = {
            "generation": state["generation"],
            "indexed_listings": indexed,
            "searchable_listings": listed,
            "lag": search_queue.lag(),
            "rebuild": {
                "in_progress": state["building_table"] is not None,
                "job_id": str(state["rebuild_job_id"]) if state["rebuild_job_id"] else None,
                "started_at": iso(state["rebuild_started_at"]),
                "last_rebuild_at": iso(state["last_rebuild_at"]),
                "last_rebuild_job_id": str(state["last_rebuild_job_id"]) if state["last_rebuild_job_id"] else None,
                "last_rebuild_seconds": state["last_rebuild_seconds"],
                "last_rebuild_rows": state["last_rebuild_rows"],
            },
        }

    @operation(
        "Rebuild the whole search index",
        response=JobView,
        status=202,
        permission="admin:search",
        tags=("admin",),
        description=(
            "Queues a `search.rebuild_index` job (202, `Location: /v1/jobs/{id}`): it builds a new "
            "generation of the index beside the live one, with progress, and swaps it in at once; "
            "search keeps answering from the old generation until then. Listing changes made while it "
            "builds are carried over. While a rebuild is queued or running, asking again answers with "
            "that job."
        ),
    )
    def on_post_reindex(self, req, resp):
        job, _ = search_queue.queue_rebuild(req.context.principal.user_id)
        self.views.accept(req, resp, job)


__all__ = ["SearchAdmin", "SearchMixin", "run_search"]
