"""Notifications: events for one user, the channels they go out on, and the user's preferences.

``notify(...)`` is how every part of Hearth tells a user something. Inside the
caller's transaction it writes the notification row and its fan-out job
(``notifications.fan_out``, queue ``notify``), submitted when that transaction
commits. A ``dedupe_key`` makes the same event one notification however
often it is raised (a redelivered job, a second message of an unread streak).
``notify_each(...)`` tells one event to several users: a notification each,
and one fan-out job for all of them.

The fan-out job decides the channels (``tasks/notifications.py``): in-app
(``in_app`` set), email and SMS, each a ``NotificationDelivery`` row with its
own idempotency key ``notification:{id}:{channel}``.
"""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from dataclasses import dataclass

from peewee import (
    BigAutoField,
    BooleanField,
    CharField,
    ForeignKeyField,
    IntegerField,
    SmallIntegerField,
    TextField,
    TimeField,
    UUIDField,
)
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
from models.job_submission import submit_after_commit
from models.jobs import Job

CHANNELS = ("in_app", "email", "sms")
DIGEST_MODES = ("instant", "daily")
# Every event type a user can be told about, with its default channels. A
# user's preferences override these per type (``NotificationPreference.types``).
TYPES: dict[str, dict] = {
    "message.received": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "saved_search.new_match": {"in_app": True, "email": True, "sms": False, "digest": "daily"},
    "saved_search.price_drop": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    # Offers and escrow: money is at stake, so these are told at once by e-mail too.
    "offer.received": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "offer.countered": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "offer.accepted": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "offer.rejected": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "offer.withdrawn": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "offer.expired": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "offer.backup": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.opened": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.funded": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.contingency_removed": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.deposit_hard": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.instructed": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.disputed": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.released": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.refunded": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.resolved": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.cancelled": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.closing_due": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
    "escrow.payment_failed": {"in_app": True, "email": True, "sms": False, "digest": "instant"},
}
DELIVERY_STATUSES = (
    "pending",
    "scheduled",
    "digest",
    "sending",
    "sent",
    "delivered",
    "failed",
    "bounced",
    "suppressed",
    "unknown",
)


class Notification(UUIDModel):
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    type = CharField()
    title = TextField()
    body = TextField()
    data = BinaryJSONField(default=dict)
    dedupe_key = TextField(null=True)
    in_app = BooleanField(null=True)
    read_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "notifications"

    def view(self) -> dict:
        return {
            "id": str(self.id),
            "type": self.type,
            "title": self.title,
            "body": self.body,
            "data": self.data or {},
            "read": self.read_at is not None,
            "read_at": self.read_at.isoformat() if self.read_at else None,
            "created_at": self.created_at.isoformat(),
        }


class NotificationDelivery(BaseModel):
    id = BigAutoField()
    notification = ForeignKeyField(Notification, column_name="notification_id", on_delete="CASCADE")
    notification_id: uuid.UUID  # peewee's accessor for the key's own column: no query
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    user_id: uuid.UUID
    channel = CharField()  # email | sms
    status = CharField(default="pending")
    recipient = TextField()
    idempotency_key = TextField()
    not_before = DateTimeTZField(null=True)
    attempts = IntegerField(default=0)
    claimed_by = UUIDField(null=True)
    provider_message_id = TextField(null=True)
    provider_status = TextField(null=True)
    error = TextField(null=True)
    digest_key = TextField(null=True)
    sent_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "notification_deliveries"


class NotificationPreference(BaseModel):
    user = ForeignKeyField(User, column_name="user_id", primary_key=True, on_delete="CASCADE")
    types = BinaryJSONField(default=dict)
    quiet_start = TimeField(null=True)
    quiet_end = TimeField(null=True)
    timezone = TextField(default="UTC")
    digest_hour = SmallIntegerField(default=8)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "notification_preferences"


class EmailSuppression(BaseModel):
    email = TextField(primary_key=True)
    reason = CharField()
    detail = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "email_suppressions"


class ProviderEvent(BaseModel):
    id = BigAutoField()
    provider = CharField()
    event_key = TextField()
    event = TextField()
    delivery = ForeignKeyField(NotificationDelivery, column_name="delivery_id", null=True, on_delete="SET NULL")
    payload = BinaryJSONField()
    received_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "provider_events"


