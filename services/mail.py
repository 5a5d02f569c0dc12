"""Outgoing email: SendGrid in production, an ``.eml`` outbox on disk in development.

``send(message, idempotency_key=...)``: the outbox writes one RFC 5322 file per
key (a second send with the same key changes nothing); SendGrid receives the key
as the custom argument ``hearth_key``, which its event webhook sends back, so
every delivery event can be traced to its notification.

Failures raise ``MailError``: ``transient`` (worth retrying: 429, 5xx, the
provider unreachable) or permanent (4xx); ``uncertain`` when the request may
have reached the provider before it failed (a read timeout), so sending again
could deliver twice.

``Mailer`` is what senders of mail ask of a backend; tests hand in their own.
"""

from __future__ import annotations

import datetime
import email.policy
import email.quoprimime
import email.utils
import itertools
import os
import pathlib
import re
import secrets
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from settings import Settings


class ProviderError(Exception):
    """A provider (SendGrid, Twilio) refused or failed a send."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None, uncertain: bool = False):
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.uncertain = uncertain


class MailError(ProviderError):
    pass


# What ends a header line or hides one: C0 and C1 controls, DEL, Unicode line and paragraph separators.
_HEADER_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def header_value(value: str) -> str:
    """``value`` as one header line: each run of control characters becomes a space."""
    return _HEADER_BREAKS.sub(" ", value).strip()


@dataclass(frozen=True)
class Message:
    """An email. Its subject, recipient and extra headers are kept to one line each, whatever they
    were built from (a name stored before the API refused line breaks, say), so none can end its
    header early or add another."""

    to: str
    subject: str
    text: str
    html: str | None = None
    # Extra headers (List-Unsubscribe, List-Unsubscribe-Post).
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "to", header_value(self.to))
        object.__setattr__(self, "subject", header_value(self.subject))
        object.__setattr__(
            self, "headers", tuple((header_value(name), header_value(value)) for name, value in self.headers)
        )


class Mailer(Protocol):
    def send(self, message: Message, *, idempotency_key: str) -> str:
        """Send ``message`` once per ``idempotency_key``; the provider's id for it. Raises ``MailError``."""
        ...


_SAFE_KEY = re.compile(r"[^A-Za-z0-9._-]")
_SEQUENCE = itertools.count(1)


def _outbox_stamp() -> str:
    """``20261207T014307123456Z-0000001``: UTC time to the microsecond, then this process's send count.

    Fixed width and zero-padded, so the names sort lexically in the order the mail was written
    (``ls``, a shell glob and ``tail -1`` all see the newest last); the count orders two messages
    written by one process within the same microsecond.
    """
    now = datetime.datetime.now(datetime.UTC)
    return f"{now:%Y%m%dT%H%M%S%f}Z-{next(_SEQUENCE) % 10_000_000:07d}"


class OutboxMailer:
    """Writes each message as ``<outbox>/<UTC time>-<count>-<idempotency key>.eml``.

    ``<outbox>/.keys/<idempotency key>`` names the file a key produced, so a second send with
    the key finds it without listing the directory.
    """

    def __init__(self, directory: pathlib.Path, sender: str) -> None:
        self.directory = pathlib.Path(directory)
        self.sender = sender

    def send(self, message: Message, *, idempotency_key: str) -> str:
        safe_key = _SAFE_KEY.sub("_", idempotency_key)
        sent = self.directory / ".keys" / safe_key
        try:
            return sent.read_text()
        except FileNotFoundError:
            pass
        sent.parent.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{_outbox_stamp()}-{safe_key}.eml"
        headers = [
            ("From", self.sender),
            ("To", message.to),
            ("Subject", message.subject),
            # The form email.policy.default gives formatdate(usegmt=True): "+0000", not "GMT".
            ("Date", email.utils.format_datetime(datetime.datetime.now(datetime.UTC))),
            ("Message-ID", email.utils.make_msgid(domain="hearth.local")),
            ("X-Hearth-Idempotency-Key", idempotency_key),
            *message.headers,
        ]
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_eml(headers, message.text, message.html))
        os.replace(tmp, path)
        # Recorded after the message exists: a crash in between sends it again rather than never.
        marker = sent.with_suffix(f".{os.getpid()}.tmp")
        marker.write_text(path.name)
        os.replace(marker, sent)
        return path.name


# Writing the file is the outbox's whole cost. ``EmailMessage`` with ``email.policy.default`` parses
# every header into a structured object and refolds it when generating (~2 ms a message); ``_eml``
# writes the headers directly as the policy folds them (asking the policy only for those it would
# change), and each part's body as written: a developer reads the outbox (and the README greps it),
# which quoted-printable soft line breaks and ``=3D`` would spoil.
_POLICY = email.policy.default
_MAX_LINE = _POLICY.max_line_length or 78  # the policy's is 78
_SMTP_MAX_LINE = 998
# Headers whose value the policy parses as structure (it may quote or re-space them): kept as written
# only when they are a bare address.
_ADDRESS_HEADERS = {"from", "to", "cc", "bcc", "reply-to", "sender"}
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
_PRINTABLE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")


