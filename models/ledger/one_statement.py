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
    SELECT CASE WHEN $7 = 'pending' THEN 0 ELSE $4 END AS posted, CASE WHEN $7 = 'pending' THEN $4 ELSE 0 END AS held
), leg (code, dp, cp, dpe, cpe) AS (
    SELECT $2, posted, 0::bigint, held, 0::bigint FROM amounts
    UNION ALL SELECT $3, 0::bigint, posted, 0::bigint, held FROM amounts
), locked AS (
    SELECT id, code, currency, flags, debits_posted, credits_posted, debits_pending, credits_pending
    FROM ledger_accounts WHERE code IN ($2, $3)
    ORDER BY id FOR UPDATE
), passed AS (
    SELECT count(*) = 2 AS ok
    FROM locked JOIN leg USING (code)
    WHERE locked.currency = $5::char(3)
      AND (NOT '{debits_flag}' = ANY(locked.flags)
           OR locked.debits_posted + leg.dp + locked.debits_pending + leg.dpe <= locked.credits_posted + leg.cp)
      AND (NOT '{credits_flag}' = ANY(locked.flags)
           OR locked.credits_posted + leg.cp + locked.credits_pending + leg.cpe <= locked.debits_posted + leg.dp)
), row AS (
    {insert}
    SELECT $1, d.id, c.id, $4, $5::char(3), $6, $7, $8, $9, $10, $11, $12, $13, $14
    FROM locked AS d, locked AS c
    WHERE d.code = $2 AND c.code = $3 AND (SELECT ok FROM passed)
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
# The values of ``INSERT_TRANSFER``'s columns (``row_values``), the accounts by code: $1 id, $2 debit,
# $3 credit, $4 amount, $5 currency, $6 kind, $7 state, $8 pending_id (none: a new transfer), $9 timeout_at,
# $10 escrow_id, $11 memo, $12 user_data, $13 linked_group, $14 created_at.
_TYPES = ("uuid", "text", "text", "bigint", "text", "text", "text", "uuid", "timestamptz", "uuid", "text", "jsonb")
_STATEMENT = Prepared("ledger_lock_check_write", (*_TYPES, "uuid", "timestamptz"), _LOCK_CHECK_WRITE)


def lock_check_write(transfer: Transfer) -> tuple[bool, dict[str, LockedAccount]]:
    """Write the new (posted or pending) ``transfer`` if its accounts exist and its checks pass.

    ``(written, accounts)``: the accounts found, as they were locked (before the legs).
    Not written: an account is missing or in another currency, a flag would be broken,
    or the id is taken; the caller tells which from ``accounts``.
    """
    rows = _STATEMENT.execute(row_values(transfer, transfer.debit, transfer.credit)).fetchall()
    accounts = {row[2]: LockedAccount(row[1], row[2], row[3], frozenset(row[4]), *row[5:]) for row in rows}
    return bool(rows) and rows[0][0] == 1, accounts


__all__ = ["lock_check_write"]