@dataclass
class Preferences:
    """A user's effective preferences: their choices over the defaults of ``TYPES``."""

    types: dict
    quiet_start: datetime.time | None = None
    quiet_end: datetime.time | None = None
    timezone: str = "UTC"
    digest_hour: int = 8

    @classmethod
    def of(cls, user_id) -> Preferences:
        row = NotificationPreference.get_or_none(NotificationPreference.user == user_id)
        if row is None:
            return cls(types=merged_types({}))
        return cls(
            types=merged_types(row.types or {}),
            quiet_start=row.quiet_start,
            quiet_end=row.quiet_end,
            timezone=row.timezone,
            digest_hour=row.digest_hour,
        )

    def channels(self, type_: str) -> dict:
        """``{"in_app", "email", "sms", "digest"}`` for one event type."""
        return self.types[type_]

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def quiet_until(self, now: datetime.datetime) -> datetime.datetime | None:
        """When the quiet hours that ``now`` falls in end (aware), or None when ``now`` is not in them.

        Quiet hours are local wall-clock times in ``timezone``; ``start > end``
        spans midnight (22:00–07:00). ``start == end`` is never quiet.
        """
        start, end = self.quiet_start, self.quiet_end
        if start is None or end is None or start == end:
            return None
        local = now.astimezone(self.zone)
        t = local.time().replace(tzinfo=None)
        quiet = (start <= t < end) if start < end else (t >= start or t < end)
        if not quiet:
            return None
        day = local.date() if t < end else local.date() + datetime.timedelta(days=1)
        return datetime.datetime.combine(day, end, tzinfo=self.zone).astimezone(datetime.UTC)

    def next_digest_at(self, now: datetime.datetime) -> datetime.datetime:
        """The next ``digest_hour`` o'clock in the user's zone at or after ``now`` (aware, UTC)."""
        local = now.astimezone(self.zone)
        at = datetime.datetime.combine(local.date(), datetime.time(self.digest_hour), tzinfo=self.zone)
        if at < local:
            at = datetime.datetime.combine(
                local.date() + datetime.timedelta(days=1), datetime.time(self.digest_hour), tzinfo=self.zone
            )
        return at.astimezone(datetime.UTC)


def merged_types(chosen: dict) -> dict:
    """Every known type's settings: the user's choices over the defaults (unknown types dropped)."""
    return {
        name: {**default, **{k: v for k, v in (chosen.get(name) or {}).items() if k in default}}
        for name, default in TYPES.items()
    }


def locked_preferences(user_id) -> NotificationPreference:
    """The user's preferences row (created with the defaults if missing), locked for this transaction."""
    NotificationPreference.insert(user=user_id).on_conflict_ignore().execute()
    return NotificationPreference.select().where(NotificationPreference.user == user_id).for_update().get()


def turn_off(user_id, channel: str, types) -> None:
    """Turn ``channel`` off for each of ``types`` in the user's preferences (inside a transaction)."""
    chosen = dict(locked_preferences(user_id).types or {})
    for name in types:
        chosen[name] = {**(chosen.get(name) or {}), channel: False}
    NotificationPreference.update(types=chosen, updated_at=utcnow()).where(
        NotificationPreference.user == user_id
    ).execute()


def delivery_key(notification_id, channel: str) -> str:
    """The idempotency key of one notification on one channel (what providers receive)."""
    return f"notification:{notification_id}:{channel}"


# The notification and its fan-out job in one hand-written statement: every message (and saved-search
# match) runs it, and building the two inserts through the query builder cost more than running them.
# No job when the dedupe key (or the id) already exists.
_NOTIFY = """
WITH notification AS (
    INSERT INTO notifications (id, user_id, type, title, body, data, dedupe_key, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT DO NOTHING
    RETURNING id
)
INSERT INTO jobs (id, kind, queue, status, progress_pct, input, attempts, max_attempts, created_at, updated_at)
SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s FROM notification
RETURNING jobs.*
"""
# The fan-out job of a notification (``tasks.notifications.fan_out``).
FAN_OUT_KIND, FAN_OUT_QUEUE, FAN_OUT_MAX_ATTEMPTS = "notifications.fan_out", "notify", 8


def fan_out_job(notification_id) -> Job:
    """Another fan-out job for a notification (``notify`` writes the first one with the notification)."""
    return Job.create(
        kind=FAN_OUT_KIND,
        queue=FAN_OUT_QUEUE,
        input={"notification_id": str(notification_id)},
        max_attempts=FAN_OUT_MAX_ATTEMPTS,
    )


