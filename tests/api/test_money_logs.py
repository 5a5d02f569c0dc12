"""No log record and no job row carries a payment secret, with every logger at DEBUG.

Logs and job rows are read by operators and kept for weeks; a deposit's client
secret completes the buyer's payment, a ``Stripe-Signature`` is a valid
delivery for five minutes, and the Stripe API key and webhook secret are the
keys to the money. The test walks a whole deal through the HTTP API and the
real money tasks, with the sandbox and with the ``stripe`` library against the
provider stub (a 503 on the deposit's request first, so a retried request is logged too),
and with refused webhook deliveries, then scans every record as the JSON log
line production writes, every job's input, result and errors, and the stored provider events.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import httpx
import pytest

from models.accounts import User
from models.jobs import Job
from models.payment_events import PaymentEvent
from services.logging import JsonFormatter
from services.payments import sign_event
from tests.api.conftest import assert_problem
from tests.api.money_flow import WEBHOOK, drive_deal
from tests.api.test_conversations import make_listing
from tests.conftest import make_settings
from tests.factories import make_user
from tests.providers import providers_url
from tests.services.backends import backend_overrides


@pytest.fixture(params=["sandbox", "stripe"])
def provider(request):
    return request.param


@pytest.fixture
def settings(database, tmp_path, redis_prefix, provider):
    return make_settings(
        database,
        tmp_path,
        redis_prefix=redis_prefix,
        payments_provider=provider,
        stripe_api_key="sk_test_" + uuid.uuid4().hex,
        stripe_webhook_secret="whsec_" + uuid.uuid4().hex,
        stripe_api_url=providers_url(),
        rate_limit_auth="1000/minute",
        **backend_overrides("local"),
    )


@pytest.fixture
def debug_logs(caplog):
    """Every logger, ours and the libraries', at DEBUG into ``caplog``."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def stripe_completes(settings):
    """Stripe's ``payment_intent.succeeded`` for the stub's intent, as Stripe sends it (with its client secret)."""

    def complete(intent_id: str) -> tuple[bytes, str]:
        stub = httpx.get(
            f"{providers_url()}/v1/payment_intents/{intent_id}",
            headers={"Authorization": f"Bearer {settings.stripe_api_key}"},
            timeout=10,
        )
        stub.raise_for_status()
        intent = dict(stub.json(), status="succeeded")
        event = {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {"object": intent},
        }
        body = json.dumps(event).encode()
        return body, sign_event(body, settings.stripe_webhook_secret, int(time.time()))

    return complete


def test_no_log_record_or_job_row_carries_a_payment_secret(
    client, jobs, services, settings, provider, auth_headers, admin, debug_logs
):
    seller, buyer = make_user(role="seller", full_name="Sam Seller"), make_user(full_name="Bea Buyer")
    User.update(payout_account="acct_1SellerLogs").where(User.id == seller.id).execute()
    complete = None
    if provider == "stripe":
        complete = stripe_completes(settings)
        # The deposit's PaymentIntent meets a 503 first: the job is retried, and the error is logged.
        program = {"ns": settings.stripe_api_key, "responses": [{"status": 503}]}
        httpx.post(f"{providers_url()}/_program", json=program, timeout=10).raise_for_status()
    deal = drive_deal(
        client,
        jobs,
        services,
        auth_headers,
        seller_headers=auth_headers(seller),
        buyer_headers=auth_headers(buyer),
        admin_headers=auth_headers(admin),
        listing=make_listing(seller),
        complete=complete,
    )
    # Deliveries we refuse: a replay of the real signature long after, a forgery, a signature on other bytes.
    body = b'{"id":"evt_replayed","object":"event","type":"payment_intent.succeeded","created":1,"data":{"object":{}}}'
    stale = sign_event(body, settings.stripe_webhook_secret, int(time.time()) - 3600)
    forged = sign_event(body, "whsec_" + uuid.uuid4().hex, int(time.time()))
    for signature in (stale, forged, deal.signature):
        resp = client.simulate_post(
            WEBHOOK, body=body, headers={"Content-Type": "application/json", "Stripe-Signature": signature}
        )
        assert_problem(resp, 403)

    secrets = {
        "client secret": deal.client_secret,
        "client secret's key": deal.client_secret.split("_secret_", 1)[1],
        "Stripe-Signature": deal.signature,
        "Stripe-Signature's MAC": deal.signature.split("v1=", 1)[1],
        "replayed Stripe-Signature's MAC": stale.split("v1=", 1)[1],
        "forged Stripe-Signature's MAC": forged.split("v1=", 1)[1],
        "Stripe API key": settings.stripe_api_key,
        "webhook secret": settings.stripe_webhook_secret,
    }
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in debug_logs.records]
    # The scan reads what the money flow logged, the libraries' debug output included.
    assert any('"logger":"hearth.webhooks"' in line for line in lines)
    rows = [
        json.dumps([job.kind, job.input, job.result, job.error, job.last_error], default=str)
        for job in Job.select().order_by(Job.created_at)
    ]
    # The provider's events are stored as received, but without the PaymentIntent's client secret.
    rows += [json.dumps(event.payload) for event in PaymentEvent.select()]
    assert {"escrows.collect_deposit", "payments.apply_event", "escrows.settle"} <= {
        json.loads(row)[0] for row in rows if row.startswith("[")
    }
    if provider == "stripe":
        # The library's records of the refused and the retried request were scanned too.
        assert any('"logger":"stripe"' in line and "response_code=503" in line for line in lines)
    for what, secret in secrets.items():
        for line in lines:
            assert secret not in line, (what, line)
        for row in rows:
            assert secret not in row, (what, row)
    assert "_secret_" not in "".join(lines + rows)
