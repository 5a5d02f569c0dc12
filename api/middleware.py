"""Cross-cutting request handling: request ids, access logs and metrics, security headers, DB connections."""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid

import structlog

from models.db import db
from models.job_submission import jobs_submitted_after_commit
from services import metrics
from services.logging import AccessLog

log = logging.getLogger("hearth.jobs")
access_log = AccessLog()
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from(incoming: str | None) -> str:
    """The request's id: a client's ``X-Request-ID`` of at most 64 of ``[A-Za-z0-9._-]``, else a new one."""
    return incoming if incoming and _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


class RequestContext:
    """Gives each request an id, binds it into every log line and job of the request, and logs and counts it.

    The id is echoed in ``X-Request-ID`` on every response, errors included, is the
    ``request_id`` of a problem body, and is bound in ``structlog.contextvars``
    for the request's thread: every log line carries it, and a job created
    during the request stores it (``Job.request_id``) and hands it to its task.
    """

    def __init__(self, services):
        self.services = services

    def process_request(self, req, resp):
        ctx = req.context
        ctx.services = self.services
        ctx.started = time.perf_counter()
        ctx.request_id = request_id_from(req.get_header("X-Request-ID"))
        ctx.principal = None
        # A thread serves one request at a time: what the previous one bound goes.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=ctx.request_id)
        resp.set_header("X-Request-ID", ctx.request_id)

    def process_response(self, req, resp, resource, req_succeeded):
        ctx = req.context
        request_id = getattr(ctx, "request_id", None)
        if request_id:
            resp.set_header("X-Request-ID", request_id)
        principal = getattr(ctx, "principal", None)
        seconds = time.perf_counter() - getattr(ctx, "started", time.perf_counter())
        route = req.uri_template
        status = resp.status_code
        access_log.write(
            {
                "request_id": request_id,
                "method": req.method,
                "path": req.path,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "user_id": principal.user_id if principal else None,
            }
        )
        metrics.observe_request(route, req.method, status, seconds)
        structlog.contextvars.clear_contextvars()


class SecurityHeaders:
    """Headers that make a JSON API safe to expose to browsers."""

    def __init__(self, production: bool):
        self.headers = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Resource-Policy": "same-site",
        }
        if production:
            self.headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_headers(self.headers)
        if resp.get_header("Content-Security-Policy") is None:
            resp.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")


class DatabaseConnection:
    """The request's unit of work: jobs it creates reach the broker after their commit; its connection goes back.

    Each request is a submission scope (``models.job_submission``): a job
    created in a resource's transaction is submitted through
    ``services.jobs`` once that transaction commits, and never if it rolls back;
    a job its owner follows (``Job.announced``) is announced (``job.queued``)
    just before. Connections open lazily on the first query, so requests
    answered from Redis never touch the pool; the request's connection, if it
    opened one, is returned when the request ends.
    """

    def __init__(self, services):
        self.submit = services.jobs.submit
        self.announce = functools.partial(_announce, services.events)

    def process_request(self, req, resp):
        req.context.job_submission = jobs_submitted_after_commit(self.submit, announce=self.announce).open()

    def process_response(self, req, resp, resource, req_succeeded):
        submission = getattr(req.context, "job_submission", None)
        if submission is not None:
            submission.close()
        # Inside a transaction the connection belongs to whoever opened it (a test's
        # rolled-back transaction, or a caller); closing it then would raise.
        if not db.is_closed() and not db.in_transaction():
            db.close()


def _announce(events, job) -> None:
    try:
        events.publish_job(job, "job.queued")
    except Exception:
        log.warning("could not publish job event", extra={"job_id": str(job.id)}, exc_info=True)
