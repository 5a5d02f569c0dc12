"""Escrows for tests, built through the models: a listing, an offer, its acceptance, and a funded deposit."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from models.accounts import User
from models.base import utcnow
from models.escrows import Escrow, record
from models.offer_acceptance import accept
from models.offer_rules import Contingency, OfferTerms
from models.offers import Offer, make_offer
from models.payments import Payment
from models.properties import Property
from tests.factories import make_user

PRICE = 500_000_00
EARNEST = 10_000_00


@dataclass
class Deal:
    listing: Property
    offer: Offer
    escrow: Escrow
    buyer: User
    buyer_agent: User
    seller: User
    list_agent: User
    backups: list[Offer] = field(default_factory=list)

    def people(self) -> list[User]:
        return [self.buyer, self.buyer_agent, self.seller, self.list_agent]

    def reload(self) -> Escrow:
        self.escrow = Escrow.get_by_id(self.escrow.id)
        return self.escrow


def make_listing(seller: User, agent: User | None) -> Property:
    return Property.create(
        owner=seller.id,
        list_agent=agent.id if agent else None,
        standard_status="Active",
        property_type="Residential",
        list_price=PRICE,
        original_list_price=PRICE,
        city="Springfield",
        unparsed_address="7 Maple Row",
    )


def terms(now: datetime.datetime, contingencies: tuple[tuple[str, int], ...]) -> OfferTerms:
    return OfferTerms(
        price=PRICE,
        earnest_money=EARNEST,
        financing="conventional",
        closing_date=(now + datetime.timedelta(days=60)).date(),
        # Long enough for backups to outlive a deposit deadline (3 business days, at most 5 calendar days).
        expires_at=now + datetime.timedelta(days=6),
        contingencies=tuple(Contingency(kind, days) for kind, days in contingencies),
    )


def make_deal(
    *,
    contingencies: tuple[tuple[str, int], ...] = (("inspection", 10), ("financing", 21)),
    now: datetime.datetime | None = None,
    backup_buyers: int = 0,
) -> Deal:
    """An accepted offer (by the seller) and its escrow, awaiting the deposit; ``backup_buyers`` other
    buyers' offers were live and became backups."""
    now = now or utcnow()
    seller, list_agent = make_user(role="seller"), make_user(role="agent")
    buyer, buyer_agent = make_user(role="buyer"), make_user(role="agent")
    listing = make_listing(seller, list_agent)
    for _ in range(backup_buyers):
        other = make_user(role="buyer")
        make_offer(listing, author_id=other.id, buyer_id=other.id, buyer_agent_id=None, terms=terms(now, ()), now=now)
    offer = make_offer(
        listing,
        author_id=buyer.id,
        buyer_id=buyer.id,
        buyer_agent_id=buyer_agent.id,
        terms=terms(now, contingencies),
        now=now,
    )
    accepted = accept(offer, listing, actor_id=seller.id, deposit_business_days=3, now=now)
    return Deal(
        listing=listing,
        offer=accepted.offer,
        escrow=accepted.escrow,
        buyer=buyer,
        buyer_agent=buyer_agent,
        seller=seller,
        list_agent=list_agent,
        backups=accepted.backups,
    )


def fund(deal: Deal, *, now: datetime.datetime | None = None) -> Escrow:
    """The deposit arrived (what the funding job does, without the provider and the ledger)."""
    escrow = deal.reload()
    Escrow.update(held=escrow.amount).where(Escrow.id == escrow.id).execute()
    escrow.held = escrow.amount
    record(escrow, "funded", to_status="funded", data={"amount": escrow.amount}, now=now)
    return deal.reload()


def deposit_payment(deal: Deal, *, secret: str = "pi_test_1_secret_abc", status: str = "pending") -> Payment:
    return Payment.create(
        escrow=deal.escrow.id,
        kind="deposit",
        recipient=None,
        amount=deal.escrow.amount,
        status=status,
        provider="sandbox",
        provider_ref=f"pi_{deal.escrow.id.hex}",
        idempotency_key=f"escrow:{deal.escrow.id}:deposit",
        client_secret=secret,
    )
