"""Any order of what parties, admins, the provider, the workers and the clock do keeps every escrow's money right.

A hypothesis state machine over a few escrows made the application's way (an
offer, accepted): it collects deposits, delivers provider webhooks (again, out
of order, failed first), removes contingencies, cancels, instructs, disputes
and resolves, runs and redelivers the settlement jobs, replays their once
steps and ledger postings, scripts the sandbox to be unavailable or to
decline, and moves a frozen clock through ``models.money_deadlines.enforce``.
A small model in Python says what each step must do to the escrow; after every
step ``tests/tasks/escrow_invariants.py`` checks the books, and each escrow's
money is accounted for: what arrived is held, owed on a payable account, or
sent out, and nothing else.

Each example runs in a savepoint of the test's transaction, rolled back at its
end, so every example starts from clean tables; the sandbox's scripts are
cleared and its operations read only for the example's escrows.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
import uuid

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from models import ledger
from models.base import utcnow
from models.db import db
from models.escrow_actions import cancel, dispute, instruct, remove_contingency, resolve
from models.escrow_rules import EscrowConflict, InvalidSplit, can_transition
from models.escrows import Escrow, contingencies_of, lock
from models.jobs import Job, JobEffect
from models.ledger import TransferSpec
from models.money_deadlines import enforce
from models.offer_rules import CONTINGENCY_KINDS, Contingency
from models.payment_events import PaymentEvent
from models.payments import Payment
from services.payments import ProviderRejected, sign_event
from tasks.base import JobContext
from tasks.escrows import ENDS
from tasks.runtime import runtime
from tests.factories import make_user
from tests.tasks.escrow_invariants import SENT, assert_escrow_invariants, deposit_arrived
from tests.tasks.money_rows import Deal, job_of, make_deal, payable, record_event, redeliver, run

OPEN_INTENT = ("requires_payment_method", "processing")
# What the provider reports about a deposit; success most often, so that escrows get funded.
OUTCOMES = ("succeeded", "succeeded", "succeeded", "succeeded_again", "failed", "canceled", "processing")
INTENT_AFTER = {"succeeded": "succeeded", "failed": "requires_payment_method", "canceled": "canceled"}
SCRIPTS = ("create_deposit", "refund", "payout")
# The deals are cash offers, which have no financing contingency.
KINDS = tuple(kind for kind in CONTINGENCY_KINDS if kind != "financing")
DEAL_TERMS = (
    st.lists(st.sampled_from(KINDS), unique=True, max_size=2),
    st.integers(1, 6),
    st.sampled_from([1, 999, 750_000]),
)


DATA = object()  # an action's parameter that receives hypothesis's ``data`` to draw from
ACTIONS: dict[str, tuple] = {}


def action(enabled, weight=1, **strategies):
    """One thing that may happen next, when ``enabled(machine)``, ``weight`` times as likely as most;
    its parameters are drawn from ``strategies``.

    The machine has a single rule that picks among the actions, rather than a
    rule per action: hypothesis turns whole rules off for some examples, and an
    escrow reaches its payouts only through a chain of actions (fund, instruct,
    settle) that must all be on.
    """

    def register(fn):
        ACTIONS[fn.__name__] = (fn, enabled or (lambda machine: True), weight, strategies)
        return fn

    return register


class _EndOfExample(Exception):
    """Leaves an example's savepoint by rolling it back."""


@dataclasses.dataclass
class Model:
    """What one escrow should be, by the rules, after the steps so far."""

    deal: Deal
    contingencies: dict[str, list]  # kind -> [ends_at, status]
    status: str = "awaiting_deposit"
    settlement: str | None = None
    sides: dict[str, set] = dataclasses.field(default_factory=lambda: {"release": set(), "refund": set()})
    payment: Payment | None = None
    intent: str = "requires_payment_method"  # the sandbox PaymentIntent's status
    events_made: set = dataclasses.field(default_factory=set)
    deposit_in: bool = False

    @property
    def id(self):
        return self.deal.escrow.id

    @property
    def hard(self) -> bool:
        return all(status != "open" for _, status in self.contingencies.values())

    def actor(self, side: str):
        return self.deal.buyer.id if side == "buyer" else self.deal.seller.id


