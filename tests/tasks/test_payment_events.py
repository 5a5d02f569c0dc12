"""Provider events applied to payments: through ``POST /v1/webhooks/stripe`` and the ``payments.apply_event`` job.

An event delivered five times, or events in the wrong order, fund an escrow
once; a deposit that arrives after its escrow was cancelled is refunded in
full; a refund that fails later or a reversed transfer posts the money back to
what the platform owes, and the payment is failed for admins to see.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from falcon import testing

from api.app import build_services, create_app
from models.base import utcnow
from models.db import db
from models.escrow_actions import cancel
from models.escrows import history_of, lock
from models.jobs import Job
from models.notifications import Notification
from models.payments import Payment, payments_of
from services.payments import sign_event
from tasks.runtime import runtime as worker_runtime
from tests.tasks.money_rows import (
    EARNEST,
    account,
    assert_ledger_matches,
    collect,
    deliver,
    entries,
    fund,
    make_deal,
    payable,
    run,
    settle_by,
)

WEBHOOK = "/v1/webhooks/stripe"


@pytest.fixture
def client(settings, redis, queue, runtime):
    services = build_services(settings, redis=redis, jobs=queue)
    return testing.TestClient(create_app(settings, services=services, init_db=False))


@pytest.fixture
def deal(runtime):
    return make_deal()


def post(client, body: bytes, signature: str):
    resp = client.simulate_post(WEBHOOK, body=body, headers={"Content-Type": "application/json", STRIPE: signature})
    assert resp.status_code == 200, resp.text
    return resp.json


STRIPE = "Stripe-Signature"


def signed(event_type: str, obj: dict, *, created: int | None = None) -> tuple[bytes, str]:
    """An event as Stripe would send it about ``obj``, signed with the endpoint's secret."""
    now = int(time.time())
    created = now if created is None else created
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": event_type, "created": created}
    body = json.dumps(dict(event, data={"object": obj})).encode()
    return body, sign_event(body, worker_runtime().settings.stripe_webhook_secret, now)


def intent(payment: Payment, status: str, **fields) -> dict:
    return {
        "id": payment.provider_ref,
        "object": "payment_intent",
        "amount": payment.amount,
        "status": status,
        **fields,
    }


def applied() -> list[Job]:
    """The ``payments.apply_event`` jobs (one per stored event), each run to its end."""
    jobs = list(Job.select().where(Job.kind == "payments.apply_event").order_by(Job.created_at))
    assert all(job.status == "succeeded" for job in jobs), [(job.status, job.error) for job in jobs]
    return jobs


def deposits(deal) -> list[tuple]:
    return [e for e in entries(deal) if e[0] == "deposit"]


def test_the_same_webhook_delivered_five_times_funds_the_escrow_once(client, deal, queue):
    payment = collect(deal)
    body, signature = worker_runtime().payments.sandbox_event(payment.provider_ref, "succeeded")
    answers = [post(client, body, signature) for _ in range(5)]
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    queue.run_pending()
    assert len(applied()) == 1
    escrow = deal.reload()
    assert (escrow.status, escrow.held) == ("funded", EARNEST)
    assert deposits(deal) == [("deposit", "posted", "provider:clearing:USD", escrow.account_code, EARNEST)]
    assert Payment.get_by_id(payment.id).status == "succeeded"
    assert [e.action for e in history_of(escrow.id)].count("funded") == 1
    told = {str(n.user_id) for n in Notification.select().where(Notification.type == "escrow.funded")}
    assert told == {str(deal.buyer.id), str(deal.seller.id)}
    assert_ledger_matches(deal)


def test_events_out_of_order_fund_once_and_never_go_back(client, deal, queue):
    payment = collect(deal)
    for status, event_type in [
        ("succeeded", "payment_intent.succeeded"),
        ("processing", "payment_intent.processing"),  # older news, arriving late
        ("requires_payment_method", "payment_intent.payment_failed"),  # failed after succeeded
        ("succeeded", "payment_intent.succeeded"),  # a second event id about the same success
        ("canceled", "payment_intent.canceled"),
    ]:
        post(client, *signed(event_type, intent(payment, status)))
    queue.run_pending()
    assert len(applied()) == 5
    escrow = deal.reload()
    assert (escrow.status, escrow.held) == ("funded", EARNEST)
    assert len(deposits(deal)) == 1
    assert Payment.get_by_id(payment.id).status == "succeeded"
    assert Notification.select().where(Notification.type == "escrow.payment_failed").count() == 0
    assert_ledger_matches(deal)


