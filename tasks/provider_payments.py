"""Paying money out through the provider: a seller's payout, a buyer's refund, as one once-only step.

``send(escrow, kind, recipient_id, amount, key)`` runs inside ``ctx.once(step, ...)``
(its ``key`` is the provider's idempotency key) and writes, in that step's
transaction: the ``Payment`` row (id derived from the key), a PENDING ledger
transfer from the recipient's payable account to the provider's clearing
account, the provider call, and then either the posting of that transfer (the
provider took it) or its void (the provider refused: the payment is failed
and the money stays owed on the payable account, for an admin to see).

A transient provider error (5xx, network) raises ``Transient``: the step's
transaction rolls back whole (payment row, pending transfer, once record) and
the retry sends the same key, which the provider answers with what it did
the first time. A worker killed during the call leaves nothing committed
either; the recovered job calls again with the same key.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from models.accounts import User
from models.escrow_ledger import payout_transfers
from models.escrows import Escrow
from models.ledger import post_pending, transfer, void_pending
from models.payments import Payment, advance
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


def _call(escrow: Escrow, payment: Payment, kind: str, key: str):
    provider = runtime().payments
    currency = escrow.currency.lower()
    metadata = {"escrow_id": str(escrow.id), "payment_id": str(payment.id)}
    if kind == "payout":
        recipient = next(iter(User.raw("SELECT * FROM users WHERE id = %s", payment.recipient_id)), None)
        destination = destination_of(recipient)
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


def send(escrow: Escrow, kind: str, recipient_id, amount: int, key: str) -> dict:
    """Pay ``amount`` to ``recipient_id`` (``kind`` payout or refund) once; see the module's docstring.

    Returns ``{"payment_id", "status", "provider_ref"}`` (status ``succeeded``,
    ``processing`` or ``failed`` with ``failure_code``): the once record.
    """
    payment = Payment.create(
        id=payment_id_for(key),
        escrow=escrow.id,
        kind=kind,
        recipient=recipient_id,
        currency=escrow.currency,
        amount=amount,
        provider=runtime().payments.name,
        idempotency_key=key,
    )
    pending, post_id, void_id = payout_transfers(escrow, payment.id, recipient_id, amount)
    transfer(pending)
    try:
        result = _call(escrow, payment, kind, key)
    except ProviderUnavailable as exc:
        raise Transient(str(exc)) from exc
    except ProviderRejected as exc:
        void_pending(void_id, pending.id)
        advance(payment, "failed", failure_code=exc.code[:100], failure_message=exc.message[:MAX_FAILURE_MESSAGE])
        log.warning(
            "the provider refused a payment",
            extra={"payment_id": str(payment.id), "kind": kind, "code": exc.code, "status": exc.status},
        )
        return {"payment_id": str(payment.id), "status": "failed", "failure_code": payment.failure_code}
    post_pending(post_id, pending.id)
    # A Stripe refund may still be pending: it is taken (the money left clearing) and its end comes by webhook.
    status = "processing" if result.status in ("pending", "requires_action") else "succeeded"
    advance(payment, status, provider_ref=result.id)
    return {"payment_id": str(payment.id), "status": status, "provider_ref": result.id}


__all__ = ["ProviderRefused", "deposit_of", "destination_of", "payment_id_for", "send"]
