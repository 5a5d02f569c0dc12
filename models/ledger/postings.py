"""The statements under every transfer: lock the accounts, check their flags, write the row and both legs.

Balances change in the same transaction as the transfer row, in one statement
(a data-modifying CTE: the legs are applied only if the row was inserted, so
a transfer id already taken changes nothing). Before that, the involved
accounts are locked with ``SELECT ... FOR UPDATE`` in id order, so two
transfers over the same accounts queue instead of deadlocking, and the flag
checks read balances nobody else can change before the commit.
"""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace

import msgspec

from models.db import db
from models.ledger.accounts import CREDITS_MUST_NOT_EXCEED_DEBITS, DEBITS_MUST_NOT_EXCEED_CREDITS
from models.ledger.errors import ExceedsCredits, ExceedsDebits


@dataclass
class LockedAccount:
    """An account's row as locked by this transaction; the balances follow the transfers it writes."""

    id: int
    code: str
    currency: str
    flags: frozenset[str]
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int


@dataclass(frozen=True)
class Leg:
    """What one transfer adds to one account's four balance columns (negative when a pending one ends)."""

    account: LockedAccount
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0


@dataclass(frozen=True)
class Transfer:
    """A transfer as stored; ``replayed`` is true when the call found it already there and changed nothing."""

    id: uuid.UUID
    debit: str
    credit: str
    amount: int
    currency: str
    kind: str
    state: str
    pending_id: uuid.UUID | None
    timeout_at: datetime.datetime | None
    escrow_id: uuid.UUID | None
    memo: str | None
    user_data: dict | None
    linked_group: uuid.UUID | None
    created_at: datetime.datetime
    replayed: bool = False

    def as_dict(self) -> dict:
        """The transfer as JSON-able values (ids and times as strings)."""
        return {
            "id": str(self.id),
            "kind": self.kind,
            "debit": self.debit,
            "credit": self.credit,
            "amount": self.amount,
            "currency": self.currency,
            "state": self.state,
            "pending_id": None if self.pending_id is None else str(self.pending_id),
            "escrow_id": None if self.escrow_id is None else str(self.escrow_id),
            "memo": self.memo,
            "created_at": self.created_at.isoformat(),
        }

    def as_replayed(self) -> Transfer:
        return replace(self, replayed=True)


def transaction():
    """A transaction when none is open; inside the caller's, nothing more.

    A transfer checks everything before its one writing statement, so a refusal
    has written nothing and needs no savepoint to undo (two round trips saved per
    transfer inside a caller's transaction). The locks need a transaction,
    though: in autocommit they would be gone before the write.
    """
    return contextlib.nullcontext() if db.in_transaction() else db.atomic()


_READ = """
SELECT id, code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending
FROM ledger_accounts WHERE code = ANY(%s) ORDER BY id
"""
_LOCK = _READ + "FOR UPDATE"


def lock_accounts(codes: Iterable[str], *, lock: bool = True) -> dict[str, LockedAccount]:
    """The accounts among ``codes`` that exist, locked in id order (``lock=False``: only read)."""
    rows = db.execute_sql(_LOCK if lock else _READ, (sorted(set(codes)),)).fetchall()
    return {row[1]: LockedAccount(row[0], row[1], row[2], frozenset(row[3]), *row[4:]) for row in rows}


_LOCK_OF_TRANSFER = """
SELECT id, code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending
FROM ledger_accounts
WHERE id IN (SELECT debit_account_id FROM ledger_transfers WHERE id = %s
             UNION ALL SELECT credit_account_id FROM ledger_transfers WHERE id = %s)
ORDER BY id FOR UPDATE
"""


def lock_accounts_of(transfer_id: uuid.UUID) -> dict[str, LockedAccount]:
    """The two accounts of transfer ``transfer_id`` (none if there is no such transfer), locked in id order."""
    rows = db.execute_sql(_LOCK_OF_TRANSFER, (transfer_id, transfer_id)).fetchall()
    return {row[1]: LockedAccount(row[0], row[1], row[2], frozenset(row[3]), *row[4:]) for row in rows}


