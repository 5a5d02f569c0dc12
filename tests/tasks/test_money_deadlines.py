"""The beat task of offer and escrow deadlines: what is due closes, once; the rest is left alone."""

from __future__ import annotations

import datetime
import uuid

from models.base import utcnow
from models.notifications import Notification
from models.offers import Offer
from models.properties import Property
from tasks.money_deadlines import enforce_deadlines
from tests.factories import make_user


def _offer(listing, buyer, *, expires_at) -> Offer:
    offer_id = uuid.uuid4()
    # Written directly: an offer that expired a minute ago could not be made through the rules.
    return Offer.create(
        id=offer_id,
        root_id=offer_id,
        property=listing.id,
        buyer=buyer.id,
        author=buyer.id,
        side="buyer",
        price=400_000_00,
        earnest_money=10_000_00,
        financing="cash",
        closing_date=(utcnow() + datetime.timedelta(days=40)).date(),
        expires_at=expires_at,
    )


def test_expired_offers_close_once_and_live_ones_stay(runtime):
    owner = make_user(role="seller")
    listing = Property.create(
        owner=owner.id,
        standard_status="Active",
        property_type="Residential",
        list_price=425_000_00,
        original_list_price=425_000_00,
        city="Springfield",
        unparsed_address="3 Oak Lane",
    )
    late = _offer(listing, make_user(), expires_at=utcnow() - datetime.timedelta(minutes=1))
    open_ = _offer(listing, make_user(), expires_at=utcnow() + datetime.timedelta(days=1))

    first = enforce_deadlines()
    assert first["offers_expired"] == 1
    assert Offer.get_by_id(late.id).status == "expired"
    assert Offer.get_by_id(open_.id).status == "submitted"
    told = Notification.select().where(Notification.type == "offer.expired")
    assert sorted(str(n.user_id) for n in told) == sorted([str(owner.id), str(late.buyer_id)])

    # A second run finds nothing due and changes nothing.
    assert enforce_deadlines() == dict.fromkeys(first, 0)
    assert told.count() == 2
