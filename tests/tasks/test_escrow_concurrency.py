"""Escrow money work from several workers at once, each on its own database connection, committing for real.

Two workers running one settlement job, two settlements paying one seller,
one deposit webhook applied by several workers, both sides instructing at the
same instant: each ends with one payout, one set of postings, one job, and the
invariants of ``tests/tasks/escrow_invariants.py``. And the deadline sweep
lapsing a contingency while the buyer removes it (both finish, no deadlock),
or cancelling an escrow while its deposit arrives (held, or refunded in full).

The rows are committed (the other connections must see them), so no database
work here runs in the test's rolled-back transaction: every call runs in a
thread of its own, and the tables are emptied afterwards with TRUNCATE (the
ledger's immutability trigger, a row trigger, does not block it).
"""

from __future__ import annotations

import datetime
import json
import threading
import time
import uuid

import pytest

from models.base import utcnow
from models.db import db
from models.escrow_actions import cancel, instruct, remove_contingency
from models.escrow_rules import EscrowConflict, EscrowError
from models.escrows import Escrow, EscrowContingency, EscrowInstruction, contingencies_of, history_of, lock
from models.jobs import Job
from models.ledger import LedgerError, entries_for_escrow
from models.money_deadlines import enforce
from models.offer_rules import Contingency
from models.payment_events import PaymentEvent
from models.payments import Payment
from services.jobqueue import task_name
from services.payments import sign_event
from tasks.base import JobContext
from tasks.escrows import ENDS
from tasks.runtime import runtime
from tests.factories import make_user
from tests.search_listings import make_owner
from tests.tasks.escrow_invariants import assert_escrow_invariants
from tests.tasks.money_rows import EARNEST, celery_app, collect, fund, make_deal, payable, record_event, settle_by

pytestmark = pytest.mark.usefixtures("runtime")

CLEANUP = (
    "TRUNCATE users, jobs, job_effects, payment_events, ledger_transfers, ledger_accounts, search_dirty, "
    "property_search CASCADE"
)


class Crashed:
    def __init__(self, error: BaseException):
        self.error = error


