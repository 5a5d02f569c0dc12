"""A notification's deliveries, each sent at most once: the protocol fan-out and digests share.

Neither SendGrid nor Twilio deduplicates sends, so a send is claimed
(``pending``/``digest`` → ``sending``, attempts + 1, ``claimed_by`` = the job)
in a commit of its own before the provider is called, and settled afterwards
fenced by that claim: ``sent``; ``failed`` on a permanent answer; back to
where it waited on a transient one (the job retries); ``unknown`` when the
request may have arrived. A rerun of the job that finds its own claim still in
``sending`` knows its previous run died mid-call and settles it ``unknown``
(``settle_dead_run``, ``of_notification``): never sent twice.

The jobs that send (``tasks/notifications.py``) call the provider between
``claim`` and the ``settle_*`` functions here.
"""

from __future__ import annotations

import logging
import zoneinfo

from models.base import utcnow
from models.db import db
from models.notifications import TYPES, EmailSuppression, Notification, NotificationDelivery, Preferences

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
    assignments = "".join(f", {name} = %s" for name in fields)
    return db.execute_sql(
        f"UPDATE notification_deliveries SET status = %s, updated_at = %s{assignments} "  # noqa: S608 - column names from this module's callers, values are params
        "WHERE id = ANY(%s) AND claimed_by = %s AND status = ANY(%s)",
        (status, utcnow(), *fields.values(), list(ids), job_id, allowed),
    ).rowcount


def settle_dead_run(job_id, condition) -> int:
    """Rows this job left in ``sending``: its previous run died during the provider call."""
    return (
        Delivery.update(status="unknown", updated_at=utcnow(), error=DIED)
        .where(condition & (Delivery.status == "sending") & (Delivery.claimed_by == job_id))
        .execute()
    )


def _settled_as(ids, job_id, status: str, **fields) -> str | None:
    """``status`` when every one of ``ids`` was settled; None when the fence kept some row from it."""
    return status if settle(ids, job_id, status, **fields) == len(ids) else None


def settle_sent(ids, job_id, provider_id: str | None) -> str | None:
    """The provider accepted the send: ``sent`` (None when the fence kept some row from it)."""
    return _settled_as(ids, job_id, "sent", provider_message_id=provider_id or None, sent_at=utcnow(), error=None)


def settle_refused(
    ids, job_id, exc, *, attempt: int, last_attempt: bool, retry_as: str = "pending"
) -> tuple[str | None, str | None]:
    """The provider refused or failed the send: ``(error to retry on or None, status written)``.

    ``exc`` says how (``services.mail.ProviderError``: ``transient``, ``uncertain``).
    A request that may have arrived is ``unknown``, never resent; a transient
    error puts the rows back to ``retry_as`` (they were never sent) for the job's
    retry, unless this was its last attempt; anything else is ``failed``. The
    status is None when the fence kept some row from being settled.
    """
    if exc.uncertain:
        return None, _settled_as(ids, job_id, "unknown", error=str(exc)[:500])
    if exc.transient and not last_attempt:
        return str(exc), _settled_as(ids, job_id, retry_as, error=str(exc)[:500])
    tries = f"{attempt} attempt{'s' if attempt != 1 else ''}"
    reason = str(exc) if not exc.transient else f"gave up after {tries}: {exc}"
    return None, _settled_as(ids, job_id, "failed", error=reason[:500])


def settle_interrupted(ids, job_id, exc: BaseException) -> None:
    """The send stopped with something other than the provider's answer: it may have gone out, so ``unknown``."""
    settle(ids, job_id, "unknown", error=f"the send was interrupted ({type(exc).__name__})")


# The notification's deliveries, after marking ``unknown`` those this job left in ``sending``: its
# previous run died during the provider call (the SELECT sees them as they were; ``dead`` says which).
_OF_NOTIFICATION = """
WITH dead AS (
    UPDATE notification_deliveries SET status = 'unknown', updated_at = %s, error = %s
    WHERE notification_id = %s AND status = 'sending' AND claimed_by = %s
    RETURNING id
)
SELECT d.*, d.id IN (SELECT id FROM dead) AS dead
FROM notification_deliveries d WHERE d.notification_id = %s ORDER BY d.id
"""


def of_notification(job_id, notification_id) -> list[Delivery]:
    """A notification's deliveries, those ``job_id``'s dead run left in ``sending`` settled ``unknown`` first."""
    rows = list(Delivery.raw(_OF_NOTIFICATION, utcnow(), DIED, notification_id, job_id, notification_id))
    for row in rows:
        if row.dead:
            row.status, row.error = "unknown", DIED
    return rows


def withhold_all(notification_id, reason: str) -> None:
    """Every delivery of a notification still waiting to go out is ``suppressed`` for ``reason``."""
    (
        Delivery.update(status="suppressed", error=reason, updated_at=utcnow())
        .where((Delivery.notification == notification_id) & Delivery.status.in_(["pending", "scheduled"]))
        .execute()
    )


def withheld(
    delivery: Delivery, notification: Notification, prefs: Preferences, known: dict | None = None
) -> str | None:
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
