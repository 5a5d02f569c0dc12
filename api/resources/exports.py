"""``POST /v1/me/export`` (the personal data export) and ``GET /v1/downloads/{key}`` (signed links)."""

from __future__ import annotations

import mimetypes
import posixpath

import falcon

from api.audit import audit
from api.errors import Problem, not_found
from api.operation import operation
from api.resources.jobs import JobViews
from api.schemas.jobs import DownloadQuery, JobView
from models.db import db
from models.jobs import Job
from services.storage import NotFound

EXPORT_KIND = "exports.build_export"


class MyExport:
    def __init__(self, views: JobViews):
        self.views = views

    @operation(
        "Export everything Hearth holds about me",
        response=JobView,
        status=202,
        permission="export:create",
        tags=("me",),
        description="Queues a job that builds a zip archive (profile, sessions, audit entries, and the "
        "data of every other part of Hearth) and answers 202 with `Location: /v1/jobs/{id}`. "
        "When it succeeds, `GET /v1/jobs/{id}` by its owner gives `result.download_url`, a "
        "signed link valid for 15 minutes, signed afresh on every read; job events never carry "
        "it. While an export is queued or "
        "running, asking again answers with that job.",
    )
    def on_post(self, req, resp):
        user_id = req.context.principal.user_id
        with db.atomic():
            job, created = Job.create_or_get_active(
                dedupe_key=f"export:{user_id}",
                kind=EXPORT_KIND,
                queue="exports",
                owner=user_id,
                input={"user_id": user_id},
                max_attempts=3,
            )
            if created:
                audit(req, "user.export_requested", user_id, after={"job_id": str(job.id)})
        self.views.accept(req, resp, job)


class Downloads:
    """Streams a stored object to whoever holds a valid signed link: the signature is the capability."""

    def __init__(self, storage):
        self.storage = storage

    @operation(
        "Download a file through a signed link",
        query=DownloadQuery,
        auth="none",
        errors=(403, 404, 410),
        tags=("downloads",),
        content_type="application/octet-stream",
        description="Links come from job results (e.g. `download_url` of an export). A link works until "
        "`expires`; a changed or forged link is a 403, an expired one a 410.",
    )
    def on_get(self, req, resp, key):
        q: DownloadQuery = req.context.query
        state = self.storage.check(key, q.expires, q.sig)
        if state == "invalid":
            raise Problem(falcon.HTTP_403, "Forbidden", "This download link is not valid.", slug="bad-signature")
        if state == "expired":
            raise Problem(
                falcon.HTTP_410, "Gone", "This download link has expired; ask for a new one.", slug="link-expired"
            )
        try:
            size = self.storage.size(key)
            stream = self.storage.open(key)
        except NotFound:
            raise not_found("file") from None
        filename = posixpath.basename(key)
        resp.content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        resp.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        resp.set_stream(stream, size)
