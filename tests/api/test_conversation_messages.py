"""Messages: posting, pages both ways, read positions and receipts, notifications, attachments, events."""

from __future__ import annotations

import logging

import pytest

from models.conversations import Message
from models.db import db
from models.jobs import Job
from models.notifications import Notification
from models.uploads import Upload
from services.events import EventBus
from tests.api.conftest import assert_problem
from tests.api.test_conversations import make_listing, started
from tests.conftest import make_settings
from tests.factories import make_user
from tests.services.backends import backend_overrides, pdf, png
from tests.services.uploads_api import download, upload, uploaded


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, **backend_overrides("local"))


@pytest.fixture
def bus(redis, settings):
    return EventBus(redis, settings.redis_prefix)


@pytest.fixture
def people(auth_headers):
    owner, buyer = make_user(role="seller", full_name="Olive Owner"), make_user(full_name="Bea Buyer")
    return owner, buyer, auth_headers(owner), auth_headers(buyer)


def post(client, headers, conversation_id, body="Hello", **extra):
    return client.simulate_post(
        f"/v1/conversations/{conversation_id}/messages", headers=headers, json={"body": body, **extra}
    )


def page(client, headers, conversation_id, **params) -> dict:
    resp = client.simulate_get(f"/v1/conversations/{conversation_id}/messages", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json


def test_pages_go_both_ways_in_ascending_order(client, people):
    owner, _buyer, owner_h, buyer_h = people
    conversation = started(client, buyer_h, make_listing(owner), "message 0")["id"]
    for n in range(1, 12):
        assert post(client, owner_h if n % 2 else buyer_h, conversation, f"message {n}").status_code == 201
    every = [m.id for m in Message.select().order_by(Message.id)]

    def bodies(result):
        return [m["body"] for m in result["items"]]

    latest = page(client, buyer_h, conversation, limit=5)
    assert bodies(latest) == [f"message {n}" for n in range(7, 12)]
    assert (latest["older"], latest["newer"]) == (every[7], None)
    older = page(client, buyer_h, conversation, limit=5, before=latest["older"])
    assert bodies(older) == [f"message {n}" for n in range(2, 7)]
    assert (older["older"], older["newer"]) == (every[2], every[6])
    oldest = page(client, buyer_h, conversation, limit=5, before=older["older"])
    assert bodies(oldest) == ["message 0", "message 1"]
    assert (oldest["older"], oldest["newer"]) == (None, every[1])
    # And forwards again from the oldest page, to the end.
    newer = page(client, buyer_h, conversation, limit=5, after=oldest["newer"])
    assert bodies(newer) == bodies(older) and (newer["older"], newer["newer"]) == (every[2], every[6])
    last = page(client, buyer_h, conversation, limit=5, after=newer["newer"])
    assert bodies(last) == bodies(latest) and (last["older"], last["newer"]) == (every[7], None)
    assert page(client, buyer_h, conversation, after=every[-1]) == {"items": [], "older": None, "newer": None}
    assert bodies(page(client, buyer_h, conversation)) == [f"message {n}" for n in range(12)]  # default 50

    resp = client.simulate_get(
        f"/v1/conversations/{conversation}/messages", headers=buyer_h, params={"before": every[5], "after": every[2]}
    )
    assert_problem(resp, 422, field="query.after")
    for params, field in (
        ({"limit": 101}, "query.limit"),
        ({"before": 0}, "query.before"),
        ({"after": "x"}, "query.after"),
    ):
        assert_problem(
            client.simulate_get(f"/v1/conversations/{conversation}/messages", headers=buyer_h, params=params),
            422,
            field=field,
        )


def test_messages_are_stripped_and_limited(client, people):
    owner, _buyer, owner_h, buyer_h = people
    conversation = started(client, buyer_h, make_listing(owner))["id"]
    assert post(client, owner_h, conversation, "\n  Sure.  \t").json["body"] == "Sure."
    assert post(client, owner_h, conversation, "x" * 4000).status_code == 201
    for body in ("", "   \n", "x" * 4001):
        assert_problem(post(client, owner_h, conversation, body), 422, field="body.body")
    for client_id in ("", "has space", "x" * 65, "ünï"):
        assert_problem(post(client, owner_h, conversation, client_id=client_id), 422, field="body.client_id")
    assert Message.select().count() == 3


def test_a_repeated_client_id_posts_once_per_sender(client, people):
    owner, buyer, owner_h, buyer_h = people
    conversation = started(client, buyer_h, make_listing(owner))["id"]
    first = post(client, owner_h, conversation, "See you at 10", client_id="m-1")
    again = post(client, owner_h, conversation, "See you at 10", client_id="m-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json and first.json["client_id"] == "m-1"
    # The same client id from the other participant is their own message.
    assert post(client, buyer_h, conversation, "Great", client_id="m-1").status_code == 201
    assert Message.select().count() == 3
    assert Notification.select().where(Notification.user == buyer.id).count() == 1


def test_posting_publishes_the_message_on_the_conversation_channel(client, people, bus):
    owner, _buyer, owner_h, buyer_h = people
    conversation = started(client, buyer_h, make_listing(owner), "First")
    reply = post(client, owner_h, conversation["id"], "Second").json
    events = bus.history(f"conversation:{conversation['id']}")
    assert [(e["type"], e["data"]) for e in events] == [
        ("message.created", conversation["message"]),
        ("message.created", reply),
    ]
    # A repeated client_id publishes nothing more.
    post(client, owner_h, conversation["id"], "Third", client_id="t")
    post(client, owner_h, conversation["id"], "Third", client_id="t")
    assert len(bus.history(f"conversation:{conversation['id']}")) == 3


def test_a_redis_failure_while_publishing_does_not_lose_the_message(client, people, bus, redis, caplog):
    owner, buyer, owner_h, buyer_h = people
    conversation = started(client, buyer_h, make_listing(owner))["id"]
    # A key of the wrong type where the channel's stream should be: Redis refuses the XADD.
    redis.set(bus.stream_key(f"conversation:{conversation}"), "not a stream")
    with caplog.at_level(logging.WARNING, logger="hearth.conversations"):
        resp = post(client, owner_h, conversation, "Still delivered")
    assert resp.status_code == 201, resp.text
    assert page(client, buyer_h, conversation)["items"][-1]["body"] == "Still delivered"
    assert any("could not publish" in r.getMessage() for r in caplog.records)
    assert Notification.select().where(Notification.user == buyer.id).count() == 1


def test_unread_counts_and_read_receipts(client, people, bus):
    owner, _buyer, owner_h, buyer_h = people
    conversation = started(client, buyer_h, make_listing(owner), "one")["id"]
    ids = [post(client, buyer_h, conversation, body).json["id"] for body in ("two", "three")]

    def item(headers):
        return client.simulate_get(f"/v1/conversations/{conversation}", headers=headers).json

    def read(headers, **body):
        return client.simulate_post(f"/v1/conversations/{conversation}/read", headers=headers, json=body)

    assert item(owner_h)["unread_count"] == 3

    resp = read(owner_h, message_id=ids[0])
    assert resp.status_code == 200, resp.text
    assert resp.json == {"last_read_message_id": ids[0], "unread_count": 1}
    assert item(owner_h)["last_read_message_id"] == ids[0]
    # Never backwards; a position past the end is capped at the last message.
    assert read(owner_h, message_id=1).json == {"last_read_message_id": ids[0], "unread_count": 1}
    assert read(owner_h, message_id=ids[1] + 1000).json == {"last_read_message_id": ids[1], "unread_count": 0}
    assert client.simulate_post(f"/v1/conversations/{conversation}/read", headers=owner_h).json["unread_count"] == 0

    receipts = [e for e in bus.history(f"conversation:{conversation}") if e["type"] == "conversation.read"]
    assert [e["data"] for e in receipts] == [
        {"conversation_id": conversation, "user_id": str(owner.id), "last_read_message_id": ids[0]},
        {"conversation_id": conversation, "user_id": str(owner.id), "last_read_message_id": ids[1]},
    ]  # only moves are announced
    # The buyer sees the owner's position in the other participant's receipts, and their own count is 0.
    assert item(buyer_h)["unread_count"] == 0
    assert_problem(read(owner_h, message_id=0), 422, field="body.message_id")


def test_one_notification_per_unread_streak(client, people, jobs):
    owner, buyer, owner_h, buyer_h = people
    listing = make_listing(owner)
    conversation = started(client, buyer_h, listing, "Is the roof new? " + "x" * 200)["id"]
    for body in ("Also, the boiler?", "And the windows?"):
        assert post(client, buyer_h, conversation, body).status_code == 201

    notes = list(Notification.select().where(Notification.user == owner.id))
    assert len(notes) == 1
    first_message = Message.select().order_by(Message.id).first()
    note = notes[0]
    assert (note.type, note.title) == ("message.received", "New message from Bea Buyer")
    assert note.body == ("Is the roof new? " + "x" * 200)[:140]
    assert note.data == {
        "conversation_id": conversation,
        "message_id": first_message.id,
        "property_id": str(listing.id),
    }
    fan_out = Job.get(Job.input["notification_id"] == str(note.id))
    assert (fan_out.kind, fan_out.queue, fan_out.status) == ("notifications.fan_out", "notify", "queued")
    assert jobs.submitted == [str(fan_out.id)]  # handed to the queue once, after the commit
    assert Notification.select().where(Notification.user == buyer.id).count() == 0  # not for the sender

    # The owner reads: that notification is read, and the next message starts a new streak.
    client.simulate_post(f"/v1/conversations/{conversation}/read", headers=owner_h, json={})
    assert Notification.get_by_id(note.id).read_at is not None
    post(client, buyer_h, conversation, "Any news?")
    post(client, buyer_h, conversation, "Hello?")
    unread = list(Notification.select().where((Notification.user == owner.id) & Notification.read_at.is_null()))
    assert len(unread) == 1 and unread[0].body == "Any news?"
    assert Job.select().where(Job.kind == "notifications.fan_out").count() == 2

    # Replying reads what came before: the owner's notification of that streak is read too.
    assert post(client, owner_h, conversation, "Sorry, on it").status_code == 201
    assert Notification.get_by_id(unread[0].id).read_at is not None


def test_a_clean_attachment_reaches_the_other_participant_only(client, jobs, people, auth_headers):
    owner, _buyer, owner_h, buyer_h = people
    stranger_h = auth_headers(make_user())
    letter = pdf(b"pre-approval: 600000")
    mine = uploaded(client, jobs, buyer_h, letter, purpose="document", filename="approval.pdf")
    assert mine["status"] == "clean"
    assert download(client, mine["id"], owner_h)[0] == 404  # not sent yet
    conversation = started(client, buyer_h, make_listing(owner), "My pre-approval letter", attachments=[mine["id"]])
    assert conversation["message"]["attachments"] == [mine["id"]]

    assert download(client, mine["id"], owner_h) == (302, letter)
    assert client.simulate_get(f"/v1/uploads/{mine['id']}", headers=owner_h).json["filename"] == "approval.pdf"
    assert download(client, mine["id"], stranger_h)[0] == 404
    assert_problem(client.simulate_get(f"/v1/uploads/{mine['id']}", headers=stranger_h), 404)
    # Receiving a file does not make it yours.
    assert_problem(client.simulate_delete(f"/v1/uploads/{mine['id']}", headers=owner_h), 404)
    assert Upload.get_by_id(mine["id"]).status == "clean"


def test_only_my_own_clean_attachable_uploads_can_be_attached(client, jobs, people):
    owner, _buyer, owner_h, buyer_h = people
    theirs = uploaded(client, jobs, owner_h, pdf(b"owner's file"), purpose="document")["id"]
    avatar = uploaded(client, jobs, buyer_h, png(), purpose="avatar")["id"]
    good = uploaded(client, jobs, buyer_h, png(), purpose="document")["id"]
    pending = upload(client, buyer_h, pdf(), purpose="document").json["id"]  # its scan has not run
    listing = make_listing(owner)
    conversation = started(client, buyer_h, listing)["id"]
    before = Message.select().count()

    resp = post(client, buyer_h, conversation, "Files", attachments=[good, theirs, pending, avatar, owner.id.hex])
    body = assert_problem(resp, 422)
    errors = {e["field"]: e["message"] for e in body["errors"]}
    assert set(errors) == {f"body.attachments[{i}]" for i in (1, 2, 3, 4)}
    # Someone else's upload reads exactly like one that does not exist.
    assert errors["body.attachments[1]"] == errors["body.attachments[4]"] == "no such upload of yours"
    assert "pending_scan" in errors["body.attachments[2]"]
    assert_problem(
        post(client, buyer_h, conversation, "Too many", attachments=[good] * 11), 422, field="body.attachments"
    )
    assert Message.select().count() == before
    assert Upload.get_by_id(pending).status == "pending_scan"
    # A new conversation with a bad attachment is not started either.
    resp = client.simulate_post(
        "/v1/conversations",
        headers=buyer_h,
        json={"property_id": str(make_listing(owner).id), "body": "hi", "attachments": [theirs]},
    )
    assert_problem(resp, 422, field="body.attachments[0]")
    assert Message.select().count() == before
    # The same upload twice is attached once.
    assert post(client, buyer_h, conversation, "Once", attachments=[good, good]).json["attachments"] == [good]


def test_who_may_download_an_attachment_is_one_indexed_lookup(client, jobs, people, caplog):
    owner, _buyer, owner_h, buyer_h = people
    attached = uploaded(client, jobs, buyer_h, pdf(), purpose="document")["id"]
    started(client, buyer_h, make_listing(owner), "see attached", attachments=[attached])
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        assert download(client, attached, owner_h)[0] == 302
    sql, params = next(r.msg for r in caplog.records if r.name == "peewee" and "@> ARRAY" in str(r.msg))
    db.execute_sql("SET LOCAL enable_seqscan = off")  # the tables are tiny; ask what the planner can use
    plan = "\n".join(row[0] for row in db.execute_sql("EXPLAIN " + sql, params).fetchall())
    assert "messages_attachments_idx" in plan, plan
