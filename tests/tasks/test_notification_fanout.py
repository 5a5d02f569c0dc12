"""The notification fan-out: channels follow preferences, and nothing is ever sent twice.

Tasks run in this process inside the test's transaction; the real ``sendgrid``
and ``twilio`` libraries send to the recording server (tests/providers.py), and
the assertions are on what the providers received.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import re
from urllib.parse import parse_qs, urlsplit

from models.accounts import User
from models.base import utcnow
from models.db import db
from models.jobs import Job
from models.notifications import (
    TYPES,
    EmailSuppression,
    Notification,
    NotificationDelivery,
    NotificationPreference,
    notify,
)
from services.events import EventBus
from services.mail import SendGridMailer
from services.unsubscribe import read_unsubscribe_token
from tasks.notifications import fan_out, release_scheduled
from tasks.runtime import init_runtime
from tests.factories import make_user
from tests.providers import TWILIO_FROM, provider_runtime, provider_settings, providers  # noqa: F401

PHONE = "+15557654321"


def _user(*, phone: str | None = None, **fields):
    user = make_user(**fields)
    if phone:
        User.update(phone=phone, phone_verified_at=utcnow()).where(User.id == user.id).execute()
    return user


def _prefs(user, types: dict | None = None, **fields) -> None:
    NotificationPreference.create(user=user.id, types=types or {}, **fields)


def _message_notification(user, *, title="New message from Ada", body="Is the flat still available?"):
    job = notify(
        user.id,
        "message.received",
        title=title,
        body=body,
        data={"conversation_id": "c0ffee00-0000-4000-8000-000000000001"},
    )
    return Notification.get(Notification.id == job.input["notification_id"]), job


def _deliveries(notification) -> dict:
    return {
        row.channel: row
        for row in NotificationDelivery.select().where(NotificationDelivery.notification == notification.id)
    }


def _events(runtime, user) -> list[dict]:
    return EventBus(runtime.redis, runtime.settings.redis_prefix).history(f"user:{user.id}")


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_a_title_with_line_breaks_stays_one_subject_and_one_text_line(provider_runtime, providers):
    # A sender's name stored with line breaks (imported before the API refused them) is in the title.
    user = _user(phone=PHONE)
    _prefs(user, {"message.received": {"sms": True}})
    _, job = _message_notification(user, title="New message from Ada\u2028Bcc: eve@example.com\x85\nHi")
    fan_out(str(job.id))

    [email] = providers.emails()
    assert email.subject == "New message from Ada Bcc: eve@example.com Hi"
    [text] = providers.texts()
    assert text.body.startswith("Hearth: New message from Ada Bcc: eve@example.com Hi http")


# --- channels follow preferences ----------------------------------------------------------------


def test_in_app_only_shows_it_in_the_app_and_sends_nothing(provider_runtime, providers):
    user = _user(phone=PHONE)
    _prefs(user, {"message.received": {"email": False, "sms": False}})
    notification, job = _message_notification(user)

    fan_out(str(job.id))
    assert Notification.get_by_id(notification.id).in_app is True
    assert _deliveries(notification) == {}
    assert providers.emails() == [] and providers.texts() == []
    [event] = _events(provider_runtime, user)
    assert event["type"] == "notification.created"
    assert event["data"]["notification"]["id"] == str(notification.id)
    assert event["data"]["notification"]["title"] == "New message from Ada"
    assert event["data"]["unread_count"] == 1
    assert Job.get_by_id(job.id).result == {"in_app": True, "deliveries": {}}


def test_a_user_who_turned_the_app_off_gets_no_in_app_event(provider_runtime, providers):
    user = _user()
    _prefs(user, {"message.received": {"in_app": False, "email": True}})
    notification, job = _message_notification(user)
    fan_out(str(job.id))
    assert Notification.get_by_id(notification.id).in_app is False
    assert _events(provider_runtime, user) == []
    assert [e.status for e in providers.emails()] == [202]


def test_email_and_sms_carry_the_content_links_unsubscribe_and_idempotency_keys(provider_runtime, providers):
    user = _user(phone=PHONE, full_name="Bo")
    _prefs(user, {"message.received": {"sms": True}})
    notification, job = _message_notification(
        user, title="New message from <Ada>", body="Is it <b>still</b> available?\nThanks"
    )
    fan_out(str(job.id))

    rows = _deliveries(notification)
    assert {channel: row.status for channel, row in rows.items()} == {"email": "sent", "sms": "sent"}
    [email] = providers.emails()
    assert (email.to, email.status, email.subject) == ([user.email], 202, "New message from <Ada>")
    assert email.idempotency_key == f"notification:{notification.id}:email"
    assert rows["email"].provider_message_id and rows["email"].sent_at is not None
    link = "http://hearth.test/conversations/c0ffee00-0000-4000-8000-000000000001"
    assert "Is it <b>still</b> available?\nThanks" in email.text and link in email.text
    assert "Is it &lt;b&gt;still&lt;/b&gt; available?" in email.html and "<b>still</b>" not in email.html
    assert "New message from &lt;Ada&gt;" in email.html and f'href="{link}"' in email.html

    # Unsubscribe: a page link in the body, one-click headers for mail clients (RFC 8058).
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = re.fullmatch(r"<(http://hearth\.test/v1/unsubscribe\?token=[^>]+)>", email.headers["List-Unsubscribe"])
    assert one_click, email.headers
    secret = provider_runtime.settings.secret_key
    assert read_unsubscribe_token(secret, _token(one_click.group(1)), TYPES) == (str(user.id), "message.received")
    page = re.search(r"http://hearth\.test/unsubscribe\?token=\S+", email.text).group(0)
    assert read_unsubscribe_token(secret, _token(page), TYPES) == (str(user.id), "message.received")
    assert f'href="{html.escape(page, quote=True)}"' in email.html

    [text] = providers.texts()
    assert (text.to, text.sender, text.status) == (PHONE, TWILIO_FROM, 201)
    assert text.body == f"Hearth: New message from <Ada> {link}"
    assert text.status_callback == f"http://hearth.test/v1/webhooks/twilio?d={rows['sms'].id}"
    assert rows["sms"].provider_message_id.startswith("SM")
    assert rows["sms"].idempotency_key == f"notification:{notification.id}:sms"


def test_no_sms_without_a_verified_phone_and_no_email_to_an_unverified_address(provider_runtime, providers):
    unverified_phone = _user()
    db.execute_sql("UPDATE users SET phone = %s WHERE id = %s", (PHONE, unverified_phone.id))
    unverified_email = _user(verified=False, phone=PHONE)
    for user in (unverified_phone, unverified_email):
        _prefs(user, {"message.received": {"sms": True}})
    first, first_job = _message_notification(unverified_phone)
    second, second_job = _message_notification(unverified_email)
    fan_out(str(first_job.id))
    fan_out(str(second_job.id))

    assert {c: r.status for c, r in _deliveries(first).items()} == {"email": "sent"}
    assert {c: r.status for c, r in _deliveries(second).items()} == {"sms": "sent"}
    assert [e.to for e in providers.emails()] == [[unverified_phone.email]]
    assert [t.to for t in providers.texts()] == [PHONE]


def test_a_suppressed_address_gets_nothing(provider_runtime, providers):
    user = _user(email="bounced@example.com")
    EmailSuppression.create(email="bounced@example.com", reason="bounce")
    notification, job = _message_notification(user)
    fan_out(str(job.id))
    row = _deliveries(notification)["email"]
    assert (row.status, row.error) == ("suppressed", "the address is suppressed (bounce)")
    assert row.attempts == 0 and providers.emails() == []
    assert Notification.get_by_id(notification.id).in_app is True


def test_a_banned_user_or_a_deleted_notification_gets_nothing(provider_runtime, providers):
    banned = _user(banned=True)
    notification, job = _message_notification(banned)
    fan_out(str(job.id))
    assert Notification.get_by_id(notification.id).in_app is None
    gone, gone_job = _message_notification(_user())
    Notification.delete().where(Notification.id == gone.id).execute()
    fan_out(str(gone_job.id))
    assert Job.get_by_id(gone_job.id).status == "succeeded"
    assert providers.emails() == [] and _events(provider_runtime, banned) == []


# --- never twice ----------------------------------------------------------------------------------


def test_running_fan_out_twice_sends_nothing_twice(provider_runtime, providers):
    user = _user(phone=PHONE)
    _prefs(user, {"message.received": {"sms": True}})
    notification, job = _message_notification(user)
    fan_out(str(job.id))
    fan_out(str(job.id))  # the same message delivered again
    # A crash after the sends, before the job was finished: the sweep runs it again.
    Job.update(status="queued", finished_at=None).where(Job.id == job.id).execute()
    fan_out(str(job.id))
    # Another fan-out job for the same notification (a duplicate from the quiet-hours release).
    second = Job.create(kind="notifications.fan_out", queue="notify", input={"notification_id": str(notification.id)})
    fan_out(str(second.id))

    assert len(providers.emails()) == 1 and len(providers.texts()) == 1
    assert [e["type"] for e in _events(provider_runtime, user)] == ["notification.created"]
    assert {c: (r.status, r.attempts) for c, r in _deliveries(notification).items()} == {
        "email": ("sent", 1),
        "sms": ("sent", 1),
    }


def test_a_rerun_marks_what_its_dead_run_was_sending_unknown_and_does_not_resend(provider_runtime, providers):
    user = _user(phone=PHONE)
    _prefs(user, {"message.received": {"sms": True}})
    notification, job = _message_notification(user)
    other_job = Job.create(
        kind="notifications.fan_out", queue="notify", input={"notification_id": str(notification.id)}
    )
    # What a run leaves behind when its worker dies during the provider calls.
    Job.claim_by_id(job.id, 60)
    Notification.update(in_app=True).where(Notification.id == notification.id).execute()
    for channel, claimer in (("email", job.id), ("sms", other_job.id)):
        NotificationDelivery.create(
            notification=notification.id,
            user=user.id,
            channel=channel,
            status="sending",
            recipient=user.email if channel == "email" else PHONE,
            attempts=1,
            idempotency_key=f"notification:{notification.id}:{channel}",
            claimed_by=claimer,
        )
    Job.update(status="queued").where(Job.id == job.id).execute()

    fan_out(str(job.id))
    rows = _deliveries(notification)
    assert rows["email"].status == "unknown" and "not sent again" in rows["email"].error
    assert rows["sms"].status == "sending"  # claimed by another job: not this run's to settle
    assert providers.emails() == [] and providers.texts() == []
    assert Job.get_by_id(job.id).status == "succeeded"


def test_a_5xx_is_retried_and_the_email_goes_out_once(provider_runtime, providers, queue):
    user = _user()
    notification, job = _message_notification(user)
    providers.program("email", {"status": 503})

    fan_out(str(job.id))
    row = _deliveries(notification)["email"]
    assert (row.status, row.attempts, row.error) == ("pending", 1, "SendGrid answered 503")
    retried = Job.get_by_id(job.id)
    assert (retried.status, retried.run_after is not None) == ("queued", True)
    assert queue.submitted == [str(job.id)]

    assert queue.run_pending() == 1
    row = _deliveries(notification)["email"]
    assert (row.status, row.attempts, row.sent_at is not None) == ("sent", 2, True)
    assert [e.status for e in providers.emails()] == [503, 202]
    assert {e.idempotency_key for e in providers.emails()} == {f"notification:{notification.id}:email"}
    assert Job.get_by_id(job.id).status == "succeeded"


def test_a_delivery_still_failing_on_the_last_attempt_is_failed_not_left_pending(provider_runtime, providers, queue):
    user = _user()
    notification, job = _message_notification(user)
    Job.update(max_attempts=2).where(Job.id == job.id).execute()
    providers.program("email", {"status": 503}, {"status": 500})
    fan_out(str(job.id))
    assert queue.run_pending() == 1
    row = _deliveries(notification)["email"]
    assert (row.status, row.attempts, row.error) == ("failed", 2, "gave up after 2 attempts: SendGrid answered 500")
    assert [e.status for e in providers.emails()] == [503, 500] and queue.submitted == []


def test_a_4xx_fails_the_delivery_at_once_and_is_never_retried(provider_runtime, providers, queue):
    user = _user(phone=PHONE)
    _prefs(user, {"message.received": {"sms": True}})
    notification, job = _message_notification(user)
    providers.program("email", {"status": 400})
    providers.program("sms", {"status": 400})

    fan_out(str(job.id))
    rows = _deliveries(notification)
    assert (rows["email"].status, rows["email"].error) == ("failed", "SendGrid answered 400")
    assert (rows["sms"].status, rows["sms"].error) == ("failed", "Twilio answered 400 (code 21211)")
    assert [e.status for e in providers.emails()] == [400] and [t.status for t in providers.texts()] == [400]
    assert queue.submitted == [] and Job.get_by_id(job.id).status == "succeeded"
    fan_out(str(job.id))
    assert len(providers.emails()) == 1


def test_a_provider_that_may_have_received_the_request_is_not_asked_again(provider_settings, redis, providers, queue):
    # A one-second client timeout against an answer held back for three: the request did arrive.
    mailer = SendGridMailer(
        provider_settings.sendgrid_api_key, provider_settings.mail_from, provider_settings.sendgrid_api_url, timeout=1
    )
    init_runtime(provider_settings, init_db=False, redis=redis, mailer=mailer, jobs=queue)
    user = _user()
    notification, job = _message_notification(user)
    providers.program("email", {"status": 202, "delay_seconds": 3})

    fan_out(str(job.id))
    row = _deliveries(notification)["email"]
    assert (row.status, row.attempts) == ("unknown", 1) and "did not answer in time" in row.error
    assert queue.submitted == [] and len(providers.emails()) == 1


def test_the_sms_is_short_even_for_a_long_title(provider_runtime, providers):
    user = _user(phone=PHONE)
    _prefs(user, {"message.received": {"sms": True, "email": False}})
    _notification, job = _message_notification(user, title="A" * 200 + "\nline two")
    fan_out(str(job.id))
    [text] = providers.texts()
    assert len(text.body) <= 320 and text.body.startswith("Hearth: AAAA") and "\n" not in text.body
    assert text.body.endswith(" http://hearth.test/conversations/c0ffee00-0000-4000-8000-000000000001")


# --- quiet hours ----------------------------------------------------------------------------------


def _quiet_now(user, **types) -> datetime.datetime:
    now = utcnow().replace(second=0, microsecond=0)
    end = now + datetime.timedelta(hours=1)
    _prefs(user, types, quiet_start=(now - datetime.timedelta(hours=1)).time(), quiet_end=end.time(), timezone="UTC")
    return end


def test_quiet_hours_hold_email_and_sms_until_they_end_then_release_sends_them(provider_runtime, providers, queue):
    user = _user(phone=PHONE)
    quiet_end = _quiet_now(user, **{"message.received": {"sms": True}})
    notification, job = _message_notification(user)

    fan_out(str(job.id))
    rows = _deliveries(notification)
    assert {c: (r.status, r.not_before) for c, r in rows.items()} == {
        "email": ("scheduled", quiet_end),
        "sms": ("scheduled", quiet_end),
    }
    assert providers.emails() == [] and providers.texts() == []
    assert [e["type"] for e in _events(provider_runtime, user)] == ["notification.created"]  # the app is not held

    assert release_scheduled() == {"released": 0, "jobs": 0}  # not yet
    # The quiet hours are over.
    NotificationDelivery.update(not_before=utcnow() - datetime.timedelta(seconds=1)).where(
        NotificationDelivery.notification == notification.id
    ).execute()
    assert release_scheduled() == {"released": 2, "jobs": 1}
    assert release_scheduled() == {"released": 0, "jobs": 0}
    assert queue.run_pending() == 1

    assert {c: r.status for c, r in _deliveries(notification).items()} == {"email": "sent", "sms": "sent"}
    assert [e.to for e in providers.emails()] == [[user.email]] and [t.to for t in providers.texts()] == [PHONE]
    assert [e["type"] for e in _events(provider_runtime, user)] == ["notification.created"]


def test_a_channel_turned_off_during_quiet_hours_is_not_sent_when_they_end(provider_runtime, providers, queue):
    user = _user(phone=PHONE)
    _quiet_now(user, **{"message.received": {"sms": True}})
    notification, job = _message_notification(user)
    fan_out(str(job.id))
    (
        NotificationPreference.update(types={"message.received": {"sms": False}})
        .where(NotificationPreference.user == user.id)
        .execute()
    )
    (
        NotificationDelivery.update(not_before=utcnow())
        .where(NotificationDelivery.notification == notification.id)
        .execute()
    )

    release_scheduled()
    queue.run_pending()
    rows = _deliveries(notification)
    assert (rows["sms"].status, rows["sms"].error) == ("suppressed", "sms was turned off for these notifications")
    assert rows["email"].status == "sent"
    assert providers.texts() == [] and len(providers.emails()) == 1


def test_what_waited_out_quiet_hours_is_not_sent_if_it_was_read_in_the_app_meanwhile(
    provider_runtime, providers, queue
):
    user = _user(phone=PHONE)
    _quiet_now(user, **{"message.received": {"sms": True}})
    notification, job = _message_notification(user)
    fan_out(str(job.id))
    Notification.update(read_at=utcnow()).where(Notification.id == notification.id).execute()
    (
        NotificationDelivery.update(not_before=utcnow())
        .where(NotificationDelivery.notification == notification.id)
        .execute()
    )

    release_scheduled()
    queue.run_pending()
    assert {c: (r.status, r.error) for c, r in _deliveries(notification).items()} == {
        "email": ("suppressed", "already read in the app"),
        "sms": ("suppressed", "already read in the app"),
    }
    assert providers.emails() == [] and providers.texts() == []


def _with_message_delay(runtime, seconds: int) -> None:
    runtime.settings = dataclasses.replace(runtime.settings, message_notification_delay=seconds)


def test_a_message_email_and_text_wait_and_are_not_sent_if_the_message_is_read_meanwhile(
    provider_runtime, providers, queue
):
    _with_message_delay(provider_runtime, 120)
    reader, away = _user(phone=PHONE), _user(phone="+15557654322")
    for user in (reader, away):
        _prefs(user, {"message.received": {"sms": True}})
    read, read_job = _message_notification(reader)
    unread, unread_job = _message_notification(away)
    before = utcnow()
    fan_out(str(read_job.id))
    fan_out(str(unread_job.id))
    for notification in (read, unread):
        rows = _deliveries(notification)
        assert {c: r.status for c, r in rows.items()} == {"email": "scheduled", "sms": "scheduled"}
        assert all(
            before + datetime.timedelta(seconds=119) < r.not_before < utcnow() + datetime.timedelta(seconds=121)
            for r in rows.values()
        )
    # The app is told at once.
    assert [e["type"] for e in _events(provider_runtime, reader)] == ["notification.created"]

    # The reader opens the conversation in the app; two minutes later the delay is over.
    Notification.update(read_at=utcnow()).where(Notification.id == read.id).execute()
    NotificationDelivery.update(not_before=utcnow()).execute()
    assert release_scheduled()["released"] == 4
    queue.run_pending()

    assert {c: r.status for c, r in _deliveries(read).items()} == {"email": "suppressed", "sms": "suppressed"}
    assert {c: r.status for c, r in _deliveries(unread).items()} == {"email": "sent", "sms": "sent"}
    assert [e.to for e in providers.emails()] == [[away.email]]
    assert [t.to for t in providers.texts()] == ["+15557654322"]


def test_the_message_delay_does_not_shorten_quiet_hours_nor_touch_other_types(provider_runtime, providers, queue):
    _with_message_delay(provider_runtime, 120)
    night = _user()
    quiet_end = _quiet_now(night)
    message, job = _message_notification(night)
    fan_out(str(job.id))
    assert _deliveries(message)["email"].not_before == quiet_end

    other = _user()
    _prefs(other, {"saved_search.price_drop": {"email": True}})
    drop = notify(other.id, "saved_search.price_drop", title="Price drop", body="Now $400,000", data={})
    fan_out(str(drop.id))
    [email] = providers.emails()
    assert email.to == [other.email]
