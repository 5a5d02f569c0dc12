"""Provider webhooks: forged requests change nothing; signed events settle deliveries and stop email."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from falcon import testing
from twilio.request_validator import RequestValidator

from api.app import build_services, create_app
from models.notifications import (
    EmailSuppression,
    Notification,
    NotificationDelivery,
    ProviderEvent,
    delivery_key,
    notify,
)
from tests.api.conftest import assert_problem
from tests.conftest import make_settings
from tests.factories import make_user

TWILIO_TOKEN = "twilio-test-auth-token-0123456789"
PUBLIC_URL = "http://hearth.test"


def _keypair():
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


SENDGRID_KEY, SENDGRID_PUBLIC = _keypair()


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(
        database,
        tmp_path,
        redis_prefix=redis_prefix,
        sendgrid_webhook_public_key=SENDGRID_PUBLIC,
        twilio_auth_token=TWILIO_TOKEN,
    )


@pytest.fixture
def client_without(settings, redis, jobs, runtime):
    """A client of an app whose settings lack the named secrets."""

    def build(*names):
        bare = dataclasses.replace(settings, **dict.fromkeys(names, ""))
        return testing.TestClient(
            create_app(bare, services=build_services(bare, redis=redis, jobs=jobs), init_db=False)
        )

    return build


def sendgrid_headers(body: bytes, *, key=SENDGRID_KEY, timestamp: int | None = None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


def post_sendgrid(client, events, **signing):
    body = json.dumps(events).encode()
    return client.simulate_post("/v1/webhooks/sendgrid", body=body, headers=sendgrid_headers(body, **signing))


def post_twilio(client, params: dict, *, query: str = "", token: str = TWILIO_TOKEN, signature: str | None = None):
    url = f"{PUBLIC_URL}/v1/webhooks/twilio" + (f"?{query}" if query else "")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature or RequestValidator(token).compute_signature(url, params),
    }
    return client.simulate_post("/v1/webhooks/twilio", query_string=query, body=urlencode(params), headers=headers)


def make_delivery(user, channel: str = "email", status: str = "sent", **fields) -> NotificationDelivery:
    note = Notification.create(user=user.id, type="message.received", title="New message", body="Hi", in_app=True)
    recipient = user.email if channel == "email" else "+14155550123"
    return NotificationDelivery.create(
        notification=note.id,
        user=user.id,
        channel=channel,
        status=status,
        recipient=recipient,
        idempotency_key=delivery_key(note.id, channel),
        **fields,
    )


def sg_event(delivery, event: str, event_id: str, **fields) -> dict:
    return {
        "email": delivery.recipient,
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": event_id,
        "sg_message_id": "msg-1.filter0001",
        "hearth_key": delivery.idempotency_key,
        **fields,
    }


def snapshot() -> tuple:
    return (
        [
            (d.id, d.status, d.provider_status, d.provider_message_id, d.error)
            for d in NotificationDelivery.select().order_by(NotificationDelivery.id)
        ],
        sorted(s.email for s in EmailSuppression.select()),
        ProviderEvent.select().count(),
    )


def status_of(delivery) -> tuple[str, str | None]:
    fresh = NotificationDelivery.get_by_id(delivery.id)
    return fresh.status, fresh.provider_status


# --- Refusals -----------------------------------------------------------------------------


def test_forged_sendgrid_requests_are_refused_and_change_nothing(client):
    user = make_user()
    delivery = make_delivery(user)
    events = [sg_event(delivery, "bounce", "ev-forged", reason="550 no such user")]
    body = json.dumps(events).encode()
    before = snapshot()

    unsigned = client.simulate_post("/v1/webhooks/sendgrid", body=body, headers={"Content-Type": "application/json"})
    assert_problem(unsigned, 401)
    headers = sendgrid_headers(body)
    tampered = json.dumps([dict(events[0], email="victim@example.com")]).encode()
    assert_problem(client.simulate_post("/v1/webhooks/sendgrid", body=tampered, headers=headers), 403)
    garbage = dict(headers, **{"X-Twilio-Email-Event-Webhook-Signature": "not base64 at all!"})
    assert_problem(client.simulate_post("/v1/webhooks/sendgrid", body=body, headers=garbage), 403)
    # Signed correctly, but eleven minutes ago: a replay.
    assert_problem(post_sendgrid(client, events, timestamp=int(time.time()) - 660), 403)
    # Signed now, by a key that is not SendGrid's.
    other_key, _ = _keypair()
    assert_problem(post_sendgrid(client, events, key=other_key), 403)
    assert snapshot() == before
    assert status_of(delivery) == ("sent", None)


def test_the_sendgrid_webhook_refuses_everything_when_no_key_is_configured(client_without):
    user = make_user()
    delivery = make_delivery(user)
    before = snapshot()
    client = client_without("sendgrid_webhook_public_key")
    assert_problem(post_sendgrid(client, [sg_event(delivery, "bounce", "ev-off")]), 403)
    assert snapshot() == before


def test_forged_twilio_callbacks_are_refused_and_change_nothing(client):
    user = make_user()
    delivery = make_delivery(user, channel="sms", provider_message_id="SM123")
    params = {"MessageSid": "SM123", "MessageStatus": "failed", "ErrorCode": "30003"}
    query = f"d={delivery.id}"
    before = snapshot()

    resp = client.simulate_post(
        "/v1/webhooks/twilio",
        query_string=query,
        body=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(resp, 401)
    assert_problem(post_twilio(client, params, query=query, token="someone-elses-token"), 403)
    assert_problem(post_twilio(client, params, query=query, signature="bm90IGEgc2lnbmF0dXJl"), 403)
    # A signature for another delivery's URL does not carry over to this one.
    url = f"{PUBLIC_URL}/v1/webhooks/twilio?d=999"
    moved = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    assert_problem(post_twilio(client, params, query=query, signature=moved), 403)
    # Nor to changed parameters.
    signed = RequestValidator(TWILIO_TOKEN).compute_signature(f"{PUBLIC_URL}/v1/webhooks/twilio?{query}", params)
    assert_problem(post_twilio(client, dict(params, MessageStatus="delivered"), query=query, signature=signed), 403)
    assert snapshot() == before


def test_the_twilio_webhook_refuses_everything_without_an_auth_token(client_without):
    user = make_user()
    delivery = make_delivery(user, channel="sms")
    before = snapshot()
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    resp = post_twilio(client_without("twilio_auth_token"), params, query=f"d={delivery.id}")
    assert_problem(resp, 403)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"{", 400),
        (b'{"event": "bounce"}', 400),
        (b"[" + b"{}," * 1000 + b"{}]", 400),
        (b'["just a string", 3, null]', 204),
        (b'[{"event": "bounce\\u0000", "email": "a\\u0000@x", "sg_event_id": "nul\\u0000"}]', 204),
    ],
)
def test_odd_but_signed_sendgrid_bodies_are_answered_without_a_server_error(client, body, status):
    resp = client.simulate_post("/v1/webhooks/sendgrid", body=body, headers=sendgrid_headers(body))
    assert resp.status_code == status, resp.text
    if b"\\u0000" in body:  # stored without the NULs PostgreSQL cannot hold
        assert [(e.event, e.event_key) for e in ProviderEvent.select()] == [("bounce", "nul")]


def test_a_sendgrid_body_over_a_mebibyte_is_413(client):
    body = b"[" + b" " * (1024 * 1024) + b"]"
    assert_problem(client.simulate_post("/v1/webhooks/sendgrid", body=body, headers=sendgrid_headers(body)), 413)


# --- SendGrid events ----------------------------------------------------------------------


def test_a_bounce_marks_the_delivery_and_suppresses_the_address(client, admin, auth_headers):
    user = make_user(email="bouncy@example.com")
    delivery = make_delivery(user)
    resp = post_sendgrid(
        client, [sg_event(delivery, "bounce", "ev-1", reason="550 5.1.1 unknown user", status="5.1.1", type="bounce")]
    )
    assert resp.status_code == 204, resp.text
    fresh = NotificationDelivery.get_by_id(delivery.id)
    assert (fresh.status, fresh.provider_status) == ("bounced", "bounce")
    assert "550 5.1.1" in fresh.error
    suppression = EmailSuppression.get_by_id(user.email)
    assert suppression.reason == "bounce"

    # Operators see both: the delivery's outcome and the suppressed address.
    headers = auth_headers(admin)
    page = client.simulate_get(
        "/v1/admin/notification-deliveries", headers=headers, params={"user_id": str(user.id)}
    ).json
    assert [(i["id"], i["status"], i["type"], i["recipient"]) for i in page["items"]] == [
        (delivery.id, "bounced", "message.received", user.email)
    ]
    listed = client.simulate_get("/v1/admin/email-suppressions", headers=headers, params={"email": user.email}).json[
        "items"
    ]
    assert [(s["email"], s["reason"]) for s in listed] == [(user.email, "bounce")]


def test_a_later_notification_to_a_bounced_address_is_suppressed(client, jobs, outbox):
    user = make_user()
    delivery = make_delivery(user)
    assert post_sendgrid(client, [sg_event(delivery, "bounce", "ev-b")]).status_code == 204
    # The fan-out task (tasks.notifications.fan_out) decides the channels of the next one.
    job = notify(user.id, "message.received", title="Another message", body="Hello again")
    jobs.submit(job)
    assert jobs.run_pending() == 1
    later = NotificationDelivery.get(
        (NotificationDelivery.notification == job.input["notification_id"]) & (NotificationDelivery.channel == "email")
    )
    assert later.status == "suppressed"
    assert [m["To"] for m in outbox.messages()] == []


def test_events_are_applied_once_and_never_move_a_delivery_backwards(client):
    user = make_user()
    delivery = make_delivery(user, status="sending")
    assert post_sendgrid(client, [sg_event(delivery, "processed", "ev-p")]).status_code == 204
    assert status_of(delivery) == ("sending", "processed")
    assert post_sendgrid(client, [sg_event(delivery, "delivered", "ev-d")]).status_code == 204
    assert status_of(delivery) == ("delivered", "delivered")
    # A late 'processed' and a repeat of the same batch only get recorded (once).
    late = [sg_event(delivery, "processed", "ev-p2"), sg_event(delivery, "deferred", "ev-f")]
    for _ in range(2):
        assert post_sendgrid(client, late).status_code == 204
    assert status_of(delivery) == ("delivered", "delivered")
    events = [
        e.event for e in ProviderEvent.select().where(ProviderEvent.delivery == delivery.id).order_by(ProviderEvent.id)
    ]
    assert events == ["processed", "delivered", "processed", "deferred"]


def test_an_unknown_delivery_is_settled_by_any_event(client):
    user = make_user()
    lost = make_delivery(user, status="unknown")
    assert post_sendgrid(client, [sg_event(lost, "processed", "ev-u")]).status_code == 204
    fresh = NotificationDelivery.get_by_id(lost.id)
    assert (fresh.status, fresh.provider_message_id) == ("sent", "msg-1")
    assert fresh.sent_at is not None


def test_a_digest_event_settles_every_delivery_of_the_digest(client):
    user = make_user()
    first, second = make_delivery(user, digest_key="digest:1"), make_delivery(user, digest_key="digest:1")
    event = dict(sg_event(first, "delivered", "ev-dg"), hearth_key="digest:1")
    assert post_sendgrid(client, [event]).status_code == 204
    assert [status_of(d)[0] for d in (first, second)] == ["delivered", "delivered"]


@pytest.mark.parametrize(
    ("event", "fields", "status", "reason"),
    [
        ("dropped", {"reason": "Bounced Address"}, "failed", "dropped"),
        ("dropped", {"reason": "Invalid SMTPAPI header"}, "failed", None),
        ("spamreport", {}, "sent", "spamreport"),
        ("unsubscribe", {}, "sent", "unsubscribe"),
        ("group_unsubscribe", {"asm_group_id": 1}, "sent", "unsubscribe"),
        ("open", {}, "sent", None),
    ],
)
def test_what_each_sendgrid_event_does(client, event, fields, status, reason):
    user = make_user()
    delivery = make_delivery(user)
    assert post_sendgrid(client, [sg_event(delivery, event, f"ev-{event}", **fields)]).status_code == 204
    assert status_of(delivery)[0] == status
    suppression = EmailSuppression.get_or_none(EmailSuppression.email == user.email)
    assert (suppression.reason if suppression else None) == reason


# --- Twilio status callbacks ----------------------------------------------------------------


def test_twilio_delivered_and_failed_callbacks_update_their_deliveries(client, admin, auth_headers):
    user = make_user()
    ok = make_delivery(user, channel="sms", provider_message_id="SMok")
    bad = make_delivery(user, channel="sms", provider_message_id="SMbad")
    for status in ("sent", "delivered"):
        resp = post_twilio(client, {"MessageSid": "SMok", "MessageStatus": status}, query=f"d={ok.id}")
        assert resp.status_code == 204, resp.text
    resp = post_twilio(
        client, {"MessageSid": "SMbad", "MessageStatus": "undelivered", "ErrorCode": "30003"}, query=f"d={bad.id}"
    )
    assert resp.status_code == 204, resp.text
    # Twilio may repeat a callback; a late 'sent' never undoes 'delivered'.
    post_twilio(client, {"MessageSid": "SMok", "MessageStatus": "sent"}, query=f"d={ok.id}")
    assert status_of(ok) == ("delivered", "delivered")
    failed = NotificationDelivery.get_by_id(bad.id)
    assert (failed.status, failed.provider_status) == ("failed", "undelivered")
    assert "30003" in failed.error

    items = client.simulate_get(
        "/v1/admin/notification-deliveries", headers=auth_headers(admin), params={"channel": "sms", "status": "failed"}
    ).json["items"]
    assert [(i["id"], i["error"]) for i in items] == [(bad.id, failed.error)]


def test_a_twilio_callback_settles_an_unknown_delivery(client):
    user = make_user()
    lost = make_delivery(user, channel="sms", status="unknown")
    resp = post_twilio(client, {"MessageSid": "SMlost", "MessageStatus": "delivered"}, query=f"d={lost.id}")
    assert resp.status_code == 204, resp.text
    fresh = NotificationDelivery.get_by_id(lost.id)
    assert (fresh.status, fresh.provider_message_id) == ("delivered", "SMlost")


def test_a_twilio_callback_without_the_delivery_id_finds_it_by_sid(client):
    user = make_user()
    delivery = make_delivery(user, channel="sms", provider_message_id="SMbysid")
    resp = post_twilio(client, {"MessageSid": "SMbysid", "MessageStatus": "failed", "ErrorCode": "21610"})
    assert resp.status_code == 204, resp.text
    assert status_of(delivery) == ("failed", "failed")


def test_a_signed_twilio_request_that_is_not_a_status_callback_is_400(client):
    assert_problem(post_twilio(client, {"AccountSid": "AC1"}), 400)
