"""Making offers on listings: who may, on which listings, with which terms and documents; who sees them."""

from __future__ import annotations

import datetime

import pytest

from models.audit import AuditEntry
from models.base import utcnow
from models.notifications import Notification
from models.offers import Offer
from models.uploads import Upload
from tests.api.conftest import assert_problem
from tests.api.offers_common import PRICE, act, make_listing, offered, post_offer, terms
from tests.factories import make_user


def test_a_buyer_makes_an_offer_201_with_its_location_chain_notice_and_audit(client, auth_headers, services):
    owner, agent, buyer = make_user(role="seller"), make_user(role="agent"), make_user()
    listing = make_listing(owner, agent=agent)

    resp = post_offer(client, auth_headers(buyer), listing)
    assert resp.status_code == 201, resp.text
    offer = resp.json
    assert resp.headers["Location"] == f"/v1/offers/{offer['id']}"
    assert (offer["status"], offer["side"], offer["buyer_id"], offer["author_id"]) == (
        "submitted",
        "buyer",
        str(buyer.id),
        str(buyer.id),
    )
    assert (offer["price"], offer["earnest_money"], offer["financing"]) == (PRICE, 12_000_00, "conventional")
    assert offer["contingencies"] == [{"kind": "inspection", "days": 10}, {"kind": "financing", "days": 21}]
    assert offer["message"] == "We love the garden.\nFlexible on the closing date."
    assert offer["chain"] == [
        {"id": offer["id"], "side": "buyer", "status": "submitted", "price": PRICE, "created_at": offer["created_at"]}
    ]
    assert offer["escrow_id"] is None and offer["root_id"] == offer["id"] and offer["parent_id"] is None
    assert client.simulate_get(resp.headers["Location"], headers=auth_headers(buyer)).json == offer

    told = Notification.select().where(Notification.type == "offer.received")
    assert sorted(str(n.user_id) for n in told) == sorted([str(owner.id), str(agent.id)])
    entry = AuditEntry.get(AuditEntry.action == "offer.create")
    assert (entry.target_type, entry.target_id, str(entry.actor_id)) == ("offer", offer["id"], str(buyer.id))
    for person in (owner, agent, buyer):
        events = services.events.history(f"user:{person.id}")
        assert [(e["type"], e["data"]["id"]) for e in events] == [("offer.received", offer["id"])]


def test_a_buyer_may_name_their_agent_who_then_sees_the_offer(client, auth_headers):
    agent, buyer = make_user(role="agent"), make_user()
    listing = make_listing()
    offer = offered(client, auth_headers(buyer), listing, buyer_agent_id=str(agent.id))
    assert offer["buyer_agent_id"] == str(agent.id)
    assert client.simulate_get(f"/v1/offers/{offer['id']}", headers=auth_headers(agent)).status_code == 200
    # Naming someone who is not an agent, or offering for someone else, is refused.
    for changes, field in (
        ({"buyer_agent_id": str(make_user().id)}, "body.buyer_agent_id"),
        ({"buyer_id": str(make_user().id)}, "body.buyer_id"),
    ):
        assert_problem(post_offer(client, auth_headers(make_user()), listing, **changes), 422, field=field)


def test_an_agent_offers_for_a_named_buyer(client, auth_headers):
    agent, buyer = make_user(role="agent"), make_user()
    listing = make_listing()
    assert_problem(post_offer(client, auth_headers(agent), listing), 422, field="body.buyer_id")
    not_a_buyer = make_user(role="seller")
    assert_problem(
        post_offer(client, auth_headers(agent), listing, buyer_id=str(not_a_buyer.id)), 422, field="body.buyer_id"
    )
    offer = offered(client, auth_headers(agent), listing, buyer_id=str(buyer.id))
    assert (offer["buyer_id"], offer["buyer_agent_id"], offer["author_id"]) == (
        str(buyer.id),
        str(agent.id),
        str(agent.id),
    )
    # The buyer is told an offer was made for them, and sees it.
    assert (
        Notification.select().where((Notification.user == buyer.id) & (Notification.type == "offer.received")).exists()
    )
    assert client.simulate_get(f"/v1/offers/{offer['id']}", headers=auth_headers(buyer)).status_code == 200


@pytest.mark.parametrize("role", ["seller", "admin"])
def test_sellers_and_admins_do_not_make_offers(client, auth_headers, role):
    listing = make_listing()
    body = assert_problem(post_offer(client, auth_headers(make_user(role=role)), listing), 403)
    assert "buyers" in body["detail"]
    assert Offer.select().count() == 0


