"""``/v1/uploads``: direct uploads, upload intents, metadata, signed downloads, and the operators' rescan.

Every file lands under ``quarantine/`` and becomes a scan job (queue ``scans``);
nothing is served until its scan is clean. Who sees what is ``models/upload_access.py``
(everyone else gets 404, never 403: upload ids stay private); how a file travels from
the request to its scan job is ``api/upload_flow.py``.
"""

from __future__ import annotations

import falcon

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import Problem, not_found
from api.operation import operation
from api.schemas.uploads import (
    DownloadVariantQuery,
    SignedUploadQuery,
    UploadIntentRequest,
    UploadIntentView,
    UploadList,
    UploadListQuery,
    UploadQuery,
    UploadView,
)
from api.upload_flow import UploadService, refused
from models.db import db
from models.file_rules import MEDIA_TYPES
from models.upload_access import may_manage, served_file, upload_view, visible_upload
from models.uploads import Upload, UploadStateError, restart_scan

TAGS = ("uploads",)


def request_stream(req):
    """The body as a stream: Content-Length bounded, or chunked (ended by the server); else 411."""
    if req.content_length is not None:
        return req.bounded_stream
    if req.env.get("wsgi.input_terminated"):  # gunicorn decodes chunked bodies and ends the stream
        return req.stream
    raise Problem(falcon.HTTP_411, "Length required", "Send Content-Length, or a chunked body.", slug="length-required")


def _visible(principal, upload_id) -> tuple[Upload, str]:
    found = visible_upload(principal, upload_id)
    if found is None:
        raise not_found("upload")
    return found


