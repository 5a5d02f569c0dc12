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


def open_account(code: str, *, kind: str, currency: str = "USD", flags: Iterable[str] = ()) -> Account:
    """The account ``code``, created if it is new; idempotent.

    An existing account is returned as it is when ``kind``, ``currency`` and
    ``flags`` match it; otherwise ``AccountExists`` and nothing changes.
    """
    if not isinstance(code, str) or not 1 <= len(code) <= MAX_CODE:
        raise InvalidAccount(f"an account code is 1 to {MAX_CODE} characters")
    if not isinstance(kind, str) or not 1 <= len(kind) <= MAX_KIND:
        raise InvalidAccount(f"an account kind is 1 to {MAX_KIND} characters")
    check_currency(currency)
    chosen = _check_flags(flags)
    row = db.execute_sql(_OPEN, (code, kind, currency, sorted(chosen))).fetchone()
    if row is None:
        row = db.execute_sql(_BY_CODE, (code,)).fetchone()
    account = _account(row)
    if (account.kind, account.currency, account.flags) != (kind, currency, chosen):
        raise AccountExists(
            f"account {code!r} exists as kind={account.kind!r} currency={account.currency} "
            f"flags={sorted(account.flags)}"
        )
    return account


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
