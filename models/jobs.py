"""Jobs: the truth about every piece of background work.

A job is created in the same transaction as the domain rows it works on and
enqueued after the commit. Its status moves
``queued → running → succeeded | failed | cancelled`` (and ``running → queued``
when a worker died or a transient error is retried); every move is a
conditional update, so two workers can never both run one job.
"""
from __future__ import annotations

import datetime
import uuid

from peewee import CharField, ForeignKeyField, IntegerField, SmallIntegerField, TextField, fn
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


class Job(UUIDModel):
    kind = CharField()
    queue = CharField(default="default")
    owner = ForeignKeyField(User, column_name="owner_id", null=True, on_delete="CASCADE")
    status = CharField(default="queued")
    progress_pct = SmallIntegerField(default=0)
    progress_message = TextField(null=True)
    input = BinaryJSONField(default=dict)
    result = BinaryJSONField(null=True)
    error = BinaryJSONField(null=True)
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

    class Meta:
        table_name = "jobs"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

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
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "cancel_requested": self.cancel_requested_at is not None,
        }

    def claim(self, lease_seconds: int) -> bool:
        """Move ``queued → running`` for this worker; False when someone else has it or it ended."""
        now = utcnow()
        lease = now + datetime.timedelta(seconds=lease_seconds)
        claimed = (
            Job.update(status="running", started_at=fn.COALESCE(Job.started_at, now),
                       attempts=Job.attempts + 1, lease_expires_at=lease, updated_at=now)
            .where((Job.id == self.id) & (Job.status == "queued") & Job.cancel_requested_at.is_null())
            .execute()
        )
        return claimed == 1


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


__all__ = ["Job", "JobEffect", "STATUSES", "FINISHED", "new_job_id"]
