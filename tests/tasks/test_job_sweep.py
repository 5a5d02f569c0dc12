"""The beat sweep recovers accepted work; the purge forgets finished work after its retention."""

from __future__ import annotations

import datetime

import pytest

from models.base import utcnow
from models.jobs import Job, JobEffect
from services.events import EventBus
from tasks.app import app as celery_app
from tasks.jobs import purge_finished_jobs, sweep_jobs
from tests.api.conftest import RecordingJobQueue
from tests.factories import make_user

AGO = lambda seconds: utcnow() - datetime.timedelta(seconds=seconds)  # noqa: E731


def _job(**fields) -> Job:
    fields.setdefault("owner", make_user().id)
    return Job.create(kind="jobs.selftest", input={"steps": 1, "step_ms": 0}, **fields)


def test_sweep_requeues_jobs_of_dead_workers_and_fails_those_out_of_attempts(runtime, queue):
    lost = _job(status="running", attempts=1, lease_expires_at=AGO(1), started_at=AGO(100))
    exhausted = _job(status="running", attempts=5, max_attempts=5, lease_expires_at=AGO(1))
    alive = _job(status="running", attempts=1, lease_expires_at=AGO(-60))

    result = sweep_jobs()
    assert result == {
        "requeued_lost": 1,
        "failed_lost": 1,
        "stale_enqueued": 0,
        "submitted": 1,
        "final_events_published": 0,
    }
    assert queue.submitted == [str(lost.id)]
    requeued = Job.get_by_id(lost.id)
    assert (requeued.status, requeued.error, requeued.last_error["title"]) == (
        "queued",
        None,
        "The worker running the job stopped",
    )
    failed = Job.get_by_id(exhausted.id)
    assert (failed.status, failed.error["detail"]) == (
        "failed",
        "The worker running the job stopped on its last attempt.",
    )
    assert Job.get_by_id(alive.id).status == "running"

    bus = EventBus(runtime.redis, runtime.settings.redis_prefix)
    assert [e["type"] for e in bus.history(f"job:{lost.id}")] == ["job.requeued"]
    assert [e["type"] for e in bus.history(f"job:{exhausted.id}")] == ["job.failed"]

    # The requeued job then runs to the end on its second attempt.
    assert queue.run_pending() == 1
    assert (Job.get_by_id(lost.id).status, Job.get_by_id(lost.id).attempts) == ("succeeded", 2)


def test_sweep_enqueues_queued_jobs_that_should_have_started(runtime, queue):
    requeue_after = runtime.settings.job_requeue_after
    never_enqueued = _job(created_at=AGO(requeue_after + 5))
    fresh = _job()
    backing_off = _job(created_at=AGO(requeue_after + 5), run_after=AGO(-30), enqueued_at=AGO(requeue_after + 5))
    backoff_over = _job(created_at=AGO(3600), run_after=AGO(requeue_after + 1), enqueued_at=AGO(3600))

    sweep_jobs()
    assert sorted(queue.submitted) == sorted([str(never_enqueued.id), str(backoff_over.id)])
    assert Job.get_by_id(never_enqueued.id).enqueued_at > AGO(5)
    assert {str(fresh.id), str(backing_off.id)}.isdisjoint(queue.submitted)

    queue.submitted.clear()
    assert sweep_jobs()["stale_enqueued"] == 0  # just enqueued: not again until requeue_after passes


def test_a_duplicate_message_from_the_sweep_runs_nothing_twice(runtime, queue):
    job = _job(created_at=AGO(3600))
    sweep_jobs()
    queue.submitted.append(str(job.id))  # the original message, delivered late
    assert queue.run_pending() == 2
    row = Job.get_by_id(job.id)
    assert (row.status, row.attempts) == ("succeeded", 1)


def test_purge_forgets_finished_jobs_after_retention_with_their_effects_and_files(runtime, queue):
    retention = datetime.timedelta(days=runtime.settings.job_retention_days)
    old = _job()
    queue.submitted.append(str(old.id))
    queue.run_pending()
    old = Job.get_by_id(old.id)
    key = old.result["file"]["key"]
    assert runtime.storage.exists(key) and JobEffect.select().where(JobEffect.job == old.id).count() == 1
    Job.update(finished_at=utcnow() - retention - datetime.timedelta(hours=1)).where(Job.id == old.id).execute()
    recent = _job(status="succeeded", finished_at=AGO(60))
    running = _job(status="running", lease_expires_at=AGO(-60))

    assert purge_finished_jobs()["purged"] == 1
    assert Job.get_or_none(Job.id == old.id) is None
    assert JobEffect.select().where(JobEffect.key.startswith(f"job:{old.id}:")).count() == 0
    assert not runtime.storage.exists(key)
    assert Job.get_or_none(Job.id == recent.id) and Job.get_or_none(Job.id == running.id)


