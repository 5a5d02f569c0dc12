"""How a file travels from a request to its scan job: direct uploads, intents, their completion and
the local PUT that lands an intent's bytes.

``UploadService`` orchestrates the upload rows (``models/uploads.py``), the store
(``services/storage/``) and the scan jobs, and answers what goes wrong with the problems
the API documents (413, 415, 409, 410, 503, ...). The resources in ``api/resources/uploads.py``
read the request and shape the response; who may see what is ``models/upload_access.py``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, cast

import falcon

from api.errors import Problem, conflict, not_found, validation_error
from models.db import db
from models.file_rules import SNIFF_BYTES, detect_media_type, display_name, purpose_rules, unsupported_reason
from models.jobs import Job
from models.upload_access import upload_view
from models.uploads import (
    IntentExpired,
    IntentMismatch,
    Upload,
    UploadStateError,
    incoming_key,
    intent_mismatch,
    lock_awaiting_intent,
    lock_intent,
    quarantine_key,
    queue_intent_scan,
    reject_intent,
    stored_for_scan,
)
from services.storage import NotFound, StorageUnavailable, TooLarge
from services.streams import PrefixedStream, read_head

if TYPE_CHECKING:
    from api.resources.jobs import JobViews
    from api.schemas.uploads import UploadIntentRequest


def too_large(limit: int, detail: str | None = None) -> Problem:
    return Problem(
        falcon.HTTP_413,
        "Payload too large",
        detail or f"This file may be at most {limit} bytes.",
        slug="payload-too-large",
        max_bytes=limit,
        headers={"Connection": "close"},
    )


def unsupported(purpose: str, allowed, found: str | None) -> Problem:
    return Problem(
        falcon.HTTP_415,
        "Unsupported media type",
        unsupported_reason(purpose, allowed, found),
        slug="unsupported-media-type",
        detected_type=found,
    )


def unavailable() -> Problem:
    return Problem(
        falcon.HTTP_503,
        "Service unavailable",
        "File storage is unreachable; try again shortly.",
        slug="unavailable",
        headers={"Retry-After": "5"},
    )


def refused(exc: UploadStateError) -> Problem:
    """The answer to a change the upload's status does not allow: 410 for an expired intent, else 409."""
    if isinstance(exc, IntentExpired):
        return Problem(falcon.HTTP_410, "Gone", str(exc), slug=exc.slug)
    return conflict(str(exc), slug=exc.slug)


def _incomplete_body() -> Problem:
    return Problem(
        falcon.HTTP_400, "Incomplete body", "The body ended before Content-Length bytes.", slug="incomplete-body"
    )


def _mismatch_problem(upload: Upload, mismatch: IntentMismatch, media_type: str | None) -> Problem:
    if mismatch.kind == "too_large":
        return too_large(upload.declared_size or 0, mismatch.reason)
    if mismatch.kind == "incomplete":
        return Problem(falcon.HTTP_409, "Conflict", mismatch.reason, slug="upload-incomplete")
    return unsupported(upload.purpose, (upload.declared_type,), media_type)


def _freeze(storage, upload: Upload) -> tuple[int, bytes]:
    """Move an intent's upload out of its URL's reach, to the key that is scanned; its size and first bytes.

    ``NotFound`` when nothing was uploaded. A retry after a crash between the move and the
    commit finds the object already moved.
    """
    try:
        storage.move(incoming_key(upload.id), upload.storage_key)
    except NotFound:
        if not storage.exists(upload.storage_key):
            raise
    return storage.size(upload.storage_key), storage.head_bytes(upload.storage_key, SNIFF_BYTES)


