"""Cross-cutting request handling: request ids, JSON access logs, security headers, DB connections."""
from __future__ import annotations

import re
import time
import uuid

from models.db import db
from services.logging import AccessLog

access_log = AccessLog()
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContext:
    """Gives each request an id (a sane incoming ``X-Request-ID`` is kept) and logs it when done."""

    def __init__(self, services):
        self.services = services

    def process_request(self, req, resp):
        ctx = req.context
        ctx.services = self.services
        ctx.started = time.perf_counter()
        incoming = req.get_header("X-Request-ID")
        ctx.request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        ctx.principal = None
        resp.set_header("X-Request-ID", ctx.request_id)

    def process_response(self, req, resp, resource, req_succeeded):
        ctx = req.context
        principal = getattr(ctx, "principal", None)
        access_log.write({
            "request_id": getattr(ctx, "request_id", None),
            "method": req.method,
            "path": req.path,
            "status": resp.status_code,
            "duration_ms": round((time.perf_counter() - getattr(ctx, "started", time.perf_counter())) * 1000, 2),
            "user_id": principal.user_id if principal else None,
        })


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
    """Returns the request's pooled connection, if it opened one, when the request ends.

    Connections open lazily on the first query, so requests answered from Redis
    never touch the pool.
    """

    def process_response(self, req, resp, resource, req_succeeded):
        # Inside a transaction the connection belongs to whoever opened it (a test's
        # rolled-back transaction, or a caller); closing it then would raise.
        if not db.is_closed() and not db.in_transaction():
            db.close()
