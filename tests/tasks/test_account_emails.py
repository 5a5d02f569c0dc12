"""Account emails: a redelivered job sends one email and stores one token."""

from __future__ import annotations

import pytest

from models.accounts import AccountToken, User, token_hash
from models.base import utcnow
from models.jobs import Job, JobEffect
from services.mail import MailError
from tasks.accounts import job_token, send_password_reset, send_signup_notice, send_unlock_link, send_verification_email
from tasks.runtime import init_runtime
from tests.factories import make_user
from tests.outbox import Outbox


def _outbox(runtime) -> Outbox:
    return Outbox(runtime.settings.outbox_dir)


def _verification_job(user) -> Job:
    return Job.create(
        kind="accounts.send_verification_email", queue="notify", owner=user.id, input={"user_id": str(user.id)}
    )


def test_running_the_verification_job_twice_sends_one_email(runtime):
    user = make_user(verified=False)
    job = _verification_job(user)
    send_verification_email(str(job.id))
    send_verification_email(str(job.id))  # a second delivery of the same message

    assert len(_outbox(runtime).messages()) == 1
    assert AccountToken.select().where(AccountToken.user == user.id).count() == 1
    job = Job.get_by_id(job.id)
    assert (job.status, job.attempts, job.result) == ("succeeded", 1, {"sent": True})


def test_a_rerun_after_a_crash_repeats_no_side_effect(runtime):
    user = make_user(verified=False)
    job = _verification_job(user)
    send_verification_email(str(job.id))
    token = _outbox(runtime).token_for(user.email)
    # The worker died after sending but before recording the result; the sweep puts the job back.
    Job.update(status="queued", finished_at=None, result=None).where(Job.id == job.id).execute()

    send_verification_email(str(job.id))
    assert len(_outbox(runtime).messages()) == 1
    assert [bytes(row.token_hash) for row in AccountToken.select().where(AccountToken.user == user.id)] == [
        token_hash(token)
    ]
    keys = {effect.key for effect in JobEffect.select().where(JobEffect.job == job.id)}
    assert keys == {f"job:{job.id}:email-sending", f"job:{job.id}:email"}
    assert Job.get_by_id(job.id).status == "succeeded"


def test_the_mailed_token_is_the_stored_one_and_the_link_uses_the_public_url(runtime):
    user = make_user(verified=False, full_name="Ada <b>Lovelace</b>")
    job = _verification_job(user)
    send_verification_email(str(job.id))
    [message] = _outbox(runtime).messages()
    token = _outbox(runtime).token_for(user.email)
    assert token == job_token("verify_email", job.id)
    row = AccountToken.get(AccountToken.token_hash == token_hash(token))
    assert row.purpose == "verify_email" and row.used_at is None
    lifetime = (row.expires_at - utcnow()).total_seconds()
    assert 48 * 3600 - 60 < lifetime <= 48 * 3600
    html = next(
        part.get_payload(decode=True).decode() for part in message.walk() if part.get_content_type() == "text/html"
    )
    assert "http://hearth.test/verify-email?token=" in html
    assert "<b>Lovelace</b>" not in html  # the name is escaped


def test_no_email_for_an_already_verified_or_deleted_user(runtime):
    verified = make_user(verified=True)
    job = _verification_job(verified)
    send_verification_email(str(job.id))
    assert Job.get_by_id(job.id).result == {"sent": False}
    gone = make_user(verified=False)
    orphan = _verification_job(gone)
    User.delete().where(User.id == gone.id).execute()  # cascades the job too
    send_verification_email(str(orphan.id))
    assert _outbox(runtime).messages() == []


def test_running_the_reset_job_twice_sends_one_email(runtime):
    user = make_user()
    job = Job.create(kind="accounts.send_password_reset", queue="notify", input={"email": user.email})
    send_password_reset(str(job.id))
    Job.update(status="queued").where(Job.id == job.id).execute()
    send_password_reset(str(job.id))
    assert len(_outbox(runtime).messages()) == 1
    assert (
        AccountToken.select().where((AccountToken.user == user.id) & (AccountToken.purpose == "password_reset")).count()
        == 1
    )


@pytest.mark.parametrize(
    ("task", "kind", "purpose"),
    [
        (send_signup_notice, "accounts.send_signup_notice", "password_reset"),
        (send_unlock_link, "accounts.send_unlock_link", "account_unlock"),
    ],
)
def test_running_the_notice_and_unlock_jobs_twice_sends_one_email_and_one_token(runtime, task, kind, purpose):
    user = make_user(full_name="Ada <b>Lovelace</b>")
    job = Job.create(kind=kind, queue="notify", input={"email": user.email})
    task(str(job.id))
    Job.update(status="queued").where(Job.id == job.id).execute()  # redelivered after a lost finish
    task(str(job.id))
    [message] = _outbox(runtime).messages()
    assert message["To"] == user.email
    assert AccountToken.select().where((AccountToken.user == user.id) & (AccountToken.purpose == purpose)).count() == 1
    html = next(
        part.get_payload(decode=True).decode() for part in message.walk() if part.get_content_type() == "text/html"
    )
    assert "<b>Lovelace</b>" not in html


class FlakyMailer:
    """A provider that fails the first sends as told (a 5xx sent nothing; a read timeout may have), then sends."""

    def __init__(self, *failures: MailError):
        self.failures = list(failures)
        self.sent: list[str] = []

    def send(self, message, *, idempotency_key: str) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message.to)
        return f"msg-{len(self.sent)}"


def test_a_run_that_died_while_the_provider_had_the_email_does_not_send_it_again(runtime):
    user = make_user(verified=False)
    job = _verification_job(user)
    # The first run committed its mark and died during the call: the mail may or may not have gone out.
    JobEffect.create(key=f"job:{job.id}:email-sending", job=job.id, result={"started": True})
    Job.update(attempts=1).where(Job.id == job.id).execute()

    send_verification_email(str(job.id))
    assert _outbox(runtime).messages() == []  # not a second copy
    assert JobEffect.get_by_id(f"job:{job.id}:email").result == {"message": None, "uncertain": True}
    assert Job.get_by_id(job.id).status == "succeeded"


@pytest.mark.parametrize(
    ("failure", "sends"),
    [
        (MailError("503 from SendGrid", transient=True, status=503), 1),  # nothing was sent: it is sent now
        (MailError("read timeout", transient=True, uncertain=True), 0),  # it may have gone: never a second copy
    ],
)
def test_a_transient_failure_sends_again_only_when_nothing_was_sent(settings, redis, queue, failure, sends):
    mailer = FlakyMailer(failure)
    init_runtime(settings, redis=redis, init_db=False, jobs=queue, mailer=mailer)
    user = make_user(verified=False)
    job = _verification_job(user)
    send_verification_email(str(job.id))
    assert Job.get_by_id(job.id).status == "queued"  # to be retried
    queue.submitted.clear()
    send_verification_email(str(job.id))
    assert mailer.sent == [user.email] * sends
    assert Job.get_by_id(job.id).status == "succeeded"
