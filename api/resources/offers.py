"""``/v1/offers`` and ``/v1/properties/{id}/offers``: offers on listings, counter-offers and their answers.

Who sees an offer: its buyer's side (the buyer, the buyer's agent), its listing's
side (the owner, the listing agent) and admins; anyone else gets 404, as if it did
not exist. Every change runs in one transaction that locks the listing row first
(``models.offers.lock_offer``), so two answers to one offer, or two acceptances on
one listing, take turns and the second sees what the first did. After the commit
the change is published on each party's ``user:{id}`` channel (``offer.*`` events);
the notifications were written with it (``models.money_notices``). The rules and
the state diagram are in docs/escrow.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import falcon

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import Problem, conflict, forbidden, not_found, validation_error
from api.operation import operation
from api.party_events import publish_to_parties
from api.resources.properties import load_visible
from api.schemas.offers import (
    TERM_FIELDS,
    MyOffersQuery,
    OfferCounter,
    OfferCreate,
    OfferDecision,
    OfferListQuery,
    OfferPage,
    OfferView,
)
from models import offer_views
from models.accounts import User
from models.db import db
from models.listing_rules import IllegalTransition
from models.offer_acceptance import accept
from models.offer_rules import Contingency, InvalidOffer, NotYourTurn, OfferError, OfferTerms
from models.offers import Offer, counter, lock_listing, lock_offer, make_offer, reject, visible, withdraw
from models.properties import Property

TAGS = ("offers",)
T = TypeVar("T")
OFFER_MAKERS = ("buyer", "agent")
NOT_AN_OFFER_MAKER = (
    "Offers are made by buyers (for themselves) and by agents (for a buyer they name); "
    "a listing's people answer offers, and admins do not make them."
)
ACTION_RULES = (
    "Parties and admins only: anyone else gets 404. Only the live offer of a chain (`submitted`) is "
    "answered, by the side that did not write it (403 for the side that wrote it, and for admins); "
    "an offer that is no longer live is a 409."
)


def refused(exc: OfferError | IllegalTransition) -> Problem:
    """The answer to a change the offer rules refuse."""
    if isinstance(exc, InvalidOffer):
        return validation_error(
            [
                {"field": "path.property_id" if name == "property_id" else f"body.{name}", "message": message}
                for name, message in exc.errors
            ]
        )
    if isinstance(exc, NotYourTurn):
        return Problem(falcon.HTTP_403, "Forbidden", f"{str(exc).capitalize()}.", slug="not-your-turn")
    return conflict(f"{str(exc).capitalize()}.", slug="offer-conflict")


def publish(req, offer: Offer, listing: Property, type_: str, view: dict) -> None:
    """The event on every party's user channel once the change has committed; a failure is logged."""
    publish_to_parties(req, offer.parties(listing), type_, view)


def load_offer(offer_id, principal) -> Offer:
    offer = visible(offer_id, principal)
    if offer is None:
        raise not_found("offer")
    return offer


def _user_with_role(user_id, role: str, field: str) -> str:
    user = User.get_or_none(User.id == user_id)
    if user is None or user.role != role or user.banned_at is not None:
        raise validation_error([{"field": f"body.{field}", "message": f"no such {role}"}])
    return str(user.id)


def buyer_side_of(principal, body: OfferCreate) -> tuple[str, str | None]:
    """(buyer, buyer's agent) of a new offer by ``principal``: 422 when the body names the wrong people."""
    if principal.role == "buyer":
        if body.buyer_id is not None and str(body.buyer_id) != principal.user_id:
            raise validation_error([{"field": "body.buyer_id", "message": "a buyer makes offers for themself only"}])
        agent = _user_with_role(body.buyer_agent_id, "agent", "buyer_agent_id") if body.buyer_agent_id else None
        return principal.user_id, agent
    if body.buyer_id is None:
        raise validation_error([{"field": "body.buyer_id", "message": "an agent names the buyer the offer is for"}])
    if body.buyer_agent_id is not None and str(body.buyer_agent_id) != principal.user_id:
        raise validation_error(
            [{"field": "body.buyer_agent_id", "message": "an agent making an offer is the buyer's agent"}]
        )
    return _user_with_role(body.buyer_id, "buyer", "buyer_id"), principal.user_id


def terms_of(body: OfferCreate) -> OfferTerms:
    return OfferTerms(
        price=body.price,
        earnest_money=body.earnest_money,
        financing=body.financing,
        closing_date=body.closing_date,
        expires_at=body.expires_at,
        contingencies=tuple(Contingency(c.kind, c.days) for c in body.contingencies),
        message=body.message,
        documents=tuple(body.documents),
    )


def changes_of(body: OfferCounter) -> dict:
    changes = {name: getattr(body, name) for name in TERM_FIELDS if getattr(body, name) is not None}
    if not changes:
        raise validation_error(
            [{"field": "body", "message": f"a counter-offer changes at least one of {', '.join(TERM_FIELDS)}"}]
        )
    if "contingencies" in changes:
        changes["contingencies"] = tuple(Contingency(c.kind, c.days) for c in body.contingencies or ())
    return dict(changes, message=body.message, documents=tuple(body.documents))


