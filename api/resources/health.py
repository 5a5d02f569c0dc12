"""``/healthz`` (the process answers) and ``/readyz`` (its database and Redis answer; the scanner's state)."""

from __future__ import annotations

import falcon

from api.errors import Problem
from api.operation import operation
from models.db import TRANSIENT_ERRORS, db
from services.scanner import ClamdScanner

# Seconds a readiness probe waits for clamd's PONG.
SCANNER_PING_TIMEOUT = 2.0

TAGS = ("operations",)


class Health:
    @operation("Liveness: the process is up", auth="none", rate=None, tags=TAGS)
    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


class Ready:
    """503 when PostgreSQL or Redis does not answer: no route works without them.

    An unreachable virus scanner makes the API ``degraded``, not unready: every
    other route still works, and uploads are accepted and wait (``pending_scan``,
    never served) until clamd answers again. Taking every API instance out of
    the load balancer over a scanner they all share would turn a queue of
    unscanned files into a full outage; monitoring alerts on ``checks.scanner``.
    """

    def __init__(self, clamd_address: str):
        self.clamd_address = clamd_address

    @operation(
        "Readiness: PostgreSQL and Redis answer (503 if not); the virus scanner's state",
        auth="none",
        rate=None,
        errors=(503,),
        tags=TAGS,
    )
    def on_get(self, req, resp):
        checks = {}
        try:
            db.execute_sql("SELECT 1")
            checks["database"] = "ok"
        except TRANSIENT_ERRORS as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        try:
            req.context.services.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        # A scanner per probe: a clamd client holds one socket and is not safe across threads.
        scanner_ok = ClamdScanner(self.clamd_address, timeout=SCANNER_PING_TIMEOUT).ping()
        checks["scanner"] = "ok" if scanner_ok else "unreachable: no PONG from clamd"
        if checks["database"] != "ok" or checks["redis"] != "ok":
            raise Problem(
                falcon.HTTP_503,
                "Not ready",
                "A dependency is unreachable.",
                slug="not-ready",
                checks=checks,
                headers={"Retry-After": "5"},
            )
        resp.media = {"status": "ready" if scanner_ok else "degraded", "checks": checks}


class Jwks:
    def __init__(self, keys):
        self.body = keys.jwks()

    @operation("Public keys that verify access tokens (JWKS)", auth="none", rate=None, tags=("auth",))
    def on_get(self, req, resp):
        resp.cache_control = ["public", "max-age=300"]
        resp.media = self.body
