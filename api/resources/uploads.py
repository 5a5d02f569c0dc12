"""``/v1/uploads``: direct uploads, upload intents, metadata, signed downloads, and the operators' rescan.

Every file lands under ``quarantine/`` and becomes a scan job (queue ``scans``);
nothing is served until its scan is clean. Who sees what:

* the uploader and admins: the upload in every state, and every variant once clean;
* anyone allowed to see a listing (everyone while it is public, its owner/agent
  otherwise): the clean photos attached to it, previews only (the original keeps
  the camera's EXIF, GPS included);
* documents and attachments: the uploader, admins and the participants of a conversation
  they were sent in; avatars: only the uploader and admins.

Everyone else gets 404, never 403: upload ids stay private.
"""
from __future__ import annotations

import uuid

import falcon

from api.cursor import CursorCodec
from api.errors import Problem, conflict, not_found, validation_error
from api.operation import operation
from api.resources.auth import audit
from api.resources.jobs import JobViews
from api.schemas.uploads import (DownloadVariantQuery, SignedUploadQuery, UploadIntentRequest, UploadIntentView,
                                 UploadList, UploadListQuery, UploadQuery, UploadView)
from models.base import utcnow
from models.db import db
from models.jobs import Job
from models.messages import ATTACHABLE_PURPOSES, attachment_shared_with
from models.properties import Property
from models.uploads import (MEDIA_TYPES, SNIFF_BYTES, PropertyMedia, Upload, detect_media_type, display_name,
                            incoming_key, new_scan_job, purpose_rules, quarantine_key)
from services.storage import NotFound, StorageUnavailable, TooLarge

TAGS = ("uploads",)


def _too_large(limit: int, detail: str | None = None) -> Problem:
    return Problem(falcon.HTTP_413, "Payload too large", detail or f"This file may be at most {limit} bytes.",
                   slug="payload-too-large", max_bytes=limit, headers={"Connection": "close"})


def _unsupported(purpose: str, allowed, found: str | None) -> Problem:
    return Problem(falcon.HTTP_415, "Unsupported media type",
                   f"A {purpose} must be one of {', '.join(allowed)}; this file's bytes are "
                   f"{found or 'none of those'}.", slug="unsupported-media-type", detected_type=found)


def _unavailable() -> Problem:
    return Problem(falcon.HTTP_503, "Service unavailable", "File storage is unreachable; try again shortly.",
                   slug="unavailable", headers={"Retry-After": "5"})


class _Prefixed:
    """A stream whose first bytes were read already (to decide its type)."""

    def __init__(self, head: bytes, stream):
        self.head, self.stream = head, stream

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size is None or size < 0:
                part, self.head = self.head + self.stream.read(), b""
            else:
                part, self.head = self.head[:size], self.head[size:]
            return part
        return self.stream.read(size)


def _read_head(stream, count: int) -> bytes:
    head = b""
    while len(head) < count:
        part = stream.read(count - len(head))
        if not part:
            break
        head += part
    return head


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


def request_stream(req):
    """The body as a stream: Content-Length bounded, or chunked (ended by the server); else 411."""
    if req.content_length is not None:
        return req.bounded_stream
    if req.env.get("wsgi.input_terminated"):  # gunicorn decodes chunked bodies and ends the stream
        return req.stream
    raise Problem(falcon.HTTP_411, "Length required", "Send Content-Length, or a chunked body.",
                  slug="length-required")


def access(principal, upload: Upload) -> str | None:
    """``"full"`` (uploader, admin, the listing's people, the participants of a conversation it was sent in),
    ``"public"`` (a public listing's photo) or None."""
    if principal is not None and (principal.is_admin or str(upload.owner_id) == principal.user_id):
        return "full"
    if (principal is not None and upload.purpose in ATTACHABLE_PURPOSES
            and attachment_shared_with(upload.id, principal.user_id)):
        return "full"
    if upload.purpose != "listing_photo" or upload.status != "clean":
        return None
    listing = (Property.select().join(PropertyMedia, on=(PropertyMedia.property == Property.id))
               .where(PropertyMedia.upload == upload.id).first())
    if listing is None:
        return None
    if listing.is_managed_by(principal):
        return "full"
    return "public" if listing.is_public else None


