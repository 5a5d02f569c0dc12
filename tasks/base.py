"""The task base class every Hearth job runs on.

A job task takes a job id and claims the job with a conditional update
(``queued → running``, ``attempts`` + 1); a second delivery of the same
message finds nothing to claim and returns. The run then holds a lease on the
row: ``progress()`` and the process's lease keeper renew it, and the beat sweep
(``tasks.jobs.sweep_jobs``) requeues a job whose lease ran out because its
worker died. Every write of the run is fenced by its attempt number, so a run
that lost its lease can no longer change the job.

Side effects go through ``ctx.once(step, effect)``: recorded under the key
``job:{id}:{step}`` in the same transaction as the effect's own database
writes, so a redelivered or retried job never repeats them. Only errors known
to be transient are retried, with exponential backoff and full jitter; after
the last attempt the job is failed with a problem document. The job row is
the truth; Celery results are not used.

Every task run, job or beat task, is a submission scope (``HearthTask``): the
jobs it creates go to the runtime's queue once their transaction commits
(``models.job_submission``), never by hand.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time

import structlog
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from models.base import utcnow
from models.db import TRANSIENT_ERRORS, connection, db
from models.job_submission import JobSubmission, jobs_submitted_after_commit
from models.jobs import Job, JobEffect
from services import metrics
from services.jobqueue import REQUEST_ID_HEADER
from tasks.app import app
from tasks.runtime import runtime

log = logging.getLogger("hearth.tasks")


class Transient(Exception):
    """Raise (or wrap) to say: this failure may pass; try the job again later."""


class Cancelled(Exception):
    """Raised inside a job when its owner asked to stop it."""


class LeaseLost(Exception):
    """The run no longer owns its job (its lease expired and the job moved on); it must stop."""


# Written by hand: every once-only step runs both (the query builder cost more than the statements).
_CLAIM_EFFECT = (
    "INSERT INTO job_effects (key, job_id, created_at, result) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT DO NOTHING RETURNING key"
)
_EFFECT_RESULT = "UPDATE job_effects SET result = %s WHERE key = %s"
# The same claim for a step whose commit need not wait for the disk (``once(..., durable=False)``).
_CLAIM_EFFECT_LAZY = (
    "WITH no_fsync AS (SELECT set_config('synchronous_commit', 'off', true))"
    " INSERT INTO job_effects (key, job_id, created_at, result) SELECT %s, %s, %s, %s::jsonb FROM no_fsync"
    " ON CONFLICT DO NOTHING RETURNING key"
)


class JobContext:
    """What a running job sees: its row, progress, cancellation and once-only side effects."""

    def __init__(self, job: Job, lease_seconds: float):
        self.job = job
        self.attempt = job.attempts
        self.lease_seconds = lease_seconds
        self._cancel_requested = threading.Event()
        self._lost = threading.Event()

    @property
    def input(self) -> dict:
        return self.job.input or {}

    def progress(self, percent: int, message: str | None = None) -> None:
        """Record progress, renew the lease, and stop here (``Cancelled``) if cancellation was requested."""
        percent = max(0, min(100, int(percent)))
        ours, cancel = Job.renew(
            self.job.id, self.attempt, self.lease_seconds, progress_pct=percent, progress_message=message
        )
        if not ours:
            raise LeaseLost()
        if cancel:
            raise Cancelled()
        self.job.progress_pct, self.job.progress_message = percent, message
        publish_job_event(self.job, "job.progress")

    def check_cancelled(self) -> None:
        """Stop here if the heartbeat saw a cancellation request (no database round trip)."""
        if self._lost.is_set():
            raise LeaseLost()
        if self._cancel_requested.is_set():
            raise Cancelled()

    def effect_key(self, step: str) -> str:
        """The key ``once(step, ...)`` records under, and hands to the effect (a provider's idempotency key)."""
        return f"job:{self.job.id}:{step}"

    def recorded(self, step: str) -> tuple[bool, object]:
        """``(True, result)`` when ``once(step, ...)`` has committed its record, else ``(False, None)``."""
        effect = JobEffect.get_or_none(JobEffect.key == self.effect_key(step))
        return (True, effect.result) if effect is not None else (False, None)

    def once(self, step: str, effect, *, durable: bool = True, result: dict | None = None):
        """Run ``effect(key)`` at most once per (job, step); a repeat returns the recorded result.

        The record and the effect share one transaction: database writes the
        effect makes commit with the record or not at all. For effects outside
        the database (an email, a stored file), ``key`` is handed to the service
        so it can deduplicate too: the record commits only after the effect
        returned, so a crash in between means the effect runs again with the
        same key. Do not report progress from inside ``effect``.

        ``durable=False`` commits without waiting for the disk (as the job's own
        claim and finish do): a worker that dies still leaves the record, but a
        crash of the database server within a fraction of a second may lose it,
        and the step then runs again. Only for a step whose repeat is harmless:
        the effect's writes are replays and its outside call is answered by key.

        ``result``: the step's result when the caller knows it before the effect runs
        (it follows from what the caller holds, not from the effect): recorded with the
        claim, one statement fewer; what ``effect`` returns is then not recorded.
        """
        key = self.effect_key(step)
        known = None if result is None else JobEffect.result.db_value(result)
        with db.atomic():
            # A concurrent run with the same key waits here until the first commits.
            claim = _CLAIM_EFFECT if durable else _CLAIM_EFFECT_LAZY
            if not db.execute_sql(claim, (key, self.job.id, utcnow(), known)).fetchone():
                return JobEffect.get_by_id(key).result
            if known is not None:
                effect(key)
                return result
            result = effect(key)
            db.execute_sql(_EFFECT_RESULT, (JobEffect.result.db_value(result), key))
        return result


class _LeaseKeeper:
    """One thread per worker process that renews the leases of the jobs running in it.

    A thread per job cost more than a short job itself (start and join on every
    run); one keeper serves every run of the process. It also notices
    cancellation between progress points. Started on first use, so it lives in
    the forked pool process, not in the parent.
    """

    TICK = 0.5

    def __init__(self):
        self._runs: dict[int, tuple[JobContext, float]] = {}
        self._lock = threading.Lock()
        self._pid = None

    def add(self, ctx: JobContext) -> None:
        with self._lock:
            self._runs[id(ctx)] = (ctx, time.monotonic() + self._interval(ctx))
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="job-lease-keeper", daemon=True).start()

    def remove(self, ctx: JobContext) -> None:
        with self._lock:
            self._runs.pop(id(ctx), None)

    @staticmethod
    def _interval(ctx: JobContext) -> float:
        return max(0.5, ctx.lease_seconds / 3)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                due = [ctx for ctx, at in self._runs.values() if at <= now]
                for ctx in due:
                    self._runs[id(ctx)] = (ctx, now + self._interval(ctx))
            for ctx in due:
                self._renew(ctx)

    @staticmethod
    def _renew(ctx: JobContext) -> None:
        try:
            with connection():
                ours, cancel = Job.renew(ctx.job.id, ctx.attempt, ctx.lease_seconds)
        except Exception:
            log.warning("job lease renewal failed", extra={"job_id": str(ctx.job.id)}, exc_info=True)
            return
        if cancel:
            ctx._cancel_requested.set()
        if not ours:
            ctx._lost.set()