def _header(name: str, value: str) -> str:
    # Printable ASCII goes as written, up to SMTP's line limit: folding a URL header (List-Unsubscribe)
    # the policy's way would turn it into encoded words, which mail clients do not read there.
    unchanged = (
        len(name) + 2 + len(value) <= _SMTP_MAX_LINE
        and _PRINTABLE.fullmatch(value) is not None
        and "=?" not in value  # what reads as an encoded word is decoded by the policy
        and (name.lower() not in _ADDRESS_HEADERS or _BARE_ADDRESS.fullmatch(value) is not None)
    )
    return f"{name}: {value}\n" if unchanged else _POLICY.header_store_parse(name, value)[1].fold(policy=_POLICY)


def _part_headers(subtype: str, cte: str) -> str:
    return f'Content-Type: text/{subtype}; charset="utf-8"\nContent-Transfer-Encoding: {cte}\n'


def _eml(headers: Iterable[tuple[str, str]], text: str, html: str | None) -> bytes:
    """A text (and HTML alternative) message with these headers, in the layout ``EmailMessage`` gives it."""
    head = "".join(_header(name, value) for name, value in headers)
    cte, body = _transfer_encoded(text)
    if not html:
        return f"{head}{_part_headers('plain', cte)}MIME-Version: 1.0\n\n{body}".encode()
    html_cte, html_body = _transfer_encoded(html)
    # Unguessable, so no text in a part can close it early (the form ``email.generator`` gives it).
    boundary = f"==============={secrets.randbelow(sys.maxsize):019d}=="
    return (
        f'{head}MIME-Version: 1.0\nContent-Type: multipart/alternative;\n boundary="{boundary}"\n\n'
        f"--{boundary}\n{_part_headers('plain', cte)}\n{body}"
        f"\n--{boundary}\n{_part_headers('html', html_cte)}MIME-Version: 1.0\n\n{html_body}"
        f"\n--{boundary}--\n"
    ).encode()


def _transfer_encoded(text: str) -> tuple[str, str]:
    """``(Content-Transfer-Encoding, body)``: the text as written (8bit), so the outbox reads and greps
    like the message itself; quoted-printable only for a line longer than SMTP allows (998 bytes)."""
    lines = text.encode("utf-8").splitlines()
    body = b"\n".join(lines) + b"\n"
    if max((len(line) for line in lines), default=0) <= _SMTP_MAX_LINE:
        return ("7bit" if body.isascii() else "8bit"), body.decode("utf-8")
    return "quoted-printable", email.quoprimime.body_encode(body.decode("latin-1"), _MAX_LINE)


class SendGridMailer:
    def __init__(
        self, api_key: str, sender: str, api_url: str = "https://api.sendgrid.com", timeout: float = 10
    ) -> None:
        from sendgrid import SendGridAPIClient

        self.client = SendGridAPIClient(api_key=api_key, host=api_url)
        self.client.client.timeout = timeout
        self.sender = sender

    def send(self, message: Message, *, idempotency_key: str) -> str:
        from python_http_client.exceptions import HTTPError
        from sendgrid.helpers.mail import CustomArg, Header, Mail

        mail = Mail(
            from_email=self.sender,
            to_emails=message.to,
            subject=message.subject,
            plain_text_content=message.text,
            html_content=message.html,
        )
        mail.custom_arg = CustomArg("hearth_key", idempotency_key)
        for name, value in message.headers:
            mail.header = Header(name, value)
        try:
            response = self.client.send(mail)
        except HTTPError as exc:
            status = getattr(exc, "status_code", 0)
            raise MailError(
                f"SendGrid answered {status}", transient=status == 429 or status >= 500, status=status
            ) from None
        except TimeoutError as exc:
            raise MailError(f"SendGrid did not answer in time: {exc}", transient=True, uncertain=True) from None
        except OSError as exc:
            uncertain = isinstance(getattr(exc, "reason", None), (TimeoutError, socket.timeout))
            raise MailError(f"SendGrid unreachable: {exc}", transient=True, uncertain=uncertain) from None
        return response.headers.get("X-Message-Id", "") if response.headers else ""


def make_mailer(settings: Settings) -> Mailer:
    if settings.mail_backend == "sendgrid":
        return SendGridMailer(settings.sendgrid_api_key, settings.mail_from, settings.sendgrid_api_url)
    return OutboxMailer(settings.outbox_dir, settings.mail_from)
