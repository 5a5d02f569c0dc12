"""The pages that links in emails open: verify an address, reset a password, unsubscribe, unlock an account.

Each page says what will happen and sends the link's token to the API only when
the person clicks (mail scanners and link previews fetch links; a fetch changes
nothing). The token never enters the HTML: the page's one script reads it from
the address and posts it as JSON. ``FRONTEND_URL`` hands these paths to a web
app; by default the links in emails lead here.
"""

from __future__ import annotations

import html
import json
import pathlib
import string
from dataclasses import dataclass, field

import falcon

from api.operation import operation
from api.resources.docs import content_security_policy
from services.notification_templates import TEMPLATES

TAGS = ("pages",)
TEMPLATE = string.Template((pathlib.Path(__file__).resolve().parent.parent / "static" / "action.html").read_text())
PASSWORD_INPUT = (
    '<label for="password">New password (at least 8 characters)</label>\n'  # noqa: S105 - HTML, not a password
    '<input id="password" name="password" type="password" autocomplete="new-password" '
    'minlength="8" maxlength="200" required>\n'
)


@dataclass(frozen=True)
class EmailedAction:
    path: str  # the page, as emailed links name it
    title: str
    explanation: str
    endpoint: str  # what the click posts {"token", *fields} to
    button: str
    done: str
    fields: tuple[str, ...] = ()
    preview: str = ""  # a GET that shows, with ?token=, what the link is about (changing nothing)
    labels: dict = field(default_factory=dict)  # words for the values the preview answers with

    def page(self) -> bytes:
        inputs = PASSWORD_INPUT if "password" in self.fields else ""
        values = {
            name: html.escape(value, quote=True)
            for name, value in (
                ("title", self.title),
                ("explanation", self.explanation),
                ("endpoint", self.endpoint),
                ("button", self.button),
                ("done", self.done),
                ("fields", " ".join(self.fields)),
                ("preview", self.preview),
                ("labels", json.dumps(self.labels)),
            )
        }
        return TEMPLATE.substitute(values, inputs=inputs).encode()


ACTIONS = (
    EmailedAction(
        "/verify-email",
        "Confirm your email address",
        "Confirm that this email address is yours, to finish setting up your Hearth account.",
        "/v1/auth/verify-email",
        "Confirm my email address",
        "Your email address is confirmed. You can close this page.",
    ),
    EmailedAction(
        "/reset-password",
        "Choose a new password",
        "Choose a new password for your Hearth account. Every device signed in to it will be signed out.",
        "/v1/auth/password/reset",
        "Save my new password",
        "Your password is changed. Log in with it on every device.",
        fields=("password",),
    ),
    EmailedAction(
        "/unsubscribe",
        "Stop these emails",
        "Stop the emails this link came with: one kind of notification, or all of them from a daily "
        "digest. Notifications in the app stay on; change either in your notification settings.",
        "/v1/unsubscribe",
        "Unsubscribe",
        "Done: you will not get these emails any more.",
        preview="/v1/unsubscribe",
        labels={
            **{type_: template.label for type_, template in TEMPLATES.items()},
            "*": "everything Hearth notifies you of",
        },
    ),
    EmailedAction(
        "/unlock-account",
        "Unlock your account",
        "Your account was locked after failed logins from many places. Unlock it for this device, "
        "then log in on it with your password; it stays locked everywhere else for a while.",
        "/v1/auth/unlock",
        "Unlock my account on this device",
        "Unlocked for this device: log in now with your password.",
    ),
)


class EmailedActionPage:
    """One static page; its CSP allows exactly its own inline script and style, by hash."""

    def __init__(self, action: EmailedAction):
        self.action = action
        self.body = action.page()
        self.csp = content_security_policy(self.body)

    @operation(
        "A page an emailed link opens (HTML)",
        auth="none",
        rate=None,
        tags=TAGS,
        content_type="text/html",
        description="Verify an address, reset a password, unsubscribe or unlock an account: the page shows "
        "what will happen and posts the link's `?token=` to the API on a click. Fetching it "
        "changes nothing. `FRONTEND_URL` points emailed links at a web app instead.",
    )
    def on_get(self, req, resp):
        resp.data = self.body
        resp.content_type = falcon.MEDIA_HTML
        # The token is in this page's URL: keep it out of caches and of Referer headers.
        resp.cache_control = ["no-store"]
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("Content-Security-Policy", self.csp)
        resp.set_header("X-Robots-Tag", "noindex")


def add_routes(app: falcon.App) -> None:
    for action in ACTIONS:
        app.add_route(action.path, EmailedActionPage(action))
