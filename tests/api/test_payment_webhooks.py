"""The payments provider's webhook: forged, unsigned and replayed requests change nothing; a verified
event is stored once with one job, however often it is delivered; the sandbox delivers the same way."""

from __future__ import annotations

import json
import time

import pytest
from falcon import testing

from api.app import build_services, create_app
from models.jobs import Job
from models.payment_events import PaymentEvent
from services.payments import StripeProvider, sign_event
from tests.api.conftest import assert_problem
from tests.factories import make_user

PATH = "/v1/webhooks/stripe"


def _event(event_id="evt_1", event_type="payment_intent.succeeded", **object_fields) -> bytes:
    obj = {
        "id": "pi_123",
        "object": "payment_intent",
        "amount": 250000,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"offer_id": "42"},
        **object_fields,
    }
    event = {"id": event_id, "object": "event", "type": event_type, "created": 1_800_000_000, "data": {"object": obj}}
    return json.dumps(event).encode()


def _deliver(client, body: bytes, signature: str | None, content_type="application/json"):
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.simulate_post(PATH, body=body, headers=headers)


def _signed(settings, body: bytes, at: float | None = None) -> str:
    return sign_event(body, settings.stripe_webhook_secret, int(time.time() if at is None else at))


def _stored() -> int:
    return PaymentEvent.select().count()


def _money_jobs() -> list[Job]:
    return list(Job.select().where(Job.kind == "payments.apply_event"))


@pytest.mark.parametrize(
    ("signature_of", "status"),
    [
        (lambda settings, body: None, 401),
        (lambda settings, body: "", 401),
        (lambda settings, body: sign_event(body, "whsec_someone_elses_secret", int(time.time())), 403),
        (lambda settings, body: _signed(settings, body + b" "), 403),
        (lambda settings, body: _signed(settings, body, time.time() - 301), 403),
        (lambda settings, body: _signed(settings, body, time.time() + 301), 403),
        (lambda settings, body: "t=notanumber,v1=00", 403),
        (lambda settings, body: "garbage", 403),
    ],
    ids=["no-header", "empty-header", "other-secret", "other-body", "stale", "from-the-future", "bad-t", "garbage"],
)
def test_unsigned_forged_and_replayed_events_are_refused_and_change_nothing(
    client, settings, jobs, signature_of, status
):
    body = _event()
    resp = _deliver(client, body, signature_of(settings, body))
    problem = assert_problem(resp, status)
    assert "signature" in problem["detail"] or "signed" in problem["detail"]
    assert _stored() == 0 and _money_jobs() == [] and jobs.submitted == []


def test_an_event_delivered_five_times_is_stored_once_with_one_job(client, settings, jobs):
    body = _event("evt_five")
    answers = [_deliver(client, body, _signed(settings, body)) for _ in range(5)]
    assert [resp.status_code for resp in answers] == [200] * 5
    assert [resp.json for resp in answers] == [{"received": True, "duplicate": False}] + [
        {"received": True, "duplicate": True}
    ] * 4
    [row] = PaymentEvent.select()
    [job] = _money_jobs()
    assert (row.id, row.type, row.object_type, row.object_id) == (
        "evt_five",
        "payment_intent.succeeded",
        "payment_intent",
        "pi_123",
    )
    assert int(row.created.timestamp()) == 1_800_000_000
    assert row.payload["data"]["object"]["metadata"] == {"offer_id": "42"}
    assert row.job_id == job.id
    assert (job.queue, job.input, job.status) == ("money", {"event_id": "evt_five"}, "queued")
    # Submitted once, after its transaction: the test's recording queue saw it exactly once.
    assert jobs.submitted == [str(job.id)]


@pytest.mark.parametrize(
    "event_type",
    [
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
        "refund.updated",
        "refund.failed",
        "transfer.reversed",
    ],
)
def test_every_handled_type_queues_a_job(client, settings, jobs, event_type):
    body = _event(f"evt_{event_type}", event_type)
    assert _deliver(client, body, _signed(settings, body)).json == {"received": True, "duplicate": False}
    assert [job.input for job in _money_jobs()] == [{"event_id": f"evt_{event_type}"}]


def test_events_of_other_types_are_stored_and_acknowledged_without_a_job(client, settings, jobs):
    body = _event("evt_other", "charge.dispute.created", id="dp_1", object="dispute")
    resp = _deliver(client, body, _signed(settings, body))
    assert resp.status_code == 200 and resp.json == {"received": True, "duplicate": False}
    row = PaymentEvent.get_by_id("evt_other")
    assert (row.type, row.object_type, row.object_id, row.job_id) == ("charge.dispute.created", "dispute", "dp_1", None)
    assert _money_jobs() == [] and jobs.submitted == []


