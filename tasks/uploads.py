"""Scanning uploads (queue ``scans``) and the periodic upkeep of unfinished ones.

``scan_upload`` (kind ``uploads.scan_upload``) streams a quarantined object to
clamd. Then, inside one recorded step (``ctx.once``), exactly one of:

* **clean**: images are decoded and get WebP previews without metadata; the
  object moves out of quarantine to ``files/{id}/{name}``, and is marked clean
  only if the object there has the hash of the bytes clamd read; ``upload.clean``.
* **infected**: the object is deleted, the row keeps the signature name, an
  audit entry is written and the owner gets ``upload.infected``.
* **rejected**: an image whose header announces too many pixels (checked before
  clamd or the decoder reads the pixels), a decompression bomb, a corrupt image,
  a file clamd will not scan, or an object that is not the bytes received or
  scanned: the object is deleted; ``upload.rejected``.

clamd down, timing out or dropping the connection is transient: the upload goes
back to ``pending_scan`` (still quarantined, never served) and the job is retried
with backoff. Should the job run out of attempts, ``rescan_stalled`` (beat) gives
the upload a new job, so the file is scanned once clamd is back: the system fails
closed and never gives up. A second delivery of a finished job changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import logging
import tempfile

from models.audit import AuditEntry
from models.base import utcnow
from models.db import connection, db
from models.imports.storage_steps import report_scan_verdict
from models.jobs import Job
from models.uploads import SCAN_KIND, SCAN_QUEUE, Upload, incoming_key, new_scan_job
from services.images import HEADER_BYTES, ImageRejected, check_dimensions, make_previews
from services.scanner import ScannerUnavailable, ScanRefused
from services.storage import NotFound, StorageUnavailable, sha256_of
from tasks.app import app
from tasks.base import JobContext, job_task
from tasks.runtime import runtime

log = logging.getLogger("hearth.uploads")
STALLED_AFTER = datetime.timedelta(minutes=10)
BATCH = 200
_SPOOL_IN_MEMORY = 8 * 1024 * 1024


def upload_event(upload: Upload, type_: str) -> None:
    """``upload.clean`` / ``upload.infected`` / ``upload.rejected`` on the owner's channel."""
    try:
        runtime().events.publish(f"user:{upload.owner_id}", type_, upload.view())
    except Exception:
        log.warning("could not publish an upload event", extra={"upload_id": str(upload.id)}, exc_info=True)


class _Tee:
    """Reads the object for clamd, hashing it and keeping a copy for the image decoder (which seeks)."""

    def __init__(self, source, copy):
        self.source, self.copy = source, copy
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        if chunk:
            self.digest.update(chunk)
            if self.copy is not None:
                self.copy.write(chunk)
        return chunk