def visible_upload(principal, upload_id) -> tuple[Upload, str]:
    upload = Upload.get_or_none(Upload.id == upload_id)
    level = access(principal, upload) if upload is not None else None
    if level is None:
        raise not_found("upload")
    return upload, level


def upload_view(upload: Upload, level: str = "full") -> dict:
    view = upload.view()
    if level == "public":
        # What a visitor of a listing sees: previews, not the original nor who named it what.
        view.update(filename="photo", sha256=None, scan_job_id=None, size=None,
                    variants=[v for v in view["variants"] if v["name"] != "original"])
    return view


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

    def record(self, req, upload_id, stored, purpose: str, filename: str, media_type: str) -> tuple[Upload, Job]:
        try:
            with db.atomic():
                upload = Upload.create(id=upload_id, owner=req.context.principal.user_id, purpose=purpose,
                                       status="pending_scan", filename=filename, content_type=media_type,
                                       size=stored.size, sha256=stored.sha256, storage_key=stored.key)
                return upload, new_scan_job(upload)
        except BaseException:
            self.storage.delete(stored.key)
            raise


class Uploads:
    def __init__(self, service: UploadService, secret: str):
        self.service = service
        self.cursors = CursorCodec(secret, "uploads")

    @operation("Upload a file (the body is the file)", query=UploadQuery, response=UploadView, status=202,
               permission="uploads:create", errors=(400, 411, 413, 415, 503), tags=TAGS,
               raw_body="application/octet-stream",
               description="The body is the file's raw bytes (any Content-Type; it is ignored), with "
                           "Content-Length or chunked. Its type is decided from its first bytes: a type the "
                           "purpose does not allow is a 415 before anything is stored. `listing_photo`: JPEG, "
                           "PNG, WebP or HEIC up to 20 MiB; `document`: PDF or those images up to 50 MiB; "
                           "`avatar`: JPEG, PNG or WebP up to 5 MiB; `attachment` (for a message): PDF or those images "
                           "up to 50 MiB. Bodies above the direct-upload cap (25 MiB) "
                           "go through `POST /v1/uploads/intents`. Over a cap the answer is 413 and nothing is "
                           "kept. Answers 202 with `Location: /v1/jobs/{id}` (the virus scan); the upload is "
                           "`pending_scan` until the scan says `clean`, `infected` or `rejected`, which the "
                           "owner also hears as an `upload.*` event.")
    def on_post(self, req, resp):
        q: UploadQuery = req.context.query
        service = self.service
        rule = service.rules[q.purpose]
        limit = min(rule.max_bytes, service.settings.upload_direct_max_bytes)
        stream = request_stream(req)
        if req.content_length is not None and req.content_length > limit:
            raise _too_large(limit, None if req.content_length > rule.max_bytes else
                             f"Direct uploads are limited to {limit} bytes; send larger files through "
                             "POST /v1/uploads/intents.")
        head = _read_head(stream, SNIFF_BYTES)
        if not head:
            raise validation_error([{"field": "body", "message": "the file is empty"}])
        media_type = detect_media_type(head)
        if not rule.allows(media_type):
            raise _unsupported(q.purpose, rule.types, media_type)
        upload_id = uuid.uuid4()
        try:
            stored = service.storage.put(quarantine_key(upload_id), _Prefixed(head, stream), max_bytes=limit,
                                         content_type="application/octet-stream")
        except TooLarge:
            raise _too_large(limit) from None
        except StorageUnavailable:
            raise _unavailable() from None
        if req.content_length is not None and stored.size != req.content_length:
            service.storage.delete(stored.key)
            raise Problem(falcon.HTTP_400, "Incomplete body", "The body ended before Content-Length bytes.",
                          slug="incomplete-body")
        upload, job = service.record(req, upload_id, stored, q.purpose,
                                     display_name(q.filename), media_type)
        service.accept(req, resp, upload, job)

    @operation("My uploads", query=UploadListQuery, response=UploadList, tags=TAGS,
               description="Newest first; filter by `purpose` and `status`; pages follow `next_cursor`.")
    def on_get(self, req, resp):
        q: UploadListQuery = req.context.query
        query = Upload.select().where(Upload.owner == req.context.principal.user_id)
        if q.purpose:
            query = query.where(Upload.purpose == q.purpose)
        if q.status:
            query = query.where(Upload.status == q.status)
        rows, next_cursor = self.cursors.newest_first(query, Upload.created_at, Upload.id, q.cursor, q.limit)
        resp.media = {"items": [upload_view(row) for row in rows], "next_cursor": next_cursor}

    @operation("One upload: metadata and scan status", response=UploadView, auth="optional", errors=(404,),
               tags=TAGS, description="The uploader and admins see it in every state; a clean photo of a "
                                      "public listing is public (previews only). Anyone else gets 404.")
    def on_get_item(self, req, resp, upload_id):
        upload, level = visible_upload(req.context.principal, upload_id)
        resp.media = upload_view(upload, level)

    @operation("Delete an upload", status=204, errors=(404,), tags=TAGS,
               description="The uploader or an admin; the file, its previews and its place on a listing go.")
    def on_delete_item(self, req, resp, upload_id):
        upload, _ = visible_upload(req.context.principal, upload_id)
        principal = req.context.principal
        if principal is None or not (principal.is_admin or str(upload.owner_id) == principal.user_id):
            raise not_found("upload")
        with db.atomic():
            Upload.delete().where(Upload.id == upload.id).execute()
        keys = {upload.storage_key, quarantine_key(upload.id), incoming_key(upload.id)}
        if upload.content_type:
            keys.add(upload.clean_key())
        keys |= {preview["key"] for preview in (upload.previews or {}).values()}
        for key in filter(None, keys):
            self.service.storage.delete(key)
        resp.status = falcon.HTTP_204

    @operation("Start a large upload: a URL to PUT the file to", body=UploadIntentRequest, response=UploadIntentView,
               status=201, permission="uploads:create", errors=(413, 415), tags=TAGS,
               description="Declare purpose, name, exact size and type. The answer's `upload_target` says where "
                           "to PUT the bytes (a presigned S3 URL, or a signed URL of this API with local storage), "
                           "with which headers, until when; a body of another size or type is refused. Then "
                           "`POST` `complete_url`.")
    def on_post_intents(self, req, resp):
        body: UploadIntentRequest = req.context.body
        service = self.service
        rule = service.rules[body.purpose]
        if body.size > rule.max_bytes:
            raise _too_large(rule.max_bytes)
        if not rule.allows(body.content_type):
            raise _unsupported(body.purpose, rule.types, body.content_type)
        upload_id = uuid.uuid4()
        ttl = service.settings.upload_intent_ttl
        target = service.storage.upload_target(incoming_key(upload_id), ttl, size=body.size,
                                               content_type=body.content_type,
                                               path=f"/v1/uploads/{upload_id}/content")
        upload = Upload.create(id=upload_id, owner=req.context.principal.user_id, purpose=body.purpose,
                               status="awaiting_upload", filename=display_name(body.filename),
                               declared_type=body.content_type, declared_size=body.size,
                               storage_key=quarantine_key(upload_id), expires_at=target["expires_at"])
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/uploads/{upload.id}"
        resp.media = {"upload": upload_view(upload),
                      "upload_target": dict(target, expires_at=target["expires_at"].isoformat()),
                      "complete_url": f"/v1/uploads/{upload.id}/complete"}

    @operation("Finish a large upload: check it and queue its scan", response=UploadView, status=202,
               errors=(404, 409, 410, 413, 415, 503), tags=TAGS,
               description="Freezes what was uploaded: the object moves out of the upload URL's reach, so "
                           "nothing sent to that URL afterwards is scanned or served. The object must have "
                           "exactly the declared size (413 when larger) and the declared type by its bytes "
                           "(415); otherwise it is deleted and the upload `rejected`. Answers 202 with "
                           "`Location: /v1/jobs/{id}` like a direct upload.")
    def on_post_complete(self, req, resp, upload_id):
        principal = req.context.principal
        storage = self.service.storage
        with db.atomic():
            # The row stays locked until the upload has left the URL's reach: a PUT landing
            # meanwhile waits for this, then finds the intent completed and is refused.
            upload = Upload.lock(upload_id)
            if upload is None or str(upload.owner_id) != principal.user_id:
                raise not_found("upload")
            if upload.status != "awaiting_upload":
                raise conflict(f"The upload is already {upload.status}.", slug="upload-completed")
            if upload.expires_at is not None and upload.expires_at < utcnow():
                raise Problem(falcon.HTTP_410, "Gone", "This upload intent has expired; start a new one.",
                              slug="intent-expired")
            key = upload.storage_key
            try:
                size, head = _freeze(storage, upload)
            except NotFound:
                raise conflict("Nothing was uploaded to the upload URL yet.", slug="upload-missing") from None
            except StorageUnavailable:
                raise _unavailable() from None
            problem = self._intent_problem(upload, size, head)
            if problem is not None:
                try:
                    storage.delete(key)
                except StorageUnavailable:
                    raise _unavailable() from None  # nothing changes: complete may be sent again
                Upload.move(upload.id, ("awaiting_upload",), status="rejected", storage_key=None, size=size,
                            reject_reason=problem.description)
            else:
                moved = Upload.move(upload.id, ("awaiting_upload",), status="pending_scan",
                                    content_type=detect_media_type(head), size=size)
                job = new_scan_job(moved)
        if problem is not None:
            raise problem  # after the commit: the rejection is kept
        self.service.accept(req, resp, moved, job)

    def _intent_problem(self, upload: Upload, size: int, head: bytes) -> Problem | None:
        rule = self.service.rules[upload.purpose]
        media_type = detect_media_type(head)
        if size > upload.declared_size:
            return _too_large(upload.declared_size, f"The upload has {size} bytes; {upload.declared_size} "
                                                    "were declared.")
        if size < upload.declared_size:
            return Problem(falcon.HTTP_409, "Conflict", f"The upload has {size} bytes; "
                           f"{upload.declared_size} were declared.", slug="upload-incomplete")
        if media_type != upload.declared_type or not rule.allows(media_type):
            return _unsupported(upload.purpose, (upload.declared_type,), media_type)
        return None

    @operation("Send the bytes of a large upload (local storage only)", query=SignedUploadQuery, auth="none",
               status=204, errors=(400, 403, 404, 409, 410, 411, 413, 415, 503), tags=TAGS, raw_body=MEDIA_TYPES,
               description="The `upload_target` of an intent when files are kept on local disk: the signature "
                           "is the permission. The body must have the declared Content-Type and at most the "
                           "declared size (413 as soon as it has more; nothing is kept). A new PUT replaces "
                           "the previous body until the upload is completed; once it is, every PUT (also one "
                           "that was still being sent) answers 409 and nothing of it is kept.")
    def on_put_content(self, req, resp, upload_id):
        q: SignedUploadQuery = req.context.query
        upload = Upload.get_or_none(Upload.id == upload_id)
        storage = self.service.storage
        if upload is None:
            raise not_found("upload")
        state = storage.check_upload(incoming_key(upload.id), upload.declared_size or 0,
                                     upload.declared_type or "", q.expires, q.sig)
        if state == "invalid":
            raise Problem(falcon.HTTP_403, "Forbidden", "This upload URL is not valid.", slug="bad-signature")
        if state == "expired":
            raise Problem(falcon.HTTP_410, "Gone", "This upload URL has expired.", slug="link-expired")
        if upload.status != "awaiting_upload":
            raise conflict(f"The upload is already {upload.status}.", slug="upload-completed")
        if (req.content_type or "").split(";")[0].strip().lower() != upload.declared_type:
            raise Problem(falcon.HTTP_415, "Unsupported media type",
                          f"Send the body with Content-Type: {upload.declared_type}, as declared.",
                          slug="unsupported-media-type")
        stream = request_stream(req)
        if req.content_length is not None and req.content_length > upload.declared_size:
            raise _too_large(upload.declared_size)
        # Each PUT writes a part of its own; only a whole body lands, and only while the
        # intent still awaits its upload (checked under the row's lock, as ``complete`` does).
        part = f"{incoming_key(upload.id)}.{uuid.uuid4().hex}.part"
        try:
            stored = storage.put(part, stream, max_bytes=upload.declared_size, content_type=upload.declared_type)
        except TooLarge:
            raise _too_large(upload.declared_size) from None
        except StorageUnavailable:
            raise _unavailable() from None
        if req.content_length is not None and stored.size != req.content_length:
            storage.delete(part)
            raise Problem(falcon.HTTP_400, "Incomplete body", "The body ended before Content-Length bytes.",
                          slug="incomplete-body")
        try:
            with db.atomic():
                current = Upload.lock(upload.id)
                landed = current is not None and current.status == "awaiting_upload"
                if landed:
                    storage.move(part, incoming_key(upload.id))
        except StorageUnavailable:
            storage.delete(part)
            raise _unavailable() from None
        if not landed:
            storage.delete(part)
            raise conflict("The upload was completed while this body was being sent; it was not kept.",
                           slug="upload-completed")
        resp.status = falcon.HTTP_204

    @operation("Download a file: a redirect to a short-lived signed URL", query=DownloadVariantQuery,
               auth="optional", status=302, errors=(404,), tags=TAGS,
               response_headers={"Location": "The signed URL (valid for a few minutes)"},
               description="Answers 302 to a signed URL (presigned S3, or this API's `/v1/downloads/...`), and "
                           "the same URL in the body. Only clean files are ever served: before its scan finished, "
                           "and for infected or rejected files, the answer is 404. `variant` picks the original "
                           "or a WebP preview of an image; visitors of a public listing get previews only.")
    def on_get_download(self, req, resp, upload_id):
        variant = req.context.query.variant
        upload, level = visible_upload(req.context.principal, upload_id)
        if upload.status != "clean" or not upload.storage_key:
            raise not_found("file")
        if variant == "original":
            if level != "full":
                raise not_found("file")
            url, expires_at = self.service.storage.signed_url(
                upload.storage_key, self.service.settings.upload_url_ttl, filename=upload.served_name(),
                content_type=upload.content_type)
        else:
            preview = (upload.previews or {}).get(variant)
            if preview is None:
                raise not_found("file")
            url, expires_at = self.service.storage.signed_url(
                preview["key"], self.service.settings.upload_url_ttl, filename=f"{variant}.webp",
                content_type="image/webp", inline=True)
        resp.status = falcon.HTTP_302
        resp.location = url
        resp.media = {"url": url, "expires_at": expires_at.isoformat()}