_leases = _LeaseKeeper()


def publish_job_event(job: Job, type_: str) -> bool:
    """Publish a job change; False when it could not be (the row stays the truth)."""
    try:
        runtime().events.publish_job(job, type_)
    except Exception:
        log.warning("could not publish job event", extra={"job_id": str(job.id), "event": type_}, exc_info=True)
        return False
    return True


def publish_final_job_event(job: Job) -> bool:
    """Publish a finished job's final event (``job.<status>``); if Redis is away, leave it to the sweep.

    Marks the row (``final_event_pending``) when publishing failed, so the sweep
    publishes the final state once Redis is back and a resuming client sees it
    without polling.
    """
    if publish_job_event(job, f"job.{job.status}"):
        return True
    try:
        Job.mark_final_event_pending(job.id)
    except Exception:
        log.warning("could not mark a job's final event for the sweep", extra={"job_id": str(job.id)}, exc_info=True)
    return False


def backoff_seconds(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * (2**attempt)))  # noqa: S311 - spreads retries in time, guards no secret


def _submit_to_runtime_queue(job: Job) -> bool:
    # The runtime is looked up when the job is handed over (after its commit), not when a scope opens.
    return runtime().jobs.submit(job)


def submitting_jobs() -> JobSubmission:
    """The submission scope of one task run: jobs it creates go to the runtime's queue after their commit.

    Their owner hears ``job.queued`` first when the job is one it follows (``Job.announced``).
    """
    return jobs_submitted_after_commit(
        _submit_to_runtime_queue, announce=lambda job: publish_job_event(job, "job.queued")
    )


class HearthTask(Task):
    """The base of every Hearth task (``tasks.app``): each run is a submission scope (``submitting_jobs``)."""

    def __call__(self, *args, **kwargs):
        with submitting_jobs():
            return super().__call__(*args, **kwargs)


