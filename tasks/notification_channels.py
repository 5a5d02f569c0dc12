"""Where a notification goes, decided once per notification by its fan-out job (``tasks.notifications``).

``load_context`` reads the notification with its user, their preferences and
whether their address is suppressed, in one statement. ``decide`` sets
``notifications.in_app`` while it is still NULL and, in the same statement,
writes the notification's ``NotificationDelivery`` rows: email (held for the
daily digest when the user chose it), SMS, each held until quiet hours end
(``scheduled``), or withheld when the address is suppressed. A notification
shown in the app is announced (``notification.created`` on ``user:{id}``).
"""

from __future__ import annotations

import datetime
import logging

from models import deliveries as sending
from models.accounts import User
from models.base import utcnow
from models.notifications import Notification, NotificationDelivery, Preferences, delivery_key, merged_types
from tasks.runtime import runtime

log = logging.getLogger("hearth.notifications")
# Types whose email and text wait ``MESSAGE_NOTIFICATION_DELAY`` seconds first (see ``decide``).
_DELAYED = frozenset({"message.received"})
Delivery = NotificationDelivery


# --- who, and what they want --------------------------------------------------------------
# A fan-out is a handful of small statements; building them through the query builder cost more CPU
# than PostgreSQL spent running them, so the ones every fan-out runs are written out here (as
# models/jobs.py does for claim and finish).

# The notification, its user, their preferences, and whether their address is suppressed.
_CONTEXT = """
SELECT n.*, u.id AS u_id, u.email AS u_email, u.email_verified_at AS u_email_verified_at, u.phone AS u_phone,
       u.phone_verified_at AS u_phone_verified_at, u.banned_at AS u_banned_at, p.user_id AS p_user_id,
       p.types AS p_types, p.quiet_start AS p_quiet_start, p.quiet_end AS p_quiet_end, p.timezone AS p_timezone,
       p.digest_hour AS p_digest_hour, s.reason AS s_reason
FROM notifications n
LEFT JOIN users u ON u.id = n.user_id
LEFT JOIN notification_preferences p ON p.user_id = n.user_id
LEFT JOIN email_suppressions s ON s.email = u.email
WHERE n.id = %s
"""


def load_context(notification_id):
    """``(notification, user or None, preferences, {address: suppression reason or None})``, or None."""
    rows = list(Notification.raw(_CONTEXT, notification_id))
    if not rows:
        return None
    n = rows[0]
    if n.u_id is None:
        return n, None, None, {}
    user = User(
        id=n.u_id,
        email=n.u_email,
        email_verified_at=n.u_email_verified_at,
        phone=n.u_phone,
        phone_verified_at=n.u_phone_verified_at,
        banned_at=n.u_banned_at,
    )
    prefs = Preferences(types=merged_types({}))  # as Preferences.of, from the joined row
    if n.p_user_id is not None:
        prefs = Preferences(
            types=merged_types(n.p_types or {}),
            quiet_start=n.p_quiet_start,
            quiet_end=n.p_quiet_end,
            timezone=n.p_timezone,
            digest_hour=n.p_digest_hour,
        )
    # The join matched the address as stored; it answers for the normalised one when they are the same.
    known = {user.email: n.s_reason} if user.email and user.email == user.email.strip().lower() else {}
    return n, user, sending.checked_zone(prefs, user.id), known


# Deciding, in one statement: ``in_app`` set only while NULL (the guard that makes the decision once per
# notification, whichever job runs it), the delivery rows written only when it was, and the user's other
# unread in-app notifications counted for the announcement.
_DECIDE = """
WITH decided AS (
    UPDATE notifications SET in_app = %s WHERE id = %s AND in_app IS NULL RETURNING read_at
), inserted AS (
    INSERT INTO notification_deliveries (notification_id, user_id, channel, status, recipient, idempotency_key,
                                         not_before, error, attempts, created_at, updated_at)
    SELECT %s, %s, v.*, 0, %s, %s
    FROM decided, unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[]) AS v
    ON CONFLICT DO NOTHING
    RETURNING *
)
SELECT inserted.*, (SELECT count(*) FROM decided) AS decided_now,
       (SELECT bool_or(read_at IS NULL) FROM decided) AS still_unread,
       (SELECT count(*) FROM notifications o
        WHERE o.user_id = %s AND o.in_app AND o.read_at IS NULL AND o.id <> %s) AS other_unread
FROM (SELECT 1) AS one LEFT JOIN inserted ON true
"""


def decide(notification: Notification, user: User, prefs: Preferences, known: dict):
    """Set ``in_app``, write the delivery rows and announce: ``(in_app, deliveries)``, or None when it was decided."""
    ch = sending.channels(prefs, notification.type)
    now = utcnow()
    quiet_until = prefs.quiet_until(now)
    delay = runtime().settings.message_notification_delay if notification.type in _DELAYED else 0
    if delay:
        # Wait a little before emailing or texting about a message: read in the app meanwhile
        # (the recipient was online), it is withheld when released (``sending.withheld``).
        quiet_until = max(quiet_until or now, now + datetime.timedelta(seconds=delay))
    rows = []
    if ch["email"] and user.email_verified_at:
        row = {"status": "pending", "recipient": user.email}
        suppressed = sending.suppression(user.email, known)
        if suppressed is not None:
            row.update(status="suppressed", error=f"the address is suppressed ({suppressed})")
        elif ch["digest"] == "daily":
            row["status"] = "digest"
        elif quiet_until is not None:
            row.update(status="scheduled", not_before=quiet_until)
        rows.append(dict(row, channel="email"))
    if ch["sms"] and user.has_verified_phone:
        # Text messages are never digested: they are for what cannot wait (quiet hours still apply).
        row = {"status": "pending", "recipient": user.phone}
        if quiet_until is not None:
            row.update(status="scheduled", not_before=quiet_until)
        rows.append(dict(row, channel="sms"))
    columns = [
        [row["channel"] for row in rows],
        [row["status"] for row in rows],
        [row["recipient"] for row in rows],
        [delivery_key(notification.id, row["channel"]) for row in rows],
        [row.get("not_before") for row in rows],
        [row.get("error") for row in rows],
    ]
    result = list(
        Delivery.raw(
            _DECIDE,
            bool(ch["in_app"]),
            notification.id,
            notification.id,
            user.id,
            now,
            now,
            *columns,
            notification.user_id,
            notification.id,
        )
    )
    first = result[0]
    if not first.decided_now:
        return None
    deliveries = [row for row in result if row.id is not None]
    if len(deliveries) < len(rows):  # rows that were there already: read them as they are
        deliveries = sending.of_notification(None, notification.id)
    if ch["in_app"]:
        unread = first.other_unread + (1 if first.still_unread else 0)
        _announce(notification, unread)
    return bool(ch["in_app"]), deliveries


def _announce(notification: Notification, unread: int) -> None:
    try:
        runtime().events.publish(
            f"user:{notification.user_id}",
            "notification.created",
            {"notification": notification.view(), "unread_count": unread},
        )
    except Exception:
        log.warning(
            "could not publish a notification event", extra={"notification_id": str(notification.id)}, exc_info=True
        )


__all__ = ["decide", "load_context"]
