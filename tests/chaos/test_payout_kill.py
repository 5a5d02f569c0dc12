"""A worker killed with SIGKILL while the seller's payout is in flight: after recovery, one payout.

The provider stub holds the Stripe transfer request (``delay_seconds``); the
worker is killed while it waits. Its transaction (payment row, pending ledger
transfer, once record) dies with its connection; the job's lease runs out, the
sweep queues it again, and a new worker repeats the call with the same
Idempotency-Key, which the stub answers from what it stored: one transfer.
"""

from __future__ import annotations

import time
import uuid

import pytest

from models.jobs import Job
from models.ledger import check_invariants, entries_for_escrow
from models.payments import Payment
from tasks.runtime import init_runtime
from tests.api.conftest import RecordingJobQueue
from tests.chaos.conftest import Sweeper, wait_all
from tests.integration.processes import start_worker, wait_for
from tests.providers import providers_url
from tests.tasks.live import LiveBroker, live_settings
from tests.tasks.money_rows import StubStripe, make_deal, settle_by, stripe_funded

pytestmark = pytest.mark.integration
HOLD_SECONDS = 6


def test_kill9_during_the_payout_call_pays_the_seller_exactly_once(live_env, live_db, logs, procs):
    key = "sk_test_" + uuid.uuid4().hex
    env = {
        **live_env,
        "PAYMENTS_PROVIDER": "stripe",
        "STRIPE_API_KEY": key,
        "STRIPE_API_URL": providers_url(),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + uuid.uuid4().hex,
        "JOB_LEASE_SECONDS": "2",
        "JOB_REQUEUE_AFTER": "1",
    }
    # The escrow is funded here, in this process, through the same tasks and the same stub.
    init_runtime(live_settings(env), init_db=False, jobs=RecordingJobQueue())
    stripe = StubStripe(key)
    deal = make_deal()
    stripe_funded(deal, stripe)
    job = settle_by(deal, "release")

    stripe.program({"status": 200, "delay_seconds": HOLD_SECONDS})  # the transfer is held, then made
    worker = start_worker(env, logs, queues="money,maintenance", name="payer")
    procs.append(worker)
    broker = LiveBroker(env)
    broker.submit(job)
    broker.close()
    wait_for(lambda: stripe.requests("/v1/transfers"), timeout=30, what="the payout request at the stub")
    worker.kill9()
    killed_at = time.monotonic()
    assert Job.get_by_id(job.id).status == "running"
    # What the run committed before the call: the payment row and its pending transfer, nothing more.
    [reserved] = Payment.select().where(Payment.kind == "payout")
    assert reserved.status == "pending"
    assert [e["state"] for e in entries_for_escrow(deal.escrow.id) if e["kind"] == "provider_payment"] == ["pending"]

    procs.append(start_worker(env, logs, queues="money,maintenance", name="payer-2"))
    sweeper = Sweeper(env)
    done = wait_all(
        lambda: (lambda row: row if row.status in ("succeeded", "failed") else None)(Job.get_by_id(job.id)),
        sweeper,
        timeout=60,
        what="the settlement job to finish after the kill",
    )
    sweeper.close()
    print(f"\npayout kill -9: recovered in {time.monotonic() - killed_at:.1f} s, {done.attempts} attempts")
    assert (done.status, done.attempts) == ("succeeded", 2), done.error

    wait_for(lambda: all(r["status"] for r in stripe.requests("/v1/transfers")), timeout=30, what="held answers")
    sent = stripe.requests("/v1/transfers")
    assert len(sent) == 2 and {r["headers"]["Idempotency-Key"] for r in sent} == {f"job:{job.id}:payout"}
    [transfer] = stripe.transfers()  # the second request was answered from the first one's stored result
    [payout] = Payment.select().where(Payment.kind == "payout")
    assert (payout.status, payout.provider_ref, payout.amount) == ("succeeded", transfer["id"], transfer["amount"])
    posted = [e for e in entries_for_escrow(deal.escrow.id) if e["state"] == "post_pending"]
    assert len(posted) == 1 and posted[0]["amount"] == payout.amount
    assert check_invariants() == []
