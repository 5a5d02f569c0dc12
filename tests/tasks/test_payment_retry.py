"""An admin pays a refused payout again: ``POST /v1/admin/payments/{id}/retry`` and the ``payments.retry`` job.

The refused payout's money waits on the seller's payable account; the retry is a
new payment with its own idempotency key, made once however often its job runs,
and the refused one is then ``canceled`` (replaced). Only failed payouts and
refunds can be retried, one retry at a time.
"""

from __future__ import annotations

import pytest
from falcon import testing

from api.app import build_services, create_app
from models.escrows import history_of
from models.jobs import Job
from models.payments import Payment, payments_of
from tasks.runtime import runtime as worker_runtime
from tests.api.conftest import log_in
from tests.factories import make_user
from tests.tasks.money_rows import (
    EARNEST,
    assert_ledger_matches,
    entries,
    fund,
    make_deal,
    payable,
    redeliver,
    run,
    settle_by,
)


@pytest.fixture
def client(settings, redis, queue, runtime):
    services = build_services(settings, redis=redis, jobs=queue)
    return testing.TestClient(create_app(settings, services=services, init_db=False))


def headers(client, user) -> dict:
    tokens = log_in(client, worker_runtime().settings, user)  # admins through their second factor
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def payouts(deal) -> list[Payment]:
    return [p for p in payments_of(deal.escrow.id) if p.kind == "payout"]


@pytest.fixture
def refused(runtime):
    """A released escrow whose payout the provider refused."""
    deal = make_deal()
    fund(deal)
    worker_runtime().payments.program("payout", "declined")
    assert run(settle_by(deal, "release")).status == "failed"
    [payout] = payouts(deal)
    assert payout.status == "failed" and payable(deal.seller) == EARNEST
    return deal, payout


def test_a_refused_payout_is_paid_again_once_and_replaces_the_failed_one(client, refused):
    deal, payout = refused
    admin = make_user(role="admin")
    resp = client.simulate_post(f"/v1/admin/payments/{payout.id}/retry", headers=headers(client, admin))
    assert resp.status_code == 202, resp.text
    job = Job.get_by_id(resp.headers["location"].rsplit("/", 1)[1])
    assert (job.kind, job.queue, str(job.owner_id)) == ("payments.retry", "money", str(admin.id))
    # While it is queued, a second retry is refused.
    again = client.simulate_post(f"/v1/admin/payments/{payout.id}/retry", headers=headers(client, admin))
    assert again.status_code == 409 and again.json["type"].endswith("payment-retry-running"), again.text

    done = run(job)
    assert done.status == "succeeded", done.error
    old, new = sorted(payouts(deal), key=lambda p: p.id != payout.id)
    assert (old.id, old.status) == (payout.id, "canceled")
    assert new.status == "succeeded" and new.idempotency_key != old.idempotency_key
    assert payable(deal.seller) == 0
    posted = [e for e in entries(deal) if e[0] == "provider_payment" and e[1] == "post_pending"]
    assert len(posted) == 1
    sent = [op for op in worker_runtime().payments.operations() if op["operation"] == "payout"]
    assert len(sent) == 1
    assert "payment_retried" in [e.action for e in history_of(deal.escrow.id)]
    assert_ledger_matches(deal)

    # Delivered again, or retried again once it was replaced: nothing more is paid.
    assert redeliver(done).status == "succeeded"
    assert len([op for op in worker_runtime().payments.operations() if op["operation"] == "payout"]) == 1
    late = client.simulate_post(f"/v1/admin/payments/{payout.id}/retry", headers=headers(client, admin))
    assert late.status_code == 409 and late.json["type"].endswith("payment-not-retryable"), late.text


def test_only_admins_retry_and_only_failed_payouts_or_refunds(client, refused):
    deal, payout = refused
    seller = headers(client, deal.seller)
    assert client.simulate_post(f"/v1/admin/payments/{payout.id}/retry", headers=seller).status_code == 403
    admin = headers(client, make_user(role="admin"))
    [deposit] = [p for p in payments_of(deal.escrow.id) if p.kind == "deposit"]
    resp = client.simulate_post(f"/v1/admin/payments/{deposit.id}/retry", headers=admin)
    assert resp.status_code == 409, resp.text
    missing = client.simulate_post(f"/v1/admin/payments/{deal.escrow.id}/retry", headers=admin)
    assert missing.status_code == 404
    assert Job.select().where(Job.kind == "payments.retry").count() == 0


def test_an_admin_sets_a_sellers_payout_account(client, runtime):
    seller = make_user(role="seller")
    admin = headers(client, make_user(role="admin"))
    resp = client.simulate_get(f"/v1/admin/users/{seller.id}", headers=admin)
    assert resp.json["payout_account"] is None
    resp = client.simulate_patch(f"/v1/admin/users/{seller.id}", json={"payout_account": "acct_1Abc"}, headers=admin)
    assert resp.status_code == 200 and resp.json["payout_account"] == "acct_1Abc", resp.text
    bad = client.simulate_patch(f"/v1/admin/users/{seller.id}", json={"payout_account": "ba_123"}, headers=admin)
    assert bad.status_code == 422