def notify(
    user_id, type_: str, *, title: str, body: str, data: dict | None = None, dedupe_key: str | None = None
) -> Job | None:
    """Record a notification for ``user_id`` and its fan-out job, in the caller's transaction.

    Returns the job (submitted after the commit, ``models.job_submission``), or
    None when a notification with ``dedupe_key`` already exists (nothing was written).
    """
    if type_ not in TYPES:
        raise ValueError(f"unknown notification type {type_!r}")
    notification_id, now = uuid.uuid4(), utcnow()
    job_input = {"notification_id": str(notification_id)}
    rows = list(
        Job.raw(
            _NOTIFY,
            notification_id,
            user_id,
            type_,
            title[:200],
            body[:2000],
            Notification.data.db_value(data or {}),
            dedupe_key,
            now,
            uuid.uuid4(),
            FAN_OUT_KIND,
            FAN_OUT_QUEUE,
            "queued",
            0,
            Job.input.db_value(job_input),
            0,
            FAN_OUT_MAX_ATTEMPTS,
            now,
            now,
        )
    )
    if not rows:
        return None
    submit_after_commit(rows[0])  # inserted by hand: Job.save did not see it
    return rows[0]


# One event's notifications and their one fan-out job, whose input names those written in the order given
# (one: ``notification_id``, as ``notify`` writes it; several: ``notification_ids``); none, no job.
_NOTIFY_EACH = """
WITH wanted (id, user_id, dedupe_key, position) AS (VALUES {rows}),
notification AS (
    INSERT INTO notifications (id, user_id, type, title, body, data, dedupe_key, created_at)
    SELECT id, user_id, %s, %s, %s, %s, dedupe_key, %s FROM wanted ON CONFLICT DO NOTHING RETURNING id
)
INSERT INTO jobs (id, kind, queue, status, progress_pct, input, attempts, max_attempts, created_at, updated_at)
SELECT %s, %s, %s, %s, %s,
       CASE WHEN count(*) = 1 THEN jsonb_build_object('notification_id', min(wanted.id::text))
            ELSE jsonb_build_object('notification_ids', jsonb_agg(wanted.id::text ORDER BY wanted.position)) END,
       %s, %s, %s, %s
FROM wanted JOIN notification USING (id) HAVING count(*) > 0
RETURNING jobs.*
"""


def fanned_out(job: Job) -> list[str]:
    """The ids of the notifications a fan-out job covers (``notification_id`` or ``notification_ids``)."""
    ids = (job.input or {}).get("notification_ids")
    return list(ids) if ids is not None else [job.input["notification_id"]]


def notify_each(
    user_ids, type_: str, *, title: str, body: str, data: dict | None = None, dedupe_key=None
) -> Job | None:
    """``notify`` for each of ``user_ids`` (the same event) in one statement, with one fan-out job for all.

    ``dedupe_key(user_id)`` gives each user's key (or None); a user whose key exists gets nothing. The
    job (submitted after the commit; ``fanned_out(job)``: the notifications written), or None if none.
    """
    if type_ not in TYPES:
        raise ValueError(f"unknown notification type {type_!r}")
    user_ids = list(user_ids)
    if not user_ids:
        return None
    now, params = utcnow(), []
    for position, user_id in enumerate(user_ids):
        params += [uuid.uuid4(), user_id, dedupe_key(user_id) if dedupe_key else None, position]
    params += [type_, title[:200], body[:2000], Notification.data.db_value(data or {}), now]
    params += [uuid.uuid4(), FAN_OUT_KIND, FAN_OUT_QUEUE, "queued", 0, 0, FAN_OUT_MAX_ATTEMPTS, now, now]
    rows = ", ".join(["(%s::uuid, %s::uuid, %s, %s::int)"] * len(user_ids))
    jobs = list(Job.raw(_NOTIFY_EACH.format(rows=rows), *params))
    if not jobs:
        return None
    submit_after_commit(jobs[0])  # inserted by hand: Job.save did not see it
    return jobs[0]


__all__ = [
    "CHANNELS",
    "DELIVERY_STATUSES",
    "DIGEST_MODES",
    "FAN_OUT_KIND",
    "TYPES",
    "EmailSuppression",
    "Notification",
    "NotificationDelivery",
    "NotificationPreference",
    "Preferences",
    "ProviderEvent",
    "delivery_key",
    "fan_out_job",
    "fanned_out",
    "locked_preferences",
    "merged_types",
    "notify",
    "notify_each",
    "turn_off",
]
