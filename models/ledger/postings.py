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
from models.ledger.accounts import (
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    Account,
    AccountSpec,
    checked,
    matching,
)
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


# ``open_accounts`` and ``lock_accounts`` in one statement: the new accounts inserted first (in code
# order), then the others locked in id order (the subquery on ``inserted`` makes the insert come first,
# as it did when these were two statements). The lock sees the rows as they were when the statement
# began: an account another transaction inserted meanwhile is in neither part, and is locked after.
_OPEN_AND_LOCK = """
WITH wanted (code, kind, currency, flags) AS (VALUES {rows}),
inserted AS (
    INSERT INTO ledger_accounts (code, kind, currency, flags)
    SELECT code, kind, currency, flags FROM wanted ORDER BY code
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending, kind,
              created_at
), locked AS (
    SELECT id, code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending, kind,
           created_at
    FROM ledger_accounts WHERE code = ANY(%s) AND (SELECT count(*) FROM inserted) >= 0
    ORDER BY id FOR UPDATE
)
SELECT * FROM inserted UNION ALL SELECT * FROM locked
"""


def open_and_lock(specs: Iterable[AccountSpec], codes: Iterable[str]) -> dict[str, LockedAccount]:
    """The accounts of ``specs`` opened if new (``open_accounts``), and with ``codes``, locked: one round trip.

    Raises ``AccountExists`` (having opened the others) when one of ``specs`` exists as another
    kind, currency or flags, ``InvalidAccount`` (having opened none) for a bad spec.
    """
    wanted = {spec.code: checked(spec) for spec in specs}
    params: list = []
    for spec in wanted.values():
        params += [spec.code, spec.kind, spec.currency, sorted(spec.flags)]
    rows = ", ".join(["(%s, %s, %s::char(3), %s::text[])"] * len(wanted))
    codes = sorted(set(codes) | wanted.keys())
    found = {row[1]: row for row in db.execute_sql(_OPEN_AND_LOCK.format(rows=rows), [*params, codes]).fetchall()}
    missing = [code for code in codes if code not in found]
    if missing:
        found.update((row[1], row) for row in db.execute_sql(_LOCK_WITH_KIND, (missing,)).fetchall())
    for code, spec in wanted.items():
        id_, _, currency, flags, *_balances, kind, created_at = found[code]
        matching(spec, Account(id_, code, kind, currency, frozenset(flags), created_at))
    return {code: LockedAccount(row[0], code, row[2], frozenset(row[3]), *row[4:8]) for code, row in found.items()}


_LOCK_WITH_KIND = """
SELECT id, code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending, kind, created_at
FROM ledger_accounts WHERE code = ANY(%s) ORDER BY id FOR UPDATE
"""


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


# ``lock_accounts_of`` and ``load_with_resolution(pending=True)`` in one statement, each transfer with its
# two (locked) accounts. The transfers are read as they were when the statement began: one committed
# while it waited for the locks is not among them (see ``lock_and_load``).
_LOCK_AND_LOAD = """
WITH locked AS (
    SELECT id, code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending
    FROM ledger_accounts
    WHERE id IN (SELECT debit_account_id FROM ledger_transfers WHERE id = %s
                 UNION ALL SELECT credit_account_id FROM ledger_transfers WHERE id = %s)
    ORDER BY id FOR UPDATE
)
SELECT t.id, d.code, c.code, t.amount, t.currency, t.kind, t.state, t.pending_id, t.timeout_at,
       t.escrow_id, t.memo, t.user_data, t.linked_group, t.created_at,
       d.id, d.currency, d.flags, d.debits_posted, d.credits_posted, d.debits_pending, d.credits_pending,
       c.id, c.currency, c.flags, c.debits_posted, c.credits_posted, c.debits_pending, c.credits_pending
FROM ledger_transfers AS t
JOIN locked AS d ON d.id = t.debit_account_id
JOIN locked AS c ON c.id = t.credit_account_id
WHERE t.id IN (%s, %s) OR t.pending_id = %s
"""


def lock_and_load(
    transfer_id: uuid.UUID, pending_id: uuid.UUID
) -> tuple[dict[str, LockedAccount], dict[uuid.UUID, Transfer]]:
    """The two accounts of the pending transfer ``pending_id``, locked in id order, and the transfers among
    ``transfer_id``, ``pending_id`` and ``pending_id``'s resolutions that move money between them.

    One round trip. The transfers are those committed when the statement began: a caller that does
    not find the pending transfer must lock and read again (``lock_accounts_of``, ``load_with_resolution``);
    a resolution committed while the locks were awaited is refused by the unique index on ``pending_id``.
    """
    params = (pending_id, pending_id, transfer_id, pending_id, pending_id)
    accounts: dict[str, LockedAccount] = {}
    found: dict[uuid.UUID, Transfer] = {}
    for row in db.execute_sql(_LOCK_AND_LOAD, params).fetchall():
        found[row[0]] = _transfer(row[:14])
        for code, account in ((row[1], row[14:21]), (row[2], row[21:28])):
            accounts[code] = LockedAccount(account[0], code, account[1], frozenset(account[2]), *account[3:])
    return accounts, found


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