@job_task(transient=(ScannerUnavailable, StorageUnavailable), name="tasks.uploads.scan_upload")
def scan_upload(ctx: JobContext) -> dict:
    upload_id = ctx.input["upload_id"]
    upload = Upload.move(upload_id, ("pending_scan", "scanning"), status="scanning")
    if upload is None:  # finished already, deleted, or not complete yet: nothing to do
        found = Upload.get_or_none(Upload.id == upload_id)
        return {"upload_id": upload_id, "status": found.status if found else "deleted"}
    # The image decoder seeks, so an image is also copied as it streams to clamd.
    with tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY) if upload.is_image else contextlib.nullcontext() as copy:
        try:
            if upload.is_image:
                # A few bytes of header can announce a gigapixel image, which clamd's own image
                # parsing (and later our decoder) would spend many seconds on: refuse it unread.
                check_dimensions(_header(upload.storage_key), upload.content_type)
            ctx.progress(10, "Scanning")
            with runtime().storage.open(upload.storage_key) as stream:
                tee = _Tee(stream, copy)
                result = runtime().scanner.scan(tee)
        except (ScannerUnavailable, StorageUnavailable) as exc:
            # Fail closed: quarantined until a scan says otherwise. Said loudly: while it lasts,
            # no upload becomes available, and an operator should see why.
            log.warning(
                "cannot scan uploads: %s is unavailable; the upload stays quarantined and the scan is retried",
                "the virus scanner" if isinstance(exc, ScannerUnavailable) else "storage",
                extra={"upload_id": upload_id, "error": str(exc)},
            )
            Upload.move(upload_id, ("scanning",), status="pending_scan")
            raise
        except ImageRejected as exc:
            return _reject(ctx, upload, exc.reason)
        except ScanRefused as exc:
            log.warning("clamd refused a stream", extra={"upload_id": upload_id, "answer": str(exc)})
            return _reject(ctx, upload, "The file could not be scanned.")
        except NotFound:
            return _reject(ctx, upload, "The file is missing from storage.")
        ctx.progress(60, "Checking")
        scanned = tee.digest.hexdigest()
        if upload.sha256 is not None and upload.sha256 != scanned:
            # A direct upload was hashed on its way in: storage no longer holds what we received.
            log.warning("a quarantined object changed after it was received", extra={"upload_id": upload_id})
            return _reject(ctx, upload, _CHANGED)
        upload.sha256 = scanned
        if result.infected:
            return _infected(ctx, upload, result.signature)
        info = None
        if copy is not None:
            copy.seek(0)
            try:
                info = make_previews(copy, upload.content_type)
            except ImageRejected as exc:
                return _reject(ctx, upload, exc.reason)
        return _clean(ctx, upload, info)


_CHANGED = "The stored file is not the file that was scanned."


def _header(key: str) -> io.BytesIO:
    """The first bytes of an object, enough for an image's header (JPEG metadata may come first)."""
    return io.BytesIO(runtime().storage.head_bytes(key, HEADER_BYTES))


def _finish(ctx: JobContext, upload: Upload, step: str, apply) -> Upload | None:
    """Run ``apply(key)`` once for this job; returns the final row when this run made the change."""
    changed = ctx.once(step, lambda key: apply())
    row = Upload.get_or_none(Upload.id == upload.id)
    return row if changed and row is not None else None


def _delete_objects(upload: Upload) -> None:
    """The file and its previews (a rescan of a clean upload may find it infected after all)."""
    for key in filter(None, [upload.storage_key, *(p.get("key") for p in (upload.previews or {}).values())]):
        runtime().storage.delete(key)


def _infected(ctx: JobContext, upload: Upload, signature: str) -> dict:
    _delete_objects(upload)

    def apply():
        row = Upload.move(
            upload.id,
            ("scanning",),
            status="infected",
            signature=signature,
            storage_key=None,
            previews={},
            sha256=upload.sha256,
            scanned_at=utcnow(),
        )
        if row is None:
            return False
        AuditEntry.record(
            actor_id=None,
            action="upload.infected",
            target_type="upload",
            target_id=upload.id,
            after={
                "owner_id": str(upload.owner_id),
                "signature": signature,
                "sha256": upload.sha256,
                "filename": upload.filename,
                "purpose": upload.purpose,
                "job_id": str(ctx.job.id),
            },
        )
        report_scan_verdict(upload, "infected", f"quarantined: the scan found {signature}")
        return True

    row = _finish(ctx, upload, "verdict", apply)
    if row is not None:
        upload_event(row, "upload.infected")
    return {"upload_id": str(upload.id), "status": "infected", "signature": signature}


def _reject(ctx: JobContext, upload: Upload, reason: str) -> dict:
    _delete_objects(upload)

    def apply():
        row = Upload.move(
            upload.id,
            ("scanning",),
            status="rejected",
            reject_reason=reason,
            storage_key=None,
            previews={},
            scanned_at=utcnow(),
        )
        if row is not None:
            report_scan_verdict(upload, "rejected", reason)
        return row is not None

    row = _finish(ctx, upload, "verdict", apply)
    if row is not None:
        upload_event(row, "upload.rejected")
    return {"upload_id": str(upload.id), "status": "rejected", "reason": reason}


