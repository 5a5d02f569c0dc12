"""The scan task: fails closed when clamd is down or slow, runs once, and the beat upkeep of unfinished uploads."""

from __future__ import annotations

import dataclasses
import datetime
import socket
import struct
import threading

import pytest

from models.base import utcnow
from models.jobs import Job
from models.uploads import Upload, incoming_key, new_scan_job, quarantine_key
from services import metrics
from services.events import EventBus
from tasks.runtime import init_runtime
from tasks.runtime import runtime as worker_runtime
from tasks.uploads import purge_expired_intents, rescan_stalled, scan_upload
from tests.conftest import make_settings
from tests.factories import make_user
from tests.services.backends import clamd_url, eicar, png, png_bomb, stored_keys


def storage():
    """The storage of the worker side as it is now (the runtime's)."""
    return worker_runtime().storage


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, clamd_url=clamd_url())


def _quarantined(data: bytes, purpose: str = "listing_photo", content_type: str = "image/png") -> tuple[Upload, Job]:
    upload = Upload.create(
        owner=make_user().id,
        purpose=purpose,
        filename="f.png",
        content_type=content_type,
        size=len(data),
        storage_key="pending",
    )
    stored = storage().put(quarantine_key(upload.id), data)
    Upload.update(storage_key=stored.key, sha256=stored.sha256).where(Upload.id == upload.id).execute()
    return Upload.get_by_id(upload.id), new_scan_job(upload)


def _use(settings, redis, **changes):
    """Run the worker side with changed settings (same database, Redis, storage root and job queue)."""
    return init_runtime(
        dataclasses.replace(settings, **changes), redis=redis, init_db=False, jobs=worker_runtime().jobs
    )


def test_clamd_down_keeps_the_file_quarantined_and_the_scan_completes_once_it_is_back(
    settings, redis, runtime, queue, tmp_path, caplog
):
    upload, job = _quarantined(png())
    scans = {result: metrics.UPLOADS_SCANNED.labels(result) for result in ("unavailable", "clean")}
    before = {result: child._value.get() for result, child in scans.items()}
    _use(settings, redis, clamd_url=f"unix://{tmp_path / 'no-clamd.sock'}")
    with caplog.at_level("WARNING", logger="hearth.uploads"):
        scan_upload(str(job.id))
    assert any("virus scanner is unavailable" in r.getMessage() for r in caplog.records)  # an operator hears of it

    waiting = Job.get_by_id(job.id)
    assert (waiting.status, waiting.attempts) == ("queued", 1) and waiting.run_after is not None
    # Waiting to try again, not failed: the reason is its last_error, and no error beside "queued".
    assert waiting.error is None and "unavailable" in waiting.last_error["detail"]
    assert queue.submitted == [str(job.id)]  # retried later, with backoff
    row = Upload.get_by_id(upload.id)
    assert (row.status, row.storage_key) == ("pending_scan", quarantine_key(upload.id))
    assert storage().exists(quarantine_key(upload.id))

    _use(settings, redis)  # clamd is back
    queue.run_pending()
    row = Upload.get_by_id(upload.id)
    assert row.status == "clean" and not storage().exists(quarantine_key(upload.id))
    assert (Job.get_by_id(job.id).status, Job.get_by_id(job.id).last_error) == ("succeeded", None)
    # hearth_uploads_scanned_total: what HearthScansFailing watches, then the verdict.
    assert {result: child._value.get() - before[result] for result, child in scans.items()} == {
        "unavailable": 1,
        "clean": 1,
    }


def test_a_clamd_that_stops_answering_is_a_timeout_and_a_retry(settings, redis, runtime, queue, tmp_path):
    path = tmp_path / "silent.sock"
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(path))
    silent.listen(4)
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True)
    thread.start()
    upload, job = _quarantined(png())
    _use(settings, redis, clamd_url=f"unix://{path}", clamd_timeout=1)
    try:
        scan_upload(str(job.id))
    finally:
        silent.close()
    assert Job.get_by_id(job.id).status == "queued"
    assert Upload.get_by_id(upload.id).status == "pending_scan"