def test_the_listings_own_people_cannot_offer_on_it(client, auth_headers):
    agent = make_user(role="agent")
    listing = make_listing(agent=agent)
    body = assert_problem(
        post_offer(client, auth_headers(agent), listing, buyer_id=str(make_user().id)), 422, field="path.property_id"
    )
    assert "own listing" in body["errors"][0]["message"]


def test_only_active_listings_take_offers_and_hidden_ones_are_404(client, auth_headers):
    buyer = make_user()
    assert_problem(post_offer(client, auth_headers(buyer), make_listing(status="Pending")), 409)
    assert_problem(post_offer(client, auth_headers(buyer), make_listing(status="Incomplete")), 404)
    assert_problem(post_offer(client, auth_headers(buyer), make_listing(status="Withdrawn")), 404)
    assert Offer.select().count() == 0


def test_one_live_offer_per_buyer_and_listing(client, auth_headers):
    buyer, listing = make_user(), make_listing()
    offered(client, auth_headers(buyer), listing)
    assert_problem(post_offer(client, auth_headers(buyer), listing), 409)


def _upload(owner, *, purpose="document", status="clean") -> Upload:
    return Upload.create(
        owner=owner.id,
        purpose=purpose,
        status=status,
        filename="inspection.pdf",
        content_type="application/pdf",
        storage_key=f"files/{owner.id}/inspection.pdf",
    )


def test_documents_are_the_authors_own_clean_uploads(client, auth_headers):
    buyer, listing = make_user(), make_listing()
    mine, attachment = _upload(buyer), _upload(buyer, purpose="attachment")
    bad = [_upload(make_user()).id, _upload(buyer, status="pending_scan").id, _upload(buyer, purpose="avatar").id]
    resp = post_offer(client, auth_headers(buyer), listing, documents=[str(mine.id), *map(str, bad)])
    body = assert_problem(resp, 422)
    assert [e["field"] for e in body["errors"]] == ["body.documents[1]", "body.documents[2]", "body.documents[3]"]
    assert "no such upload of yours" in body["errors"][0]["message"]

    offer = offered(client, auth_headers(buyer), listing, documents=[str(mine.id), str(attachment.id)])
    assert offer["documents"] == [str(mine.id), str(attachment.id)]
    assert_problem(post_offer(client, auth_headers(buyer), listing, documents=[str(mine.id)] * 11), 422)


def _in(**delta) -> str:
    return (utcnow() + datetime.timedelta(**delta)).isoformat()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"closing_date": (utcnow() - datetime.timedelta(days=1)).date().isoformat()}, "body.closing_date"),
        ({"expires_at": _in(minutes=-1)}, "body.expires_at"),
        ({"expires_at": _in(days=7, minutes=5)}, "body.expires_at"),
        ({"expires_at": "2027-03-01T17:00:00"}, "body.expires_at"),  # no offset
        ({"earnest_money": PRICE + 1}, "body.earnest_money"),
        (
            {"contingencies": [{"kind": "inspection", "days": 5}, {"kind": "inspection", "days": 7}]},
            "body.contingencies",
        ),
        ({"financing": "cash"}, "body.contingencies[1]"),  # the default terms carry a financing contingency
        ({"contingencies": [{"kind": "appraisal", "days": 91}]}, "body.contingencies[0].days"),
        ({"contingencies": [{"kind": "appraisal", "days": 60}]}, "body.contingencies[0]"),  # after the closing
        ({"contingencies": [{"kind": "roof", "days": 5}]}, "body.contingencies[0].kind"),
        (
            {
                "contingencies": [{"kind": k, "days": 5} for k in ("inspection", "financing", "appraisal", "home_sale")]
                * 2
            },
            "body.contingencies",
        ),
        ({"financing": "bitcoin"}, "body.financing"),
        ({"price": 0}, "body.price"),
        ({"price": 10**12 + 1}, "body.price"),
        ({"message": "x" * 4001}, "body.message"),
        ({"message": "bell\x07"}, "body.message"),
        ({"price": "410000"}, "body.price"),
    ],
)
def test_bad_terms_are_422_naming_the_field_and_nothing_is_written(client, auth_headers, changes, field):
    resp = post_offer(client, auth_headers(make_user()), make_listing(), **changes)
    assert_problem(resp, 422, field=field)
    assert Offer.select().count() == 0 and Notification.select().count() == 0


