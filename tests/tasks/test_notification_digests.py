"""Daily digests: one email at the user's digest hour listing what waited, sent once.

Tasks run in this process inside the test's transaction; the digest jobs go to
a recording queue and the email to the SendGrid recorder (tests/providers.py).
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from urllib.parse import parse_qs, urlsplit

from models.base import utcnow
from models.jobs import Job
from models.notifications import (
    TYPES,
    EmailSuppression,
    Notification,
    NotificationDelivery,
    NotificationPreference,
    notify,
)
from services.unsubscribe import read_unsubscribe_token
from tasks.notifications import fan_out, send_digests
from tests.factories import make_user
from tests.providers import provider_runtime, provider_settings, providers  # noqa: F401

ZONE = "Asia/Tokyo"


def _local_now() -> datetime.datetime:
    return utcnow().astimezone(zoneinfo.ZoneInfo(ZONE))


def _user(*, digest_hour: int | None = None, **prefs):
    """A user with daily digests at ``digest_hour`` o'clock Tokyo time (default: the current hour there)."""
    user = make_user()
    hour = _local_now().hour if digest_hour is None else digest_hour
    NotificationPreference.create(user=user.id, timezone=ZONE, digest_hour=hour, **prefs)
    return user


def _matches(user, count: int, queue) -> list[Notification]:
    """``count`` saved-search matches (daily digest by default), fanned out."""
    notifications = []
    for n in range(count):
        job = notify(
            user.id,
            "saved_search.new_match",
            title=f"Flat {n} in Kreuzberg matches “Berlin 2 rooms”",
            body=f"2 rooms, 54 m², €{1000 + n}/month <new>",
            data={"property_id": f"prop-{n}"},
        )
        fan_out(str(job.id))
        notifications.append(Notification.get_by_id(job.input["notification_id"]))
    return notifications


def _statuses(user) -> list[str]:
    return sorted({row.status for row in NotificationDelivery.select().where(NotificationDelivery.user == user.id)})


def _digest_key(user) -> str:
    return f"digest:{user.id}:{_local_now().date().isoformat()}"


def test_several_notifications_become_one_email_at_the_digest_hour(provider_runtime, providers, queue):
    user = _user()
    notifications = _matches(user, 3, queue)
    assert _statuses(user) == ["digest"] and providers.emails() == []
    assert all(Notification.get_by_id(n.id).in_app for n in notifications)  # the app shows them at once

    assert send_digests() == {"jobs": 1}
    [job_id] = queue.submitted
    job = Job.get_by_id(job_id)
    assert (job.kind, job.input) == (
        "notifications.send_digest",
        {"user_id": str(user.id), "digest_key": _digest_key(user)},
    )
    assert queue.run_pending() == 1

    [email] = providers.emails()
    assert (email.to, email.status, email.subject) == ([user.email], 202, "Your Hearth digest: 3 updates")
    assert email.idempotency_key == _digest_key(user)
    for n in range(3):
        assert f"Flat {n} in Kreuzberg matches “Berlin 2 rooms”" in email.text
        assert f"http://hearth.test/properties/prop-{n}" in email.text
        assert f'href="http://hearth.test/properties/prop-{n}"' in email.html
    assert email.text.index("Flat 2") < email.text.index("Flat 0")  # newest first
    assert "&lt;new&gt;" in email.html and "<new>" not in email.html
    token = parse_qs(urlsplit(email.headers["List-Unsubscribe"].strip("<>")).query)["token"][0]
    assert read_unsubscribe_token(provider_runtime.settings.secret_key, token, TYPES) == (str(user.id), "*")
    assert re.search(r"http://hearth\.test/unsubscribe\?token=\S+", email.text)
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    rows = list(NotificationDelivery.select().where(NotificationDelivery.user == user.id))
    assert {(r.status, r.digest_key, r.provider_message_id) for r in rows} == {
        ("sent", _digest_key(user), rows[0].provider_message_id)
    }
    assert rows[0].provider_message_id and all(r.sent_at is not None for r in rows)

    # The next tick (or the same one twice) sends nothing more.
    assert send_digests() == {"jobs": 0}
    assert queue.run_pending() == 0 and len(providers.emails()) == 1


