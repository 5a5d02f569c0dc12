"""An escrow's deadlines on a frozen clock (``models.money_deadlines.enforce(now)``), as the parties then
read the escrow: an overdue deposit cancels it and puts the listing back on the market, a lapsed
contingency makes the deposit hard, and the history says who (the platform), when and why."""

from __future__ import annotations

import datetime

from models.escrow_rules import add_business_days
from models.money_deadlines import enforce
from models.offers import Offer
from models.properties import Property
from tests.escrow_deals import fund, make_deal

# A Thursday: three business days later is the next Tuesday, across a weekend.
ACCEPTED = datetime.datetime(2031, 5, 8, 15, 0, tzinfo=datetime.UTC)


def read(client, auth_headers, deal, person=None) -> dict:
    resp = client.simulate_get(f"/v1/escrows/{deal.escrow.id}", headers=auth_headers(person or deal.buyer))
    assert resp.status_code == 200, resp.text
    return resp.json


def test_the_deposit_is_due_three_business_days_after_acceptance(client, auth_headers):
    deal = make_deal(now=ACCEPTED)
    due = datetime.datetime(2031, 5, 13, 15, 0, tzinfo=datetime.UTC)
    assert add_business_days(ACCEPTED, 3) == due
    assert read(client, auth_headers, deal)["deposit_due_at"] == due.isoformat()


def test_an_overdue_deposit_cancels_the_escrow_and_revives_the_backups(client, auth_headers):
    deal = make_deal(now=ACCEPTED, backup_buyers=2)
    due = deal.escrow.deposit_due_at
    assert enforce(due - datetime.timedelta(seconds=1))["deposits_overdue"] == 0
    assert read(client, auth_headers, deal)["status"] == "awaiting_deposit"

    assert enforce(due)["deposits_overdue"] == 1
    view = read(client, auth_headers, deal, deal.seller)
    assert view["status"] == "cancelled"
    last = view["history"][-1]
    assert (last["action"], last["actor_id"], last["at"]) == ("deposit_overdue", None, due.isoformat())
    assert last["reason"] == "the deposit did not arrive in time"
    assert Property.get_by_id(deal.listing.id).standard_status == "Active"
    assert sorted(Offer.get_by_id(b.id).status for b in deal.backups) == ["submitted", "submitted"]
    # Once is enough: a second sweep finds nothing to do.
    assert enforce(due + datetime.timedelta(hours=1))["deposits_overdue"] == 0


def test_a_funded_escrow_is_not_cancelled_by_the_deposit_deadline(client, auth_headers):
    deal = make_deal(now=ACCEPTED)
    fund(deal, now=ACCEPTED + datetime.timedelta(days=1))
    enforce(deal.escrow.deposit_due_at + datetime.timedelta(days=1))
    assert read(client, auth_headers, deal)["status"] == "funded"


def test_lapsed_contingencies_make_the_deposit_hard(client, auth_headers):
    deal = make_deal(now=ACCEPTED, contingencies=(("inspection", 10), ("appraisal", 14)))
    fund(deal, now=ACCEPTED + datetime.timedelta(days=1))
    inspection_ends = ACCEPTED + datetime.timedelta(days=10)
    assert enforce(inspection_ends)["contingencies_lapsed"] == 1
    view = read(client, auth_headers, deal)
    assert {c["kind"]: c["status"] for c in view["contingencies"]} == {"appraisal": "open", "inspection": "lapsed"}
    assert view["hard_at"] is None

    appraisal_ends = ACCEPTED + datetime.timedelta(days=14)
    assert enforce(appraisal_ends)["contingencies_lapsed"] == 1
    view = read(client, auth_headers, deal)
    assert view["hard_at"] == appraisal_ends.isoformat()
    assert [(e["action"], e["actor_id"], e["at"]) for e in view["history"][-3:]] == [
        ("contingency_lapsed", None, inspection_ends.isoformat()),
        ("contingency_lapsed", None, appraisal_ends.isoformat()),
        ("deposit_hard", None, appraisal_ends.isoformat()),
    ]
    # From now on the buyer cannot walk away with the deposit alone.
    resp = client.simulate_post(f"/v1/escrows/{deal.escrow.id}/cancel", headers=auth_headers(deal.buyer))
    assert resp.status_code == 409, resp.text


def test_an_escrow_without_contingencies_is_hard_from_the_start(client, auth_headers):
    deal = make_deal(now=ACCEPTED, contingencies=())
    view = read(client, auth_headers, deal)
    assert view["hard_at"] == ACCEPTED.isoformat() and view["contingencies"] == []
