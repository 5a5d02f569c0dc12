"""Starting conversations about listings, who takes part, the list of mine, and who may see one."""

from __future__ import annotations

import logging

import pytest

from models.conversations import Conversation, ConversationParticipant, Message
from models.jobs import Job
from models.notifications import Notification
from models.properties import Property
from tests.api.conftest import assert_problem
from tests.factories import make_user


def make_listing(owner, *, agent=None, status: str = "Active", address: str = "12 Elm Street") -> Property:
    return Property.create(
        owner=owner.id,
        list_agent=agent.id if agent else None,
        standard_status=status,
        property_type="Residential",
        list_price=425_000_00,
        original_list_price=425_000_00,
        city="Springfield",
        unparsed_address=address,
    )


def start(client, headers, listing, body: str = "Is it still available?", **extra):
    return client.simulate_post(
        "/v1/conversations", headers=headers, json={"property_id": str(listing.id), "body": body, **extra}
    )


def started(client, headers, listing, body: str = "Is it still available?", **extra) -> dict:
    resp = start(client, headers, listing, body, **extra)
    assert resp.status_code in (200, 201), resp.text
    return resp.json


def test_a_buyer_starts_a_conversation_with_the_owner_and_the_agent(client, auth_headers):
    owner, agent, buyer = make_user(role="seller"), make_user(role="agent"), make_user(full_name="Bea Buyer")
    listing = make_listing(owner, agent=agent)

    resp = start(client, auth_headers(buyer), listing, "  Is the garden south-facing?\n")
    assert resp.status_code == 201, resp.text
    body = resp.json
    assert resp.headers["Location"] == f"/v1/conversations/{body['id']}"
    assert body["property"] == {
        "id": str(listing.id),
        "unparsed_address": "12 Elm Street",
        "city": "Springfield",
        "list_price": 425_000_00,
        "currency": "USD",
        "standard_status": "Active",
    }
    assert sorted((p["user_id"], p["role"]) for p in body["participants"]) == sorted(
        [(str(buyer.id), "buyer"), (str(owner.id), "owner"), (str(agent.id), "agent")]
    )
    assert {p["full_name"] for p in body["participants"]} >= {"Bea Buyer"}
    message = body["message"]
    assert message["body"] == "Is the garden south-facing?"  # stripped
    assert (message["sender_id"], message["conversation_id"], message["attachments"]) == (str(buyer.id), body["id"], [])
    assert body["last_message"] == message
    # My own message is read by me; the listing's people have one unread.
    assert (body["unread_count"], body["last_read_message_id"]) == (0, message["id"])
    for person in (owner, agent):
        mine = client.simulate_get(f"/v1/conversations/{body['id']}", headers=auth_headers(person)).json
        assert (mine["unread_count"], mine["last_read_message_id"]) == (1, 0)
        assert mine["last_message"] == message


def test_one_conversation_per_listing_and_buyer_the_next_message_is_appended(client, auth_headers):
    owner, buyer = make_user(role="seller"), make_user()
    listing = make_listing(owner)
    first = started(client, auth_headers(buyer), listing, "Hello")

    resp = start(client, auth_headers(buyer), listing, "Hello again")
    assert resp.status_code == 200, resp.text
    assert resp.json["id"] == first["id"] and "Location" not in resp.headers
    assert resp.json["message"]["body"] == "Hello again"
    assert Conversation.select().count() == 1 and Message.select().count() == 2
    # An agent without an agent of the listing: just the owner and the buyer.
    assert sorted(p["role"] for p in resp.json["participants"]) == ["buyer", "owner"]
    # Another buyer gets a conversation of their own.
    other = started(client, auth_headers(make_user()), listing)
    assert other["id"] != first["id"]


def test_an_owner_who_is_also_the_agent_is_one_participant(client, auth_headers):
    owner = make_user(role="agent")
    listing = make_listing(owner, agent=owner)
    body = started(client, auth_headers(make_user()), listing)
    assert sorted(p["role"] for p in body["participants"]) == ["buyer", "owner"]


