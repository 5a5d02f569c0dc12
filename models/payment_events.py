"""What the payments provider told us: each verified webhook event, stored once, and the job that acts on it.

The provider's event id is the key: a provider delivers an event at least once
and may deliver it again (a timeout on our side, a retry on theirs), and a repeat
changes nothing. An event of a type the money code acts on gets a
``payments.apply_event`` job on the ``money`` queue, created in the same
transaction as the row and submitted after it commits; other types are only kept.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from peewee import ForeignKeyField, TextField
from playhouse.postgres_ext import BinaryJSONField

from models.base import BaseModel, DateTimeTZField, utcnow
from models.db import db
from models.jobs import Job

# Event types that change a deposit, a refund or a payout; ``tasks.payments.apply_event`` acts on them.
HANDLED_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
        "refund.updated",
        "refund.failed",
        "transfer.reversed",
    }
)
APPLY_EVENT_KIND = "payments.apply_event"
MONEY_QUEUE = "money"


class PaymentEvent(BaseModel):
    id = TextField(primary_key=True)  # the provider's event id (evt_...)
    type = TextField()
    object_type = TextField()
    object_id = TextField()
    created = DateTimeTZField()  # when the provider says the event happened
    payload = BinaryJSONField()
    received_at = DateTimeTZField(default=utcnow)
    job = ForeignKeyField(Job, column_name="job_id", null=True, on_delete="SET NULL")

    class Meta:
        table_name = "payment_events"


@dataclass(frozen=True)
class Received:
    """What recording one delivery did: ``duplicate`` when the event was stored before; its job, if any."""

    event_id: str
    duplicate: bool
    job: Job | None


def record_payment_event(
    *, event_id: str, event_type: str, object_type: str, object_id: str, created: int, payload: dict
) -> Received:
    """Store a verified event once; when it is new and of a handled type, create its job in the same transaction."""
    with db.atomic():
        inserted = list(
            PaymentEvent.insert(
                id=event_id,
                type=event_type,
                object_type=object_type,
                object_id=object_id,
                created=datetime.datetime.fromtimestamp(created, datetime.UTC),
                payload=_without_nul(payload),
                received_at=utcnow(),
            )
            .on_conflict_ignore()
            .returning(PaymentEvent.id)
            .execute()
        )
        if not inserted:
            return Received(event_id, duplicate=True, job=None)
        if event_type not in HANDLED_TYPES:
            return Received(event_id, duplicate=False, job=None)
        job = Job.create(kind=APPLY_EVENT_KIND, queue=MONEY_QUEUE, input={"event_id": event_id})
        PaymentEvent.update(job=job.id).where(PaymentEvent.id == event_id).execute()
        return Received(event_id, duplicate=False, job=job)


def _without_nul(value):
    """``value`` without NUL characters in its strings (PostgreSQL's jsonb refuses them)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


__all__ = ["APPLY_EVENT_KIND", "HANDLED_TYPES", "MONEY_QUEUE", "PaymentEvent", "Received", "record_payment_event"]
