"""Import runs: one row per run of the Supabase import, with its counts and its checkpoint."""

from __future__ import annotations

import datetime
import uuid

from peewee import BooleanField, ForeignKeyField, TextField, UUIDField
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import DateTimeTZField, UUIDModel, utcnow
from models.db import db
from models.imports.steps import FAILED, KINDS, SKIPPED

# A run that did not succeed is taken up again by the next run with the same options.
RESUMABLE = ("running", "failed")


def empty_counts() -> dict:
    """One table's counts: every outcome, with skipped and failed broken down by reason."""
    counts: dict = {"read": 0, "reported": 0}
    for kind in KINDS:
        counts[kind] = {} if kind in (SKIPPED, FAILED) else 0
    return counts


def add_outcome(counts: dict, kind: str, reason: str | None, rows: int = 1) -> None:
    """Count ``rows`` rows with this outcome."""
    counts["read"] += rows
    if kind in (SKIPPED, FAILED):
        by_reason = counts[kind]
        by_reason[reason or "unknown"] = by_reason.get(reason or "unknown", 0) + rows
        counts["reported"] += rows
    else:
        counts[kind] += rows
        if reason:
            counts["reported"] += rows


def total(counts: dict, kind: str) -> int:
    value = counts.get(kind, 0)
    return sum(value.values()) if isinstance(value, dict) else int(value)


class ImportRun(UUIDModel):
    source = TextField(default="supabase")
    options = BinaryJSONField(default=dict)
    dry_run = BooleanField(default=False)
    status = TextField(default="running")
    job_id = UUIDField(null=True)
    created_by = ForeignKeyField(User, column_name="created_by", null=True, on_delete="SET NULL")
    started_at = DateTimeTZField(default=utcnow)
    finished_at = DateTimeTZField(null=True)
    snapshot_at = DateTimeTZField(null=True)
    counts = BinaryJSONField(default=dict)
    checkpoint = BinaryJSONField(default=dict)
    error = TextField(null=True)

    class Meta:
        table_name = "import_runs"

    @classmethod
    def start(cls, options: dict, *, dry_run: bool = False, job_id=None, created_by=None) -> ImportRun:
        return cls.create(id=uuid.uuid4(), options=options, dry_run=dry_run, job_id=job_id, created_by=created_by)

    @classmethod
    def unfinished(cls, options: dict) -> ImportRun | None:
        """The run to resume: the latest run with these options when it did not succeed (it was killed
        and is still ``running``, or it stopped on an error and is ``failed``); None otherwise."""
        latest = (
            cls.select()
            .where((cls.options == options) & (cls.dry_run == False))  # noqa: E712 - SQL
            .order_by(cls.started_at.desc())
            .first()
        )
        return latest if latest is not None and latest.status in RESUMABLE else None

    def resume(self, job_id=None) -> None:
        """Take the run up again (a failed run is ``running`` again, its problem cleared)."""
        self.status, self.error, self.finished_at = "running", None, None
        self.job_id = job_id or self.job_id
        ImportRun.update(status="running", error=None, finished_at=None, job_id=self.job_id).where(
            ImportRun.id == self.id
        ).execute()

    @classmethod
    def for_job(cls, job_id) -> ImportRun | None:
        return cls.get_or_none(cls.job_id == job_id)

    @classmethod
    def last_snapshot(cls) -> datetime.datetime | None:
        """The snapshot time of the latest finished (not dry) run: where ``--since last`` starts."""
        run = (
            cls.select(cls.snapshot_at)
            .where((cls.status == "succeeded") & (cls.dry_run == False) & cls.snapshot_at.is_null(False))  # noqa: E712
            .order_by(cls.snapshot_at.desc())
            .first()
        )
        return run.snapshot_at if run else None

    def save_progress(self) -> None:
        """Write the counts and checkpoint (inside the chunk's transaction)."""
        ImportRun.update(counts=self.counts, checkpoint=self.checkpoint, snapshot_at=self.snapshot_at).where(
            ImportRun.id == self.id
        ).execute()

    def finish(self, status: str, error: str | None = None) -> None:
        self.status, self.error, self.finished_at = status, error, utcnow()
        with db.atomic():
            ImportRun.update(
                status=status, error=error, finished_at=self.finished_at, counts=self.counts, checkpoint=self.checkpoint
            ).where(ImportRun.id == self.id).execute()

    @property
    def reported(self) -> int:
        return sum(int(c.get("reported", 0)) for c in (self.counts or {}).values())

    def view(self) -> dict:
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        return {
            "id": str(self.id),
            "status": self.status,
            "dry_run": self.dry_run,
            "options": self.options,
            "job_id": str(self.job_id) if self.job_id else None,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "snapshot_at": iso(self.snapshot_at),
            "tables": self.counts,
            "reported": self.reported,
            "error": self.error,
        }


__all__ = ["RESUMABLE", "ImportRun", "add_outcome", "empty_counts", "total"]
