"""Schemas of saved searches (``/v1/me/saved-searches``): a named listing search, with alerts."""

from __future__ import annotations

from typing import Annotated

import msgspec

from api.schemas import Cursor, Request, Response, line
from api.schemas.search import SearchParams
from models.saved_searches import MAX_PER_USER

_U = msgspec.UnsetType

SavedSearchName = Annotated[
    str,
    line(
        100,
        min_length=1,
        description="Your name for the search (stored without outer spaces)",
        examples=["3-bed homes in Austin"],
    ),
]
Alerts = Annotated[
    bool,
    msgspec.Meta(description=("Tell me about new listings matching the search and price drops of matching listings")),
]
SavedQuery = Annotated[
    SearchParams,
    msgspec.Meta(
        description=(
            "The parameters of `GET /v1/properties` except `cursor`, `limit` and `facets`, checked by the same rules; "
            "lists (`property_type`, `status`, `features`) are JSON arrays. `{}` is every listing on the market."
        )
    ),
]


class SavedSearchCreate(Request):
    name: SavedSearchName
    query: SavedQuery
    alerts: Alerts = True


class SavedSearchPatch(Request):
    """Only the fields given change; ``query`` is replaced whole."""

    name: SavedSearchName | _U = msgspec.UNSET
    query: SavedQuery | _U = msgspec.UNSET
    alerts: Alerts | _U = msgspec.UNSET


class SavedSearchListQuery(Request):
    cursor: Cursor | None = None
    limit: Annotated[
        int,
        msgspec.Meta(
            ge=1, le=100, description=(f"Page size (at most 100; a user has at most {MAX_PER_USER} saved searches)")
        ),
    ] = MAX_PER_USER


class SavedSearchView(Response):
    id: str
    name: str
    query: Annotated[SearchParams, msgspec.Meta(description="The saved parameters, as accepted (unset ones left out)")]
    alerts: bool
    search_url: Annotated[
        str,
        msgspec.Meta(
            description=("`GET /v1/properties` with these parameters (a path on this API): run it to see the matches"),
            examples=["/v1/properties?city=Austin&min_beds=3"],
        ),
    ]
    created_at: str
    updated_at: str


class SavedSearchList(Response):
    items: list[SavedSearchView]
    next_cursor: str | None


__all__ = ["SavedSearchCreate", "SavedSearchList", "SavedSearchListQuery", "SavedSearchPatch", "SavedSearchView"]