def check_legs(legs: Iterable[Leg]) -> None:
    """Refuse legs that would break an account's flag; apply them to the locked rows' balances if none does.

    Call only when the transfer will be written, as the in-memory balances follow.
    """
    legs = list(legs)
    for leg in legs:
        account = leg.account
        debits = account.debits_posted + leg.debits_posted + account.debits_pending + leg.debits_pending
        credits = account.credits_posted + leg.credits_posted + account.credits_pending + leg.credits_pending
        if DEBITS_MUST_NOT_EXCEED_CREDITS in account.flags and debits > account.credits_posted + leg.credits_posted:
            raise ExceedsCredits(f"debits of {account.code!r} would exceed its credits")
        if CREDITS_MUST_NOT_EXCEED_DEBITS in account.flags and credits > account.debits_posted + leg.debits_posted:
            raise ExceedsDebits(f"credits of {account.code!r} would exceed its debits")


def apply_legs(legs: Iterable[Leg]) -> None:
    """Follow a written transfer in the locked rows' balances (a linked batch checks the next one on them)."""
    for leg in legs:
        account = leg.account
        account.debits_posted += leg.debits_posted
        account.credits_posted += leg.credits_posted
        account.debits_pending += leg.debits_pending
        account.credits_pending += leg.credits_pending


_WRITE = """
WITH row AS (
    INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, currency, kind, state,
                                  pending_id, timeout_at, escrow_id, memo, user_data, linked_group, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)
    ON CONFLICT DO NOTHING
    RETURNING id
), legs AS (
    UPDATE ledger_accounts AS a
    SET debits_posted = a.debits_posted + leg.dp, credits_posted = a.credits_posted + leg.cp,
        debits_pending = a.debits_pending + leg.dpe, credits_pending = a.credits_pending + leg.cpe
    FROM (VALUES (%s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::bigint),
                 (%s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::bigint)) AS leg (id, dp, cp, dpe, cpe)
    WHERE a.id = leg.id AND EXISTS (SELECT 1 FROM row)
)
SELECT count(*) FROM row
"""


def write(transfer: Transfer, debit: LockedAccount, credit: LockedAccount, legs: tuple[Leg, Leg]) -> bool:
    """Insert ``transfer`` and apply its two legs; False (and nothing written) when its id, or its
    pending transfer's resolution, is already taken."""
    user_data = None if transfer.user_data is None else msgspec.json.encode(transfer.user_data).decode()
    params: list = [
        transfer.id,
        debit.id,
        credit.id,
        transfer.amount,
        transfer.currency,
        transfer.kind,
        transfer.state,
        transfer.pending_id,
        transfer.timeout_at,
        transfer.escrow_id,
        transfer.memo,
        user_data,
        transfer.linked_group,
        transfer.created_at,
    ]
    for leg in legs:
        params += [leg.account.id, leg.debits_posted, leg.credits_posted, leg.debits_pending, leg.credits_pending]
    (count,) = db.execute_sql(_WRITE, params).fetchone()
    return count == 1


_SELECT = """
SELECT t.id, d.code, c.code, t.amount, t.currency, t.kind, t.state, t.pending_id, t.timeout_at,
       t.escrow_id, t.memo, t.user_data, t.linked_group, t.created_at
FROM ledger_transfers AS t
JOIN ledger_accounts AS d ON d.id = t.debit_account_id
JOIN ledger_accounts AS c ON c.id = t.credit_account_id
"""


def _transfer(row) -> Transfer:
    return Transfer(*row[:3], int(row[3]), *row[4:])


def load(transfer_id: uuid.UUID) -> Transfer | None:
    row = db.execute_sql(_SELECT + "WHERE t.id = %s", (transfer_id,)).fetchone()
    return None if row is None else _transfer(row)


def load_with_resolution(transfer_id: uuid.UUID, pending_id: uuid.UUID, *, pending: bool = False) -> list[Transfer]:
    """The transfer ``transfer_id`` and whatever resolved ``pending_id``, if they exist (``pending``: and
    the pending transfer itself)."""
    if pending:
        condition, params = "WHERE t.id IN (%s, %s) OR t.pending_id = %s", (transfer_id, pending_id, pending_id)
    else:
        condition, params = "WHERE t.id = %s OR t.pending_id = %s", (transfer_id, pending_id)
    return [_transfer(row) for row in db.execute_sql(_SELECT + condition, params).fetchall()]


def load_where(condition: str, params: tuple) -> list[Transfer]:
    """Transfers matching ``condition`` (an SQL expression over ``t``, written here, never from input)."""
    rows = db.execute_sql(_SELECT + "WHERE " + condition + " ORDER BY t.seq", params)
    return [_transfer(row) for row in rows.fetchall()]
