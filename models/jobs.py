"""Jobs: the truth about every piece of background work.

A job is created in the same transaction as the domain rows it works on and
enqueued after the commit (``models.job_submission``). Its status moves
``queued → running → succeeded | failed | cancelled`` (and ``running → queued``
when a worker died or a transient error is retried); every move is a
conditional update, so two workers can never both run one job.

A claim increments ``attempts``; every later write of the run names that
attempt (a fencing token), so a worker that lost its lease (it stalled, the
sweep gave the job to another worker) can no longer change the row.

``error`` is set on failed jobs only. A job going back to the queue (a
transient failure, or its worker died) keeps why in ``last_error``, so a
queued job never shows an error beside its status. ``final_event_pending``
marks a finished job whose final event could not be published (Redis was
away); the sweep publishes it from the row.
"""

from __future__ import annotations

import datetime
import uuid

import msgspec
import structlog
from peewee import BooleanField, Case, CharField, ForeignKeyField, IntegerField, SmallIntegerField, TextField, fn
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
from models.db import db
from models.job_submission import submit_after_commit

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")


def _seconds(value: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=value)


# A run's own state changes (claim, finish) are single statements that commit
# without waiting for fsync (``set_config(..., true)`` lasts to the end of the
# statement's transaction). If the database crashes in the moment after such a
# commit, the change can be lost: the job then looks queued, or running with a
# lease, as before; the sweep runs it again, and side effects recorded by
# ``JobContext.once`` (committed synchronously) are not repeated. Waiting for
# the disk on every claim and finish costs milliseconds per job for no
# guarantee gained. They are hand-written because they run for every job and
# building them through the query builder cost more than running them.
# The turn creators of one ``dedupe_key`` take (``create_or_get_active``), held until the outermost commit.
DEDUPE_TURN = "pg_advisory_xact_lock(hashtextextended('jobs:' || %s, 0))"
_CLAIM = """
WITH no_fsync AS (SELECT set_config('synchronous_commit', 'off', true))
UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, %s), attempts = attempts + 1,
       lease_expires_at = %s, updated_at = %s, run_after = NULL
FROM no_fsync
WHERE id = %s AND status = 'queued' AND cancel_requested_at IS NULL
RETURNING jobs.*
"""
_FINISH = """
WITH no_fsync AS (SELECT set_config('synchronous_commit', 'off', true))
UPDATE jobs SET status = %s, result = %s::jsonb, error = %s::jsonb, finished_at = %s, updated_at = %s,
       lease_expires_at = NULL, last_error = NULL, progress_pct = CASE WHEN %s THEN 100 ELSE progress_pct END
FROM no_fsync
WHERE id = %s AND status = 'running' AND attempts = %s
RETURNING jobs.*
"""


def _json(value) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


# Job kinds whose result names a stored file its owner downloads through a signed link.
# The link is signed when the owner reads the job (``GET /v1/jobs/{id}``), never stored
# on the row nor put in an event. Rows written before that rule may still hold one.
SIGNED_LINK_KEYS = ("download_url", "expires_at")
DOWNLOADABLE_KINDS = frozenset({"exports.build_export"})
# Work a user started and follows from a 202 (the diagnostic, an export, a scan, an index rebuild):
# its owner hears ``job.queued`` just before it is submitted, so before any event of its run.
ANNOUNCED_KINDS = frozenset({"jobs.selftest", "exports.build_export", "uploads.scan_upload", "search.rebuild_index"})

WORKER_LOST_PROBLEM = {
    "type": "https://hearth.dev/problems/job-failed",
    "title": "The worker running the job stopped",
    "detail": "The job was put back in the queue.",
}