def test_purge_expires_old_export_archives_but_keeps_the_job(runtime):
    hours = runtime.settings.export_retention_hours
    user = make_user()
    stored = runtime.storage.put(f"exports/{user.id}/x/hearth-export.zip", b"PK archive")
    old = Job.create(
        kind="exports.build_export",
        owner=user.id,
        status="succeeded",
        finished_at=AGO(hours * 3600 + 60),
        result={"file": stored.as_dict(), "download_url": "http://x", "expires_at": "t", "sections": ["profile"]},
    )
    fresh_stored = runtime.storage.put(f"exports/{user.id}/y/hearth-export.zip", b"PK archive")
    fresh = Job.create(
        kind="exports.build_export",
        owner=user.id,
        status="succeeded",
        finished_at=AGO(60),
        result={"file": fresh_stored.as_dict(), "download_url": "http://y"},
    )

    assert purge_finished_jobs()["exports_expired"] == 1
    assert Job.get_by_id(old.id).result == {"sections": ["profile"], "expired": True}
    assert not runtime.storage.exists(stored.key)
    assert runtime.storage.exists(fresh_stored.key) and Job.get_by_id(fresh.id).result["download_url"] == "http://y"


class BackloggedQueue(RecordingJobQueue):
    """A broker whose ``default`` queue has messages waiting."""

    def backlog(self):
        return {"default"}


def test_sweep_leaves_stale_jobs_of_a_backlogged_queue_waiting_their_turn(settings, redis):
    from tasks.runtime import init_runtime

    backlogged = BackloggedQueue()
    init_runtime(settings, redis=redis, init_db=False, jobs=backlogged)
    waiting = _job(queue="default", created_at=AGO(3600))
    lost = Job.create(
        kind="exports.build_export", queue="exports", owner=make_user().id, created_at=AGO(3600), input={}
    )
    sweep_jobs()
    assert backlogged.submitted == [str(lost.id)]
    assert Job.get_by_id(waiting.id).enqueued_at is None


@pytest.mark.parametrize(
    ("kind", "queue"),
    [("jobs.selftest", "default"), ("exports.build_export", "exports"), ("jobs.sweep_jobs", "maintenance")],
)
def test_job_queues_match_the_routes_of_their_tasks(kind, queue):
    from services.jobqueue import task_name

    assert celery_app.amqp.router.route({}, task_name(kind))["queue"].name == queue


def test_a_final_event_lost_while_redis_was_away_is_published_by_the_sweep(runtime, settings, redis, queue):
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tasks.jobs import selftest
    from tasks.runtime import init_runtime
    from tests.integration.processes import free_port

    job = _job()
    bus = EventBus(redis, settings.redis_prefix)
    # Redis is away for events (nothing listens on this port): the job still finishes.
    away = redis_lib.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    init_runtime(settings, redis=away, init_db=False, jobs=queue)
    selftest(str(job.id))
    row = Job.get_by_id(job.id)
    assert (row.status, row.final_event_pending) == ("succeeded", True)
    assert bus.history(f"job:{job.id}") == []

    # Still away: the sweep keeps the mark for the next time.
    assert sweep_jobs()["final_events_published"] == 0
    assert Job.get_by_id(job.id).final_event_pending is True

    # Back: the next sweep publishes the final state from the row, once.
    init_runtime(settings, redis=redis, init_db=False, jobs=queue)
    assert sweep_jobs()["final_events_published"] == 1
    events = bus.history(f"job:{job.id}")
    assert [(e["type"], e["data"]["status"], e["data"]["progress"]["percent"]) for e in events] == [
        ("job.succeeded", "succeeded", 100)
    ]
    assert [e["type"] for e in bus.history(f"user:{job.owner_id}")] == ["job.succeeded"]
    assert Job.get_by_id(job.id).final_event_pending is False
    assert sweep_jobs()["final_events_published"] == 0
