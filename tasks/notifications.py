"""Notification delivery: the fan-out job, quiet hours, daily digests; every send at most once.

``fan_out`` (kind ``notifications.fan_out``, queue ``notify``) decides once,
when ``notifications.in_app`` is still NULL, where a notification goes: in the
app (``notification.created`` on ``user:{id}``), by email and by SMS, each
outside channel a ``NotificationDelivery`` row. Email waits for the daily
digest when the user chose it; email and SMS wait out quiet hours
(``scheduled`` until ``not_before``, released by ``release_scheduled``). Then it
sends the notification's ``pending`` deliveries.

Neither SendGrid nor Twilio deduplicates sends, so sending is at most once
(``models/deliveries.py``):

1. claim: one conditional update ``pending → sending`` (attempts + 1,
   ``claimed_by`` = the job), committed before the provider is called;
2. the provider call, with the delivery's idempotency key (SendGrid custom
   argument; Twilio status callback URL);
3. settle: ``sent``; ``failed`` on a permanent (4xx) answer, never retried;
   back to ``pending`` on a transient one (429, 5xx, unreachable), and the job
   is retried with backoff; ``unknown`` when the request may have arrived (a
   read timeout): never resent, a provider webhook may still settle it.

A rerun of the same job that finds a delivery in ``sending`` claimed by
itself knows the previous run died during the provider call: it marks it
``unknown`` and does not send it again. Rows claimed by another job are left
alone. Digests (``send_digests`` hourly, ``send_digest`` per user and local
date) follow the same protocol for one email covering many rows.

The tasks are here; how a notification's channels are decided is in
``tasks/notification_channels.py``.
"""

from __future__ import annotations

import datetime
import logging

from peewee import SQL, fn

from models import deliveries as sending
from models.accounts import User
from models.base import utcnow
from models.db import connection, db
from models.jobs import Job
from models.notifications import (
    Notification,
    NotificationDelivery,
    Preferences,
    fan_out_job,
)
from services import metrics
from services.mail import ProviderError
from services.notification_templates import digest_email, notification_email, notification_sms
from tasks.app import app
from tasks.base import JobContext, Transient, job_task
from tasks.notification_channels import decide, load_context
from tasks.runtime import runtime

log = logging.getLogger("hearth.notifications")
Delivery = NotificationDelivery
BATCH = 500
DIGEST_OVERDUE = datetime.timedelta(hours=25)
DIGEST_KIND = "notifications.send_digest"
# Digest rows whose email went (or may have gone) out: their digest key is used up.
_DIGEST_USED = ("sending", "sent", "delivered", "failed", "bounced", "unknown")


# --- the fan-out job ------------------------------------------------------------------------


@job_task(transient=(Transient,))
def fan_out(ctx: JobContext) -> dict:
    """Input ``{notification_id}``, or ``{notification_ids}`` (one event told to several users, ``notify_each``).

    Result: ``{"in_app", "deliveries": {channel: status}}``; for several, ``{"notifications": {id: that}}``.
    Each notification is decided and sent as if it had a job of its own; a transient error of one
    retries the job once all were tried, and the retry sends only what is still ``pending``.
    """
    several = ctx.input.get("notification_ids")
    ids = several if several is not None else [ctx.input["notification_id"]]
    results, retries = {}, []
    for notification_id in ids:
        results[notification_id], retry = _fan_out_one(ctx, notification_id)
        if retry:
            retries.append(retry)
    if retries:
        raise Transient("; ".join(retries))
    return {"notifications": results} if several is not None else results[ids[0]]


def _fan_out_one(ctx: JobContext, notification_id) -> tuple[dict, str | None]:
    """One notification's channels decided (once) and its pending deliveries sent: (result, error to retry on)."""
    loaded = load_context(notification_id)
    if loaded is None:
        return {"in_app": False, "deliveries": {}}, None
    notification, user, prefs, known = loaded
    if user is None or user.is_banned:
        sending.withhold_all(notification.id, "the account is banned")
        return {"in_app": False, "deliveries": {}}, None
    decided = decide(notification, user, prefs, known) if notification.in_app is None else None
    if decided is not None:
        in_app, deliveries = decided
    else:  # decided before (by this job's earlier run, or another job of this notification)
        in_app = notification.in_app
        if in_app is None:
            in_app = Notification.select(Notification.in_app).where(Notification.id == notification.id).scalar()
        in_app, deliveries = bool(in_app), sending.of_notification(ctx.job.id, notification.id)
    # What this run sees and does to the deliveries; a final read only when it lost track (a row
    # another run had claimed, or a settle the fence refused).
    statuses = {row.channel: row.status for row in deliveries}
    retry, exact = _send_pending(ctx, notification, prefs, known, deliveries, statuses)
    if not exact:
        statuses = {
            row.channel: row.status
            for row in Delivery.select(Delivery.channel, Delivery.status).where(
                Delivery.notification == notification.id
            )
        }
    return {"in_app": in_app, "deliveries": statuses}, retry


