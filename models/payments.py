"""Money the payment provider moves for an escrow: the deposit collected, refunds and payouts.

One row per provider operation. Its ``idempotency_key`` goes with every call
the provider gets for it, so a job that is retried or recovered after a crash
never creates a second charge, refund or payout. ``status`` only moves forward
(``STATUS_RANK``): a provider event that arrives late cannot undo a newer one.
"""

from __future__ import annotations

import uuid

from peewee import BigIntegerField, CharField, ForeignKeyField, TextField

from models import domain_events
from models.accounts import User
from models.base import DateTimeTZField, UUIDModel, utcnow
from models.db import db
from models.escrows import Escrow
from models.jobs import Job

KINDS = ("deposit", "refund", "payout")
STATUSES = ("pending", "requires_action", "processing", "succeeded", "failed", "canceled")
FINAL = ("succeeded", "failed", "canceled")
# How far along a payment is; a change may only go up or sideways. ``failed`` ranks with
# ``processing``: a payment that was processing may fail (a bank debit returned), and a failed
# deposit attempt may be retried by the buyer (processing again). Which of two such events is
# newer is the provider's event time (``tasks.payments``); succeeded and canceled are final.
STATUS_RANK = {"pending": 0, "requires_action": 1, "processing": 2, "failed": 2, "succeeded": 3, "canceled": 3}


class Payment(UUIDModel):
    escrow = ForeignKeyField(Escrow, column_name="escrow_id", on_delete="CASCADE")
    escrow_id: uuid.UUID
    kind = CharField()
    recipient = ForeignKeyField(User, column_name="recipient_id", null=True, on_delete="SET NULL")
    recipient_id: uuid.UUID | None
    currency = CharField(default="USD")
    amount = BigIntegerField()
    status = CharField(default="pending")
    provider = CharField()
    provider_ref = TextField(null=True)
    idempotency_key = TextField()
    client_secret = TextField(null=True)
    failure_code = TextField(null=True)
    failure_message = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "payments"

    def view(self, *, with_secret: bool = False) -> dict:
        """The payment as a party sees it; the deposit's client secret only for the buyer's side."""
        data = {
            "id": str(self.id),
            "kind": self.kind,
            "recipient_id": str(self.recipient_id) if self.recipient_id else None,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "provider": self.provider,
            "provider_ref": self.provider_ref,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if with_secret and self.kind == "deposit":
            data["client_secret"] = self.client_secret
        return data


def _forward(current: str, status: str) -> bool:
    """Whether a payment in ``current`` may move to ``status``: not backwards, and never out of an end state."""
    return STATUS_RANK[status] >= STATUS_RANK[current] and current not in ("succeeded", "canceled")


def advance(payment: Payment, status: str, **values) -> bool:
    """Move ``payment`` to ``status`` if that is forward (``STATUS_RANK``); False when it was not."""
    if not _forward(payment.status, status):
        return False
    if status == payment.status and not values:
        return False
    moved = status != payment.status
    values.update(status=status, updated_at=utcnow())
    Payment.update(values).where(Payment.id == payment.id).execute()
    for name, value in values.items():
        setattr(payment, name, value)
    if moved:
        domain_events.tell("payment.status", kind=payment.kind, status=status)
    return True


_ADVANCE = """
WITH old AS (SELECT id, status FROM payments WHERE id = %s FOR UPDATE)
UPDATE payments AS p SET status = %s, updated_at = %s{columns}
FROM old WHERE p.id = old.id AND old.status = ANY(%s)
RETURNING old.status, p.kind
"""


def advance_by_id(payment_id, status: str, **values) -> bool:
    """``advance`` for a payment this caller does not hold: the forward-only rule is checked on the locked
    row, in one statement. False when the move was not forward (nothing changed) or there is no such row."""
    if not values:
        raise ValueError("advance_by_id writes the values that come with the status; give at least one")
    fields = Payment._meta.fields
    origins = [current for current in STATUSES if _forward(current, status)]  # ``advance``'s rule, on the row
    columns = "".join(f", {fields[name].column_name} = %s" for name in values)
    params = [payment_id, status, utcnow(), *(fields[name].db_value(v) for name, v in values.items()), origins]
    row = db.execute_sql(_ADVANCE.format(columns=columns), params).fetchone()
    if row is None:
        return False
    if row[0] != status:
        domain_events.tell("payment.status", kind=row[1], status=status)
    return True


def reverse(payment: Payment, *, code: str, message: str) -> bool:
    """The provider undid a payment it had made (a refund that failed later, a reversed transfer): it is
    ``failed`` whatever it was, for an admin to see. False when it was failed already."""
    if payment.status == "failed":
        return False
    values = {"status": "failed", "failure_code": code[:100], "failure_message": message[:500], "updated_at": utcnow()}
    Payment.update(values).where(Payment.id == payment.id).execute()
    for name, value in values.items():
        setattr(payment, name, value)
    domain_events.tell("payment.status", kind=payment.kind, status="failed")
    return True


def payments_of(escrow_id) -> list[Payment]:
    return list(Payment.select().where(Payment.escrow == escrow_id).order_by(Payment.created_at, Payment.id))


RETRY_KIND = "payments.retry"
RETRYABLE = ("payout", "refund")


def retryable(payment: Payment) -> bool:
    """A refused payout or refund, whose money waits on the recipient's payable account."""
    return payment.kind in RETRYABLE and payment.status == "failed"


def retry_job(payment: Payment, *, admin_id) -> tuple[Job, bool]:
    """The job that pays a failed payout or refund again (a new payment, a new idempotency key); at most one
    runs per payment. Returns (job, created)."""
    return Job.create_or_get_active(
        dedupe_key=f"payment:{payment.id}:retry",
        kind=RETRY_KIND,
        queue="money",
        owner=admin_id,
        input={"payment_id": str(payment.id)},
        max_attempts=10,
    )