# The parts ``_WRITE`` and ``_WRITE_BATCH`` share: the transfer row's columns, and a leg's amounts added
# to its account (``leg``: id or account, dp, cp, dpe, cpe).
INSERT_TRANSFER = """INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, currency, kind,
    state, pending_id, timeout_at, escrow_id, memo, user_data, linked_group, created_at)"""
APPLY_LEGS = """UPDATE ledger_accounts AS a
    SET debits_posted = a.debits_posted + leg.dp, credits_posted = a.credits_posted + leg.cp,
        debits_pending = a.debits_pending + leg.dpe, credits_pending = a.credits_pending + leg.cpe"""

_WRITE = """
WITH row AS (
    {insert}
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)
    ON CONFLICT DO NOTHING
    RETURNING id
), legs AS (
    {apply_legs}
    FROM (VALUES (%s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::bigint),
                 (%s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::bigint)) AS leg (id, dp, cp, dpe, cpe)
    WHERE a.id = leg.id AND EXISTS (SELECT 1 FROM row)
)
SELECT count(*) FROM row
""".replace("{insert}", INSERT_TRANSFER).replace("{apply_legs}", APPLY_LEGS)


def row_values(transfer: Transfer, debit, credit) -> list:
    """The values of ``INSERT_TRANSFER``'s columns for ``transfer``, its accounts given as ``debit`` and ``credit``."""
    user_data = None if transfer.user_data is None else msgspec.json.encode(transfer.user_data).decode()
    return [
        transfer.id,
        debit,
        credit,
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


def write(transfer: Transfer, debit: LockedAccount, credit: LockedAccount, legs: tuple[Leg, Leg]) -> bool:
    """Insert ``transfer`` and apply its two legs; False (and nothing written) when its id, or its
    pending transfer's resolution, is already taken."""
    params = row_values(transfer, debit.id, credit.id)
    for leg in legs:
        params += [leg.account.id, leg.debits_posted, leg.credits_posted, leg.debits_pending, leg.credits_pending]
    (count,) = db.execute_sql(_WRITE, params).fetchone()
    return count == 1


# A linked batch in one statement: its transfers inserted only when none of their ids exists, and each
# account's legs of the rows inserted summed and applied (so the balances follow exactly what was written).
_WRITE_BATCH = """
WITH row AS (
    {insert}
    SELECT * FROM (VALUES {rows}) AS v
    WHERE NOT EXISTS (SELECT 1 FROM ledger_transfers WHERE id = ANY(%s::uuid[]))
    ON CONFLICT DO NOTHING
    RETURNING id
), legs AS (
    {apply_legs}
    FROM (SELECT l.account, sum(l.dp) AS dp, sum(l.cp) AS cp, sum(l.dpe) AS dpe, sum(l.cpe) AS cpe
          FROM (VALUES {legs}) AS l (transfer, account, dp, cp, dpe, cpe) JOIN row ON row.id = l.transfer
          GROUP BY l.account) AS leg
    WHERE a.id = leg.account
)
SELECT id FROM row
""".replace("{insert}", INSERT_TRANSFER).replace("{apply_legs}", APPLY_LEGS)
_BATCH_ROW = (
    "(%s::uuid, %s::bigint, %s::bigint, %s::bigint, %s::char(3), %s::text, %s::text, %s::uuid, %s::timestamptz,"
    " %s::uuid, %s::text, %s::jsonb, %s::uuid, %s::timestamptz)"
)
_BATCH_LEG = "(%s::uuid, %s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::bigint)"


def write_batch(batch: list[tuple[Transfer, LockedAccount, LockedAccount, tuple[Leg, Leg]]]) -> set[uuid.UUID]:
    """``write`` for several new transfers (distinct ids) in one statement; the ids written.

    None is written when one of the ids exists (the caller then goes one by one); the legs of
    exactly the rows written are applied, whatever happened.
    """
    rows: list = []
    legs: list = []
    for transfer, debit, credit, pair in batch:
        rows += row_values(transfer, debit.id, credit.id)
        for leg in pair:
            legs += [transfer.id, leg.account.id, leg.debits_posted, leg.credits_posted]
            legs += [leg.debits_pending, leg.credits_pending]
    sql = _WRITE_BATCH.format(rows=", ".join([_BATCH_ROW] * len(batch)), legs=", ".join([_BATCH_LEG] * 2 * len(batch)))
    ids = [transfer.id for transfer, *_ in batch]
    return {row[0] for row in db.execute_sql(sql, [*rows, ids, *legs]).fetchall()}


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