class JobTask(HearthTask):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    # None: settings.job_lease_seconds.
    lease_seconds: float | None = None
    transient_errors: tuple[type[BaseException], ...] = ()

    def __call__(self, job_id: str):
        # The run's log lines carry the job and the request that caused it (the row is the truth,
        # the task header says it before the claim); jobs the run creates inherit the request id.
        request_id = getattr(self.request, REQUEST_ID_HEADER, None)
        context = {"job_id": str(job_id), "job_kind": self.kind, **({"request_id": request_id} if request_id else {})}
        with structlog.contextvars.bound_contextvars(**context):
            started = time.perf_counter()
            try:
                outcome = self._run_job(job_id)
            finally:
                if not request_id:  # bound from the row: the next task of this process must not inherit it
                    structlog.contextvars.unbind_contextvars("request_id")
            if outcome is not None:
                metrics.observe_job(self.kind, outcome, time.perf_counter() - started)
        return None

    @property
    def kind(self) -> str:
        return self.name.removeprefix("tasks.")

    def _run_job(self, job_id: str) -> str | None:
        """Claim and run the job; how the run ended (``metrics.observe_job``), None when nothing ran."""
        lease = self.lease_seconds or runtime().settings.job_lease_seconds
        with submitting_jobs(), connection():
            job = Job.claim_by_id(job_id, lease)
            if job is None:
                log.info("nothing to claim", extra={"task": self.name})
                return None
            if job.request_id:
                structlog.contextvars.bind_contextvars(request_id=job.request_id)
            publish_job_event(job, "job.started")
            ctx = JobContext(job, lease)
            _leases.add(ctx)
            try:
                try:
                    # No transaction around the whole run: progress must be visible while it runs.
                    result = self.run(ctx)
                finally:
                    _leases.remove(ctx)
            except Cancelled:
                return self._finish(ctx, "cancelled")
            except LeaseLost:
                log.warning("job lease lost; another run owns it now", extra={"task": self.name})
                return "lost"
            except (Transient, *TRANSIENT_ERRORS, *self.transient_errors) as exc:
                return self._retry_or_fail(ctx, exc)
            except SoftTimeLimitExceeded as exc:
                log.warning("job hit its time limit", extra={"task": self.name})
                return self._finish(ctx, "failed", error=_problem(exc, permanent=True, detail="The job took too long."))
            except Exception as exc:
                log.exception("job failed", extra={"task": self.name})
                return self._finish(ctx, "failed", error=_problem(exc, permanent=True))
            return self._finish(ctx, "succeeded", result=result if isinstance(result, dict) else {})

    def _finish(self, ctx: JobContext, status: str, *, result=None, error=None) -> str:
        job = Job.finish(ctx.job.id, ctx.attempt, status, result=result, error=error)
        if job is None:
            return "lost"
        publish_final_job_event(job)
        return status

    def _retry_or_fail(self, ctx: JobContext, exc: BaseException) -> str:
        if ctx.attempt >= ctx.job.max_attempts:
            log.warning("job failed after its last attempt")
            return self._finish(ctx, "failed", error=_problem(exc, permanent=False))
        delay = backoff_seconds(ctx.attempt)
        job = Job.retry_later(ctx.job.id, ctx.attempt, delay, _problem(exc, permanent=False))
        if job is None:
            return "lost"
        log.info("transient failure; retrying", extra={"delay": round(delay, 1), "error": type(exc).__name__})
        publish_job_event(job, "job.retrying")
        runtime().jobs.submit(job, countdown=delay)
        return "retried"


def _problem(exc: BaseException, *, permanent: bool, detail: str | None = None) -> dict:
    # Only the exception's class (or a detail written for users) reaches the client.
    return {
        "type": "https://hearth.dev/problems/job-failed",
        "title": "The job failed" if permanent else "The job failed after retries",
        "detail": detail or getattr(exc, "public_detail", None) or type(exc).__name__,
    }


def job_task(*, transient=(), lease_seconds: float | None = None, name: str | None = None, **options):
    """Register a function ``fn(ctx: JobContext) -> dict`` as the task for job kind ``<module>.<name>``.

    ``tasks/exports.py``'s ``build_export`` is the task ``tasks.exports.build_export`` of
    kind ``exports.build_export``; ``name`` overrides the task name (kind: without ``tasks.``).
    """

    def register(func):
        task_name = name or f"{func.__module__}.{func.__name__}"
        return app.task(
            base=JobTask, name=task_name, transient_errors=tuple(transient), lease_seconds=lease_seconds, **options
        )(func)

    return register


__all__ = [
    "Cancelled",
    "HearthTask",
    "JobContext",
    "JobTask",
    "LeaseLost",
    "Transient",
    "backoff_seconds",
    "job_task",
    "publish_final_job_event",
    "publish_job_event",
    "submitting_jobs",
]
