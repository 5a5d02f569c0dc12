"""Accepting an offer: the listing goes under contract, an escrow opens, the other offers become backups.

All of it in the caller's transaction, with the listing row locked
(``models.offers.lock_offer``): of two acceptances on one listing, the second
finds it under contract and is refused. The escrow's deposit is then
collected by a ``money`` job (``escrows.collect_deposit``) created here and
submitted after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.escrows import Escrow, open_escrow
from models.jobs import Job
from models.money_notices import escrow_notice, offer_notice
from models.offer_rules import OfferConflict
from models.offers import Offer, make_backups, require_turn, set_status
from models.properties import Property
from models.search import queue as search_queue

COLLECT_DEPOSIT_KIND = "escrows.collect_deposit"
MONEY_QUEUE = "money"


@dataclass
class Accepted:
    offer: Offer
    escrow: Escrow
    backups: list[Offer]


def collect_deposit_job(escrow: Escrow) -> Job:
    return Job.create(
        kind=COLLECT_DEPOSIT_KIND,
        queue=MONEY_QUEUE,
        input={"escrow_id": str(escrow.id)},
        max_attempts=8,
        dedupe_key=f"escrow:{escrow.id}:collect_deposit",
    )


def accept(offer: Offer, listing: Property, *, actor_id, deposit_business_days: int, now=None) -> Accepted:
    """The other side accepts the live ``offer`` (both rows locked by ``lock_offer``)."""
    require_turn(offer, actor_id, "accepted", listing)
    if listing.standard_status != "Active":
        raise OfferConflict(f"the listing is {listing.standard_status}; only an Active listing can go under contract")
    set_status(offer, "accepted", actor_id=actor_id, now=now)
    listing.change_status("ActiveUnderContract", actor_id=actor_id)
    search_queue.mark_dirty(listing.id)
    backups = make_backups(listing.id, offer.id, now=now)
    escrow = open_escrow(offer, listing, actor_id=actor_id, deposit_business_days=deposit_business_days, now=now)
    collect_deposit_job(escrow)
    offer_notice(offer, listing, "offer.accepted", to=offer.parties(listing), actor_id=actor_id)
    for backup in backups:
        offer_notice(backup, listing, "offer.backup", to=backup.buyer_side())
    escrow_notice(
        escrow,
        "escrow.opened",
        title="Escrow opened",
        body=f"An escrow is open for {listing.unparsed_address or listing.city}; "
        f"the earnest money is due by {escrow.deposit_due_at:%Y-%m-%d %H:%M} UTC.",
        actor_id=actor_id,
    )
    return Accepted(offer, escrow, backups)
