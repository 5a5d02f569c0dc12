"""``payments.apply_event``: what a verified provider event (``payment_events``) does to our payments.

* ``payment_intent.succeeded`` of a deposit: in ONE transaction (``ctx.once``)
  the ledger transfer clearing → escrow, ``escrow.held``, the escrow ``funded``
  and the parties told. The deposit's transfer id derives from the payment and
  the payment's status only moves forward, so an event delivered again, or a
  second event about the same success, funds nothing twice. A deposit that
  arrives after its escrow ended (cancelled) is posted, moved on to the buyer's
  payable account at once, recorded in the escrow's history and refunded in
  full through the provider (a ``refund`` payment).
* ``payment_intent.payment_failed`` / ``canceled`` / ``processing``: the
  deposit's status moves to what the event says unless a newer event (by the
  provider's event time) about the deposit is stored, or the payment already
  succeeded or was canceled (``models.payments.advance``). A failure tells the parties.
* ``refund.updated`` (succeeded) completes a refund still processing.
* ``refund.failed`` (or ``refund.updated`` failed/canceled) and
  ``transfer.reversed``: the provider gave the money back, so the payment is
  ``failed`` (admins see it) and the ledger posts it back: clearing → the
  recipient's payable account, where it is owed again until an admin pays it.
"""

from __future__ import annotations

import logging
import uuid

from models.escrow_ledger import post_deposit, post_reversal, refund_late_deposit
from models.escrows import Escrow, lock, record
from models.money_notices import amount, escrow_notice
from models.payment_events import PaymentEvent
from models.payments import Payment, advance, retryable, reverse
from tasks.base import JobContext, job_task
from tasks.provider_payments import ProviderRefused, pay

log = logging.getLogger("hearth.money")
DEPOSIT_STATUS = {
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "canceled",
    "payment_intent.processing": "processing",
}


def _object(event: PaymentEvent) -> dict:
    return ((event.payload or {}).get("data") or {}).get("object") or {}


def _payment_of(event: PaymentEvent) -> Payment | None:
    """The payment an event is about: by the provider's object id, else by the payment id in its metadata."""
    payment = Payment.get_or_none(Payment.provider_ref == event.object_id)
    if payment is not None:
        return payment
    try:
        payment_id = uuid.UUID(str((_object(event).get("metadata") or {}).get("payment_id")))
    except ValueError:
        return None
    return Payment.get_or_none(Payment.id == payment_id)


def _locked(payment_id) -> tuple[Escrow, Payment]:
    """The payment's escrow, then the payment, locked in that order (as the settlement job locks them)."""
    escrow_id = Payment.select(Payment.escrow).where(Payment.id == payment_id).scalar()
    escrow = lock(escrow_id)
    payment = Payment.select().where(Payment.id == payment_id).for_update().first()
    return escrow, payment


def _fund(payment_id, event: PaymentEvent) -> dict:
    escrow, payment = _locked(payment_id)
    if payment.status == "succeeded":
        return {"funded": False, "already": True}
    post_deposit(escrow, payment.id, payment.amount)
    advance(payment, "succeeded", provider_ref=payment.provider_ref or event.object_id)
    data = {"payment_id": str(payment.id), "event_id": event.id}
    if escrow.status == "awaiting_deposit":
        Escrow.update(held=payment.amount).where(Escrow.id == escrow.id).execute()
        escrow.held = payment.amount
        record(escrow, "funded", data=data, to_status="funded")
        escrow_notice(
            escrow,
            "escrow.funded",
            title="Deposit received",
            body=f"The {amount(escrow)} deposit arrived and is held in escrow.",
        )
        return {"funded": True, "held": payment.amount}
    # Too late: the escrow ended (cancelled) before the money arrived. It goes straight back.
    refund_late_deposit(escrow, payment.id, payment.amount)
    record(
        escrow,
        "late_deposit_refunded",
        reason=f"the deposit arrived after the escrow was {escrow.status}; it is refunded in full",
        data=data,
    )
    return {"funded": False, "late": True, "amount": payment.amount}


def _deposit_succeeded(ctx: JobContext, event: PaymentEvent, payment: Payment) -> dict:
    outcome = ctx.once("apply", lambda key: _fund(payment.id, event))
    if outcome.get("late"):
        escrow = Escrow.get_by_id(payment.escrow_id)
        refund = pay(ctx, "late_refund", escrow, "refund", escrow.buyer_id, outcome["amount"])
        outcome = dict(outcome, refund=refund)
        if refund["status"] == "failed":
            raise ProviderRefused("The provider refused the refund of a late deposit; an admin will look into it.")
    return outcome


def _superseded(event: PaymentEvent) -> bool:
    """A newer event about the same deposit is stored: it says the current state, this one is history."""
    newer = (
        (PaymentEvent.object_id == event.object_id)
        & (PaymentEvent.created > event.created)
        & PaymentEvent.type.in_(("payment_intent.succeeded", *DEPOSIT_STATUS))
    )
    return PaymentEvent.select().where(newer).exists()


