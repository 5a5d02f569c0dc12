"""The SendGrid and Twilio clients against the recording provider server (ops/provider_stub.py).

What the providers receive, and how their answers are classified: the
notification tasks retry only transient errors and never resend an uncertain one.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from services.mail import MailError, Message, SendGridMailer
from services.sms import SmsError, TwilioSms
from tests.integration.processes import ROOT, free_port, wait_for
from tests.providers import TWILIO_FROM, Providers, providers  # noqa: F401

MESSAGE = Message(
    to="ada@example.com",
    subject="Hello",
    text="plain",
    html="<p>rich</p>",
    headers=(
        ("List-Unsubscribe", "<http://hearth.test/v1/unsubscribe?token=t>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ),
)


def _mailer(providers, timeout: float = 10) -> SendGridMailer:
    return SendGridMailer(providers.sendgrid_api_key, "Hearth <no-reply@hearth.test>", providers.url, timeout=timeout)


def _sms(providers, sender: str = TWILIO_FROM, timeout: float = 10) -> TwilioSms:
    return TwilioSms(providers.twilio_account_sid, providers.twilio_auth_token, sender, providers.url, timeout=timeout)


def test_sendgrid_receives_the_message_its_headers_and_the_idempotency_key(providers):
    message_id = _mailer(providers).send(MESSAGE, idempotency_key="notification:n1:email")
    [email] = providers.emails()
    assert message_id and email.status == 202
    assert (email.to, email.sender, email.subject, email.text, email.html) == (
        ["ada@example.com"],
        "no-reply@hearth.test",
        "Hello",
        "plain",
        "<p>rich</p>",
    )
    assert email.headers == {
        "List-Unsubscribe": "<http://hearth.test/v1/unsubscribe?token=t>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert email.idempotency_key == "notification:n1:email"
    assert email.request["headers"]["Authorization"] == f"Bearer {providers.sendgrid_api_key}"


def test_twilio_receives_the_text_the_sender_and_the_status_callback(providers):
    sid = _sms(providers).send(
        "+15557654321",
        "Hearth: hi",
        idempotency_key="notification:n1:sms",
        status_callback="http://hearth.test/v1/webhooks/twilio?d=7",
    )
    [text] = providers.texts()
    assert sid.startswith("SM") and text.status == 201
    assert (text.to, text.sender, text.body, text.status_callback) == (
        "+15557654321",
        TWILIO_FROM,
        "Hearth: hi",
        "http://hearth.test/v1/webhooks/twilio?d=7",
    )
    assert text.request["path"] == f"/2010-04-01/Accounts/{providers.twilio_account_sid}/Messages.json"
    # A messaging service sends from its own pool of numbers.
    _sms(providers, sender="MG" + "0" * 32).send("+15557654321", "again", idempotency_key="k2")
    assert providers.texts()[1].request["form"]["MessagingServiceSid"] == "MG" + "0" * 32


@pytest.mark.parametrize(
    ("status", "transient"), [(400, False), (401, False), (403, False), (429, True), (500, True), (503, True)]
)
def test_provider_answers_are_classified_for_retries(providers, status, transient):
    providers.program("email", {"status": status})
    providers.program("sms", {"status": status})
    with pytest.raises(MailError) as mail:
        _mailer(providers).send(MESSAGE, idempotency_key="k")
    with pytest.raises(SmsError) as sms:
        _sms(providers).send("+15557654321", "x", idempotency_key="k")
    for error in (mail.value, sms.value):
        assert (error.status, error.transient, error.uncertain) == (status, transient, False)
    # The script is used up: the next requests are answered normally.
    assert _mailer(providers).send(MESSAGE, idempotency_key="k")
    assert _sms(providers).send("+15557654321", "x", idempotency_key="k").startswith("SM")
    assert [e.status for e in providers.emails()] == [status, 202]
    assert [t.status for t in providers.texts()] == [status, 201]


def test_an_answer_that_never_comes_is_uncertain_and_an_unreachable_provider_is_not(providers):
    providers.program("email", {"status": 202, "delay_seconds": 2})
    providers.program("sms", {"status": 201, "delay_seconds": 2})
    with pytest.raises(MailError) as mail:
        _mailer(providers, timeout=0.5).send(MESSAGE, idempotency_key="k")
    with pytest.raises(SmsError) as sms:
        _sms(providers, timeout=0.5).send("+15557654321", "x", idempotency_key="k")
    for error in (mail.value, sms.value):
        assert (error.transient, error.uncertain) == (True, True)
    assert len(providers.emails()) == 1 and len(providers.texts()) == 1  # the requests did arrive

    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MailError) as mail:
        SendGridMailer("SG.x", "a@hearth.test", nowhere, timeout=2).send(MESSAGE, idempotency_key="k")
    with pytest.raises(SmsError) as sms:
        TwilioSms("AC" + "1" * 32, "t", TWILIO_FROM, nowhere, timeout=2).send("+1555", "x", idempotency_key="k")
    for error in (mail.value, sms.value):
        assert (error.transient, error.uncertain) == (True, False)


def test_tests_never_see_each_others_requests(providers):
    other = Providers()
    try:
        _mailer(providers).send(MESSAGE, idempotency_key="mine")
        _mailer(other).send(MESSAGE, idempotency_key="theirs")
        other.program("sms", {"status": 400})
        _sms(providers).send("+15557654321", "not affected by the other script", idempotency_key="k")
        assert [e.idempotency_key for e in providers.emails()] == ["mine"]
        assert [e.idempotency_key for e in other.emails()] == ["theirs"]
        assert [t.status for t in providers.texts()] == [201] and other.texts() == []
        other.reset()
        assert other.emails() == [] and len(providers.emails()) == 1
    finally:
        other.reset()
        other.close()


def test_the_control_api_refuses_a_malformed_script(providers):
    for body in ({"ns": "x"}, {"ns": "", "responses": []}, {"ns": "x", "responses": [{"status": 42}]}):
        assert httpx.post(f"{providers.url}/_program", json=body).status_code == 400
    assert httpx.post(f"{providers.url}/_reset").status_code == 400
    assert httpx.get(f"{providers.url}/_recorded").status_code == 404


def test_it_runs_by_hand_on_a_chosen_port():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.provider_stub", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: httpx.get(f"{url}/_health", timeout=1).status_code == 200,
            timeout=10,
            what="the provider stub to answer",
        )
        by_hand = Providers(url)
        _mailer(by_hand).send(MESSAGE, idempotency_key="by-hand")
        assert [e.idempotency_key for e in by_hand.emails()] == ["by-hand"]
        by_hand.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
