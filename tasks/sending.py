"""Sending one notification delivery at most once: the protocol fan-out and digests share.

Neither SendGrid nor Twilio deduplicates sends, so a send is claimed
(``pending``/``digest`` → ``sending``, attempts + 1, ``claimed_by`` = the job)
in a commit of its own before the provider is called, and settled afterwards
fenced by that claim: ``sent``; ``failed`` on a permanent answer; back to
where it waited on a transient one (the job retries); ``unknown`` when the
request may have arrived. A rerun of the job that finds its own claim still in
``sending`` knows its previous run died mid-call and settles it ``unknown``
(``settle_dead_run``): never sent twice.
"""
from __future__ import annotations

import logging
import zoneinfo

from models.base import utcnow
from models.db import db
from models.notifications import EmailSuppression, Notification, NotificationDelivery, Preferences, TYPES
from services.mail import ProviderError
from tasks.base import JobContext

log = logging.getLogger("hearth.notifications")
Delivery = NotificationDelivery


# A type no longer in TYPES (an old row) is shown in the app and sent nowhere else.
_IN_APP_ONLY = {"in_app": True, "email": False, "sms": False, "digest": "instant"}


def checked_zone(prefs: Preferences, user_id) -> Preferences:
    try:
        zoneinfo.ZoneInfo(prefs.timezone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        log.warning("unknown time zone in notification preferences; using UTC", extra={"user_id": str(user_id)})
        prefs.timezone = "UTC"
    return prefs


def preferences(user_id) -> Preferences:
    return checked_zone(Preferences.of(user_id), user_id)


def channels(prefs: Preferences, type_: str) -> dict:
    return prefs.channels(type_) if type_ in TYPES else _IN_APP_ONLY


def suppression(address: str, known: dict | None = None) -> str | None:
    """Why ``address`` is suppressed (its reason), or None; ``known`` holds answers this run already read."""
    address = address.strip().lower()
    if known and address in known:
        return known[address]
    row = EmailSuppression.get_or_none(EmailSuppression.email == address)
    return row.reason if row is not None else None


# Why a delivery is 'unknown' after its run died mid-call.
DIED = "the sending run stopped during the provider call; not sent again"


_CLAIM = """
UPDATE notification_deliveries
SET status = 'sending', attempts = attempts + 1, claimed_by = %s, updated_at = %s,
    digest_key = COALESCE(%s, digest_key)
WHERE id = ANY(%s) AND status = %s
RETURNING *
"""


def claim(ids, job_id, from_status: str, digest_key: str | None = None) -> list[Delivery]:
    """``from_status → sending`` for those of ``ids`` still in it; the rows this run now owns."""
    return list(Delivery.raw(_CLAIM, job_id, utcnow(), digest_key, list(ids), from_status))


def settle(ids, job_id, status: str, **fields) -> int:
    # A final answer also replaces 'unknown': a run that outlived its lease may have been declared
    # dead by its own rerun, yet the provider's answer is better knowledge than "unknown".
    allowed = ["sending", "unknown"] if status in ("sent", "failed") else ["sending"]
    assignments = "".join(f", {name} = %s" for name in fields)  # column names from this module only
    return db.execute_sql(f"UPDATE notification_deliveries SET status = %s, updated_at = %s{assignments} "
                          "WHERE id = ANY(%s) AND claimed_by = %s AND status = ANY(%s)",
                          (status, utcnow(), *fields.values(), list(ids), job_id, allowed)).rowcount


def settle_dead_run(job_id, condition) -> int:
    """Rows this job left in ``sending``: its previous run died during the provider call."""
    return (Delivery.update(status="unknown", updated_at=utcnow(), error=DIED)
            .where(condition & (Delivery.status == "sending") & (Delivery.claimed_by == job_id)).execute())


def call_provider(ctx: JobContext, ids: list, send, *, retry_as: str = "pending") -> tuple[str | None, str | None]:
    """Run ``send()`` for claimed rows and settle them: ``(error to retry on or None, status written)``.

    The status is None when the fence kept some row from being settled. On a transient error the rows
    go back to ``retry_as`` (they were never sent) for the job's retry.
    """
    def settle_as(status, **fields):
        return status if settle(ids, ctx.job.id, status, **fields) == len(ids) else None

    try:
        provider_id = send()
    except ProviderError as exc:
        log.warning("provider refused a send", extra={"job_id": str(ctx.job.id), "status": exc.status,
                                                      "transient": exc.transient, "uncertain": exc.uncertain})
        if exc.uncertain:
            return None, settle_as("unknown", error=str(exc)[:500])
        if exc.transient and ctx.attempt < ctx.job.max_attempts:
            return str(exc), settle_as(retry_as, error=str(exc)[:500])
        tries = f"{ctx.attempt} attempt{'s' if ctx.attempt != 1 else ''}"
        reason = str(exc) if not exc.transient else f"gave up after {tries}: {exc}"
        return None, settle_as("failed", error=reason[:500])
    except BaseException as exc:
        # Whatever went wrong, the request may have gone out: never send it again.
        settle(ids, ctx.job.id, "unknown", error=f"the send was interrupted ({type(exc).__name__})")
        raise
    return None, settle_as("sent", provider_message_id=provider_id or None, sent_at=utcnow(), error=None)


def withheld(delivery: Delivery, notification: Notification, prefs: Preferences,
              known: dict | None = None) -> str | None:
    """Why a delivery decided earlier must not go out now (the user changed their mind, or has seen it)."""
    if notification.read_at is not None:
        # It waited (quiet hours, the digest) and meanwhile the user read it in the app.
        return "already read in the app"
    if not channels(prefs, notification.type).get(delivery.channel):
        return f"{delivery.channel} was turned off for these notifications"
    if delivery.channel == "email":
        suppressed = suppression(delivery.recipient, known)
        if suppressed is not None:
            return f"the address is suppressed ({suppressed})"
    return None