def test_a_missing_term_is_422(client, auth_headers):
    body = terms()
    del body["closing_date"]
    resp = client.simulate_post(
        f"/v1/properties/{make_listing().id}/offers", headers=auth_headers(make_user()), json=body
    )
    assert_problem(resp, 422, field="body.closing_date")


def test_every_offer_endpoint_is_404_to_whoever_is_not_a_party(client, auth_headers, admin):
    owner, buyer = make_user(role="seller"), make_user()
    listing = make_listing(owner)
    offer = offered(client, auth_headers(buyer), listing)
    other_owner, other_agent = make_user(role="seller"), make_user(role="agent")
    make_listing(other_owner, agent=other_agent, address="1 Other Road")
    strangers = [make_user(), other_owner, other_agent, make_user(role="agent")]
    for stranger in strangers:
        headers = auth_headers(stranger)
        assert_problem(client.simulate_get(f"/v1/offers/{offer['id']}", headers=headers), 404)
        assert_problem(client.simulate_get(f"/v1/properties/{listing.id}/offers", headers=headers), 404)
        for action in ("accept", "reject", "withdraw"):
            assert_problem(act(client, headers, offer["id"], action), 404)
        assert_problem(act(client, headers, offer["id"], "counter", {"price": PRICE + 1}), 404)
        assert client.simulate_get("/v1/offers", headers=headers).json["items"] == []
    assert Offer.get_by_id(offer["id"]).status == "submitted"
    # An admin sees it (and the listing's offers), but is no party: acting on it is a 403.
    assert client.simulate_get(f"/v1/offers/{offer['id']}", headers=auth_headers(admin)).status_code == 200
    listed = client.simulate_get(f"/v1/properties/{listing.id}/offers", headers=auth_headers(admin)).json
    assert [o["id"] for o in listed["items"]] == [offer["id"]]
    assert_problem(act(client, auth_headers(admin), offer["id"], "accept"), 403)
    # An id that is no offer at all reads the same.
    assert_problem(client.simulate_get(f"/v1/offers/{listing.id}", headers=auth_headers(buyer)), 404)


def test_a_listings_side_sees_every_offer_a_buyer_only_their_own(client, auth_headers):
    owner, agent = make_user(role="seller"), make_user(role="agent")
    listing = make_listing(owner, agent=agent)
    buyers = [make_user() for _ in range(3)]
    ids = [offered(client, auth_headers(b), listing, price=PRICE + i)["id"] for i, b in enumerate(buyers)]
    for person in (owner, agent):
        page = client.simulate_get(f"/v1/properties/{listing.id}/offers", headers=auth_headers(person)).json
        assert [o["id"] for o in page["items"]] == ids[::-1]
    page = client.simulate_get(f"/v1/properties/{listing.id}/offers", headers=auth_headers(buyers[1])).json
    assert [o["id"] for o in page["items"]] == [ids[1]]
    mine = client.simulate_get("/v1/offers", headers=auth_headers(buyers[1]), params={"role": "buyer"}).json
    assert [o["id"] for o in mine["items"]] == [ids[1]]
    assert (
        client.simulate_get("/v1/offers", headers=auth_headers(buyers[1]), params={"role": "listing"}).json["items"]
        == []
    )
    theirs = client.simulate_get("/v1/offers", headers=auth_headers(agent), params={"role": "listing"}).json
    assert [o["id"] for o in theirs["items"]] == ids[::-1]


def test_offer_lists_are_cursor_pages_filtered_by_status(client, auth_headers):
    owner = make_user(role="seller")
    listings = [make_listing(owner, address=f"{n} Elm Street") for n in range(5)]
    buyer = make_user()
    ids = [offered(client, auth_headers(buyer), listing)["id"] for listing in listings]
    act(client, auth_headers(buyer), ids[0], "withdraw")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.simulate_get("/v1/offers", headers=auth_headers(owner), params=params).json
        assert len(page["items"]) <= 2
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    live = client.simulate_get("/v1/offers", headers=auth_headers(buyer), params={"status": "submitted"}).json
    assert [o["id"] for o in live["items"]] == ids[:0:-1]
    assert_problem(client.simulate_get("/v1/offers", headers=auth_headers(buyer), params={"cursor": "forged"}), 422)
    assert_problem(client.simulate_get("/v1/offers", headers=auth_headers(buyer), params={"status": "lost"}), 422)
    assert_problem(client.simulate_get("/v1/offers", headers=auth_headers(buyer), params={"role": "owner"}), 422)