def _deposit_status(ctx: JobContext, event: PaymentEvent, payment: Payment) -> dict:
    status = DEPOSIT_STATUS[event.type]
    if _superseded(event):
        return {"status": payment.status, "moved": False, "superseded": True}

    def apply(key: str) -> dict:
        escrow, locked = _locked(payment.id)
        values = {}
        if status == "failed":
            error = _object(event).get("last_payment_error") or {}
            values = {
                "failure_code": str(error.get("code") or "payment_failed")[:100],
                "failure_message": str(error.get("message") or "The payment failed.")[:500],
            }
        moved = advance(locked, status, **values)
        if moved and status in ("failed", "canceled") and escrow.status == "awaiting_deposit":
            escrow_notice(
                escrow,
                "escrow.payment_failed",
                title="Deposit payment failed",
                body=f"The payment of the {amount(escrow)} deposit {status}. "
                f"It is due by {escrow.deposit_due_at:%Y-%m-%d %H:%M} UTC.",
                dedupe=event.id,
            )
        return {"status": locked.status, "moved": moved}

    return ctx.once("apply", apply)


def _reversed(ctx: JobContext, event: PaymentEvent, payment: Payment) -> dict:
    """The provider undid a refund or a payout it had made: failed, and owed again on the ledger."""

    def apply(key: str) -> dict:
        escrow, locked = _locked(payment.id)
        if locked.status == "failed":
            return {"reversed": False, "status": "failed"}
        post_reversal(escrow, locked.id, locked.recipient_id, locked.amount)
        reverse(locked, code=event.type, message=f"The provider reported {event.type} ({event.id}).")
        record(escrow, "payment_reversed", data={"payment_id": str(locked.id), "kind": locked.kind, "event": event.id})
        escrow_notice(
            escrow,
            "escrow.payment_failed",
            title="A payment did not go through",
            body=f"The {locked.kind} of the {amount(escrow)} deposit was returned by the payment provider. "
            "Our team will contact you.",
            dedupe=event.id,
        )
        return {"reversed": True, "status": "failed"}

    return ctx.once("apply", apply)


def _refund_updated(ctx: JobContext, event: PaymentEvent, payment: Payment) -> dict:
    status = _object(event).get("status")
    if status in ("failed", "canceled"):
        return _reversed(ctx, event, payment)
    if status != "succeeded":
        return {"status": payment.status, "moved": False}

    def apply(key: str) -> dict:
        _, locked = _locked(payment.id)
        return {"status": "succeeded", "moved": advance(locked, "succeeded")}

    return ctx.once("apply", apply)


HANDLERS = {
    "payment_intent.succeeded": ("deposit", _deposit_succeeded),
    **dict.fromkeys(DEPOSIT_STATUS, ("deposit", _deposit_status)),
    "refund.updated": ("refund", _refund_updated),
    "refund.failed": ("refund", _reversed),
    "transfer.reversed": ("payout", _reversed),
}


def _replaced(old_id, sent: dict) -> dict:
    escrow, old = _locked(old_id)
    if old.status == "failed":
        advance(old, "canceled")  # replaced: the admin list of failed payments no longer shows it
        record(
            escrow,
            "payment_retried",
            data={
                "payment_id": str(old.id),
                "retry_id": sent["payment_id"],
                "kind": old.kind,
                "status": sent["status"],
            },
        )
        log.info("a failed payment was sent again", extra={"escrow_id": str(escrow.id), "payment_id": str(old.id)})
    return sent


@job_task()
def retry(ctx: JobContext) -> dict:
    """An admin pays a refused payout or refund again: a new payment with its own idempotency key, once."""
    old = Payment.get_or_none(Payment.id == ctx.input["payment_id"])
    if old is None or (not retryable(old) and not ctx.recorded("retry")[0]):
        return {"retried": False, "status": old.status if old else None}
    escrow = Escrow.get_by_id(old.escrow_id)
    sent = pay(ctx, "retry", escrow, old.kind, old.recipient_id, old.amount)
    outcome = ctx.once("replace", lambda key: _replaced(old.id, sent))
    if outcome.get("status") == "failed":
        raise ProviderRefused("The payment provider refused the payment again; it stays owed to its recipient.")
    return dict(outcome, retried=True)


@job_task()
def apply_event(ctx: JobContext) -> dict:
    """Apply the stored provider event ``event_id`` to the payment it is about (see the module's docstring)."""
    event = PaymentEvent.get_or_none(PaymentEvent.id == ctx.input["event_id"])
    if event is None or event.type not in HANDLERS:
        return {"applied": False}
    kind, handler = HANDLERS[event.type]
    payment = _payment_of(event)
    if payment is None or payment.kind != kind:
        # Not one of ours (another integration on the same provider account), or not what the event says.
        log.warning("a provider event about no payment of ours", extra={"event_id": event.id, "type": event.type})
        return {"applied": False}
    return dict(handler(ctx, event, payment), applied=True)


__all__ = ["apply_event", "retry"]
