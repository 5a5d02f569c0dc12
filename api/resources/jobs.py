"""``/v1/jobs``: the caller's background work (list, read, cancel) and the diagnostic job.

Every resource that hands work to a worker answers through ``accept()``: the
job row was committed with the domain rows, and with that commit announced
(``job.queued``) and enqueued (``api.middleware.DatabaseConnection``);
``accept`` answers ``202`` with ``Location: /v1/jobs/{id}``. When the broker is
unreachable the job stays queued and the beat sweep enqueues it later; the
request still succeeds.
"""

from __future__ import annotations

import logging
import uuid

import falcon

from api.cursor import CursorCodec
from api.errors import conflict, not_found, validation_error
from api.operation import operation
from api.schemas.jobs import JobList, JobQuery, JobView, SelftestRequest
from models.accounts import User
from models.jobs import DOWNLOADABLE_KINDS, Job
from services.events import EventBus

log = logging.getLogger("hearth.jobs")
TAGS = ("jobs",)


class JobViews:
    """Builds job views for a caller, and publishes job changes made by the API."""

    def __init__(self, events: EventBus, storage, link_ttl: int):
        self.events = events
        self.storage = storage
        self.link_ttl = link_ttl

    def view(self, job: Job, principal) -> dict:
        """``job.view()``, with a fresh download link for its owner and none for anyone else.

        The link is signed here, on each read by the owner: it is never stored on
        the row nor carried by an event (admins reading the job see no link).
        """
        view = job.event_view()
        result = view.get("result")
        if not isinstance(result, dict):
            return view
        file = result.get("file")
        if (
            job.kind in DOWNLOADABLE_KINDS
            and str(job.owner_id) == principal.user_id
            and isinstance(file, dict)
            and file.get("key")
        ):
            url, expires_at = self.storage.signed_url(file["key"], self.link_ttl)
            view["result"] = dict(result, download_url=url, expires_at=expires_at.isoformat())
        return view

    def publish(self, job: Job, type_: str) -> None:
        try:
            self.events.publish_job(job, type_)
        except Exception:
            log.warning("could not publish job event", extra={"job_id": str(job.id)}, exc_info=True)

    def accept(self, req, resp, job: Job) -> None:
        """Answer 202 for a committed job (a new one was announced and enqueued when it committed)."""
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/jobs/{job.id}"
        resp.media = self.view(job, req.context.principal)


def visible_job(principal, job_id) -> Job:
    """The job if the caller owns it or may see every job; otherwise 404 (never 403: ids stay private)."""
    job = Job.get_or_none(Job.id == job_id)
    if job is None or (str(job.owner_id) != principal.user_id and not principal.can("admin:jobs")):
        raise not_found("job")
    return job


class Jobs:
    def __init__(self, secret: str, views: JobViews):
        self.cursors = CursorCodec(secret, "jobs")
        self.views = views

    @operation(
        "My jobs",
        query=JobQuery,
        response=JobList,
        tags=TAGS,
        description="Newest first; filter by `kind` and `status`; pages follow `next_cursor`.",
    )
    def on_get(self, req, resp):
        q: JobQuery = req.context.query
        principal = req.context.principal
        query = Job.select().where(Job.owner == principal.user_id)
        if q.kind:
            query = query.where(Job.kind == q.kind)
        if q.status:
            query = query.where(Job.status == q.status)
        rows, next_cursor = self.cursors.newest_first(query, Job.created_at, Job.id, q.cursor, q.limit)
        resp.media = {"items": [self.views.view(job, principal) for job in rows], "next_cursor": next_cursor}

    @operation(
        "One job",
        response=JobView,
        errors=(404,),
        tags=TAGS,
        description="Its owner (or an admin) sees it; anyone else gets 404.",
    )
    def on_get_item(self, req, resp, job_id):
        resp.media = self.views.view(visible_job(req.context.principal, job_id), req.context.principal)

    @operation(
        "Cancel a job",
        response=JobView,
        errors=(404, 409),
        tags=TAGS,
        also={202: "Cancellation requested: the running job stops at its next progress point"},
        description="A queued job is cancelled at once and never starts (200, `cancelled`). A running "
        "job is asked to stop at its next progress point (202, `cancel_requested`); follow "
        "it until it is `cancelled` (or it finished first). A finished job is a 409.",
    )
    def on_post_cancel(self, req, resp, job_id):
        principal = req.context.principal
        job = visible_job(principal, job_id)
        already_requested = job.cancel_requested_at is not None
        updated = Job.request_cancel(job.id)
        if updated is None:
            raise conflict(f"The job already {Job.get_by_id(job.id).status}.", slug="job-finished")
        if updated.status == "cancelled":
            self.views.publish(updated, "job.cancelled")
            resp.status = falcon.HTTP_200
        else:
            if not already_requested:
                self.views.publish(updated, "job.cancel_requested")
            resp.status = falcon.HTTP_202
        resp.location = f"/v1/jobs/{job.id}"
        resp.media = self.views.view(updated, principal)


class JobSelftest:
    def __init__(self, views: JobViews):
        self.views = views

    @operation(
        "Run the diagnostic job",
        body=SelftestRequest,
        response=JobView,
        status=202,
        permission="admin:jobs",
        errors=(422,),
        tags=TAGS,
        description="Queues a `jobs.selftest` job: it reports progress in `steps` of `step_ms`, writes "
        "and reads back a probe object through storage once, and can be cancelled. Its "
        "events go to the channel of `owner_id` (default: you), which tests the whole path "
        "from API to worker to websocket for that user.",
    )
    def on_post(self, req, resp):
        body: SelftestRequest = req.context.body
        owner_id = req.context.principal.user_id
        if body.owner_id is not None:
            try:
                owner_id = str(uuid.UUID(body.owner_id))
            except ValueError:
                raise validation_error([{"field": "body.owner_id", "message": "not a UUID"}]) from None
            if not User.select().where(User.id == owner_id).exists():
                raise validation_error([{"field": "body.owner_id", "message": "no such user"}])
        job = Job.create(
            kind="jobs.selftest",
            queue="default",
            owner=owner_id,
            input={"steps": body.steps, "step_ms": body.step_ms},
            max_attempts=3,
        )
        self.views.accept(req, resp, job)