def _clean(ctx: JobContext, upload: Upload, info) -> dict:
    storage = runtime().storage
    previews = dict(upload.previews or {})
    if info is not None:
        ctx.progress(80, "Making previews")
        for preview in info.previews:
            key = f"previews/{upload.id}/{preview.name}.webp"
            stored = storage.put(key, preview.data, content_type="image/webp")
            previews[preview.name] = {"key": key, "width": preview.width, "height": preview.height, "size": stored.size}
    target = upload.clean_key()
    if upload.storage_key != target:
        try:
            storage.move(upload.storage_key, target)
        except NotFound:
            if not storage.exists(target):  # a crashed run may have moved it already
                return _reject(ctx, upload, "The file is missing from storage.")
    try:
        served = sha256_of(storage, target)
    except NotFound:
        served = None
    if served != upload.sha256:
        log.warning("the object to be served is not the one scanned", extra={"upload_id": str(upload.id)})
        storage.delete(target)
        for preview in previews.values():
            storage.delete(preview["key"])
        return _reject(ctx, upload, _CHANGED)

    def apply():
        values = {
            "status": "clean",
            "storage_key": target,
            "previews": previews,
            "sha256": upload.sha256,
            "scanned_at": utcnow(),
        }
        if info is not None:
            values.update(width=info.width, height=info.height)
        return Upload.move(upload.id, ("scanning",), **values) is not None

    row = _finish(ctx, upload, "verdict", apply)
    if row is not None:
        upload_event(row, "upload.clean")
    return {"upload_id": str(upload.id), "status": "clean", "previews": sorted(previews)}


# --- beat ----------------------------------------------------------------------------------


@app.task(name="tasks.uploads.rescan_stalled", acks_late=True, ignore_result=True)
def rescan_stalled() -> dict:
    """Give a new scan job to uploads still unscanned whose job ended (it ran out of attempts)."""
    cutoff = utcnow() - STALLED_AFTER
    created = []
    with connection(), db.atomic():
        stalled = (
            Upload.select(Upload)
            .join(Job, on=(Upload.scan_job == Job.id))
            .where(
                Upload.status.in_(["pending_scan", "scanning"])
                & (Upload.updated_at < cutoff)
                & Job.status.in_(["failed", "cancelled", "succeeded"])
            )
            .limit(BATCH)
            .for_update(of=Upload, skip_locked=True)
        )
        for upload in stalled:
            Upload.move(upload.id, ("pending_scan", "scanning"), status="pending_scan")
            created.append(new_scan_job(upload))
    # Each job was announced (``job.queued``) and submitted when the transaction committed.
    if created:
        log.info("stalled scans restarted", extra={"count": len(created)})
    return {"rescheduled": len(created)}


@app.task(name="tasks.uploads.purge_expired_intents", acks_late=True, ignore_result=True)
def purge_expired_intents() -> dict:
    """Forget upload intents never completed (their row and whatever the client sent), and remove what
    reached a completed intent's upload URL after ``complete``: an S3 presigned PUT stays valid until
    it expires, and such late bytes are never read, so they only need to go."""
    purged = swept = 0
    with connection():
        rows = list(
            Upload.select().where((Upload.status == "awaiting_upload") & (Upload.expires_at < utcnow())).limit(BATCH)
        )
        for upload in rows:
            for key in {upload.storage_key, incoming_key(upload.id)} - {None}:
                runtime().storage.delete(key)
            purged += Upload.delete().where((Upload.id == upload.id) & (Upload.status == "awaiting_upload")).execute()
        completed = list(
            Upload.select(Upload.id)
            .where((Upload.status != "awaiting_upload") & (Upload.expires_at < utcnow()))
            .limit(BATCH)
        )
        for upload in completed:
            runtime().storage.delete(incoming_key(upload.id))
            swept += Upload.update(expires_at=None).where(Upload.id == upload.id).execute()
    return {"purged": purged, "late_uploads_swept": swept}


__all__ = ["SCAN_KIND", "SCAN_QUEUE", "new_scan_job", "purge_expired_intents", "rescan_stalled", "scan_upload"]