# --- sending this notification's pending deliveries ------------------------------------------


def _call_provider(ctx: JobContext, ids: list, send, *, retry_as: str = "pending") -> tuple[str | None, str | None]:
    """Run ``send()`` for claimed rows and settle them: ``(error to retry on or None, status written)``."""
    try:
        provider_id = send()
    except ProviderError as exc:
        log.warning(
            "provider refused a send",
            extra={
                "job_id": str(ctx.job.id),
                "status": exc.status,
                "transient": exc.transient,
                "uncertain": exc.uncertain,
            },
        )
        return sending.settle_refused(
            ids,
            ctx.job.id,
            exc,
            attempt=ctx.attempt,
            last_attempt=ctx.attempt >= ctx.job.max_attempts,
            retry_as=retry_as,
        )
    except BaseException as exc:
        # Whatever went wrong, the request may have gone out: never send it again.
        sending.settle_interrupted(ids, ctx.job.id, exc)
        raise
    return None, sending.settle_sent(ids, ctx.job.id, provider_id)


def _sender(delivery: Delivery, notification: Notification, settings):
    """The provider call for one delivery, with its idempotency key."""
    if delivery.channel == "email":
        message = notification_email(notification, to=delivery.recipient, settings=settings)
        return lambda: runtime().mailer.send(message, idempotency_key=delivery.idempotency_key)
    text = notification_sms(notification, settings=settings)
    callback = f"{settings.public_url.rstrip('/')}/v1/webhooks/twilio?d={delivery.id}"
    return lambda: runtime().sms.send(
        delivery.recipient, text, idempotency_key=delivery.idempotency_key, status_callback=callback
    )


def _send_pending(
    ctx: JobContext,
    notification: Notification,
    prefs: Preferences,
    known: dict,
    deliveries: list[Delivery],
    statuses: dict,
) -> tuple[str | None, bool]:
    """Send the ``pending`` ones of ``deliveries``, keeping ``statuses`` up to date.

    ``(error to retry on or None, whether statuses is exact)``.
    """
    settings = runtime().settings
    retry, exact = None, True
    for delivery in deliveries:
        if delivery.status != "pending":
            continue
        reason = sending.withheld(delivery, notification, prefs, known)
        if reason:
            withheld = (
                Delivery.update(status="suppressed", error=reason, updated_at=utcnow())
                .where((Delivery.id == delivery.id) & (Delivery.status == "pending"))
                .execute()
            )
            statuses[delivery.channel] = "suppressed"
            metrics.NOTIFICATION_DELIVERIES.labels(delivery.channel, "suppressed").inc()
            exact = exact and bool(withheld)
            continue
        send = _sender(delivery, notification, settings)  # rendered before the claim: a bad template sends nothing
        if not sending.claim([delivery.id], ctx.job.id, "pending"):
            exact = False
            continue  # another run has it
        error, settled = _call_provider(ctx, [delivery.id], send)
        metrics.NOTIFICATION_DELIVERIES.labels(delivery.channel, settled or ("retrying" if error else "unknown")).inc()
        statuses[delivery.channel] = settled
        exact = exact and settled is not None
        if error:
            retry = f"{delivery.channel}: {error}"
    return retry, exact


# --- quiet hours -------------------------------------------------------------------------------


@app.task(name="tasks.notifications.release_scheduled", acks_late=True, ignore_result=True)
def release_scheduled() -> dict:
    """Deliveries held for quiet hours whose time has come → ``pending``, with a fan-out job per notification."""
    now = utcnow()
    with connection(), db.atomic():
        due = (
            Delivery.select(Delivery.id)
            .where((Delivery.status == "scheduled") & (Delivery.not_before <= now))
            .order_by(Delivery.not_before)
            .limit(BATCH)
            .for_update(skip_locked=True)
        )
        released = list(
            Delivery.update(status="pending", updated_at=now)
            .where(Delivery.id.in_(due) & (Delivery.status == "scheduled"))
            .returning(Delivery.notification)
            .execute()
        )
        notification_ids = sorted({str(row.notification_id) for row in released})
        jobs = [fan_out_job(notification_id) for notification_id in notification_ids]  # submitted on commit
    if released:
        log.info("scheduled notifications released", extra={"deliveries": len(released), "jobs": len(jobs)})
    return {"released": len(released), "jobs": len(jobs)}


