"""The escrow's money jobs: collecting the deposit, release, refund and split on the ledger and at the provider.

Every step runs the real task; the ledger's invariants hold and the escrow's
account equals ``escrow.held`` after each one, and a job delivered again after
it finished changes nothing. The sandbox provider here; the Stripe backend
against the provider stub in the tests at the end.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from models.jobs import Job, JobEffect
from models.ledger import TransferSpec, transfer
from models.notifications import Notification
from models.payments import Payment, advance_by_id, payments_of
from models.properties import Property, PropertyHistory
from tasks.provider_payments import payment_row
from tasks.runtime import init_runtime
from tasks.runtime import runtime as worker_runtime
from tests.factories import make_user
from tests.providers import providers_url
from tests.tasks.money_rows import (
    EARNEST,
    StubStripe,
    account,
    assert_ledger_matches,
    collect,
    entries,
    fund,
    job_of,
    make_deal,
    payable,
    redeliver,
    run,
    settle_by,
    stripe_funded,
)


@pytest.fixture
def deal(runtime):
    return make_deal()


def sandbox():
    return worker_runtime().payments


def operations(kind: str) -> list[dict]:
    return [op for op in sandbox().operations() if op["operation"] == kind]


def clearing() -> int:
    return account("provider:clearing:USD")


def test_the_deposit_is_requested_once_and_its_secret_stays_on_the_payment(deal):
    payment = collect(deal)
    assert (payment.status, payment.amount, payment.provider) == ("pending", EARNEST, "sandbox")
    assert payment.provider_ref.startswith("pi_sandbox_") and payment.client_secret.startswith(payment.provider_ref)
    job = job_of("escrows.collect_deposit", deal.escrow)
    assert job.result["provider_ref"] == payment.provider_ref
    assert payment.client_secret not in str(job.result)  # never in the job (its events reach the relay)
    [op] = operations("create_deposit")
    assert op["idempotency_key"] == payment.idempotency_key == f"job:{job.id}:deposit"
    assert op["object"]["metadata"] == {"escrow_id": str(deal.escrow.id), "payment_id": str(payment.id)}

    again = redeliver(job)
    assert again.status == "succeeded"
    assert [p.id for p in payments_of(deal.escrow.id)] == [payment.id] and len(operations("create_deposit")) == 1


def test_an_unavailable_provider_retries_the_deposit_request_with_the_same_key(deal, queue):
    sandbox().program("create_deposit", "unavailable")
    job = run(job_of("escrows.collect_deposit", deal.escrow))
    assert job.status == "queued" and job.last_error["detail"] == "Transient"
    assert payments_of(deal.escrow.id) == []  # rolled back with the step
    assert queue.submitted == [str(job.id)]
    queue.run_pending()
    [payment] = payments_of(deal.escrow.id)
    assert payment.status == "pending" and payment.idempotency_key == f"job:{job.id}:deposit"
    assert len(operations("create_deposit")) == 1


def test_a_refused_deposit_request_fails_the_payment_and_tells_the_parties(deal):
    sandbox().program("create_deposit", "declined")
    job = run(job_of("escrows.collect_deposit", deal.escrow))
    assert job.status == "failed" and "refused" in job.error["detail"]
    [payment] = payments_of(deal.escrow.id)
    assert (payment.status, payment.failure_code) == ("failed", "sandbox_declined")
    told = {str(n.user_id) for n in Notification.select().where(Notification.type == "escrow.payment_failed")}
    assert told == {str(deal.buyer.id), str(deal.seller.id)}
    assert deal.reload().status == "awaiting_deposit"


def test_release_moves_the_deposit_to_the_seller_and_pays_it_out_once(deal):
    deposit = fund(deal)
    assert deal.escrow.held == EARNEST and deposit.status == "succeeded"
    assert_ledger_matches(deal)
    assert clearing() == -EARNEST  # the provider holds it for us

    job = run(settle_by(deal, "release"))
    assert job.status == "succeeded", job.error
    escrow = deal.reload()
    assert (escrow.status, escrow.held, escrow.settled_at is not None) == ("released", 0, True)
    assert_ledger_matches(deal)
    assert payable(deal.seller) == 0 and clearing() == 0  # owed, then paid out through the provider
    [payout] = [p for p in payments_of(escrow.id) if p.kind == "payout"]
    assert (payout.status, payout.amount, payout.recipient_id) == ("succeeded", EARNEST, deal.seller.id)
    [op] = operations("payout")
    assert op["idempotency_key"] == payout.idempotency_key == f"job:{job.id}:payout"
    assert op["object"]["destination"].startswith("acct_sandbox_") and op["object"]["amount"] == EARNEST
    seller = f"user:{deal.seller.id}:payable"
    assert entries(deal) == sorted(
        [
            ("deposit", "posted", "provider:clearing:USD", escrow.account_code, EARNEST),
            ("release_to_seller", "posted", escrow.account_code, seller, EARNEST),
            ("provider_payment", "pending", seller, "provider:clearing:USD", EARNEST),
            ("provider_payment", "post_pending", seller, "provider:clearing:USD", EARNEST),
        ]
    )
    assert Property.get_by_id(deal.listing.id).standard_status == "Closed"
    moves = (
        PropertyHistory.select(PropertyHistory.old_value, PropertyHistory.new_value)
        .where((PropertyHistory.property == deal.listing.id) & (PropertyHistory.field == "standard_status"))
        .order_by(PropertyHistory.id)
        .tuples()
    )
    assert list(moves)[-2:] == [("ActiveUnderContract", "Pending"), ("Pending", "Closed")]

    before = entries(deal)
    assert redeliver(job).status == "succeeded"
    assert entries(deal) == before and len(operations("payout")) == 1 and len(payments_of(escrow.id)) == 2
    assert_ledger_matches(deal)


def test_refund_moves_the_deposit_back_to_the_buyer_against_the_deposit(deal):
    deposit = fund(deal)
    job = run(settle_by(deal, "refund"))
    assert job.status == "succeeded", job.error
    escrow = deal.reload()
    assert (escrow.status, escrow.held) == ("refunded", 0)
    assert_ledger_matches(deal)
    assert payable(deal.buyer) == 0 and clearing() == 0
    [refund] = [p for p in payments_of(escrow.id) if p.kind == "refund"]
    assert (refund.status, refund.amount, refund.recipient_id) == ("succeeded", EARNEST, deal.buyer.id)
    [op] = operations("refund")
    assert op["object"]["payment_intent"] == deposit.provider_ref
    assert sandbox().payment_intent(deposit.provider_ref)["amount_refunded"] == EARNEST
    assert Property.get_by_id(deal.listing.id).standard_status == "Active"  # back on the market

    before = entries(deal)
    assert redeliver(job).status == "succeeded"
    assert entries(deal) == before and len(operations("refund")) == 1


@pytest.mark.parametrize(("to_buyer", "to_seller"), [(300_000, EARNEST - 300_000), (0, EARNEST)])
def test_an_admin_split_pays_each_side_its_share_and_skips_an_empty_one(deal, to_buyer, to_seller):
    fund(deal)
    admin = make_user(role="admin")
    job = run(settle_by(deal, "split", admin=admin, buyer=to_buyer, seller=to_seller))
    assert job.status == "succeeded", job.error
    escrow = deal.reload()
    assert (escrow.status, escrow.held) == ("resolved", 0)
    assert_ledger_matches(deal)
    moved = {e[0]: e[4] for e in entries(deal) if e[0].startswith("split_to_")}
    assert moved == {k: v for k, v in {"split_to_buyer": to_buyer, "split_to_seller": to_seller}.items() if v}
    paid = {p.kind: (p.amount, p.status) for p in payments_of(escrow.id) if p.kind != "deposit"}
    expected = {"refund": (to_buyer, "succeeded"), "payout": (to_seller, "succeeded")}
    assert paid == {kind: value for kind, value in expected.items() if value[0]}
    assert payable(deal.buyer) == payable(deal.seller) == clearing() == 0
    assert redeliver(job).status == "succeeded" and len(payments_of(escrow.id)) == 1 + len(paid)


def test_a_payout_that_fails_transiently_is_retried_with_the_same_key_and_paid_once(deal, queue):
    fund(deal)
    sandbox().program("payout", "unavailable", "unavailable")
    job = run(settle_by(deal, "release"))
    assert job.status == "queued" and queue.submitted[-1] == str(job.id)
    # The ledger step committed; the payout is reserved (its payment and pending transfer), not paid.
    assert deal.reload().status == "released" and payable(deal.seller) == EARNEST
    [reserved] = [p for p in payments_of(deal.escrow.id) if p.kind == "payout"]
    assert reserved.status == "pending" and operations("payout") == []
    assert [e[1] for e in entries(deal) if e[0] == "provider_payment"] == ["pending"]
    assert_ledger_matches(deal)
    queue.run_pending()
    assert Job.get_by_id(job.id).status == "succeeded"
    # The retries found the reservation: one payment, one pending transfer, posted once.
    [paid] = [p for p in payments_of(deal.escrow.id) if p.kind == "payout"]
    assert (paid.id, paid.status) == (reserved.id, "succeeded")
    assert sorted(e[1] for e in entries(deal) if e[0] == "provider_payment") == ["pending", "post_pending"]
    [op] = operations("payout")
    assert op["idempotency_key"] == f"job:{job.id}:payout"
    assert payable(deal.seller) == 0 and clearing() == 0
    assert_ledger_matches(deal)


def test_a_refused_ledger_step_reserves_nothing_and_leaves_the_escrow_funded(deal):
    fund(deal)
    job = settle_by(deal, "release")
    # The ledger account holds a cent less than the row says: the postings are refused, and the payout's
    # payment row and pending transfer, written in the same transaction, go with them.
    transfer(TransferSpec(uuid.uuid4(), deal.escrow.account_code, "provider:clearing:USD", 1, kind="test"))
    job = run(job)
    assert job.status == "failed"
    escrow = deal.reload()
    assert escrow.status == "funded" and [p.kind for p in payments_of(escrow.id)] == ["deposit"]
    assert [e[0] for e in entries(deal)] == ["deposit"] and operations("payout") == []
    assert JobEffect.get_or_none(JobEffect.key == f"job:{job.id}:ledger") is None
    assert Property.get_by_id(deal.listing.id).standard_status == "ActiveUnderContract"


def test_a_payment_row_is_written_once_and_advanced_by_its_id_only_forward(deal):
    pending = payment_row(deal.escrow, "payout", deal.seller.id, 100, "test:advance")
    again = payment_row(deal.escrow, "payout", deal.seller.id, 100, "test:advance")
    assert (pending.status, again.id, again.created_at) == ("pending", pending.id, pending.created_at)
    assert advance_by_id(pending.id, "processing", provider_ref="tr_1")
    assert not advance_by_id(pending.id, "pending", provider_ref="tr_2")  # backwards
    assert advance_by_id(pending.id, "succeeded", provider_ref="tr_1")
    assert not advance_by_id(pending.id, "failed", failure_code="late")  # succeeded is final
    row = Payment.get_by_id(pending.id)
    assert (row.status, row.provider_ref, row.failure_code) == ("succeeded", "tr_1", None)


def test_a_refused_payout_fails_visibly_posts_nothing_and_leaves_the_money_owed_to_the_seller(deal):
    fund(deal)
    sandbox().program("payout", "declined")
    job = run(settle_by(deal, "release"))
    assert job.status == "failed" and "refused the payout" in job.error["detail"]
    [payout] = [p for p in payments_of(deal.escrow.id) if p.kind == "payout"]
    assert (payout.status, payout.failure_code) == ("failed", "sandbox_declined")
    assert Payment.select().where(Payment.status == "failed").count() == 1  # what the admins' list shows
    # Released to the seller's payable account; the pending payout voided: nothing left the platform.
    assert deal.reload().status == "released" and payable(deal.seller) == EARNEST and clearing() == -EARNEST
    states = [e[1] for e in entries(deal) if e[0] == "provider_payment"]
    assert sorted(states) == ["pending", "void_pending"]
    assert operations("payout") == []
    assert_ledger_matches(deal)
    assert redeliver(job).status == "failed" and operations("payout") == []


# --- the Stripe backend, against the provider stub ------------------------------------------------


@pytest.fixture
def stripe_key():
    return "sk_test_" + uuid.uuid4().hex


@pytest.fixture
def stripe(settings, redis, queue, runtime, stripe_key):
    changed = dataclasses.replace(
        settings, payments_provider="stripe", stripe_api_key=stripe_key, stripe_api_url=providers_url()
    )
    init_runtime(changed, redis=redis, init_db=False, jobs=queue)
    return StubStripe(stripe_key)


def test_stripe_5xx_then_success_makes_exactly_one_transfer_under_one_key(deal, stripe, queue):
    stripe_funded(deal, stripe)
    stripe.program({"status": 503}, {"status": 500})
    job = run(settle_by(deal, "release"))
    assert job.status == "queued"
    queue.run_pending()  # the second attempt meets the 500 and is queued again
    queue.run_pending()
    assert Job.get_by_id(job.id).status == "succeeded"
    sent = stripe.requests("/v1/transfers")
    assert [r["status"] for r in sent] == [503, 500, 200]
    assert {r["headers"]["Idempotency-Key"] for r in sent} == {f"job:{job.id}:payout"}
    [transfer] = stripe.transfers()
    assert (transfer["amount"], transfer["currency"], transfer["transfer_group"]) == (
        EARNEST,
        "usd",
        f"escrow_{deal.escrow.id}",
    )
    [payout] = [p for p in payments_of(deal.escrow.id) if p.kind == "payout"]
    assert (payout.status, payout.provider_ref) == ("succeeded", transfer["id"])
    assert payable(deal.seller) == 0 and clearing() == 0
    assert_ledger_matches(deal)


def test_the_payout_goes_to_the_sellers_account_as_read_with_the_reservation(deal, stripe):
    stripe_funded(deal, stripe)
    job = run(settle_by(deal, "release"))
    assert job.status == "succeeded"
    [transfer] = stripe.transfers()
    assert (transfer["destination"], transfer["amount"]) == ("acct_1SellerTest", EARNEST)


def test_stripe_4xx_fails_the_payout_visibly_and_nothing_is_posted(deal, stripe):
    stripe_funded(deal, stripe)
    refusal = {"type": "invalid_request_error", "code": "account_invalid", "message": "No such destination"}
    stripe.program({"status": 400, "body": {"error": refusal}})
    job = run(settle_by(deal, "release"))
    assert job.status == "failed"
    [payout] = [p for p in payments_of(deal.escrow.id) if p.kind == "payout"]
    assert (payout.status, payout.failure_code) == ("failed", "account_invalid")
    assert stripe.transfers() == []
    assert payable(deal.seller) == EARNEST and clearing() == -EARNEST
    assert_ledger_matches(deal)


def test_stripe_refund_goes_against_the_deposit_intent(deal, stripe):
    deposit = stripe_funded(deal, stripe)
    assert run(settle_by(deal, "refund")).status == "succeeded"
    [sent] = stripe.requests("/v1/refunds")
    assert sent["form"]["payment_intent"] == deposit.provider_ref and sent["form"]["amount"] == str(EARNEST)
    [refund] = [p for p in payments_of(deal.escrow.id) if p.kind == "refund"]
    assert refund.status == "succeeded" and refund.provider_ref.startswith("re_")
    assert payable(deal.buyer) == 0 and clearing() == 0
    assert_ledger_matches(deal)