def test_the_listings_own_people_cannot_start_one(client, auth_headers):
    owner, agent = make_user(role="seller"), make_user(role="agent")
    listing = make_listing(owner, agent=agent)
    for person in (owner, agent):
        assert_problem(start(client, auth_headers(person), listing), 422, field="body.property_id")
    assert Conversation.select().count() == 0 and Message.select().count() == 0


def test_a_listing_the_caller_cannot_see_is_404(client, auth_headers):
    owner, buyer = make_user(role="seller"), make_user()
    draft = make_listing(owner, status="Incomplete")
    withdrawn = make_listing(owner, status="Withdrawn")
    for listing in (draft, withdrawn):
        assert_problem(start(client, auth_headers(buyer), listing), 404)
    resp = client.simulate_post(
        "/v1/conversations", headers=auth_headers(buyer), json={"property_id": str(buyer.id), "body": "hi"}
    )
    assert_problem(resp, 404)
    assert Conversation.select().count() == 0


@pytest.mark.parametrize("direction", ["the owner blocked the buyer", "the buyer blocked the agent"])
def test_a_block_either_way_stops_a_new_conversation(client, auth_headers, direction):
    owner, agent, buyer = make_user(role="seller"), make_user(role="agent"), make_user()
    listing = make_listing(owner, agent=agent)
    blocker, blocked = (owner, buyer) if direction.startswith("the owner") else (buyer, agent)
    assert client.simulate_put(f"/v1/me/blocks/{blocked.id}", headers=auth_headers(blocker)).status_code == 204

    body = assert_problem(start(client, auth_headers(buyer), listing), 403)
    assert body["type"].endswith("/blocked")
    assert Conversation.select().count() == 0 and Message.select().count() == 0
    assert Notification.select().count() == 0


def test_a_repeated_client_id_posts_once(client, auth_headers):
    owner, buyer = make_user(role="seller"), make_user()
    listing = make_listing(owner)
    first = start(client, auth_headers(buyer), listing, "Viewing on Saturday?", client_id="draft-1")
    assert first.status_code == 201
    again = start(client, auth_headers(buyer), listing, "Viewing on Saturday?", client_id="draft-1")
    assert again.status_code == 200
    assert again.json["message"] == first.json["message"]
    assert Message.select().count() == 1
    assert Notification.select().count() == 1 and Job.select().where(Job.kind == "notifications.fan_out").count() == 1


def test_my_conversations_most_recent_activity_first_with_unread_counts(client, auth_headers):
    owner, buyer = make_user(role="seller"), make_user()
    first, second, third = (make_listing(owner, address=f"{n} Oak Road") for n in (1, 2, 3))
    a = started(client, auth_headers(buyer), first, "About number 1")
    b = started(client, auth_headers(buyer), second, "About number 2")
    c = started(client, auth_headers(buyer), third, "About number 3")
    # The owner answers on the first: it becomes the most recent, with one unread for the buyer.
    reply = client.simulate_post(
        f"/v1/conversations/{a['id']}/messages", headers=auth_headers(owner), json={"body": "Yes, come by on Saturday."}
    )
    assert reply.status_code == 201, reply.text

    listed = client.simulate_get("/v1/conversations", headers=auth_headers(buyer)).json
    assert [item["id"] for item in listed["items"]] == [a["id"], c["id"], b["id"]]
    assert [item["unread_count"] for item in listed["items"]] == [1, 0, 0]
    assert listed["items"][0]["last_message"]["body"] == "Yes, come by on Saturday."
    assert listed["next_cursor"] is None

    owners = client.simulate_get("/v1/conversations", headers=auth_headers(owner)).json["items"]
    # Answering read the buyer's question: only the two unanswered ones are unread for the owner.
    assert [(item["id"], item["unread_count"]) for item in owners] == [(a["id"], 0), (c["id"], 1), (b["id"], 1)]

    page = client.simulate_get("/v1/conversations", headers=auth_headers(buyer), params={"limit": 2}).json
    assert [item["id"] for item in page["items"]] == [a["id"], c["id"]]
    rest = client.simulate_get(
        "/v1/conversations", headers=auth_headers(buyer), params={"limit": 2, "cursor": page["next_cursor"]}
    ).json
    assert ([item["id"] for item in rest["items"]], rest["next_cursor"]) == ([b["id"]], None)
    # Someone with no conversations sees none, and a forged cursor is a 422.
    assert client.simulate_get("/v1/conversations", headers=auth_headers(make_user())).json["items"] == []
    assert_problem(
        client.simulate_get("/v1/conversations", headers=auth_headers(buyer), params={"cursor": "forged"}),
        422,
        field="query.cursor",
    )
    for limit in (0, 101):
        assert_problem(
            client.simulate_get("/v1/conversations", headers=auth_headers(buyer), params={"limit": limit}),
            422,
            field="query.limit",
        )


