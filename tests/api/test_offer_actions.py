"""Answering offers: counter chains, reject, withdraw, accept (escrow, backups, races) and expiry."""

from __future__ import annotations

import datetime

from models import money_deadlines
from models.audit import AuditEntry
from models.base import utcnow
from models.db import db
from models.escrows import Escrow, history_of
from models.jobs import Job
from models.notifications import Notification
from models.offer_acceptance import accept
from models.offer_rules import OfferConflict
from models.offers import Offer, lock_offer
from models.properties import Property, PropertyHistory
from models.search import queue as search_queue
from tests.api.conftest import assert_problem
from tests.api.offers_common import PRICE, act, make_listing, offered
from tests.factories import make_user


def _deal(client, auth_headers):
    owner, buyer = make_user(role="seller"), make_user()
    listing = make_listing(owner)
    offer = offered(client, auth_headers(buyer), listing)
    return owner, buyer, listing, offer


def test_a_counter_chain_has_one_live_offer_the_latest(client, auth_headers, services):
    owner, buyer, _, first = _deal(client, auth_headers)
    seller_h, buyer_h = auth_headers(owner), auth_headers(buyer)

    # The side that wrote the offer cannot answer it.
    assert_problem(act(client, buyer_h, first["id"], "counter", {"price": PRICE + 5}), 403)
    assert_problem(act(client, buyer_h, first["id"], "accept"), 403)
    assert_problem(act(client, buyer_h, first["id"], "reject"), 403)

    resp = act(client, seller_h, first["id"], "counter", {"price": 420_000_00, "message": "Meet me halfway?"})
    assert resp.status_code == 201, resp.text
    second = resp.json
    assert resp.headers["Location"] == f"/v1/offers/{second['id']}"
    assert (second["side"], second["status"], second["parent_id"], second["root_id"]) == (
        "listing",
        "submitted",
        first["id"],
        first["id"],
    )
    assert (second["price"], second["earnest_money"], second["contingencies"]) == (
        420_000_00,
        first["earnest_money"],
        first["contingencies"],
    )
    assert second["message"] == "Meet me halfway?" and second["documents"] == []
    assert [(link["id"], link["status"]) for link in second["chain"]] == [
        (first["id"], "countered"),
        (second["id"], "submitted"),
    ]
    assert client.simulate_get(f"/v1/offers/{first['id']}", headers=buyer_h).json["chain"] == second["chain"]

    # The countered offer is answered no more, by anyone.
    for action in ("accept", "reject"):
        assert_problem(act(client, seller_h, first["id"], action), 409)
    assert_problem(act(client, buyer_h, first["id"], "withdraw"), 409)
    assert_problem(act(client, buyer_h, first["id"], "counter", {"price": PRICE}), 409)
    # The listing's side cannot answer its own counter; the buyer can.
    assert_problem(act(client, seller_h, second["id"], "accept"), 403)
    third = act(client, buyer_h, second["id"], "counter", {"price": 415_000_00, "contingencies": []})
    assert third.status_code == 201, third.text
    assert third.json["contingencies"] == [] and third.json["side"] == "buyer"

    told = Notification.select().where((Notification.type == "offer.countered") & (Notification.user == buyer.id))
    assert told.count() == 1
    assert [e["type"] for e in services.events.history(f"user:{buyer.id}")] == [
        "offer.received",
        "offer.countered",
        "offer.countered",
    ]
    assert AuditEntry.select().where(AuditEntry.action == "offer.counter").count() == 2


def test_a_counter_must_change_a_term_by_the_same_rules(client, auth_headers):
    owner, _, _, offer = _deal(client, auth_headers)
    headers = auth_headers(owner)
    assert_problem(act(client, headers, offer["id"], "counter", {"message": "no"}), 422, field="body")
    assert_problem(
        act(client, headers, offer["id"], "counter", {"earnest_money": PRICE + 1}), 422, field="body.earnest_money"
    )
    assert_problem(
        act(client, headers, offer["id"], "counter", {"financing": "cash"}), 422, field="body.contingencies[1]"
    )
    assert Offer.get_by_id(offer["id"]).status == "submitted" and Offer.select().count() == 1


def test_reject_ends_the_chain_with_its_reason(client, auth_headers, services):
    owner, buyer, _, offer = _deal(client, auth_headers)
    resp = act(client, auth_headers(owner), offer["id"], "reject", {"reason": "  Too low.  "})
    assert resp.status_code == 200, resp.text
    assert (resp.json["status"], resp.json["decision_reason"], resp.json["decided_by"]) == (
        "rejected",
        "Too low.",
        str(owner.id),
    )
    notice = Notification.get((Notification.type == "offer.rejected") & (Notification.user == buyer.id))
    assert "Too low." in notice.body
    assert services.events.history(f"user:{buyer.id}")[-1]["type"] == "offer.rejected"
    assert_problem(act(client, auth_headers(owner), offer["id"], "accept"), 409)


