"""The scheduled backup: a beat tick decides whether one is due; a ``backups.run_backup`` job makes it.

Off while ``BACKUP_TARGET`` is empty. ``BACKUP_SCHEDULE`` is an interval since the last scheduled
backup started, or a cron line (UTC); the job rows are the record of when that was. One backup job
is active at a time (its ``dedupe_key``), on the ``maintenance`` queue.

The job runs the ``hearth backup`` command as a child process, the same command an operator runs
by hand: the workers never hold a dump in memory, and a backup that outgrows a worker's time limit
is moved to a cron line calling the command unchanged (docs/operations.md).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import subprocess
import sys

from models.base import utcnow
from models.db import connection
from models.jobs import Job
from settings import ROOT, Settings
from settings.backup_schedule import BackupSchedule, parse_backup_schedule
from tasks.app import app
from tasks.base import JobContext, job_task
from tasks.runtime import runtime

log = logging.getLogger("hearth.backups")

KIND = "backups.run_backup"
# Below the task's soft limit, itself below the broker's visibility timeout (celeryconfig).
COMMAND_TIMEOUT = 2900


class BackupFailed(Exception):
    public_detail = "The backup command failed; the worker's log has its message."


def due(schedule: BackupSchedule, last: datetime.datetime | None, now: datetime.datetime) -> bool:
    """Whether a backup should start at ``now`` when the previous scheduled one started at ``last``."""
    if last is None:
        return True
    if schedule.interval is not None:
        return (now - last).total_seconds() >= schedule.interval
    from celery.schedules import crontab

    minute, hour, day_of_month, month, day_of_week = schedule.cron or ("*",) * 5
    cron = crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month,
        day_of_week=day_of_week,
        nowfun=lambda: now,
    )
    return cron.remaining_estimate(last).total_seconds() <= 0


@app.task(name="tasks.backups.schedule_backup", acks_late=True, ignore_result=True)
def schedule_backup() -> dict:
    """Beat, every minute: create the backup job when ``BACKUP_SCHEDULE`` says one is due."""
    settings = runtime().settings
    if not settings.backup_target:
        return {"enabled": False}
    now = utcnow()
    with connection() as db, db.atomic():
        last = Job.select(Job.created_at).where(Job.kind == KIND).order_by(Job.created_at.desc()).first()
        if not due(parse_backup_schedule(settings.backup_schedule), last.created_at if last else None, now):
            return {"enabled": True, "created": False}
        job, created = Job.create_or_get_active(
            dedupe_key=KIND, kind=KIND, queue="maintenance", max_attempts=2, input={}
        )
    if created:
        log.info("backup due", extra={"job_id": str(job.id)})
    return {"enabled": True, "created": created, "job_id": str(job.id)}


def command_environment(settings: Settings) -> dict[str, str]:
    """The worker's environment with the settings it runs on, so the command backs up the same Hearth."""
    env = dict(os.environ)
    env.update(
        HEARTH_ENV=settings.env,
        HEARTH_VAR_DIR=str(settings.var_dir),
        DATABASE_URL=settings.database_url,
        STORAGE_URL=settings.storage_url,
        PUBLIC_URL=settings.public_url,
    )
    if settings.aws_access_key_id:
        env.update(AWS_ACCESS_KEY_ID=settings.aws_access_key_id, AWS_SECRET_ACCESS_KEY=settings.aws_secret_access_key)
    return env


@job_task(soft_time_limit=COMMAND_TIMEOUT + 100, time_limit=COMMAND_TIMEOUT + 200)
def run_backup(ctx: JobContext) -> dict:
    """``hearth backup BACKUP_TARGET --keep BACKUP_KEEP [--with-objects]``; its manifest's summary is the result."""
    settings = runtime().settings
    if not settings.backup_target:
        return {"skipped": "BACKUP_TARGET is not set"}
    ctx.progress(5, "Dumping the database")
    command = [sys.executable, "-m", "ops.cli", "backup", settings.backup_target, "--json"]
    command += ["--keep", str(settings.backup_keep)]
    if settings.backup_with_objects:
        command.append("--with-objects")
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=command_environment(settings),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupFailed("the backup command ran out of time") from None
    if done.returncode != 0:
        log.error("backup failed", extra={"status": done.returncode, "stderr": done.stderr.strip()[-2000:]})
        raise BackupFailed(f"hearth backup exited with {done.returncode}")
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    manifest = outcome["manifest"]
    return {
        "backup": outcome["name"],
        "target": outcome["target"],
        "tables": len(manifest["tables"]),
        "rows": sum(manifest["tables"].values()),
        "objects": manifest["objects"],
        "migration_head": manifest["migration_head"],
        "seconds": round(outcome["seconds"], 1),
    }