# --- daily digests -----------------------------------------------------------------------------


def digest_key(user_id, local_date: datetime.date) -> str:
    return f"digest:{user_id}:{local_date.isoformat()}"


def _digest_used(key: str) -> bool:
    return Delivery.select().where((Delivery.digest_key == key) & Delivery.status.in_(_DIGEST_USED)).exists()


@app.task(name="tasks.notifications.send_digests", acks_late=True, ignore_result=True)
def send_digests() -> dict:
    """Hourly: a digest job for each user whose digest hour has come, or whose oldest waiting row is overdue."""
    now = utcnow()
    created = []
    after = None
    with connection():
        while True:
            waiting = (
                Delivery.select(Delivery.user, fn.MIN(Delivery.created_at).alias("oldest"))
                .where((Delivery.status == "digest") & ((Delivery.user > after) if after else SQL("true")))
                .group_by(Delivery.user)
                .order_by(Delivery.user)
                .limit(BATCH)
            )
            batch = list(waiting.dicts())
            for row in batch:
                job = _digest_job_if_due(row["user"], row["oldest"], now)
                if job is not None:
                    created.append(job)
            if len(batch) < BATCH:
                break
            after = batch[-1]["user"]
    if created:  # each job was submitted when it committed
        log.info("digests due", extra={"jobs": len(created)})
    return {"jobs": len(created)}


def _digest_job_if_due(user_id, oldest: datetime.datetime, now: datetime.datetime) -> Job | None:
    prefs = sending.preferences(user_id)
    local = now.astimezone(prefs.zone)
    if local.hour != prefs.digest_hour and oldest > now - DIGEST_OVERDUE:
        return None
    key = digest_key(user_id, local.date())
    if _digest_used(key):
        return None  # one digest a day: what came after today's waits for tomorrow's
    job, created = Job.create_or_get_active(
        dedupe_key=key,
        kind=DIGEST_KIND,
        queue="notify",
        max_attempts=8,
        input={"user_id": str(user_id), "digest_key": key},
    )
    return job if created else None


@job_task(transient=(Transient,))
def send_digest(ctx: JobContext) -> dict:
    """Input ``{user_id, digest_key}``: one email listing the user's waiting notifications."""
    user_id, key = ctx.input["user_id"], ctx.input["digest_key"]
    mine = (Delivery.user == user_id) & (Delivery.digest_key == key)
    if sending.settle_dead_run(ctx.job.id, mine) or _digest_used(key):
        return {"sent": False, "notifications": 0}
    user = User.get_or_none(User.id == user_id)
    waiting = (Delivery.user == user_id) & (Delivery.status == "digest")
    if user is None or user.is_banned:
        (
            Delivery.update(status="suppressed", error="the account is banned", updated_at=utcnow())
            .where(waiting)
            .execute()
        )
        return {"sent": False, "notifications": 0}
    prefs = sending.preferences(user_id)
    wanted = []
    for row in (
        Delivery.select(Delivery, Notification)
        .join(Notification)
        .where(waiting)
        .order_by(Notification.created_at.desc(), Delivery.id.desc())
    ):
        reason = sending.withheld(row, row.notification, prefs)
        if reason is None:
            wanted.append(row)
            continue
        (
            Delivery.update(status="suppressed", error=reason, updated_at=utcnow())
            .where((Delivery.id == row.id) & (Delivery.status == "digest"))
            .execute()
        )
    claimed = {row.id for row in sending.claim([row.id for row in wanted], ctx.job.id, "digest", digest_key=key)}
    rows = [row for row in wanted if row.id in claimed]
    if not rows:
        return {"sent": False, "notifications": 0}
    message = digest_email(
        [row.notification for row in rows], to=rows[0].recipient, user_id=user_id, settings=runtime().settings
    )
    ids = [row.id for row in rows]
    # On a transient error the rows wait again (keeping the key): the retry sends the same digest.
    error, settled = _call_provider(
        ctx, ids, lambda: runtime().mailer.send(message, idempotency_key=key), retry_as="digest"
    )
    metrics.NOTIFICATION_DELIVERIES.labels("email_digest", settled or ("retrying" if error else "unknown")).inc()
    if error:
        raise Transient(f"digest: {error}")
    return {
        "sent": Delivery.select().where(Delivery.id.in_(ids) & (Delivery.status == "sent")).exists(),
        "notifications": len(ids),
    }


__all__ = ["DIGEST_KIND", "digest_key", "fan_out", "release_scheduled", "send_digest", "send_digests"]