class UploadService:
    """What the upload resources share: settings, storage, the purpose rules and how work is handed on."""

    def __init__(self, settings, views: JobViews):
        self.settings = settings
        self.views = views
        self.storage = views.storage
        self.rules = purpose_rules(settings)

    def accept(self, req, resp, upload: Upload, job: Job) -> None:
        """202 for an upload whose scan job was just committed (and with that, announced and enqueued)."""
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/jobs/{job.id}"
        resp.media = upload_view(upload)

    def record(
        self, owner_id: str, upload_id, stored, purpose: str, filename: str, media_type: str
    ) -> tuple[Upload, Job]:
        """The row of a file stored at ``stored.key`` and its scan job, committed; the object goes if that fails."""
        try:
            with db.atomic():
                return stored_for_scan(
                    upload_id,
                    owner_id,
                    purpose,
                    filename,
                    media_type,
                    key=stored.key,
                    size=stored.size,
                    sha256=stored.sha256,
                )
        except BaseException:
            self.storage.delete(stored.key)
            raise

    def store_direct(
        self, owner_id: str, purpose: str, filename: str | None, stream, content_length: int | None
    ) -> tuple[Upload, Job]:
        """A direct upload: the body's type decided from its first bytes, then the whole body stored in
        quarantine under the purpose's cap (and the direct-upload cap), then its row and scan job committed."""
        rule = self.rules[purpose]
        limit = min(rule.max_bytes, self.settings.upload_direct_max_bytes)
        if content_length is not None and content_length > limit:
            raise too_large(
                limit,
                None
                if content_length > rule.max_bytes
                else f"Direct uploads are limited to {limit} bytes; send larger files through "
                "POST /v1/uploads/intents.",
            )
        head = read_head(stream, SNIFF_BYTES)
        if not head:
            raise validation_error([{"field": "body", "message": "the file is empty"}])
        media_type = detect_media_type(head)
        if media_type is None or not rule.allows(media_type):
            raise unsupported(purpose, rule.types, media_type)
        upload_id = uuid.uuid4()
        try:
            stored = self.storage.put(
                quarantine_key(upload_id),
                PrefixedStream(head, stream),
                max_bytes=limit,
                content_type="application/octet-stream",
            )
        except TooLarge:
            raise too_large(limit) from None
        except StorageUnavailable:
            raise unavailable() from None
        if content_length is not None and stored.size != content_length:
            self.storage.delete(stored.key)
            raise _incomplete_body()
        return self.record(owner_id, upload_id, stored, purpose, display_name(filename), media_type)

    def start_intent(self, owner_id: str, request: UploadIntentRequest) -> tuple[Upload, dict]:
        """A new intent (``awaiting_upload``) and the target its bytes are PUT to."""
        rule = self.rules[request.purpose]
        if request.size > rule.max_bytes:
            raise too_large(rule.max_bytes)
        if not rule.allows(request.content_type):
            raise unsupported(request.purpose, rule.types, request.content_type)
        upload_id = uuid.uuid4()
        target = self.storage.upload_target(
            incoming_key(upload_id),
            self.settings.upload_intent_ttl,
            size=request.size,
            content_type=request.content_type,
            path=f"/v1/uploads/{upload_id}/content",
        )
        upload = Upload.create(
            id=upload_id,
            owner=owner_id,
            purpose=request.purpose,
            status="awaiting_upload",
            filename=display_name(request.filename),
            declared_type=request.content_type,
            declared_size=request.size,
            storage_key=quarantine_key(upload_id),
            expires_at=target["expires_at"],
        )
        return upload, target

    def complete(self, owner_id: str, upload_id) -> tuple[Upload, Job]:
        """Freeze what was uploaded for the owner's intent and commit its scan job.

        An object of another size or type than declared is deleted and the upload ``rejected``
        (committed), then refused with the matching problem.
        """
        storage = self.storage
        with db.atomic():
            # The row stays locked until the upload has left the URL's reach: a PUT landing
            # meanwhile waits for this, then finds the intent completed and is refused.
            try:
                upload = lock_intent(upload_id, owner_id)
            except UploadStateError as exc:
                raise refused(exc) from None
            if upload is None:
                raise not_found("upload")
            key = upload.storage_key
            try:
                size, head = _freeze(storage, upload)
            except NotFound:
                raise conflict("Nothing was uploaded to the upload URL yet.", slug="upload-missing") from None
            except StorageUnavailable:
                raise unavailable() from None
            media_type = detect_media_type(head)
            mismatch = intent_mismatch(upload, size, media_type, self.rules[upload.purpose])
            if mismatch is not None:
                try:
                    storage.delete(key)
                except StorageUnavailable:
                    raise unavailable() from None  # nothing changes: complete may be sent again
                reject_intent(upload, size, mismatch)
            else:  # no mismatch: the type is the one declared and allowed, so it has a name
                moved, job = queue_intent_scan(upload, size, cast(str, media_type))
        if mismatch is not None:
            raise _mismatch_problem(upload, mismatch, media_type)  # after the commit: the rejection is kept
        return moved, job

    def check_landing(self, upload_id, expires: int, sig: str, content_type: str | None) -> Upload:
        """The intent a signed local PUT writes to, if its signature, state and Content-Type allow it."""
        upload = Upload.get_or_none(Upload.id == upload_id)
        if upload is None:
            raise not_found("upload")
        state = self.storage.check_upload(
            incoming_key(upload.id), upload.declared_size or 0, upload.declared_type or "", expires, sig
        )
        if state == "invalid":
            raise Problem(falcon.HTTP_403, "Forbidden", "This upload URL is not valid.", slug="bad-signature")
        if state == "expired":
            raise Problem(falcon.HTTP_410, "Gone", "This upload URL has expired.", slug="link-expired")
        try:
            upload.ensure_awaiting_upload()
        except UploadStateError as exc:
            raise refused(exc) from None
        if (content_type or "").split(";")[0].strip().lower() != upload.declared_type:
            raise Problem(
                falcon.HTTP_415,
                "Unsupported media type",
                f"Send the body with Content-Type: {upload.declared_type}, as declared.",
                slug="unsupported-media-type",
            )
        return upload

    def land(self, upload: Upload, stream, content_length: int | None) -> None:
        """Store a PUT's body as the intent's object, replacing an earlier one, while the intent awaits it."""
        storage = self.storage
        declared_size = upload.declared_size or 0  # an intent (check_landing) always declares it
        if content_length is not None and content_length > declared_size:
            raise too_large(declared_size)
        # Each PUT writes a part of its own; only a whole body lands, and only while the
        # intent still awaits its upload (checked under the row's lock, as ``complete`` does).
        part = f"{incoming_key(upload.id)}.{uuid.uuid4().hex}.part"
        try:
            stored = storage.put(part, stream, max_bytes=declared_size, content_type=upload.declared_type)
        except TooLarge:
            raise too_large(declared_size) from None
        except StorageUnavailable:
            raise unavailable() from None
        if content_length is not None and stored.size != content_length:
            storage.delete(part)
            raise _incomplete_body()
        try:
            with db.atomic():
                landed = lock_awaiting_intent(upload.id) is not None
                if landed:
                    storage.move(part, incoming_key(upload.id))
        except StorageUnavailable:
            storage.delete(part)
            raise unavailable() from None
        if not landed:
            storage.delete(part)
            raise conflict(
                "The upload was completed while this body was being sent; it was not kept.", slug="upload-completed"
            )
