"""The payments providers: Stripe through the official library against the provider stub, and the sandbox.

What a repeat with the same idempotency key does (nothing new), how failures are
classified (transient → ProviderUnavailable, the job retries; refusals →
ProviderRejected), and which webhooks verify.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import stripe

from services.payments import (
    MalformedEvent,
    ProviderRejected,
    ProviderUnavailable,
    SandboxProvider,
    SignatureMissing,
    SignatureRejected,
    StripeProvider,
    build_payments,
    sign_event,
)
from tests.conftest import make_settings
from tests.providers import Providers, providers  # noqa: F401

SECRET = "whsec_test_0123456789abcdef0123456789"
METADATA = {"offer_id": "7", "escrow_id": "e1"}


@pytest.fixture
def stripe_provider(providers):
    return StripeProvider(providers.stripe_api_key, SECRET, api_url=providers.url)


def _deposit(provider, key="offer-7-deposit", amount=250_000):
    return provider.create_deposit(
        amount=amount, currency="usd", idempotency_key=key, metadata=METADATA, description="Deposit for offer 7"
    )


def _posts(providers, path):
    return [r for r in providers.requests("payments") if r["method"] == "POST" and r["path"] == path]


# --- Stripe against the stub ------------------------------------------------------------------


def test_a_deposit_is_a_payment_intent_created_once_per_idempotency_key(stripe_provider, providers):
    intent = _deposit(stripe_provider)
    assert intent.id.startswith("pi_") and intent.client_secret.startswith(f"{intent.id}_secret_")
    assert (intent.status, intent.amount, intent.currency) == ("requires_payment_method", 250_000, "usd")
    [request] = _posts(providers, "/v1/payment_intents")
    assert request["headers"]["Idempotency-Key"] == "offer-7-deposit"
    assert request["headers"]["Authorization"] == f"Bearer {providers.stripe_api_key}"
    assert request["form"] == {
        "amount": "250000",
        "currency": "usd",
        "automatic_payment_methods[enabled]": "true",
        "metadata[offer_id]": "7",
        "metadata[escrow_id]": "e1",
        "description": "Deposit for offer 7",
    }
    # The job repeats the call after a lost answer: the same intent, nothing new at Stripe.
    assert _deposit(stripe_provider) == intent
    stored = stripe_provider.client.v1.payment_intents.retrieve(intent.id)
    assert stored.id == intent.id and stored.metadata.to_dict() == METADATA
    # Two calls reached the stub, one PaymentIntent exists: the second was a replay.
    assert len(_posts(providers, "/v1/payment_intents")) == 2
    # The same key with other parameters is Stripe's idempotency_error, a permanent refusal.
    with pytest.raises(ProviderRejected) as refused:
        _deposit(stripe_provider, amount=1)
    assert (refused.value.code, refused.value.status) == ("idempotency_error", 400)


def test_refunds_and_payouts_pass_their_keys_and_repeat_without_a_second_object(stripe_provider, providers):
    intent = _deposit(stripe_provider)
    refund = stripe_provider.refund(
        payment_ref=intent.id, amount=50_000, currency="usd", idempotency_key="refund-1", metadata=METADATA
    )
    assert refund.id.startswith("re_") and (refund.status, refund.amount, refund.currency) == (
        "succeeded",
        50_000,
        "usd",
    )
    again = stripe_provider.refund(
        payment_ref=intent.id, amount=50_000, currency="usd", idempotency_key="refund-1", metadata=METADATA
    )
    assert again == refund
    [first, _] = _posts(providers, "/v1/refunds")
    assert first["form"]["payment_intent"] == intent.id and first["headers"]["Idempotency-Key"] == "refund-1"

    payout = {
        "destination": "acct_seller",
        "amount": 200_000,
        "currency": "usd",
        "metadata": METADATA,
        "transfer_group": "offer-7",
    }
    transfer = stripe_provider.payout(idempotency_key="payout-1", **payout)
    assert transfer.id.startswith("tr_") and (transfer.status, transfer.amount) == ("paid", 200_000)
    assert stripe_provider.payout(idempotency_key="payout-1", **payout) == transfer
    listed = stripe_provider.client.v1.transfers.list(params={"transfer_group": "offer-7"})
    assert [t.id for t in listed.data] == [transfer.id]
    assert listed.data[0].destination == "acct_seller"
    assert _posts(providers, "/v1/transfers")[0]["headers"]["Idempotency-Key"] == "payout-1"


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_and_throttling_are_transient_and_the_retry_with_the_same_key_succeeds(
    stripe_provider, providers, status
):
    providers.program("payments", {"status": status})
    with pytest.raises(ProviderUnavailable):
        _deposit(stripe_provider)
    # The scripted failure stood for one before Stripe ran the request: nothing is stored under the key.
    intent = _deposit(stripe_provider)
    assert intent.id.startswith("pi_")
    assert [r["status"] for r in _posts(providers, "/v1/payment_intents")] == [status, 200]


def test_an_unreachable_stripe_is_transient():
    provider = StripeProvider("sk_test_x", SECRET, api_url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(ProviderUnavailable):
        _deposit(provider)


@pytest.mark.parametrize(
    ("status", "code"), [(400, "parameter_invalid"), (402, "card_declined"), (404, "resource_missing")]
)
def test_other_client_errors_are_permanent(stripe_provider, providers, status, code):
    providers.program("payments", {"status": status})
    with pytest.raises(ProviderRejected) as refused:
        stripe_provider.payout(
            destination="acct_x", amount=1, currency="usd", idempotency_key="p", metadata={}, transfer_group="g"
        )
    assert (refused.value.status, refused.value.code) == (status, code)


def test_a_refund_of_an_unknown_payment_is_refused(stripe_provider):
    with pytest.raises(ProviderRejected) as refused:
        stripe_provider.refund(payment_ref="pi_nothing", amount=1, currency="usd", idempotency_key="r", metadata={})
    assert (refused.value.status, refused.value.code) == (404, "resource_missing")


# --- webhooks -----------------------------------------------------------------------------------


def _event_body(event_type="payment_intent.succeeded") -> bytes:
    obj = {"id": "pi_1", "object": "payment_intent", "amount": 100, "currency": "usd", "status": "succeeded"}
    obj["metadata"] = METADATA
    return json.dumps(
        {"id": "evt_1", "object": "event", "type": event_type, "created": 1_800_000_000, "data": {"object": obj}}
    ).encode()


def test_parse_webhook_accepts_what_the_stripe_library_signs(stripe_provider):
    body = _event_body()
    now = time.time()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, int(now))
    event = stripe_provider.parse_webhook(body, header, now=now)
    assert (event.id, event.type, event.created) == ("evt_1", "payment_intent.succeeded", 1_800_000_000)
    assert (event.object_type, event.object_id, event.status, event.amount, event.currency) == (
        "payment_intent",
        "pi_1",
        "succeeded",
        100,
        "usd",
    )
    assert event.metadata == METADATA and event.payload["data"]["object"]["id"] == "pi_1"
    # Ours signs the same way the library does.
    assert sign_event(body, SECRET, int(now)) == header


def test_parse_webhook_refuses_missing_forged_and_stale_signatures(stripe_provider):
    body = _event_body()
    now = time.time()
    with pytest.raises(SignatureMissing):
        stripe_provider.parse_webhook(body, None, now=now)
    for header in (
        sign_event(body, "whsec_another", int(now)),
        sign_event(body + b"\n", SECRET, int(now)),
        sign_event(body, SECRET, int(now) - 301),
        sign_event(body, SECRET, int(now) + 301),
        "v1=" + "0" * 64,
        "t=1,v0=abc",
    ):
        with pytest.raises(SignatureRejected):
            stripe_provider.parse_webhook(body, header, now=now)
    # Just inside the tolerance is accepted.
    assert stripe_provider.parse_webhook(body, sign_event(body, SECRET, int(now) - 299), now=now).id == "evt_1"
    with pytest.raises(MalformedEvent):
        stripe_provider.parse_webhook(
            b'{"object": "list"}', sign_event(b'{"object": "list"}', SECRET, int(now)), now=now
        )


# --- the sandbox ----------------------------------------------------------------------------------


@pytest.fixture
def sandbox(redis, redis_prefix):
    return SandboxProvider(redis, redis_prefix, webhook_secret=SECRET, secret_key="k" * 40, clock=lambda: 1_800_000_000)


def test_the_sandbox_is_deterministic_and_idempotent(sandbox, redis, redis_prefix):
    intent = _deposit(sandbox)
    assert intent.id.startswith("pi_sandbox_") and intent.client_secret.startswith(f"{intent.id}_secret_")
    assert _deposit(sandbox) == intent
    # Another sandbox on the same key space derives the same ids from the same keys.
    other = SandboxProvider(redis, redis_prefix + "other:", webhook_secret=SECRET, secret_key="k" * 40)
    assert _deposit(other).id == intent.id and _deposit(other).client_secret == intent.client_secret
    assert _deposit(sandbox, key="another").id != intent.id
    with pytest.raises(ProviderRejected) as refused:
        _deposit(sandbox, amount=1)
    assert refused.value.code == "idempotency_error"
    assert [op["operation"] for op in sandbox.operations()] == ["create_deposit", "create_deposit"]


def test_sandbox_refunds_need_a_succeeded_deposit_and_payouts_succeed_once_per_key(sandbox):
    intent = _deposit(sandbox, amount=1000)
    refund = {"payment_ref": intent.id, "amount": 400, "currency": "usd", "metadata": {}}
    with pytest.raises(ProviderRejected) as early:
        sandbox.refund(idempotency_key="r1", **refund)
    assert early.value.code == "payment_intent_unexpected_state"
    sandbox.sandbox_event(intent.id, "succeeded")
    first = sandbox.refund(idempotency_key="r1", **refund)
    assert (first.status, first.amount) == ("succeeded", 400) and first.id.startswith("re_sandbox_")
    assert sandbox.refund(idempotency_key="r1", **refund) == first  # not refunded twice
    sandbox.refund(idempotency_key="r2", **refund)
    with pytest.raises(ProviderRejected) as too_much:
        sandbox.refund(idempotency_key="r3", **refund)  # 800 of 1000 refunded: 400 more is too much
    assert too_much.value.code == "amount_too_large"
    payout = {"destination": "acct_1", "amount": 500, "currency": "usd", "metadata": {}, "transfer_group": "g"}
    assert sandbox.payout(idempotency_key="p1", **payout) == sandbox.payout(idempotency_key="p1", **payout)
    assert [op["operation"] for op in sandbox.operations()] == ["create_deposit", "refund", "refund", "payout"]


def test_sandbox_scripted_failures_store_nothing_under_the_key(sandbox):
    sandbox.program("payout", "unavailable", "declined")
    payout = {"destination": "acct_1", "amount": 500, "currency": "usd", "metadata": {}, "transfer_group": "g"}
    with pytest.raises(ProviderUnavailable):
        sandbox.payout(idempotency_key="p1", **payout)
    with pytest.raises(ProviderRejected) as declined:
        sandbox.payout(idempotency_key="p1", **payout)
    assert (declined.value.code, declined.value.status) == ("sandbox_declined", 402)
    assert sandbox.operations() == []
    assert sandbox.payout(idempotency_key="p1", **payout).status == "paid"
    assert len(sandbox.operations()) == 1


def test_sandbox_events_are_signed_like_stripes_and_verify_through_parse_webhook(sandbox):
    intent = _deposit(sandbox)
    now = time.time()
    body, header = sandbox.sandbox_event(intent.id, "failed", now=now)
    event = sandbox.parse_webhook(body, header, now=now)
    assert (event.type, event.object_id, event.status, event.amount) == (
        "payment_intent.payment_failed",
        intent.id,
        "requires_payment_method",
        250_000,
    )
    assert event.metadata == METADATA
    stripe.WebhookSignature.verify_header(body.decode(), header, SECRET, 300)
    # A failed payment may be tried again and succeed; the same outcome twice is the same event.
    body2, _ = sandbox.sandbox_event(intent.id, "succeeded", now=now)
    body3, _ = sandbox.sandbox_event(intent.id, "succeeded", now=now + 10)
    assert body2 == body3 and json.loads(body2)["id"] != event.id
    assert sandbox.payment_intent(intent.id)["status"] == "succeeded"
    with pytest.raises(ProviderRejected) as settled:
        sandbox.sandbox_event(intent.id, "canceled")
    assert settled.value.status == 400
    with pytest.raises(ProviderRejected) as unknown:
        sandbox.sandbox_event("pi_sandbox_nothing", "succeeded")
    assert unknown.value.status == 404
    # Signed an hour ago: a replay.
    with pytest.raises(SignatureRejected):
        sandbox.parse_webhook(body, header, now=now + 3600)


def test_build_payments_picks_the_provider_by_setting(database, tmp_path, redis, providers):
    assert isinstance(build_payments(make_settings(database, tmp_path), redis), SandboxProvider)
    settings = make_settings(
        database,
        tmp_path,
        payments_provider="stripe",
        stripe_api_key=providers.stripe_api_key,
        stripe_webhook_secret=SECRET,
        stripe_api_url=providers.url,
    )
    provider = build_payments(settings, redis)
    assert isinstance(provider, StripeProvider)
    assert _deposit(provider).id.startswith("pi_")
    assert len(_posts(providers, "/v1/payment_intents")) == 1


def test_concurrent_sandbox_payouts_of_one_key_make_one_transfer(sandbox):
    payout = {"destination": "acct_1", "amount": 500, "currency": "usd", "metadata": {}, "transfer_group": "g"}
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(sandbox.payout(idempotency_key="p1", **payout)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert [op["operation"] for op in sandbox.operations()] == ["payout"]
    with pytest.raises(ProviderRejected) as refused:
        sandbox.payout(idempotency_key="p1", **{**payout, "amount": 501})
    assert refused.value.code == "idempotency_error"
