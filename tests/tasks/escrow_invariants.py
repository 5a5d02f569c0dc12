"""What must hold for escrows whatever happened to them: the checks shared by the stateful and concurrency tests.

``assert_escrow_invariants(escrow_ids)`` reads the database (the caller's
connection) and the sandbox provider, and fails on the first broken rule:

* the ledger's own invariants (``check_invariants``) and, spelled out, the sum
  over all accounts is zero and no flagged account is below zero;
* each escrow's holding account equals ``escrow.held``, which is the deposit
  exactly while the escrow is funded or disputed, and 0 otherwise;
* at most one payout and one refund per (escrow, recipient) went out, on the
  payments and on the ledger, and never more than the deposit that arrived;
* the sandbox made at most one object per idempotency key, and sent out of each
  escrow no more than it collected for it;
* every status change in an escrow's history is one the transition table allows.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from models.db import db
from models.escrow_rules import can_transition
from models.escrows import Escrow, history_of
from models.ledger import AccountNotFound, balance, check_invariants, entries_for_escrow
from models.payments import Payment
from tasks.runtime import runtime

HELD_WHILE = ("funded", "disputed")
SENT = ("succeeded", "processing")

_SUMS = """
SELECT coalesce(sum(credits_posted - debits_posted), 0), coalesce(sum(credits_pending - debits_pending), 0)
FROM ledger_accounts
"""
_NEGATIVE = """
SELECT code FROM ledger_accounts
WHERE flags @> ARRAY['debits_must_not_exceed_credits'] AND credits_posted - debits_posted - debits_pending < 0
"""


def held_on_ledger(escrow: Escrow) -> int:
    try:
        return balance(escrow.account_code).credit_balance
    except AccountNotFound:
        return 0


def assert_books_balance() -> None:
    assert check_invariants() == []
    assert tuple(db.execute_sql(_SUMS).fetchone()) == (0, 0)
    assert db.execute_sql(_NEGATIVE).fetchall() == []


def deposit_arrived(escrow_id) -> int:
    """What the provider collected for the escrow (its succeeded deposit), 0 before."""
    deposits = Payment.select().where(
        (Payment.escrow == escrow_id) & (Payment.kind == "deposit") & (Payment.status == "succeeded")
    )
    return sum(p.amount for p in deposits)


def assert_paid_at_most_once(escrow: Escrow) -> None:
    sent = [
        p
        for p in Payment.select().where((Payment.escrow == escrow.id) & Payment.kind.in_(("payout", "refund")))
        if p.status in SENT
    ]
    per_recipient = Counter((p.kind, p.recipient_id) for p in sent)
    assert all(n == 1 for n in per_recipient.values()), per_recipient
    arrived = deposit_arrived(escrow.id)
    assert sum(p.amount for p in sent) <= arrived <= escrow.amount
    entries = entries_for_escrow(escrow.id)
    posted = Counter(e["debit"] for e in entries if e["state"] == "post_pending")
    assert all(n == 1 for n in posted.values()), posted
    reversed_ = sum(e["amount"] for e in entries if e["kind"] == "provider_reversal")
    assert sum(e["amount"] for e in entries if e["state"] == "post_pending") - reversed_ <= arrived
    deposits = [e for e in entries if e["kind"] == "deposit"]
    assert len(deposits) <= 1 and sum(e["amount"] for e in deposits) == arrived


def assert_history_follows_the_table(escrow: Escrow) -> None:
    for event in history_of(escrow.id):
        if event.from_status != event.to_status:
            assert can_transition(event.from_status, event.to_status), (event.from_status, event.to_status)


def assert_sandbox_sent_no_more_than_arrived(escrow_ids) -> None:
    sandbox = runtime().payments
    ours = {str(i) for i in escrow_ids}
    operations = [op for op in sandbox.operations() if op["object"].get("metadata", {}).get("escrow_id") in ours]
    per_key = Counter((op["operation"], op["idempotency_key"]) for op in operations)
    assert all(n == 1 for n in per_key.values()), per_key
    collected: dict[str, int] = defaultdict(int)
    sent: dict[str, int] = defaultdict(int)
    for op in operations:
        escrow_id = op["object"]["metadata"]["escrow_id"]
        if op["operation"] == "create_deposit":
            intent = sandbox.payment_intent(op["object"]["id"])
            if intent is not None and intent["status"] == "succeeded":
                collected[escrow_id] += intent["amount"]
        else:
            sent[escrow_id] += op["object"]["amount"]
    for escrow_id, amount in sent.items():
        assert amount <= collected[escrow_id], (escrow_id, amount, collected[escrow_id])


def assert_escrow_invariants(escrow_ids) -> None:
    """Every rule of the module's docstring, for the escrows ``escrow_ids`` and the whole ledger."""
    assert_books_balance()
    for escrow in Escrow.select().where(Escrow.id.in_(list(escrow_ids))):
        assert held_on_ledger(escrow) == escrow.held, (escrow.status, escrow.held)
        assert escrow.held == (escrow.amount if escrow.status in HELD_WHILE else 0), (escrow.status, escrow.held)
        assert_paid_at_most_once(escrow)
        assert_history_follows_the_table(escrow)
    assert_sandbox_sent_no_more_than_arrived(escrow_ids)
