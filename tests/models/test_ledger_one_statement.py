"""``transfer()`` checks a transfer's flags in SQL (``models/ledger/one_statement.py``) and names a refusal in Python.

The two must agree: for every transfer of a random walk over flagged and unflagged
accounts, posted and pending, the statement writes exactly when ``check_legs`` (the
rules the linked batches and two-phase transfers use) would pass it, and a refusal
raises the error those rules name, having written nothing.
"""

from __future__ import annotations

import random
import uuid

import pytest

from models import ledger
from models.db import db
from models.ledger import TransferSpec
from models.ledger.errors import ExceedsCredits, ExceedsDebits
from models.ledger.postings import Leg, LockedAccount, check_legs

pytestmark = pytest.mark.usefixtures("database")

ACCOUNTS = {
    "held:a": (ledger.DEBITS_MUST_NOT_EXCEED_CREDITS,),
    "held:b": (ledger.DEBITS_MUST_NOT_EXCEED_CREDITS,),
    "line:a": (ledger.CREDITS_MUST_NOT_EXCEED_DEBITS,),
    "line:b": (ledger.CREDITS_MUST_NOT_EXCEED_DEBITS,),
    "open": (),
}


def _locked(code: str) -> LockedAccount:
    balance = ledger.balance(code)
    return LockedAccount(
        0,
        code,
        balance.currency,
        balance.flags,
        balance.debits_posted,
        balance.credits_posted,
        balance.debits_pending,
        balance.credits_pending,
    )


def _expected_refusal(spec: TransferSpec) -> type[Exception] | None:
    debit, credit = _locked(spec.debit), _locked(spec.credit)
    if spec.pending:
        legs = (Leg(debit, debits_pending=spec.amount), Leg(credit, credits_pending=spec.amount))
    else:
        legs = (Leg(debit, debits_posted=spec.amount), Leg(credit, credits_posted=spec.amount))
    try:
        check_legs(legs)
    except (ExceedsCredits, ExceedsDebits) as refused:
        return type(refused)
    return None


def _count() -> int:
    return db.execute_sql("SELECT count(*) FROM ledger_transfers").fetchone()[0]


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "sent-whole"])
def test_the_statements_checks_agree_with_the_rules_in_python_over_a_random_walk(prepared, monkeypatch):
    monkeypatch.setattr(db.obj, "prepared_statements", prepared)
    for code, flags in ACCOUNTS.items():
        ledger.open_account(code, kind="test", flags=flags)
    picker = random.Random(20261208)
    outcomes = {"written": 0, ExceedsCredits: 0, ExceedsDebits: 0}
    for _ in range(400):
        debit, credit = picker.sample(sorted(ACCOUNTS), 2)
        spec = TransferSpec(uuid.uuid4(), debit, credit, picker.choice((1, 5, 40, 250)), pending=picker.random() < 0.3)
        expected, before = _expected_refusal(spec), _count()
        if expected is None:
            written = ledger.transfer(spec)
            assert not written.replayed and _count() == before + 1
            outcomes["written"] += 1
        else:
            with pytest.raises(expected):
                ledger.transfer(spec)
            assert _count() == before
            outcomes[expected] += 1
    # The walk went both ways often enough to mean something.
    assert min(outcomes.values()) >= 10, outcomes
    assert ledger.check_invariants() == []


def test_a_refused_transfer_leaves_both_accounts_as_they_were():
    ledger.open_account("held", kind="test", flags=(ledger.DEBITS_MUST_NOT_EXCEED_CREDITS,))
    ledger.open_account("other", kind="test")
    ledger.transfer(TransferSpec(uuid.uuid4(), "other", "held", 100))
    ledger.transfer(TransferSpec(uuid.uuid4(), "held", "other", 60, pending=True))
    before = (ledger.balance("held"), ledger.balance("other"))
    # 60 pending + 41 posted is more than the 100 credited.
    with pytest.raises(ExceedsCredits):
        ledger.transfer(TransferSpec(uuid.uuid4(), "held", "other", 41))
    assert (ledger.balance("held"), ledger.balance("other")) == before
    assert ledger.transfer(TransferSpec(uuid.uuid4(), "held", "other", 40)).state == "posted"
    assert ledger.balance("held").debits_posted == 40
