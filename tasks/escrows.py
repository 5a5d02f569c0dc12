"""An escrow's money jobs on the ``money`` queue: collecting the deposit and settling the escrow.

``escrows.collect_deposit`` (created when an offer is accepted) asks the
provider for the deposit's PaymentIntent once per escrow; the buyer's frontend
completes it with the client secret, and the outcome arrives by webhook
(``tasks/payments.py``).

``escrows.settle`` (created when both sides instructed, or an admin resolved)
moves the money in two kinds of step, each once per job (``JobContext.once``):
``ledger`` moves what the escrow holds to the payable accounts of the seller
and/or the buyer and ends the escrow, in one transaction; ``refund`` and
``payout`` then pay those accounts out through the provider
(``tasks/provider_payments.py``), the step's once key being the provider's
idempotency key. A refused payout leaves the escrow settled on the ledger (the
money is owed on the seller's payable account), the payment ``failed`` for an
admin, and the job failed with a problem. See docs/escrow.md.
"""

from __future__ import annotations

import logging

from models.base import utcnow
from models.escrow_actions import end
from models.escrow_ledger import Reservation, post_settlement, resolution_reason, settlement_legs
from models.escrow_rules import EscrowConflict
from models.escrows import Escrow, lock, record
from models.money_notices import amount, escrow_notice
from models.payments import Payment, advance
from services.payments import ProviderRejected, ProviderUnavailable
from tasks.base import JobContext, Transient, job_task
from tasks.provider_payments import ProviderRefused, pay, payment_id_for, payment_row
from tasks.runtime import runtime

log = logging.getLogger("hearth.money")
ENDS = {"release": "released", "refund": "refunded", "split": "resolved"}


def _create_deposit(escrow_id, key: str) -> dict:
    escrow = lock(escrow_id)
    if escrow is None or escrow.status != "awaiting_deposit":
        return {"status": "skipped", "escrow_status": escrow.status if escrow else None}
    provider = runtime().payments
    payment = Payment.create(
        id=payment_id_for(key),
        escrow=escrow.id,
        kind="deposit",
        recipient=None,
        currency=escrow.currency,
        amount=escrow.amount,
        provider=provider.name,
        idempotency_key=key,
    )
    try:
        intent = provider.create_deposit(
            amount=escrow.amount,
            currency=escrow.currency.lower(),
            idempotency_key=key,
            metadata={"escrow_id": str(escrow.id), "payment_id": str(payment.id)},
            description=f"Earnest money for escrow {escrow.id}",
        )
    except ProviderUnavailable as exc:
        raise Transient(str(exc)) from exc
    except ProviderRejected as exc:
        advance(payment, "failed", failure_code=exc.code[:100], failure_message=exc.message[:500])
        record(escrow, "deposit_request_failed", data={"payment_id": str(payment.id), "code": exc.code})
        escrow_notice(
            escrow,
            "escrow.payment_failed",
            title="Deposit could not be requested",
            body=f"The payment provider refused the request for the {amount(escrow)} deposit. "
            "Our team has been told and will contact you.",
            dedupe=str(payment.id),
        )
        return {"payment_id": str(payment.id), "status": "failed", "failure_code": exc.code}
    # The client secret stays on the row (shown to the buyer's side only), never in the job's result.
    Payment.update(provider_ref=intent.id, client_secret=intent.client_secret).where(Payment.id == payment.id).execute()
    return {"payment_id": str(payment.id), "status": "pending", "provider_ref": intent.id}


@job_task()
def collect_deposit(ctx: JobContext) -> dict:
    """Create the escrow's deposit ``Payment`` and its PaymentIntent, once per escrow."""
    escrow_id = ctx.input["escrow_id"]
    result = ctx.once("deposit", lambda key: _create_deposit(escrow_id, key))
    if result["status"] == "failed":
        raise ProviderRefused("The payment provider refused the deposit request; an admin will look into it.")
    return result


# Who each leg of a settlement goes to, through which step (its once key) and which kind of payment.
LEG_STEPS = {"buyer": ("refund", "refund"), "seller": ("payout", "payout")}


def _settle_on_ledger(ctx: JobContext, escrow_id, settled: list) -> dict:
    """The escrow's end and its postings, with the reservation of every payment the settlement makes.

    One transaction (the ``ledger`` step's): the escrow ends, its legs move to the
    payable accounts, and each leg's payment row and pending transfer are written,
    all committed before any provider call. The postings come last, so the
    provider's clearing account (every payment's) is locked only for them.
    """
    escrow = lock(escrow_id)
    if escrow is None:
        return {}
    if escrow.settlement is None or escrow.status not in ("funded", "disputed"):
        raise EscrowConflict(f"the escrow is {escrow.status} with settlement {escrow.settlement}; nothing to settle")
    legs = settlement_legs(escrow)
    recipients = {"buyer": escrow.buyer_id, "seller": escrow.seller_id}
    payments, reserved = {}, []
    for side, leg in legs.items():
        step, kind = LEG_STEPS[side]
        payments[step] = payment_row(escrow, kind, recipients[side], leg, ctx.effect_key(step))
        reserved.append(Reservation(payments[step].id, recipients[side], leg))
    reason = resolution_reason(escrow) if escrow.settlement == "split" else None
    status = ENDS[escrow.settlement]
    end(escrow, status, action=status, reason=reason, data={"legs": legs}, now=utcnow(), values={"held": 0})
    post_settlement(escrow, legs, reserved)
    settled.append((escrow, payments))
    return legs


@job_task()
def settle(ctx: JobContext) -> dict:
    """Settle the escrow as ``escrow.settlement`` says: the ledger first, then the refund and the payout."""
    escrow_id = ctx.input["escrow_id"]
    # The escrow as the ledger step left it and the payments it reserved, when this run took that step.
    settled: list[tuple[Escrow, dict[str, Payment]]] = []
    legs = ctx.once("ledger", lambda key: _settle_on_ledger(ctx, escrow_id, settled))
    escrow, reserved = settled[0] if settled else (Escrow.get_or_none(Escrow.id == escrow_id), {})
    if escrow is None or not legs:
        return {"settled": False}
    paid = {}
    recipients = {"buyer": escrow.buyer_id, "seller": escrow.seller_id}
    for side in ("buyer", "seller"):
        if legs.get(side):
            step, kind = LEG_STEPS[side]
            paid[step] = pay(ctx, step, escrow, kind, recipients[side], legs[side], reserved.get(step))
    refused = sorted(step for step, result in paid.items() if result["status"] == "failed")
    if refused:
        log.warning("settlement payment refused", extra={"escrow_id": str(escrow_id), "steps": refused})
        raise ProviderRefused(
            f"The payment provider refused the {' and the '.join(refused)}; the money is owed on the "
            "recipient's account and an admin will look into it."
        )
    return {"settled": True, "settlement": escrow.settlement, "legs": legs, **paid}


__all__ = ["collect_deposit", "settle"]
