"""One event told to several users (``notify_each``): a notification each, one fan-out job for all.

Tasks run in this process inside the test's transaction; the real ``sendgrid``
library sends to the recording server (tests/providers.py).
"""

from __future__ import annotations

from models.db import db
from models.job_submission import jobs_submitted_after_commit
from models.jobs import Job
from models.money_notices import tell
from models.notifications import Notification, NotificationDelivery, fanned_out, notify_each
from tasks.notifications import fan_out
from tests.factories import make_user
from tests.providers import provider_runtime, provider_settings, providers  # noqa: F401


def _tell(users, *, key: str | None = "escrow.released:e1"):
    return notify_each(
        [user.id for user in users],
        "escrow.released",
        title="Earnest money released",
        body="The earnest money was released to the seller.",
        data={"escrow_id": "e1"},
        dedupe_key=(lambda user_id: f"{key}:{user_id}") if key else None,
    )


def _notification_of(user) -> Notification:
    return Notification.get(Notification.user == user.id)


def _email_statuses(users) -> dict:
    return {
        user.email: NotificationDelivery.get(
            (NotificationDelivery.user == user.id) & (NotificationDelivery.channel == "email")
        ).status
        for user in users
    }


def test_several_users_get_a_notification_each_and_one_fan_out_job_naming_them_in_order(provider_runtime, queue):
    buyer, seller = make_user(), make_user()
    with jobs_submitted_after_commit(queue.submit), db.atomic():
        job = _tell([seller, buyer])

    assert Job.select().where(Job.kind == "notifications.fan_out").count() == 1
    assert (job.kind, job.queue, job.max_attempts) == ("notifications.fan_out", "notify", 8)
    assert fanned_out(job) == [str(_notification_of(seller).id), str(_notification_of(buyer).id)]
    assert Job.get_by_id(job.id).input == {"notification_ids": fanned_out(job)}
    assert queue.submitted == [str(job.id)]


def test_one_user_gets_the_single_form_and_repeated_keys_write_nothing(provider_runtime):
    buyer, seller = make_user(), make_user()
    _tell([seller])
    # The same event again (a replayed step): the seller's key exists, only the buyer is new.
    again = _tell([seller, buyer])
    assert again.input == {"notification_id": str(_notification_of(buyer).id)}
    assert _tell([seller, buyer]) is None
    assert Notification.select().count() == 2
    assert Job.select().where(Job.kind == "notifications.fan_out").count() == 2
    assert notify_each([], "escrow.released", title="t", body="b") is None


def test_tell_counts_the_users_told(provider_runtime):
    buyer, seller = make_user(), make_user()
    told = tell([buyer.id, seller.id], "escrow.released", title="t", body="b", data={}, dedupe_key="k")
    assert told == 2
    assert tell([buyer.id, seller.id], "escrow.released", title="t", body="b", data={}, dedupe_key="k") == 0


def test_the_job_sends_each_users_email_once_and_reports_each(provider_runtime, providers):
    buyer, seller = make_user(), make_user()
    job = _tell([seller, buyer])

    fan_out(str(job.id))
    fan_out(str(job.id))  # the same message delivered again
    assert sorted(email.to for email in providers.emails()) == sorted([[seller.email], [buyer.email]])
    result = Job.get_by_id(job.id).result
    assert result == {
        "notifications": {
            str(_notification_of(user).id): {"in_app": True, "deliveries": {"email": "sent"}}
            for user in (seller, buyer)
        }
    }


def test_a_transient_error_for_one_user_retries_only_what_is_still_pending(provider_runtime, providers, queue):
    buyer, seller = make_user(), make_user()
    job = _tell([seller, buyer])
    providers.program("email", {"status": 503})  # the first send (the seller's) fails for now

    fan_out(str(job.id))
    assert _email_statuses([seller, buyer]) == {seller.email: "pending", buyer.email: "sent"}
    retried = Job.get_by_id(job.id)
    assert (retried.status, queue.submitted[-1]) == ("queued", str(job.id))

    assert queue.run_pending() == 1
    assert _email_statuses([seller, buyer]) == {seller.email: "sent", buyer.email: "sent"}
    sent = [(email.to[0], email.status) for email in providers.emails()]
    assert sent == [(seller.email, 503), (buyer.email, 202), (seller.email, 202)]
    assert Job.get_by_id(job.id).status == "succeeded"


def test_a_banned_user_among_several_gets_nothing_and_the_others_are_told(provider_runtime, providers):
    buyer, seller = make_user(), make_user(banned=True)
    job = _tell([seller, buyer])

    fan_out(str(job.id))
    assert [email.to for email in providers.emails()] == [[buyer.email]]
    result = Job.get_by_id(job.id).result["notifications"]
    assert result[str(_notification_of(seller).id)] == {"in_app": False, "deliveries": {}}