def test_only_the_author_side_withdraws(client, auth_headers):
    owner, buyer, _, offer = _deal(client, auth_headers)
    assert_problem(act(client, auth_headers(owner), offer["id"], "withdraw"), 403)
    resp = act(client, auth_headers(buyer), offer["id"], "withdraw", {"reason": "Found another house"})
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "withdrawn"
    assert (
        Notification.select().where((Notification.type == "offer.withdrawn") & (Notification.user == owner.id)).exists()
    )
    assert_problem(act(client, auth_headers(buyer), offer["id"], "withdraw"), 409)


def test_accepting_puts_the_listing_under_contract_opens_the_escrow_and_makes_backups(
    client, auth_headers, jobs, services
):
    owner, buyer, listing, offer = _deal(client, auth_headers)
    rival = make_user()
    backup = offered(client, auth_headers(rival), listing, price=PRICE - 1000)

    seq_before = search_queue.pending_seq(listing.id)
    resp = act(client, auth_headers(owner), offer["id"], "accept")
    assert resp.status_code == 200, resp.text
    body = resp.json
    escrow = Escrow.get(Escrow.offer == offer["id"])
    assert (body["status"], body["escrow_id"]) == ("accepted", str(escrow.id))
    assert resp.headers["Location"] == f"/v1/escrows/{escrow.id}"
    assert (escrow.status, escrow.amount, escrow.price) == ("awaiting_deposit", 12_000_00, PRICE)
    assert [e.action for e in history_of(escrow.id)] == ["opened"]
    assert Property.get_by_id(listing.id).standard_status == "ActiveUnderContract"
    history = PropertyHistory.select().where(PropertyHistory.property == listing.id)
    assert "ActiveUnderContract" in {str(h.new_value) for h in history if h.field == "standard_status"}
    collect = Job.get((Job.kind == "escrows.collect_deposit") & (Job.queue == "money"))
    assert collect.input == {"escrow_id": str(escrow.id)} and str(collect.id) in jobs.submitted
    # Search hears of the new status: the listing is marked for reindexing in the same transaction.
    assert search_queue.pending_seq(listing.id) > seq_before

    assert Offer.get_by_id(backup["id"]).status == "backup"
    assert Notification.select().where((Notification.type == "offer.backup") & (Notification.user == rival.id)).exists()
    assert services.events.history(f"user:{rival.id}")[-1]["type"] == "offer.backup"
    assert services.events.history(f"user:{buyer.id}")[-1]["data"]["escrow_id"] == str(escrow.id)
    # A backup cannot be accepted (nor countered) while the escrow stands; a second acceptance is refused.
    assert_problem(act(client, auth_headers(owner), backup["id"], "accept"), 409)
    assert_problem(act(client, auth_headers(owner), backup["id"], "counter", {"price": PRICE}), 409)
    assert_problem(act(client, auth_headers(owner), offer["id"], "accept"), 409)
    # A backup's author may still withdraw it.
    assert act(client, auth_headers(rival), backup["id"], "withdraw").json["status"] == "withdrawn"
    assert Escrow.select().count() == 1


def test_of_two_acceptances_on_one_listing_the_second_finds_it_under_contract(client, auth_headers):
    owner = make_user(role="seller")
    listing = make_listing(owner)
    first = offered(client, auth_headers(make_user()), listing)
    second = offered(client, auth_headers(make_user()), listing)
    # The first acceptance holds the listing's lock until it commits; the second takes the lock after it.
    with db.atomic():
        offer, locked = lock_offer(first["id"])
        accept(offer, locked, actor_id=owner.id, deposit_business_days=3)
    with db.atomic():
        offer, locked = lock_offer(second["id"])
        assert locked.standard_status == "ActiveUnderContract" and offer.status == "backup"
        try:
            accept(offer, locked, actor_id=owner.id, deposit_business_days=3)
        except OfferConflict as exc:
            refused = str(exc)
        else:
            refused = ""
    assert "backup" in refused
    assert_problem(act(client, auth_headers(owner), second["id"], "accept"), 409)
    assert Escrow.select().count() == 1


def test_the_deposit_window_comes_from_the_setting(client, auth_headers, settings):
    owner, _, _, offer = _deal(client, auth_headers)
    accepted_at = utcnow()
    act(client, auth_headers(owner), offer["id"], "accept")
    escrow = Escrow.get(Escrow.offer == offer["id"])
    assert settings.escrow_deposit_business_days == 3
    assert escrow.deposit_due_at - accepted_at >= datetime.timedelta(days=3)
    assert escrow.deposit_due_at - accepted_at <= datetime.timedelta(days=5, minutes=1)


def test_an_offer_expires_at_its_time_and_its_parties_are_told(client, auth_headers):
    owner, buyer, _, offer = _deal(client, auth_headers)
    expires_at = datetime.datetime.fromisoformat(offer["expires_at"])
    assert money_deadlines.enforce(expires_at - datetime.timedelta(seconds=1))["offers_expired"] == 0
    assert Offer.get_by_id(offer["id"]).status == "submitted"
    assert money_deadlines.enforce(expires_at)["offers_expired"] == 1
    assert Offer.get_by_id(offer["id"]).status == "expired"
    told = Notification.select().where(Notification.type == "offer.expired")
    assert sorted(str(n.user_id) for n in told) == sorted([str(owner.id), str(buyer.id)])
    assert_problem(act(client, auth_headers(owner), offer["id"], "accept"), 409)
