"""``/v1/me/saved-searches``: named ``GET /v1/properties`` queries with alerts.

A saved query is checked by the same rules as a search (``models.search.filters``) and
kept as the parameters given; its errors name ``body.query.<param>``. Each
user sees only their own saved searches (anyone else's is a 404). Alerts come
from ``tasks.saved_searches.scan_alerts``.
"""

from __future__ import annotations

import falcon
import msgspec

from api.cursor import CursorCodec
from api.errors import conflict, invalid_search, not_found, validation_error
from api.operation import operation
from api.schemas.saved_searches import (
    SavedSearchCreate,
    SavedSearchList,
    SavedSearchListQuery,
    SavedSearchPatch,
    SavedSearchView,
)
from api.schemas.search import SearchParams
from models.base import utcnow
from models.db import db
from models.saved_searches import (
    LIST_PARAMS,
    MAX_PER_USER,
    LimitReached,
    SavedSearch,
    add_saved_search,
    own_saved_search,
    saved_search_view,
    stored_query,
)
from models.search import InvalidSearch, filters_of

TAGS = ("me",)
WRITE = "searches:write"
ALERTS = (
    "With `alerts` on, you are told (`saved_search.new_match`) when a listing matching the search comes on "
    "the market (new, or back on the market) and (`saved_search.price_drop`) when a matching listing's "
    "price drops; each listing once as new and once per lower price, never about your own listings, and "
    "only about what happened after the search was saved. Your notification preferences decide how "
    "(in the app, email, SMS; instantly or in the daily digest)."
)


def _checked_query(params: SearchParams) -> dict:
    """The query to store, after the checks of ``GET /v1/properties`` (422 naming ``body.query.<param>``)."""
    try:
        filters_of(params)
    except InvalidSearch as exc:
        raise invalid_search(exc, "body.query") from None
    # The search URL separates list values with commas: a value holding one would split there.
    errors = [
        {"field": f"body.query.{name}[{index}]", "message": "must not contain a comma"}
        for name in LIST_PARAMS
        for index, value in enumerate(getattr(params, name) or ())
        if "," in value
    ]
    if errors:
        raise validation_error(errors)
    return stored_query(msgspec.structs.asdict(params))


class MySavedSearches:
    def __init__(self, secret: str | None = None):
        self.cursors = CursorCodec(secret or "", "saved-searches")

    @operation(
        "My saved searches",
        query=SavedSearchListQuery,
        response=SavedSearchList,
        tags=TAGS,
        description="Newest first; pages follow `next_cursor`. Each has `search_url`, the "
        "`GET /v1/properties` request that runs it.",
    )
    def on_get(self, req, resp):
        q: SavedSearchListQuery = req.context.query
        query = SavedSearch.select().where(SavedSearch.user == req.context.principal.user_id)
        rows, next_cursor = self.cursors.newest_first(query, SavedSearch.created_at, SavedSearch.id, q.cursor, q.limit)
        resp.media = {"items": [saved_search_view(row) for row in rows], "next_cursor": next_cursor}

    @operation(
        "Save a search",
        body=SavedSearchCreate,
        response=SavedSearchView,
        status=201,
        permission=WRITE,
        errors=(409, 422),
        tags=TAGS,
        description=f"`query` takes the parameters of `GET /v1/properties` (not `cursor`, `limit`, "
        f"`facets`) and is checked by the same rules (422 naming `body.query.<param>`). At "
        f"most {MAX_PER_USER} saved searches each (409 `limit-reached`). Answers 201 with "
        f"`Location`.\n\n{ALERTS}",
    )
    def on_post(self, req, resp):
        body: SavedSearchCreate = req.context.body
        query = _checked_query(body.query)
        try:
            saved = add_saved_search(
                req.context.principal.user_id, name=body.name.strip(), query=query, alerts=body.alerts
            )
        except LimitReached:
            raise conflict(
                f"You have {MAX_PER_USER} saved searches, the most there can be; delete one first.",
                slug="limit-reached",
            ) from None
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/me/saved-searches/{saved.id}"
        resp.media = saved_search_view(saved)

    @operation("One of my saved searches", response=SavedSearchView, errors=(404,), tags=TAGS)
    def on_get_item(self, req, resp, search_id):
        resp.media = saved_search_view(self._own(req, search_id))

    @operation(
        "Change a saved search",
        body=SavedSearchPatch,
        response=SavedSearchView,
        permission=WRITE,
        errors=(404, 422),
        tags=TAGS,
        description="Changes the fields given: `name`, `alerts`, or `query` (replaced whole, checked "
        "like a new one). Alerts already sent are not sent again for the new query.",
    )
    def on_patch_item(self, req, resp, search_id):
        patch: SavedSearchPatch = req.context.body
        changes: dict[str, object] = {}
        if patch.name is not msgspec.UNSET:
            changes["name"] = patch.name.strip()
        if patch.query is not msgspec.UNSET:
            changes["query"] = _checked_query(patch.query)
        if patch.alerts is not msgspec.UNSET:
            changes["alerts"] = patch.alerts
        user_id = req.context.principal.user_id
        with db.atomic():
            saved = (
                SavedSearch.select()
                .where((SavedSearch.id == search_id) & (SavedSearch.user == user_id))
                .for_update()
                .first()
            )
            if saved is None:
                raise not_found("saved search")
            changes = {name: value for name, value in changes.items() if getattr(saved, name) != value}
            if changes:
                changes["updated_at"] = utcnow()
                SavedSearch.update(**changes).where(SavedSearch.id == saved.id).execute()
                saved.__data__.update(changes)
        resp.media = saved_search_view(saved)

    @operation(
        "Delete a saved search",
        status=204,
        permission=WRITE,
        errors=(404,),
        tags=TAGS,
        description="Idempotent: deleting one of yours that is already gone answers 204 again. Someone "
        "else's saved search is a 404.",
    )
    def on_delete_item(self, req, resp, search_id):
        user_id = req.context.principal.user_id
        removed = SavedSearch.delete().where((SavedSearch.id == search_id) & (SavedSearch.user == user_id)).execute()
        if not removed and SavedSearch.select().where(SavedSearch.id == search_id).exists():
            raise not_found("saved search")
        resp.status = falcon.HTTP_204

    @staticmethod
    def _own(req, search_id) -> SavedSearch:
        saved = own_saved_search(req.context.principal.user_id, search_id)
        if saved is None:
            raise not_found("saved search")
        return saved
