"""Phone verification: a texted code proves the number; wrong codes, expiry, the hourly limit, changes."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from models.accounts import User
from models.audit import AuditEntry
from models.base import utcnow
from models.jobs import Job
from models.notifications import NotificationPreference
from models.phone import PhoneVerification
from tests.api.conftest import assert_problem
from tests.providers import TWILIO_FROM, provider_runtime, provider_settings, providers  # noqa: F401

NUMBER = "+14155550123"
OTHER = "+442071838750"
_CODE = re.compile(r"\b(\d{6})\b")


def texts(settings) -> list[dict]:
    """The text messages the outbox SMS backend wrote, oldest first."""
    directory = settings.sms_outbox_dir
    if not directory.exists():
        return []
    paths = sorted(directory.glob("*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [json.loads(p.read_text()) for p in paths]


def code_in(message: dict) -> str:
    return _CODE.search(message["body"]).group(1)


def request_code(client, headers, phone: str = NUMBER):
    return client.simulate_put("/v1/me/phone", headers=headers, json={"phone": phone})


def verify(client, headers, code: str):
    return client.simulate_post("/v1/me/phone/verify", headers=headers, json={"code": code})


def phone_state(user) -> tuple:
    row = User.get_by_id(user.id)
    return row.phone, row.phone_verified_at is not None


def wrong(code: str) -> str:
    return str((int(code) + 1) % 1_000_000).zfill(6)


def test_a_texted_code_verifies_the_number(client, user, auth_headers, jobs, settings):
    headers = auth_headers(user)
    resp = request_code(client, headers)
    assert resp.status_code == 202, resp.text
    assert resp.json["status"] == "accepted"
    job_id = resp.headers["location"].rsplit("/", 1)[1]
    assert Job.get_by_id(job_id).kind == "phone.send_code"
    # Nothing changes on the account until the code comes back.
    assert phone_state(user) == (None, False)
    assert jobs.run_pending() == 1
    [message] = texts(settings)
    assert message["to"] == NUMBER
    code = code_in(message)
    # The code itself is stored nowhere; only a keyed hash of it.
    pending = PhoneVerification.get_by_id(user.id)
    assert code.encode() not in bytes(pending.code_hash) and len(bytes(pending.code_hash)) == 32

    resp = verify(client, headers, code)
    assert resp.status_code == 200, resp.text
    assert resp.json == {"number": NUMBER, "verified": True}
    assert phone_state(user) == (NUMBER, True)
    assert client.simulate_get("/v1/me", headers=headers).json["phone"] == NUMBER
    prefs = client.simulate_get("/v1/me/notification-preferences", headers=headers).json
    assert prefs["phone"] == {"number": NUMBER, "verified": True}
    assert PhoneVerification.get_or_none(PhoneVerification.user == user.id) is None
    assert (
        AuditEntry.select()
        .where((AuditEntry.action == "user.verify_phone") & (AuditEntry.target_id == str(user.id)))
        .count()
        == 1
    )
    # Used once: the same code again finds nothing pending.
    assert_problem(verify(client, headers, code), 422, field="body.code")
    assert_problem(request_code(client, headers), 409)


def test_running_the_job_again_texts_nothing_more(client, user, auth_headers, jobs, settings):
    headers = auth_headers(user)
    job_id = request_code(client, headers).headers["location"].rsplit("/", 1)[1]
    jobs.run_pending()
    # The broker delivers the message again (the worker died before acknowledging it).
    Job.update(status="queued").where(Job.id == job_id).execute()
    jobs.submit(Job.get_by_id(job_id))
    jobs.run_pending()
    assert len(texts(settings)) == 1
    assert Job.get_by_id(job_id).result == {"sent": True}


def test_a_new_request_voids_the_previous_code(client, user, auth_headers, jobs, settings):
    headers = auth_headers(user)
    request_code(client, headers, NUMBER)
    request_code(client, headers, OTHER)
    jobs.run_pending()
    # The first job finds its request superseded and texts nothing.
    [message] = texts(settings)
    assert message["to"] == OTHER
    assert verify(client, headers, code_in(message)).json == {"number": OTHER, "verified": True}


def test_wrong_codes_count_and_the_fifth_voids_the_code(client, user, auth_headers, jobs, settings):
    headers = auth_headers(user)
    request_code(client, headers)
    jobs.run_pending()
    code = code_in(texts(settings)[0])
    for attempt in range(1, 5):
        body = assert_problem(verify(client, headers, wrong(code)), 422, field="body.code")
        assert f"{5 - attempt} attempt" in body["errors"][0]["message"]
        assert PhoneVerification.get_by_id(user.id).attempts == attempt
    body = assert_problem(verify(client, headers, wrong(code)), 422, field="body.code")
    assert "request a new code" in body["errors"][0]["message"]
    # Even the right code is refused now.
    assert_problem(verify(client, headers, code), 422, field="body.code")
    assert phone_state(user) == (None, False)
    assert_problem(verify(client, headers, "12345"), 422, field="body.code")  # not 6 digits


def test_an_expired_code_is_refused(client, user, auth_headers, jobs, settings):
    headers = auth_headers(user)
    request_code(client, headers)
    jobs.run_pending()
    code = code_in(texts(settings)[0])
    PhoneVerification.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(
        PhoneVerification.user == user.id
    ).execute()
    body = assert_problem(verify(client, headers, code), 422, field="body.code")
    assert "request a new code" in body["errors"][0]["message"]
    assert phone_state(user) == (None, False)
    assert PhoneVerification.get_or_none(PhoneVerification.user == user.id) is None


def test_at_most_five_codes_an_hour(client, user, auth_headers, jobs):
    headers = auth_headers(user)
    for _ in range(5):
        assert request_code(client, headers).status_code == 202
    jobs_before = Job.select().where(Job.kind == "phone.send_code").count()
    resp = request_code(client, headers)
    assert_problem(resp, 429)
    assert 0 < int(resp.headers["retry-after"]) <= 3600
    assert Job.select().where(Job.kind == "phone.send_code").count() == jobs_before


def test_changing_the_phone_in_the_profile_clears_its_verification(client, user, auth_headers, jobs, settings):
    headers = auth_headers(user)
    request_code(client, headers)
    jobs.run_pending()
    verify(client, headers, code_in(texts(settings)[0]))
    # Sending the same number again changes nothing.
    assert client.simulate_patch("/v1/me", headers=headers, json={"phone": NUMBER}).status_code == 200
    assert phone_state(user) == (NUMBER, True)
    request_code(client, headers, OTHER)  # a verification of another number is pending

    resp = client.simulate_patch("/v1/me", headers=headers, json={"phone": "+14155550999"})
    assert resp.status_code == 200, resp.text
    assert phone_state(user) == ("+14155550999", False)
    assert PhoneVerification.get_or_none(PhoneVerification.user == user.id) is None
    prefs = client.simulate_get("/v1/me/notification-preferences", headers=headers).json
    assert prefs["phone"] == {"number": "+14155550999", "verified": False}


def test_removing_the_phone_turns_text_messages_off(client, user, auth_headers, jobs, settings):
    headers = auth_headers(user)
    request_code(client, headers)
    jobs.run_pending()
    verify(client, headers, code_in(texts(settings)[0]))
    body = {"types": {"message.received": {"sms": True}}}
    assert client.simulate_patch("/v1/me/notification-preferences", headers=headers, json=body).status_code == 200

    for _ in range(2):
        assert client.simulate_delete("/v1/me/phone", headers=headers).status_code == 204
    assert phone_state(user) == (None, False)
    assert client.simulate_get("/v1/me", headers=headers).json["phone"] is None
    types = NotificationPreference.get_by_id(user.id).types
    assert types["message.received"]["sms"] is False


def test_bad_numbers_are_422_and_start_nothing(client, user, auth_headers, jobs):
    headers = auth_headers(user)
    for phone in ("4155550123", "+0123456789", "+1 415 555 0123", "+1" + "2" * 20):
        assert_problem(request_code(client, headers, phone), 422, field="body.phone")
    assert jobs.submitted == []
    assert PhoneVerification.get_or_none(PhoneVerification.user == user.id) is None


@pytest.fixture
def twilio(client, provider_runtime):
    """Tasks text through the real twilio client to the recorder (built after the app's own runtime)."""
    return provider_runtime


def test_the_code_goes_out_through_twilio(client, user, auth_headers, jobs, twilio, providers):
    providers.program("sms", {"status": 503})  # Twilio has a bad moment; the job retries
    headers = auth_headers(user)
    request_code(client, headers)
    jobs.run_pending()
    sent = providers.texts()
    assert [(t.to, t.sender, t.status) for t in sent] == [(NUMBER, TWILIO_FROM, 503), (NUMBER, TWILIO_FROM, 201)]
    # The retry texted the same code, and it verifies the number.
    codes = {_CODE.search(t.body).group(1) for t in sent}
    assert len(codes) == 1
    assert verify(client, headers, codes.pop()).status_code == 200
    assert phone_state(user) == (NUMBER, True)
