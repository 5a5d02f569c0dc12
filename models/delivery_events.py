"""What providers tell us after a send: delivery outcomes and addresses that must get no more email.

Every event is stored once in ``provider_events`` (the provider's own id for it
is the key); a repeat changes nothing. A new event may move its deliveries
forward — never back: a late ``processed`` after ``delivered`` is only
recorded. A delivery left ``unknown`` (its send's outcome was lost) is settled
by any event that proves the provider had the message. Deliveries that were
never handed to a provider (pending, scheduled, digest, suppressed) are not
touched. Call these inside a transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import msgspec

from models.base import utcnow
from models.notifications import EmailSuppression, NotificationDelivery, ProviderEvent

# How far along a delivery is. Failure outranks delivery: a bounce may follow a
# 'delivered' (the mailbox refused the message later), never the other way round.
STATUS_RANK = {"sending": 1, "unknown": 1, "sent": 2, "delivered": 3, "failed": 4, "bounced": 4}
MAX_KEY_LENGTH = 200
MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True)
class Effect:
    """What one provider event means for its deliveries and its recipient."""

    # The status the delivery settles on; None: only an 'unknown' delivery moves (to 'sent').
    status: str | None = None
    # The provider's own progress (orders provider_status); None: the event is not about delivery.
    progress: int | None = None
    suppress: str | None = None  # an EmailSuppression reason for the event's address
    error: str | None = None


# --- SendGrid -----------------------------------------------------------------------------

_SENDGRID_PROGRESS = {"processed": 1, "deferred": 2, "delivered": 3, "bounce": 4, "blocked": 4, "dropped": 4}
# Bounces and drops carry their reason: see sendgrid_effect. Opens, clicks and unknown
# events are recorded only (they settle an 'unknown' delivery: the message was sent).
_SENDGRID = {
    "delivered": Effect(status="delivered"),
    "spamreport": Effect(suppress="spamreport"),
    "unsubscribe": Effect(suppress="unsubscribe"),
    "group_unsubscribe": Effect(suppress="unsubscribe"),
}


def _dropped_suppression(reason: str) -> str | None:
    """Whether SendGrid dropped the message because of the address itself (not our request)."""
    reason = reason.lower()
    if "unsubscribed" in reason:
        return "unsubscribe"
    if "bounced" in reason or "spam report" in reason or (reason.startswith("invalid") and "smtpapi" not in reason):
        return "dropped"
    return None


def sendgrid_effect(event: dict) -> Effect:
    name = _text(event.get("event"))
    reason = _text(event.get("reason"))[:500]
    progress = _SENDGRID_PROGRESS.get(name)
    if name == "dropped":
        return Effect(
            status="failed",
            progress=progress,
            suppress=_dropped_suppression(reason),
            error=f"SendGrid dropped the message: {reason or 'no reason given'}",
        )
    if name in ("bounce", "blocked"):
        kind = _text(event.get("type")) or name
        detail = " ".join(part for part in (_text(event.get("status")), reason) if part)
        return Effect(
            status="bounced",
            progress=progress,
            suppress="bounce",
            error=f"SendGrid {kind}: {detail or 'no reason given'}"[:1000],
        )
    return dataclasses.replace(_SENDGRID.get(name, Effect()), progress=progress)


def sendgrid_event_key(event: dict) -> str:
    """SendGrid's ``sg_event_id``; an event without one is keyed by its content."""
    key = _text(event.get("sg_event_id"))
    if key and len(key) <= MAX_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(msgspec.json.encode(event, order="sorted")).hexdigest()


def _sendgrid_deliveries(event: dict) -> list[NotificationDelivery]:
    query = NotificationDelivery.select().where(NotificationDelivery.channel == "email")
    key = _text(event.get("hearth_key"))
    if key and len(key) <= MAX_KEY_LENGTH:
        # A digest is one message for several deliveries: they share its key.
        query = query.where((NotificationDelivery.idempotency_key == key) | (NotificationDelivery.digest_key == key))
    else:
        # SendGrid's message id is the X-Message-Id it answered the send with, plus a suffix.
        message_id = _text(event.get("sg_message_id")).split(".", 1)[0]
        if not message_id or len(message_id) > MAX_KEY_LENGTH:
            return []
        query = query.where(NotificationDelivery.provider_message_id == message_id)
    return list(query.order_by(NotificationDelivery.id).limit(1000).for_update())