class ListingOffers:
    """``/v1/properties/{property_id}/offers``: make an offer; the offers of a listing."""

    def __init__(self, secret: str | None = None):
        self.cursors = CursorCodec(secret or "", "listing-offers")

    @operation(
        "Make an offer on a listing",
        idempotent=True,
        body=OfferCreate,
        response=OfferView,
        status=201,
        errors=(403, 404, 409, 422),
        tags=TAGS,
        description="A buyer offers for themself (optionally naming their agent in `buyer_agent_id`); an agent "
        "offers for the buyer named in `buyer_id` (a user whose role is buyer). Needs the `offers:create` "
        "permission and the role buyer or agent: sellers and admins get 403. A listing you cannot see is a "
        "404; its own people (owner, listing agent) cannot offer on it (422 naming `path.property_id`); "
        "only an `Active` listing takes offers, and a buyer has one live offer per listing (409). The "
        "earnest money is at most the price, the expiry between 5 minutes and 7 days away, the closing "
        "date after today, each contingency kind once and none on financing for a cash offer (422). "
        "`documents` are your own clean uploads (422 naming `body.documents[i]` otherwise). Answers 201 "
        "with `Location: /v1/offers/{id}`; the listing's side is notified (`offer.received`) and every "
        "party's `user:{id}` channel gets an `offer.received` event.",
    )
    def on_post(self, req, resp, property_id):
        body: OfferCreate = req.context.body
        principal = req.context.principal
        if principal.role not in OFFER_MAKERS or not principal.can("offers:create"):
            raise forbidden(NOT_AN_OFFER_MAKER)
        load_visible(property_id, principal)
        buyer_id, buyer_agent_id = buyer_side_of(principal, body)
        try:
            with db.atomic():
                listing = lock_listing(property_id)
                if listing is None:
                    raise not_found("property")
                offer = make_offer(
                    listing,
                    author_id=principal.user_id,
                    buyer_id=buyer_id,
                    buyer_agent_id=buyer_agent_id,
                    terms=terms_of(body),
                )
                audit(req, "offer.create", offer.id, target_type="offer", after=_audited(offer))
        except OfferError as exc:
            raise refused(exc) from None
        view = offer_views.offer_view(offer)
        publish(req, offer, listing, "offer.received", view)
        resp.location = f"/v1/offers/{offer.id}"
        resp.media = view

    @operation(
        "The offers on a listing",
        query=OfferListQuery,
        response=OfferPage,
        errors=(404,),
        tags=TAGS,
        description="The listing's side (owner, listing agent) and admins see every offer on the listing; a "
        "buyer or buyer's agent sees the offers of their own chains only; anyone else gets 404, the "
        "people of other listings included. Newest first; pages follow `next_cursor`.",
    )
    def on_get(self, req, resp, property_id):
        q: OfferListQuery = req.context.query
        principal = req.context.principal
        listing = Property.get_or_none(Property.id == property_id)
        if listing is None:
            raise not_found("property")
        if listing.is_managed_by(principal):
            query = offer_views.of_listing(listing.id, status=q.status)
        elif offer_views.has_offers_as_buyer(listing.id, principal.user_id):
            query = offer_views.of_listing(listing.id, user_id=principal.user_id, status=q.status)
        else:
            raise not_found("property")
        rows, next_cursor = self.cursors.newest_first(query, Offer.created_at, Offer.id, q.cursor, q.limit)
        resp.media = {"items": offer_views.offer_views(rows), "next_cursor": next_cursor}


def _audited(offer: Offer) -> dict:
    return {"status": offer.status, "price": offer.price, "earnest_money": offer.earnest_money, "side": offer.side}


