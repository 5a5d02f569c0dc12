"""Linked batches written in one statement, and the batches that still go one transfer at a time."""

from __future__ import annotations

import uuid

import pytest

from models import ledger
from models.db import db
from models.ledger import TransferSpec

pytestmark = pytest.mark.usefixtures("database")
HELD = ledger.DEBITS_MUST_NOT_EXCEED_CREDITS


@pytest.fixture
def funded():
    """``clearing`` paid 1000 into ``escrow`` (never below zero); ``seller`` and ``buyer`` are empty."""
    for code in ("clearing", "seller", "buyer"):
        ledger.open_account(code, kind="test")
    ledger.open_account("escrow", kind="test", flags=(HELD,))
    ledger.transfer(TransferSpec(uuid.uuid4(), "clearing", "escrow", 1000, kind="deposit"))


def _spec(debit="escrow", credit="seller", amount=100, **fields) -> TransferSpec:
    return TransferSpec(fields.pop("id", None) or uuid.uuid4(), debit, credit, amount, **fields)


def _count() -> int:
    return db.execute_sql("SELECT count(*) FROM ledger_transfers").fetchone()[0]


def test_a_new_batch_moves_every_balance_it_names_once(funded):
    batch = [
        _spec(amount=600),
        _spec(credit="buyer", amount=300),
        _spec(debit="seller", credit="clearing", amount=600, pending=True),
    ]
    posted = ledger.transfer_linked(batch)
    assert [(t.amount, t.state, t.replayed) for t in posted] == [
        (600, "posted", False),
        (300, "posted", False),
        (600, "pending", False),
    ]
    seller = ledger.balance("seller")
    assert (seller.credits_posted, seller.debits_pending, seller.available) == (600, 600, None)
    assert ledger.balance("escrow").available == 100 and ledger.balance("buyer").credits_posted == 300
    assert ledger.check_invariants() == []


def test_a_batch_of_which_some_were_written_replays_those_and_posts_the_rest(funded):
    first = _spec(amount=600)
    ledger.transfer(first)
    posted = ledger.transfer_linked([first, _spec(credit="buyer", amount=400)])
    assert [(t.amount, t.replayed) for t in posted] == [(600, True), (400, False)]
    assert ledger.balance("escrow").available == 0 and _count() == 3
    # The replayed transfer's money is spent already: counting it again would let this one through.
    with pytest.raises(ledger.ExceedsCredits) as refused:
        ledger.transfer_linked([first, _spec(credit="buyer", amount=1)])
    assert refused.value.index == 1 and _count() == 3
    with pytest.raises(ledger.TransferExists):
        ledger.transfer_linked([_spec(id=first.id, amount=5), _spec(credit="buyer", amount=1)])
    assert ledger.check_invariants() == []


def test_one_id_twice_in_a_batch_is_one_transfer(funded):
    spec = _spec(amount=300)
    posted = ledger.transfer_linked([spec, spec])
    assert [t.replayed for t in posted] == [False, True]
    assert ledger.balance("escrow").available == 700 and _count() == 2
    assert ledger.check_invariants() == []


def test_a_batch_that_takes_back_what_it_gave_is_checked_in_order(funded):
    # Moving 1000 out and 500 back in at once: fine in this order, refused the other way round.
    ledger.transfer_linked([_spec(amount=1000), _spec(debit="seller", credit="escrow", amount=500)])
    assert ledger.balance("escrow").available == 500
    with pytest.raises(ledger.ExceedsCredits) as refused:
        ledger.transfer_linked([_spec(amount=900), _spec(debit="seller", credit="escrow", amount=500)])
    assert refused.value.index == 0 and _count() == 3
    assert ledger.check_invariants() == []


def test_accounts_opened_with_a_transfer_are_opened_once_and_must_match_their_definition(funded):
    payable = ledger.AccountSpec("user:9:payable", "payable", "USD", frozenset({HELD}))
    escrow = ledger.AccountSpec("escrow", "test", "USD", frozenset({HELD}))
    ledger.transfer(_spec(credit=payable.code, amount=250), opening=[payable, escrow])
    opened = ledger.get_account(payable.code)
    assert (opened.kind, opened.flags, ledger.balance(payable.code).credits_posted) == ("payable", {HELD}, 250)
    posted = ledger.transfer_linked(
        [
            _spec(credit=payable.code, amount=100),
            _spec(debit=payable.code, credit="clearing", amount=350, pending=True),
        ],
        opening=[payable, escrow],
    )
    assert [t.replayed for t in posted] == [False, False] and ledger.get_account(payable.code) == opened
    assert ledger.balance(payable.code).available == 0
    with pytest.raises(ledger.AccountExists):
        ledger.transfer(_spec(amount=1), opening=[ledger.AccountSpec("escrow", "escrow", "USD", frozenset({HELD}))])
    with pytest.raises(ledger.AccountNotFound):
        ledger.transfer_linked([_spec(credit="nobody", amount=1)], opening=[escrow])
    assert ledger.balance("escrow").available == 650 and ledger.check_invariants() == []
