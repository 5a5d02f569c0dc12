"""Paying money out through the provider: a seller's payout, a buyer's refund, once per job step.

``pay(ctx, step, escrow, kind, recipient_id, amount)`` works in three parts so
that no database lock is held while the provider works (the clearing account
is shared by every payment: a lock on it across a slow provider call would
stop every deposit and payout of the platform):

1. reserve, in a transaction of its own: the ``Payment`` row (id derived from
   the step's key) and a PENDING ledger transfer from the recipient's payable
   account to the provider's clearing account. A second payout cannot spend
   the reserved money; a run that comes back finds both and writes nothing new.
2. the provider call, the step's key as its idempotency key.
3. the outcome, in ``ctx.once(step)``: the pending transfer posted (the
   provider took it) or voided (it refused: the payment is failed and the money
   stays owed on the payable account, for an admin to see), and the payment's
   status.

A transient provider error (5xx, network) raises ``Transient`` before part 3:
the retry reserves nothing new and calls again with the same key, which the
provider answers with what it did the first time. A worker killed during the
call leaves the reservation; the recovered job does the same.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from models.accounts import User
from models.base import utcnow
from models.db import db
from models.escrow_ledger import payout_transfers, transfer_id
from models.escrows import Escrow
from models.ledger import post_pending, transfer, void_pending
from models.payments import Payment, advance_by_id
from services.payments import ProviderRejected, ProviderUnavailable
from tasks.base import Transient
from tasks.runtime import runtime

log = logging.getLogger("hearth.money")
KEY_NAMESPACE = uuid.UUID("8a3e1c0d-54b2-4f7e-b6a9-3c2d1e0f9b84")
MAX_FAILURE_MESSAGE = 500


class ProviderRefused(Exception):
    """The provider refused a payment for good; the job ends failed with this (safe) detail."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.public_detail = detail


def payment_id_for(key: str) -> uuid.UUID:
    """The payment row's id for an idempotency key: a retried step writes the same row, sends the same metadata."""
    return uuid.uuid5(KEY_NAMESPACE, key)


def destination_of(user) -> str | None:
    """Where a payout goes: the user's connected account; in the sandbox a test account derived from the user."""
    if user is not None and user.payout_account:
        return user.payout_account
    if runtime().payments.name == "sandbox" and user is not None:
        return "acct_sandbox_" + hashlib.sha256(str(user.id).encode()).hexdigest()[:16]
    return None


def deposit_of(escrow_id) -> Payment | None:
    """The escrow's collected deposit (the PaymentIntent refunds are made against)."""
    return (
        Payment.select()
        .where((Payment.escrow == escrow_id) & (Payment.kind == "deposit") & (Payment.status == "succeeded"))
        .order_by(Payment.created_at)
        .first()
    )


def _recipient(payment: Payment) -> User | None:
    """The payment's recipient as ``payment_row`` read it with the row in this run, else as it is now."""
    user_id = getattr(payment, "recipient_user_id", None)
    if user_id is not None:
        return User(id=user_id, payout_account=getattr(payment, "recipient_payout_account", None))
    return next(iter(User.raw("SELECT * FROM users WHERE id = %s", payment.recipient_id)), None)


def _call(escrow: Escrow, payment: Payment, kind: str, key: str):
    provider = runtime().payments
    currency = escrow.currency.lower()
    metadata = {"escrow_id": str(escrow.id), "payment_id": str(payment.id)}
    if kind == "payout":
        destination = destination_of(_recipient(payment))
        if destination is None:
            raise ProviderRejected("payout_account_missing", "the seller has no payout account", 400)
        return provider.payout(
            destination=destination,
            amount=payment.amount,
            currency=currency,
            idempotency_key=key,
            metadata=metadata,
            transfer_group=f"escrow_{escrow.id}",
        )
    deposit = deposit_of(escrow.id)
    if deposit is None or not deposit.provider_ref:
        raise ProviderRejected("deposit_missing", "no collected deposit to refund", 400)
    return provider.refund(
        payment_ref=deposit.provider_ref,
        amount=payment.amount,
        currency=currency,
        idempotency_key=key,
        metadata=metadata,
    )


# Written by hand: the query builder cost more than the statement (it runs for every payout and refund).
# With the row, its recipient's payout account (``recipient_user_id``, ``recipient_payout_account``): a
# payout's call needs it right after, and reads it here in the same round trip.
_PAYMENT_ROW = """
WITH written AS (
    INSERT INTO payments (id, escrow_id, kind, recipient_id, currency, amount, status, provider, idempotency_key,
                          created_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s, %s)
    ON CONFLICT DO NOTHING
    RETURNING *
)
SELECT written.*, u.id AS recipient_user_id, u.payout_account AS recipient_payout_account
FROM written LEFT JOIN users AS u ON u.id = written.recipient_id
"""


