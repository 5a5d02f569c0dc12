"""Outgoing email: SendGrid in production, an ``.eml`` outbox on disk in development.

``send(message, idempotency_key=...)``: the outbox writes one RFC 5322 file per
key (a second send with the same key changes nothing); SendGrid receives the key
as the custom argument ``hearth_key``, which its event webhook sends back, so
every delivery event can be traced to its notification.

Failures raise ``MailError``: ``transient`` (worth retrying: 429, 5xx, the
provider unreachable) or permanent (4xx); ``uncertain`` when the request may
have reached the provider before it failed (a read timeout), so sending again
could deliver twice.
"""
from __future__ import annotations

import email.message
import email.utils
import os
import pathlib
import re
import socket
from dataclasses import dataclass


class ProviderError(Exception):
    """A provider (SendGrid, Twilio) refused or failed a send."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None, uncertain: bool = False):
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.uncertain = uncertain


class MailError(ProviderError):
    pass


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str
    html: str | None = None
    # Extra headers (List-Unsubscribe, List-Unsubscribe-Post).
    headers: tuple[tuple[str, str], ...] = ()


_SAFE_KEY = re.compile(r"[^A-Za-z0-9._-]")


class OutboxMailer:
    """Writes each message as ``<outbox>/<idempotency key>.eml``."""

    def __init__(self, directory: pathlib.Path, sender: str):
        self.directory = pathlib.Path(directory)
        self.sender = sender

    def send(self, message: Message, *, idempotency_key: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / (_SAFE_KEY.sub("_", idempotency_key) + ".eml")
        if path.exists():
            return path.name
        msg = email.message.EmailMessage()
        msg["From"] = self.sender
        msg["To"] = message.to
        msg["Subject"] = message.subject
        msg["Date"] = email.utils.formatdate(usegmt=True)
        msg["Message-ID"] = email.utils.make_msgid(domain="hearth.local")
        msg["X-Hearth-Idempotency-Key"] = idempotency_key
        for name, value in message.headers:
            msg[name] = value
        msg.set_content(message.text)
        if message.html:
            msg.add_alternative(message.html, subtype="html")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(bytes(msg))
        os.replace(tmp, path)
        return path.name


class SendGridMailer:
    def __init__(self, api_key: str, sender: str, api_url: str = "https://api.sendgrid.com", timeout: float = 10):
        from sendgrid import SendGridAPIClient
        self.client = SendGridAPIClient(api_key=api_key, host=api_url)
        self.client.client.timeout = timeout
        self.sender = sender

    def send(self, message: Message, *, idempotency_key: str) -> str:
        from python_http_client.exceptions import HTTPError
        from sendgrid.helpers.mail import CustomArg, Header, Mail
        mail = Mail(from_email=self.sender, to_emails=message.to, subject=message.subject,
                    plain_text_content=message.text, html_content=message.html)
        mail.custom_arg = CustomArg("hearth_key", idempotency_key)
        for name, value in message.headers:
            mail.header = Header(name, value)
        try:
            response = self.client.send(mail)
        except HTTPError as exc:
            status = getattr(exc, "status_code", 0)
            raise MailError(f"SendGrid answered {status}", transient=status == 429 or status >= 500,
                            status=status) from None
        except (TimeoutError, socket.timeout) as exc:
            raise MailError(f"SendGrid did not answer in time: {exc}", transient=True, uncertain=True) from None
        except OSError as exc:
            uncertain = isinstance(getattr(exc, "reason", None), (TimeoutError, socket.timeout))
            raise MailError(f"SendGrid unreachable: {exc}", transient=True, uncertain=uncertain) from None
        return response.headers.get("X-Message-Id", "") if response.headers else ""


def make_mailer(settings):
    if settings.mail_backend == "sendgrid":
        return SendGridMailer(settings.sendgrid_api_key, settings.mail_from, settings.sendgrid_api_url)
    return OutboxMailer(settings.outbox_dir, settings.mail_from)
