"""The ledger's rules, one by one, against the real PostgreSQL (inside the test's rolled-back transaction)."""

from __future__ import annotations

import datetime
import uuid

import pytest
from peewee import IntegrityError

from models import ledger
from models.base import utcnow
from models.db import db
from models.ledger import TransferSpec

pytestmark = pytest.mark.usefixtures("database")

HELD = ledger.DEBITS_MUST_NOT_EXCEED_CREDITS


def _accounts(*codes: str, flags=()) -> None:
    for code in codes:
        ledger.open_account(code, kind="test", flags=flags)


@pytest.fixture
def funded():
    """``clearing`` (unflagged) paid 1000 into ``escrow`` (never below zero); ``seller`` is empty."""
    _accounts("clearing", "seller")
    _accounts("escrow", flags=(HELD,))
    ledger.transfer(TransferSpec(uuid.uuid4(), "clearing", "escrow", 1000, kind="deposit"))
    return "escrow"


def _spec(debit="escrow", credit="seller", amount=100, **fields) -> TransferSpec:
    return TransferSpec(fields.pop("id", None) or uuid.uuid4(), debit, credit, amount, **fields)


# --- accounts ----------------------------------------------------------------------------------


def test_open_account_is_idempotent_and_refuses_a_different_definition():
    first = ledger.open_account("user:1:payable", kind="payable", flags=(HELD,))
    again = ledger.open_account("user:1:payable", kind="payable", flags=[HELD])
    assert again == first
    assert first.flags == frozenset({HELD}) and first.currency == "USD"
    for change in ({"kind": "receivable"}, {"currency": "EUR"}, {"flags": ()}):
        with pytest.raises(ledger.AccountExists) as refused:
            ledger.open_account("user:1:payable", **{"kind": "payable", "flags": (HELD,), **change})
        assert refused.value.code == "account_exists_with_different_content"
        assert isinstance(refused.value, ledger.LedgerError)


def test_open_account_refuses_bad_definitions():
    with pytest.raises(ledger.InvalidAccount):
        ledger.open_account("a", kind="k", flags=("no_such_flag",))
    with pytest.raises(ledger.InvalidAccount):
        ledger.open_account("a", kind="k", flags=(HELD, ledger.CREDITS_MUST_NOT_EXCEED_DEBITS))
    with pytest.raises(ledger.InvalidAccount):
        ledger.open_account("a", kind="k", currency="usd")
    with pytest.raises(ledger.InvalidAccount):
        ledger.open_account("", kind="k")


def test_balance_of_an_unknown_account_is_not_found():
    with pytest.raises(ledger.AccountNotFound) as refused:
        ledger.balance("nobody")
    assert refused.value.code == "account_not_found"


# --- transfers ----------------------------------------------------------------------------------


def test_transfer_moves_both_legs(funded):
    done = ledger.transfer(_spec(amount=300, kind="release", memo="closing"))
    assert done.replayed is False and done.state == "posted" and done.amount == 300
    escrow, seller, clearing = ledger.balance("escrow"), ledger.balance("seller"), ledger.balance("clearing")
    assert (escrow.credits_posted, escrow.debits_posted, escrow.credit_balance, escrow.available) == (
        1000,
        300,
        700,
        700,
    )
    assert seller.credit_balance == 300 and seller.available is None
    assert clearing.debit_balance == 1000
    assert ledger.check_invariants() == []


def test_replaying_a_transfer_changes_nothing(funded):
    spec = _spec(amount=250, user_data={"offer": "x", "n": 1}, escrow_id=uuid.uuid4())
    first = ledger.transfer(spec)
    again = ledger.transfer(spec)
    assert again.replayed is True and again.id == first.id and again.amount == 250
    assert again.user_data == {"offer": "x", "n": 1}
    assert ledger.balance("seller").credits_posted == 250
    assert ledger.balance("escrow").debits_posted == 250


def test_replay_is_answered_even_when_the_transfer_could_not_be_written_now(funded):
    spec = _spec(amount=1000)
    ledger.transfer(spec)  # empties the escrow: writing it again would exceed its credits
    assert ledger.transfer(spec).replayed is True
    assert ledger.balance("escrow").available == 0


def test_same_id_with_different_content_is_refused(funded):
    spec = _spec(amount=100)
    ledger.transfer(spec)
    for changed in (
        {"amount": 101},
        {"credit": "clearing"},
        {"kind": "fee"},
        {"memo": "other"},
        {"escrow_id": uuid.uuid4()},
        {"user_data": {"a": 1}},
        {"pending": True},
    ):
        fields = {**spec.__dict__, **changed}
        with pytest.raises(ledger.TransferExists) as refused:
            ledger.transfer(TransferSpec(**fields))
        assert refused.value.code == "exists_with_different_content"
    assert ledger.balance("seller").credits_posted == 100


