"""Offers on listings and counter-offers: the table, who sees an offer, and the changes of a chain.

The rules without rows are in ``models/offer_rules.py``; acceptance (which opens
an escrow and puts the listing under contract) in ``models/offer_acceptance.py``.
Every change runs in the caller's transaction and locks the listing row first,
so two answers to one offer (or two acceptances on one listing) cannot both win.
"""

from __future__ import annotations

import builtins
import datetime
import uuid
from dataclasses import replace

from peewee import SQL, BigIntegerField, CharField, DateField, Expression, ForeignKeyField, TextField, UUIDField
from playhouse.postgres_ext import ArrayField, BinaryJSONField

from models.accounts import User
from models.base import DateTimeTZField, UUIDModel, utcnow
from models.messages import attachment_errors
from models.money_notices import offer_notice
from models.offer_rules import (
    LIVE,
    Contingency,
    InvalidOffer,
    NotYourTurn,
    OfferConflict,
    OfferTerms,
    can_transition,
    other_side,
    term_errors,
)
from models.properties import Property


class Offer(UUIDModel):
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    property_id: uuid.UUID
    buyer = ForeignKeyField(User, column_name="buyer_id", on_delete="CASCADE")
    buyer_id: uuid.UUID
    buyer_agent = ForeignKeyField(User, column_name="buyer_agent_id", null=True, on_delete="SET NULL")
    buyer_agent_id: uuid.UUID | None
    author = ForeignKeyField(User, column_name="author_id", null=True, on_delete="SET NULL")
    author_id: uuid.UUID | None
    side = CharField()
    parent = ForeignKeyField("self", column_name="parent_id", null=True, on_delete="CASCADE")
    parent_id: uuid.UUID | None
    root_id = UUIDField()
    status = CharField(default="submitted")
    currency = CharField(default="USD")
    price = BigIntegerField()
    earnest_money = BigIntegerField()
    financing = CharField()
    contingencies = BinaryJSONField(default=list)
    closing_date = DateField()
    expires_at = DateTimeTZField()
    message = TextField(null=True)
    documents = ArrayField(UUIDField, default=list)
    decided_by = ForeignKeyField(User, column_name="decided_by", null=True, on_delete="SET NULL")
    decided_by_id: uuid.UUID | None
    decided_at = DateTimeTZField(null=True)
    decision_reason = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "offers"

    # --- who -----------------------------------------------------------------------------

    @builtins.property
    def is_live(self) -> bool:
        return self.status in LIVE

    def buyer_side(self) -> set[str]:
        return {str(u) for u in (self.buyer_id, self.buyer_agent_id) if u is not None}

    def listing_side(self, listing: Property | None = None) -> set[str]:
        listing = listing or self.property
        return {str(u) for u in (listing.owner_id, listing.list_agent_id) if u is not None}

    def side_of(self, user_id, listing: Property | None = None) -> str | None:
        """``buyer`` or ``listing`` for a party of the offer, else None (admins are neither)."""
        user_id = str(user_id)
        if user_id in self.buyer_side():
            return "buyer"
        if user_id in self.listing_side(listing):
            return "listing"
        return None

    def parties(self, listing: Property | None = None) -> list[str]:
        return sorted(self.buyer_side() | self.listing_side(listing))

    def is_visible_to(self, principal, listing: Property | None = None) -> bool:
        return principal is not None and (principal.is_admin or self.side_of(principal.user_id, listing) is not None)

    def terms(self) -> OfferTerms:
        return OfferTerms(
            price=self.price,
            earnest_money=self.earnest_money,
            financing=self.financing,
            closing_date=self.closing_date,
            expires_at=self.expires_at,
            contingencies=tuple(Contingency(c["kind"], c["days"]) for c in self.contingencies),
            message=self.message,
            documents=tuple(self.documents or ()),
            currency=self.currency,
        )

    # --- views ---------------------------------------------------------------------------

    def view(self) -> dict:
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        return {
            "id": str(self.id),
            "property_id": str(self.property_id),
            "buyer_id": str(self.buyer_id),
            "buyer_agent_id": str(self.buyer_agent_id) if self.buyer_agent_id else None,
            "author_id": str(self.author_id) if self.author_id else None,
            "side": self.side,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "root_id": str(self.root_id),
            "status": self.status,
            "currency": self.currency,
            "price": self.price,
            "earnest_money": self.earnest_money,
            "financing": self.financing,
            "contingencies": list(self.contingencies or ()),
            "closing_date": self.closing_date.isoformat(),
            "expires_at": iso(self.expires_at),
            "message": self.message,
            "documents": [str(d) for d in self.documents or ()],
            "decided_by": str(self.decided_by_id) if self.decided_by_id else None,
            "decided_at": iso(self.decided_at),
            "decision_reason": self.decision_reason,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def lock_listing(property_id) -> Property | None:
    """The listing row, locked until the transaction ends: offer changes on one listing take turns."""
    return Property.select().where(Property.id == property_id).for_update().first()


def lock_offer(offer_id) -> tuple[Offer, Property] | None:
    """The offer and its listing, both locked (the listing first, as every offer change does)."""
    offer = Offer.get_or_none(Offer.id == offer_id)
    if offer is None:
        return None
    listing = lock_listing(offer.property_id)
    offer = Offer.select().where(Offer.id == offer_id).for_update().first()
    if offer is None or listing is None:
        return None
    offer.property = listing
    return offer, listing


def visible(offer_id, principal) -> Offer | None:
    """The offer if ``principal`` may see it (a party or an admin); None reads exactly like no offer."""
    try:
        offer = Offer.select(Offer, Property).join(Property).where(Offer.id == offer_id).first()
    except ValueError:
        return None
    if offer is None or not offer.is_visible_to(principal):
        return None
    return offer


def set_status(offer: Offer, status: str, *, actor_id=None, reason: str | None = None, now=None) -> None:
    if not can_transition(offer.status, status):
        raise OfferConflict(f"the offer is {offer.status}; it cannot become {status}")
    now = now or utcnow()
    values = {"status": status, "updated_at": now}
    if status in ("accepted", "rejected", "withdrawn", "countered", "expired", "closed"):
        values.update(decided_by=actor_id, decided_at=now, decision_reason=reason)
    Offer.update(values).where(Offer.id == offer.id).execute()
    for name, value in values.items():
        setattr(offer, "decided_by_id" if name == "decided_by" else name, value)


def _check_terms(terms: OfferTerms, author_id, now) -> None:
    errors = term_errors(terms, now=now)
    errors += [(f"documents[{i}]", message) for i, message in attachment_errors(author_id, list(terms.documents))]
    if errors:
        raise InvalidOffer(errors)


def make_offer(listing: Property, *, author_id, buyer_id, buyer_agent_id, terms: OfferTerms, now=None) -> Offer:
    """A new chain's first offer, from the buyer's side; ``listing`` must be locked (``lock_listing``)."""
    now = now or utcnow()
    people = {str(u) for u in (listing.owner_id, listing.list_agent_id) if u is not None}
    if people & {str(u) for u in (author_id, buyer_id, buyer_agent_id) if u is not None}:
        raise InvalidOffer([("property_id", "this is your own listing; its people cannot make offers on it")])
    if listing.standard_status != "Active":
        raise OfferConflict(f"the listing is {listing.standard_status}; offers are taken on Active listings only")
    _check_terms(terms, author_id, now)
    mine = (Offer.property == listing.id) & (Offer.buyer == buyer_id) & Offer.status.in_(LIVE)
    if Offer.select().where(mine).exists():
        raise OfferConflict("this buyer already has a live offer on the listing; counter or withdraw it instead")
    offer_id = uuid.uuid4()
    offer = _create(
        id=offer_id,
        root_id=offer_id,
        property=listing.id,
        buyer=buyer_id,
        buyer_agent=buyer_agent_id,
        author=author_id,
        side="buyer",
        **_term_values(terms),
        created_at=now,
        updated_at=now,
    )
    # The listing's side answers it; the buyer's side hears of it when someone offers on their behalf.
    offer_notice(offer, listing, "offer.received", to=offer.parties(listing), actor_id=author_id)
    return offer


def _create(**values) -> Offer:
    """``Offer.create`` with the documents sent as ``uuid[]``: psycopg2 sends a list of strings as ``text[]``,
    which PostgreSQL will not store in the ``uuid[]`` column."""
    documents = values.pop("documents")
    offer = Offer.create(**values, documents=SQL("%s::uuid[]", (documents,)))
    offer.documents = documents
    return offer


def _term_values(terms: OfferTerms) -> dict:
    return {
        "currency": terms.currency,
        "price": terms.price,
        "earnest_money": terms.earnest_money,
        "financing": terms.financing,
        "contingencies": terms.contingencies_json(),
        "closing_date": terms.closing_date,
        "expires_at": terms.expires_at,
        "message": terms.message,
        "documents": [str(d) for d in terms.documents],
    }


def require_turn(offer: Offer, actor_id, action: str, listing: Property) -> str:
    """The actor's side if it may ``action`` the offer now (the side that did not write it answers)."""
    side = offer.side_of(actor_id, listing)
    if side is None:
        raise NotYourTurn("only the parties of an offer act on it")
    if offer.status != "submitted":
        raise OfferConflict(f"the offer is {offer.status}; only a live offer can be {action}")
    if action == "withdrawn":
        if side != offer.side:
            raise NotYourTurn("only the side that made the offer can withdraw it")
    elif side == offer.side:
        raise NotYourTurn(f"the offer is waiting for the {other_side(offer.side)} side's answer")
    return side


def counter(offer: Offer, listing: Property, *, author_id, changes: dict, now=None) -> Offer:
    """The other side's counter-offer: the live offer becomes ``countered`` and the counter is live."""
    now = now or utcnow()
    side = require_turn(offer, author_id, "countered", listing)
    if listing.standard_status != "Active":
        raise OfferConflict(f"the listing is {listing.standard_status}; counters are made on Active listings only")
    # A counter restates the terms it changes; its message and documents are its own.
    terms = replace(offer.terms(), message=None, documents=()).with_changes(**changes)
    _check_terms(terms, author_id, now)
    set_status(offer, "countered", actor_id=author_id, now=now)
    countered = _create(
        root_id=offer.root_id,
        parent=offer.id,
        property=offer.property_id,
        buyer=offer.buyer_id,
        buyer_agent=offer.buyer_agent_id,
        author=author_id,
        side=side,
        **_term_values(terms),
        created_at=now,
        updated_at=now,
    )
    offer_notice(countered, listing, "offer.countered", to=countered.parties(listing), actor_id=author_id)
    return countered


def reject(offer: Offer, listing: Property, *, actor_id, reason: str | None = None, now=None) -> None:
    require_turn(offer, actor_id, "rejected", listing)
    set_status(offer, "rejected", actor_id=actor_id, reason=reason, now=now)
    offer_notice(offer, listing, "offer.rejected", to=offer.parties(listing), actor_id=actor_id, note=reason)


def withdraw(offer: Offer, listing: Property, *, actor_id, reason: str | None = None, now=None) -> None:
    """Its author's side takes a live offer (or a backup) back."""
    side = offer.side_of(actor_id, listing)
    if side is None:
        raise NotYourTurn("only the parties of an offer act on it")
    if side != offer.side:
        raise NotYourTurn("only the side that made the offer can withdraw it")
    if offer.status not in LIVE:
        raise OfferConflict(f"the offer is {offer.status}; only a live offer can be withdrawn")
    set_status(offer, "withdrawn", actor_id=actor_id, reason=reason, now=now)
    offer_notice(offer, listing, "offer.withdrawn", to=offer.parties(listing), actor_id=actor_id, note=reason)


def due_to_expire(now: datetime.datetime, limit: int = 500) -> list[Offer]:
    """Live offers past their expiry, locked (skipping rows another sweep holds)."""
    return list(
        Offer.select()
        .where(Offer.status.in_(LIVE) & (Offer.expires_at <= now))
        .order_by(Offer.expires_at)
        .limit(limit)
        .for_update(skip_locked=True)
    )


def expire(offer: Offer, *, now=None) -> None:
    set_status(offer, "expired", reason="the offer expired", now=now)


def live_offers_of(property_id, *, excluding=None) -> list[Offer]:
    """The listing's live offers (but ``excluding``), locked for this transaction."""
    sql, params = "SELECT * FROM offers WHERE property_id = %s AND status = ANY(%s)", [property_id, list(LIVE)]
    if excluding is not None:
        sql, params = sql + " AND id <> %s", [*params, excluding]
    return list(Offer.raw(sql + " FOR UPDATE", *params))


def make_backups(property_id, accepted_id, *, now=None) -> list[Offer]:
    """Every other live offer of the listing becomes a backup; returns them."""
    offers = [o for o in live_offers_of(property_id, excluding=accepted_id) if o.status == "submitted"]
    for offer in offers:
        set_status(offer, "backup", now=now)
    return offers


def end_backups(property_id, *, sold: bool, now=None) -> list[Offer]:
    """The escrow ended: backups close (the listing sold) or are live again (it fell through)."""
    now = now or utcnow()
    offers = [o for o in live_offers_of(property_id) if o.status == "backup"]
    for offer in offers:
        if sold:
            set_status(offer, "closed", reason="the listing sold", now=now)
        elif offer.expires_at <= now:
            set_status(offer, "submitted", now=now)
            expire(offer, now=now)
        else:
            set_status(offer, "submitted", now=now)
    return offers


def document_shared_with(upload_id, user_id) -> bool:
    """Whether ``user_id`` is a party of an offer (or counter) that carries the upload ``upload_id``."""
    party = (
        (Offer.buyer == user_id)
        | (Offer.buyer_agent == user_id)
        | (Property.owner == user_id)
        | (Property.list_agent == user_id)
    )
    return (
        Offer.select(SQL("1"))
        .join(Property, on=(Offer.property == Property.id))
        .where(Expression(Offer.documents, "@>", SQL("ARRAY[%s]::uuid[]", (str(upload_id),))) & party)
        .exists()
    )


__all__ = [
    "Offer",
    "counter",
    "document_shared_with",
    "due_to_expire",
    "end_backups",
    "expire",
    "lock_listing",
    "lock_offer",
    "make_backups",
    "make_offer",
    "reject",
    "require_turn",
    "visible",
    "withdraw",
]
