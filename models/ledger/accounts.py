"""Ledger accounts: opened by a human code, holding running balances that transfers move.

An account's four balance columns are what its transfers add up to (checked by
``check_invariants``). Its flags limit what may be taken from it, in the code
and again by CHECK constraints in the database:

* ``debits_must_not_exceed_credits``: debits posted + debits pending never pass
  credits posted (an escrow's holding account, a user's wallet: never below zero);
* ``credits_must_not_exceed_debits``: the mirror image, for accounts that must
  never owe more than they were given.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass

from models.db import db
from models.ledger.errors import AccountExists, AccountNotFound, InvalidAccount

DEBITS_MUST_NOT_EXCEED_CREDITS = "debits_must_not_exceed_credits"
CREDITS_MUST_NOT_EXCEED_DEBITS = "credits_must_not_exceed_debits"
FLAGS = frozenset({DEBITS_MUST_NOT_EXCEED_CREDITS, CREDITS_MUST_NOT_EXCEED_DEBITS})
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_CODE = 200
MAX_KIND = 64


@dataclass(frozen=True)
class Account:
    id: int
    code: str
    kind: str
    currency: str
    flags: frozenset[str]
    created_at: datetime.datetime


@dataclass(frozen=True)
class Balance:
    """An account's balances in minor units at the moment it was read."""

    code: str
    currency: str
    flags: frozenset[str]
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def credit_balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def debit_balance(self) -> int:
        return self.debits_posted - self.credits_posted

    @property
    def available(self) -> int | None:
        """What a flagged account can still give, pending transfers counted; ``None`` when unflagged."""
        if DEBITS_MUST_NOT_EXCEED_CREDITS in self.flags:
            return self.credits_posted - self.debits_posted - self.debits_pending
        if CREDITS_MUST_NOT_EXCEED_DEBITS in self.flags:
            return self.debits_posted - self.credits_posted - self.credits_pending
        return None


def check_currency(currency: object) -> str:
    if not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
        raise InvalidAccount(f"a currency is three capital letters (ISO 4217), not {currency!r}")
    return currency


def _check_flags(flags: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(flags)
    unknown = chosen - FLAGS
    if unknown:
        raise InvalidAccount(f"unknown account flags: {sorted(unknown)}")
    if chosen == FLAGS:
        raise InvalidAccount("an account cannot limit both its debits and its credits")
    return chosen


_OPEN = """
INSERT INTO ledger_accounts (code, kind, currency, flags) VALUES (%s, %s, %s, %s)
ON CONFLICT (code) DO NOTHING
RETURNING id, code, kind, currency, flags, created_at
"""
_BY_CODE = "SELECT id, code, kind, currency, flags, created_at FROM ledger_accounts WHERE code = %s"


def _account(row) -> Account:
    id_, code, kind, currency, flags, created_at = row
    return Account(id_, code, kind, currency, frozenset(flags), created_at)


@dataclass(frozen=True)
class AccountSpec:
    """An account to open (``open_accounts``): its code, kind, currency and flags."""

    code: str
    kind: str
    currency: str = "USD"
    flags: frozenset[str] = frozenset()


def checked(spec: AccountSpec) -> AccountSpec:
    """``spec`` with its flags as a frozenset, or ``InvalidAccount`` when no account could be opened so."""
    if not isinstance(spec.code, str) or not 1 <= len(spec.code) <= MAX_CODE:
        raise InvalidAccount(f"an account code is 1 to {MAX_CODE} characters")
    if not isinstance(spec.kind, str) or not 1 <= len(spec.kind) <= MAX_KIND:
        raise InvalidAccount(f"an account kind is 1 to {MAX_KIND} characters")
    check_currency(spec.currency)
    return AccountSpec(spec.code, spec.kind, spec.currency, _check_flags(spec.flags))


def matching(spec: AccountSpec, account: Account) -> Account:
    """``account`` when it is what ``spec`` would open, else ``AccountExists``."""
    if (account.kind, account.currency, account.flags) != (spec.kind, spec.currency, spec.flags):
        raise AccountExists(
            f"account {spec.code!r} exists as kind={account.kind!r} currency={account.currency} "
            f"flags={sorted(account.flags)}"
        )
    return account


def open_account(code: str, *, kind: str, currency: str = "USD", flags: Iterable[str] = ()) -> Account:
    """The account ``code``, created if it is new; idempotent.

    An existing account is returned as it is when ``kind``, ``currency`` and
    ``flags`` match it; otherwise ``AccountExists`` and nothing changes.
    """
    spec = checked(AccountSpec(code, kind, currency, frozenset(flags)))
    row = db.execute_sql(_OPEN, (code, kind, currency, sorted(spec.flags))).fetchone()
    if row is None:
        row = db.execute_sql(_BY_CODE, (code,)).fetchone()
    return matching(spec, _account(row))


# New accounts inserted (in code order: two callers opening the same ones cannot deadlock), the others
# read, in one statement. The read sees the rows as they were when the statement began, so an account
# another transaction inserted meanwhile is in neither part; ``open_accounts`` reads it again.
_OPEN_MANY = """
WITH wanted (code, kind, currency, flags) AS (VALUES {rows}),
inserted AS (
    INSERT INTO ledger_accounts (code, kind, currency, flags)
    SELECT code, kind, currency, flags FROM wanted ORDER BY code
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code, kind, currency, flags, created_at
)
SELECT id, code, kind, currency, flags, created_at FROM inserted
UNION ALL
SELECT a.id, a.code, a.kind, a.currency, a.flags, a.created_at FROM ledger_accounts AS a JOIN wanted USING (code)
"""


def open_accounts(specs: Iterable[AccountSpec]) -> dict[str, Account]:
    """``open_account`` for several accounts in one round trip: ``{code: Account}``, each opened if new.

    Raises ``AccountExists`` (having opened the others) when one exists with another kind, currency
    or flags, ``InvalidAccount`` (having opened none) for a bad spec.
    """
    wanted = {spec.code: checked(spec) for spec in specs}
    if not wanted:
        return {}
    params: list = []
    for spec in wanted.values():
        params += [spec.code, spec.kind, spec.currency, sorted(spec.flags)]
    rows = ", ".join(["(%s, %s, %s::char(3), %s::text[])"] * len(wanted))
    found = {row[1]: _account(row) for row in db.execute_sql(_OPEN_MANY.format(rows=rows), params).fetchall()}
    for code in wanted.keys() - found.keys():
        found[code] = _account(db.execute_sql(_BY_CODE, (code,)).fetchone())
    return {code: matching(spec, found[code]) for code, spec in wanted.items()}


def get_account(code: str) -> Account:
    row = db.execute_sql(_BY_CODE, (code,)).fetchone()
    if row is None:
        raise AccountNotFound(f"no ledger account {code!r}")
    return _account(row)


_BALANCE = """
SELECT code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending
FROM ledger_accounts WHERE code = %s
"""


def balance(code: str) -> Balance:
    """The balances of account ``code`` (``AccountNotFound`` if there is none)."""
    row = db.execute_sql(_BALANCE, (code,)).fetchone()
    if row is None:
        raise AccountNotFound(f"no ledger account {code!r}")
    code_, currency, flags, *amounts = row
    return Balance(code_, currency, frozenset(flags), *amounts)
