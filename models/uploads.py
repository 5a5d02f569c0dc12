"""Uploads: files users send, their scan lifecycle, and the media attached to listings.

An upload's ``status`` moves

    awaiting_upload ──complete──▶ pending_scan ──▶ scanning ──▶ clean | infected | rejected
    (intents only)                     ▲              │
                                       └──────────────┘ clamd down: back to pending_scan, retried

and every move is a conditional update (``Upload.move``). The moves the API makes
(``reject_intent``, ``queue_intent_scan``, ``restart_scan``) and the row locks they
need (``lock_intent``, ``lock_awaiting_intent``) are below; a move the status does not
allow raises ``UploadStateError``. Only ``clean`` files are ever served.
The object lives under ``quarantine/`` until its scan is clean; then it moves
to ``files/{id}/{name}`` and image previews are written to ``previews/{id}/``.

The bytes served are the bytes scanned. An intent's upload URL writes only to
``incoming_key``; ``complete`` moves that object, under the row's lock, to
``quarantine_key``, which no URL can write, and a PUT that lands after that is
refused (local disk) or never read (S3, where a presigned PUT stays valid until
it expires). The scan hashes what it reads, and the object is marked clean only
when the file at its final key has that same hash.

The type of a file is decided from its first bytes, never from the client's
Content-Type or file name, and each purpose allows some types and a size:
those rules, and the names a file is kept and stored under, are in
``models/file_rules.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from peewee import (
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    ForeignKeyField,
    IntegerField,
    SmallIntegerField,
    TextField,
    UUIDField,
)
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
from models.file_rules import EXTENSIONS, IMAGE_TYPES, PurposeRule, storage_stem, unsupported_reason
from models.jobs import Job
from models.properties import Property

STATUSES = ("awaiting_upload", "pending_scan", "scanning", "clean", "infected", "rejected")
PURPOSES = ("listing_photo", "document", "avatar", "attachment")
PREVIEW_WIDTHS = (320, 1280)
VARIANTS = ("original", *(f"w{width}" for width in PREVIEW_WIDTHS))
QUARANTINE = "quarantine"
SCAN_KIND = "uploads.scan_upload"
SCAN_QUEUE = "scans"
# With backoff capped at 5 minutes, ten attempts cover a clamd outage of about half an hour;
# after that the beat task ``uploads.rescan_stalled`` starts a new job.
SCAN_MAX_ATTEMPTS = 10


class UploadStateError(Exception):
    """The upload's status does not allow this change; ``slug`` names the rule (the API answers 409)."""

    def __init__(self, detail: str, slug: str):
        super().__init__(detail)
        self.slug = slug


class IntentExpired(UploadStateError):
    """An intent completed after its ``expires_at``: a new one must be started (the API answers 410)."""

    def __init__(self):
        super().__init__("This upload intent has expired; start a new one.", "intent-expired")


def quarantine_key(upload_id) -> str:
    """Where an upload's bytes are scanned: written once by the API (a direct upload) or moved there by
    ``complete`` (an intent), never by a URL a client holds."""
    return f"{QUARANTINE}/{upload_id}"


def incoming_key(upload_id) -> str:
    """Where an intent's upload URL writes. Nothing is ever scanned or served from here: ``complete``
    moves the object to ``quarantine_key`` first, so a write that lands later is never read."""
    return f"{QUARANTINE}/incoming/{upload_id}"


