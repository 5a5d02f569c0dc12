"""Escrows for the money task tests, made the way the application makes them: an offer, accepted.

``make_deal()`` gives an escrow awaiting its deposit (and its ``escrows.collect_deposit``
job); ``collect``, ``deliver``, ``fund``, ``settle_by`` drive it on through the real tasks.
Every step runs the task the job names, in this process and the test's transaction.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from dataclasses import dataclass

import httpx

from models.accounts import User
from models.base import utcnow
from models.db import db
from models.escrow_actions import dispute, instruct, resolve
from models.escrows import Escrow, lock
from models.jobs import Job
from models.ledger import AccountNotFound, balance, check_invariants, entries_for_escrow
from models.offer_acceptance import accept
from models.offer_rules import Contingency, OfferTerms
from models.offers import lock_listing, lock_offer, make_offer
from models.payment_events import PaymentEvent, record_payment_event
from models.payments import Payment
from models.properties import Property
from services.jobqueue import task_name
from services.payments import sign_event
from tasks.app import app as celery_app
from tasks.runtime import runtime
from tests.providers import providers_url
from tests.search_listings import make_listing, make_owner

celery_app.loader.import_default_modules()

EARNEST = 750_000


@dataclass
class Deal:
    escrow: Escrow
    buyer: User
    seller: User
    listing: Property

    def reload(self) -> Escrow:
        self.escrow = Escrow.get_by_id(self.escrow.id)
        return self.escrow


def make_deal(
    *, earnest: int = EARNEST, contingencies: tuple[Contingency, ...] = (), seller: User | None = None
) -> Deal:
    """An accepted cash offer's escrow, awaiting its deposit; a new seller unless ``seller`` is given."""
    seller, buyer = seller or make_owner("seller"), make_owner("buyer")
    listing = make_listing(seller, index=False)
    now = utcnow()
    terms = OfferTerms(
        price=30_000_000,
        earnest_money=earnest,
        financing="cash",
        closing_date=(now + datetime.timedelta(days=30)).date(),
        expires_at=now + datetime.timedelta(days=2),
        contingencies=contingencies,
    )
    with db.atomic():
        offer = make_offer(
            lock_listing(listing.id), author_id=buyer.id, buyer_id=buyer.id, buyer_agent_id=None, terms=terms
        )
        offer, locked = lock_offer(offer.id)
        accepted = accept(offer, locked, actor_id=seller.id, deposit_business_days=3)
    return Deal(accepted.escrow, buyer, seller, Property.get_by_id(listing.id))


def run(job: Job) -> Job:
    """Run the job's task (a delivery of its message) and return the row afterwards."""
    celery_app.tasks[task_name(job.kind)](str(job.id))
    return Job.get_by_id(job.id)


def redeliver(job: Job) -> Job:
    """The job's message delivered again after the job was put back in the queue (a recovered worker)."""
    Job.update(status="queued", lease_expires_at=None, finished_at=None).where(Job.id == job.id).execute()
    return run(job)


def job_of(kind: str, escrow: Escrow) -> Job:
    return Job.get(Job.kind == kind, Job.input["escrow_id"] == str(escrow.id))


def collect(deal: Deal) -> Payment:
    """Run the escrow's ``escrows.collect_deposit`` job; the deposit payment it made."""
    job = run(job_of("escrows.collect_deposit", deal.escrow))
    assert job.status == "succeeded", (job.status, job.error)
    return Payment.get(Payment.escrow == deal.escrow.id, Payment.kind == "deposit")


def record_event(body: bytes, signature: str) -> Job | None:
    """What ``POST /v1/webhooks/stripe`` does with a delivery: verify, store once, create the job."""
    event = runtime().payments.parse_webhook(body, signature, now=time.time())
    received = record_payment_event(
        event_id=event.id,
        event_type=event.type,
        object_type=event.object_type,
        object_id=event.object_id,
        created=event.created,
        payload=event.payload,
    )
    return received.job