def payment_row(escrow: Escrow, kind: str, recipient_id, amount: int, key: str) -> Payment:
    """The ``Payment`` of the step ``key`` (id ``payment_id_for(key)``), written once, in the caller's transaction."""
    payment_id, now = payment_id_for(key), utcnow()
    params = (payment_id, escrow.id, kind, recipient_id, escrow.currency, amount, runtime().payments.name, key, now)
    # The row as written comes back with the insert; only a repeat (the row exists) reads it.
    written = next(iter(Payment.raw(_PAYMENT_ROW, *params, now)), None)
    return written if written is not None else Payment.get_by_id(payment_id)


def _reserve(escrow: Escrow, kind: str, recipient_id, amount: int, key: str) -> Payment:
    """The payment row and its PENDING transfer (recipient's payable → clearing), committed before the call.

    Both have ids derived from ``key``, so a run that comes back after a crash
    finds them and writes nothing new (the ledger replays a transfer of the same
    id and content as a no-op).
    """
    with db.atomic():
        payment = payment_row(escrow, kind, recipient_id, amount, key)
        pending, _post_id, _void_id = payout_transfers(escrow, payment.id, recipient_id, amount)
        transfer(pending)
    return payment


def _outcome(payment: Payment, result, refused: ProviderRejected | None) -> dict:
    """The step's result, from what the provider answered: ``payment_id``, ``status``, and
    ``provider_ref`` or ``failure_code``."""
    if refused is not None:
        return {"payment_id": str(payment.id), "status": "failed", "failure_code": refused.code[:100]}
    # A Stripe refund may still be pending: it is taken (the money left clearing) and its end comes by webhook.
    status = "processing" if result.status in ("pending", "requires_action") else "succeeded"
    return {"payment_id": str(payment.id), "status": status, "provider_ref": result.id}


def _finish(payment: Payment, outcome: dict, refused: ProviderRejected | None) -> None:
    """The ``outcome``, on the payment row and the ledger (inside the step's ``once``).

    The payment row first (``advance_by_id`` locks it), then the ledger's accounts: the
    order the provider's webhooks take them in.
    """
    pending_id, post_id, void_id = (
        transfer_id(part, payment.id) for part in ("provider", "provider-post", "provider-void")
    )
    if refused is not None:
        code, message = outcome["failure_code"], refused.message[:MAX_FAILURE_MESSAGE]
        advance_by_id(payment.id, "failed", failure_code=code, failure_message=message)
        void_pending(void_id, pending_id)
        log.warning(
            "the provider refused a payment",
            extra={"payment_id": str(payment.id), "kind": payment.kind, "code": code, "status": refused.status},
        )
        return
    advance_by_id(payment.id, outcome["status"], provider_ref=outcome["provider_ref"])
    post_pending(post_id, pending_id)


def pay(ctx, step: str, escrow: Escrow, kind: str, recipient_id, amount: int, reserved: Payment | None = None) -> dict:
    """Pay ``amount`` to ``recipient_id`` (``kind`` payout or refund) once per (job, ``step``).

    Three parts, none holding a lock while the provider works: the reservation
    (payment row and pending transfer, committed), the provider call with the
    step's key as its idempotency key, and the outcome (post or void, the
    payment's status) recorded by ``ctx.once(step)``. ``reserved`` is the payment
    when the caller committed the reservation itself (``payment_row`` and
    ``models.escrow_ledger.Reservation``, in its own step's transaction). A crash
    or a transient error anywhere before the outcome's record means the next run
    reserves again (writing nothing new) and calls again with the same key, which
    the provider answers with what it did the first time. Returns ``{"payment_id",
    "status", "provider_ref"}`` (``succeeded``, ``processing``, or ``failed`` with
    ``failure_code``). A run that did not see the step's record (a first attempt
    racing a stale run of the same job) still pays once: the provider answers the
    repeated key with the first call's result and ``once`` returns the first record.
    """
    if ctx.attempt > 1:  # a run after a crash or a retry: the step may be done already
        done, result = ctx.recorded(step)
        if done:
            return result
    key = ctx.effect_key(step)
    payment = reserved if reserved is not None else _reserve(escrow, kind, recipient_id, amount, key)
    answer, refused = None, None
    try:
        answer = _call(escrow, payment, kind, key)
    except ProviderUnavailable as exc:
        raise Transient(str(exc)) from exc
    except ProviderRejected as exc:
        refused = exc
    outcome = _outcome(payment, answer, refused)
    return ctx.once(step, lambda key: _finish(payment, outcome, refused), durable=False, result=outcome)


__all__ = ["ProviderRefused", "deposit_of", "destination_of", "pay", "payment_id_for", "payment_row"]