def apply_sendgrid_event(event: dict) -> bool:
    """Record one SendGrid event and apply it; False when it was seen before (nothing changed)."""
    name = _text(event.get("event"))[:40] or "unknown"
    deliveries = _sendgrid_deliveries(event)
    if not _record("sendgrid", sendgrid_event_key(event), name, event, deliveries):
        return False
    effect = sendgrid_effect(event)
    message_id = _text(event.get("sg_message_id")).split(".", 1)[0][:MAX_KEY_LENGTH] or None
    for delivery in deliveries:
        _settle(delivery, effect, name, _SENDGRID_PROGRESS, message_id)
    address = _email(event.get("email"))
    if effect.suppress and address:
        detail = _text(event.get("reason"))[:500] or None
        (EmailSuppression.insert(email=address, reason=effect.suppress, detail=detail).on_conflict_ignore().execute())
    return True


# --- Twilio -------------------------------------------------------------------------------

_TWILIO_PROGRESS = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
}


def twilio_effect(status: str, error_code: str | None) -> Effect:
    progress = _TWILIO_PROGRESS.get(status)
    if status == "delivered":
        return Effect(status="delivered", progress=progress)
    if status in ("undelivered", "failed", "canceled"):
        code = f" (error {error_code})" if error_code else ""
        return Effect(status="failed", progress=progress, error=f"Twilio: {status}{code}")
    return Effect(progress=progress)


def apply_twilio_status(params: dict[str, str], delivery_id: int | None) -> bool:
    """Record one Twilio status callback and apply it; False when it was seen before.

    ``delivery_id`` comes from the callback URL we gave Twilio; without it the
    delivery is found by its message SID.
    """
    sid = _text(params["MessageSid"])[:MAX_KEY_LENGTH]
    status = _text(params["MessageStatus"])[:40]
    query = NotificationDelivery.select().where(NotificationDelivery.channel == "sms")
    if delivery_id is not None:
        query = query.where(NotificationDelivery.id == delivery_id)
    else:
        query = query.where(NotificationDelivery.provider_message_id == sid)
    # A delivery that already has another message's SID is not this message's.
    deliveries = [d for d in query.limit(1).for_update() if d.provider_message_id in (None, sid)]
    if not _record("twilio", f"{sid}:{status}", status, params, deliveries):
        return False
    effect = twilio_effect(status, _text(params.get("ErrorCode"))[:20] or None)
    for delivery in deliveries:
        _settle(delivery, effect, status, _TWILIO_PROGRESS, sid)
    return True


# --- Shared -------------------------------------------------------------------------------


def _record(provider: str, key: str, name: str, payload, deliveries: list) -> bool:
    key, name, payload = _without_nul(key), _without_nul(name), _without_nul(payload)
    inserted = (
        ProviderEvent.insert(
            provider=provider,
            event_key=key,
            event=name,
            payload=payload,
            delivery=deliveries[0].id if deliveries else None,
        )
        .on_conflict_ignore()
        .returning(ProviderEvent.id)
        .execute()
    )
    return bool(list(inserted))


def _settle(
    delivery: NotificationDelivery, effect: Effect, event: str, progress_of: dict, message_id: str | None
) -> None:
    if delivery.status not in STATUS_RANK:
        return  # never handed to the provider
    changes = {}
    target = effect.status or ("sent" if delivery.status == "unknown" else None)
    if target and STATUS_RANK[target] > STATUS_RANK[delivery.status]:
        changes["status"] = target
        if effect.error:
            changes["error"] = effect.error
        if delivery.sent_at is None:
            changes["sent_at"] = utcnow()
    if effect.progress is not None and effect.progress >= progress_of.get(delivery.provider_status or "", 0):
        changes["provider_status"] = event
    if message_id and delivery.provider_message_id is None:
        changes["provider_message_id"] = message_id
    if changes:
        (
            NotificationDelivery.update(updated_at=utcnow(), **changes)
            .where(NotificationDelivery.id == delivery.id)
            .execute()
        )


def _without_nul(value):
    """``value`` with NUL characters removed from its strings (PostgreSQL text and jsonb refuse them)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _text(value) -> str:
    return value.replace("\x00", "") if isinstance(value, str) else ""


def _email(value) -> str | None:
    address = _text(value).strip().lower()
    if not address or len(address) > MAX_EMAIL_LENGTH or "@" not in address:
        return None
    return address


__all__ = [
    "STATUS_RANK",
    "Effect",
    "apply_sendgrid_event",
    "apply_twilio_status",
    "sendgrid_effect",
    "sendgrid_event_key",
    "twilio_effect",
]
