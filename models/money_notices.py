"""What the parties of an offer or an escrow are told, through ``notify()`` and their preferences.

Every change tells the people it concerns except the one who made it. Texts
carry amounts and the listing's address, never a payment secret.
"""

from __future__ import annotations

from models.notifications import fanned_out, notify_each
from models.properties import Property
from models.saved_searches import money

OFFER_TITLES = {
    "offer.received": "New offer",
    "offer.countered": "Counter-offer",
    "offer.accepted": "Offer accepted",
    "offer.rejected": "Offer rejected",
    "offer.withdrawn": "Offer withdrawn",
    "offer.expired": "Offer expired",
    "offer.backup": "Your offer is now a backup",
}


def _where(listing: Property) -> str:
    return listing.unparsed_address or listing.city


def tell(user_ids, type_: str, *, title: str, body: str, data: dict, actor_id=None, dedupe_key=None) -> int:
    """Notify each of ``user_ids`` but the actor; returns how many were told."""
    told = sorted({str(u) for u in user_ids if u is not None} - {str(actor_id)})
    key = (lambda user_id: f"{dedupe_key}:{user_id}") if dedupe_key else None
    job = notify_each(told, type_, title=title, body=body[:2000], data=data, dedupe_key=key)
    return len(fanned_out(job)) if job is not None else 0


def offer_notice(offer, listing: Property, type_: str, *, to, actor_id=None, note: str | None = None) -> int:
    price = money(offer.price, offer.currency)
    body = f"{OFFER_TITLES[type_]}: {price} for {_where(listing)}."
    if note:
        body += f" {note}"
    data = {"offer_id": str(offer.id), "property_id": str(listing.id), "status": offer.status}
    return tell(
        to, type_, title=OFFER_TITLES[type_], body=body, data=data, actor_id=actor_id, dedupe_key=f"{type_}:{offer.id}"
    )


def escrow_notice(escrow, type_: str, *, title: str, body: str, actor_id=None, dedupe: str | None = None) -> int:
    data = {"escrow_id": str(escrow.id), "property_id": str(escrow.property_id), "status": escrow.status}
    key = f"{type_}:{escrow.id}:{dedupe}" if dedupe else None
    return tell(escrow.parties(), type_, title=title, body=body, data=data, actor_id=actor_id, dedupe_key=key)


def amount(escrow) -> str:
    return money(escrow.amount, escrow.currency)
