"""Reading the ledger back: an escrow's entries, and the invariants that must always hold."""

from __future__ import annotations

import uuid

from models.db import db
from models.ledger.postings import load_where


def entries_for_escrow(escrow_id: uuid.UUID) -> list[dict]:
    """Every transfer that names ``escrow_id`` (resolutions of its pending ones too), oldest first.

    Each is a JSON-able dict: id, kind, debit, credit (codes), amount, currency,
    state, pending_id, escrow_id, memo, created_at (ISO 8601).
    """
    return [found.as_dict() for found in load_where("t.escrow_id = %s", (escrow_id,))]


_TOTALS = """
SELECT coalesce(sum(debits_posted), 0) - coalesce(sum(credits_posted), 0),
       coalesce(sum(debits_pending), 0) - coalesce(sum(credits_pending), 0)
FROM ledger_accounts
"""

# Each account's balances recomputed from its transfers: posted and post_pending rows move money,
# a pending row holds it until a resolution names it.
_RECOMPUTED = """
WITH legs AS (
    SELECT t.debit_account_id AS account_id, t.amount AS dp, 0 AS cp, 0 AS dpe, 0 AS cpe
    FROM ledger_transfers AS t WHERE t.state IN ('posted', 'post_pending')
    UNION ALL
    SELECT t.credit_account_id, 0, t.amount, 0, 0
    FROM ledger_transfers AS t WHERE t.state IN ('posted', 'post_pending')
    UNION ALL
    SELECT p.debit_account_id, 0, 0, p.amount, 0 FROM ledger_transfers AS p
    WHERE p.state = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_transfers AS r WHERE r.pending_id = p.id)
    UNION ALL
    SELECT p.credit_account_id, 0, 0, 0, p.amount FROM ledger_transfers AS p
    WHERE p.state = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_transfers AS r WHERE r.pending_id = p.id)
), sums AS (
    SELECT account_id, sum(dp) AS dp, sum(cp) AS cp, sum(dpe) AS dpe, sum(cpe) AS cpe FROM legs GROUP BY account_id
)
SELECT a.code, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
       coalesce(s.dp, 0), coalesce(s.cp, 0), coalesce(s.dpe, 0), coalesce(s.cpe, 0)
FROM ledger_accounts AS a LEFT JOIN sums AS s ON s.account_id = a.id
WHERE (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
      IS DISTINCT FROM (coalesce(s.dp, 0), coalesce(s.cp, 0), coalesce(s.dpe, 0), coalesce(s.cpe, 0))
ORDER BY a.code
"""

_OVERDRAWN = """
SELECT code FROM ledger_accounts
WHERE (flags @> ARRAY['debits_must_not_exceed_credits'] AND debits_posted + debits_pending > credits_posted)
   OR (flags @> ARRAY['credits_must_not_exceed_debits'] AND credits_posted + credits_pending > debits_posted)
ORDER BY code
"""

# A resolution must match what it resolves: same accounts and currency, no more than was reserved.
_BAD_RESOLUTIONS = """
SELECT r.id FROM ledger_transfers AS r JOIN ledger_transfers AS p ON p.id = r.pending_id
WHERE p.state <> 'pending' OR r.debit_account_id <> p.debit_account_id
   OR r.credit_account_id <> p.credit_account_id OR r.currency <> p.currency OR r.amount > p.amount
   OR (r.state = 'void_pending' AND r.amount <> p.amount)
ORDER BY r.seq
"""


def check_invariants() -> list[str]:
    """What is wrong with the ledger, one sentence per problem; empty when every invariant holds.

    Debits equal credits over all accounts (posted and pending); each account's
    balances equal the sums of its transfers; no flagged account breaks its
    flag; every resolution matches its pending transfer.
    """
    problems = []
    posted, pending = db.execute_sql(_TOTALS).fetchone()
    if posted:
        problems.append(f"posted debits minus posted credits over all accounts is {posted}, not 0")
    if pending:
        problems.append(f"pending debits minus pending credits over all accounts is {pending}, not 0")
    for code, *columns in db.execute_sql(_RECOMPUTED).fetchall():
        problems.append(
            f"account {code!r} holds (debits_posted, credits_posted, debits_pending, credits_pending) = "
            f"{tuple(columns[:4])} but its transfers add up to {tuple(int(v) for v in columns[4:])}"
        )
    for (code,) in db.execute_sql(_OVERDRAWN).fetchall():
        problems.append(f"account {code!r} breaks its flag")
    for (transfer_id,) in db.execute_sql(_BAD_RESOLUTIONS).fetchall():
        problems.append(f"transfer {transfer_id} does not match the pending transfer it resolves")
    return problems