def deliver(payment: Payment, outcome: str) -> Job:
    """The sandbox completes the deposit with ``outcome``; its webhook is recorded and the job run."""
    body, signature = runtime().payments.sandbox_event(payment.provider_ref, outcome)
    job = record_event(body, signature)
    if job is None:  # a delivery of an event stored before
        job = Job.get_by_id(PaymentEvent.get_by_id(_event_id(body)).job_id)
        return job
    return run(job)


def _event_id(body: bytes) -> str:
    return json.loads(body)["id"]


def fund(deal: Deal) -> Payment:
    payment = collect(deal)
    job = deliver(payment, "succeeded")
    assert job.status == "succeeded", (job.status, job.error)
    assert deal.reload().status == "funded"
    return Payment.get_by_id(payment.id)


def settle_by(deal: Deal, action: str, *, admin: User | None = None, buyer: int = 0, seller: int = 0) -> Job:
    """Both sides instruct ``action`` (release, refund), or (``split``) a dispute an admin resolves; the job."""
    now = utcnow()
    with db.atomic():
        escrow = lock(deal.escrow.id)
        if action == "split":
            dispute(escrow, actor_id=deal.buyer.id, reason="the inspection report was hidden", now=now)
            job = resolve(escrow, admin_id=admin.id, buyer=buyer, seller=seller, reason="half each", now=now)
        else:
            instruct(escrow, action, actor_id=deal.buyer.id, now=now)
            job = instruct(escrow, action, actor_id=deal.seller.id, now=now)
    assert job is not None and job.kind == "escrows.settle"
    return job


def account(code: str) -> int:
    """An account's credit balance (credits posted - debits posted); 0 when it was never opened."""
    try:
        return balance(code).credit_balance
    except AccountNotFound:
        return 0


def payable(user: User) -> int:
    return account(f"user:{user.id}:payable")


def assert_ledger_matches(deal: Deal) -> None:
    """The ledger's invariants hold and the escrow's account holds exactly what its row says."""
    assert check_invariants() == []
    assert account(deal.escrow.account_code) == deal.reload().held


def entries(deal: Deal) -> list[tuple]:
    return sorted(
        (e["kind"], e["state"], e["debit"], e["credit"], e["amount"]) for e in entries_for_escrow(deal.escrow.id)
    )


class StubStripe:
    """One test's Stripe at the provider stub (its namespace is the API key): script answers, read requests."""

    def __init__(self, key: str):
        self.key = key
        self.http = httpx.Client(base_url=providers_url(), timeout=10)

    def program(self, *responses: dict) -> None:
        self.http.post("/_program", json={"ns": self.key, "responses": list(responses)}).raise_for_status()

    def requests(self, path: str) -> list[dict]:
        recorded = self.http.get("/_recorded", params={"ns": self.key}).json()
        return [r for r in recorded if r["method"] == "POST" and r["path"] == path]

    def transfers(self) -> list[dict]:
        return self.http.get("/v1/transfers", headers={"Authorization": f"Bearer {self.key}"}).json()["data"]


def stripe_funded(deal: Deal, stripe: StubStripe) -> Payment:
    """A deposit collected through the stub and reported succeeded by a signed webhook; a seller with an account."""
    User.update(payout_account="acct_1SellerTest").where(User.id == deal.seller.id).execute()
    payment = collect(deal)
    assert payment.provider_ref.startswith("pi_") and payment.provider == "stripe"
    [create] = stripe.requests("/v1/payment_intents")
    assert create["headers"]["Idempotency-Key"] == payment.idempotency_key
    now = int(time.time())
    intent = {"id": payment.provider_ref, "object": "payment_intent", "amount": payment.amount, "status": "succeeded"}
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "payment_intent.succeeded", "created": now}
    body = json.dumps(dict(event, data={"object": intent})).encode()
    job = record_event(body, sign_event(body, runtime().settings.stripe_webhook_secret, now))
    assert run(job).status == "succeeded"
    assert deal.reload().status == "funded"
    return Payment.get_by_id(payment.id)
