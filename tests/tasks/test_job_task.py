"""The job task base class: claim, progress, cancellation, once-only effects, retries, fencing.

Tasks run in this process inside the test's transaction; retries are submitted
to a recording queue (the runtime's ``jobs``) instead of the broker.
"""

from __future__ import annotations

import datetime

import pytest

from models.audit import AuditEntry
from models.base import utcnow
from models.db import db
from models.jobs import Job, JobEffect
from services.events import EventBus
from tasks.base import Cancelled, JobContext, LeaseLost, Transient, backoff_seconds, job_task
from tasks.jobs import selftest
from tests.factories import make_user


@job_task(transient=(Transient,), name="tasks.testing.always_transient")
def always_transient(ctx: JobContext) -> dict:
    ctx.progress(10, "trying")
    raise Transient("the mail server said 451")


@job_task(name="tasks.testing.always_broken")
def always_broken(ctx: JobContext) -> dict:
    raise ValueError("a bug, with internal details that must not leak")


@job_task(name="tasks.testing.cancelled_while_running")
def cancelled_while_running(ctx: JobContext) -> dict:
    ctx.progress(10, "first step")
    Job.request_cancel(ctx.job.id)  # what POST /v1/jobs/{id}/cancel does meanwhile
    ctx.progress(20, "second step")
    return {"reached": "the end"}


@pytest.fixture
def bus(runtime):
    return EventBus(runtime.redis, runtime.settings.redis_prefix)


# Every test here writes rows: each runs in the rolled-back transaction of the test database.
pytestmark = pytest.mark.usefixtures("database")


def _job(kind: str, owner=None, **fields) -> Job:
    owner = owner or make_user()
    return Job.create(kind=kind, owner=owner.id, **fields)


def _types(bus, job) -> list[str]:
    return [event["type"] for event in bus.history(f"job:{job.id}")]


def test_a_job_runs_to_success_with_progress_and_a_second_delivery_changes_nothing(runtime, bus):
    job = _job("jobs.selftest", input={"steps": 4, "step_ms": 0})
    assert selftest(str(job.id)) is None
    first = Job.get_by_id(job.id)
    assert (first.status, first.attempts, first.progress_pct) == ("succeeded", 1, 100)
    assert first.result["probe"]["attempt"] == 1
    assert runtime.storage.exists(first.result["probe"]["key"])
    assert _types(bus, job) == ["job.started"] + ["job.progress"] * 4 + ["job.succeeded"]

    selftest(str(job.id))  # the same message delivered again
    again = Job.get_by_id(job.id)
    assert (again.status, again.attempts, again.finished_at, again.result) == (
        "succeeded",
        1,
        first.finished_at,
        first.result,
    )
    assert _types(bus, job).count("job.succeeded") == 1
    # The user channel carries the same events, with ids of its own stream.
    user_events = bus.history(f"user:{job.owner_id}")
    assert [e["type"] for e in user_events] == _types(bus, job)
    assert all(e["data"]["id"] == str(job.id) for e in user_events)


def test_only_one_claim_wins():
    job = _job("jobs.selftest")
    first = Job.claim_by_id(job.id, 60)
    assert first is not None and first.attempts == 1 and first.status == "running"
    assert Job.claim_by_id(job.id, 60) is None


def test_once_runs_an_effect_once_and_returns_the_recorded_result():
    job = Job.claim_by_id(_job("jobs.selftest").id, 60)
    ctx = JobContext(job, 60)
    calls = []

    def effect(key):
        calls.append(key)
        return {"sent": len(calls)}

    assert ctx.once("email", effect) == {"sent": 1}
    assert ctx.once("email", effect) == {"sent": 1}
    assert calls == [f"job:{job.id}:email"]
    # A later run of the same job (a retry, a redelivery) sees the record too.
    assert JobContext(job, 60).once("email", effect) == {"sent": 1}
    assert ctx.once("another-step", effect) == {"sent": 2}


def test_a_step_that_need_not_wait_for_the_disk_commits_lazily_and_is_recorded_once_all_the_same():
    job = Job.claim_by_id(_job("jobs.selftest").id, 60)
    ctx = JobContext(job, 60)
    seen = []

    def effect(key):
        seen.append(db.execute_sql("SHOW synchronous_commit").fetchone()[0])
        return {"paid": len(seen)}

    assert ctx.once("payout", effect, durable=False) == {"paid": 1}
    assert ctx.once("payout", effect, durable=False) == {"paid": 1}
    assert seen == ["off"]  # its transaction only: the claim sets it locally
    assert JobEffect.get_by_id(f"job:{job.id}:payout").result == {"paid": 1}


@pytest.mark.parametrize("durable", [True, False])
def test_a_result_known_beforehand_is_recorded_with_the_claim_and_the_effect_still_runs_once(durable):
    job = Job.claim_by_id(_job("jobs.selftest").id, 60)
    ctx = JobContext(job, 60)
    calls = []

    def effect(key):
        calls.append(db.execute_sql("SELECT result FROM job_effects WHERE key = %s", (key,)).fetchone()[0])
        return {"ignored": True}

    assert ctx.once("payout", effect, durable=durable, result={"status": "succeeded"}) == {"status": "succeeded"}
    assert ctx.once("payout", effect, durable=durable, result={"status": "failed"}) == {"status": "succeeded"}
    assert calls == [{"status": "succeeded"}]  # the record already carried it while the effect ran
    assert JobEffect.get_by_id(f"job:{job.id}:payout").result == {"status": "succeeded"}


