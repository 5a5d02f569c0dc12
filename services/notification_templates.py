"""What a notification looks like in an email and in a text message, and the daily digest email.

Per event type: the subject, a text part and an HTML part (everything the user
or another user wrote is HTML-escaped), and where its link leads in the web
app. Every email carries an unsubscribe link in its body (the ``/unsubscribe``
page under ``settings.pages_url``) and the RFC 8058 one-click headers pointing at the API
(``List-Unsubscribe: <{public_url}/v1/unsubscribe?token=…>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``); a notification's token
names its type, the digest's names every type (``"*"``).

Links into the product are built from ``notification.data``:
``conversation_id`` → ``/conversations/{id}``, ``property_id`` →
``/properties/{id}``, otherwise the notification list ``/notifications``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from services.mail import Message
from services.unsubscribe import UserId, unsubscribe_token
from settings import Settings

SMS_MAX_CHARS = 320
DIGEST_SHOWN = 50
DIGEST_EXCERPT_CHARS = 200
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class TypeTemplate:
    label: str  # what the user turns on or off in their settings
    intro: str  # the line above the notification's own text
    action: str  # the link's label
    link_key: str | None  # the data field naming what the link opens


TEMPLATES: dict[str, TypeTemplate] = {
    "message.received": TypeTemplate(
        "new messages", "You have a new message on Hearth.", "Read and reply", "conversation_id"
    ),
    "saved_search.new_match": TypeTemplate(
        "saved search matches", "A new listing matches one of your saved searches.", "View the listing", "property_id"
    ),
    "saved_search.price_drop": TypeTemplate(
        "price drops", "A listing that matches your saved search is now cheaper.", "View the listing", "property_id"
    ),
    **{
        f"offer.{event}": TypeTemplate(f"offers {label}", intro, "View the offer", "offer_id")
        for event, label, intro in (
            ("received", "received", "You have a new offer on Hearth."),
            ("countered", "countered", "An offer was countered."),
            ("accepted", "accepted", "An offer was accepted."),
            ("rejected", "rejected", "An offer was rejected."),
            ("withdrawn", "withdrawn", "An offer was withdrawn."),
            ("expired", "expired", "An offer expired."),
            ("backup", "kept as backups", "The seller accepted another offer; yours stays as a backup."),
        )
    },
    **{
        f"escrow.{event}": TypeTemplate(f"escrow: {label}", intro, "View the escrow", "escrow_id")
        for event, label, intro in (
            ("opened", "opened", "An escrow was opened for an accepted offer."),
            ("funded", "deposit received", "The earnest money deposit arrived in escrow."),
            ("contingency_removed", "contingencies removed", "A contingency was removed."),
            ("deposit_hard", "deposit non-refundable", "The earnest money deposit is no longer refundable."),
            ("instructed", "instructions", "A party gave an instruction on an escrow."),
            ("disputed", "disputes", "An escrow is disputed."),
            ("released", "released", "The earnest money was released to the seller."),
            ("refunded", "refunded", "The earnest money was refunded to the buyer."),
            ("resolved", "resolved", "An escrow dispute was resolved."),
            ("cancelled", "cancelled", "An escrow was cancelled."),
            ("closing_due", "closing reminders", "The closing date of an escrow has come."),
            ("payment_failed", "payment problems", "A payment of an escrow failed."),
        )
    },
}


class NotificationContent(Protocol):
    """What a notification's email and text message are made of (``models.notifications.Notification``)."""

    @property
    def type(self) -> str: ...

    @property
    def title(self) -> str | None: ...

    @property
    def body(self) -> str | None: ...

    @property
    def data(self) -> Mapping[str, Any] | None: ...

    @property
    def user_id(self) -> UserId: ...


_GENERIC = TypeTemplate("notifications", "There is news for you on Hearth.", "Open Hearth", None)
_LINK_PATHS = {
    "conversation_id": "/conversations/",
    "property_id": "/properties/",
    "offer_id": "/offers/",
    "escrow_id": "/escrows/",
}


def _base(settings: Settings) -> str:
    return settings.public_url.rstrip("/")


def _one_line(text: str | None) -> str:
    return _CONTROL.sub(" ", text or "").strip()


def _template(type_: str) -> TypeTemplate:
    return TEMPLATES.get(type_, _GENERIC)


def notification_link(notification: NotificationContent, settings: Settings) -> str:
    """Where the notification leads in the web app (absolute, under ``public_url``)."""
    link_key = _template(notification.type).link_key
    value = (notification.data or {}).get(link_key) if link_key else None
    if link_key and isinstance(value, (str, int)) and str(value):
        return f"{_base(settings)}{_LINK_PATHS[link_key]}{quote(str(value), safe='')}"
    return f"{_base(settings)}/notifications"


def unsubscribe_links(settings: Settings, user_id: UserId, type_: str) -> tuple[str, str]:
    """``(page for people, one-click endpoint for mail clients)`` for one user and type (``"*"``: all)."""
    query = urlencode({"token": unsubscribe_token(settings.secret_key, user_id, type_)})
    return f"{settings.pages_url}/unsubscribe?{query}", f"{_base(settings)}/v1/unsubscribe?{query}"