class Uploads:
    def __init__(self, service: UploadService, secret: str):
        self.service = service
        self.cursors = CursorCodec(secret, "uploads")

    @operation(
        "Upload a file (the body is the file)",
        query=UploadQuery,
        response=UploadView,
        status=202,
        permission="uploads:create",
        errors=(400, 411, 413, 415, 503),
        tags=TAGS,
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
        "owner also hears as an `upload.*` event.",
    )
    def on_post(self, req, resp):
        q: UploadQuery = req.context.query
        stream = request_stream(req)
        upload, job = self.service.store_direct(
            req.context.principal.user_id, q.purpose, q.filename, stream, req.content_length
        )
        self.service.accept(req, resp, upload, job)

    @operation(
        "My uploads",
        query=UploadListQuery,
        response=UploadList,
        tags=TAGS,
        description="Newest first; filter by `purpose` and `status`; pages follow `next_cursor`.",
    )
    def on_get(self, req, resp):
        q: UploadListQuery = req.context.query
        query = Upload.select().where(Upload.owner == req.context.principal.user_id)
        if q.purpose:
            query = query.where(Upload.purpose == q.purpose)
        if q.status:
            query = query.where(Upload.status == q.status)
        rows, next_cursor = self.cursors.newest_first(query, Upload.created_at, Upload.id, q.cursor, q.limit)
        resp.media = {"items": [upload_view(row) for row in rows], "next_cursor": next_cursor}

    @operation(
        "One upload: metadata and scan status",
        response=UploadView,
        auth="optional",
        errors=(404,),
        tags=TAGS,
        description="The uploader and admins see it in every state; a clean photo of a "
        "public listing is public (previews only). Anyone else gets 404.",
    )
    def on_get_item(self, req, resp, upload_id):
        upload, level = _visible(req.context.principal, upload_id)
        resp.media = upload_view(upload, level)

    @operation(
        "Delete an upload",
        status=204,
        errors=(404,),
        tags=TAGS,
        description="The uploader or an admin; the file, its previews and its place on a listing go.",
    )
    def on_delete_item(self, req, resp, upload_id):
        upload = Upload.get_or_none(Upload.id == upload_id)
        if upload is None or not may_manage(req.context.principal, upload):
            raise not_found("upload")
        with db.atomic():
            Upload.delete().where(Upload.id == upload.id).execute()
        for key in upload.stored_keys():
            self.service.storage.delete(key)
        resp.status = falcon.HTTP_204

    @operation(
        "Start a large upload: a URL to PUT the file to",
        body=UploadIntentRequest,
        response=UploadIntentView,
        status=201,
        permission="uploads:create",
        errors=(413, 415),
        tags=TAGS,
        description="Declare purpose, name, exact size and type. The answer's `upload_target` says where "
        "to PUT the bytes (a presigned S3 URL, or a signed URL of this API with local storage), "
        "with which headers, until when; a body of another size or type is refused. Then "
        "`POST` `complete_url`.",
    )
    def on_post_intents(self, req, resp):
        body: UploadIntentRequest = req.context.body
        upload, target = self.service.start_intent(req.context.principal.user_id, body)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/uploads/{upload.id}"
        resp.media = {
            "upload": upload_view(upload),
            "upload_target": dict(target, expires_at=target["expires_at"].isoformat()),
            "complete_url": f"/v1/uploads/{upload.id}/complete",
        }

    @operation(
        "Finish a large upload: check it and queue its scan",
        response=UploadView,
        status=202,
        errors=(404, 409, 410, 413, 415, 503),
        tags=TAGS,
        description="Freezes what was uploaded: the object moves out of the upload URL's reach, so "
        "nothing sent to that URL afterwards is scanned or served. The object must have "
        "exactly the declared size (413 when larger) and the declared type by its bytes "
        "(415); otherwise it is deleted and the upload `rejected`. Answers 202 with "
        "`Location: /v1/jobs/{id}` like a direct upload.",
    )
    def on_post_complete(self, req, resp, upload_id):
        upload, job = self.service.complete(req.context.principal.user_id, upload_id)
        self.service.accept(req, resp, upload, job)

    @operation(
        "Send the bytes of a large upload (local storage only)",
        query=SignedUploadQuery,
        auth="none",
        status=204,
        errors=(400, 403, 404, 409, 410, 411, 413, 415, 503),
        tags=TAGS,
        raw_body=MEDIA_TYPES,
        description="The `upload_target` of an intent when files are kept on local disk: the signature "
        "is the permission. The body must have the declared Content-Type and at most the "
        "declared size (413 as soon as it has more; nothing is kept). A new PUT replaces "
        "the previous body until the upload is completed; once it is, every PUT (also one "
        "that was still being sent) answers 409 and nothing of it is kept.",
    )
    def on_put_content(self, req, resp, upload_id):
        q: SignedUploadQuery = req.context.query
        upload = self.service.check_landing(upload_id, q.expires, q.sig, req.content_type)
        stream = request_stream(req)
        self.service.land(upload, stream, req.content_length)
        resp.status = falcon.HTTP_204

    @operation(
        "Download a file: a redirect to a short-lived signed URL",
        query=DownloadVariantQuery,
        auth="optional",
        status=302,
        errors=(404,),
        tags=TAGS,
        response_headers={"Location": "The signed URL (valid for a few minutes)"},
        description="Answers 302 to a signed URL (presigned S3, or this API's `/v1/downloads/...`), and "
        "the same URL in the body. Only clean files are ever served: before its scan finished, "
        "and for infected or rejected files, the answer is 404. `variant` picks the original "
        "or a WebP preview of an image; visitors of a public listing get previews only.",
    )
    def on_get_download(self, req, resp, upload_id):
        variant = req.context.query.variant
        upload, level = _visible(req.context.principal, upload_id)
        served = served_file(upload, level, variant)
        if served is None:
            raise not_found("file")
        url, expires_at = self.service.storage.signed_url(
            served.key,
            self.service.settings.upload_url_ttl,
            filename=served.filename,
            content_type=served.content_type,
            inline=served.inline,
        )
        resp.status = falcon.HTTP_302
        resp.location = url
        resp.media = {"url": url, "expires_at": expires_at.isoformat()}


class AdminUploadRescan:
    def __init__(self, service: UploadService):
        self.service = service

    @operation(
        "Scan an upload again",
        response=UploadView,
        status=202,
        permission="admin:uploads",
        errors=(404, 409),
        tags=("admin",),
        description="For operators (e.g. after a signature update, or a scan stuck on an outage): the "
        "upload goes back to `pending_scan` (not served meanwhile) and a new scan job starts. "
        "Infected and rejected uploads have no file left (409), nor has an upload whose "
        "scan is under way (409).",
    )
    def on_post(self, req, resp, upload_id):
        upload = Upload.get_or_none(Upload.id == upload_id)
        if upload is None:
            raise not_found("upload")
        try:
            with db.atomic():
                moved, job = restart_scan(upload)
                audit(
                    req,
                    "upload.rescan_requested",
                    upload.id,
                    target_type="upload",
                    before={"status": upload.status},
                    after={"job_id": str(job.id)},
                )
        except UploadStateError as exc:
            raise refused(exc) from None
        self.service.accept(req, resp, moved, job)