class Upload(UUIDModel):
    owner = ForeignKeyField(User, column_name="owner_id", on_delete="CASCADE")
    owner_id: uuid.UUID  # peewee's accessor for the key's own column: no query
    purpose = CharField()
    status = CharField(default="pending_scan")
    filename = TextField()
    content_type = TextField(null=True)  # decided from the bytes
    declared_type = TextField(null=True)  # what an intent promised
    declared_size = BigIntegerField(null=True)
    size = BigIntegerField(null=True)
    sha256 = TextField(null=True)
    storage_key = TextField(null=True)  # None once the object was deleted (infected, rejected)
    previews = BinaryJSONField(default=dict)  # {"w320": {"key", "width", "height", "size"}, ...}
    width = IntegerField(null=True)
    height = IntegerField(null=True)
    signature = TextField(null=True)  # what clamd found
    reject_reason = TextField(null=True)
    scan_job = UUIDField(column_name="scan_job_id", null=True)
    scanned_at = DateTimeTZField(null=True)
    expires_at = DateTimeTZField(null=True)  # an intent not completed by then is purged
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "uploads"

    @property
    def is_image(self) -> bool:
        return self.content_type in IMAGE_TYPES

    def clean_key(self) -> str:
        ext = EXTENSIONS.get(self.content_type, "bin")
        return f"files/{self.id}/{storage_stem(self.filename)}.{ext}"

    def served_name(self) -> str:
        """The display name with the extension of the type the bytes have."""
        ext = EXTENSIONS.get(self.content_type, "bin")
        stem = self.filename.rsplit(".", 1)[0] if "." in self.filename else self.filename
        return f"{stem or 'file'}.{ext}"

    def stored_keys(self) -> set[str]:
        """Every key this upload's bytes may occupy: where it landed, was scanned, is served, and its previews."""
        keys = {self.storage_key, quarantine_key(self.id), incoming_key(self.id)}
        if self.content_type:
            keys.add(self.clean_key())
        keys |= {preview["key"] for preview in (self.previews or {}).values()}
        return {key for key in keys if key}

    def ensure_awaiting_upload(self) -> None:
        """``UploadStateError`` unless this is an intent still waiting for its bytes."""
        if self.status != "awaiting_upload":
            raise UploadStateError(f"The upload is already {self.status}.", "upload-completed")

    def view(self) -> dict:
        """The upload as its owner sees it (``GET /v1/uploads/{id}`` and ``upload.*`` events)."""
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        base = f"/v1/uploads/{self.id}/download"
        variants = []
        if self.status == "clean":
            variants = [
                {
                    "name": "original",
                    "url": base,
                    "content_type": self.content_type,
                    "size": self.size,
                    "width": self.width,
                    "height": self.height,
                }
            ]
            for name in sorted(self.previews or {}, key=lambda n: int(n[1:])):
                preview = self.previews[name]
                variants.append(
                    {
                        "name": name,
                        "url": f"{base}?variant={name}",
                        "content_type": "image/webp",
                        "size": preview.get("size"),
                        "width": preview.get("width"),
                        "height": preview.get("height"),
                    }
                )
        return {
            "id": str(self.id),
            "purpose": self.purpose,
            "status": self.status,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "signature": self.signature,
            "reject_reason": self.reject_reason,
            "scan_job_id": str(self.scan_job) if self.scan_job else None,
            "variants": variants,
            "created_at": iso(self.created_at),
            "scanned_at": iso(self.scanned_at),
        }

    @classmethod
    def lock(cls, upload_id) -> Upload | None:
        """The row, locked until the caller's transaction ends (``SELECT ... FOR UPDATE``)."""
        return cls.select().where(cls.id == upload_id).for_update().first()

    @classmethod
    def move(cls, upload_id, from_statuses, **values) -> Upload | None:
        """Set ``values`` if the upload is in one of ``from_statuses``; the updated row, or None."""
        values.setdefault("updated_at", utcnow())
        rows = list(
            cls.update(**values)
            .where((cls.id == upload_id) & cls.status.in_(list(from_statuses)))
            .returning(cls)
            .execute()
        )
        return rows[0] if rows else None


class PropertyMedia(BaseModel):
    """A clean upload attached to a listing: an ordered photo (one may be the cover) or a document."""

    id = BigAutoField()
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    property_id: uuid.UUID  # peewee's accessor for the key's own column: no query
    upload = ForeignKeyField(Upload, column_name="upload_id", on_delete="CASCADE", unique=True)
    upload_id: uuid.UUID
    kind = CharField()  # photo | document
    position = SmallIntegerField(default=0)
    is_cover = BooleanField(default=False)
    attached_by = ForeignKeyField(User, column_name="attached_by", null=True, on_delete="SET NULL")
    attached_by_id: uuid.UUID | None
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "property_media"


def stored_for_scan(
    upload_id, owner, purpose: str, filename: str | None, media_type: str, *, key: str, size: int, sha256: str
) -> tuple[Upload, Job]:
    """The ``pending_scan`` row of bytes stored in quarantine at ``key`` and its scan job, in the caller's
    transaction: the one way a file enters the scan pipeline (uploads and imports)."""
    upload = Upload.create(
        id=upload_id,
        owner=owner,
        purpose=purpose,
        status="pending_scan",
        filename=filename,
        content_type=media_type,
        size=size,
        sha256=sha256,
        storage_key=key,
    )
    return upload, new_scan_job(upload)