def _unsubscribe_headers(one_click: str) -> tuple[tuple[str, str], ...]:
    return (("List-Unsubscribe", f"<{one_click}>"), ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))


def _html_text(text: str) -> str:
    return html.escape(text, quote=True).replace("\n", "<br>\n")


def _footer_text(reason: str, page: str, settings: Settings) -> str:
    return (
        f"\n--\nYou receive this email because {reason} are turned on in your Hearth notification settings:\n"
        f"{_base(settings)}/settings/notifications\nUnsubscribe from these emails: {page}\n"
    )


def _footer_html(reason: str, page: str, settings: Settings) -> str:
    settings_link = html.escape(f"{_base(settings)}/settings/notifications", quote=True)
    return (
        f'<hr><p style="color:#666;font-size:12px">You receive this email because {html.escape(reason)} are '
        f'turned on in your <a href="{settings_link}">Hearth notification settings</a>. '
        f'<a href="{html.escape(page, quote=True)}">Unsubscribe from these emails</a>.</p>'
    )


def notification_email(notification: NotificationContent, *, to: str, settings: Settings) -> Message:
    """The email for one notification, to ``to``."""
    template = _template(notification.type)
    title = _one_line(notification.title)
    link = notification_link(notification, settings)
    page, one_click = unsubscribe_links(settings, notification.user_id, notification.type)
    body = (notification.body or "").strip()
    text = (
        f"{template.intro}\n\n{title}\n\n"
        + (f"{body}\n\n" if body else "")
        + f"{template.action}: {link}\n"
        + _footer_text(template.label, page, settings)
    )
    html_part = (
        f"<p>{html.escape(template.intro)}</p><h2>{html.escape(title)}</h2>"
        + (f"<p>{_html_text(body)}</p>" if body else "")
        + f'<p><a href="{html.escape(link, quote=True)}">{html.escape(template.action)}</a></p>'
        + _footer_html(template.label, page, settings)
    )
    return Message(to=to, subject=title, text=text, html=html_part, headers=_unsubscribe_headers(one_click))


def notification_sms(notification: NotificationContent, *, settings: Settings) -> str:
    """``"Hearth: <title> <link>"``, at most ``SMS_MAX_CHARS``: the title is shortened, never the link."""
    link = notification_link(notification, settings)
    title = _one_line(notification.title)
    room = SMS_MAX_CHARS - len("Hearth:  ") - len(link)
    if len(title) > room:
        title = title[: max(0, room - 1)].rstrip() + "…"
    return f"Hearth: {title} {link}"[:SMS_MAX_CHARS]


def _excerpt(text: str | None) -> str:
    line = _one_line((text or "").strip().split("\n", 1)[0])
    return line if len(line) <= DIGEST_EXCERPT_CHARS else line[: DIGEST_EXCERPT_CHARS - 1].rstrip() + "…"


def digest_email(
    notifications: Sequence[NotificationContent], *, to: str, user_id: UserId, settings: Settings
) -> Message:
    """One email listing ``notifications`` (newest first; the first ``DIGEST_SHOWN``, then "and N more")."""
    total = len(notifications)
    shown, more = notifications[:DIGEST_SHOWN], max(0, total - DIGEST_SHOWN)
    page, one_click = unsubscribe_links(settings, user_id, "*")
    everything = f"{_base(settings)}/notifications"
    subject = f"Your Hearth digest: {total} update{'s' if total != 1 else ''}"
    lines: list[str] = []
    items: list[str] = []
    for notification in shown:
        title, excerpt, link = (
            _one_line(notification.title),
            _excerpt(notification.body),
            notification_link(notification, settings),
        )
        lines.append(f"* {title}\n" + (f"  {excerpt}\n" if excerpt else "") + f"  {link}\n")
        items.append(
            f'<li><a href="{html.escape(link, quote=True)}">{html.escape(title)}</a>'
            + (f"<br>{html.escape(excerpt)}" if excerpt else "")
            + "</li>"
        )
    tail_text = f"\n…and {more} more: {everything}\n" if more else f"\nSee all: {everything}\n"
    tail_html = (
        f'<p>…and {more} more. <a href="{html.escape(everything, quote=True)}">See all</a></p>'
        if more
        else f'<p><a href="{html.escape(everything, quote=True)}">See all</a></p>'
    )
    text = (
        "Here is what happened on Hearth since your last digest.\n\n"
        + "\n".join(lines)
        + tail_text
        + _footer_text("daily digests", page, settings)
    )
    html_part = (
        "<p>Here is what happened on Hearth since your last digest.</p><ul>"
        + "".join(items)
        + "</ul>"
        + tail_html
        + _footer_html("daily digests", page, settings)
    )
    return Message(to=to, subject=subject, text=text, html=html_part, headers=_unsubscribe_headers(one_click))


__all__ = [
    "DIGEST_SHOWN",
    "SMS_MAX_CHARS",
    "TEMPLATES",
    "NotificationContent",
    "TypeTemplate",
    "digest_email",
    "notification_email",
    "notification_link",
    "notification_sms",
    "unsubscribe_links",
]