def race(fns, *, atomic: bool = True) -> list:
    """Start every ``fn`` at once, each in its own thread and connection; their results.

    With ``atomic`` each runs in a transaction that commits; without, it runs as
    a worker runs a task (the task commits its own steps). An ``EscrowError`` or
    a ``LedgerError`` is returned as the result; any other error fails the test.
    """
    barrier = threading.Barrier(len(fns))
    results: list = [None] * len(fns)

    def run(index, fn):
        try:
            with db.connection_context():
                barrier.wait(timeout=30)
                if atomic:
                    with db.atomic():
                        results[index] = fn()
                else:
                    results[index] = fn()
        except (EscrowError, LedgerError) as exc:
            results[index] = exc
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread, which fails on it
            results[index] = Crashed(exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    crashed = [r.error for r in results if isinstance(r, Crashed)]
    if crashed:
        raise crashed[0]
    return results


def committed(fn, *, atomic: bool = True):
    """Run ``fn()`` on a connection of its own (see ``race``); its result."""
    return race([fn], atomic=atomic)[0]


@pytest.fixture(autouse=True)
def empty_tables_afterwards():
    yield
    committed(lambda: db.execute_sql(CLEANUP))


def task(kind: str):
    return celery_app.tasks[task_name(kind)]


def worker_runs(job_id) -> None:
    """A worker delivered the job's message: it claims the job (or finds nothing to claim) and runs it."""
    task(Job.get_by_id(job_id).kind)(str(job_id))


def stale_worker_runs(job_id) -> None:
    """A worker that still believes it owns the job (its lease ran out meanwhile) runs the job's steps."""
    job = Job.get_by_id(job_id)
    task(job.kind).run(JobContext(job, 60))


def funded_deal(**terms):
    def make():
        deal = make_deal(**terms)
        fund(deal)
        return deal

    return committed(make, atomic=False)


def sandbox_operations(kind: str, escrow_ids) -> list[dict]:
    ours = {str(i) for i in escrow_ids}
    return [
        op
        for op in runtime().payments.operations()
        if op["operation"] == kind and op["object"]["metadata"]["escrow_id"] in ours
    ]


def check(escrow_ids) -> None:
    committed(lambda: assert_escrow_invariants(escrow_ids))


@pytest.mark.parametrize("action", ["release", "refund", "split"])
def test_one_settlement_job_run_by_several_workers_at_once_pays_once(action):
    deal = funded_deal()
    admin = committed(lambda: make_user(role="admin"))
    split = {"buyer": EARNEST // 3, "seller": EARNEST - EARNEST // 3} if action == "split" else {}
    job = committed(lambda: settle_by(deal, action, admin=admin, **split))

    race([lambda: worker_runs(job.id)] * 2 + [lambda: stale_worker_runs(job.id)] * 2, atomic=False)

    def outcome():
        escrow = Escrow.get_by_id(deal.escrow.id)
        sent = Payment.select().where((Payment.escrow == escrow.id) & (Payment.kind != "deposit"))
        kinds = sorted(e["kind"] for e in entries_for_escrow(escrow.id))
        return Job.get_by_id(job.id).status, escrow.status, sorted((p.kind, p.amount, p.status) for p in sent), kinds

    status, escrow_status, sent, kinds = committed(outcome)
    expected = {
        "release": [("payout", EARNEST, "succeeded")],
        "refund": [("refund", EARNEST, "succeeded")],
        "split": [("payout", split.get("seller"), "succeeded"), ("refund", split.get("buyer"), "succeeded")],
    }[action]
    assert (status, escrow_status, sent) == ("succeeded", ENDS[action], expected)
    legs = len(expected)
    assert kinds.count("deposit") == 1 and kinds.count("provider_payment") == 2 * legs  # pending + its posting
    assert len([k for k in kinds if k.startswith(f"{action}_to_")]) == legs
    operations = sandbox_operations("payout", [deal.escrow.id]) + sandbox_operations("refund", [deal.escrow.id])
    assert len(operations) == legs
    check([deal.escrow.id])


def test_settlements_of_several_escrows_paying_one_seller_at_once_are_all_posted():
    seller = committed(lambda: make_owner("seller"))
    deals = [funded_deal(seller=seller) for _ in range(3)]
    jobs = [committed(lambda deal=deal: settle_by(deal, "release")) for deal in deals]
    seen: list[int] = []
    done = threading.Event()

    def watch_the_sellers_account():
        while not done.is_set():
            seen.append(payable(seller))
        return True

    watcher = threading.Thread(target=lambda: committed(watch_the_sellers_account, atomic=False))
    watcher.start()
    try:
        race([lambda job=job: worker_runs(job.id) for job in jobs], atomic=False)
    finally:
        done.set()
        watcher.join(timeout=60)

    assert seen and all(0 <= owed <= 3 * EARNEST for owed in seen)
    ids = [deal.escrow.id for deal in deals]

    def outcome():
        pairs = zip(jobs, ids, strict=True)
        statuses = sorted((Job.get_by_id(job.id).status, Escrow.get_by_id(i).status) for job, i in pairs)
        payouts = Payment.select().where((Payment.recipient == seller.id) & (Payment.kind == "payout"))
        return statuses, sorted((p.escrow_id, p.amount, p.status) for p in payouts), payable(seller)

    statuses, payouts, owed = committed(outcome)
    assert statuses == [("succeeded", "released")] * 3
    assert payouts == sorted((i, EARNEST, "succeeded") for i in ids) and owed == 0
    assert len(sandbox_operations("payout", ids)) == 3
    check(ids)


def duplicate_success_event(payment: Payment) -> tuple[bytes, str]:
    """A second ``payment_intent.succeeded`` about the same deposit, with an event id of its own."""
    intent = {"id": payment.provider_ref, "object": "payment_intent", "amount": payment.amount, "status": "succeeded"}
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "payment_intent.succeeded"}
    body = json.dumps(dict(event, created=int(time.time()), data={"object": intent})).encode()
    return body, sign_event(body, runtime().settings.stripe_webhook_secret, int(time.time()))


def test_one_deposit_reported_to_several_workers_at_once_funds_the_escrow_once():
    deal = committed(make_deal)
    payment = committed(lambda: collect(deal), atomic=False)
    deliveries = [runtime().payments.sandbox_event(payment.provider_ref, "succeeded"), duplicate_success_event(payment)]

    def deliver_and_apply(body, signature):
        job = record_event(body, signature)
        event_id = json.loads(body)["id"]
        if job is None:  # another worker stored it first
            job = Job.get_by_id(PaymentEvent.get_by_id(event_id).job_id)
        worker_runs(job.id)
        stale_worker_runs(job.id)

    race([lambda d=d: deliver_and_apply(*d) for d in deliveries * 3], atomic=False)

    def outcome():
        escrow = Escrow.get_by_id(deal.escrow.id)
        deposits = [e for e in entries_for_escrow(escrow.id) if e["kind"] == "deposit"]
        funded = [e for e in history_of(escrow.id) if e.action == "funded"]
        events = PaymentEvent.select().where(PaymentEvent.object_id == payment.provider_ref).count()
        jobs = [Job.get_by_id(e.job_id).status for e in PaymentEvent.select()]
        return escrow.status, escrow.held, len(deposits), len(funded), events, sorted(jobs)

    status, held, deposits, funded, events, jobs = committed(outcome)
    assert (status, held, deposits, funded) == ("funded", EARNEST, 1, 1)
    assert events == 2 and jobs == ["succeeded", "succeeded"]
    assert committed(lambda: Payment.get_by_id(payment.id).status) == "succeeded"
    check([deal.escrow.id])


def both_sides_instruct_at_once(deal) -> Job:
    """Buyer and seller, twice each, instruct a release at the same instant; the one settlement job made."""
    now = utcnow()

    def give(user):
        return instruct(lock(deal.escrow.id), "release", actor_id=user.id, now=now)

    results = race([lambda: give(deal.buyer), lambda: give(deal.seller)] * 2)
    made = [r for r in results if isinstance(r, Job)]
    assert len(made) == 1 and made[0].kind == "escrows.settle", results
    # The others found the other side missing (None) or the settlement already under way (a conflict).
    assert all(r is None or isinstance(r, EscrowError) for r in results if r is not made[0])

    def outcome():
        jobs = Job.select().where((Job.kind == "escrows.settle") & (Job.input["escrow_id"] == str(deal.escrow.id)))
        sides = EscrowInstruction.select().where(EscrowInstruction.escrow == deal.escrow.id)
        return [j.id for j in jobs], sorted((i.action, i.side) for i in sides), deal.reload().settlement

    jobs, sides, settlement = committed(outcome)
    assert jobs == [made[0].id] and settlement == "release"
    assert sides == [("release", "buyer"), ("release", "listing")]
    return made[0]


def test_both_sides_instructing_a_release_at_the_same_instant_make_one_settlement_job():
    deals = [funded_deal() for _ in range(3)]
    for deal in deals:
        job = both_sides_instruct_at_once(deal)
        committed(lambda job=job: worker_runs(job.id), atomic=False)
    ids = [deal.escrow.id for deal in deals]
    assert committed(lambda: sorted(Escrow.get_by_id(i).status for i in ids)) == ["released"] * 3
    assert len(sandbox_operations("payout", ids)) == 3
    check(ids)


def test_the_deadline_sweep_and_the_buyer_closing_the_same_contingency_at_once_both_finish():
    deal = committed(lambda: make_deal(contingencies=(Contingency("inspection", 1),)))
    later = utcnow() + datetime.timedelta(days=2)
    held = threading.Event()

    def buyer_removes():
        with db.atomic():  # as the API does: the escrow locked, then the change
            escrow = lock(deal.escrow.id)
            held.set()
            time.sleep(0.5)  # the sweep meanwhile reaches the same escrow and contingency
            return remove_contingency(escrow, "inspection", actor_id=deal.buyer.id, now=utcnow())

    def sweep():
        held.wait(timeout=10)
        return enforce(later)

    removed, swept = race([buyer_removes, sweep], atomic=False)
    assert isinstance(removed, (EscrowContingency, EscrowConflict)), removed
    assert isinstance(swept, dict), swept
    [contingency] = committed(lambda: contingencies_of(deal.escrow.id))
    assert contingency.status in ("removed", "lapsed")
    assert committed(lambda: deal.reload().hard_at) is not None
    check([deal.escrow.id])


def test_a_deposit_arriving_as_its_deadline_passes_and_the_buyer_cancels_is_held_or_refunded_in_full():
    for _ in range(3):
        deal = committed(make_deal)
        payment = committed(lambda deal=deal: collect(deal), atomic=False)
        body, signature = runtime().payments.sandbox_event(payment.provider_ref, "succeeded")
        overdue = deal.escrow.deposit_due_at + datetime.timedelta(hours=1)

        def deposit_arrives(body=body, signature=signature):
            worker_runs(record_event(body, signature).id)

        def buyer_cancels(deal=deal):
            with db.atomic():
                return cancel(lock(deal.escrow.id), actor_id=deal.buyer.id, reason="too slow", now=utcnow())

        race([deposit_arrives, lambda overdue=overdue: enforce(overdue), buyer_cancels], atomic=False)

        def outcome(deal=deal):
            escrow = Escrow.get_by_id(deal.escrow.id)
            refunds = Payment.select().where((Payment.escrow == escrow.id) & (Payment.kind == "refund"))
            return escrow.status, escrow.held, sorted((p.amount, p.status) for p in refunds), payable(deal.buyer)

        assert committed(outcome) in (
            ("funded", EARNEST, [], 0),  # the money came first: held; the deadline and the cancel came too late
            ("cancelled", 0, [(EARNEST, "succeeded")], 0),  # cancelled first: the late deposit went straight back
        )
        check([deal.escrow.id])


def test_a_payout_held_at_the_provider_does_not_hold_up_another_escrows_deposit(monkeypatch):
    # Every payment goes through the provider's clearing account: a lock on it across a slow provider call
    # would stall every deposit and payout of the platform. While one payout call hangs, another escrow's
    # deposit is funded at once.
    paying, deal = funded_deal(), committed(make_deal, atomic=False)
    deposit = committed(lambda: collect(deal), atomic=False)
    job = committed(lambda: settle_by(paying, "release"))
    provider = runtime().payments
    in_call, release = threading.Event(), threading.Event()
    real_payout = provider.payout

    def slow_payout(**kwargs):
        in_call.set()
        assert release.wait(timeout=60)
        return real_payout(**kwargs)

    monkeypatch.setattr(provider, "payout", slow_payout)
    payer = threading.Thread(target=lambda: committed(lambda: worker_runs(job.id), atomic=False))
    payer.start()
    try:
        assert in_call.wait(timeout=30), "the payout call never started"
        body, signature = provider.sandbox_event(deposit.provider_ref, "succeeded")
        started = time.monotonic()
        applied = committed(lambda: worker_runs(record_event(body, signature).id), atomic=False)
        waited = time.monotonic() - started
        assert applied is None and committed(lambda: Escrow.get_by_id(deal.escrow.id).status) == "funded"
        assert waited < 10, f"the deposit waited {waited:.1f} s for the payout call"
        assert committed(lambda: Job.get_by_id(job.id).status) == "running"  # still in the provider's hands
    finally:
        release.set()
        payer.join(timeout=60)
    assert committed(lambda: Job.get_by_id(job.id).status) == "succeeded"
    check([paying.escrow.id, deal.escrow.id])