def new_scan_job(upload: Upload) -> Job:
    """The scan job of ``upload``, created in the caller's transaction (enqueued when that commits)."""
    job = Job.create(
        kind=SCAN_KIND,
        queue=SCAN_QUEUE,
        owner=upload.owner_id,
        input={"upload_id": str(upload.id)},
        max_attempts=SCAN_MAX_ATTEMPTS,
    )
    Upload.update(scan_job=job.id).where(Upload.id == upload.id).execute()
    upload.scan_job = job.id
    return job


# The statuses an operator's rescan starts from; the others hold no file to scan.
_RESCANNABLE = ("pending_scan", "scanning", "clean")


def lock_intent(upload_id, owner_id: str) -> Upload | None:
    """The owner's intent, locked until the caller's transaction ends, if it may be completed now.

    None when ``owner_id`` has no such upload. ``UploadStateError`` once it was completed,
    ``IntentExpired`` after its ``expires_at``. Holding the lock while the object is moved out of
    the upload URL's reach is what makes a PUT landing meanwhile wait, then find the intent completed.
    """
    upload = Upload.lock(upload_id)
    if upload is None or str(upload.owner_id) != owner_id:
        return None
    upload.ensure_awaiting_upload()
    if upload.expires_at is not None and upload.expires_at < utcnow():
        raise IntentExpired()
    return upload


def lock_awaiting_intent(upload_id) -> Upload | None:
    """The intent, locked until the caller's transaction ends, while it still awaits its bytes; else None."""
    upload = Upload.lock(upload_id)
    return upload if upload is not None and upload.status == "awaiting_upload" else None


@dataclass(frozen=True)
class IntentMismatch:
    """Why the object uploaded for an intent is refused.

    ``kind``: ``too_large`` or ``incomplete`` (not the declared size), ``type`` (not the declared type, or
    a type the purpose does not allow). ``reason`` is kept as the upload's ``reject_reason``.
    """

    kind: str
    reason: str


def intent_mismatch(upload: Upload, size: int, media_type: str | None, rule: PurposeRule) -> IntentMismatch | None:
    """What is wrong with an intent's object of ``size`` bytes whose bytes say ``media_type``; None if nothing."""
    if size != upload.declared_size:
        kind = "too_large" if size > upload.declared_size else "incomplete"
        return IntentMismatch(kind, f"The upload has {size} bytes; {upload.declared_size} were declared.")
    if media_type != upload.declared_type or not rule.allows(media_type):
        return IntentMismatch("type", unsupported_reason(upload.purpose, (upload.declared_type,), media_type))
    return None


def reject_intent(upload: Upload, size: int, mismatch: IntentMismatch) -> None:
    """In the caller's transaction: the intent becomes ``rejected`` (its object was deleted already)."""
    Upload.move(
        upload.id, ("awaiting_upload",), status="rejected", storage_key=None, size=size, reject_reason=mismatch.reason
    )


def queue_intent_scan(upload: Upload, size: int, media_type: str) -> tuple[Upload, Job]:
    """In the caller's transaction: the completed intent becomes ``pending_scan`` with its scan job."""
    moved = Upload.move(upload.id, ("awaiting_upload",), status="pending_scan", content_type=media_type, size=size)
    return moved, new_scan_job(moved)


def restart_scan(upload: Upload) -> tuple[Upload, Job]:
    """In the caller's transaction: ``upload`` goes back to ``pending_scan`` with a new scan job.

    ``UploadStateError`` when it has no file left to scan (infected, rejected, an intent not completed),
    when a scan of it is queued or running, or when its status changed since ``upload`` was read.
    """
    if upload.status in ("infected", "rejected", "awaiting_upload") or not upload.storage_key:
        raise UploadStateError(f"An upload that is {upload.status} has no file to scan.", "nothing-to-scan")
    if (
        upload.scan_job
        and Job.select().where((Job.id == upload.scan_job) & Job.status.in_(["queued", "running"])).exists()
    ):
        raise UploadStateError("A scan of this upload is under way.", "scan-under-way")
    moved = Upload.move(upload.id, _RESCANNABLE, status="pending_scan")
    if moved is None:
        raise UploadStateError("The upload changed meanwhile; read it again.", "upload-changed")
    return moved, new_scan_job(moved)


__all__ = [
    "PREVIEW_WIDTHS",
    "PURPOSES",
    "STATUSES",
    "VARIANTS",
    "IntentExpired",
    "IntentMismatch",
    "PropertyMedia",
    "Upload",
    "UploadStateError",
    "incoming_key",
    "intent_mismatch",
    "lock_awaiting_intent",
    "lock_intent",
    "new_scan_job",
    "quarantine_key",
    "queue_intent_scan",
    "reject_intent",
    "restart_scan",
]