def _queries(caplog, fn) -> int:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        fn()
    return len([r for r in caplog.records if r.name == "peewee"])


def test_listing_conversations_costs_the_same_queries_for_one_or_many(client, auth_headers, caplog):
    owner, buyer = make_user(role="seller"), make_user()
    headers = auth_headers(buyer)
    started(client, headers, make_listing(owner))

    def listing_them():
        assert client.simulate_get("/v1/conversations", headers=headers).status_code == 200

    one = _queries(caplog, listing_them)
    for n in range(6):
        started(client, headers, make_listing(owner, agent=make_user(role="agent")), f"Question {n}")
    many = _queries(caplog, listing_them)
    assert len(client.simulate_get("/v1/conversations", headers=headers).json["items"]) == 7
    assert many == one


def test_only_participants_see_a_conversation_admins_included(client, auth_headers, admin):
    owner, buyer, stranger = make_user(role="seller"), make_user(), make_user()
    conversation = started(client, auth_headers(buyer), make_listing(owner))
    url = f"/v1/conversations/{conversation['id']}"
    for person in (stranger, admin):
        headers = auth_headers(person)
        assert_problem(client.simulate_get(url, headers=headers), 404)
        assert_problem(client.simulate_get(f"{url}/messages", headers=headers), 404)
        assert_problem(client.simulate_post(f"{url}/messages", headers=headers, json={"body": "hi"}), 404)
        assert_problem(client.simulate_post(f"{url}/read", headers=headers, json={}), 404)
        assert client.simulate_get("/v1/conversations", headers=headers).json["items"] == []
    # An unknown conversation is the same 404.
    assert_problem(client.simulate_get(f"/v1/conversations/{owner.id}", headers=auth_headers(owner)), 404)
    assert Message.select().count() == 1
    outsiders = ConversationParticipant.user.in_([stranger.id, admin.id])
    assert ConversationParticipant.select().where(outsiders).count() == 0
    assert client.simulate_get(url, headers=auth_headers(owner)).status_code == 200


def test_a_conversation_outlives_its_listing_going_off_the_market(client, auth_headers):
    owner, buyer = make_user(role="seller"), make_user()
    listing = make_listing(owner)
    conversation = started(client, auth_headers(buyer), listing)["id"]
    Property.update(standard_status="Withdrawn").where(Property.id == listing.id).execute()

    reply = client.simulate_post(
        f"/v1/conversations/{conversation}/messages",
        headers=auth_headers(owner),
        json={"body": "We took it off the market, sorry."},
    )
    assert reply.status_code == 201, reply.text
    mine = client.simulate_get(f"/v1/conversations/{conversation}", headers=auth_headers(buyer)).json
    assert (mine["property"]["standard_status"], mine["unread_count"]) == ("Withdrawn", 1)
    # A new conversation about it cannot be started, since the buyer no longer sees it.
    assert_problem(start(client, auth_headers(make_user()), listing), 404)
