"""Errors as ``application/problem+json`` (RFC 9457).

Every error leaves the API through ``serialize_problem``: ``type``, ``title``,
``status``, ``detail``, the request id, and ``errors: [{field, message}]`` for
validation failures. An unexpected exception becomes a 500 that names the
request id and nothing internal.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import falcon
import msgspec

from models.db import TRANSIENT_ERRORS
from models.search.filters import InvalidSearch

log = logging.getLogger("hearth.api")
PROBLEM_TYPE_BASE = "https://hearth.dev/problems/"
_encoder = msgspec.json.Encoder()


class Problem(falcon.HTTPError):
    """An HTTP error with a problem ``type`` slug and optional extra members."""

    def __init__(
        self, status, title: str, detail: str | None = None, *, slug: str | None = None, headers=None, **extra
    ):
        super().__init__(status, title=title, description=detail, headers=headers)
        self.slug = slug
        self.extra = extra


def validation_error(errors: list[dict], detail: str = "The request is not valid.") -> Problem:
    """422 naming each offending field: ``errors=[{"field": ..., "message": ...}]``."""
    return Problem(falcon.HTTP_422, "Validation failed", detail, slug="validation", errors=errors)


def invalid_search(exc: InvalidSearch, where: str) -> Problem:
    """422 naming each search parameter the rules refused, under ``where`` (``query``, ``body.query``)."""
    return validation_error(
        [{"field": f"{where}.{field}" if field else where, "message": message} for field, message in exc.errors]
    )


def not_found(what: str = "resource") -> Problem:
    return Problem(falcon.HTTP_404, "Not found", f"No such {what}.", slug="not-found")


def conflict(detail: str, slug: str = "conflict") -> Problem:
    return Problem(falcon.HTTP_409, "Conflict", detail, slug=slug)


def unauthorized(detail: str = "A valid access token is required.") -> Problem:
    return Problem(
        falcon.HTTP_401,
        "Unauthorized",
        detail,
        slug="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="hearth"'},
    )


def forbidden(detail: str = "You do not have permission to do this.") -> Problem:
    return Problem(falcon.HTTP_403, "Forbidden", detail, slug="forbidden")


def too_many_requests(retry_after: int, detail: str = "Too many requests; slow down.") -> Problem:
    return Problem(
        falcon.HTTP_429,
        "Too many requests",
        detail,
        slug="rate-limited",
        headers={"Retry-After": str(max(1, int(retry_after)))},
        retry_after=max(1, int(retry_after)),
    )


def serialize_problem(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    # An API with another error format (the Supabase-compatible /auth/v1) names its own writer.
    custom = getattr(req.context, "error_serializer", None)
    if custom is not None:
        custom(req, resp, exc)
        return
    status = exc.status_code
    slug = getattr(exc, "slug", None) or _default_slug(status)
    body = {"type": PROBLEM_TYPE_BASE + slug, "title": _title(exc.title, status), "status": status}
    if exc.description:
        body["detail"] = exc.description
    body.update(getattr(exc, "extra", None) or {})
    request_id = getattr(req.context, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    resp.content_type = "application/problem+json"
    resp.data = _encoder.encode(body)


def _title(title: str | None, status: int) -> str:
    # Falcon's own errors (404, 405, ...) carry the status line as their title.
    if not title or title[:3].isdigit():
        status_line: str = falcon.code_to_http_status(status)  # "404 Not Found"
        return status_line[4:]
    return title


def _default_slug(status: int) -> str:
    return {
        400: "bad-request",
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        406: "not-acceptable",
        409: "conflict",
        411: "length-required",
        412: "precondition-failed",
        413: "payload-too-large",
        415: "unsupported-media-type",
        422: "validation",
        428: "precondition-required",
        429: "rate-limited",
        503: "unavailable",
    }.get(status, "error")


def _handle_unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]) -> NoReturn:
    if isinstance(exc, falcon.HTTPError):
        raise exc
    if isinstance(exc, TRANSIENT_ERRORS) or _is_redis_outage(exc):
        log.warning("dependency unavailable", extra={"request_id": req.context.request_id, "error": type(exc).__name__})
        raise Problem(
            falcon.HTTP_503,
            "Service unavailable",
            "A backing service is unreachable; try again shortly.",
            slug="unavailable",
            headers={"Retry-After": "5"},
        )
    log.error("unhandled error", exc_info=exc, extra={"request_id": getattr(req.context, "request_id", None)})
    raise Problem(
        falcon.HTTP_500,
        "Internal server error",
        "Something went wrong on our side. Quote the request id when reporting it.",
        slug="internal",
    )


def _is_redis_outage(exc: Exception) -> bool:
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))


def install(app: falcon.App) -> None:
    app.set_error_serializer(serialize_problem)
    # Falcon picks the most specific handler, so its own HTTPError handling stays.
    app.add_error_handler(Exception, _handle_unexpected)
