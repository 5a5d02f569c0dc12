"""Every status move in the transition table, through ``PATCH /v1/properties/{id}``: 200 or 409."""

from __future__ import annotations

import pytest

from models.listing_rules import STATUSES, TRANSITIONS
from models.properties import Property, PropertyHistory
from tests.api.conftest import assert_problem
from tests.api.test_properties import People, make_listing

CLOSING = {"close_price": 445_000_00, "close_date": "2026-10-15"}


@pytest.mark.parametrize("current", STATUSES)
def test_every_move_from_a_status_follows_the_table(client, auth_headers, current):
    people = People(auth_headers)
    headers = people.headers("seller")
    for new in STATUSES:
        if new == current:  # naming the current status changes nothing (see test_properties.py)
            continue
        listing = make_listing(people["seller"], status=current)
        body = dict({"standard_status": new}, **(CLOSING if new == "Closed" else {}))
        resp = client.simulate_patch(
            f"/v1/properties/{listing.id}", json=body, headers=dict(headers, **{"If-Match": f'"v{listing.version}"'})
        )
        rows = list(
            PropertyHistory.select().where(
                (PropertyHistory.property == listing.id)
                & (PropertyHistory.field == "standard_status")
                & PropertyHistory.old_value.is_null(False)
            )
        )
        if new in TRANSITIONS[current]:
            assert resp.status_code == 200, (current, new, resp.text)
            assert resp.json["standard_status"] == new and resp.json["version"] == listing.version + 1
            assert [(r.old_value, r.new_value) for r in rows] == [(current, new)]
        else:
            body = assert_problem(resp, 409)
            assert body["type"].endswith("/illegal-transition"), (current, new)
            assert Property.get_by_id(listing.id).standard_status == current
            assert rows == []