def test_a_flagged_account_cannot_go_below_zero(funded):
    with pytest.raises(ledger.ExceedsCredits) as refused:
        ledger.transfer(_spec(amount=1001))
    assert refused.value.code == "exceeds_credits"
    assert ledger.balance("escrow").debits_posted == 0
    assert ledger.balance("seller").credits_posted == 0


def test_credits_must_not_exceed_debits():
    _accounts("line", flags=(ledger.CREDITS_MUST_NOT_EXCEED_DEBITS,))
    _accounts("bank")
    ledger.transfer(_spec("line", "bank", 500))
    ledger.transfer(_spec("bank", "line", 500))
    with pytest.raises(ledger.ExceedsDebits) as refused:
        ledger.transfer(_spec("bank", "line", 1))
    assert refused.value.code == "exceeds_debits"
    assert ledger.balance("line").available == 0


@pytest.mark.parametrize(
    ("fields", "error", "code"),
    [
        ({"amount": 0}, ledger.InvalidAmount, "invalid_amount"),
        ({"amount": -5}, ledger.InvalidAmount, "invalid_amount"),
        ({"amount": 1.5}, ledger.InvalidAmount, "invalid_amount"),
        ({"amount": True}, ledger.InvalidAmount, "invalid_amount"),
        ({"amount": 2**63}, ledger.InvalidAmount, "invalid_amount"),
        ({"credit": "escrow"}, ledger.SameAccount, "accounts_must_be_different"),
        ({"credit": "nobody"}, ledger.AccountNotFound, "account_not_found"),
        ({"currency": "EUR"}, ledger.CurrencyMismatch, "currency_mismatch"),
        ({"currency": "usd"}, ledger.InvalidTransfer, "invalid_transfer"),
        ({"timeout_seconds": 60}, ledger.InvalidTransfer, "invalid_transfer"),
        ({"kind": ""}, ledger.InvalidTransfer, "invalid_transfer"),
    ],
)
def test_refused_transfers_write_nothing(funded, fields, error, code):
    with pytest.raises(error) as refused:
        ledger.transfer(_spec(**fields))
    assert refused.value.code == code
    assert ledger.balance("escrow").debits_posted == 0
    (count,) = db.execute_sql("SELECT count(*) FROM ledger_transfers").fetchone()
    assert count == 1  # the fixture's deposit only


def test_currency_must_match_both_accounts():
    ledger.open_account("eur:a", kind="test", currency="EUR")
    ledger.open_account("eur:b", kind="test", currency="EUR")
    ledger.open_account("usd:c", kind="test")
    done = ledger.transfer(_spec("eur:a", "eur:b", 10, currency="EUR"))
    assert done.currency == "EUR" and ledger.balance("eur:b").credits_posted == 10
    with pytest.raises(ledger.CurrencyMismatch):
        ledger.transfer(_spec("eur:a", "usd:c", 10, currency="EUR"))
    with pytest.raises(ledger.CurrencyMismatch):
        ledger.transfer(_spec("eur:a", "usd:c", 10, currency="USD"))


def test_the_database_refuses_a_transfer_between_currencies_even_without_the_code():
    ledger.open_account("eur:a", kind="test", currency="EUR")
    ledger.open_account("usd:c", kind="test")
    ids = dict(db.execute_sql("SELECT code, id FROM ledger_accounts").fetchall())
    with pytest.raises(IntegrityError), db.atomic():
        db.execute_sql(
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, currency, kind, state)"
            " VALUES (%s, %s, %s, 5, 'USD', 'test', 'posted')",
            (uuid.uuid4(), ids["eur:a"], ids["usd:c"]),
        )


def test_the_database_enforces_the_flags_too(funded):
    with pytest.raises(IntegrityError), db.atomic():
        db.execute_sql("UPDATE ledger_accounts SET debits_posted = 1001 WHERE code = 'escrow'")
    assert ledger.balance("escrow").debits_posted == 0


def test_transfers_are_immutable(funded):
    done = ledger.transfer(_spec(amount=10))
    with pytest.raises(IntegrityError, match="immutable"), db.atomic():
        db.execute_sql("UPDATE ledger_transfers SET amount = 1 WHERE id = %s", (done.id,))
    with pytest.raises(IntegrityError, match="immutable"), db.atomic():
        db.execute_sql("DELETE FROM ledger_transfers WHERE id = %s", (done.id,))
    assert ledger.transfer(_spec(amount=10, id=done.id)).replayed is True


# --- linked batches -------------------------------------------------------------------------------


