"""In-app notifications, notification preferences, and unsubscribe links.

The inbox lists notifications the fan-out put in the app (``in_app``); reading
them is idempotent and announced on ``user:{id}`` (``notification.read``) so
other open tabs update. Text messages need a verified phone
(``api/resources/phone.py``); operators see deliveries in
``api/resources/notification_admin.py``. Unsubscribe links work without a
login; opening one changes nothing, only the POST (RFC 8058 one-click) turns
email off.
"""

from __future__ import annotations

import datetime
import functools
import logging
import zoneinfo
from urllib.parse import parse_qsl

import falcon
import msgspec

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import not_found, validation_error
from api.operation import decode_body, operation, read_body
from api.schemas.notifications import (
    NotificationPage,
    NotificationQuery,
    PreferencesPatch,
    PreferencesView,
    ReadAll,
    UnsubscribeBody,
    UnsubscribePostQuery,
    UnsubscribeQuery,
    UnsubscribeState,
)
from models.accounts import User
from models.base import utcnow
from models.db import db
from models.notifications import TYPES, Notification, NotificationPreference, Preferences, locked_preferences, turn_off
from services.unsubscribe import read_unsubscribe_token

log = logging.getLogger("hearth.notifications")
TAGS = ("notifications",)
UNSUBSCRIBE_BODY_BYTES = 1024


def _inbox(user_id):
    """My notifications that the fan-out put in the app."""
    return (Notification.user == user_id) & (Notification.in_app == True)  # noqa: E712


def _unread_count(user_id) -> int:
    return Notification.select().where(_inbox(user_id) & Notification.read_at.is_null()).count()


class MyNotifications:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "notifications")

    @operation(
        "My notifications",
        query=NotificationQuery,
        response=NotificationPage,
        tags=TAGS,
        description="Newest first; `unread=true` lists only unread ones. `unread_count` counts all of "
        "them, for the badge.",
    )
    def on_get(self, req, resp):
        q: NotificationQuery = req.context.query
        user_id = req.context.principal.user_id
        query = Notification.select().where(_inbox(user_id))
        if q.unread is not None:
            query = query.where(Notification.read_at.is_null(q.unread))
        rows, next_cursor = self.cursors.newest_first(
            query, Notification.created_at, Notification.id, q.cursor, q.limit
        )
        resp.media = {
            "items": [row.view() for row in rows],
            "unread_count": _unread_count(user_id),
            "next_cursor": next_cursor,
        }

    @operation(
        "Mark one notification read",
        status=204,
        errors=(404,),
        tags=TAGS,
        description="Idempotent. Other sessions hear `notification.read` on `user:{id}`.",
    )
    def on_post_read(self, req, resp, notification_id):
        user_id = req.context.principal.user_id
        mine = _inbox(user_id) & (Notification.id == notification_id)
        marked = Notification.update(read_at=utcnow()).where(mine & Notification.read_at.is_null()).execute()
        if not marked and not Notification.select().where(mine).exists():
            raise not_found("notification")
        if marked:
            self._announce(req, {"notification_id": str(notification_id), "all": False})
        resp.status = falcon.HTTP_204

    @operation("Mark all my notifications read", response=ReadAll, tags=TAGS)
    def on_post_read_all(self, req, resp):
        user_id = req.context.principal.user_id
        marked = Notification.update(read_at=utcnow()).where(_inbox(user_id) & Notification.read_at.is_null()).execute()
        if marked:
            self._announce(req, {"notification_id": None, "all": True})
        resp.media = {"marked": marked}

    @staticmethod
    def _announce(req, data: dict) -> None:
        user_id = req.context.principal.user_id
        try:
            req.context.services.events.publish(
                f"user:{user_id}", "notification.read", dict(data, unread_count=_unread_count(user_id))
            )
        except Exception:
            log.warning("could not publish notification.read", extra={"user_id": user_id}, exc_info=True)


# --- Preferences -------------------------------------------------------------------------


def _clock(value: datetime.time | None) -> str | None:
    return value.strftime("%H:%M") if value is not None else None


def preferences_view(user_id) -> dict:
    prefs = Preferences.of(user_id)
    user = User.get_by_id(user_id)
    quiet = None
    if prefs.quiet_start is not None and prefs.quiet_end is not None:
        quiet = {"start": _clock(prefs.quiet_start), "end": _clock(prefs.quiet_end)}
    return {
        "types": prefs.types,
        "quiet_hours": quiet,
        "timezone": prefs.timezone,
        "digest_hour": prefs.digest_hour,
        "phone": {"number": user.phone, "verified": user.has_verified_phone},
    }


@functools.lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _is_zone(name: str) -> bool:
    zones = _zones()
    if zones:
        return name in zones
    try:  # no zone list on this system: whatever the zoneinfo package can load
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _hhmm(text: str) -> datetime.time:
    hours, minutes = text.split(":")
    return datetime.time(int(hours), int(minutes))