def current_request_id() -> str | None:
    """The id of the request (or of the job run) this thread works for, as bound in its log context."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


class Job(UUIDModel):
    kind = CharField()
    queue = CharField(default="default")
    owner = ForeignKeyField(User, column_name="owner_id", null=True, on_delete="CASCADE")
    owner_id: uuid.UUID | None  # peewee's accessor for the key's own column: no query
    status = CharField(default="queued")
    progress_pct = SmallIntegerField(default=0)
    progress_message = TextField(null=True)
    input = BinaryJSONField(default=dict)
    result = BinaryJSONField(null=True)
    error = BinaryJSONField(null=True)
    last_error = BinaryJSONField(null=True)
    final_event_pending = BooleanField(default=False)
    attempts = IntegerField(default=0)
    max_attempts = IntegerField(default=5)
    run_after = DateTimeTZField(null=True)
    lease_expires_at = DateTimeTZField(null=True)
    cancel_requested_at = DateTimeTZField(null=True)
    enqueued_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    started_at = DateTimeTZField(null=True)
    finished_at = DateTimeTZField(null=True)
    updated_at = DateTimeTZField(default=utcnow)
    # At most one queued/running job per key (migration 0003's partial unique index).
    dedupe_key = TextField(null=True)
    # The request that caused it (``X-Request-ID``), or the job run that created it: one id
    # finds a user's action in the web's and the worker's log lines (docs/operations.md).
    request_id = CharField(null=True, default=current_request_id)

    class Meta:
        table_name = "jobs"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def announced(self) -> bool:
        """Whether its owner hears ``job.queued`` when it is submitted (``ANNOUNCED_KINDS``)."""
        return self.kind in ANNOUNCED_KINDS

    def view(self) -> dict:
        """The job as its owner sees it (``GET /v1/jobs/{id}`` and job events)."""
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        return {
            "id": str(self.id),
            "kind": self.kind,
            "status": self.status,
            "progress": {"percent": self.progress_pct, "message": self.progress_message},
            "result": self.result,
            "error": self.error,
            "last_error": self.last_error,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "cancel_requested": self.cancel_requested_at is not None,
            "request_id": self.request_id,
        }

    def event_view(self) -> dict:
        """``view()`` as events carry it: never a signed link (see ``SIGNED_LINK_KEYS``)."""
        view = self.view()
        if isinstance(self.result, dict) and any(key in self.result for key in SIGNED_LINK_KEYS):
            view["result"] = {k: v for k, v in self.result.items() if k not in SIGNED_LINK_KEYS}
        return view

    # --- creation --------------------------------------------------------------------

    def save(self, force_insert: bool = False, only=None):
        """``Job.create`` inserts through here: a new job is submitted once its transaction commits."""
        inserting = force_insert or self._pk is None
        rows = super().save(force_insert=force_insert, only=only)
        if inserting:
            submit_after_commit(self)
        return rows

    @classmethod
    def create_or_get_active(cls, *, dedupe_key: str, **fields) -> tuple[Job, bool]:
        """Create a job unless one with ``dedupe_key`` is queued or running; returns (job, created).

        May sit inside the caller's transaction. Creators of the same key take
        turns (a transaction-scoped advisory lock, held until the outermost
        commit), so a concurrent one finds the job the other created. Without
        that turn, an insert refused by the unique index could find no active
        job either, when the one holding the key finished in between.
        """
        with db.atomic():
            db.execute_sql(f"SELECT {DEDUPE_TURN}", (dedupe_key,))
            existing = cls.get_or_none((cls.dedupe_key == dedupe_key) & cls.status.in_(ACTIVE))
            if existing is not None:
                return existing, False
            return cls.create(dedupe_key=dedupe_key, **fields), True

    # --- one run, fenced by its attempt number ---------------------------------------

    @classmethod
    def claim_by_id(cls, job_id, lease_seconds: float) -> Job | None:
        """Claim a queued job (``attempts`` + 1, lease set); the claimed row, or None."""
        now = utcnow()
        rows = list(cls.raw(_CLAIM, now, now + _seconds(lease_seconds), now, job_id))
        return rows[0] if rows else None

    @classmethod
    def _run_is(cls, job_id, attempt: int):
        return (cls.id == job_id) & (cls.status == "running") & (cls.attempts == attempt)

    @classmethod
    def renew(cls, job_id, attempt: int, lease_seconds: float, **progress) -> tuple[bool, bool]:
        """Extend the lease (and record ``progress_pct``/``progress_message`` if given).

        Returns ``(still_ours, cancel_requested)``.
        """
        now = utcnow()
        # Once cancellation was requested the run stops here: its progress is not recorded.
        progress = {
            name: Case(None, [(cls.cancel_requested_at.is_null(), value)], getattr(cls, name))
            for name, value in progress.items()
        }
        rows = list(
            cls.update(lease_expires_at=now + _seconds(lease_seconds), updated_at=now, **progress)
            .where(cls._run_is(job_id, attempt))
            .returning(cls.cancel_requested_at)
            .execute()
        )
        if not rows:
            return False, False
        return True, rows[0].cancel_requested_at is not None

    @classmethod
    def finish(cls, job_id, attempt: int, status: str, *, result=None, error=None) -> Job | None:
        """End the run as ``status``; the updated row, or None when the run is no longer ours."""
        now = utcnow()
        rows = list(
            cls.raw(_FINISH, status, _json(result), _json(error), now, now, status == "succeeded", job_id, attempt)
        )
        return rows[0] if rows else None

    @classmethod
    def retry_later(cls, job_id, attempt: int, delay: float, error: dict) -> Job | None:
        """Put the run back in the queue to start after ``delay`` seconds (a transient failure).

        ``error`` is kept as ``last_error``: the job is not failed, so its ``error`` stays empty.
        """
        now = utcnow()
        rows = list(
            cls.update(
                status="queued",
                lease_expires_at=None,
                run_after=now + _seconds(delay),
                enqueued_at=now,
                updated_at=now,
                error=None,
                last_error=error,
            )
            .where(cls._run_is(job_id, attempt))
            .returning(cls)
            .execute()
        )
        return rows[0] if rows else None

    # --- the owner's request to stop ---------------------------------------------------

    @classmethod
    def request_cancel(cls, job_id) -> Job | None:
        """Cancel a queued job at once, or ask a running one to stop at its next progress point.

        Returns the updated row, or None when the job had already finished.
        """
        now = utcnow()
        queued = cls.status == "queued"
        rows = list(
            cls.update(
                status=Case(None, [(queued, "cancelled")], cls.status),
                finished_at=Case(None, [(queued, now)], cls.finished_at),
                cancel_requested_at=fn.COALESCE(cls.cancel_requested_at, now),
                updated_at=now,
            )
            .where((cls.id == job_id) & cls.status.in_(ACTIVE))
            .returning(cls)
            .execute()
        )
        return rows[0] if rows else None

    # --- the beat sweep -------------------------------------------------------------------

    @classmethod
    def _pick(cls, condition, limit: int):
        # SKIP LOCKED lets two sweeps (or a sweep and a claim) pass each other.
        return cls.select(cls.id).where(condition).limit(limit).for_update(skip_locked=True)

    @classmethod
    def requeue_lost(cls, now: datetime.datetime, limit: int = 500) -> list[Job]:
        """Running jobs whose lease expired (their worker died) and that may be tried again → queued."""
        lost = (cls.status == "running") & (cls.lease_expires_at < now) & (cls.attempts < cls.max_attempts)
        return list(
            cls.update(
                status="queued",
                lease_expires_at=None,
                enqueued_at=now,
                updated_at=now,
                error=None,
                last_error=WORKER_LOST_PROBLEM,
            )
            .where(cls.id.in_(cls._pick(lost, limit)) & lost)
            .returning(cls)
            .execute()
        )

    @classmethod
    def fail_lost(cls, now: datetime.datetime, error: dict, limit: int = 500) -> list[Job]:
        """Running jobs whose lease expired on their last attempt → failed."""
        lost = (cls.status == "running") & (cls.lease_expires_at < now) & (cls.attempts >= cls.max_attempts)
        return list(
            cls.update(
                status="failed", lease_expires_at=None, finished_at=now, updated_at=now, error=error, last_error=None
            )
            .where(cls.id.in_(cls._pick(lost, limit)) & lost)
            .returning(cls)
            .execute()
        )

    @classmethod
    def claim_stale(cls, now: datetime.datetime, older_than: float, limit: int = 500, skip_queues=()) -> list[Job]:
        """Queued jobs that should have started ``older_than`` seconds ago; marks them enqueued now.

        "Should have started" is the latest of creation, last enqueue and
        ``run_after`` (a retry's backoff), so a job waiting out its backoff is
        left alone. Jobs of ``skip_queues`` (queues with messages waiting) are
        left alone too: they may just be waiting their turn.
        """
        due = fn.GREATEST(fn.COALESCE(cls.enqueued_at, cls.created_at), fn.COALESCE(cls.run_after, cls.created_at))
        stale = (cls.status == "queued") & cls.cancel_requested_at.is_null() & (due < now - _seconds(older_than))
        if skip_queues:
            stale &= cls.queue.not_in(list(skip_queues))
        return list(
            cls.update(enqueued_at=now, updated_at=now)
            .where(cls.id.in_(cls._pick(stale, limit)) & stale)
            .returning(cls)
            .execute()
        )

    @classmethod
    def mark_final_event_pending(cls, job_id) -> None:
        """The final event of this finished job could not be published: the sweep will."""
        cls.update(final_event_pending=True).where((cls.id == job_id) & cls.status.in_(FINISHED)).execute()

    @classmethod
    def with_final_event_pending(cls, limit: int = 500) -> list[Job]:
        """Finished jobs whose final event is still to be published, oldest first."""
        return list(
            cls.select()
            .where(cls.final_event_pending & cls.status.in_(FINISHED))
            .order_by(cls.finished_at)
            .limit(limit)
        )

    @classmethod
    def final_event_published(cls, job_id) -> None:
        cls.update(final_event_pending=False).where(cls.id == job_id).execute()

    @classmethod
    def finished_before(cls, before: datetime.datetime, limit: int = 500) -> list[Job]:
        return list(
            cls.select()
            .where(cls.status.in_(FINISHED) & (cls.finished_at < before))
            .order_by(cls.finished_at)
            .limit(limit)
        )


class JobEffect(BaseModel):
    """A side effect a job performed, under its idempotency key (job + step)."""

    key = TextField(primary_key=True)
    job = ForeignKeyField(Job, column_name="job_id", null=True, on_delete="SET NULL")
    created_at = DateTimeTZField(default=utcnow)
    result = BinaryJSONField(null=True)

    class Meta:
        table_name = "job_effects"


def new_job_id() -> uuid.UUID:
    return uuid.uuid4()


__all__ = [
    "ACTIVE",
    "ANNOUNCED_KINDS",
    "DEDUPE_TURN",
    "DOWNLOADABLE_KINDS",
    "FINISHED",
    "SIGNED_LINK_KEYS",
    "STATUSES",
    "WORKER_LOST_PROBLEM",
    "Job",
    "JobEffect",
    "new_job_id",
]
