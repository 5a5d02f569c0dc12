"""The task base class every Hearth job runs on.

A job task takes a job id, claims the job with a conditional update
(``queued → running``; a second delivery finds nothing to claim and returns),
runs inside a database connection, reports progress, checks for cancellation,
records side effects under an idempotency key, retries only transient errors
with exponential backoff and jitter, and records a clear failure after the
last attempt. The job row is the truth; Celery results are not used.
"""
from __future__ import annotations

import datetime
import logging
import random

from celery import Task
from models.base import utcnow
from models.db import TRANSIENT_ERRORS, connection
from models.jobs import Job, JobEffect
from tasks.app import app
from tasks.runtime import runtime

log = logging.getLogger("hearth.tasks")


class Transient(Exception):
    """Raise (or wrap) to say: this failure may pass; try the job again later."""


class Cancelled(Exception):
    """Raised inside a job when its owner asked to stop it."""


class JobContext:
    """What a running job sees: its row, progress, cancellation and once-only side effects."""

    def __init__(self, job: Job, lease_seconds: int):
        self.job = job
        self.lease_seconds = lease_seconds

    @property
    def input(self) -> dict:
        return self.job.input or {}

    def progress(self, percent: int, message: str | None = None) -> None:
        """Record progress, renew the lease, and stop here if cancellation was requested."""
        now = utcnow()
        percent = max(0, min(100, int(percent)))
        rows = list(
            Job.update(progress_pct=percent, progress_message=message, updated_at=now,
                       lease_expires_at=now + datetime.timedelta(seconds=self.lease_seconds))
            .where((Job.id == self.job.id) & (Job.status == "running"))
            .returning(Job.cancel_requested_at).execute()
        )
        if not rows or rows[0].cancel_requested_at is not None:
            raise Cancelled()
        self.job.progress_pct, self.job.progress_message = percent, message
        publish_job_event(self.job, "job.progress")

    def once(self, step: str, effect):
        """Run ``effect()`` at most once per (job, step), returning its recorded result on repeats.

        ``effect`` receives the idempotency key, to hand to services that can
        deduplicate on their side too.
        """
        key = f"job:{self.job.id}:{step}"
        done = JobEffect.get_or_none(JobEffect.key == key)
        if done is not None:
            return done.result
        result = effect(key)
        JobEffect.insert(key=key, job=self.job.id, result=result).on_conflict_ignore().execute()
        return result


def publish_job_event(job: Job, type_: str) -> None:
    if job.owner_id is None:
        return
    try:
        runtime().events.publish(f"user:{job.owner_id}", type_, job.view(), also=(f"job:{job.id}",))
    except Exception:  # noqa: BLE001 - an event is a notification; the row is the truth
        log.warning("could not publish job event", extra={"job_id": str(job.id)}, exc_info=True)


def backoff_seconds(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * (2 ** attempt)))


class JobTask(Task):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    lease_seconds = 300
    transient_errors: tuple[type[BaseException], ...] = ()

    def __call__(self, job_id: str):
        with connection():
            job = Job.get_or_none(Job.id == job_id)
            if job is None or not job.claim(self.lease_seconds):
                log.info("nothing to claim", extra={"job_id": job_id, "task": self.name})
                return None
            job = Job.get_by_id(job_id)
            publish_job_event(job, "job.started")
            ctx = JobContext(job, self.lease_seconds)
            try:
                # No transaction around the whole run: progress must be visible while it runs.
                result = self.run(ctx)
            except Cancelled:
                return self._finish(job, "cancelled", error=None)
            except (Transient, *TRANSIENT_ERRORS, *self.transient_errors) as exc:
                return self._retry_or_fail(job, exc)
            except Exception as exc:  # noqa: BLE001 - recorded on the job, then re-raised for logs
                log.exception("job failed", extra={"job_id": job_id, "task": self.name})
                self._finish(job, "failed", error=_problem(exc, permanent=True))
                return None
            return self._finish(job, "succeeded", result=result if isinstance(result, dict) else {})

    def _finish(self, job: Job, status: str, *, result=None, error=None):
        now = utcnow()
        values = dict(status=status, result=result, error=error, finished_at=now, updated_at=now,
                      lease_expires_at=None)
        if status == "succeeded":
            values["progress_pct"] = 100
        updated = Job.update(**values).where((Job.id == job.id) & (Job.status == "running")).execute()
        if updated:
            publish_job_event(Job.get_by_id(job.id), f"job.{status}")
        return None

    def _retry_or_fail(self, job: Job, exc: BaseException):
        job = Job.get_by_id(job.id)
        if job.attempts >= job.max_attempts:
            log.warning("job failed after its last attempt", extra={"job_id": str(job.id)})
            return self._finish(job, "failed", error=_problem(exc, permanent=False))
        delay = backoff_seconds(job.attempts)
        now = utcnow()
        (Job.update(status="queued", updated_at=now, lease_expires_at=None,
                    run_after=now + datetime.timedelta(seconds=delay),
                    error=_problem(exc, permanent=False))
         .where((Job.id == job.id) & (Job.status == "running")).execute())
        log.info("transient failure; retrying", extra={"job_id": str(job.id), "delay": round(delay, 1)})
        from services.jobqueue import CeleryJobQueue
        CeleryJobQueue(self.app).submit(job, countdown=delay)
        return None


def _problem(exc: BaseException, *, permanent: bool) -> dict:
    # Only the exception's class reaches the client; details stay in the logs.
    return {
        "type": "https://hearth.dev/problems/job-failed",
        "title": "The job failed" if permanent else "The job failed after retries",
        "detail": getattr(exc, "public_detail", None) or type(exc).__name__,
    }


def job_task(*, transient=(), lease_seconds: int = 300, **options):
    """Register a function ``fn(ctx: JobContext) -> dict`` as the task for job kind ``<module>.<name>``."""
    def register(func):
        name = f"{func.__module__}.{func.__name__}"
        return app.task(base=JobTask, name=name, transient_errors=tuple(transient),
                        lease_seconds=lease_seconds, **options)(func)
    return register


__all__ = ["JobTask", "JobContext", "Transient", "Cancelled", "job_task", "backoff_seconds"]
