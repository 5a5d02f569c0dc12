"""Conversations end to end: gunicorn serving the API, the relay under uvicorn, real websocket clients."""

from __future__ import annotations

import httpx
import pytest

from models.properties import Property
from tests.factories import PASSWORD, make_user
from tests.integration.processes import start_gunicorn
from tests.relay.live import WsClient, start_relay
from tests.tasks.live import login

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(live_env, live_db, logs, procs):
    """(API base URL, relay ws:// URL), both on the same database and Redis."""
    web, base = start_gunicorn(live_env, logs)
    procs.append(web)
    relay, url = start_relay(live_env, logs)
    procs.append(relay)
    return base, url


class Person:
    """A user logged in through the API: their headers and their raw access token."""

    def __init__(self, base: str, **options):
        self.user = make_user(**options)
        self.base = base
        self.headers = login(base, self.user.email, PASSWORD)
        self.token = self.headers["Authorization"].split()[1]

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(self.base + path, json=body, headers=self.headers, timeout=10)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers, timeout=10)

    def listen(self, relay: str, channel: str, last_event_id: str | None = None) -> WsClient:
        client = WsClient.authenticated(relay, self.token)
        message = {"type": "subscribe", "channel": channel}
        if last_event_id is not None:
            message["last_event_id"] = last_event_id
        client.send(**message)
        assert client.recv() == {"type": "subscribed", "channel": channel}
        return client


def _conversation(base: str):
    owner, buyer = Person(base, role="seller"), Person(base)
    listing = Property.create(
        owner=owner.user.id,
        standard_status="Active",
        property_type="Residential",
        list_price=350_000_00,
        original_list_price=350_000_00,
        city="Portland",
    )
    resp = buyer.post("/v1/conversations", {"property_id": str(listing.id), "body": "Hello, is it available?"})
    assert resp.status_code == 201, resp.text
    return owner, buyer, resp.json()["id"]


def test_a_message_reaches_an_online_participant_and_a_reconnect_misses_nothing(stack):
    base, relay = stack
    owner, buyer, conversation = _conversation(base)
    channel = f"conversation:{conversation}"
    online = owner.listen(relay, channel)

    sent = buyer.post(f"/v1/conversations/{conversation}/messages", {"body": "Can I see it on Sunday?"})
    assert sent.status_code == 201, sent.text
    (event,) = online.events(1)
    assert (event["channel"], event["type"], event["data"]) == (channel, "message.created", sent.json())

    # The owner goes offline; three messages are sent meanwhile; they come back with the last id they saw.
    online.close()
    missed = [
        buyer.post(f"/v1/conversations/{conversation}/messages", {"body": f"Follow-up {n}"}).json() for n in range(3)
    ]
    back = owner.listen(relay, channel, last_event_id=event["id"])
    replayed = back.events(3)
    assert [e["data"] for e in replayed] == missed
    live = buyer.post(f"/v1/conversations/{conversation}/messages", {"body": "Still there?"}).json()
    (after,) = back.events(1)
    assert after["data"] == live
    ids = [tuple(map(int, e["id"].split("-"))) for e in [event, *replayed, after]]
    assert ids == sorted(set(ids))  # in order, no gap filled twice

    # Reading is a receipt the buyer sees live.
    buyers = buyer.listen(relay, channel)
    read = owner.post(f"/v1/conversations/{conversation}/read", {})
    assert read.json() == {"last_read_message_id": live["id"], "unread_count": 0}
    (receipt,) = buyers.events(1)
    assert (receipt["type"], receipt["data"]) == (
        "conversation.read",
        {"conversation_id": conversation, "user_id": str(owner.user.id), "last_read_message_id": live["id"]},
    )
    back.close()
    buyers.close()


def test_someone_outside_the_conversation_can_neither_read_write_nor_listen(stack):
    base, relay = stack
    owner, buyer, conversation = _conversation(base)
    stranger = Person(base)
    channel = f"conversation:{conversation}"

    assert stranger.get(f"/v1/conversations/{conversation}/messages").status_code == 404
    assert stranger.post(f"/v1/conversations/{conversation}/messages", {"body": "let me in"}).status_code == 404
    client = WsClient.authenticated(relay, stranger.token)
    client.send(type="subscribe", channel=channel)
    assert client.recv() == {"type": "error", "code": "forbidden", "channel": channel}

    # A message posted now reaches the participant, and nothing reaches the stranger.
    participant = owner.listen(relay, channel)
    sent = buyer.post(f"/v1/conversations/{conversation}/messages", {"body": "Just between us"}).json()
    assert participant.events(1)[0]["data"] == sent
    client.send(type="ping")
    seen = [client.recv()]
    while seen[-1]["type"] != "pong":
        seen.append(client.recv())
    assert [m for m in seen if "id" in m] == []  # no event before the answer to a later ping
    client.send(type="subscribe", channel="conversation:not-a-uuid")
    assert client.recv() == {"type": "error", "code": "forbidden", "channel": "conversation:not-a-uuid"}
    participant.close()
    client.close()
