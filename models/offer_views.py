"""Offers as the API shows them, and the queries of the offer lists.

A view is the offer's own fields, its chain (every offer of its root, oldest
first) and the escrow opened when it was accepted. Views of a page are built
with two queries whatever its length.
"""

from __future__ import annotations

from models.escrows import Escrow
from models.offers import Offer
from models.properties import Property


def _link(offer: Offer) -> dict:
    return {
        "id": str(offer.id),
        "side": offer.side,
        "status": offer.status,
        "price": offer.price,
        "created_at": offer.created_at.isoformat(),
    }


def offer_views(offers: list[Offer]) -> list[dict]:
    """``Offer.view()`` of each offer with its ``chain`` and ``escrow_id``."""
    if not offers:
        return []
    roots = {offer.root_id for offer in offers}
    chains: dict[str, list[dict]] = {}
    for link in Offer.select().where(Offer.root_id.in_(list(roots))).order_by(Offer.created_at, Offer.id):
        chains.setdefault(str(link.root_id), []).append(_link(link))
    accepted = [offer.id for offer in offers if offer.status == "accepted"]
    escrows = (
        {str(e.offer_id): str(e.id) for e in Escrow.select(Escrow.id, Escrow.offer).where(Escrow.offer.in_(accepted))}
        if accepted
        else {}
    )
    return [
        dict(offer.view(), chain=chains.get(str(offer.root_id), []), escrow_id=escrows.get(str(offer.id)))
        for offer in offers
    ]


def offer_view(offer: Offer) -> dict:
    return offer_views([offer])[0]


def of_listing(property_id, *, user_id=None, status: str | None = None):
    """The offers of a listing; with ``user_id``, only those of chains where they are the buyer's side."""
    query = Offer.select().where(Offer.property == property_id)
    if user_id is not None:
        query = query.where((Offer.buyer == user_id) | (Offer.buyer_agent == user_id))
    if status is not None:
        query = query.where(Offer.status == status)
    return query


def has_offers_as_buyer(property_id, user_id) -> bool:
    return of_listing(property_id, user_id=user_id).exists()


def mine(user_id, *, role: str | None = None, status: str | None = None):
    """Offers where ``user_id`` is on the buyer's side (``role="buyer"``), the listing's (``"listing"``) or either."""
    as_buyer = (Offer.buyer == user_id) | (Offer.buyer_agent == user_id)
    as_listing = (Property.owner == user_id) | (Property.list_agent == user_id)
    where = {"buyer": as_buyer, "listing": as_listing}.get(role or "", as_buyer | as_listing)
    query = Offer.select().join(Property, on=(Offer.property == Property.id)).where(where)
    if status is not None:
        query = query.where(Offer.status == status)
    return query
