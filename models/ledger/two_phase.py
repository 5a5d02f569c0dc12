"""Two-phase transfers: a pending transfer is posted (in full or in part) or voided, at most once.

The resolution is a transfer of its own (``state`` ``post_pending`` or
``void_pending``, ``pending_id`` naming the pending one); a unique index on
``pending_id`` makes "at most once" a fact of the database, and the account
locks make a second resolution see the first. Like every transfer, a
resolution's id is its idempotency key.

A pending transfer past its ``timeout_at`` can no longer be posted
(``PendingExpired``); it can still be voided, which is what ``expire_pending``
does for every one of them.
"""

from __future__ import annotations

import datetime
import uuid

from models.base import utcnow
from models.db import db
from models.ledger.errors import (
    InvalidAmount,
    InvalidTransfer,
    PendingAlreadyResolved,
    PendingExpired,
    PendingNotFound,
    TransferExists,
)
from models.ledger.postings import (
    Leg,
    Transfer,
    load_with_resolution,
    lock_accounts_of,
    lock_and_load,
    transaction,
    write,
)

POST, VOID = "post_pending", "void_pending"
# Expiry voids under an id derived from the pending transfer's: two sweeps at once void it once.
EXPIRY_NAMESPACE = uuid.UUID("5b0c6f5e-3f47-4d0a-9a53-8d9a4c1e7b21")
EXPIRY_BATCH = 500


def post_pending(
    id: uuid.UUID, pending_id: uuid.UUID, *, amount: int | None = None, now: datetime.datetime | None = None
) -> Transfer:
    """Post the pending transfer ``pending_id`` under the new transfer id ``id``.

    ``amount`` (default: all of it) may be less than was reserved; the rest is
    released. Raises ``PendingNotFound``, ``PendingAlreadyResolved``,
    ``PendingExpired``, ``InvalidAmount`` or ``TransferExists``.
    """
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
        raise InvalidAmount(f"an amount is a positive whole number of minor units, not {amount!r}")
    return _resolve(id, pending_id, POST, amount, now or utcnow())


def void_pending(id: uuid.UUID, pending_id: uuid.UUID, *, now: datetime.datetime | None = None) -> Transfer:
    """Void the pending transfer ``pending_id`` under the new transfer id ``id``: what it reserved is released."""
    return _resolve(id, pending_id, VOID, None, now or utcnow())


def _replay(existing: Transfer, pending_id: uuid.UUID, state: str, amount: int | None) -> Transfer:
    if (existing.state, existing.pending_id, existing.amount) != (state, pending_id, amount):
        raise TransferExists(f"transfer {existing.id} exists with different content")
    return existing.as_replayed()


def _resolve(id: uuid.UUID, pending_id: uuid.UUID, state: str, amount: int | None, now: datetime.datetime) -> Transfer:
    if not isinstance(id, uuid.UUID) or not isinstance(pending_id, uuid.UUID):
        raise InvalidTransfer("transfer ids are UUIDs")
    with transaction():
        # The pending transfer's accounts locked and its transfers read in one round trip. A resolution
        # committed by whoever held the locks is not among them, but the unique index on ``pending_id``
        # refuses this one's write then (below); a pending transfer not seen is looked for again.
        accounts, found = lock_and_load(id, pending_id)
        if pending_id not in found:
            accounts = lock_accounts_of(pending_id)
            found = {transfer.id: transfer for transfer in load_with_resolution(id, pending_id, pending=True)}
        pending = found.pop(pending_id, None)
        if pending is None or pending.state != "pending":
            existing = found.get(id)
            if existing is not None:
                return _replay(existing, pending_id, state, amount)
            raise PendingNotFound(f"no pending transfer {pending_id}")
        moved = pending.amount if amount is None or state == VOID else amount
        if id in found:
            return _replay(found[id], pending_id, state, moved)
        for other in found.values():
            raise PendingAlreadyResolved(f"pending transfer {pending_id} was already resolved ({other.state})")
        if state == POST and pending.timeout_at is not None and pending.timeout_at <= now:
            raise PendingExpired(f"pending transfer {pending_id} expired at {pending.timeout_at.isoformat()}")
        if moved > pending.amount:
            raise InvalidAmount(f"{moved} is more than the {pending.amount} pending transfer {pending_id} holds")
        debit, credit = accounts[pending.debit], accounts[pending.credit]
        posted = moved if state == POST else 0
        legs = (
            Leg(debit, debits_posted=posted, debits_pending=-pending.amount),
            Leg(credit, credits_posted=posted, credits_pending=-pending.amount),
        )
        stored = Transfer(
            id=id,
            debit=pending.debit,
            credit=pending.credit,
            amount=moved,
            currency=pending.currency,
            kind=pending.kind,
            state=state,
            pending_id=pending_id,
            timeout_at=None,
            escrow_id=pending.escrow_id,
            memo=None,
            user_data=None,
            linked_group=None,
            created_at=now,
        )
        if not write(stored, debit, credit, legs):
            # A resolution committed while this one waited for the locks (or, without them, in between).
            for found in load_with_resolution(id, pending_id):
                if found.id == id:
                    return _replay(found, pending_id, state, moved)
            raise PendingAlreadyResolved(f"pending transfer {pending_id} was already resolved")
        return stored


_EXPIRED = """
SELECT p.id FROM ledger_transfers AS p
WHERE p.state = 'pending' AND p.timeout_at <= %s
  AND NOT EXISTS (SELECT 1 FROM ledger_transfers AS r WHERE r.pending_id = p.id)
ORDER BY p.timeout_at
LIMIT %s
"""


def expiry_id(pending_id: uuid.UUID) -> uuid.UUID:
    """The id of the void transfer with which ``expire_pending`` ends ``pending_id``."""
    return uuid.uuid5(EXPIRY_NAMESPACE, str(pending_id))


def expire_pending(now: datetime.datetime | None = None, *, limit: int = EXPIRY_BATCH) -> int:
    """Void up to ``limit`` pending transfers whose timeout has passed; returns how many this call voided."""
    when = now or utcnow()
    voided = 0
    for (pending_id,) in db.execute_sql(_EXPIRED, (when, limit)).fetchall():
        try:
            voided += not void_pending(expiry_id(pending_id), pending_id, now=when).replayed
        except PendingAlreadyResolved:
            continue  # posted or voided by someone else since the query: nothing left to expire
    return voided