def sandbox():
    return runtime().payments


def clear_scripts() -> None:
    provider = sandbox()
    provider.redis.delete(*(f"{provider._prefix}script:{operation}" for operation in SCRIPTS))


def provider_event(payment: Payment, event_type: str, status: str, event_id: str) -> tuple[bytes, str]:
    """A signed webhook about the deposit the sandbox does not send itself: ``payment_intent.processing``,
    or a second ``payment_intent.succeeded`` with an id of its own (the provider reporting one success twice)."""
    intent = {"id": payment.provider_ref, "object": "payment_intent", "amount": payment.amount, "status": status}
    event = {"id": event_id, "object": "event", "type": event_type, "created": int(time.time())}
    body = json.dumps(dict(event, data={"object": intent})).encode()
    return body, sign_event(body, runtime().settings.stripe_webhook_secret, int(time.time()))


def replay_entry(entry: dict) -> ledger.Transfer:
    """Post one of the ledger's transfers again, exactly as it was: a replay, which must write nothing."""
    transfer_id = uuid.UUID(entry["id"])
    if entry["state"] == "post_pending":
        return ledger.post_pending(transfer_id, uuid.UUID(entry["pending_id"]), amount=entry["amount"])
    if entry["state"] == "void_pending":
        return ledger.void_pending(transfer_id, uuid.UUID(entry["pending_id"]))
    spec = TransferSpec(
        id=transfer_id,
        debit=entry["debit"],
        credit=entry["credit"],
        amount=entry["amount"],
        currency=entry["currency"],
        kind=entry["kind"],
        escrow_id=uuid.UUID(entry["escrow_id"]),
        memo=entry["memo"],
        pending=entry["state"] == "pending",
    )
    return ledger.transfer(spec)


class EscrowMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.block = db.atomic()
        self.block.__enter__()
        clear_scripts()
        self.models: list[Model] = []
        self.admin = make_user(role="admin")
        self.now = utcnow()
        self.seen: dict = {}

    def teardown(self):
        clear_scripts()
        self.block.__exit__(_EndOfExample, _EndOfExample(), None)

    # --- helpers -------------------------------------------------------------------------------

    def _pick(self, data, models=None) -> Model:
        return data.draw(st.sampled_from(models if models is not None else self.models), label="escrow")

    @staticmethod
    def _act(m: Model, action, error=None):
        """Run ``action(escrow)`` on the locked escrow in a savepoint, as a request does; expect ``error`` or not."""
        if error is None:
            with db.atomic():
                return action(lock(m.id))
        with pytest.raises(error), db.atomic():
            action(lock(m.id))
        return None

    def _settle_job(self, m: Model) -> Job | None:
        return Job.get_or_none((Job.kind == "escrows.settle") & (Job.input["escrow_id"] == str(m.id)))

    def _apply(self, m: Model, body: bytes, signature: str, outcome: str) -> Job:
        before = Escrow.get_by_id(m.id).status
        job = record_event(body, signature)
        if job is None:  # the same event again: stored once, nothing runs
            return Job.get_by_id(PaymentEvent.get_by_id(json.loads(body)["id"]).job_id)
        job = run(job)
        if outcome in ("succeeded", "succeeded_again") and not m.deposit_in:
            m.deposit_in = True
            if before == "awaiting_deposit":
                m.status = "funded"
        return job

    # --- what happens to escrows ---------------------------------------------------------------

    def _open(self, kinds, days, earnest) -> Model:
        deal = make_deal(earnest=earnest, contingencies=tuple(Contingency(kind, days) for kind in kinds))
        rows = {c.kind: [c.ends_at, c.status] for c in contingencies_of(deal.escrow.id)}
        assert set(rows) == set(kinds)
        self.models.append(Model(deal, rows))
        return self.models[-1]

    @initialize(data=st.data(), deals=st.integers(1, 2))
    def open_deals(self, data, deals):
        # Some escrows start further along, so that short examples reach settlements and their payouts.
        for _ in range(deals):
            m = self._open(*(data.draw(strategy) for strategy in DEAL_TERMS))
            stage = data.draw(st.sampled_from(["awaiting", "collected", "funded", "funded", "settling"]), label="stage")
            if stage != "awaiting":
                self._collect(m, again=False)
            if stage in ("funded", "settling"):
                self._deliver(m, "succeeded", twice=False)
            if stage == "settling":
                how = data.draw(st.sampled_from(["release", "refund", "split"]), label="settlement")
                if how == "split":
                    self.open_dispute(data, "buyer", m)
                    self.admin_resolves(data, valid=True, wrong="more", m=m)
                else:
                    self.instruct(data, how, ("buyer", "listing"), m)
                assert m.settlement == how

    @action(lambda self: len(self.models) < 3, kinds=DEAL_TERMS[0], days=DEAL_TERMS[1], earnest=DEAL_TERMS[2])
    def open_deal(self, kinds, days, earnest):
        self._open(kinds, days, earnest)

    @action(lambda self: self.models, data=DATA, again=st.booleans())
    def collect_deposit(self, data, again):
        self._collect(self._pick(data), again)

    def _collect(self, m: Model, again: bool) -> None:
        job = job_of("escrows.collect_deposit", m.deal.escrow)
        first = job.status == "queued"
        status = Escrow.get_by_id(m.id).status
        job = redeliver(job) if again else run(job)
        assert job.status == "succeeded", (job.status, job.error)
        deposits = list(Payment.select().where((Payment.escrow == m.id) & (Payment.kind == "deposit")))
        if first and status == "awaiting_deposit":
            [m.payment] = deposits
            assert m.payment.provider_ref.startswith("pi_sandbox_") and m.payment.amount == m.deal.escrow.amount
        assert [p.id for p in deposits] == ([m.payment.id] if m.payment else [])

    @action(
        lambda self: any(m.payment for m in self.models),
        data=DATA,
        outcome=st.sampled_from(OUTCOMES),
        twice=st.booleans(),
    )
    def deliver_webhook(self, data, outcome, twice):
        self._deliver(self._pick(data, [m for m in self.models if m.payment]), outcome, twice)

    def _deliver(self, m: Model, outcome: str, twice: bool) -> None:
        if outcome == "processing":
            body, signature = provider_event(
                m.payment, "payment_intent.processing", "processing", f"evt_processing_{m.payment.provider_ref}"
            )
        elif outcome == "succeeded_again":
            if m.intent != "succeeded":
                return
            body, signature = provider_event(
                m.payment, "payment_intent.succeeded", "succeeded", f"evt_again_{uuid.uuid4().hex}"
            )
        else:
            fresh = outcome not in m.events_made
            if fresh and m.intent not in OPEN_INTENT:
                with pytest.raises(ProviderRejected):
                    sandbox().sandbox_event(m.payment.provider_ref, outcome)
                return
            body, signature = sandbox().sandbox_event(m.payment.provider_ref, outcome)
            m.events_made.add(outcome)
            if fresh:
                m.intent = INTENT_AFTER[outcome]
        job = self._apply(m, body, signature, outcome)
        assert job.status in ("succeeded", "queued", "failed"), job.status
        if twice:
            self._apply(m, body, signature, outcome)
            if job.status != "queued":
                held, ledger_rows = Escrow.get_by_id(m.id).held, len(ledger.entries_for_escrow(m.id))
                redeliver(job)
                assert (Escrow.get_by_id(m.id).held, len(ledger.entries_for_escrow(m.id))) == (held, ledger_rows)

    @action(lambda self: self.models, data=DATA, kind=st.sampled_from(CONTINGENCY_KINDS))
    def remove_contingency(self, data, kind):
        m = self._pick(data)
        allowed = (
            m.status in ("awaiting_deposit", "funded")
            and m.settlement is None
            and m.contingencies.get(kind, [None, None])[1] == "open"
        )

        def remove(escrow):
            return remove_contingency(escrow, kind, actor_id=m.deal.buyer.id, now=self.now)

        self._act(m, remove, None if allowed else EscrowConflict)
        if allowed:
            m.contingencies[kind][1] = "removed"

    @action(lambda self: self.models, data=DATA)
    def buyer_cancels(self, data):
        m = self._pick(data)

        def walk_away(escrow):
            return cancel(escrow, actor_id=m.deal.buyer.id, reason="changed our minds", now=self.now)

        if m.settlement is None and m.status == "awaiting_deposit":
            assert self._act(m, walk_away) is None
            m.status = "cancelled"
        elif m.settlement is None and m.status == "funded" and not m.hard:
            assert self._act(m, walk_away).kind == "escrows.settle"
            m.settlement = "refund"
        else:
            self._act(m, walk_away, EscrowConflict)

    @action(
        lambda self: self.models,
        weight=2,
        data=DATA,
        action=st.sampled_from(["release", "refund"]),
        sides=st.sampled_from([("buyer",), ("listing",), ("buyer", "listing"), ("listing", "buyer", "buyer")]),
    )
    def instruct(self, data, action, sides, m: Model | None = None):
        m = m or self._pick(data)
        for side in sides:

            def give(escrow, side=side):
                return instruct(escrow, action, actor_id=m.actor(side), now=self.now)

            if m.status != "funded" or m.settlement is not None:
                self._act(m, give, EscrowConflict)
                continue
            job = self._act(m, give)
            m.sides[action].add(side)
            # A side that changes its mind: its instruction to do the other thing is replaced.
            m.sides["refund" if action == "release" else "release"].discard(side)
            if m.sides[action] == {"buyer", "listing"}:
                assert job is not None and job.kind == "escrows.settle"
                m.settlement = action
            else:
                assert job is None

    @action(lambda self: self.models, data=DATA, side=st.sampled_from(["buyer", "listing"]))
    def open_dispute(self, data, side, m: Model | None = None):
        m = m or self._pick(data)

        def open_it(escrow):
            return dispute(escrow, actor_id=m.actor(side), reason="the roof leaks", now=self.now)

        if m.status == "funded" and m.settlement is None:
            self._act(m, open_it)
            m.status = "disputed"
        else:
            self._act(m, open_it, EscrowConflict)

    @action(
        lambda self: self.models, data=DATA, valid=st.booleans(), wrong=st.sampled_from(["more", "less", "negative"])
    )
    def admin_resolves(self, data, valid, wrong, m: Model | None = None):
        m = m or self._pick(data)
        held = m.deal.escrow.amount if m.status == "disputed" else 0
        buyer = data.draw(st.integers(0, held), label="to buyer")
        seller = held - buyer
        if not valid:
            buyer, seller = {"more": (buyer, seller + 1), "less": (buyer, seller - 1), "negative": (-1, held + 1)}[
                wrong
            ]

        def split(escrow):
            return resolve(escrow, admin_id=self.admin.id, buyer=buyer, seller=seller, reason="split", now=self.now)

        if m.status != "disputed" or m.settlement is not None:
            self._act(m, split, EscrowConflict)
        elif not valid:
            self._act(m, split, InvalidSplit)
        else:
            assert self._act(m, split).kind == "escrows.settle"
            m.settlement = "split"

    # --- the workers and the provider ----------------------------------------------------------

    @action(lambda self: any(m.settlement for m in self.models), weight=3, data=DATA, redelivered=st.booleans())
    def run_settlement(self, data, redelivered):
        m = self._pick(data, [m for m in self.models if m.settlement])
        job = self._settle_job(m)
        job = redeliver(job) if redelivered else run(job)
        assert job.status in ("succeeded", "queued", "failed"), job.status
        m.status = ENDS[m.settlement]
        escrow = Escrow.get_by_id(m.id)
        assert escrow.settled_at is not None
        if job.status == "succeeded":
            # Everything was paid out: nothing stays owed on either side.
            assert payable(m.deal.buyer) == payable(m.deal.seller) == 0
            sent = Payment.select().where((Payment.escrow == m.id) & Payment.kind.in_(("payout", "refund")))
            assert sum(p.amount for p in sent if p.status in SENT) == m.deal.escrow.amount
        if job.status == "failed":
            assert Payment.select().where((Payment.escrow == m.id) & (Payment.status == "failed")).exists()

    @action(lambda self: self.models)
    def retry_queued_jobs(self):
        ids = [str(m.id) for m in self.models]
        # Jobs a worker retries later (a transient failure); jobs never started are other rules' to run.
        queued = Job.select().where((Job.status == "queued") & (Job.queue == "money") & (Job.attempts > 0))
        for job in queued:
            if job.input.get("escrow_id") in ids or job.kind == "payments.apply_event":
                run(job)

    @action(lambda self: any(self._settle_job(m) for m in self.models), data=DATA)
    def replay_once_steps(self, data):
        m = self._pick(data, [m for m in self.models if self._settle_job(m)])
        job = self._settle_job(m)
        ctx = JobContext(job, 60)

        def must_not_run(key):
            raise AssertionError(f"the step {key} ran a second time")

        for step in ("ledger", "refund", "payout"):
            recorded = JobEffect.get_or_none(JobEffect.key == f"job:{job.id}:{step}")
            if recorded is not None:
                assert ctx.once(step, must_not_run) == recorded.result

    @action(lambda self: self.models, data=DATA)
    def replay_postings(self, data):
        m = self._pick(data)
        before = [(b.debits_posted, b.credits_posted) for b in map(ledger.balance, self._codes(m))]
        for entry in ledger.entries_for_escrow(m.id):
            assert replay_entry(entry).replayed is True
        assert [(b.debits_posted, b.credits_posted) for b in map(ledger.balance, self._codes(m))] == before

    def _codes(self, m: Model) -> list[str]:
        return sorted({code for e in ledger.entries_for_escrow(m.id) for code in (e["debit"], e["credit"])})

    @action(
        None,
        operation=st.sampled_from(["payout", "refund"]),
        outcomes=st.lists(st.sampled_from(["unavailable", "declined", "ok"]), min_size=1, max_size=2),
    )
    def script_the_provider(self, operation, outcomes):
        sandbox().program(operation, *outcomes)

    @action(None, hours=st.integers(1, 60))
    def time_passes(self, hours):
        self.now += datetime.timedelta(hours=hours)
        overdue, lapsed = 0, 0
        for m in self.models:
            if m.status == "awaiting_deposit" and m.deal.escrow.deposit_due_at <= self.now:
                m.status = "cancelled"
                overdue += 1
            for row in m.contingencies.values():
                if row[1] == "open" and row[0] <= self.now and m.status in ("awaiting_deposit", "funded"):
                    row[1] = "lapsed"
                    lapsed += 1
        done = enforce(self.now)
        assert (done["deposits_overdue"], done["contingencies_lapsed"]) == (overdue, lapsed)

    @rule(data=st.data())
    def next_step(self, data):
        names = [name for name, (_, enabled, weight, _) in ACTIONS.items() if enabled(self) for _ in range(weight)]
        fn, _, _, strategies = ACTIONS[data.draw(st.sampled_from(names), label="action")]
        fn(self, **{name: data if s is DATA else data.draw(s, label=name) for name, s in strategies.items()})

    # --- after every step ----------------------------------------------------------------------

    @invariant()
    def every_escrow_is_accounted_for(self):
        assert_escrow_invariants([m.id for m in self.models])
        for m in self.models:
            escrow = Escrow.get_by_id(m.id)
            assert (escrow.status, escrow.settlement, escrow.hard_at is not None) == (m.status, m.settlement, m.hard)
            previous = self.seen.get(m.id, escrow.status)
            assert previous == escrow.status or can_transition(previous, escrow.status)
            self.seen[m.id] = escrow.status
            sent = Payment.select().where((Payment.escrow == m.id) & Payment.kind.in_(("payout", "refund")))
            owed = payable(m.deal.buyer) + payable(m.deal.seller)
            assert deposit_arrived(m.id) == escrow.held + owed + sum(p.amount for p in sent if p.status in SENT)
            assert (deposit_arrived(m.id) > 0) == m.deposit_in


EscrowMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.usefixtures("runtime")
def test_escrow_state_machine():
    EscrowMachine.TestCase().runTest()
