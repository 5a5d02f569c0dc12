"""``/healthz`` (the process answers) and ``/readyz`` (its database and Redis answer)."""
from __future__ import annotations

import falcon

from api.errors import Problem
from api.operation import operation
from models.db import TRANSIENT_ERRORS, db

TAGS = ("operations",)


class Health:
    @operation("Liveness: the process is up", auth="none", rate=None, tags=TAGS)
    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


class Ready:
    @operation("Readiness: PostgreSQL and Redis answer", auth="none", rate=None, errors=(503,), tags=TAGS)
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
        if any(value != "ok" for value in checks.values()):
            raise Problem(falcon.HTTP_503, "Not ready", "A dependency is unreachable.", slug="not-ready",
                          checks=checks, headers={"Retry-After": "5"})
        resp.media = {"status": "ready", "checks": checks}


class Jwks:
    def __init__(self, keys):
        self.body = keys.jwks()

    @operation("Public keys that verify access tokens (JWKS)", auth="none", rate=None, tags=("auth",))
    def on_get(self, req, resp):
        resp.cache_control = ["public", "max-age=300"]
        resp.media = self.body