def test_an_effect_that_fails_leaves_no_record_and_none_of_its_writes():
    job = Job.claim_by_id(_job("jobs.selftest").id, 60)
    ctx = JobContext(job, 60)

    def effect(key):
        AuditEntry.record(actor_id=None, action="test.effect", target_type="job", target_id=job.id)
        raise Transient("gone halfway")

    with pytest.raises(Transient):
        ctx.once("step", effect)
    assert JobEffect.get_or_none(JobEffect.key == f"job:{job.id}:step") is None
    assert AuditEntry.select().where(AuditEntry.action == "test.effect").count() == 0

    # The retry performs it, exactly once.
    ctx.once(
        "step",
        lambda key: (
            AuditEntry.record(actor_id=None, action="test.effect", target_type="job", target_id=job.id) and {"ok": True}
        ),
    )
    assert AuditEntry.select().where(AuditEntry.action == "test.effect").count() == 1


def test_transient_errors_are_retried_with_backoff_then_fail_clearly(runtime, bus, queue):
    job = _job("testing.always_transient", max_attempts=3)
    before = utcnow()
    always_transient(str(job.id))
    row = Job.get_by_id(job.id)
    assert (row.status, row.attempts) == ("queued", 1)
    # Full jitter: anywhere from now (a delay near zero) to the first backoff cap (4 s).
    assert before <= row.run_after <= utcnow() + datetime.timedelta(seconds=4.5)
    # Not failed: no error beside "queued"; why it is retried is its last_error.
    assert row.error is None
    assert row.last_error == {
        "type": "https://hearth.dev/problems/job-failed",
        "title": "The job failed after retries",
        "detail": "Transient",
    }
    assert (row.view()["error"], row.view()["last_error"]["detail"]) == (None, "Transient")
    assert queue.submitted == [str(job.id)]

    assert queue.run_pending() == 2  # attempt 2 is retried again, attempt 3 is the last
    row = Job.get_by_id(job.id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.error == {
        "type": "https://hearth.dev/problems/job-failed",
        "title": "The job failed after retries",
        "detail": "Transient",
    }
    assert row.finished_at is not None and row.last_error is None
    assert _types(bus, job) == ["job.started", "job.progress", "job.retrying"] * 2 + [
        "job.started",
        "job.progress",
        "job.failed",
    ]


def test_other_errors_fail_at_once_without_leaking_details(runtime, queue):
    job = _job("testing.always_broken")
    always_broken(str(job.id))
    row = Job.get_by_id(job.id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.error["detail"] == "ValueError"
    assert "internal" not in str(row.error)
    assert queue.submitted == []


def test_backoff_is_exponential_with_full_jitter():
    for attempt, bound in [(0, 2), (1, 4), (3, 16), (20, 300)]:
        samples = [backoff_seconds(attempt) for _ in range(400)]
        assert all(0 <= s <= bound for s in samples)
        assert max(samples) > bound * 0.8 and min(samples) < bound * 0.2  # spread over the whole range


def test_a_queued_job_cancelled_before_it_runs_never_starts(runtime, bus):
    job = _job("jobs.selftest", input={"steps": 1, "step_ms": 0})
    cancelled = Job.request_cancel(job.id)
    assert (cancelled.status, cancelled.finished_at is not None) == ("cancelled", True)
    selftest(str(job.id))
    row = Job.get_by_id(job.id)
    assert (row.status, row.started_at, row.attempts) == ("cancelled", None, 0)
    assert _types(bus, job) == []


def test_a_running_job_stops_at_its_next_progress_point(runtime, bus):
    job = _job("testing.cancelled_while_running")
    cancelled_while_running(str(job.id))
    row = Job.get_by_id(job.id)
    assert (row.status, row.progress_pct, row.result) == ("cancelled", 10, None)
    assert row.cancel_requested_at is not None and row.finished_at is not None
    assert _types(bus, job) == ["job.started", "job.progress", "job.cancelled"]


def test_a_finished_job_cannot_be_cancelled(runtime):
    job = _job("jobs.selftest", input={"steps": 1, "step_ms": 0})
    selftest(str(job.id))
    assert Job.request_cancel(job.id) is None
    assert Job.get_by_id(job.id).status == "succeeded"


def test_a_run_that_lost_its_lease_can_no_longer_touch_the_job():
    job = _job("jobs.selftest")
    old = JobContext(Job.claim_by_id(job.id, 60), 60)
    Job.update(lease_expires_at=utcnow() - datetime.timedelta(seconds=1)).where(Job.id == job.id).execute()
    assert [j.id for j in Job.requeue_lost(utcnow())] == [job.id]
    new = JobContext(Job.claim_by_id(job.id, 60), 60)
    assert (old.attempt, new.attempt) == (1, 2)

    with pytest.raises(LeaseLost):
        old.progress(50, "still here?")
    assert Job.finish(job.id, old.attempt, "succeeded", result={"from": "old"}) is None
    new.progress(50, "working")
    assert Job.finish(job.id, new.attempt, "succeeded", result={"from": "new"}).result == {"from": "new"}


def test_check_cancelled_raises_once_the_heartbeat_saw_a_request():
    job = JobContext(Job.claim_by_id(_job("jobs.selftest").id, 60), 60)
    job.check_cancelled()
    job._cancel_requested.set()
    with pytest.raises(Cancelled):
        job.check_cancelled()