class MyNotificationPreferences:
    @operation(
        "My notification preferences",
        response=PreferencesView,
        tags=TAGS,
        description="Every event type with its channels (my choices over the defaults), quiet hours, "
        "time zone, digest hour, and my phone number's state.",
    )
    def on_get(self, req, resp):
        resp.media = preferences_view(req.context.principal.user_id)

    @operation(
        "Change my notification preferences",
        body=PreferencesPatch,
        response=PreferencesView,
        permission="profile:write",
        errors=(422,),
        tags=TAGS,
        description="Partial: only the members sent change, per type and per channel. `sms: true` needs "
        "a verified phone number. `quiet_hours: null` removes quiet hours.",
    )
    def on_patch(self, req, resp):
        body: PreferencesPatch = req.context.body
        user_id = req.context.principal.user_id
        errors = []
        if body.timezone is not None and not _is_zone(body.timezone):
            errors.append({"field": "body.timezone", "message": "is not an IANA time zone (e.g. Europe/Paris)"})
        quiet = body.quiet_hours
        if quiet and quiet.start == quiet.end:
            errors.append({"field": "body.quiet_hours.end", "message": "must differ from start"})
        with db.atomic():
            row = locked_preferences(user_id)
            chosen = dict(row.types or {})
            if body.types is not None:
                verified = User.get_by_id(user_id).has_verified_phone
                for attr, name in zip(body.types.__struct_fields__, body.types.__struct_encode_fields__, strict=True):
                    choice = getattr(body.types, attr)
                    if choice is None:
                        continue
                    changes = {k: v for k, v in msgspec.structs.asdict(choice).items() if v is not None}
                    if changes.get("sms") and not verified:
                        errors.append(
                            {
                                "field": f"body.types.{name}.sms",
                                "message": "needs a verified phone number (PUT /v1/me/phone)",
                            }
                        )
                    chosen[name] = {**(chosen.get(name) or {}), **changes}
            if errors:
                raise validation_error(errors)
            changes = {"types": chosen, "updated_at": utcnow()}
            if quiet is not msgspec.UNSET:
                changes.update(
                    quiet_start=_hhmm(quiet.start) if quiet else None, quiet_end=_hhmm(quiet.end) if quiet else None
                )
            if body.timezone is not None:
                changes["timezone"] = body.timezone
            if body.digest_hour is not None:
                changes["digest_hour"] = body.digest_hour
            NotificationPreference.update(**changes).where(NotificationPreference.user == user_id).execute()
        resp.media = preferences_view(user_id)


# --- Unsubscribe links -------------------------------------------------------------------


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def _link_owner(req, token: str) -> tuple[User, str]:
    found = read_unsubscribe_token(req.context.services.settings.secret_key, token, TYPES)
    user = User.get_or_none(User.id == found[0]) if found else None
    if found is None or user is None:
        raise not_found("unsubscribe link")
    return user, found[1]


def _unsubscribe_state(user: User, type_: str) -> dict:
    types = Preferences.of(user.id).types
    names = list(TYPES) if type_ == "*" else [type_]
    return {"type": type_, "email": mask_email(user.email), "unsubscribed": not any(types[n]["email"] for n in names)}


def _body_token(req) -> str | None:
    """The token of a JSON body ``{"token"}`` or a form body (at most 1 KiB); None when the body has none."""
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type == "application/json":
        return decode_body(req, UnsubscribeBody, UNSUBSCRIBE_BODY_BYTES).token
    data = read_body(req, UNSUBSCRIBE_BODY_BYTES)
    if media_type != "application/x-www-form-urlencoded":
        return None
    # RFC 8058's body is "List-Unsubscribe=One-Click" (the token is in the URL); a form may carry token=.
    token = dict(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True)).get("token")
    return token if token and len(token) <= 300 and "\x00" not in token else None


class Unsubscribe:
    @operation(
        "What an unsubscribe link would do",
        query=UnsubscribeQuery,
        response=UnsubscribeState,
        auth="none",
        rate="auth",
        errors=(404,),
        tags=TAGS,
        description="Changes nothing (mail scanners open links): shows the event type (`*`: every email), "
        "the masked address and whether that email is already off.",
    )
    def on_get(self, req, resp):
        user, type_ = _link_owner(req, req.context.query.token)
        resp.set_header("Cache-Control", "no-store")
        resp.media = _unsubscribe_state(user, type_)

    @operation(
        "Turn email off with an unsubscribe link",
        query=UnsubscribePostQuery,
        response=UnsubscribeState,
        auth="none",
        rate="auth",
        errors=(400, 404, 413, 422),
        tags=TAGS,
        description="The token comes in the query string (the RFC 8058 one-click POST, whose form body is "
        '`List-Unsubscribe=One-Click`) or as JSON `{"token"}`. Turns email off for the link\'s '
        "type, or for every type (`*`); in-app notifications stay.",
    )
    def on_post(self, req, resp):
        token = req.context.query.token or _body_token(req)
        if not token:
            raise validation_error([{"field": "query.token", "message": 'is required (or send {"token"} as JSON)'}])
        user, type_ = _link_owner(req, token)
        with db.atomic():
            turn_off(user.id, "email", TYPES if type_ == "*" else (type_,))
            audit(req, "user.unsubscribe", user.id, after={"type": type_})
        resp.set_header("Cache-Control", "no-store")
        resp.media = _unsubscribe_state(user, type_)


# --- Operators ---------------------------------------------------------------------------