def test_a_linked_batch_posts_together(funded):
    escrow_id = uuid.uuid4()
    batch = [
        _spec(amount=600, kind="split", escrow_id=escrow_id),
        _spec(credit="clearing", amount=400, kind="split", escrow_id=escrow_id),
    ]
    posted = ledger.transfer_linked(batch)
    assert [t.amount for t in posted] == [600, 400]
    assert len({t.linked_group for t in posted}) == 1 and posted[0].linked_group is not None
    assert ledger.balance("escrow").available == 0
    again = ledger.transfer_linked(batch)
    assert all(t.replayed for t in again)
    assert [e["amount"] for e in ledger.entries_for_escrow(escrow_id)] == [600, 400]
    assert ledger.check_invariants() == []


def test_a_linked_batch_that_fails_writes_nothing_of_the_batch(funded):
    batch = [_spec(amount=600), _spec(credit="clearing", amount=401)]  # 1001 out of 1000
    with pytest.raises(ledger.ExceedsCredits) as refused:
        ledger.transfer_linked(batch)
    assert refused.value.index == 1
    assert ledger.balance("escrow").debits_posted == 0
    assert ledger.balance("seller").credits_posted == 0
    with pytest.raises(ledger.AccountNotFound) as refused:
        ledger.transfer_linked([_spec(amount=1), _spec(credit="nobody", amount=1)])
    assert refused.value.index == 1
    with pytest.raises(ledger.InvalidAmount) as refused:
        ledger.transfer_linked([_spec(amount=1), _spec(amount=0)])
    assert refused.value.index == 1
    (count,) = db.execute_sql("SELECT count(*) FROM ledger_transfers").fetchone()
    assert count == 1
    assert ledger.check_invariants() == []


def test_a_linked_batch_without_a_savepoint_is_undone_with_the_callers_transaction(funded):
    batch = [_spec(amount=600), _spec(credit="clearing", amount=401)]  # 1001 out of 1000
    with pytest.raises(ledger.ExceedsCredits), db.atomic():
        ledger.transfer_linked(batch, savepoint=False)
    assert ledger.balance("escrow").debits_posted == 0 and ledger.check_invariants() == []
    with db.atomic():
        posted = ledger.transfer_linked([batch[0], _spec(credit="clearing", amount=400)], savepoint=False)
    assert len({t.linked_group for t in posted}) == 1 and ledger.balance("escrow").available == 0
    assert ledger.check_invariants() == []


def test_a_failed_transfer_leaves_the_callers_transaction_usable(funded):
    with db.atomic():
        ledger.open_account("mine", kind="test")
        with pytest.raises(ledger.ExceedsCredits):
            ledger.transfer(_spec(amount=5000))
        ledger.transfer(_spec(credit="mine", amount=5))
    assert ledger.balance("mine").credits_posted == 5


# --- two-phase ---------------------------------------------------------------------------------------


def test_pending_reserves_then_post_moves_part_and_releases_the_rest(funded):
    hold = ledger.transfer(_spec(amount=700, pending=True, timeout_seconds=3600))
    assert hold.state == "pending" and hold.timeout_at == hold.created_at + datetime.timedelta(hours=1)
    escrow = ledger.balance("escrow")
    assert (escrow.debits_pending, escrow.available, escrow.credit_balance) == (700, 300, 1000)
    with pytest.raises(ledger.ExceedsCredits):
        ledger.transfer(_spec(amount=301))
    posted = ledger.post_pending(uuid.uuid4(), hold.id, amount=500)
    assert posted.state == "post_pending" and posted.pending_id == hold.id and posted.amount == 500
    escrow, seller = ledger.balance("escrow"), ledger.balance("seller")
    assert (escrow.debits_pending, escrow.debits_posted, escrow.available) == (0, 500, 500)
    assert (seller.credits_pending, seller.credits_posted) == (0, 500)
    assert ledger.check_invariants() == []


def test_void_releases_the_reservation(funded):
    hold = ledger.transfer(_spec(amount=700, pending=True))
    voided = ledger.void_pending(uuid.uuid4(), hold.id)
    assert voided.state == "void_pending" and voided.amount == 700
    assert ledger.balance("escrow").available == 1000
    assert ledger.balance("seller").credits_pending == 0
    assert ledger.check_invariants() == []


def test_a_pending_transfer_is_resolved_at_most_once(funded):
    hold = ledger.transfer(_spec(amount=700, pending=True))
    post_id = uuid.uuid4()
    ledger.post_pending(post_id, hold.id)
    assert ledger.post_pending(post_id, hold.id).replayed is True
    with pytest.raises(ledger.TransferExists):
        ledger.post_pending(post_id, hold.id, amount=5)
    with pytest.raises(ledger.TransferExists):
        ledger.void_pending(post_id, hold.id)
    for resolve in (
        lambda: ledger.post_pending(uuid.uuid4(), hold.id),
        lambda: ledger.void_pending(uuid.uuid4(), hold.id),
    ):
        with pytest.raises(ledger.PendingAlreadyResolved) as refused:
            resolve()
        assert refused.value.code == "pending_transfer_already_resolved"
    assert ledger.balance("seller").credits_posted == 700


