"""Listings, offer bodies and requests shared by the offer tests."""

from __future__ import annotations

import datetime

from models.base import utcnow
from models.properties import Property
from tests.factories import make_user

PRICE = 410_000_00


def make_listing(owner=None, *, agent=None, status: str = "Active", address: str = "12 Elm Street") -> Property:
    return Property.create(
        owner=(owner or make_user(role="seller")).id,
        list_agent=agent.id if agent else None,
        standard_status=status,
        property_type="Residential",
        list_price=425_000_00,
        original_list_price=425_000_00,
        city="Springfield",
        unparsed_address=address,
    )


def terms(**changes) -> dict:
    """A valid offer body: conventional financing, inspection and financing contingencies."""
    now = utcnow()
    body = {
        "price": PRICE,
        "earnest_money": 12_000_00,
        "financing": "conventional",
        "closing_date": (now + datetime.timedelta(days=45)).date().isoformat(),
        "expires_at": (now + datetime.timedelta(days=2)).isoformat(),
        "contingencies": [{"kind": "inspection", "days": 10}, {"kind": "financing", "days": 21}],
        "message": "We love the garden.\nFlexible on the closing date.",
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def post_offer(client, headers, listing, **changes):
    return client.simulate_post(f"/v1/properties/{listing.id}/offers", headers=headers, json=terms(**changes))


def offered(client, headers, listing, **changes) -> dict:
    resp = post_offer(client, headers, listing, **changes)
    assert resp.status_code == 201, resp.text
    return resp.json


def act(client, headers, offer_id, action: str, json=None):
    return client.simulate_post(f"/v1/offers/{offer_id}/{action}", headers=headers, json=json or {})