class Offers:
    """``/v1/offers``: my offers, one offer, and the answers to it."""

    def __init__(self, secret: str | None = None, *, deposit_business_days: int = 3):
        self.cursors = CursorCodec(secret or "", "offers")
        self.deposit_business_days = deposit_business_days

    @operation(
        "My offers",
        query=MyOffersQuery,
        response=OfferPage,
        tags=TAGS,
        description="Offers where you are the buyer or the buyer's agent (`role=buyer`), offers on listings "
        "you own or represent (`role=listing`), or both (no `role`); every offer of a chain is listed, "
        "counters included. Newest first; pages follow `next_cursor`.",
    )
    def on_get(self, req, resp):
        q: MyOffersQuery = req.context.query
        query = offer_views.mine(req.context.principal.user_id, role=q.role, status=q.status)
        rows, next_cursor = self.cursors.newest_first(query, Offer.created_at, Offer.id, q.cursor, q.limit)
        resp.media = {"items": offer_views.offer_views(rows), "next_cursor": next_cursor}

    @operation(
        "One offer",
        response=OfferView,
        errors=(404,),
        tags=TAGS,
        description="The offer with its chain (every offer and counter of it, oldest first) and, once "
        "accepted, its escrow. Parties and admins only; anyone else gets 404.",
    )
    def on_get_item(self, req, resp, offer_id):
        resp.media = offer_views.offer_view(load_offer(offer_id, req.context.principal))

    def _change(self, req, offer_id, action: str, change: Callable[[Offer, Property], T]) -> tuple[Offer, Property, T]:
        """Run ``change(offer, listing)`` on the locked offer with its audit row; the refusals as problems."""
        principal = req.context.principal
        load_offer(offer_id, principal)  # 404 before anything else for whoever may not see it
        try:
            with db.atomic():
                locked = lock_offer(offer_id)
                if locked is None:
                    raise not_found("offer")
                offer, listing = locked
                before = _audited(offer)
                result = change(offer, listing)
                audit(req, f"offer.{action}", offer.id, target_type="offer", before=before, after=_audited(offer))
        except (OfferError, IllegalTransition) as exc:
            raise refused(exc) from None
        return offer, listing, result

    @operation(
        "Accept an offer",
        idempotent=True,
        response=OfferView,
        errors=(403, 404, 409),
        tags=TAGS,
        response_headers={"Location": "The escrow opened for the offer: `/v1/escrows/{id}`"},
        description=ACTION_RULES + " Accepting moves the listing to `ActiveUnderContract` (in its history), "
        "opens the escrow (`escrow_id`, and `Location: /v1/escrows/{id}`) whose earnest money is due within "
        "`ESCROW_DEPOSIT_BUSINESS_DAYS` business days, and makes every other live offer on the listing a "
        "`backup` (its buyer is notified): backups cannot be accepted (409) until the escrow ends. A listing "
        "that is no longer `Active` is a 409: of two acceptances on one listing, one wins.",
    )
    def on_post_accept(self, req, resp, offer_id):
        user_id = req.context.principal.user_id
        offer, listing, accepted = self._change(
            req,
            offer_id,
            "accept",
            lambda offer, listing: accept(
                offer, listing, actor_id=user_id, deposit_business_days=self.deposit_business_days
            ),
        )
        view = offer_views.offer_view(offer)
        publish(req, offer, listing, "offer.accepted", view)
        backups = offer_views.offer_views(accepted.backups)
        for backup, backup_view in zip(accepted.backups, backups, strict=True):
            publish(req, backup, listing, "offer.backup", backup_view)
        resp.location = f"/v1/escrows/{accepted.escrow.id}"
        resp.media = view

    @operation(
        "Reject an offer",
        idempotent=True,
        body=OfferDecision,
        response=OfferView,
        errors=(403, 404, 409),
        tags=TAGS,
        description=ACTION_RULES + " The chain ends; the other side is notified (`offer.rejected`) with the "
        "reason, if given.",
    )
    def on_post_reject(self, req, resp, offer_id):
        body: OfferDecision = req.context.body
        user_id = req.context.principal.user_id
        offer, listing, _ = self._change(
            req,
            offer_id,
            "reject",
            lambda offer, listing: reject(offer, listing, actor_id=user_id, reason=_stripped(body.reason)),
        )
        resp.media = view = offer_views.offer_view(offer)
        publish(req, offer, listing, "offer.rejected", view)

    @operation(
        "Withdraw an offer",
        idempotent=True,
        body=OfferDecision,
        response=OfferView,
        errors=(403, 404, 409),
        tags=TAGS,
        description="The side that wrote the offer (or counter) takes it back while it is live or a backup; "
        "the other side gets 403, an offer no longer live 409, anyone who is not a party 404. The other "
        "side is notified (`offer.withdrawn`).",
    )
    def on_post_withdraw(self, req, resp, offer_id):
        body: OfferDecision = req.context.body
        user_id = req.context.principal.user_id
        offer, listing, _ = self._change(
            req,
            offer_id,
            "withdraw",
            lambda offer, listing: withdraw(offer, listing, actor_id=user_id, reason=_stripped(body.reason)),
        )
        resp.media = view = offer_views.offer_view(offer)
        publish(req, offer, listing, "offer.withdrawn", view)

    @operation(
        "Counter an offer",
        idempotent=True,
        body=OfferCounter,
        response=OfferView,
        status=201,
        errors=(403, 404, 409, 422),
        tags=TAGS,
        description=ACTION_RULES + " The counter-offer restates the terms it changes (at least one; the "
        "others are the answered offer's) and is the chain's live offer from then on: the answered one "
        "becomes `countered`. The same rules between terms as for a new offer apply (422), and the "
        "listing must still be `Active` (409). Answers 201 with the new offer and `Location: "
        "/v1/offers/{id}`; the other side is notified (`offer.countered`).",
    )
    def on_post_counter(self, req, resp, offer_id):
        body: OfferCounter = req.context.body
        changes = changes_of(body)
        user_id = req.context.principal.user_id
        _, listing, countered = self._change(
            req,
            offer_id,
            "counter",
            lambda offer, listing: counter(offer, listing, author_id=user_id, changes=changes),
        )
        view = offer_views.offer_view(countered)
        publish(req, countered, listing, "offer.countered", view)
        resp.location = f"/v1/offers/{countered.id}"
        resp.media = view


def _stripped(reason: str | None) -> str | None:
    return (reason or "").strip() or None
