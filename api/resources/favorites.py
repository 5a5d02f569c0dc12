"""``/v1/me/favorites``: the listings I saved.

Saving and removing are idempotent (204 every time). A listing I cannot see
cannot be saved (404). One I saved that has since gone off the market stays
in my list, marked ``available: false`` and without its details, until I
remove it.
"""

from __future__ import annotations

import falcon

from api.cursor import CursorCodec
from api.operation import operation
from api.resources.properties import load_visible
from api.schemas.properties import FavoriteList, PageQuery
from models.favorites import Favorite
from models.properties import Property

TAGS = ("me",)


def favorite_view(favorite: Favorite, listing: Property, principal) -> dict:
    available = listing.is_visible_to(principal)
    return {
        "property_id": str(listing.id),
        "favorited_at": favorite.created_at.isoformat(),
        "available": available,
        "listing": listing.summary() if available else None,
    }


class MyFavorites:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "favorites")

    @operation(
        "My saved listings",
        query=PageQuery,
        response=FavoriteList,
        tags=TAGS,
        description="Most recently saved first, each with a compact summary of the listing; pages "
        "follow `next_cursor`. A saved listing that went off the market is listed with "
        "`available: false` and `listing: null`.",
    )
    def on_get(self, req, resp):
        q: PageQuery = req.context.query
        principal = req.context.principal
        query = Favorite.select(Favorite, Property).join(Property).where(Favorite.user == principal.user_id)
        rows, next_cursor = self.cursors.newest_first(query, Favorite.created_at, Favorite.property, q.cursor, q.limit)
        resp.media = {
            "items": [favorite_view(row, row.property, principal) for row in rows],
            "next_cursor": next_cursor,
        }

    @operation(
        "Save a listing",
        status=204,
        permission="favorites:write",
        errors=(404,),
        tags=TAGS,
        description="Idempotent: saving a saved listing changes nothing. 404 for a listing you cannot see.",
    )
    def on_put_item(self, req, resp, property_id):
        principal = req.context.principal
        listing = load_visible(property_id, principal)
        Favorite.insert(user=principal.user_id, property=listing.id).on_conflict_ignore().execute()
        resp.status = falcon.HTTP_204

    @operation(
        "Remove a saved listing",
        status=204,
        permission="favorites:write",
        errors=(404,),
        tags=TAGS,
        description="Idempotent: removing one that is not saved changes nothing. A saved listing can "
        "always be removed, even after it went off the market; 404 only for a listing you "
        "neither saved nor can see.",
    )
    def on_delete_item(self, req, resp, property_id):
        principal = req.context.principal
        removed = (
            Favorite.delete().where((Favorite.user == principal.user_id) & (Favorite.property == property_id)).execute()
        )
        if not removed:
            load_visible(property_id, principal)
        resp.status = falcon.HTTP_204
