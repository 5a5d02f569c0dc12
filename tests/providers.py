"""SendGrid and Twilio as tests see them: the recording server (ops/provider_stub.py) and fixtures.

The real ``sendgrid`` and ``twilio`` libraries send to the recorder at
``TEST_PROVIDERS_URL`` (started by ``ops.testrun``; when it is not set, one is
started in this process). Each test gets namespaces of its own: a SendGrid API
key and a Twilio account SID nobody else uses, so concurrent tests never see
each other's requests.

Fixtures (import them into a test module to use them)::

    from tests.providers import provider_runtime, provider_settings, providers  # noqa: F401

* ``providers``: a ``Providers`` for this test: ``.emails()``, ``.texts()``,
  ``.requests("payments")`` (Stripe, under ``.stripe_api_key``),
  ``.program("email" | "sms" | "payments", {"status": 503}, ...)``, ``.settings_overrides()``,
  ``.env()`` (the same settings as environment variables, for worker processes);
* ``provider_settings``: the test's settings with ``MAIL_BACKEND=sendgrid`` and
  ``SMS_BACKEND=twilio`` pointed at the recorder;
* ``provider_runtime``: the task runtime built with them; it replaces the test's
  ``runtime`` (the last one built is the one tasks see) and keeps its job queue.

An API test that wants the app to use the recorder too overrides ``settings``
in its module::

    @pytest.fixture
    def settings(provider_settings):
        return provider_settings
"""

from __future__ import annotations

import functools
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from tasks.runtime import init_runtime
from tests.conftest import make_settings

TWILIO_FROM = "+15550001111"


@functools.cache
def _local_stub():
    """The recorder started in this process, once, when a test first needs it."""
    from ops.provider_stub import start_provider_stub

    return start_provider_stub()


def providers_url() -> str:
    """The recorder's base URL: ``TEST_PROVIDERS_URL``, or a server started in this process."""
    url = os.environ.get("TEST_PROVIDERS_URL")
    if url:
        return url.rstrip("/")
    return _local_stub().url


@dataclass
class SentEmail:
    """One request to ``POST /v3/mail/send`` as SendGrid would have received it."""

    to: list[str]
    sender: str
    subject: str
    text: str | None
    html: str | None
    headers: dict
    custom_args: dict
    status: int | None  # what the recorder answered; None while the answer is held back
    request: dict = field(repr=False)

    @property
    def idempotency_key(self) -> str | None:
        return self.custom_args.get("hearth_key")


@dataclass
class SentText:
    """One request to Twilio's ``Messages.json`` as Twilio would have received it."""

    to: str
    sender: str
    body: str
    status_callback: str | None
    status: int | None
    request: dict = field(repr=False)


def _email(request: dict) -> SentEmail:
    payload = request.get("json") or {}
    personalization = (payload.get("personalizations") or [{}])[0]
    content = {part.get("type"): part.get("value") for part in payload.get("content") or []}
    return SentEmail(
        to=[to.get("email") for to in personalization.get("to") or []],
        sender=(payload.get("from") or {}).get("email", ""),
        subject=payload.get("subject") or personalization.get("subject") or "",
        text=content.get("text/plain"),
        html=content.get("text/html"),
        headers={**(payload.get("headers") or {}), **(personalization.get("headers") or {})},
        custom_args={**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})},
        status=request.get("status"),
        request=request,
    )


def _text(request: dict) -> SentText:
    form = request.get("form") or {}
    return SentText(
        to=form.get("To", ""),
        sender=form.get("From") or form.get("MessagingServiceSid", ""),
        body=form.get("Body", ""),
        status_callback=form.get("StatusCallback"),
        status=request.get("status"),
        request=request,
    )


class Providers:
    """One test's view of the recorder: its own SendGrid key and Twilio account."""

    def __init__(self, url: str | None = None):
        self.url = url or providers_url()
        token = uuid.uuid4().hex
        self.sendgrid_api_key = f"SG.test-{token}"
        self.twilio_account_sid = "AC" + token
        self.twilio_auth_token = secrets.token_hex(16)
        self.twilio_from = TWILIO_FROM
        self.stripe_api_key = f"sk_test_{token}"
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def _ns(self, channel: str) -> str:
        namespaces = {"email": self.sendgrid_api_key, "sms": self.twilio_account_sid, "payments": self.stripe_api_key}
        if channel not in namespaces:
            raise ValueError("channel is 'email', 'sms' or 'payments'")
        return namespaces[channel]

    def settings_overrides(self) -> dict:
        return {
            "mail_backend": "sendgrid",
            "sendgrid_api_key": self.sendgrid_api_key,
            "sendgrid_api_url": self.url,
            "sms_backend": "twilio",
            "twilio_account_sid": self.twilio_account_sid,
            "twilio_auth_token": self.twilio_auth_token,
            "twilio_from": self.twilio_from,
            "twilio_api_url": self.url,
        }

    def env(self) -> dict:
        """The same settings as environment variables (for a worker process)."""
        return {name.upper(): value for name, value in self.settings_overrides().items()}

    def requests(self, channel: str) -> list[dict]:
        """Every recorded request of the channel, oldest first, as the recorder stored it."""
        resp = self._http.get("/_recorded", params={"ns": self._ns(channel)})
        resp.raise_for_status()
        return resp.json()

    def emails(self) -> list[SentEmail]:
        """Every request SendGrid received from this test (failed ones too: see ``.status``)."""
        return [_email(request) for request in self.requests("email")]

    def texts(self) -> list[SentText]:
        """Every request Twilio received from this test (failed ones too: see ``.status``)."""
        return [_text(request) for request in self.requests("sms")]

    def program(self, channel: str, *responses: dict) -> None:
        """Script the next answers: ``{"status": 503}``, ``{"status": 400}``, ``{"status": 202, "delay_seconds": 30}``.

        Consumed in order by the channel's next requests; after them, normal answers.
        """
        resp = self._http.post("/_program", json={"ns": self._ns(channel), "responses": list(responses)})
        resp.raise_for_status()

    def wait_for(self, channel: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
        """Wait until the channel has seen ``count`` requests (answered or not); returns them."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests(channel)
            if len(seen) >= count:
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"{channel}: {len(seen)} request(s) after {timeout} s, expected {count}")
            time.sleep(0.05)

    def reset(self) -> None:
        for channel in ("email", "sms", "payments"):
            self._http.post("/_reset", params={"ns": self._ns(channel)})

    def close(self) -> None:
        self._http.close()


@pytest.fixture
def providers():
    recorder = Providers()
    yield recorder
    recorder.reset()
    recorder.close()


@pytest.fixture
def provider_settings(database, tmp_path, redis_prefix, providers):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, **providers.settings_overrides())


@pytest.fixture
def provider_runtime(provider_settings, redis, runtime):
    """Replaces the test's ``runtime``, keeping its job queue (the recording queue of tests/api or tests/tasks)."""
    return init_runtime(provider_settings, redis=redis, init_db=False, jobs=runtime.jobs)


__all__ = [
    "TWILIO_FROM",
    "Providers",
    "SentEmail",
    "SentText",
    "provider_runtime",
    "provider_settings",
    "providers",
    "providers_url",
]