def _clamd_that_tampers(path, tamper):
    """A clamd stand-in on ``path``: reads one INSTREAM, calls ``tamper()``, answers that it was clean."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn:
            stream = conn.makefile("rb")
            assert stream.read(len(b"zINSTREAM\0")) == b"zINSTREAM\0"
            while size := struct.unpack("!L", stream.read(4))[0]:
                stream.read(size)
            tamper()
            conn.sendall(b"stream: OK\0")
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_an_object_that_changed_after_it_was_received_is_rejected_not_served(settings, redis, runtime, queue):
    upload, job = _quarantined(png())  # hashed on its way in
    storage().put(quarantine_key(upload.id), png(size=(8, 8)))  # storage no longer holds those bytes
    scan_upload(str(job.id))
    row = Upload.get_by_id(upload.id)
    assert (row.status, row.reject_reason) == ("rejected", "The stored file is not the file that was scanned.")
    assert row.storage_key is None and not storage().exists(quarantine_key(upload.id))


def test_an_object_replaced_while_clamd_read_it_is_rejected_not_served(settings, redis, runtime, queue, tmp_path):
    # An intent's bytes never passed through us: only the scan's own hash says what was checked, and
    # the file at its final key must have that hash before the upload is marked clean.
    upload, job = _quarantined(png())
    Upload.update(sha256=None).where(Upload.id == upload.id).execute()
    path = tmp_path / "tampering.sock"
    thread = _clamd_that_tampers(path, lambda: storage().put(quarantine_key(upload.id), b"\x89PNG\r\n\x1a\n" + eicar()))
    _use(settings, redis, clamd_url=f"unix://{path}")
    scan_upload(str(job.id))
    thread.join(5)
    row = Upload.get_by_id(upload.id)
    assert (row.status, row.reject_reason) == ("rejected", "The stored file is not the file that was scanned.")
    assert [key for key in stored_keys(storage()) if str(upload.id) in key] == []


def test_an_image_announcing_too_many_pixels_is_rejected_before_clamd_reads_it(
    settings, redis, runtime, queue, tmp_path
):
    # clamd is unreachable: had the scan started, the job would wait for a retry instead.
    upload, job = _quarantined(png_bomb(20000, 20000))
    _use(settings, redis, clamd_url=f"unix://{tmp_path / 'no-clamd.sock'}")
    scan_upload(str(job.id))
    row = Upload.get_by_id(upload.id)
    assert (row.status, row.reject_reason) == ("rejected", "The image has more than 50,000,000 pixels.")
    assert Job.get_by_id(job.id).status == "succeeded" and queue.submitted == []


def test_a_second_delivery_or_run_changes_nothing(settings, redis, runtime, queue):
    upload, job = _quarantined(b"\x89PNG\r\n\x1a\n" + eicar())
    scan_upload(str(job.id))
    first = Upload.get_by_id(upload.id)
    assert first.status == "infected"
    scan_upload(str(job.id))  # the same message again: nothing to claim
    second_job = new_scan_job(first)  # a stray job for a finished upload
    scan_upload(str(second_job.id))
    assert Job.get_by_id(second_job.id).result == {"upload_id": str(upload.id), "status": "infected"}
    again = Upload.get_by_id(upload.id)
    assert (again.status, again.updated_at, again.signature) == ("infected", first.updated_at, first.signature)
    events = [e["type"] for e in EventBus(redis, settings.redis_prefix).history(f"user:{upload.owner_id}")]
    assert events.count("upload.infected") == 1


def test_stalled_scans_get_a_new_job(settings, redis, runtime, queue):
    upload, job = _quarantined(png())
    long_ago = utcnow() - datetime.timedelta(hours=1)
    Job.update(status="failed", finished_at=long_ago).where(Job.id == job.id).execute()
    Upload.update(updated_at=long_ago).where(Upload.id == upload.id).execute()
    fresh, fresh_job = _quarantined(png())  # its job is still queued: left alone

    assert rescan_stalled() == {"rescheduled": 1}
    row = Upload.get_by_id(upload.id)
    assert row.scan_job != job.id and queue.submitted == [str(row.scan_job)]
    queue.run_pending()
    assert Upload.get_by_id(upload.id).status == "clean"
    assert Upload.get_by_id(fresh.id).scan_job == fresh_job.id
    assert rescan_stalled() == {"rescheduled": 0}


def test_expired_intents_are_purged_with_what_was_sent(settings, redis, runtime):
    user = make_user()
    old = Upload.create(
        owner=user.id,
        purpose="document",
        filename="a.pdf",
        status="awaiting_upload",
        declared_type="application/pdf",
        declared_size=10,
        storage_key="quarantine/x",
        expires_at=utcnow() - datetime.timedelta(minutes=1),
    )
    Upload.update(storage_key=quarantine_key(old.id)).where(Upload.id == old.id).execute()
    storage().put(quarantine_key(old.id), b"%PDF-1.4 half")
    storage().put(incoming_key(old.id), b"%PDF-1.4 other")
    live = Upload.create(
        owner=user.id,
        purpose="document",
        filename="b.pdf",
        status="awaiting_upload",
        declared_type="application/pdf",
        declared_size=10,
        storage_key="quarantine/y",
        expires_at=utcnow() + datetime.timedelta(minutes=5),
    )
    assert purge_expired_intents() == {"purged": 1, "late_uploads_swept": 0}
    assert Upload.get_or_none(Upload.id == old.id) is None and not storage().exists(quarantine_key(old.id))
    assert not storage().exists(incoming_key(old.id))
    assert Upload.get_or_none(Upload.id == live.id) is not None
