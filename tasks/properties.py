"""Listings' part of the personal data export: my listings with their history, and my saved listings."""
from __future__ import annotations

from models.accounts import User
from models.properties import Favorite, Property, PropertyHistory
from tasks.exports import export_section


@export_section("listings")
def _listings(user: User) -> list[dict]:
    """Listings the user owns or is the assigned agent of, each with its full price/status history.

    History entries name no actor: who else changed a listing (an agent, staff)
    is theirs to know, not part of this user's data.
    """
    rows = (Property.select().where((Property.owner == user.id) | (Property.list_agent == user.id))
            .order_by(Property.created_at, Property.id))
    listings = []
    for listing in rows:
        history = (PropertyHistory.select().where(PropertyHistory.property == listing.id)
                   .order_by(PropertyHistory.id))
        relation = "owner" if listing.owner_id == user.id else "list_agent"
        listings.append(dict(listing.view(), relation=relation, history=[entry.view() for entry in history]))
    return listings


@export_section("favorites")
def _favorites(user: User) -> list[dict]:
    """Saved listings: when, and the listing's summary while it is on the market."""
    rows = (Favorite.select(Favorite, Property).join(Property).where(Favorite.user == user.id)
            .order_by(Favorite.created_at, Favorite.property))
    return [{"property_id": str(row.property_id), "favorited_at": row.created_at.isoformat(),
             "listing": row.property.summary() if row.property.is_public else None}
            for row in rows]