def test_a_processing_deposit_may_still_fail_and_older_news_arriving_late_changes_nothing(client, deal, queue):
    payment = collect(deal)
    now = int(time.time())
    post(client, *signed("payment_intent.processing", intent(payment, "processing"), created=now - 20))
    queue.run_pending()
    assert Payment.get_by_id(payment.id).status == "processing"
    failed = intent(payment, "requires_payment_method", last_payment_error={"code": "debit_returned"})
    post(client, *signed("payment_intent.payment_failed", failed, created=now - 10))
    queue.run_pending()
    row = Payment.get_by_id(payment.id)
    assert (row.status, row.failure_code) == ("failed", "debit_returned")  # a bank debit returned
    # A processing event older than the failure, delivered late, is history: the deposit stays failed.
    post(client, *signed("payment_intent.processing", intent(payment, "processing"), created=now - 15))
    queue.run_pending()
    assert Payment.get_by_id(payment.id).status == "failed"
    assert deal.reload().status == "awaiting_deposit" and entries(deal) == []


def test_a_failed_deposit_tells_the_parties_and_a_later_success_still_funds(client, deal, queue):
    payment = collect(deal)
    failed = deliver(payment, "failed")
    assert failed.status == "succeeded"
    row = Payment.get_by_id(payment.id)
    assert (row.status, row.failure_code) == ("failed", "card_declined")
    assert Notification.select().where(Notification.type == "escrow.payment_failed").count() == 2
    assert deal.reload().status == "awaiting_deposit" and entries(deal) == []

    deliver(payment, "succeeded")  # the buyer tried another card
    assert deal.reload().status == "funded" and Payment.get_by_id(payment.id).status == "succeeded"
    assert_ledger_matches(deal)


def test_a_deposit_arriving_after_the_escrow_was_cancelled_is_posted_and_refunded_in_full(deal):
    payment = collect(deal)
    with db.atomic():
        cancel(lock(deal.escrow.id), actor_id=deal.buyer.id, reason="found another house", now=utcnow())
    job = deliver(payment, "succeeded")
    assert job.status == "succeeded", job.error
    escrow = deal.reload()
    assert (escrow.status, escrow.held) == ("cancelled", 0)
    assert "late_deposit_refunded" in [e.action for e in history_of(escrow.id)]
    refund = Payment.get(Payment.escrow == escrow.id, Payment.kind == "refund")
    assert (refund.status, refund.amount, refund.recipient_id) == ("succeeded", EARNEST, deal.buyer.id)
    [op] = [o for o in worker_runtime().payments.operations() if o["operation"] == "refund"]
    assert op["object"]["payment_intent"] == payment.provider_ref
    assert payable(deal.buyer) == 0 and account("provider:clearing:USD") == 0
    kinds = sorted(e[0] + ":" + e[1] for e in entries(deal))
    assert kinds == [
        "deposit:posted",
        "late_deposit_refund:posted",
        "provider_payment:pending",
        "provider_payment:post_pending",
    ]
    assert_ledger_matches(deal)


def test_a_refund_that_fails_later_is_owed_to_the_buyer_again_and_failed_for_admins(client, deal, queue):
    fund(deal)
    assert run(settle_by(deal, "refund")).status == "succeeded"
    refund = Payment.get(Payment.escrow == deal.escrow.id, Payment.kind == "refund")
    body, signature = signed(
        "refund.failed", {"id": refund.provider_ref, "object": "refund", "amount": EARNEST, "status": "failed"}
    )
    for _ in range(2):
        post(client, body, signature)
    queue.run_pending()
    assert len(applied()) == 2  # the deposit's event and this one, stored once
    row = Payment.get_by_id(refund.id)
    assert (row.status, row.failure_code) == ("failed", "refund.failed")
    assert payable(deal.buyer) == EARNEST and account("provider:clearing:USD") == -EARNEST
    assert [e for e in entries(deal) if e[0] == "provider_reversal"] == [
        ("provider_reversal", "posted", "provider:clearing:USD", f"user:{deal.buyer.id}:payable", EARNEST)
    ]
    assert "payment_reversed" in [e.action for e in history_of(deal.escrow.id)]
    assert_ledger_matches(deal)


def test_a_reversed_payout_is_owed_to_the_seller_again(client, deal, queue):
    fund(deal)
    assert run(settle_by(deal, "release")).status == "succeeded"
    payout = Payment.get(Payment.escrow == deal.escrow.id, Payment.kind == "payout")
    obj = {"id": payout.provider_ref, "object": "transfer", "amount": EARNEST, "reversed": True}
    post(client, *signed("transfer.reversed", obj))
    post(client, *signed("transfer.reversed", obj))  # a second event about the same reversal
    queue.run_pending()
    assert len(applied()) == 3  # the deposit's event and these two
    assert Payment.get_by_id(payout.id).status == "failed"
    assert payable(deal.seller) == EARNEST
    assert len([e for e in entries(deal) if e[0] == "provider_reversal"]) == 1
    assert_ledger_matches(deal)


def test_an_event_about_no_payment_of_ours_changes_nothing(client, deal, queue):
    post(client, *signed("payment_intent.succeeded", {"id": "pi_elsewhere", "object": "payment_intent"}))
    queue.run_pending()
    assert len(applied()) == 1
    [job] = Job.select().where(Job.kind == "payments.apply_event")
    assert (job.status, job.result) == ("succeeded", {"applied": False})
    assert payments_of(deal.escrow.id) == [] and entries(deal) == []
