"""Outgoing text messages: Twilio in production, a JSON outbox on disk in development.

``send(to, body, *, idempotency_key, status_callback=None) -> str`` returns the
provider's message id. The outbox writes one file per key (a second send with
the same key changes nothing). Twilio has no idempotency key for sends, so the
key travels in the status callback URL, and the caller records each send
before making it (``tasks/notifications.py``).

Failures raise ``SmsError`` (``services.mail.ProviderError``): ``transient`` for
429, 5xx and an unreachable provider, permanent for other 4xx (an invalid or
unsubscribed number), ``uncertain`` when the request may have been received.

``SmsSender`` is what senders of text messages ask of a backend; tests hand in their own.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import uuid
from typing import Protocol

from services.mail import ProviderError
from settings import Settings

_SAFE_KEY = re.compile(r"[^A-Za-z0-9._-]")


class SmsError(ProviderError):
    pass


class SmsSender(Protocol):
    def send(self, to: str, body: str, *, idempotency_key: str, status_callback: str | None = None) -> str:
        """Send ``body`` to ``to`` once per ``idempotency_key``; the provider's message id. Raises ``SmsError``."""
        ...


class OutboxSms:
    """Writes each message as ``<outbox>/<idempotency key>.json``."""

    def __init__(self, directory: pathlib.Path, sender: str) -> None:
        self.directory = pathlib.Path(directory)
        self.sender = sender or "Hearth"

    def send(self, to: str, body: str, *, idempotency_key: str, status_callback: str | None = None) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / (_SAFE_KEY.sub("_", idempotency_key) + ".json")
        if path.exists():
            sent: str = json.loads(path.read_text())["sid"]
            return sent
        sid = "SM" + uuid.uuid4().hex
        record = {
            "sid": sid,
            "from": self.sender,
            "to": to,
            "body": body,
            "idempotency_key": idempotency_key,
            "status_callback": status_callback,
        }
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
        return sid


class TwilioSms:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sender: str,
        api_url: str = "https://api.twilio.com",
        timeout: float = 10,
    ) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        self.client.api.base_url = api_url.rstrip("/")
        self.sender = sender

    def send(self, to: str, body: str, *, idempotency_key: str, status_callback: str | None = None) -> str:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        sender = {"messaging_service_sid": self.sender} if self.sender.startswith("MG") else {"from_": self.sender}
        extra = {"status_callback": status_callback} if status_callback else {}
        try:
            message = self.client.messages.create(to=to, body=body, **sender, **extra)
        except TwilioRestException as exc:
            status = exc.status or 0
            raise SmsError(
                f"Twilio answered {status} (code {exc.code})", transient=status == 429 or status >= 500, status=status
            ) from None
        except requests.Timeout as exc:
            # A connect timeout means nothing was sent; a read timeout may mean it was.
            uncertain = not isinstance(exc, requests.ConnectTimeout)
            raise SmsError(f"Twilio did not answer in time: {exc}", transient=True, uncertain=uncertain) from None
        except (requests.ConnectionError, TwilioException, OSError) as exc:
            raise SmsError(f"Twilio unreachable: {exc}", transient=True) from None
        sid: str = message.sid
        return sid


def make_sms(settings: Settings) -> SmsSender:
    if settings.sms_backend == "twilio":
        return TwilioSms(
            settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from, settings.twilio_api_url
        )
    return OutboxSms(settings.sms_outbox_dir, settings.twilio_from)


__all__ = ["OutboxSms", "SmsError", "SmsSender", "TwilioSms", "make_sms"]