class AdminUploadRescan:
    def __init__(self, service: UploadService):
        self.service = service

    @operation("Scan an upload again", response=UploadView, status=202, permission="admin:uploads",
               errors=(404, 409), tags=("admin",),
               description="For operators (e.g. after a signature update, or a scan stuck on an outage): the "
                           "upload goes back to `pending_scan` (not served meanwhile) and a new scan job starts. "
                           "Infected and rejected uploads have no file left (409), nor has an upload whose "
                           "scan is under way (409).")
    def on_post(self, req, resp, upload_id):
        upload = Upload.get_or_none(Upload.id == upload_id)
        if upload is None:
            raise not_found("upload")
        if upload.status in ("infected", "rejected", "awaiting_upload") or not upload.storage_key:
            raise conflict(f"An upload that is {upload.status} has no file to scan.", slug="nothing-to-scan")
        if upload.scan_job and Job.select().where((Job.id == upload.scan_job)
                                                  & Job.status.in_(["queued", "running"])).exists():
            raise conflict("A scan of this upload is under way.", slug="scan-under-way")
        with db.atomic():
            moved = Upload.move(upload.id, ("pending_scan", "scanning", "clean"), status="pending_scan")
            if moved is None:
                raise conflict("The upload changed meanwhile; read it again.", slug="upload-changed")
            job = new_scan_job(moved)
            audit(req, "upload.rescan_requested", upload.id, target_type="upload", before={"status": upload.status},
                  after={"job_id": str(job.id)})
        self.service.accept(req, resp, moved, job)
