"""Transfers from several threads at once, each thread on its own database connection, committing for real.

The rows are committed (other connections must see them), so these tests do
not use the test's rolled-back transaction for ledger work: every database call
runs in a thread of its own, and the ledger tables are emptied afterwards with
TRUNCATE (which the immutability trigger, a row trigger, does not block).
"""

from __future__ import annotations

import random
import threading
import uuid

import pytest

from models import ledger
from models.db import db
from models.ledger import TransferSpec

pytestmark = pytest.mark.usefixtures("database")

THREADS = 4
HELD = ledger.DEBITS_MUST_NOT_EXCEED_CREDITS


def committed(fn):
    """Run ``fn()`` in a new thread on its own connection, in a transaction that commits; return its result."""
    return race([fn])[0]


def race(fns):
    """Start every ``fn`` at once, each in its own thread, connection and committed transaction.

    Returns each one's result or the ``LedgerError`` it raised; any other error fails the test.
    """
    barrier = threading.Barrier(len(fns))
    results: list = [None] * len(fns)

    def run(index, fn):
        try:
            with db.connection_context():
                barrier.wait(timeout=30)
                with db.atomic():
                    results[index] = fn()
        except ledger.LedgerError as exc:
            results[index] = exc
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread, which fails on it
            results[index] = ("crashed", exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    crashed = [r[1] for r in results if isinstance(r, tuple) and r and r[0] == "crashed"]
    if crashed:
        raise crashed[0]
    return results


@pytest.fixture
def books():
    """A flagged ``pool`` holding 1000, funded from ``source``; emptied (committed rows and all) afterwards."""

    def open_books():
        ledger.open_account("source", kind="test")
        ledger.open_account("pool", kind="test", flags=(HELD,))
        for i in range(THREADS):
            ledger.open_account(f"sink:{i}", kind="test")
        ledger.transfer(TransferSpec(uuid.uuid4(), "source", "pool", 1000))

    committed(open_books)
    yield
    committed(lambda: db.execute_sql("TRUNCATE ledger_transfers, ledger_accounts"))


def test_threads_never_take_more_than_the_flagged_account_holds(books):
    def drain(i):
        rng, moved, refused = random.Random(i), 0, 0
        for _ in range(40):
            amount = rng.randint(1, 60)
            try:
                with db.atomic():
                    ledger.transfer(TransferSpec(uuid.uuid4(), "pool", f"sink:{i}", amount))
                moved += amount
            except ledger.ExceedsCredits:
                refused += 1
        return moved, refused

    results = race([lambda i=i: drain(i) for i in range(THREADS)])
    moved = sum(m for m, _ in results)
    assert sum(r for _, r in results) > 0  # the pool ran dry: the limit was reached, not just approached
    pool = committed(lambda: ledger.balance("pool"))
    sinks = committed(lambda: [ledger.balance(f"sink:{i}").credits_posted for i in range(THREADS)])
    assert pool.debits_posted == moved <= 1000
    assert sinks == [m for m, _ in results]
    assert pool.available >= 0
    assert committed(ledger.check_invariants) == []


def test_opposite_transfers_between_two_accounts_do_not_deadlock(books):
    def shuffle(i):
        for n in range(30):
            a, b = ("sink:0", "sink:1") if (i + n) % 2 else ("sink:1", "sink:0")
            with db.atomic():
                ledger.transfer(TransferSpec(uuid.uuid4(), a, b, 1 + n))
        return True

    assert race([lambda i=i: shuffle(i) for i in range(THREADS)]) == [True] * THREADS
    assert committed(ledger.check_invariants) == []


def test_the_same_transfer_from_two_threads_posts_once(books):
    for _ in range(10):
        spec = TransferSpec(uuid.uuid4(), "pool", "sink:0", 7)
        first, second = race([lambda spec=spec: ledger.transfer(spec)] * 2)
        assert sorted([first.replayed, second.replayed]) == [False, True]
    assert committed(lambda: ledger.balance("sink:0").credits_posted) == 70
    assert committed(ledger.check_invariants) == []


def test_two_posts_of_one_pending_transfer_exactly_one_wins(books):
    for _ in range(10):
        hold = committed(lambda: ledger.transfer(TransferSpec(uuid.uuid4(), "pool", "sink:1", 50, pending=True)))
        outcomes = race(
            [
                lambda held=hold.id: ledger.post_pending(uuid.uuid4(), held),
                lambda held=hold.id: ledger.post_pending(uuid.uuid4(), held),
                lambda held=hold.id: ledger.void_pending(uuid.uuid4(), held),
            ]
        )
        won = [o for o in outcomes if isinstance(o, ledger.Transfer)]
        lost = [o for o in outcomes if isinstance(o, ledger.PendingAlreadyResolved)]
        assert len(won) == 1 and len(lost) == 2, outcomes
    pool = committed(lambda: ledger.balance("pool"))
    assert pool.debits_pending == 0
    assert committed(ledger.check_invariants) == []