def test_the_database_refuses_a_second_resolution(funded):
    hold = ledger.transfer(_spec(amount=700, pending=True))
    ledger.void_pending(uuid.uuid4(), hold.id)
    account_ids = db.execute_sql(
        "SELECT debit_account_id, credit_account_id FROM ledger_transfers WHERE id = %s", (hold.id,)
    ).fetchone()
    with pytest.raises(IntegrityError), db.atomic():
        db.execute_sql(
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, currency, kind, state,"
            " pending_id) VALUES (%s, %s, %s, 700, 'USD', 'test', 'post_pending', %s)",
            (uuid.uuid4(), *account_ids, hold.id),
        )


def test_post_errors(funded):
    hold = ledger.transfer(_spec(amount=700, pending=True, timeout_seconds=60))
    with pytest.raises(ledger.PendingNotFound) as refused:
        ledger.post_pending(uuid.uuid4(), uuid.uuid4())
    assert refused.value.code == "pending_transfer_not_found"
    posted = ledger.transfer(_spec(amount=1))
    with pytest.raises(ledger.PendingNotFound):
        ledger.void_pending(uuid.uuid4(), posted.id)  # a posted transfer is not pending
    for amount in (701, 0, -1):
        with pytest.raises(ledger.InvalidAmount):
            ledger.post_pending(uuid.uuid4(), hold.id, amount=amount)
    later = utcnow() + datetime.timedelta(seconds=61)
    with pytest.raises(ledger.PendingExpired) as refused:
        ledger.post_pending(uuid.uuid4(), hold.id, now=later)
    assert refused.value.code == "pending_transfer_expired"
    assert ledger.balance("escrow").debits_pending == 700
    assert ledger.void_pending(uuid.uuid4(), hold.id, now=later).state == "void_pending"


def test_expire_pending_voids_what_timed_out_once(funded):
    soon = ledger.transfer(_spec(amount=100, pending=True, timeout_seconds=60))
    late = ledger.transfer(_spec(amount=200, pending=True, timeout_seconds=3600))
    forever = ledger.transfer(_spec(amount=300, pending=True))
    assert ledger.expire_pending(utcnow()) == 0
    in_two_minutes = utcnow() + datetime.timedelta(minutes=2)
    assert ledger.expire_pending(in_two_minutes) == 1
    assert ledger.expire_pending(in_two_minutes) == 0
    assert ledger.balance("escrow").debits_pending == 500
    voided = ledger.void_pending(ledger.expiry_id(soon.id), soon.id)
    assert voided.replayed is True
    with pytest.raises(ledger.PendingAlreadyResolved):
        ledger.post_pending(uuid.uuid4(), soon.id)
    assert ledger.expire_pending(utcnow() + datetime.timedelta(days=1)) == 1
    assert ledger.balance("escrow").debits_pending == 300
    assert ledger.post_pending(uuid.uuid4(), forever.id).amount == 300
    assert late.id and ledger.check_invariants() == []


# --- reading back ---------------------------------------------------------------------------------


def test_entries_for_escrow_lists_the_escrows_transfers_oldest_first(funded):
    escrow_id = uuid.uuid4()
    hold = ledger.transfer(_spec(amount=100, pending=True, escrow_id=escrow_id, kind="release", memo="m"))
    ledger.transfer(_spec(amount=5, escrow_id=uuid.uuid4()))  # another escrow's
    ledger.post_pending(uuid.uuid4(), hold.id)
    entries = ledger.entries_for_escrow(escrow_id)
    assert [(e["state"], e["amount"], e["debit"], e["credit"]) for e in entries] == [
        ("pending", 100, "escrow", "seller"),
        ("post_pending", 100, "escrow", "seller"),
    ]
    assert entries[0]["id"] == str(hold.id) and entries[1]["pending_id"] == str(hold.id)
    assert entries[0]["memo"] == "m" and entries[0]["kind"] == "release"
    datetime.datetime.fromisoformat(entries[0]["created_at"])
    assert ledger.entries_for_escrow(uuid.uuid4()) == []


def test_check_invariants_finds_balances_that_do_not_match_their_transfers(funded):
    assert ledger.check_invariants() == []
    db.execute_sql("UPDATE ledger_accounts SET credits_posted = credits_posted + 7 WHERE code = 'seller'")
    problems = ledger.check_invariants()
    assert any("posted debits minus posted credits" in p for p in problems)
    assert any("'seller'" in p and "add up to" in p for p in problems)