def test_bodies_over_64_kib_and_bodies_that_are_not_json_are_refused(client, settings):
    big = _event("evt_big", description="x" * 70_000)
    assert_problem(_deliver(client, big, _signed(settings, big)), 413)
    body = _event()
    assert_problem(_deliver(client, body, _signed(settings, body), content_type="text/plain"), 415)
    # Signed with our secret but not an event at all: a bad request, not a forgery.
    for bad in (b"[1, 2]", b"{not json", json.dumps({"object": "event", "id": "evt_x"}).encode()):
        assert_problem(_deliver(client, bad, _signed(settings, bad)), 400)
    assert _stored() == 0


def test_nul_characters_in_a_signed_event_do_not_break_storage(client, settings):
    body = _event("evt_nul", metadata={"note": "a\u0000b"})
    resp = _deliver(client, body, _signed(settings, body))
    assert resp.status_code == 200, resp.text
    assert PaymentEvent.get_by_id("evt_nul").payload["data"]["object"]["metadata"] == {"note": "ab"}


# --- the sandbox's delivery ------------------------------------------------------------------

SANDBOX_PATH = "/v1/admin/payments/sandbox/events"


@pytest.fixture
def deposit(services):
    return services.payments.create_deposit(
        amount=500_00, currency="usd", idempotency_key="offer-7-deposit", metadata={"offer_id": "7"}, description="x"
    )


def test_an_admin_completes_a_sandbox_deposit_through_the_webhook_path(client, admin, auth_headers, deposit, jobs):
    headers = auth_headers(admin)
    payload = {"payment_intent": deposit.id, "outcome": "succeeded"}
    first = client.simulate_post(SANDBOX_PATH, json=payload, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json == {"received": True, "duplicate": False}
    [row] = PaymentEvent.select()
    assert (row.type, row.object_id) == ("payment_intent.succeeded", deposit.id)
    obj = row.payload["data"]["object"]
    assert (obj["amount"], obj["currency"], obj["status"], obj["metadata"]) == (
        500_00,
        "usd",
        "succeeded",
        {"offer_id": "7"},
    )
    [job] = _money_jobs()
    assert jobs.submitted == [str(job.id)] and job.input == {"event_id": row.id}
    # The same outcome again is the same event: a duplicate, no second job.
    again = client.simulate_post(SANDBOX_PATH, json=payload, headers=headers)
    assert again.json == {"received": True, "duplicate": True}
    assert _stored() == 1 and len(_money_jobs()) == 1
    # A deposit that succeeded cannot fail afterwards.
    late = client.simulate_post(SANDBOX_PATH, json={**payload, "outcome": "failed"}, headers=headers)
    assert_problem(late, 409)
    assert _stored() == 1


def test_the_sandbox_endpoint_refuses_unknown_deposits_bad_input_and_non_admins(client, admin, auth_headers, deposit):
    headers = auth_headers(admin)
    unknown = client.simulate_post(
        SANDBOX_PATH, json={"payment_intent": "pi_sandbox_nothing", "outcome": "succeeded"}, headers=headers
    )
    assert_problem(unknown, 404)
    for bad in (
        {"payment_intent": deposit.id, "outcome": "paid"},
        {"payment_intent": "ch_123", "outcome": "succeeded"},
        {"payment_intent": deposit.id},
    ):
        assert_problem(client.simulate_post(SANDBOX_PATH, json=bad, headers=headers), 422)
    buyer = client.simulate_post(
        SANDBOX_PATH, json={"payment_intent": deposit.id, "outcome": "succeeded"}, headers=auth_headers(make_user())
    )
    assert_problem(buyer, 403)
    assert_problem(client.simulate_post(SANDBOX_PATH, json={"payment_intent": deposit.id, "outcome": "failed"}), 401)
    assert _stored() == 0


def test_without_the_sandbox_provider_the_sandbox_endpoint_is_not_found(settings, redis, jobs, runtime, admin, login):
    stripe = StripeProvider("sk_test_unused", settings.stripe_webhook_secret, api_url="http://127.0.0.1:9")
    services = build_services(settings, redis=redis, jobs=jobs, payments=stripe)
    client = testing.TestClient(create_app(settings, services=services, init_db=False))
    token = login(admin)["access_token"]  # the admin's two-factor login (aal2), valid on any app instance
    resp = client.simulate_post(
        SANDBOX_PATH,
        json={"payment_intent": "pi_sandbox_x", "outcome": "succeeded"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_problem(resp, 404)
    # The webhook itself works the same with Stripe's provider.
    body = _event("evt_live")
    assert _deliver(client, body, _signed(settings, body)).json == {"received": True, "duplicate": False}