def test_nothing_before_the_digest_hour_unless_a_row_waited_over_25_hours(provider_runtime, providers, queue):
    user = _user(digest_hour=(_local_now().hour + 3) % 24)
    [notification] = _matches(user, 1, queue)
    assert send_digests() == {"jobs": 0}

    # A missed tick (beat was down at the digest hour): the oldest row is now overdue.
    NotificationDelivery.update(created_at=utcnow() - datetime.timedelta(hours=25, minutes=1)).where(
        NotificationDelivery.notification == notification.id
    ).execute()
    assert send_digests() == {"jobs": 1}
    queue.run_pending()
    assert [e.subject for e in providers.emails()] == ["Your Hearth digest: 1 update"]
    assert _statuses(user) == ["sent"]


def test_what_arrives_after_todays_digest_waits_for_tomorrows(provider_runtime, providers, queue):
    user = _user()
    _matches(user, 1, queue)
    send_digests()
    queue.run_pending()
    later = _matches(user, 1, queue)[0]
    assert send_digests() == {"jobs": 0}
    row = NotificationDelivery.get(NotificationDelivery.notification == later.id)
    assert (row.status, row.digest_key) == ("digest", None)
    assert len(providers.emails()) == 1


def test_a_digest_shows_fifty_and_says_how_many_more(provider_runtime, providers, queue):
    user = _user()
    _matches(user, 53, queue)
    send_digests()
    queue.run_pending()
    [email] = providers.emails()
    assert email.subject == "Your Hearth digest: 53 updates"
    assert email.text.count("http://hearth.test/properties/prop-") == 50
    assert "and 3 more" in email.text and "and 3 more" in email.html
    assert "prop-52" in email.text and "prop-2\n" not in email.text  # the newest fifty
    assert _statuses(user) == ["sent"]


def test_a_provider_error_is_retried_and_the_digest_goes_out_once(provider_runtime, providers, queue):
    user = _user()
    _matches(user, 2, queue)
    providers.program("email", {"status": 503})
    send_digests()
    assert queue.run_pending() == 2  # the first run met the 503; its retry sent the digest
    assert [e.status for e in providers.emails()] == [503, 202]
    assert {e.idempotency_key for e in providers.emails()} == {_digest_key(user)}
    assert _statuses(user) == ["sent"]
    assert send_digests() == {"jobs": 0} and len(providers.emails()) == 2


def test_a_rejected_digest_fails_its_rows_and_is_not_retried(provider_runtime, providers, queue):
    user = _user()
    _matches(user, 2, queue)
    providers.program("email", {"status": 400})
    send_digests()
    assert queue.run_pending() == 1
    rows = list(NotificationDelivery.select().where(NotificationDelivery.user == user.id))
    assert {(r.status, r.error) for r in rows} == {("failed", "SendGrid answered 400")}
    assert send_digests() == {"jobs": 0} and len(providers.emails()) == 1


def test_quiet_hours_do_not_hold_a_digest(provider_runtime, providers, queue):
    now = _local_now()
    user = _user(
        quiet_start=(now - datetime.timedelta(hours=1)).time().replace(microsecond=0),
        quiet_end=(now + datetime.timedelta(hours=1)).time().replace(microsecond=0),
    )
    _matches(user, 2, queue)
    assert _statuses(user) == ["digest"]  # not 'scheduled': the digest has its own hour
    send_digests()
    queue.run_pending()
    assert [e.subject for e in providers.emails()] == ["Your Hearth digest: 2 updates"]


def test_an_address_suppressed_since_gets_no_digest(provider_runtime, providers, queue):
    user = _user()
    _matches(user, 2, queue)
    EmailSuppression.create(email=user.email, reason="spamreport")
    send_digests()
    queue.run_pending()
    assert providers.emails() == []
    rows = list(NotificationDelivery.select().where(NotificationDelivery.user == user.id))
    assert {(r.status, r.error) for r in rows} == {("suppressed", "the address is suppressed (spamreport)")}


def test_a_digest_leaves_out_what_was_read_in_the_app(provider_runtime, providers, queue):
    user = _user()
    read, *unread = _matches(user, 3, queue)
    Notification.update(read_at=utcnow()).where(Notification.id == read.id).execute()

    send_digests()
    queue.run_pending()
    [email] = providers.emails()
    assert email.subject == "Your Hearth digest: 2 updates"
    assert "Flat 0 in Kreuzberg" not in email.text and "Flat 1 in Kreuzberg" in email.text
    statuses = {
        str(r.notification_id): r.status
        for r in NotificationDelivery.select().where(NotificationDelivery.user == user.id)
    }
    assert statuses == {str(read.id): "suppressed", **{str(n.id): "sent" for n in unread}}
