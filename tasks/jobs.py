"""The job platform's own work: the recovery sweep, the purge, and a diagnostic job.

``sweep_jobs`` (every 15 s from beat) makes accepted work impossible to lose:
running jobs whose lease expired (their worker died) go back to ``queued`` and
are enqueued again, or fail when that was their last attempt; queued jobs that
should have started a while ago (the broker was down at enqueue, or lost the
message) are enqueued again. A duplicate message is harmless: the claim lets
only one delivery run the job.

``purge_finished_jobs`` (hourly) deletes finished jobs after the retention
period with their recorded side effects and stored files, and deletes export
archives once they are older than ``EXPORT_RETENTION_HOURS``.

``selftest`` (kind ``jobs.selftest``) is a real job for operators and
benchmarks: it reports progress in steps, writes and reads back a probe object
through storage once, and checks for cancellation.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time

import msgspec

from models.base import utcnow
from models.db import connection, db
from models.jobs import Job, JobEffect
from services import metrics
from services.storage import StorageError
from tasks.app import app
from tasks.base import JobContext, job_task, publish_final_job_event, publish_job_event
from tasks.runtime import runtime

log = logging.getLogger("hearth.jobs")
SWEEP_BATCH = 500
LOST_WORKER_PROBLEM = {
    "type": "https://hearth.dev/problems/job-failed",
    "title": "The job failed after retries",
    "detail": "The worker running the job stopped on its last attempt.",
}


@app.task(name="tasks.jobs.sweep_jobs", acks_late=True, ignore_result=True)
def sweep_jobs() -> dict:
    """Requeue jobs of dead workers, fail those out of attempts, and enqueue stale queued jobs."""
    settings = runtime().settings
    now = utcnow()
    with connection():
        with db.atomic():
            lost = Job.requeue_lost(now, SWEEP_BATCH)
            failed = Job.fail_lost(now, LOST_WORKER_PROBLEM, SWEEP_BATCH)
        # A stale job in a queue with messages waiting is most likely waiting its turn: enqueueing
        # it again would only grow the backlog.
        queue = runtime().jobs
        with db.atomic():
            stale = Job.claim_stale(now, settings.job_requeue_after, SWEEP_BATCH, skip_queues=queue.backlog())
    metrics.JOB_SWEEPS.labels("requeued").inc(len(lost))
    metrics.JOB_SWEEPS.labels("expired").inc(len(failed))
    for job in lost:
        publish_job_event(job, "job.requeued")
    for job in failed:
        publish_final_job_event(job)
    submitted = sum(1 for job in [*lost, *stale] if queue.submit(job))
    republished = publish_pending_final_events()
    if lost or failed or stale or republished:
        log.info(
            "job sweep",
            extra={
                "requeued_lost": len(lost),
                "failed_lost": len(failed),
                "stale_enqueued": len(stale),
                "submitted": submitted,
                "final_events_published": republished,
            },
        )
    return {
        "requeued_lost": len(lost),
        "failed_lost": len(failed),
        "stale_enqueued": len(stale),
        "submitted": submitted,
        "final_events_published": republished,
    }


def publish_pending_final_events() -> int:
    """Publish, from the row, the final event of finished jobs whose event was lost (Redis was away).

    The event carries the job's state now, under a new id: a client that stayed
    connected (the relay catches it up from the stream) or resumes from an id the
    stream still holds receives it; one told ``reset`` (Redis came back empty)
    reads its jobs over REST. Stops at the first failure: Redis is still away,
    the next sweep tries again.
    """
    published = 0
    with connection():
        pending = Job.with_final_event_pending(SWEEP_BATCH)
        for job in pending:
            if not publish_job_event(job, f"job.{job.status}"):
                break
            Job.final_event_published(job.id)
            published += 1
    return published


def _stored_key(job: Job) -> str | None:
    result = job.result if isinstance(job.result, dict) else {}
    file = result.get("file")
    return file.get("key") if isinstance(file, dict) else None


@app.task(name="tasks.jobs.purge_finished_jobs", acks_late=True, ignore_result=True)
def purge_finished_jobs() -> dict:
    """Delete finished jobs past retention (with effects and stored files); expire old export archives."""
    settings = runtime().settings
    now = utcnow()
    purged = expired = 0
    with connection():
        expired = _expire_exports(now - datetime.timedelta(hours=settings.export_retention_hours))
        cutoff = now - datetime.timedelta(days=settings.job_retention_days)
        while True:
            batch = Job.finished_before(cutoff, SWEEP_BATCH)
            if not batch:
                break
            for job in batch:
                key = _stored_key(job)
                if key:
                    _delete_quietly(key)
            ids = [job.id for job in batch]
            with db.atomic():
                JobEffect.delete().where(JobEffect.job.in_(ids)).execute()
                purged += Job.delete().where(Job.id.in_(ids)).execute()
            if len(batch) < SWEEP_BATCH:
                break
    return {"purged": purged, "exports_expired": expired}


def _expire_exports(before: datetime.datetime) -> int:
    rows = (
        Job.select()
        .where(
            (Job.kind == "exports.build_export")
            & (Job.status == "succeeded")
            & (Job.finished_at < before)
            & Job.result.has_key("file")
        )
        .limit(SWEEP_BATCH)
    )
    count = 0
    for job in rows:
        _delete_quietly(_stored_key(job))
        kept = {k: v for k, v in job.result.items() if k not in ("file", "download_url", "expires_at")}
        Job.update(result=dict(kept, expired=True), updated_at=utcnow()).where(Job.id == job.id).execute()
        count += 1
    return count


def _delete_quietly(key) -> None:
    if not key:
        return
    try:
        runtime().storage.delete(key)
    except StorageError:
        log.warning("could not delete a stored object", extra={"key": key}, exc_info=True)


@job_task()
def selftest(ctx: JobContext) -> dict:
    """Input: ``steps`` (1-100, default 5), ``step_ms`` (0-10000, default 200).

    Halfway through it writes ``selftest/{job id}.json`` through storage once
    (recording the attempt that wrote it) and reads it back.
    """
    steps = max(1, min(100, int(ctx.input.get("steps", 5))))
    step_ms = max(0, min(10_000, int(ctx.input.get("step_ms", 200))))
    started = time.monotonic()
    probe = None
    for step in range(1, steps + 1):
        time.sleep(step_ms / 1000)
        ctx.check_cancelled()
        if probe is None and step * 2 >= steps:
            probe = ctx.once("probe", lambda key: _write_probe(ctx, key))
        ctx.progress(step * 100 // steps, f"step {step} of {steps}")
    return {
        "steps": steps,
        "probe": probe,
        "file": {"key": probe["key"]},
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "ran_ms": round((time.monotonic() - started) * 1000),
    }


def _write_probe(ctx: JobContext, key: str) -> dict:
    name = f"selftest/{ctx.job.id}.json"
    body = msgspec.json.encode(
        {"job_id": str(ctx.job.id), "attempt": ctx.attempt, "pid": os.getpid(), "idempotency_key": key}
    )
    storage = runtime().storage
    stored = storage.put(name, body)
    if storage.get(name) != body:
        raise StorageError("the probe read back differently")
    return {"key": stored.key, "sha256": stored.sha256, "attempt": ctx.attempt}
