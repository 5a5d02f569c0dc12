"""The beat task of offer and escrow deadlines: what is due closes, once; the rest is left alone."""

from __future__ import annotations

import datetime
import uuid

from models import money_deadlines
from models.base import utcnow
from models.notifications import Notification
from models.offer_rules import Contingency
from models.offers import Offer
from models.properties import Property
from tasks.money_deadlines import enforce_deadlines
from tests.factories import make_user
from tests.tasks.money_rows import fund, make_deal


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

    # The parties' channels hear of it live, with the offer as GET /v1/offers/{id} shows it.
    for party in (owner.id, late.buyer_id):
        [event] = [e for e in runtime.events.history(f"user:{party}") if e["type"] == "offer.expired"]
        assert (event["data"]["id"], event["data"]["status"]) == (str(late.id), "expired")

    # A second run finds nothing due and changes nothing.
    assert enforce_deadlines() == dict.fromkeys(first, 0)
    assert told.count() == 2
    assert len([e for e in runtime.events.history(f"user:{owner.id}") if e["type"] == "offer.expired"]) == 1


def test_an_overdue_deposit_and_a_lapsed_contingency_are_published_to_the_parties(runtime):
    heard = []
    late = make_deal()
    lapsing = make_deal(contingencies=(Contingency("inspection", 5),))
    fund(lapsing)
    counts = money_deadlines.enforce(
        late.escrow.deposit_due_at + datetime.timedelta(days=6),
        publish=lambda channels, type_, data: heard.append((sorted(channels), type_, data)),
    )
    assert counts["deposits_overdue"] == 1 and counts["contingencies_lapsed"] == 1
    parties = {d.escrow.id: sorted(f"user:{u}" for u in d.reload().parties()) for d in (late, lapsing)}
    assert (parties[late.escrow.id], "escrow.cancelled") in [(c, t) for c, t, _ in heard]
    [(_, _, lapsed)] = [h for h in heard if h[1] == "escrow.contingency_lapsed"]
    assert lapsed == {
        "id": str(lapsing.escrow.id),
        "property_id": str(lapsing.escrow.property_id),
        "status": "funded",
        "kind": "inspection",
        "deposit_hard": True,
    }
