"""A new transfer in one statement: its accounts locked, its checks made and, if they pass, it and its legs written.

``transfer(spec)`` without accounts to open takes this path: one round trip
instead of a lock and a write, and none for a transaction of its own (a single
statement is one). The statement locks both accounts in id order (``FOR
UPDATE``, as ``lock_accounts``), and inserts the row and applies both legs only
when both accounts exist in the transfer's currency and neither's flag would be
broken by its leg, the same rules ``check_legs`` applies. Whatever happened, it
returns the accounts as it locked them (before the legs), so when it wrote
nothing the caller runs the checks in Python on those rows to say why, or finds
that the id was taken (a replay or ``TransferExists``).
"""

from __future__ import annotations

from models.ledger.accounts import CREDITS_MUST_NOT_EXCEED_DEBITS, DEBITS_MUST_NOT_EXCEED_CREDITS
from models.ledger.postings import APPLY_LEGS, INSERT_TRANSFER, LockedAccount, Transfer, row_values
from models.prepared import Prepared

# The transfer's two legs: what it adds to the debit account's and the credit account's balance columns
# (posted debits, posted credits, pending debits, pending credits). A flag's rule over an account's
# balances after its leg: debits (posted + pending) <= posted credits, or credits (posted + pending)
# <= posted debits.
_LOCK_CHECK_WRITE = """
WITH amounts AS (
    SELECT CASE WHEN %(state)s::text = 'pending' THEN 0 ELSE %(amount)s::bigint END AS posted,
           CASE WHEN %(state)s::text = 'pending' THEN %(amount)s::bigint ELSE 0 END AS held
), leg (code, dp, cp, dpe, cpe) AS (
    SELECT %(debit)s::text, posted, 0::bigint, held, 0::bigint FROM amounts
    UNION ALL SELECT %(credit)s::text, 0::bigint, posted, 0::bigint, held FROM amounts
), locked AS (
    SELECT id, code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending
    FROM ledger_accounts WHERE code IN (%(debit)s::text, %(credit)s::text)
    ORDER BY id FOR UPDATE
), passed AS (
    SELECT count(*) = 2 AS ok
    FROM locked JOIN leg USING (code)
    WHERE locked.currency = %(currency)s::char(3)
      AND (NOT '{debits_flag}' = ANY(locked.flags)
           OR locked.debits_posted + leg.dp + locked.debits_pending + leg.dpe <= locked.credits_posted + leg.cp)
      AND (NOT '{credits_flag}' = ANY(locked.flags)
           OR locked.credits_posted + leg.cp + locked.credits_pending + leg.cpe <= locked.debits_posted + leg.dp)
), row AS (
    {insert}
    SELECT %(id)s::uuid, d.id, c.id, %(amount)s::bigint, %(currency)s::char(3), %(kind)s::text, %(state)s::text,
           %(pending_id)s::uuid, %(timeout_at)s::timestamptz, %(escrow_id)s::uuid, %(memo)s::text,
           %(user_data)s::jsonb, %(linked_group)s::uuid, %(created_at)s::timestamptz
    FROM locked AS d, locked AS c
    WHERE d.code = %(debit)s::text AND c.code = %(credit)s::text AND (SELECT ok FROM passed)
    ON CONFLICT DO NOTHING
    RETURNING id
), moved AS (
    {apply_legs}
    FROM locked JOIN leg USING (code)
    WHERE a.id = locked.id AND EXISTS (SELECT 1 FROM row)
)
SELECT (SELECT count(*) FROM row), id, code, currency, flags, debits_posted, credits_posted, debits_pending,
       credits_pending
FROM locked
"""
for _name, _part in (
    ("{debits_flag}", DEBITS_MUST_NOT_EXCEED_CREDITS),
    ("{credits_flag}", CREDITS_MUST_NOT_EXCEED_DEBITS),
    ("{insert}", INSERT_TRANSFER),
    ("{apply_legs}", APPLY_LEGS),
):
    _LOCK_CHECK_WRITE = _LOCK_CHECK_WRITE.replace(_name, _part)
# The values of ``INSERT_TRANSFER``'s columns (``row_values``), in its order, the accounts by code; a new
# transfer has no ``pending_id``.
_TYPES = {
    "id": "uuid",
    "debit": "text",
    "credit": "text",
    "amount": "bigint",
    "currency": "text",
    "kind": "text",
    "state": "text",
    "pending_id": "uuid",
    "timeout_at": "timestamptz",
    "escrow_id": "uuid",
    "memo": "text",
    "user_data": "jsonb",
    "linked_group": "uuid",
    "created_at": "timestamptz",
}
_STATEMENT = Prepared("ledger_lock_check_write", _TYPES, _LOCK_CHECK_WRITE)


def lock_check_write(transfer: Transfer) -> tuple[bool, dict[str, LockedAccount]]:
    """Write the new (posted or pending) ``transfer`` if its accounts exist and its checks pass.

    ``(written, accounts)``: the accounts found, as they were locked (before the legs).
    Not written: an account is missing or in another currency, a flag would be broken,
    or the id is taken; the caller tells which from ``accounts``.
    """
    rows = _STATEMENT.execute(
        dict(zip(_TYPES, row_values(transfer, transfer.debit, transfer.credit), strict=True))
    ).fetchall()
    accounts = {row[2]: LockedAccount(row[1], row[2], row[3], frozenset(row[4]), *row[5:]) for row in rows}
    return bool(rows) and rows[0][0] == 1, accounts


__all__ = ["lock_check_write"]
