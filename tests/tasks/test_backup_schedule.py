"""The scheduled backup: off without BACKUP_TARGET, one maintenance job when BACKUP_SCHEDULE says it is due,
and the job runs ``hearth backup`` for real."""

from __future__ import annotations

import dataclasses
import datetime
import json

import pytest

from models.jobs import Job
from settings import SettingsError
from settings.backup_schedule import parse_backup_schedule
from tasks.backups import KIND, due, run_backup, schedule_backup
from tasks.runtime import init_runtime
from tests.conftest import make_settings

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_interval_is_due_once_it_has_passed_since_the_last_backup():
    every_6h = parse_backup_schedule("6h")
    assert every_6h.interval == 6 * 3600
    assert due(every_6h, None, at("2026-12-07T10:00:00"))
    assert not due(every_6h, at("2026-12-07T05:00:01"), at("2026-12-07T11:00:00"))
    assert due(every_6h, at("2026-12-07T05:00:00"), at("2026-12-07T11:00:00"))


def test_a_cron_line_is_due_once_its_next_time_after_the_last_backup_has_come():
    nightly = parse_backup_schedule("15 3 * * *")
    last = at("2026-12-07T03:15:10")
    assert not due(nightly, last, at("2026-12-07T23:59:00"))
    assert not due(nightly, last, at("2026-12-08T03:14:00"))
    assert due(nightly, last, at("2026-12-08T03:15:30"))


@pytest.mark.parametrize("text", ["", "5s", "often", "* * *", "61 * * * * *"])
def test_a_schedule_that_says_nothing_clear_is_refused_at_start(text, database, tmp_path):
    with pytest.raises(SettingsError, match="BACKUP_SCHEDULE"):
        make_settings(database, tmp_path, backup_schedule=text)


def _runtime(settings, redis, queue, **changes):
    return init_runtime(dataclasses.replace(settings, **changes), redis=redis, init_db=False, jobs=queue)


def test_without_a_target_no_backup_is_scheduled(runtime, queue):
    assert schedule_backup() == {"enabled": False}
    assert Job.select().where(Job.kind == KIND).count() == 0
    assert queue.submitted == []


def test_a_due_backup_is_one_maintenance_job_and_the_next_tick_adds_none(settings, redis, queue, tmp_path):
    _runtime(settings, redis, queue, backup_target=str(tmp_path / "backups"), backup_schedule="1d")
    first = schedule_backup()
    assert first["created"] is True
    job = Job.get_by_id(first["job_id"])
    assert (job.kind, job.queue, job.status) == (KIND, "maintenance", "queued")
    assert queue.submitted == [str(job.id)]
    assert schedule_backup() == {"enabled": True, "created": False}
    assert Job.select().where(Job.kind == KIND).count() == 1


def test_the_job_writes_a_complete_backup_and_keeps_backup_keep(settings, redis, queue, tmp_path):
    target = tmp_path / "backups"
    _runtime(settings, redis, queue, backup_target=str(target), backup_keep=1)
    for _ in range(2):
        job_id = Job.create(kind=KIND, queue="maintenance", input={}).id
        run_backup(str(job_id))
        job = Job.get_by_id(job_id)
        assert job.status == "succeeded", job.error
    [folder] = target.iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert job.result["backup"] == folder.name == manifest["name"]
    assert job.result["tables"] == len(manifest["tables"]) and job.result["migration_head"].startswith("00")
    assert job.result["target"] == str(target)
